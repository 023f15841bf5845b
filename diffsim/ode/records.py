"""What the compiled ODE loops return: named records instead of long tuples, and the one
failure convention every loop follows, a ``status`` code with the ``where`` it happened (the
step for fixed-step loops, the control interval for the adaptive ones; -1 when all went well).

The loop templates (``compiled_loops.py``, ``adaptive_loops.py``) import these classes, so
Numba builds and returns them in compiled code.

>>> from diffsim.ode.records import STATUS, OK
>>> STATUS[OK]
'ok'
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

OK, NONFINITE, TOO_MANY, UNDERFLOW = 0, 1, 2, 3
STATUS = {OK: "ok", NONFINITE: "non-finite state or cost", TOO_MANY: "more than max_steps accepted steps",
          UNDERFLOW: "step size underflow (the problem may be stiff or singular there)"}


class FixedRollout(NamedTuple):
    """A fixed-step rollout: states (N+1, n) and the cost."""

    xs: np.ndarray
    J: float
    status: int
    where: int


class BatchRollout(NamedTuple):
    """Independent rollouts: states (B, N+1, n), costs (B,), and a status and step per rollout."""

    xs: np.ndarray
    J: np.ndarray
    status: np.ndarray
    where: np.ndarray


class Sweep(NamedTuple):
    """A reverse sweep (BPTT or the fixed-step adjoint): the cost, dJ/dU (N, m), dJ/dp and the
    costates λ_k (N+1, n); ``x_start`` is x(0) as the backsolve adjoint reconstructed it (x0 for
    the other sweeps)."""

    J: float
    dU: np.ndarray
    dp: np.ndarray
    costates: np.ndarray
    x_start: np.ndarray
    status: int
    where: int


class CheckpointedSweep(NamedTuple):
    """BPTT under binomial checkpointing: λ_0 only, with |λ_k| (N+1,) and the forward steps
    recomputed beyond the N - 1 of plain BPTT."""

    J: float
    costate0: np.ndarray
    dU: np.ndarray
    dp: np.ndarray
    recomputed: int
    norms: np.ndarray
    status: int
    where: int


class AcceptedSteps(NamedTuple):
    """The accepted adaptive steps (the first ``count`` rows are filled): start time and size,
    control interval, state and slope at both ends (cubic Hermite dense output)."""

    t: np.ndarray
    h: np.ndarray
    interval: np.ndarray
    x: np.ndarray
    x_end: np.ndarray
    f: np.ndarray
    f_end: np.ndarray
    count: int


class AdaptiveRollout(NamedTuple):
    """An adaptive rollout: grid states (N+1, n), the cost, the accepted steps and the number rejected."""

    xs: np.ndarray
    J: float
    steps: AcceptedSteps
    rejected: int
    status: int
    where: int


class AdaptiveSweep(NamedTuple):
    """A reverse sweep through an adaptive rollout: the cost, dJ/dU, dJ/dp, costates at the grid,
    the forward steps accepted, the backward steps accepted (0 for BPTT, which reuses the forward
    steps) and the steps rejected."""

    J: float
    dU: np.ndarray
    dp: np.ndarray
    costates: np.ndarray
    accepted: int
    backward_accepted: int
    rejected: int
    status: int
    where: int
