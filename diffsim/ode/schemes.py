"""Integrator steps written with ``diffsim.numpy``: traced once, they become compiled kernels
whose VJP is the exact discrete adjoint of the step (stages recomputed inside the VJP).

The running cost rides along as an extra state, ż = (f, L), so the cost is integrated by the
same scheme as the state: J = Σ_k c_k + Φ(x_N), with c_k the last component of a step.
"""

from __future__ import annotations

import inspect
from typing import Callable

import diffsim.numpy as dnp

from .tableaus import DOPRI5, TABLEAUS, ButcherTableau

SCHEMES: dict[str, ButcherTableau] = TABLEAUS
FIXED_STEP = tuple(name for name, tableau in TABLEAUS.items() if not tableau.adaptive)


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


def _stages(rhs: Callable, n: int, tableau: ButcherTableau, x, u, p, t, h) -> list:
    """The stage slopes k_i = [f, L](x + h Σ_j a_ij k_j[:n], t + c_i h) of an explicit scheme."""
    ks = []
    for i in range(tableau.stages):
        xi = x
        for j in range(i):
            if tableau.A[i, j] != 0.0:
                xi = xi + (h * float(tableau.A[i, j])) * ks[j][:n]
        ks.append(rhs(xi, u, p, t + float(tableau.c[i]) * h))
    return ks


def _denominator(weights) -> int:
    """The smallest d ≤ 1000 making every d·w_i an integer (1 if none does): RK4's 6."""
    for d in range(1, 1001):
        if all(abs(d * w - round(d * w)) < 1e-12 for w in weights):
            return d
    return 1


def _combine(weights, ks, h):
    """h Σ_i w_i k_i over the non-zero weights, as (h/d) Σ (d w_i) k_i with integer d w_i when
    there is such a d, the textbook form (RK4: h/6 (k1 + 2 k2 + 2 k3 + k4)) and its rounding."""
    d = _denominator(weights)
    return (h / d) * sum(float(round(d * w)) * k for w, k in zip(weights, ks) if w != 0.0) if d > 1 else \
        h * sum(float(w) * k for w, k in zip(weights, ks) if w != 0.0)


def make_step(rhs: Callable, n: int, scheme: str) -> Callable:
    """One step of the fixed-step ``scheme`` (a name in :data:`FIXED_STEP`, read from its Butcher
    tableau) on the augmented system: (x, u, p, t, h) -> [x_next, cost increment]."""
    if scheme not in FIXED_STEP:
        raise ValueError(f"unknown fixed-step scheme {scheme!r}; choose one of {FIXED_STEP}")
    tableau = TABLEAUS[scheme]

    def step(x, u, p, t, h):
        ks = _stages(rhs, n, tableau, x, u, p, t, h)
        return dnp.concatenate([x, dnp.zeros(1)]) + _combine(tableau.b, ks, h)

    return step


def make_dopri5_step(rhs: Callable, n: int) -> Callable:
    """(x, u, p, t, h) -> [y5 (n+1), error estimate y5 - y4 (n+1)] on the augmented system."""

    def step(x, u, p, t, h):
        ks = _stages(rhs, n, DOPRI5, x, u, p, t, h)
        y5 = dnp.concatenate([x, dnp.zeros(1)]) + _combine(DOPRI5.b, ks, h)
        return dnp.concatenate([y5, _combine(DOPRI5.b - DOPRI5.b_low, ks, h)])

    return step
