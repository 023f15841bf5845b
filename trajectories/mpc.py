"""Model-predictive control: re-solve a receding horizon at every step, warm-started by shifting
the previous solution, and run the closed loop against a plant with disturbances and model error.

``MPC(ocp, horizon=...)`` plans over ``horizon`` steps of the problem's grid (dt = T/N) with DDP
(:mod:`trajectories.ddp`). With ``real_time_iteration=True`` (the SQP-RTI scheme of Diehl, Bock &
Schlöder 2005, which acados runs) each step makes one FDDP iteration from the shifted plan, so
the work per step is one backward and one forward pass; with ``False`` it iterates to
convergence or to ``time_budget``. Either way the control applied is the plan's first control
with its feedback, u_0 + K_0 (x − x_0), so a state that moved since the plan still gets the
best first-order answer. ``method="ip"`` plans with the interior-point solver instead
(:mod:`trajectories.mpc_ip`: warm-started from the shifted primal-dual iterate, one Newton
iteration a step in real-time mode; no gains, the plan starts at the measured state). In the
steady state of DDP a step allocates no arrays: the solver's arrays
are reused and the returned control is one buffer (copy it to keep it); a problem with terminal
or path constraints adds one multiplier update per step, which allocates a few small arrays.

>>> from trajectories.regulation import cart_pole_upright
>>> mpc = MPC(cart_pole_upright(), horizon=40)
>>> run = mpc.simulate(x0=[0.0, 3.0, 0.0, 0.0], steps=50)
>>> run.status, bool(abs(run.x[-1, 1] - 3.14159) < 0.05)
(True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from diffsim.errors import DiffsimError
from diffsim.files import pyplot, write_figure
from diffsim.progress import progress_bar

from .ddp import CONVERGED, NO_STEP, STEPPED, DDPSolver, _layout, _module
from .mpc_ip import IPPlanner
from .problem import OptimalControlProblem, ProblemError
from .result import Solution

METHODS = ("ddp", "ip")


class MPCError(ProblemError, DiffsimError):
    """A receding-horizon controller or closed-loop run was set up wrongly; the message says how."""


@dataclass
class ClosedLoop:
    """A closed-loop run: states (steps+1, n), controls (steps, m), per-step solve times (s) and
    the cost Σ ∫L dt along the run (the model's running cost, the scheme's quadrature)."""

    t: np.ndarray
    x: np.ndarray
    u: np.ndarray
    solve_times: np.ndarray
    cost: float
    status: bool
    message: str
    controller: str
    over_budget: int = 0
    iterations: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __str__(self) -> str:
        st = self.solve_times
        timing = (f", first solve {st[0] * 1e3:.3g} ms, then median {np.median(st[1:]) * 1e6:.0f} µs, max "
                  f"{np.max(st[1:]) * 1e6:.0f} µs" if st.size > 1 else "")
        return (f"{'ok' if self.status else 'FAILED'} [{self.controller}] {len(self.u)} steps, cost {self.cost:.6g}"
                f"{timing}, {self.over_budget} over budget: {self.message}")

    def plot(self, path: str | None = None, others: dict | None = None, names=None):
        """States and controls against time (with ``others``, a dict name -> ClosedLoop drawn
        dashed beside this run) and a histogram of the warm per-step solve times. Saved to
        ``path`` if given; returns the figure."""
        plt = pyplot(saving=path is not None)

        x_names, u_names = names or ([f"x{i}" for i in range(self.x.shape[1])],
                                     [f"u{i}" for i in range(self.u.shape[1])])
        fig, ax = plt.subplots(1, 3, figsize=(14, 3.8))
        runs = {self.controller: self, **(others or {})}
        for j, (name, run) in enumerate(runs.items()):
            style = ("-", "--", ":", "-.")[min(j, 3)]
            for i in range(run.x.shape[1]):
                ax[0].plot(run.t, run.x[:, i], style, color=f"C{i}", alpha=1.0 if j == 0 else 0.6,
                           label=f"{x_names[i]}" if j == 0 else (name if i == 0 else None))
            for i in range(run.u.shape[1]):
                ax[1].step(run.t[:len(run.u)], run.u[:, i], style, where="post", color=f"C{i}",
                           alpha=1.0 if j == 0 else 0.6, label=f"{u_names[i]} ({name})")
        ax[0].set_title("states (" + ", ".join(f"{s} {n}" for s, n in zip(("--", ":", "-."), list(runs)[1:]))
                        + ")" if len(runs) > 1 else "states")
        ax[1].set_title("controls")
        st = self.solve_times[1:] * 1e6  # the first step solves cold (and may compile): shown apart
        if st.size:
            ax[2].hist(st, bins=min(40, max(5, st.size // 5)), color="C2")
            ax[2].axvline(np.median(st), color="k", ls=":", label=f"median {np.median(st):.0f} µs")
            ax[2].legend(fontsize=7)
        cold = f"; first (cold) step {self.solve_times[0] * 1e3:.3g} ms" if self.solve_times.size else ""
        ax[2].set_title(f"{self.controller}: warm solve time per step{cold}", fontsize=9)
        ax[2].set_xlabel("µs")
        for a in ax[:2]:
            a.set_xlabel("t")
            a.grid(alpha=0.3)
            a.legend(fontsize=6)
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path, dpi=110)
        return fig


class MPC:
    """Receding-horizon control of ``ocp`` (see the module docstring).

    ``step(x, t) -> u`` plans from state x at time t; ``info`` describes the last step (solve
    time, iterations, status, whether it went over ``time_budget`` seconds); ``simulate`` runs
    the closed loop. The first step solves cold (to convergence) from a rollout of the problem's
    control guess, or from ``initial_states`` (one state, e.g. the set point, or a trajectory):
    FDDP starts from them with gaps, which avoids the poor local optima a falling rollout leads
    to. Options not named here go to :class:`trajectories.ddp.DDPSolver`.
    """

    def __init__(self, ocp: OptimalControlProblem, horizon: int | None = None, method: str = "ddp",
                 real_time_iteration: bool = True, time_budget: float | None = None, variant: str = "auto",
                 max_iterations: int = 100, initial_states=None, **options) -> None:
        if method not in METHODS:
            raise MPCError(f"unknown MPC method {method!r}: choose one of {METHODS}")
        horizon = ocp.N if horizon is None else horizon
        if int(horizon) != horizon or horizon < 1:
            raise MPCError(f"horizon must be a positive number of steps, got {horizon!r}")
        if horizon > ocp.N:
            raise MPCError(f"horizon {horizon} is longer than the problem (N = {ocp.N} steps of dt = "
                           f"{ocp.T / ocp.N:g}): lower it, or state the problem with more steps (ocp.with_steps)")
        if time_budget is not None and not (time_budget > 0 and math.isfinite(time_budget)):
            raise MPCError(f"time_budget must be a positive number of seconds, got {time_budget!r}")
        self.solver = self.planner = None
        try:
            if method == "ip":
                self.planner = IPPlanner(ocp, int(horizon), max_iterations=max_iterations, **options)
            else:
                # compiled from the first step: interpreted warm steps would be ~100x slower and allocate
                options.setdefault("interpret_first", False)
                self.solver = DDPSolver(ocp, N=int(horizon), variant=variant, max_iterations=max_iterations,
                                        **options)
        except ProblemError as exc:
            raise MPCError(str(exc)) from None
        self.ocp, self.horizon, self.method = ocp, int(horizon), method
        self.real_time_iteration, self.time_budget = bool(real_time_iteration), time_budget
        self.dt = ocp.T / ocp.N
        self.u = np.zeros(ocp.n_u)
        self._x = np.zeros(ocp.n_x)
        self.info: dict = {}
        self._started = False
        self.initial_states = None
        if initial_states is not None:
            X = np.asarray(initial_states, dtype=float)
            X = np.broadcast_to(X, (self.horizon + 1, ocp.n_x)) if X.ndim == 1 else X
            if X.shape != (self.horizon + 1, ocp.n_x) or not np.all(np.isfinite(X)):
                raise MPCError(f"initial_states must be one finite state ({ocp.n_x},) or a trajectory "
                               f"({self.horizon + 1}, {ocp.n_x}), got shape {np.shape(initial_states)}")
            self.initial_states = np.array(X)
        if self.planner is not None:
            self.planner.initial_states = self.initial_states

    def reset(self) -> None:
        """Forget the plan: the next step solves cold."""
        self._started = False
        if self.planner is not None:
            self.planner.reset()

    @property
    def plan(self) -> tuple[np.ndarray, np.ndarray]:
        """The current plan: states (horizon+1, n) and controls (horizon, m) (views)."""
        if self.planner is not None:
            it = self.planner.last.extra["iterate"] if self.planner.last is not None else None
            return (it.X[:, :self.ocp.n_x], it.U) if it is not None else (None, None)
        return self.solver.xs, self.solver.us

    def step(self, x, t: float = 0.0) -> np.ndarray:
        """The control to apply at state ``x`` and time ``t`` (returns the same buffer every call)."""
        s, n = self.solver, self.ocp.n_x
        x = np.asarray(x, dtype=float)
        if x.shape != (n,):
            raise MPCError(f"the state must have shape ({n},), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise MPCError(f"the state contains NaN or inf: {x}; check the plant or the state estimate")
        self._x[:] = x
        start = time.perf_counter()
        over = False
        if self.planner is not None:
            return self._step_ip(t, start)
        if not self._started:
            try:
                sol = s.solve(x0=self._x, X0=self.initial_states, t0=t, time_budget=self.time_budget)
            except (ProblemError, FloatingPointError) as exc:
                raise MPCError(f"the first MPC solve failed: {exc}") from None
            iterations, ok, message = sol.iterations, sol.status, sol.message
            over = sol.extra["time_budget_exceeded"]
            self._started = True
        else:
            shift = int(round((t - s.t0) / self.dt))
            if shift > 0:
                s.module.shift(s.xs, s.us, s.K, s.k, shift)
            s.x0[:] = self._x
            s.t0 = float(t)
            s.state[10] = 0.0
            cost, bad = s.module.evaluate(s.x0, s.xs, s.us, s.Q, s.r, s.t0, s.h, s.fs)
            if bad >= 0:  # the shifted plan diverged: start again from the state
                s.initialise(self._x, t0=t)
                s.evaluate()
            else:
                s.state[4] = cost
            code = STEPPED
            for _ in range(1 if self.real_time_iteration else s.max_iterations):
                code = s.iterate(1)
                if code == CONVERGED or (code != STEPPED and code != NO_STEP):
                    break
                if self.time_budget is not None and time.perf_counter() - start > self.time_budget:
                    over = True
                    break
            if s._constrained:
                s._update_multipliers(*s.constraint_values())
            iterations = int(s.state[10])
            ok = code in (CONVERGED, STEPPED) or (code == NO_STEP and self.real_time_iteration)
            message = "converged" if code == CONVERGED else ("one real-time iteration" if self.real_time_iteration
                                                              else f"stopped (code {code})")
        s.module.first_control(s.xs, s.us, s.K, self._x, s.box, s.lo, s.hi, self.u)
        elapsed = time.perf_counter() - start
        if self.time_budget is not None and elapsed > self.time_budget:
            over = True
            message = (f"solve took {elapsed * 1e3:.3g} ms, over the budget of {self.time_budget * 1e3:.3g} ms: "
                       "applied the best iterate so far")
        info = self.info
        info["seconds"], info["iterations"], info["status"] = elapsed, iterations, bool(ok)
        info["over_budget"], info["message"], info["stationarity"] = over, message, float(s.state[7])
        return self.u

    def _step_ip(self, t: float, start: float) -> np.ndarray:
        try:
            u, info = self.planner.plan(self._x, t, self.real_time_iteration, self.time_budget)
        except ProblemError as exc:
            raise MPCError(f"the MPC solve failed: {exc}") from None
        self.u[:] = u
        elapsed = time.perf_counter() - start
        if self.time_budget is not None and elapsed > self.time_budget:
            info["over_budget"] = True
            info["message"] = (f"solve took {elapsed * 1e3:.3g} ms, over the budget of {self.time_budget * 1e3:.3g} "
                               "ms: applied the best iterate so far")
        info["seconds"] = elapsed
        self.info.update(info)
        return self.u

    def simulate(self, plant: Callable | None = None, x0=None, steps: int = 200, disturbance=None,
                 model_error: float = 0.0, seed: int = 0, progress: bool = True) -> ClosedLoop:
        """Run the closed loop for ``steps`` steps of dt (see :func:`closed_loop` for ``plant``,
        ``disturbance``, ``model_error`` and ``progress``). Starts from a cold solve."""
        self.reset()
        return closed_loop(self.ocp, self, plant, x0, steps, disturbance, model_error, seed, name="mpc",
                           progress=progress)


class OpenLoop:
    """Replay a planned control sequence, whatever the state (the open-loop baseline)."""

    def __init__(self, U: np.ndarray) -> None:
        self.U = np.asarray(U, dtype=float)
        self.k = 0

    def step(self, x, t: float = 0.0) -> np.ndarray:
        u = self.U[min(self.k, len(self.U) - 1)]
        self.k += 1
        return u


class FeedbackPolicy:
    """DDP's gains alone: u = u_k + K_k (x − x_k) around a solved plan, clamped into the bounds
    (time-varying LQR along the nominal trajectory, no re-planning)."""

    def __init__(self, solution: Solution, ocp: OptimalControlProblem) -> None:
        if solution.gains is None:
            raise MPCError(f"the solution from {solution.method!r} has no feedback gains: solve with method='ddp'")
        self.sol, self.lo, self.hi = solution, ocp.u_lower, ocp.u_upper
        self.k = 0

    def step(self, x, t: float = 0.0) -> np.ndarray:
        k = min(self.k, len(self.sol.u) - 1)
        self.k += 1
        return np.clip(self.sol.u[k] + self.sol.gains[k] @ (np.asarray(x) - self.sol.x[k]), self.lo, self.hi)


def _disturbances(disturbance, steps, n, seed):
    if disturbance is None:
        return lambda k, t, x: None
    if callable(disturbance):
        return disturbance
    if np.ndim(disturbance) == 0:
        sigma = float(disturbance)
        if not (sigma >= 0 and math.isfinite(sigma)):
            raise MPCError(f"disturbance SIGMA must be a non-negative number, got {disturbance!r}")
        rng = np.random.default_rng(seed)
        kicks = sigma * rng.standard_normal((steps, n))
        return lambda k, t, x: kicks[k]
    kicks = np.asarray(disturbance, dtype=float)
    if kicks.shape != (steps, n):
        raise MPCError(f"a disturbance array must have shape (steps, n) = ({steps}, {n}), got {kicks.shape}")
    return lambda k, t, x: kicks[k]


def _stage_parameters(ocp: OptimalControlProblem, scale: float = 1.0) -> np.ndarray:
    """Stage parameters q of the DDP module for the plain model (no multiplier terms)."""
    q = np.zeros(_layout(ocp)[0])
    q[:ocp.n_p] = ocp.params * scale
    if ocp.n_g:
        q[-1] = 1.0  # the penalty μ (its term is switched off by c = 0)
    return q


def _model_plant(ocp: OptimalControlProblem, model_error: float, module):
    """The problem's own dynamics, stepped by its scheme, with parameters scaled by 1 + model_error."""
    if not math.isfinite(model_error) or model_error <= -1:
        raise MPCError(f"model_error must be a fraction > -1 (0.1: the plant's parameters 10% larger), "
                       f"got {model_error!r}")
    q = _stage_parameters(ocp, 1.0 + model_error)
    out = np.empty(ocp.n_x + 1)

    def plant(x, u, t, dt):
        module.st_forward_into(np.ascontiguousarray(x, dtype=float), np.ascontiguousarray(u, dtype=float),
                               q, float(t), float(dt), out)
        return out[:ocp.n_x]

    return plant


def closed_loop(ocp: OptimalControlProblem, controller, plant: Callable | None = None, x0=None, steps: int = 200,
                disturbance=None, model_error: float = 0.0, seed: int = 0, name: str | None = None,
                progress: bool = False) -> ClosedLoop:
    """Run ``controller.step(x, t) -> u`` against ``plant(x, u, t, dt) -> x_next`` for ``steps``
    steps of the problem's dt. ``plant=None`` is the problem's own model with its parameters
    scaled by ``1 + model_error``. ``disturbance``: None, a number σ (Gaussian kicks of standard
    deviation σ added to every state component after each step), an array (steps, n) of kicks, or
    ``f(k, t, x) -> kick``. Never dies mid-run: a non-finite state or an exception in the plant or
    the controller ends the run with ``status`` False and a message saying where. ``progress``:
    a bar over the steps (on a terminal; see :mod:`diffsim.progress`), outside the timed solves."""
    n, m, dt = ocp.n_x, ocp.n_u, ocp.T / ocp.N
    if int(steps) != steps or steps < 1:
        raise MPCError(f"steps must be a positive integer, got {steps!r}")
    steps = int(steps)
    solver = getattr(controller, "solver", None)
    module = solver.module if solver is not None else _module(ocp, "gauss_newton")
    if plant is None:
        plant = _model_plant(ocp, float(model_error), module)
    elif model_error:
        raise MPCError("model_error scales the built-in plant's parameters: with your own plant, build the error "
                       "into it (or pass plant=None)")
    kick = _disturbances(disturbance, steps, n, seed)
    qn = _stage_parameters(ocp)
    out = np.empty(n + 1)
    x = ocp.x0.copy() if x0 is None else np.asarray(x0, dtype=float).reshape(-1).copy()
    if x.shape != (n,) or not np.all(np.isfinite(x)):
        raise MPCError(f"x0 must be {n} finite numbers, got {x0!r}")
    X, U = np.empty((steps + 1, n)), np.empty((steps, m))
    times, iters = np.empty(steps), np.zeros(steps, dtype=int)
    X[0] = x
    cost, over, status, message, done = 0.0, 0, True, f"{steps} steps", steps
    bar = progress_bar(steps, f"closed loop ({name or type(controller).__name__})", "step", enabled=progress)
    for k in range(steps):
        bar.update()
        t = k * dt
        start = time.perf_counter()
        try:
            u = controller.step(X[k], t)
        except DiffsimError as exc:
            status, message, done = False, f"the controller stopped at step {k} (t = {t:.4g}): {exc}", k
            break
        times[k] = time.perf_counter() - start
        info = getattr(controller, "info", None) or {}
        if info:
            times[k] = info["seconds"]
            iters[k] = info["iterations"]
            over += bool(info["over_budget"])
        U[k] = u
        module.st_forward_into(np.ascontiguousarray(X[k]), np.ascontiguousarray(U[k]), qn, t, dt, out)
        cost += out[n]
        try:
            nxt = np.asarray(plant(X[k], U[k], t, dt), dtype=float).reshape(-1)
            d = kick(k, t, X[k])
        except Exception as exc:  # the user's plant or disturbance: report, don't die mid-run
            status, message, done = False, f"the plant raised at step {k} (t = {t:.4g}): {exc!r}", k
            break
        if nxt.shape != (n,):
            status, message, done = False, f"the plant returned shape {nxt.shape} at step {k}, expected ({n},)", k
            break
        X[k + 1] = nxt if d is None else nxt + d
        if not np.all(np.isfinite(X[k + 1])):
            status, message, done = False, (f"the plant returned a non-finite state at step {k} (t = {t:.4g}): "
                                            f"{X[k + 1]}; the run stops there"), k
            break
    bar.close()
    return ClosedLoop(t=dt * np.arange(done + 1), x=X[:done + 1].copy(), u=U[:done].copy(),
                      solve_times=times[:done].copy(), cost=float(cost), status=status, message=message,
                      controller=name or type(controller).__name__, over_budget=over, iterations=iters[:done].copy())


__all__ = ["ClosedLoop", "FeedbackPolicy", "MPC", "MPCError", "OpenLoop", "closed_loop"]
