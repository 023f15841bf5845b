"""Optimal control problems: dynamics, costs, bounds and constraints, built from plain functions.

    minimise   J = ∫_0^T L(x, u, p, t) dt + Φ(x(T), p)
    subject to ẋ = f(x, u, p, t),  x(0) = x0,  u_lo ≤ u ≤ u_hi,  x_lo ≤ x ≤ x_hi,
               g(x, u, p, t) ≤ 0 (path),  h_eq(x(T), p) = 0,  h_in(x(T), p) ≤ 0,
               T fixed, or free in [T_lo, T_hi].

State bounds x_lo ≤ x ≤ x_hi (``x_lower``, ``x_upper``) are path constraints appended after ``g``'s
rows, one per finite bound. Controls are piecewise constant on N intervals.
Internally the problem is posed on scaled time
s = t/T ∈ [0, 1] with T a parameter (dx/ds = T f), so a free final time is one more decision
variable with an exact gradient. Objective and constraints share one compiled ODE problem:
its parameter vector q = (p, T, c, w) weighs the cost by c and terminal constraint i by w_i, so
any one of them is the "cost" of a rollout and its gradient one BPTT (or adjoint) sweep.

>>> import numpy as np, diffsim.numpy as dnp
>>> ocp = OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=2.0, N=20, n_u=1,
...                             running_cost=lambda x, u: dnp.sum(x * x) + u[0] ** 2)
>>> ocp.n_x, ocp.n_u, ocp.free_time
(2, 1, False)
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import diffsim.numpy as dnp
from diffsim import DiffsimError
from diffsim.ode import ODEProblem
from diffsim.ode.schemes import canonical


class ProblemError(DiffsimError, ValueError):
    """The problem or a solver option is inconsistent (shapes, bounds, names); the message says
    what to change."""


def _vec(v, n, name) -> np.ndarray:
    a = np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy() if np.ndim(v) == 0 else np.asarray(v, dtype=float)
    if a.shape != (n,):
        raise ProblemError(f"{name} must have {n} entries, got shape {a.shape}")
    return a


def _with_state_bounds(g: Callable | None, lower: np.ndarray, upper: np.ndarray) -> Callable | None:
    """The path constraints ``g`` followed by the rows x_i − hi_i ≤ 0 of every finite upper state bound and
    lo_i − x_i ≤ 0 of every finite lower one, so state bounds hold at every node in every transcription."""
    rows = [(i, 1.0, float(upper[i])) for i in np.flatnonzero(np.isfinite(upper))]
    rows += [(i, -1.0, float(lower[i])) for i in np.flatnonzero(np.isfinite(lower))]
    if not rows:
        return g

    def bounded(x, u, p, t):
        box = dnp.array([sign * (x[i] - bound) for i, sign, bound in rows])
        return box if g is None else dnp.concatenate([dnp.atleast_1d(g(x, u, p, t)), box])

    return bounded


def _spread(a, rows, width) -> np.ndarray:
    """(rows, width) from one row or from K rows interpolated linearly over the horizon."""
    if a.ndim < 2:
        return np.tile(a.reshape(width), (rows, 1))
    if a.shape[0] == rows:
        return a.copy()
    s, grid = np.linspace(0, 1, rows), np.linspace(0, 1, a.shape[0])
    return np.array([np.interp(s, grid, c) for c in a.T]).T


def _guess(v, width, name, what) -> np.ndarray:
    """A guess: one row (width,) held constant, or K rows (K, width) spread over the horizon."""
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        raise ProblemError(f"{name} must be numbers: one row of {width} {what} or a (K, {width}) array") from None
    if a.ndim == 1 and width == 1 and a.size > 1:
        a = a[:, None]
    if not ((a.ndim <= 1 and a.size == width) or (a.ndim == 2 and a.shape[1] == width and a.shape[0] >= 1)):
        raise ProblemError(f"{name} must have shape ({width},) or (K, {width}) (K rows spread over the horizon), "
                           f"got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ProblemError(f"{name} contains NaN or inf")
    return a


class OptimalControlProblem:
    """A continuous-time optimal control problem (see the module docstring)."""

    def __init__(self, dynamics: Callable, x0: Sequence[float], T: float, N: int, n_u: int | None = None,
                 running_cost: Callable | None = None, terminal_cost: Callable | None = None,
                 u_lower=-np.inf, u_upper=np.inf, params: Sequence[float] | None = None,
                 free_final_time: bool = False, T_bounds: tuple[float, float] = (1e-3, np.inf),
                 path_constraints: Callable | None = None, terminal_equality: Callable | None = None,
                 terminal_inequality: Callable | None = None, scheme: str = "rk4",
                 x_names: Sequence[str] | None = None, u_names: Sequence[str] | None = None,
                 u_init=None, x_init=None, name: str = "problem", x_lower=-np.inf, x_upper=np.inf) -> None:
        if n_u is None:
            raise ProblemError("n_u is missing: give the number of controls the dynamics take, e.g. n_u=1")
        if int(n_u) != n_u or n_u < 1:
            raise ProblemError(f"n_u must be a positive integer (the number of controls), got {n_u!r}")
        self.x0 = np.asarray(x0, dtype=float).reshape(-1)
        self.n_x, self.n_u, self.N, self.T = self.x0.size, int(n_u), int(N), float(T)
        self.params = np.zeros(0) if params is None else np.asarray(params, dtype=float).reshape(-1)
        self.n_p = self.params.size
        self.u_lower, self.u_upper = _vec(u_lower, self.n_u, "u_lower"), _vec(u_upper, self.n_u, "u_upper")
        self.free_time, self.T_bounds = bool(free_final_time), tuple(float(b) for b in T_bounds)
        self.scheme, self.name = scheme, name
        self.u_init = None if u_init is None else _guess(u_init, self.n_u, "u_init", "controls")
        self.x_init = None if x_init is None else _guess(x_init, self.x0.size, "x_init", "states")
        self.x_names = list(x_names) if x_names else [f"x{i}" for i in range(self.n_x)]
        self.u_names = list(u_names) if u_names else [f"u{i}" for i in range(self.n_u)]
        self.f = canonical(dynamics, 4, "dynamics")
        self.L = canonical(running_cost, 4, "running_cost")
        self.Phi = canonical(terminal_cost, 2, "terminal_cost")
        self.x_lower, self.x_upper = _vec(x_lower, self.n_x, "x_lower"), _vec(x_upper, self.n_x, "x_upper")
        self.g = _with_state_bounds(canonical(path_constraints, 4, "path_constraints"), self.x_lower, self.x_upper)
        self.h_eq = canonical(terminal_equality, 2, "terminal_equality")
        self.h_in = canonical(terminal_inequality, 2, "terminal_inequality")
        self.n_eq = self._count(self.h_eq, terminal=True)
        self.n_in = self._count(self.h_in, terminal=True)
        self.n_g = self._count(self.g, terminal=False)
        self._ode: ODEProblem | None = None

    # ------------------------------------------------------------ checks

    def check(self) -> None:
        """Raise :class:`ProblemError` naming the first inconsistency."""
        if self.n_x == 0:
            raise ProblemError("x0 is empty: give the initial state")
        if not np.all(np.isfinite(self.x0)):
            raise ProblemError(f"x0 contains NaN or inf: {self.x0}")
        if self.N < 1:
            raise ProblemError(f"N must be at least 1, got {self.N}")
        if not (self.T > 0 and np.isfinite(self.T)):
            raise ProblemError(f"T must be positive and finite, got {self.T}")
        bad = np.flatnonzero(self.u_lower > self.u_upper)
        if bad.size:
            i = bad[0]
            raise ProblemError(f"inconsistent control bounds for {self.u_names[i]}: lower {self.u_lower[i]} > "
                               f"upper {self.u_upper[i]}")
        bad = np.flatnonzero(self.x_lower > self.x_upper)
        if bad.size:
            i = bad[0]
            raise ProblemError(f"inconsistent state bounds for {self.x_names[i]}: x_lower {self.x_lower[i]} > "
                               f"x_upper {self.x_upper[i]}")
        bad = np.flatnonzero((self.x0 < self.x_lower) | (self.x0 > self.x_upper))
        if bad.size:
            i = bad[0]
            raise ProblemError(f"x0 violates the state bounds: {self.x_names[i]} = {self.x0[i]} is outside "
                               f"[{self.x_lower[i]}, {self.x_upper[i]}]; start inside them or widen them")
        lo, hi = self.T_bounds
        if self.free_time and not (0 < lo <= self.T <= hi):
            raise ProblemError(f"free final time: need 0 < T_lo <= T <= T_hi, got T = {self.T}, bounds {self.T_bounds}")
        try:
            with np.errstate(all="ignore"):  # a NaN is reported below, with where it came from
                xdot = np.asarray(self.f(self.x0, self.u_guess()[0], self.params, 0.0), dtype=float)
        except Exception as exc:  # the user's function: report what it did
            raise ProblemError(f"the dynamics failed at x0: {exc!r}") from exc
        if xdot.shape != (self.n_x,):
            raise ProblemError(f"the dynamics return shape {xdot.shape} for a state of shape ({self.n_x},); "
                               "x0 and the dynamics disagree on the state size")
        if not np.all(np.isfinite(xdot)):
            raise ProblemError(f"the dynamics return NaN or inf at x0 (u = {self.u_guess()[0]}): {xdot}")
        self._check_controls_used()

    def _check_controls_used(self) -> None:
        """Raise if a control enters neither the dynamics, the running cost nor a path constraint
        (n_u larger than the functions use): its derivative is zero at three random points."""
        import diffsim as ds

        if getattr(self, "_controls_checked", False):
            return
        rng = np.random.default_rng(0)
        parts = [f for f in (self.f, self.L, self.g) if f is not None]

        def stacked(u, x):
            return dnp.concatenate([dnp.reshape(f(x, u, self.params, 0.3), (-1,)) for f in parts])

        used = np.zeros(self.n_u, dtype=bool)
        with np.errstate(all="ignore"):
            for _ in range(3):
                x = self.x0 + 0.1 * rng.standard_normal(self.n_x)
                u = self.u_guess()[0] + 0.1 * rng.standard_normal(self.n_u)
                try:
                    J = np.asarray(ds.jacobian(lambda u: stacked(u, x))(u))
                except Exception:  # a function the engine cannot differentiate here: not this check's business
                    return
                used |= np.any(np.abs(np.nan_to_num(J)) > 0, axis=0)
        if not used.all():
            i = int(np.flatnonzero(~used)[0])
            raise ProblemError(f"control {self.u_names[i]} (index {i}) enters neither the dynamics, the running cost "
                               f"nor a path constraint: n_u = {self.n_u} is larger than the problem uses; "
                               "give the number of controls the dynamics take")
        self._controls_checked = True

    def _count(self, fn, terminal) -> int:
        if fn is None:
            return 0
        u = np.zeros(self.n_u)
        out = fn(self.x0, self.params) if terminal else fn(self.x0, u, self.params, 0.0)
        return int(np.size(out))

    # ------------------------------------------------------------ the compiled ODE problem

    @property
    def n_q(self) -> int:
        """Length of the internal parameter vector q = (p, T, c, w_eq, w_in, w_path)."""
        return self.n_p + 2 + self.n_eq + self.n_in + (1 if self.n_g else 0)

    def q(self, T: float, cost: float = 1.0, weights: np.ndarray | None = None) -> np.ndarray:
        """The parameter vector selecting ``cost`` × J plus Σ weights_i × constraint_i."""
        w = np.zeros(self.n_q - self.n_p - 2) if weights is None else weights
        return np.concatenate([self.params, [T, cost], w])

    @property
    def ode(self) -> ODEProblem:
        """The scaled-time ODE problem (compiled on first use, cached on disk)."""
        if self._ode is None:
            self._ode = self._build_ode()
        return self._ode

    def _build_ode(self) -> ODEProblem:
        k, ne, ni, ng = self.n_p, self.n_eq, self.n_in, self.n_g
        f, L, Phi, g, h_eq, h_in = self.f, self.L, self.Phi, self.g, self.h_eq, self.h_in

        def dynamics(x, u, q, s):
            T = q[k]
            return T * f(x, u, q[:k], T * s)

        def running(x, u, q, s):
            T, c = q[k], q[k + 1]
            total = c * L(x, u, q[:k], T * s) if L is not None else 0.0
            if ng:  # violation of the path constraints, for single shooting: ∫ Σ max(g, 0)² dt
                viol = dnp.maximum(dnp.atleast_1d(g(x, u, q[:k], T * s)), 0.0)
                total = total + q[k + 2 + ne + ni] * dnp.sum(viol * viol)
            return T * total

        def terminal(x, q):
            total = q[k + 1] * Phi(x, q[:k]) if Phi is not None else 0.0
            if ne:
                total = total + dnp.sum(q[k + 2:k + 2 + ne] * dnp.atleast_1d(h_eq(x, q[:k])))
            if ni:
                total = total + dnp.sum(q[k + 2 + ne:k + 2 + ne + ni] * dnp.atleast_1d(h_in(x, q[:k])))
            return total

        return ODEProblem(dynamics, self.n_x, self.n_u, self.n_q, running_cost=running, terminal_cost=terminal,
                          scheme=self.scheme, name=self.name)

    # ------------------------------------------------------------ helpers

    def u_guess(self) -> np.ndarray:
        """The initial guess of the controls (N, m): ``u_init`` if given (a constant (m,) or a
        sequence (N, m)), else 0, or the mid-point of finite bounds; clipped into the bounds."""
        if self.u_init is not None:
            return np.clip(_spread(self.u_init, self.N, self.n_u), self.u_lower, self.u_upper)
        both = np.isfinite(self.u_lower) & np.isfinite(self.u_upper)
        mid = np.zeros(self.n_u)
        mid[both] = 0.5 * (self.u_lower[both] + self.u_upper[both])
        return np.tile(np.clip(mid, self.u_lower, self.u_upper), (self.N, 1))

    def x_guess(self) -> np.ndarray | None:
        """The initial guess of the states (N+1, n) from ``x_init`` (a constant or K rows spread
        over the horizon), with x_0 = x0; None when no guess was given (solvers roll out u)."""
        if self.x_init is None:
            return None
        X = _spread(self.x_init, self.N + 1, self.n_x)
        X[0] = self.x0
        return X

    def times(self, T: float | None = None) -> np.ndarray:
        return np.linspace(0.0, self.T if T is None else T, self.N + 1)

    def with_steps(self, N: int) -> "OptimalControlProblem":
        """The same problem on another grid (shares the compiled code: N is not in it)."""
        other = object.__new__(OptimalControlProblem)
        other.__dict__.update(self.__dict__)
        other.N = int(N)
        return other
