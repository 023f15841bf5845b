"""Eager reverse-mode engine benchmark: diffsim against plain numpy and its peers.

What is measured (float64 everywhere; value and gradient together unless said otherwise):

1. Per-primitive overhead. A chain of K scalar steps ``x = sin(x) * 1.0001 + 0.1`` (three
   recorded primitives a step: sin, multiply, add) differentiated with ``value_and_grad``,
   reported as time per recorded primitive, forward + backward, and split into recording the
   forward pass (``vjp`` without calling the pullback) and the rest (the backward pass).
   Peers: HIPS autograd, JAX without jit, torch eager; plain numpy without derivatives is the
   floor. Target: diffsim <= 4 µs per recorded primitive.
2. MLP loss. Batch 256, input 128, three tanh hidden layers of width 128, a scalar head,
   mean-squared loss; the gradient with respect to every weight and bias, passed as a list of
   (W, b) tuples. Baseline: numpy forward + a hand-written numpy backward, checked against
   diffsim to 1e-10 before timing. Peers: HIPS autograd, JAX jit (warm: trace and compile time
   is excluded and printed apart), JAX without jit, torch eager. Every gradient is compared
   with the baseline's, and page faults per call are counted. Table 2 is measured after
   warming glibc's allocator (:func:`warm_allocator`); table 2b times the baseline and diffsim
   before that, in whatever state the imports and table 1 left it, where a tape that holds more
   intermediates pays in page faults. Targets: diffsim within 1.5x of the hand-written
   backward, and faster than autograd.

Timing is timeit-style: warm-up call, calls per measurement calibrated, best of many
measurements, garbage collector off. The engines of a table are measured in interleaved rounds
so that a slow spell of a shared machine hits all of them alike; compare ratios rather than
absolute times across runs.

Run ``python benchmarks/engine.py`` (well under a minute with every peer on 2 cores) or
``python benchmarks/engine.py --quick`` for a smoke run. Peers are optional: install them with
``pip install -e '.[bench]'``; a missing one is reported as skipped. Nothing is asserted.
The default environment is measured: no thread setting is imposed (numpy's BLAS, torch and
XLA keep their own pools). To pin threads, set ``OMP_NUM_THREADS=N`` (OPENBLAS_NUM_THREADS and
MKL_NUM_THREADS follow unless set; with N = 1 XLA runs single-threaded Eigen too).

Table 1 also reports CPU time (``time.process_time``, best of interleaved rounds): on a shared
machine the wall time of a Python-bound loop includes the time other processes held the core,
while its CPU time is what the engine itself costs.
"""

from __future__ import annotations

import argparse
import time

import thread_setting  # first: thread pools are sized when numpy loads

THREADS = thread_setting.THREADS

import harness  # noqa: E402
import numpy as np  # noqa: E402
from harness import SKIP_HINT, best_of, fmt_time, page_faults_per_call, print_header, print_table  # noqa: E402

import diffsim as ds  # noqa: E402
import diffsim.numpy as dnp  # noqa: E402

STEP_PRIMS = 3  # sin, multiply, add: primitives recorded per chain step
BATCH, WIDTH, HIDDEN = 256, 128, 3
TARGET_PRIM_US = 4.0
TARGET_MLP_VS_NUMPY = 1.5
X0 = 0.3  # starting point of the scalar chain


# ---------------------------------------------------------------- peers (all optional)


def load_peers(threads: int) -> dict:
    """Import each peer that is installed; a missing one maps to None."""
    return harness.load_peers({name: (lambda loader=loader: loader(threads)) for name, loader in
                               (("autograd", _load_autograd), ("jax", _load_jax), ("torch", _load_torch))})


def _load_autograd(threads):
    import autograd
    import autograd.numpy as anp

    return autograd, anp


def _load_jax(threads):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


def _load_torch(threads):
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch


# ---------------------------------------------------------------- 1. per-primitive overhead


def chain(mod, k: int):
    """``x -> sin(x) * 1.0001 + 0.1``, ``k`` times, with ``mod``'s sin (numpy-like or torch)."""

    def f(x):
        for _ in range(k):
            x = mod.sin(x) * 1.0001 + 0.1
        return x

    return f


def chain_runners(peers: dict, k: int) -> dict:
    """name -> (value_and_grad runner returning (value, grad), forward-recording runner)."""
    f = chain(dnp, k)
    vg = ds.value_and_grad(f)
    runners = {"diffsim": (lambda: vg(X0), lambda: ds.vjp(f, X0))}
    if peers["autograd"]:
        autograd, anp = peers["autograd"]
        af = chain(anp, k)
        avg, avjp = autograd.value_and_grad(af), autograd.make_vjp(af)
        runners["HIPS autograd"] = (lambda: avg(X0), lambda: avjp(X0))
    if peers["jax"]:
        jax, jnp = peers["jax"]
        jf = chain(jnp, k)
        jvg = jax.value_and_grad(jf)
        runners["JAX (no jit)"] = (lambda: jax.block_until_ready(jvg(X0)),
                                   lambda: jax.block_until_ready(jax.vjp(jf, X0)[0]))
    if peers["torch"]:
        runners["torch eager"] = _torch_chain(peers["torch"], k)
    return runners


def _torch_chain(torch, k):
    f = chain(torch, k)

    def record():
        x = torch.tensor(X0, dtype=torch.float64, requires_grad=True)
        return x, f(x)

    def run():
        x, y = record()
        (g,) = torch.autograd.grad(y, x)
        return y.item(), g.item()

    return run, record


def bench_primitives(peers: dict, k: int, timing: dict) -> None:
    runners = chain_runners(peers, k)
    numpy_chain = chain(np, k)
    flat = {"numpy, no derivatives": lambda: numpy_chain(X0)}
    for name, (run, record) in runners.items():
        flat[name], flat[name + " (record)"] = run, record
    times = best_of(flat, **timing)
    cpu = best_of(flat, **timing, clock=time.process_time)
    nprim = STEP_PRIMS * k
    us = {name: t / nprim * 1e6 for name, t in times.items()}
    cpu_us = {name: t / nprim * 1e6 for name, t in cpu.items()}
    ref = float(runners["diffsim"][0]()[1])
    rows = [["numpy, no derivatives", fmt_time(times["numpy, no derivatives"]),
             f"{us['numpy, no derivatives']:.2f}", f"{cpu_us['numpy, no derivatives']:.2f}", "-", "-", "-", "-"]]
    for name, (run, _) in runners.items():
        rec = cpu_us[name + " (record)"]
        rows.append([name, fmt_time(times[name]), f"{us[name]:.2f}", f"{cpu_us[name]:.2f}", f"{rec:.2f}",
                     f"{cpu_us[name] - rec:.2f}", f"{cpu_us[name] / cpu_us['diffsim']:.2f}x",
                     f"{abs(float(run()[1]) - ref):.1e}"])
    print_table(f"1. Per-primitive overhead: scalar chain, {k} steps = {nprim} recorded primitives, "
                "value + grad", ["engine", "time / call", "wall µs / prim", "CPU µs / prim", "record CPU µs",
                                 "backward CPU µs", "CPU vs diffsim", "|Δgrad| vs diffsim"], rows)
    print("record = forward pass under the tape (vjp without the pullback); backward = the rest; "
          "CPU = time.process_time, wall = time.perf_counter")
    for label, val in (("wall", us["diffsim"]), ("CPU", cpu_us["diffsim"])):
        verdict = "met" if val <= TARGET_PRIM_US else "NOT met"
        print(f"target: diffsim <= {TARGET_PRIM_US:.0f} µs per recorded primitive (forward + backward), {label} "
              f"time: {val:.2f} µs, {verdict}")


# ---------------------------------------------------------------- 2. MLP value + grad


def mlp_data(seed: int = 0):
    """Inputs (BATCH, WIDTH), targets (BATCH, 1) and params [(W, b)] * HIDDEN + [(W_head, b_head)]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, WIDTH))
    y = rng.standard_normal((BATCH, 1))
    sizes = [WIDTH] * (HIDDEN + 1) + [1]
    params = [(rng.standard_normal((m, n)) / np.sqrt(m), 0.1 * rng.standard_normal(n))
              for m, n in zip(sizes[:-1], sizes[1:], strict=True)]
    return params, x, y


def mlp_loss(mod):
    """Mean-squared loss of a tanh MLP written with ``mod`` (a numpy-like module or torch)."""

    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = mod.tanh(h @ w + b)
        w, b = params[-1]
        r = h @ w + b - y
        return mod.mean(r * r)

    return loss


def numpy_value_and_grad(params, x, y):
    """The loss and its gradient, backward pass written by hand."""
    hs = [x]  # hs[i] is the input of layer i
    for w, b in params[:-1]:
        hs.append(np.tanh(hs[-1] @ w + b))
    w, b = params[-1]
    r = hs[-1] @ w + b - y
    value = np.mean(r * r)
    d = (2.0 / r.size) * r  # cotangent of the head's output
    grads = [None] * len(params)
    for i in reversed(range(len(params))):
        if i < len(params) - 1:  # through h = tanh(z): dz = dh * (1 - h²)
            d = d * (1.0 - hs[i + 1] * hs[i + 1])
        grads[i] = (hs[i].T @ d, d.sum(axis=0))
        if i > 0:
            d = d @ params[i][0].T
    return value, grads


def max_diff(grads, ref) -> float:
    """Largest absolute difference between two gradients given as lists of (dW, db)."""
    return max(float(np.max(np.abs(_to_numpy(a) - b)))
               for ga, gr in zip(grads, ref, strict=True) for a, b in zip(ga, gr, strict=True))


def _to_numpy(a):
    return np.asarray(a.detach() if hasattr(a, "detach") else a)


def mlp_runners(peers: dict, params, x, y) -> tuple[dict, list]:
    """name -> runner returning (value, grads as (dW, db) pairs, or None); and notes to print."""
    numpy_loss = mlp_loss(np)
    vg = ds.value_and_grad(mlp_loss(dnp))
    runners = {"numpy forward only (no grad)": lambda: (numpy_loss(params, x, y), None),
               "numpy + hand-written backward": lambda: numpy_value_and_grad(params, x, y),
               "diffsim": lambda: vg(params, x, y)}
    notes = []
    if peers["autograd"]:
        autograd, anp = peers["autograd"]
        avg = autograd.value_and_grad(mlp_loss(anp))
        runners["HIPS autograd"] = lambda: avg(params, x, y)
    if peers["jax"]:
        runners.update(_jax_mlp(peers["jax"], params, x, y, notes))
    if peers["torch"]:
        runners["torch eager"] = _torch_mlp(peers["torch"], params, x, y)
    return runners, notes


def _jax_mlp(jax_mods, params, x, y, notes):
    jax, jnp = jax_mods
    jp, jx, jy = jax.device_put((params, x, y))
    vg = jax.value_and_grad(mlp_loss(jnp))
    jit_vg = jax.jit(vg)
    start = time.perf_counter()
    jax.block_until_ready(jit_vg(jp, jx, jy))
    notes.append(f"JAX jit: first call (trace + compile) took {fmt_time(time.perf_counter() - start)}, "
                 "excluded from the table")
    return {"JAX jit (warm)": lambda: jax.block_until_ready(jit_vg(jp, jx, jy)),
            "JAX (no jit)": lambda: jax.block_until_ready(vg(jp, jx, jy))}


def _torch_mlp(torch, params, x, y):
    tp = [tuple(torch.tensor(a, requires_grad=True) for a in wb) for wb in params]
    flat = [a for wb in tp for a in wb]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    loss = mlp_loss(torch)

    def run():
        value = loss(tp, tx, ty)
        g = torch.autograd.grad(value, flat)
        return value.item(), [(g[i], g[i + 1]) for i in range(0, len(g), 2)]

    return run


def check_baseline(params, x, y) -> list:
    """The hand-written gradient, after checking it against diffsim's."""
    _, ref = numpy_value_and_grad(params, x, y)
    check = max_diff(ds.grad(mlp_loss(dnp))(params, x, y), ref)
    print(f"\ncheck: hand-written numpy backward vs diffsim gradient, max |Δ| = {check:.1e} "
          f"({'agrees to 1e-10' if check <= 1e-10 else 'DISAGREES: the baseline below is suspect'})")
    return ref


def warm_allocator(nbytes: int = 16 << 20) -> None:
    """Allocate, touch and free one large block. glibc's malloc then raises its mmap and trim
    thresholds above the size of this benchmark's arrays, so a freed array is reused by the
    next call instead of being returned to the OS and faulted back in page by page. Without it,
    the state depends on what ran before in the process (a jit compile warms it, for one)."""
    np.ones(nbytes // 8).sum()


def mlp_rows(runners: dict, ref, timing: dict, base: str) -> tuple[dict, list]:
    """Time ``runners``; rows with ratios to diffsim and to ``base``, gradient error, faults."""
    diffs = {name: run()[1] for name, run in runners.items()}
    diffs = {name: "-" if g is None else f"{max_diff(g, ref):.1e}" for name, g in diffs.items()}
    times = best_of(runners, **timing)
    faults = {name: page_faults_per_call(run) for name, run in runners.items()}
    t_ds, t_np = times["diffsim"], times[base]
    rows = [[name, fmt_time(t), f"{t / t_ds:.2f}x", f"{t / t_np:.2f}x", diffs[name],
             "-" if faults[name] is None else f"{faults[name]:.0f}"] for name, t in times.items()]
    return times, rows


def bench_mlp(peers: dict, timing: dict) -> None:
    params, x, y = mlp_data()
    ref = check_baseline(params, x, y)
    base = "numpy + hand-written backward"
    headers = ["engine", "time / call", "vs diffsim", "vs numpy hand", "max |Δgrad| vs numpy hand",
               "page faults / call"]
    title = f"MLP value + grad: batch {BATCH}, input {WIDTH}, {HIDDEN} tanh layers of {WIDTH}, scalar head, MSE"
    vg = ds.value_and_grad(mlp_loss(dnp))
    fresh = {base: lambda: numpy_value_and_grad(params, x, y), "diffsim": lambda: vg(params, x, y)}
    fresh_times, fresh_rows = mlp_rows(fresh, ref, timing, base)
    warm_allocator()
    runners, notes = mlp_runners(peers, params, x, y)
    times, rows = mlp_rows(runners, ref, timing, base)
    print_table(f"2. {title} (allocator warmed)", headers, rows)
    for note in notes:
        print(f"note: {note}")
    print_table("2b. The same before warming the allocator (state left by the imports and table 1)",
                headers, fresh_rows)
    print("page faults / call: fresh pages touched per call; many mean malloc returned freed arrays to "
          "the OS, so each call faults them back in")
    for label, ts in (("warmed", times), ("before warming", fresh_times)):
        ratio = ts["diffsim"] / ts[base]
        print(f"target: diffsim within {TARGET_MLP_VS_NUMPY}x of numpy + hand-written backward ({label}): "
              f"{ratio:.2f}x, {'met' if ratio <= TARGET_MLP_VS_NUMPY else 'NOT met'}")
    if "HIPS autograd" in times:
        t_ag, t_ds = times["HIPS autograd"], times["diffsim"]
        print(f"target: diffsim faster than HIPS autograd: autograd takes {t_ag / t_ds:.2f}x diffsim's time, "
              f"{'met' if t_ds < t_ag else 'NOT met'}")


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and rounds (smoke run)")
    args = parser.parse_args(argv)
    peers = load_peers(THREADS)
    print_header("diffsim engine benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "autograd", "jax", "jaxlib", "torch"], source=ds)
    for name, mod in peers.items():
        if mod is None:
            print(f"skipped: {name} not installed ({SKIP_HINT})")
    print(f"threads: {'default environment' if THREADS is None else THREADS} (numpy's BLAS; torch: "
          f"{peers['torch'].get_num_threads() if peers['torch'] else '-'}; XLA: "
          f"{'single-threaded Eigen' if THREADS == 1 else 'default pool'}); set OMP_NUM_THREADS=N to pin")
    if peers["jax"]:
        print("jax: CPU backend, x64 enabled")
    timing = (dict(rounds=3, min_time=0.002, budget=0.5) if args.quick
              else dict(rounds=25, min_time=0.005, budget=4.0))
    print(f"timing: best of up to {timing['rounds']} interleaved measurements of >= {timing['min_time']} s "
          f"per engine (at most {timing['budget']} s each), after a warm-up call; gc off")
    bench_primitives(peers, k=100 if args.quick else 1000, timing=timing)
    bench_mlp(peers, timing)


if __name__ == "__main__":
    main()
