"""Differentiable ``numpy.linalg``: ``dnp.linalg.solve``, ``inv``, ``det``, ``slogdet``,
``cholesky``, ``norm``. All functions accept stacks of matrices (leading batch axes).

>>> import diffsim as ds, diffsim.numpy as dnp
>>> A = dnp.array([[2.0, 0.0], [0.0, 4.0]])
>>> round(float(ds.grad(lambda a: dnp.linalg.det(a))(A)[0, 0]), 12)  # d det / dA = det * A^-T
4.0
"""

from __future__ import annotations

import numpy as _np

from . import primitives as _p
from .errors import NonDifferentiableError
from .tracer import raw

__all__ = ["solve", "inv", "det", "slogdet", "cholesky", "norm"]


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
    return _np.linalg.slogdet(raw(a))[0], _p.logabsdet(a)


def cholesky(a):
    """Lower Cholesky factor of a symmetric positive-definite matrix (Murray 2016 rules)."""
    return _p.cholesky(a)


def norm(x, ord=None, axis=None, keepdims=False):
    """``numpy.linalg.norm`` for vector orders (None, 2, 1, inf, -inf, p) and the Frobenius,
    1 and inf matrix norms. The spectral (2) and nuclear norms need an SVD and raise.
    The gradient at ``x = 0`` of the 2-norm is undefined (NaN), as in JAX."""
    from . import numpy as dnp

    nd = dnp.ndim(x)
    if axis is None and (ord is None or nd == 1):
        axes = None if ord is None else (0,)
    else:
        axes = dnp._axes(axis if axis is not None else tuple(range(nd)), nd)
    if ord in (None, "fro", 2) and (axes is None or len(axes) == 1 or ord != 2):
        return dnp.sqrt(dnp.sum(x * x, axis=axes, keepdims=keepdims))
    if len(axes) == 1:
        ax = axes
        if ord == _np.inf:
            return dnp.max(dnp.abs(x), axis=ax, keepdims=keepdims)
        if ord == -_np.inf:
            return dnp.min(dnp.abs(x), axis=ax, keepdims=keepdims)
        if ord == 0:
            return dnp.sum(raw(x) != 0, axis=ax, keepdims=keepdims)
        return dnp.sum(dnp.abs(x) ** ord, axis=ax, keepdims=keepdims) ** (1.0 / ord)
    r, c = axes
    if ord in (1, -1):
        col = dnp.sum(dnp.abs(x), axis=r, keepdims=True)
        red = dnp.max if ord == 1 else dnp.min
        out = red(col, axis=c, keepdims=True)
    elif ord in (_np.inf, -_np.inf):
        row = dnp.sum(dnp.abs(x), axis=c, keepdims=True)
        red = dnp.max if ord == _np.inf else dnp.min
        out = red(row, axis=r, keepdims=True)
    else:
        raise NonDifferentiableError(
            f"norm with ord={ord!r} over a matrix needs singular values, which diffsim does not "
            "differentiate; use ord='fro', 1 or inf")
    return out if keepdims else dnp.squeeze(out, axis=axes)
