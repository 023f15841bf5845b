"""The transcriptions' compiled Lagrangian Hessians, stage by stage, against central second
differences of the Lagrangian's value, built here from the compiled values alone:

L = σ·cost + Σ_k λ_{k+1}ᵀ defect_k + Σ_k y_kᵀ g_k + y_Nᵀ g_N + νᵀ h_eq + y_inᵀ h_in.

Each term depends on one stage's variables v_k = (x_k, u_k) (a defect on x_{k+1} only linearly),
so ∂²L/∂v_k² is the stage's block H[k]."""
import numpy as np
import pytest

import diffsim.numpy as dnp
from trajectories.problem import OptimalControlProblem
from trajectories.systems import brachistochrone, cart_pole_swingup, quadrotor_obstacle
from trajectories.transcription import MultipleShooting


def _lagrangian(tr, X, U, lam, y_path, y_final, nu, y_in, sigma):
    v = tr.values(X, U)
    return (sigma * v.cost + np.sum(lam[1:] * v.defects) + np.sum(y_path * v.path) + np.sum(y_final * v.path_final)
            + np.sum(nu * v.equality) + np.sum(y_in * v.inequality))


def _second_differences(tr, X, U, multipliers, k, eps=1e-4):
    """∂²L/∂v_k² by central differences of L's value (v_N: the final state only)."""
    ns = tr.ns
    nv = ns if k == tr.N else tr.nv

    def shifted(i, a, j, b):
        X2, U2 = X.copy(), U.copy()
        for idx, d in ((i, a), (j, b)):
            if idx < ns:
                X2[k, idx] += d
            else:
                U2[k, idx - ns] += d
        return _lagrangian(tr, X2, U2, *multipliers)

    H = np.empty((nv, nv))
    for i in range(nv):
        for j in range(nv):
            H[i, j] = (shifted(i, eps, j, eps) - shifted(i, eps, j, -eps) - shifted(i, -eps, j, eps)
                       + shifted(i, -eps, j, -eps)) / (4 * eps * eps)
    return H


def time_varying(N=6):
    """Dynamics, cost and path rows whose curvature depends on the time: a stage handed another
    stage's time gets another Hessian."""
    return OptimalControlProblem(lambda x, u, p, t: dnp.array([x[1], -dnp.sin(1 + t) * x[0] ** 2 + u[0]]),
                                 x0=[0.5, 0.0], T=2.0, N=N, n_u=1,
                                 running_cost=lambda x, u, p, t: (1 + t) * u[0] ** 2 + dnp.cos(t) * x[0] ** 2 * x[1],
                                 path_constraints=lambda x, u, p, t: dnp.array([t * x[0] ** 2 * u[0] - 1.0]),
                                 terminal_cost=lambda x: x[0] ** 2 * x[1], name="time_varying_curvature")


@pytest.mark.parametrize("make", [lambda: cart_pole_swingup(N=6), lambda: quadrotor_obstacle(N=6),
                                  lambda: brachistochrone(N=6), time_varying],
                         ids=["cart_pole", "quadrotor_path_rows", "free_time", "time_varying"])
def test_stage_hessians_match_second_differences_of_the_lagrangian(make):
    tr = MultipleShooting(make())
    rng = np.random.default_rng(0)
    N, ns, ng = tr.N, tr.ns, tr.ng
    X, U = tr.initial_guess()
    X = X + 0.3 * rng.normal(size=X.shape)
    X[0, :tr.n] = tr.problem.x0
    U = np.ascontiguousarray(U + 0.3 * rng.normal(size=U.shape))
    X = np.ascontiguousarray(X)
    lam = rng.normal(size=(N + 1, ns))
    y_path, y_final = rng.uniform(0.1, 1.0, (N, ng)), rng.uniform(0.1, 1.0, ng)
    nu, y_in, sigma = rng.normal(size=tr.n_eq), rng.uniform(0.1, 1.0, tr.n_in), 0.7
    H = tr.hessians(X, U, lam, y_path, y_final, nu, y_in, sigma)
    multipliers = (lam, y_path, y_final, nu, y_in, sigma)
    for k in range(N + 1):
        fd = _second_differences(tr, X, U, multipliers, k)
        n = fd.shape[0]
        scale = max(1.0, np.abs(fd).max())
        assert np.abs(H[k, :n, :n] - fd).max() < 1e-5 * scale, k
