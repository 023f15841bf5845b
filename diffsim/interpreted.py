"""A generated module's first calls run as plain Python while Numba compiles it in the background.

Numba's type inference and lowering of a generated stage module cost 2-3 ms of CPU per
statement: 10-20 s before a new optimal control problem's first iteration. The same source runs
unchanged as Python (the kernels are straight-line scalar code over numpy arrays), about 100x
slower per call than compiled but with nothing to wait for: a first solve of a cart-pole takes
about a second that way. So a module loaded with :func:`interpret_until_compiled` serves each
function from its Python twin until Numba's compiled version is on disk, and a background process
(one per Python process, fed through a pipe; one at a time per module across processes) compiles each function for the
argument types of its first call and writes Numba's cache. Once that function is in the cache,
later calls go to Numba (the swap is per function and changes nothing but speed: the twin runs
the same operations in the same order on IEEE doubles; where Python raises on a domain or range
error, the twin returns what the compiled code returns: ``log(0) = -inf``, ``sqrt(-1) = nan``).
Loops compiled with ``fastmath`` would round differently from their twin: generated modules that
are interpreted first (fixed-step ODE problems', the transcriptions', collocation's and DDP's) use none.
The straight-line kernels run in Python floats, 3-4x faster than on numpy scalars, and rerun on
numpy scalars when Python raises (see :func:`_float_kernels`).
A function already in the disk cache is never interpreted. The compile process outlives a short
script, so its next run finds everything compiled.

``DIFFSIM_JIT=eager`` turns this off (every first call compiles in the process, as before);
``DIFFSIM_JIT=background`` is the default.

>>> import numpy as np
>>> from diffsim.codegen import compile_module
>>> loops = '''
... @njit(cache=True)
... def total(x):
...     s = 0.0
...     for i in range(x.shape[0]):
...         s += sq_forward_unchecked(x[i:i + 1])
...     return s
... '''
>>> module, _ = compile_module({"sq_": (lambda x: x[0] * x[0], (1,))}, extra=loops, interpret_first=True)
>>> float(module.total(np.array([1.0, 2.0, 3.0])))
14.0
"""

from __future__ import annotations

import math
import os
import pathlib
import pickle
import re
import subprocess
import sys
import threading
from types import ModuleType
from typing import Any, Callable

import numpy as np

ENV = "DIFFSIM_JIT"


def background_enabled() -> bool:
    """Whether first calls are interpreted while a background process compiles (``DIFFSIM_JIT``)."""
    mode = os.environ.get(ENV, "background").strip().lower()
    if mode not in ("background", "eager"):
        from .errors import DiffsimError

        raise DiffsimError(f"{ENV}={mode!r}: give 'background' (interpret first calls while compiling, the "
                           "default) or 'eager' (compile at the first call)")
    return mode == "background" and not os.environ.get("NUMBA_DISABLE_JIT")


def _numba_like(name: str, f: Callable) -> Callable:
    """``math.<name>`` returning what Numba's compiled call returns where Python's raises."""
    fallback = getattr(np, {"pow": "power", "fabs": "abs", "atan2": "arctan2", "asin": "arcsin",
                            "acos": "arccos", "atan": "arctan", "asinh": "arcsinh", "acosh": "arccosh",
                            "atanh": "arctanh"}.get(name, name), None)

    def call(*args):
        try:
            value = f(*args)  # a Python float would raise at the next division by zero: give numpy's
            return np.float64(value) if type(value) is float else value
        except (ValueError, OverflowError, ZeroDivisionError):
            if fallback is None:
                return math.nan
            with np.errstate(all="ignore"):
                return np.float64(fallback(*[np.float64(a) for a in args]))
    call.__name__ = name
    return call


class _Math:
    """The ``math`` module as the twins see it (constants as they are, functions made total)."""

    def __init__(self):
        for name in dir(math):
            if not name.startswith("_"):
                value = getattr(math, name)
                setattr(self, name, _numba_like(name, value) if callable(value) else value)


_MATH = _Math()


def _identity_jit(*args, **kwargs):
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return args[0]
    return lambda f: f


def python_twin(source: str, path: pathlib.Path) -> dict[str, Callable]:
    """The functions of a generated module's ``source`` as plain Python (``njit`` a no-op,
    ``prange`` = ``range``), each public one wrapped to run with Python floats as numpy scalars
    and floating-point warnings off, as compiled code runs."""
    names: dict[str, Any] = {"njit": _identity_jit, "prange": range, "__name__": f"{path.stem}_python"}
    code = compile(source.replace("from numba import njit, prange", "pass").replace("from numba import njit", "pass"),
                   str(path), "exec")
    exec(code, names)
    names["math"] = _MATH
    _float_kernels(source, path, names)
    out = {}
    for name, value in names.items():
        if callable(value) and getattr(value, "__module__", None) == names["__name__"]:
            out[name] = _as_compiled(value)
    return out


class _Slow(ArithmeticError):
    """A Python-float kernel met a value its numpy twin handles: run that twin instead."""


def _fpow(a, b):
    r = a ** b
    if type(r) is complex:  # Python's float ** gives a complex where C's pow gives nan
        raise _Slow
    return r


def _as_floats(a):
    """A 1-D float array as a list of Python floats (a kernel's read-only input), else ``a``."""
    if type(a) is np.ndarray and a.ndim == 1 and a.dtype == np.float64:
        return a.tolist()
    return a


def _as_float(a):
    return float(a) if type(a) is np.float64 else a


def _as_numpy(r):
    if type(r) is float:
        return np.float64(r)
    if type(r) is tuple:
        return tuple(np.float64(v) if type(v) is float else v for v in r)
    return r


_KERNEL = re.compile(r"^def (\w+_unchecked)\((.*?)\):\n((?:(?:    .*)?\n)+)", re.M)
_POW = re.compile(r"^(    v\d+ = )(\S+) \*\* (\S+)$", re.M)


def _float_kernel(name: str, params: list[str], body: str) -> str | None:
    """The source of kernel ``name`` computing in Python floats, or None where it is not straight-line.

    Arguments only read as ``x[<int>]`` become lists of floats at entry, numpy scalars floats;
    ``a ** b`` goes through :func:`_fpow`."""
    if re.search(r"^\s+(for|while) ", body, re.M):
        return None
    body = _POW.sub(r"\1_fpow(\2, \3)", body)
    if "**" in body:
        return None
    entry = []
    for p in params:
        uses = len(re.findall(rf"\b{p}\b", body))
        loads = len(re.findall(rf"\b{p}\[\d+\](?! =)", body))
        if uses and loads == uses:
            entry.append(f"    {p} = _as_floats({p})\n")
        elif uses and not re.search(rf"\b{p}\s*[\[.(]", body):
            entry.append(f"    {p} = _as_float({p})\n")
    return f"def {name}({', '.join(params)}):\n" + "".join(entry) + body


def _float_kernels(source: str, path: pathlib.Path, names: dict) -> None:
    """Put a Python-float version in front of each straight-line kernel (``*_unchecked``) of ``names``.

    Arithmetic on numpy scalars costs 3-5x that on Python floats, and the two give the same IEEE
    doubles for every operation that returns a number. Where Python raises instead (a division by
    zero, ``log(0)``, an overflow in ``exp``, a complex power), the call reruns in the numpy twin,
    which returns what the compiled code returns. A kernel's outputs are written whole by every
    call, so the rerun leaves no trace of the first attempt."""
    kernels = {}
    for m in _KERNEL.finditer(source):
        params = [p.strip() for p in m.group(2).split(",") if p.strip()]
        text = _float_kernel(m.group(1), params, m.group(3))
        if text is not None:
            kernels[m.group(1)] = text
    if not kernels:
        return
    fast_names = dict(names, math=math, _fpow=_fpow, _as_floats=_as_floats, _as_float=_as_float)
    exec(compile("\n\n".join(kernels.values()), str(path), "exec"), fast_names)
    for name in kernels:
        names[name] = _fast_or_numpy(fast_names[name], names[name])


def _fast_or_numpy(fast: Callable, numpy_twin: Callable) -> Callable:
    def call(*args):
        try:
            return _as_numpy(fast(*args))
        except (ArithmeticError, ValueError, TypeError):
            return numpy_twin(*args)
    call.__name__ = numpy_twin.__name__
    call.__module__ = numpy_twin.__module__
    call.__wrapped__ = numpy_twin
    return call


def _as_compiled(f: Callable) -> Callable:
    def call(*args):
        args = [np.float64(a) if type(a) is float else a for a in args]
        with np.errstate(all="ignore"):
            return f(*args)
    call.__name__ = f.__name__
    call.__wrapped__ = f
    return call


class InterpretedUntilCompiled(ModuleType):
    """A generated module whose functions run as Python until Numba has them on disk (see the
    module docstring). Attribute access gives the compiled dispatcher once it is cached, else
    a recorder that sends its first call's argument types to the background compiler."""

    def __init__(self, compiled: ModuleType, source: str, path: pathlib.Path):
        super().__init__(compiled.__name__)
        self.__file__ = str(path)
        self._compiled, self._source, self._path = compiled, source, path
        self._twins: dict[str, Callable] | None = None
        self._ready: dict[str, Callable] = {}
        self._requested: dict[str, bool] = {}

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        ready = self._ready.get(name)
        if ready is not None:
            return ready
        target = getattr(self._compiled, name)
        if not _is_dispatcher(target) or name.endswith("_unchecked") or _compiled_or_cached(target):
            self._ready[name] = target
            return target
        if _compiler().done(self._path, name):
            self._ready[name] = target
            return target
        if self._twins is None:
            self._twins = python_twin(self._source, self._path)
        twin = self._twins[name]
        if name in self._requested:
            return twin

        def first(*args):
            if name not in self._requested:
                self._requested[name] = True
                _compiler().request(self._path, self.__name__, name, _signature(args))
            return twin(*args)
        return first


def _is_dispatcher(obj) -> bool:
    return hasattr(obj, "py_func") and hasattr(obj, "_cache")


def _compiled_or_cached(dispatcher) -> bool:
    """Compiled in this process already, or with an index in Numba's disk cache."""
    if dispatcher.overloads:
        return True
    cache_file = getattr(dispatcher._cache, "_cache_file", None)
    index = getattr(cache_file, "_index_path", None)
    return index is not None and os.path.exists(index)


def _signature(args) -> tuple:
    from numba import typeof

    return tuple(typeof(np.float64(a) if type(a) is float else a) for a in args)


class _Compiler:
    """The one background process of this Python process: it reads (path, module, function,
    signature) requests from its stdin, compiles each into Numba's disk cache in order, and
    prints the function's name when it is there."""

    def __init__(self):
        self._proc: subprocess.Popen | None = None
        self._done: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def request(self, path: pathlib.Path, module: str, name: str, signature: tuple) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            if self._proc is None:
                return
            try:
                self._proc.stdin.write(pickle.dumps((str(path), module, name, signature)).hex().encode() + b"\n")
                self._proc.stdin.flush()
            except OSError:
                self._proc = None

    def done(self, path: pathlib.Path, name: str) -> bool:
        return (str(path), name) in self._done

    def _start(self) -> subprocess.Popen | None:
        root = str(pathlib.Path(__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        try:
            proc = subprocess.Popen([sys.executable, "-m", "diffsim.interpreted"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        except OSError:
            return None
        threading.Thread(target=self._read, args=(proc,), daemon=True, name="diffsim-jit-reader").start()
        return proc

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                path, name = pickle.loads(bytes.fromhex(line.decode().strip()))
            except Exception:
                continue
            self._done.add((path, name))


_COMPILER: _Compiler | None = None


def _compiler() -> _Compiler:
    global _COMPILER
    if _COMPILER is None:
        _COMPILER = _Compiler()
    return _COMPILER


def compiled_module(module: ModuleType) -> ModuleType:
    """The Numba module behind ``module``: its compiled side if it is interpreted until compiled,
    else ``module`` itself (whose functions compile at their first call).

    >>> import math
    >>> compiled_module(math) is math
    True
    """
    return module._compiled if isinstance(module, InterpretedUntilCompiled) else module


def interpret_until_compiled(compiled: ModuleType, source: str, path: pathlib.Path) -> ModuleType:
    """``compiled`` (a loaded generated module) as an :class:`InterpretedUntilCompiled` when
    background compilation is on (``DIFFSIM_JIT``), else itself."""
    return InterpretedUntilCompiled(compiled, source, path) if background_enabled() else compiled


def _one_compiler(path: str):
    """An exclusive lock on ``<kernel>.compiling`` (waits; a no-op where there is no flock)."""
    import contextlib

    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():
        with open(path + ".compiling", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    return held()


def _serve() -> None:  # pragma: no cover - runs in the background process (tested end to end)
    """The background compiler's loop (``python -m diffsim.interpreted``)."""
    import signal

    from .codegen import _load

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the terminal is for the parent
    modules: dict[str, ModuleType] = {}
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            path, _module, name, signature = pickle.loads(bytes.fromhex(line.decode().strip()))
            if path not in modules:
                modules[path] = _load(pathlib.Path(path).read_text())[0]
            with _one_compiler(path):  # another process's compiler may be at it: then this one loads its result
                getattr(modules[path], name).compile(signature)
        except Exception:
            continue  # the parent keeps interpreting this function, or compiles it itself
        try:
            out.write(pickle.dumps((path, name)).hex().encode() + b"\n")
            out.flush()
        except OSError:
            pass  # the parent has gone: keep filling the cache for its next run


if __name__ == "__main__":  # pragma: no cover
    _serve()
