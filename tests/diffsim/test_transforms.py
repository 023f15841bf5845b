"""grad, vjp, jvp, jacobian, hessian, hvp: structure, argnums, and agreement between modes."""

import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp

rng = np.random.default_rng(42)


def f_vec(x):
    return dnp.stack([dnp.sin(x[0]) * x[1], x[0] ** 2 + dnp.exp(x[1]), x[0] * x[1] * x[2]])


def test_jacobian_modes_agree_and_match_closed_form():
    x = np.array([0.3, -0.7, 1.2])
    expected = np.array([[np.cos(0.3) * -0.7, np.sin(0.3), 0.0],
                         [0.6, np.exp(-0.7), 0.0],
                         [-0.7 * 1.2, 0.3 * 1.2, 0.3 * -0.7]])
    np.testing.assert_allclose(ds.jacrev(f_vec)(x), expected, rtol=1e-14)
    np.testing.assert_allclose(ds.jacfwd(f_vec)(x), expected, rtol=1e-14)
    assert ds.jacobian is ds.jacrev


def test_jacobian_shapes_out_plus_in():
    f = lambda x: dnp.tanh(x @ np.ones((3, 2)))
    x = rng.standard_normal((4, 3))
    assert ds.jacrev(f)(x).shape == (4, 2, 4, 3)
    np.testing.assert_allclose(ds.jacrev(f)(x), ds.jacfwd(f)(x), rtol=1e-13, atol=1e-15)


def test_hessian_against_closed_form_and_hvp():
    A = rng.standard_normal((4, 4))
    A = A + A.T
    f = lambda x: 0.5 * x @ A @ x + dnp.sum(x ** 4)
    x = rng.standard_normal(4)
    H = A + np.diag(12 * x ** 2)
    np.testing.assert_allclose(ds.hessian(f)(x), H, rtol=1e-12)
    v = rng.standard_normal(4)
    (hv,) = ds.hvp(f, (x,), (v,))
    np.testing.assert_allclose(hv, H @ v, rtol=1e-12)


def test_third_order_scalar():
    d3 = ds.grad(ds.grad(ds.grad(lambda x: dnp.sin(x) * x ** 2)))
    x = 0.7
    exact = -np.cos(x) * x ** 2 - 6 * x * np.sin(x) + 6 * np.cos(x)
    assert abs(d3(x) - exact) < 1e-13


def test_pytree_arguments_round_trip():
    params = {"layers": [(rng.standard_normal((3, 2)), rng.standard_normal(2))], "scale": 1.5}
    x = rng.standard_normal((5, 3))

    def loss(p, x):
        (W, b), = p["layers"]
        return p["scale"] * dnp.sum(dnp.tanh(x @ W + b) ** 2)

    g = ds.grad(loss)(params, x)
    assert set(g) == {"layers", "scale"} and isinstance(g["layers"], list)
    assert g["layers"][0][0].shape == (3, 2) and g["layers"][0][1].shape == (2,)
    ds.check_grads(loss, (params, x), order=1)


def test_argnums_tuple_and_has_aux():
    f = lambda x, y, z: (x * y + z, {"aux": x})
    (gx, gz), aux = ds.grad(f, argnums=(0, 2), has_aux=True)(2.0, 3.0, 4.0)
    assert (gx, gz) == (3.0, 1.0) and aux == {"aux": 2.0}
    (val, aux2), gy = ds.value_and_grad(f, argnums=1, has_aux=True)(2.0, 3.0, 4.0)
    assert val == 10.0 and gy == 2.0 and aux2["aux"] == 2.0


def test_vjp_with_tuple_output_and_multiple_calls():
    y, back = ds.vjp(lambda a, b: (a * b, dnp.sum(a)), np.ones(3), 2.0)
    assert y[1] == 3.0
    ga, gb = back((np.ones(3), 1.0))
    np.testing.assert_allclose(ga, 3.0)
    assert gb == 3.0
    ga2, _ = back((np.zeros(3), 2.0))
    np.testing.assert_allclose(ga2, 2.0)


def test_a_namedtuple_output_takes_its_own_or_a_plain_tuple_cotangent_and_passes_check_grads():
    A = np.random.default_rng(3).normal(size=(4, 3))
    (q, r), back = ds.vjp(dnp.linalg.qr, A)
    u_q, u_r = np.random.default_rng(4).normal(size=(2, 4, 3))[0], np.triu(np.ones((3, 3)))
    via_plain = back((u_q, u_r))[0]
    via_numpy = back(np.linalg.qr(np.eye(4, 3))._replace(Q=u_q, R=u_r))[0]  # numpy's own QRResult type
    # the reference: central differences of <u_Q, Q(A)> + <u_R, R(A)> along a random direction
    v = np.random.default_rng(5).normal(size=A.shape)
    f = lambda a: np.sum(u_q * np.linalg.qr(a)[0]) + np.sum(u_r * np.linalg.qr(a)[1])
    fd = (f(A + 1e-6 * v) - f(A - 1e-6 * v)) / 2e-6
    assert np.sum(via_plain * v) == pytest.approx(fd, rel=1e-6)
    np.testing.assert_array_equal(via_plain, via_numpy)
    with pytest.raises(ValueError, match="structure"):
        back([u_q, u_r])  # a list is another structure
    ds.check_grads(dnp.linalg.qr, (A,), order=1)  # it used to fail on the namedtuple's type
    ds.check_grads(lambda a: dnp.linalg.eigh(a + a.T), (np.diag([1.0, 2.0, 3.5]) + 0.1 * A[:3],), order=1)


def test_jvp_tangent_structure_and_constant_output():
    val, tan = ds.jvp(lambda x: (x * 2.0, 5.0), (np.ones(2),), (np.ones(2),))
    np.testing.assert_allclose(tan[0], 2.0)
    assert tan[1] == 0.0


def test_integer_and_boolean_arguments_get_zero_gradients():
    f = lambda x, n, mask: dnp.sum(x ** n * mask)
    gx, gn, gm = ds.grad(f, argnums=(0, 1, 2))(np.array([1.0, 2.0]), 2, np.array([True, False]))
    np.testing.assert_allclose(gx, [2.0, 0.0])
    assert gn == 0.0 and np.all(gm == 0.0)


def test_output_independent_of_input_gives_zero_gradient():
    np.testing.assert_array_equal(ds.grad(lambda x: 3.0)(np.ones(2)), np.zeros(2))


def test_stop_gradient():
    assert ds.grad(lambda x: x * ds.stop_gradient(x))(3.0) == 3.0
    # second order: stop_gradient is a constant at every level
    assert ds.grad(ds.grad(lambda x: x ** 2 * ds.stop_gradient(x)))(2.0) == 4.0


def test_forward_over_reverse_equals_reverse_over_reverse():
    f = lambda x: dnp.sum(dnp.sin(x) * dnp.cumsum(x) ** 2)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    (fwd_rev,) = ds.hvp(f, (x,), (v,))
    rev_rev = ds.grad(lambda x: dnp.vdot(ds.grad(f)(x), v))(x)
    np.testing.assert_allclose(fwd_rev, rev_rev, rtol=1e-12)
    h = 1e-5  # and both equal the central difference of the gradient along v
    fd = (ds.grad(f)(x + h * v) - ds.grad(f)(x - h * v)) / (2 * h)
    np.testing.assert_allclose(fwd_rev, fd, rtol=1e-6, atol=1e-8)


def test_nested_mixed_modes_hessian_matches_jacrev_of_grad():
    f = lambda x: dnp.prod(dnp.cos(x)) + dnp.logsumexp(x * x)
    x = rng.standard_normal(4)
    H = ds.hessian(f)(x)
    np.testing.assert_allclose(H, ds.jacrev(ds.grad(f))(x), rtol=1e-11, atol=1e-14)
    h = 1e-5
    fd = np.stack([(ds.grad(f)(x + h * e) - ds.grad(f)(x - h * e)) / (2 * h) for e in np.eye(4)], axis=-1)
    np.testing.assert_allclose(H, fd, rtol=1e-6, atol=1e-8)


def test_jacfwd_with_argnums_tuple():
    f = lambda x, y: x * y
    jx, jy = ds.jacfwd(f, argnums=(0, 1))(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    np.testing.assert_allclose(jx, np.diag([3.0, 4.0]))
    np.testing.assert_allclose(jy, np.diag([1.0, 2.0]))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_propagates_not_silenced(bad):
    g = ds.grad(lambda x: dnp.sum(x * x))(np.array([1.0, bad]))
    assert np.isfinite(g[0]) and not np.isfinite(g[1])


def test_integer_powers_differentiate_to_exact_zeros_at_zero():
    # x² three times at 0 must give 0, not 0 · 0^(-1) = NaN
    assert ds.grad(ds.grad(ds.grad(lambda x: x ** 2)))(0.0) == 0.0
    assert ds.grad(ds.grad(ds.grad(lambda x: x ** 3)))(0.0) == 6.0
    H = ds.hessian(lambda u: dnp.sum(u ** 2) + u[0] ** 3)(np.zeros(2))
    np.testing.assert_array_equal(H, 2 * np.eye(2))
    assert np.isfinite(ds.jacfwd(ds.hessian(lambda u: dnp.sum(u ** 2)))(np.zeros(2))).all()


def test_grad_of_a_one_element_array_output():
    # autograd (and numpy users) reduce with keepdims=True: an output of one element is a scalar
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(x ** 2, keepdims=True))(x), 2.0 * x, rtol=1e-15)
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(x * x[:, None], axis=(0, 1), keepdims=True))(x),
                               2.0 * np.sum(x) * np.ones(3), rtol=1e-14)


def test_integer_cast_of_a_traced_value_is_a_constant():
    # np.int64(x) truncates: piecewise constant, derivative 0 (as autograd and JAX's astype(int))
    x = np.array([1.5, 2.7, -0.4])
    np.testing.assert_allclose(ds.grad(lambda x: dnp.sum(x * np.int64(x)))(x), [1.0, 2.0, 0.0])


def test_forward_tangent_of_a_complex_output_is_complex():
    # the tangent lives in the output's space: a real tangent pushed into a complex value is promoted
    y, t = ds.jvp(lambda x: x * (1.0 + 0j), (2.0,), (1.0,))
    assert np.iscomplexobj(t) and t == 1.0
    (y, t) = ds.jvp(lambda g: ds.vjp(dnp.real, 0.5 + 0.2j)[1](g)[0], (1.0,), (0.5,))
    assert np.iscomplexobj(t) and t == 0.5
