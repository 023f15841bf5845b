"""Path constraints that depend on several controls with different weights, solved by the
interior-point method and judged by the KKT conditions recomputed in plain numpy
(ocp_reference, no solver code): a constraint Jacobian whose control columns were mixed up
would leave the returned point non-stationary."""

import numpy as np
import pytest
from ocp_reference import Reference

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem, solve


def _constraints(x, u):
    return dnp.array([u[0] + 3.0 * u[1] + 0.5 * u[1] ** 2 + x[1] - 2.0, -u[0] - u[1] - 5.0])


def two_control_problem(N=12):
    """ẍ = u₀ + u₁ from rest, both controls pulled towards 2, but u₀ + 3u₁ + u₁²/2 + ẋ ≤ 2 at every
    node: it binds at every node but the last control's own (the speed grows over the last step,
    so there the final-node constraint, which reads the state after that step, binds). Its control
    Jacobian (1, 3 + u₁) changes from node to node; a second row, u₀ + u₁ ≥ −5, never binds."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0] + u[1]]), x0=[0.0, 0.0], T=1.0, N=N, n_u=2,
                                 running_cost=lambda x, u: (u[0] - 2.0) ** 2 + (u[1] - 2.0) ** 2,
                                 path_constraints=_constraints,
                                 name="two_control_path_constraint")


@pytest.mark.parametrize("method", ["multiple", "single"])
def test_a_path_constraint_weighting_two_controls_differently_meets_the_kkt_conditions(method):
    problem = two_control_problem()
    sol = solve(problem, method=method)
    assert sol.status, sol.message
    kkt = Reference(problem).kkt(sol)
    assert kkt["stationarity"] < 1e-5 and kkt["violation"] < 1e-7, kkt
    assert kkt["complementarity"] < 1e-6 and kkt["min_dual"] > -1e-9, kkt
    # active (positive multiplier, zero slack) at nodes 0 … N−2 and at the final node
    y = sol.multipliers["path"][:, 0]
    assert np.min(y[:-1]) > 1e-3 and sol.multipliers["path_final"][0] > 1e-3, (y, sol.multipliers["path_final"])
    u, x = sol.u, sol.x
    slack = u[:, 0] + 3.0 * u[:, 1] + 0.5 * u[:, 1] ** 2 - 2.0   # plus the speed at the node the row reads
    assert np.max(np.abs(slack[:-1] + x[:-2, 1])) < 1e-6 and abs(slack[-1] + x[-1, 1]) < 1e-6
    assert np.max(np.abs(sol.multipliers["path"][:, 1])) < 1e-6
