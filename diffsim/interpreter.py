"""The eager interpreter: reverse mode records a tape while numpy runs, forward mode pushes
tangents along; the backward pass walks the tape in reverse topological order.

The backward pass is micrograd's: sort the graph topologically, then apply each node's rule
from the table (:mod:`diffsim.primitives`) and accumulate cotangents with ``+`` where a value
fans out. Accumulation and rules use primitives, so an outer trace records the backward pass
itself: that is all higher-order differentiation needs.
"""

from __future__ import annotations

from typing import Any

from .primitives import add, broadcast_tangent, unbroadcast
from .tracer import Box, Primitive, Trace


class Node:
    """One recorded primitive application (a tape entry)."""

    __slots__ = ("prim", "vals", "ans", "params", "parents")

    def __init__(self, prim: Primitive | None, vals: tuple, ans: Any, params: dict, parents: tuple):
        self.prim = prim
        self.vals = vals
        self.ans = ans
        self.params = params
        self.parents = parents  # ((argnum, parent node), ...)


class ReverseTrace(Trace):
    """Reverse mode: each primitive application becomes a :class:`Node` on the tape."""

    __slots__ = ()

    def new_input(self, value: Any) -> Box:
        return Box(value, self, Node(None, (), value, {}, ()))

    def process(self, prim, args, vals, ans, params):
        parents = tuple((i, a.node) for i, a in enumerate(args) if type(a) is Box and a.trace is self)
        return Box(ans, self, Node(prim, vals, ans, params, parents))


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


def toposort(roots: list[Node]) -> list[Node]:
    """Nodes reachable from ``roots``, each before all of its parents."""
    seen: set[int] = set()
    order: list[Node] = []
    stack = [(r, False) for r in roots]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for _, p in node.parents if id(p) not in seen)
    order.reverse()
    return order


def backward(seeds: list[tuple[Node, Any]]) -> dict[int, Any]:
    """Propagate cotangents from ``seeds`` (node, cotangent) to every node; returns the
    cotangents of the input nodes (those without parents), keyed by ``id(node)``."""
    grads: dict[int, Any] = {}
    for node, g in seeds:
        grads[id(node)] = g if id(node) not in grads else add(grads[id(node)], g)
    leaves = {}
    for node in toposort([n for n, _ in seeds]):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if not node.parents:
            leaves[id(node)] = g
            continue
        prim, vals = node.prim, node.vals
        if prim.vjp_all is not None:
            argnums = [i for i, _ in node.parents]
            cts = prim.vjp_all(g, node.ans, vals, node.params, argnums)
        else:
            cts = [prim.vjp_rule(i)(g, node.ans, *vals, **node.params) for i, _ in node.parents]
        for (i, parent), ct in zip(node.parents, cts):
            ct = unbroadcast(ct, vals[i])
            key = id(parent)
            grads[key] = ct if key not in grads else add(grads[key], ct)
    return leaves
