"""Differentiable drop-in for the numpy functions diffsim covers: ``import diffsim.numpy as dnp``.

Every function here is either a primitive from :mod:`diffsim.primitives` (which holds all
derivative rules) or a short composition of them, so it needs no rule of its own. Functions
without a derivative (comparisons, ``floor``, ``argmax``, array creation) pass through and
return constants. Plain numpy functions called on traced values are dispatched here too; one
that diffsim does not cover raises :class:`~diffsim.errors.NonDifferentiableError`.

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
    cos,
    cosh,
    divide,
    exp,
    expm1,
    log,
    log1p,
    log2,
    log10,
    matmul,
    maximum,
    minimum,
    multiply,
    power,
    sin,
    sinh,
    sqrt,
    square,
    stop_gradient,
    subtract,
    tan,
    tanh,
)
from .tracer import Box, NondiffPrimitive, is_traced, raw

# ---------------------------------------------------------------- constants and pass-through

pi, e, inf, nan, newaxis = _np.pi, _np.e, _np.inf, _np.nan, _np.newaxis
float64, float32, int64, int32, bool_ = _np.float64, _np.float32, _np.int64, _np.int32, _np.bool_
ndarray = _np.ndarray


def _nondiff(name: str) -> NondiffPrimitive:
    return NondiffPrimitive(name, getattr(_np, name))


(floor, ceil, round, rint, trunc, sign, isfinite, isnan, isinf, equal, not_equal, less,
 less_equal, greater, greater_equal, logical_and, logical_or, logical_not, logical_xor, all, any,
 argmax, argmin, argsort, nonzero, count_nonzero, allclose, isclose, array_equal, shape, ndim,
 size, zeros_like, ones_like, empty_like, full_like, searchsorted, unique, heaviside) = map(_nondiff, (
    "floor ceil round rint trunc sign isfinite isnan isinf equal not_equal less less_equal "
    "greater greater_equal logical_and logical_or logical_not logical_xor all any argmax argmin "
    "argsort nonzero count_nonzero allclose isclose array_equal shape ndim size zeros_like "
    "ones_like empty_like full_like searchsorted unique heaviside").split())

zeros, ones, empty, full, eye, identity = _np.zeros, _np.ones, _np.empty, _np.full, _np.eye, _np.identity
arange, linspace, logspace, meshgrid, indices = _np.arange, _np.linspace, _np.logspace, _np.meshgrid, _np.indices
broadcast_shapes, result_type = _np.broadcast_shapes, _np.result_type

abs = fabs = absolute
negative = _p.neg
true_divide = divide
amax_p, amin_p = _p.amax, _p.amin


def array(obj, dtype=None) -> object:
    """Like ``numpy.array``; nested lists that hold traced values are stacked differentiably.

    >>> array([1.0, 2.0]).shape
    (2,)
    """
    if is_traced(obj):
        return obj
    if isinstance(obj, (list, tuple)) and _holds_traced(obj):
        return stack([array(o) for o in obj])
    return _np.array(obj, dtype=dtype)


def asarray(obj, dtype=None) -> object:
    """Like ``numpy.asarray``; traced values are returned as they are."""
    return array(obj, dtype) if not isinstance(obj, _np.ndarray) else _np.asarray(obj, dtype)


def _holds_traced(obj) -> bool:
    if is_traced(obj):
        return True
    return isinstance(obj, (list, tuple)) and builtins.any(_holds_traced(o) for o in obj)


# ---------------------------------------------------------------- elementwise compositions


def where(condition, x=None, y=None):
    """``numpy.where``; differentiable in ``x`` and ``y`` (the branches), not in the condition.

    >>> where(array([True, False]), 1.0, 2.0)
    array([1., 2.])
    """
    if x is None and y is None:
        return nonzero(condition)
    return _p.where(raw(condition), x, y)


def clip(a, a_min=None, a_max=None):
    """``numpy.clip``; the gradient is 1 inside the interval, 0 outside (1/2 on its ends)."""
    if a_min is not None:
        a = maximum(a, a_min)
    if a_max is not None:
        a = minimum(a, a_max)
    return a


def logaddexp(x1, x2):
    """log(exp(x1) + exp(x2)) without overflow."""
    m = maximum(x1, x2)
    return m + log1p(exp(-absolute(x1 - x2)))


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


def sum(a, axis=None, keepdims=False):
    """``numpy.sum`` (``axis`` may be an int or a tuple)."""
    return _p.sum_(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def prod(a, axis=None, keepdims=False):
    """``numpy.prod``; its gradient is exact also when entries are zero."""
    return _p.prod(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def max(a, axis=None, keepdims=False):
    """``numpy.max``; the gradient is shared equally between tied maxima."""
    return _p.amax(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


def min(a, axis=None, keepdims=False):
    """``numpy.min``; the gradient is shared equally between tied minima."""
    return _p.amin(a, axis=_axes(axis, ndim(a)), keepdims=keepdims)


amax, amin = max, min


def _count(a, axes) -> int:
    s = shape(a)
    return int(_np.prod([s[i] for i in axes])) if axes is not None else int(_np.prod(s))


def mean(a, axis=None, keepdims=False):
    """``numpy.mean``."""
    axes = _axes(axis, ndim(a))
    return sum(a, axes, keepdims) / _count(a, axes)


def var(a, axis=None, ddof=0, keepdims=False):
    """``numpy.var``."""
    axes = _axes(axis, ndim(a))
    d = a - mean(a, axes, keepdims=True)
    return sum(d * d, axes, keepdims) / (_count(a, axes) - ddof)


def std(a, axis=None, ddof=0, keepdims=False):
    """``numpy.std``."""
    return sqrt(var(a, axis, ddof, keepdims))


def cumsum(a, axis=None):
    """``numpy.cumsum`` (``axis=None`` flattens first)."""
    if axis is None:
        return _p.cumsum(ravel(a), axis=0)
    return _p.cumsum(a, axis=_axes(axis, ndim(a))[0])


def trace(a, offset=0, axis1=0, axis2=1):
    """``numpy.trace``."""
    return sum(diagonal(a, offset, axis1, axis2), axis=-1)


# ---------------------------------------------------------------- shape


def reshape(a, newshape, order="C"):
    """``numpy.reshape`` (C order)."""
    if order != "C":
        raise NotImplementedError("dnp.reshape supports order='C' only")
    s = shape(a)
    newshape = (newshape,) if isinstance(newshape, (int, _np.integer)) else tuple(int(n) for n in newshape)
    if -1 in newshape:
        known = int(_np.prod([n for n in newshape if n != -1]))
        newshape = tuple(int(_np.prod(s)) // known if n == -1 else n for n in newshape)
    if int(_np.prod(newshape)) != int(_np.prod(s)):
        raise ValueError(f"cannot reshape an array of shape {s} into shape {newshape}")
    return _p.reshape(a, shape=newshape)


def ravel(a):
    """``numpy.ravel``."""
    return reshape(a, (-1,))


def transpose(a, axes=None):
    """``numpy.transpose``."""
    nd = ndim(a)
    axes = tuple(range(nd))[::-1] if axes is None else tuple(int(x) % nd for x in axes)
    return _p.transpose(a, axes=axes)


def swapaxes(a, axis1, axis2):
    """``numpy.swapaxes``."""
    axes = list(range(ndim(a)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(a, axes)


def moveaxis(a, source, destination):
    """``numpy.moveaxis`` for a single axis."""
    nd = ndim(a)
    order = [i for i in range(nd) if i != source % nd]
    order.insert(destination % nd, source % nd)
    return transpose(a, order)


def expand_dims(a, axis):
    """``numpy.expand_dims``."""
    s = list(shape(a))
    for ax in sorted(a_ % (len(s) + 1 + i) for i, a_ in enumerate([axis] if _np.isscalar(axis) else axis)):
        s.insert(ax, 1)
    return reshape(a, s)


def squeeze(a, axis=None):
    """``numpy.squeeze``."""
    s = shape(a)
    axes = _axes(axis, len(s))
    if axes is None:
        axes = tuple(i for i, n in enumerate(s) if n == 1)
    if builtins.any(s[i] != 1 for i in axes):
        raise ValueError(f"cannot squeeze an axis whose size is not 1 (shape {s}, axis {axis})")
    return reshape(a, tuple(n for i, n in enumerate(s) if i not in axes))


def broadcast_to(a, shape_):
    """``numpy.broadcast_to``."""
    return _p.broadcast_to(a, shape=tuple(shape_))


def atleast_1d(a):
    """``numpy.atleast_1d`` for one array."""
    return reshape(a, (1,)) if ndim(a) == 0 else a


def concatenate(arrays, axis=0):
    """``numpy.concatenate`` (``axis=None`` flattens first)."""
    arrays = list(arrays)
    if axis is None:
        arrays, axis = [ravel(a) for a in arrays], 0
    arrays = [atleast_1d(a) for a in arrays]
    return _p.concatenate(*arrays, axis=int(axis) % ndim(arrays[0]))


def stack(arrays, axis=0):
    """``numpy.stack``."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    nd = ndim(arrays[0]) + 1
    return concatenate([expand_dims(a, axis % nd) for a in arrays], axis=axis % nd)


def hstack(arrays):
    """``numpy.hstack``."""
    arrays = [atleast_1d(a) for a in arrays]
    return concatenate(arrays, axis=0 if ndim(arrays[0]) == 1 else 1)


def vstack(arrays):
    """``numpy.vstack``."""
    return concatenate([reshape(a, (1, -1)) if ndim(a) < 2 else a for a in arrays], axis=0)


def split(a, indices_or_sections, axis=0):
    """``numpy.split``."""
    n = shape(a)[axis]
    if isinstance(indices_or_sections, (int, _np.integer)):
        if n % indices_or_sections:
            raise ValueError(f"array split does not result in an equal division ({n} by {indices_or_sections})")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step))
    else:
        bounds = [0] + list(indices_or_sections) + [n]
    pre = (slice(None),) * (axis % ndim(a))
    return [_p.getitem(a, idx=pre + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def flip(a, axis=None):
    """``numpy.flip``."""
    axes = _axes(axis, ndim(a)) or tuple(range(ndim(a)))
    return _p.getitem(a, idx=tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(ndim(a))))


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


def take(a, indices, axis=None):
    """``numpy.take`` (gather); its adjoint is a scatter-add."""
    if axis is None:
        return _p.getitem(ravel(a), idx=_index(indices))
    return _p.getitem(a, idx=(slice(None),) * (axis % ndim(a)) + (_np.asarray(indices),))


def diagonal(a, offset=0, axis1=0, axis2=1):
    """``numpy.diagonal`` (the diagonal becomes the last axis)."""
    nd = ndim(a)
    a1, a2 = axis1 % nd, axis2 % nd
    a = transpose(a, [i for i in range(nd) if i not in (a1, a2)] + [a1, a2])
    n, m = shape(a)[-2:]
    rows = _np.arange(builtins.max(0, -offset), builtins.min(n, m - offset))
    return _p.getitem(a, idx=(Ellipsis, rows, rows + offset))


def diag(v, k=0):
    """``numpy.diag``: the k-th diagonal of a matrix, or a matrix with ``v`` on its k-th diagonal."""
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


def _einsum_normalise(subscripts: str, ndims: list[int]) -> str:
    """Explicit einsum subscripts without ellipses ('...ij,jk' -> 'Aij,jk->Aik')."""
    subscripts = subscripts.replace(" ", "")
    ins, arrow, out = subscripts.partition("->")
    ins = ins.split(",")
    if len(ins) != len(ndims):
        raise ValueError(f"einsum subscripts name {len(ins)} operands but {len(ndims)} were given")
    used = set(subscripts)
    free = [c for c in string.ascii_letters if c not in used]
    n_ell = [nd - len(s.replace("...", "")) if "..." in s else 0 for s, nd in zip(ins, ndims)]
    width = builtins.max(n_ell) if n_ell else 0
    ell = "".join(free[:width])
    ins = [s.replace("...", ell[width - k:]) for s, k in zip(ins, n_ell)]
    if not arrow:
        counts = {c: "".join(ins).count(c) for c in set("".join(ins))}
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    for s, nd in zip(ins, ndims):
        if len(s) != nd:
            raise ValueError(f"einsum subscript '{s}' does not match an operand with {nd} dimensions")
    return ",".join(ins) + "->" + out


def einsum(subscripts: str, *operands):
    """``numpy.einsum`` (with ellipses and implicit output); differentiable in every operand.

    >>> einsum("ij,j->i", eye(2), array([1.0, 2.0]))
    array([1., 2.])
    """
    return _p.einsum(*operands, subscripts=_einsum_normalise(subscripts, [ndim(o) for o in operands]))


def tensordot(a, b, axes=2):
    """``numpy.tensordot``."""
    na, nb = ndim(a), ndim(b)
    if isinstance(axes, (int, _np.integer)):
        ax_a, ax_b = list(range(na - axes, na)), list(range(axes))
    else:
        ax_a, ax_b = ([axes[0]] if _np.isscalar(axes[0]) else list(axes[0]),
                      [axes[1]] if _np.isscalar(axes[1]) else list(axes[1]))
    ax_a, ax_b = [x % na for x in ax_a], [x % nb for x in ax_b]
    la, lb = list(string.ascii_letters[:na]), list(string.ascii_letters[na:na + nb])
    for i, j in zip(ax_a, ax_b):
        lb[j] = la[i]
    out = [c for i, c in enumerate(la) if i not in ax_a] + [c for j, c in enumerate(lb) if j not in ax_b]
    return _p.einsum(a, b, subscripts="".join(la) + "," + "".join(lb) + "->" + "".join(out))


def dot(a, b):
    """``numpy.dot``."""
    na, nb = ndim(a), ndim(b)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    return tensordot(a, b, axes=([-1], [builtins.max(nb - 2, 0)]))


def vdot(a, b):
    """``numpy.vdot`` for real arrays: the sum of the elementwise product of the flattened inputs."""
    return sum(ravel(a) * ravel(b))


def inner(a, b):
    """``numpy.inner``."""
    if ndim(a) == 0 or ndim(b) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def outer(a, b):
    """``numpy.outer``."""
    return reshape(a, (-1, 1)) * reshape(b, (1, -1))


def cross(a, b, axis=-1):
    """``numpy.cross`` for 3-vectors along ``axis``."""
    a, b = moveaxis(a, axis, -1), moveaxis(b, axis, -1)
    a0, a1, a2 = (a[..., i] for i in range(3))
    b0, b1, b2 = (b[..., i] for i in range(3))
    return moveaxis(stack([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=-1), -1, axis)


from . import linalg  # noqa: E402  (needs the functions above)

# ---------------------------------------------------------------- making traced values act like arrays

_UFUNCS = {getattr(_np, n): globals()[n] for n in list(globals())
           if isinstance(getattr(_np, n, None), _np.ufunc) and not n.startswith("_")}
_UFUNCS[_np.absolute] = absolute
_FUNCTIONS = {getattr(_np, n): globals()[n] for n in list(globals())
              if callable(getattr(_np, n, None)) and not isinstance(getattr(_np, n), (type, _np.ufunc))
              and not n.startswith("_") and callable(globals()[n])}
_FUNCTIONS.update({getattr(_np.linalg, n): getattr(linalg, n) for n in linalg.__all__})


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    f = _UFUNCS.get(ufunc)
    if f is None or method != "__call__" or kwargs:
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


def _install_box_methods() -> None:
    B = Box
    B.__array_ufunc__ = _array_ufunc
    B.__array_function__ = _array_function
    binops = {"add": add, "sub": subtract, "mul": multiply, "truediv": divide, "pow": power,
              "matmul": matmul}
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
    methods = {"sum": sum, "mean": mean, "prod": prod, "max": max, "min": min, "std": std, "var": var,
               "cumsum": cumsum, "ravel": ravel, "squeeze": squeeze, "dot": dot, "clip": clip,
               "diagonal": diagonal, "swapaxes": swapaxes, "take": take}
    for name, f in methods.items():
        setattr(B, name, lambda a, *args, _f=f, **kw: _f(a, *args, **kw))
    B.reshape = lambda a, *s, **kw: reshape(a, s[0] if len(s) == 1 else s, **kw)
    B.transpose = lambda a, *axes: transpose(a, (axes[0] if len(axes) == 1 else axes) or None)
    B.flatten = lambda a: ravel(a)
    B.copy = lambda a: a
    B.astype = lambda a, dtype: a if _np.issubdtype(dtype, _np.floating) else _np.asarray(raw(a)).astype(dtype)
    B.item = lambda a: Box.__float__(a)
    B.tolist = lambda a: Box.__float__(a)


_install_box_methods()
