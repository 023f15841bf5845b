"""Custom primitives (ds.primitive + ds.defvjp/defjvp), including a Numba kernel, and
check_grads catching wrong rules."""

import numba
import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.errors import GradientCheckError


@numba.njit(cache=False)
def _pair_energy_kernel(r):
    """Sum of 1/|ri - rj|² over pairs of points (a toy energy), as a compiled loop."""
    e = 0.0
    for i in range(r.shape[0]):
        for j in range(i + 1, r.shape[0]):
            d2 = 0.0
            for k in range(r.shape[1]):
                d2 += (r[i, k] - r[j, k]) ** 2
            e += 1.0 / d2
    return e


@numba.njit(cache=False)
def _pair_energy_grad_kernel(r):
    g = np.zeros_like(r)
    for i in range(r.shape[0]):
        for j in range(i + 1, r.shape[0]):
            d = r[i] - r[j]
            d2 = np.sum(d * d)
            c = -2.0 / d2 ** 2
            g[i] += c * d
            g[j] -= c * d
    return g


pair_energy = ds.primitive(_pair_energy_kernel, name="pair_energy")
# the gradient itself written with dnp so that second order works too
ds.defvjp(pair_energy, lambda g, ans, r: g * pair_energy_grad(r))
ds.defjvp(pair_energy, lambda t, ans, r: dnp.sum(pair_energy_grad(r) * t))


def _pair_energy_grad(r):
    return _pair_energy_grad_kernel(r)


pair_energy_grad = ds.primitive(_pair_energy_grad, name="pair_energy_grad")


def _hess_vec(t, r):
    # directional derivative of the gradient, written with differentiable ops
    diff = r[:, None, :] - r[None, :, :]
    dt = t[:, None, :] - t[None, :, :]
    d2 = dnp.sum(diff * diff, axis=-1) + np.eye(r.shape[0])  # pad the diagonal
    mask = 1.0 - np.eye(r.shape[0])
    c = -2.0 / d2 ** 2 * mask
    dc = 8.0 * dnp.sum(diff * dt, axis=-1) / d2 ** 3 * mask
    return dnp.sum(c[..., None] * dt + dc[..., None] * diff, axis=1)


ds.defjvp(pair_energy_grad, lambda t, ans, r: _hess_vec(t, r))
ds.defvjp(pair_energy_grad, lambda g, ans, r: _hess_vec(g, r))  # the Hessian is symmetric


def test_numba_primitive_forces_and_hessian():
    r = np.random.default_rng(0).standard_normal((4, 3)) * 2.0
    ds.check_grads(pair_energy, (r,), order=2, modes=("rev", "fwd"))


def test_custom_primitive_composes_with_engine_ops():
    r = np.random.default_rng(1).standard_normal((3, 2)) * 2.0
    f = lambda r, s: dnp.tanh(s * pair_energy(r * s))
    ds.check_grads(f, (r, 0.7), order=2)


def test_check_grads_catches_a_wrong_rule_and_names_the_argument():
    bad = ds.primitive(lambda x, y: x * np.sin(y), name="bad")
    ds.defvjp(bad, lambda g, ans, x, y: g * np.sin(y), lambda g, ans, x, y: g * x * np.sin(y))  # wrong
    ds.defjvp(bad, lambda t, ans, x, y: t * np.sin(y), lambda t, ans, x, y: t * x * np.cos(y))
    with pytest.raises(GradientCheckError, match=r"reverse mode, order 1, argument\[1\].*expected"):
        ds.check_grads(bad, (1.5, 0.3), modes=("rev",))
    ds.check_grads(bad, (1.5, 0.3), order=1, modes=("fwd",))  # forward rules are right


def test_check_grads_catches_a_wrong_second_order():
    # first derivative right, but the rule uses a constant (numpy) where it must differentiate
    p = ds.primitive(np.sin, name="sin_first_order_only")
    ds.defvjp(p, lambda g, ans, x: g * np.cos(np.asarray(x, float)) if not isinstance(x, ds.tracer.Box)
              else g * np.cos(ds.tracer.raw(x)))
    ds.check_grads(p, (0.4,), order=1, modes=("rev",))
    with pytest.raises(GradientCheckError, match="order 2"):
        ds.check_grads(p, (0.4,), order=2, modes=("rev",))
