"""Gradient checking: reverse and forward mode against finite differences, to any order.

Complex arguments are perturbed along complex directions and complex outputs get complex
cotangents; the reverse check uses the pairing of JAX's and autograd's convention,
``Re Σ ū·δy = Re Σ x̄·δx`` (see :mod:`diffsim.primitives`)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from .errors import GradientCheckError
from .tracer import raw
from .transforms import jvp, vjp
from .tree import flatten, leaf_paths, unflatten


def _vec(tree: Any) -> np.ndarray:
    leaves = flatten(tree)[0]
    return np.concatenate([np.ravel(np.asarray(raw(x)) * 1.0) for x in leaves]) if leaves else np.zeros(0)


def _pair(a, b) -> float:
    """Re Σ a·b: the real pairing of a cotangent with a tangent (no conjugation)."""
    return float(np.real(np.sum(np.ravel(a) * np.ravel(b))))


def _direction(x: np.ndarray, rng) -> np.ndarray:
    v = rng.standard_normal(np.shape(x))
    return v + 1j * rng.standard_normal(np.shape(x)) if np.iscomplexobj(x) else v


def _numeric(x: Any) -> bool:
    return np.issubdtype(np.result_type(raw(x)), np.inexact)


def _with_leaf(args: tuple, k: int, value: Any) -> tuple:
    flat, tree = flatten(args)
    flat = list(flat)
    flat[k] = value
    return unflatten(tree, flat)


def check_grads(fun: Callable, args: Sequence, order: int = 2, modes: Sequence[str] = ("rev", "fwd"),
                eps: float = 1e-4, rtol: float = 1e-6, atol: float = 1e-9, seed: int = 0) -> None:
    """Check ``fun``'s derivatives at ``args`` against finite differences, to ``order``.

    Every float leaf of every argument is perturbed along a random direction; forward mode
    (``J v``) and reverse mode (``uᵀ J v`` for a random cotangent ``u``) are compared with a
    fourth-order central difference. Higher orders check the derivative functions themselves
    (``x -> J(x) v`` and ``x -> uᵀ J(x)``) the same way. Raises :class:`GradientCheckError`
    naming the mode, the order and the argument, with expected and computed values.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> ds.check_grads(lambda x, y: dnp.sin(x) * y, (0.3, dnp.array([1.0, 2.0])))
    """
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    for mode in modes:
        if mode not in ("rev", "fwd"):
            raise ValueError(f"unknown mode {mode!r}: use 'rev' and/or 'fwd'")
    rng = np.random.default_rng(seed)
    _check(fun, args, order, tuple(modes), eps, rtol, atol, rng, depth=1)


def _check(fun, args, order, modes, eps, rtol, atol, rng, depth):
    flat, _ = flatten(args)
    paths = leaf_paths(args)
    out = fun(*args)
    out_flat, out_tree = flatten(out)
    u = unflatten(out_tree, [_direction(np.asarray(raw(o)), rng) for o in out_flat])
    u_vec = _vec(u)
    if "rev" in modes:
        _, back = vjp(fun, *args)
        ct_flat = flatten(back(u))[0]
    for k, leaf in enumerate(flat):
        if not _numeric(leaf):
            continue
        x = np.asarray(raw(leaf)) * 1.0
        v = _direction(x, rng)

        def f_along(s, _k=k, _x=x, _v=v):
            return _vec(fun(*_with_leaf(args, _k, _x + s * _v)))

        fd = (-f_along(2 * eps) + 8 * f_along(eps) - 8 * f_along(-eps) + f_along(-2 * eps)) / (12 * eps)
        where = f"argument{paths[k]}"
        if "fwd" in modes:
            tangents = _with_leaf(tuple(_zeros(a) for a in args), k, v)
            _, t = jvp(fun, args, tangents)
            _compare("forward", depth, where, fd, _vec(t), rtol, atol)
        if "rev" in modes:
            if not np.iscomplexobj(x) and np.iscomplexobj(raw(ct_flat[k])):
                raise GradientCheckError(f"reverse mode, order {depth}, {where}: a real argument got a "
                                         f"complex cotangent")
            got = _pair(np.asarray(raw(ct_flat[k])), v)
            _compare("reverse", depth, where, np.array([_pair(u_vec, fd)]), np.array([got]), rtol, atol)
    if order > 1:
        if "fwd" in modes:
            vs = tuple(_random_like(a, rng) for a in args)
            _check(lambda *a: jvp(fun, a, vs)[1], args, order - 1, modes, eps, rtol, atol, rng, depth + 1)
        if "rev" in modes:
            _check(lambda *a: vjp(fun, *a)[1](u), args, order - 1, modes, eps, rtol, atol, rng, depth + 1)


def _zeros(tree):
    flat, td = flatten(tree)
    return unflatten(td, [np.zeros(np.shape(raw(x))) for x in flat])


def _random_like(tree, rng):
    flat, td = flatten(tree)
    return unflatten(td, [_direction(np.asarray(raw(x)), rng) if _numeric(x) else np.zeros(np.shape(raw(x)))
                          for x in flat])


def _compare(mode, depth, where, expected, got, rtol, atol):
    expected, got = np.ravel(expected), np.ravel(got)
    if expected.shape != got.shape:
        raise GradientCheckError(f"{mode} mode, order {depth}, {where}: derivative has {got.size} "
                                 f"entries, finite differences {expected.size}")
    scale = np.maximum(np.abs(expected), np.abs(got))
    err = np.abs(expected - got)
    bad = ~(err <= atol + rtol * scale)  # also catches NaN
    if np.any(bad):
        i = int(np.argmax(np.where(bad, err / np.maximum(scale, 1e-300), -1)))
        rel = err[i] / max(scale[i], 1e-300)
        raise GradientCheckError(
            f"{mode} mode, order {depth}, {where}: expected {expected[i]!r} (finite differences), "
            f"got {got[i]!r}; relative error {rel:.3g} exceeds rtol={rtol:g} "
            f"(entry {i} of {expected.size})")
