"""Interior-point results that no other test read, each against a reference apart from the solver:
the slacks and multipliers the solve resumes from after a restoration phase (recomputed here from
ocp_reference's numpy rollout), the reported count of derivative evaluations (a counting wrapper
around the transcription's Jacobians), and a solve that needs a restoration phase and then
converges (its KKT conditions recomputed in numpy). Written against the mutants of
interior_point.py that survived the suite (docs/mutation-report.md)."""

import numpy as np
import pytest
from ocp_reference import Reference
from test_solver_outcomes import bounded_double_integrator

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, solve, systems
from trajectories import transcription as tr_mod
from trajectories.interior_point import Options, _Solver


def every_kind_of_inequality(N=10):
    """ẍ = u with bounds on u, a speed limit at every node, a terminal inequality of two rows and a
    terminal equality: every slack and multiplier block the restart resets is non-empty."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=2.0, N=N, n_u=1,
                                 running_cost=lambda x, u: dnp.sum(x * x) + 0.1 * u[0] ** 2,
                                 terminal_cost=lambda x: 10.0 * dnp.sum(x * x), u_lower=-3.0, u_upper=2.5,
                                 path_constraints=lambda x, u: dnp.array([x[1] - 0.2, -x[1] - 0.3]),
                                 terminal_equality=lambda x: dnp.array([x[0] + x[1] - 0.2]),
                                 terminal_inequality=lambda x: dnp.array([0.3 - x[0], x[0] + x[1] - 5.0]))


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_after_a_restoration_the_solve_resumes_on_the_central_path_of_the_rolled_out_controls(method):
    """IPOPT's restart after the restoration phase: the states are the controls' own rollout, every
    slack is max(−g, κ max(1, |g|)) of its (relaxed) constraint there, every inequality and bound multiplier
    is μ over its slack or distance to the bound (s·y = μ: the central path), and the equality
    multipliers start at 0. All of it recomputed from ocp_reference's numpy rollout."""
    problem = every_kind_of_inequality()
    cls = tr_mod.MultipleShooting if method == "multiple" else tr_mod.SingleShooting
    tr = cls(problem)
    opt = Options()
    solver = _Solver(tr, opt, 0.0)
    it, _ = solver._initial(None, None, None, None)
    it.nu[:] = 7.0  # a multiplier the restart must forget
    N, n = problem.N, problem.n_x
    U = (1.5 * np.cos(np.arange(N)) - 0.4)[:, None]  # inside [−3, 2.5] by more than the bound push
    X, _ = tr.initial_guess(U)
    X[1:] += 0.3  # a wrong state guess after x0: the restart rolls the controls out itself
    mu = 0.037
    it, vals = solver._restart(it, (U.copy(), 0.0, X), mu)

    ref = Reference(problem)
    Xr, _ = ref.rollout(U)
    np.testing.assert_allclose(it.X[:, :n], Xr, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(it.U, U)
    g = np.array([ref.path(Xr[k], U[k], k / N) for k in range(N)])
    gN = ref.path(Xr[N], U[N - 1], 1.0)
    _, eq, ineq = ref.terminal(Xr[N])
    assert (g > 0).any() and (g < 0).any() and ineq.size == 2  # violated and satisfied rows

    def push(v):
        return np.maximum(-v, opt.bound_push * np.maximum(1.0, np.abs(v)))

    eps = min(opt.bound_relax_factor, 0.1 * opt.constr_viol_tol)  # the rows are solved as g − ε ≤ 0
    for s, y, v in ((it.s_path, it.y_path, g - eps), (it.s_final, it.y_final, gN - eps),
                    (it.s_in, it.y_in, ineq - eps)):
        np.testing.assert_allclose(np.reshape(s, v.shape), push(v), rtol=1e-10)
        np.testing.assert_allclose(np.reshape(y, v.shape), mu / push(v), rtol=1e-10)
    ns = tr.ns
    np.testing.assert_allclose(it.z_lo[:N, ns:], mu / (U + 3.0), rtol=1e-12)
    np.testing.assert_allclose(it.z_hi[:N, ns:], mu / (2.5 - U), rtol=1e-12)
    assert np.all(it.z_lo[:, :ns] == 0.0) and np.all(it.z_hi[:, :ns] == 0.0)  # no state bounds
    assert np.all(it.nu == 0.0)
    assert vals.cost == pytest.approx(ref.rollout(U)[1], rel=1e-12)


def _counting(monkeypatch):
    """Count the transcriptions' Jacobian evaluations and the distinct points they were made at."""
    points = []
    for cls in (tr_mod.MultipleShooting, tr_mod.SingleShooting):
        original = cls.jacobians

        def counted(self, X, U, _original=original):
            points.append((np.array(X, copy=True), np.array(U, copy=True)))
            return _original(self, X, U)

        monkeypatch.setattr(cls, "jacobians", counted)
    return points


def _distinct(points):
    kept = []
    for X, U in points:
        if not any(np.array_equal(X, X2) and np.array_equal(U, U2) for X2, U2 in kept):
            kept.append((X, U))
    return len(kept)


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_the_reported_gradient_evaluations_are_the_points_where_derivatives_were_evaluated(method, monkeypatch):
    """``gradient_evaluations`` counts the derivatives the solve evaluated: one at each iterate it
    visited (the initial one and one per iteration) and every one of a restoration phase, counted
    here by a wrapper around the transcription's Jacobians, apart from the solver."""
    points = _counting(monkeypatch)
    for max_iter in (3, 100):
        points.clear()
        sol = solve(bounded_double_integrator(), method=method, max_iter=max_iter)
        assert sol.status == (max_iter == 100), sol.message
        assert sol.gradient_evaluations == _distinct(points) == sol.iterations + 1, (sol.gradient_evaluations,
                                                                                    _distinct(points))
        assert sol.gradient_evaluations == len(points)  # and each point is evaluated once
    if method == "single":  # a restoration phase evaluates derivatives at many more points: all counted
        points.clear()
        sol = solve(systems.quadrotor_obstacle(N=30), method="single")
        assert sol.gradient_evaluations == len(points) > sol.iterations + 1, (sol.gradient_evaluations, len(points))


def test_a_solve_that_needs_a_restoration_phase_then_converges_to_a_kkt_point(monkeypatch):
    """The quadrotor around its obstacle by single shooting (N = 30): a line search fails, the
    restoration phase minimises the violation, and the solve resumes from there and converges;
    its KKT conditions (stationarity, feasibility, complementarity, dual signs) recomputed in numpy."""
    from trajectories import systems

    restorations = []
    original = _Solver._restore

    def counted(self, it):
        restorations.append(1)
        return original(self, it)

    monkeypatch.setattr(_Solver, "_restore", counted)
    problem = systems.quadrotor_obstacle(N=30)
    sol = solve(problem, method="single", max_iter=300)
    if not restorations:
        pytest.skip("the solve took no restoration phase (the globalisation changed): pick another start")
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt


@pytest.mark.parametrize("method", ["multiple", "single"])
@pytest.mark.parametrize("u0", [0.4, 0.9, -0.4, -2.0])
def test_a_guess_on_or_beyond_a_control_bound_is_pushed_inside_and_converges_to_the_reference(method, u0):
    """Controls guessed on a bound (±0.4) or beyond it start strictly inside the bounds (IPOPT's
    bound push) and the solve reaches the optimum of L-BFGS-B on ocp_reference's rollout."""
    from test_solver_outcomes import reference_optimum

    problem = bounded_double_integrator()
    U_ref, J_ref, _ = reference_optimum()
    sol = solve(problem, method=method, U0=np.full((problem.N, 1), u0))
    assert sol.status, sol.message
    assert abs(sol.cost - J_ref) < 1e-7 * max(1.0, abs(J_ref)), (sol.cost, J_ref)
    np.testing.assert_allclose(sol.u[:, 0], U_ref, atol=1e-5)


def test_a_watchdog_ends_when_its_step_is_accepted_and_restarts_only_after_a_new_run_of_shortened_steps():
    """The cart-pole swing-up by single shooting (N = 40) with open-loop trials (closed-loop ones
    follow the linear model closely enough to need no watchdog here) starts the watchdog (Options:
    ``watchdog_shortened_iter_trigger`` = 10 shortened steps in a row, at most
    ``watchdog_trial_iter_max`` = 3 untested full steps). Read off the solve's history as a user
    reads it: each run of watchdog steps follows at least 10 line-search iterations since the last
    run ended (a success ends the watchdog; a watchdog that stayed alive after its step was accepted
    would take untested steps again within a few iterations), is at most 3 long, and the solve
    converges to a point whose KKT conditions hold in numpy."""
    from trajectories import systems

    opt = Options()
    problem = systems.cart_pole_swingup(N=40)
    sol = solve(problem, method="single", max_iter=300, closed_loop=False)
    assert sol.status, sol.message
    flags = "".join("w" if r.get("watchdog") else "." for r in sol.extra["history"])
    assert "w" in flags, flags  # the test is about a solve that takes watchdog steps
    gaps = flags.split("w")
    runs = [r for r in flags.split(".") if r]
    assert len(gaps[0]) >= opt.watchdog_shortened_iter_trigger, flags
    assert all(len(g) >= opt.watchdog_shortened_iter_trigger for g in gaps[1:-1] if g), flags
    assert all(len(r) <= opt.watchdog_trial_iter_max for r in runs), flags
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_a_terminal_cost_that_reads_the_problem_parameters_is_optimised_with_all_of_them(method):
    """Φ(x, p) = p[1]·|x − (p[0], 0)|² (the target and its weight are parameters): the solution's
    KKT conditions hold in numpy with ocp_reference's own Φ(x, p), and its cost is the reference
    rollout's; a terminal cost given fewer or other parameters than the problem's misses both."""
    problem = OptimalControlProblem(lambda x, u, p: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=2.0, N=20, n_u=1,
                                    running_cost=lambda x, u, p: 0.1 * u[0] ** 2,
                                    terminal_cost=lambda x, p: p[1] * ((x[0] - p[0]) ** 2 + x[1] ** 2),
                                    params=[1.5, 40.0], name="parametrised_terminal")
    sol = solve(problem, method=method)
    assert sol.status, sol.message
    ref = Reference(problem)
    kkt = ref.kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-8, kkt
    _, J = ref.rollout(sol.u)
    assert sol.cost == pytest.approx(J, rel=1e-10)
    assert sol.x[-1, 0] == pytest.approx(1.5, abs=0.05)  # the weight 40 pulls the cart close to p[0]


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_a_problem_without_terminal_cost_solves_from_a_start_whose_final_state_is_zero(method):
    """No terminal cost, and the initial guess (controls 0 from rest at the origin) ends exactly at
    x_N = 0: the missing Φ is a zero that stays finite there (a term such as 0/x_N would make the
    first point NaN); the solution meets ocp_reference's KKT conditions."""
    problem = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=2.0, N=20, n_u=1,
                                    running_cost=lambda x, u: (x[0] - 1.0) ** 2 + 0.1 * u[0] ** 2,
                                    name="no_terminal_cost")
    sol = solve(problem, method=method, U0=np.zeros((20, 1)))
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-8, kkt
