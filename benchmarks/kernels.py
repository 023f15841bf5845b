"""Compiled-kernel benchmark: ``ds.compile``'s Numba kernels against hand-written Numba and peers.

What is measured (float64 everywhere):

1. Per-call time of every kernel set in ``trajectories.dynamics.MODELS`` plus ``quadratic_cost``:
   ``forward``, ``forward_into``, ``vjp`` and ``vjp_into``, each called N = 10^6 times INSIDE one
   njit loop (the kernel's dispatcher is passed to the loop as an argument, which Numba
   supports: it compiles one loop specialisation per kernel and links the kernel into it, and
   LLVM inlines it or not by its own cost model; an "inlined" column reports which). Each
   iteration nudges every state (and the cotangent) by ±1e-9 and adds every output to a
   checksum, so nothing is hoisted out of the loop or eliminated. A "harness floor" row times
   the same loop around a kernel that only copies x into out.
2. Hand-written Numba forward and VJP for cart-pole and Lorenz (scalar locals, the same
   ``error_model="numpy"`` as diffsim's kernels), checked against diffsim's kernels to 1e-12 at
   random points, then timed in the same harness, allocating and into-buffer. Target: diffsim
   within 1.5x of hand-written Numba. Two diagnostic columns explain the gap: diffsim's kernel
   called as a closure constant instead of a dispatcher argument (no difference expected), and
   diffsim's generated source with its argument-shape checks deleted.
3. Peers on cart-pole and Lorenz, when installed. CasADi: the dynamics as SX expressions, a
   ``casadi.Function`` and its ``Function.reverse(1)`` (an SX function too), evaluated in the
   CasADi virtual machine (a) one call from Python with numpy arguments and (b) ``map(N,
   "serial")`` over a batch of N = 10^4 columns given as DM (converted once, untimed), reported
   per evaluation. JAX: ``jax.jit`` of the
   dynamics and of its ``jax.vjp`` pullback, (a) one call from Python and, amortised, (b)
   ``jax.vmap`` over a batch of N and (c) ``lax.scan`` over N sequential steps with the same
   nudge-and-checksum body as the Numba loop. Diffsim's kernels called once from Python are
   listed too (dispatcher overhead), so each "from Python" row has a like to compare with.
4. Compile time, each in a fresh subprocess: COLD (empty ``DIFFSIM_CACHE_DIR`` in a temporary
   directory: trace + codegen + Numba compile of all eight kernels via ``k.compile_all()``) and
   WARM (a second fresh process, same cache directory: import + trace + load from Numba's disk
   cache + first calls) for cart-pole and acrobot (the biggest model), and the import time of
   numba and diffsim alone. Targets: cold <= 2 s per kernel set, warm start <= 0.3 s.

Timing: each runner is one call of a compiled loop (or one batched call) measured best of
several interleaved rounds, garbage collector off (``harness.best_of``); per-call time is that
divided by the number of evaluations. Compare ratios rather than absolute times across runs.

Run ``python benchmarks/kernels.py`` (a few minutes on 2 cores, about half of it compiling) or
``python benchmarks/kernels.py --quick`` (10^5 calls, fewer rounds). Kernels of the process are
cached in the usual place (``$DIFFSIM_CACHE_DIR`` or ~/.cache/diffsim); the compile-time
subprocesses use their own temporary directories. Peers are optional (``pip install -e
'.[bench]'``); a missing one is reported as skipped. Nothing is asserted. Every engine runs on
one thread, as in ``engine.py``.
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import textwrap
import time

import numpy as np  # noqa: E402
from harness import SKIP_HINT, best_of, fmt_time, print_header, print_table, run_fresh  # noqa: E402
from numba import njit, types  # noqa: E402
from numba.extending import overload  # noqa: E402

import diffsim as ds  # noqa: E402
from trajectories.dynamics import MODELS, quadratic_cost  # noqa: E402

TARGET_VS_HAND = 1.5
TARGET_COLD_S = 2.0
TARGET_WARM_S = 0.3
NUDGE = 1e-9
CASADI_MAP = 10**4  # CasADi's map gets slower per evaluation once a batch (and its result) leaves the cache


# ---------------------------------------------------------------- the kernels under test


def kernel_specs() -> dict:
    """name -> (function, n_x, n_u, params) for every model plus the quadratic running cost."""
    specs = dict(MODELS)
    specs["quadratic_cost"] = (quadratic_cost, 4, 1, np.array([1.0, 2.0, 3.0, 4.0, 0.1, 0.01]))
    return specs


def sample_point(n_x: int, n_u: int, seed: int = 0):
    """A fixed state and control of moderate size (every model is smooth there)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, n_x), rng.uniform(-1.0, 1.0, n_u)


# ---------------------------------------------------------------- 1. the njit-loop harness


def _total(y):
    """Sum of a float or of a 1-D array, inside njit code."""


@overload(_total)
def _total_impl(y):
    if isinstance(y, types.Float):
        return lambda y: y
    if isinstance(y, types.Array):

        def total(y):
            s = 0.0
            for i in range(y.size):
                s += y[i]
            return s

        return total
    return None


def _nudge(a, d):
    """``a`` moved by ``d`` (in place for an array, a new float for a scalar), inside njit code."""


@overload(_nudge)
def _nudge_impl(a, d):
    if isinstance(a, types.Float):
        return lambda a, d: a + d
    if isinstance(a, types.Array):

        def nudge(a, d):
            for i in range(a.size):
                a[i] += d
            return a

        return nudge
    return None


@njit
def loop_forward(fn, x, u, p, n):
    """``n`` calls of an allocating ``fn(x, u, p)`` (or of a scalar ``forward_into``)."""
    s, d = 0.0, NUDGE
    for _ in range(n):
        d = -d
        _nudge(x, d)
        s += _total(fn(x, u, p))
    return s


@njit
def loop_forward_into(fn, x, u, p, out, n):
    """``n`` calls of ``fn(x, u, p, out)``."""
    s, d = 0.0, NUDGE
    for _ in range(n):
        d = -d
        _nudge(x, d)
        fn(x, u, p, out)
        s += _total(out)
    return s


@njit
def loop_vjp(fn, x, u, p, ct, n):
    """``n`` calls of an allocating ``fn(x, u, p, ct) -> (g_x, g_u, g_p)``."""
    s, d = 0.0, NUDGE
    for _ in range(n):
        d = -d
        _nudge(x, d)
        ct = _nudge(ct, d)
        g = fn(x, u, p, ct)
        s += _total(g[0]) + _total(g[1]) + _total(g[2])
    return s


@njit
def loop_vjp_into(fn, x, u, p, ct, g_x, g_u, g_p, n):
    """``n`` calls of ``fn(x, u, p, ct, g_x, g_u, g_p)``."""
    s, d = 0.0, NUDGE
    for _ in range(n):
        d = -d
        _nudge(x, d)
        ct = _nudge(ct, d)
        fn(x, u, p, ct, g_x, g_u, g_p)
        s += _total(g_x) + _total(g_u) + _total(g_p)
    return s


ARG_LOOPS = {"forward": loop_forward, "forward_into": loop_forward_into, "vjp": loop_vjp, "vjp_into": loop_vjp_into}


def global_loops(kernels: dict) -> dict:
    """The same four loops, but calling the kernels in ``kernels`` (variant -> dispatcher) as
    closure constants, as code written next to the kernels would; the dispatcher argument is
    kept (and ignored) so that :class:`Harness` drives them unchanged."""
    forward, forward_into, vjp, vjp_into = (kernels[v] for v in VARIANTS)

    @njit
    def loop_forward_global(_fn, x, u, p, n):
        s, d = 0.0, NUDGE
        for _ in range(n):
            d = -d
            _nudge(x, d)
            s += _total(forward(x, u, p))
        return s

    @njit
    def loop_forward_into_global(_fn, x, u, p, out, n):
        s, d = 0.0, NUDGE
        for _ in range(n):
            d = -d
            _nudge(x, d)
            forward_into(x, u, p, out)
            s += _total(out)
        return s

    @njit
    def loop_vjp_global(_fn, x, u, p, ct, n):
        s, d = 0.0, NUDGE
        for _ in range(n):
            d = -d
            _nudge(x, d)
            ct = _nudge(ct, d)
            g = vjp(x, u, p, ct)
            s += _total(g[0]) + _total(g[1]) + _total(g[2])
        return s

    @njit
    def loop_vjp_into_global(_fn, x, u, p, ct, g_x, g_u, g_p, n):
        s, d = 0.0, NUDGE
        for _ in range(n):
            d = -d
            _nudge(x, d)
            ct = _nudge(ct, d)
            vjp_into(x, u, p, ct, g_x, g_u, g_p)
            s += _total(g_x) + _total(g_u) + _total(g_p)
        return s

    return {"forward": loop_forward_global, "forward_into": loop_forward_into_global, "vjp": loop_vjp_global,
            "vjp_into": loop_vjp_into_global}


_SHAPE_CHECK = re.compile(r"    if \w+\.shape != \([0-9, ]*\):\n        raise ValueError\([^\n]*\)\n")


def without_shape_checks(k) -> dict:
    """Diagnostic: diffsim's generated source for kernel set ``k`` with every argument-shape
    check (``if a.shape != (n,): raise ValueError(...)``) deleted, compiled without caching.
    Returns variant -> dispatcher, and how many checks were removed under key "removed"."""
    source, removed = _SHAPE_CHECK.subn("", k.source)
    namespace: dict = {}
    exec(compile(source.replace("cache=True", "cache=False"), f"<{k.path.name} without shape checks>", "exec"),
         namespace)
    return {v: namespace[v] for v in VARIANTS} | {"removed": removed}


@njit(error_model="numpy")
def copy_into(x, u, p, out):
    """The harness floor: a "kernel" that does nothing but write its output."""
    for i in range(out.size):
        out[i] = x[i]


def inlined(loop, fn) -> str:
    """"y" if the loop specialisation for kernel ``fn`` has the kernel inlined (its optimised
    LLVM IR does not call it), "n" if it calls it, "?" if that cannot be told. Reads Numba's
    mangled names (``_ZN<module><len><name>B...``), so it is a diagnostic, not an API."""
    tag = f"{len(fn.py_func.__name__)}{fn.py_func.__name__}B"
    loop_tag = f"{len(loop.__name__)}{loop.__name__}B"
    try:
        sig = next(s for s in loop.signatures if getattr(s[0], "dispatcher", None) is fn)
        ir = loop.inspect_llvm(sig)
    except Exception:  # any failure only means that we cannot tell
        return "?"
    in_body, found_body = False, False
    for line in ir.splitlines():
        if line.startswith("define"):
            m = re.search(r'@"?([^"(]+)"?\(', line)
            name = m.group(1) if m else ""
            in_body = loop_tag in name and not name.startswith(("_ZN7cpython", "cfunc"))
            found_body |= in_body
        elif line.startswith("}"):
            in_body = False
        elif in_body and " call " in line and tag in line:
            return "n"
    return "y" if found_body else "?"


class Harness:
    """Loop runners for one set of (forward, forward_into, vjp, vjp_into) callables."""

    def __init__(self, n_x: int, n_u: int, p: np.ndarray, out_shape: tuple, n: int, loops: dict | None = None):
        self.loops = loops or ARG_LOOPS
        self.x0, self.u = sample_point(n_x, n_u)
        self.p, self.out_shape, self.n = p, out_shape, n
        rng = np.random.default_rng(1)
        self.ct0 = 1.0 if out_shape == () else rng.uniform(-1.0, 1.0, out_shape)

    def _args(self):
        ct = self.ct0 if self.out_shape == () else self.ct0.copy()
        return self.x0.copy(), self.u.copy(), self.p.copy(), ct

    def loop(self, variant: str):
        """The loop function that times ``variant``."""
        if variant == "forward_into" and self.out_shape == ():
            return self.loops["forward"]
        return self.loops[variant]

    def forward(self, fn):
        x, u, p, _ = self._args()
        return lambda: self.loops["forward"](fn, x, u, p, self.n)

    def forward_into(self, fn):
        x, u, p, _ = self._args()
        if self.out_shape == ():  # a scalar forward_into returns its value
            return lambda: self.loops["forward"](fn, x, u, p, self.n)
        out = np.empty(self.out_shape)
        return lambda: self.loops["forward_into"](fn, x, u, p, out, self.n)

    def vjp(self, fn):
        x, u, p, ct = self._args()
        return lambda: self.loops["vjp"](fn, x, u, p, ct, self.n)

    def vjp_into(self, fn):
        x, u, p, ct = self._args()
        g = (np.empty_like(x), np.empty_like(u), np.empty_like(p))
        return lambda: self.loops["vjp_into"](fn, x, u, p, ct, *g, self.n)


VARIANTS = ("forward", "forward_into", "vjp", "vjp_into")


def compile_kernels(specs: dict) -> tuple[dict, float]:
    kernels, start = {}, time.perf_counter()
    for name, (f, n_x, n_u, p) in specs.items():
        kernels[name] = ds.compile(f, n_x, n_u, len(p), name=name)
    return kernels, time.perf_counter() - start


def time_loops(runners: dict, n: int, timing: dict) -> dict:
    """Seconds per kernel call of each loop runner (the first call compiles the loop)."""
    return {name: t / n for name, t in best_of(runners, min_time=1e-4, **timing).items()}


def bench_models(specs: dict, kernels: dict, n: int, timing: dict) -> dict:
    runners, harnesses, start = {}, {}, time.perf_counter()
    for name, (_, n_x, n_u, p) in specs.items():
        k = kernels[name]
        h = harnesses[name] = Harness(n_x, n_u, p, k.out_shape, n)
        for v in VARIANTS:
            runners[(name, v)] = getattr(h, v)(getattr(k, v))
    floor = Harness(4, 1, np.ones(4), (4,), n)
    runners[("floor", "forward_into")] = floor.forward_into(copy_into)
    for fn in runners.values():  # compile every loop specialisation before timing any
        fn()
    loop_compile = time.perf_counter() - start
    times = time_loops(runners, n, timing)
    rows = []
    for name, (_, n_x, n_u, p) in specs.items():
        k = kernels[name]
        h = harnesses[name]
        ops = f"{k.op_counts['forward']} / {k.op_counts['vjp']}"
        t = [times[(name, v)] for v in VARIANTS]
        inl = " ".join(inlined(h.loop(v), getattr(k, v)) for v in VARIANTS)
        rows.append([name, f"{n_x}/{n_u}/{len(p)}", ops, *(fmt_time(x) for x in t),
                     f"{t[0] / t[1]:.2f}x", f"{t[2] / t[3]:.2f}x", inl])
    rows.append(["harness floor (out[:] = x)", "4/1/4", "-", "-", fmt_time(times[("floor", "forward_into")]),
                 "-", "-", "-", "-", inlined(loop_forward_into, copy_into)])
    print_table(f"1. diffsim kernels: time per call inside an njit loop of {n:.0e} calls",
                ["function", "n_x/n_u/n_p", "ops fwd / vjp", "forward", "forward_into", "vjp", "vjp_into",
                 "fwd alloc / into", "vjp alloc / into", "inlined"], rows)
    print("ops: arithmetic and math operations in the generated straight-line code (k.op_counts)")
    print("forward/vjp allocate their results (vjp: three arrays); *_into write into buffers made once")
    print("inlined: whether LLVM inlined the kernel into the loop (y) or the loop calls it (n), for forward, "
          "forward_into, vjp, vjp_into in that order (read from the loop's optimised LLVM IR)")
    print(f"compiling the {len(runners)} loop specialisations (one per kernel dispatcher) took "
          f"{loop_compile:.1f} s, not timed")
    return times


# ---------------------------------------------------------------- 2. hand-written Numba


@njit(error_model="numpy")
def cart_pole_forward_into(x, u, p, out):
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    w, f = x[3], u[0]
    s, c = math.sin(x[1]), math.cos(x[1])
    w2 = w * w
    d = mc + mp * s * s
    out[0] = x[2]
    out[1] = w
    out[2] = (f + mp * s * (l * w2 + g * c)) / d
    out[3] = (-f * c - mp * l * w2 * c * s - (mc + mp) * g * s) / (l * d)


@njit(error_model="numpy")
def cart_pole_forward(x, u, p):
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    w, f = x[3], u[0]
    s, c = math.sin(x[1]), math.cos(x[1])
    w2 = w * w
    d = mc + mp * s * s
    out = np.empty(4)
    out[0] = x[2]
    out[1] = w
    out[2] = (f + mp * s * (l * w2 + g * c)) / d
    out[3] = (-f * c - mp * l * w2 * c * s - (mc + mp) * g * s) / (l * d)
    return out


@njit(error_model="numpy")
def cart_pole_vjp_into(x, u, p, ct, g_x, g_u, g_p):
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    w, f = x[3], u[0]
    s, c = math.sin(x[1]), math.cos(x[1])
    w2, cs, m = w * w, c * s, mc + mp
    d = mc + mp * s * s
    q = l * w2 + g * c
    xdd = (f + mp * s * q) / d
    thdd = (-f * c - mp * l * w2 * cs - m * g * s) / (l * d)
    a = ct[2] / d  # cotangent of xdd's numerator  A = f + mp s q
    b = ct[3] / (l * d)  # cotangent of thdd's numerator  B = -f c - mp l w² c s - m g s
    bar_d = -a * xdd - b * thdd * l
    bar_q = a * mp * s
    bar_l = -b * thdd * d + bar_q * w2 - b * mp * w2 * cs
    bar_w = 2.0 * w * l * (bar_q - b * mp * cs)
    bar_g = bar_q * c - b * m * s
    bar_c = bar_q * g - b * (f + mp * l * w2 * s)
    bar_s = a * mp * q - b * (mp * l * w2 * c + m * g) + 2.0 * bar_d * mp * s
    bar_mc = bar_d - b * g * s
    bar_mp = a * s * q - b * (l * w2 * cs + g * s) + bar_d * s * s
    g_x[0] = 0.0
    g_x[1] = bar_s * c - bar_c * s
    g_x[2] = ct[0]
    g_x[3] = ct[1] + bar_w
    g_u[0] = a - b * c
    g_p[0] = bar_mc
    g_p[1] = bar_mp
    g_p[2] = bar_l
    g_p[3] = bar_g


@njit(error_model="numpy")
def cart_pole_vjp(x, u, p, ct):
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    w, f = x[3], u[0]
    s, c = math.sin(x[1]), math.cos(x[1])
    w2, cs, m = w * w, c * s, mc + mp
    d = mc + mp * s * s
    q = l * w2 + g * c
    xdd = (f + mp * s * q) / d
    thdd = (-f * c - mp * l * w2 * cs - m * g * s) / (l * d)
    a = ct[2] / d
    b = ct[3] / (l * d)
    bar_d = -a * xdd - b * thdd * l
    bar_q = a * mp * s
    bar_c = bar_q * g - b * (f + mp * l * w2 * s)
    bar_s = a * mp * q - b * (mp * l * w2 * c + m * g) + 2.0 * bar_d * mp * s
    g_x, g_u, g_p = np.empty(4), np.empty(1), np.empty(4)
    g_x[0] = 0.0
    g_x[1] = bar_s * c - bar_c * s
    g_x[2] = ct[0]
    g_x[3] = ct[1] + 2.0 * w * l * (bar_q - b * mp * cs)
    g_u[0] = a - b * c
    g_p[0] = bar_d - b * g * s
    g_p[1] = a * s * q - b * (l * w2 * cs + g * s) + bar_d * s * s
    g_p[2] = -b * thdd * d + bar_q * w2 - b * mp * w2 * cs
    g_p[3] = bar_q * c - b * m * s
    return g_x, g_u, g_p


@njit(error_model="numpy")
def lorenz_forward_into(x, u, p, out):
    x0, x1, x2 = x[0], x[1], x[2]
    out[0] = p[0] * (x1 - x0) + u[0]
    out[1] = x0 * (p[1] - x2) - x1
    out[2] = x0 * x1 - p[2] * x2


@njit(error_model="numpy")
def lorenz_forward(x, u, p):
    x0, x1, x2 = x[0], x[1], x[2]
    out = np.empty(3)
    out[0] = p[0] * (x1 - x0) + u[0]
    out[1] = x0 * (p[1] - x2) - x1
    out[2] = x0 * x1 - p[2] * x2
    return out


@njit(error_model="numpy")
def lorenz_vjp_into(x, u, p, ct, g_x, g_u, g_p):
    x0, x1, x2 = x[0], x[1], x[2]
    a, b, c = ct[0], ct[1], ct[2]
    sa = p[0] * a
    g_x[0] = -sa + b * (p[1] - x2) + c * x1
    g_x[1] = sa - b + c * x0
    g_x[2] = -b * x0 - c * p[2]
    g_u[0] = a
    g_p[0] = a * (x1 - x0)
    g_p[1] = b * x0
    g_p[2] = -c * x2


@njit(error_model="numpy")
def lorenz_vjp(x, u, p, ct):
    x0, x1, x2 = x[0], x[1], x[2]
    a, b, c = ct[0], ct[1], ct[2]
    sa = p[0] * a
    g_x, g_u, g_p = np.empty(3), np.empty(1), np.empty(3)
    g_x[0] = -sa + b * (p[1] - x2) + c * x1
    g_x[1] = sa - b + c * x0
    g_x[2] = -b * x0 - c * p[2]
    g_u[0] = a
    g_p[0] = a * (x1 - x0)
    g_p[1] = b * x0
    g_p[2] = -c * x2
    return g_x, g_u, g_p


HAND = {
    "cart_pole": dict(forward=cart_pole_forward, forward_into=cart_pole_forward_into, vjp=cart_pole_vjp,
                      vjp_into=cart_pole_vjp_into),
    "lorenz": dict(forward=lorenz_forward, forward_into=lorenz_forward_into, vjp=lorenz_vjp,
                   vjp_into=lorenz_vjp_into),
}


def check_hand(name: str, k, p, points: int = 50) -> float:
    """Largest absolute difference between the hand-written and diffsim's kernels (all four
    variants, every output) over random points."""
    hand = HAND[name]
    rng = np.random.default_rng(2)
    n_x, n_u = k.arg_shapes[0][0], k.arg_shapes[1][0]
    worst = 0.0
    for _ in range(points):
        x, u = rng.uniform(-2.0, 2.0, n_x), rng.uniform(-2.0, 2.0, n_u)
        ct = rng.uniform(-1.0, 1.0, k.out_shape)
        ref_f, ref_g = k.forward(x, u, p), k.vjp(x, u, p, ct)
        out = np.empty(k.out_shape)
        hand["forward_into"](x, u, p, out)
        outs = [(hand["forward"](x, u, p), ref_f), (out, ref_f)]
        g = (np.empty(n_x), np.empty(n_u), np.empty(len(p)))
        hand["vjp_into"](x, u, p, ct, *g)
        outs += list(zip(hand["vjp"](x, u, p, ct), ref_g)) + list(zip(g, ref_g))
        worst = max(worst, max(float(np.max(np.abs(a - b))) for a, b in outs))
    return worst


def bench_hand(specs: dict, kernels: dict, n: int, timing: dict) -> None:
    runners, checks, harnesses, stripped, removed = {}, {}, {}, {}, {}
    for name in HAND:
        _, n_x, n_u, p = specs[name]
        k = kernels[name]
        checks[name] = check_hand(name, k, p)
        h = harnesses[name] = Harness(n_x, n_u, p, k.out_shape, n)
        hg = Harness(n_x, n_u, p, k.out_shape, n, loops=global_loops({v: getattr(k, v) for v in VARIANTS}))
        stripped[name] = without_shape_checks(k)
        removed[name] = stripped[name].pop("removed")
        for v in VARIANTS:
            runners[(name, v, "diffsim")] = getattr(h, v)(getattr(k, v))
            runners[(name, v, "hand")] = getattr(h, v)(HAND[name][v])
            runners[(name, v, "global")] = getattr(hg, v)(getattr(k, v))
            runners[(name, v, "stripped")] = getattr(h, v)(stripped[name][v])
    print()
    for name, err in checks.items():
        print(f"check: hand-written {name} vs diffsim (forward and vjp, both styles, 50 random points): "
              f"max |Δ| = {err:.1e} ({'agrees to 1e-12' if err <= 1e-12 else 'DISAGREES: rows below are suspect'})")
    hand_times = time_loops(runners, n, timing)
    rows, worst = [], 0.0
    for name in HAND:
        for v in VARIANTS:
            t_ds, t_hand = hand_times[(name, v, "diffsim")], hand_times[(name, v, "hand")]
            worst = max(worst, t_ds / t_hand)
            loop = harnesses[name].loop(v)
            inl = (f"{inlined(loop, getattr(kernels[name], v))} / {inlined(loop, HAND[name][v])} / "
                   f"{inlined(loop, stripped[name][v])}")
            rows.append([f"{name} {v}", fmt_time(t_ds), fmt_time(t_hand), f"{t_ds / t_hand:.2f}x",
                         "met" if t_ds / t_hand <= TARGET_VS_HAND else "NOT met",
                         fmt_time(hand_times[(name, v, "global")]), fmt_time(hand_times[(name, v, "stripped")]),
                         f"{hand_times[(name, v, 'stripped')] / t_hand:.2f}x", inl])
    print_table(f"2. diffsim vs hand-written Numba: time per call inside an njit loop of {n:.0e} calls",
                ["kernel", "diffsim", "hand-written", "diffsim / hand", f"<= {TARGET_VS_HAND}x",
                 "diffsim, kernel as global", "diffsim, no shape checks", "no checks / hand",
                 "inlined: diffsim / hand / no checks"], rows)
    print("all columns measured together in interleaved rounds (diffsim's kernels again, not table 1's numbers)")
    print("diffsim, kernel as global: the same loop calling the kernel as a closure constant instead of a "
          "dispatcher argument (checks that passing dispatchers as arguments costs nothing)")
    print("diffsim, no shape checks (diagnostic, not diffsim's output): the generated source with its argument-"
          "shape checks deleted (" + ", ".join(f"{name}: {r} checks" for name, r in removed.items()) +
          "), compiled in this process")
    print(f"target: diffsim within {TARGET_VS_HAND}x of hand-written Numba: worst ratio {worst:.2f}x, "
          f"{'met' if worst <= TARGET_VS_HAND else 'NOT met'}")


# ---------------------------------------------------------------- 3. peers


def casadi_models(ca) -> dict:
    """name -> (x, u, p symbols, ẋ expression) for cart-pole and Lorenz as CasADi SX."""
    out = {}
    x, u, p = ca.SX.sym("x", 4), ca.SX.sym("u", 1), ca.SX.sym("p", 4)
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    s, c = ca.sin(x[1]), ca.cos(x[1])
    d = mc + mp * s * s
    xdd = (u[0] + mp * s * (l * x[3] * x[3] + g * c)) / d
    thdd = (-u[0] * c - mp * l * x[3] * x[3] * c * s - (mc + mp) * g * s) / (l * d)
    out["cart_pole"] = (x, u, p, ca.vertcat(x[2], x[3], xdd, thdd))
    x, u, p = ca.SX.sym("x", 3), ca.SX.sym("u", 1), ca.SX.sym("p", 3)
    out["lorenz"] = (x, u, p, ca.vertcat(p[0] * (x[1] - x[0]) + u[0], x[0] * (p[1] - x[2]) - x[1],
                                         x[0] * x[1] - p[2] * x[2]))
    return out


def jax_models(jnp) -> dict:
    def cart_pole(x, u, p):
        mc, mp, l, g = p[0], p[1], p[2], p[3]
        s, c = jnp.sin(x[1]), jnp.cos(x[1])
        d = mc + mp * s * s
        xdd = (u[0] + mp * s * (l * x[3] * x[3] + g * c)) / d
        thdd = (-u[0] * c - mp * l * x[3] * x[3] * c * s - (mc + mp) * g * s) / (l * d)
        return jnp.stack([x[2], x[3], xdd, thdd])

    def lorenz(x, u, p):
        return jnp.stack([p[0] * (x[1] - x[0]) + u[0], x[0] * (p[1] - x[2]) - x[1], x[0] * x[1] - p[2] * x[2]])

    return {"cart_pole": cart_pole, "lorenz": lorenz}


def batch(n_x: int, n_u: int, m: int):
    """m states and controls near the sample point, and m cotangents: shapes (m, n). The first
    rows do not depend on m (one generator per array), so batches of any size start alike."""
    rx, ru, rc = (np.random.default_rng(seed) for seed in (3, 4, 5))
    x0, u0 = sample_point(n_x, n_u)
    return (x0 + 0.01 * rx.standard_normal((m, n_x)), u0 + 0.01 * ru.standard_normal((m, n_u)),
            rc.uniform(-1.0, 1.0, (m, n_x)))


def casadi_runners(ca, name, p, m, notes) -> dict:
    """(how measured, op) -> (runner, evaluations per call, result checker)."""
    x, u, ps, expr = casadi_models(ca)[name]
    f = ca.Function("f", [x, u, ps], [expr])
    fr = f.reverse(1)  # (x, u, p, out (0 nonzeros), adj_out) -> (adj_x, adj_u, adj_p)
    if not (f.is_a("SXFunction") and fr.is_a("SXFunction")):
        notes.append(f"CasADi {name}: expected SX functions, got {f.class_name()} / {fr.class_name()}")
    n_x = x.numel()
    xs, us, cts = batch(n_x, 1, m)
    x1, u1, ct1 = xs[0], us[0], cts[0]
    zero = ca.DM(n_x, 1)  # the nominal output: structurally zero, unused
    fm, frm = f.map(m, "serial"), fr.map(m, "serial")
    # batch inputs converted to DM once, outside the timing: converting a (n, m) numpy array
    # costs about as much as evaluating it
    xt, ut, ctt, pd = (ca.DM(a) for a in (xs.T, us.T, cts.T, p))
    return {
        ("CasADi SX: one call from Python", "forward"): (lambda: f(x1, u1, p), 1,
                                                          lambda: [np.asarray(f(x1, u1, p)).ravel()]),
        ("CasADi SX: one call from Python", "vjp"): (
            lambda: fr(x1, u1, p, zero, ct1), 1,
            lambda: [np.asarray(a).ravel() for a in fr(x1, u1, p, zero, ct1)]),
        (f"CasADi SX: map({m}, serial) on DM, per evaluation", "forward"): (
            lambda: fm(xt, ut, pd), m, lambda: [np.asarray(fm(xt, ut, pd))[:, 0]]),
        (f"CasADi SX: map({m}, serial) on DM, per evaluation", "vjp"): (
            lambda: frm(xt, ut, pd, zero, ctt), m,
            lambda: [np.asarray(a)[:, 0] for a in frm(xt, ut, pd, zero, ctt)]),
    }


def jax_runners(jax, name, p, m, n_scan) -> dict:
    jnp, lax = jax.numpy, jax.lax
    f = jax_models(jnp)[name]

    def vjp(x, u, p, ct):
        return jax.vjp(f, x, u, p)[1](ct)

    n_x = {"cart_pole": 4, "lorenz": 3}[name]
    xs, us, cts = (jax.device_put(a) for a in batch(n_x, 1, m))
    x1, u1, ct1 = xs[0], us[0], cts[0]
    jp = jax.device_put(p)
    jf, jv = jax.jit(f), jax.jit(vjp)
    vf = jax.jit(jax.vmap(f, in_axes=(0, 0, None)))
    vv = jax.jit(jax.vmap(vjp, in_axes=(0, 0, None, 0)))

    def scan_forward(x, u, p):
        def body(carry, _):
            x, d, s = carry
            d = -d
            x = x + d
            return (x, d, s + jnp.sum(f(x, u, p))), None

        return lax.scan(body, (x, NUDGE, 0.0), None, length=n_scan)[0][2]

    def scan_vjp(x, u, p, ct):
        def body(carry, _):
            x, ct, d, s = carry
            d = -d
            x, ct = x + d, ct + d
            g = vjp(x, u, p, ct)
            return (x, ct, d, s + sum(jnp.sum(a) for a in g)), None

        return lax.scan(body, (x, ct, NUDGE, 0.0), None, length=n_scan)[0][3]

    sf, sv = jax.jit(scan_forward), jax.jit(scan_vjp)
    ready = jax.block_until_ready
    first = lambda out: [np.asarray(a)[0] for a in out] if isinstance(out, tuple) else [np.asarray(out)[0]]
    return {
        ("JAX jit: one call from Python", "forward"): (lambda: ready(jf(x1, u1, jp)), 1,
                                                       lambda: [np.asarray(jf(x1, u1, jp))]),
        ("JAX jit: one call from Python", "vjp"): (lambda: ready(jv(x1, u1, jp, ct1)), 1,
                                                   lambda: [np.asarray(a) for a in jv(x1, u1, jp, ct1)]),
        (f"JAX jit(vmap) over {m}, per evaluation", "forward"): (lambda: ready(vf(xs, us, jp)), m,
                                                                 lambda: first(vf(xs, us, jp))),
        (f"JAX jit(vmap) over {m}, per evaluation", "vjp"): (lambda: ready(vv(xs, us, jp, cts)), m,
                                                             lambda: first(vv(xs, us, jp, cts))),
        (f"JAX jit(lax.scan) of {n_scan} steps, per step", "forward"): (lambda: ready(sf(x1, u1, jp)), n_scan,
                                                                        None),
        (f"JAX jit(lax.scan) of {n_scan} steps, per step", "vjp"): (lambda: ready(sv(x1, u1, jp, ct1)), n_scan,
                                                                    None),
    }


def load_peer(name: str):
    try:
        if name == "casadi":
            import casadi

            return casadi
        import jax

        jax.config.update("jax_enable_x64", True)
        return jax
    except ImportError:
        return None


def bench_peers(peers: dict, specs: dict, kernels: dict, n: int, m: int, n_scan: int, timing: dict) -> None:
    for name in ("cart_pole", "lorenz"):
        _, n_x, n_u, p = specs[name]
        k = kernels[name]
        xs, us, cts = batch(n_x, n_u, m)
        x1, u1, ct1 = xs[0], us[0], cts[0]
        ref = {"forward": [k.forward(x1, u1, p)], "vjp": list(k.vjp(x1, u1, p, ct1))}
        out, g = np.empty(n_x), (np.empty(n_x), np.empty(n_u), np.empty(len(p)))
        h = Harness(n_x, n_u, p, k.out_shape, n)
        loop_label = f"diffsim: forward_into / vjp_into in an njit loop of {n:.0e}"
        runners = {
            (loop_label, "forward"): (h.forward_into(k.forward_into), n, None),
            (loop_label, "vjp"): (h.vjp_into(k.vjp_into), n, None),
            ("diffsim: one call from Python", "forward"): (lambda: k.forward(x1, u1, p), 1, None),
            ("diffsim: one call from Python", "vjp"): (lambda: k.vjp(x1, u1, p, ct1), 1, None),
            ("diffsim: forward_into / vjp_into from Python", "forward"): (
                lambda: k.forward_into(x1, u1, p, out), 1, None),
            ("diffsim: forward_into / vjp_into from Python", "vjp"): (
                lambda: k.vjp_into(x1, u1, p, ct1, *g), 1, None),
        }
        notes, build = [], {}
        for peer, make in (("casadi", lambda mod: casadi_runners(mod, name, p, min(m, CASADI_MAP), notes)),
                           ("jax", lambda mod: jax_runners(mod, name, p, m, n_scan))):
            if peers[peer] is not None:
                start = time.perf_counter()
                more = make(peers[peer])
                for run, _, _ in more.values():  # build / trace / compile, excluded from timing
                    run()
                build[peer] = time.perf_counter() - start
                runners.update(more)
        errors = {}
        for key, (_, _, check) in runners.items():
            if check is not None:
                errors[key] = max(float(np.max(np.abs(np.asarray(a, dtype=float) - b)))
                                  for a, b in zip(check(), ref[key[1]], strict=True))
        times = best_of({key: run for key, (run, _, _) in runners.items()}, **timing)
        per = {key: times[key] / runners[key][1] for key in runners}
        base = {op: per[(loop_label, op)] for op in ("forward", "vjp")}
        rows = []
        for how in dict.fromkeys(k_how for k_how, _ in runners):
            cells = [how]
            for op in ("forward", "vjp"):
                t = per[(how, op)]
                cells += [fmt_time(t), f"{t / base[op]:.1f}x"]
            errs = [errors[(how, op)] for op in ("forward", "vjp") if (how, op) in errors]
            cells.append(f"{max(errs):.1e}" if errs else "-")
            rows.append(cells)
        print_table(f"3. Peers on {name}: time per evaluation", ["engine: how measured", "forward",
                    "vs diffsim", "vjp", "vs diffsim", "max |Δ| vs diffsim"], rows)
        print("vs diffsim: ratio to diffsim's forward_into / vjp_into inside an njit loop (first row, measured "
              "again here in the same interleaved rounds)")
        for peer, seconds in build.items():
            print(f"{peer}: building, tracing and compiling these runners took {seconds:.2f} s, not timed")
        for note in notes:
            print(f"note: {note}")


# ---------------------------------------------------------------- 4. compile time


_COMPILE_SCRIPT = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import numba
    import numpy as np
    from numba.core import event
    t1 = time.perf_counter()
    import diffsim as ds
    from trajectories.dynamics import MODELS
    t2 = time.perf_counter()
    f, n_x, n_u, p = MODELS[{name!r}]
    k = ds.compile(f, n_x, n_u, len(p), name={name!r})
    t3 = time.perf_counter()
    with event.install_recorder("numba:compile") as rec:  # compiles only; loads from the cache are silent
        k.forward(*[np.full(s, 0.5) for s in k.arg_shapes])  # the first kernel alone: Numba's start-up
        t_first = time.perf_counter()
        k.compile_all()
    t4 = time.perf_counter()
    starts, per_kernel = {{}}, {{}}
    for ts, ev in rec.buffer:
        key = (ev.data["dispatcher"].py_func.__name__, str(ev.data["args"]))
        if ev.is_start:
            starts[key] = ts
        elif ev.data["dispatcher"].py_func.__module__.startswith("diffsim_kernel_"):
            per_kernel[key[0]] = ts - starts[key]
    print(json.dumps(dict(numba_import=t1 - t0, diffsim_import=t2 - t1, trace=t3 - t2, compile_all=t4 - t3,
                          first=t_first - t3, total=t4 - t0, per_kernel=per_kernel)))
""")

_IMPORT_SCRIPT = textwrap.dedent("""
    import json, time
    t0 = time.perf_counter()
    import {module}  # noqa
    print(json.dumps(dict(t=time.perf_counter() - t0)))
""")


def run_script(script: str, cache: str | None = None) -> tuple[dict, float]:
    """Run ``script`` in a fresh interpreter; its printed JSON and the wall time of the process."""
    return run_fresh(script, cache)


def bench_compile(models: list[str], cold_runs: int, warm_runs: int) -> None:
    rows, verdicts, breakdown = [], [], []
    for name in models:
        colds, warms = [], []
        for _ in range(cold_runs):
            with tempfile.TemporaryDirectory(prefix="diffsim-bench-") as cache:
                colds.append(run_script(_COMPILE_SCRIPT.format(name=name), cache))
                if not warms:
                    warms = [run_script(_COMPILE_SCRIPT.format(name=name), cache) for _ in range(warm_runs)]
        cold = min((r for r, _ in colds), key=lambda r: r["trace"] + r["compile_all"])
        warm, warm_wall = min(warms, key=lambda r: r[0]["total"])
        cold_s = cold["trace"] + cold["compile_all"]
        warm_s = warm["trace"] + warm["compile_all"]
        for label, r, wall in (("cold (empty cache)", cold, None), ("warm (same cache)", warm, warm_wall)):
            rows.append([name, label, f"{r['numba_import']:.3f}", f"{r['diffsim_import']:.3f}", f"{r['trace']:.3f}",
                         f"{r['first']:.3f}", f"{r['compile_all'] - r['first']:.3f}",
                         f"{r['trace'] + r['compile_all']:.3f}", f"{r['total']:.3f}",
                         "-" if wall is None else f"{wall:.3f}"])
        breakdown.append(f"{name} cold, Numba compile per kernel (s): " +
                         ", ".join(f"{k} {t:.2f}" for k, t in cold["per_kernel"].items()) +
                         f"; sum {sum(cold['per_kernel'].values()):.2f}")
        verdicts.append(f"target: {name} cold compile of the kernel set (trace + compile_all) <= {TARGET_COLD_S} s: "
                        f"{cold_s:.2f} s, {'met' if cold_s <= TARGET_COLD_S else 'NOT met'}")
        verdicts.append(f"target: {name} warm start (import + trace + load + first calls) <= {TARGET_WARM_S} s: "
                        f"{warm['total']:.2f} s in-process, {'met' if warm['total'] <= TARGET_WARM_S else 'NOT met'} "
                        f"({warm_wall:.2f} s with interpreter start-up); without the imports {warm_s:.2f} s, "
                        f"{'met' if warm_s <= TARGET_WARM_S else 'NOT met'}")
    print_table(f"4. Compile time in fresh processes, seconds (best of {cold_runs} cold, {warm_runs} warm)",
                ["kernel set", "start", "import numba", "import diffsim", "trace + codegen", "1st kernel",
                 "other 7", "trace + compile", "total in-process", "process wall"], rows)
    print("import diffsim: diffsim + trajectories.dynamics after numba; trace + codegen: ds.compile (trace, "
          "differentiate, emit, write and import the generated module); then Numba compiles (cold) or loads from "
          "its disk cache (warm) each kernel and calls it once: 1st kernel = k.forward called alone first (it "
          "carries Numba's one-off start-up in the process), other 7 = k.compile_all() after it; trace + compile = "
          "trace + codegen + 1st kernel + other 7; total in-process: first import to the end; process wall: the "
          "same plus interpreter start-up, seen from the parent")
    for line in breakdown + verdicts:
        print(line)
    imports = []
    for module in ("numba", "diffsim", "jax"):
        try:
            best = min(run_script(_IMPORT_SCRIPT.format(module=module))[0]["t"] for _ in range(warm_runs))
            imports.append(f"{module} {best:.3f} s")
        except RuntimeError:
            imports.append(f"{module} not importable")
    print(f"import time alone, fresh process, best of {warm_runs}: " + "; ".join(imports) +
          " (import diffsim does not load numba: the first ds.compile does, through the generated module)")


# ---------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^5 calls, fewer rounds and compile runs")
    args = parser.parse_args(argv)
    n = 10**5 if args.quick else 10**6
    m, n_scan = (10**4, 10**4) if args.quick else (10**5, 10**5)
    timing = dict(rounds=2, budget=1.0) if args.quick else dict(rounds=9, budget=3.0)
    peers = {name: load_peer(name) for name in ("casadi", "jax")}
    print_header("diffsim compiled-kernel benchmark" + (" (--quick)" if args.quick else ""),
                 ["diffsim", "numba", "llvmlite", "casadi", "jax", "jaxlib"], source=ds)
    for name, mod in peers.items():
        if mod is None:
            print(f"skipped: {name} not installed ({SKIP_HINT})")
    print("threads: one per engine (the Numba loops are serial; XLA single-threaded Eigen; CasADi map serial)")
    print(f"timing: best of {timing['rounds']} interleaved rounds of one call of each compiled loop or batch "
          f"(at most {timing['budget']} s each), after a warm-up call; gc off")
    print(f"kernel cache: {ds.codegen.cache_dir()}")
    specs = kernel_specs()
    kernels, seconds = compile_kernels(specs)
    print(f"ds.compile of {len(kernels)} kernel sets (trace + codegen + load; Numba compiles lazily): {seconds:.2f} s")
    bench_models(specs, kernels, n, timing)
    bench_hand(specs, kernels, n, timing)
    bench_peers(peers, specs, kernels, n, m, n_scan, timing)
    bench_compile(["cart_pole", "acrobot"], cold_runs=1 if args.quick else 2, warm_runs=1 if args.quick else 3)


if __name__ == "__main__":
    main()
