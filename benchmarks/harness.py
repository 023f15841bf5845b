"""The one harness of the scripts in ``benchmarks/``: timing with calibration (:func:`best_of`,
interleaved, timeit-style; :func:`best_of_few` for slow calls; :func:`timed`), peak memory
(:func:`peak_memory`, VmHWM after clear_refs: see :mod:`diffsim.measure`), cold and warm compile
in fresh processes (:func:`run_fresh`, :func:`cold_and_warm`), optional peers
(:func:`load_peers`), aligned tables and a header describing the machine. Plain standard
library + numpy + diffsim.measure; nothing here is measured.

Run the scripts from the repository root as ``python benchmarks/NAME.py``: this folder is then
first on the path, so ``import harness`` finds this module, and no script is named after a
package it imports (hence ``learned_potentials.py``), so no script edits ``sys.path``.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from typing import Any, Callable, Sequence

import numpy as np

from diffsim.measure import peak_memory, timed  # noqa: F401  (part of the harness)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The scripts time Numba's compiled code, and their cold columns time its compilation: a first call
# compiles before it runs (by default diffsim interprets first calls while a background process
# compiles, so warm timings in a cold cache would time the Python twins: see diffsim.interpreted).
# The fresh-process rows of control.py set the mode of each child themselves.
os.environ.setdefault("DIFFSIM_JIT", "eager")

SKIP_HINT = "pip install -e '.[bench]'"


def best_of(runners: dict[str, Callable[[], object]], rounds: int = 20, min_time: float = 0.005,
            budget: float = 5.0, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Best (smallest) seconds per call of each runner, timeit-style but interleaved.

    Each runner is called once to warm up, then given a number of calls per measurement that
    makes one measurement last at least ``min_time``. Then up to ``rounds`` rounds measure the
    runners in turn (a runner drops out once it has spent ``budget`` seconds), so that a slow
    spell of a shared machine hits every runner alike. The garbage collector is off while
    measuring, as in :mod:`timeit`. ``clock`` is wall time by default; ``time.process_time``
    measures CPU time (what the engine costs, apart from the time other processes held the core)."""
    for fn in runners.values():
        fn()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        number = {name: _calibrate(fn, min_time, clock) for name, fn in runners.items()}
        best = dict.fromkeys(runners, float("inf"))
        spent = dict.fromkeys(runners, 0.0)
        for _ in range(rounds):
            for name, fn in runners.items():
                if spent[name] < budget or best[name] == float("inf"):
                    elapsed = _measure(fn, number[name], clock)
                    best[name] = min(best[name], elapsed / number[name])
                    spent[name] += elapsed
    finally:
        if enabled:
            gc.enable()
    return best


def _calibrate(fn: Callable[[], object], min_time: float, clock: Callable[[], float] = time.perf_counter) -> int:
    """Calls per measurement so that one measurement lasts at least ``min_time``."""
    number = 1
    while (elapsed := _measure(fn, number, clock)) < min_time and number < 1 << 20:
        number *= 10 if elapsed == 0 else max(2, min(10, int(1.2 * min_time / elapsed) + 1))
    return number


def _measure(fn: Callable[[], object], number: int, clock: Callable[[], float] = time.perf_counter) -> float:
    def calls():
        for _ in range(number):
            fn()

    if clock is time.perf_counter:
        return timed(calls)[0]
    start = clock()  # another clock (CPU time): the same loop, read with it
    calls()
    return clock() - start


def best_of_few(fn: Callable[[], object], first: float, first_counts: bool, repeats: int,
                budget: float) -> tuple[float, int]:
    """Best seconds per call of a slow ``fn`` over at most ``repeats`` more calls within ``budget``
    seconds (the first call, already made and taking ``first`` s, counts when ``first_counts``);
    returns (best, calls counted)."""
    best, count = (first, 1) if first_counts else (math.inf, 0)
    spent = first
    while count < repeats and (count == 0 or spent + best <= budget):
        t, _ = timed(fn)
        best, count, spent = min(best, t), count + 1, spent + t
    return best, count


def run_fresh(command: Sequence[str] | str, cache: str | None = None, env: dict | None = None) -> tuple[dict, float]:
    """Run a fresh interpreter (a ``python -c`` script given as a string, or the arguments after
    ``python``) in the repository root, with ``DIFFSIM_CACHE_DIR=cache`` when given (and without
    ``NUMBA_CACHE_DIR``); returns the
    JSON object its last line of output prints and the process's wall time (interpreter start
    and imports included). Raises with the child's stderr when it fails."""
    env = dict(os.environ if env is None else env)
    env.pop("NUMBA_CACHE_DIR", None)  # diffsim's kernels cache beside their generated modules
    if cache is not None:
        env["DIFFSIM_CACHE_DIR"] = cache
    args = ["-c", command] if isinstance(command, str) else list(command)
    start = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"subprocess {args[:3]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1]), wall


def cold_and_warm(command: Sequence[str] | str, warm_runs: int = 1) -> tuple[tuple[dict, float], list]:
    """Compile time: ``command`` (as for :func:`run_fresh`) once with an empty kernel cache (cold:
    everything traced and compiled), then ``warm_runs`` times with the cache it left (warm: a new
    process that loads the compiled code). Returns ((json, wall) cold, [(json, wall)] warm)."""
    with tempfile.TemporaryDirectory(prefix="diffsim-bench-") as cache:
        cold = run_fresh(command, cache)
        warm = [run_fresh(command, cache) for _ in range(warm_runs)]
    return cold, warm


def load_peers(loaders: dict[str, Callable[[], Any]], missing: Callable[[str, ImportError], Any] | None = None
               ) -> dict[str, Any]:
    """name -> what ``loaders[name]()`` returns, for each peer that imports; a peer whose import
    fails maps to ``missing(name, error)`` (None without ``missing``), so a script reports it as
    skipped instead of failing.

    >>> load_peers({"json": lambda: "ok", "nothing": lambda: __import__("no_such_module_here")})
    {'json': 'ok', 'nothing': None}
    """
    peers = {}
    for name, loader in loaders.items():
        try:
            peers[name] = loader()
        except ImportError as exc:
            peers[name] = missing(name, exc) if missing is not None else None
    return peers


def page_faults_per_call(fn: Callable[[], object], number: int = 10) -> float | None:
    """Minor page faults (fresh memory pages touched) per call of ``fn``; None where the
    ``resource`` module is missing (Windows). Many faults mean the allocator hands memory back
    to the OS between calls and gets it again, which can cost as much as the arithmetic."""
    try:
        import resource
    except ImportError:
        return None
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(number):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / number


def fmt_time(seconds: float) -> str:
    """Seconds as a short string in ns, µs, ms or s."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.1f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds:.3f} s"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print ``rows`` under ``headers`` as a Markdown-compatible table: first column left
    aligned, the others right aligned."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r):
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                 for i, (c, w) in enumerate(zip(r, widths, strict=True))) + " |"

    print(f"\n### {title}\n")
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))


def version(dist: str) -> str:
    """Installed version of distribution ``dist``, or 'not installed'."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def blas_info() -> tuple[str, int | None]:
    """numpy's BLAS library and its thread count (None when unknown: no threadpoolctl and no
    thread variable in the environment)."""
    try:
        name = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:
        name = "unknown BLAS"
    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        # other packages may bundle their own BLAS (cyipopt-wheels does): numpy's is in numpy's tree
        mine = [p for p in pools if os.sep + "numpy" in p.get("filepath", "")]
        if mine or pools:
            return name, int((mine or pools)[0]["num_threads"])
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return name, int(os.environ[var])
    return name, None


def usable_cpus() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def git_revision(module) -> str:
    """The git commit that ``module``'s package comes from, marked when its files differ."""
    pkg = os.path.dirname(os.path.abspath(module.__file__))
    git = ["git", "-C", pkg]
    try:
        head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(git + ["status", "--porcelain", "."], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"git {head}" + (" + uncommitted changes" if dirty else "")


def print_header(title: str, dists: Sequence[str], source=None) -> None:
    """Title, date, machine, the versions of ``dists`` and the git revision of module ``source``."""
    blas, threads = blas_info()
    threads = (f"{threads} thread{'s' if threads != 1 else ''}" if threads
               else "threads: library default (no threadpoolctl)")
    print(f"# {title}\n")
    print(f"date:    {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"machine: {platform.machine()} {_cpu_model()}, {os.cpu_count()} CPUs ({usable_cpus()} usable), "
          f"{platform.system()} {platform.release()}")
    print(f"python:  {sys.version.split()[0]}; numpy {np.__version__} with {blas}, {threads}")
    print("versions: " + ", ".join(f"{d} {version(d)}" for d in dists))
    print(f"jit:     DIFFSIM_JIT={os.environ.get('DIFFSIM_JIT')} (first calls compile before they run; timings are "
          "Numba's code)")
    if source is not None:
        print(f"source:  {source.__name__} from {git_revision(source)}")


def load_average() -> str:
    """The system's 1-minute load average against the usable CPUs, to tell a busy machine apart
    from a slow run (timings on a machine shared with other jobs vary from run to run)."""
    try:
        one = os.getloadavg()[0]
    except (AttributeError, OSError):
        return "load average unknown"
    cpus = usable_cpus()
    note = "other jobs were running: expect noisy timings" if one > 0.5 * cpus else "quiet"
    return f"load average {one:.2f} (1 min) on {cpus} usable CPUs: {note}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
