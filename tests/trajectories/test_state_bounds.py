"""State bounds x_lo ≤ x ≤ x_hi hold at every node, against the closed-form optimum of a speed-limited
rest-to-rest transfer, and bad bounds raise ProblemError.

Minimum energy ∫u² moving a double integrator by D in time T at rest at both ends, with |v| ≤ v_max
(v_max < 1.5 D/T, so the limit is active): the optimal velocity rises along a parabola to v_max in
t₁ = 3(T − D/v_max)/2 (u linear, reaching 0 as v touches the bound), cruises, and falls symmetrically;
the cost is 2 · 4 v_max²/(3 t₁). For D = 1, T = 2, v_max = 0.6: t₁ = 0.5, cost 1.92.
"""

import numpy as np
import pytest

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, solve
from trajectories.problem import ProblemError

D, T, V_MAX = 1.0, 2.0, 0.6
CLOSED_FORM = 8 * V_MAX ** 2 / (3 * 1.5 * (T - D / V_MAX))


def transfer(start, end, N=50, **bounds):
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[start, 0.0], T=T, N=N, n_u=1,
                                 running_cost=lambda x, u: u[0] ** 2, u_lower=-5.0, u_upper=5.0,
                                 terminal_equality=lambda x: x - np.array([end, 0.0]), **bounds)


def test_closed_form_cost_is_the_one_in_the_docstring():
    assert CLOSED_FORM == pytest.approx(1.92, rel=1e-12)


@pytest.mark.parametrize("method", ["multiple", "single", "collocation"])
def test_an_upper_speed_bound_holds_at_every_node_and_gives_the_closed_form_cost(method):
    sol = solve(transfer(0.0, D, x_upper=[np.inf, V_MAX]), method=method)
    assert sol.status, sol.message
    v = sol.x[:, 1]
    assert v.max() <= V_MAX + 1e-8
    assert v.max() >= V_MAX - 1e-6  # active: without the bound the peak is 1.5 D/T = 0.75
    # Hermite-Simpson integrates the parabolic arcs exactly up to the corner points; piecewise-constant
    # controls (shooting) pay O(h)
    assert sol.cost == pytest.approx(CLOSED_FORM, rel=1e-5 if method == "collocation" else 3e-3)


@pytest.mark.parametrize("solver", ["ip", "ipopt"])
def test_without_relaxation_the_rows_hold_as_posed_at_the_same_optimum(solver):
    if solver == "ipopt":
        pytest.importorskip("cyipopt")
    sol = solve(transfer(0.0, D, x_upper=[np.inf, V_MAX]), method="collocation", solver=solver, bound_relax_factor=0.0)
    assert sol.status, sol.message
    assert sol.x[:, 1].max() <= V_MAX + 1e-8
    assert sol.cost == pytest.approx(CLOSED_FORM, rel=1e-5)


def test_a_lower_bound_acts_with_the_opposite_sign():
    sol = solve(transfer(D, 0.0, x_lower=[-np.inf, -V_MAX]), method="collocation")
    assert sol.status, sol.message
    assert sol.x[:, 1].min() >= -V_MAX - 1e-8
    assert sol.cost == pytest.approx(CLOSED_FORM, rel=1e-5)


def test_the_shooting_cost_converges_to_the_closed_form_as_the_grid_refines():
    gaps = [solve(transfer(0.0, D, N=N, x_upper=[np.inf, V_MAX])).cost - CLOSED_FORM for N in (25, 100)]
    assert 0 < gaps[1] < gaps[0] / 2


@pytest.mark.parametrize("bounds, words", [
    (dict(x_upper=[np.inf, -0.1]), "x0 violates the state bounds"),
    (dict(x_lower=[0.0, 1.0], x_upper=[1.0, 0.5]), "inconsistent state bounds"),
    (dict(x_upper=[1.0, 2.0, 3.0]), "x_upper must have 2 entries"),
])
def test_bad_state_bounds_raise_a_problem_error_naming_them(bounds, words):
    with pytest.raises(ProblemError, match=words):
        solve(transfer(0.0, D, **bounds))


@pytest.mark.parametrize("method", ["multiple", "collocation"])
def test_a_bound_the_terminal_target_makes_active_still_solves(method):
    # x_hi = D is active at the final node by the terminal equality: without the relaxation of the
    # rows the barrier has no interior there and the multipliers of the two constraints diverge
    sol = solve(transfer(0.0, D, x_upper=[D, V_MAX]), method=method)
    assert sol.status, sol.message
    assert sol.x[:, 0].max() <= D + 1e-8 and sol.x[:, 1].max() <= V_MAX + 1e-8
    assert sol.cost == pytest.approx(CLOSED_FORM, rel=1e-5 if method == "collocation" else 3e-3)
