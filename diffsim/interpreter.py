"""The eager interpreter: reverse mode records a tape while numpy runs, forward mode pushes
tangents along; the backward pass walks the tape in reverse.

The tape is a Wengert list: nodes are appended in execution order, which is a topological
order, so walking it backwards visits every node after all of its consumers (no sort needed).
Each node's rule comes from the table (:mod:`diffsim.primitives`); cotangents accumulate with
``+`` where a value fans out. Rules and accumulation use primitives, so an outer trace records
the backward pass itself: that is all higher-order differentiation needs.

A node (tape entry) is the tuple ``(prim, vals, ans, params, parents)``, ``parents`` being
``((argnum, parent node), ...)``; an input's node has no parents. A tuple because one is made per
recorded operation, and a tuple costs a fraction of an object with an ``__init__``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .primitives import add, broadcast_tangent, is_complex, real, unbroadcast
from .tracer import Box, Trace, shape


class ShapeOf:
    """What the tape keeps of a value its rules never read: its shape, for unbroadcasting,
    and whether it is complex (a real input gets the real part of a complex cotangent)."""

    __slots__ = ("shape", "complex")

    def __init__(self, value: Any) -> None:
        self.shape = shape(value)
        self.complex = value.dtype.kind == "c"


class ReverseTrace(Trace):
    """Reverse mode: each primitive application is appended to the tape as a node tuple."""

    __slots__ = ("tape",)

    def __init__(self) -> None:
        super().__init__()
        self.tape: list[tuple] = []

    def new_input(self, value: Any) -> Box:
        return Box(value, self, (None, (), value, {}, ()))  # a node without parents

    def process(self, prim, args, vals, ans, params):
        if len(args) == 1:  # the common unary case without the loops (this is the hot path)
            parents = ((0, args[0].node),)
        else:
            parents = []
            for i, a in enumerate(args):
                if type(a) is Box and a.trace is self:
                    parents.append((i, a.node))
            parents = tuple(parents)
        saved = vals
        if not prim.keep_args:
            # only arrays are worth replacing by their shape; scalars cost more to wrap than to keep
            for v in vals:
                if type(v) is np.ndarray:
                    saved = tuple([ShapeOf(v) if type(v) is np.ndarray else v for v in vals])
                    break
        node = (prim, saved, ans if prim.keep_ans else None, params, parents)
        self.tape.append(node)
        return Box(ans, self, node)


class ForwardTrace(Trace):
    """Forward mode: each box carries its tangent in ``node``."""

    __slots__ = ()

    def new_input(self, value: Any, tangent: Any) -> Box:
        return Box(value, self, tangent)

    def process(self, prim, args, vals, ans, params):
        if prim.jvp_all is not None:
            ts = [a.node if type(a) is Box and a.trace is self else None for a in args]
            return Box(ans, self, broadcast_tangent(prim.jvp_all(ts, ans, vals, params), ans))
        out = None
        for i, a in enumerate(args):
            if type(a) is Box and a.trace is self:
                t = broadcast_tangent(prim.jvp_rule(i)(a.node, ans, *vals, **params), ans)
                out = t if out is None else add(out, t)
        return Box(ans, self, out)


def _complex_value(v) -> bool:
    return v.complex if type(v) is ShapeOf else is_complex(v)


def _fit(ct, v):
    """Cotangent ``ct`` made to fit the value ``v`` it is for: broadcasting undone, and the real
    part for a real value (promoted to complex on the way)."""
    ct = unbroadcast(ct, v)
    return real(ct) if is_complex(ct) and not _complex_value(v) else ct


def backward(trace: ReverseTrace, seeds: list[tuple[tuple, Any]]) -> dict[int, Any]:
    """Propagate cotangents from ``seeds`` (node, cotangent) back along ``trace``'s tape;
    returns the cotangents reaching input nodes (those without parents), keyed by ``id(node)``."""
    grads: dict[int, Any] = {}
    for node, g in seeds:
        key = id(node)
        grads[key] = g if key not in grads else add(grads[key], g)
    real_scalars = (np.float64, float)  # two of them need no unbroadcasting (the common scalar case)
    pop = grads.pop
    for node in reversed(trace.tape):
        g = pop(id(node), None)
        if g is None:
            continue
        prim, vals, ans, params, parents = node
        if prim.vjp_all is None and len(parents) == 1:  # one traced argument: the hot path, unrolled
            ((i, parent),) = parents
            ct = (prim.vjps.get(i) or prim.vjp_rule(i))(g, ans, *vals, **params)
            v = vals[i]
            if type(ct) not in real_scalars or type(v) not in real_scalars:
                ct = _fit(ct, v)
            key = id(parent)
            grads[key] = ct if key not in grads else add(grads[key], ct)
            continue
        if prim.vjp_all is not None:
            cts = prim.vjp_all(g, ans, vals, params, [i for i, _ in parents])
        else:
            vjps = prim.vjps
            cts = [(vjps.get(i) or prim.vjp_rule(i))(g, ans, *vals, **params) for i, _ in parents]
        for (i, parent), ct in zip(parents, cts):
            v = vals[i]
            if type(ct) not in real_scalars or type(v) not in real_scalars:
                ct = _fit(ct, v)
            key = id(parent)
            grads[key] = ct if key not in grads else add(grads[key], ct)
    return grads  # what is left: the inputs' cotangents
