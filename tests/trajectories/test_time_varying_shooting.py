"""Shooting and Pontryagin's BVP on problems whose dynamics and cost read the time, against closed forms.

The problem: ẋ = u + t, x(0) = x0, minimise ∫_0^T (u² + t² u) dt subject to x(T) = 0.
Pontryagin: H = u² + t²u + λ(u + t), λ̇ = 0, u = −(t² + λ)/2, and x(T) = 0 gives
λ = ν = 2c with c = (x0 + T²/2 − T³/6)/T; the continuous cost is c²T − T⁵/20.
With piecewise-constant controls (RK4 is exact here: Simpson's rule on the quadratic cost rate) the
discrete optimum is u_k = −m_k/2 − c with m_k = t_{k+½}² + h²/12 the interval's mean of t², the same
ν, and the cost Σ_k h (c² − m_k²/4). The cost's t² (not t) matters: a uniform shift of the time by a
step would move every u_k alike, and the terminal multiplier would absorb it.
Every time-invariant test problem passes whatever time a solver hands the dynamics; this one does not.
"""

import numpy as np
import pytest

import diffsim.numpy as dnp
from trajectories import solve
from trajectories.ddp import ddp
from trajectories.pontryagin import pontryagin
from trajectories.problem import OptimalControlProblem
from trajectories.shooting import multiple_shooting, single_shooting

X0, T, N = 1.0, 2.0, 20
H = T / N
C = (X0 + T ** 2 / 2 - T ** 3 / 6) / T
MEANS = ((np.arange(N) + 0.5) * H) ** 2 + H * H / 12


def drift_problem(N: int = N) -> OptimalControlProblem:
    return OptimalControlProblem(lambda x, u, p, t: dnp.array([u[0] + t]), x0=[X0], T=T, N=N, n_u=1,
                                 running_cost=lambda x, u, p, t: u[0] ** 2 + t * t * u[0],
                                 terminal_equality=lambda x: dnp.array([x[0]]), name="time_drift")


def check_discrete_optimum(sol, atol=1e-6):
    assert sol.status, sol.message
    np.testing.assert_allclose(sol.u[:, 0], -MEANS / 2 - C, atol=atol)
    assert sol.cost == pytest.approx(np.sum(H * (C * C - MEANS ** 2 / 4)), abs=atol)
    assert abs(sol.x[-1, 0]) <= 1e-8


def test_single_shooting_reaches_the_closed_form_optimum_and_multiplier_of_a_time_varying_problem():
    sol = single_shooting(drift_problem())
    check_discrete_optimum(sol)
    # one terminal equality: its multiplier ν = 2c, and the costate is constant and equal to it
    np.testing.assert_allclose(sol.extra["multipliers"], [2 * C], rtol=1e-5)
    np.testing.assert_allclose(sol.costates[:, 0], 2 * C, rtol=1e-5)


@pytest.mark.parametrize("segments", [None, 4])
def test_multiple_shooting_reaches_the_closed_form_optimum_of_a_time_varying_problem(segments):
    sol = multiple_shooting(drift_problem(), segments=segments)
    check_discrete_optimum(sol)
    assert sol.gradient_evaluations >= sol.iterations >= 1   # SLSQP takes a gradient every iteration


def test_pontryagin_solves_a_time_varying_problem_to_its_continuous_closed_form():
    sol = pontryagin(drift_problem(N=40))
    assert sol.status, sol.message
    t = np.asarray(sol.t)
    np.testing.assert_allclose(sol.u[:, 0], -(t[:len(sol.u)] ** 2 + 2 * C) / 2, atol=1e-6)
    np.testing.assert_allclose(sol.costates[:, 0], 2 * C, atol=1e-6)
    np.testing.assert_allclose(sol.extra["multipliers"], [2 * C], rtol=1e-6)
    assert sol.cost == pytest.approx(C * C * T - T ** 5 / 20, rel=1e-6)


def test_single_shooting_stops_a_free_final_time_at_its_active_upper_bound():
    """Reach x(T) = 1 from 0 minimising ∫u² dt + 0.1 T: u = 1/T, cost 1/T + 0.1 T, minimal at
    T = √10 ≈ 3.16 without bounds; with T ≤ 2 the optimum is T = 2 on the bound."""
    def problem(T_bounds):
        return OptimalControlProblem(lambda x, u: dnp.array([u[0]]), x0=[0.0], T=1.0, N=10, n_u=1,
                                     running_cost=lambda x, u: u[0] ** 2 + 0.1, free_final_time=True,
                                     T_bounds=T_bounds, terminal_equality=lambda x: dnp.array([x[0] - 1.0]),
                                     name="reach_free_time")
    free = single_shooting(problem((0.1, np.inf)))
    assert free.status, free.message
    assert free.T == pytest.approx(np.sqrt(10.0), rel=1e-5)
    bounded = single_shooting(problem((0.1, 2.0)))
    assert bounded.status, bounded.message
    assert bounded.T == pytest.approx(2.0, abs=1e-9)
    np.testing.assert_allclose(bounded.u[:, 0], 0.5, atol=1e-6)
    assert bounded.cost == pytest.approx(0.5 + 0.2, rel=1e-7)


@pytest.mark.parametrize("method", ["multiple", "single", "ddp"])
def test_the_stage_wise_solvers_reach_the_closed_form_optimum_of_a_time_varying_problem(method):
    """The interior point (both shootings, its stage loops hand every stage its time) and DDP."""
    problem = drift_problem()
    sol = ddp(problem) if method == "ddp" else solve(problem, method=method)
    check_discrete_optimum(sol)
    if method != "ddp":
        np.testing.assert_allclose(sol.costates[:, 0], 2 * C, rtol=1e-6)


def speed_limited_transfer(running_cost, limit) -> OptimalControlProblem:
    """ẍ = u, |u| ≤ 1, v ≤ limit(t) at every node, from rest to rest at x = 1, T free."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=3.0, N=20, n_u=1,
                                 running_cost=running_cost, u_lower=-1.0, u_upper=1.0,
                                 path_constraints=lambda x, u, p, t: dnp.array([x[1] - limit(t)]),
                                 terminal_equality=lambda x: dnp.array([x[0] - 1.0, x[1]]), free_final_time=True,
                                 T_bounds=(0.5, 10.0), name="speed_limited_transfer")


@pytest.mark.parametrize("segments", [None, 5])
def test_multiple_shooting_meets_the_minimum_time_of_a_speed_limited_transfer(segments):
    """Minimum time with v ≤ 0.5: accelerate for 0.5 s, cruise 1.5 s, brake 0.5 s, T* = 2 v + (1 − v²)/v
    = 2.5. With N = 20 the switches fall on the grid (h = 0.125 at T*), and RK4 is exact on
    piecewise-constant u, so the discrete optimum is the continuous one."""
    problem = speed_limited_transfer(lambda x, u: 1.0 + 0.0 * u[0], lambda t: 0.5 + 0.0 * t)
    sol = multiple_shooting(problem, segments=segments)
    assert sol.status, sol.message
    assert sol.T == pytest.approx(2.5, abs=1e-8)
    assert np.max(sol.x[:, 1]) <= 0.5 + 1e-8 and sol.constraint_violation <= 1e-8
    np.testing.assert_allclose(sol.u[:, 0], np.r_[np.ones(4), np.zeros(12), -np.ones(4)], atol=1e-6)


@pytest.mark.parametrize("segments", [None, 5])
def test_multiple_shooting_meets_the_interior_point_on_a_minimum_time_transfer_with_a_rising_speed_limit(segments):
    """The transfer with the limit v ≤ 0.4 + 0.1 t and cost ∫ 1 + u² dt (a trade-off, not a vertex
    of the constraints): in scaled time s = t/T the limit moves with T, so its rows' Jacobian has a
    ∂g/∂T term. No closed form; the reference is the interior point's solution of the same NLP
    (its own transcription and Newton solver, tol 1e-10)."""
    problem = speed_limited_transfer(lambda x, u: 1.0 + u[0] ** 2, lambda t: 0.4 + 0.1 * t)
    ref = solve(problem, tol=1e-10)
    assert ref.status, ref.message
    sol = multiple_shooting(problem, segments=segments)
    assert sol.status, sol.message
    assert sol.T == pytest.approx(ref.T, abs=1e-6)       # SLSQP's ftol: the two differ by ~1e-7
    np.testing.assert_allclose(sol.u, ref.u, atol=1e-4)
