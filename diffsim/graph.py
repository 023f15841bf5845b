"""Fused gather-product-scatter primitives for message passing on graphs.

An equivariant message Σ_j (v_j ∘ b_ij + û_ij ⊗ c_ij), written with plain ops, builds several
(edges, 3, F) arrays forward and more in each backward pass. Here it is two Numba kernels that
never build them. They come from two trilinear forms over the edges e = (dst_e ← src_e):

    T₁(g, y, w) = Σ_e Σ_xf g[dst_e, x, f] · y[src_e, x, f] · w[e, f]
    T₂(g, u, c) = Σ_e Σ_xf g[dst_e, x, f] · u[e, x] · c[e, f]

Each primitive is the partial derivative of a form with respect to one of its slots, so the
derivative of any of them is another of them (the VJP with respect to slot i of ∂T/∂(slot k) is
∂T/∂(slot i) with the cotangent put in slot k). Five primitives close under differentiation,
to every order, in both modes:

- ``gather_mul_scatter(y, w, src, dst, n)``: out[dst_e] += y[src_e] ∘ w[e]      (∂T₁/∂g; ∂T₁/∂y swaps src, dst)
- ``gather_dot(g, y, ia, ib)``:             out[e] = Σ_x g[ia_e, x] ∘ y[ib_e, x]  (∂T₁/∂w)
- ``outer_scatter(u, c, dst, n)``:          out[dst_e] += u[e] ⊗ c[e]             (∂T₂/∂g)
- ``gather_contract_f(g, c, ia)``:          out[e, x] = Σ_f g[ia_e, x, f] c[e, f] (∂T₂/∂u)
- ``gather_contract_x(g, u, ia)``:          out[e, f] = Σ_x g[ia_e, x, f] u[e, x] (∂T₂/∂c)

and one linear pair, the vectors along the edges and their transpose:

- ``pair_differences(x, centers, neighbors)``: out[e] = x[neighbors_e] − x[centers_e]
- ``pair_scatter(g, centers, neighbors, n)``:  out[neighbors_e] += g[e], out[centers_e] −= g[e]

(one gather and one scatter-add, where indexing twice would take two of each).

>>> import numpy as np
>>> y, w = np.ones((2, 3, 4)), np.full((3, 4), 2.0)
>>> gather_mul_scatter(y, w, src=np.array([0, 1, 1]), dst=np.array([1, 0, 1]), n=2)[:, 0, 0].tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .kernel_cache import heal
from .primitives import defjvp, defvjp, saves
from .tracer import Primitive, shape

# ---------------------------------------------------------------- kernels


@njit(cache=True)
def _gather_mul_scatter(y, w, src, dst, n):
    out = np.zeros((n, y.shape[1], y.shape[2]))
    for e in range(src.shape[0]):
        a, b = dst[e], src[e]
        for x in range(y.shape[1]):
            for f in range(y.shape[2]):
                out[a, x, f] += y[b, x, f] * w[e, f]
    return out


@njit(cache=True)
def _gather_dot(g, y, ia, ib):
    out = np.zeros((ia.shape[0], g.shape[2]))
    for e in range(ia.shape[0]):
        a, b = ia[e], ib[e]
        for x in range(g.shape[1]):
            for f in range(g.shape[2]):
                out[e, f] += g[a, x, f] * y[b, x, f]
    return out


@njit(cache=True)
def _outer_scatter(u, c, dst, n):
    out = np.zeros((n, u.shape[1], c.shape[1]))
    for e in range(dst.shape[0]):
        a = dst[e]
        for x in range(u.shape[1]):
            for f in range(c.shape[1]):
                out[a, x, f] += u[e, x] * c[e, f]
    return out


@njit(cache=True)
def _gather_contract_f(g, c, ia):
    out = np.zeros((ia.shape[0], g.shape[1]))
    for e in range(ia.shape[0]):
        a = ia[e]
        for x in range(g.shape[1]):
            acc = 0.0
            for f in range(g.shape[2]):
                acc += g[a, x, f] * c[e, f]
            out[e, x] = acc
    return out


@njit(cache=True)
def _gather_contract_x(g, u, ia):
    out = np.zeros((ia.shape[0], g.shape[2]))
    for e in range(ia.shape[0]):
        a = ia[e]
        for x in range(g.shape[1]):
            for f in range(g.shape[2]):
                out[e, f] += g[a, x, f] * u[e, x]
    return out


@njit(cache=True)
def _pair_differences(x, centers, neighbors):
    out = np.empty((centers.shape[0], x.shape[1]))
    for e in range(centers.shape[0]):
        for c in range(x.shape[1]):
            out[e, c] = x[neighbors[e], c] - x[centers[e], c]
    return out


@njit(cache=True)
def _pair_scatter(g, centers, neighbors, n):
    out = np.zeros((n, g.shape[1]))
    for e in range(centers.shape[0]):
        for c in range(g.shape[1]):
            out[neighbors[e], c] += g[e, c]
            out[centers[e], c] -= g[e, c]
    return out


def _float(*arrays):
    return [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]


def _edges(name: str, n_edges: int, **indices) -> list:
    """Each index array (label → (array, rows)) as int64, checked: 1-D, one entry per edge, in range."""
    out = []
    for label, (idx, rows) in indices.items():
        idx = np.asarray(idx)
        if idx.ndim != 1 or idx.dtype.kind not in "iu" or len(idx) != n_edges:
            raise ValueError(f"{name}: {label} must be 1-D integer indices, one per edge ({n_edges}); got shape "
                             f"{idx.shape} of {idx.dtype}")
        if len(idx) and (idx.min() < 0 or idx.max() >= rows):
            raise IndexError(f"{name}: {label} holds indices outside 0..{rows - 1} (the rows it indexes)")
        out.append(np.ascontiguousarray(idx, dtype=np.int64))
    return out


def _shapes(name: str, **arrays) -> None:
    """Raise, naming the primitive and the argument, unless every array has the expected shape
    (label → (array, shape); None in a shape matches any size)."""
    for label, (a, expected) in arrays.items():
        got = np.shape(a)
        if len(got) != len(expected) or any(e is not None and g != e for g, e in zip(got, expected)):
            want = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{name}: {label} has shape {got}, expected {want}")


def _gms_impl(y, w, *, src, dst, n):
    _shapes("gather_mul_scatter", y=(y, (None, None, None)), w=(w, (len(src), np.shape(y)[-1])))
    return _gather_mul_scatter(*_float(y, w), *_edges("gather_mul_scatter", len(src), src=(src, len(y)),
                                                      dst=(dst, n)), int(n))


def _gather_dot_impl(g, y, *, ia, ib):
    _shapes("gather_dot", g=(g, (None, None, None)), y=(y, (None,) + np.shape(g)[1:]))
    return _gather_dot(*_float(g, y), *_edges("gather_dot", len(ia), ia=(ia, len(g)), ib=(ib, len(y))))


def _outer_scatter_impl(u, c, *, dst, n):
    _shapes("outer_scatter", u=(u, (len(dst), None)), c=(c, (len(dst), None)))
    return _outer_scatter(*_float(u, c), *_edges("outer_scatter", len(dst), dst=(dst, n)), int(n))


def _contract_f_impl(g, c, *, ia):
    _shapes("gather_contract_f", g=(g, (None, None, None)), c=(c, (len(ia), np.shape(g)[-1])))
    return _gather_contract_f(*_float(g, c), *_edges("gather_contract_f", len(ia), ia=(ia, len(g))))


def _contract_x_impl(g, u, *, ia):
    _shapes("gather_contract_x", g=(g, (None, None, None)), u=(u, (len(ia), np.shape(g)[1])))
    return _gather_contract_x(*_float(g, u), *_edges("gather_contract_x", len(ia), ia=(ia, len(g))))


def _pair_differences_impl(x, *, centers, neighbors):
    _shapes("pair_differences", x=(x, (None, None)))
    return _pair_differences(*_float(x), *_edges("pair_differences", len(centers), centers=(centers, len(x)),
                                                 neighbors=(neighbors, len(x))))


def _pair_scatter_impl(g, *, centers, neighbors, n):
    _shapes("pair_scatter", g=(g, (len(centers), None)))
    return _pair_scatter(*_float(g), *_edges("pair_scatter", len(centers), centers=(centers, n),
                                             neighbors=(neighbors, n)), int(n))


# ---------------------------------------------------------------- primitives and their rules
# Indices and sizes are keyword-only: passed by position they would be taken for differentiable
# inputs, so a positional call fails at once.

gather_mul_scatter = Primitive("gather_mul_scatter", _gms_impl)
gather_dot = Primitive("gather_dot", _gather_dot_impl)
outer_scatter = Primitive("outer_scatter", _outer_scatter_impl)
gather_contract_f = Primitive("gather_contract_f", _contract_f_impl)
gather_contract_x = Primitive("gather_contract_x", _contract_x_impl)
pair_differences = Primitive("pair_differences", _pair_differences_impl)
pair_scatter = Primitive("pair_scatter", _pair_scatter_impl)

defvjp(pair_differences, lambda g, ans, x, centers, neighbors: pair_scatter(g, centers=centers, neighbors=neighbors,
                                                                            n=shape(x)[0]))
defvjp(pair_scatter, lambda g, ans, x, centers, neighbors, n: pair_differences(g, centers=centers, neighbors=neighbors))
defjvp(pair_differences, lambda t, ans, x, **k: pair_differences(t, **k))
defjvp(pair_scatter, lambda t, ans, x, **k: pair_scatter(t, **k))
saves([pair_differences, pair_scatter], args=False, ans=False)

defvjp(gather_mul_scatter,
       lambda h, ans, y, w, src, dst, n: gather_mul_scatter(h, w, src=dst, dst=src, n=shape(y)[0]),
       lambda h, ans, y, w, src, dst, n: gather_dot(h, y, ia=dst, ib=src))
defvjp(gather_dot,
       lambda k, ans, g, y, ia, ib: gather_mul_scatter(y, k, src=ib, dst=ia, n=shape(g)[0]),
       lambda k, ans, g, y, ia, ib: gather_mul_scatter(g, k, src=ia, dst=ib, n=shape(y)[0]))
defvjp(outer_scatter,
       lambda h, ans, u, c, dst, n: gather_contract_f(h, c, ia=dst),
       lambda h, ans, u, c, dst, n: gather_contract_x(h, u, ia=dst))
defvjp(gather_contract_f,
       lambda k, ans, g, c, ia: outer_scatter(k, c, dst=ia, n=shape(g)[0]),
       lambda k, ans, g, c, ia: gather_contract_x(g, k, ia=ia))
defvjp(gather_contract_x,
       lambda k, ans, g, u, ia: outer_scatter(u, k, dst=ia, n=shape(g)[0]),
       lambda k, ans, g, u, ia: gather_contract_f(g, k, ia=ia))
# every one is bilinear: the tangent of an argument goes where the argument was
for _p in (gather_mul_scatter, gather_dot, outer_scatter, gather_contract_f, gather_contract_x):
    defjvp(_p, lambda t, ans, a, b, _p=_p, **k: _p(t, b, **k), lambda t, ans, a, b, _p=_p, **k: _p(a, t, **k))
saves([gather_mul_scatter, gather_dot, outer_scatter, gather_contract_f, gather_contract_x], ans=False)


heal(globals())  # damaged Numba cache entries of these kernels are recompiled, not fatal
