"""ODE problems with compiled rollouts and gradients: BPTT, checkpointed BPTT, the continuous
adjoint and forward sensitivities.

A problem is dynamics ``f(x, u, p, t)``, a running cost ``L(x, u, p, t)`` and a terminal cost
``Φ(x, p)`` (shorter signatures such as ``f(x, u)`` are accepted), with controls held constant
over each of N steps of size h: ``U`` has shape (N, m). The cost is
J = Σ_k ∫_{t_k}^{t_k+h} L dt + Φ(x_N), the integral taken by the same scheme as the state.

Costates come in one form from every method: ``costates[k]`` approximates λ(t_k) = ∂J/∂x(t_k).
For BPTT it is exactly ∂J/∂x_k (a state sensitivity needs no scaling); for the adjoint it is the
solution of λ̇ = −∂H/∂x. Control gradients ∂J/∂u_k are per step; divided by h
(``control_density``) they approximate ∂H/∂u(t_k), the continuous-time gradient.
"""

from __future__ import annotations

import hashlib
import pathlib
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..codegen import compile_module
from .gradients import METHODS as _METHOD_CLASSES
from .gradients import Gradient, GradientMethod, gradient_method
from .records import STATUS, AcceptedSteps
from .schemes import SCHEMES, augmented_rhs, canonical, make_dopri5_step, make_step

_HERE = pathlib.Path(__file__).parent
# The loop templates, with a digest of the records they build (a changed record changes the
# generated module, so Numba's cache cannot hand back code built for the old layout).
_RECORDS = hashlib.sha256((_HERE / "records.py").read_bytes()).hexdigest()[:16]
_COMMON = f"# diffsim.ode.records {_RECORDS}\n" + (_HERE / "common_loops.py").read_text()
_FIXED_LOOPS = _COMMON + "\n\n" + (_HERE / "compiled_loops.py").read_text()
_ADAPTIVE_LOOPS = _COMMON + "\n\n" + (_HERE / "adaptive_loops.py").read_text()
METHODS = tuple(_METHOD_CLASSES)

# The kernel sets the loop templates call by name (``{prefix}forward_into_unchecked`` and so on):
# the one place that says which prefix is which function. codegen.compile_module checks that
# the template calls no kernel outside these and that each has its spec.
RHS, TERMINAL, STEP, DP5_STEP = "rhs_", "phi_", "step_", "dp5_"

__all__ = ["METHODS", "ODEProblem", "Rollout"]


@dataclass
class Rollout:
    """A forward solution: times (N+1), states (N+1, n) and the cost."""

    t: np.ndarray
    x: np.ndarray
    cost: float
    stats: dict = field(default_factory=dict)   # dopri5: accepted and rejected steps
    dense: Callable | None = None               # dopri5: x(t) at any t in the horizon

    @property
    def J(self) -> float:
        """The cost (the earlier name of ``cost``)."""
        return self.cost


class ODEProblem:
    """Compiled dynamics and costs; rollouts and gradients by the method you pick.

    >>> import numpy as np, diffsim.numpy as dnp
    >>> from diffsim.ode import ODEProblem
    >>> prob = ODEProblem(lambda x, u: dnp.array([x[1], u[0]]), n_x=2, n_u=1,
    ...                   running_cost=lambda x, u: u[0] ** 2, terminal_cost=lambda x: x[0] ** 2)
    >>> g = prob.gradient(np.array([1.0, 0.0]), np.zeros((50, 1)), T=1.0, method="bptt")
    >>> round(float(g.J), 6), g.dU.shape
    (1.0, (50, 1))
    """

    def __init__(self, dynamics: Callable, n_x: int, n_u: int, n_p: int = 0,
                 running_cost: Callable | None = None, terminal_cost: Callable | None = None,
                 scheme: str = "rk4", name: str | None = None, rtol: float = 1e-8, atol: float = 1e-10,
                 max_steps: int = 100_000) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
        for label, v in (("n_x", n_x), ("n_u", n_u), ("n_p", n_p)):
            if int(v) != v or v < (1 if label == "n_x" else 0):
                raise ValueError(f"{label} must be a {'positive' if label == 'n_x' else 'non-negative'} int, got {v}")
        self.n_x, self.n_u, self.n_p, self.scheme = int(n_x), int(n_u), int(n_p), scheme
        f = canonical(dynamics, 4, "dynamics")
        rhs = augmented_rhs(f, canonical(running_cost, 4, "running_cost"))
        phi = canonical(terminal_cost, 2, "terminal_cost") or (lambda x, p: 0.0)
        if not (rtol > 0 and atol > 0 and max_steps >= 1):
            raise ValueError(f"need rtol > 0, atol > 0 and max_steps >= 1, got {rtol}, {atol}, {max_steps}")
        self.rtol, self.atol, self.max_steps = float(rtol), float(atol), int(max_steps)
        n, m, k = self.n_x, self.n_u, self.n_p
        specs = {RHS: (rhs, (n, m, k, ())), TERMINAL: (phi, (n, k))}
        if self.adaptive:
            specs[DP5_STEP] = (make_dopri5_step(rhs, n), (n, m, k, (), ()))
            extra = _ADAPTIVE_LOOPS
        else:
            specs[STEP] = (make_step(rhs, n, scheme), (n, m, k, (), ()))
            extra = _FIXED_LOOPS
        title = name or getattr(dynamics, "__qualname__", "dynamics")
        # fixed-step loops run as Python until compiled (same bits); the adaptive adjoint's would
        # differ in the last bits (tests/diffsim/test_ode_interpreted.py), so adaptive compiles first
        self.module, self.kernels = compile_module(specs, extra=extra, title=f"ODEProblem({title}, {scheme})",
                                                   calls=tuple(specs), interpret_first=not self.adaptive)

    @property
    def tableau(self):
        """The Butcher tableau of the scheme (:mod:`diffsim.ode.tableaus`)."""
        return SCHEMES[self.scheme]

    @property
    def adaptive(self) -> bool:
        """True for the adaptive Dormand-Prince scheme (controls still piecewise constant per interval)."""
        return self.tableau.adaptive

    def _adaptive_args(self):
        return self.rtol, self.atol, self.max_steps

    def _raise_failure(self, status: int, where: int, h: float, t0: float, what: str = "state or cost") -> None:
        """The one failure convention of the compiled loops: ``status`` (0 ok) and ``where`` (the
        step, or for dopri5 the control interval) become an exception naming the time."""
        if status == 0:
            return
        if self.adaptive:
            raise FloatingPointError(
                f"dopri5 stopped in control interval {where} "
                f"(t in [{t0 + where * h:.6g}, {t0 + (where + 1) * h:.6g}]): "
                f"{STATUS[status]}; loosen rtol/atol, raise max_steps (now {self.max_steps}), "
                "or check the dynamics")
        raise FloatingPointError(f"non-finite {what} at step {where} (t = {t0 + where * h:.6g}); "
                                 "reduce the step, check the dynamics, or bound the controls")

    # ------------------------------------------------------------ input checking

    def _inputs(self, x0, U, p, T, dt, t0, check=True):
        if not check:  # an inner loop whose inputs were checked once (see gradient(check_inputs=...))
            h = float(T) / U.shape[0] if dt is None else float(dt)
            return x0, U, p, h, float(t0)
        x0 = np.ascontiguousarray(x0, dtype=float)
        U = np.ascontiguousarray(U, dtype=float)
        if U.ndim == 1 and self.n_u == 1:
            U = U[:, None]
        p = np.ascontiguousarray(np.zeros(0) if p is None else p, dtype=float).reshape(-1)
        if x0.shape != (self.n_x,):
            raise ValueError(f"x0 must have shape ({self.n_x},), got {x0.shape}")
        if U.ndim != 2 or U.shape[1] != self.n_u:
            raise ValueError(f"U must have shape (N, {self.n_u}) (one control per step), got {U.shape}")
        if U.shape[0] == 0:
            raise ValueError("U has no steps (N = 0): give at least one control per step")
        if p.shape != (self.n_p,):
            raise ValueError(f"p must have {self.n_p} entries, got {p.shape[0]}")
        for name, v in (("x0", x0), ("U", U), ("p", p)):
            if not np.all(np.isfinite(v)):
                raise ValueError(f"{name} contains NaN or inf at index {np.argwhere(~np.isfinite(v))[0].tolist()}")
        N = U.shape[0]
        if (T is None) == (dt is None):
            raise ValueError("give exactly one of T (horizon) and dt (step)")
        h = float(T) / N if dt is None else float(dt)
        if not np.isfinite(h) or h <= 0:
            raise ValueError(f"the step must be positive and finite, got dt = {h} (T = {T}, N = {N})")
        return x0, U, p, h, float(t0)

    # ------------------------------------------------------------ public API

    def rollout(self, x0, U, p=None, *, T: float | None = None, dt: float | None = None, t0: float = 0.0) -> Rollout:
        """Integrate from ``x0`` under controls ``U`` (N, m): states (N+1, n) and the cost."""
        x0, U, p, h, t0 = self._inputs(x0, U, p, T, dt, t0)
        t = t0 + h * np.arange(U.shape[0] + 1)
        if self.adaptive:
            r = self.module.rollout_adaptive(x0, U, p, t0, h, *self._adaptive_args())
            self._raise_failure(r.status, r.where, h, t0)
            M = int(r.steps.count)
            steps = AcceptedSteps(*(a[:M].copy() for a in r.steps[:-1]), M)
            return Rollout(t=t, x=r.xs, cost=float(r.J), stats={"accepted": M, "rejected": int(r.rejected)},
                           dense=self._dense_output(steps, t[0], t[-1]))
        r = self.module.rollout(x0, U, p, t0, h)
        self._raise_failure(r.status, r.where, h, t0)
        return Rollout(t=t, x=r.xs, cost=float(r.J))

    def _dense_output(self, steps: AcceptedSteps, t_start, t_end):
        module = self.module

        def x_at(t: float) -> np.ndarray:
            """The state at time t (cubic Hermite on the accepted dopri5 steps, O(h^4))."""
            if not t_start <= t <= t_end:
                raise ValueError(f"t = {t} is outside the solved horizon [{t_start}, {t_end}]")
            j = int(np.clip(np.searchsorted(steps.t, t, side="right") - 1, 0, steps.count - 1))
            out = np.empty(self.n_x)
            module.dense_state(float(t), j, steps, out)
            return out

        return x_at

    def rollout_batch(self, X0, U, p=None, *, T: float | None = None, dt: float | None = None,
                      t0: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Many rollouts in parallel (Numba prange): X0 (B, n), U (B, N, m) or one (N, m) for all.
        Returns states (B, N+1, n) and costs (B,)."""
        X0 = np.ascontiguousarray(X0, dtype=float)
        if X0.ndim != 2 or X0.shape[1] != self.n_x:
            raise ValueError(f"X0 must have shape (B, {self.n_x}), got {X0.shape}")
        U = np.asarray(U, dtype=float)
        if U.ndim == 2:
            U = np.broadcast_to(U, (X0.shape[0],) + U.shape)
        if U.ndim != 3 or U.shape[0] != X0.shape[0]:
            raise ValueError(f"U must have shape (B, N, {self.n_u}) or (N, {self.n_u}), got {U.shape}")
        if self.adaptive:
            raise ValueError("batched rollouts use fixed steps; build the problem with scheme='rk4' or 'euler'")
        _, _, p, h, t0 = self._inputs(X0[0], U[0], p, T, dt, t0)
        r = self.module.rollout_batch(X0, np.ascontiguousarray(U), p, t0, h)
        for b in np.flatnonzero(r.status != 0)[:1]:
            self._raise_failure(int(r.status[b]), int(r.where[b]), h, t0, what=f"state or cost in rollout {b}")
        return r.xs, r.J

    def gradient(self, x0, U, p=None, *, T: float | None = None, dt: float | None = None, t0: float = 0.0,
                 method: str | GradientMethod = "bptt", snapshots: int | None = None, memory: int | None = None,
                 interpolation: str | None = None, backsolve_tol: float | None = None,
                 wrt: tuple | None = None, check_inputs: bool = True) -> Gradient:
        """J and dJ/dx0, dJ/dU, dJ/dp by ``method``, a :class:`~diffsim.ode.gradients.GradientMethod`
        object or its name with the options as keywords (a shortcut):

        - ``Bptt()`` / ``"bptt"``: the discrete adjoint of the integrator, exact for the discrete cost;
        - ``Checkpointed(snapshots=..., memory=...)`` / ``"checkpointed"``: the same numbers with
          binomial checkpointing under ``snapshots`` stored states (default √N) or a ``memory``
          budget in bytes; reports recomputations;
        - ``Adjoint(interpolation=..., backsolve_tol=...)`` / ``"adjoint"``: the continuous costate
          equation integrated backward, with the forward state from Hermite interpolation of the
          stored grid (``"hermite"``, stable) or integrated backward alongside (``"backsolve"``,
          O(1) memory but unstable when the dynamics contract: the reconstructed x(0) is compared
          with x0 and a :class:`BacksolveWarning` raised above ``backsolve_tol``); converges to BPTT
          with the scheme's order as the step shrinks;
        - ``Forward(wrt=...)`` / ``"forward"``: forward sensitivities, one tangent rollout per
          parameter (for few parameters and for verification); ``wrt`` selects among x0, U and p.

        The method's diagnostics are in ``Gradient.diagnostics``. ``check_inputs=False`` skips the
        shape and finiteness checks (about 10 µs), for optimiser loops that pass the same
        well-formed float64 arrays every time; wrong inputs then give wrong results, so check them
        once yourself.
        """
        how = gradient_method(method, snapshots=snapshots, memory=memory, interpolation=interpolation,
                              backsolve_tol=backsolve_tol, wrt=wrt)
        x0, U, p, h, t0 = self._inputs(x0, U, p, T, dt, t0, check_inputs)
        t = t0 + h * np.arange(U.shape[0] + 1)
        start = time.perf_counter()
        res = how.compute(self, x0, U, p, t0, h, t)
        res.seconds = time.perf_counter() - start
        return res
