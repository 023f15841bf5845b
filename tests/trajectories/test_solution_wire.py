"""A Solution's compact wire form (its trip from a sweep's worker): what comes back is the solution
that left, bit for bit, for every solver, and it works as one (views, plot, costates, gains)."""

import pickle

import numpy as np
import pytest
from solution_equality import assert_same

from trajectories import solve
from trajectories.systems import pendulum_swingup, speed_limited_transfer


def _trip(obj):
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


CASES = {
    "ip multiple shooting, path constraint": lambda: solve(speed_limited_transfer(N=20)),
    "ip collocation": lambda: solve(pendulum_swingup(N=20), method="collocation"),
    "ip single shooting": lambda: solve(pendulum_swingup(N=20), method="single"),
    "ddp (gains)": lambda: solve(pendulum_swingup(N=20), method="ddp"),
    "scipy multiple shooting": lambda: solve(pendulum_swingup(N=15), solver="scipy"),
}


@pytest.mark.parametrize("case", CASES)
def test_every_solver_s_solution_survives_the_trip_bit_for_bit(case):
    sol = CASES[case]()
    assert_same(sol, _trip(sol))


def test_the_interior_point_iterate_comes_back_with_its_block_views():
    sol = solve(speed_limited_transfer(N=20))  # a path constraint: the slacks have a path block
    it = _trip(sol).extra["iterate"]
    assert it.s_path.size > 0 and np.shares_memory(it.s_path, it.s) and np.shares_memory(it.y_path, it.y)
    it.s_path[...] = 7.0  # writing a block writes the vector, as in the solver's own iterate
    assert np.all(it.s[:it.s_path.size] == 7.0)
    original = sol.extra["iterate"]
    np.testing.assert_array_equal(it.y_final, original.y_final)


def test_a_solution_after_the_trip_works_as_one(tmp_path):
    sol = solve(pendulum_swingup(N=20), method="ddp")
    back = _trip(sol)
    assert str(back) == str(sol) and back.wall_time == sol.seconds
    back.x[0, 0] += 1.0  # its arrays are its own and writeable
    assert back.x[0, 0] == sol.x[0, 0] + 1.0 and not np.shares_memory(back.x, back.u)
    assert back.gains.shape == (20, 1, 2) and back.costates.shape == (21, 2)
    back.plot(str(tmp_path / "solution.png"))
    assert (tmp_path / "solution.png").stat().st_size > 0


def test_a_pontryagin_solution_pickles_with_its_compiled_control_law():
    from trajectories import SYSTEMS

    sol = solve(SYSTEMS["van_der_pol"](N=30), method="pontryagin")
    assert sol.status, sol.message
    copy = _trip(sol)  # the control law is a compiled Kernel of a local closure: it travels as its source
    for name in ("x", "u", "costates", "t"):
        np.testing.assert_array_equal(getattr(copy, name), getattr(sol, name))
    law = copy.extra["control_law"]
    p = np.zeros(law.arg_shapes[2])
    u = np.array([law.forward(x, lam, p, float(t)) for x, lam, t in zip(sol.x[:-1], sol.costates[:-1], sol.t[:-1])])
    np.testing.assert_allclose(u, sol.u, rtol=0, atol=1e-12)
