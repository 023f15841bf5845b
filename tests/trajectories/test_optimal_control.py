"""Optimal control against known optima: Riccati, the cycloid, COPS, and each other."""

import functools

import numpy as np
import pytest
from ocp_reference import Reference

import diffsim.numpy as dnp
from trajectories.pontryagin import is_quadratic_in_u, pontryagin
from trajectories.problem import OptimalControlProblem, ProblemError
from trajectories.shooting import multiple_shooting, single_shooting
from trajectories.systems import (
    brachistochrone,
    brachistochrone_time,
    cart_pole_swingup,
    double_integrator_lqr,
    goddard_rocket,
    pendulum_swingup,
    riccati_lqr,
    two_link_arm_reach,
    unicycle_parking,
)


@functools.lru_cache(maxsize=None)
def riccati():
    return riccati_lqr()


def test_lqr_direct_single_and_multiple_shooting_reach_the_riccati_optimum():
    J_star = riccati()[0]
    fine = single_shooting(double_integrator_lqr(N=800))
    assert fine.status, fine.message
    assert abs(fine.cost - J_star) / J_star < 1e-4
    ms = multiple_shooting(double_integrator_lqr(N=200), segments=20)
    assert ms.status and ms.constraint_violation < 1e-10, ms.message
    assert abs(ms.cost - J_star) / J_star < 1e-3


def test_lqr_direct_method_converges_with_second_order_in_the_grid():
    J_star = riccati()[0]
    errs = [single_shooting(double_integrator_lqr(N=N)).cost - J_star for N in (100, 200, 400)]
    slopes = -np.diff(np.log(errs)) / np.log(2)
    assert np.all(np.abs(slopes - 2) < 0.2), errs  # piecewise-constant controls: O(h²) in the cost


def test_lqr_pontryagin_matches_riccati_cost_and_feedback_law():
    J_star, ts, P, _, _ = riccati()
    ocp = double_integrator_lqr(N=200)
    assert is_quadratic_in_u(ocp)
    sol = pontryagin(ocp)
    assert sol.status, sol.message
    assert abs(sol.cost - J_star) / J_star < 1e-6
    # u(t) = -R⁻¹BᵀP(t)x(t) along the solution
    u_riccati = np.array([-(P(t).reshape(2, 2) @ x)[1] for t, x in zip(sol.t[:-1], sol.x[:-1])])
    np.testing.assert_allclose(sol.u[:, 0], u_riccati, atol=1e-7)
    # and the costate is λ = 2 P x for this cost convention (no ½ in front of the integral)
    lam_riccati = np.array([2 * P(t).reshape(2, 2) @ x for t, x in zip(sol.t, sol.x)])
    np.testing.assert_allclose(sol.costates, lam_riccati, atol=1e-6)


def test_brachistochrone_minimum_time():
    assert brachistochrone_time() == pytest.approx(1.8016, abs=1e-4)
    sol = single_shooting(brachistochrone(N=100))
    assert sol.status, sol.message
    assert abs(sol.T - 1.8016) < 1e-3 and sol.constraint_violation < 1e-8
    np.testing.assert_allclose(sol.x[-1, :2], [10.0, 5.0], atol=1e-8)


@pytest.mark.parametrize("gradient", ["bptt", "checkpointed", "adjoint"])
def test_cart_pole_swing_up_reaches_upright_with_each_gradient(gradient):
    # the adjoint gradient is the continuous problem's, O(dt⁴) off the discrete cost's: on a fine
    # grid it reaches the same optimum, but not to a 1e-12 tolerance on the discrete cost
    sol = single_shooting(cart_pole_swingup(N=100), gradient=gradient, tol=1e-9 if gradient == "adjoint" else 1e-12)
    assert sol.status, sol.message
    np.testing.assert_allclose(sol.x[-1], [1.0, np.pi, 0.0, 0.0], atol=1e-6)
    assert np.all(np.abs(sol.u) <= 20.0 + 1e-12)


def test_gradient_methods_reach_the_same_optimum_on_a_fine_grid():
    costs = {g: single_shooting(pendulum_swingup(N=200), gradient=g).cost for g in ("bptt", "checkpointed", "adjoint")}
    assert costs["checkpointed"] == pytest.approx(costs["bptt"], rel=1e-9)
    assert costs["adjoint"] == pytest.approx(costs["bptt"], rel=1e-5)


def test_pendulum_swing_up_direct_and_indirect_agree():
    direct = single_shooting(pendulum_swingup(N=200))
    assert direct.status and abs(direct.x[-1, 0] - np.pi) < 1e-6, direct.message
    indirect = pontryagin(pendulum_swingup(N=200), warm_start=direct)
    assert indirect.status, indirect.message
    assert abs(indirect.x[-1, 0] - np.pi) < 1e-6
    # the continuous optimum is below the piecewise-constant one, and close to it
    assert indirect.cost <= direct.cost and (direct.cost - indirect.cost) / direct.cost < 2e-3
    # the direct method's costates are those of J + νᵀh with SLSQP's multipliers: Pontryagin's
    np.testing.assert_allclose(direct.extra["multipliers"], indirect.extra["multipliers"], rtol=2e-3)
    np.testing.assert_allclose(direct.costates, indirect.costates, atol=0.03 * np.max(np.abs(indirect.costates)))


def test_other_systems_solve():
    arm = single_shooting(two_link_arm_reach())
    np.testing.assert_allclose(arm.x[-1], [np.pi / 2, np.pi / 4, 0, 0], atol=1e-6)
    car = single_shooting(unicycle_parking())
    np.testing.assert_allclose(car.x[-1], [2.0, 1.0, np.pi / 2], atol=1e-6)
    assert arm.status and car.status


@pytest.mark.slow
def test_goddard_rocket_reaches_the_cops_altitude():
    sol = single_shooting(goddard_rocket(N=100))
    assert sol.status and abs(-sol.cost - 1.01283) < 2e-5


def test_bad_problems_fail_with_a_message_not_a_traceback():
    f = lambda x, u: dnp.array([x[1], u[0]])
    bounds = OptimalControlProblem(f, x0=[1.0, 0.0], T=1.0, N=10, n_u=1, u_lower=1.0, u_upper=-1.0)
    sol = single_shooting(bounds)
    assert not sol.status and "inconsistent control bounds" in sol.message
    wrong_x0 = OptimalControlProblem(f, x0=[1.0, 0.0, 0.0], T=1.0, N=10, n_u=1)
    for solver in (single_shooting, multiple_shooting):
        sol = solver(wrong_x0)
        assert not sol.status and "state size" in sol.message
    with pytest.raises(ProblemError, match="state size"):
        pontryagin(wrong_x0)
    nan = OptimalControlProblem(lambda x, u: dnp.array([dnp.log(x[0] - 2.0), u[0]]), x0=[1.0, 0.0], T=1.0, N=10,
                                n_u=1, running_cost=lambda x, u: u[0] ** 2)
    sol = single_shooting(nan)
    assert not sol.status and "NaN" in sol.message
    blowup = OptimalControlProblem(lambda x, u: dnp.array([x[0] * x[0] + u[0]]), x0=[1.0], T=3.0, N=30, n_u=1,
                                   running_cost=lambda x, u: u[0] ** 2)
    sol = single_shooting(blowup)
    assert not sol.status and "non-finite" in sol.message
    short = single_shooting(cart_pole_swingup(N=40), maxiter=3)
    assert not short.status and "Iteration limit" in short.message


def test_solution_plot_writes_a_figure(tmp_path):
    sol = single_shooting(double_integrator_lqr(N=50))
    fig = sol.plot(str(tmp_path / "lqr.png"), names=(["position", "velocity"], ["force"]))
    assert (tmp_path / "lqr.png").stat().st_size > 10_000 and len(fig.axes) == 3


def test_single_shooting_holds_a_terminal_equality_beside_a_terminal_cost():
    """min ∫u² + 10 (v(T) − 0.5)² s.t. x(T) = 1 on the double integrator from rest: the terminal
    cost is nonzero at the optimum, so a constraint that picked up a share of it would be missed;
    the optimum is a linear-quadratic one numpy solves (RK4 is exact here: x_N = Γ U, v_N = h ΣU)."""
    N, T = 20, 1.0
    h = T / N
    ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                running_cost=lambda x, u: u[0] ** 2,
                                terminal_cost=lambda x: 10.0 * (x[1] - 0.5) ** 2,
                                terminal_equality=lambda x: dnp.array([x[0] - 1.0]), name="reach_with_cost")
    sol = single_shooting(ocp)
    assert sol.status, sol
    g, v = h * h * (N - np.arange(N) - 0.5), h * np.ones(N)
    # KKT of h|U|² + 10 (vᵀU − 0.5)² s.t. gᵀU = 1
    kkt = np.block([[2 * h * np.eye(N) + 20 * np.outer(v, v), g[:, None]], [g[None, :], np.zeros((1, 1))]])
    ref = np.linalg.solve(kkt, np.concatenate([10 * v, [1.0]]))
    assert abs(sol.x[-1, 0] - 1.0) <= 1e-7
    assert abs(sol.x[-1, 1] - 0.5) > 0.1                     # the terminal cost is active at the optimum
    assert np.max(np.abs(sol.u[:, 0] - ref[:N])) <= 1e-5 * np.max(np.abs(ref[:N]))


def test_multiple_shooting_on_dynamics_too_unstable_to_integrate_in_one_piece_says_so():
    """ẋ = 60x + u over 20 s: each one-step segment is finite, but the controls integrated from x0
    in one piece grow like e^(60·20) and overflow. The Solution then has no trajectory (x empty,
    no costates), says why, and its cost is the segments' sum, recomputed here by the numpy RK4
    of ocp_reference from the segments' start states it returns."""
    problem = OptimalControlProblem(lambda x, u: dnp.array([60.0 * x[0] + u[0]]), x0=[1.0], T=20.0, N=200, n_u=1,
                                    running_cost=lambda x, u: x[0] ** 2 + u[0] ** 2, name="unstable")
    ref = Reference(problem)
    sol = multiple_shooting(problem, segments=problem.N)
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.all(np.isfinite(ref.rollout(sol.u)[0]))    # the premise, in numpy
    assert sol.x.shape == (0, 1) and sol.costates is None
    assert "overflow" in sol.message and "segment_states" in sol.message
    Xn = sol.extra["segment_states"]
    steps = [ref.step(Xn[k], sol.u[k], k * ref.h) for k in range(problem.N)]
    np.testing.assert_allclose(Xn[0], problem.x0)
    np.testing.assert_allclose([s[0] for s in steps], Xn[1:], atol=1e-8)      # continuity, node by node
    assert sol.cost == pytest.approx(sum(s[1] for s in steps), rel=1e-10)


def test_multiple_shooting_scipy_costates_carry_the_terminal_multipliers_with_their_signs():
    """ẋ = u in 2-D from 0, minimise ∫₀¹ |u|² dt with x₁(1) = 0.5 (equality) and x₀(1) ≥ 1
    (h_in = 1 − x₀ ≤ 0, active): u ≡ (1, 0.5), cost 1.25, and the costates of J + νᵀh are
    λ ≡ (−2, −1) (H = |u|² + λᵀu gives u = −λ/2). Both of SLSQP's multipliers must enter the
    costates, each with its sign."""
    problem = OptimalControlProblem(lambda x, u: dnp.array([u[0], u[1]]), x0=[0.0, 0.0], T=1.0, N=10, n_u=2,
                                    running_cost=lambda x, u: dnp.sum(u * u),
                                    terminal_equality=lambda x: dnp.array([x[1] - 0.5]),
                                    terminal_inequality=lambda x: dnp.array([1.0 - x[0]]), name="reach_at_least")
    sol = multiple_shooting(problem)
    assert sol.status, sol.message
    np.testing.assert_allclose(sol.u, np.tile([1.0, 0.5], (problem.N, 1)), atol=1e-5)
    assert sol.cost == pytest.approx(1.25, rel=1e-6)
    np.testing.assert_allclose(np.asarray(sol.costates), np.tile([-2.0, -1.0], (problem.N + 1, 1)), atol=1e-5)
