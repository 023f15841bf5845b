"""Integrator steps written with ``diffsim.numpy``: traced once, they become compiled kernels
whose VJP is the exact discrete adjoint of the step (stages recomputed inside the VJP).

The running cost rides along as an extra state, ż = (f, L), so the cost is integrated by the
same scheme as the state: J = Σ_k c_k + Φ(x_N), with c_k the last component of a step.
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

import diffsim.numpy as dnp

SCHEMES = {"euler": 0, "rk4": 1, "dopri5": 2}
FIXED_STEP = ("euler", "rk4")


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
    if scheme not in FIXED_STEP:
        raise ValueError(f"unknown fixed-step scheme {scheme!r}; choose one of {FIXED_STEP}")

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


# Dormand & Prince (1980) 5(4) tableau: stages c, coefficients A, 5th-order weights B5 and the
# embedded 4th-order B4 (the 7th stage is first-same-as-last: it is f at the new point).
DOPRI5_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
DOPRI5_A = np.array([
    [0, 0, 0, 0, 0, 0, 0],
    [1 / 5, 0, 0, 0, 0, 0, 0],
    [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
    [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
    [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
])
DOPRI5_B5 = np.array([35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0])
DOPRI5_B4 = np.array([5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40])


def make_dopri5_step(rhs: Callable, n: int) -> Callable:
    """(x, u, p, t, h) -> [y5 (n+1), error estimate y5 - y4 (n+1)] on the augmented system."""

    def step(x, u, p, t, h):
        y = dnp.concatenate([x, dnp.zeros(1)])
        ks = []
        for i in range(7):
            yi = y
            for j in range(i):
                if DOPRI5_A[i, j] != 0.0:
                    yi = yi + (h * DOPRI5_A[i, j]) * ks[j]
            ks.append(rhs(yi[:n], u, p, t + DOPRI5_C[i] * h))
        y5 = y + h * sum(float(b) * k for b, k in zip(DOPRI5_B5, ks) if b != 0.0)
        err = h * sum(float(b5 - b4) * k for b5, b4, k in zip(DOPRI5_B5, DOPRI5_B4, ks) if b5 != b4)
        return dnp.concatenate([y5, err])

    return step
