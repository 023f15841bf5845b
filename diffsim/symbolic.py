"""Symbolic scalars for trace-and-compile: a flat SSA graph built by running numpy code.

:class:`SymArray` is a numpy duck array whose elements are :class:`Sym` scalars (SSA values)
or plain constants. numpy functions and ufuncs applied to it (through ``__array_ufunc__`` and
``__array_function__``) emit one scalar instruction per element. Because the engine's
primitives are numpy functions, running a user's function, *and the engine's own derivative
rules*, on SymArrays yields straight-line scalar code: differentiation in the compiled path is
the eager interpreter applied to symbolic values, with the same rule table.

Instructions are simplified as they are made: constant folding, trivial algebra (x*1, x+0,
x*0, x-x, --x), commutative normalisation and common-subexpression elimination by
hash-consing. Dead code is dropped when code is emitted (:func:`live_instructions`).

>>> g = Graph()
>>> x = g.input_array("x", (2,))
>>> y = np.sin(x) * 1.0 + 0.0
>>> [str(s) for s in y.data]
['sin(x[0])', 'sin(x[1])']
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .errors import NonDifferentiableError
from .primitives import REGISTRY
from .tracer import Box


class TraceError(NonDifferentiableError):
    """Something inside ``ds.compile`` needs a concrete value or is not supported."""


_BRANCH_HELP = ("the branch would be fixed once at trace time. Use dnp.where(condition, a, b) "
                "to select between values inside a compiled function")

# The scalar operations a trace may emit, derived from the one rule table: every primitive with
# a code template (diffsim.primitives.REGISTRY), by numpy's name, with its argument count.
ARITY = {name: p.arity for name, p in REGISTRY.items() if p.template is not None}
BOOL_OPS = {name for name, p in REGISTRY.items() if p.template is not None and p.boolean}
_ALIASES = {"true_divide": "divide", "abs": "absolute", "fabs": "absolute", "mod": "remainder", "positive": None}
COMMUTATIVE = {"add", "multiply", "maximum", "minimum", "equal", "not_equal", "logical_and",
               "logical_or", "logical_xor", "hypot", "logaddexp", "logaddexp2"}


def is_const(v: Any) -> bool:
    return isinstance(v, (numbers.Number, np.bool_, np.number))


def _const_key(v):
    if isinstance(v, (bool, np.bool_)):
        return ("b", bool(v))
    return ("c", repr(float(v)))


class Sym:
    """One SSA value: an input element or the result of one scalar instruction."""

    __slots__ = ("graph", "index", "op", "args", "boolean", "label")

    def __init__(self, graph: "Graph", op: str, args: tuple, boolean: bool, label: str | None = None):
        self.graph = graph
        self.index = len(graph.instructions)
        self.op = op
        self.args = args
        self.boolean = boolean
        self.label = label
        graph.instructions.append(self)

    def __repr__(self) -> str:
        return f"Sym({self})"

    def __str__(self) -> str:
        if self.op == "input":
            return self.label
        return f"{self.op}({', '.join(str(a) for a in self.args)})"

    # what numpy's object loops call (sums, matmul, einsum, add.at)
    def __add__(self, o):
        return emit("add", self, o)

    def __radd__(self, o):
        return emit("add", o, self)

    def __sub__(self, o):
        return emit("subtract", self, o)

    def __rsub__(self, o):
        return emit("subtract", o, self)

    def __mul__(self, o):
        return emit("multiply", self, o)

    def __rmul__(self, o):
        return emit("multiply", o, self)

    def __truediv__(self, o):
        return emit("divide", self, o)

    def __rtruediv__(self, o):
        return emit("divide", o, self)

    def __pow__(self, o):
        return emit("power", self, o)

    def __rpow__(self, o):
        return emit("power", o, self)

    def __neg__(self):
        return emit("negative", self)

    def __abs__(self):
        return emit("absolute", self)

    def __bool__(self):
        raise TraceError("Python control flow (if, while, and, or) on a traced value inside ds.compile: "
                         + _BRANCH_HELP)

    def __float__(self):
        raise TraceError(f"float() or int() on a traced value inside ds.compile: {_BRANCH_HELP}")

    __int__ = __index__ = __float__


class Graph:
    """The instruction list of one trace, with the hash-consing table."""

    def __init__(self) -> None:
        self.instructions: list[Sym] = []
        self.table: dict[tuple, Sym] = {}

    def input_array(self, name: str, shape: tuple) -> "SymArray":
        """A SymArray of fresh input symbols labelled ``name[i]``."""
        data = np.empty(shape, dtype=object)
        for idx in np.ndindex(*shape):
            label = name if shape == () else f"{name}[{', '.join(map(str, idx))}]"
            data[idx] = Sym(self, "input", (), False, label)
        return SymArray(data)


def _graph_of(args) -> Graph:
    for a in args:
        if type(a) is Sym:
            return a.graph
    raise AssertionError("no symbolic argument")


def emit(op: str, *args) -> Any:
    """The simplified result of scalar instruction ``op`` on ``args`` (a Sym or a constant)."""
    if not any(type(a) is Sym for a in args):
        return _fold(op, args)
    simple = _simplify(op, args)
    if simple is not _NONE:
        return simple
    if op in COMMUTATIVE:
        args = tuple(sorted(args, key=lambda a: (0, a.index) if type(a) is Sym else (1, _const_key(a))))
    key = (op,) + tuple(a.index if type(a) is Sym else _const_key(a) for a in args)
    g = _graph_of(args)
    hit = g.table.get(key)
    if hit is not None:
        return hit
    boolean = op in BOOL_OPS or (op == "where" and all(
        (a.boolean if type(a) is Sym else isinstance(a, (bool, np.bool_))) for a in args[1:]))
    s = Sym(g, op, tuple(a if type(a) is Sym else _py(a) for a in args), boolean)
    g.table[key] = s
    return s


def _py(v):
    """A Python bool or float for a constant."""
    return bool(v) if isinstance(v, (bool, np.bool_)) else float(v)


def _fold(op, args):
    if op == "where":
        return args[1] if args[0] else args[2]
    with np.errstate(all="ignore"):
        return _py(getattr(np, op)(*args))


_NONE = object()


def _is(v, c) -> bool:
    return is_const(v) and not isinstance(v, (bool, np.bool_)) and v == c


def _simplify(op, args):
    """Trivial algebra. Returns _NONE when nothing applies."""
    if op == "add":
        a, b = args
        if _is(a, 0):
            return b
        if _is(b, 0):
            return a
    elif op == "subtract":
        a, b = args
        if _is(b, 0):
            return a
        if _is(a, 0):
            return emit("negative", b)
        if a is b:
            return 0.0
    elif op == "multiply":
        a, b = args
        if _is(a, 0) or _is(b, 0):
            return 0.0
        if _is(a, 1):
            return b
        if _is(b, 1):
            return a
        if _is(a, -1):
            return emit("negative", b)
        if _is(b, -1):
            return emit("negative", a)
    elif op == "divide":
        a, b = args
        if _is(b, 1):
            return a
        if _is(a, 0):
            return 0.0
    elif op == "negative":
        (a,) = args
        if type(a) is Sym and a.op == "negative":
            return a.args[0]
    elif op == "power":
        a, b = args
        if _is(b, 1):
            return a
        if _is(b, 0):
            return 1.0
        if _is(b, 2):
            return emit("multiply", a, a)
    elif op == "where":
        c, a, b = args
        if is_const(c):
            return a if c else b
        if a is b or (is_const(a) and is_const(b) and _const_key(a) == _const_key(b)):
            return a
    return _NONE


# ---------------------------------------------------------------- the duck array


def unwrap(x):
    """SymArrays (also inside lists and tuples) to object ndarrays."""
    if type(x) is SymArray:
        return x.data
    if isinstance(x, (list, tuple)):
        return type(x)(unwrap(v) for v in x)
    return x


def wrap(x):
    """Object ndarrays and Syms back to SymArrays; constants stay plain."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return SymArray(x)
    if type(x) is Sym:
        return SymArray(np.array(x, dtype=object))
    if isinstance(x, tuple):
        return tuple(wrap(v) for v in x)
    if isinstance(x, list):
        return [wrap(v) for v in x]
    return x


def _elementwise(op: str, inputs):
    arrays = [np.asarray(unwrap(x), dtype=object) for x in inputs]
    with np.errstate(all="ignore"):  # folded constants may be inf or NaN, exactly as at run time
        out = np.frompyfunc(lambda *e: emit(op, *e), len(arrays), 1)(*arrays)
    return SymArray(np.asarray(out, dtype=object))


def _reduce_with(op: str, data: np.ndarray, axis, keepdims: bool):
    nd = data.ndim
    axes = tuple(range(nd)) if axis is None else tuple(a % nd for a in np.atleast_1d(axis))
    rest = tuple(a for a in range(nd) if a not in axes)
    moved = np.transpose(data, rest + axes).reshape([data.shape[a] for a in rest] + [-1])
    out = np.empty(moved.shape[:-1], dtype=object)
    for idx in np.ndindex(*out.shape):
        acc = moved[idx][0]
        for v in moved[idx][1:]:
            acc = emit(op, acc, v)
        out[idx] = acc
    if keepdims:
        out = out.reshape([1 if a in axes else data.shape[a] for a in range(nd)])
    return out


def _max(a, axis=None, keepdims=False, **kw):
    return wrap(_reduce_with("maximum", unwrap(a), axis, keepdims))


def _min(a, axis=None, keepdims=False, **kw):
    return wrap(_reduce_with("minimum", unwrap(a), axis, keepdims))


def _where(condition, x=None, y=None):
    if x is None:
        raise TraceError("single-argument where (nonzero) needs concrete values; not available in ds.compile")
    return _elementwise("where", (condition, x, y))


def _concrete(name):
    def f(a, *args, **kwargs):
        data = np.asarray(unwrap(a), dtype=object)
        if any(type(v) is Sym for v in data.flat):
            raise TraceError(f"numpy.{name} needs concrete values, which a compiled function does not have "
                             f"at trace time; {_BRANCH_HELP}")
        return getattr(np, name)(data.astype(float), *args, **kwargs)
    return f


def _like(fill):
    def f(a, dtype=None, shape=None, **kwargs):
        s = np.shape(unwrap(a)) if shape is None else shape
        return SymArray(np.full(s, fill, dtype=object))
    return f


_SPECIAL = {
    np.where: _where, np.max: _max, np.amax: _max, np.min: _min, np.amin: _min,
    np.result_type: lambda *a, **k: np.dtype(np.float64),
    np.zeros_like: _like(0.0), np.ones_like: _like(1.0),
    np.full_like: lambda a, fill_value, dtype=None, shape=None: _like(fill_value)(a, shape=shape),
    np.shape: lambda a: np.shape(unwrap(a)), np.ndim: lambda a: np.ndim(unwrap(a)),
    np.size: lambda a, axis=None: np.size(unwrap(a), axis),
    np.all: _concrete("all"), np.any: _concrete("any"), np.argmax: _concrete("argmax"),
    np.argmin: _concrete("argmin"), np.argsort: _concrete("argsort"), np.nonzero: _concrete("nonzero"),
    np.count_nonzero: _concrete("count_nonzero"), np.allclose: _concrete("allclose"),
}
# purely structural functions, or reductions by + and *: numpy's object loops do them right
_STRUCTURAL = {np.reshape, np.transpose, np.concatenate, np.stack, np.broadcast_to, np.sum, np.prod,
               np.cumsum, np.einsum, np.tril, np.triu, np.squeeze, np.expand_dims, np.moveaxis,
               np.swapaxes, np.take, np.diagonal, np.trace, np.ravel, np.copy, np.broadcast_arrays,
               np.atleast_1d, np.flip, np.dot, np.outer, np.tensordot, np.hstack, np.vstack, np.split}


class SymArray:
    """A numpy duck array of symbolic scalars (see the module docstring)."""

    __slots__ = ("data",)
    __array_priority__ = 2000.0

    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: np.dtype(np.float64))
    T = property(lambda self: SymArray(self.data.T))

    def __repr__(self) -> str:
        return f"SymArray({np.vectorize(str, otypes=[object])(self.data)!r})"

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, idx):
        return wrap(_as_object(self.data[unwrap(idx)]))

    def __setitem__(self, idx, value):
        value = unwrap(value)
        if isinstance(value, np.ndarray) and value.ndim == 0:
            value = value[()]  # an object array stores a 0-d array as one element, not its content
        self.data[unwrap(idx)] = value

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        raise TraceError("Python control flow (if, while, and, or) on a traced value inside ds.compile: "
                         + _BRANCH_HELP)

    def __float__(self):
        raise TraceError(f"float() or int() on a traced value inside ds.compile: {_BRANCH_HELP}")

    __int__ = __index__ = __float__

    def __array__(self, dtype=None, copy=None):
        raise TraceError("a traced value was converted to a concrete numpy array inside ds.compile; "
                         "use diffsim.numpy functions")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(type(x) is Box for x in inputs):
            return NotImplemented  # a differentiation trace above us handles it first
        name = _ALIASES.get(ufunc.__name__, ufunc.__name__)
        if ufunc is np.matmul and method == "__call__":
            return wrap(_as_object(np.matmul(*unwrap(inputs))))
        if method == "at" and ufunc in (np.add, np.multiply):
            target, idx, vals = inputs
            ufunc.at(unwrap(target), unwrap(idx), unwrap(vals))
            return None
        if method == "reduce" and ufunc in (np.add, np.multiply, np.maximum, np.minimum):
            return wrap(_as_object(_reduce_with(name, np.asarray(unwrap(inputs[0]), dtype=object),
                                                kwargs.get("axis", 0), kwargs.get("keepdims", False))))
        if method == "accumulate" and ufunc is np.add:
            return wrap(np.add.accumulate(unwrap(inputs[0]), axis=kwargs.get("axis", 0), dtype=object))
        if method != "__call__" or name not in ARITY or kwargs.get("out") is not None:
            raise TraceError(f"numpy.{ufunc.__name__} ({method}) is not supported inside ds.compile")
        if name is None:
            return inputs[0]
        return _elementwise(name, inputs)

    def __array_function__(self, func, types, args, kwargs):
        if Box in types:
            return NotImplemented
        special = _SPECIAL.get(func)
        if special is not None:
            return special(*args, **kwargs)
        if func in _STRUCTURAL:
            kwargs = dict(kwargs)
            if func is np.einsum:
                kwargs["optimize"] = False
            return wrap(_as_object(func(*unwrap(args), **unwrap(kwargs))))
        raise TraceError(
            f"numpy.{func.__name__} is not supported inside ds.compile (it generates scalar code); "
            "write it with elementwise operations, indexing and small matrix products "
            "(a small linear solve in closed form, for instance)")

    # operators, through the ufuncs above
    def __add__(self, o):
        return np.add(self, o)

    def __radd__(self, o):
        return np.add(o, self)

    def __sub__(self, o):
        return np.subtract(self, o)

    def __rsub__(self, o):
        return np.subtract(o, self)

    def __mul__(self, o):
        return np.multiply(self, o)

    def __rmul__(self, o):
        return np.multiply(o, self)

    def __truediv__(self, o):
        return np.divide(self, o)

    def __rtruediv__(self, o):
        return np.divide(o, self)

    def __pow__(self, o):
        return np.power(self, o)

    def __rpow__(self, o):
        return np.power(o, self)

    def __matmul__(self, o):
        return np.matmul(self, o)

    def __rmatmul__(self, o):
        return np.matmul(o, self)

    def __neg__(self):
        return np.negative(self)

    def __abs__(self):
        return np.absolute(self)

    def __gt__(self, o):
        return np.greater(self, o)

    def __ge__(self, o):
        return np.greater_equal(self, o)

    def __lt__(self, o):
        return np.less(self, o)

    def __le__(self, o):
        return np.less_equal(self, o)

    def __eq__(self, o):
        return np.equal(self, o)

    def __ne__(self, o):
        return np.not_equal(self, o)

    def __and__(self, o):
        return np.logical_and(self, o)

    def __or__(self, o):
        return np.logical_or(self, o)

    def __invert__(self):
        return np.logical_not(self)

    __hash__ = object.__hash__

    def reshape(self, *shape):
        return SymArray(self.data.reshape(*shape))

    def astype(self, dtype):
        return self


def _as_object(x):
    if isinstance(x, np.ndarray):
        return x.astype(object) if x.dtype != object else x
    return np.array(x, dtype=object)


def live_instructions(outputs) -> list[Sym]:
    """The instructions the ``outputs`` depend on, in program order (dead code removed)."""
    seen: set[int] = set()
    stack = [o for o in outputs if type(o) is Sym]
    while stack:
        s = stack.pop()
        if s.index in seen:
            continue
        seen.add(s.index)
        stack.extend(a for a in s.args if type(a) is Sym and a.index not in seen)
    return sorted((s for s in _all_syms(outputs, seen)), key=lambda s: s.index)


def _all_syms(outputs, seen):
    graphs = {o.graph for o in outputs if type(o) is Sym}
    for g in graphs:
        for s in g.instructions:
            if s.index in seen:
                yield s

