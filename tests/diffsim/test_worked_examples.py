"""The worked examples of reverse-mode differentiation, checked against closed forms."""

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp

rng = np.random.default_rng(7)


def test_frobenius_least_squares_gradient():
    A, X, B = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal((6, 3))
    G = ds.grad(lambda X: dnp.sum((A @ X - B) ** 2))(X)
    np.testing.assert_allclose(G, 2 * A.T @ (A @ X - B), rtol=1e-13)


def test_log_of_x_plus_exp_y_over_x_at_1_2():
    gx, gy = ds.grad(lambda x, y: dnp.log(x + dnp.exp(y / x)), argnums=(0, 1))(1.0, 2.0)
    e2 = np.exp(2.0)
    # df/dx = (1 - (y/x²) e^{y/x}) / (x + e^{y/x}),  df/dy = (e^{y/x}/x) / (x + e^{y/x})
    assert abs(gx - (1 - 2 * e2) / (1 + e2)) < 1e-15
    assert abs(gy - e2 / (1 + e2)) < 1e-15


def test_fan_out_accumulates():
    # x feeds three paths: f = x*x + sin(x) + x  ->  f' = 2x + cos(x) + 1
    g = ds.grad(lambda x: x * x + dnp.sin(x) + x)(0.4)
    assert abs(g - (0.8 + np.cos(0.4) + 1.0)) < 1e-15


def test_if_else_differentiates_the_branch_taken():
    def f(x):
        if x > 0:
            return x ** 3
        return -2.0 * x

    assert ds.grad(f)(2.0) == 12.0
    assert ds.grad(f)(-1.0) == -2.0


def test_tied_weight_autoencoder_sums_both_uses():
    W = rng.standard_normal((3, 5))
    X = rng.standard_normal((8, 5))

    def loss(W):
        code = dnp.tanh(X @ W.T)      # encoder uses W
        recon = code @ W              # decoder uses the same W
        return dnp.sum((recon - X) ** 2)

    def loss_untied(W_enc, W_dec):
        return dnp.sum((dnp.tanh(X @ W_enc.T) @ W_dec - X) ** 2)

    g_enc, g_dec = ds.grad(loss_untied, argnums=(0, 1))(W, W)
    np.testing.assert_allclose(ds.grad(loss)(W), g_enc + g_dec, rtol=1e-13)
    # and the decoder half by hand: d/dW_dec = 2 codeᵀ (code W - X)
    code = np.tanh(X @ W.T)
    np.testing.assert_allclose(g_dec, 2 * code.T @ (code @ W - X), rtol=1e-13)


def _input_gradient_norm(layer, depth, width, seed):
    r = np.random.default_rng(seed)
    params = [(r.standard_normal((width, width)) * np.sqrt(2.0 / width),   # He initialisation
               r.standard_normal((width, width)) * np.sqrt(1.0 / width)) for _ in range(depth)]

    def loss(x):
        for p in params:
            x = layer(x, p)
        return dnp.sum(x) / np.sqrt(width)

    return np.linalg.norm(ds.grad(loss)(r.standard_normal(width)))


def test_vanishing_gradient_sigmoid_vs_residual_relu():
    depth, width = 50, 64
    sigmoid = lambda x, p: 1.0 / (1.0 + dnp.exp(-(p[0] @ x)))
    residual = lambda x, p: x + p[1] @ dnp.maximum(p[0] @ x, 0.0) / np.sqrt(depth)
    for seed in range(3):
        assert _input_gradient_norm(sigmoid, depth, width, seed) < 1e-15
        assert 0.2 < _input_gradient_norm(residual, depth, width, seed) < 5.0
