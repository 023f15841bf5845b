"""Bad input raises an error that names the problem and the fix; nothing is silently wrong."""

import math

import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.errors import NonDifferentiableError


def test_grad_of_vector_output_names_the_alternatives():
    with pytest.raises(TypeError, match=r"scalar output, got shape \(2,\).*jacobian"):
        ds.grad(lambda x: x * 2.0)(np.ones(2))


def test_float_on_traced_value():
    with pytest.raises(NonDifferentiableError, match="float\\(\\)"):
        ds.grad(lambda x: float(x) * 2.0)(1.0)
    with pytest.raises(NonDifferentiableError, match="float\\(\\)"):
        ds.grad(lambda x: math.sin(x))(1.0)


def test_inplace_assignment_points_to_index_set():
    def f(x):
        x[0] = 1.0
        return dnp.sum(x)

    with pytest.raises(NonDifferentiableError, match="index_set"):
        ds.grad(f)(np.ones(3))


def test_uncovered_numpy_function_is_named():
    with pytest.raises(NonDifferentiableError, match="numpy.interp"):
        ds.grad(lambda x: np.sum(np.interp(x, [0.0, 1.0], [1.0, 2.0])))(np.ones(4))
    with pytest.raises(NonDifferentiableError, match="numpy.spacing"):
        ds.grad(lambda x: dnp.sum(np.spacing(x)))(np.ones(3))


def test_assignment_into_numpy_buffer_points_to_index_set():
    def f(x):
        a = np.zeros(3)
        a[0] = x[1]
        return dnp.sum(a)

    for transform in (ds.grad(f), lambda x: ds.jvp(f, (x,), (x,))):
        with pytest.raises(NonDifferentiableError, match="dnp.index_set"):
            transform(np.ones(3))


def test_asarray_of_traced_value():
    with pytest.raises(NonDifferentiableError, match="dnp.array"):
        ds.grad(lambda x: np.asarray(x).sum())(np.ones(3))


def test_missing_rule_names_primitive_and_argument():
    p = ds.primitive(lambda x, y: x * y, name="mystery")
    ds.defvjp(p, lambda g, ans, x, y: g * y)  # no rule for y
    with pytest.raises(NonDifferentiableError, match="'mystery'.*argument 1"):
        ds.grad(p, argnums=1)(2.0, 3.0)
    with pytest.raises(NonDifferentiableError, match="'mystery' has no forward-mode"):
        ds.jvp(p, (2.0, 3.0), (1.0, 0.0))


def test_shape_mismatches():
    with pytest.raises(ValueError, match="tangent 0 has shape"):
        ds.jvp(dnp.sin, (np.ones(3),), (np.ones(2),))
    _, back = ds.vjp(dnp.sin, np.ones(3))
    with pytest.raises(ValueError, match="cotangent of shape"):
        back(np.ones(4))
    with pytest.raises(ValueError, match="cannot reshape"):
        dnp.reshape(np.ones(6), (4, 2))
    with pytest.raises(ValueError, match="argnums"):
        ds.grad(lambda x: x, argnums=2)(1.0)


def test_segment_sum_validates_ids():
    with pytest.raises(ValueError, match="integer"):
        dnp.segment_sum(np.ones(3), np.array([0.0, 1.0, 0.0]), 2)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        dnp.segment_sum(np.ones(3), np.array([0, 5, 0]), 2)
    with pytest.raises(ValueError, match="length 2 but data has 3"):
        dnp.segment_sum(np.ones(3), np.array([0, 1]), 2)


def test_complex_output_needs_holomorphic():
    with pytest.raises(NonDifferentiableError, match="holomorphic=True"):
        ds.grad(lambda z: z * z)(1.0 + 2.0j)
    with pytest.raises(TypeError, match="complex arguments"):
        ds.grad(lambda z: z * z, holomorphic=True)(1.0)


def test_has_aux_requires_pair():
    with pytest.raises(TypeError, match="pair"):
        ds.grad(lambda x: x, has_aux=True)(1.0)


def test_missing_rule_is_not_implemented():
    # a primitive without a rule for the mode asked: NonDifferentiableError, also a NotImplementedError
    twice = ds.primitive(lambda x: 2.0 * x, name="twice")
    with pytest.raises(NotImplementedError, match="twice.*ds.defvjp"):
        ds.grad(twice)(1.0)
    with pytest.raises(ds.MissingRuleError, match="twice.*ds.defjvp"):
        ds.jvp(twice, (1.0,), (1.0,))
