"""Outcomes of the interior-point solver that a user reads off a Solution, each judged by a
reference that shares no code with the solver: scipy's L-BFGS-B on the plain-numpy rollout of
ocp_reference (the optimum with active control bounds), the bound multipliers recomputed from
the reference cost's own gradient, and the honesty of the reported status and iteration count."""

import functools

import numpy as np
import pytest
from ocp_reference import Reference
from scipy.optimize import minimize

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, solve


def bounded_double_integrator(N=20):
    """ẍ = u from (1, 0) with |u| ≤ 0.4: the bound is active over the first part of the horizon."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=3.0, N=N, n_u=1,
                                 running_cost=lambda x, u: dnp.sum(x * x) + 0.1 * u[0] ** 2,
                                 terminal_cost=lambda x: 10.0 * dnp.sum(x * x), u_lower=-0.4, u_upper=0.4,
                                 name="bounded_double_integrator")


@functools.lru_cache(maxsize=None)
def reference_optimum():
    """(U*, J*, ∇J(U*)) of the discrete problem by L-BFGS-B over the reference rollout."""
    problem = bounded_double_integrator()
    ref = Reference(problem)
    N = problem.N
    J = lambda U: ref.rollout(U.reshape(N, 1))[1]

    def grad(U, e=1e-6):
        return np.array([(J(U + e * np.eye(N)[i]) - J(U - e * np.eye(N)[i])) / (2 * e) for i in range(N)])

    res = minimize(J, np.zeros(N), jac=grad, method="L-BFGS-B", bounds=[(-0.4, 0.4)] * N,
                   options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 500})
    return res.x, res.fun, grad(res.x)


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_optimum_with_active_control_bounds_equals_lbfgsb_on_an_independent_rollout(method):
    problem = bounded_double_integrator()
    U_ref, J_ref, g_ref = reference_optimum()
    lower, upper = U_ref <= -0.4 + 1e-9, U_ref >= 0.4 - 1e-9
    free = ~(lower | upper)
    assert lower.any() and free.any()  # the test is about an optimum with a bound active, and free controls
    sol = solve(problem, method=method)
    assert sol.status, sol.message
    assert abs(sol.cost - J_ref) < 1e-7 * max(1.0, abs(J_ref)), (sol.cost, J_ref)  # barrier: O(μ) above
    np.testing.assert_allclose(sol.u[:, 0], U_ref, atol=1e-5)
    # the cost the solution reports is the cost of its controls, re-integrated here
    assert abs(Reference(problem).rollout(sol.u)[1] - sol.cost) < 1e-10 * max(1.0, abs(sol.cost))
    # bound multipliers: z_lo = ∂J/∂u on the lower bound, z_hi = −∂J/∂u on the upper, both > 0 there, 0 elsewhere
    z_lo, z_hi = sol.multipliers["u_lower"][:, 0], sol.multipliers["u_upper"][:, 0]
    np.testing.assert_allclose(z_lo[lower], g_ref[lower], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(z_hi[upper], -g_ref[upper], rtol=1e-3, atol=1e-6)
    assert np.all(z_lo[lower] > 1e-4) and np.all(z_hi[upper] > 1e-4)
    assert np.max(np.abs(z_lo[~lower]), initial=0.0) < 1e-6 and np.max(np.abs(z_hi[~upper]), initial=0.0) < 1e-6
    # and the free controls are stationary: the reference gradient vanishes there
    assert np.max(np.abs(g_ref[free])) < 1e-5


def test_reported_iterations_status_and_violation_are_honest():
    problem = bounded_double_integrator()
    full = solve(problem)
    assert full.status and 1 <= full.iterations < 100 and "converged" in full.message, full.message
    ref = Reference(problem).kkt(full)
    assert ref["violation"] <= max(full.constraint_violation, 1e-9) + 1e-12
    for k in (1, 2, 4):
        short = solve(problem, max_iter=k)
        # stopped early: not optimal, says why, counts the iterations it made, and its point is not optimal
        assert not short.status and "iteration limit" in short.message and short.iterations == k
        assert short.cost > full.cost + 1e-9 or Reference(problem).kkt(short)["stationarity"] > 1e-6


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_an_active_terminal_inequality_meets_the_kkt_conditions_checked_apart_from_the_solver(method):
    # the cost pulls the end position to 0; the constraint x_N ≥ 0.3 holds it there, with a positive multiplier
    problem = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=2.0, N=20, n_u=1,
                                    running_cost=lambda x, u: dnp.sum(x * x) + 0.1 * u[0] ** 2,
                                    terminal_cost=lambda x: 10.0 * dnp.sum(x * x), u_lower=-3.0, u_upper=3.0,
                                    terminal_inequality=lambda x: dnp.array([0.3 - x[0], x[0] + x[1] - 5.0]))
    sol = solve(problem, method=method)
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt
    assert abs(sol.x[-1, 0] - 0.3) < 1e-6  # active
    y = sol.multipliers["terminal_inequality"]
    assert y[0] > 1e-3 and abs(y[1]) < 1e-6, y


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_two_path_constraints_each_keep_their_own_multiplier(method):
    # -0.3 ≤ v ≤ 0.6 as two rows: the lower speed limit binds on the way back to 0, the upper never does
    problem = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=4.0, N=30, n_u=1,
                                    running_cost=lambda x, u: dnp.sum(x * x) + 0.1 * u[0] ** 2,
                                    terminal_cost=lambda x: dnp.sum(x * x),
                                    path_constraints=lambda x, u: dnp.array([x[1] - 0.6, -x[1] - 0.3]))
    sol = solve(problem, method=method)
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt
    y = sol.multipliers["path"]
    assert np.max(y[:, 1]) > 1e-3 and np.max(np.abs(y[:, 0])) < 1e-6, y
    assert np.min(sol.x[:, 1]) < -0.3 + 1e-6


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_the_restoration_phases_violation_and_its_gradient_are_the_reference_rollouts(method):
    """The restoration phase minimises ½(|h_eq|² + |max(g, 0)|²) of the controls' own trajectory by
    L-BFGS-B with the gradient the solver computes by its adjoint recursion. Here the speed limit is
    violated at interior nodes and at the final node (whose row reads the last control through the
    last step): value and gradient against ocp_reference's numpy rollout and central differences."""
    from trajectories.interior_point import Options, _Solver
    from trajectories.systems import speed_limited_transfer
    from trajectories.transcription import MultipleShooting, SingleShooting

    problem = speed_limited_transfer(N=8)
    tr = (MultipleShooting if method == "multiple" else SingleShooting)(problem)
    solver = _Solver(tr, Options(), 0.0)
    ref = Reference(problem)
    N = problem.N

    def violation(U):
        X, _ = ref.rollout(U)
        g = [ref.path(X[k], U[k], k / N) for k in range(N)] + [ref.path(X[N], U[N - 1], 1.0)]
        _, eq, _ = ref.terminal(X[N])
        return 0.5 * (np.sum(eq ** 2) + np.sum(np.maximum(np.concatenate(g), 0.0) ** 2))

    U = (0.5 + 0.2 * np.sin(np.arange(N)))[:, None]
    X, _ = tr.initial_guess(U)
    c2, grad = solver._violation(np.ascontiguousarray(U), X)
    assert violation(U) > 0.1 and ref.path(ref.rollout(U)[0][N], U[N - 1], 1.0)[0] > 0.1  # the final row is violated
    assert c2 == pytest.approx(violation(U), rel=1e-10)
    e = 1e-6
    fd = [(violation(U + e * np.eye(N)[:, [i]]) - violation(U - e * np.eye(N)[:, [i]])) / (2 * e) for i in range(N)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)



def test_a_large_regularisation_is_not_relaxed_one_factor_of_three_per_iteration():
    """The quadrotor by single shooting from hover needs δ up to ~1e16 before its restoration
    phase. IPOPT's rule (δ ← δ/3 when the inertia allows) then spent some 30 iterations with
    δ falling by exactly 3 each time, each step shrunk by δ (76 iterations in all); the solver
    now looks further down while the inertia stays right, so no two consecutive iterations
    relax a δ above 1e-8 by that factor, and the solve still meets its KKT conditions."""
    from trajectories.systems import quadrotor_obstacle

    records = []
    problem = quadrotor_obstacle()
    sol = solve(problem, method="single", callback=lambda r: records.append(dict(r)) and False)
    assert sol.status, sol.message
    regs = [r.get("reg") or 0.0 for r in records]
    assert max(regs) > 1e6                         # the premise: a spell of large δ happens
    thirds = [k for k in range(1, len(regs)) if regs[k] > 1e-8 and regs[k - 1] > 0
              and abs(regs[k] / regs[k - 1] - 1 / 3) < 1e-9]
    assert len(thirds) <= 2, [(k, regs[k]) for k in thirds]
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt


def test_the_windowed_infeasibility_test_reports_the_least_violation_that_numpy_finds():
    """The test that ends a solve whose violation has stalled for 25 iterations (no line-search
    failure needed): on x(T) = (10, 0) for ẍ = u, |u| ≤ 1, T = 1 (unreachable), a stalled history
    gives "locally infeasible" with the least ½|h|² over the bounded controls, here found apart by
    L-BFGS-B on ocp_reference's numpy rollout; a history that still improves by 1 % within its last
    25 iterations goes on."""
    import re

    from trajectories.interior_point import Options, _Solver
    from trajectories.transcription import SingleShooting

    problem = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0, 0], T=1.0, N=30, n_u=1,
                                    running_cost=lambda x, u: u[0] ** 2, u_lower=-1, u_upper=1,
                                    terminal_equality=lambda x: x - np.array([10.0, 0.0]), name="unreachable")
    ref = Reference(problem)
    best = minimize(lambda U: 0.5 * np.sum(ref.terminal(ref.rollout(U[:, None])[0][-1])[1] ** 2),
                    np.zeros(problem.N), method="L-BFGS-B", bounds=[(-1, 1)] * problem.N,
                    options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 2000})
    solver = _Solver(SingleShooting(problem), Options(), 0.0)
    it, vals = solver._initial(None, None, None, None)
    solver._next_window_test = 0          # as run() starts it
    improving = [{"inf_pr": 10.0 * 0.98 ** k} for k in range(30)]
    assert solver._infeasible(improving, it, vals, None) == ""
    # improving for 30 iterations, then stalled for the last 25: the window is the last 25
    stalled = improving + [{"inf_pr": improving[-1]["inf_pr"]}] * 25
    message = solver._infeasible(stalled, it, vals, None)
    assert message.startswith("locally infeasible"), message
    reported = float(re.search(r"sum of squares ([0-9.e+-]+)\)", message).group(1))
    assert reported == pytest.approx(best.fun, rel=1e-2)      # printed to three digits
