"""Solve over a parameter grid and several starting guesses, as independent tasks (here or on Dask).

``sweep(problem, parameters={"T": [2, 3, 4]}, starts=K)`` solves the problem at every point of the
grid (the Cartesian product of the parameters' values) from K starting guesses: start 0 is the
problem's own guess, start k ≥ 1 random controls drawn within the bounds from a generator seeded by
k alone (the same guesses at every grid point). The result is a table (best cost per point, which
start won, how many converged) and a figure (cost against the parameter, every start; the winner).

``problem`` is a builder (a function of the parameters returning an
:class:`~trajectories.problem.OptimalControlProblem`, such as ``SYSTEMS["pendulum"]``), an
``OptimalControlProblem`` (parameters ``T`` and ``N``), or any task: a callable returning a
result with ``cost`` and ``status`` (or a number), given ``rng=`` when it takes one — a Monte-Carlo
of a closed-loop controller over random disturbances is ``sweep(run_closed_loop, {...}, starts=100)``.

>>> from trajectories.systems import double_integrator_lqr
>>> s = sweep(double_integrator_lqr, {"T": [2.0, 4.0]}, starts=2, fixed={"N": 20}, progress=False)
>>> [(p["T"], bool(r["status"])) for p, r in zip(s.points, s.best_rows())]
[(2.0, True), (4.0, True)]
"""

from __future__ import annotations

import hashlib
import inspect
import io
import itertools
import pickle
import sys
import threading
import types
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from diffsim.cluster import map_tasks, task_rng

from .problem import OptimalControlProblem, ProblemError


@dataclass(frozen=True)
class SweepTask:
    """One solve: a grid point (``params``), a start index, and the sweep's seed."""

    key: str
    params: tuple
    start: int
    seed: int


def _grid(parameters: dict) -> list[dict]:
    if not parameters:
        raise ProblemError("sweep: give at least one parameter and its values, e.g. parameters={'T': [2, 3]}")
    values = {}
    for name, v in parameters.items():
        v = np.atleast_1d(np.asarray(v))
        if v.ndim != 1 or v.size == 0:
            raise ProblemError(f"sweep: parameter {name!r} needs a non-empty list of values, got {v!r}")
        values[name] = [x.item() for x in v]
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def _accepts(fn: Callable) -> tuple[set, bool]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return set(), True
    names = {n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())


def _check_names(problem, names, fixed) -> None:
    if isinstance(problem, OptimalControlProblem):
        bad = set(names) - {"T", "N"}
        if bad:
            raise ProblemError(f"sweep over a problem instance varies T and N only, not {sorted(bad)}; pass a builder "
                               "function of the parameters instead (e.g. SYSTEMS['pendulum'])")
        return
    if not callable(problem):
        raise ProblemError(f"sweep: the problem must be an OptimalControlProblem or a callable, got {type(problem)}")
    accepted, var_kw = _accepts(problem)
    bad = (set(names) | set(fixed)) - accepted - {"rng"}
    if bad and not var_kw:
        name = getattr(problem, "__name__", "the task")
        raise ProblemError(f"{name} has no parameter {sorted(bad)}; it takes {sorted(accepted - {'rng'})}")


def _integers(problem) -> frozenset:
    """The builder's parameters whose default is an integer (N, ...): a grid's floats for them are
    cast to int. Read once per sweep (inspect.signature is ~15 µs), not once per task."""
    try:
        sig = inspect.signature(problem).parameters
    except (TypeError, ValueError):
        return frozenset()
    return frozenset(k for k, p in sig.items() if isinstance(p.default, int) and not isinstance(p.default, bool))


def _typed(integers: frozenset, params: dict) -> dict:
    """``params`` with the values of ``integers`` (see :func:`_integers`) cast to int."""
    return {k: int(round(v)) if k in integers else v for k, v in params.items()}


# what a problem compiles, once, on first use; every one a function of the problem's structure alone
_COMPILED = ("_stage_module", "_collocation_module", "_ode", "_ddp_modules")
# and what it checks once: that every control enters the functions (derivatives traced at three
# points near x0, 2 of the 15 ms of a pendulum solve), a property of the functions, so a problem of
# the same structure passes it too
_REUSED = (*_COMPILED, "_controls_checked")
_KNOWN: OrderedDict = OrderedDict()  # structure key -> compiled attributes, in this process (a worker's own)
_KNOWN_MOST = 16
_KNOWN_LOCK = threading.Lock()  # a worker may run several tasks at once (dask worker --nthreads k)


def structure_key(problem: OptimalControlProblem) -> str | None:
    """A fingerprint of everything a problem's generated kernels depend on: its functions (their
    code and every value they capture: closure cells, defaults, the globals they read, function
    attributes, and so on through the functions those capture), the sizes, scheme and name.
    Parameters, T, N, x0, bounds and guesses are not in it: they are the kernels' arguments. Two
    problems with one key compile to the same module; None if the functions cannot be pickled
    (then nothing is reused). A function importable by name (a module's top-level ``def``) is
    taken as its name: one that reads a module-level variable the builder changes between grid
    points would not be seen to change; pass such values as builder arguments, which closures
    capture. The functions are pickled by :class:`_KeyPickler` (the C pickler, with functions,
    code and modules reduced to what they are made of, as cloudpickle does: 20-40 µs for the
    pendulum, where cloudpickle, which also looks up every submodule a function's globals could
    need among ``sys.modules``, took 0.2-0.4 ms, a twentieth of a sweep task, in a worker); what
    it cannot pickle (a class defined inside a function, say) goes to cloudpickle.

    >>> from trajectories.systems import cart_pole_swingup, pendulum_swingup
    >>> structure_key(pendulum_swingup(T=3.0)) == structure_key(pendulum_swingup(T=5.0, N=20, u_max=2.0))
    True
    >>> structure_key(cart_pole_swingup(distance=1.0)) == structure_key(cart_pole_swingup(distance=2.0))
    False
    """
    functions = (problem.f, problem.L, problem.Phi, problem.g, problem.h_eq, problem.h_in)
    try:
        blob = _fingerprint(functions)
    except Exception:  # something the plain pickler cannot take (a local class): cloudpickle's way
        try:
            import cloudpickle

            blob = b"cloudpickle" + cloudpickle.dumps(functions)
        except Exception:  # no cloudpickle, or a function that captures something unpicklable: compile as usual
            return None
    sizes = (problem.n_x, problem.n_u, problem.n_p, problem.n_g, problem.n_eq, problem.n_in, problem.free_time,
             problem.scheme, problem.name)
    return hashlib.sha256(blob + repr(sizes).encode()).hexdigest()


def _fingerprint(values) -> bytes:
    """The bytes of ``values`` as :class:`_KeyPickler` writes them (never loaded: only compared)."""
    out = io.BytesIO()
    _KeyPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(values)
    return out.getvalue()


class _KeyPickler(pickle.Pickler):
    """A pickler for fingerprints: a function not importable by its name becomes its code, the
    globals its code reads (their values, now), its defaults, closure cells, attributes; a code
    object its bytecode, constants, names and signature; a module its name. Everything else
    pickles as usual (numbers, arrays by their bytes, importable functions and classes by name),
    so a value captured anywhere in a problem's functions is in its bytes. A function that
    captures itself recurses without end and is left to cloudpickle (RecursionError)."""

    def reducer_override(self, obj):
        kind = type(obj)
        if kind is types.FunctionType and not _by_name(obj):
            cells = tuple(_cell(c) for c in obj.__closure__ or ())
            reads = {name: obj.__globals__[name] for name in _global_names(obj.__code__) if name in obj.__globals__}
            return _part, ("function", obj.__code__, reads, obj.__defaults__, obj.__kwdefaults__, cells,
                           obj.__dict__ or None)
        if kind is types.CodeType:
            return _part, ("code", obj.co_code, obj.co_consts, obj.co_names, obj.co_varnames, obj.co_freevars,
                           obj.co_cellvars, obj.co_argcount, obj.co_posonlyargcount, obj.co_kwonlyargcount,
                           obj.co_flags, obj.co_name)
        if kind is types.ModuleType:
            return _part, ("module", obj.__name__)
        return NotImplemented


def _part(*what):  # the callable a fingerprint's reductions name; fingerprints are never unpickled
    return what


def _by_name(fn) -> bool:
    """True if ``fn`` is what its module and qualified name lead to (pickled as that name)."""
    module = sys.modules.get(fn.__module__) if fn.__module__ != "__main__" else None  # __main__: by value, as
    target = module                                                                    # cloudpickle does
    for part in fn.__qualname__.split("."):
        target = getattr(target, part, None)
    return module is not None and target is fn


def _cell(cell):
    try:
        return cell.cell_contents
    except ValueError:  # a cell not filled yet
        return _EMPTY_CELL


_EMPTY_CELL = "<empty cell>"
_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # code -> the global names it may read


def _global_names(code) -> tuple:
    """Every name ``code`` and the code objects nested in it look up (sorted): those that are keys
    of a function's globals are the globals it reads."""
    names = _NAMES.get(code)
    if names is None:
        found = set(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                found.update(_global_names(const))
        names = _NAMES[code] = tuple(sorted(found))
    return names


def _reuse_compiled(problem: OptimalControlProblem) -> str | None:
    """Give ``problem`` the kernels this process compiled for a problem of the same structure (a
    sweep's builder makes a new problem at every point: without this, each task traces and
    differentiates its functions anew, ~0.1 s, for the module it loads from the disk cache)."""
    key = structure_key(problem)
    if key is None:
        return None
    with _KNOWN_LOCK:
        known = dict(_KNOWN.get(key) or {})
        if known:
            _KNOWN.move_to_end(key)
    for name, value in known.items():
        if not problem.__dict__.get(name):  # a new problem holds None (_ode) or nothing yet
            problem.__dict__[name] = value
    return key


def _remember_compiled(problem: OptimalControlProblem, key: str | None) -> None:
    if key is None:
        return
    compiled = {name: problem.__dict__[name] for name in _REUSED if problem.__dict__.get(name)}
    if compiled:
        with _KNOWN_LOCK:
            _KNOWN.setdefault(key, {}).update(compiled)
            _KNOWN.move_to_end(key)
            while len(_KNOWN) > _KNOWN_MOST:
                _KNOWN.popitem(last=False)


def portable(problem: OptimalControlProblem) -> OptimalControlProblem:
    """A copy of ``problem`` without its compiled kernels (generated modules that a worker process
    cannot unpickle), which a worker loads itself from the shared disk cache.

    >>> from trajectories.systems import pendulum_swingup
    >>> p = portable(pendulum_swingup(N=10))
    >>> p.N, p._ode is None, p._ddp_modules
    (10, True, {})
    """
    other = problem.with_steps(problem.N)
    for name in _COMPILED:
        other.__dict__.pop(name, None)
    other._ode = None
    other._ddp_modules = {}
    return other


def random_start(problem: OptimalControlProblem, rng: np.random.Generator) -> np.ndarray:
    """Random controls (N, m): uniform within finite bounds, standard normal where unbounded.

    >>> from trajectories.systems import pendulum_swingup
    >>> U = random_start(pendulum_swingup(N=10), np.random.default_rng(0))
    >>> U.shape, bool(np.all(np.abs(U) <= 4.0))
    ((10, 1), True)
    """
    lo, hi = np.broadcast_to(problem.u_lower, (problem.N, problem.n_u)), np.broadcast_to(problem.u_upper,
                                                                                         (problem.N, problem.n_u))
    finite = np.isfinite(lo) & np.isfinite(hi)
    u = rng.standard_normal((problem.N, problem.n_u))
    return np.where(finite, np.where(finite, lo, 0.0) + rng.random((problem.N, problem.n_u))
                    * np.where(finite, hi - lo, 0.0), np.clip(u, lo, hi))


def solve_point(task: SweepTask, shared) -> dict:
    """The task function: build (or adapt) the problem at ``task.params`` and solve it from the start."""
    from . import solve

    problem, fixed, method, options, solutions, (integers, takes_rng) = shared
    params = dict(task.params)
    rng = task_rng(f"start-{task.start}", task.seed)
    if isinstance(problem, OptimalControlProblem):
        ocp = problem.with_steps(int(params["N"])) if "N" in params else problem
        if "T" in params:
            import copy

            ocp = copy.copy(ocp)
            ocp.T = float(params["T"])
    else:
        kwargs = dict(fixed, **_typed(integers, params))
        if takes_rng:
            kwargs["rng"] = rng
        ocp = problem(**kwargs)
    if not isinstance(ocp, OptimalControlProblem):  # any task: its result is the outcome
        status, cost = _outcome(ocp)
        return {"status": status, "cost": cost, "iterations": 0, "seconds": 0.0, "message": "",
                "result": ocp if solutions else None}
    extra = {} if task.start == 0 else {"U0": random_start(ocp, rng)}
    key = _reuse_compiled(ocp)
    sol = solve(ocp, **({} if method is None else {"method": method}), **extra, **options)
    _remember_compiled(ocp, key)
    return {"status": bool(sol.status), "cost": float(sol.cost), "iterations": int(sol.iterations),
            "seconds": float(sol.seconds), "message": sol.message, "result": sol if solutions else None}


def _outcome(result) -> tuple[bool, float]:
    if isinstance(result, dict):
        return bool(result.get("status", True)), float(result["cost"])
    if hasattr(result, "cost"):
        return bool(getattr(result, "status", True)), float(result.cost)
    return True, float(result)


@dataclass
class Sweep:
    """Every solve of a sweep: ``points`` (the grid, in order), ``rows[i][k]`` the outcome at point
    i from start k (status, cost, iterations, seconds, message, result: the Solution, or None for a
    sweep run with ``solutions=False``)."""

    names: list
    points: list
    starts: int
    rows: list = field(default_factory=list)

    def best_rows(self) -> list:
        """Per point, the converged start of lowest cost (or start 0's failure if none converged)."""
        out = []
        for row in self.rows:
            ok = [r for r in row if r["status"] and np.isfinite(r["cost"])]
            out.append(min(ok, key=lambda r: r["cost"]) if ok else row[0])
        return out

    def best_start(self) -> list:
        """Per point, the index of the winning start (-1 if none converged)."""
        return [row.index(b) if b["status"] else -1 for row, b in zip(self.rows, self.best_rows())]

    def table(self) -> str:
        """One line per grid point: parameters, best cost, winning start, converged starts, cost spread."""
        head = "".join(f"{n:>10}" for n in self.names)
        lines = [f"{head} {'best cost':>14} {'start':>6} {'solved':>7} {'worst solved':>14}"]
        for p, row, best, k in zip(self.points, self.rows, self.best_rows(), self.best_start()):
            costs = [r["cost"] for r in row if r["status"]]
            worst = f"{max(costs):14.6g}" if costs else f"{'-':>14}"
            lines.append("".join(f"{p[n]:10.4g}" for n in self.names)
                         + f" {best['cost']:14.8g} {k if k >= 0 else 'none':>6} {len(costs):>3}/{len(row):<3} {worst}")
        return "\n".join(lines)

    def plot(self, path: str | None = None):
        """Cost against the first parameter (every start; the best as a line; one line per value of
        the other parameters) and which start won."""
        from diffsim.files import pyplot, write_figure

        plt = pyplot(saving=path is not None)

        x_name, others = self.names[0], self.names[1:]
        fig, (ax, ax_w) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
        groups: dict = {}
        for i, p in enumerate(self.points):
            groups.setdefault(tuple(p[n] for n in others), []).append(i)
        best, winner = self.best_rows(), self.best_start()
        for label, idx in groups.items():
            xs = [self.points[i][x_name] for i in idx]
            tag = ", ".join(f"{n}={v:g}" for n, v in zip(others, label))
            line, = ax.plot(xs, [best[i]["cost"] if best[i]["status"] else np.nan for i in idx], "-",
                            label="best" + (f" ({tag})" if tag else ""))
            for i, x in zip(idx, xs):
                solved = [r["cost"] for r in self.rows[i] if r["status"]]
                ax.plot([x] * len(solved), solved, "o", ms=4, alpha=0.5, color=line.get_color())
            ax_w.plot(xs, [winner[i] for i in idx], "o-", color=line.get_color())
        ax.set(xlabel=x_name, ylabel="cost", title=f"cost at each point, {self.starts} starts (dots: converged)")
        ax_w.set(xlabel=x_name, ylabel="winning start (-1: none converged)", title="which start won")
        ax_w.set_yticks(range(-1, self.starts))
        for a in (ax, ax_w):
            a.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path)
        return fig


def sweep(problem: OptimalControlProblem | Callable, parameters: dict[str, Sequence[float]], starts: int = 1,
          method: str | None = None, fixed: dict | None = None, seed: int = 0, client=None, progress: bool = True,
          solutions: bool = True, **options: Any) -> Sweep:
    """Solve ``problem`` at every point of the ``parameters`` grid from ``starts`` starting guesses
    with :func:`trajectories.solve` (``method``, default solve's own, and ``options`` passed on; ``fixed``: more builder
    arguments), on ``client``'s workers or here. See the module docstring. ``solutions=False`` keeps
    of each solve only what the table and the figure use (status, cost, iterations, seconds,
    message), not its :class:`~trajectories.result.Solution` (trajectories, multipliers, the
    solver's last iterate: 10 kB for the pendulum at N = 40) that a worker would send back and the
    client hold for every task."""
    if int(starts) != starts or starts < 1:
        raise ProblemError(f"sweep: starts must be a whole number ≥ 1, got {starts}")
    fixed = dict(fixed or {})
    points = _grid(parameters)
    _check_names(problem, list(parameters), fixed)
    if isinstance(problem, OptimalControlProblem):
        facts = (frozenset(), False)
        if client is not None:
            problem = portable(problem)
    else:  # the builder's signature, read here once rather than in every task
        facts = (_integers(problem), "rng" in _accepts(problem)[0])
    tasks = [SweepTask(",".join(f"{n}={v:g}" for n, v in p.items()) + f"/start={k}", tuple(p.items()), k, int(seed))
             for p in points for k in range(int(starts))]
    done = {}
    for key, out in map_tasks(solve_point, tasks, keys=[t.key for t in tasks], client=client,
                              shared=(problem, fixed, method, options, bool(solutions), facts), progress=progress,
                              description="sweep",
                              raise_failures=False):  # a point whose builder raises is a failed row, not a lost sweep
        done[key] = out if isinstance(out, dict) else {"status": False, "cost": float("nan"), "iterations": 0,
                                                         "seconds": 0.0, "message": out.message, "result": None}
    rows = [[done[tasks[i * int(starts) + k].key] for k in range(int(starts))] for i in range(len(points))]
    return Sweep(list(parameters), points, int(starts), rows)
