"""Gradient methods of an ODE problem as small objects: each validates its own options when it is
made, runs its compiled sweep, and carries its own diagnostics in the :class:`Gradient`.

- :class:`Bptt`: the discrete adjoint of the integrator (exact gradient of the discrete cost);
- :class:`Checkpointed`: the same numbers under binomial checkpointing (``snapshots`` or ``memory``);
- :class:`Adjoint`: the continuous costate equation, the state from Hermite interpolation or
  integrated backward (``interpolation="backsolve"``);
- :class:`Forward`: forward sensitivities with respect to ``wrt``.

The string names (``method="bptt"``, with the options as keywords) stay as a shortcut:
:func:`gradient_method` turns them into these objects.

>>> from diffsim.ode.gradients import Checkpointed, gradient_method
>>> gradient_method("checkpointed", snapshots=4)
Checkpointed(snapshots=4, memory=None)
>>> Checkpointed(snapshots=-1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
diffsim.ode.gradients.GradientOptionError: Checkpointed: snapshots must be an integer >= 0 (stored ...), got -1
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..errors import DiffsimError

if TYPE_CHECKING:
    from .problem import ODEProblem


class GradientOptionError(DiffsimError, ValueError):
    """A gradient method or one of its options is wrong; the message names the option and the fix."""


class BacksolveWarning(RuntimeWarning):
    """The backsolve adjoint reconstructed x(0) badly: its gradient is not to be trusted."""


# ------------------------------------------------------------------ diagnostics

@dataclass(frozen=True)
class BpttDiagnostics:
    """Adaptive schemes: the steps accepted and rejected by the forward step control."""

    accepted: int | None = None
    rejected: int | None = None


@dataclass(frozen=True)
class CheckpointedDiagnostics:
    """The snapshots used, the forward steps recomputed beyond the N - 1 of BPTT, and |λ_k|
    (the method keeps no costates)."""

    snapshots: int
    recomputed_steps: int
    norms: np.ndarray


@dataclass(frozen=True)
class AdjointDiagnostics:
    """How the forward state was read (``"hermite"``, ``"backsolve"``, or ``"dense"`` for dopri5);
    backsolve: |x(0) reconstructed - x0| / (1 + |x0|); adaptive: the step counts."""

    interpolation: str
    backsolve_error: float | None = None
    accepted: int | None = None
    backward_accepted: int | None = None
    rejected: int | None = None


@dataclass(frozen=True)
class ForwardDiagnostics:
    """The inputs differentiated and the tangent rollouts that took."""

    wrt: tuple[str, ...]
    tangent_rollouts: int


@dataclass
class Gradient:
    """The cost and its gradients, with the costates and the diagnostics of the method used."""

    cost: float
    dx0: np.ndarray | None
    dU: np.ndarray | None
    dp: np.ndarray
    method: str
    t: np.ndarray
    costates: np.ndarray | None = None     # (N+1, n): λ(t_k)
    diagnostics: Any = None                # the method's own record (see above)
    seconds: float = 0.0

    @property
    def J(self) -> float:
        """The cost (the earlier name of ``cost``)."""
        return self.cost

    @property
    def costate(self) -> np.ndarray | None:
        """λ(t_k) (the earlier name of ``costates``)."""
        return self.costates

    @property
    def grad_norm(self) -> np.ndarray | None:
        """|λ(t_k)| along the reverse sweep (N+1,): vanishing or exploding gradients at a glance."""
        if isinstance(self.diagnostics, CheckpointedDiagnostics):
            return self.diagnostics.norms
        if self.costates is None:
            return None
        return np.sqrt(np.einsum("ij,ij->i", self.costates, self.costates))

    @property
    def control_density(self) -> np.ndarray | None:
        """∂J/∂u_k / h: approximates ∂H/∂u(t_k), comparable across step sizes."""
        return None if self.dU is None else self.dU / (self.t[1] - self.t[0])

    # read-only views of the diagnostics under their earlier names
    @property
    def norms(self) -> np.ndarray | None:
        return self.diagnostics.norms if isinstance(self.diagnostics, CheckpointedDiagnostics) else None

    @property
    def recomputed_steps(self) -> int | None:
        return getattr(self.diagnostics, "recomputed_steps", None)

    @property
    def snapshots(self) -> int | None:
        return getattr(self.diagnostics, "snapshots", None)

    @property
    def backsolve_error(self) -> float | None:
        return getattr(self.diagnostics, "backsolve_error", None)

    @property
    def extra(self) -> dict:
        """The diagnostics as a dict (fields that are set)."""
        if self.diagnostics is None:
            return {}
        return {k: v for k, v in vars(self.diagnostics).items() if v is not None}


# ------------------------------------------------------------------ methods

class GradientMethod:
    """A way to compute dJ/d(x0, U, p); subclasses validate their options in ``__init__``."""

    name: ClassVar[str]

    def compute(self, problem: "ODEProblem", x0, U, p, t0: float, h: float, t: np.ndarray) -> Gradient:
        raise NotImplementedError

    def _fail(self, message: str):
        raise GradientOptionError(f"{type(self).__name__}: {message}")


@dataclass(frozen=True)
class Bptt(GradientMethod):
    """Backpropagation through time: the discrete adjoint of the integrator, states stored and
    stages recomputed in the reverse sweep. Exact for the discrete cost.

    >>> Bptt().name
    'bptt'
    """

    name: ClassVar[str] = "bptt"

    def compute(self, problem, x0, U, p, t0, h, t):
        if problem.adaptive:
            r = problem.module.bptt_adaptive(x0, U, p, t0, h, *problem._adaptive_args())
            problem._raise_failure(r.status, r.where, h, t0)
            diagnostics = BpttDiagnostics(accepted=int(r.accepted), rejected=int(r.rejected))
        else:
            r = problem.module.bptt(x0, U, p, t0, h)
            problem._raise_failure(r.status, r.where, h, t0)
            diagnostics = BpttDiagnostics()
        return Gradient(float(r.J), r.costates[0].copy(), r.dU, r.dp, self.name, t, costates=r.costates,
                        diagnostics=diagnostics)


@dataclass(frozen=True)
class Checkpointed(GradientMethod):
    """BPTT with binomial (revolve) checkpointing: ``snapshots`` stored states besides x0 (default
    √N, at most N), or as many as a ``memory`` budget in bytes holds. Same numbers as BPTT.

    >>> Checkpointed(memory=1024).snapshots is None
    True
    """

    snapshots: int | None = None
    memory: int | None = None
    name: ClassVar[str] = "checkpointed"

    def __post_init__(self) -> None:
        if self.snapshots is not None and self.memory is not None:
            self._fail("give snapshots or memory, not both")
        if self.snapshots is not None and not (_is_int(self.snapshots) and self.snapshots >= 0):
            self._fail(f"snapshots must be an integer >= 0 (stored states besides x0), got {self.snapshots!r}")
        if self.memory is not None and not (isinstance(self.memory, numbers.Real) and self.memory > 0):
            self._fail(f"memory must be a positive number of bytes, got {self.memory!r}")

    def count(self, N: int, n_x: int) -> int:
        """The snapshots used for N steps of an n_x-dimensional state."""
        if self.snapshots is not None:
            return int(min(self.snapshots, N))
        if self.memory is not None:
            return int(min(max(1, int(self.memory // (8 * n_x))), N))
        return int(min(max(1, int(np.sqrt(N))), N))

    def compute(self, problem, x0, U, p, t0, h, t):
        if problem.adaptive:
            raise GradientOptionError("checkpointed BPTT needs a fixed-step scheme ('rk4' or 'euler'); with dopri5 "
                                      "use 'bptt' or 'adjoint'")
        snapshots = self.count(U.shape[0], problem.n_x)
        r = problem.module.checkpointed(x0, U, p, t0, h, snapshots)
        problem._raise_failure(r.status, r.where, h, t0)
        return Gradient(float(r.J), r.costate0, r.dU, r.dp, self.name, t,
                        diagnostics=CheckpointedDiagnostics(snapshots, int(r.recomputed), r.norms))


_INTERPOLATIONS = ("hermite", "backsolve")


@dataclass(frozen=True)
class Adjoint(GradientMethod):
    """The continuous adjoint λ̇ = −∂H/∂x integrated backward with the problem's scheme; the
    forward state by cubic Hermite interpolation of the stored grid (``"hermite"``, stable) or
    integrated backward alongside (``"backsolve"``, O(1) memory but unstable when the dynamics
    contract: a :class:`BacksolveWarning` above ``backsolve_tol``). Converges to BPTT with the
    scheme's order as the step shrinks.

    >>> Adjoint(interpolation="backsolve").backsolve_tol
    1e-06
    """

    interpolation: str = "hermite"
    backsolve_tol: float = 1e-6
    name: ClassVar[str] = "adjoint"

    def __post_init__(self) -> None:
        if self.interpolation not in _INTERPOLATIONS:
            self._fail(f"interpolation must be 'hermite' or 'backsolve', got {self.interpolation!r}")
        if not (isinstance(self.backsolve_tol, numbers.Real) and self.backsolve_tol > 0
                and math.isfinite(self.backsolve_tol)):
            self._fail(f"backsolve_tol must be a positive finite number, got {self.backsolve_tol!r}")

    def compute(self, problem, x0, U, p, t0, h, t):
        if problem.adaptive:
            if self.interpolation != "hermite":
                raise GradientOptionError("with dopri5 the adjoint reads the state from dense output; "
                                          "interpolation='backsolve' needs scheme='rk4' or 'euler'")
            tab = problem.tableau
            r = problem.module.adjoint_adaptive(x0, U, p, t0, h, *problem._adaptive_args(),
                                                tab.A, tab.b, tab.b_low, tab.c)
            problem._raise_failure(r.status, r.where, h, t0)
            diagnostics = AdjointDiagnostics("dense", accepted=int(r.accepted),
                                             backward_accepted=int(r.backward_accepted), rejected=int(r.rejected))
            return Gradient(float(r.J), r.costates[0].copy(), r.dU, r.dp, self.name, t, costates=r.costates,
                            diagnostics=diagnostics)
        back = self.interpolation == "backsolve"
        tab = problem.tableau
        r = problem.module.adjoint(x0, U, p, t0, h, tab.A, tab.b, tab.c, back)
        problem._raise_failure(r.status, r.where, h, t0)
        err = None
        if back:
            err = float(np.linalg.norm(r.x_start - x0) / (1.0 + np.linalg.norm(x0)))
            if not err <= self.backsolve_tol:
                warnings.warn(f"backsolve adjoint reconstructed x(0) with relative error {err:.2e} "
                              f"(> {self.backsolve_tol:g}): the backward integration of the state diverged and "
                              "the gradient is unreliable; use interpolation='hermite'",
                              BacksolveWarning, stacklevel=3)
        return Gradient(float(r.J), r.costates[0].copy(), r.dU, r.dp, self.name, t, costates=r.costates,
                        diagnostics=AdjointDiagnostics(self.interpolation, backsolve_error=err))


_INPUTS = ("x0", "U", "p")


@dataclass(frozen=True)
class Forward(GradientMethod):
    """Forward sensitivities: one tangent rollout per input entry in ``wrt`` (a subset of x0, U,
    p). For few parameters and for verification; w.r.t. U at most ``max_tangents`` rollouts.

    >>> Forward(wrt="p").wrt
    ('p',)
    """

    wrt: tuple[str, ...] = _INPUTS
    max_tangents: int = 5000
    name: ClassVar[str] = "forward"

    def __post_init__(self) -> None:
        wrt = (self.wrt,) if isinstance(self.wrt, str) else self.wrt
        try:
            wrt = tuple(wrt)
        except TypeError:
            self._fail(f"wrt must name inputs among {_INPUTS}, got {self.wrt!r}")
        unknown = [w for w in wrt if w not in _INPUTS]
        if unknown or not wrt:
            self._fail(f"wrt must name one or more of {_INPUTS}, got {self.wrt!r}")
        object.__setattr__(self, "wrt", tuple(w for w in _INPUTS if w in wrt))
        if not (_is_int(self.max_tangents) and self.max_tangents >= 1):
            self._fail(f"max_tangents must be a positive integer, got {self.max_tangents!r}")

    def compute(self, problem, x0, U, p, t0, h, t):
        if "U" in self.wrt and U.size > self.max_tangents:
            raise GradientOptionError(f"forward sensitivities w.r.t. U need {U.size} tangent rollouts; use "
                                      "method='bptt' (or pass wrt=('x0', 'p'))")
        J = problem.rollout(x0, U, p, dt=h, t0=t0).J
        zx, zU, zp = np.zeros_like(x0), np.zeros_like(U), np.zeros_like(p)
        module = problem.module
        if problem.adaptive:
            along = lambda dx0, dU, dp: float(module.forward_tangent_adaptive(
                x0, U, p, t0, h, *problem._adaptive_args(), dx0, dU, dp))
        else:
            along = lambda dx0, dU, dp: float(module.forward_tangent(x0, U, p, t0, h, dx0, dU, dp))
        eye = lambda n, i: np.eye(1, n, i).ravel()
        dx0 = np.array([along(eye(x0.size, i), zU, zp) for i in range(x0.size)]) if "x0" in self.wrt else None
        dp = np.array([along(zx, zU, eye(p.size, i)) for i in range(p.size)]) if "p" in self.wrt else np.zeros(0)
        dU = None
        if "U" in self.wrt:
            basis = (np.eye(1, U.size, i).reshape(U.shape) for i in range(U.size))
            dU = np.array([along(zx, e, zp) for e in basis]).reshape(U.shape)
        count = (x0.size if "x0" in self.wrt else 0) + (p.size if "p" in self.wrt else 0) + \
            (U.size if "U" in self.wrt else 0)
        return Gradient(J, dx0, dU, dp, self.name, t, diagnostics=ForwardDiagnostics(self.wrt, count))


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


METHODS: dict[str, type[GradientMethod]] = {m.name: m for m in (Bptt, Checkpointed, Adjoint, Forward)}
_OPTIONS = {"checkpointed": ("snapshots", "memory"), "adjoint": ("interpolation", "backsolve_tol"),
            "forward": ("wrt",)}


def gradient_method(method: str | GradientMethod, **options) -> GradientMethod:
    """The method object for ``method``: an object is returned as it is; a name is built with the
    options that belong to it (options left at None take the method's defaults; options of the
    other methods are ignored, so one call site can switch methods by name).

    >>> gradient_method("adjoint", interpolation="backsolve")
    Adjoint(interpolation='backsolve', backsolve_tol=1e-06)
    """
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(method, GradientMethod):
        if given:
            raise GradientOptionError(f"options {sorted(given)} go into the method object, "
                                      f"e.g. {type(method).__name__}(...), not beside {method!r}")
        return method
    if method not in METHODS:
        raise GradientOptionError(f"unknown gradient method {method!r}; choose one of {tuple(METHODS)} "
                                  "(or pass Bptt(), Checkpointed(...), Adjoint(...), Forward(...))")
    own = _OPTIONS.get(method, ())
    return METHODS[method](**{k: v for k, v in given.items() if k in own})
