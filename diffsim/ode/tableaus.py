"""Explicit Runge-Kutta schemes as data: Butcher tableaus (c, A, b, and for embedded pairs the
lower-order weights). One generic step (:func:`diffsim.ode.schemes.make_step`) and one generic
adjoint sweep (``compiled_loops.adjoint``) read them, so a new scheme is a new tableau.

>>> from diffsim.ode.tableaus import TABLEAUS
>>> [(t.name, t.stages, t.order, t.adaptive) for t in TABLEAUS.values()]
[('euler', 1, 1, False), ('rk4', 4, 4, False), ('dopri5', 7, 5, True)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DiffsimError


class TableauError(DiffsimError, ValueError):
    """A Butcher tableau that is not an explicit, consistent Runge-Kutta scheme."""


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit Runge-Kutta scheme: stage times ``c`` (s,), coefficients ``A`` (s, s) strictly
    lower triangular, weights ``b`` (s,) of order ``order``, and for an embedded pair the weights
    ``b_low`` of the error estimate (order ``order - 1``)."""

    name: str
    c: np.ndarray
    A: np.ndarray
    b: np.ndarray
    order: int
    b_low: np.ndarray | None = None

    def __post_init__(self) -> None:
        for label in ("c", "A", "b") + (("b_low",) if self.b_low is not None else ()):
            value = np.ascontiguousarray(getattr(self, label), dtype=float)
            value.setflags(write=False)
            object.__setattr__(self, label, value)
        s = self.b.shape[0]
        if self.c.shape != (s,) or self.A.shape != (s, s) or (self.b_low is not None and self.b_low.shape != (s,)):
            raise TableauError(f"tableau {self.name!r}: c, b (and b_low) need {s} entries and A shape ({s}, {s})")
        if np.any(np.triu(self.A) != 0.0):
            raise TableauError(f"tableau {self.name!r} is not explicit: A must be strictly lower triangular")
        # consistency: c_i = Σ_j a_ij and Σ b = 1 (a scheme of order >= 1)
        if not np.allclose(self.A.sum(axis=1), self.c, atol=1e-14) or not np.isclose(self.b.sum(), 1.0):
            raise TableauError(f"tableau {self.name!r} is inconsistent: need c_i = sum_j a_ij and sum(b) = 1")

    @property
    def stages(self) -> int:
        return int(self.b.shape[0])

    @property
    def adaptive(self) -> bool:
        """True for an embedded pair (step-size control from the difference of the two orders)."""
        return self.b_low is not None


EULER = ButcherTableau("euler", c=[0.0], A=[[0.0]], b=[1.0], order=1)

RK4 = ButcherTableau("rk4", c=[0.0, 0.5, 0.5, 1.0],
                     A=[[0, 0, 0, 0], [0.5, 0, 0, 0], [0, 0.5, 0, 0], [0, 0, 1.0, 0]],
                     b=[1 / 6, 1 / 3, 1 / 3, 1 / 6], order=4)

# Dormand & Prince (1980) 5(4): the 7th stage is first-same-as-last (f at the new point).
DOPRI5 = ButcherTableau(
    "dopri5",
    c=[0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0],
    A=[[0, 0, 0, 0, 0, 0, 0],
       [1 / 5, 0, 0, 0, 0, 0, 0],
       [3 / 40, 9 / 40, 0, 0, 0, 0, 0],
       [44 / 45, -56 / 15, 32 / 9, 0, 0, 0, 0],
       [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729, 0, 0, 0],
       [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656, 0, 0],
       [35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0]],
    b=[35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0],
    b_low=[5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40],
    order=5)

TABLEAUS: dict[str, ButcherTableau] = {t.name: t for t in (EULER, RK4, DOPRI5)}
