"""The compiled Newton step of the interior-point solver against the primal-dual Newton equations
written out here, stage by stage, from the Lagrangian's definition (not from the condensing and
the Riccati recursion the solver uses).

L = Σ_k f_k + Σ_k λ_{k+1}ᵀ(F(v_k) − x_{k+1}) + Σ_k y_kᵀg_k(v_k) + y_Nᵀg_N(v_{N−1}) + νᵀh(x_N)
    + y_inᵀh_in(x_N) − z_loᵀ(v − lo) + z_hiᵀ(v − hi), inequality rows as g + s = 0 with s ≥ 0.
"""
import numpy as np
import pytest

from trajectories import newton_system


def _problem(seed, N=4, ns=2, m=2, ng=1, n_eq=1, n_in=1):
    rng = np.random.default_rng(seed)
    nv = ns + m
    H = np.empty((N + 1, nv, nv))
    for k in range(N + 1):
        M = rng.normal(size=(nv, nv))
        H[k] = M @ M.T + np.eye(nv)
    p = dict(N=N, ns=ns, m=m, ng=ng, n_eq=n_eq, n_in=n_in, H=H, grad=rng.normal(size=(N + 1, nv)),
             A=rng.normal(size=(N, ns, ns)) * 0.5, B=rng.normal(size=(N, ns, m)), r=rng.normal(size=(N, ns)) * 0.1,
             GJ=rng.normal(size=(N, ng, nv)), GNJ=rng.normal(size=(ng, nv)), TJ=rng.normal(size=(1 + n_eq + n_in, ns)),
             V=rng.normal(size=(N + 1, nv)), equality=rng.normal(size=n_eq) * 0.1, mu=0.05)
    decision = np.ones((N + 1, nv), dtype=bool)
    decision[0, :ns] = False          # x_0 fixed
    decision[N, ns:] = False          # no control at the final node
    p["decision"] = decision
    has_lo = (rng.random((N + 1, nv)) < 0.5) & decision
    has_hi = (rng.random((N + 1, nv)) < 0.5) & decision
    p["lo"] = np.where(has_lo, p["V"] - rng.uniform(0.1, 1.0, (N + 1, nv)), -np.inf)
    p["hi"] = np.where(has_hi, p["V"] + rng.uniform(0.1, 1.0, (N + 1, nv)), np.inf)
    p["has_lo"], p["has_hi"] = has_lo, has_hi
    p["z_lo"] = np.where(has_lo, rng.uniform(0.1, 1.0, (N + 1, nv)), 0.0)
    p["z_hi"] = np.where(has_hi, rng.uniform(0.1, 1.0, (N + 1, nv)), 0.0)
    rows = (N + 1) * ng + n_in
    p["g"], p["s"], p["y"] = -rng.uniform(0.1, 1.0, rows), rng.uniform(0.1, 1.0, rows), rng.uniform(0.1, 1.0, rows)
    return p


def _step(p, delta=0.0, rho=3.0):
    ns, ng, n_eq, mu = p["ns"], p["ng"], p["n_eq"], p["mu"]
    sigma = p["y"] / p["s"]
    rhs = mu / p["s"] + sigma * (p["g"] + p["s"])
    Hn, G, dlo, dhi, _ = newton_system.assemble(p["H"], p["grad"], p["V"], p["lo"], p["hi"], p["has_lo"], p["has_hi"],
                                                p["z_lo"], p["z_hi"], mu, p["GJ"], p["GNJ"], ng, sigma, rhs, p["TJ"],
                                                n_eq)
    return newton_system.newton_step(Hn, G, p["A"], p["B"], p["r"], np.zeros(ns, dtype=bool), p["decision"],
                                     delta, np.ascontiguousarray(p["TJ"][1:1 + n_eq]), rho, p["equality"],
                                     p["has_lo"], p["has_hi"], p["z_lo"], p["z_hi"], dlo, dhi, mu, p["GJ"], p["GNJ"],
                                     ng, p["TJ"], p["g"], p["s"], p["y"], sigma, rhs)


def _residuals(p, out, delta=0.0):
    """Every block of the primal-dual Newton equations at the returned step (zero when it solves them)."""
    ok, dX, dU, lam, nu, dV, ds, dy, dz_lo, dz_hi, _, _ = out
    N, ns, ng, n_eq, mu = p["N"], p["ns"], p["ng"], p["n_eq"], p["mu"]
    y, z_lo, z_hi = p["y"] + dy, p["z_lo"] + dz_lo, p["z_hi"] + dz_hi
    C, Tin = p["TJ"][1:1 + n_eq], p["TJ"][1 + n_eq:]
    res = {}
    # stationarity of the Newton model of L over every decision
    stat = np.zeros_like(dV)
    for k in range(N + 1):
        g = p["H"][k] @ dV[k] + delta * dV[k] + p["grad"][k] - z_lo[k] + z_hi[k]
        if k < N:
            g[:ns] += p["A"][k].T @ lam[k + 1]
            g[ns:] += p["B"][k].T @ lam[k + 1]
            g += p["GJ"][k][:ng].T @ y[k * ng:(k + 1) * ng]
            if k == N - 1:
                g += p["GNJ"][:ng].T @ y[N * ng:(N + 1) * ng]
        if k > 0:
            g[:ns] -= lam[k]
        if k == N:
            g[:ns] += C.T @ nu + Tin.T @ y[(N + 1) * ng:]
        stat[k] = np.where(p["decision"][k], g, 0.0)
    res["stationarity"] = stat
    res["dynamics"] = np.array([p["r"][k] + p["A"][k] @ dX[k] + p["B"][k] @ dU[k] - dX[k + 1] for k in range(N)])
    res["x0 fixed"] = dX[0]
    dg = np.concatenate([np.concatenate([p["GJ"][k][:ng] @ dV[k] for k in range(N)]), p["GNJ"][:ng] @ dV[N - 1],
                         Tin @ dV[N, :ns]])
    res["inequality rows"] = p["g"] + p["s"] + dg + ds
    res["slack complementarity"] = p["s"] * dy + p["y"] * ds - (mu - p["s"] * p["y"])
    res["terminal equalities"] = p["equality"] + C @ dV[N, :ns]
    d_lo = np.where(p["has_lo"], p["V"] - p["lo"], 1.0)
    d_hi = np.where(p["has_hi"], p["hi"] - p["V"], 1.0)
    res["lower bounds"] = np.where(p["has_lo"], d_lo * dz_lo + p["z_lo"] * dV - (mu - d_lo * p["z_lo"]), 0.0)
    res["upper bounds"] = np.where(p["has_hi"], d_hi * dz_hi - p["z_hi"] * dV - (mu - d_hi * p["z_hi"]), 0.0)
    return ok, res


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("delta", [0.0, 0.5])
def test_the_compiled_step_solves_the_primal_dual_newton_equations(seed, delta):
    p = _problem(seed)
    ok, res = _residuals(p, _step(p, delta), delta)
    assert ok
    for name, r in res.items():
        assert np.max(np.abs(r)) < 1e-9, name


def test_without_inequalities_or_terminal_constraints_the_step_still_solves_them():
    p = _problem(3, ng=0, n_eq=0, n_in=0)
    p["GJ"], p["GNJ"] = np.zeros((p["N"], 1, p["ns"] + p["m"])), np.zeros((1, p["ns"] + p["m"]))  # placeholders
    ok, res = _residuals(dict(p, ng=0), _step(p))
    assert ok
    for name, r in res.items():
        assert r.size == 0 or np.max(np.abs(r)) < 1e-9, name


def test_an_indefinite_reduced_hessian_is_reported_not_solved():
    p = _problem(4)
    p["H"][2] = -p["H"][2]
    assert not _step(p)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_feedback_gains_are_the_textbook_riccati_gains(seed):
    """K_k of the compiled recursion (three controls) against the discrete Riccati recursion in numpy
    (P_N = H_N,xx; Q_uu = H_uu + BᵀPB, Q_ux = H_ux + BᵀPA, K = −Q_uu⁻¹Q_ux, P = H_xx + AᵀPA + Q_uxᵀK),
    and the step's controls are its feed-forward plus K times its states (du_k = k_k + K_k dx_k)."""
    from trajectories.riccati import riccati

    p = _problem(seed, N=5, ns=3, m=3)      # m = 3: the Cholesky factor's inner loops all run
    N, ns, m = p["N"], p["ns"], p["m"]
    H, A, B = p["H"], p["A"], p["B"]
    G = p["grad"][..., None].copy()
    dX, dU, Lam, K = np.empty((N + 1, ns, 1)), np.empty((N, m, 1)), np.empty((N + 1, ns, 1)), np.empty((N, m, ns))
    assert riccati(H, G, A, B, p["r"], np.zeros(ns, dtype=bool), dX, dU, Lam, K) == -1
    P = H[N, :ns, :ns]
    for k in range(N - 1, -1, -1):
        Hxx, Hux, Huu = H[k, :ns, :ns], H[k, ns:, :ns], H[k, ns:, ns:]
        Quu, Qux = Huu + B[k].T @ P @ B[k], Hux + B[k].T @ P @ A[k]
        Kk = -np.linalg.solve(Quu, Qux)
        np.testing.assert_allclose(K[k], Kk, rtol=1e-10, atol=1e-12)
        P = Hxx + A[k].T @ P @ A[k] + Qux.T @ Kk
    # the step itself, re-derived: k_k from the same recursion's linear terms is what dU − K dX leaves
    ff = dU[:, :, 0] - np.einsum("kij,kj->ki", K, dX[:N, :, 0])
    dx = np.zeros(ns)
    for k in range(N):
        du = ff[k] + K[k] @ dx
        np.testing.assert_allclose(du, dU[k, :, 0], rtol=1e-10, atol=1e-12)
        dx = A[k] @ dx + B[k] @ du + p["r"][k]
        np.testing.assert_allclose(dx, dX[k + 1, :, 0], rtol=1e-10, atol=1e-12)
