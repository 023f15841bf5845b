"""ODE problems with compiled rollouts and gradients: BPTT, checkpointed BPTT, the continuous
adjoint and forward sensitivities.

A problem is dynamics ``f(x, u, p, t)``, a running cost ``L(x, u, p, t)`` and a terminal cost
``Φ(x, p)`` (shorter signatures such as ``f(x, u)`` are accepted), with controls held constant
over each of N steps of size h: ``U`` has shape (N, m). The cost is
J = Σ_k ∫_{t_k}^{t_k+h} L dt + Φ(x_N), the integral taken by the same scheme as the state.

Costates come in one form from every method: ``costate[k]`` approximates λ(t_k) = ∂J/∂x(t_k).
For BPTT it is exactly ∂J/∂x_k (a state sensitivity needs no scaling); for the adjoint it is the
solution of λ̇ = −∂H/∂x. Control gradients ∂J/∂u_k are per step; divided by h
(``control_density``) they approximate ∂H/∂u(t_k), the continuous-time gradient.
"""

from __future__ import annotations

import pathlib
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..codegen import compile_module
from .schemes import (
    DOPRI5_A,
    DOPRI5_B4,
    DOPRI5_B5,
    DOPRI5_C,
    SCHEMES,
    augmented_rhs,
    canonical,
    make_dopri5_step,
    make_step,
)

_HERE = pathlib.Path(__file__).parent
_LOOPS = (_HERE / "compiled_loops.py").read_text()
_ADAPTIVE_LOOPS = (_HERE / "adaptive_loops.py").read_text()
_ADAPTIVE_STATUS = {1: "non-finite state or cost", 2: "more than max_steps accepted steps",
                    3: "step size underflow (the problem may be stiff or singular there)"}
METHODS = ("bptt", "checkpointed", "adjoint", "forward")


class BacksolveWarning(RuntimeWarning):
    """The backsolve adjoint reconstructed x(0) badly: its gradient is not to be trusted."""


@dataclass
class Rollout:
    """A forward solution: times (N+1), states (N+1, n) and the cost J."""

    t: np.ndarray
    x: np.ndarray
    J: float
    stats: dict = field(default_factory=dict)   # dopri5: accepted and rejected steps
    dense: Callable | None = None               # dopri5: x(t) at any t in the horizon


@dataclass
class Gradient:
    """The cost and its gradients, with the costates and diagnostics of the method used."""

    J: float
    dx0: np.ndarray
    dU: np.ndarray | None
    dp: np.ndarray
    method: str
    t: np.ndarray
    costate: np.ndarray | None = None      # (N+1, n): λ(t_k)
    norms: np.ndarray | None = None        # |λ(t_k)| when the method keeps no costates (checkpointed)
    recomputed_steps: int | None = None    # checkpointed: forward steps beyond the N - 1 of BPTT
    snapshots: int | None = None
    backsolve_error: float | None = None   # adjoint backsolve: |x(0) reconstructed - x0| / (1 + |x0|)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def grad_norm(self) -> np.ndarray | None:
        """|λ(t_k)| along the reverse sweep (N+1,): vanishing or exploding gradients at a glance."""
        if self.norms is None and self.costate is not None:
            self.norms = np.sqrt(np.einsum("ij,ij->i", self.costate, self.costate))
        return self.norms

    @property
    def control_density(self) -> np.ndarray | None:
        """∂J/∂u_k / h: approximates ∂H/∂u(t_k), comparable across step sizes."""
        return None if self.dU is None else self.dU / (self.t[1] - self.t[0])


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
        specs = {"rhs_": (rhs, (n, m, k, ())), "phi_": (phi, (n, k))}
        if scheme == "dopri5":
            specs["dp5_"] = (make_dopri5_step(rhs, n), (n, m, k, (), ()))
            extra = _LOOPS + "\n\n" + _ADAPTIVE_LOOPS
        else:
            specs["step_"] = (make_step(rhs, n, scheme), (n, m, k, (), ()))
            extra = _LOOPS
        title = name or getattr(dynamics, "__qualname__", "dynamics")
        self.module, self.kernels = compile_module(specs, extra=extra, title=f"ODEProblem({title}, {scheme})")

    @property
    def adaptive(self) -> bool:
        """True for the adaptive Dormand-Prince scheme (controls still piecewise constant per interval)."""
        return self.scheme == "dopri5"

    def _adaptive_args(self):
        return self.rtol, self.atol, self.max_steps

    def _check_adaptive(self, status, where, h, t0):
        if status != 0:
            raise FloatingPointError(
                f"dopri5 stopped in control interval {where} "
                f"(t in [{t0 + where * h:.6g}, {t0 + (where + 1) * h:.6g}]): "
                f"{_ADAPTIVE_STATUS[status]}; loosen rtol/atol, raise max_steps (now {self.max_steps}), "
                "or check the dynamics")

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

    def _check(self, bad, h, t0, what="state or cost"):
        if bad >= 0:
            raise FloatingPointError(f"non-finite {what} at step {bad} (t = {t0 + bad * h:.6g}); "
                                     "reduce the step, check the dynamics, or bound the controls")

    # ------------------------------------------------------------ public API

    def rollout(self, x0, U, p=None, *, T: float | None = None, dt: float | None = None, t0: float = 0.0) -> Rollout:
        """Integrate from ``x0`` under controls ``U`` (N, m): states (N+1, n) and the cost."""
        x0, U, p, h, t0 = self._inputs(x0, U, p, T, dt, t0)
        t = t0 + h * np.arange(U.shape[0] + 1)
        if self.adaptive:
            xs, J, st_t, st_h, st_k, st_x, st_xe, st_f, st_fe, M, rej, status, where = \
                self.module.rollout_adaptive(x0, U, p, t0, h, *self._adaptive_args())
            self._check_adaptive(status, where, h, t0)
            steps = tuple(a[:M].copy() for a in (st_t, st_h, st_x, st_xe, st_f, st_fe))
            return Rollout(t=t, x=xs, J=float(J), stats={"accepted": int(M), "rejected": int(rej)},
                           dense=self._dense_output(steps, t[0], t[-1]))
        xs, J, bad = self.module.rollout(x0, U, p, t0, h)
        self._check(bad, h, t0)
        return Rollout(t=t, x=xs, J=float(J))

    def _dense_output(self, steps, t_start, t_end):
        st_t, st_h, st_x, st_xe, st_f, st_fe = steps
        module = self.module

        def x_at(t: float) -> np.ndarray:
            """The state at time t (cubic Hermite on the accepted dopri5 steps, O(h^4))."""
            if not t_start <= t <= t_end:
                raise ValueError(f"t = {t} is outside the solved horizon [{t_start}, {t_end}]")
            j = int(np.clip(np.searchsorted(st_t, t, side="right") - 1, 0, len(st_t) - 1))
            out = np.empty(self.n_x)
            module.dense_state(float(t), j, st_t, st_h, st_x, st_xe, st_f, st_fe, len(st_t), out)
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
        XS, J, bad = self.module.rollout_batch(X0, np.ascontiguousarray(U), p, t0, h)
        for b in np.flatnonzero(bad >= 0)[:1]:
            self._check(int(bad[b]), h, t0, what=f"state or cost in rollout {b}")
        return XS, J

    def gradient(self, x0, U, p=None, *, T: float | None = None, dt: float | None = None, t0: float = 0.0,
                 method: str = "bptt", snapshots: int | None = None, memory: int | None = None,
                 interpolation: str = "hermite", backsolve_tol: float = 1e-6,
                 wrt: tuple = ("x0", "U", "p"), check_inputs: bool = True) -> Gradient:
        """J and dJ/dx0, dJ/dU, dJ/dp by ``method``:

        - ``"bptt"``: the discrete adjoint of the integrator, exact for the discrete cost;
        - ``"checkpointed"``: the same numbers with binomial checkpointing under ``snapshots``
          stored states (default √N) or a ``memory`` budget in bytes; reports recomputations;
        - ``"adjoint"``: the continuous costate equation integrated backward, with the forward state
          from Hermite interpolation of the stored grid (``interpolation="hermite"``, stable) or
          integrated backward alongside (``"backsolve"``, O(1) memory but unstable when the
          dynamics contract: the reconstructed x(0) is compared with x0 and a
          :class:`BacksolveWarning` raised above ``backsolve_tol``); converges to BPTT with the
          scheme's order as the step shrinks;
        - ``"forward"``: forward sensitivities, one tangent rollout per parameter (for few
          parameters and for verification); ``wrt`` selects among x0, U and p.

        ``check_inputs=False`` skips the shape and finiteness checks (about 10 µs), for optimiser
        loops that pass the same well-formed float64 arrays every time; wrong inputs then give
        wrong results, so check them once yourself.
        """
        if method not in METHODS:
            raise ValueError(f"unknown gradient method {method!r}; choose one of {METHODS}")
        x0, U, p, h, t0 = self._inputs(x0, U, p, T, dt, t0, check_inputs)
        N = U.shape[0]
        t = t0 + h * np.arange(N + 1)
        start = time.perf_counter()
        if self.adaptive:
            res = self._adaptive_gradient(x0, U, p, t0, h, t, method, interpolation, wrt)
        elif method == "bptt":
            J, dU, dp, lam, bad = self.module.bptt(x0, U, p, t0, h)
            self._check(bad, h, t0)
            res = Gradient(float(J), lam[0].copy(), dU, dp, method, t, costate=lam)
        elif method == "checkpointed":
            if snapshots is None:
                snapshots = max(1, int(memory // (8 * self.n_x))) if memory else max(1, int(np.sqrt(N)))
            snapshots = int(min(max(snapshots, 0), N))
            J, lam0, dU, dp, recomputed, norms, bad = self.module.checkpointed(x0, U, p, t0, h, snapshots)
            self._check(bad, h, t0)
            res = Gradient(float(J), lam0, dU, dp, method, t, norms=norms, recomputed_steps=int(recomputed),
                           snapshots=snapshots)
        elif method == "adjoint":
            if interpolation not in ("hermite", "backsolve"):
                raise ValueError(f"interpolation must be 'hermite' or 'backsolve', got {interpolation!r}")
            back = interpolation == "backsolve"
            J, dU, dp, lam, x_rec, bad = self.module.adjoint(x0, U, p, t0, h, SCHEMES[self.scheme], back)
            self._check(bad, h, t0)
            res = Gradient(float(J), lam[0].copy(), dU, dp, method, t, costate=lam,
                           extra={"interpolation": interpolation})
            if back:
                err = float(np.linalg.norm(x_rec - x0) / (1.0 + np.linalg.norm(x0)))
                res.backsolve_error = err
                if not err <= backsolve_tol:
                    warnings.warn(f"backsolve adjoint reconstructed x(0) with relative error {err:.2e} "
                                  f"(> {backsolve_tol:g}): the backward integration of the state diverged and "
                                  "the gradient is unreliable; use interpolation='hermite'",
                                  BacksolveWarning, stacklevel=2)
        else:
            res = self._forward_sensitivities(x0, U, p, t0, h, t, wrt)
        res.seconds = time.perf_counter() - start
        return res

    def _adaptive_gradient(self, x0, U, p, t0, h, t, method, interpolation, wrt) -> Gradient:
        args = (x0, U, p, t0, h, *self._adaptive_args())
        if method == "bptt":
            J, dU, dp, lam, M, rej, status, where = self.module.bptt_adaptive(*args)
            self._check_adaptive(status, where, h, t0)
            return Gradient(float(J), lam[0].copy(), dU, dp, method, t, costate=lam,
                            extra={"accepted": int(M), "rejected": int(rej)})
        if method == "adjoint":
            if interpolation != "hermite":
                raise ValueError("with dopri5 the adjoint reads the state from dense output; "
                                 "interpolation='backsolve' needs scheme='rk4' or 'euler'")
            J, dU, dp, lam, M, back, rej, status, where = self.module.adjoint_adaptive(
                *args, DOPRI5_A, DOPRI5_B5, DOPRI5_B4, DOPRI5_C)
            self._check_adaptive(status, where, h, t0)
            return Gradient(float(J), lam[0].copy(), dU, dp, method, t, costate=lam,
                            extra={"accepted": int(M), "backward_accepted": int(back), "rejected": int(rej),
                                   "interpolation": "dense"})
        if method == "checkpointed":
            raise ValueError("checkpointed BPTT needs a fixed-step scheme ('rk4' or 'euler'); with dopri5 use "
                             "'bptt' or 'adjoint'")
        return self._forward_sensitivities(x0, U, p, t0, h, t, wrt)

    def _forward_sensitivities(self, x0, U, p, t0, h, t, wrt) -> Gradient:
        J = self.rollout(x0, U, p, dt=h, t0=t0).J
        zx, zU, zp = np.zeros_like(x0), np.zeros_like(U), np.zeros_like(p)
        if self.adaptive:
            along = lambda dx0, dU, dp: float(self.module.forward_tangent_adaptive(
                x0, U, p, t0, h, *self._adaptive_args(), dx0, dU, dp))
        else:
            along = lambda dx0, dU, dp: float(self.module.forward_tangent(x0, U, p, t0, h, dx0, dU, dp))
        eye = lambda n, i: np.eye(1, n, i).ravel()
        dx0 = np.array([along(eye(x0.size, i), zU, zp) for i in range(x0.size)]) if "x0" in wrt else None
        dp = np.array([along(zx, zU, eye(p.size, i)) for i in range(p.size)]) if "p" in wrt else np.zeros(0)
        dU = None
        if "U" in wrt:
            if U.size > 5000:
                raise ValueError(f"forward sensitivities w.r.t. U need {U.size} tangent rollouts; use "
                                 "method='bptt' (or pass wrt=('x0', 'p'))")
            basis = (np.eye(1, U.size, i).reshape(U.shape) for i in range(U.size))
            dU = np.array([along(zx, e, zp) for e in basis]).reshape(U.shape)
        return Gradient(J, dx0, dU, dp, "forward", t)
