"""Pontryagin's boundary-value problem with a free final time, and the singular case."""

import numpy as np
import pytest

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


def test_free_final_time_with_parameters_in_the_control_law_meets_the_closed_form():
    """min ∫ (c + u²/(2r)) dt with ẋ = u from 0 to D, T free, c and r parameters: u* = −rλ with λ
    constant, and H(T) = c − rλ²/2 = 0 gives λ = −√(2c/r), T* = D/√(2cr), cost c T* + D²/(2 r T*).
    The control law and the transversality condition both read r, the last parameter."""
    import diffsim.numpy as dnp
    from trajectories import OptimalControlProblem

    c, r, D = 0.5, 2.0, 1.0
    ocp = OptimalControlProblem(lambda x, u, p: dnp.array([u[0]]), x0=[0.0], T=1.0, N=40, n_u=1, params=[c, r],
                                running_cost=lambda x, u, p: p[0] + u[0] ** 2 / (2 * p[1]),
                                terminal_equality=lambda x, p: dnp.array([x[0] - D]), free_final_time=True,
                                T_bounds=(0.1, 10.0))
    sol = solve(ocp, method="pontryagin")
    assert sol.status, sol.message
    T = D / np.sqrt(2 * c * r)
    assert sol.T == pytest.approx(T, rel=1e-8)
    assert sol.cost == pytest.approx(c * T + D ** 2 / (2 * r * T), rel=1e-8)
    np.testing.assert_allclose(sol.u, D / T, rtol=1e-8)
    np.testing.assert_allclose(sol.costates, -np.sqrt(2 * c / r), rtol=1e-8)
