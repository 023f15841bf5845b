"""Pontryagin's boundary-value problem with a free final time, and the singular case."""

import numpy as np

from trajectories import solve
from trajectories.systems import brachistochrone, brachistochrone_time, goddard_rocket


def test_free_final_time_meets_the_cycloid_through_the_transversality_condition():
    sol = solve(brachistochrone(N=60), method="pontryagin")
    assert sol.status, sol.message
    # the continuous optimum (no control discretisation): the cycloid's time to 1e-6
    assert abs(sol.T - brachistochrone_time()) < 1e-6 * brachistochrone_time()
    np.testing.assert_allclose(sol.x[-1, :2], [10.0, 5.0], atol=1e-8)


def test_a_hamiltonian_linear_in_the_control_is_refused_with_the_remedy():
    sol = solve(goddard_rocket(N=40), method="pontryagin")
    assert not sol.status and "linear in those controls" in sol.message and "method='multiple'" in sol.message
