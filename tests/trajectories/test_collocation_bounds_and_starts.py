"""Collocation details a user reads off a Solution, each against its closed form: every control
of a Hermite-Simpson transcription (node and midpoint, the first interval's included) stays
within its bounds where the bound binds; a problem without path constraints gets empty path
multipliers of the documented shapes; a free-time start T0 is the horizon of the initial guess.
The KKT conditions are rebuilt in numpy by test_collocation's _check_kkt (no solver code)."""

import numpy as np
import pytest
from test_collocation import SOLVERS, _check_kkt

import diffsim.numpy as dnp
from trajectories import SYSTEMS, OptimalControlProblem, solve
from trajectories.collocation import Collocation


def braking_double_integrator(start=1.0, N=12):
    """ẍ = u from (start, 0) with |u| ≤ 0.4: from start = 1 the lower bound binds over the first
    intervals, from start = −1 the upper one (and the speed then exceeds 0.4, so no bound of
    the controls may leak onto a state)."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[start, 0.0], T=3.0, N=N, n_u=1,
                                 running_cost=lambda x, u: dnp.sum(x * x) + 0.1 * u[0] ** 2,
                                 terminal_cost=lambda x: 10.0 * dnp.sum(x * x), u_lower=-0.4, u_upper=0.4,
                                 name="braking_double_integrator")


@pytest.mark.parametrize("start", [1.0, -1.0])
@pytest.mark.parametrize("solver", SOLVERS)
def test_every_midpoint_control_keeps_its_bounds_from_the_first_interval_on(solver, start):
    problem = braking_double_integrator(start)
    sol = solve(problem, method="collocation", scheme="hermite-simpson", solver=solver)
    assert sol.status, sol.message
    u, um = sol.u[:, 0], sol.extra["u_mid"][:, 0]
    bound = -0.4 * start   # the bound that binds first
    assert um[0] == pytest.approx(bound, abs=1e-7) and u[0] == pytest.approx(bound, abs=1e-7)
    assert np.all(um >= -0.4 - 1e-6) and np.all(um <= 0.4 + 1e-6), um   # IPOPT relaxes bounds by ~1e-8
    assert np.all(u >= -0.4 - 1e-6) and np.all(u <= 0.4 + 1e-6), u
    _check_kkt(problem, sol, "hermite-simpson")
    # no path constraints: empty path multipliers, one row per interval / per node
    N = problem.N
    assert sol.multipliers["path"].shape == (N, 0) and sol.multipliers["path_final"].shape == (0,)
    assert sol.multipliers["path_nodes"].shape == (N + 1, 0)


@pytest.mark.parametrize("scheme", ["trapezoidal", "hermite-simpson"])
def test_a_free_time_start_t0_is_the_horizon_of_the_initial_guess(scheme):
    problem = SYSTEMS["brachistochrone"](N=4)
    tr = Collocation(problem, scheme)
    X, _ = tr.initial_guess(T0=2.5)
    assert np.all(X[:, -1] == 2.5)
    X, _ = tr.initial_guess()
    assert np.all(X[:, -1] == problem.T)


@pytest.mark.parametrize("scheme", ["trapezoidal", "hermite-simpson"])
def test_a_start_of_node_controls_or_piecewise_constant_ones_is_used_as_given(scheme):
    problem = braking_double_integrator(N=6)
    tr = Collocation(problem, scheme)
    nodes = np.linspace(-0.3, 0.3, problem.N + 1)          # (N+1,) node controls, inside |u| ≤ 0.4
    for U0 in (nodes, nodes[:, None]):
        X, _ = tr.initial_guess(U0=U0)
        np.testing.assert_array_equal(tr.node_controls(X)[:, 0], nodes)
    X, _ = tr.initial_guess(U0=nodes[:-1, None])           # (N, 1): the last control held on the final node
    np.testing.assert_array_equal(tr.node_controls(X)[:, 0], np.append(nodes[:-1], nodes[-2]))
    with pytest.raises(ValueError, match="U0"):
        tr.initial_guess(U0=np.zeros((problem.N + 2, 1)))
