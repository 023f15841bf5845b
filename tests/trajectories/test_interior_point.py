"""The stage-wise interior-point solver and the transcriptions, judged by references that share
no code with them: KKT conditions re-derived in numpy (ocp_reference), a dense QP solve, the
continuous Riccati optimum, the cycloid, COPS, IPOPT on the same NLP, and BPTT's costates."""

import numpy as np
import pytest
from ocp_reference import Reference

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, ProblemError, solve
from trajectories.ipopt_backend import available as ipopt_available
from trajectories.systems import (
    SYSTEMS,
    brachistochrone,
    brachistochrone_time,
    cart_pole_swingup,
    double_integrator_lqr,
    goddard_rocket,
    pendulum_swingup,
    riccati_lqr,
    speed_limited_transfer,
)

SOLVERS = ["ip"] + (["ipopt"] if ipopt_available() else [])
needs_ipopt = pytest.mark.skipif(not ipopt_available(), reason="cyipopt not installed (pip install 'diffsim[ipopt]')")

def two_controls_mixed_path(N: int = 30) -> OptimalControlProblem:
    """Rest to rest with two controls and a path constraint weighting them differently and the
    state: a wrong control column in a path Jacobian changes the optimum."""
    return OptimalControlProblem(
        lambda x, u: dnp.array([x[1] + 0.5 * u[1], u[0]]), x0=[0.0, 0.0], T=2.0, N=N, n_u=2,
        running_cost=lambda x, u: u[0] ** 2 + 0.3 * u[1] ** 2,
        terminal_equality=lambda x: x - np.array([1.0, 0.0]),
        path_constraints=lambda x, u: dnp.array([u[0] - 0.4 * u[1] + 0.5 * x[1] - 0.05]))


CASES = {
    "lqr": lambda: double_integrator_lqr(N=30),
    "two_controls_mixed_path": two_controls_mixed_path,
    "cart_pole": lambda: cart_pole_swingup(N=40),
    "speed_limit": lambda: speed_limited_transfer(N=40),
    "goddard": lambda: goddard_rocket(N=50),
    "brachistochrone": lambda: brachistochrone(N=40),
}


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("method", ["multiple", "single"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_returned_point_satisfies_the_kkt_conditions_checked_apart_from_the_solver(case, method, solver):
    problem = CASES[case]()
    sol = solve(problem, method=method, solver=solver)
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5, kkt
    assert kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt
    assert sol.kkt["scaled_error"] <= 1e-8 and sol.constraint_violation <= 1e-8


def test_lqr_is_one_newton_step_to_the_dense_qp_optimum():
    problem = double_integrator_lqr(N=25)
    ref = Reference(problem)
    # the discrete problem is a QP in U: its gradient and Hessian by central differences are exact
    J = lambda U: ref.rollout(U.reshape(-1, 1))[1]
    n, e = problem.N, 1e-3
    g = np.array([(J(np.eye(n)[i] * e) - J(-np.eye(n)[i] * e)) / (2 * e) for i in range(n)])
    H = np.array([[(J(e * (np.eye(n)[i] + np.eye(n)[j])) - J(e * (np.eye(n)[i] - np.eye(n)[j]))
                    - J(e * (np.eye(n)[j] - np.eye(n)[i])) + J(-e * (np.eye(n)[i] + np.eye(n)[j]))) / (4 * e * e)
                   for j in range(n)] for i in range(n)])
    U_star = np.linalg.solve(H, -g)
    for method in ("multiple", "single"):
        sol = solve(problem, method=method)
        assert sol.status and sol.iterations <= 2, sol
        np.testing.assert_allclose(sol.u[:, 0], U_star, atol=1e-7)
        assert abs(sol.cost - J(U_star)) < 1e-10


def test_lqr_converges_to_the_continuous_riccati_optimum_as_the_grid_refines():
    J_star = riccati_lqr()[0]
    errs = [solve(double_integrator_lqr(N=N)).cost - J_star for N in (100, 200, 400)]
    slopes = -np.diff(np.log(errs)) / np.log(2)
    assert np.all(np.abs(slopes - 2) < 0.2), errs  # piecewise-constant controls: O(h²)


def test_known_optima_goddard_and_the_cycloid():
    god = solve(goddard_rocket(N=100))
    assert god.status and abs(-god.cost - 1.01283) < 2e-5, god   # COPS 3.0: 1.01283
    bra = solve(brachistochrone(N=100))
    assert bra.status and abs(bra.T - brachistochrone_time()) < 1e-3, bra


@needs_ipopt
@pytest.mark.parametrize("case", ["cart_pole", "goddard", "brachistochrone", "speed_limit"])
def test_ip_and_ipopt_agree_on_the_same_nlp(case):
    problem = CASES[case]()
    a = solve(problem, method="multiple", tol=1e-10, constr_viol_tol=1e-10)
    b = solve(problem, method="multiple", solver="ipopt", tol=1e-10, constr_viol_tol=1e-10)
    assert a.status and b.status, (a.message, b.message)
    assert abs(a.cost - b.cost) <= 1e-8 * max(1.0, abs(b.cost))
    np.testing.assert_allclose(a.costates, b.costates, atol=1e-5 * max(1.0, np.max(np.abs(b.costates))))


def test_path_constraints_hold_at_every_node_of_an_independent_rollout():
    # the quadrotor at its default N = 60: by single shooting at N = 40 neither our solver nor IPOPT on
    # the identical NLP finds a feasible point from the default start (IPOPT: "local infeasibility")
    for problem in (speed_limited_transfer(N=40), SYSTEMS["quadrotor_obstacle"](N=60)):
        ref = Reference(problem)
        for method in ("multiple", "single"):
            sol = solve(problem, method=method)
            assert sol.status, (problem.name, method, sol.message)
            X, _ = ref.rollout(sol.u, sol.T)
            g = [ref.path(X[k], sol.u[k], k / problem.N) for k in range(problem.N)]
            g.append(ref.path(X[-1], sol.u[-1], 1.0))
            assert np.max(g) < 1e-8, (problem.name, method, np.max(g))
            assert np.max(np.abs(X - sol.x)) < 1e-7
        # the constraint is active: its multipliers are positive where it binds
        assert np.max(sol.multipliers["path"]) > 1e-3


def test_costates_of_single_shooting_are_bptt_of_the_lagrangian():
    problem = cart_pole_swingup(N=40)
    sol = solve(problem, method="single")
    nu = sol.multipliers["terminal_equality"]
    g = problem.ode.gradient(problem.x0, sol.u, problem.q(problem.T, 1.0, nu), T=1.0, method="bptt")
    np.testing.assert_allclose(sol.costates, g.costate, atol=1e-8 * np.max(np.abs(g.costate)))
    # and the control gradient of the Lagrangian vanishes at the optimum
    assert np.max(np.abs(g.dU)) < 1e-6 * np.max(np.abs(g.costate))
    ms = solve(problem, method="multiple")
    np.testing.assert_allclose(ms.costates, sol.costates, atol=1e-6 * np.max(np.abs(sol.costates)))


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_infeasible_problems_are_reported_infeasible_in_a_few_iterations(method):
    f = lambda x, u: dnp.array([x[1], u[0]])
    unreachable = OptimalControlProblem(f, x0=[0, 0], T=1.0, N=30, n_u=1, running_cost=lambda x, u: u[0] ** 2,
                                        u_lower=-1, u_upper=1, terminal_equality=lambda x: x - np.array([10.0, 0.0]))
    too_slow = OptimalControlProblem(f, x0=[0, 0], T=2.0, N=30, n_u=1, running_cost=lambda x, u: u[0] ** 2,
                                     path_constraints=lambda x, u: dnp.array([x[1] - 0.2]),
                                     terminal_equality=lambda x: x - np.array([1.0, 0.0]))
    for problem in (unreachable, too_slow):
        sol = solve(problem, method=method)
        assert not sol.status and "infeasible" in sol.message and sol.iterations <= 20, sol


def test_warm_start_time_limit_iteration_limit_callback_and_log(capsys):
    problem = cart_pole_swingup(N=40)
    sol = solve(problem)
    again = solve(problem, warm_start=sol)
    assert again.status and again.iterations <= 3 and abs(again.cost - sol.cost) < 1e-8 * sol.cost
    short = solve(problem, max_iter=3)
    assert not short.status and "iteration limit" in short.message and short.iterations == 3
    seen = []
    stopped = solve(problem, callback=lambda r: seen.append(r["iter"]) or len(seen) >= 2)
    assert not stopped.status and "callback" in stopped.message and len(seen) == 2
    solve(problem, verbose=True, max_iter=2)
    out = capsys.readouterr().out
    assert "inf_pr" in out and out.count("\n") >= 3


def test_bad_input_raises_problem_error_naming_the_argument():
    f = lambda x, u: dnp.array([x[1], u[0]])
    ok = OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10, n_u=1, running_cost=lambda x, u: u[0] ** 2)
    cases = [
        (lambda: solve(ok, method="magic"), "unknown method"),
        (lambda: solve(ok, solver="snopt"), "unknown solver"),
        (lambda: solve(ok, method="multiple", gradient="adjoint"), "gradient="),
        (lambda: solve(ok, solver="scipy", method="multiple", gradient="bptt"), "single shooting only"),
        (lambda: solve(ok, tolerance=1e-3), "unknown option"),
        (lambda: solve(ok, method="ddp", tolerance=1e-3), "unknown option.*method='ddp'"),
        (lambda: solve(ok, tol=-1.0), "tol=-1.0: it must be > 0"),  # it used to loop forever in the barrier update
        (lambda: solve(ok, tol=0.0), "tol=0.0"),
        (lambda: solve(ok, max_iter=2.5), "max_iter=2.5: give a whole number"),
        (lambda: solve(ok, mu_init=float("nan")), "mu_init=nan: give a number"),
        (lambda: solve(ok, bound_relax_factor=-1e-9), "bound_relax_factor"),
        (lambda: solve(ok, callback="print"), "callback"),
        (lambda: solve(ok, U0=np.zeros((7, 1))), "U0"),
        (lambda: solve(ok, X0=np.zeros((11, 3))), "X0"),
        (lambda: solve(ok, method="single", X0=np.zeros((11, 2))), "X0"),
        (lambda: OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10), "n_u is missing"),
        (lambda: OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10, n_u=1, u_init=np.zeros((10, 2))), "u_init"),
        (lambda: OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10, n_u=1, x_init=[1.0, 2.0, 3.0]), "x_init"),
        (lambda: solve(OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10, n_u=2)), "n_u = 2 is larger"),
        (lambda: solve(OptimalControlProblem(f, x0=[0, 0, 0], T=1.0, N=10, n_u=1)), "state size"),
        (lambda: solve(OptimalControlProblem(f, x0=[0, 0], T=1.0, N=10, n_u=1, u_lower=1, u_upper=-1)),
         "inconsistent control bounds"),
    ]
    for call, words in cases:
        with pytest.raises(ProblemError, match=words):
            call()


def test_numerical_failure_returns_a_status_not_an_exception():
    blowup = OptimalControlProblem(lambda x, u: dnp.array([x[0] * x[0] + u[0]]), x0=[1.0], T=3.0, N=30, n_u=1,
                                   running_cost=lambda x, u: u[0] ** 2)
    sol = solve(blowup, method="single")   # the initial rollout blows up at t = 1
    assert not sol.status and "not finite" in sol.message
    lifted = solve(blowup, method="multiple", max_iter=20)
    assert lifted.message and (lifted.status or lifted.iterations <= 20)


@needs_ipopt
@pytest.mark.parametrize("name, method", [("two_link_arm", "multiple"), ("cart_pole", "multiple"),
                                          ("cart_pole", "single")])
def test_iterations_at_most_ipopts_plus_20_percent_on_the_same_nlp(name, method):
    """IPOPT's own count on multiple shooting's NLP is the reference. Without the repeated
    second-order corrections the arm took 16 iterations (IPOPT: 13), backtracking the Maratos-hit
    full steps. Single shooting on the cart-pole took 70 (IPOPT 28) with open-loop trials, which
    drift from the linearised model on an unstable system; the Newton step's feedback keeps them
    on it (23)."""
    problem = SYSTEMS[name]()
    ours = solve(problem, method=method)
    ipopt = solve(problem, method="multiple", solver="ipopt")
    assert ours.status and ipopt.status, (ours.message, ipopt.message)
    assert abs(ours.cost - ipopt.cost) <= 1e-6 * max(1.0, abs(ipopt.cost))
    assert ours.iterations <= 1.2 * ipopt.iterations, (ours.iterations, ipopt.iterations)
    assert Reference(problem).kkt(ours)["stationarity"] < 1e-5


def test_the_watchdog_takes_full_steps_after_ten_shortened_ones_and_still_meets_kkt():
    """Hermite-Simpson cart-pole from rest crawls at α = 1/8 for over ten iterations; the
    watchdog (IPOPT's, on by default) then takes full steps untested, at most three, and the solve
    still reaches the optimum of the run without it. (Whether the watchdog saves iterations is a
    property of the problem, not a rule: here it goes back and costs its three.)"""
    problem = cart_pole_swingup(N=40)
    logged, plain = [], []
    sol = solve(problem, method="collocation", scheme="hermite-simpson", callback=lambda r: logged.append(r) and False)
    off = solve(problem, method="collocation", scheme="hermite-simpson", watchdog_shortened_iter_trigger=0,
                callback=lambda r: plain.append(r) and False)
    assert sol.status and off.status, (sol.message, off.message)
    flags = [bool(r.get("watchdog")) for r in logged]
    assert any(flags) and not any(r.get("watchdog") for r in plain)
    first = flags.index(True)
    assert first >= 10 and all(r["alpha_pr"] < 1 for r in logged[first - 10:first])
    runs = "".join("w" if f else "." for f in flags).split(".")
    assert max(len(w) for w in runs) <= 3  # watchdog_trial_iter_max
    assert abs(sol.cost - off.cost) <= 1e-6 * abs(off.cost)


@pytest.mark.parametrize("case", sorted(CASES))
def test_single_shooting_with_open_loop_trials_meets_the_same_kkt_conditions(case):
    """closed_loop=False (the trial controls U + αdU integrated as they are) is the other
    globalisation of single shooting: the same KKT point, checked by the numpy reference."""
    problem = CASES[case]()
    sol = solve(problem, method="single", closed_loop=False)
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt


def _time_varying_two_inputs(N=12):
    """ẋ₀ = u₀ + sin t, ẋ₁ = u₁ − t x₀: two controls, and dynamics that read the time."""
    return OptimalControlProblem(lambda x, u, p, t: dnp.array([u[0] + dnp.sin(t), u[1] - t * x[0]]),
                                 x0=[0.3, -0.2], T=2.0, N=N, n_u=2,
                                 running_cost=lambda x, u: dnp.sum(u * u) + x[0] ** 2, name="time_varying_two_inputs")


def test_the_closed_loop_trial_rollout_follows_the_feedback_law_in_numpy():
    """Transcription.closed_loop against the same law written out with ocp_reference's numpy RK4:
    u_k = clip(U_k + K_k (x_k − Xref_k), lo_k, hi_k), x_{k+1} = F(x_k, u_k, t_k), with two controls,
    dynamics that read the time and a box that differs per stage and per control (both sides
    clip); with gains that blow the states up it names the first stage whose state is not finite."""
    from trajectories.transcription import SingleShooting

    problem = _time_varying_two_inputs()
    tr, ref = SingleShooting(problem), Reference(problem)
    rng = np.random.default_rng(3)
    N, n, m = problem.N, problem.n_x, problem.n_u
    U0 = rng.uniform(-2, 2, (N, m))
    K = rng.normal(size=(N, m, n)) * 3.0
    Xref = rng.normal(size=(N + 1, n)) * 0.3
    lo, hi = U0 - rng.uniform(0.2, 1.5, (N, m)), U0 + rng.uniform(0.2, 1.5, (N, m))
    X, U = np.zeros((N + 1, n)), U0.copy()
    X[0] = problem.x0
    assert tr.closed_loop(X, U, K, Xref, lo, hi) == -1
    x, below, above = np.array(problem.x0, dtype=float), 0, 0
    for k in range(N):
        u = U0[k] + K[k] @ (x - Xref[k])
        below, above = below + int(np.sum(u < lo[k])), above + int(np.sum(u > hi[k]))
        u = np.clip(u, lo[k], hi[k])
        np.testing.assert_allclose(U[k], u, rtol=1e-12, atol=1e-12)
        x = ref.step(x, u, k * ref.h)[0]
        np.testing.assert_allclose(X[k + 1], x, rtol=1e-10, atol=1e-12)
    assert below >= 2 and above >= 2 and below + above < N * m     # both sides clip, not every control
    # gains of 1e60 and no box: the states overflow within a few stages; numpy says which first
    big, free = K * 1e60, np.full((N, m), np.inf)
    X, U = np.zeros((N + 1, n)), U0.copy()
    X[0] = problem.x0
    first, x = None, np.array(problem.x0, dtype=float)
    with np.errstate(all="ignore"):
        for k in range(N):
            x = ref.step(x, U0[k] + big[k] @ (x - Xref[k]), k * ref.h)[0]
            if not np.all(np.isfinite(x)):
                first = k
                break
    assert first is not None and first > 0
    assert tr.closed_loop(X, U, big, Xref, -free, free) == first


def test_closed_loop_is_refused_where_there_is_no_rollout_to_close():
    with pytest.raises(ProblemError, match="closed_loop applies to method='single'"):
        solve(pendulum_swingup(N=10), method="multiple", closed_loop=True)
    with pytest.raises(ProblemError, match="closed_loop applies"):
        solve(pendulum_swingup(N=10), method="single", solver="ipopt", closed_loop=False)

