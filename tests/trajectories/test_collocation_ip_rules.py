"""Rules of the interior-point solver on collocation's stage form, checked against the
collocation NLP as posed (the variables, constraints and derivatives IPOPT is given,
``Collocation.ipopt_nlp``), not against the solver's own stage-form quantities.

Collocation's stage rows r_k = −E_k⁻¹c_k are its defects c_k under a row operation that changes
with the point. Two rules follow IPOPT on the NLP as posed:

- the filter's infeasibility θ is the ℓ1 norm of the NLP's constraints c(z), not of r;
- a step moves the defects' multipliers as IPOPT does, μ_{k+1} = μ_k + α (μ⁺ − μ_k), with μ⁺
  the multipliers of the primal-dual Newton system of the NLP; here that system is assembled
  densely in numpy from the NLP's gradient, Jacobian and Lagrangian Hessian and solved apart.
"""

import numpy as np
import pytest

from trajectories import dynamics as dyn
from trajectories.collocation import Collocation
from trajectories.interior_point import Options, _Solver, interior_point
from trajectories.problem import OptimalControlProblem


def cart_pole_unbounded(N=6):
    """Cart-pole swing-up without force bounds (no bound multipliers in the Newton system)."""
    return OptimalControlProblem(dyn.cart_pole, x0=[0.0, 0.0, 0.0, 0.0], T=2.0, N=N, n_u=1,
                                 params=[1.0, 0.3, 0.5, 9.81], running_cost=lambda x, u, p: u[0] ** 2,
                                 terminal_equality=lambda x, p: x - np.array([1.0, np.pi, 0.0, 0.0]),
                                 name="cart_pole_unbounded")


def dense(nlp, values, rows, cols, shape):
    M = np.zeros(shape)
    np.add.at(M, (rows, cols), values)
    return M


@pytest.mark.parametrize("scheme", ["trapezoidal", "hermite-simpson"])
def test_the_filter_measures_the_nlp_constraints_not_the_stage_rows(scheme):
    """θ at a point off the constraints equals Σ|c(z)| of the NLP; the stage rows' ℓ1 norm
    differs from it there (so the check can tell them apart)."""
    tr = Collocation(cart_pole_unbounded(), scheme)
    nlp = tr.ipopt_nlp()
    rng = np.random.default_rng(3)
    X, W = tr.initial_guess()
    X = X + 0.3 * rng.standard_normal(X.shape)
    X[0, :tr.n] = tr.problem.x0
    W = W + 0.5 * rng.standard_normal(W.shape)
    W[:, :tr.m_node] = X[1:, tr.n:tr.n + tr.m_node]          # the copies agree, as in the NLP
    if tr.hs:
        W[:, tr.m_node:] = X[1:, 2 * tr.n + tr.m_node:]
        X[0, tr.n + tr.m_node:] = 0.0
    X, W = np.ascontiguousarray(X), np.ascontiguousarray(W)
    solver = _Solver(tr, Options(), 0.0)
    vals = solver._values(X, W)
    _, theta = solver._merit_parts(X, W, vals, np.zeros(0), 0.1)
    c = nlp.constraints(nlp.pack(X, W))
    assert theta == pytest.approx(np.abs(c).sum(), rel=1e-12)
    stage_rows = np.abs(vals.defects).sum() + np.abs(vals.equality).sum()
    assert abs(stage_rows - np.abs(c).sum()) > 1e-3 * np.abs(c).sum()


@pytest.mark.parametrize("scheme", ["trapezoidal", "hermite-simpson"])
def test_a_step_moves_the_defect_multipliers_toward_the_newton_multipliers_of_the_nlp(scheme):
    """From the solver's start z_0 with its multipliers y_0 (defects μ_0, terminal ν_0): the
    Newton system [[∇²L, Jᵀ], [J, 0]] (dz, y⁺) = −(∇f, c) of the NLP, solved densely, gives the
    step; the solver's first iterate must be z_0 + α dz with y_1 = y_0 + α (y⁺ − y_0)."""
    tr = Collocation(cart_pole_unbounded(), scheme)
    nlp = tr.ipopt_nlp()
    start = interior_point(tr, Options(max_iter=0)).extra["iterate"]
    first = interior_point(tr, Options(max_iter=1))
    one = first.extra["iterate"]
    record = first.extra["history"][0]
    assert record["reg"] == 0.0   # no inertia correction: the system below is the solver's
    free = nlp.lb < nlp.ub
    z0 = nlp.pack(start.X, start.U)
    y0 = np.concatenate([tr.defect_multipliers(start.X, start.U, start.lam).ravel(), start.nu])
    n, m = z0.size, nlp.n_con
    J = dense(nlp, nlp.jacobian(z0), *nlp.jacobianstructure(), (m, n))
    Hl = dense(nlp, nlp.hessian(z0, y0, 1.0), *nlp.hessianstructure(), (n, n))
    H = Hl + Hl.T - np.diag(np.diag(Hl))
    g, c = nlp.gradient(z0), nlp.constraints(z0)
    Hf, Jf = H[np.ix_(free, free)], J[:, free]
    K = np.block([[Hf, Jf.T], [Jf, np.zeros((m, m))]])
    sol = np.linalg.solve(K, -np.concatenate([g[free], c]))
    dz, y_plus = sol[:free.sum()], sol[free.sum():]
    move = nlp.pack(one.X, one.U)[free] - z0[free]
    alpha = record["alpha_pr"]
    np.testing.assert_allclose(move, alpha * dz, rtol=1e-7, atol=1e-9 * np.abs(dz).max())
    y1 = np.concatenate([tr.defect_multipliers(one.X, one.U, one.lam).ravel(), one.nu])
    np.testing.assert_allclose(y1, y0 + alpha * (y_plus - y0), rtol=1e-7, atol=1e-9 * np.abs(y_plus).max())
