"""The structure key of a sweep's problems (trajectories.sweep.structure_key): problems that share it
share compiled kernels, so it must change with every value the problem's functions capture, and
stay put when only the kernels' arguments (T, N, x0, bounds) change. The reference is cloudpickle,
which pickles a function with everything it captures: two problems' functions pickle to the same
bytes with cloudpickle exactly when they are the same functions of the same captured values."""

import pickle

import cloudpickle
import numpy as np
import pytest

import diffsim.numpy as dnp
from trajectories import OptimalControlProblem
from trajectories.sweep import _fingerprint, structure_key
from trajectories.systems import cart_pole_swingup, pendulum_swingup, two_link_arm_reach

_GAIN = 1.0
# a module-level lambda is not importable by name: it is pickled with the globals it reads (_GAIN)
_gained_cost = lambda x, u: _GAIN * dnp.sum(x * x) + u[0] ** 2  # noqa: E731


def _problem(running_cost, T=1.0, N=20, x0=(1.0, 0.0), terminal_cost=lambda x: dnp.sum(x * x)):
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=list(x0), T=T, N=N, n_u=1,
                                 running_cost=running_cost, terminal_cost=terminal_cost, name="double_integrator")


def _closure(w, **arguments):  # w in a closure cell
    return _problem(lambda x, u: w * dnp.sum(x * x) + u[0] ** 2, **arguments)


def _array_closure(w):  # an array in a closure cell: its values, not its shape, differ
    weights = np.array([w, 1.0])
    return _problem(lambda x, u: dnp.sum(weights * x * x) + u[0] ** 2)


def _default(w):  # w as a default argument
    return _problem(lambda x, u, w=w: w * dnp.sum(x * x) + u[0] ** 2)


def _nested(w):  # w captured by a helper that the cost captures
    def weight(x):
        return w * x

    return _problem(lambda x, u: dnp.sum(weight(x) * x) + u[0] ** 2)


def _terminal(w):  # the terminal cost's closure, not the running cost's
    return _problem(lambda x, u: u[0] ** 2, terminal_cost=lambda x: w * dnp.sum(x * x))


def _functions(problem):
    return (problem.f, problem.L, problem.Phi, problem.g, problem.h_eq, problem.h_in)


def _same_by_cloudpickle(a, b):
    return cloudpickle.dumps(_functions(a)) == cloudpickle.dumps(_functions(b))


@pytest.mark.parametrize("build", [_closure, _array_closure, _default, _nested, _terminal])
def test_the_key_changes_with_a_captured_value_and_only_then(build):
    first, again, other = build(1.0), build(1.0), build(2.0)
    assert _same_by_cloudpickle(first, again) and not _same_by_cloudpickle(first, other)  # the reference
    assert structure_key(first) == structure_key(again)
    assert structure_key(first) != structure_key(other)


def test_the_key_sees_a_global_that_a_lambda_reads(monkeypatch):
    first = _problem(_gained_cost)
    key, blob = structure_key(first), cloudpickle.dumps(_functions(first))  # both read _GAIN now
    monkeypatch.setitem(globals(), "_GAIN", 3.0)
    other = _problem(_gained_cost)
    assert cloudpickle.dumps(_functions(other)) != blob
    assert structure_key(other) != key


def test_the_kernels_arguments_are_not_in_the_key():
    a = _closure(1.0)
    b = _closure(1.0, T=3.0, N=40, x0=(0.5, 0.5))
    assert _same_by_cloudpickle(a, b) and structure_key(a) == structure_key(b)
    assert structure_key(pendulum_swingup(T=3.0)) == structure_key(pendulum_swingup(T=5.0, N=20, u_max=2.0))
    assert structure_key(cart_pole_swingup(distance=1.0)) != structure_key(cart_pole_swingup(distance=2.0))
    arm = two_link_arm_reach(target=(1.0, 2.0))
    assert structure_key(arm) == structure_key(two_link_arm_reach(target=(1.0, 2.0), tau_max=3.0))
    assert structure_key(arm) != structure_key(two_link_arm_reach(target=(1.0, 2.5)))
    assert structure_key(a) != structure_key(pendulum_swingup())  # other functions, other sizes


def test_a_value_the_plain_pickler_cannot_take_goes_to_cloudpickle():
    class Weight:  # a class defined in a function: only cloudpickle pickles its instances
        def __init__(self, w):
            self.w = w

    def build(w):
        weight = Weight(w)
        return _problem(lambda x, u: weight.w * dnp.sum(x * x) + u[0] ** 2)

    with pytest.raises((AttributeError, pickle.PicklingError), match="local"):
        _fingerprint(_functions(build(1.0)))
    assert structure_key(build(1.0)) == structure_key(build(1.0))
    assert structure_key(build(1.0)) != structure_key(build(2.0))
