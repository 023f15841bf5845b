"""Rollout-gradient benchmark: diffsim.ode's compiled BPTT, checkpointing and adjoint against peers.

The problem (float64 everywhere): the cart-pole of ``trajectories.dynamics.cart_pole``, p = (1.0,
0.1, 0.5, 9.81), x0 = (0.1, 0.4, -0.2, 0.3), N steps of classical RK4 with a fixed dt = 0.01
(T = 0.01 N), controls held constant over each step, U = 0.5 * standard normal (N, 1) with seed 0,
running cost L = 0.1 |x|² + u² integrated by the same RK4 step (as an extra state), terminal cost
Φ = 5 |x_N|². Wanted: the cost J and dJ/dU (N, 1).

0. Compile time: a fresh subprocess with an empty ``DIFFSIM_CACHE_DIR`` (COLD: trace + codegen +
   Numba compile of every loop) and a second one with the same cache (WARM: trace + codegen + load
   from Numba's disk cache); the main process reports whether it found its own cache warm.
1. Value + gradient for N = 10^3, 10^4, 10^5 (10^3 and 10^4 with ``--quick``). diffsim
   (``ODEProblem(..., scheme="rk4")``): ``rollout`` (forward only, no gradient), ``gradient`` with
   method ``bptt`` (the reference), ``checkpointed`` (default √N snapshots; recomputed steps
   reported), ``adjoint`` (the continuous costate equation: it differs from the discrete gradient
   by O(h^4), so its difference is a discretisation error, not a bug), and at N = 10^3 only
   ``forward`` sensitivities with respect to x0 and p (8 tangent rollouts; compared with BPTT's
   dx0 and dp, since dU would need N tangent rollouts). Peers, each checked against diffsim's BPTT
   (J and the gradient, max relative difference):
   - JAX: ``jax.jit(jax.value_and_grad(loss))``, the loss a ``lax.scan`` over one RK4 step; trace +
     compile time (per N: the shapes change) is excluded and printed.
   - CasADi: one RK4 step as an SX ``casadi.Function`` (state augmented with the running cost),
     ``Function.mapaccum(N)`` for the rollout, the terminal cost and ``casadi.gradient`` (reverse
     mode through the mapaccum node: a map of ``Function.reverse`` of the step) in an MX
     ``casadi.Function``; evaluated by calling it with numpy arrays, i.e. in CasADi's virtual
     machines (MX VM around the SX VM; no code generation). Graph construction time is excluded
     and printed.
   - torchdiffeq: ``odeint(f, y0, t, method="rk4", options={"perturb": True})`` on the grid t_k =
     0.01 k, f looking up u_k by bisection on the grid (``perturb`` keeps each step's last stage
     inside the step), then ``torch.autograd.grad``. Its "rk4" is Kutta's 3/8 rule, not the
     classical RK4, so it agrees with the others only to the discretisation error (~1e-8).
   - torch eager: the same classical RK4 loop written by hand on 0-d tensors, backpropagated.
   - HIPS autograd: the same hand-written loop on numpy scalars, ``autograd.value_and_grad``.
   The eager peers (torch eager, torchdiffeq, autograd) run at an N only when their predicted
   time (per-step time measured at the previous N, or by a probe at N = 100) is under
   ``--eager-limit`` seconds, except that in a full run every peer runs once at the smallest N.
   Targets: diffsim's BPTT gradient <= 3x its own forward rollout; at N = 10^4 at least 20x faster
   than CasADi's VM and 50x faster than JAX.
1b. Where diffsim's time goes, at the largest N: the step kernel's per-call cost inside a bare
   njit loop (forward and VJP) against the compiled rollout and BPTT loops and the public API,
   and checkpointing's schedule cost.
2. Peak memory and time at N = 10^6 (10^5 with ``--quick``) of forward rollout, BPTT and
   checkpointed BPTT (100 and √N snapshots), each in a fresh subprocess. The child imports,
   builds the problem, runs the same method once at N = 10^3 (so every Numba function is loaded
   or compiled), allocates its inputs and collects garbage; then it reads its resident set size
   (VmRSS), resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``), calls the
   method once and reads the peak (VmHWM). Peak minus baseline is what the call added at its
   worst moment, including the arrays it returns. Resident memory is used because Numba's NRT
   allocates with malloc, invisible to ``tracemalloc``. (Where clear_refs cannot be written the
   child falls back to ``ru_maxrss`` minus the baseline VmRSS, a lower bound, and says so.)
   Targets: checkpointed at N = 10^6 under 50 MB and at most 3x the BPTT time.

Timing: runners faster than 0.5 s a call are measured best of interleaved rounds, garbage
collector off (``harness.best_of``); slower ones best of a few calls. All times in tables 1, 1b
and 2 are WARM (compiled code loaded, first call excluded); cold compile times are in table 0
only. Compare ratios rather than absolute times across runs on a shared machine.

Run ``python benchmarks/rollout_gradient.py`` (a few minutes on 2 cores) or with ``--quick``.
Peers are optional (``pip install -e '.[bench]'``; torchdiffeq with ``pip install torchdiffeq
--no-deps``); a missing one is reported as skipped. Nothing is asserted. Every engine runs on one
thread, as in ``engine.py``.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import thread_setting  # first: thread pools are sized when numpy loads

THREADS = thread_setting.THREADS

import numpy as np  # noqa: E402
from harness import (  # noqa: E402
    SKIP_HINT,
    best_of,
    best_of_few,
    cold_and_warm,
    fmt_time,
    peak_memory,
    print_header,
    print_table,
    run_fresh,
    timed,
)
from harness import load_peers as load_peers_of  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.numpy as dnp  # noqa: E402
from diffsim.ode import ODEProblem  # noqa: E402
from trajectories.dynamics import cart_pole  # noqa: E402

P = np.array([1.0, 0.1, 0.5, 9.81])
X0 = np.array([0.1, 0.4, -0.2, 0.3])
DT = 0.01
Q, R, QF = 0.1, 1.0, 5.0  # L = Q |x|² + R u², Φ = QF |x|²
SLOW = 0.5  # seconds: runners slower than this are timed best of a few calls, not interleaved
TARGET_BPTT_VS_ROLLOUT = 3.0
TARGET_VS_CASADI, TARGET_VS_JAX, TARGET_AT = 20.0, 50.0, 10**4
TARGET_CKPT_MB, TARGET_CKPT_VS_BPTT = 50.0, 3.0


# ---------------------------------------------------------------- the problem


def running_cost(x, u, p):
    return Q * dnp.sum(x * x) + R * u[0] ** 2


def terminal_cost(x, p):
    return QF * dnp.sum(x * x)


def make_problem() -> ODEProblem:
    return ODEProblem(cart_pole, 4, 1, 4, running_cost=running_cost, terminal_cost=terminal_cost,
                      scheme="rk4", name="cart_pole")


def controls(N: int) -> np.ndarray:
    return 0.5 * np.random.default_rng(0).standard_normal((N, 1))


# The same dynamics, step and cost written once for the peers, on tuples of scalars (numpy
# floats, 0-d tensors, traced JAX scalars or CasADi SX), with ``sin`` and ``cos`` passed in.
# The formula is term for term trajectories.dynamics.cart_pole.


def rhs(x, u, p, sin, cos):
    """(ẋ0, ẋ1, ẋ2, ẋ3, L) of the cart-pole and the running cost."""
    mc, mp, l, g = p
    s, c = sin(x[1]), cos(x[1])
    d = mc + mp * s * s
    xdd = (u + mp * s * (l * x[3] * x[3] + g * c)) / d
    thdd = (-u * c - mp * l * x[3] * x[3] * c * s - (mc + mp) * g * s) / (l * d)
    cost = Q * (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3]) + R * (u * u)
    return x[2], x[3], xdd, thdd, cost


def rk4_step(x, u, p, h, sin, cos):
    """One classical RK4 step of the state (4-tuple) and its cost increment."""
    k1 = rhs(x, u, p, sin, cos)
    k2 = rhs(tuple(a + 0.5 * h * b for a, b in zip(x, k1)), u, p, sin, cos)
    k3 = rhs(tuple(a + 0.5 * h * b for a, b in zip(x, k2)), u, p, sin, cos)
    k4 = rhs(tuple(a + h * b for a, b in zip(x, k3)), u, p, sin, cos)
    w = h / 6.0
    inc = tuple(w * (a + 2.0 * b + 2.0 * c + d) for a, b, c, d in zip(k1, k2, k3, k4))
    return tuple(a + b for a, b in zip(x, inc[:4])), inc[4]


def terminal(x):
    return QF * (x[0] * x[0] + x[1] * x[1] + x[2] * x[2] + x[3] * x[3])


def loss_loop(us, x, p, sin, cos):
    """J of the rollout as a Python loop over the controls ``us`` (the eager peers)."""
    J = 0.0
    for u in us:
        x, c = rk4_step(x, u, p, DT, sin, cos)
        J = J + c
    return J + terminal(x)


# ---------------------------------------------------------------- runners


@dataclass
class Entry:
    """One row of table 1: ``run()`` gives a result, ``value(result)`` its (J, gradient)."""

    name: str
    run: Callable[[], object]
    value: Callable[[object], tuple]
    ref: str = "dU"           # reference gradient: "dU", "x0,p" or "" (no gradient)
    note: str = ""
    eager: bool = False       # Python-loop peer: subject to --eager-limit
    first_counts: bool = False  # the first call is a fair measurement (nothing to compile)


def diffsim_entries(prob: ODEProblem, U: np.ndarray, N: int, forward: bool) -> list[Entry]:
    grad = lambda method, **kw: (lambda: prob.gradient(X0, U, P, dt=DT, method=method, **kw))
    as_dU = lambda g: (g.J, g.dU)
    entries = [
        Entry("diffsim rollout (forward only)", lambda: prob.rollout(X0, U, P, dt=DT), lambda r: (r.J, None), ref=""),
        Entry("diffsim bptt", grad("bptt"), as_dU),
        Entry("diffsim checkpointed (√N snapshots)", grad("checkpointed"), as_dU),
        Entry("diffsim adjoint (continuous, hermite)", grad("adjoint"), as_dU,
              note="differs from the discrete gradient by O(h^4)"),
    ]
    if forward:
        entries.append(Entry("diffsim forward sensitivities", grad("forward", wrt=("x0", "p")),
                             lambda g: (g.J, np.concatenate([g.dx0, g.dp])), ref="x0,p",
                             note="w.r.t. x0 and p only (8 tangent rollouts); compared on dx0, dp"))
    return entries


def jax_entry(mods, N: int, U: np.ndarray) -> Entry:
    jax, jnp = mods

    def loss(U, x0, p):
        pt = tuple(p[i] for i in range(4))

        def body(carry, u):
            x, J = carry
            xn, c = rk4_step(tuple(x[i] for i in range(4)), u[0], pt, DT, jnp.sin, jnp.cos)
            return (jnp.stack(xn), J + c), None

        (xN, J), _ = jax.lax.scan(body, (x0, jnp.zeros(())), U)
        return J + terminal(xN)

    vg = jax.jit(jax.value_and_grad(loss))
    args = jax.device_put((U, X0, P))
    return Entry("JAX jit + lax.scan, value_and_grad", lambda: jax.block_until_ready(vg(*args)),
                 lambda r: (float(r[0]), np.asarray(r[1])))


def casadi_entry(ca, N: int, U: np.ndarray) -> Entry:
    start = time.perf_counter()
    xz, u, p = ca.SX.sym("xz", 5), ca.SX.sym("u"), ca.SX.sym("p", 4)
    xn, c = rk4_step(tuple(xz[i] for i in range(4)), u, tuple(p[i] for i in range(4)), DT, ca.sin, ca.cos)
    step = ca.Function("rk4_step", [xz, u, p], [ca.vertcat(*xn, xz[4] + c)])
    x0, Us, ps = ca.MX.sym("x0", 4), ca.MX.sym("U", 1, N), ca.MX.sym("p", 4)
    XZ = step.mapaccum("rollout", N)(ca.vertcat(x0, 0), Us, ps)
    J = XZ[4, N - 1] + terminal([XZ[i, N - 1] for i in range(4)])
    vg = ca.Function("value_and_grad", [x0, Us, ps], [J, ca.gradient(J, Us)])
    build = time.perf_counter() - start
    Ut = np.ascontiguousarray(U.T)
    return Entry("CasADi SX step, mapaccum, VM", lambda: vg(X0, Ut, P),
                 lambda r: (float(r[0]), np.asarray(r[1]).reshape(N, 1)),
                 note=f"graph build {fmt_time(build)} excluded")


def torchdiffeq_entry(mods, N: int, U: np.ndarray) -> Entry:
    torch, odeint = mods
    tg = torch.arange(N + 1, dtype=torch.float64) * DT
    grid = tg.tolist()
    p = tuple(float(v) for v in P)
    y0 = torch.tensor(np.r_[X0, 0.0])

    def run():
        Ut = torch.tensor(U[:, 0], requires_grad=True)
        us = Ut.unbind()

        def f(t, y):  # the step k with t_k <= t < t_k+1 (perturb=True nudges stage times inside)
            k = bisect.bisect_right(grid, float(t)) - 1
            return torch.stack(rhs(y.unbind()[:4], us[k], p, torch.sin, torch.cos))

        yN = odeint(f, y0, tg, method="rk4", options={"perturb": True})[-1]
        J = yN[4] + terminal(yN[:4].unbind())
        (g,) = torch.autograd.grad(J, Ut)
        return J.item(), g.numpy()[:, None]

    return Entry("torchdiffeq odeint rk4 (3/8 rule)", run, lambda r: r, eager=True, first_counts=True,
                 note="Kutta's 3/8 rule: agrees to discretisation error only")


def torch_entry(torch, N: int, U: np.ndarray) -> Entry:
    p = tuple(float(v) for v in P)

    def run():
        Ut = torch.tensor(U, requires_grad=True)
        J = loss_loop(Ut[:, 0].unbind(), tuple(torch.tensor(v) for v in X0), p, torch.sin, torch.cos)
        (g,) = torch.autograd.grad(J, Ut)
        return J.item(), g.numpy()

    return Entry("torch eager, hand-written RK4 loop", run, lambda r: r, eager=True, first_counts=True)


def autograd_entry(mods, N: int, U: np.ndarray) -> Entry:
    autograd, anp = mods
    vg = autograd.value_and_grad(lambda U: loss_loop([U[k, 0] for k in range(N)], tuple(X0), tuple(P),
                                                     anp.sin, anp.cos))
    return Entry("HIPS autograd, hand-written RK4 loop", lambda: vg(U), lambda r: (float(r[0]), r[1]),
                 eager=True, first_counts=True)


def load_peers() -> dict:
    """name -> (entry factory, modules) for each installed peer; None when missing."""
    def jax_mods():
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        return jax, jnp

    def torch_mod():
        import torch

        if THREADS is not None:
            torch.set_num_threads(THREADS)
        return torch

    def torchdiffeq_mods():
        from torchdiffeq import odeint

        return torch_mod(), odeint

    def autograd_mods():
        import autograd
        import autograd.numpy as anp

        return autograd, anp

    def casadi_mod():
        import casadi

        return casadi

    loaders = {"jax": (jax_mods, jax_entry), "casadi": (casadi_mod, casadi_entry),
               "torchdiffeq": (torchdiffeq_mods, torchdiffeq_entry), "torch": (torch_mod, torch_entry),
               "autograd": (autograd_mods, autograd_entry)}
    return load_peers_of({name: (lambda lf=lf: (lf[1], lf[0]())) for name, lf in loaders.items()})


# ---------------------------------------------------------------- timing and comparison


def rel_diff(a, b) -> float:
    """max |a - b| / max |b| (b the reference)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------- 1. value + gradient


def bench_value_grad(prob, peers, Ns, args, timing) -> dict:
    """Table 1 for each N; returns {N: {row name: seconds}}."""
    eager_rate = eager_probe(peers) if any(peers[k] for k in ("torch", "torchdiffeq", "autograd")) else {}
    results = {}
    for N in Ns:
        U = controls(N)
        ref = prob.gradient(X0, U, P, dt=DT, method="bptt")
        refs = {"dU": ref.dU, "x0,p": np.concatenate([ref.dx0, ref.dp])}
        entries = diffsim_entries(prob, U, N, forward=(N == Ns[0]))
        skipped = []
        for peer in peers.values():
            if peer is None:
                continue
            factory, mods = peer
            entry = factory(mods, N, U)
            if entry.eager:
                predicted = eager_rate.get(entry.name, 0.0) * N
                if predicted > args.eager_limit and not (N == Ns[0] and not args.quick):
                    skipped.append(f"skipped at N = {N:.0e}: {entry.name} (predicted {predicted:.0f} s from its "
                                   f"time per step, over the --eager-limit of {args.eager_limit:g} s)")
                    continue
            entries.append(entry)
        rows, times, notes = measure_entries(entries, refs, ref.J, N, timing, eager_rate)
        ckpt = prob.gradient(X0, U, P, dt=DT, method="checkpointed")
        notes["diffsim checkpointed (√N snapshots)"] = "; ".join(filter(None, [
            f"{ckpt.snapshots} snapshots, {ckpt.recomputed_steps} recomputed steps "
            f"({ckpt.recomputed_steps / N:.2f} N)", notes["diffsim checkpointed (√N snapshots)"]]))
        for row in rows:
            row[-1] = notes[row[0]]
        print_table(f"1. Value + gradient, N = {N:.0e} RK4 steps of dt = {DT} (T = {N * DT:g}): J and dJ/dU",
                    ["engine", "time / call", "per step", "vs diffsim bptt", "rel. ΔJ", "rel. Δgrad", "notes"], rows)
        for line in skipped:
            print(line)
        results[N] = times
    return results


def eager_probe(peers) -> dict:
    """Seconds per step of each eager peer, from one call at N = 100."""
    rates = {}
    N = 100
    U = controls(N)
    for key in ("torchdiffeq", "torch", "autograd"):
        if peers[key] is None:
            continue
        factory, mods = peers[key]
        entry = factory(mods, N, U)
        t, _ = timed(entry.run)
        rates[entry.name] = t / N
    return rates


def measure_entries(entries, refs, J_ref, N, timing, eager_rate):
    """Call each entry once (its result is checked), then time it: fast ones interleaved, slow
    ones best of a few. A first call that may have compiled or loaded code is not counted."""
    first, probe, counts, values, notes = {}, {}, {}, {}, {}
    for e in entries:
        first[e.name], out = timed(e.run)
        values[e.name] = e.value(out)
        probe[e.name], counts[e.name] = first[e.name], e.first_counts
        if not e.first_counts and first[e.name] >= SLOW:  # compile or cache load: call again
            probe[e.name], _ = timed(e.run)
            counts[e.name] = True
        if e.eager:
            eager_rate[e.name] = first[e.name] / N
    fast = {e.name: e.run for e in entries if probe[e.name] < SLOW}
    times = best_of(fast, **timing["fast"]) if fast else {}
    for e in entries:
        extra = []
        if e.name not in fast:
            times[e.name], count = best_of_few(e.run, probe[e.name], counts[e.name], **timing["slow"])
            extra.append(f"best of {count}" if count > 1 else "one call")
        if e.name.startswith("JAX"):
            extra.append(f"first call (trace + compile + run) {fmt_time(first[e.name])} excluded")
        notes[e.name] = "; ".join([e.note] * bool(e.note) + extra)
    t_ref = times["diffsim bptt"]
    rows = []
    for e in entries:
        J, g = values[e.name]
        dJ = abs(J - J_ref) / abs(J_ref)
        dg = "-" if not e.ref else f"{rel_diff(g, refs[e.ref]):.1e}"
        rows.append([e.name, fmt_time(times[e.name]), fmt_time(times[e.name] / N), f"{times[e.name] / t_ref:.2f}x",
                     f"{dJ:.1e}", dg, ""])
    return rows, times, notes


def print_targets_1(results) -> None:
    print("\n### Targets, table 1\n")
    for N, times in results.items():
        r = times["diffsim bptt"] / times["diffsim rollout (forward only)"]
        print(f"target: N = {N:.0e}: diffsim bptt gradient <= {TARGET_BPTT_VS_ROLLOUT:g}x its own forward rollout: "
              f"{r:.3f}x, {'met' if r <= TARGET_BPTT_VS_ROLLOUT else 'NOT met'}")
    times = results.get(TARGET_AT)
    for peer, target in (("CasADi SX step, mapaccum, VM", TARGET_VS_CASADI),
                         ("JAX jit + lax.scan, value_and_grad", TARGET_VS_JAX)):
        label = peer.split()[0]
        if times is None:
            print(f"target: N = {TARGET_AT:.0e}: diffsim bptt >= {target:g}x faster than {label}: not evaluated "
                  "(N not run)")
        elif peer not in times:
            print(f"target: N = {TARGET_AT:.0e}: diffsim bptt >= {target:g}x faster than {label}: not evaluated "
                  f"({label} not installed)")
        else:
            r = times[peer] / times["diffsim bptt"]
            print(f"target: N = {TARGET_AT:.0e}: diffsim bptt >= {target:g}x faster than {label}: {r:.1f}x, "
                  f"{'met' if r >= target else 'NOT met'}")


# ---------------------------------------------------------------- 1b. where the time goes


def _harness():
    """Bare njit loops calling a step kernel (passed as a first-class dispatcher) once per stored
    state: independent calls, no dependency chain, no stores besides the kernel's own output."""
    from numba import njit

    @njit
    def forward_calls(step, xs, U, p, h, out):
        acc = 0.0
        for k in range(U.shape[0]):
            step(xs[k], U[k], p, k * h, h, out)
            acc += out[0]
        return acc

    @njit
    def vjp_calls(vjp, xs, U, p, h, ct, gx, gu, gp):
        acc = 0.0
        for k in range(U.shape[0]):
            vjp(xs[k], U[k], p, k * h, h, ct, gx, gu, gp)
            acc += gx[0] + gu[0]
        return acc

    return forward_calls, vjp_calls


def bench_profile(prob, N: int, timing: dict) -> None:
    U = controls(N)
    M, step = prob.module, prob.kernels["step_"]
    # the kernels the compiled loops call (the "_unchecked" bodies, without the shape checks, where they exist)
    fwd = getattr(M, "step_forward_into_unchecked", M.step_forward_into)
    vjp = getattr(M, "step_vjp_into_unchecked", M.step_vjp_into)
    xs = prob.rollout(X0, U, P, dt=DT).x
    out, ct = np.empty(5), np.r_[np.ones(4), 1.0]
    gx, gu, gp = np.empty(4), np.empty(1), np.empty(4)
    start = time.perf_counter()
    forward_calls, vjp_calls = _harness()
    forward_calls(fwd, xs, U[:10], P, DT, out)
    vjp_calls(vjp, xs, U[:10], P, DT, ct, gx, gu, gp)
    compile_s = time.perf_counter() - start
    s = max(1, int(np.sqrt(N)))
    runners = {
        f"a. {fwd.py_func.__name__}, bare njit loop": lambda: forward_calls(fwd, xs, U, P, DT, out),
        "b. compiled rollout loop (module.rollout)": lambda: M.rollout(X0, U, P, 0.0, DT),
        "c. ODEProblem.rollout (public API)": lambda: prob.rollout(X0, U, P, dt=DT),
        f"d. {vjp.py_func.__name__}, bare njit loop": lambda: vjp_calls(vjp, xs, U, P, DT, ct, gx, gu, gp),
        "e. compiled bptt loop (module.bptt)": lambda: M.bptt(X0, U, P, 0.0, DT),
        "f. ODEProblem.gradient bptt (public API)": lambda: prob.gradient(X0, U, P, dt=DT),
        "g. compiled checkpointed loop, √N snapshots": lambda: M.checkpointed(X0, U, P, 0.0, DT, s),
    }
    times = best_of(runners, **timing["fast"])
    ps = {k: v / N for k, v in times.items()}
    g = prob.gradient(X0, U, P, dt=DT, method="checkpointed", snapshots=s)
    key = {k[0]: k for k in ps}  # "a" -> "a. step_forward_into, bare njit loop", ...
    a, b, d, e = (ps[key[c]] for c in "abde")
    rows = [[k, fmt_time(v), fmt_time(ps[k]), f"{ps[k] / ps['b. compiled rollout loop (module.rollout)']:.2f}x"]
            for k, v in times.items()]
    ops = step.op_counts
    print_table(f"1b. Where diffsim's time goes, N = {N:.0e} (warm; harness compiled in {fmt_time(compile_s)})",
                ["piece", "time / call", "per step", "vs compiled rollout"], rows)
    print(f"step kernel size: forward {ops['forward_into']} scalar ops, vjp {ops['vjp_into']} "
          f"({ops['vjp_into'] / ops['forward_into']:.1f}x; the VJP recomputes the 4 RK4 stages, then reverses them)")
    print(f"rollout loop vs bare kernel calls: {b * 1e9:.0f} vs {a * 1e9:.0f} ns per step (the difference is the "
          "loop's own work: state store, finite check, the step-to-step dependency chain)")
    print(f"bptt reverse sweep = e - b = {(e - b) * 1e9:.0f} ns per step vs {d * 1e9:.0f} ns per bare vjp call; "
          f"model bptt ≈ rollout + vjp = {(b + d) / b:.2f}x rollout; measured {e / b:.2f}x (compiled), "
          f"{ps['f. ODEProblem.gradient bptt (public API)'] / ps['c. ODEProblem.rollout (public API)']:.2f}x (API)")
    model = e + g.recomputed_steps / N * a
    print(f"checkpointed ({s} snapshots, {g.recomputed_steps} recomputed steps = {g.recomputed_steps / N:.2f} N): "
          f"model bptt + recomputation = {model * 1e9:.0f} ns per step, measured "
          f"{ps['g. compiled checkpointed loop, √N snapshots'] * 1e9:.0f} ns")
    lam = M.bptt(X0, U, P, 0.0, DT)[3]
    api = best_of({"norm": lambda: np.linalg.norm(lam, axis=1), "t": lambda: 0.0 + DT * np.arange(N + 1),
                   "inputs": lambda: prob._inputs(X0, U, P, None, DT, 0.0)}, **timing["fast"])
    f = ps["f. ODEProblem.gradient bptt (public API)"]
    print(f"public API overhead of gradient(bptt) = f - e = {(f - e) * 1e9:.0f} ns per step, of which "
          f"np.linalg.norm(costates, axis=1) for grad_norm {api['norm'] / N * 1e9:.0f} ns, the t grid "
          f"{api['t'] / N * 1e9:.1f} ns, input checks {api['inputs'] / N * 1e9:.1f} ns")
    t_ll = best_of({"ll": lambda: M._left_length(N, s)}, **timing["fast"])["ll"]
    t_ll1 = best_of({"ll": lambda: M._left_length(N, 1)}, **timing["fast"])["ll"]
    print(f"schedule: one _left_length({N}, s) call takes {fmt_time(t_ll)} at s = {s} vs {fmt_time(t_ll1)} at s = 1 "
          "(from Python, dispatch included): it is O(s), called once per split of the schedule")


# ---------------------------------------------------------------- 2. memory (subprocesses)


def memory_child(method: str, N: int, snapshots: int, repeats: int, budget: float, save: str) -> None:
    """Runs in a fresh process: peak RSS over baseline and best time of one method at N."""
    import gc

    prob = make_problem()
    kw = {} if method in ("rollout", "bptt") else {"snapshots": snapshots}
    call = ((lambda U: prob.rollout(X0, U, P, dt=DT)) if method == "rollout"
            else (lambda U: prob.gradient(X0, U, P, dt=DT, method=method, **kw)))
    call(controls(1000))  # load (or compile) every Numba function this method uses
    U = controls(N)
    gc.collect()
    peak, how, (t, res) = peak_memory(lambda: timed(lambda: call(U)))
    arrays = list(vars(res).values()) + (list(vars(res.diagnostics).values()) if getattr(res, "diagnostics", None)
                                         else [])
    returned = sum(v.nbytes for v in arrays if isinstance(v, np.ndarray))
    J = res.J
    info = {"recomputed": getattr(res, "recomputed_steps", None), "snapshots": getattr(res, "snapshots", None)}
    if method != "rollout":
        np.save(save, res.dU)
    del res
    best, count = best_of_few(lambda: call(U), t, False, repeats, budget)  # the first call is not counted
    print(json.dumps(dict(peak=peak, returned=returned, time=best, count=count, J=J, how=how, **info)))


def run_child(args: list[str]) -> dict:
    return run_fresh([os.path.abspath(__file__)] + args)[0]


def bench_memory(N: int, quick: bool) -> None:
    s_sqrt = max(1, int(np.sqrt(N)))
    cases = [("rollout (forward only)", "rollout", 0), ("bptt", "bptt", 0),
             ("checkpointed, 100 snapshots", "checkpointed", 100),
             (f"checkpointed, √N = {s_sqrt} snapshots", "checkpointed", s_sqrt)]
    repeats, budget = (1, 5.0) if quick else (3, 12.0)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, method, s in cases:
            save = os.path.join(tmp, f"{method}_{s}.npy")
            res[label] = run_child(["--memory-child", method, str(N), str(s), str(repeats), str(budget), save])
            res[label]["dU"] = np.load(save) if method != "rollout" else None
    ref = res["bptt"]
    mb = lambda b: f"{b / 2**20:.1f} MB"
    rows = []
    for label, r in res.items():
        same = ("-" if r["dU"] is None else "yes" if r["J"] == ref["J"]
                else f"rel. ΔJ {abs(r['J'] / ref['J'] - 1):.1e}")
        rows.append([label, "-" if r["snapshots"] is None else r["snapshots"],
                     "-" if r["recomputed"] is None else f"{r['recomputed']} ({r['recomputed'] / N:.2f} N)",
                     mb(r["peak"]), mb(r["returned"]), fmt_time(r["time"]) + f" (best of {r['count']})",
                     f"{r['time'] / ref['time']:.2f}x", same,
                     "-" if r["dU"] is None else f"{rel_diff(r['dU'], ref['dU']):.1e}"])
    print_table(f"2. Peak memory and time at N = {N:.0e}, each in a fresh subprocess (warm)",
                ["method", "snapshots", "recomputed steps", "peak RSS over baseline", "arrays returned", "time",
                 "vs bptt", "J == bptt J", "rel. ΔdU vs bptt"], rows)
    print(f"memory: {ref['how']}; baseline = VmRSS after imports, problem build, the same method at N = 10^3 and "
          "allocating the inputs; the peak includes the returned arrays (states, costates, t grid, norms as each "
          f"method returns them). Must-have output: dU alone is {mb(8 * N)}.")
    label = f"checkpointed, √N = {s_sqrt} snapshots"
    for lab in ("checkpointed, 100 snapshots", label):
        r = res[lab]
        if quick:
            print(f"target: checkpointed at N = 10^6 under {TARGET_CKPT_MB:g} MB and <= {TARGET_CKPT_VS_BPTT:g}x bptt "
                  f"time: not evaluated (--quick runs N = {N:.0e}); here {lab}: {mb(r['peak'])}, "
                  f"{r['time'] / ref['time']:.2f}x")
            continue
        ok_mem = r["peak"] / 2**20 < TARGET_CKPT_MB
        ratio = r["time"] / ref["time"]
        print(f"target: {lab} at N = {N:.0e} under {TARGET_CKPT_MB:g} MB: {mb(r['peak'])}, "
              f"{'met' if ok_mem else 'NOT met'}; at most {TARGET_CKPT_VS_BPTT:g}x bptt time: {ratio:.2f}x, "
              f"{'met' if ratio <= TARGET_CKPT_VS_BPTT else 'NOT met'}")


# ---------------------------------------------------------------- 0. compile time (subprocesses)


def compile_child() -> None:
    """Runs in a fresh process: build the problem and call every method once, timing each."""
    from numba.core import event

    out = {}
    U = controls(1000)
    with event.install_recorder("numba:compile") as rec:
        t, prob = timed(make_problem)
        out["build"] = t
        out["rollout"], _ = timed(lambda: prob.rollout(X0, U, P, dt=DT))
        for method in ("bptt", "checkpointed", "adjoint", "forward"):
            kw = {"wrt": ("x0", "p")} if method == "forward" else {}
            out[method], _ = timed(lambda: prob.gradient(X0, U, P, dt=DT, method=method, **kw))
    out["compiles"] = sum(1 for _, ev in rec.buffer if ev.is_start)
    print(json.dumps(out))


def bench_compile() -> None:
    rows = []
    cold, (warm,) = cold_and_warm([os.path.abspath(__file__), "--compile-child"])
    for label, (d, wall) in (("COLD (empty cache)", cold), ("WARM (same cache, new process)", warm)):
        first = sum(d[k] for k in ("rollout", "bptt", "checkpointed", "adjoint", "forward"))
        rows.append([label, fmt_time(d["build"]), fmt_time(d["rollout"]), fmt_time(d["bptt"]),
                     fmt_time(d["checkpointed"]), fmt_time(d["adjoint"]), fmt_time(d["forward"]),
                     fmt_time(d["build"] + first), d["compiles"], fmt_time(wall)])
    print_table("0. Compile time, fresh subprocesses (first call of each method at N = 10^3)",
                ["cache", "build (trace + codegen)", "rollout", "bptt", "checkpointed", "adjoint", "forward",
                 "total", "Numba compiles", "process wall"], rows)
    print("first calls include compiling (COLD) or loading from Numba's on-disk cache (WARM) the loops they use; "
          "process wall includes interpreter start and imports")


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N up to 10^4, memory at 10^5, fewer rounds")
    parser.add_argument("--eager-limit", type=float, default=None,
                        help="skip an eager peer at an N where it is predicted to take longer (s; 20, --quick 5)")
    parser.add_argument("--memory-child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        m, N, s, rep, budget, save = args.memory_child
        return memory_child(m, int(N), int(s), int(rep), float(budget), save)
    if args.compile_child:
        return compile_child()
    if args.eager_limit is None:
        args.eager_limit = 5.0 if args.quick else 20.0

    start = time.perf_counter()
    print_header("diffsim rollout-gradient benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "jax", "jaxlib", "casadi", "torch", "torchdiffeq", "autograd"], source=ds)
    peers = load_peers()
    for name, peer in peers.items():
        if peer is None:
            hint = "pip install torchdiffeq --no-deps" if name == "torchdiffeq" else SKIP_HINT
            print(f"skipped: {name} not installed ({hint})")
    print(f"threads per engine: {THREADS or 'default environment'}; jax: CPU, x64; problem: cart-pole, RK4, dt = {DT}, "
          f"L = {Q}|x|² + {R}u², Φ = {QF}|x|², U = 0.5 N(0, 1) seeded")
    print("peers: JAX jit(value_and_grad(loss)) with lax.scan over one RK4 step; CasADi: one RK4 step as an SX "
          "Function, mapaccum(N), casadi.gradient of the MX cost (reverse mode), called with numpy arrays, i.e. "
          "evaluated in CasADi's MX and SX virtual machines (no code generation); torchdiffeq odeint method='rk4' "
          "(3/8 rule) on the step grid; torch eager and HIPS autograd: the classical RK4 loop written in Python")
    timing = ({"fast": dict(rounds=3, min_time=0.005, budget=0.3), "slow": dict(repeats=1, budget=5.0)}
              if args.quick else
              {"fast": dict(rounds=10, min_time=0.02, budget=2.0), "slow": dict(repeats=3, budget=12.0)})
    print(f"timing: calls under {SLOW} s: best of up to {timing['fast']['rounds']} interleaved measurements of >= "
          f"{timing['fast']['min_time']} s (at most {timing['fast']['budget']} s each) after a warm-up call, gc off; "
          f"slower calls: best of up to {timing['slow']['repeats']} within {timing['slow']['budget']} s")

    bench_compile()
    from numba.core import event

    with event.install_recorder("numba:compile") as rec:
        t_build, prob = timed(make_problem)
        t_first, _ = timed(lambda: [prob.gradient(X0, controls(10), P, dt=DT, method=m) for m in
                                    ("bptt", "checkpointed", "adjoint", "forward")]
                           + [prob.rollout(X0, controls(10), P, dt=DT)])
    compiles = sum(1 for _, ev in rec.buffer if ev.is_start)
    state = "WARM (loaded from the on-disk cache)" if compiles == 0 else f"COLD ({compiles} Numba compilations)"
    print(f"\nthis process: problem build {fmt_time(t_build)}, first calls {fmt_time(t_first)}: {state}; "
          "every time below is warm")

    Ns = (10**3, 10**4) if args.quick else (10**3, 10**4, 10**5)
    results = bench_value_grad(prob, peers, Ns, args, timing)
    print_targets_1(results)
    bench_profile(prob, Ns[-1], timing)
    bench_memory(10**5 if args.quick else 10**6, args.quick)
    print(f"\ntotal benchmark time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
