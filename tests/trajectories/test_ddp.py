"""DDP against independent references: the discrete Riccati recursion of the RK4-discretised LQR
(built here from the scheme's formulas, not from diffsim), the optima of the direct methods, the
KKT conditions of the discrete problem (BPTT gradients of the Lagrangian with DDP's multipliers),
BPTT costates, and finite-difference sensitivities of the optimal control."""

import numpy as np
import pytest
from ocp_reference import Reference

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, solve, systems
from trajectories.ddp import DDPSolver, ddp
from trajectories.problem import ProblemError


def rk4_lqr(h, N):
    """The exact discrete problem the RK4 step makes of ẋ = Ax + Bu, L = xᵀx + u², Φ = xᵀx:
    x⁺ = Ad x + Bd u and stage cost zᵀWz, z = (x, u); then the backward Riccati recursion."""
    A, B = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0]])
    n, m = 2, 1
    # each RK4 stage point X_i = M_i z (z = [x, u]) and slope k_i = [A B] X-stage
    E = np.hstack([np.eye(n), np.zeros((n, m))])            # x = E z
    F = lambda M: A @ M + B @ np.hstack([np.zeros((m, n)), np.eye(m)])  # k(M z) as a matrix of z
    X1 = E
    k1 = F(X1)
    X2 = E + 0.5 * h * k1
    k2 = F(X2)
    X3 = E + 0.5 * h * k2
    k3 = F(X3)
    X4 = E + h * k3
    k4 = F(X4)
    step = E + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    Ad, Bd = step[:, :n], step[:, n:]
    Su = np.hstack([np.zeros((m, n)), np.eye(m)])
    W = sum(w * (X.T @ X + Su.T @ Su) for w, X in zip((1, 2, 2, 1), (X1, X2, X3, X4))) * h / 6
    Wxx, Wux, Wuu = W[:n, :n], W[n:, :n], W[n:, n:]
    P = [None] * (N + 1)
    Ks = [None] * N
    P[N] = np.eye(n)
    for k in range(N - 1, -1, -1):
        Qxx = Wxx + Ad.T @ P[k + 1] @ Ad
        Qux = Wux + Bd.T @ P[k + 1] @ Ad
        Quu = Wuu + Bd.T @ P[k + 1] @ Bd
        Ks[k] = -np.linalg.solve(Quu, Qux)
        P[k] = Qxx + Qux.T @ Ks[k]
        P[k] = 0.5 * (P[k] + P[k].T)
    return Ad, Bd, np.array(P), np.array(Ks)


@pytest.mark.parametrize("variant", ["gauss-newton", "second-order"])
def test_lqr_one_iteration_riccati_gains(variant):
    N, T = 60, 5.0
    sol = ddp(systems.double_integrator_lqr(N=N, T=T), variant=variant)
    Ad, Bd, P, K = rk4_lqr(T / N, N)
    x0 = np.array([1.0, 0.0])
    assert sol.status and sol.iterations == 1, sol
    assert sol.cost == pytest.approx(x0 @ P[0] @ x0, rel=1e-11)
    assert np.allclose(sol.gains, K, rtol=1e-9, atol=1e-12)
    # the closed loop of the Riccati gains is the optimal trajectory; V_x = 2 P x
    x = x0.copy()
    for k in range(N):
        assert np.allclose(sol.x[k], x, atol=1e-11)
        assert np.allclose(sol.costates[k], 2 * P[k] @ x, atol=1e-10)
        x = Ad @ x + Bd @ (K[k] @ x)
    assert np.allclose(sol.u[:, 0], [(K[k] @ sol.x[k])[0] for k in range(N)], atol=1e-11)


def _dense_lqr(lower=-np.inf, upper=np.inf, n=8, m=3, N=25):
    """A dense discrete LQR x⁺ = A x + B u (Euler, h = 1), stage ½xᵀQx + ½uᵀRu + qᵀx + rᵀu and
    terminal ½xᵀQx + qᵀx: n ≥ 8 states take the backward sweep's BLAS products (ddp._GEMM_MIN_STATES)."""
    rng = np.random.default_rng(5)
    A = np.eye(n) + 0.1 * rng.standard_normal((n, n))
    B = rng.standard_normal((n, m))
    S = rng.standard_normal((n, n))
    Q, R = np.eye(n) + 0.1 * S.T @ S, np.eye(m) + 0.2 * np.diag(rng.random(m))
    q, r, x0 = rng.standard_normal(n), rng.standard_normal(m), rng.standard_normal(n)
    Am = A - np.eye(n)
    ocp = OptimalControlProblem(lambda x, u: x @ Am.T + u @ B.T, x0=x0, T=float(N), N=N, n_u=m, scheme="euler",
                                running_cost=lambda x, u: 0.5 * (x @ Q @ x) + 0.5 * (u @ R @ u) + x @ q + u @ r,
                                terminal_cost=lambda x: 0.5 * (x @ Q @ x) + x @ q, u_lower=lower, u_upper=upper,
                                name="test_dense_lqr")
    return ocp, (A, B, Q, R, q, r, x0)


def test_dense_lqr_gains_equal_riccati():
    """The BLAS path of the backward sweep (n ≥ 8) against the Riccati recursion in numpy."""
    ocp, (A, B, Q, R, q, r, x0) = _dense_lqr()
    N = ocp.N
    sol = DDPSolver(ocp, variant="gauss-newton", tol=1e-9).solve()  # from the rollout of u = 0: one full step
    assert sol.status and sol.iterations == 1, sol
    # V_k(x) = ½xᵀP_k x + p_kᵀx + const; u_k = K_k x + κ_k
    P, p = Q.copy(), q.copy()
    Ks, kap = [None] * N, [None] * N
    for k in range(N - 1, -1, -1):
        Quu, Qux, Qu = R + B.T @ P @ B, B.T @ P @ A, r + B.T @ p
        Ks[k], kap[k] = -np.linalg.solve(Quu, Qux), -np.linalg.solve(Quu, Qu)
        P, p = Q + A.T @ P @ A + Qux.T @ Ks[k], q + A.T @ p + Qux.T @ kap[k]
        P = 0.5 * (P + P.T)
    assert np.allclose(sol.gains, np.array(Ks), rtol=1e-9, atol=1e-11)
    x, cost = x0.copy(), 0.0
    for k in range(N):
        u = Ks[k] @ x + kap[k]
        assert np.allclose(sol.x[k], x, atol=1e-9) and np.allclose(sol.u[k], u, atol=1e-9)
        cost += 0.5 * (x @ Q @ x) + 0.5 * (u @ R @ u) + x @ q + u @ r
        x = A @ x + B @ u
    cost += 0.5 * (x @ Q @ x) + x @ q
    assert sol.cost == pytest.approx(cost, rel=1e-11)
    assert sol.cost == pytest.approx(0.5 * (x0 @ P @ x0) + p @ x0 + _riccati_constant(A, B, Q, R, q, r, N), rel=1e-10)


def _riccati_constant(A, B, Q, R, q, r, N):
    """The constant term of the optimal value (the part of V_0 free of x0)."""
    P, p, c = Q.copy(), q.copy(), 0.0
    for _ in range(N):
        Quu, Qu = R + B.T @ P @ B, r + B.T @ p
        kap = -np.linalg.solve(Quu, Qu)
        c += 0.5 * kap @ Qu
        Qux = B.T @ P @ A
        K = -np.linalg.solve(Quu, Qux)
        P, p = Q + A.T @ P @ A + Qux.T @ K, q + A.T @ p + Qux.T @ kap
        P = 0.5 * (P + P.T)
    return c


def test_dense_lqr_box_is_a_kkt_point():
    """BoxDDP on the BLAS path: the bound-constrained LQ optimum, checked by the projected gradient
    of the cost (a numpy adjoint recursion), the costates against that adjoint and the rollout of
    the returned controls."""
    ocp, (A, B, Q, R, q, r, x0) = _dense_lqr(lower=-0.3, upper=0.4)
    sol = ddp(ocp, variant="gauss-newton", tol=1e-10)
    assert sol.status, sol
    N, u = ocp.N, sol.u
    x = np.empty((N + 1, len(x0)))
    x[0] = x0
    for k in range(N):
        x[k + 1] = A @ x[k] + B @ u[k]
    assert np.allclose(sol.x, x, atol=1e-10)
    lam = np.empty_like(x)
    lam[N] = Q @ x[N] + q
    g = np.empty_like(u)
    for k in range(N - 1, -1, -1):
        g[k] = R @ u[k] + r + B.T @ lam[k + 1]
        lam[k] = Q @ x[k] + q + A.T @ lam[k + 1]
    # at the optimum V_x is the adjoint: free controls have Q_u = 0, clamped ones no feedback
    assert np.max(np.abs(sol.costates - lam)) <= 1e-8 * np.max(np.abs(lam))
    at_lo, at_hi = u <= -0.3 + 1e-12, u >= 0.4 - 1e-12
    assert at_lo.sum() + at_hi.sum() >= 5  # the box is active
    assert np.all(u >= -0.3 - 1e-15) and np.all(u <= 0.4 + 1e-15)
    free = ~(at_lo | at_hi)
    assert np.max(np.abs(g[free])) < 1e-8
    assert np.all(g[at_lo] > -1e-8) and np.all(g[at_hi] < 1e-8)


def test_solve_method_ddp_and_bad_input():
    ocp = systems.double_integrator_lqr(N=30)
    s = solve(ocp, method="ddp")
    assert s.status and s.method == "ddp" and s.gains.shape == (30, 1, 2) and s.feedforward.shape == (30, 1)
    np.testing.assert_allclose(s.t, np.linspace(0.0, ocp.T, 31), rtol=0, atol=1e-12)   # the stage times
    late = DDPSolver(ocp).solve(t0=0.7)   # a horizon starting later (as MPC plans it)
    np.testing.assert_allclose(late.t, 0.7 + np.linspace(0.0, ocp.T, 31), rtol=0, atol=1e-12)
    for bad in (dict(tol=0.0), dict(constraint_tol=0.0), dict(max_iterations=0)):   # each bound is strict
        assert "tol > 0" in ddp(systems.double_integrator_lqr(N=10), **bad).message, bad
    free = ddp(systems.brachistochrone(N=20))
    assert not free.status and "fixed horizon" in free.message
    assert "unknown DDP variant" in ddp(systems.double_integrator_lqr(N=10), variant="newton").message
    adaptive = systems.double_integrator_lqr(N=10)
    adaptive.scheme = "dopri5"
    assert "fixed-step scheme" in ddp(adaptive).message
    assert "NaN" in ddp(systems.double_integrator_lqr(N=10), U0=np.full((10, 1), np.nan)).message


@pytest.mark.parametrize("setting, named", [(dict(tol=-1.0), "tol > 0"),
                                            (dict(variant="newton"), "unknown DDP variant"),
                                            (dict(max_iterations=0), "max_iterations >= 1"),
                                            (dict(N=0), "at least one stage")])
def test_solve_with_ddp_raises_for_a_setting_it_cannot_take_as_the_other_methods_do(setting, named):
    with pytest.raises(ProblemError, match=named):
        solve(systems.double_integrator_lqr(N=10), method="ddp", **setting)
    # a numerical failure is still a status: a NaN start
    bad = solve(systems.double_integrator_lqr(N=10), method="ddp", U0=np.full((10, 1), np.nan))
    assert not bad.status and "NaN" in bad.message


def _lagrangian_gradient(problem, sol):
    """dL/dU and the costates of the discrete Lagrangian J + λ·h(x_N) by BPTT (diffsim.ode)."""
    mult = sol.extra["multipliers"]
    w = np.concatenate([mult.get("eq", np.zeros(0)), mult.get("in", np.zeros(0))])
    q = problem.q(problem.T, 1.0, w if w.size else None)
    return problem.ode.gradient(problem.x0, sol.u, q, T=1.0, method="bptt")


def _check_kkt(problem, sol, tol):
    """Projected stationarity of the Lagrangian in the controls (bounds as complementarity)."""
    g = _lagrangian_gradient(problem, sol)
    lo, hi = problem.u_lower, problem.u_upper
    at_lo, at_hi = sol.u <= lo + 1e-12, sol.u >= hi - 1e-12
    assert np.all(sol.u >= lo) and np.all(sol.u <= hi)
    free = ~(at_lo | at_hi)
    scale = np.max(np.abs(g.dU)) + 1.0
    assert np.max(np.abs(g.dU[free])) <= tol * scale
    assert np.all(g.dU[at_lo] >= -tol * scale) and np.all(g.dU[at_hi] <= tol * scale)
    return g


def test_pendulum_swingup_matches_direct_methods_and_keeps_bounds():
    ocp = systems.pendulum_swingup(N=60)
    sol = ddp(ocp)
    assert sol.status, sol
    assert np.all(np.abs(sol.u) <= 4.0) and np.sum(np.abs(sol.u) >= 4.0 - 1e-12) >= 3  # bounds active (BoxDDP)
    ref = solve(ocp, method="multiple")
    assert ref.status
    assert sol.cost == pytest.approx(ref.cost, rel=1e-5)
    assert np.abs(sol.x[-1] - [np.pi, 0.0]).max() < 1e-6
    g = _check_kkt(ocp, sol, 1e-6)
    # V_x(k) is the BPTT costate of the Lagrangian, to round-off
    assert np.max(np.abs(sol.costates - g.costate)) <= 1e-7 * np.max(np.abs(g.costate))


@pytest.mark.slow
def test_cart_pole_swingup_matches_single_shooting():
    ocp = systems.cart_pole_swingup(N=60)
    sol = ddp(ocp)
    assert sol.status, sol
    ref = solve(ocp, method="single")
    assert sol.cost == pytest.approx(ref.cost, rel=1e-5)
    _check_kkt(ocp, sol, 1e-6)


def _pendulum_soft(N=50):
    """Swing-up with a terminal cost instead of constraints (no multipliers: gains are the
    sensitivities of the optimal control)."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0] - 0.1 * x[1] - 9.81 * dnp.sin(x[0])]),
                                 x0=[0.0, 0.0], T=3.0, N=N, n_u=1, running_cost=lambda x, u: 0.1 * u[0] ** 2,
                                 terminal_cost=lambda x: 50.0 * ((x[0] - np.pi) ** 2 + x[1] ** 2), name="soft_pendulum")


@pytest.mark.parametrize("variant", ["gauss-newton", "second-order"])
def test_unconstrained_costates_equal_bptt(variant):
    ocp = _pendulum_soft()
    sol = ddp(ocp, variant=variant, tol=1e-12)
    assert sol.status, sol
    g = ocp.ode.gradient(ocp.x0, sol.u, ocp.q(ocp.T), T=1.0, method="bptt")
    assert g.J == pytest.approx(sol.cost, rel=1e-13)
    assert np.max(np.abs(g.dU)) < 1e-9
    # to O(|Q_u|): V_x includes the pending Newton step
    assert np.max(np.abs(sol.costates - g.costate)) <= 1e-9 * np.max(np.abs(g.costate))


def test_second_order_gains_are_optimal_control_sensitivities():
    """K_0 = ∂u*_0/∂x0: re-solve from perturbed initial states (central differences)."""
    ocp = _pendulum_soft()
    sol = ddp(ocp, variant="second-order", tol=1e-11)
    eps = 1e-5
    fd = np.empty((1, 2))
    for i in range(2):
        u = []
        for s in (1, -1):
            solver = DDPSolver(ocp, variant="second-order", tol=1e-11)
            x0 = ocp.x0.copy()
            x0[i] += s * eps
            r = solver.solve(x0=x0, U0=sol.u)
            assert r.status
            u.append(r.u[0, 0])
        fd[0, i] = (u[0] - u[1]) / (2 * eps)
    assert np.allclose(sol.gains[0], fd, rtol=1e-5, atol=1e-6)


def test_infeasible_start_closes_gaps():
    ocp = _pendulum_soft()
    X0 = np.linspace(ocp.x0, [np.pi, 0.0], ocp.N + 1)  # a straight line: far from dynamically feasible
    sol = ddp(ocp, X0=X0)
    ref = ddp(ocp)
    assert sol.status and sol.extra["gaps"] == 0.0
    assert sol.cost == pytest.approx(ref.cost, rel=1e-7)


def test_path_constraints_hold_pointwise():
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=2.0, N=40, n_u=1,
                                running_cost=lambda x, u: u[0] ** 2,
                                terminal_equality=lambda x: dnp.array([x[0] - 1.0, x[1]]),
                                path_constraints=lambda x, u: dnp.array([x[1] - 0.6]), name="speed_limit")
    sol = ddp(ocp)
    assert sol.status, sol
    assert np.max(sol.x[:-1, 1]) <= 0.6 + 1e-7
    assert np.max(sol.x[:-1, 1]) >= 0.6 - 1e-6  # the limit is active
    ref = solve(ocp, method="multiple")
    assert sol.cost == pytest.approx(ref.cost, rel=1e-4)


def test_initial_state_outside_a_state_constraint_is_reported():
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 1.0], T=1.0, N=10, n_u=1,
                                running_cost=lambda x, u: u[0] ** 2,
                                path_constraints=lambda x, u: dnp.array([x[1] - 0.5]))
    sol = ddp(ocp)
    assert not sol.status and "initial state" in sol.message and "violates path constraint 0" in sol.message


def euler_lq_reference(A, B, R, N, h, goal):
    """(U, λ) of min Σ h u_kᵀR u_k s.t. x_N = goal from x_0 = 0 under Euler steps of ẋ = Ax + Bu:
    x_N = Γ U, and the KKT system [2h diag(R) Γᵀ; Γ 0] [U; λ] = [0; goal] solved by numpy."""
    Ad, Bd = np.eye(len(A)) + h * A, h * B
    Gamma = np.hstack([np.linalg.matrix_power(Ad, N - 1 - k) @ Bd for k in range(N)])
    n, m = B.shape
    kkt = np.block([[2 * h * np.kron(np.eye(N), R), Gamma.T], [Gamma, np.zeros((n, n))]])
    return np.linalg.solve(kkt, np.concatenate([np.zeros(N * m), goal]))


def euler_rest_to_rest(N=40, T=2.0):
    """The Euler double integrator from rest, min Σ h u_k², x_N = (1, 0), and its KKT point (U, λ)."""
    goal = np.array([1.0, 0.0])
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                running_cost=lambda x, u: u[0] ** 2, scheme="euler",
                                terminal_equality=lambda x: x - goal, name="euler_rest_to_rest")
    A, B = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0]])
    return ocp, euler_lq_reference(A, B, np.eye(1), N, T / N, goal)


def test_terminal_equality_newton_step_solves_the_constrained_lq_exactly():
    """Euler double integrator, cost Σ h u_k², x_N = (1, 0): an equality-constrained QP in U whose
    minimiser and multiplier numpy gives in closed form (least norm, λ = −2h (ΓΓᵀ)⁻¹ ... via lstsq).
    Once the augmented Lagrangian hands over, one Newton step of the terminal multipliers lands on
    it (the sweep of W, Gu, Kn is exact on a linear-quadratic problem)."""
    ocp, ref = euler_rest_to_rest()
    N = ocp.N
    solver = DDPSolver(ocp, tol=1e-10)
    sol = solver.solve()
    assert sol.status, sol
    assert sol.extra["outer_iterations"] == 1  # one AL round, then the exact terminal step
    assert sol.iterations <= 2                 # Newton on a QP: the first exact step lands on the optimum
    assert np.max(np.abs(sol.u[:, 0] - ref[:N])) <= 1e-9 * np.max(np.abs(ref[:N]))
    assert np.max(np.abs(sol.extra["multipliers"]["eq"] - ref[N:])) <= 1e-8 * np.max(np.abs(ref[N:]))
    assert sol.constraint_violation <= 1e-12
    al = DDPSolver(ocp, tol=1e-10, exact_terminal=False).solve()   # the augmented Lagrangian alone
    assert al.status and al.extra["outer_iterations"] > sol.extra["outer_iterations"]
    assert np.max(np.abs(al.u[:, 0] - ref[:N])) <= 1e-5 * np.max(np.abs(ref[:N]))


def test_terminal_equality_newton_step_with_two_coupled_controls_solves_the_lq_in_one_step():
    """Three Euler states driven by two controls coupled in the dynamics and in the cost uᵀRu,
    x_N = goal: the equality-constrained QP's KKT system, solved by numpy, is the reference. The
    multipliers' Newton step solves the two-control stage systems (a Cholesky of Q_uu with
    forward and back substitution per terminal row); exact, it lands on the optimum at once."""
    N, T = 30, 2.0
    h = T / N
    goal = np.array([1.0, 0.0, -0.5])
    R = np.array([[1.0, 0.1], [0.1, 0.5]])
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0], u[1] - 0.5 * u[0]]), x0=[0.0, 0.0, 0.0], T=T,
                                N=N, n_u=2, running_cost=lambda x, u: u[0] ** 2 + 0.5 * u[1] ** 2 + 0.2 * u[0] * u[1],
                                scheme="euler", terminal_equality=lambda x: x - goal, name="euler_two_controls")
    A = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    B = np.array([[0.0, 0.0], [1.0, 0.0], [-0.5, 1.0]])
    ref = euler_lq_reference(A, B, R, N, h, goal)
    sol = DDPSolver(ocp, tol=1e-10).solve()
    assert sol.status, sol
    assert sol.iterations <= 2, sol.iterations
    U = ref[:2 * N].reshape(N, 2)
    assert np.max(np.abs(sol.u - U)) <= 1e-9 * np.max(np.abs(U))
    assert np.max(np.abs(sol.extra["multipliers"]["eq"] - ref[2 * N:])) <= 1e-8 * np.max(np.abs(ref[2 * N:]))
    assert sol.constraint_violation <= 1e-12


def test_cart_pole_swingup_n100_exact_terminal_is_a_kkt_point():
    """The benchmark's swing-up (N = 100, from rest, |F| ≤ 20): the exact terminal steps end with
    x(T) on the target to 1e-9, the Lagrangian stationary by BPTT, V_x equal to BPTT's costates,
    and the optimum of the augmented Lagrangian alone, in fewer rounds. Its sweeps meet
    indefinite Q_uu: a failed sweep raises the regularisation past the failed stage's deficit at
    once (raised tenfold from 1e-9 instead, 18 sweeps failed), and the optimum is the same."""
    ocp = systems.cart_pole_swingup(N=100)
    sol = ddp(ocp)
    assert sol.status, sol
    assert 1 <= sol.extra["failed_sweeps"] <= 3
    assert np.max(np.abs(sol.x[-1] - [1.0, np.pi, 0.0, 0.0])) <= 1e-9
    g = _check_kkt(ocp, sol, 1e-7)
    assert np.max(np.abs(sol.costates - g.costate)) <= 1e-6 * np.max(np.abs(g.costate))
    al = ddp(ocp, exact_terminal=False)
    assert al.status
    assert sol.cost == pytest.approx(al.cost, rel=1e-6)
    assert sol.extra["outer_iterations"] < al.extra["outer_iterations"]


@pytest.mark.parametrize("limit_in_params", [False, True])
def test_path_constraint_multipliers_meet_the_closed_form_kkt_conditions(limit_in_params):
    """The speed limit v ≤ 0.6 on the rest-to-rest double integrator, a linear-quadratic problem
    whose discrete form numpy writes down: RK4 is exact for ẋ = v, v̇ = u with u held over a step,
    so v_k = h Σ_{j<k} u_j, x_N = Γ U and J = h Σ u_k². Stationarity of J + Σ ν_k (v_k − 0.6) +
    λ·(x_N − goal) in U, with ν and λ the multipliers DDP reports, and ν ≥ 0, ν_k = 0 where the
    limit is slack: checked apart from the solver."""
    N, T, vmax = 40, 2.0, 0.6
    h = T / N
    goal = np.array([1.0, 0.0])
    if limit_in_params:  # the multipliers sit after the parameters in DDP's stage vectors
        ocp = OptimalControlProblem(lambda x, u, p: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                    running_cost=lambda x, u: u[0] ** 2, params=[vmax],
                                    terminal_equality=lambda x: x - goal,
                                    path_constraints=lambda x, u, p: dnp.array([x[1] - p[0]]), name="speed_limit_p")
    else:
        ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                    running_cost=lambda x, u: u[0] ** 2,
                                    terminal_equality=lambda x: x - goal,
                                    path_constraints=lambda x, u: dnp.array([x[1] - vmax]), name="speed_limit")
    sol = ddp(ocp)
    assert sol.status, sol
    U = sol.u[:, 0]
    S = h * np.tril(np.ones((N, N)), -1)                       # v_k = (S U)_k, k = 0..N-1
    Gamma = np.vstack([h * h * (N - np.arange(N) - 0.5), h * np.ones(N)])   # x_N = Γ U (exact RK4 step)
    assert np.allclose(Gamma @ U, goal, atol=1e-7) and np.allclose(sol.x[:-1, 1], S @ U, atol=1e-9)
    nu, lam = sol.extra["multipliers"]["path"][:, 0], sol.extra["multipliers"]["eq"]
    assert nu.shape == (N,) and np.all(nu >= 0) and np.max(nu) > 0.1   # the limit is active
    assert np.all(nu[S @ U < vmax - 1e-4] <= 1e-6)                     # complementarity
    residual = 2 * h * U + S.T @ nu + Gamma.T @ lam
    assert np.max(np.abs(residual)) <= 1e-5 * np.max(np.abs(2 * h * U))
    # the multipliers' updates, not the penalty, enforce the limit: on this convex problem the
    # augmented Lagrangian converges with a bounded penalty (a penalty alone needs μ ~ 1/tol)
    assert sol.extra["penalty"] <= 1e5, sol.extra


@pytest.mark.parametrize("exact_terminal", [True, False])
def test_a_terminal_equality_reading_the_problem_parameters_meets_its_closed_form_optimum(exact_terminal):
    """The Euler rest-to-rest problem of the test above, its goal read from the problem's
    parameters (h_eq(x, p) = x − p): the optimum and the multiplier are numpy's KKT solution, with
    the exact terminal steps and with the augmented Lagrangian alone (its first-order multiplier
    estimate λ + μ h, not the λ of the last round)."""
    N, T = 40, 2.0
    h = T / N
    goal = np.array([1.0, 0.0])
    ocp = OptimalControlProblem(lambda x, u, p: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                running_cost=lambda x, u: u[0] ** 2, scheme="euler", params=goal,
                                terminal_equality=lambda x, p: x - p, name="euler_rest_to_rest_p")
    Ad, Bd = np.array([[1.0, h], [0.0, 1.0]]), np.array([[0.0], [h]])
    Gamma = np.hstack([np.linalg.matrix_power(Ad, N - 1 - k) @ Bd for k in range(N)])
    kkt = np.block([[2 * h * np.eye(N), Gamma.T], [Gamma, np.zeros((2, 2))]])
    ref = np.linalg.solve(kkt, np.concatenate([np.zeros(N), goal]))
    sol = DDPSolver(ocp, tol=1e-10, exact_terminal=exact_terminal).solve()
    assert sol.status, sol
    # the augmented Lagrangian ends with |h| ≈ 2e-8 at μ = 100: λ + μh is then within 5e-8 of the
    # multiplier, the last round's λ alone 7e-7 off
    u_tol, lam_tol = (1e-8, 1e-7) if exact_terminal else (1e-6, 2e-7)
    assert np.max(np.abs(sol.u[:, 0] - ref[:N])) <= u_tol * np.max(np.abs(ref[:N]))
    assert np.max(np.abs(sol.extra["multipliers"]["eq"] - ref[N:])) <= lam_tol * np.max(np.abs(ref[N:]))


def test_a_solve_that_runs_out_of_iterations_says_so_and_is_not_solved():
    """max_iterations = 3 on the swing-up (which needs tens): status False, the message naming
    the limit, exactly 3 iterations done: in one compiled call, and one at a time as a time budget
    (here never reached) makes it."""
    for budget in (None, 1e6):
        sol = DDPSolver(_pendulum_soft(), max_iterations=3).solve(time_budget=budget)
        assert not sol.status
        assert sol.iterations == 3 and "max_iterations = 3" in sol.message, sol.message


def test_a_concave_control_cost_beyond_the_regularisation_limit_fails_and_says_why():
    """L = x² − 3u² on ẋ = u: Q_uu = −6h + h²·V_xx is negative at every stage, and no shift up to
    reg_max = 1e-6 makes it positive (closed form: its lowest value is −6h + O(h²) = −0.3).
    The solve must stop with status False, name the regularisation limit and report no step."""
    ocp = OptimalControlProblem(lambda x, u: u, x0=np.array([1.0]), T=1.0, N=20, n_u=1, scheme="euler",
                                running_cost=lambda x, u: x[0] ** 2 - 3.0 * u[0] ** 2,
                                terminal_cost=lambda x: x[0] ** 2, name="concave_control_cost")
    sol = ddp(ocp, reg_max=1e-6, max_iterations=50)
    assert not sol.status
    assert "regularisation reached its maximum" in sol.message, sol.message
    assert sol.iterations == 0 and sol.extra["failed_sweeps"] >= 1
    np.testing.assert_array_equal(sol.u, 0.0)   # the initial guess, untouched


def test_two_controls_on_small_stages_with_an_active_box_meet_the_bptt_kkt_conditions():
    """The two-link arm (4 states, 2 controls: the written-out small-stage loops with m > 1) with a
    soft terminal target and torques bounded tightly enough to clamp: the projected BPTT gradient
    of the returned controls vanishes (zero on the free controls, pointing out of the box on the
    clamped ones) and the costates are BPTT's (the adjoint of the rollout)."""
    from trajectories import dynamics as dyn

    f, _, _, p = dyn.MODELS["two_link_arm"]
    goal = np.array([np.pi / 2, np.pi / 4, 0.0, 0.0])
    lo, hi = np.array([-4.0, -2.0]), np.array([4.0, 2.0])
    ocp = OptimalControlProblem(f, x0=np.zeros(4), T=1.5, N=60, n_u=2, params=p,
                                running_cost=lambda x, u, p: dnp.sum(u * u), u_lower=lo, u_upper=hi,
                                terminal_cost=lambda x, p: 200.0 * dnp.sum((x - goal) ** 2), name="soft_arm_box")
    sol = ddp(ocp, tol=1e-11)
    assert sol.status, sol.message
    g = ocp.ode.gradient(ocp.x0, sol.u, ocp.q(ocp.T), T=1.0, method="bptt")  # the problem's scaled time
    assert g.J == pytest.approx(sol.cost, rel=1e-12)
    at_lo, at_hi = sol.u <= lo + 1e-10, sol.u >= hi - 1e-10
    assert at_lo[:, 0].sum() + at_hi[:, 0].sum() >= 2 and at_lo[:, 1].sum() + at_hi[:, 1].sum() >= 2
    free = ~(at_lo | at_hi)
    scale = np.max(np.abs(g.dU))
    assert np.max(np.abs(g.dU[free])) <= 1e-7 * scale
    assert np.all(g.dU[at_lo] >= -1e-7 * scale) and np.all(g.dU[at_hi] <= 1e-7 * scale)
    assert np.max(np.abs(sol.costates - g.costate)) <= 1e-7 * np.max(np.abs(g.costate))


def test_a_gap_at_the_final_node_alone_is_closed_before_convergence_is_claimed():
    """ẋ = u, L = u², no terminal cost: u = 0 is optimal and the stationarity is exactly zero from
    any start, so only the feasibility test stands between a start whose last state is off the
    rollout (a gap at node N alone) and a false "converged". The returned states must be the
    rollout of the returned controls (closed form: x stays at x0) with no gap left."""
    ocp = OptimalControlProblem(lambda x, u: u, x0=np.array([0.5]), T=1.0, N=20, n_u=1, scheme="euler",
                                running_cost=lambda x, u: u[0] ** 2, terminal_cost=lambda x: 0.0 * x[0],
                                name="terminal_gap_only")
    X0 = np.full((21, 1), 0.5)
    X0[-1] = 3.0
    sol = ddp(ocp, X0=X0)
    assert sol.status, sol.message
    np.testing.assert_array_equal(sol.u, 0.0)
    np.testing.assert_allclose(sol.x, 0.5, rtol=0, atol=1e-14)
    assert sol.extra["gaps"] <= 1e-14


@pytest.mark.parametrize("reach, u_star, nu_star", [(1.0, 1.0, 2.0), (-1.0, 0.0, 0.0)])
def test_a_terminal_inequality_meets_its_closed_form_optimum_and_multiplier(reach, u_star, nu_star):
    """ẋ = u from 0, min Σ h u² subject to x_N ≥ reach (h_in = reach − x_N ≤ 0), T = 1: active
    (reach = 1) the optimum is u ≡ 1 with multiplier ν = 2 (stationarity 2hu = νh); inactive
    (reach = −1) it is u ≡ 0 with ν = 0."""
    ocp = OptimalControlProblem(lambda x, u: u, x0=np.array([0.0]), T=1.0, N=20, n_u=1, scheme="euler",
                                running_cost=lambda x, u: u[0] ** 2, terminal_cost=lambda x: 0.0 * x[0],
                                terminal_inequality=lambda x: dnp.array([reach - x[0]]), name="terminal_reach")
    sol = ddp(ocp, tol=1e-10, constraint_tol=1e-9)
    assert sol.status, sol.message
    np.testing.assert_allclose(sol.u, u_star, atol=1e-6)
    assert sol.cost == pytest.approx(u_star ** 2, abs=1e-5)   # the AL stops within its tolerances
    assert sol.x[-1, 0] >= reach - 1e-9
    np.testing.assert_allclose(sol.extra["multipliers"]["in"], [nu_star], atol=1e-5)


def test_a_rejected_full_step_leaves_the_iterate_and_only_accepted_steps_lower_the_cost():
    """Van der Pol (box-bounded controls only, started feasible) with a one-trial line search (α = 1 only), one
    compiled iteration at a time: the full step is rejected on many early iterations. A rejected
    step must leave states and controls as they were (NO_STEP) and an accepted one must lower the
    cost, recomputed here by an independent numpy RK4 rollout; the solve still converges."""
    from trajectories.ddp_loops import CONVERGED, NO_STEP, STEPPED

    problem = systems.van_der_pol()
    s = DDPSolver(problem, line_search=1)
    s.initialise()
    s.evaluate()
    reference = Reference(problem)

    def rollout_cost(us):
        return reference.rollout(us)[1]

    codes, cost = [], rollout_cost(s.us)
    for _ in range(200):
        xs, us = s.xs.copy(), s.us.copy()
        code = s.iterate(1)
        codes.append(code)
        if code == NO_STEP:
            np.testing.assert_array_equal(s.xs, xs)
            np.testing.assert_array_equal(s.us, us)
            assert s.state[9] == 0.0  # the step length taken: none
        elif code == STEPPED:
            new = rollout_cost(s.us)
            assert new < cost, (len(codes), new, cost)
            assert s.state[4] == pytest.approx(new, rel=1e-9)
            cost = new
        else:
            break
    assert codes[-1] == CONVERGED, codes
    assert s.state[10] == codes.count(STEPPED)  # the iteration count is the accepted steps
    assert codes.count(NO_STEP) >= 3 and codes.count(STEPPED) >= 3, codes


def _euler_lq_with_gaps(seed=1, N=20, T=2.0):
    """ẋ = Ax + Bu (Euler), L = x₁² + ½x₂² + u², Φ = 3x₁² + x₂² + x₁x₂, started off the dynamics at
    every node (random states and controls): its data for a numpy Riccati recursion and costs."""
    A, B = np.array([[0.0, 1.0], [-0.3, 0.0]]), np.array([[0.0], [1.0]])
    Lxx, Luu, Pxx = np.diag([2.0, 1.0]), np.array([[2.0]]), np.array([[6.0, 1.0], [1.0, 2.0]])
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0] - 0.3 * x[0]]), x0=[1.0, 0.0], T=T, N=N,
                                n_u=1, scheme="euler",
                                running_cost=lambda x, u: x[0] ** 2 + 0.5 * x[1] ** 2 + u[0] ** 2,
                                terminal_cost=lambda x: 3 * x[0] ** 2 + x[1] ** 2 + x[0] * x[1], name="lq_with_gaps")
    rng = np.random.default_rng(seed)
    h = T / N
    Ad, Bd = np.eye(2) + h * A, h * B

    def cost(X, U):
        return sum(h * (0.5 * x @ Lxx @ x + 0.5 * u @ Luu @ u) for x, u in zip(X[:-1], U)) + 0.5 * X[-1] @ Pxx @ X[-1]

    def gaps(X, U):
        return np.vstack([ocp.x0 - X[0], [Ad @ x + Bd @ u - y for x, u, y in zip(X[:-1], U, X[1:])]])

    P = [Pxx]
    for _ in range(N):  # V_xx of the backward sweep: the Riccati matrices (the Hessian of V)
        S = P[0]
        Quu, Qux, Qxx = h * Luu + Bd.T @ S @ Bd, Bd.T @ S @ Ad, h * Lxx + Ad.T @ S @ Ad
        P.insert(0, Qxx - Qux.T @ np.linalg.solve(Quu, Qux))
    return ocp, rng.standard_normal((N + 1, 2)), rng.standard_normal((N, 1)), cost, gaps, np.array(P)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.25])
def test_the_expected_decrease_with_gaps_follows_the_fddp_model_of_the_true_decrease(alpha):
    """FDDP's expected decrease (Mastalli et al. 2020, eq. 15 as crocoddyl evaluates it:
    α(d₀ + ½αd₁), d₀ = dg + dv, d₁ = dq − 2dv, dv = Σ f_kᵀV_xx,k δx_k on the trial) on a linear-
    quadratic problem started with a gap at every node, one step of fixed length α. On an LQ problem
    δx is α times one direction, the true decrease J(z) − J(z + δz) is quadratic in α, and the model
    equals it less α(1 − α)² w, w = Σ f_kᵀ P_k δx_k / α: exact at α = 1. The true decrease comes from
    numpy costs, P from a numpy Riccati recursion, the gaps from numpy; the new gaps are (1 − α) f."""
    ocp, X0, U0, cost, gaps, P = _euler_lq_with_gaps()
    s = DDPSolver(ocp, variant="gauss-newton")
    s.initialise(U0=U0, X0=X0)
    s.evaluate()
    s.alphas = np.array([alpha])
    f = gaps(X0, U0)
    assert np.min(np.abs(f[[0, -1]])) > 1e-3  # gaps at the first and the final node too
    from trajectories.ddp_loops import STEPPED
    assert s.iterate(1) == STEPPED and s.state[9] == alpha
    true = cost(X0, U0) - cost(s.xs, s.us)
    w = np.einsum("ki,kij,kj->", f, P, s.xs - X0) / alpha
    assert s.state[18] == pytest.approx(true, rel=1e-12, abs=1e-12)
    assert s.state[17] == pytest.approx(true - alpha * (1 - alpha) ** 2 * w, rel=1e-10)
    np.testing.assert_allclose(gaps(s.xs, s.us), (1 - alpha) * f, atol=1e-12)
    assert abs(w) > 0.1 * abs(true)  # the gap terms weigh in: a wrong one shows


def test_a_half_step_of_the_terminal_newton_phase_moves_primal_and_multipliers_halfway():
    """Euler double integrator, min Σ h u_k² s.t. x_N = (1, 0), from u = 0 with the terminal
    multipliers' Newton step on and the line search fixed at α = ½. On this equality-constrained QP
    the full step lands on the KKT point (U*, ν*) from numpy, so half a step gives U*/2 and ν*/2,
    and the merit the solver keeps is the augmented Lagrangian J + νᵀh + ½μ|h|² of that iterate,
    recomputed here in numpy. The iteration count is the number of accepted steps."""
    ocp, ref = euler_rest_to_rest()
    N, h, goal = ocp.N, ocp.T / ocp.N, np.array([1.0, 0.0])
    s = DDPSolver(ocp, tol=1e-10)
    s.initialise(U0=np.zeros((N, 1)))
    s.reset_multipliers()
    s._newton = True   # the phase solve() enters once an augmented-Lagrangian round is close
    s.evaluate()
    s.alphas = np.array([0.5])
    from trajectories.ddp_loops import STEPPED
    assert s.iterate(1) == STEPPED and s.state[9] == 0.5 and s.state[10] == 1
    np.testing.assert_allclose(s.us[:, 0], 0.5 * ref[:N], rtol=1e-9, atol=1e-12)
    nu = s.r[ocp.n_p + 1:ocp.n_p + 3]
    np.testing.assert_allclose(nu, 0.5 * ref[N:], rtol=1e-8)
    x = np.zeros(2)
    for u in s.us[:, 0]:
        x = x + h * np.array([x[1], u])
    hv = x - goal
    merit = h * np.sum(s.us ** 2) + nu @ hv + 0.5 * s.mu * hv @ hv
    assert s.state[4] == pytest.approx(merit, rel=1e-10)


def test_parameters_equality_inequality_and_path_constraint_together_meet_their_closed_form_kkt_point():
    """ẋ = u in three dimensions (Euler, T = 1), min Σ h |u_k|², the limits read from the problem's
    parameters p = (a, b, c): x₃(T) = a, x₁(T) ≥ b and u₂ ≥ c at every node. Each constraint is
    active and acts on its own control, so the optimum is u ≡ (b, c, a) with the multipliers of
    stationarity 2h u + (terms) = 0: ν_eq = −2a, ν_in = 2b and, per node, λ_k = 2hc. Every kind of
    multiplier sits after the parameters (and the equality's) in the solver's vectors, so an offset
    that forgets one of them shows."""
    a, b, c = 1.0, 0.5, 0.3
    N, T = 20, 1.0
    h = T / N
    ocp = OptimalControlProblem(lambda x, u, p: u, x0=np.zeros(3), T=T, N=N, n_u=3, scheme="euler",
                                running_cost=lambda x, u: dnp.sum(u * u), params=[a, b, c],
                                terminal_cost=lambda x: 0.0 * x[0],
                                terminal_equality=lambda x, p: dnp.array([x[2] - p[0]]),
                                terminal_inequality=lambda x, p: dnp.array([p[1] - x[0]]),
                                path_constraints=lambda x, u, p: dnp.array([p[2] - u[1]]), name="three_kinds")
    for exact_terminal in (True, False):
        sol = ddp(ocp, tol=1e-10, constraint_tol=1e-9, exact_terminal=exact_terminal)
        assert sol.status, sol.message
        np.testing.assert_allclose(sol.u, np.tile([b, c, a], (N, 1)), atol=1e-6)
        mult = sol.extra["multipliers"]
        np.testing.assert_allclose(mult["eq"], [-2 * a], atol=1e-5)
        np.testing.assert_allclose(mult["in"], [2 * b], atol=1e-5)
        np.testing.assert_allclose(mult["path"][:, 0], 2 * h * c, atol=1e-6)
        assert sol.cost == pytest.approx(T * (a * a + b * b + c * c), abs=1e-5)
