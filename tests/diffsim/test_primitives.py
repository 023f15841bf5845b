"""Every differentiable function of diffsim.numpy, checked to second order in both modes.

Each row: a name, a function, and its arguments as (shape, domain). Domains keep finite
differences away from kinks and singularities.
"""

import zlib

import numpy as np
import pytest

import diffsim as ds
import diffsim.numpy as dnp


def make(shape, domain="real", rng=None):
    rng = rng or np.random.default_rng(0)
    if domain == "real":
        return rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "unit":
        return rng.uniform(-0.8, 0.8, shape)
    if domain == "gt1":
        return rng.uniform(1.2, 3.0, shape)
    if domain == "distinct":  # well-separated values: max/min/abs/clip have no ties or kinks near
        n = int(np.prod(shape))
        return (rng.permutation(n) - n / 2 + 0.3).reshape(shape) * 0.37
    if domain == "matrix":  # well-conditioned square (stack)
        a = rng.standard_normal(shape)
        return a + 3.0 * np.eye(shape[-1])
    raise ValueError(domain)


R = "real"
#    name                         function                                              argument specs
TABLE = [
    # elementwise unary
    ("neg", lambda x: -x, [((3,), R)]),
    ("exp", dnp.exp, [((2, 3), R)]),
    ("log", dnp.log, [((3,), "pos")]),
    ("log2", dnp.log2, [((3,), "pos")]),
    ("log10", dnp.log10, [((3,), "pos")]),
    ("log1p", dnp.log1p, [((3,), "pos")]),
    ("expm1", dnp.expm1, [((3,), R)]),
    ("sin", dnp.sin, [((3,), R)]),
    ("cos", dnp.cos, [((3,), R)]),
    ("tan", dnp.tan, [((3,), "unit")]),
    ("arcsin", dnp.arcsin, [((3,), "unit")]),
    ("arccos", dnp.arccos, [((3,), "unit")]),
    ("arctan", dnp.arctan, [((3,), R)]),
    ("sinh", dnp.sinh, [((3,), R)]),
    ("cosh", dnp.cosh, [((3,), R)]),
    ("tanh", dnp.tanh, [((3,), R)]),
    ("arcsinh", dnp.arcsinh, [((3,), R)]),
    ("arccosh", dnp.arccosh, [((3,), "gt1")]),
    ("arctanh", dnp.arctanh, [((3,), "unit")]),
    ("sqrt", dnp.sqrt, [((3,), "pos")]),
    ("square", dnp.square, [((3,), R)]),
    ("abs", dnp.abs, [((4,), "distinct")]),
    ("sinc", dnp.sinc, [((3,), R)]),
    ("softplus", dnp.softplus, [((5,), R)]),
    ("scalar input", lambda x: dnp.sin(x) * dnp.exp(x), [((), R)]),
    # elementwise binary, with broadcasting
    ("add broadcast", lambda x, y: x + y, [((3, 4), R), ((4,), R)]),
    ("sub outer broadcast", lambda x, y: x - y, [((3, 1), R), ((1, 4), R)]),
    ("mul by scalar array", lambda x, y: x * y, [((2, 3), R), ((), R)]),
    ("div", lambda x, y: x / y, [((3,), R), ((2, 3), "pos")]),
    ("power both", lambda x, y: x ** y, [((3,), "pos"), ((3,), R)]),
    ("power const", lambda x: x ** 3.0, [((3,), R)]),
    ("rpow", lambda x: 2.0 ** x, [((3,), R)]),
    ("maximum", dnp.maximum, [((4,), "distinct"), ((4,), R)]),
    ("minimum broadcast", dnp.minimum, [((2, 3), "distinct"), ((3,), R)]),
    ("arctan2", dnp.arctan2, [((3,), R), ((3,), "pos")]),
    ("logaddexp", dnp.logaddexp, [((3,), R), ((3,), R)]),
    ("where", lambda x, y: dnp.where(np.array([True, False, True]), x, y), [((2, 3), R), ((3,), R)]),
    ("clip", lambda x: dnp.clip(x, -1.0, 1.0), [((6,), "distinct")]),
    # reductions
    ("sum all", dnp.sum, [((2, 3), R)]),
    ("sum axis", lambda x: dnp.sum(x, axis=1), [((2, 3, 4), R)]),
    ("sum axes keepdims", lambda x: dnp.sum(x, axis=(0, 2), keepdims=True), [((2, 3, 4), R)]),
    ("sum negative axis", lambda x: dnp.sum(x, axis=-1), [((2, 3), R)]),
    ("mean", lambda x: dnp.mean(x, axis=0), [((3, 2), R)]),
    ("prod", lambda x: dnp.prod(x, axis=1), [((2, 3), R)]),
    ("prod with a zero", lambda x: dnp.prod(x * np.array([1.0, 0.0, 1.0])), [((3,), R)]),
    ("max axis", lambda x: dnp.max(x, axis=1), [((3, 4), "distinct")]),
    ("min all", dnp.min, [((3, 4), "distinct")]),
    ("std", dnp.std, [((5,), R)]),
    ("var ddof", lambda x: dnp.var(x, axis=0, ddof=1), [((4, 2), R)]),
    ("cumsum", lambda x: dnp.cumsum(x, axis=1), [((2, 4), R)]),
    ("cumsum flat", dnp.cumsum, [((2, 3), R)]),
    ("logsumexp", lambda x: dnp.logsumexp(x, axis=1), [((2, 4), R)]),
    ("logsumexp keepdims", lambda x: dnp.logsumexp(x, keepdims=True), [((3,), R)]),
    ("norm", dnp.linalg.norm, [((4,), R)]),
    ("norm fro", lambda x: dnp.linalg.norm(x, "fro"), [((2, 3), R)]),
    ("norm axis", lambda x: dnp.linalg.norm(x, axis=1), [((2, 3), R)]),
    ("norm 1 vector", lambda x: dnp.linalg.norm(x, 1), [((4,), "distinct")]),
    ("norm inf vector", lambda x: dnp.linalg.norm(x, np.inf), [((4,), "distinct")]),
    ("norm p=3", lambda x: dnp.linalg.norm(x, 3), [((4,), "pos")]),
    # column scales 1, 10, 100 keep the column sums of |x| far apart: no kink of max nearby
    ("norm 1 matrix", lambda x: dnp.linalg.norm(x * np.array([1.0, 10.0, 100.0]), 1), [((3, 3), "pos")]),
    # products
    ("dot 1d", dnp.dot, [((3,), R), ((3,), R)]),
    ("dot 2d-1d", dnp.dot, [((2, 3), R), ((3,), R)]),
    ("dot 3d-2d", dnp.dot, [((2, 2, 3), R), ((3, 2), R)]),
    ("matmul", lambda a, b: a @ b, [((2, 3), R), ((3, 4), R)]),
    ("matmul batched", lambda a, b: a @ b, [((2, 3, 4), R), ((4, 2), R)]),
    ("matmul batch broadcast", dnp.matmul, [((2, 1, 2, 3), R), ((3, 3, 2), R)]),
    ("matmul 1d-3d", dnp.matmul, [((3,), R), ((2, 3, 2), R)]),
    ("matmul 3d-1d", dnp.matmul, [((2, 2, 3), R), ((3,), R)]),
    ("rmatmul numpy left", lambda b: np.ones((2, 3)) @ b, [((3, 2), R)]),
    ("einsum matmul", lambda a, b: dnp.einsum("ij,jk->ik", a, b), [((2, 3), R), ((3, 2), R)]),
    ("einsum ellipsis", lambda a, b: dnp.einsum("...ij,...jk->...ik", a, b), [((2, 2, 3), R), ((3, 2), R)]),
    ("einsum implicit", lambda a, b: dnp.einsum("ij,jk", a, b), [((2, 3), R), ((3, 2), R)]),
    ("einsum reduce inside", lambda a, b: dnp.einsum("ijk,k->i", a, b), [((2, 3, 2), R), ((2,), R)]),
    ("einsum three operands", lambda a, b, c: dnp.einsum("i,ij,j->", a, b, c), [((2,), R), ((2, 3), R), ((3,), R)]),
    ("tensordot", lambda a, b: dnp.tensordot(a, b, axes=([1, 2], [0, 1])), [((2, 3, 2), R), ((3, 2, 2), R)]),
    ("outer", dnp.outer, [((3,), R), ((2,), R)]),
    ("inner", dnp.inner, [((2, 3), R), ((3,), R)]),
    ("vdot", dnp.vdot, [((2, 3), R), ((2, 3), R)]),
    ("cross", dnp.cross, [((2, 3), R), ((2, 3), R)]),
    ("trace", dnp.trace, [((3, 3), R)]),
    ("diagonal offset", lambda x: dnp.diagonal(x, 1), [((3, 4), R)]),
    # linear algebra
    ("solve vector", dnp.linalg.solve, [((3, 3), "matrix"), ((3,), R)]),
    ("solve matrix", dnp.linalg.solve, [((3, 3), "matrix"), ((3, 2), R)]),
    ("solve batched", dnp.linalg.solve, [((2, 3, 3), "matrix"), ((2, 3, 1), R)]),
    ("inv", dnp.linalg.inv, [((3, 3), "matrix")]),
    ("inv batched", dnp.linalg.inv, [((2, 2, 2), "matrix")]),
    ("det", dnp.linalg.det, [((3, 3), "matrix")]),
    ("det batched", dnp.linalg.det, [((2, 3, 3), "matrix")]),
    ("slogdet", lambda a: dnp.linalg.slogdet(a)[1], [((3, 3), "matrix")]),
    ("cholesky", lambda a: dnp.linalg.cholesky(a @ a.T + 3.0 * np.eye(3)), [((3, 3), R)]),
    ("cholesky batched", lambda a: dnp.linalg.cholesky(a @ dnp.swapaxes(a, 1, 2) + np.eye(2)), [((2, 2, 2), R)]),
    # shapes
    ("reshape", lambda x: dnp.reshape(x, (3, -1)), [((2, 3), R)]),
    ("method reshape", lambda x: x.reshape(6) * 1.0, [((2, 3), R)]),
    ("transpose", lambda x: dnp.transpose(x, (2, 0, 1)), [((2, 3, 4), R)]),
    ("T", lambda x: x.T, [((2, 3), R)]),
    ("swapaxes", lambda x: dnp.swapaxes(x, 0, 2), [((2, 3, 4), R)]),
    ("moveaxis", lambda x: dnp.moveaxis(x, 0, -1), [((2, 3, 4), R)]),
    ("concatenate", lambda x, y: dnp.concatenate([x, y, x], axis=1), [((2, 3), R), ((2, 1), R)]),
    ("stack", lambda x, y: dnp.stack([x, y], axis=1), [((3,), R), ((3,), R)]),
    ("hstack", lambda x, y: dnp.hstack([x, y]), [((3,), R), ((2,), R)]),
    ("vstack", lambda x, y: dnp.vstack([x, y]), [((3,), R), ((2, 3), R)]),
    ("split", lambda x: dnp.split(x, [1, 3], axis=1)[1] * 2.0, [((2, 4), R)]),
    ("squeeze", lambda x: dnp.squeeze(x), [((1, 3, 1), R)]),
    ("expand_dims", lambda x: dnp.expand_dims(x, 1), [((3,), R)]),
    ("broadcast_to", lambda x: dnp.broadcast_to(x, (2, 3)), [((3,), R)]),
    ("flip", lambda x: dnp.flip(x, axis=0), [((3, 2), R)]),
    ("array of traced", lambda x, y: dnp.array([[x, y], [y * x, 1.0]]), [((), R), ((), R)]),
    # indexing, gather and scatter
    ("slice", lambda x: x[1:, ::2], [((3, 4), R)]),
    ("negative step", lambda x: x[::-1], [((4,), R)]),
    ("int and newaxis", lambda x: x[1, None, ...], [((3, 2), R)]),
    ("fancy repeats", lambda x: x[[0, 0, 2]], [((3, 2), R)]),
    ("fancy 2d", lambda x: x[np.array([0, 1]), np.array([2, 2])], [((2, 3), R)]),
    ("boolean mask", lambda x: x[np.array([True, False, True])], [((3,), R)]),
    ("take", lambda x: dnp.take(x, [2, 0, 2], axis=1), [((2, 3), R)]),
    ("iterate", lambda x: dnp.stack([xi * i for i, xi in enumerate(x)]), [((3, 2), R)]),
    ("index_add", lambda x, v: dnp.index_add(x, [0, 2, 0], v), [((4,), R), ((3,), R)]),
    ("index_set", lambda x, v: dnp.index_set(x, slice(1, 3), v), [((4,), R), ((2,), R)]),
    ("index_set int", lambda x, v: dnp.index_set(x, 1, v), [((3,), R), ((), R)]),
    ("segment_sum", lambda d: dnp.segment_sum(d, np.array([2, 0, 2, 1]), 4), [((4, 2), R)]),
    ("diag build", lambda v: dnp.diag(v, -1), [((3,), R)]),
    ("diag extract", lambda m: dnp.diag(m, 1), [((3, 3), R)]),
    ("tril", dnp.tril, [((3, 3), R)]),
    ("triu k", lambda x: dnp.triu(x, 1), [((3, 3), R)]),
    # numpy functions on traced values dispatch to diffsim.numpy
    ("numpy ufunc dispatch", lambda x: np.sin(x) * np.exp(x), [((3,), R)]),
    ("numpy function dispatch", lambda x: np.sum(np.tanh(x), axis=0), [((2, 3), R)]),
]


@pytest.mark.parametrize("name,fun,specs", TABLE, ids=[row[0] for row in TABLE])
def test_check_grads(name, fun, specs):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    args = [make(shape, domain, rng) for shape, domain in specs]
    ds.check_grads(fun, args, order=2, modes=("rev", "fwd"))


@pytest.mark.parametrize("name,fun,specs", TABLE, ids=[row[0] for row in TABLE])
def test_value_matches_numpy(name, fun, specs):
    """Traced evaluation gives exactly what plain evaluation gives."""
    rng = np.random.default_rng(1)
    args = [make(shape, domain, rng) for shape, domain in specs]
    plain = fun(*args)
    traced, _ = ds.vjp(fun, *args)
    np.testing.assert_array_equal(np.asarray(traced), np.asarray(plain))
