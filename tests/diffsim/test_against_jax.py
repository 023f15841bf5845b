"""The table of test_primitives.py against JAX in float64: forward values and VJPs with a
random (complex where the output is complex) cotangent. JAX is an independent implementation
of the same conventions, complex ones included; skipped when it is not installed."""

import zlib

import numpy as np
import pytest
from test_primitives import TABLE, make

import diffsim as ds
import diffsim.numpy as dnp

jax = pytest.importorskip("jax", reason="jax is not installed (pip install jax jaxlib); JAX cross-check skipped")
jax.config.update("jax_enable_x64", True)
jnp = pytest.importorskip("jax.numpy")

# rows JAX cannot run as written, and why (everything else in the table is compared)
NOT_IN_JAX = {
    "cross 2 and 3": "jnp.cross has no mixed 2-/3-vector form",
    "mean of list": "jnp.mean does not take a list of arrays",
    "lstsq residuals": "jnp.linalg.lstsq returns residuals of another shape",
    "array of traced": "jnp.array of nested Python lists of tracers is spelled differently",
    "stack of nested": "jnp.stack does not take nested Python sequences of tracers",
    "mean of nested tuple": "jnp.mean does not take nested Python sequences of tracers",
    "rmatmul numpy left": "numpy's ndarray @ jax.Array is not dispatched to JAX",
    "numpy ufunc dispatch": "numpy functions do not dispatch to JAX",
    "numpy function dispatch": "numpy functions do not dispatch to JAX",
    "numpy fft dispatch": "numpy functions do not dispatch to JAX",
    "numpy stack of list": "numpy functions do not dispatch to JAX",
    "iterate": "iterating a JAX tracer works but enumerate(x) of a jax.Array is slow; covered elsewhere",
    "nan_to_num finite": "identical for finite values; nothing to compare",
    "repeat": "JAX refuses a list of repeats", "fancy repeats": "JAX refuses list indices",
    "take": "JAX refuses a list of indices",
    "eigh upper triangle": "JAX symmetrises a non-symmetric input; numpy (and diffsim) read one triangle",
    "eigh lower triangle": "JAX symmetrises a non-symmetric input; numpy (and diffsim) read one triangle",
    "eigh upper triangle batched": "JAX symmetrises a non-symmetric input; numpy (and diffsim) read one triangle",
    "eigh upper triangle two batch axes": "JAX symmetrises a non-symmetric input; numpy (and diffsim) read one "
                                          "triangle",
}
ROWS = [r for r in TABLE if callable(r[1]) and r[0] not in NOT_IN_JAX]


class _EigvecDerivs:
    """jax.numpy with linalg.eig differentiable in its eigenvectors: JAX refuses those derivatives
    unless asked (lax.linalg.eig's enable_eigvec_derivs), so the eig rows ask."""

    class linalg:
        @staticmethod
        def eig(a):
            w, v = jax.lax.linalg.eig(a, compute_left_eigenvectors=False, enable_eigvec_derivs=True)
            return w, v

    def __getattr__(self, name):
        return getattr(jnp, name)


JAX_MODULE = {name: _EigvecDerivs()
              for name in ("eig vectors", "eig complex", "eig vectors batched", "eig two batch axes")}


def _leaves(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.slow  # about two minutes: JAX dispatches every operation eagerly
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_values_and_vjps_equal_jax(row):
    name, f, specs = row
    rng = np.random.default_rng(zlib.crc32(name.encode()) + 7)
    args = [make(shape, domain, rng) for shape, domain in specs]
    ours, back = ds.vjp(lambda *a: f(dnp, *a), *args)
    jm = JAX_MODULE.get(name, jnp)
    theirs, jback = jax.vjp(lambda *a: f(jm, *a), *[jnp.asarray(a) for a in args])
    cts = []
    for o, t in zip(_leaves(ours), _leaves(theirs)):
        np.testing.assert_allclose(np.asarray(o), np.asarray(t), rtol=1e-10, atol=1e-12, err_msg=name)
        u = rng.standard_normal(np.shape(o))
        cts.append(u + 1j * rng.standard_normal(np.shape(o)) if np.iscomplexobj(o) else u)
    ct = cts if isinstance(ours, (tuple, list)) else cts[0]
    got = back(type(ours)(ct) if isinstance(ours, (tuple, list)) else ct)
    want = jback(type(theirs)(jnp.asarray(c) for c in ct) if isinstance(theirs, (tuple, list)) else jnp.asarray(ct))
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-8, atol=1e-10, err_msg=name)


def test_complex_conventions_equal_jax():
    z = np.array([1.0 + 2.0j, -0.5 + 0.3j])
    cases = [lambda m, z: m.sum(m.abs(m.exp(z))), lambda m, z: m.sum(m.abs(z) ** 2),
             lambda m, z: m.sum(m.angle(z) * m.real(z) + m.imag(z)), lambda m, z: m.real(m.vdot(z, z * 2j))]
    for f in cases:
        np.testing.assert_allclose(ds.grad(lambda z: f(dnp, z))(z), jax.grad(lambda z: f(jnp, z))(jnp.asarray(z)),
                                   rtol=1e-12)
    np.testing.assert_allclose(ds.grad(lambda z: dnp.sin(z) * z, holomorphic=True)(1.0 + 2.0j),
                               jax.grad(lambda z: jnp.sin(z) * z, holomorphic=True)(1.0 + 2.0j), rtol=1e-12)
