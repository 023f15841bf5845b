"""The interior-point planner of :class:`trajectories.mpc.MPC` (``method="ip"``): each control step
re-solves the horizon by the stage-wise primal-dual interior-point method through the public
``trajectories.solve(..., method="multiple", solver="ip")``, warm-started from the previous
solution shifted by the steps that elapsed (states, controls, defect multipliers, slacks and
bound multipliers alike), with the node x_0 set to the measured state. With
``real_time_iteration`` one Newton iteration per step (``max_iter=1``, the SQP-RTI idea on the
barrier problem), else iterations until convergence or the time budget.

The horizon is its own problem: ``horizon`` steps of the original dt, and one extra parameter,
the time offset t0 of the horizon, added to the time every stage function sees, so a
time-varying problem (a moving target) is planned at the right times without recompiling.

>>> from trajectories.regulation import cart_pole_upright
>>> p = IPPlanner(cart_pole_upright(N=100), horizon=20)
>>> u, info = p.plan([0.0, 3.0, 0.0, 0.0], 0.0, real_time_iteration=True, time_budget=None)
>>> info["status"], u.shape
(True, (1,))
"""

from __future__ import annotations

import math

import numpy as np

from .problem import OptimalControlProblem, ProblemError


def horizon_problem(ocp: OptimalControlProblem, horizon: int) -> OptimalControlProblem:
    """``ocp`` over ``horizon`` steps of its dt, with the horizon's start time as a last parameter
    (every stage function sees t + t0). Its ``x0`` and ``params[-1]`` are set per solve."""
    k = ocp.n_p
    f, L, g, Phi, he, hi = ocp.f, ocp.L, ocp.g, ocp.Phi, ocp.h_eq, ocp.h_in

    def shifted(fun):
        return None if fun is None else (lambda x, u, p, t: fun(x, u, p[:k], t + p[k]))

    def terminal(fun):
        return None if fun is None else (lambda x, p: fun(x, p[:k]))

    dt = ocp.T / ocp.N
    return OptimalControlProblem(shifted(f), x0=ocp.x0, T=horizon * dt, N=horizon, n_u=ocp.n_u,
                                 running_cost=shifted(L), terminal_cost=terminal(Phi), u_lower=ocp.u_lower,
                                 u_upper=ocp.u_upper, params=np.append(ocp.params, 0.0), path_constraints=shifted(g),
                                 terminal_equality=terminal(he), terminal_inequality=terminal(hi), scheme=ocp.scheme,
                                 x_names=ocp.x_names, u_names=ocp.u_names, name=f"{ocp.name}_horizon")


def _shift_rows(a: np.ndarray, s: int, rows: int | None = None) -> None:
    """a[:rows] moves up by s rows (axis 0); the freed last rows repeat the last one kept."""
    rows = a.shape[0] if rows is None else rows
    if rows == 0 or s <= 0:
        return
    s = min(s, rows - 1)
    a[:rows - s] = a[s:rows]
    a[rows - s:rows] = a[rows - s - 1]


def shift_iterate(it, s: int, n_x: int) -> None:
    """Shift an interior-point iterate (trajectories.interior_point.Iterate) by ``s`` stages in place:
    the primal and every dual variable of stage k + s become those of stage k."""
    N = it.U.shape[0]
    _shift_rows(it.X, s)
    _shift_rows(it.U, s)
    _shift_rows(it.lam, s)
    for name in ("s_path", "y_path"):
        a = getattr(it, name)
        if a.size:
            _shift_rows(a, s)
    for name in ("z_lo", "z_hi"):  # (N+1, nv): states at every node, controls at nodes 0..N-1
        z = getattr(it, name)
        states, controls = z[:, :n_x].copy(), z[:N, n_x:].copy()
        _shift_rows(states, s)
        _shift_rows(controls, s)
        z[:, :n_x], z[:N, n_x:] = states, controls


class IPPlanner:
    """Receding-horizon planning by the interior-point solver (see the module docstring)."""

    def __init__(self, ocp: OptimalControlProblem, horizon: int, initial_states=None, tol: float = 1e-8,
                 max_iterations: int = 100, **options) -> None:
        if ocp.free_time:
            raise ProblemError("MPC plans a fixed horizon: state the problem with free_final_time=False")
        self.ocp, self.horizon = ocp, int(horizon)
        self.dt = ocp.T / ocp.N
        self.problem = horizon_problem(ocp, self.horizon)
        self.tol, self.max_iterations, self.options = float(tol), int(max_iterations), dict(options)
        self.initial_states = initial_states
        self.last = None      # the previous Solution, whose iterate is shifted into the next warm start
        self.t0 = 0.0
        self.u = np.zeros(ocp.n_u)

    def reset(self) -> None:
        self.last = None

    def plan(self, x, t: float, real_time_iteration: bool, time_budget: float | None):
        """(first control, info) for state ``x`` at time ``t``."""
        from . import solve

        pr = self.problem
        x = np.asarray(x, dtype=float)
        pr.x0 = x.copy()
        pr.params[-1] = float(t)
        limit = math.inf if time_budget is None else float(time_budget)
        if self.last is None or self.last.extra.get("iterate") is None:
            X0 = self.initial_states
            if X0 is not None:
                X0 = np.array(np.broadcast_to(X0, (self.horizon + 1, pr.n_x)))
                X0[0] = x
            sol = solve(pr, method="multiple", solver="ip", tol=self.tol, max_iter=self.max_iterations,
                        time_limit=limit, X0=X0, **self.options)
            warm = False
        else:
            it = self.last.extra["iterate"]
            shift_iterate(it, int(round((t - self.t0) / self.dt)), pr.n_x)
            it.X[0, :pr.n_x] = x
            sol = solve(pr, method="multiple", solver="ip", tol=self.tol, time_limit=limit,
                        max_iter=1 if real_time_iteration else self.max_iterations, warm_start=self.last,
                        **self.options)
            warm = True
        self.t0 = float(t)
        usable = sol.u.shape == (self.horizon, pr.n_u) and np.all(np.isfinite(sol.u))
        if usable:
            self.last = sol
            self.u[:] = sol.u[0]
        elif self.last is not None:  # a failed solve: apply the shifted plan of the last good one
            self.u[:] = self.last.extra["iterate"].U[0]
        else:
            raise ProblemError(f"the first interior-point solve failed: {sol.message}")
        self.u[:] = np.clip(self.u, pr.u_lower, pr.u_upper)
        limited = "iteration limit" in sol.message
        ok = bool(sol.status or (warm and real_time_iteration and limited and usable))
        message = sol.message if not (warm and real_time_iteration and limited) else "one real-time Newton iteration"
        over = "time limit" in sol.message
        return self.u, {"iterations": int(sol.iterations), "status": ok, "message": message, "over_budget": over,
                        "stationarity": float(sol.kkt.get("stationarity", math.nan))}
