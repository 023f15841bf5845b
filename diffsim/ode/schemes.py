"""Integrator steps written with ``diffsim.numpy``: traced once, they become compiled kernels
whose VJP is the exact discrete adjoint of the step (stages recomputed inside the VJP).

The running cost rides along as an extra state, ż = (f, L), so the cost is integrated by the
same scheme as the state: J = Σ_k c_k + Φ(x_N), with c_k the last component of a step.
"""

from __future__ import annotations

import inspect
from typing import Callable

import diffsim.numpy as dnp

SCHEMES = {"euler": 0, "rk4": 1}


def canonical(fun: Callable | None, full: int, what: str) -> Callable | None:
    """Accept ``f(x, u, p, t)``, ``f(x, u, p)`` or ``f(x, u)`` (costs likewise, ``Φ(x, p)`` or
    ``Φ(x)``) and return a function of all ``full`` arguments."""
    if fun is None:
        return None
    try:
        params = [q for q in inspect.signature(fun).parameters.values()
                  if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD) and q.default is q.empty]
        count = len(params)
    except (TypeError, ValueError):
        count = full
    if count > full or count < 1:
        raise TypeError(f"{what} must take between 1 and {full} positional arguments, takes {count}")
    if count == full:
        return fun
    return lambda *args: fun(*args[:count])


def augmented_rhs(f: Callable, running_cost: Callable | None) -> Callable:
    """(x, u, p, t) -> [f(x, u, p, t), L(x, u, p, t)]."""

    def rhs(x, u, p, t):
        cost = running_cost(x, u, p, t) if running_cost is not None else 0.0
        return dnp.concatenate([f(x, u, p, t), dnp.reshape(cost, (1,))])

    return rhs


def make_step(rhs: Callable, n: int, scheme: str) -> Callable:
    """One step of ``scheme`` on the augmented system: (x, u, p, t, h) -> [x_next, cost increment]."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {sorted(SCHEMES)}")

    def lift(x):
        return dnp.concatenate([x, dnp.zeros(1)])

    if scheme == "euler":
        return lambda x, u, p, t, h: lift(x) + h * rhs(x, u, p, t)

    def rk4(x, u, p, t, h):
        k1 = rhs(x, u, p, t)
        k2 = rhs(x + 0.5 * h * k1[:n], u, p, t + 0.5 * h)
        k3 = rhs(x + 0.5 * h * k2[:n], u, p, t + 0.5 * h)
        k4 = rhs(x + h * k3[:n], u, p, t + h)
        return lift(x) + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    return rk4
