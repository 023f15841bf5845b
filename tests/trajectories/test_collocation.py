"""Direct collocation (trapezoidal, Hermite-Simpson) with the interior-point solver and IPOPT.

References, each independent of the code under test: the continuous Riccati solution (cost,
costates λ = 2 P(t) x), the cycloid's descent time, scipy's solve_ivp integrating the returned
control interpolant, and the KKT conditions of the collocation NLP rebuilt here in plain numpy
(finite-difference gradient of the Lagrangian with the returned multipliers).
"""

import numpy as np
import pytest

import diffsim.numpy as dnp
from trajectories import SYSTEMS, OptimalControlProblem, ProblemError, solve
from trajectories.ipopt_backend import available
from trajectories.systems import brachistochrone_time, riccati_lqr

SCHEMES = ("trapezoidal", "hermite-simpson")
SOLVERS = ("ip", "ipopt") if available() else ("ip",)
ORDER = {"trapezoidal": 2, "hermite-simpson": 4}


def _solve(problem, scheme, solver, **kw):
    sol = solve(problem, method="collocation", scheme=scheme, solver=solver, **kw)
    assert sol.status, sol.message
    return sol


# ------------------------------------------------------------ the NLP in plain numpy


def _nlp_parts(problem, scheme, x, u, xm, um, T):
    """Cost, defects, node path values, h_eq, h_in of the collocation NLP (module docstring of
    trajectories.collocation), written from the problem's own functions."""
    N, p = problem.N, problem.params
    h = 1.0 / N
    s = np.arange(N + 1) * h

    def F(xx, uu, ss):
        return T * np.asarray(problem.f(xx, uu, p, T * ss), dtype=float)

    def ell(xx, uu, ss):
        return T * float(problem.L(xx, uu, p, T * ss)) if problem.L is not None else 0.0

    Fn = np.array([F(x[j], u[j], s[j]) for j in range(N + 1)])
    ln = np.array([ell(x[j], u[j], s[j]) for j in range(N + 1)])
    if scheme == "trapezoidal":
        cost = float(np.sum(h / 2 * (ln[:-1] + ln[1:])))
        c = x[:-1] + h / 2 * (Fn[:-1] + Fn[1:]) - x[1:]
    else:
        sm = s[:-1] + h / 2
        Fm = np.array([F(xm[k], um[k], sm[k]) for k in range(N)])
        lm = np.array([ell(xm[k], um[k], sm[k]) for k in range(N)])
        cost = float(np.sum(h / 6 * (ln[:-1] + 4 * lm + ln[1:])))
        c = np.hstack([x[:-1] + h / 6 * (Fn[:-1] + 4 * Fm + Fn[1:]) - x[1:],
                       (x[:-1] + x[1:]) / 2 + h / 8 * (Fn[:-1] - Fn[1:]) - xm])
    if problem.Phi is not None:
        cost += float(problem.Phi(x[-1], p))
    g = (np.array([np.atleast_1d(problem.g(x[j], u[j], p, T * s[j])) for j in range(N + 1)])
         if problem.g is not None else np.zeros((N + 1, 0)))
    heq = np.atleast_1d(problem.h_eq(x[-1], p)) if problem.h_eq is not None else np.zeros(0)
    hin = np.atleast_1d(problem.h_in(x[-1], p)) if problem.h_in is not None else np.zeros(0)
    return cost, c, g, heq, hin


def _check_kkt(problem, sol, scheme, tol=1e-6):
    """Feasibility, complementarity and stationarity of the collocation NLP at ``sol``, the
    gradient of the Lagrangian by central differences over every decision."""
    N, n, m = problem.N, problem.n_x, problem.n_u
    hs = scheme == "hermite-simpson"
    mult = sol.multipliers
    x, u, T = sol.x.copy(), sol.u.copy(), sol.T
    xm = sol.extra["x_mid"].copy() if hs else np.zeros((N, n))
    um = sol.extra["u_mid"].copy() if hs else np.zeros((N, m))
    cost, c, g, heq, hin = _nlp_parts(problem, scheme, x, u, xm, um, T)
    assert cost == pytest.approx(sol.cost, rel=1e-10)
    assert np.max(np.abs(c)) < 1e-8 and (not heq.size or np.max(np.abs(heq)) < 1e-8)
    mu = mult["collocation"]
    y = np.vstack([mult["path"], mult["path_final"][None, :]]) if problem.n_g else np.zeros((N + 1, 0))
    if problem.n_g:
        assert np.all(g <= 1e-8) and np.all(y >= 0) and np.max(np.abs(y * g)) < 1e-6
    lo, hi = problem.u_lower, problem.u_upper
    zl, zu = mult["u_lower"], mult["u_upper"]
    zml, zmu = (mult["u_mid_lower"], mult["u_mid_upper"]) if hs else (np.zeros((N, m)),) * 2
    fin = lambda b: np.where(np.isfinite(b), b, 0.0)
    if problem.free_time:
        assert problem.T_bounds[0] + 1e-3 < T < problem.T_bounds[1] - 1e-3   # no T multiplier needed

    def lagrangian(xx, uu, xxm, uum, TT):
        J, cc, gg, he, hi_ = _nlp_parts(problem, scheme, xx, uu, xxm, uum, TT)
        value = J + np.sum(mu * cc) + np.sum(y * gg) + mult["terminal_equality"] @ he
        value += mult["terminal_inequality"] @ hi_
        value -= np.sum(zl * (uu - fin(lo))) - np.sum(zu * (uu - fin(hi)))
        value -= np.sum(zml * (uum - fin(lo))) - np.sum(zmu * (uum - fin(hi)))
        return value

    parts = [x, u, xm, um]
    slots = [(0, (j, i)) for j in range(1, N + 1) for i in range(n)] + [(1, (j, i)) for j in range(N + 1)
                                                                       for i in range(m)]
    if hs:
        slots += [(2, (k, i)) for k in range(N) for i in range(n)] + [(3, (k, i)) for k in range(N)
                                                                      for i in range(m)]
    eps = 1e-6
    grad = []
    for which, idx in slots:
        vals = []
        for sign in (1, -1):
            trial = [a.copy() for a in parts]
            trial[which][idx] += sign * eps
            vals.append(lagrangian(*trial, T))
        grad.append((vals[0] - vals[1]) / (2 * eps))
    if problem.free_time:
        grad.append((lagrangian(*parts, T + eps) - lagrangian(*parts, T - eps)) / (2 * eps))
    scale = max(1.0, np.max(np.abs(mu)))
    assert np.max(np.abs(grad)) < tol * scale, np.max(np.abs(grad))


# ------------------------------------------------------------ LQR: optimum, orders, costates


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_lqr_converges_to_the_riccati_optimum_at_the_scheme_order(scheme, solver):
    J, _, P, _, _ = riccati_lqr()
    grids = (20, 40, 80) if scheme == "trapezoidal" else (10, 20, 40)
    errors, lam_errors = [], []
    for N in grids:
        problem = SYSTEMS["double_integrator_lqr"](N=N)
        sol = _solve(problem, scheme, solver)
        errors.append(abs(sol.cost - J) / J)
        lam = np.array([2 * P(t).reshape(2, 2) @ x for t, x in zip(sol.t, sol.x)])   # λ = ∂(xᵀPx)/∂x
        lam_errors.append(np.max(np.abs(sol.costates - lam)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    lam_orders = np.log2(np.array(lam_errors[:-1]) / np.array(lam_errors[1:]))
    p = ORDER[scheme]
    assert p - 0.3 < orders[-1] < p + 0.3, orders
    assert p - 0.3 < lam_orders[-1] < p + 0.5, lam_orders
    assert errors[-1] < (3e-3 if p == 2 else 1e-6)
    _check_kkt(problem, sol, scheme)


@pytest.mark.skipif(not available(), reason="cyipopt not installed")
@pytest.mark.parametrize("scheme", SCHEMES)
def test_ip_and_ipopt_agree_on_the_same_collocation_nlp(scheme):
    for name, N in (("cart_pole", 40), ("speed_limit", 30), ("brachistochrone", 30)):
        problem = SYSTEMS[name](N=N)
        a, b = _solve(problem, scheme, "ip"), _solve(problem, scheme, "ipopt")
        assert a.cost == pytest.approx(b.cost, rel=1e-6), name
        assert np.max(np.abs(a.x - b.x)) < 1e-4 * max(1.0, np.max(np.abs(b.x))), name
        assert a.T == pytest.approx(b.T, rel=1e-6)


# ------------------------------------------------------------ nonlinear problems


def _interpolant(sol, scheme):
    """The control the NLP describes: piecewise linear (trapezoid) or the quadratic through
    u_k, u_c, u_{k+1} on each interval (Hermite-Simpson)."""
    t, u = sol.t, sol.u[:, 0]
    um = sol.extra["u_mid"][:, 0] if scheme == "hermite-simpson" else 0.5 * (u[:-1] + u[1:])

    def control(tt):
        k = min(int(np.searchsorted(t, tt, side="right")) - 1, len(t) - 2)
        tau = (tt - t[k]) / (t[k + 1] - t[k])
        lagrange = ((1 - tau) * (1 - 2 * tau), 4 * tau * (1 - tau), tau * (2 * tau - 1))
        return np.array([u[k] * lagrange[0] + um[k] * lagrange[1] + u[k + 1] * lagrange[2]])
    return control


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_cart_pole_swing_up(scheme, solver):
    from scipy.integrate import solve_ivp

    problem = SYSTEMS["cart_pole"](N=40)
    sol = _solve(problem, scheme, solver)
    target = np.array([1.0, np.pi, 0.0, 0.0])
    assert np.max(np.abs(sol.x[-1] - target)) < 1e-8
    assert np.all(np.abs(sol.u) <= 20.0 + 1e-9)
    # the control, integrated accurately, lands near the target: the discretisation error
    control = _interpolant(sol, scheme)
    run = solve_ivp(lambda t, x: np.asarray(problem.f(x, control(t), problem.params, t)), [0, sol.T],
                    problem.x0, rtol=1e-10, atol=1e-10)
    miss = np.max(np.abs(run.y[:, -1] - target))
    assert miss < (0.3 if scheme == "trapezoidal" else 5e-3), miss   # O(h²), O(h⁴): 0.21, 3.3e-3 at N = 40
    _check_kkt(problem, sol, scheme, tol=2e-6)


def test_cart_pole_costs_agree_with_fine_multiple_shooting():
    # RK4 shooting with piecewise-constant controls: another discretisation, O(h) above the optimum
    fine = solve(SYSTEMS["cart_pole"](N=200), method="multiple")
    assert fine.status
    hs = _solve(SYSTEMS["cart_pole"](N=100), "hermite-simpson", "ip")
    trap = _solve(SYSTEMS["cart_pole"](N=100), "trapezoidal", "ip")
    assert hs.cost == pytest.approx(fine.cost, rel=1e-3)
    assert hs.cost < fine.cost
    assert trap.cost == pytest.approx(hs.cost, rel=5e-3)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_brachistochrone_reaches_the_cycloid_time(scheme, solver):
    problem = SYSTEMS["brachistochrone"](N=30)
    sol = _solve(problem, scheme, solver)
    assert sol.T == pytest.approx(brachistochrone_time(), rel=3e-4 if scheme == "trapezoidal" else 1e-6)
    assert sol.cost == pytest.approx(sol.T, rel=1e-12)
    _check_kkt(problem, sol, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_speed_limit_holds_at_every_node_with_its_multipliers(scheme, solver):
    problem = SYSTEMS["speed_limit"](N=30)
    sol = _solve(problem, scheme, solver)
    assert np.all(sol.x[:, 1] <= 0.6 + 1e-8)
    active = sol.x[:, 1] > 0.6 - 1e-6
    assert active.sum() >= 5                       # the constraint is active on an arc
    y = sol.multipliers["path_nodes"][:, 0]
    assert np.all(y[~active] < 1e-5) and y[active].min() > 0.1   # (trapezoidal rings: 0.93, 0.43, ...)
    _check_kkt(problem, sol, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("solver", SOLVERS)
def test_two_controls_with_active_bounds_and_a_mixed_path_constraint_meet_the_kkt_conditions(scheme, solver):
    """Two controls with different weights in the cost and in an active path constraint, one of
    them held at its lower bound (u_1 ≥ 0.75, above its unconstrained 0.72): the multipliers of
    every control column (bounds, path rows, defects) are checked by the KKT conditions of the
    NLP rebuilt in numpy."""
    problem = OptimalControlProblem(
        lambda x, u: dnp.array([x[1] + 0.5 * u[1], u[0]]), x0=[0.0, 0.0], T=2.0, N=16, n_u=2,
        running_cost=lambda x, u: u[0] ** 2 + 0.3 * u[1] ** 2,
        terminal_equality=lambda x: x - np.array([1.0, 0.0]),
        path_constraints=lambda x, u: dnp.array([u[0] - 0.4 * u[1] + 0.5 * x[1] - 0.05]),
        u_lower=[-2.0, 0.75], u_upper=[2.0, 2.0], name="two_controls_mixed_path_bounded")
    sol = _solve(problem, scheme, solver)
    assert np.max(sol.multipliers["path_nodes"][:, 0]) > 5e-4   # the path constraint binds at the start
    assert np.min(sol.multipliers["u_lower"][:, 1]) > 1e-3      # u_1 rests on its lower bound throughout
    assert np.max(np.abs(sol.u[:, 1] - 0.75)) < 1e-5            # (IPOPT stops 2e-6 inside)
    _check_kkt(problem, sol, scheme)


def test_warm_start_from_an_earlier_solution():
    problem = SYSTEMS["cart_pole"](N=40)
    first = _solve(problem, "hermite-simpson", "ip")
    again = _solve(problem, "hermite-simpson", "ip", warm_start=first)
    assert again.iterations <= 5 and again.cost == pytest.approx(first.cost, rel=1e-8)


def test_bad_input_is_a_problem_error():
    problem = SYSTEMS["double_integrator_lqr"](N=10)
    with pytest.raises(ProblemError, match="collocation"):
        solve(problem, method="multiple", scheme="trapezoidal")
    with pytest.raises(ProblemError, match="unknown collocation scheme"):
        solve(problem, method="collocation", scheme="rk4")
    with pytest.raises(ProblemError, match="scipy"):
        solve(problem, method="collocation", solver="scipy")
    with pytest.raises(ProblemError, match="U0"):
        solve(problem, method="collocation", U0=np.zeros((7, 1)))


def two_controls_everywhere(N: int = 3, free: bool = False) -> OptimalControlProblem:
    """Every part of the NLP reads both controls, the parameters and the time: two controls
    entering the dynamics, the running cost and two path rows with different weights, a
    time-dependent f, L and g, a terminal cost, equality and inequality (every system of
    trajectories.systems with path constraints or parameters has one control or no time
    dependence, where a wrong control column or a dropped time term cannot show)."""
    return OptimalControlProblem(
        lambda x, u, p, t: dnp.array([x[1] + p[0] * u[1] * dnp.sin(t), u[0] * x[0] - p[1] * x[1] ** 2 + 0.3 * u[1]]),
        x0=[0.1, 0.2], T=1.3, N=N, n_u=2, params=[0.7, 0.4],
        running_cost=lambda x, u, p, t: u[0] ** 2 + 0.3 * u[1] ** 2 + p[0] * x[0] * u[1] + dnp.cos(t) * x[1] ** 2,
        terminal_cost=lambda x, p: p[1] * x[0] ** 2,
        path_constraints=lambda x, u, p, t: dnp.array([u[0] - 0.4 * u[1] + 0.5 * x[1] ** 2 - 0.05 + 0.1 * t,
                                                       x[0] * u[1] * u[0] - 1.0]),
        terminal_equality=lambda x, p: dnp.array([x[0] - 1.0]),
        terminal_inequality=lambda x, p: dnp.array([x[1] ** 2 - 0.5]),
        u_lower=[-2.0, -1.0], u_upper=[2.0, 3.0], free_final_time=free, T_bounds=(0.5, 3.0),
        name="two_controls_everywhere_free" if free else "two_controls_everywhere")


DERIVATIVE_CASES = {
    **{name: SYSTEMS[name] for name in ("brachistochrone", "cart_pole", "speed_limit")},
    "two_controls_everywhere": two_controls_everywhere,
    "two_controls_everywhere_free": lambda N: two_controls_everywhere(N, free=True),
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", sorted(DERIVATIVE_CASES))
def test_nlp_derivatives_match_finite_differences_of_the_numpy_nlp(scheme, name):
    """The sparse Jacobian and Hessian IPOPT receives (the interior-point solver's stage form is
    built from the same blocks) against central differences of the NLP written in numpy, at an
    infeasible random point with random multipliers."""
    from trajectories.collocation import Collocation, CollocationNLP

    problem = DERIVATIVE_CASES[name](N=3)
    tr = Collocation(problem, scheme)
    nlp = CollocationNLP(tr)
    rng = np.random.default_rng(0)
    X, W = tr.initial_guess()
    z = nlp.pack(X, W) + 0.1 * rng.standard_normal(nlp.nz) * np.isfinite(nlp.lb - nlp.ub + 1.0)
    fixed = nlp.lb == nlp.ub
    z[fixed] = nlp.lb[fixed]
    lagrange = rng.standard_normal(nlp.n_con)
    sigma = 0.7
    N, n, m, hs = problem.N, problem.n_x, problem.n_u, scheme == "hermite-simpson"
    nsb = nlp.nsb

    def parts(zz):
        V = zz[:(N + 1) * nsb].reshape(N + 1, nsb)
        T = zz[-1] if problem.free_time else problem.T
        x, u = V[:, :n], V[:, n:n + m]
        xm, um = (V[1:, n + m:2 * n + m], V[1:, 2 * n + m:]) if hs else (np.zeros((N, n)), np.zeros((N, m)))
        cost, c, g, heq, hin = _nlp_parts(problem, scheme, x, u, xm, um, T)
        return cost, np.concatenate([c.ravel(), g.ravel(), heq, hin])

    cost, cons = parts(z)
    assert nlp.objective(z) == pytest.approx(cost, rel=1e-12)
    assert np.allclose(nlp.constraints(z), cons, rtol=1e-12, atol=1e-12)
    free = np.flatnonzero(~fixed)
    eps = 1e-6
    J_fd = np.zeros((nlp.n_con, nlp.nz))
    g_fd = np.zeros(nlp.nz)
    for i in free:
        e = np.zeros(nlp.nz)
        e[i] = eps
        (fp, cp), (fm, cm) = parts(z + e), parts(z - e)
        J_fd[:, i] = (cp - cm) / (2 * eps)
        g_fd[i] = (fp - fm) / (2 * eps)
    J = np.zeros((nlp.n_con, nlp.nz))
    r, c = nlp.jacobianstructure()
    np.add.at(J, (r, c), nlp.jacobian(z))
    assert np.allclose(J[:, free], J_fd[:, free], atol=1e-7)
    assert np.allclose(nlp.gradient(z)[free], g_fd[free], atol=1e-7)
    lag = lambda zz: sigma * parts(zz)[0] + lagrange @ parts(zz)[1]
    e2 = 1e-4
    H_fd = np.zeros((nlp.nz, nlp.nz))
    for a in free:
        for b in free[free <= a]:
            ea, eb = np.zeros(nlp.nz), np.zeros(nlp.nz)
            ea[a], eb[b] = e2, e2
            H_fd[a, b] = (lag(z + ea + eb) - lag(z + ea - eb) - lag(z - ea + eb) + lag(z - ea - eb)) / (4 * e2 * e2)
    H = np.zeros((nlp.nz, nlp.nz))
    r, c = nlp.hessianstructure()
    np.add.at(H, (r, c), nlp.hessian(z, lagrange, sigma))
    sub = np.ix_(free, free)
    assert np.allclose(np.tril(H[sub]), np.tril(H_fd[sub]), atol=2e-5 * max(1.0, np.max(np.abs(H_fd))))


@pytest.mark.parametrize("scheme", ["trapezoidal", "hermite-simpson"])
def test_the_rollout_of_the_initial_guess_reads_each_intervals_own_time(scheme):
    """The collocation equations solved forward interval by interval (the default start) on
    ẋ = u + t with u ≡ c: both schemes integrate a rhs linear in t exactly, so the nodes must
    be x0 + c t + t²/2 (an interval evaluated at the wrong time would be off by its shift × h)."""
    from trajectories.collocation import Collocation

    x0, c, T, N = 1.0, -0.3, 2.0, 8
    problem = OptimalControlProblem(lambda x, u, p, t: dnp.array([u[0] + t]), x0=[x0], T=T, N=N, n_u=1,
                                    running_cost=lambda x, u: u[0] ** 2, name="drift_rollout")
    tr = Collocation(problem, scheme)
    X, _ = tr.initial_guess(U0=np.full((N, 1), c))
    t = np.linspace(0.0, T, N + 1)
    np.testing.assert_allclose(X[:, 0], x0 + c * t + t ** 2 / 2, rtol=1e-10, atol=1e-10)
