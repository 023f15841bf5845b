"""Differentiable ``numpy.linalg``: solve, inv, det, slogdet, cholesky, eigh, eigvalsh, eig,
eigvals, svd, svdvals, pinv, qr, matrix_power, lstsq, norm (every ord), multi_dot. All accept
stacks of matrices (leading batch axes).

Where a derivative does not exist diffsim says so rather than returning a number: eigenvector
and singular-vector derivatives need distinct eigen/singular values (a repeated one gives
inf/NaN, as in JAX); ``eig``'s eigenvectors are not differentiated (their phase is arbitrary),
its eigenvalues are; QR is differentiated in the reduced form of a tall or square matrix.
The decompositions are differentiated for real matrices.

>>> import diffsim as ds, diffsim.numpy as dnp
>>> A = dnp.array([[2.0, 0.0], [0.0, 4.0]])
>>> round(float(ds.grad(lambda a: dnp.linalg.det(a))(A)[0, 0]), 12)  # d det / dA = det * A^-T
4.0
>>> ds.grad(lambda a: dnp.sum(dnp.linalg.eigvalsh(a) ** 2))(A)  # Σλ² = ‖A‖_F², gradient 2A
array([[4., 0.],
       [0., 8.]])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as _np

from . import primitives as _p
from .errors import NonDifferentiableError
from .tracer import is_traced, raw

__all__ = ["solve", "inv", "det", "slogdet", "cholesky", "norm", "eigh", "eigvalsh", "eig", "eigvals", "svd",
           "svdvals", "pinv", "qr", "matrix_power", "lstsq", "multi_dot", "matrix_rank", "cond", "trace",
           "matrix_norm", "vector_norm", "outer", "cross", "diagonal", "matmul", "vecdot", "matrix_transpose",
           "LinAlgError"]

LinAlgError = _np.linalg.LinAlgError


class EighResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class SVDResult(NamedTuple):
    U: object
    S: object
    Vh: object


class QRResult(NamedTuple):
    Q: object
    R: object


class EigResult(NamedTuple):
    eigenvalues: object
    eigenvectors: object


class SlogdetResult(NamedTuple):
    sign: object
    logabsdet: object


def _dnp():
    from . import numpy as dnp

    return dnp


def _real_only(a, name: str) -> None:
    if is_traced(a) and _p.is_complex(a):
        raise NonDifferentiableError(f"dnp.linalg.{name} is differentiated for real matrices only; "
                                     "split a complex problem into its real and imaginary parts")


def solve(a, b):
    """Solve ``a @ x = b`` (``b`` a vector or a matrix of right-hand sides)."""
    return _p.solve(a, b)


def inv(a):
    """Matrix inverse."""
    return _p.inv(a)


def det(a):
    """Determinant; its gradient is ``det(a) * inv(a).T``."""
    return _p.det(a)


def slogdet(a):
    """``(sign, log|det a|)``; the sign is a constant, ``log|det|`` is differentiable."""
    return SlogdetResult(_np.linalg.slogdet(raw(a))[0], _p.logabsdet(a))


def cholesky(a, upper=False):
    """Lower Cholesky factor of a symmetric positive-definite matrix (Murray 2016 rules)."""
    _real_only(a, "cholesky")
    L = _p.cholesky(a)
    return _p._swap(L) if upper else L


def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors of a symmetric (Hermitian) matrix, of which
    numpy reads one triangle (``UPLO``): the gradient is that of the function numpy computes,
    so it sits on that triangle. Eigenvectors need distinct eigenvalues."""
    if UPLO not in ("L", "U"):
        raise ValueError("UPLO must be 'L' or 'U'")
    if not is_traced(a):
        return _np.linalg.eigh(a, UPLO=UPLO)
    n = _np.shape(raw(a))[-1]
    w, v = _p.unpack(_p.eigh(a, UPLO=UPLO), [(n,), (n, n)])
    return EighResult(w, v)


def eigvalsh(a, UPLO="L"):
    """Eigenvalues of a symmetric (Hermitian) matrix (ascending)."""
    return eigh(a, UPLO)[0] if is_traced(a) else _np.linalg.eigvalsh(a, UPLO)


def eig(a):
    """Eigenvalues and unit-norm eigenvectors of a general matrix (complex in general).
    Differentiable where the eigenvalues are distinct; an eigenvector's phase is arbitrary
    (numpy's choice), so differentiate only phase-invariant functions of it (|v|, v vᴴ)."""
    if not is_traced(a):
        return _np.linalg.eig(a)
    n = _np.shape(raw(a))[-1]
    w, v = _p.unpack(_p.eig(a), [(n,), (n, n)])
    return EigResult(w, v)


def eigvals(a):
    """Eigenvalues of a general matrix; differentiable where they are distinct."""
    return eig(a)[0] if is_traced(a) else _np.linalg.eigvals(a)


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition. Differentiated in the reduced form (``full_matrices``
    has no effect on a traced matrix that is square); singular vectors need distinct singular
    values, singular values alone are differentiable wherever they are distinct."""
    if not is_traced(a):
        return _np.linalg.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, hermitian=hermitian)
    if not compute_uv:
        return _p.svdvals(a)
    m, n = _np.shape(raw(a))[-2:]
    if full_matrices and m != n:
        raise NonDifferentiableError("dnp.linalg.svd with full_matrices=True on a non-square matrix: the extra "
                                     "singular vectors are not unique; pass full_matrices=False")
    u, s, vh = _p.unpack(_p.svd(a), _p._svd_shapes(a))
    if _p.is_complex(s):  # packed with complex U and Vh; numpy's singular values are real
        s = _p.real(s)
    return SVDResult(u, s, vh)


def svdvals(x):
    """Singular values (descending)."""
    return svd(x, compute_uv=False)


def pinv(a, rcond=None, hermitian=False, **kwargs):
    """Moore-Penrose pseudo-inverse; differentiable where the rank is locally constant
    (Golub & Pereyra 1973)."""
    if rcond is not None:
        kwargs["rcond"] = rcond
    if not is_traced(a):
        return _np.linalg.pinv(a, hermitian=hermitian, **kwargs)
    _real_only(a, "pinv")
    return _p.pinv(a, **kwargs)


def qr(a, mode="reduced"):
    """QR decomposition; differentiated in the reduced form for m >= n (``mode`` 'reduced' or 'r')."""
    if not is_traced(a):
        return _np.linalg.qr(a, mode=mode)
    _real_only(a, "qr")
    m, n = _np.shape(raw(a))[-2:]
    if mode not in ("reduced", "r") or m < n:
        raise NonDifferentiableError(f"dnp.linalg.qr is differentiated for mode='reduced' or 'r' of a matrix with "
                                     f"at least as many rows as columns (got mode={mode!r}, shape {m}x{n}); "
                                     f"for a wide matrix differentiate qr of its transpose")
    q, r = _p.unpack(_p.qr(a), [(m, n), (n, n)])
    return r if mode == "r" else QRResult(q, r)


def matrix_power(a, n: int):
    """``a`` to the integer power ``n`` by repeated squaring (negative n: of the inverse)."""
    dnp = _dnp()
    if not is_traced(a):
        return _np.linalg.matrix_power(a, n)
    n = int(n)
    k = _np.shape(raw(a))[-1]
    if n < 0:
        a, n = inv(a), -n
    result = None
    base = a
    while n:
        if n & 1:
            result = base if result is None else dnp.matmul(result, base)
        n >>= 1
        if n:
            base = dnp.matmul(base, base)
    return result if result is not None else dnp.broadcast_to(_np.eye(k), _np.shape(raw(a)))


def lstsq(a, b, rcond=None):
    """Least squares ``(x, residuals, rank, s)`` as numpy; ``x`` = pinv(a) b, the residuals
    and the singular values are differentiable, the rank is a constant."""
    dnp = _dnp()
    if not (is_traced(a) or is_traced(b)):
        return _np.linalg.lstsq(a, b, rcond=rcond)
    av = _np.asarray(raw(a))
    m, n = av.shape
    x_, res_, rank, _ = _np.linalg.lstsq(av, _np.asarray(raw(b)), rcond=rcond)
    cutoff = {} if rcond is None else {"rcond": rcond}
    x = dnp.matmul(pinv(a, **cutoff) if rcond is None else _p.pinv(a, rcond=rcond), b)
    if rank == n and m > n:
        r = dnp.matmul(a, x) - b
        residuals = dnp.sum(r * r, axis=0)
        residuals = dnp.reshape(residuals, (1,)) if dnp.ndim(residuals) == 0 else residuals
    else:
        residuals = _np.zeros((0,), dtype=res_.dtype)
    return x, residuals, rank, svd(a, compute_uv=False)


def multi_dot(arrays):
    """``numpy.linalg.multi_dot`` (left to right)."""
    dnp = _dnp()
    out = arrays[0]
    for a in arrays[1:]:
        out = dnp.dot(out, a)
    return out


def matrix_rank(A, *args, **kwargs):
    """``numpy.linalg.matrix_rank`` (an integer: a constant)."""
    return _np.linalg.matrix_rank(raw(A), *args, **kwargs)


def cond(x, p=None):
    """``numpy.linalg.cond`` for p in None, 2, -2, 'fro', 'nuc', 1, -1, inf, -inf."""
    if p in (None, 2, -2):
        s = svd(x, compute_uv=False)
        dnp = _dnp()
        return dnp.max(s, axis=-1) / dnp.min(s, axis=-1) if p != -2 else dnp.min(s, axis=-1) / dnp.max(s, axis=-1)
    return norm(x, p, axis=(-2, -1)) * norm(inv(x), p, axis=(-2, -1))


def trace(x, offset=0, dtype=None):
    """``numpy.linalg.trace`` (of the last two axes)."""
    return _dnp().trace(x, offset, axis1=-2, axis2=-1)


def diagonal(x, offset=0):
    """``numpy.linalg.diagonal`` (of the last two axes)."""
    return _dnp().diagonal(x, offset, axis1=-2, axis2=-1)


def outer(x1, x2):
    """``numpy.linalg.outer``."""
    return _dnp().outer(x1, x2)


def cross(x1, x2, axis=-1):
    """``numpy.linalg.cross`` (3-vectors)."""
    return _dnp().cross(x1, x2, axis=axis)


def matmul(x1, x2):
    """``numpy.linalg.matmul``."""
    return _dnp().matmul(x1, x2)


def vecdot(x1, x2, axis=-1):
    """``numpy.linalg.vecdot``."""
    return _dnp().vecdot(x1, x2, axis=axis)


def matrix_transpose(x):
    """``numpy.linalg.matrix_transpose``."""
    return _dnp().matrix_transpose(x)


def _abs(x):
    dnp = _dnp()
    return dnp.abs(x)


def _abs2(x):
    dnp = _dnp()
    return dnp.real(x * dnp.conjugate(x)) if _p.is_complex(x) else x * x


def norm(x, ord=None, axis=None, keepdims=False):
    """``numpy.linalg.norm`` for every ord numpy accepts: vectors (None, 2, 1, inf, -inf, 0, any
    p) and matrices (None/'fro', 'nuc', 2, -2, 1, -1, inf, -inf); real and complex ``x``.
    The gradient at ``x = 0`` of the 2-norm is undefined (NaN), as in JAX; the spectral and
    nuclear norms need distinct singular values for their gradient."""
    dnp = _dnp()
    x = dnp._arr(x)
    nd = dnp.ndim(x)
    if axis is None:
        if ord is None:
            return dnp.sqrt(dnp.sum(_abs2(x), keepdims=keepdims))
        axes = (0,) if nd == 1 else (0, 1) if nd == 2 else None
        if axes is None:
            raise ValueError("improper number of dimensions to norm")
    else:
        axes = tuple(a % nd for a in ((axis,) if _np.isscalar(axis) else axis))
    if len(axes) == 1:
        ax = axes
        if ord is None or ord == 2:
            return dnp.sqrt(dnp.sum(_abs2(x), axis=ax, keepdims=keepdims))
        if ord == _np.inf:
            return dnp.max(_abs(x), axis=ax, keepdims=keepdims)
        if ord == -_np.inf:
            return dnp.min(_abs(x), axis=ax, keepdims=keepdims)
        if ord == 0:
            return dnp.sum((raw(x) != 0).astype(float), axis=ax, keepdims=keepdims)
        if isinstance(ord, str):
            raise ValueError(f"invalid norm order {ord!r} for vectors")
        if ord == 1:
            return dnp.sum(_abs(x), axis=ax, keepdims=keepdims)
        return dnp.sum(_abs(x) ** ord, axis=ax, keepdims=keepdims) ** (1.0 / ord)
    if len(axes) != 2:
        raise ValueError("improper number of dimensions to norm")
    r, c = axes
    if ord in (None, "fro", "f"):
        out = dnp.sqrt(dnp.sum(_abs2(x), axis=axes, keepdims=True))
    elif ord in (1, -1):
        col = dnp.sum(_abs(x), axis=r, keepdims=True)
        out = (dnp.max if ord == 1 else dnp.min)(col, axis=c, keepdims=True)
    elif ord in (_np.inf, -_np.inf):
        row = dnp.sum(_abs(x), axis=c, keepdims=True)
        out = (dnp.max if ord == _np.inf else dnp.min)(row, axis=r, keepdims=True)
    elif ord in (2, -2, "nuc"):
        moved = dnp.moveaxis(x, (r, c), (-2, -1))
        s = svd(moved, compute_uv=False)
        red = dnp.sum(s, axis=-1) if ord == "nuc" else (dnp.max if ord == 2 else dnp.min)(s, axis=-1)
        out = dnp.expand_dims(dnp.expand_dims(red, -1), -1)
        out = dnp.moveaxis(out, (-2, -1), (r, c)) if dnp.ndim(out) > 2 else out
    else:
        raise ValueError(f"invalid norm order {ord!r} for matrices")
    return out if keepdims else dnp.squeeze(out, axis=axes)


def matrix_norm(x, keepdims=False, ord="fro"):
    """``numpy.linalg.matrix_norm`` (over the last two axes)."""
    return norm(x, ord, axis=(-2, -1), keepdims=keepdims)


def vector_norm(x, axis=None, keepdims=False, ord=2):
    """``numpy.linalg.vector_norm`` (``axis=None`` flattens)."""
    if axis is None:
        return norm(_dnp().ravel(x), ord, axis=0, keepdims=False)
    return norm(x, ord, axis=axis, keepdims=keepdims)
