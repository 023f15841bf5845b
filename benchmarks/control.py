"""Optimal control benchmark: diffsim's stage-wise interior-point solver beside CasADi + IPOPT on the same NLP.

The NLP (``trajectories.transcription``): N control intervals, controls piecewise constant, the
problem posed on scaled time s = t/T ∈ [0, 1] with dynamics dx/ds = T f(x, u, p, T s), and one
classical RK4 step of size h = 1/N per interval on the state augmented with the running cost
T L(x, u, p, T s) (so the cost of interval k is that RK4 quadrature). A free final time is one
more state component with dT/ds = 0, bounded at the first node only. Multiple shooting: the
decisions are z = (x_0, u_0, x_1, u_1, ..., x_N) with x_0's physical part fixed by its bounds,
the constraints are, in this order, the defects F(x_k, u_k) − x_{k+1} = 0, the path constraints
g(x_k, u_k) ≤ 0 for k < N and g(F(x_{N−1}, u_{N−1}), u_{N−1}) ≤ 0 at the final node, and the
terminal equalities h(x_N) = 0; the objective is Σ_k (cost of interval k) + Φ(x_N).

Problems (``trajectories.SYSTEMS``, their default grids): cart_pole, van_der_pol, goddard
(free final time, maximise altitude), two_link_arm, brachistochrone (free final time),
unicycle, pendulum at N = 2000, speed_limit (state path constraint v ≤ 0.6) and
quadrotor_obstacle (circular obstacle, a non-convex path constraint; every solver that takes a
state guess starts from px = 2s, py = −0.6 sin(πs), the rest 0, which passes below the obstacle).

Solvers, one row each per problem:

- ``diffsim ip, multiple``: ``trajectories.solve(ocp, method="multiple", solver="ip")`` (the
  default), tol 1e-8 (scaled KKT error, IPOPT's test) and constraint violation 1e-8;
- ``diffsim ip, single``: the same with ``method="single"`` (controls and T are the decisions;
  it takes no state guess, so on quadrotor_obstacle it starts from the hover rollout);
- ``diffsim ipopt, multiple``: ``solver="ipopt"``, diffsim's cyipopt backend on the identical NLP
  (derivatives from diffsim's compiled stage kernels, called from Python per IPOPT callback);
- ``CasADi + IPOPT``: the NLP above written independently in CasADi SX (the models below, the
  same RK4 step as an SX Function called at every interval), ``nlpsol("ipopt")`` with exact
  Hessian, default linear solver (MUMPS), tol 1e-8, constr_viol_tol 1e-8, print_level 0. The
  variables and constraints are in the order above, so its IPOPT should follow the same
  iterates as diffsim's ipopt backend. The starting point is diffsim's
  ``MultipleShooting.initial_guess`` (the problem's control guess and the rollout under it, or
  the state guess). The solver call is ``nlpsol``'s, the part of ``opti.solve()`` that solves
  (``Opti`` adds its own Python around the same call), so the time target is, if anything,
  stricter here than against ``opti.solve()``.

Same-NLP check (printed before the results): CasADi's objective and constraint vector are
compared with diffsim's ``Transcription.values`` at the starting point and at CasADi's solution.

Columns: cost; its relative gap to CasADi's; the KKT residual: diffsim's
``sol.kkt["scaled_error"]`` (for the ipopt backend too, evaluated by diffsim at IPOPT's point),
and for CasADi IPOPT's own final inf_pr / inf_du (``stats()["iterations"]``, last entry);
iterations; wall times. Timing: the wall time of the whole call as a user sees it
(``trajectories.solve(...)``, or CasADi's solver call ``solver(x0=..., lbx=...)``); NLP
construction (CasADi's SX graph + ``nlpsol``) is excluded and printed apart; each solver's first
call is printed apart ("first": diffsim's includes tracing, code generation and loading the
Numba loops from the disk cache, or compiling them when the cache has no entry — the number of
Numba compilations says which); the main figure is WARM, the best of ``--repeats`` further calls
(default 5, ``--quick`` 1), the solvers taking turns so a busy spell of the shared machine hits
all of them, a solver repeating only while it has used less than ``--budget`` seconds.
"IPOPT internal" is IPOPT's time without the function evaluations: for CasADi, solver stats
``t_wall_total`` minus the sum of the ``t_wall_nlp_*`` entries (f, g, grad_f, jac_g, hess_l,
grad; ``record_time`` on), the smallest over the warm calls (``t_proc_*``, CPU time, printed
beside it); for diffsim's backend ``sol.extra["ipopt_seconds"]`` (IPOPT's call less the time in
diffsim's callbacks). Ratios: diffsim's warm time ÷ CasADi's warm whole call, and ÷ CasADi's
IPOPT internal time.

Where diffsim ip's time goes: the quickest of three more calls per problem and method with a timer
around each compiled loop of the generated stage module (values, Jacobians, Hessians, Riccati
recursion), the rest being the solver's Python and numpy.

Also: time per iteration against N (pendulum swing-up, N = 100, 1000, 10000; ``--quick``: 100,
1000), and a new problem's first solve in a fresh Python process (``python -c``, cart_pole,
``solve(ocp)``) with an empty ``DIFFSIM_CACHE_DIR`` (code generation + every Numba compilation)
and again with that now-filled cache directory, timed from the first import to the solution.

The issue's targets are printed beside the measured numbers, met or not. Environment: whatever
the user's is — the script sets no thread variable and does not limit any thread pool; it prints
what it finds. Run ``python benchmarks/control.py`` (several minutes on a busy 2-core machine)
or ``--quick`` (cart_pole, van_der_pol, speed_limit; one warm call); ``--problems NAME ...``
picks problems, ``--no-fresh`` skips the fresh-process runs. Needs casadi for the
reference and cyipopt for the ipopt-backend rows; either absent is skipped with a line saying
so. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import pathlib
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from harness import fmt_time, load_average, print_header, print_table, run_fresh

import diffsim as ds
from diffsim.codegen import cache_dir
from trajectories import SYSTEMS, solve
from trajectories.dynamics import MODELS
from trajectories.transcription import MultipleShooting

TOL = 1e-8
TARGET_GAP = 1e-6          # same optimum, relative
TARGET_KKT = 1e-8
TARGET_ITER = 1.2          # at most IPOPT's iterations + 20 %
TARGET_WHOLE = 0.5         # ≤ 0.5 × CasADi's whole solve
TARGET_INTERNAL = 1.0      # ≤ IPOPT's internal time
TARGET_COLD, TARGET_WARM_CACHE = 2.0, 0.3   # seconds, first solve in a fresh process
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
ROOT = pathlib.Path(__file__).resolve().parents[1]
CASADI = "CasADi + IPOPT"
IP_MULTIPLE, IP_SINGLE, BACKEND = "diffsim ip, multiple", "diffsim ip, single", "diffsim ipopt, multiple"
BACKEND_SINGLE = "diffsim ipopt, single"
SAME_NLP = {IP_MULTIPLE: BACKEND, IP_SINGLE: BACKEND_SINGLE}   # IPOPT on the identical transcription
DENSE_SINGLE_LIMIT = 400   # the single-shooting backend's reduced Hessian is dense: N·m decisions at most


# ---------------------------------------------------------------- the problems, in CasADi symbols


@dataclass
class Model:
    """A problem's functions in CasADi symbols (x, u are SX vectors, p a list of floats)."""

    f: Callable                       # (x, u, p) -> ẋ
    L: Callable | None = None         # (x, u, p) -> running cost
    Phi: Callable | None = None       # (x, p) -> terminal cost
    h_eq: Callable | None = None      # (x, p) -> terminal equalities
    g: Callable | None = None         # (x, u, p) -> path constraints ≤ 0


def cart_pole_model(ca) -> Model:
    def f(x, u, p):
        mc, mp, length, g = p
        s, c = ca.sin(x[1]), ca.cos(x[1])
        d = mc + mp * s * s
        xdd = (u[0] + mp * s * (length * x[3] * x[3] + g * c)) / d
        thdd = (-u[0] * c - mp * length * x[3] * x[3] * c * s - (mc + mp) * g * s) / (length * d)
        return ca.vertcat(x[2], x[3], xdd, thdd)

    return Model(f, L=lambda x, u, p: u[0] ** 2, h_eq=lambda x, p: x - ca.DM([1.0, math.pi, 0.0, 0.0]))


def van_der_pol_model(ca) -> Model:
    return Model(lambda x, u, p: ca.vertcat(p[0] * (1.0 - x[1] * x[1]) * x[0] - x[1] + u[0], x[0]),
                 L=lambda x, u, p: x[0] ** 2 + x[1] ** 2 + u[0] ** 2)


def goddard_model(ca) -> Model:
    def f(x, u, p):
        drag = 310.0 * x[1] * x[1] * ca.exp(-500.0 * (x[0] - 1.0))
        return ca.vertcat(x[1], (u[0] - drag) / x[2] - 1.0 / (x[0] * x[0]), -u[0] / 0.5)

    return Model(f, Phi=lambda x, p: -x[0], h_eq=lambda x, p: x[2] - 0.6)


def two_link_arm_model(ca) -> Model:
    def f(x, u, p):
        m1, m2, l1, lc1, lc2, i1, i2, g = p
        s1, s2, c2, s12 = ca.sin(x[0]), ca.sin(x[1]), ca.cos(x[1]), ca.sin(x[0] + x[1])
        m11 = i1 + i2 + m2 * l1 * l1 + 2.0 * m2 * l1 * lc2 * c2
        m12 = i2 + m2 * l1 * lc2 * c2
        m22 = i2
        hc = m2 * l1 * lc2 * s2
        r1 = u[0] - m1 * g * lc1 * s1 - m2 * g * (l1 * s1 + lc2 * s12) + 2.0 * hc * x[2] * x[3] + hc * x[3] * x[3]
        r2 = u[1] - m2 * g * lc2 * s12 - hc * x[2] * x[2]
        det = m11 * m22 - m12 * m12
        return ca.vertcat(x[2], x[3], (m22 * r1 - m12 * r2) / det, (m11 * r2 - m12 * r1) / det)

    goal = ca.DM([math.pi / 2, math.pi / 4, 0.0, 0.0])
    return Model(f, L=lambda x, u, p: ca.sumsqr(u), h_eq=lambda x, p: x - goal)


def brachistochrone_model(ca) -> Model:
    g0 = 9.80665
    return Model(lambda x, u, p: ca.vertcat(x[2] * ca.sin(u[0]), -x[2] * ca.cos(u[0]), g0 * ca.cos(u[0])),
                 L=lambda x, u, p: 1.0 + 0.0 * u[0], h_eq=lambda x, p: ca.vertcat(x[0] - 10.0, x[1] - 5.0))


def unicycle_model(ca) -> Model:
    return Model(lambda x, u, p: ca.vertcat(u[0] * ca.cos(x[2]), u[0] * ca.sin(x[2]), u[1]),
                 L=lambda x, u, p: ca.sumsqr(u), h_eq=lambda x, p: x - ca.DM([2.0, 1.0, math.pi / 2]))


def pendulum_model(ca) -> Model:
    def f(x, u, p):
        m, length, g, b = p
        return ca.vertcat(x[1], (u[0] - b * x[1] - m * g * length * ca.sin(x[0])) / (m * length * length))

    return Model(f, L=lambda x, u, p: u[0] ** 2, h_eq=lambda x, p: ca.vertcat(x[0] - math.pi, x[1]))


def speed_limit_model(ca) -> Model:
    return Model(lambda x, u, p: ca.vertcat(x[1], u[0]), L=lambda x, u, p: u[0] ** 2,
                 h_eq=lambda x, p: x - ca.DM([1.0, 0.0]), g=lambda x, u, p: x[1] - 0.6)


def quadrotor_obstacle_model(ca) -> Model:
    def f(x, u, p):
        m, inertia, r, g = p
        thrust = u[0] + u[1]
        return ca.vertcat(x[3], x[4], x[5], -thrust * ca.sin(x[2]) / m, thrust * ca.cos(x[2]) / m - g,
                          r * (u[0] - u[1]) / inertia)

    p = MODELS["quadrotor_2d"][3]
    hover = 0.5 * p[0] * p[3]
    return Model(f, L=lambda x, u, p: ca.sumsqr(u - hover), h_eq=lambda x, p: x - ca.DM([2.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
                 g=lambda x, u, p: 0.4 ** 2 - (x[0] - 1.0) ** 2 - (x[1] - 0.1) ** 2)


def around_the_obstacle(ocp) -> np.ndarray:
    """The quadrotor's state guess: px = 2s, py = −0.6 sin(πs), the other states 0."""
    s = np.linspace(0.0, 1.0, ocp.N + 1)
    X0 = np.zeros((ocp.N + 1, ocp.n_x))
    X0[:, 0], X0[:, 1] = 2.0 * s, -0.6 * np.sin(np.pi * s)
    return X0


@dataclass
class Case:
    name: str
    make: Callable                      # () -> OptimalControlProblem
    model: Callable                     # ca -> Model
    state_guess: Callable | None = None  # ocp -> X0 (N+1, n_x)


CASES = [Case("cart_pole", SYSTEMS["cart_pole"], cart_pole_model),
         Case("van_der_pol", SYSTEMS["van_der_pol"], van_der_pol_model),
         Case("goddard", SYSTEMS["goddard"], goddard_model),
         Case("two_link_arm", SYSTEMS["two_link_arm"], two_link_arm_model),
         Case("brachistochrone", SYSTEMS["brachistochrone"], brachistochrone_model),
         Case("unicycle", SYSTEMS["unicycle"], unicycle_model),
         Case("pendulum", lambda: SYSTEMS["pendulum"](N=2000), pendulum_model),
         Case("speed_limit", SYSTEMS["speed_limit"], speed_limit_model),
         Case("quadrotor_obstacle", SYSTEMS["quadrotor_obstacle"], quadrotor_obstacle_model, around_the_obstacle)]
QUICK = ("cart_pole", "van_der_pol", "speed_limit")


# ---------------------------------------------------------------- CasADi + IPOPT on the same NLP


def stage_layout(ocp) -> tuple[int, int, int, int]:
    """(n, ns, m, nv): physical states, stage states (with T when free), controls, stage width."""
    n, m = ocp.n_x, ocp.n_u
    ns = n + int(ocp.free_time)
    return n, ns, m, ns + m


def pack(X: np.ndarray, U: np.ndarray) -> np.ndarray:
    """z = (x_0, u_0, ..., x_{N-1}, u_{N-1}, x_N)."""
    return np.concatenate([np.concatenate([X[:-1], U], axis=1).ravel(), X[-1]])


def unpack(ocp, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(X, U) from z, the inverse of :func:`pack`."""
    _, ns, _, nv = stage_layout(ocp)
    N = ocp.N
    V = z[:N * nv].reshape(N, nv)
    X = np.vstack([V[:, :ns], z[N * nv:][None, :]])
    return np.ascontiguousarray(X), np.ascontiguousarray(V[:, ns:])


def rk4_step(ca, ocp, model: Model):
    """The scaled-time RK4 step (x, u) -> (x_next, cost of the interval) as an SX Function."""
    n, ns, m, _ = stage_layout(ocp)
    p = [float(v) for v in ocp.params]
    x, u = ca.SX.sym("x", ns), ca.SX.sym("u", m)
    T = x[n] if ocp.free_time else ocp.T
    zero = ca.SX.zeros(1) if ocp.free_time else ca.SX.zeros(0)

    def rhs(y):
        cost = T * model.L(y[:n], u, p) if model.L is not None else ca.SX(0.0)
        return ca.vertcat(T * model.f(y[:n], u, p), zero), cost

    h = 1.0 / ocp.N
    k1, q1 = rhs(x)
    k2, q2 = rhs(x + 0.5 * h * k1)
    k3, q3 = rhs(x + 0.5 * h * k2)
    k4, q4 = rhs(x + h * k3)
    return ca.Function("rk4", [x, u], [x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4),
                                       (h / 6.0) * (q1 + 2.0 * q2 + 2.0 * q3 + q4)])


@dataclass
class CasadiNLP:
    solver: object
    evaluate: Callable          # z -> (f, g) as numpy
    lbx: np.ndarray
    ubx: np.ndarray
    lbg: np.ndarray
    ubg: np.ndarray
    build_seconds: float


def build_casadi(ca, ocp, model: Model) -> CasadiNLP:
    """The multiple-shooting NLP of the module docstring in CasADi SX, and its IPOPT solver."""
    start = time.perf_counter()
    n, ns, m, nv = stage_layout(ocp)
    N, p = ocp.N, [float(v) for v in ocp.params]
    step = rk4_step(ca, ocp, model)
    z = ca.SX.sym("z", N * nv + ns)
    X = [z[k * nv:k * nv + ns] for k in range(N + 1)]
    U = [z[k * nv + ns:(k + 1) * nv] for k in range(N)]
    J, defects, path = 0, [], []
    end = None
    for k in range(N):
        end, cost = step(X[k], U[k])
        J += cost
        defects.append(end - X[k + 1])
        if model.g is not None:
            path.append(model.g(X[k][:n], U[k], p))
    if model.g is not None:
        path.append(model.g(end[:n], U[N - 1], p))  # the final node's constraint, through the step
    if model.Phi is not None:
        J += model.Phi(X[N][:n], p)
    terminal = [model.h_eq(X[N][:n], p)] if model.h_eq is not None else []
    g = ca.vertcat(*defects, *path, *terminal)
    n_path = sum(e.numel() for e in path)
    lbg = np.concatenate([np.zeros(N * ns), np.full(n_path, -np.inf), np.zeros(g.numel() - N * ns - n_path)])
    ubg = np.zeros(g.numel())
    lo, hi = np.full((N + 1, nv), -np.inf), np.full((N + 1, nv), np.inf)
    lo[:N, ns:], hi[:N, ns:] = ocp.u_lower, ocp.u_upper
    lo[0, :n] = hi[0, :n] = ocp.x0
    if ocp.free_time:
        lo[0, n], hi[0, n] = ocp.T_bounds
    lbx, ubx = lo.ravel()[:N * nv + ns], hi.ravel()[:N * nv + ns]
    opts = {"ipopt.tol": TOL, "ipopt.constr_viol_tol": TOL, "ipopt.max_iter": 3000, "ipopt.print_level": 0,
            "ipopt.sb": "yes", "print_time": False, "record_time": True}
    solver = ca.nlpsol(f"ipopt_{ocp.name}", "ipopt", {"x": z, "f": J, "g": g}, opts)
    fg = ca.Function("fg", [z], [J, g])

    def evaluate(zv):
        fv, gv = fg(zv)
        return float(fv), np.asarray(gv).ravel()

    return CasadiNLP(solver, evaluate, lbx, ubx, lbg, ubg, time.perf_counter() - start)


def casadi_call(nlp: CasadiNLP, ocp, X, U) -> dict:
    """One whole solver call from (X, U), with IPOPT's stats."""
    z0 = pack(X, U)
    start = time.perf_counter()
    out = nlp.solver(x0=z0, lbx=nlp.lbx, ubx=nlp.ubx, lbg=nlp.lbg, ubg=nlp.ubg)
    wall = time.perf_counter() - start
    st = nlp.solver.stats()
    Xs, Us = unpack(ocp, np.asarray(out["x"]).ravel())
    evals = [k[len("t_wall_"):] for k in st if k.startswith("t_wall_nlp_")]
    eval_wall = sum(st["t_wall_" + k] for k in evals)
    eval_proc = sum(st["t_proc_" + k] for k in evals)
    its = st["iterations"]
    return {"wall": wall, "status": bool(st["success"]), "message": st["return_status"], "cost": float(out["f"]),
            "X": Xs, "U": Us, "iterations": int(st["iter_count"]),
            "kkt": f"pr {its['inf_pr'][-1]:.0e}, du {its['inf_du'][-1]:.0e}",
            "internal": st["t_wall_total"] - eval_wall, "internal_proc": st["t_proc_total"] - eval_proc,
            "t_wall_total": st["t_wall_total"]}


# ---------------------------------------------------------------- diffsim's solvers


def diffsim_call(ocp, method: str, solver: str, X0) -> dict:
    """One whole ``trajectories.solve`` call."""
    start_opts = {"X0": X0} if X0 is not None and method == "multiple" else {}
    start = time.perf_counter()
    sol = solve(ocp, method=method, solver=solver, tol=TOL, **start_opts)
    wall = time.perf_counter() - start
    res = {"wall": wall, "status": sol.status, "message": sol.message, "cost": sol.cost, "iterations": sol.iterations,
           "kkt_value": sol.kkt.get("scaled_error", float("nan")), "violation": sol.constraint_violation,
           "U": sol.u, "internal": sol.extra.get("ipopt_seconds")}
    res["kkt"] = f"{res['kkt_value']:.1e}"
    return res


@contextmanager
def numba_compilations():
    """Count the Numba compilations (not disk-cache loads) inside the block: box[0]."""
    from numba.core import event

    box = [0]
    with event.install_recorder("numba:compile") as rec:
        yield box
    box[0] = sum(1 for _, ev in rec.buffer if ev.is_start)


# ---------------------------------------------------------------- runs: first call, warm calls in turns


@dataclass
class Run:
    name: str
    call: Callable                       # () -> result dict
    first: float = float("nan")
    first_note: str = ""
    warm: list = field(default_factory=list)
    internal: list = field(default_factory=list)
    internal_proc: list = field(default_factory=list)
    result: dict | None = None

    @property
    def best(self) -> float:
        return min(self.warm) if self.warm else self.first

    @property
    def best_internal(self) -> float | None:
        return min(self.internal) if self.internal else None

    def record(self, res: dict, warm: bool) -> None:
        if warm:
            self.warm.append(res["wall"])
            if res.get("internal") is not None:
                self.internal.append(res["internal"])
            if res.get("internal_proc") is not None:
                self.internal_proc.append(res["internal_proc"])
        else:
            self.first = res["wall"]
        self.result = res


def first_calls(runs: list[Run]) -> None:
    for run in runs:
        with numba_compilations() as compiled:
            res = run.call()
        run.record(res, warm=False)
        run.first_note = f"{compiled[0]} Numba compilations" if compiled[0] else "no compilation (disk cache)"


def warm_calls(runs: list[Run], repeats: int, budget: float) -> None:
    """``repeats`` rounds, the runs taking turns; a run sits out once its warm calls used ``budget`` s."""
    for _ in range(repeats):
        for run in runs:
            if sum(run.warm) < budget:
                run.record(run.call(), warm=True)


# ---------------------------------------------------------------- one problem


@dataclass
class ProblemResult:
    case: Case
    ocp: object
    runs: dict
    check: list | None = None           # same-NLP check rows
    casadi_build: float | None = None


def same_nlp_rows(name, ocp, nlp: CasadiNLP, points: dict) -> list:
    """CasADi's f and g against diffsim's Transcription.values at each named point (X, U)."""
    tr = MultipleShooting(ocp)
    rows = []
    for label, (X, U) in points.items():
        fc, gc = nlp.evaluate(pack(X, U))
        v = tr.values(np.ascontiguousarray(X, dtype=float), np.ascontiguousarray(U, dtype=float))
        gd = np.concatenate([v.defects.ravel(), v.path.ravel(), v.path_final, v.equality, v.inequality])
        diff = f"{np.max(np.abs(gc - gd)):.1e}" if gc.size == gd.size else "sizes differ"
        violation = np.max(np.maximum(np.maximum(nlp.lbg - gc, gc - nlp.ubg), 0.0), initial=0.0)
        rows.append([f"{name}: {label}", f"{fc:.15g}", f"{v.cost:.15g}",
                     f"{abs(fc - v.cost) / max(abs(fc), 1e-300):.1e}", f"{gc.size} / {gd.size}", diff,
                     f"{violation:.1e}"])
    return rows


def bench_problem(case: Case, ca, have_ipopt: bool, args) -> ProblemResult:
    ocp = case.make()
    X0 = case.state_guess(ocp) if case.state_guess else None
    print(f"  {case.name} (N = {ocp.N}) ...", flush=True)
    runs = {IP_MULTIPLE: Run(IP_MULTIPLE, lambda: diffsim_call(ocp, "multiple", "ip", X0)),
            IP_SINGLE: Run(IP_SINGLE, lambda: diffsim_call(ocp, "single", "ip", X0))}
    if have_ipopt:
        runs[BACKEND] = Run(BACKEND, lambda: diffsim_call(ocp, "multiple", "ipopt", X0))
        if ocp.N * ocp.n_u <= DENSE_SINGLE_LIMIT:
            runs[BACKEND_SINGLE] = Run(BACKEND_SINGLE, lambda: diffsim_call(ocp, "single", "ipopt", X0))
    out = ProblemResult(case, ocp, runs)
    first_calls(list(runs.values()))  # diffsim's first: nothing of this problem is built before it
    nlp = None
    if ca is not None:
        nlp = build_casadi(ca, ocp, case.model(ca))
        out.casadi_build = nlp.build_seconds
        Xg, Ug = MultipleShooting(ocp).initial_guess(X0=X0)
        runs[CASADI] = Run(CASADI, lambda: casadi_call(nlp, ocp, Xg, Ug))
        first_calls([runs[CASADI]])
    warm_calls(list(runs.values()), args.repeats, args.budget)
    if nlp is not None:
        ref = runs[CASADI].result
        out.check = same_nlp_rows(case.name, ocp, nlp, {"start": (Xg, Ug), "CasADi's solution": (ref["X"], ref["U"])})
    return out


# ---------------------------------------------------------------- tables of the problems


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or not b > 0 else a / b


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def print_results(results: list[ProblemResult], repeats: int) -> None:
    rows = []
    for pr in results:
        ref = pr.runs.get(CASADI)
        for run in pr.runs.values():
            r = run.result
            gap = "-" if ref is None else f"{(r['cost'] - ref.result['cost']) / abs(ref.result['cost']):+.1e}"
            internal = run.best_internal
            rows.append([f"{pr.case.name} (N={pr.ocp.N})", run.name, "ok" if r["status"] else "FAILED",
                         f"{r['cost']:.10g}", gap, r["kkt"], r["iterations"], fmt_time(run.best),
                         "-" if internal is None else fmt_time(internal),
                         fmt_ratio(ratio(run.best, ref.best if ref else None)),
                         fmt_ratio(ratio(run.best, ref.best_internal if ref else None))])
    print_table(f"Results (warm = best of up to {repeats} calls after the first, first calls below; ratios: this "
                "row's warm time ÷ CasADi's warm whole call, ÷ CasADi's IPOPT internal time)",
                ["problem", "solver", "status", "cost", "gap to CasADi", "KKT", "iters", "warm",
                 "IPOPT internal", "÷ CasADi whole", "÷ IPOPT internal"], rows)
    print("KKT: diffsim's scaled KKT error (IPOPT's eq. 5 test) at the returned point; CasADi: IPOPT's own final "
          "inf_pr / inf_du. IPOPT internal: CasADi's stats t_wall_total − Σ t_wall_nlp_* (smallest over warm calls); "
          "diffsim ipopt: sol.extra['ipopt_seconds'] (IPOPT's call less diffsim's callbacks).")
    failed = [f"{pr.case.name}/{run.name}: {run.result['message']}" for pr in results for run in pr.runs.values()
              if not run.result["status"]]
    for line in failed:
        print(f"  not solved: {line}")
    proc = [f"{pr.case.name} {fmt_time(min(pr.runs[CASADI].internal_proc))}" for pr in results
            if CASADI in pr.runs and pr.runs[CASADI].internal_proc]
    if proc:
        print("CasADi's IPOPT internal CPU time (t_proc_total − Σ t_proc_nlp_*): " + ", ".join(proc))


def verdict(ok: bool, text: str) -> str:
    return f"{'met' if ok else 'NOT met'} ({text})"


def target_cells(run: Run, ref: Run | None, same: Run | None) -> list[str]:
    r = run.result
    cells = []
    if ref is None:
        cells.append("- (no CasADi)")
    else:
        gap = abs(r["cost"] - ref.result["cost"]) / abs(ref.result["cost"])
        cells.append(verdict(gap <= TARGET_GAP and r["status"], f"{gap:.1e}"))
    cells.append(verdict(r["kkt_value"] <= TARGET_KKT and r["status"], f"{r['kkt_value']:.1e}"))
    if ref is None:
        return cells + ["-"] * 3
    limit = TARGET_ITER * ref.result["iterations"]
    cells.append(verdict(r["iterations"] <= limit, f"{r['iterations']} vs ≤ {limit:.0f}"))
    if same is None or not same.result["status"]:
        cells.append("-")
    else:
        limit = TARGET_ITER * same.result["iterations"]
        cells.append(verdict(r["iterations"] <= limit, f"{r['iterations']} vs ≤ {limit:.0f}"))
    whole = ratio(run.best, ref.best)
    cells.append(verdict(whole <= TARGET_WHOLE, f"{whole:.2f}x"))
    internal = ratio(run.best, ref.best_internal)
    cells.append("-" if internal is None else verdict(internal <= TARGET_INTERNAL, f"{internal:.2f}x"))
    return cells


def print_targets(results: list[ProblemResult]) -> dict:
    rows, tally = [], {}
    for pr in results:
        ref = pr.runs.get(CASADI)
        for name in (IP_MULTIPLE, IP_SINGLE):
            cells = target_cells(pr.runs[name], ref, pr.runs.get(SAME_NLP[name]))
            rows.append([pr.case.name, name] + cells)
            met = sum(c.startswith("met") for c in cells)
            counted = sum(c.startswith(("met", "NOT")) for c in cells)
            old = tally.get(name, (0, 0))
            tally[name] = (old[0] + met, old[1] + counted)
    print_table("The issue's targets, per problem (diffsim's interior-point solver against CasADi + IPOPT)",
                ["problem", "solver", f"same optimum ≤ {TARGET_GAP:g} rel.", f"KKT ≤ {TARGET_KKT:g}",
                 f"iterations ≤ IPOPT's × {TARGET_ITER:g}",
                 f"iterations ≤ × {TARGET_ITER:g} IPOPT's on the same transcription",
                 f"wall ≤ {TARGET_WHOLE:g} × CasADi whole",
                 "wall ≤ IPOPT internal"], rows)
    for name, (met, counted) in tally.items():
        print(f"{name}: {met} of {counted} problem targets met")
    print("'the same transcription': IPOPT through diffsim's cyipopt backend on the identical NLP (multiple "
          "shooting: CasADi's NLP too; single shooting: controls and T are the decisions, a different NLP from "
          f"CasADi's, reduced Hessian dense, so run only while N·m ≤ {DENSE_SINGLE_LIMIT}).")
    return tally


def print_same_nlp(results: list[ProblemResult]) -> None:
    rows = [row for pr in results if pr.check for row in pr.check]
    if not rows:
        return
    print_table("Same NLP: CasADi's objective and constraints against diffsim's Transcription.values at one point",
                ["problem: point", "CasADi f", "diffsim f", "rel. diff", "constraints (CasADi / diffsim)",
                 "max |g_CasADi − g_diffsim|", "CasADi's constraint violation there"], rows)
    print("The constraint violation at CasADi's solution is measured against the NLP's own bounds: IPOPT relaxes "
          "inequalities by its bound_relax_factor (1e-8 by default), so it may exceed IPOPT's reported inf_pr.")
    pairs = [(pr.case.name, pr.runs[BACKEND].result, pr.runs[CASADI].result) for pr in results
             if BACKEND in pr.runs and CASADI in pr.runs]
    if pairs:
        same = [n for n, b, c in pairs if b["iterations"] == c["iterations"]]
        gap = max(abs(b["cost"] - c["cost"]) / abs(c["cost"]) for _, b, c in pairs)
        print(f"diffsim's ipopt backend against CasADi's IPOPT on these NLPs: the same iteration count on {len(same)} "
              f"of {len(pairs)} problems ({', '.join(same) or 'none'}); largest relative cost difference {gap:.1e}")


def print_first_calls(results: list[ProblemResult]) -> None:
    rows = []
    for pr in results:
        runs = pr.runs
        rows.append([pr.case.name, f"{fmt_time(runs[IP_MULTIPLE].first)} ({runs[IP_MULTIPLE].first_note})",
                     fmt_time(runs[IP_SINGLE].first),
                     fmt_time(runs[BACKEND].first) if BACKEND in runs else "-",
                     "-" if pr.casadi_build is None else fmt_time(pr.casadi_build),
                     fmt_time(runs[CASADI].first) if CASADI in runs else "-"])
    print_table("First calls in this process (cold; excluded from 'warm' above)",
                ["problem", "diffsim ip multiple: first solve (trace + codegen + Numba load or compile)",
                 "ip single: first", "ipopt backend: first", "CasADi NLP build (SX + nlpsol, excluded)",
                 "CasADi: first solver call"], rows)
    print("The first problem's first diffsim call also pays Numba's one-time start-up in this process; 'no "
          "compilation (disk cache)' means every loop was loaded from the cache directory named above.")


# ---------------------------------------------------------------- where diffsim ip's time goes


class TimedModule:
    """A problem's compiled stage module with a timer around every loop the solver calls on it."""

    def __init__(self, module):
        self._module, self.seconds, self.calls = module, {}, {}

    def __getattr__(self, name):
        fn = getattr(self._module, name)
        if not callable(fn):
            return fn
        return self._wrap(name, fn)

    def _wrap(self, name, fn):
        def timed(*args):
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed


LOOP_GROUPS = (("values", ("nlp_values",)), ("jacobians", ("nlp_jacobians", "costates")),
               ("Hessians", ("nlp_hessians",)),
               ("Newton step (condensing, Riccati, recovery)", ("assemble", "newton_step", "riccati", "condense",
                                                                "condense_all", "rows_times", "lagrangian_gradient")),
               ("IP vector loops", ("bound_barrier", "bound_steps", "kkt_scalars", "merit", "step_limits",
                                    "reset_duals", "barrier_directional", "curvature")))
# compiled once for every problem
SOLVER_MODULES = ("trajectories.riccati", "trajectories.ip_vectors", "trajectories.newton_system")


@contextlib.contextmanager
def timed_solver_loops(timed: TimedModule):
    """Route the solver's own compiled loops (module attributes the solver looks up at each call)
    through ``timed`` for the duration of a call."""
    import importlib

    saved = []
    for name in SOLVER_MODULES:
        mod = importlib.import_module(name)
        for _, names in LOOP_GROUPS:
            for fn in names:
                if hasattr(mod, fn):
                    saved.append((mod, fn, getattr(mod, fn)))
                    setattr(mod, fn, timed._wrap(fn, getattr(mod, fn)))
    try:
        yield
    finally:
        for mod, fn, orig in saved:
            setattr(mod, fn, orig)


def profile_row(pr: ProblemResult, method: str) -> list | None:
    """Three more calls of diffsim ip with timers around the compiled loops (the transcription reads the
    module from the problem's ``_stage_module``, which is swapped for a timed proxy during the call)."""
    ocp = pr.ocp
    module = getattr(ocp, "_stage_module", None)
    if module is None:
        return None
    best = None
    for _ in range(3):  # the quickest of three calls: one busy spell of the shared machine is not the profile
        timed = TimedModule(module)
        ocp._stage_module = timed
        try:
            with timed_solver_loops(timed):
                res = diffsim_call(ocp, method, "ip", pr.case.state_guess(ocp) if pr.case.state_guess else None)
        finally:
            ocp._stage_module = module
        if best is None or res["wall"] < best[1]["wall"]:
            best = (timed, res)
    timed, res = best
    total = res["wall"]
    groups = [sum(timed.seconds.get(n, 0.0) for n in names) for _, names in LOOP_GROUPS]
    compiled = sum(timed.seconds.values())
    rest = total - compiled
    share = lambda t: f"{fmt_time(t)} ({100 * t / total:.0f}%)"
    its = max(res["iterations"], 1)
    return ([f"{pr.case.name} (N={ocp.N})", method, fmt_time(total), share(compiled)] + [share(g) for g in groups]
            + [f"{timed.calls.get('newton_step', 0)} / {res['iterations']}", share(rest), fmt_time(rest / its)])


def print_profile(results: list[ProblemResult]) -> None:
    rows = [row for pr in results for method in ("multiple", "single") if (row := profile_row(pr, method))]
    if not rows:
        print("skipped: where the time goes (the problem object keeps no _stage_module to instrument)")
        return
    print_table("Where diffsim ip's time goes: quickest of three more calls, timers around the compiled stage loops",
                ["problem", "method", "total", "compiled loops"] + [f"of which {g}" for g, _ in LOOP_GROUPS]
                + ["Newton solves / iterations", "Python + numpy (the rest)", "rest per iteration"], rows)
    print("compiled loops: the Numba functions of the generated stage module (values and defects, first "
          "derivatives, Lagrangian Hessians) and the solver's own, compiled once for every problem (costates, "
          "the Newton step's assembly, Riccati recursion and step recovery, the interior-point vector loops of "
          "trajectories.ip_vectors); the rest is the solver's Python and numpy between them (residuals, line "
          "search, bookkeeping), the timers' own cost included. More Newton solves than iterations are "
          "inertia-correction retries and second-order corrections.")


# ---------------------------------------------------------------- time per iteration against N


def bench_scaling(ca, args) -> None:
    sizes = (100, 1000) if args.quick else (100, 1000, 10000)
    rows = []
    series: dict[str, list] = {}
    for N in sizes:
        ocp = SYSTEMS["pendulum"](N=N)
        runs = [Run(IP_MULTIPLE, lambda o=ocp: diffsim_call(o, "multiple", "ip", None)),
                Run(IP_SINGLE, lambda o=ocp: diffsim_call(o, "single", "ip", None))]
        if ca is not None:
            nlp = build_casadi(ca, ocp, pendulum_model(ca))
            Xg, Ug = MultipleShooting(ocp).initial_guess()
            runs.append(Run(CASADI, lambda o=ocp, nl=nlp, X=Xg, U=Ug: casadi_call(nl, o, X, U)))
        print(f"  pendulum, N = {N} ...", flush=True)
        first_calls(runs)
        warm_calls(runs, args.repeats, args.budget)
        for run in runs:
            its = max(run.result["iterations"], 1)
            per = run.best / its
            series.setdefault(run.name, []).append((N, per))
            rows.append([run.name, N, "ok" if run.result["status"] else "FAILED", run.result["iterations"],
                         fmt_time(run.best), fmt_time(per), f"{per / N * 1e6:.2f} µs"])
    print_table("Time per iteration against N: pendulum swing-up (warm whole solve ÷ iterations)",
                ["solver", "N", "status", "iters", "warm solve", "per iteration", "per iteration per interval"], rows)
    for name, pts in series.items():
        slopes = [math.log(b[1] / a[1]) / math.log(b[0] / a[0]) for a, b in zip(pts, pts[1:])]
        text = ", ".join(f"{a[0]}→{b[0]}: {s:.2f}" for (a, b), s in zip(zip(pts, pts[1:]), slopes))
        line = f"{name}: log-log slope of time per iteration against N {text}"
        if name != CASADI and len(pts) > 2:
            line += " — target linear up to N = 10⁴: " + verdict(slopes[-1] <= 1.15, f"slope {slopes[-1]:.2f} ≤ 1.15")
        print(line)


# ---------------------------------------------------------------- first solve in a fresh process

FRESH_CHILD = """
import json, time
t0 = time.perf_counter()
from trajectories import SYSTEMS, solve
from trajectories.transcription import MultipleShooting
t1 = time.perf_counter()
ocp = SYSTEMS["cart_pole"]()
MultipleShooting(ocp)
t2 = time.perf_counter()
sol = solve(ocp)
t3 = time.perf_counter()
again = solve(ocp)
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "build": t2 - t1, "solve": t3 - t2, "total": t3 - t0, "again": t4 - t3,
                  "status": bool(sol.status), "iterations": sol.iterations, "cost": sol.cost}))
"""


def fresh_process(cache: str, jit: str) -> dict:
    env = dict(os.environ, DIFFSIM_JIT=jit)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    out, out["process"] = run_fresh(FRESH_CHILD, cache, env)
    files = list(pathlib.Path(cache).rglob("*"))
    out["cache"] = (f"{sum(f.suffix == '.py' for f in files)} generated module(s), "
                    f"{sum(f.suffix == '.nbi' for f in files)} Numba index files")
    return out


def bench_fresh_process() -> None:
    background, eager = (tempfile.mkdtemp(prefix="diffsim-bench-cache-") for _ in range(2))
    try:
        print("  fresh process, empty cache (default: interpreted while Numba compiles in the background) ...",
              flush=True)
        cold = fresh_process(background, "background")
        print("  fresh process, empty cache, DIFFSIM_JIT=eager (compiled before the first call) ...", flush=True)
        cold_eager = fresh_process(eager, "eager")
        print("  fresh process, filled cache ...", flush=True)
        warm = fresh_process(eager, "background")
    finally:
        for cache in (background, eager):
            shutil.rmtree(cache, ignore_errors=True)
    rows = []
    for label, r, limit in (("empty DIFFSIM_CACHE_DIR, default (the first calls interpreted)", cold, TARGET_COLD),
                            ("empty DIFFSIM_CACHE_DIR, DIFFSIM_JIT=eager (Numba compiles first)", cold_eager,
                             TARGET_COLD),
                            ("the eager run's cache dir, now filled (disk cache)", warm, TARGET_WARM_CACHE)):
        rows.append([label, fmt_time(r["imports"]), fmt_time(r["build"]), fmt_time(r["solve"]), fmt_time(r["total"]),
                     fmt_time(r["process"]), fmt_time(r["again"]),
                     f"{'ok' if r['status'] else 'FAILED'}, {r['iterations']} iters, cost {r['cost']:.12g}", r["cache"],
                     verdict(r["total"] <= limit, f"{r['total']:.2f} s vs ≤ {limit:g} s")])
    print_table("A new problem's first solve in a fresh process: python -c 'from trajectories import SYSTEMS, solve; "
                "solve(SYSTEMS[\"cart_pole\"]())'",
                ["cache", "imports", "transcription (trace + codegen + import)", "first solve",
                 "import to solution", "whole process", "second solve, same process", "result", "cache dir after",
                 "target (import to solution)"], rows)
    print("imports: `from trajectories import SYSTEMS, solve` and the transcription module; transcription: "
          "MultipleShooting(ocp), which traces the stage functions, writes (or finds) the generated module and "
          "imports it; first solve: by default the stage loops not yet in Numba's disk cache run as Python while "
          "a background process compiles them (diffsim.interpreted; the second solve is still interpreted "
          "until that process is done), with DIFFSIM_JIT=eager Numba compiles them first; whole process: as "
          "seen by the parent, with the interpreter's start and exit. The solver's own loops (riccati, "
          "newton_system, ip_vectors) are in the package's cache in all three.")


# ---------------------------------------------------------------- main


def thread_pools() -> str:
    """Every native thread pool loaded in this process, with its library and thread count."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    return ", ".join(f"{p['internal_api']} {pathlib.Path(p['filepath']).parent.name}/{pathlib.Path(p['filepath']).name}"
                     f" {p['num_threads']} threads" for p in threadpool_info()) or "none"


def environment_lines(ca, have_ipopt: bool) -> None:
    set_vars = {v: os.environ[v] for v in THREAD_VARS if v in os.environ}
    print(f"thread variables: {set_vars if set_vars else 'none set'} (this script sets none and limits no pool)")
    print(f"thread pools loaded (threadpoolctl, read only): {thread_pools()}")
    print(f"at start: {load_average()}")
    print(f"diffsim disk cache: {cache_dir()} ({'exists' if cache_dir().exists() else 'absent'}, "
          f"{len(list(cache_dir().glob('*.py'))) if cache_dir().exists() else 0} generated modules at start)")
    if ca is None:
        print("skipped: casadi not installed (pip install casadi): no CasADi + IPOPT reference, gaps, ratios or "
              "time targets")
    else:
        print(f"CasADi {ca.__version__}: nlpsol('ipopt'), SX, exact Hessian, MUMPS, tol {TOL:g}, "
              f"constr_viol_tol {TOL:g}")
    if not have_ipopt:
        print("skipped: cyipopt not installed (pip install 'diffsim[ipopt]'): no diffsim ipopt-backend rows")


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"problems {', '.join(QUICK)}; one warm call; "
                        "N up to 1000 in the scaling table")
    parser.add_argument("--problems", nargs="+", choices=[c.name for c in CASES], help="a subset of the problems")
    parser.add_argument("--repeats", type=int, default=None, help="warm calls per solver (default 5, --quick 1)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds of warm calls after which a solver stops repeating (default 30)")
    parser.add_argument("--no-fresh", action="store_true", help="skip the fresh-process measurement")
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (1 if args.quick else 5)
    return args


def main(argv=None) -> None:
    args = parse(argv)
    start = time.perf_counter()
    try:
        import casadi as ca
    except ImportError:
        ca = None
    from trajectories.ipopt_backend import available

    have_ipopt = available()
    print_header("diffsim optimal control benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "numpy", "casadi", "cyipopt-wheels"], source=ds)
    environment_lines(ca, have_ipopt)
    names = args.problems or (QUICK if args.quick else [c.name for c in CASES])
    print("\nrunning:", flush=True)
    results = [bench_problem(c, ca, have_ipopt, args) for c in CASES if c.name in names]
    print_same_nlp(results)
    print_results(results, args.repeats)
    print_targets(results)
    print_first_calls(results)
    print_profile(results)
    print("\nrunning the scaling table:", flush=True)
    bench_scaling(ca, args)
    if not args.no_fresh:
        print("\nrunning the fresh-process measurement:", flush=True)
        bench_fresh_process()
    print(f"\nat end: {load_average()} (this benchmark counts for about 1)")
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
