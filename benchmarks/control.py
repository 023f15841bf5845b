"""Optimal control benchmark: diffsim's direct shooting beside CasADi + IPOPT on the same discrete NLP.

The problems (``trajectories.systems``, N = 100 control intervals, float64):

- cart-pole swing-up of Kelly (2017): cart 1 kg, pole 0.3 kg and 0.5 m, g = 9.81, from rest
  hanging down (θ = 0) to x(T) = (1, π, 0, 0) in T = 2, |F| <= 20, minimise ∫ F² dt;
- Van der Pol of CasADi's examples: ẋ0 = (1 − x1²) x0 − x1 + u, ẋ1 = x0, x(0) = (0, 1),
  u ∈ [−0.75, 1], minimise ∫ x0² + x1² + u² dt over T = 10, no terminal constraint.

Controls are piecewise constant on the N intervals; one classical RK4 step per interval advances
the state and, as an extra state, the running cost (diffsim.ode.schemes), so the discrete problem
is: minimise Σ_k c_k(x_k, u_k) subject to x_{k+1} = F(x_k, u_k), the bounds on u and the terminal
constraint. diffsim poses it on scaled time (ẋ = T f over s ∈ [0, 1], step 1/N), the same step up
to rounding.

Solvers, all on this one NLP:

- diffsim ``single_shooting`` (the controls are the decisions; SLSQP with the terminal
  constraints, L-BFGS-B without) with ``gradient="bptt"``, ``"checkpointed"`` and ``"adjoint"``
  (the continuous costate equation: its gradient is O(h⁴) off the discrete one, so it stops near,
  not at, the discrete optimum), and ``multiple_shooting`` (SLSQP, 20 segments of 5 intervals,
  exact Jacobians from the compiled step Jacobians), all with their default options;
- CasADi + IPOPT, direct multiple shooting as in CasADi's ``direct_multiple_shooting.py``: the
  dynamics and running cost as an SX ``casadi.Function``, one RK4 step on it (state and cost
  quadrature) as a second Function, decision vector (X_0, U_0, X_1, ..., X_N) with X_0 and, for
  the cart-pole, X_N fixed by bounds, defects X_{k+1} − F(X_k, U_k) = 0, exact Hessian of the
  Lagrangian, ``nlpsol("ipopt")`` with print_level 0 and tol 1e-10. Two builds of the same NLP:
  MX symbols calling the step Function (the example's way) and the NLP expanded to SX
  (``expand=True``), which evaluates faster and is the reference for every ratio. The initial
  guess is diffsim's: u = the mid-point of the bounds, states = the rollout under it.

Checks printed before the tables: IPOPT's objective equals diffsim's rollout cost of IPOPT's
controls, and IPOPT's states equal diffsim's rollout (so the two NLPs are the same).

Reported for each solver: cost, its relative difference to IPOPT's, the final-state constraint
violation max |x_N − x_target| of the controls re-integrated from x0 by diffsim's rollout (so
every solver is judged by the same integrator), max |u − u_IPOPT|, iterations, derivative
evaluations, the first call's time and the warm time. Targets: the same optimum as IPOPT to 1e-4
relative; wall time no worse than CasADi + IPOPT's.

Timing. Construction is excluded and printed apart: CasADi's NLP (Functions + ``nlpsol``) and
diffsim's problem (tracing + code generation + import of the generated module). The first call of
each solver in this process is reported apart: for diffsim it loads its Numba loops from the disk
cache, or compiles them when the cache is empty (``--empty-cache`` forces that), and the number
of Numba compilations says which. The main number is WARM: the best of 3 further calls (``--quick``:
1), the solvers taking turns so a busy spell of a shared machine hits all of them; a solver stops
repeating once it has spent ``--budget`` seconds. Wall time is measured around the call,
garbage collector on, as a user sees it.

Where diffsim's time goes: one more call of each diffsim solver with timers around the compiled
Numba kernels it calls, ``ODEProblem.gradient``, scipy.optimize.minimize, the callbacks handed to
it and the optimizer's compiled core (SLSQP / L-BFGS-B). And the cost of one value-and-gradient
sweep, through the public API and of the bare kernel.

Run ``python benchmarks/control.py`` (about a minute on 2 cores when they are free; the
cart-pole's single shooting dominates) or ``--quick`` (BPTT single shooting and multiple shooting only, one warm call).
Nothing is asserted. Needs casadi (``pip install casadi``, IPOPT included); without it the
diffsim rows are still measured. numpy's BLAS runs on one thread (IPOPT's MUMPS is sequential).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

# One thread for numpy's BLAS (SLSQP and the dense Jacobians), as in engine.py.
THREADS = int(os.environ.setdefault("OMP_NUM_THREADS", "1").split(",")[0])
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
from _table import fmt_time, load_average, print_header, print_table  # noqa: E402

import diffsim as ds  # noqa: E402
from diffsim.codegen import cache_dir  # noqa: E402
from trajectories.shooting import multiple_shooting, single_shooting  # noqa: E402
from trajectories.systems import cart_pole_swingup, van_der_pol  # noqa: E402

N_INTERVALS = 100
TARGET_REL = 1e-4
IPOPT_TOL = 1e-10
REFERENCE = "CasADi SX + IPOPT"


# ---------------------------------------------------------------- the problems, for CasADi


def cart_pole_casadi(ca, x, u, p):
    """trajectories.dynamics.cart_pole and the running cost F², in CasADi symbols."""
    mc, mp, length, g = p
    s, c = ca.sin(x[1]), ca.cos(x[1])
    d = mc + mp * s * s
    xdd = (u[0] + mp * s * (length * x[3] * x[3] + g * c)) / d
    thdd = (-u[0] * c - mp * length * x[3] * x[3] * c * s - (mc + mp) * g * s) / (length * d)
    return ca.vertcat(x[2], x[3], xdd, thdd), u[0] * u[0]


def van_der_pol_casadi(ca, x, u, p):
    """trajectories.dynamics.van_der_pol and the running cost x0² + x1² + u², in CasADi symbols."""
    return ca.vertcat(p[0] * (1.0 - x[1] * x[1]) * x[0] - x[1] + u[0], x[0]), x[0] * x[0] + x[1] * x[1] + u[0] * u[0]


@dataclass
class Case:
    name: str
    make: Callable            # N -> OptimalControlProblem
    casadi_model: Callable    # (ca, x, u, p) -> (ẋ, L)
    target: np.ndarray | None  # x(T) fixed by a terminal equality, or None


CASES = [Case("cart-pole swing-up", cart_pole_swingup, cart_pole_casadi, np.array([1.0, np.pi, 0.0, 0.0])),
         Case("Van der Pol", van_der_pol, van_der_pol_casadi, None)]


# ---------------------------------------------------------------- CasADi + IPOPT


def build_casadi(ca, case: Case, ocp, expand: bool):
    """Direct multiple shooting on the grid of ``ocp``; returns a solve() -> result dict."""
    n, m, N, h = ocp.n_x, ocp.n_u, ocp.N, ocp.T / ocp.N
    x, u = ca.SX.sym("x", n), ca.SX.sym("u", m)
    xdot, L = case.casadi_model(ca, x, u, [float(v) for v in ocp.params])
    f = ca.Function("f", [x, u], [xdot, L])
    k1, q1 = f(x, u)
    k2, q2 = f(x + h / 2 * k1, u)
    k3, q3 = f(x + h / 2 * k2, u)
    k4, q4 = f(x + h * k3, u)
    F = ca.Function("F", [x, u], [x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), h / 6 * (q1 + 2 * q2 + 2 * q3 + q4)])
    U0 = ocp.u_guess()
    X0 = ocp.ode.rollout(ocp.x0, U0, ocp.q(ocp.T), T=1.0).x
    w, lbw, ubw, w0, g = [], [], [], [], []
    J = 0
    Xk = ca.MX.sym("X_0", n)
    w.append(Xk)
    lbw += list(ocp.x0)
    ubw += list(ocp.x0)
    w0 += list(X0[0])
    for k in range(N):
        Uk = ca.MX.sym(f"U_{k}", m)
        w.append(Uk)
        lbw += list(ocp.u_lower)
        ubw += list(ocp.u_upper)
        w0 += list(U0[k])
        Xend, Qk = F(Xk, Uk)
        J = J + Qk
        Xk = ca.MX.sym(f"X_{k + 1}", n)
        w.append(Xk)
        fixed = k == N - 1 and case.target is not None
        lbw += list(case.target) if fixed else [-np.inf] * n
        ubw += list(case.target) if fixed else [np.inf] * n
        w0 += list(X0[k + 1])
        g.append(Xend - Xk)
    nlp = {"x": ca.vertcat(*w), "f": J, "g": ca.vertcat(*g)}
    opts = {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes", "ipopt.tol": IPOPT_TOL,
            "ipopt.max_iter": 3000, "expand": expand}
    solver = ca.nlpsol("ipopt_" + "".join(ch if ch.isalnum() else "_" for ch in case.name), "ipopt", nlp, opts)
    args = dict(x0=w0, lbx=lbw, ubx=ubw, lbg=0.0, ubg=0.0)
    stride = n + m

    def solve():
        start = time.perf_counter()
        sol = solver(**args)
        wall = time.perf_counter() - start
        st = solver.stats()
        z = np.asarray(sol["x"]).ravel()
        U = np.array([z[n + k * stride:n + k * stride + m] for k in range(N)])
        X = np.array([z[k * stride:k * stride + n] for k in range(N + 1)])
        return {"wall": wall, "status": bool(st["success"]), "message": st["return_status"], "cost": float(sol["f"]),
                "U": U, "X": X, "iterations": int(st["iter_count"]),
                "evals": f"{st['n_call_nlp_grad_f']} ∇f, {st['n_call_nlp_jac_g']} ∂g, {st['n_call_nlp_hess_l']} ∇²L",
                "eval_time": sum(v for k, v in st.items() if k.startswith("t_wall_nlp"))}

    return solve


# ---------------------------------------------------------------- runs and their records


@dataclass
class Run:
    """One solver on one problem: its first call, warm calls and the last result."""

    name: str
    call: Callable                      # () -> result dict
    first: float = float("nan")
    first_note: str = ""
    warm: list = field(default_factory=list)
    result: dict | None = None

    @property
    def best(self) -> float:
        return min(self.warm) if self.warm else self.first


def diffsim_runner(ocp, solver: Callable) -> Callable:
    def call():
        start = time.perf_counter()
        sol = solver(ocp)
        wall = time.perf_counter() - start
        return {"wall": wall, "status": sol.status, "message": sol.message, "cost": sol.cost, "U": sol.u,
                "iterations": sol.iterations, "evals": f"{sol.gradient_evaluations} sweeps", "solution": sol}

    return call


def diffsim_solvers(quick: bool) -> dict[str, Callable]:
    solvers = {"single shooting, BPTT": lambda p: single_shooting(p, gradient="bptt")}
    if not quick:
        solvers["single shooting, checkpointed"] = lambda p: single_shooting(p, gradient="checkpointed")
        solvers["single shooting, adjoint"] = lambda p: single_shooting(p, gradient="adjoint")
    solvers["multiple shooting, 20 segments"] = lambda p: multiple_shooting(p)
    return solvers


@contextmanager
def numba_compilations():
    """Count the Numba compilations (not disk-cache loads) inside the block: box[0]."""
    from numba.core import event

    box = [0]
    with event.install_recorder("numba:compile") as rec:
        yield box
    box[0] = sum(1 for _, ev in rec.buffer if ev.is_start)


def measure(runs: list[Run], repeats: int, budget: float) -> None:
    """First call of each run, then ``repeats`` warm calls in turns; a run stops repeating once
    its warm calls have used ``budget`` seconds."""
    for run in runs:
        if run.first != run.first:  # NaN: not called yet
            res = run.call()
            run.first, run.result = res["wall"], res
    for _ in range(repeats):
        for run in runs:
            if sum(run.warm) < budget:
                res = run.call()
                run.warm.append(res["wall"])
                run.result = res


# ---------------------------------------------------------------- one problem


def rollout_of(ocp, U):
    return ocp.ode.rollout(ocp.x0, np.asarray(U, dtype=float).reshape(ocp.N, ocp.n_u), ocp.q(ocp.T), T=1.0)


def bench_case(case: Case, ca, args) -> dict:
    N = args.N
    print(f"\n## {case.name}, N = {N}\n")
    with numba_compilations() as compiled:
        start = time.perf_counter()
        ocp = case.make(N=N)
        ocp.ode  # noqa: B018  (trace + codegen + import: built on first access)
        t_build = time.perf_counter() - start
    build_note = [f"diffsim problem (trace + codegen + import) {fmt_time(t_build)}"
                  + (f", {compiled[0]} Numba compilations" if compiled[0] else "")]

    runs = []
    for name, solver in diffsim_solvers(args.quick).items():
        runs.append(Run(name, diffsim_runner(ocp, solver)))
    for run in runs:  # first calls, counting compilations: cold (compiles) or warm disk cache (loads)
        with numba_compilations() as compiled:
            res = run.call()
        run.first, run.result = res["wall"], res
        run.first_note = f"{compiled[0]} compiles" if compiled[0] else "cache"
    ipopt_runs = []
    if ca is not None:
        for label, expand in (("CasADi MX + IPOPT", False), (REFERENCE, True)):
            start = time.perf_counter()
            solve = build_casadi(ca, case, ocp, expand)
            build_note.append(f"{label} NLP (Functions + nlpsol) {fmt_time(time.perf_counter() - start)}")
            ipopt_runs.append(Run(label, solve))
    all_runs = ipopt_runs + runs
    measure(all_runs, args.repeats, args.budget)
    print("construction, excluded from the times below: " + "; ".join(build_note))

    ref = ipopt_runs[-1].result if ipopt_runs else None
    if ref is not None:
        roll = rollout_of(ocp, ref["U"])
        print(f"same NLP check: IPOPT's objective {ref['cost']:.15g}, diffsim's rollout cost of IPOPT's controls "
              f"{roll.J:.15g} (relative difference {abs(roll.J - ref['cost']) / abs(ref['cost']):.1e}); "
              f"max |x_IPOPT − x_diffsim rollout| = {np.max(np.abs(roll.x - ref['X'])):.1e}")
        mx = ipopt_runs[0].result
        print(f"IPOPT: {ref['message']}; objective/derivative evaluations took {fmt_time(ref['eval_time'])} of "
              f"{fmt_time(ref['wall'])} (SX), {fmt_time(mx['eval_time'])} of {fmt_time(mx['wall'])} (MX)")
    else:
        print("skipped: casadi not installed (pip install casadi): no IPOPT reference, ratios and targets")

    rows, verdicts = [], []
    for run in all_runs:
        r = run.result
        roll = rollout_of(ocp, r["U"])
        viol = "-" if case.target is None else f"{np.max(np.abs(roll.x[-1] - case.target)):.1e}"
        rel = "-" if ref is None else f"{(r['cost'] - ref['cost']) / abs(ref['cost']):+.1e}"
        du = "-" if ref is None else f"{np.max(np.abs(r['U'] - ref['U'])):.1e}"
        ratio = "-" if ref is None else f"{run.best / ipopt_runs[-1].best:.2f}x"
        status = "ok" if r["status"] else "FAILED"
        first = fmt_time(run.first) + (f" ({run.first_note})" if run.first_note else "")
        rows.append([run.name, status, f"{r['cost']:.10f}", rel, viol, du, r["iterations"], r["evals"],
                     fmt_time(run.best / max(r["iterations"], 1)), first,
                     f"{fmt_time(run.best)} (of {len(run.warm)})", ratio])
        if ref is not None and run not in ipopt_runs:
            rel_v = abs(r["cost"] - ref["cost"]) / abs(ref["cost"])
            verdicts.append((run.name, rel_v, run.best / ipopt_runs[-1].best, r))
    print_table(f"{case.name}: N = {N}, RK4, warm wall time best of up to {args.repeats}; ratios to {REFERENCE}",
                ["solver", "status", "cost", "rel. Δcost vs IPOPT", "final-state viol.", "max|Δu| vs IPOPT",
                 "iterations", "derivative evaluations", "warm / iteration", "first call", "warm (calls)",
                 "vs IPOPT"], rows)
    print("derivative evaluations: diffsim single shooting: value + gradient sweeps of the rollout, one per function "
          "(the cost, each terminal constraint) at each point the optimizer asks about; multiple shooting: sweeps of "
          "all segments with their step Jacobians; IPOPT: calls of the cost gradient, the constraint Jacobian and the "
          "Lagrangian's Hessian. first call: (cache) = Numba loops loaded from the disk cache, (k compiles) = compiled "
          "in this call (cold). final-state viol.: max |x_N − target| of the solver's controls integrated from x0 by "
          "diffsim's rollout.")
    for run in all_runs:
        if not run.result["status"]:
            print(f"note: {run.name} failed: {run.result['message']}")
    for name, rel_v, ratio, _ in verdicts:
        print(f"target [{name}]: same optimum to {TARGET_REL:g} relative: {rel_v:.1e}, "
              f"{'met' if rel_v <= TARGET_REL else 'NOT met'}; wall time no worse than CasADi + IPOPT: "
              f"{ratio:.2f}x, {'met' if ratio <= 1.0 else 'NOT met'}")
    return {"ocp": ocp, "runs": runs, "ref": ipopt_runs[-1] if ipopt_runs else None}


# ---------------------------------------------------------------- where diffsim's time goes

KERNELS = ("bptt", "checkpointed", "adjoint", "rollout", "step_forward", "step_jacobian", "phi_forward",
           "phi_vjp_into")


class Timers:
    """Accumulated seconds and calls per label; labels "kernel:<name>" are the compiled kernels."""

    def __init__(self):
        self.t, self.n = {}, {}

    def wrap(self, label, fn):
        t, n = self.t, self.n
        t.setdefault(label, 0.0)
        n.setdefault(label, 0)

        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                t[label] += time.perf_counter() - start
                n[label] += 1

        return timed

    def kernels(self) -> float:
        return sum(v for k, v in self.t.items() if k.startswith("kernel:"))

    def t_kernels_per_call(self) -> str:
        """The kernels called, as "calls × mean time" each."""
        return ", ".join(f"{k[7:]} {self.n[k]} × {fmt_time(self.t[k] / self.n[k])}" for k in self.t
                         if k.startswith("kernel:") and self.n[k])


@contextmanager
def instrumented(ocp, timers: Timers):
    """Timers around the compiled kernels of ``ocp``'s module, ODEProblem.gradient, scipy's minimize,
    the callbacks given to it and the SLSQP / L-BFGS-B compiled cores; everything restored after."""
    import scipy.optimize as so
    import scipy.optimize._lbfgsb_py as lb
    import scipy.optimize._slsqp_py as sq

    mod, ode = ocp.ode.module, ocp.ode
    saved_mod = {k: getattr(mod, k) for k in KERNELS if hasattr(mod, k)}
    saved = (so.minimize, sq.slsqp, lb._lbfgsb)
    for k, fn in saved_mod.items():
        setattr(mod, k, timers.wrap("kernel:" + k, fn))
    ode.gradient = timers.wrap("ODEProblem.gradient", type(ode).gradient.__get__(ode))
    sq.slsqp = timers.wrap("optimizer core", saved[1])

    class Lbfgsb:  # stands in for the extension module, with setulb timed
        setulb = staticmethod(timers.wrap("optimizer core", saved[2].setulb))

        def __getattr__(self, name):
            return getattr(saved[2], name)

    lb._lbfgsb = Lbfgsb()

    def callback(fn):
        return timers.wrap("callbacks", fn) if callable(fn) else fn

    def minimize(fun, x0, *a, constraints=(), **k):
        if isinstance(constraints, (list, tuple)) and all(isinstance(c, dict) for c in constraints):
            constraints = [{key: callback(v) if key in ("fun", "jac") else v for key, v in c.items()}
                           for c in constraints]
        before = timers.kernels()
        start = time.perf_counter()
        try:
            return saved[0](callback(fun), x0, *a, constraints=constraints, **k)
        finally:
            timers.t["minimize"] = timers.t.get("minimize", 0.0) + time.perf_counter() - start
            timers.t["kernels in minimize"] = timers.t.get("kernels in minimize", 0.0) + timers.kernels() - before

    so.minimize = minimize
    try:
        yield
    finally:
        so.minimize, sq.slsqp, lb._lbfgsb = saved
        for k, fn in saved_mod.items():
            setattr(mod, k, fn)
        del ode.gradient


def timer_overhead(calls: int = 20000) -> float:
    """Seconds one Timers wrapper adds to a call."""
    g = Timers().wrap("x", lambda: None)
    f = lambda: None
    start = time.perf_counter()
    for _ in range(calls):
        f()
    bare = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(calls):
        g()
    return max(0.0, (time.perf_counter() - start - bare) / calls)


def bench_profile(cases: list[dict], args) -> None:
    over = timer_overhead()
    rows, calls = [], []
    for c in cases:
        ocp = c["ocp"]
        for run in c["runs"]:
            solver = diffsim_solvers(args.quick)[run.name]
            tm = Timers()
            with instrumented(ocp, tm):
                start = time.perf_counter()
                solver(ocp)
                total = time.perf_counter() - start
            get = lambda k: tm.t.get(k, 0.0)
            kern = get("kernels in minimize")
            grad_kernels = sum(get("kernel:" + k) for k in ("bptt", "checkpointed", "adjoint"))
            api_over = get("ODEProblem.gradient") - grad_kernels
            diffsim_py = get("callbacks") - kern
            core = get("optimizer core")
            scipy_py = get("minimize") - get("callbacks") - core
            outside = total - get("minimize")
            pct = lambda t: f"{fmt_time(t)} ({100 * t / total:.0f}%)"
            calls.append(f"{c['name']}: {run.name}: {tm.t_kernels_per_call()}")
            rows.append([f"{c['name']}: {run.name}", fmt_time(total), pct(kern), pct(diffsim_py),
                         "-" if not tm.n.get("ODEProblem.gradient") else pct(api_over),
                         pct(core), pct(scipy_py), pct(outside), fmt_time(over * sum(tm.n.values())),
                         "-" if c["ref"] is None else f"{(core + scipy_py) / c['ref'].best:.2f}x"])
    print_table("Where diffsim's time goes: one instrumented call of each solver (shares of its total)",
                ["problem: solver", "total", "Numba kernels", "diffsim Python",
                 "of which ODEProblem.gradient overhead", "optimizer core", "scipy Python", "outside minimize",
                 "timer overhead", "optimizer alone vs IPOPT"], rows)
    print("The five columns from 'Numba kernels' to 'outside minimize' (the 'of which' column excepted) add up to "
          "the total. Numba kernels: the compiled rollouts and reverse sweeps (single shooting) or step_forward + "
          "step_jacobian per interval (multiple shooting) called by the optimizer's callbacks. diffsim Python: the "
          "rest of the callbacks (ODEProblem.gradient's input checks and result objects, the shooting closures and "
          "caches, multiple shooting's Python loop over intervals and dense Jacobian assembly). optimizer core: "
          "scipy's compiled SLSQP / L-BFGS-B. scipy Python: minimize's own Python (wrappers, constraint loops). "
          "outside minimize: checks, setup, the final rollout and gradient. timer overhead: the instrumentation's "
          f"estimated own cost ({over * 1e6:.2f} µs a timed call), included in the total and in each kernel's mean. "
          f"optimizer alone vs IPOPT: optimizer core + scipy Python against {REFERENCE}'s whole warm solve, i.e. "
          "the ratio diffsim would reach, with the same iterations, if its gradients cost nothing.")
    print("kernel calls × mean time:")
    for line in calls:
        print(f"  {line}")


def bench_sweep(cases: list[dict], timing_rounds: int) -> None:
    """One value-and-gradient sweep: public API against the bare compiled kernel."""
    import timeit

    rows = []
    for c in cases:
        ocp = c["ocp"]
        ode, mod = ocp.ode, ocp.ode.module
        U = ocp.u_guess() + 0.1
        q, h = ocp.q(ocp.T), 1.0 / ocp.N
        Uc = np.ascontiguousarray(U)
        snaps = max(1, int(np.sqrt(ocp.N)))
        pairs = [("rollout", lambda: ode.rollout(ocp.x0, U, q, T=1.0), lambda: mod.rollout(ocp.x0, Uc, q, 0.0, h)),
                 ("bptt", lambda: ode.gradient(ocp.x0, U, q, T=1.0, method="bptt"),
                  lambda: mod.bptt(ocp.x0, Uc, q, 0.0, h)),
                 ("checkpointed", lambda: ode.gradient(ocp.x0, U, q, T=1.0, method="checkpointed"),
                  lambda: mod.checkpointed(ocp.x0, Uc, q, 0.0, h, snaps)),
                 ("adjoint", lambda: ode.gradient(ocp.x0, U, q, T=1.0, method="adjoint"),
                  lambda: mod.adjoint(ocp.x0, Uc, q, 0.0, h, 1, False)),
                 ("step_forward + step_jacobian × N", None,
                  lambda: [(mod.step_forward(ocp.x0, Uc[k], q, k * h, h), mod.step_jacobian(ocp.x0, Uc[k], q, k * h, h))
                           for k in range(ocp.N)])]
        for name, api, bare in pairs:
            t_bare = min(timeit.repeat(bare, number=200, repeat=timing_rounds)) / 200
            t_api = None if api is None else min(timeit.repeat(api, number=200, repeat=timing_rounds)) / 200
            rows.append([f"{c['name']}: {name}", "-" if t_api is None else fmt_time(t_api), fmt_time(t_bare),
                         "-" if t_api is None else f"{fmt_time(t_api - t_bare)} ({(t_api - t_bare) / t_api:.0%})"])
    print_table(f"One sweep at N = {cases[0]['ocp'].N}: public API against the bare compiled kernel "
                f"(best of {timing_rounds} × 200 calls)",
                ["problem: sweep", "ODEProblem API", "bare Numba kernel", "API overhead"], rows)


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="BPTT single shooting and multiple shooting only, one warm call, no sweep table")
    parser.add_argument("--N", type=int, default=N_INTERVALS, help="control intervals (default 100)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of warm calls after which a solver stops repeating (default 60, --quick 20)")
    parser.add_argument("--empty-cache", action="store_true",
                        help="use a fresh DIFFSIM_CACHE_DIR, so first calls compile every Numba loop (cold)")
    args = parser.parse_args(argv)
    args.repeats = 1 if args.quick else 3
    args.budget = args.budget if args.budget is not None else (20.0 if args.quick else 60.0)
    tmp_cache = None
    if args.empty_cache:
        tmp_cache = tempfile.mkdtemp(prefix="diffsim-cache-")
        os.environ["DIFFSIM_CACHE_DIR"] = tmp_cache
    start = time.perf_counter()
    try:
        import casadi as ca
    except ImportError:
        ca = None
    print_header("diffsim optimal control benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "scipy", "casadi"], source=ds)
    print(f"at start: {load_average()}")
    if ca is None:
        print("skipped: casadi not installed (pip install casadi)")
    else:
        print(f"CasADi + IPOPT: nlpsol('ipopt') bundled with casadi {ca.__version__}, default linear solver (MUMPS), "
              f"exact Hessian, tol {IPOPT_TOL:g}, print_level 0")
    print(f"diffsim cache: {'EMPTY (fresh directory: first calls compile)' if tmp_cache else 'the default'} "
          f"{cache_dir()}; numpy BLAS threads: {THREADS}")
    print(f"timing: wall time of the solver call; first call apart; warm = best of up to {args.repeats} later calls "
          f"(solvers taking turns, at most {args.budget:g} s of warm calls each); construction excluded")
    try:
        cases = []
        for case in CASES:
            out = bench_case(case, ca, args)
            out["name"] = case.name
            cases.append(out)
        bench_profile(cases, args)
        if not args.quick:
            bench_sweep(cases, timing_rounds=5)
    finally:
        if tmp_cache:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    print(f"\nat end: {load_average()} (this benchmark counts for about 1)")
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
