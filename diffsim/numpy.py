"""Differentiable drop-in for numpy: ``import diffsim.numpy as dnp``.

Every function here is either a primitive from :mod:`diffsim.primitives` (which holds all
derivative rules) or a short composition of them, so it needs no rule of its own. Functions
without a derivative (comparisons, ``floor``, ``argmax``, array creation) pass through and
return constants. Plain numpy functions called on traced values are dispatched here too; one
that diffsim does not cover raises :class:`~diffsim.errors.NonDifferentiableError` naming itself.
Structural functions (``roll``, ``repeat``, ``tile``, ``pad``, ``rot90``, ``sort``, ...) are
gathers whose index is computed by numpy's own function applied to the positions of the
elements, so they equal numpy exactly; their adjoint is a scatter-add.

Complex values follow JAX's and autograd's convention (see :mod:`diffsim.primitives`).

>>> import diffsim as ds, diffsim.numpy as dnp
>>> f = lambda x: dnp.sum(dnp.tanh(x) ** 2)
>>> g = ds.grad(f)(dnp.array([0.1, -0.4]))
>>> g.shape
(2,)
"""

from __future__ import annotations

import builtins
import string

import numpy as _np

from . import primitives as _p
from .errors import NonDifferentiableError
from .primitives import (  # noqa: F401  (re-exported primitives)
    absolute,
    add,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    cbrt,
    ceil,
    conjugate,
    cos,
    cosh,
    divide,
    equal,
    exp,
    exp2,
    expm1,
    floor,
    floor_divide,
    fmax,
    fmin,
    fmod,
    greater,
    greater_equal,
    hypot,
    imag,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logaddexp,
    logaddexp2,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    matmul,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    real,
    reciprocal,
    remainder,
    rint,
    sign,
    sin,
    sinh,
    sqrt,
    square,
    stop_gradient,
    subtract,
    tan,
    tanh,
    trunc,
)
from .tracer import SETITEM_HELP, Box, NondiffPrimitive, is_traced, raw

# every elementwise primitive under numpy's name: a declaration in primitives.py appears here,
# is dispatched from numpy's ufunc of that name and compiles with ds.compile, with nothing else
globals().update({n: p for n, p in _p.REGISTRY.items() if p.arity is not None and n not in globals()})

# ---------------------------------------------------------------- constants and pass-through

pi, e, inf, nan, newaxis, euler_gamma = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis, _np.euler_gamma
float64, float32, int64, int32, bool_ = _np.float64, _np.float32, _np.int64, _np.int32, _np.bool_
complex128, complex64, ndarray, dtype, finfo, iinfo = _np.complex128, _np.complex64, _np.ndarray, _np.dtype, \
    _np.finfo, _np.iinfo


def _nondiff(name: str) -> NondiffPrimitive:
    return NondiffPrimitive(name, getattr(_np, name))


(round, around, all, any, argmax, argmin, argsort, nonzero, count_nonzero, allclose, isclose, array_equal,
 shape, ndim, size, zeros_like, ones_like, empty_like, full_like, searchsorted, unique, heaviside, iscomplexobj,
 isrealobj, iscomplex, isreal, argwhere, flatnonzero, isscalar, digitize, signbit, isposinf, isneginf,
 array_equiv, lexsort, bincount) = map(_nondiff, (
    "round around all any argmax argmin argsort nonzero count_nonzero allclose isclose array_equal shape ndim "
    "size zeros_like ones_like empty_like full_like searchsorted unique heaviside iscomplexobj isrealobj "
    "iscomplex isreal argwhere flatnonzero isscalar digitize signbit isposinf isneginf array_equiv lexsort "
    "bincount").split())

zeros, ones, empty, full, eye, identity, tri = _np.zeros, _np.ones, _np.empty, _np.full, _np.eye, _np.identity, \
    _np.tri
arange, indices, diag_indices, tril_indices, triu_indices = _np.arange, _np.indices, _np.diag_indices, \
    _np.tril_indices, _np.triu_indices
broadcast_shapes, result_type, promote_types, can_cast = _np.broadcast_shapes, _np.result_type, \
    _np.promote_types, _np.can_cast

abs = fabs = absolute
conj = conjugate
mod = remainder
true_divide = divide
amax_p, amin_p = _p.amax, _p.amin


def _holds_traced(obj) -> bool:
    if is_traced(obj):
        return True
    return isinstance(obj, (list, tuple)) and builtins.any(_holds_traced(o) for o in obj)


def array(obj, dtype=None, copy=True, ndmin=0, **kwargs) -> object:
    """Like ``numpy.array``; nested lists and tuples that hold traced values are stacked
    differentiably. (``numpy.array`` itself cannot be intercepted: inside a differentiated
    function build arrays of traced values with ``dnp.array``.)

    >>> array([1.0, 2.0]).shape
    (2,)
    """
    if is_traced(obj):
        out = obj if dtype is None else obj.astype(dtype)
    elif isinstance(obj, (list, tuple)) and _holds_traced(obj):
        out = stack([array(o) for o in obj])
        if dtype is not None:
            out = out.astype(dtype)
    else:
        return _np.array(obj, dtype=dtype, copy=copy, ndmin=ndmin, **kwargs)
    while ndim(out) < ndmin:
        out = expand_dims(out, 0)
    return out


def asarray(obj, dtype=None, **kwargs) -> object:
    """Like ``numpy.asarray``; traced values (also inside lists) are kept traced."""
    if isinstance(obj, _np.ndarray):
        return _np.asarray(obj, dtype, **kwargs)
    return array(obj, dtype)


asanyarray = asarray


def _arr(a):
    """A list or tuple holding traced values as one traced array; anything else unchanged."""
    return array(a) if type(a) in (list, tuple) and _holds_traced(a) else a


class _RClass:
    """``numpy.r_`` (``c_``): concatenation along the first (last) axis by index syntax;
    arrays, scalars and slices (as ``arange``/``linspace``) of traced values or constants."""

    def __init__(self, columns: bool):
        self.columns = columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not builtins.any(is_traced(k) for k in items):
            return (_np.c_ if self.columns else _np.r_)[key]
        parts = []
        for k in items:
            if isinstance(k, slice):
                k = (_np.r_[k])
            elif isinstance(k, str):
                raise NotImplementedError("dnp.r_ / dnp.c_ with a directive string")
            k = _atleast(_arr(k), 1)
            if self.columns:
                k = reshape(k, (-1, 1)) if ndim(k) == 1 else k
            parts.append(k)
        return concatenate(parts, axis=-1 if self.columns else 0)


r_, c_ = _RClass(False), _RClass(True)
__version__ = _np.__version__


def copy(a, **kwargs):
    """``numpy.copy`` (traced values are immutable, so the value itself)."""
    return a if is_traced(a) else _np.copy(a, **kwargs)


def astype(x, dtype, **kwargs):
    """``numpy.astype``."""
    return x.astype(dtype) if is_traced(x) else _np.asarray(x).astype(dtype, **kwargs)


# ---------------------------------------------------------------- elementwise compositions


def where(condition, x=None, y=None):
    """``numpy.where``; differentiable in ``x`` and ``y`` (the branches), not in the condition.

    >>> where(array([True, False]), 1.0, 2.0)
    array([1., 2.])
    """
    if x is None and y is None:
        return nonzero(condition)
    return _p.where(raw(condition), x, y)


def clip(a, a_min=None, a_max=None, out=None, *, min=None, max=None):
    """``numpy.clip``; the gradient is 1 inside the interval, 0 outside (1/2 on its ends)."""
    if out is not None:
        raise NonDifferentiableError("dnp.clip does not write into out=; use its return value")
    lo = a_min if a_min is not None else min
    hi = a_max if a_max is not None else max
    if lo is not None:
        a = maximum(a, lo)
    if hi is not None:
        a = minimum(a, hi)
    return a


def softplus(x):
    """log(1 + exp(x)), stable for large |x|; its derivative is the logistic sigmoid."""
    return logaddexp(x, 0.0)


def logsumexp(a, axis=None, keepdims=False):
    """log(sum(exp(a))) along ``axis``, shifted by the (constant) maximum for stability.

    >>> float(logsumexp(array([0.0, 0.0])))  # log 2
    0.6931471805599453
    """
    axes = _axes(axis, ndim(a))
    m = _np.max(raw(a), axis=axes, keepdims=True)
    m = _np.where(_np.isfinite(m), m, 0.0)
    out = log(sum(exp(a - m), axis=axes, keepdims=True)) + m
    return out if keepdims else _squeeze_axes(out, axes, ndim(a))


def sinc(x):
    """sin(πx)/(πx) with sinc(0) = 1 (and the right derivative there)."""
    safe = where(raw(x) == 0, 1.0, x)
    return where(raw(x) == 0, 1.0, sin(pi * safe) / (pi * safe))


def deg2rad(x):
    """``numpy.deg2rad``."""
    return x * (pi / 180.0)


def rad2deg(x):
    """``numpy.rad2deg``."""
    return x * (180.0 / pi)


radians, degrees = deg2rad, rad2deg


def real_if_close(a, tol=100):
    """``numpy.real_if_close``: the real part when every imaginary part is within tol ulps of 0."""
    v = raw(a)
    if not _np.iscomplexobj(v):
        return a
    eps = _np.finfo(_np.asarray(v).real.dtype).eps * tol if tol > 1 else tol
    return real(a) if _np.all(_np.abs(_np.imag(v)) < eps) else a


def gradient(f, *varargs, axis=None, edge_order=1):
    """``numpy.gradient`` (uniform spacing per axis, given as scalars): central differences
    inside, one-sided first- or second-order ones at the edges."""
    nd = ndim(f)
    axes = tuple(range(nd)) if axis is None else tuple(int(x) % nd for x in
                                                       ((axis,) if _np.isscalar(axis) else axis))
    spacing = list(varargs) if varargs else [1.0] * len(axes)
    if len(spacing) == 1 and len(axes) > 1:
        spacing = spacing * len(axes)
    if builtins.any(ndim(h) != 0 for h in spacing):
        raise NotImplementedError("dnp.gradient takes scalar spacings only")
    outs = []
    for ax, h in zip(axes, spacing):
        f_ = moveaxis(f, ax, 0)
        n = _shape(f_)[0]
        if n < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, at least "
                             "(edge_order + 1) elements are required.")
        inner = (f_[2:] - f_[:-2]) / (2.0 * h)
        if edge_order == 1:
            first, last = (f_[1] - f_[0]) / h, (f_[-1] - f_[-2]) / h
        else:
            first = (-1.5 * f_[0] + 2.0 * f_[1] - 0.5 * f_[2]) / h
            last = (0.5 * f_[-3] - 2.0 * f_[-2] + 1.5 * f_[-1]) / h
        g = concatenate([expand_dims(first, 0), inner, expand_dims(last, 0)], axis=0)
        outs.append(moveaxis(g, 0, ax))
    return outs[0] if len(outs) == 1 else tuple(outs)


def positive(x):
    """``numpy.positive``."""
    return x


def angle(z, deg=False):
    """``numpy.angle``: the argument of ``z`` (``arctan2(imag z, real z)``)."""
    out = arctan2(imag(z), real(z))
    return rad2deg(out) if deg else out


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """``numpy.nan_to_num``; replaced entries are constants (zero derivative)."""
    v = raw(x)
    return where(_np.isfinite(v), x, _np.nan_to_num(v, nan=nan, posinf=posinf, neginf=neginf))


def select(condlist, choicelist, default=0):
    """``numpy.select``: the first choice whose condition holds, else ``default``."""
    if len(condlist) != len(choicelist):
        raise ValueError("select needs as many conditions as choices")
    out = default
    for c, v in reversed(list(zip(condlist, choicelist))):
        out = where(c, v, out)
    return out


def piecewise(x, condlist, funclist, *args, **kw):
    """``numpy.piecewise`` (functions are evaluated on all of ``x`` and selected by condition)."""
    if isinstance(condlist, _np.ndarray) and condlist.dtype == bool and condlist.ndim == ndim(x):
        condlist = [condlist]
    condlist = [raw(c) for c in condlist]
    if len(funclist) == len(condlist) + 1:
        condlist.append(~_np.any(condlist, axis=0))
    out = zeros_like(x, dtype=_np.result_type(raw(x), float))
    for c, f in zip(condlist, funclist):
        val = f(x, *args, **kw) if callable(f) else f
        out = where(c, val, out)
    return out

# ---------------------------------------------------------------- reductions


def _axes(axis, nd: int):
    """Normalise a numpy ``axis`` argument to None or a sorted tuple of non-negative ints."""
    if axis is None:
        return None
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        a = int(a)
        if not -nd <= a < builtins.max(nd, 1):
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {nd}")
        out.append(a % nd if nd else 0)
    return tuple(sorted(set(out)))


def _squeeze_axes(x, axes, nd):
    s = shape(x)
    keep = [n for i, n in enumerate(s) if axes is not None and i not in axes]
    return reshape(x, tuple(keep) if axes is not None else ())


def sum(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.sum`` (``axis`` may be an int or a tuple)."""
    a = _arr(a)
    return _p.sum_(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.prod``; its gradient is exact also when entries are zero."""
    a = _arr(a)
    return _p.prod(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def max(a, axis=None, out=None, keepdims=False, **kwargs):
    """``numpy.max``; the gradient is shared equally between tied maxima."""
    a = _arr(a)
    return _p.amax(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def min(a, axis=None, out=None, keepdims=False, **kwargs):
    """``numpy.min``; the gradient is shared equally between tied minima."""
    a = _arr(a)
    return _p.amin(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


amax, amin = max, min


def ptp(a, axis=None, keepdims=False):
    """``numpy.ptp``: max − min."""
    return max(a, axis, keepdims=keepdims) - min(a, axis, keepdims=keepdims)


def _count(a, axes) -> int:
    s = shape(a)
    return int(_np.prod([s[i] for i in axes])) if axes is not None else int(_np.prod(s))


def mean(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    """``numpy.mean`` (NaN over an empty axis, as numpy, with numpy's warning)."""
    a = _arr(a)
    axes = _axes(axis, ndim(a))
    return sum(a, axes, keepdims=keepdims) / float(_count(a, axes))


def average(a, axis=None, weights=None, returned=False, keepdims=False):
    """``numpy.average``; differentiable in ``a`` and ``weights``."""
    a = _arr(a)
    if weights is None:
        avg = mean(a, axis, keepdims=keepdims)
        scl = float(_count(a, _axes(axis, ndim(a))))
    else:
        w = weights
        if ndim(w) == 1 and ndim(a) > 1 and axis is not None:
            s = [1] * ndim(a)
            s[int(axis) % ndim(a)] = -1
            w = reshape(w, s)
        scl = sum(w * ones_like(a), axis, keepdims=keepdims)
        avg = sum(a * w, axis, keepdims=keepdims) / scl
    return (avg, scl) if returned else avg


def _abs2(d):
    return real(d * conjugate(d)) if _p.is_complex(d) else d * d


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """``numpy.var`` (real for complex input: the mean of |x − mean|²)."""
    a = _arr(a)
    axes = _axes(axis, ndim(a))
    d = a - mean(a, axes, keepdims=True)
    return sum(_abs2(d), axes, keepdims=keepdims) / float(_count(a, axes) - ddof)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
    """``numpy.std``. Over a single element it is identically 0, and so is its gradient."""
    a = _arr(a)
    v = var(a, axis, ddof=ddof, keepdims=keepdims)
    if _count(a, _axes(axis, ndim(a))) == 1:  # var ≡ 0 there; sqrt'(0) would turn that into NaN
        return v * 0.0
    return sqrt(v)


def cumsum(a, axis=None, dtype=None, out=None):
    """``numpy.cumsum`` (``axis=None`` flattens first)."""
    if axis is None:
        return _p.cumsum(ravel(a), axis=0)
    return _p.cumsum(a, axis=_axes(axis, ndim(a))[0])


def cumprod(a, axis=None, dtype=None, out=None):
    """``numpy.cumprod`` (a running product; exact where entries are zero)."""
    if axis is None:
        a, axis = ravel(a), 0
    axis = _axes(axis, ndim(a))[0]
    parts = moveaxis(a, axis, 0)
    acc, outs = None, []
    for i in range(shape(parts)[0]):
        acc = parts[i] if acc is None else acc * parts[i]
        outs.append(acc)
    if not outs:
        return a
    return moveaxis(stack(outs), 0, axis)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """``numpy.trace``."""
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)

# ---------------------------------------------------------------- shape


def reshape(a, newshape=None, order="C", *, shape=None):
    """``numpy.reshape`` (C order)."""
    if order != "C":
        raise NotImplementedError("dnp.reshape supports order='C' only")
    newshape = shape if newshape is None else newshape
    s = _shape(a)
    newshape = (newshape,) if isinstance(newshape, (int, _np.integer)) else tuple(int(n) for n in newshape)
    if -1 in newshape:
        known = int(_np.prod([n for n in newshape if n != -1]))
        newshape = tuple(int(_np.prod(s)) // builtins.max(known, 1) if n == -1 else n for n in newshape)
    if int(_np.prod(newshape)) != int(_np.prod(s)):
        raise ValueError(f"cannot reshape an array of shape {s} into shape {newshape}")
    return _p.reshape(a, shape=newshape)


_shape = shape


def ravel(a, order="C"):
    """``numpy.ravel``."""
    return reshape(a, (-1,), order)


def transpose(a, axes=None):
    """``numpy.transpose``."""
    nd = ndim(a)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(int(x) % nd for x in axes)
    return _p.transpose(a, axes=axes)


permute_dims = transpose


def matrix_transpose(x):
    """``numpy.matrix_transpose``: swap the last two axes."""
    return swapaxes(x, -1, -2)


def swapaxes(a, axis1, axis2):
    """``numpy.swapaxes``."""
    axes = list(range(ndim(a)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


def moveaxis(a, source, destination):
    """``numpy.moveaxis`` (one axis or sequences of axes)."""
    nd = ndim(a)
    src = [int(s) % nd for s in ([source] if _np.isscalar(source) else source)]
    dst = [int(d) % nd for d in ([destination] if _np.isscalar(destination) else destination)]
    if len(src) != len(dst):
        raise ValueError("moveaxis: source and destination must have the same number of elements")
    order = [n for n in range(nd) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, order)


def rollaxis(a, axis, start=0):
    """``numpy.rollaxis``."""
    n = ndim(a)
    axis %= n
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return a
    axes = list(range(n))
    axes.remove(axis)
    axes.insert(start, axis)
    return transpose(a, axes)


def expand_dims(a, axis):
    """``numpy.expand_dims``."""
    s = list(_shape(a))
    axes = [axis] if _np.isscalar(axis) else list(axis)
    out_nd = len(s) + len(axes)
    for ax in sorted(int(x) % out_nd for x in axes):
        s.insert(ax, 1)
    return reshape(a, s)


def squeeze(a, axis=None):
    """``numpy.squeeze``."""
    s = _shape(a)
    axes = _axes(axis, len(s))
    if axes is None:
        axes = tuple(i for i, n in enumerate(s) if n == 1)
    if builtins.any(s[i] != 1 for i in axes):
        raise ValueError(f"cannot squeeze an axis whose size is not 1 (shape {s}, axis {axis})")
    return reshape(a, tuple(n for i, n in enumerate(s) if i not in axes))


def broadcast_to(a, shape_, **kwargs):
    """``numpy.broadcast_to``."""
    shape_ = kwargs.get("shape", shape_)
    shape_ = (shape_,) if isinstance(shape_, (int, _np.integer)) else tuple(shape_)
    return _p.broadcast_to(a, shape=shape_) if _shape(a) != shape_ else a


def broadcast_arrays(*args):
    """``numpy.broadcast_arrays``."""
    s = _np.broadcast_shapes(*[_shape(a) for a in args])
    return [broadcast_to(a, s) for a in args]


def _atleast(a, nd):
    s = _shape(a)
    if len(s) >= nd:
        return a
    if nd == 1:
        return reshape(a, (1,))
    if nd == 2:
        return reshape(a, (1,) * (2 - len(s)) + s)
    return reshape(a, {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}[len(s)])


def atleast_1d(*arys):
    """``numpy.atleast_1d``."""
    out = [_atleast(_arr(a), 1) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """``numpy.atleast_2d``."""
    out = [_atleast(_arr(a), 2) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_3d(*arys):
    """``numpy.atleast_3d``."""
    out = [_atleast(_arr(a), 3) for a in arys]
    return out[0] if len(out) == 1 else out


def concatenate(arrays, axis=0, out=None, **kwargs):
    """``numpy.concatenate`` (``axis=None`` flattens first)."""
    arrays = [_arr(a) for a in arrays]
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    if not builtins.any(is_traced(a) for a in arrays):
        return _np.concatenate([_np.asarray(a) for a in arrays], axis=axis)
    return _p.concatenate(*arrays, axis=int(axis) % ndim(arrays[0]))


concat = concatenate


def stack(arrays, axis=0, out=None, **kwargs):
    """``numpy.stack``."""
    arrays = [_arr(a) for a in arrays]
    if not arrays:
        raise ValueError("need at least one array to stack")
    nd = ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % nd) for a in arrays], axis=axis % nd)


def hstack(tup, **kwargs):
    """``numpy.hstack``."""
    arrays = [_atleast(_arr(a), 1) for a in tup]
    return concatenate(arrays, axis=0 if ndim(arrays[0]) == 1 else 1)


def vstack(tup, **kwargs):
    """``numpy.vstack``."""
    return concatenate([_atleast(_arr(a), 2) for a in tup], axis=0)


row_stack = vstack


def dstack(tup):
    """``numpy.dstack``."""
    return concatenate([_atleast(_arr(a), 3) for a in tup], axis=2)


def column_stack(tup):
    """``numpy.column_stack``."""
    cols = [_arr(a) for a in tup]
    return concatenate([reshape(c, (-1, 1)) if ndim(c) < 2 else c for c in cols], axis=1)


def _split_at(a, bounds, axis):
    pre = (slice(None),) * (axis % ndim(a))
    return [_p.getitem(a, idx=pre + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def array_split(ary, indices_or_sections, axis=0):
    """``numpy.array_split`` (sections need not divide the axis equally)."""
    n = _shape(ary)[axis]
    if isinstance(indices_or_sections, (int, _np.integer)):
        each, extra = divmod(n, int(indices_or_sections))
        sizes = [0] + extra * [each + 1] + (int(indices_or_sections) - extra) * [each]
        bounds = list(_np.cumsum(sizes))
    else:
        bounds = [0] + [builtins.min(int(i), n) for i in indices_or_sections] + [n]
    return _split_at(ary, bounds, axis)


def split(ary, indices_or_sections, axis=0):
    """``numpy.split``."""
    n = _shape(ary)[axis]
    if isinstance(indices_or_sections, (int, _np.integer)) and n % indices_or_sections:
        raise ValueError(f"array split does not result in an equal division ({n} by {indices_or_sections})")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary, indices_or_sections):
    """``numpy.hsplit``."""
    return split(ary, indices_or_sections, axis=1 if ndim(ary) > 1 else 0)


def vsplit(ary, indices_or_sections):
    """``numpy.vsplit``."""
    return split(ary, indices_or_sections, axis=0)


def dsplit(ary, indices_or_sections):
    """``numpy.dsplit``."""
    return split(ary, indices_or_sections, axis=2)


# ---------------------------------------------------------------- gathers: numpy's own function on positions


def _gather(a, fn):
    """``fn(a)`` for a structural numpy function ``fn`` (one that only moves or repeats
    elements): numpy computes ``fn`` of the positions, diffsim gathers along them."""
    if not is_traced(a):
        return fn(a)
    idx = fn(_np.arange(size(a)).reshape(_shape(a)))
    return _p.getitem(ravel(a), idx=idx)


def _gather_many(arrays, fn):
    """As :func:`_gather` for a function of several arrays."""
    arrays = [_arr(a) for a in arrays]
    if not builtins.any(is_traced(a) for a in arrays):
        return fn(*arrays)
    offsets = _np.cumsum([0] + [size(a) for a in arrays])
    positions = [_np.arange(o, o + size(a)).reshape(_shape(a)) for o, a in zip(offsets, arrays)]
    flat = _p.concatenate(*[ravel(a) for a in arrays], axis=0)
    return _p.getitem(flat, idx=fn(*positions))


def flip(m, axis=None):
    """``numpy.flip``."""
    axes = _axes(axis, ndim(m)) or tuple(range(ndim(m)))
    return _p.getitem(m, idx=tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(ndim(m))))


def flipud(m):
    """``numpy.flipud``."""
    return flip(m, 0)


def fliplr(m):
    """``numpy.fliplr``."""
    return flip(m, 1)


def rot90(m, k=1, axes=(0, 1)):
    """``numpy.rot90``."""
    return _gather(m, lambda i: _np.rot90(i, k, axes))


def roll(a, shift, axis=None):
    """``numpy.roll``."""
    return _gather(a, lambda i: _np.roll(i, shift, axis))


def repeat(a, repeats, axis=None):
    """``numpy.repeat``."""
    return _gather(a, lambda i: _np.repeat(i, raw(repeats), axis))


def tile(A, reps):
    """``numpy.tile``."""
    return _gather(A, lambda i: _np.tile(i, reps))


def resize(a, new_shape):
    """``numpy.resize``."""
    return _gather(a, lambda i: _np.resize(i, new_shape))


def take(a, indices, axis=None, out=None, mode="raise"):
    """``numpy.take`` (gather); its adjoint is a scatter-add."""
    return _gather(a, lambda i: _np.take(i, raw(indices), axis=axis, mode=mode))


def take_along_axis(arr, indices, axis):
    """``numpy.take_along_axis``."""
    return _gather(arr, lambda i: _np.take_along_axis(i, raw(indices), axis))


def compress(condition, a, axis=None):
    """``numpy.compress``."""
    return _gather(a, lambda i: _np.compress(raw(condition), i, axis))


def extract(condition, arr):
    """``numpy.extract``."""
    return _gather(arr, lambda i: _np.extract(raw(condition), i))


def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal`` (the diagonal becomes the last axis)."""
    return _gather(a, lambda i: _np.diagonal(i, offset, axis1, axis2))


def sort(a, axis=-1, kind=None, order=None, **kwargs):
    """``numpy.sort``: a gather along ``argsort`` (a constant permutation), as JAX and autograd.

    >>> import diffsim as ds
    >>> ds.grad(lambda x: sort(x)[0] * 2.0)(array([3.0, 1.0, 2.0]))  # the minimum's position
    array([0., 2., 0.])
    """
    if axis is None:
        a, axis = ravel(a), 0
    order_ = _np.argsort(raw(a), axis=axis, kind="stable")
    return take_along_axis(a, order_, axis)


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """``numpy.partition`` (a gather along ``argpartition``, a constant permutation)."""
    if axis is None:
        a, axis = ravel(a), 0
    return take_along_axis(a, _np.argpartition(raw(a), kth, axis=axis), axis)


def append(arr, values, axis=None):
    """``numpy.append``."""
    return _gather_many([arr, values], lambda a, v: _np.append(a, v, axis))


def insert(arr, obj, values, axis=None):
    """``numpy.insert``."""
    return _gather_many([arr, values], lambda a, v: _np.insert(a, raw(obj), v, axis))


def delete(arr, obj, axis=None):
    """``numpy.delete``."""
    return _gather(arr, lambda i: _np.delete(i, raw(obj), axis))


def block(arrays):
    """``numpy.block``."""
    leaves = []

    def collect(x):
        if isinstance(x, list):
            return [collect(v) for v in x]
        leaves.append(x)
        return len(leaves) - 1

    nested = collect(arrays)

    def rebuild(x, pos):
        return [rebuild(v, pos) for v in x] if isinstance(x, list) else pos[x]

    return _gather_many(leaves, lambda *pos: _np.block(rebuild(nested, pos)))


_PAD_GATHER = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    """``numpy.pad`` for modes constant, edge, reflect, symmetric and wrap (a gather, and for
    constant mode the padding values, which are constants).

    >>> import diffsim as ds
    >>> ds.grad(lambda x: sum(pad(x, 1, mode="edge")))(array([1.0, 2.0]))  # each edge used twice
    array([2., 2.])
    """
    if not is_traced(array):
        return _np.pad(array, pad_width, mode=mode, **kwargs)
    pos = _np.arange(size(array)).reshape(_shape(array))
    if mode in _PAD_GATHER:
        return _p.getitem(ravel(array), idx=_np.pad(pos, pad_width, mode=mode, **kwargs))
    if mode != "constant":
        raise NonDifferentiableError(f"dnp.pad does not differentiate mode={mode!r}; use one of constant, "
                                     f"{', '.join(_PAD_GATHER)}")
    idx = _np.pad(pos, pad_width, mode="constant", constant_values=-1)
    fill = _np.pad(_np.zeros(_shape(array)), pad_width, mode="constant", **kwargs)
    inside = idx >= 0
    return where(inside, _p.getitem(ravel(array), idx=_np.where(inside, idx, 0)), fill)


def diff(a, n=1, axis=-1, prepend=None, append=None):
    """``numpy.diff`` (with ``prepend``/``append``)."""
    axis = int(axis) % ndim(a)
    parts = []
    for extra, first in ((prepend, True), (append, False)):
        if extra is not None:
            extra = _arr(extra)
            if ndim(extra) == 0:
                s = list(_shape(a))
                s[axis] = 1
                extra = broadcast_to(extra, tuple(s))
            parts.append((first, extra))
    pre = [e for f, e in parts if f]
    post = [e for f, e in parts if not f]
    if pre or post:
        a = concatenate(pre + [a] + post, axis=axis)
    lead = (slice(None),) * axis
    for _ in range(n):
        a = a[lead + (slice(1, None),)] - a[lead + (slice(None, -1),)]
    return a


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0, **kwargs):
    """``numpy.linspace``, differentiable in ``start`` and ``stop`` (same formula as numpy).

    >>> import diffsim as ds
    >>> float(ds.grad(lambda b: sum(linspace(0.0, b, 5)))(1.0))  # Σ t_k = 0 + 1/4 + ... + 1
    2.5
    """
    if not (is_traced(start) or is_traced(stop)):
        return _np.linspace(start, stop, num, endpoint, retstep, dtype, axis, **kwargs)
    num = int(num)
    div = (num - 1) if endpoint else num
    delta = stop - start
    t = _np.arange(0, num, dtype=float).reshape((-1,) + (1,) * ndim(delta))
    if div > 0:
        step = delta / float(div)
        y = (t / div) * delta if _np.any(raw(step) == 0) else t * step
    else:
        step = nan * delta
        y = t * delta
    y = y + start
    if endpoint and num > 1:
        y = concatenate([y[:-1], expand_dims(broadcast_to(stop, _shape(y)[1:]), 0)], axis=0)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if dtype is not None:
        y = y.astype(dtype)
    return (y, step) if retstep else y


def logspace(start, stop, num=50, endpoint=True, base=10.0, dtype=None, axis=0):
    """``numpy.logspace``, differentiable in ``start``, ``stop`` and ``base``."""
    if not (is_traced(start) or is_traced(stop) or is_traced(base)):
        return _np.logspace(start, stop, num, endpoint, base, dtype, axis)
    y = linspace(start, stop, num=num, endpoint=endpoint, axis=axis)
    if ndim(base) > 0:
        base = expand_dims(base, axis)
    out = power(base, y)
    return out.astype(dtype) if dtype is not None else out


def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """``numpy.geomspace`` for positive endpoints."""
    if not (is_traced(start) or is_traced(stop)):
        return _np.geomspace(start, stop, num, endpoint, dtype, axis)
    return exp(linspace(log(start), log(stop), num=num, endpoint=endpoint, axis=axis))


def meshgrid(*xi, copy=True, sparse=False, indexing="xy"):
    """``numpy.meshgrid`` on traced coordinate vectors."""
    if indexing not in ("xy", "ij"):
        raise ValueError("meshgrid: indexing must be 'xy' or 'ij'")
    nd = len(xi)
    out = [reshape(x, (1,) * i + (-1,) + (1,) * (nd - i - 1)) for i, x in enumerate(xi)]
    if indexing == "xy" and nd > 1:
        out[0] = reshape(out[0], (1, -1) + (1,) * (nd - 2))
        out[1] = reshape(out[1], (-1, 1) + (1,) * (nd - 2))
    if not sparse:
        out = broadcast_arrays(*out)
    return tuple(out)

# ---------------------------------------------------------------- indexing and scatter


def _index(idx):
    """Normalise an index: plain values, lists as integer arrays, boolean masks as nonzero."""
    items = idx if isinstance(idx, tuple) else (idx,)
    out = []
    for i in items:
        i = raw(i)
        if isinstance(i, list):
            i = _np.asarray(i)
        if isinstance(i, _np.ndarray) and i.dtype == bool:
            out.extend(_np.nonzero(i))
        else:
            out.append(i)
    return tuple(out) if isinstance(idx, tuple) or len(out) > 1 else out[0]


def diag(v, k=0):
    """``numpy.diag``: the k-th diagonal of a matrix, or a matrix with ``v`` on its k-th diagonal."""
    if not is_traced(v):
        return _np.diag(v, k)
    if ndim(v) == 2:
        return diagonal(v, k)
    if ndim(v) != 1:
        raise ValueError(f"diag needs a 1-D or 2-D input, got {ndim(v)} dimensions")
    n = shape(v)[0]
    m = n + builtins.abs(k)
    r = _np.arange(n)
    idx = (r, r + k) if k >= 0 else (r - k, r)
    return _p.untake(v, idx=idx, shape=(m, m))


def tril(m, k=0):
    """``numpy.tril``: the lower triangle (entries above the k-th diagonal zeroed)."""
    return _p.tril(m, k=k)


def triu(m, k=0):
    """``numpy.triu``: the upper triangle (entries below the k-th diagonal zeroed)."""
    return _p.triu(m, k=k)


def index_add(a, idx, values):
    """``a`` with ``values`` added at ``a[idx]`` (repeated indices accumulate): a new array.

    >>> index_add(zeros(3), [0, 0, 2], 1.0)
    array([2., 0., 1.])
    """
    idx = _index(idx)
    target = _np.zeros(shape(a))[idx]  # the shape values must broadcast to
    return a + _p.untake(broadcast_to(values, target.shape), idx=idx, shape=shape(a))


def index_set(a, idx, values):
    """``a`` with ``a[idx]`` replaced by ``values``: the functional form of ``a[idx] = values``.

    >>> index_set(zeros(3), 1, 5.0)
    array([0., 5., 0.])
    """
    idx = _index(idx)
    keep = _np.ones(shape(a))
    keep[idx] = 0.0
    return a * keep + index_add(_np.zeros(shape(a)), idx, values)


def segment_sum(data, segment_ids, num_segments=None):
    """Sum rows of ``data`` into ``num_segments`` bins: ``out[segment_ids[i]] += data[i]``.

    The scatter-add at the heart of atom graphs; its adjoint is the gather ``g[segment_ids]``.

    >>> segment_sum(array([1.0, 2.0, 3.0]), array([0, 2, 0]), 3)
    array([4., 0., 2.])
    """
    ids = _np.asarray(raw(segment_ids))
    if ids.ndim != 1 or not _np.issubdtype(ids.dtype, _np.integer):
        raise ValueError(f"segment_ids must be a 1-D integer array, got dtype {ids.dtype} and shape {ids.shape}")
    if ids.shape[0] != shape(data)[0]:
        raise ValueError(f"segment_ids has length {ids.shape[0]} but data has {shape(data)[0]} rows")
    if num_segments is None:
        num_segments = int(ids.max()) + 1 if ids.size else 0
    if ids.size and (ids.min() < 0 or ids.max() >= num_segments):
        raise ValueError(f"segment_ids must lie in [0, {num_segments}); got range [{ids.min()}, {ids.max()}]")
    return _p.segment_sum(data, segment_ids=ids, num_segments=int(num_segments))


# ---------------------------------------------------------------- products

_LETTERS = string.ascii_letters


def _einsum_sublists(operands):
    """numpy's sublist form ``einsum(A, [0, 1], B, [1, 2], [0, 2])`` as a subscripts string."""
    def letters(sub):
        return "".join("..." if s is Ellipsis else _LETTERS[int(s)] for s in sub)

    ops, subs = list(operands[0::2]), [letters(s) for s in operands[1::2]]
    ops = ops[:len(subs)]
    out = letters(operands[-1]) if len(operands) % 2 == 1 else None
    return ",".join(subs) + ("->" + out if out is not None else ""), ops


def _einsum_normalise(subscripts: str, ndims: list[int]) -> str:
    """Explicit einsum subscripts without ellipses ('...ij,jk' -> 'Aij,jk->Aik')."""
    subscripts = subscripts.replace(" ", "")
    ins, arrow, out = subscripts.partition("->")
    ins = ins.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum subscripts name {len(ins)} operands but {len(ndims)} were given")
    used = set(subscripts)
    free = [c for c in _LETTERS if c not in used]
    n_ell = [nd - len(s.replace("...", "")) if "..." in s else 0 for s, nd in zip(ins, ndims)]
    width = builtins.max(n_ell) if n_ell else 0
    ell = "".join(free[:width])
    ins = [s.replace("...", ell[width - k:] if k else "") for s, k in zip(ins, n_ell)]
    if not arrow:
        counts = {c: "".join(ins).count(c) for c in set("".join(ins))}
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    for s, nd in zip(ins, ndims):
        if len(s) != nd:
            raise ValueError(f"einsum subscript '{s}' does not match an operand with {nd} dimensions")
    return ",".join(ins) + "->" + out


def _einsum_diagonal(x, sub: str):
    """Operand ``x`` with subscript ``sub`` that repeats an index ('ii', 'iji'): its diagonal,
    with one axis per distinct index (a gather), and the reduced subscript."""
    uniq = "".join(dict.fromkeys(sub))
    s = _shape(x)
    sizes = {}
    for c, n in zip(sub, s):
        if sizes.setdefault(c, n) != n:
            raise ValueError(f"einsum: index '{c}' has sizes {sizes[c]} and {n} in one operand")
    grids = _np.indices([sizes[c] for c in uniq], sparse=True)
    idx = tuple(grids[uniq.index(c)] for c in sub)
    return _p.getitem(x, idx=idx), uniq


def einsum(*operands, out=None, optimize=False, **kwargs):
    """``numpy.einsum`` in every form numpy accepts (explicit and implicit output, ellipses,
    repeated indices for diagonals and traces, the sublist form); differentiable in every
    operand. ``optimize`` is accepted and ignored (contraction order is numpy's).

    >>> einsum("ij,j->i", eye(2), array([1.0, 2.0]))
    array([1., 2.])
    >>> float(einsum("ii", array([[1.0, 2.0], [3.0, 4.0]])))
    5.0
    """
    if out is not None:
        raise NonDifferentiableError("dnp.einsum does not write into out=; use its return value")
    if isinstance(operands[0], str):
        subscripts, ops = operands[0], [_arr(o) for o in operands[1:]]
    else:
        subscripts, ops = _einsum_sublists(operands)
        ops = [_arr(o) for o in ops]
    if not builtins.any(is_traced(o) for o in ops):
        return _np.einsum(subscripts, *ops, optimize=optimize, **kwargs)
    spec = _einsum_normalise(subscripts, [ndim(o) for o in ops])
    ins, res = spec.split("->")
    ins = ins.split(",")
    for i, (o, sub) in enumerate(zip(ops, ins)):
        if len(set(sub)) != len(sub):
            ops[i], ins[i] = _einsum_diagonal(o, sub)
    return _p.einsum(*ops, subscripts=",".join(ins) + "->" + res)


def tensordot(a, b, axes=2):
    """``numpy.tensordot``."""
    na, nb = ndim(a), ndim(b)
    if isinstance(axes, (int, _np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = ([axes[0]] if _np.isscalar(axes[0]) else list(axes[0]),
                      [axes[1]] if _np.isscalar(axes[1]) else list(axes[1]))
    ax_a, ax_b = [x % na for x in ax_a], [x % nb for x in ax_b]
    la, lb = list(_LETTERS[:na]), list(_LETTERS[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in ax_a] + [c for j, c in enumerate(lb) if j not in ax_b]
    return _p.einsum(a, b, subscripts="".join(la) + "," + "".join(lb) + "->" + "".join(out))


def dot(a, b, out=None):
    """``numpy.dot``."""
    na, nb = ndim(a), ndim(b)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [builtins.max(nb - 2, 0)]))


def vdot(a, b):
    """``numpy.vdot``: the flattened inputs' dot product, the first conjugated."""
    a = ravel(a)
    return sum((conjugate(a) if _p.is_complex(a) else a) * ravel(b))


def vecdot(x1, x2, axis=-1):
    """``numpy.vecdot``: conj(x1)·x2 along ``axis``."""
    return sum((conjugate(x1) if _p.is_complex(x1) else x1) * x2, axis=axis)


def inner(a, b):
    """``numpy.inner``."""
    if ndim(a) == 0 or ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b, out=None):
    """``numpy.outer`` (inputs are flattened first, as numpy does)."""
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def kron(a, b):
    """``numpy.kron``: the Kronecker product (of arrays of any rank).

    >>> kron(eye(2), array([[1.0, 2.0]]))
    array([[1., 2., 0., 0.],
           [0., 0., 1., 2.]])
    """
    nd = builtins.max(ndim(a), ndim(b))
    sa = (1,) * (nd - ndim(a)) + tuple(_shape(a))
    sb = (1,) * (nd - ndim(b)) + tuple(_shape(b))
    a2 = reshape(a, tuple(v for n in sa for v in (n, 1)))
    b2 = reshape(b, tuple(v for n in sb for v in (1, n)))
    return reshape(a2 * b2, tuple(x * y for x, y in zip(sa, sb)))


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """``numpy.cross`` for 3- and 2-vectors along ``axisa``/``axisb`` (or ``axis``), result
    along ``axisc``; two 2-vectors give the scalar z component."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(a, axisa, -1), moveaxis(b, axisb, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    a0, a1 = a[..., 0], a[..., 1]
    b0, b1 = b[..., 0], b[..., 1]
    if na == 2 and nb == 2:
        return a0 * b1 - a1 * b0
    a2 = a[..., 2] if na == 3 else 0.0 * a0
    b2 = b[..., 2] if nb == 3 else 0.0 * b0
    c = stack(broadcast_arrays(a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0), axis=-1)
    return moveaxis(c, -1, axisc)


from . import fft, linalg  # noqa: E402  (they need the functions above)

# ---------------------------------------------------------------- making traced values act like arrays

_UFUNCS = {getattr(_np, n): globals()[n] for n in list(globals())
           if isinstance(getattr(_np, n, None), _np.ufunc) and not n.startswith("_")}
_UFUNCS[_np.absolute] = absolute
_FUNCTIONS = {getattr(_np, n): globals()[n] for n in list(globals())
              if callable(getattr(_np, n, None)) and not isinstance(getattr(_np, n), (type, _np.ufunc))
              and not n.startswith("_") and callable(globals()[n])}
_FUNCTIONS.update({getattr(_np.linalg, n): getattr(linalg, n) for n in linalg.__all__ if hasattr(_np.linalg, n)})
_FUNCTIONS.update({getattr(_np.fft, n): getattr(fft, n) for n in fft.__all__ if hasattr(_np.fft, n)})


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    f = _UFUNCS.get(ufunc)
    if f is None or method != "__call__" or kwargs:
        if ufunc in _UFUNCS and method == "__call__" and kwargs.get("out") is not None:
            raise NonDifferentiableError(
                f"numpy.{ufunc.__name__}(..., out=...) writes a traced value into a buffer: {SETITEM_HELP}")
        raise NonDifferentiableError(
            f"numpy.{ufunc.__name__} (method {method!r}, keywords {sorted(kwargs)}) is not "
            "differentiable by diffsim; use the diffsim.numpy function of the same name, or write "
            "it with ds.primitive and ds.defvjp")
    return f(*inputs)


def _array_function(self, func, types, args, kwargs):
    f = _FUNCTIONS.get(func)
    if f is None:
        raise NonDifferentiableError(
            f"numpy.{func.__name__} is not covered by diffsim; express it with diffsim.numpy "
            "functions, or define it as a custom primitive with ds.primitive and ds.defvjp")
    return f(*args, **kwargs)


def _astype(a, dtype, *args, **kwargs):
    dt = _np.dtype(dtype)
    if dt.kind == "c":
        return a if _p.is_complex(a) else add(a, _np.zeros((), dt))
    if dt.kind == "f":
        if _p.is_complex(a):
            raise NonDifferentiableError("casting a complex traced value to a real dtype discards its imaginary "
                                         "part; use dnp.real (differentiable) instead")
        return a
    return _np.asarray(raw(a)).astype(dtype)


def _install_box_methods() -> None:
    B = Box
    B.__array_ufunc__ = _array_ufunc
    B.__array_function__ = _array_function
    binops = {"add": add, "sub": subtract, "mul": multiply, "truediv": divide, "pow": power,
              "matmul": matmul, "mod": remainder, "floordiv": floor_divide}
    for name, f in binops.items():
        setattr(B, f"__{name}__", lambda a, b, _f=f: _f(a, b))
        setattr(B, f"__r{name}__", lambda a, b, _f=f: _f(b, a))
    B.__neg__ = lambda a: negative(a)
    B.__pos__ = lambda a: a
    B.__abs__ = lambda a: absolute(a)
    for name in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(B, f"__{name}__", lambda a, b, _n=name: getattr(raw(a), f"__{_n}__")(raw(b)))
    B.__getitem__ = lambda a, idx: _p.getitem(a, idx=_index(idx))
    B.__len__ = lambda a: len(raw(a))
    B.__iter__ = lambda a: (a[i] for i in range(len(raw(a))))
    B.shape = property(lambda a: _np.shape(raw(a)))
    B.ndim = property(lambda a: _np.ndim(raw(a)))
    B.size = property(lambda a: _np.size(raw(a)))
    B.dtype = property(lambda a: _np.result_type(raw(a)))
    B.T = property(lambda a: transpose(a))
    B.mT = property(lambda a: matrix_transpose(a))
    B.real = property(lambda a: real(a))
    B.imag = property(lambda a: imag(a))
    methods = {"sum": sum, "mean": mean, "prod": prod, "max": max, "min": min, "std": std, "var": var,
               "cumsum": cumsum, "cumprod": cumprod, "ravel": ravel, "squeeze": squeeze, "dot": dot, "clip": clip,
               "diagonal": diagonal, "swapaxes": swapaxes, "take": take, "conj": conjugate,
               "conjugate": conjugate, "repeat": repeat, "ptp": ptp, "round": round,
               "all": all, "any": any, "argmax": argmax, "argmin": argmin, "argsort": argsort, "nonzero": nonzero}
    for name, f in methods.items():
        setattr(B, name, lambda a, *args, _f=f, **kw: _f(a, *args, **kw))
    B.reshape = lambda a, *s, **kw: reshape(a, s[0] if len(s) == 1 else s, **kw)
    B.transpose = lambda a, *axes: transpose(a, (axes[0] if len(axes) == 1 else axes) or None)
    B.flatten = lambda a: ravel(a)
    B.copy = lambda a: a
    B.astype = _astype
    B.item = lambda a: Box.__float__(a)
    B.tolist = lambda a: Box.__float__(a)


_install_box_methods()
