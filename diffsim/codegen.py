"""Trace and compile: Numba kernels for a small function and its derivatives.

``ds.compile(fun, *arg_shapes)`` runs ``fun`` once on symbolic arrays (:mod:`diffsim.symbolic`),
differentiates it with the engine's own ``vjp`` and ``jvp`` (so the rule table is the same one
the eager interpreter uses), and emits straight-line Python with scalar locals for

- ``forward(*args)``                      the value (a float, or a 1-D array);
- ``vjp(*args, ct)``                      one cotangent per argument (a tuple);
- ``jvp(*args, *tangents)``               the output tangent;
- ``jacobian(*args)``                     one Jacobian per argument, shape ``out + arg``;
- ``hvp(*args, ct, *tangents)``           forward-over-reverse: d/dε vjp(args + ε·tangents, ct);
- ``forward_into(*args, out)``, ``vjp_into(*args, ct, *grads)``, ``jvp_into(*args, *tangents, out)``:
  the same, writing array results into caller-provided buffers (no allocation in hot loops;
  a scalar result is returned).

Each is a ``numba.njit`` dispatcher, callable from Python and from other compiled code; it
checks its argument shapes and raises ``ValueError`` on a mismatch. ``k.unchecked.<name>`` is
the same body without the checks, for hot loops whose shapes are right by construction: the
checks stop Numba from inlining a kernel into its caller, which costs 20-35 ns a call. The
generated module is written to a cache directory under a name derived from its source (so a
changed function is a new module) and compiled with ``cache=True``: a second process that
compiles the same function finds Numba's on-disk cache and compiles nothing.

The cache directory is ``$DIFFSIM_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/diffsim`` (by
default ``~/.cache/diffsim``), with kernels in its ``kernels/`` folder.

Arguments of shape ``()`` are passed as Python floats; others as float64 arrays.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib.util
import inspect
import keyword
import os
import pathlib
import re
import sys
import tempfile
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable, Sequence

import numpy as np

from .files import write_atomic
from .primitives import HELPERS, REGISTRY
from .symbolic import Graph, Sym, SymArray, TraceError, live_instructions
from .transforms import jvp as _jvp
from .transforms import vjp as _vjp

# derived from the one rule table: each primitive declares its scalar template and helpers
_TEMPLATES = {name: p.template for name, p in REGISTRY.items() if p.template is not None}
_HELPERS = HELPERS

_JIT = '@njit(cache=True, error_model="numpy", nogil=True)'


def cache_dir() -> pathlib.Path:
    """Where generated kernel modules (and Numba's cache of them) are kept."""
    root = os.environ.get("DIFFSIM_CACHE_DIR")
    if root is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "diffsim")
    return pathlib.Path(root) / "kernels"


@dataclass
class Kernel:
    """Compiled kernels for one traced function (see the module docstring)."""

    fun: Callable
    arg_shapes: tuple
    out_shape: tuple
    arg_names: tuple
    source: str
    path: pathlib.Path
    forward: Any = field(repr=False)
    vjp: Any = field(repr=False)
    jvp: Any = field(repr=False)
    jacobian: Any = field(repr=False)
    hvp: Any = field(repr=False)
    forward_into: Any = field(repr=False)
    vjp_into: Any = field(repr=False)
    jvp_into: Any = field(repr=False)
    op_counts: dict = field(default_factory=dict)
    unchecked: Any = field(default=None, repr=False)

    def __call__(self, *args):
        return self.forward(*args)

    def __reduce__(self):
        """Pickled as its generated source (the traced function itself is not kept: ``fun`` is None
        on the copy); the copy loads the module from the disk cache, or writes and compiles it."""
        made = tuple(kind for kind in _KINDS if getattr(self, kind) is not None)
        name = getattr(self, made[0]).__name__
        meta = dict(arg_shapes=self.arg_shapes, out_shape=self.out_shape, arg_names=self.arg_names,
                    op_counts=self.op_counts)
        return _kernel_from_source, (self.source, name[:len(name) - len(made[0])], made, meta)

    def compile_all(self) -> None:
        """Compile every kernel now (for float64 inputs) instead of at first call (all kinds: a
        Kernel made with only some of them has nothing to call for the others)."""
        args = [0.5 if s == () else np.full(s, 0.5) for s in self.arg_shapes]
        ct = 1.0 if self.out_shape == () else np.ones(self.out_shape)
        self.forward(*args)
        self.vjp(*args, ct)
        self.vjp_into(*args, ct, *[np.empty(s) for s in self.arg_shapes if s != ()])
        out = [] if self.out_shape == () else [np.empty(self.out_shape)]
        self.forward_into(*args, *out)
        self.jvp_into(*args, *args, *out)
        self.jvp(*args, *args)
        self.jacobian(*args)
        self.hvp(*args, ct, *args)


def compile(fun: Callable, *arg_shapes: int | Sequence[int], name: str | None = None) -> Kernel:
    """Trace ``fun`` and generate compiled forward, VJP, JVP, Jacobian and HVP kernels.

    ``arg_shapes`` gives each argument's shape: an int ``n`` for a vector of length n, ``()``
    for a scalar (passed as a float), or a tuple.

    >>> import numpy as np, diffsim as ds, diffsim.numpy as dnp
    >>> def pendulum(x, u):
    ...     return dnp.array([x[1], -9.81 * dnp.sin(x[0]) + u[0]])
    >>> k = ds.compile(pendulum, 2, 1)
    >>> k.forward(np.array([0.0, 1.0]), np.array([0.5]))
    array([1. , 0.5])
    >>> k.jacobian(np.array([0.0, 1.0]), np.array([0.5]))[0]
    array([[ 0.  ,  1.  ],
           [-9.81,  0.  ]])
    """
    shapes = tuple(_shape(s, i) for i, s in enumerate(arg_shapes))
    if not shapes:
        raise ValueError("ds.compile needs the shape of each argument, e.g. ds.compile(f, 4, 1)")
    title = name or getattr(fun, "__qualname__", "fun")
    return compile_module({"": (fun, shapes)}, title=title)[1][""]


def compile_module(specs: dict[str, tuple], extra: str = "", title: str = "functions",
                   calls: Sequence[str] | None = None, interpret_first: bool = False):
    """Trace several functions into one generated, cached module, plus ``extra`` source (compiled
    loops that call the kernels by name, such as the ODE solvers). Kernels of the function under
    key ``prefix`` are named ``{prefix}forward``, ``{prefix}vjp_into`` and so on.

    A spec may name the kernels it needs as a third element, ``(fun, shapes, kinds)`` with kinds a
    subset of ``("forward", "vjp", "jvp", "jacobian", "hvp", "forward_into", "vjp_into",
    "jvp_into")``: only those are traced and emitted (the others are None on its Kernel). A
    function whose value is itself a block of derivatives (traced with ``vjp`` inside) then costs
    no derivatives of its own. Without it, all of them (the source is the same as before).

    Returns ``(module, {prefix: Kernel})``. Code in ``extra`` must be ``@njit(cache=True)``
    functions: being in the same module as the kernels is what lets Numba cache them on disk.
    The names are the contract between the specs and the template: with ``calls``, the kernel
    prefixes the template may call, every ``{prefix}{kind}_unchecked`` in the template must be one
    of them and each of them must have a spec, or this raises naming the kernel (without it, a
    template can call kernels that only some spec sets define, and a missing one fails at its
    first call).

    With ``interpret_first`` the module's functions that are not in Numba's disk cache yet run as
    Python while a background process compiles them (:mod:`diffsim.interpreted`); the Kernels
    are Numba's either way.
    """
    if calls is not None:
        _check_template(extra, specs, calls, title)
    helpers: set[str] = set()
    bodies, metas = [], {}
    kinds_of = {}
    for prefix, spec in specs.items():
        fun, shapes, kinds = (*spec, _KINDS) if len(spec) == 2 else spec
        unknown = sorted(set(kinds) - set(_KINDS))
        if unknown:
            raise ValueError(f"{title}: unknown kernel kinds {unknown} for {prefix!r}; choose from {list(_KINDS)}")
        shapes = tuple(_shape(s, i) for i, s in enumerate(shapes))
        body, meta = _kernel_set(fun, shapes, prefix, helpers, tuple(kinds))
        bodies += body
        metas[prefix], kinds_of[prefix] = meta, kinds
    source = _module_source(title, bodies, helpers, extra)
    module, path = _load(source)
    kernels = {prefix: _bind(module, path, source, prefix, kinds_of[prefix], meta) for prefix, meta in metas.items()}
    if interpret_first:
        from .interpreted import interpret_until_compiled

        module = interpret_until_compiled(module, source, path)
    return module, kernels


_KINDS = ("forward", "vjp", "jvp", "jacobian", "hvp", "forward_into", "vjp_into", "jvp_into")


def _kernel_from_source(source: str, prefix: str, made: tuple, meta: dict) -> Kernel:
    """A Kernel unpickled (:meth:`Kernel.__reduce__`): the kernels ``made`` of ``prefix`` in the
    module of ``source``."""
    module, path = _load(source)
    return _bind(module, path, source, prefix, made, dict(meta, fun=None))


def _bind(module, path, source: str, prefix: str, made, meta: dict) -> Kernel:
    """The Kernel of ``prefix``'s functions ``made`` in the loaded ``module`` (None for the others)."""
    fns = {kind: getattr(module, prefix + kind) if kind in made else None for kind in _KINDS}
    unchecked = SimpleNamespace(**{kind: getattr(module, f"{prefix}{kind}_unchecked") if kind in made else None
                                   for kind in _KINDS})
    return Kernel(source=source, path=path, unchecked=unchecked, **meta, **fns)

_CALLED_KERNEL = re.compile(r"\b(\w+?_)(?:forward|vjp|jvp|jacobian|hvp)(?:_into)?_unchecked\b")


def _check_template(extra: str, specs: dict, calls: Sequence[str], title: str) -> None:
    """Raise if the template ``extra`` calls a kernel outside ``calls``, or a prefix in ``calls``
    has no spec (Numba would otherwise fail at the first call with a bare NameError)."""
    undeclared = sorted({m.group(1) for m in _CALLED_KERNEL.finditer(extra)} - set(calls))
    if undeclared:
        raise ValueError(f"{title}: the compiled loops call kernels with prefixes {undeclared} beyond the declared "
                         f"{sorted(calls)}; declare them and give their specs")
    missing = sorted(set(calls) - set(specs))
    if missing:
        raise ValueError(f"{title}: the compiled loops call kernels with prefixes {missing} that no spec defines "
                         f"(specs give {sorted(specs)}); add those functions to the specs")


def _kernel_set(fun, shapes, prefix, helpers, kinds=_KINDS):
    """Trace ``fun`` and emit the bodies of its kernels ``kinds`` (named with ``prefix``)."""
    names = _arg_names(fun, len(shapes))
    graph = Graph()
    primals = [graph.input_array(n, s) for n, s in zip(names, shapes)]
    tangents = [graph.input_array(f"d_{n}", s) for n, s in zip(names, shapes)]

    value, back = _vjp(fun, *primals)
    out_shape = _output_shape(value)
    ct = graph.input_array("ct", out_shape)
    wanted = set(kinds)
    grads = back(ct) if wanted & {"vjp", "vjp_into"} else ()
    tangent_out = _jvp(fun, primals, tangents)[1] if wanted & {"jvp", "jvp_into"} else None
    jac = _jacobian(back, out_shape, shapes) if "jacobian" in wanted else ()
    hvp_out = _jvp(lambda *a: _vjp(fun, *a)[1](ct), primals, tangents)[1] if "hvp" in wanted else ()

    gen = _Emitter(names, shapes, out_shape, helpers)
    d_names = [f"d_{n}" for n in names]
    g_outs = [(g, s, f"g_{n}") for g, s, n in zip(grads, shapes, names)]
    emit = {
        "forward": lambda: gen.function(prefix + "forward", names, [(value, out_shape, "out")]),
        "vjp": lambda: gen.function(prefix + "vjp", names + ["ct"], g_outs, as_tuple=True),
        "jvp": lambda: gen.function(prefix + "jvp", names + d_names, [(tangent_out, out_shape, "out")]),
        "jacobian": lambda: gen.function(prefix + "jacobian", names,
                                         [(j, out_shape + s, f"J_{n}") for j, s, n in zip(jac, shapes, names)],
                                         as_tuple=True),
        "hvp": lambda: gen.function(prefix + "hvp", names + ["ct"] + d_names,
                                    [(h, s, f"h_{n}") for h, s, n in zip(hvp_out, shapes, names)], as_tuple=True),
        "forward_into": lambda: gen.function(prefix + "forward_into", names, [(value, out_shape, "out")], into=True),
        "vjp_into": lambda: gen.function(prefix + "vjp_into", names + ["ct"], g_outs, into=True),
        "jvp_into": lambda: gen.function(prefix + "jvp_into", names + d_names, [(tangent_out, out_shape, "out")],
                                         into=True),
    }
    bodies = [emit[kind]() for kind in _KINDS if kind in wanted]
    meta = dict(fun=fun, arg_shapes=shapes, out_shape=out_shape, arg_names=tuple(names),
                op_counts={k[len(prefix):]: v for k, v in gen.op_counts.items()})
    return bodies, meta


def kernel(*arg_shapes: int | Sequence[int]) -> Callable[[Callable], Kernel]:
    """Decorator form of :func:`compile`.

    >>> import diffsim as ds, diffsim.numpy as dnp
    >>> @ds.kernel(3)
    ... def energy(x):
    ...     return 0.5 * dnp.sum(x * x)
    >>> float(energy.forward(np.array([1.0, 2.0, 2.0])))
    4.5
    """
    return lambda fun: compile(fun, *arg_shapes)


# ---------------------------------------------------------------- tracing helpers


def _shape(s, i) -> tuple:
    if isinstance(s, (int, np.integer)):
        s = (int(s),)
    try:
        s = tuple(int(n) for n in s)
    except (TypeError, ValueError):
        raise ValueError(f"shape of argument {i} must be an int or a tuple of ints, got {s!r}") from None
    if any(n < 0 for n in s):
        raise ValueError(f"shape of argument {i} must have non-negative sizes, got {s}")
    return s


def _arg_names(fun, n) -> list[str]:
    try:
        params = [p.name for p in inspect.signature(fun).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    reserved = {"math", "np", "njit", "out", "ct"}
    names = []
    for i in range(n):
        cand = params[i] if i < len(params) else f"a{i}"
        if not cand.isidentifier() or keyword.iskeyword(cand) or cand in reserved or cand.startswith(("v", "_")) \
                or cand in names:
            cand = f"arg{i}"
        names.append(cand)
    return names


def _elements(x, shape) -> np.ndarray:
    """An object array of the given shape holding Syms and constants."""
    if type(x) is SymArray:
        data = x.data
    else:
        data = np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x.astype(object)
    if data.shape != shape:
        data = np.broadcast_to(data, shape)
    return data


def _output_shape(value) -> tuple:
    if isinstance(value, (tuple, list, dict)):
        raise TraceError("a compiled function must return one scalar or one 1-D array; "
                         "stack several outputs with dnp.stack or dnp.concatenate")
    shape = np.shape(value.data if type(value) is SymArray else value)
    if len(shape) > 1:
        raise TraceError(f"a compiled function must return a scalar or a 1-D array, got shape {shape}")
    return shape


def _jacobian(back, out_shape, shapes):
    rows = []
    for idx in np.ndindex(*out_shape):
        e = np.zeros(out_shape)
        e[idx] = 1.0
        rows.append(back(e))
    out = []
    for k, s in enumerate(shapes):
        block = np.empty(out_shape + s, dtype=object)
        for r, idx in enumerate(np.ndindex(*out_shape)):
            row = _elements(rows[r][k], s)
            block[idx] = row[()] if s == () else row  # a 0-d array would be stored as one object
        out.append(block)
    return out


# ---------------------------------------------------------------- emission


def _const(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    v = float(v)
    if v != v:
        return "math.nan"
    if v in (np.inf, -np.inf):
        return "math.inf" if v > 0 else "(-math.inf)"
    return repr(v) if v >= 0 else f"({v!r})"


class _Emitter:
    def __init__(self, names, shapes, out_shape, helpers: set):
        self.names, self.shapes, self.out_shape = names, shapes, out_shape
        self.helpers = helpers
        self.op_counts: dict[str, int] = {}
        self.extra_shapes: dict[str, tuple] = {}

    def _ref(self, v) -> str:
        return f"v{v.index}" if type(v) is Sym else _const(v)

    def function(self, fname, params, outputs, as_tuple=False, into=False) -> str:
        """Straight-line code for ``outputs``: [(value, shape, local name)]. With ``into``, array
        outputs are written into caller-provided buffers (extra parameters) and not returned."""
        arrays = [(_elements(v, s), s, n) for v, s, n in outputs]
        if into:
            params = params + [n for _, s, n in arrays if s != ()]
            self.extra_shapes.update({n: s for _, s, n in arrays})
        leaves = [e for data, _, _ in arrays for e in data.flat]
        live = live_instructions(leaves)
        # The body goes in {fname}_unchecked; {fname} checks the argument shapes and calls it.
        # Raise paths make Numba keep reference counts on every array argument, which stops LLVM
        # from inlining the kernel into a calling loop (20-35 ns a call): compiled loops whose
        # shapes are right by construction call the unchecked body.
        check = [_JIT, f"def {fname}({', '.join(params)}):"]
        for p in params:
            s = self._param_shape(p)
            if s:
                check += [f"    if {p}.shape != {s!r}:",
                          f"        raise ValueError(\"{fname}: argument {p} must have shape {s}\")"]
        check.append(f"    return {fname}_unchecked({', '.join(params)})")
        lines = [_JIT, f"def {fname}_unchecked({', '.join(params)}):"]
        n_ops = 0
        for s in live:
            if s.op == "input":
                lines.append(f"    v{s.index} = {s.label}")
                continue
            n_ops += 1
            expr = _TEMPLATES[s.op].format(*(self._ref(a) for a in s.args))
            for h in _HELPERS:
                if h + "(" in expr:
                    self.helpers.add(h)
            lines.append(f"    v{s.index} = {expr}")
        results = []
        for data, shape, local in arrays:
            if shape == ():
                results.append(self._ref(data[()]))
                continue
            if not into:
                lines.append(f"    {local} = np.empty({shape!r})")
            for idx in np.ndindex(*shape):
                lines.append(f"    {local}[{', '.join(map(str, idx))}] = {self._ref(data[idx])}")
            results.append(local)
        if into:
            scalars = [self._ref(data[()]) for data, shape, _ in arrays if shape == ()]
            ret = "None" if not scalars else scalars[0] if len(scalars) == 1 else f"({', '.join(scalars)},)"
            lines.append(f"    return {ret}")
        elif as_tuple:
            lines.append(f"    return ({', '.join(results)},)")
        else:
            lines.append(f"    return {results[0]}")
        self.op_counts[fname] = n_ops
        return "\n".join(lines) + "\n\n\n" + "\n".join(check) + "\n"

    def _param_shape(self, p):
        for n, s in zip(self.names, self.shapes):
            if p in (n, f"d_{n}"):
                return s
        if p == "ct":
            return self.out_shape
        if p in self.extra_shapes:
            return self.extra_shapes[p]
        raise AssertionError(p)

def _module_source(title: str, bodies: list[str], helpers: set[str], extra: str) -> str:
    head = [f"# Generated by diffsim from {title}. Do not edit: regenerated from the source.",
            "import math", "", "import numpy as np", "from numba import njit, prange  # noqa: F401", ""]
    for h in sorted(helpers):
        head += ["", '@njit(cache=True, inline="always")', _HELPERS[h]]
    return "\n".join(head) + "\n\n" + "\n\n".join(bodies) + ("\n\n" + extra if extra else "")


def _kernel_file(digest: str, source: str) -> pathlib.Path:
    """The cached module ``k_<digest>.py``, written (atomically) unless it is there with the right
    content: a truncated or edited file does not match its name's hash and is rewritten. Falls
    back to the temporary folder when the cache folder cannot be written."""
    name = f"k_{digest}.py"
    for directory in (cache_dir(), pathlib.Path(tempfile.gettempdir()) / "diffsim-kernels"):
        path = directory / name
        try:
            if _intact(path, digest):
                return path
            directory.mkdir(parents=True, exist_ok=True)
            write_atomic(path, source)
            return path
        except OSError:
            continue
    raise OSError(f"cannot write the kernel module {name} to {cache_dir()} or the temporary folder; "
                  "set DIFFSIM_CACHE_DIR to a writable folder")


def _intact(path: pathlib.Path, digest: str) -> bool:
    try:
        return _digest(path.read_bytes()) == digest
    except (FileNotFoundError, NotADirectoryError):
        return False


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _load(source: str):
    """Write ``source`` (once, atomically) under its hash and import it; a damaged copy on disk is
    regenerated, and Numba's cache entries of the module heal themselves (:mod:`diffsim.kernel_cache`)."""
    from .kernel_cache import heal

    digest = _digest(source.encode())
    name = f"diffsim_kernel_{digest}"
    if name in sys.modules:
        return sys.modules[name], pathlib.Path(sys.modules[name].__file__)
    path = _kernel_file(digest, source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Numba's on-disk cache re-imports a function's module by name when it loads it
    sys.modules[name] = module
    try:
        # executed from the verified text, not through the import system's bytecode (.pyc) cache,
        # which nothing verifies
        exec(builtins.compile(source, str(path), "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]  # never leave a half-initialised module for the next caller
        raise
    heal(module)
    return module, path


__all__ = ["compile", "compile_module", "kernel", "Kernel", "cache_dir"]
