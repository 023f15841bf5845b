"""The tracing core shared by every transformation: primitives, boxes and ``bind``.

A :class:`Primitive` is a name, a numpy implementation and derivative rules (registered in
:mod:`diffsim.primitives`, the one rule table). A transformation (reverse mode, forward mode)
is a :class:`Trace` with a nesting ``level``; it wraps its inputs in :class:`Box` objects.
``bind`` finds the innermost trace among a primitive's arguments, unwraps that level, applies
the primitive to what is left (recursively, so outer traces see the call too), and lets the
trace record or push forward. This is autograd's and autodidax's design, kept small.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np

from .errors import MissingRuleError, NonDifferentiableError

_levels = itertools.count(1)

SETITEM_HELP = (
    "in-place assignment x[i] = v of a traced value cannot be differentiated (into a traced array, "
    "or into a numpy buffer, which would drop the derivative); use x = dnp.index_set(x, i, v) or "
    "dnp.index_add(x, i, v) (they return new arrays), or build the array with dnp.stack / dnp.concatenate")


class Trace:
    """One active transformation. Subclasses implement :meth:`process`."""

    __slots__ = ("level",)

    def __init__(self) -> None:
        self.level = next(_levels)

    def process(self, prim: "Primitive", args: tuple, vals: tuple, ans: Any, params: dict):
        raise NotImplementedError


class Box:
    """A value being traced by ``trace``. ``node`` is the trace's record for it
    (a tape node in reverse mode, the tangent in forward mode).

    Boxes behave like numpy arrays: operators, ``.shape``, ``.T``, methods such as ``.sum()``
    and the numpy functions that diffsim covers (dispatched through ``__array_ufunc__`` and
    ``__array_function__``) all work; anything else raises :class:`NonDifferentiableError`.
    The methods are installed by :mod:`diffsim.numpy`.
    """

    __slots__ = ("value", "trace", "node")
    __array_priority__ = 1000.0

    def __init__(self, value: Any, trace: Trace, node: Any) -> None:
        self.value = value
        self.trace = trace
        self.node = node

    def __repr__(self) -> str:
        return f"Box({raw(self)!r}, level={self.trace.level})"

    # the guards: conversions that would silently drop the derivative
    def __float__(self):
        raise NonDifferentiableError(
            "float() on a traced value inside a differentiated function drops its derivative; "
            "keep it an array (use diffsim.numpy functions), or wrap it in ds.stop_gradient "
            "if you really want a constant")

    __int__ = __index__ = __complex__ = __float__

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype).kind in "iub":  # np.int64(x): a constant, derivative 0
            return np.asarray(raw(self)).astype(dtype)
        raise NonDifferentiableError(
            "a traced value was converted to a plain numpy array (np.asarray/np.array or a numpy "
            "function diffsim does not cover); use diffsim.numpy (dnp.array, dnp.stack, ...) "
            "inside a differentiated function")

    def __setitem__(self, key, value):
        raise NonDifferentiableError(SETITEM_HELP)

    def __bool__(self) -> bool:
        return bool(raw(self))

    def __hash__(self) -> int:
        return id(self)


def raw(x: Any) -> Any:
    """Strip every level of boxing: the plain numpy value under ``x``."""
    while type(x) is Box:
        x = x.value
    return x


def is_traced(x: Any) -> bool:
    """True if ``x`` is being traced by an active transformation."""
    return type(x) is Box


RuleFn = Callable[..., Any]


class Primitive:
    """An operation with a numpy implementation and derivative rules.

    Positional arguments are the (possibly differentiable) array inputs; keyword arguments are
    static parameters (indices, shapes, axes) passed unchanged to the implementation and to
    every rule. Keep to this: the tape may keep only the shape of a positional argument.

    Rules (see :mod:`diffsim.primitives`):

    - ``vjps[i](g, ans, *args, **params)``: cotangent of argument ``i`` given output cotangent g;
    - ``jvps[i](t, ans, *args, **params)``: output tangent contributed by tangent t of argument i;
    - ``vjp_all(g, ans, args, params, argnums)`` / ``jvp_all(tangents, ans, args, params)``:
      all arguments at once, for variadic primitives or when one computation serves all.
    """

    __slots__ = ("name", "impl", "vjps", "jvps", "vjp_all", "jvp_all", "doc", "keep_args", "keep_ans",
                 "template", "arity", "boolean")

    def __init__(self, name: str, impl: Callable[..., Any], doc: str | None = None) -> None:
        self.name = name
        self.impl = impl
        self.vjps: dict[int, RuleFn] = {}
        self.jvps: dict[int, RuleFn] = {}
        self.vjp_all: RuleFn | None = None
        self.jvp_all: RuleFn | None = None
        self.doc = doc or getattr(impl, "__doc__", None)
        # residuals: what the reverse rules read, so the tape keeps nothing else (see saves())
        self.keep_args = True
        self.keep_ans = True
        # scalar code generation (diffsim.codegen): expression template, argument count, bool result
        self.template: str | None = None
        self.arity: int | None = None
        self.boolean = False

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __call__(self, *args, **params):
        # bind(), inlined: this is the eager engine's hottest path (one call per recorded operation)
        top = None
        for a in args:
            if type(a) is Box and (top is None or a.trace.level > top.level):
                top = a.trace
        if top is None:
            return self.impl(*args, **params)
        return _bind_traced(self, top, args, params)

    def vjp_rule(self, i: int) -> RuleFn:
        try:
            return self.vjps[i]
        except KeyError:
            raise MissingRuleError(
                f"primitive '{self.name}' has no reverse-mode (VJP) rule for its argument {i}; "
                f"register one with ds.defvjp, or pass that argument through ds.stop_gradient"
            ) from None

    def jvp_rule(self, i: int) -> RuleFn:
        try:
            return self.jvps[i]
        except KeyError:
            raise MissingRuleError(
                f"primitive '{self.name}' has no forward-mode (JVP) rule for its argument {i}; "
                f"register one with ds.defjvp, or pass that argument through ds.stop_gradient"
            ) from None


class NondiffPrimitive(Primitive):
    """A function whose result carries no derivative (comparisons, floor, argmax, shape):
    it is applied to the plain values and returns a constant."""

    __slots__ = ()

    def __call__(self, *args, **params):
        return self.impl(*[raw(a) for a in args], **params)


def bind(prim: Primitive, args: tuple, params: dict) -> Any:
    """Apply ``prim`` to ``args``, letting the innermost active trace among them record it
    (:meth:`Primitive.__call__` holds the search for that trace, inlined for speed)."""
    return Primitive.__call__(prim, *args, **params)


def _bind_traced(prim: Primitive, top: Trace, args: tuple, params: dict) -> Any:
    """``bind`` once ``top``, the innermost trace among ``args``, is known."""
    nested = False  # do boxes of outer (lower-level) traces remain after unwrapping this one?
    if len(args) == 1:
        v = args[0].value
        vals = (v,)
        nested = type(v) is Box
    else:
        vals = []
        for a in args:
            if type(a) is Box:
                if a.trace is top:
                    a = a.value
                nested = nested or type(a) is Box
            vals.append(a)
        vals = tuple(vals)
    ans = bind(prim, vals, params) if nested else prim.impl(*vals, **params)
    return top.process(prim, args, vals, ans, params)


def shape(x: Any) -> tuple:
    """Shape of a possibly boxed value."""
    while type(x) is Box:
        x = x.value
    try:
        return x.shape
    except AttributeError:
        return np.shape(x)


def dtype(x: Any) -> np.dtype:
    """dtype of a possibly boxed value."""
    return np.result_type(raw(x))
