"""Exact values at edge points and the complex conventions, against closed forms."""

import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp


def test_complex_gradients_are_jax_and_autograds():
    # |e^z| = e^Re z: ∂/∂x − i ∂/∂y = e^x (the issue's −1.78−2.06j was z/|z| in abs's rule)
    assert abs(ds.grad(lambda z: dnp.abs(dnp.exp(z)))(1.0 + 2.0j) - np.e) < 1e-12
    z = 3.0 + 4.0j
    assert ds.grad(lambda z: dnp.abs(z) ** 2)(z) == 2 * np.conj(z)
    assert ds.grad(lambda z: dnp.real(z * (2.0 + 1.0j)))(z) == 2.0 + 1.0j
    assert ds.grad(lambda z: dnp.imag(z))(z) == -1j
    # angle = atan2(y, x): ∂/∂x − i ∂/∂y = (−y − i x)/|z|²
    np.testing.assert_allclose(ds.grad(dnp.angle)(z), (-4.0 - 3.0j) / 25.0, rtol=1e-14)
    np.testing.assert_allclose(ds.grad(dnp.sin, holomorphic=True)(z), np.cos(z), rtol=1e-14)


def test_real_inputs_get_real_gradients():
    g = ds.grad(lambda a: dnp.real(a * (0.6 + 0.3j)))(0.6)
    assert g == 0.6 and not np.iscomplexobj(g)
    g = ds.grad(lambda a: dnp.abs(dnp.sum(a * np.array([0.6 + 0.3j, 1.0j]))))(np.array([1.0, 2.0]))
    assert not np.iscomplexobj(g)
    c = np.array([0.6 + 0.3j, 1.0j])
    s = 0.6 + 0.3j + 2.0j
    np.testing.assert_allclose(g, np.real(np.conj(s) * c) / abs(s), rtol=1e-14)


def test_complex_norm_and_var_are_real_as_numpy():
    x = np.array([1.0 + 1.0j, 2.0 - 0.5j])
    assert dnp.linalg.norm(np.array([1.0 + 1.0j])) == np.sqrt(2.0)
    value, g = ds.value_and_grad(dnp.var)(x)
    assert value == np.var(x) and not np.iscomplexobj(value)
    np.testing.assert_allclose(g, 2.0 * np.conj(x - x.mean()) / 2.0, rtol=1e-14)  # ∂/∂x − i∂/∂y of mean|x−m|²


def test_logaddexp_second_derivative_at_ties():
    d2 = ds.grad(ds.grad(lambda x: dnp.logaddexp(x, 0.0)))
    assert d2(0.0) == 0.25  # σ'(0) = 1/4 exactly
    assert ds.grad(ds.grad(dnp.softplus))(0.0) == 0.25
    H = ds.hessian(lambda v: dnp.logaddexp(v[0], v[1]))(np.array([1.5, 1.5]))
    np.testing.assert_allclose(H, [[0.25, -0.25], [-0.25, 0.25]], rtol=1e-15)
    assert ds.grad(ds.grad(lambda x: dnp.logaddexp2(x, 0.0)))(0.0) == pytest.approx(0.25 * np.log(2.0), rel=1e-14)


def test_std_of_one_element_has_zero_gradient():
    assert ds.grad(dnp.std)(np.array([3.0]))[0] == 0.0
    assert ds.hessian(lambda x: dnp.std(x, axis=0).sum())(np.array([[1.0, 2.0]]))[0, 0, 0, 0] == 0.0


def test_nan_not_exceptions_where_numpy_gives_nan():
    with np.errstate(all="ignore"):
        value, g = ds.value_and_grad(lambda x: dnp.var(x, ddof=1))(np.array([2.0]))
        assert np.isnan(value) and np.isnan(g[0])  # numpy: var([2.0], ddof=1) is NaN (with a warning)
        value, g = ds.value_and_grad(dnp.mean)(np.zeros(0))
        assert np.isnan(value) and g.shape == (0,)
        t = ds.jvp(lambda x: dnp.var(x, ddof=1), (np.array([2.0]),), (np.array([1.0]),))[1]
        assert np.isnan(t)


def test_linspace_logspace_meshgrid_on_traced_values():
    # d/da Σ linspace(a, b, 5) = Σ (1 − t_k) = 2.5, d/db = 2.5
    ga, gb = ds.grad(lambda a, b: dnp.sum(dnp.linspace(a, b, 5)), argnums=(0, 1))(0.3, 2.0)
    assert ga == pytest.approx(2.5, rel=1e-15) and gb == pytest.approx(2.5, rel=1e-15)
    # d/db Σ 10^linspace(0, b, 3) at b: 10^(b/2) ln10 / 2 + 10^b ln10
    b = 0.7
    g = ds.grad(lambda b: dnp.sum(dnp.logspace(0.0, b, 3)))(b)
    assert g == pytest.approx(np.log(10) * (10 ** (b / 2) / 2 + 10 ** b), rel=1e-13)
    X, Y = ds.vjp(lambda x, y: dnp.meshgrid(x, y), np.arange(3.0), np.arange(2.0))[0]
    Xn, Yn = np.meshgrid(np.arange(3.0), np.arange(2.0))
    assert np.array_equal(X, Xn) and np.array_equal(Y, Yn)


def test_abs_gradient_at_zero_is_zero_for_real_and_complex():
    assert ds.grad(dnp.abs)(0.0) == 0.0
    assert ds.grad(dnp.abs)(0.0 + 0.0j) == 0.0
    # forward mode too: the tangent of |x| at 0 is 0 (JAX's sign(0)·t), real and complex
    assert ds.jvp(dnp.abs, (0.0,), (1.0,))[1] == 0.0
    assert ds.jvp(dnp.abs, (0.0 + 0.0j,), (1.0 + 1.0j,))[1] == 0.0
    assert ds.jvp(dnp.abs, (-2.0,), (3.0,))[1] == -3.0


def test_fmax_and_fmin_of_two_nans_pass_no_gradient():
    # numpy's fmax ignores a NaN; when both are NaN neither argument selects the result
    for f in (dnp.fmax, dnp.fmin):
        gx, gy = ds.grad(lambda x, y: f(x, y), argnums=(0, 1))(np.nan, np.nan)
        assert gx == 0.0 and gy == 0.0, (f, gx, gy)
        gx, gy = ds.grad(lambda x, y: f(x, y), argnums=(0, 1))(np.nan, 2.0)
        assert (gx, gy) == (0.0, 1.0), (f, gx, gy)


def test_broadcast_gradients_sum_over_every_broadcast_axis():
    # a (1, 1) against b (1, 5, 3): d/da Σ(a·b)² = Σ 2 a b², a sum over all 15 elements (closed form)
    a, b = np.array([[0.7]]), np.arange(1.0, 16.0).reshape(1, 5, 3)
    g = ds.grad(lambda a: dnp.sum((a * b) ** 2))(a)
    assert g.shape == (1, 1)
    np.testing.assert_allclose(g, [[2 * 0.7 * np.sum(b ** 2)]], rtol=1e-13)
    # a (5, 1) against b (2, 5, 3): the leading axis and the last are summed, the middle kept
    a, b = np.linspace(0.5, 1.5, 5).reshape(5, 1), np.arange(30.0).reshape(2, 5, 3)
    g = ds.grad(lambda a: dnp.sum((a * b) ** 2))(a)
    np.testing.assert_allclose(g, (2 * a[:, 0] * np.sum(b ** 2, axis=(0, 2)))[:, None], rtol=1e-13)


def test_segment_sum_of_rows_equals_numpy_add_at_on_the_general_path():
    # complex rows take the general path (the fast scatter kernel is float64 only): numpy's add.at is the reference
    rng = np.random.default_rng(3)
    data = rng.standard_normal((6, 3)) + 1j * rng.standard_normal((6, 3))
    ids = np.array([2, 0, 2, 1, 0, 2])
    want = np.zeros((4, 3), complex)
    np.add.at(want, ids, data)
    got = dnp.segment_sum(data, ids, num_segments=4)
    assert got.shape == (4, 3)
    np.testing.assert_allclose(got, want, rtol=1e-14)



def test_arithmetic_equals_numpy_ufuncs_on_every_operand_kind():
    # the arithmetic primitives go through Python's operators on numpy operands (faster on scalars):
    # value and dtype must be the ufunc's for every mix, division by zero and negative bases included
    operands = [2.0, -1.5, 0.0, 3, np.float64(-2.5), np.float64(0.0), np.float32(1.5), np.complex128(1 - 2j),
                np.array([1.0, -2.0, 0.0]), np.array([1, 2, 0]), [0.5, -1.0, 2.0], np.array(0.0)]
    pairs = [(dnp.add, np.add), (dnp.subtract, np.subtract), (dnp.multiply, np.multiply),
             (dnp.divide, np.divide), (dnp.power, np.power)]
    with np.errstate(all="ignore"):
        for ours, theirs in pairs:
            for x in operands:
                for y in operands:
                    try:
                        want = theirs(x, y)
                    except (ValueError, ZeroDivisionError) as err:  # integers to negative powers
                        with pytest.raises(type(err)):
                            ours(x, y)
                        continue
                    got = ours(x, y)
                    assert np.result_type(got) == np.result_type(want), (ours, x, y)
                    np.testing.assert_array_equal(got, want)


def test_forward_tangents_of_broadcast_inputs_have_the_output_shape():
    # a scalar input broadcast against constant arrays: the tangent is the output's shape (closed forms)
    y = np.arange(3.0)
    for f, want in [(lambda x: x + np.ones(3), [2.0, 2.0, 2.0]), (lambda x: x * y, 2.0 * y),
                    (lambda x: dnp.maximum(x, np.zeros(3)), [2.0, 2.0, 2.0]),
                    (lambda x: dnp.sin(x) * np.ones((2, 3)), 2.0 * np.cos(0.5) * np.ones((2, 3)))]:
        value, tangent = ds.jvp(f, (0.5,), (2.0,))
        assert np.shape(tangent) == np.shape(value)
        np.testing.assert_allclose(tangent, want, rtol=1e-15)


def test_the_numpy_namespaces_stop_gradient_passes_no_derivative():
    # dnp.stop_gradient is the primitive (ds.stop_gradient the transform): d/dx [x · sg(x)] = sg(x)
    assert ds.grad(lambda x: x * dnp.stop_gradient(x))(3.0) == 3.0
    assert ds.grad(lambda x: dnp.sum(dnp.stop_gradient(x) * x ** 2))(np.array([1.0, 2.0])).tolist() == [2.0, 8.0]


def test_conventions_at_ties_complex_bases_and_real_parts_of_real_inputs():
    # maximum/minimum split a tie evenly (JAX's convention): ∂/∂x max(x, 1) at x = 1 is 1/2
    assert ds.grad(lambda x: dnp.maximum(x, 1.0))(1.0) == 0.5
    assert ds.grad(lambda x: dnp.minimum(x, 1.0))(1.0) == 0.5
    assert ds.grad(lambda x: dnp.maximum(x, 1.0))(1.5) == 1.0 and ds.grad(lambda x: dnp.maximum(x, 1.0))(0.5) == 0.0
    # d(x^y)/dy = x^y log x for a complex base (closed form)
    z = 1.0 + 2.0j
    assert abs(ds.jvp(lambda y: z ** y, (0.7,), (1.0,))[1] - z ** 0.7 * np.log(z)) < 1e-14
    # d(x^y)/dy where x ≤ 0: 0 by the engine's convention (log x is not needed there)
    assert ds.grad(lambda y: (-2.0) ** y)(2.0) == 0.0 and ds.grad(lambda y: 0.0 ** y)(2.0) == 0.0
    # a real input: Im x ≡ 0 has gradient 0, Re x ≡ x has the real gradient 1
    gi, gr = ds.grad(lambda x: dnp.imag(x))(2.0), ds.grad(lambda x: dnp.real(x))(2.0)
    assert gi == 0.0 and gr == 1.0 and not np.iscomplexobj(gr) and not np.iscomplexobj(gi)
    assert ds.grad(lambda x: dnp.sum(dnp.imag(x) + 2.0 * x))(np.array([0.0, 1.0])).tolist() == [2.0, 2.0]
    assert ds.grad(lambda x: 0.0 * dnp.imag(x))(2.0) == 0.0   # a zero cotangent: 0, not 0/0


def test_hypot_gradient_is_the_unit_vector_even_at_radius_one_and_zero_at_the_origin():
    # ∂hypot/∂(x, y) = (x, y)/h (closed form), also where h is exactly 1; at the origin the subgradient 0, as |x|
    for x, y in [(1.0, 0.0), (0.0, -1.0), (0.6, 0.8), (3.0, -4.0)]:
        h = np.hypot(x, y)
        gx, gy = ds.grad(dnp.hypot, argnums=(0, 1))(x, y)
        np.testing.assert_allclose([gx, gy], [x / h, y / h], rtol=1e-15, atol=0)
        assert ds.jvp(dnp.hypot, (x, y), (2.0, -1.0))[1] == pytest.approx((2.0 * x - y) / h, rel=1e-15)
    assert ds.grad(dnp.hypot, argnums=(0, 1))(0.0, 0.0) == (0.0, 0.0)
    assert ds.jvp(dnp.hypot, (0.0, 0.0), (1.0, 1.0))[1] == 0.0
    # second order: (I − u uᵀ)/h with u = (x, y)/h (closed form); at the origin, where the cone has
    # no Hessian, the engine's convention is 0 in both modes (the partials are the constant 0 there)
    def f(v):
        return dnp.hypot(v[0], v[1])
    u = np.array([0.6, 0.8])
    np.testing.assert_allclose(ds.hessian(f)(np.array([3.0, 4.0])), (np.eye(2) - np.outer(u, u)) / 5.0, rtol=1e-14)
    np.testing.assert_array_equal(ds.hessian(f)(np.zeros(2)), np.zeros((2, 2)))
    np.testing.assert_array_equal(ds.jacfwd(ds.grad(f))(np.zeros(2)), np.zeros((2, 2)))


def test_max_and_min_reductions_split_a_tie_evenly_between_the_entries_that_attain_it():
    # the reduction's value is attained by k entries: each gets 1/k of the cotangent (JAX's convention)
    x = np.array([1.0, 3.0, 3.0, -2.0])
    np.testing.assert_array_equal(ds.grad(dnp.max)(x), [0.0, 0.5, 0.5, 0.0])
    np.testing.assert_array_equal(ds.grad(dnp.min)(-x), [0.0, 0.5, 0.5, 0.0])
    assert ds.jvp(dnp.max, (x,), (np.array([0.0, 1.0, 3.0, 5.0]),))[1] == 2.0
    rows = np.array([[2.0, 2.0, 2.0, 1.0], [0.0, 4.0, -1.0, 4.0]])
    g = ds.grad(lambda r: dnp.sum(dnp.max(r, axis=1) * np.array([3.0, 1.0])))(rows)
    np.testing.assert_allclose(g, [[1.0, 1.0, 1.0, 0.0], [0.0, 0.5, 0.0, 0.5]], rtol=1e-15)


def test_prod_derivatives_at_an_input_with_zeros_are_the_products_of_the_others():
    # ∂/∂x_i ∏_j x_j = ∏_{j≠i} x_j and ∂²/∂x_i∂x_j = ∏_{k≠i,j} x_k (closed forms); an exact zero in
    # the input takes the rule's general path (a constant zero mask would make prod identically 0)
    x = np.array([2.0, 0.0, 3.0])
    np.testing.assert_array_equal(ds.grad(dnp.prod)(x), [0.0, 6.0, 0.0])
    np.testing.assert_array_equal(ds.hessian(dnp.prod)(x), [[0.0, 3.0, 0.0], [3.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
    assert ds.jvp(dnp.prod, (x,), (np.array([1.0, 2.0, 5.0]),))[1] == 12.0
    ds.check_grads(dnp.prod, [x], order=2, modes=("rev", "fwd"))  # finite differences (prod is multilinear)
    cols = np.array([[2.0, 0.0], [3.0, 4.0], [5.0, 1.0]])  # along axis 0: one column with a zero, one without
    g = ds.grad(lambda a: dnp.sum(dnp.prod(a, axis=0) * np.array([1.0, 10.0])))(cols)
    np.testing.assert_array_equal(g, [[15.0, 40.0], [10.0, 0.0], [6.0, 0.0]])
    # every entry zero: 0 for two or more entries, 1 (the empty product) for a single one
    np.testing.assert_array_equal(ds.grad(dnp.prod)(np.zeros(3)), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ds.grad(dnp.prod)(np.zeros(1)), [1.0])
    np.testing.assert_array_equal(ds.grad(lambda x: dnp.sum(dnp.prod(x, axis=1)))(np.zeros((2, 1))), [[1.0], [1.0]])
    assert ds.jvp(dnp.prod, (np.zeros(2),), (np.ones(2),))[1] == 0.0


def test_the_max_and_min_primitives_called_with_their_default_parameters_reduce_like_numpy():
    # dnp.amax_p / amin_p are the primitives themselves: without axis and keepdims they reduce
    # everything, and with an axis alone they drop it, as numpy's max and min do
    x = np.array([[1.0, 5.0, 2.0], [4.0, 0.0, 3.0]])
    for prim, ref, hot in [(dnp.amax_p, np.max, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]),
                           (dnp.amin_p, np.min, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])]:
        assert np.shape(prim(x)) == () and prim(x) == ref(x)
        np.testing.assert_array_equal(prim(x, axis=(1,)), ref(x, axis=1))
        np.testing.assert_array_equal(ds.grad(lambda a, p=prim: dnp.sum(p(a, axis=(1,))))(x), hot)
        np.testing.assert_array_equal(ds.grad(lambda a, p=prim: p(a))(x), np.equal(x, ref(x)) * 1.0)
        value, tangent = ds.jvp(lambda a, p=prim: p(a, axis=(1,)), (x,), (np.arange(6.0).reshape(2, 3),))
        np.testing.assert_array_equal(tangent, np.sum(np.array(hot) * np.arange(6.0).reshape(2, 3), axis=1))
