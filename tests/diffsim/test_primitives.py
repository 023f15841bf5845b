"""Every differentiable function of diffsim.numpy in one declarative table.

Each row: a name, a function ``f(m, *args)`` written once against a numpy-like module ``m``,
and its arguments as (shape, domain). The same row is

- run through ``check_grads`` with ``m = diffsim.numpy`` in both modes to second order
  (finite differences are the reference), with real and complex inputs;
- evaluated traced (under ``ds.vjp``) with ``m = diffsim.numpy`` and compared with ``m = numpy``
  on plain inputs: numpy's own functions are the reference for every forward value.

Rows whose function numpy lacks give their numpy reference as ``(f_dnp, f_np)``. Domains keep
finite differences away from kinks and singularities.
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
    if domain == "distinct":  # well-separated values: max/min/abs/clip/sort have no ties or kinks near
        n = int(np.prod(shape))
        return (rng.permutation(n) - n / 2 + 0.3).reshape(shape) * 0.37
    if domain == "matrix":  # well-conditioned square (stack)
        a = rng.standard_normal(shape)
        return a + 3.0 * np.eye(shape[-1])
    if domain == "cplx":
        return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    if domain == "cright":  # away from the branch cut of log and sqrt
        return rng.uniform(0.5, 2.0, shape) + 1j * rng.uniform(-1.0, 1.0, shape)
    raise ValueError(domain)


def softplus_np(x):
    return np.logaddexp(x, 0.0)


def logsumexp_np(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def index_add_np(x, idx, v):
    out = x.copy()
    np.add.at(out, idx, v)
    return out


def index_set_np(x, idx, v):
    out = x.copy()
    out[idx] = v
    return out


def segment_sum_np(d, ids, n):
    out = np.zeros((n,) + d.shape[1:])
    np.add.at(out, ids, d)
    return out


R, C = "real", "cplx"
SEG = np.array([2, 0, 2, 1])
#    name                         f(m, *args)                                           argument specs
TABLE = [
    # elementwise unary
    ("negative", lambda m, x: -x, [((3,), R)]),
    ("exp", lambda m, x: m.exp(x), [((2, 3), R)]),
    ("exp complex", lambda m, x: m.exp(x), [((3,), C)]),
    ("exp2", lambda m, x: m.exp2(x), [((3,), R)]),
    ("log", lambda m, x: m.log(x), [((3,), "pos")]),
    ("log complex", lambda m, x: m.log(x), [((3,), "cright")]),
    ("log2", lambda m, x: m.log2(x), [((3,), "pos")]),
    ("log10", lambda m, x: m.log10(x), [((3,), "pos")]),
    ("log1p", lambda m, x: m.log1p(x), [((3,), "pos")]),
    ("expm1", lambda m, x: m.expm1(x), [((3,), R)]),
    ("sin", lambda m, x: m.sin(x), [((3,), R)]),
    ("sin complex", lambda m, x: m.sin(x), [((3,), C)]),
    ("cos", lambda m, x: m.cos(x), [((3,), R)]),
    ("tan", lambda m, x: m.tan(x), [((3,), "unit")]),
    ("arcsin", lambda m, x: m.arcsin(x), [((3,), "unit")]),
    ("arccos", lambda m, x: m.arccos(x), [((3,), "unit")]),
    ("arctan", lambda m, x: m.arctan(x), [((3,), R)]),
    ("sinh", lambda m, x: m.sinh(x), [((3,), R)]),
    ("cosh", lambda m, x: m.cosh(x), [((3,), R)]),
    ("tanh", lambda m, x: m.tanh(x), [((3,), R)]),
    ("tanh complex", lambda m, x: m.tanh(x), [((3,), "cright")]),
    ("arcsinh", lambda m, x: m.arcsinh(x), [((3,), R)]),
    ("arccosh", lambda m, x: m.arccosh(x), [((3,), "gt1")]),
    ("arctanh", lambda m, x: m.arctanh(x), [((3,), "unit")]),
    ("sqrt", lambda m, x: m.sqrt(x), [((3,), "pos")]),
    ("sqrt complex", lambda m, x: m.sqrt(x), [((3,), "cright")]),
    ("cbrt", lambda m, x: m.cbrt(x), [((3,), "pos")]),
    ("square", lambda m, x: m.square(x), [((3,), R)]),
    ("reciprocal", lambda m, x: m.reciprocal(x), [((3,), "pos")]),
    ("abs", lambda m, x: m.abs(x), [((4,), "distinct")]),
    ("abs complex", lambda m, x: m.abs(x), [((4,), C)]),
    ("real imag conj", lambda m, x: m.real(x) * m.imag(x) + m.conj(x) * x.real, [((3,), C)]),
    ("conjugate", lambda m, x: m.conjugate(x), [((3,), C)]),
    ("angle", lambda m, x: m.angle(x), [((3,), C)]),
    ("angle deg", lambda m, x: m.angle(x, deg=True), [((3,), "cright")]),
    ("abs of exp complex", lambda m, x: m.abs(m.exp(x)), [((3,), C)]),
    ("deg2rad rad2deg", lambda m, x: m.deg2rad(x) + m.rad2deg(x) + m.radians(x) * m.degrees(x), [((3,), R)]),
    ("sinc", lambda m, x: m.sinc(x), [((3,), R)]),
    ("softplus", (dnp.softplus, softplus_np), [((5,), R)]),
    ("nan_to_num finite", lambda m, x: m.nan_to_num(x), [((3,), R)]),
    ("scalar input", lambda m, x: m.sin(x) * m.exp(x), [((), R)]),
    # elementwise binary, with broadcasting
    ("add broadcast", lambda m, x, y: x + y, [((3, 4), R), ((4,), R)]),
    ("sub outer broadcast", lambda m, x, y: x - y, [((3, 1), R), ((1, 4), R)]),
    ("mul by scalar array", lambda m, x, y: x * y, [((2, 3), R), ((), R)]),
    ("mul complex", lambda m, x, y: x * y, [((2, 3), C), ((3,), C)]),
    ("mul real by complex", lambda m, x, y: x * y, [((2, 3), R), ((3,), C)]),
    ("div", lambda m, x, y: x / y, [((3,), R), ((2, 3), "pos")]),
    ("div complex", lambda m, x, y: x / y, [((3,), C), ((3,), "cright")]),
    ("power both", lambda m, x, y: x ** y, [((3,), "pos"), ((3,), R)]),
    ("power const", lambda m, x: x ** 3.0, [((3,), R)]),
    ("power complex", lambda m, x: x ** 2.5, [((3,), "cright")]),
    ("rpow", lambda m, x: 2.0 ** x, [((3,), R)]),
    ("maximum", lambda m, x, y: m.maximum(x, y), [((4,), "distinct"), ((4,), R)]),
    ("minimum broadcast", lambda m, x, y: m.minimum(x, y), [((2, 3), "distinct"), ((3,), R)]),
    ("fmax fmin", lambda m, x, y: m.fmax(x, y) * m.fmin(x, y), [((4,), "distinct"), ((4,), R)]),
    ("arctan2", lambda m, x, y: m.arctan2(x, y), [((3,), R), ((3,), "pos")]),
    ("hypot", lambda m, x, y: m.hypot(x, y), [((3,), R), ((2, 3), R)]),
    ("logaddexp", lambda m, x, y: m.logaddexp(x, y), [((3,), R), ((3,), R)]),
    ("logaddexp2", lambda m, x, y: m.logaddexp2(x, y), [((3,), R), ((2, 3), R)]),
    ("mod", lambda m, x: m.mod(x * 3.0, 1.3) + x % 0.7 + m.remainder(x, -0.9), [((4,), "distinct")]),
    ("fmod", lambda m, x, y: m.fmod(x * 3.0, y), [((4,), "distinct"), ((4,), "pos")]),
    ("remainder by a traced divisor", lambda m, x, y: m.remainder(x * 3.0, y), [((4,), "distinct"), ((4,), "gt1")]),
    ("where", lambda m, x, y: m.where(np.array([True, False, True]), x, y), [((2, 3), R), ((3,), R)]),
    ("select", lambda m, x: m.select([x < -0.5, x > 0.5], [x * 2.0, m.sin(x)], 0.1 * x), [((6,), "distinct")]),
    ("clip", lambda m, x: m.clip(x, -1.0, 1.0), [((6,), "distinct")]),
    # reductions
    ("sum all", lambda m, x: m.sum(x), [((2, 3), R)]),
    ("sum axis", lambda m, x: m.sum(x, axis=1), [((2, 3, 4), R)]),
    ("sum axes keepdims", lambda m, x: m.sum(x, axis=(0, 2), keepdims=True), [((2, 3, 4), R)]),
    ("sum negative axis", lambda m, x: m.sum(x, axis=-1), [((2, 3), R)]),
    ("sum complex", lambda m, x: m.sum(x, axis=0), [((2, 3), C)]),
    ("mean", lambda m, x: m.mean(x, axis=0), [((3, 2), R)]),
    ("mean of list", lambda m, x: m.mean([x[0], x[1] * 2.0]), [((2,), R)]),
    ("average weights", lambda m, x, w: m.average(x, axis=0, weights=w), [((3, 2), R), ((3,), "pos")]),
    ("prod", lambda m, x: m.prod(x, axis=1), [((2, 3), R)]),
    ("prod with a zero", lambda m, x: m.prod(x * np.array([1.0, 0.0, 1.0])), [((3,), R)]),
    ("prod with zeros along axis 0", lambda m, x: m.prod(x * np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]), axis=0),
     [((3, 2), R)]),
    ("cumprod", lambda m, x: m.cumprod(x, axis=1), [((2, 3), R)]),
    ("max axis", lambda m, x: m.max(x, axis=1), [((3, 4), "distinct")]),
    ("min all", lambda m, x: m.min(x), [((3, 4), "distinct")]),
    ("ptp", lambda m, x: m.ptp(x, axis=0), [((3, 4), "distinct")]),
    ("std", lambda m, x: m.std(x), [((5,), R)]),
    ("std complex", lambda m, x: m.std(x, axis=0), [((5, 2), C)]),
    ("var ddof", lambda m, x: m.var(x, axis=0, ddof=1), [((4, 2), R)]),
    ("var complex", lambda m, x: m.var(x), [((4,), C)]),
    ("cumsum", lambda m, x: m.cumsum(x, axis=1), [((2, 4), R)]),
    ("cumsum flat", lambda m, x: m.cumsum(x), [((2, 3), R)]),
    ("logsumexp", (lambda x: dnp.logsumexp(x, axis=1), lambda x: logsumexp_np(x, axis=1)), [((2, 4), R)]),
    ("logsumexp keepdims", (lambda x: dnp.logsumexp(x, keepdims=True), lambda x: logsumexp_np(x, keepdims=True)),
     [((3,), R)]),
    ("trace", lambda m, x: m.trace(x), [((3, 3), R)]),
    # norms, vector and matrix, every ord
    ("norm", lambda m, x: m.linalg.norm(x), [((4,), R)]),
    ("norm complex", lambda m, x: m.linalg.norm(x), [((4,), C)]),
    ("norm fro", lambda m, x: m.linalg.norm(x, "fro"), [((2, 3), R)]),
    ("norm axis", lambda m, x: m.linalg.norm(x, axis=1), [((2, 3), R)]),
    ("norm 1 vector", lambda m, x: m.linalg.norm(x, 1), [((4,), "distinct")]),
    ("norm inf vector", lambda m, x: m.linalg.norm(x, np.inf), [((4,), "distinct")]),
    ("norm -inf vector", lambda m, x: m.linalg.norm(x, -np.inf), [((4,), "distinct")]),
    ("norm p=3", lambda m, x: m.linalg.norm(x, 3), [((4,), "pos")]),
    ("norm p=3 complex", lambda m, x: m.linalg.norm(x, 3), [((4,), C)]),
    # column scales 1, 10, 100 keep the column sums of |x| far apart: no kink of max nearby
    ("norm 1 matrix", lambda m, x: m.linalg.norm(x * np.array([1.0, 10.0, 100.0]), 1), [((3, 3), "pos")]),
    ("norm inf matrix", lambda m, x: m.linalg.norm(x * np.array([[1.0], [10.0], [100.0]]), np.inf),
     [((3, 3), "pos")]),
    ("norm 2 matrix", lambda m, x: m.linalg.norm(x, 2), [((3, 2), R)]),
    ("norm -2 matrix", lambda m, x: m.linalg.norm(x, -2), [((3, 3), R)]),
    ("norm nuc", lambda m, x: m.linalg.norm(x, "nuc"), [((2, 3), R)]),
    ("norm nuc axes", lambda m, x: m.linalg.norm(x, "nuc", axis=(0, 2)), [((2, 2, 3), R)]),
    # products
    ("dot 1d", lambda m, x, y: m.dot(x, y), [((3,), R), ((3,), R)]),
    ("dot 2d-1d", lambda m, x, y: m.dot(x, y), [((2, 3), R), ((3,), R)]),
    ("dot 3d-2d", lambda m, x, y: m.dot(x, y), [((2, 2, 3), R), ((3, 2), R)]),
    ("matmul", lambda m, a, b: a @ b, [((2, 3), R), ((3, 4), R)]),
    ("matmul stack by one matrix", lambda m, a, b: a @ b, [((2, 3, 4), R), ((4, 5), R)]),
    ("matmul complex", lambda m, a, b: a @ b, [((2, 3), C), ((3, 2), R)]),
    ("matmul batched", lambda m, a, b: a @ b, [((2, 3, 4), R), ((4, 2), R)]),
    ("matmul batch broadcast", lambda m, a, b: m.matmul(a, b), [((2, 1, 2, 3), R), ((3, 3, 2), R)]),
    ("matmul 1d-2d", lambda m, a, b: m.matmul(a, b), [((3,), R), ((3, 4), R)]),
    ("matmul 1d-3d", lambda m, a, b: m.matmul(a, b), [((3,), R), ((2, 3, 2), R)]),
    ("matmul 3d-1d", lambda m, a, b: m.matmul(a, b), [((2, 2, 3), R), ((3,), R)]),
    ("rmatmul numpy left", lambda m, b: np.ones((2, 3)) @ b, [((3, 2), R)]),
    ("einsum matmul", lambda m, a, b: m.einsum("ij,jk->ik", a, b), [((2, 3), R), ((3, 2), R)]),
    ("einsum complex", lambda m, a, b: m.einsum("ij,jk->ik", a, b), [((2, 3), C), ((3, 2), C)]),
    ("einsum ellipsis", lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b), [((2, 2, 3), R), ((3, 2), R)]),
    ("einsum implicit", lambda m, a, b: m.einsum("ij,jk", a, b), [((2, 3), R), ((3, 2), R)]),
    ("einsum reduce inside", lambda m, a, b: m.einsum("ijk,k->i", a, b), [((2, 3, 2), R), ((2,), R)]),
    ("einsum three operands", lambda m, a, b, c: m.einsum("i,ij,j->", a, b, c), [((2,), R), ((2, 3), R), ((3,), R)]),
    ("einsum trace", lambda m, a: m.einsum("ii", a), [((3, 3), R)]),
    ("einsum diagonal", lambda m, a, b: m.einsum("iij,j->i", a, b), [((2, 2, 3), R), ((3,), R)]),
    ("einsum sublists", lambda m, a, b: m.einsum(a, [0, 1], b, [1, 2], [0, 2]), [((2, 3), R), ((3, 2), R)]),
    ("einsum sublists implicit", lambda m, a, b: m.einsum(a, [Ellipsis, 1], b, [1]), [((2, 3), R), ((3,), R)]),
    ("einsum outer", lambda m, a, b: m.einsum("i,j", a, b), [((2,), R), ((3,), R)]),
    ("tensordot", lambda m, a, b: m.tensordot(a, b, axes=([1, 2], [0, 1])), [((2, 3, 2), R), ((3, 2, 2), R)]),
    ("outer", lambda m, x, y: m.outer(x, y), [((3,), R), ((2,), R)]),
    ("inner", lambda m, x, y: m.inner(x, y), [((2, 3), R), ((3,), R)]),
    ("vdot", lambda m, x, y: m.vdot(x, y), [((2, 3), R), ((2, 3), R)]),
    ("vdot complex", lambda m, x, y: m.vdot(x, y), [((3,), C), ((3,), C)]),
    ("kron", lambda m, x, y: m.kron(x, y), [((2, 3), R), ((2, 2), R)]),
    ("kron ranks", lambda m, x, y: m.kron(x, y), [((3,), R), ((2, 2), R)]),
    ("cross", lambda m, x, y: m.cross(x, y), [((2, 3), R), ((2, 3), R)]),
    ("cross axes", lambda m, x, y: m.cross(x, y, axisa=0, axisb=1, axisc=0), [((3, 2), R), ((2, 3), R)]),
    ("cross 2 and 3", lambda m, x, y: m.cross(x, y), [((2, 2), R), ((2, 3), R)]),
    ("diagonal offset", lambda m, x: m.diagonal(x, 1), [((3, 4), R)]),
    # linear algebra
    ("solve vector", lambda m, a, b: m.linalg.solve(a, b), [((3, 3), "matrix"), ((3,), R)]),
    ("solve matrix", lambda m, a, b: m.linalg.solve(a, b), [((3, 3), "matrix"), ((3, 2), R)]),
    ("solve batched", lambda m, a, b: m.linalg.solve(a, b), [((2, 3, 3), "matrix"), ((2, 3, 1), R)]),
    ("solve batched by a vector", lambda m, a, b: m.linalg.solve(a, b), [((2, 3, 3), "matrix"), ((3,), R)]),
    ("solve n by n stack by a vector", lambda m, a, b: m.linalg.solve(a, b), [((3, 3, 3), "matrix"), ((3,), R)]),
    ("solve complex", lambda m, a, b: m.linalg.solve(a, b), [((2, 2), "matrix"), ((2,), C)]),
    ("inv", lambda m, a: m.linalg.inv(a), [((3, 3), "matrix")]),
    ("inv batched", lambda m, a: m.linalg.inv(a), [((2, 2, 2), "matrix")]),
    ("det", lambda m, a: m.linalg.det(a), [((3, 3), "matrix")]),
    ("det batched", lambda m, a: m.linalg.det(a), [((2, 3, 3), "matrix")]),
    ("det two batch axes", lambda m, a: m.linalg.det(a), [((2, 2, 3, 3), "matrix")]),
    ("slogdet", lambda m, a: m.linalg.slogdet(a)[1], [((3, 3), "matrix")]),
    ("slogdet two batch axes", lambda m, a: m.linalg.slogdet(a)[1], [((2, 2, 3, 3), "matrix")]),
    ("slogdet complex", lambda m, a: m.linalg.slogdet(a + 3.0 * np.eye(3))[1], [((3, 3), C)]),
    ("cholesky", lambda m, a: m.linalg.cholesky(a @ a.T + 3.0 * np.eye(3)), [((3, 3), R)]),
    ("cholesky batched", lambda m, a: m.linalg.cholesky(a @ m.swapaxes(a, 1, 2) + np.eye(2)), [((2, 2, 2), R)]),
    ("cholesky two batch axes", lambda m, a: m.linalg.cholesky(a @ m.swapaxes(a, -1, -2) + np.eye(2)),
     [((2, 3, 2, 2), R)]),
    ("eigh values", lambda m, a: m.linalg.eigh(a + a.T)[0], [((3, 3), R)]),
    # eigenvectors up to sign: V diag(f(w)) V^T is sign-free
    ("eigh vectors", lambda m, a: (lambda w, v: (v * m.sin(w)) @ v.T)(*m.linalg.eigh(a + a.T)), [((3, 3), R)]),
    ("eigh upper triangle", lambda m, a: m.linalg.eigvalsh(a, UPLO="U") ** 3, [((3, 3), R)]),
    ("eigh lower triangle", lambda m, a: m.linalg.eigh(a)[0], [((3, 3), R)]),
    ("eigh complex", lambda m, a: (lambda w, v: (v * m.sin(w)) @ m.conj(v.T))(
        *m.linalg.eigh(a + m.conj(a.T))), [((3, 3), C)]),
    ("eigvals", lambda m, a: m.sort(m.abs(m.linalg.eigvals(a))), [((3, 3), "matrix")]),
    ("eig vectors", lambda m, a: m.abs(m.linalg.eig(a)[1]) + m.abs(m.linalg.eig(a)[0]), [((3, 3), R)]),
    ("eigh upper triangle batched", lambda m, a: m.linalg.eigvalsh(a, UPLO="U") ** 3, [((2, 3, 3), R)]),
    # two batch axes of different lengths: the triangle read must take n from the last axis, not the second
    ("eigh upper triangle two batch axes", lambda m, a: m.linalg.eigvalsh(a, UPLO="U") ** 3, [((2, 3, 2, 2), R)]),
    ("eig vectors batched", lambda m, a: m.abs(m.linalg.eig(a)[1]) + m.abs(m.linalg.eig(a)[0])[..., None, :],
     [((2, 3, 3), R)]),
    # two batch axes of different lengths: eig's rules must take n from the last axis, not the second
    ("eig two batch axes", lambda m, a: m.abs(m.linalg.eig(a)[1]) + m.abs(m.linalg.eig(a)[0])[..., None, :],
     [((2, 3, 2, 2), R)]),
    ("eigvalsh batched", lambda m, a: m.linalg.eigvalsh(a + m.swapaxes(a, -1, -2)), [((2, 3, 3), R)]),
    ("svd values", lambda m, a: m.linalg.svd(a, compute_uv=False), [((3, 2), R)]),
    ("svd vectors", lambda m, a: (lambda u, s, vh: (u * m.exp(s)) @ vh)(*m.linalg.svd(a, full_matrices=False)),
     [((3, 2), R)]),
    ("svd wide", lambda m, a: (lambda u, s, vh: (u * s ** 2) @ vh)(*m.linalg.svd(a, full_matrices=False)),
     [((2, 3), R)]),
    ("svd complex", lambda m, a: (lambda u, s, vh: (m.abs(u), s, m.abs(vh)))(*m.linalg.svd(a, full_matrices=False)),
     [((3, 2), C)]),
    ("svd values complex", lambda m, a: m.linalg.svd(a, compute_uv=False), [((2, 3), C)]),
    ("norm nuc complex", lambda m, x: m.linalg.norm(x, "nuc"), [((3, 3), C)]),
    ("eig complex", lambda m, a: (lambda w, v: (w, m.abs(v)))(*m.linalg.eig(a)), [((3, 3), C)]),
    ("pinv", lambda m, a: m.linalg.pinv(a), [((3, 2), R)]),
    ("pinv wide", lambda m, a: m.linalg.pinv(a), [((2, 3), R)]),  # A A⁺ = I: the rule's other term
    ("pinv batched", lambda m, a: m.linalg.pinv(a), [((2, 3, 2), R)]),
    # Q and R exactly as numpy returns them (the rows above fix the signs, which hides a sign flip of both)
    ("qr as numpy returns it", lambda m, a: tuple(m.linalg.qr(a)), [((3, 2), R)]),
    ("qr", lambda m, a: (lambda q, r: m.concatenate([(q * m.sign(m.diagonal(r))).ravel(),
                                                     (r * m.sign(m.diagonal(r))[:, None]).ravel()]))(
        *m.linalg.qr(a)), [((3, 2), R)]),
    ("qr batched", lambda m, a: (lambda q, r: m.concatenate([
        (q * m.sign(m.diagonal(r, axis1=-2, axis2=-1))[..., None, :]).reshape(-1),
        (r * m.sign(m.diagonal(r, axis1=-2, axis2=-1))[..., :, None]).reshape(-1)]))(*m.linalg.qr(a)),
     [((2, 3, 2), R)]),
    ("matrix_power", lambda m, a: m.linalg.matrix_power(a, 3), [((3, 3), R)]),
    ("matrix_power negative", lambda m, a: m.linalg.matrix_power(a, -2), [((2, 2), "matrix")]),
    ("lstsq", lambda m, a, b: m.linalg.lstsq(a, b, rcond=None)[0], [((4, 2), R), ((4,), R)]),
    ("lstsq residuals", lambda m, a, b: m.linalg.lstsq(a, b, rcond=None)[1], [((4, 2), R), ((4, 2), R)]),
    # fft
    ("fft", lambda m, x: m.fft.fft(x), [((5,), R)]),
    ("fft complex n", lambda m, x: m.fft.fft(x, n=6), [((2, 4), C)]),
    ("ifft ortho", lambda m, x: m.fft.ifft(x, norm="ortho", axis=0), [((4, 2), C)]),
    ("rfft", lambda m, x: m.fft.rfft(x), [((6,), R)]),
    ("rfft odd forward", lambda m, x: m.fft.rfft(x, n=5, norm="forward"), [((2, 6), R)]),
    # rfft's cotangent is zero-padded to the signal's length: not for a length of 2 (no padding), and the
    # length read along the transformed axis (a square input has the same length along the other one)
    ("rfft of length 2", lambda m, x: m.fft.rfft(x), [((3, 2), R)]),
    ("rfft of a square matrix", lambda m, x: m.fft.rfft(x), [((4, 4), R)]),
    ("irfft", lambda m, x: m.fft.irfft(x), [((4,), C)]),
    ("irfft even n not a multiple of 3", lambda m, x: m.fft.irfft(x, n=8), [((5,), C)]),  # the Nyquist weight 1
    ("irfft along axis 0", lambda m, x: m.fft.irfft(x, n=6, axis=0), [((4, 3), C)]),
    ("irfft odd n", lambda m, x: m.fft.irfft(x, n=7, norm="ortho"), [((2, 4), C)]),
    ("fft2", lambda m, x: m.fft.fft2(x), [((3, 4), C)]),
    ("ifft2", lambda m, x: m.fft.ifft2(x, s=(2, 5)), [((3, 4), R)]),
    ("fftn", lambda m, x: m.fft.fftn(x, axes=(0, 2)), [((2, 3, 2), C)]),
    ("ifftn", lambda m, x: m.fft.ifftn(x), [((2, 3), C)]),
    ("rfftn", lambda m, x: m.fft.rfftn(x), [((3, 4), R)]),
    ("irfftn", lambda m, x: m.fft.irfftn(x, s=(3, 5), axes=(0, 1)), [((3, 3), C)]),
    ("fftshift", lambda m, x: m.fft.fftshift(x) * m.fft.ifftshift(x, axes=0), [((3, 4), R)]),
    ("fft real part", lambda m, x: m.real(m.fft.fft(x)) + m.abs(m.fft.fft(x)), [((4,), R)]),
    # shapes
    ("reshape", lambda m, x: m.reshape(x, (3, -1)), [((2, 3), R)]),
    ("method reshape", lambda m, x: x.reshape(6) * 1.0, [((2, 3), R)]),
    ("transpose", lambda m, x: m.transpose(x, (2, 0, 1)), [((2, 3, 4), R)]),
    ("T", lambda m, x: x.T, [((2, 3), R)]),
    ("swapaxes", lambda m, x: m.swapaxes(x, 0, 2), [((2, 3, 4), R)]),
    ("moveaxis", lambda m, x: m.moveaxis(x, 0, -1), [((2, 3, 4), R)]),
    ("moveaxis many", lambda m, x: m.moveaxis(x, [0, 1], [-1, 0]), [((2, 3, 4), R)]),
    ("rollaxis", lambda m, x: m.rollaxis(x, 2, 0) * m.rollaxis(x, 0, 3).sum(), [((2, 3, 2), R)]),
    ("concatenate", lambda m, x, y: m.concatenate([x, y, x], axis=1), [((2, 3), R), ((2, 1), R)]),
    ("stack", lambda m, x, y: m.stack([x, y], axis=1), [((3,), R), ((3,), R)]),
    ("stack of scalars", lambda m, x: m.stack([x[0], x[1] * x[0]]), [((2,), R)]),
    ("hstack", lambda m, x, y: m.hstack([x, y]), [((3,), R), ((2,), R)]),
    ("vstack", lambda m, x, y: m.vstack([x, y]), [((3,), R), ((2, 3), R)]),
    ("dstack", lambda m, x, y: m.dstack([x, y]), [((2, 3), R), ((2, 3), R)]),
    ("column_stack", lambda m, x, y: m.column_stack([x, y]), [((3,), R), ((3, 2), R)]),
    ("atleast", lambda m, x: m.atleast_3d(x) * m.atleast_2d(x).sum() + m.atleast_1d(x).sum(), [((), R)]),
    ("split", lambda m, x: m.split(x, [1, 3], axis=1)[1] * 2.0, [((2, 4), R)]),
    ("array_split", lambda m, x: m.array_split(x, 3)[0] * m.array_split(x, 3)[2].sum(), [((5,), R)]),
    ("hsplit vsplit", lambda m, x: m.hsplit(x, 2)[1] * m.vsplit(x, 2)[0].sum(), [((2, 4), R)]),
    ("squeeze", lambda m, x: m.squeeze(x), [((1, 3, 1), R)]),
    ("expand_dims", lambda m, x: m.expand_dims(x, 1), [((3,), R)]),
    ("broadcast_to", lambda m, x: m.broadcast_to(x, (2, 3)), [((3,), R)]),
    ("broadcast_arrays", lambda m, x, y: m.broadcast_arrays(x, y)[0] * m.broadcast_arrays(x, y)[1],
     [((3, 1), R), ((2,), R)]),
    ("flip", lambda m, x: m.flip(x, axis=0), [((3, 2), R)]),
    ("flipud fliplr", lambda m, x: m.flipud(x) * m.fliplr(x), [((3, 2), R)]),
    ("rot90", lambda m, x: m.rot90(x) + m.rot90(x, 2).T * 0.0 + m.rot90(x, -1, axes=(1, 0)), [((2, 3), R)]),
    ("roll", lambda m, x: m.roll(x, 1) * m.roll(x, -2, axis=1), [((2, 3), R)]),
    ("repeat", lambda m, x: m.repeat(x, [1, 2], axis=0) * 1.0 + m.repeat(x, 2).sum(), [((2, 3), R)]),
    ("tile", lambda m, x: m.tile(x, (2, 1, 2)), [((2, 3), R)]),
    ("pad constant", lambda m, x: m.pad(x, ((1, 0), (2, 1)), constant_values=0.5), [((2, 3), R)]),
    ("pad reflect", lambda m, x: m.pad(x, 2, mode="reflect"), [((4,), R)]),
    ("pad wrap edge", lambda m, x: m.pad(x, (1, 2), mode="wrap") + m.pad(x, (1, 2), mode="edge"), [((3,), R)]),
    ("append", lambda m, x, y: m.append(x, y), [((2, 2), R), ((3,), R)]),
    ("append axis", lambda m, x, y: m.append(x, y, axis=0), [((2, 3), R), ((1, 3), R)]),
    ("diff", lambda m, x: m.diff(x, n=2, axis=0), [((4, 2), R)]),
    ("diff prepend", lambda m, x: m.diff(x, prepend=0.5, append=x[:1]), [((4,), R)]),
    ("sort", lambda m, x: m.sort(x) * np.arange(4.0), [((4,), "distinct")]),
    ("sort axis", lambda m, x: m.sort(x, axis=0), [((3, 2), "distinct")]),
    ("take_along_axis", lambda m, x: m.take_along_axis(x, np.array([[1, 0, 1]]), axis=0), [((2, 3), R)]),
    ("linspace", lambda m, a, b: m.linspace(a, b, 5), [((), R), ((), R)]),
    ("linspace arrays axis", lambda m, a, b: m.linspace(a, b, 4, endpoint=False, axis=1), [((2,), R), ((2,), R)]),
    ("logspace", lambda m, a, b: m.logspace(a, b, 4, base=2.0), [((), R), ((), R)]),
    ("meshgrid", lambda m, x, y: m.meshgrid(x, y)[0] * m.meshgrid(x, y)[1], [((3,), R), ((2,), R)]),
    ("meshgrid ij", lambda m, x, y: m.meshgrid(x, y, indexing="ij")[1] ** 2, [((3,), R), ((2,), R)]),
    ("array of traced", lambda m, x, y: m.array([[x, y], [y * x, 1.0]]), [((), R), ((), R)]),
    ("array of nested tuples", lambda m, x: m.array((((x[0], x[1]), [x[1], 2.0]), [(x[0] * x[1], x[1]), (1.0, x[0])])),
     [((2,), R)]),
    ("stack of nested", lambda m, x: m.stack([(x[0], x[1] * 2.0), [x[1], x[0] * x[1]]], axis=1), [((2,), R)]),
    ("mean of nested tuple", lambda m, x: m.mean(((x[0], x[1]), (x[1] ** 2, 3.0)), axis=0), [((2,), R)]),
    # indexing, gather and scatter
    ("slice", lambda m, x: x[1:, ::2], [((3, 4), R)]),
    ("negative step", lambda m, x: x[::-1], [((4,), R)]),
    ("int and newaxis", lambda m, x: x[1, None, ...], [((3, 2), R)]),
    ("fancy repeats", lambda m, x: x[[0, 0, 2]], [((3, 2), R)]),
    ("fancy 2d", lambda m, x: x[np.array([0, 1]), np.array([2, 2])], [((2, 3), R)]),
    ("boolean mask", lambda m, x: x[np.array([True, False, True])], [((3,), R)]),
    ("take", lambda m, x: m.take(x, [2, 0, 2], axis=1), [((2, 3), R)]),
    ("iterate", lambda m, x: m.stack([xi * i for i, xi in enumerate(x)]), [((3, 2), R)]),
    ("index_add", (lambda x, v: dnp.index_add(x, [0, 2, 0], v), lambda x, v: index_add_np(x, [0, 2, 0], v)),
     [((4,), R), ((3,), R)]),
    ("index_set", (lambda x, v: dnp.index_set(x, slice(1, 3), v), lambda x, v: index_set_np(x, slice(1, 3), v)),
     [((4,), R), ((2,), R)]),
    ("index_set int", (lambda x, v: dnp.index_set(x, 1, v), lambda x, v: index_set_np(x, 1, v)),
     [((3,), R), ((), R)]),
    ("segment_sum", (lambda d: dnp.segment_sum(d, SEG, 4), lambda d: segment_sum_np(d, SEG, 4)), [((4, 2), R)]),
    ("diag build", lambda m, v: m.diag(v, -1), [((3,), R)]),
    ("diag extract", lambda m, x: m.diag(x, 1), [((3, 3), R)]),
    ("tril", lambda m, x: m.tril(x), [((3, 3), R)]),
    ("triu k", lambda m, x: m.triu(x, 1), [((3, 3), R)]),
    # numpy functions on traced values dispatch to diffsim.numpy
    ("numpy ufunc dispatch", lambda m, x: np.sin(x) * np.exp(x) + np.hypot(x, 1.0), [((3,), R)]),
    ("numpy function dispatch", lambda m, x: np.sum(np.tanh(x), axis=0) + np.roll(x, 1, axis=0)[0], [((2, 3), R)]),
    ("numpy fft dispatch", lambda m, x: np.abs(np.fft.rfft(x)) + np.linalg.norm(x), [((4,), R)]),
    ("numpy stack of list", lambda m, x: np.stack([x[0], x[1] * 2.0]), [((2, 2), R)]),
]

IDS = [row[0] for row in TABLE]


def _funs(row):
    f = row[1]
    if isinstance(f, tuple):
        return f
    return (lambda *a: f(dnp, *a)), (lambda *a: f(np, *a))


def _args(specs, rng):
    return [make(shape, domain, rng) for shape, domain in specs]


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_rule_matches_finite_differences_to_second_order_in_both_modes(row):
    name, _, specs = row
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ds.check_grads(_funs(row)[0], _args(specs, rng), order=2, modes=("rev", "fwd"))


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [np.asarray(o) for o in out]
    return [np.asarray(out)]


@pytest.mark.parametrize("row", TABLE, ids=IDS)
def test_traced_value_equals_numpy(row):
    """The traced evaluation (under ds.vjp) gives what numpy's own functions give."""
    name, _, specs = row
    f_dnp, f_np = _funs(row)
    args = _args(specs, np.random.default_rng(1))
    want = f_np(*args)
    got, _ = ds.vjp(f_dnp, *args)
    for g, w in zip(_flat(got), _flat(want)):
        assert g.shape == w.shape, name
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("row", [r for r in TABLE if any(d in ("cplx", "cright") for _, d in r[2])],
                         ids=[r[0] for r in TABLE if any(d in ("cplx", "cright") for _, d in r[2])])
def test_real_inputs_get_real_gradients(row):
    """The complex rows with their complex inputs replaced by real ones: a real gradient."""
    name, _, specs = row
    f = _funs(row)[0]
    real_specs = [(s, "pos") if d in ("cplx", "cright") else (s, d) for s, d in specs]
    args = _args(real_specs, np.random.default_rng(2))
    out, back = ds.vjp(f, *args)
    cts = back(np.ones_like(out) if not isinstance(out, (tuple, list)) else type(out)(np.ones_like(o) for o in out))
    for c in cts:
        assert not np.iscomplexobj(c), name


def test_every_scalar_helper_a_code_template_calls_is_registered_under_the_name_its_source_defines():
    # ds.compile pastes HELPERS[name] into a kernel that calls name(...): the key must be the def's own name
    import re

    from diffsim.primitives import HELPERS, REGISTRY
    called = {n for p in REGISTRY.values() if p.template for n in re.findall(r"\b(_\w+)\(", p.template)}
    assert called and called <= set(HELPERS)
    for name, source in HELPERS.items():
        assert re.match(rf"def {name}\(", source), name
