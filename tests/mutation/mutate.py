"""Mutation testing of the code whose bugs users cannot see: plant one small bug at a time in a
scratch copy of the repository, run the tests that guard that code, and list the mutants that
survive (the tests did not notice them).

Run from the repository root::

    python tests/mutation/mutate.py --list                    # the targets and their mutant counts
    python tests/mutation/mutate.py forces                    # every mutant of one target
    python tests/mutation/mutate.py rules loops --sample 30 --budget 1800 --seed 1
    python tests/mutation/mutate.py forces --only model.py:119  # re-test one survivor
    python tests/mutation/mutate.py --status rules loops       # what the state file holds

Every outcome is appended to a state file (``tests/mutation/results.jsonl`` unless ``--state``
names another), so a run that stops (its ``--budget`` spent, or interrupted) resumes where it
stopped: mutants already recorded there are skipped (``--fresh`` ignores the file, ``--only``
re-tests what it selects). A mutant is recorded by its path, the text of its line, its columns
and its replacement, not by its line number, so edits elsewhere in the file keep the record and
an edit of its own line makes it untested again.

Targets (see ``TARGETS``): ``rules`` (the derivative rule table, diffsim/primitives.py),
``loops`` (the compiled BPTT/checkpointed/adjoint loops, diffsim/ode/compiled_loops.py),
``solvers`` (single/multiple shooting and Pontryagin, trajectories/), ``forces`` (energy,
forces and stress of potentials/model.py and the ASE calculator). A mutant is killed when its
tests fail or time out (a planted infinite loop); it survives when they pass. Each survivor is
either an equivalent mutant (no result a user sees changes) or a missing test: add one.

The operators are the classic ones (Offutt's sufficient set) and a reviewer's planted bugs:
arithmetic (+ ↔ −, × ↔ ÷, ** → ×, @ → ×), a dropped term of a sum, swapped operands of − ÷ @ **,
a dropped unary minus, a negated return value (a sign flip), comparisons (< ↔ ≤, > ↔ ≥, == ↔ !=),
``and`` ↔ ``or``, a dropped ``not``, augmented assignments (+= ↔ −=, *= ↔ /=), numbers (an integer
± 1, a float × 1.01, 0.0 → 0.01), ``True`` ↔ ``False``, off-by-one indices (``x[i]`` → ``x[i - 1]``),
slice bounds and ``range`` bounds, and the first two arguments of a call swapped.
Targets whose code is compiled by Numba run with ``NUMBA_DISABLE_JIT=1``: the same loops as
Python, without a two-minute compile per mutant (numpy's overflow warnings, which Numba's
float error model never raises, are ignored there; the codegen test of ``math`` division by zero
is deselected). Error messages, docstrings and ``raise`` statements are left alone.
mutmut and cosmic-ray were not used: both mutate by importing the module under test, which
the compiled loops (a source template appended to generated Numba modules) never are.

>>> src = "def f(x):\\n    return -x + 2 * x\\n"
>>> for m in mutants_of_source(src, "f.py", ["f"]):
...     print(m.description)
negate the returned value
'+' -> '-'
drop '+ right term'
drop left term of '+'
drop unary minus
'*' -> '/'
2 -> 1
2 -> 3
>>> print(apply(src, mutants_of_source(src, "f.py", ["f"])[1]).splitlines()[1])
    return (-x - 2 * x)
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import json
import keyword
import os
import queue
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Target:
    """Files and (optionally) the functions in them to mutate, and the tests that guard them."""

    files: dict  # path -> list of function names, or None for the whole module
    tests: tuple  # pytest arguments, fastest and most sensitive first (the run stops at the first failure)
    env: dict = dataclasses.field(default_factory=dict)  # extra environment of the test run
    quick: tuple = ()  # a narrower first run, "{}" replaced by the primitive's name (``primitive_name``)


_RULE_SUFFIXES = ("impl", "vjp", "jvp", "deriv", "a", "b", "all", "parts")


def primitive_name(source: str, m: "Mutant") -> str | None:
    """The name of the primitive a mutant of the rule table lies in: the string a ``declare``/
    ``linear``/… call at module level names, or the enclosing ``_name_vjp``-style function's
    stem (None when neither applies). The quick run selects the table rows of that name; a
    mutant it does not kill is run against the whole target, so the quick run can only save
    time, never hide a kill.

    >>> src = 'def _eigh_jvp(t):\\n    return -t\\n\\nsin = declare("sin", lambda x: 2 * x)\\n'
    >>> [primitive_name(src, m) for m in mutants_of_source(src, "p.py")]
    ['eigh', 'eigh', 'sin', 'sin', 'sin', 'sin']
    """
    tree = ast.parse(source)
    best = None
    for node in ast.walk(tree):
        if not hasattr(node, "lineno") or not (node.lineno <= m.line <= node.end_lineno):
            continue
        if isinstance(node, ast.FunctionDef):
            parts = [p for p in node.name.strip("_").split("_") if p]
            while len(parts) > 1 and parts[-1] in _RULE_SUFFIXES:
                parts.pop()
            if parts and (best is None or best[0] < node.lineno):
                best = (node.lineno, "_".join(parts))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and node.args[0].value.isidentifier()):
            if best is None or best[0] < node.lineno:
                best = (node.lineno, node.args[0].value)
    return None if best is None else best[1]


_INTERPRETED = {"NUMBA_DISABLE_JIT": "1"}  # compiled loops run as Python: no 2-minute Numba compile per mutant
TARGETS = {
    "rules": Target({"diffsim/primitives.py": None},
                    ("tests/diffsim/test_edge_values.py", "tests/diffsim/test_primitives.py",
                     "tests/diffsim/test_transforms.py", "tests/diffsim/test_custom_primitives.py",
                     "tests/diffsim/test_checkpoint.py",
                     "tests/diffsim/test_properties.py", "tests/diffsim/test_worked_examples.py",
                     "tests/diffsim/test_graph.py"),
                    quick=("tests/diffsim/test_primitives.py", "-k", "{}")),
    "loops": Target({"diffsim/ode/compiled_loops.py": None, "diffsim/ode/adaptive_loops.py": None,
                     "diffsim/ode/common_loops.py": None},
                    ("tests/diffsim/test_ode.py", "tests/diffsim/test_ode_methods.py", "-W", "ignore::RuntimeWarning",
                     "-k", "not jax"), _INTERPRETED),
    "codegen": Target({"diffsim/codegen.py": ["_jacobian", "_const", "function", "_param_shape", "_module_source",
                                              "_elements", "_output_shape", "_kernel_set"]},
                      ("tests/diffsim/test_codegen.py", "-k", "not subprocess and not cache and not division_by_zero"),
                      _INTERPRETED),
    "forces": Target({"potentials/model.py": ["energy", "energy_forces", "stresses", "per_atom_energies",
                                              "reference_energies"],
                      "potentials/calculator.py": ["calculate"],
                      "potentials/committee.py": ["predict", "energy_forces", "per_atom_energies", "stresses"]},
                     ("tests/potentials/test_forces_every_path.py", "tests/potentials/test_model_calculator.py",
                      "tests/potentials/test_calculator_paths.py", "tests/potentials/test_committee.py")),
    "shooting": Target({"trajectories/shooting.py": None, "trajectories/pontryagin.py": None},
                       ("tests/trajectories/test_time_varying_shooting.py",
                        "tests/trajectories/test_optimal_control.py", "tests/trajectories/test_peer_optima.py",
                        "tests/trajectories/test_pontryagin_free_time.py")),
    "interior_point": Target({"trajectories/interior_point.py": None, "trajectories/riccati.py": None,
                              "trajectories/transcription.py": None, "trajectories/newton_system.py": None},
                             ("tests/trajectories/test_solver_mutants.py",
                              "tests/trajectories/test_newton_system.py", "tests/trajectories/test_stage_hessians.py",
                              "tests/trajectories/test_solver_outcomes.py",
                              "tests/trajectories/test_control_dependent_constraints.py",
                              "tests/trajectories/test_interior_point.py")),
    "stage_loops": Target({"trajectories/stage_loops.py": None},
                          ("tests/trajectories/test_stage_hessians.py", "tests/trajectories/test_solver_outcomes.py",
                           "tests/trajectories/test_control_dependent_constraints.py",
                           "tests/trajectories/test_interior_point.py", "-k", "not goddard and not cycloid",
                           # interpreted, a scalar overflow warns where compiled code gives inf silently
                           "-W", "ignore::RuntimeWarning"),
                          _INTERPRETED),
    "collocation": Target({"trajectories/collocation.py": None},
                          ("tests/trajectories/test_collocation_bounds_and_starts.py",
                           "tests/trajectories/test_collocation.py")),
    "collocation_loops": Target({"trajectories/collocation_loops.py": None},
                                ("tests/trajectories/test_collocation.py",), _INTERPRETED),
    "ddp": Target({"trajectories/ddp.py": None}, ("tests/trajectories/test_ddp.py", "tests/trajectories/test_mpc.py")),
    # MPC's warm steps (shift, evaluate, first_control) live in the loops; interpreted, they allocate
    "ddp_loops": Target({"trajectories/ddp_loops.py": None},
                        ("tests/trajectories/test_ddp.py", "tests/trajectories/test_mpc.py",
                         "-k", "not allocate_nothing"), _INTERPRETED),
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    replacement: str
    description: str

    def where(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


_BINOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
           ast.FloorDiv: ast.Mult, ast.MatMult: ast.Mult}
_CMPOPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
           ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In}
_SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.FloorDiv: "//",
           ast.MatMult: "@", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
           ast.NotEq: "!=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in",
           ast.And: "and", ast.Or: "or"}
_AUGOPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}


def _skipped(tree) -> set:
    """ids of nodes never mutated: docstrings, f-strings, raise statements, warnings' arguments, decorators."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr, ast.Assert)):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "warn":
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):  # @njit(cache=True) and the like: no result changes
            for d in node.decorator_list:
                skip.update(id(n) for n in ast.walk(d))
        if isinstance(node, ast.arg) and node.annotation is not None:  # annotations are never evaluated here
            skip.update(id(n) for n in ast.walk(node.annotation))
        if isinstance(node, ast.FunctionDef) and node.returns is not None:
            skip.update(id(n) for n in ast.walk(node.returns))
        if isinstance(node, ast.AnnAssign):
            skip.update(id(n) for n in ast.walk(node.annotation))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)) and ast.get_docstring(node) is not None:
            skip.update(id(n) for n in ast.walk(node.body[0]))
    return skip


_NOT_SWAPPED = {"range", "prange", "isinstance", "getattr", "setattr", "hasattr", "print", "zip", "enumerate",
                "format", "join", "get", "setdefault", "pop", "append", "insert", "replace", "split", "startswith",
                "endswith", "update", "add", "write", "open", "dict", "tuple", "list", "set", "super",
                "multiply", "logical_and", "logical_or"}  # the commutative ones: a swap is an equivalent mutant


def _one(value):
    return ast.Constant(1) if value is None else value


def _mutations(node, index_parts):
    """(replacement node or source, description) pairs for one node.

    ``index_parts`` maps the ids of subscript indices and slice bounds (not constants) to 'index',
    'lower' or 'upper': they get an off-by-one mutant.
    """
    if id(node) in index_parts:
        kind = index_parts[id(node)]
        if kind == "lower":
            yield ast.BinOp(node, ast.Add(), ast.Constant(1)), "slice start + 1"
        elif kind == "upper":
            yield ast.BinOp(node, ast.Sub(), ast.Constant(1)), "slice stop - 1"
        else:
            yield ast.BinOp(node, ast.Sub(), ast.Constant(1)), "index - 1"
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        new = _BINOPS[type(node.op)]
        yield ast.BinOp(node.left, new(), node.right), f"'{_SYMBOL[type(node.op)]}' -> '{_SYMBOL[new]}'"
        if isinstance(node.op, (ast.Add, ast.Sub)):
            yield node.left, f"drop '{_SYMBOL[type(node.op)]} right term'"
        if isinstance(node.op, ast.Add):
            yield node.right, "drop left term of '+'"
        if isinstance(node.op, (ast.Sub, ast.Div, ast.MatMult, ast.Pow)):
            yield ast.BinOp(node.right, node.op, node.left), f"swap operands of '{_SYMBOL[type(node.op)]}'"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        yield node.operand, "drop unary minus"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        yield node.operand, "drop not"
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMPOPS:
        new = _CMPOPS[type(node.ops[0])]
        yield (ast.Compare(node.left, [new()], node.comparators),
               f"'{_SYMBOL[type(node.ops[0])]}' -> '{_SYMBOL[new]}'")
    elif isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield ast.BoolOp(new(), node.values), f"'{_SYMBOL[type(node.op)]}' -> '{_SYMBOL[new]}'"
    elif isinstance(node, ast.AugAssign) and type(node.op) in _AUGOPS:
        new = _AUGOPS[type(node.op)]
        yield (ast.AugAssign(node.target, new(), node.value),
               f"'{_SYMBOL[type(node.op)]}=' -> '{_SYMBOL[new]}='")
    elif isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, (ast.Tuple, ast.Dict, ast.List, ast.Compare, ast.BoolOp, ast.JoinedStr)) or
            (isinstance(node.value, ast.Constant) and type(node.value.value) not in (int, float))):
        yield ast.Return(ast.UnaryOp(ast.USub(), node.value)), "negate the returned value"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("range", "prange"):
        args = node.args
        if len(args) in (1, 2, 3) and not any(isinstance(a, ast.Starred) for a in args):
            stop = 0 if len(args) == 1 else 1
            yield (ast.Call(node.func, [*args[:stop], ast.BinOp(args[stop], ast.Sub(), ast.Constant(1)),
                                        *args[stop + 1:]], node.keywords), "range stop - 1")
            if len(args) >= 2:
                yield (ast.Call(node.func, [ast.BinOp(args[0], ast.Add(), ast.Constant(1)), *args[1:]],
                                node.keywords), "range start + 1")
    elif isinstance(node, ast.Call) and len(node.args) >= 2 and not any(
            isinstance(a, ast.Starred) for a in node.args[:2]):
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name not in _NOT_SWAPPED and ast.unparse(node.args[0]) != ast.unparse(node.args[1]):
            yield (ast.Call(node.func, [node.args[1], node.args[0], *node.args[2:]], node.keywords),
                   "swap the first two arguments")
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield ast.Constant(not node.value), f"{node.value} -> {not node.value}"
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield ast.Constant(node.value + 1), f"{node.value} -> {node.value + 1}"
        if node.value != 1:  # 1 -> 0 is mostly a crash or a no-op multiply; keep n -> n-1 for the others
            yield ast.Constant(node.value - 1), f"{node.value} -> {node.value - 1}"
    elif isinstance(node, ast.Constant) and type(node.value) is float:
        new = 0.01 if node.value == 0.0 else node.value * 1.01
        yield ast.Constant(new), f"{node.value!r} -> {new!r}"


def _index_parts(tree) -> dict:
    """Subscript indices and slice bounds that are expressions (constants get their own mutants)."""
    out = {}

    def mark(n, kind):
        if n is not None and not isinstance(n, (ast.Constant, ast.Slice, ast.Tuple, ast.Starred)):
            out[id(n)] = kind

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Load, ast.Store)):
            parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            for part in parts:
                if isinstance(part, ast.Slice):
                    mark(part.lower, "lower")
                    mark(part.upper, "upper")
                elif isinstance(part, (ast.Name, ast.BinOp)):
                    mark(part, "index")
    return out


def mutants_of_source(source: str, path: str, functions=None) -> list:
    """Every mutant of ``source`` inside ``functions`` (names of functions or methods; None: all)."""
    tree = ast.parse(source)
    skip = _skipped(tree)
    index_parts = _index_parts(tree)
    if functions is None:
        roots = [tree]
    else:
        roots = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and n.name in functions]
    out, seen = [], set()
    for root in roots:
        for node in ast.walk(root):
            if id(node) in skip or not hasattr(node, "lineno") or isinstance(node, ast.FunctionDef):
                continue
            for new, description in _mutations(node, index_parts):
                text = ast.unparse(new)
                if not isinstance(node, (ast.AugAssign, ast.Return)):
                    text = f"({text})"
                key = (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text)
                if key not in seen:
                    seen.add(key)
                    out.append(Mutant(path, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset, text,
                                      description))
    return sorted(out, key=lambda m: (m.line, m.col, m.description))


def apply(source: str, m: Mutant) -> str:
    """``source`` with the mutant's node replaced by its replacement."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))

    def at(line, col):  # ast columns are UTF-8 byte offsets
        text = lines[line - 1]
        return offsets[line - 1] + len(text.encode()[:col].decode())

    start, end = at(m.line, m.col), at(m.end_line, m.end_col)
    return source[:start] + m.replacement + source[end:]


def all_mutants(name: str) -> list:
    target = TARGETS[name]
    out = []
    for path, functions in target.files.items():
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            out += mutants_of_source(f.read(), path, functions)
    return out


def mutant_key(m: Mutant, lines: list) -> str:
    """The state file's name of a mutant: its path, the text of its line (and which occurrence of
    that text in the file), its columns and its replacement; line numbers are left out so that
    edits above it do not make it untested again.

    >>> src = "x = 1\\ny = 2\\nx = 1\\n"
    >>> for m in mutants_of_source(src, "f.py"):
    ...     print(mutant_key(m, src.splitlines()))
    f.py|x = 1|0|4:5|0|1 -> 2|(2)
    f.py|y = 2|0|4:5|0|2 -> 1|(1)
    f.py|y = 2|0|4:5|0|2 -> 3|(3)
    f.py|x = 1|1|4:5|0|1 -> 2|(2)
    """
    text = lines[m.line - 1].strip()
    occurrence = sum(line.strip() == text for line in lines[:m.line - 1])
    return f"{m.path}|{text}|{occurrence}|{m.col}:{m.end_col}|{m.end_line - m.line}|{m.description}|{m.replacement}"


def load_state(path: str) -> dict:
    """{mutant key: its last record} from a state file (JSON lines; a missing file is empty)."""
    out = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    out[record["key"]] = record
    return out


def _record(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:  # one line per outcome: an interrupted run loses at most one
        f.write(json.dumps(record, ensure_ascii=False) + "\n")


def _keys(name: str) -> list:
    """(mutant, key) pairs of a target, in file order."""
    out = []
    for path in TARGETS[name].files:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            lines = f.read().splitlines()
        out += [(m, mutant_key(m, lines)) for m in all_mutants(name) if m.path == path]
    return out


def mark_tested(name: str, spec: str, state_path: str, note: str) -> int:
    """Record the mutants of ``path:first-last`` (lines of the current file) as tested by a run
    that kept no state file (outcome "earlier", with ``note`` saying where its results are).
    Returns how many were recorded."""
    path, _, lines = spec.rpartition(":")
    first, _, last = lines.partition("-")
    first, last = int(first), int(last or first)
    state, count = load_state(state_path), 0
    for m, key in _keys(name):
        if m.path.endswith(path) and first <= m.line <= last and key not in state:
            _record(state_path, {"target": name, "key": key, "where": m.where(), "description": m.description,
                                 "outcome": "earlier", "note": note})
            count += 1
    return count


def status(names, state_path: str) -> str:
    """A Markdown table of what the state file holds per target: tested, killed, survived, untested."""
    state = load_state(state_path)
    rows = ["| target | mutants | tested | killed | survived | tested earlier (no record) | untested |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    survivors = []
    for name in names:
        pairs = _keys(name)
        records = [state[k] for _, k in pairs if k in state]
        kinds = [r["outcome"] for r in records]
        killed = sum(k in ("failed", "timeout") or k.startswith("error") for k in kinds)
        rows.append(f"| {name} | {len(pairs)} | {len(records)} | {killed} | {kinds.count('passed')} | "
                    f"{kinds.count('earlier')} | {len(pairs) - len(records)} |")
        survivors += [f"- survivor `{name}` {m.where()} {m.description}" for m, k in pairs
                      if state.get(k, {}).get("outcome") == "passed"]
    return "\n".join(rows + [""] + survivors)


def _copy_repository(dest: str) -> None:
    keep = ("diffsim", "potentials", "trajectories", "tests", "examples", "pyproject.toml", "README.md")
    for name in keep:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, name))
    # seed the copy's kernel cache from the caller's: the solver targets' unmutated run otherwise
    # compiles every Numba kernel again (ten minutes under load). The cache is keyed by the hash of
    # the generated source and verified on load, so a mutant of that source still compiles anew.
    seed = os.environ.get("DIFFSIM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "diffsim")
    if os.path.isdir(seed):
        shutil.copytree(seed, os.path.join(dest, ".kernel-cache"), dirs_exist_ok=True)


_SERVER = r"""
import json, os, signal, sys, time
import numpy, scipy, scipy.optimize, scipy.linalg, numba, pytest, hypothesis  # the slow imports, done once
try:
    import ase, ase.build  # noqa: F401
except ImportError:
    pass
child = None


def stop(signum, frame):  # the run was stopped: take the pytest run under way with this process
    if child:
        try:
            os.killpg(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(1)


signal.signal(signal.SIGTERM, stop)
for line in sys.stdin:
    job = json.loads(line)
    start = time.perf_counter()
    pid = child = os.fork()
    if pid == 0:  # the child: a fresh pytest over the scratch copy (diffsim itself is imported here, mutated)
        os.setsid()
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os._exit(int(pytest.main(job["args"])))
    rc = None
    while time.perf_counter() - start < job["timeout"]:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            rc = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.05)
    if rc is None:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    child = None
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start}), flush=True)
"""


class _Runner:
    """A process per scratch copy that has imported numpy, scipy, numba and pytest once and forks a
    pytest run per mutant (a mutant then costs its tests, not the interpreter's start-up)."""

    def __init__(self, scratch: str, target: Target) -> None:
        env = dict(os.environ, PYTHONPATH=scratch, DIFFSIM_CACHE_DIR=os.path.join(scratch, ".kernel-cache"),
                   PYTHONDONTWRITEBYTECODE="1", **target.env)
        self.base = ["-x", "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=", "-m", "not slow"]
        self.args = [*self.base, *target.tests]
        self.proc = subprocess.Popen(["nice", "-n", "10", sys.executable, "-c", _SERVER], cwd=scratch, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, timeout: float, args=None) -> tuple[str, float]:
        """('passed' | 'failed' | 'timeout' | 'error N', seconds) of one run of the target's tests
        (or of the pytest arguments ``args``)."""
        args = self.args if args is None else [*self.base, *args]
        self.proc.stdin.write(json.dumps({"args": args, "timeout": timeout}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        rc, seconds = answer["rc"], answer["seconds"]
        if rc is None:
            return "timeout", seconds
        if rc not in (0, 1):  # 2: interrupted or an import error, 5: no tests: a mutant that broke loading
            return ("failed" if rc in (2, 3, 4) or rc < 0 else f"error {rc}"), seconds
        return ("passed" if rc == 0 else "failed"), seconds

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()

    def stop(self) -> None:
        """End the server and the pytest run it has under way (a run stopped part-way)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def _test_one(scratch: str, runner: _Runner, m: Mutant, timeout: float, quick=()) -> tuple[str, float, str]:
    path = os.path.join(scratch, m.path)
    with open(path, encoding="utf-8") as f:
        original = f.read()
    word = primitive_name(original, m) if quick else None
    word = None if word is None or keyword.iskeyword(word) else word  # -k "and" would be a usage error
    compiled = "@njit" in original  # its callers in other modules (newton_system → riccati) keep cached code
    try:
        if compiled:
            _drop_numba_caches(scratch)
        with open(path, "w", encoding="utf-8") as f:
            f.write(apply(original, m))
        outcome, seconds = "passed", 0.0
        if word:  # the tests of the mutated primitive first: a kill there is a kill
            outcome, seconds = runner.run(timeout, [a.replace("{}", word) for a in quick])
            outcome = "failed" if outcome in ("failed", "timeout") else "passed"
        if outcome == "passed":
            outcome, more = runner.run(timeout)
            seconds += more
    finally:
        with open(path, "w", encoding="utf-8") as f:
            f.write(original)
        if compiled:  # the callers compiled against the mutant must not serve the next one
            _drop_numba_caches(scratch)
    return outcome, seconds, original.splitlines()[m.line - 1].strip()


def _drop_numba_caches(scratch: str) -> None:
    """Delete the on-disk Numba caches of the copy's modules (``__pycache__/*.nbi, *.nbc``). Numba
    keys a cached function by its own file's stamp only: ``newton_system.newton_step`` cached
    before a mutant of ``riccati.py`` kept running the unmutated Riccati recursion, and every such
    mutant "survived" (the generated kernels' cache, keyed by their source hash, is kept)."""
    for name in ("diffsim", "potentials", "trajectories"):
        for root, _, files in os.walk(os.path.join(scratch, name)):
            for f in files:
                if root.endswith("__pycache__") and f.endswith((".nbi", ".nbc")):
                    os.remove(os.path.join(root, f))


def run(names, sample: int | None, seed: int, budget: float, keep: bool = False, only=(), jobs: int = 1,
        report_path: str | None = None, state_path: str | None = None, tests: tuple | None = None) -> dict:
    """Mutate, test, and print a report; returns {target: {"killed": [...], "survived": [...], ...}}.
    With ``state_path``, mutants recorded there are skipped (unless ``only`` selects them) and each
    new outcome is appended to it. ``tests`` (pytest arguments) replaces the targets' own tests:
    to probe survivors against another test file (those outcomes are not recorded)."""
    rng = random.Random(seed)
    scratches = [tempfile.mkdtemp(prefix="diffsim-mutation-") for _ in range(max(1, jobs))]
    for scratch in scratches:
        _copy_repository(scratch)
    report, deadline = {}, time.perf_counter() + budget
    runners = {}
    try:
        for name in names:
            target = TARGETS[name]
            if tests is not None:
                target, state_path = dataclasses.replace(target, tests=tuple(tests), quick=()), None
            pairs = _keys(name)
            mutants = [m for m, _ in pairs]
            keys = {m: k for m, k in pairs}
            state = load_state(state_path) if state_path else {}
            if only:
                mutants = [m for m in mutants if any(o in f"{m.where()} {m.description}" for o in only)]
            else:
                done = [m for m in mutants if keys[m] in state]
                mutants = [m for m in mutants if keys[m] not in state]
                if done:
                    print(f"\n== {name}: {len(done)} mutants already in {os.path.relpath(state_path)}, skipped")
            chosen = mutants if sample is None or sample >= len(mutants) else sorted(
                rng.sample(mutants, sample), key=lambda m: (m.path, m.line, m.col))
            runners = {d: _Runner(d, target) for d in scratches}
            with concurrent.futures.ThreadPoolExecutor(len(scratches)) as pool:  # warm each copy's kernel cache
                bases = list(pool.map(lambda d: runners[d].run(max(60.0, deadline - time.perf_counter())),
                                      scratches))
            status, base = bases[0][0], max(b[1] for b in bases)
            print(f"\n== {name}: {len(mutants)} mutants, testing {len(chosen)}; unmutated tests {status} "
                  f"in {base:.0f} s", flush=True)
            entry = report[name] = {"total": len(mutants), "killed": [], "survived": [], "untested": [],
                                    "timeouts": 0}
            if any(b[0] != "passed" for b in bases):
                print(f"   the tests fail without a mutant ({status}): fix them first")
                entry["untested"] = list(chosen)
                for r in runners.values():
                    r.close()
                continue
            per_mutant = 3 * base + 30
            free = queue.Queue()
            for scratch in scratches:
                free.put(scratch)

            stopping = threading.Event()

            def work(m):
                if time.perf_counter() > deadline or stopping.is_set():
                    return m, None
                scratch = free.get()
                try:
                    return m, _test_one(scratch, runners[scratch], m, per_mutant, target.quick)
                finally:
                    free.put(scratch)

            try:
                with concurrent.futures.ThreadPoolExecutor(len(scratches)) as pool:
                    for m, result in pool.map(work, chosen):
                        if result is None:
                            entry["untested"].append(m)
                            continue
                        outcome, seconds, line = result
                        killed = outcome != "passed"
                        entry["timeouts"] += outcome == "timeout"
                        entry["killed" if killed else "survived"].append(m)
                        if state_path:
                            _record(state_path, {"target": name, "key": keys[m], "where": m.where(),
                                                 "description": m.description, "outcome": outcome,
                                                 "seconds": round(seconds, 1), "date": time.strftime("%Y-%m-%d")})
                        print(f"   {'killed  ' if killed else 'SURVIVED'} {m.where():45s} {m.description:30s} "
                              f"[{outcome}, {seconds:.0f} s]  {line[:70]}", flush=True)
            except BaseException:  # Ctrl-C or SIGTERM: the queued mutants return at once, the one under way is cut
                stopping.set()
                for r in runners.values():
                    r.stop()
                raise
            for r in runners.values():
                r.close()
            if entry["untested"]:
                print(f"   time budget spent: {len(entry['untested'])} mutants not tested")
    finally:  # also on Ctrl-C or SIGTERM (``main`` turns it into KeyboardInterrupt): no process left behind
        for r in runners.values():
            r.stop()
        for scratch in scratches:
            if keep:
                print(f"scratch copy kept at {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    table = summary_table(report)
    print("\n== summary\n" + table)
    if report_path:
        with open(report_path, "a", encoding="utf-8") as f:
            f.write(table + "\n")
    return report


def summary_table(report: dict) -> str:
    """A Markdown table of the run (one row per target) followed by the survivors, one a line."""
    rows = ["| target | mutants | tested | killed | survived | timeouts (killed) | untested |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    survivors = []
    for name, e in report.items():
        tested = len(e["killed"]) + len(e["survived"])
        rows.append(f"| {name} | {e['total']} | {tested} | {len(e['killed'])} | {len(e['survived'])} | "
                    f"{e['timeouts']} | {len(e['untested'])} |")
        survivors += [f"- survivor `{name}` {m.where()} {m.description}: `{m.replacement[:80]}`"
                      for m in e["survived"]]
    return "\n".join(rows + [""] + survivors)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"targets to mutate (default: all of {sorted(TARGETS)})")
    parser.add_argument("--list", action="store_true", help="list the targets and how many mutants each has")
    parser.add_argument("--sample", type=int, help="test this many mutants per target, drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds for the whole run (default 3600)")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested at once, each in its own scratch copy")
    parser.add_argument("--report", metavar="FILE", help="append the summary table (Markdown) to FILE")
    parser.add_argument("--state", default=os.path.join(ROOT, "tests", "mutation", "results.jsonl"), metavar="FILE",
                        help="the outcomes so far, appended to as mutants are tested; recorded mutants are "
                             "skipped, so a stopped run resumes (default tests/mutation/results.jsonl)")
    parser.add_argument("--fresh", action="store_true", help="ignore the state file and record nothing")
    parser.add_argument("--status", action="store_true", help="print what the state file holds and stop")
    parser.add_argument("--mark-tested", metavar="PATH:FIRST-LAST",
                        help="record the mutants of those lines as tested by an earlier run without a state "
                             "file (with --note saying where its results are), then stop")
    parser.add_argument("--note", default="", help="the note --mark-tested records")
    parser.add_argument("--tests", metavar="ARGS", help="pytest arguments run instead of the target's tests, "
                        "e.g. --tests 'tests/diffsim/test_codegen.py -k logaddexp' (outcomes not recorded)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (to inspect a mutant)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the mutants whose 'path:line:col description' contains TEXT (repeatable), "
                             "e.g. --only model.py:119 to re-test a survivor")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` stops the run cleanly; it resumes later
    names = args.targets or sorted(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        print(f"unknown target(s) {unknown}; choose from {sorted(TARGETS)}", file=sys.stderr)
        return 2
    if args.list:
        for name in names:
            ms = all_mutants(name)
            print(f"{name:8s} {len(ms):4d} mutants in {', '.join(TARGETS[name].files)}; tests: "
                  f"{' '.join(TARGETS[name].tests)}")
        return 0
    if args.status:
        print(status(names, args.state))
        return 0
    if args.mark_tested:
        for name in names:
            print(f"{name}: {mark_tested(name, args.mark_tested, args.state, args.note)} mutants recorded")
        return 0
    try:
        report = run(names, args.sample, args.seed, args.budget, args.keep, args.only, args.jobs, args.report,
                     None if args.fresh else args.state, None if args.tests is None else shlex.split(args.tests))
    except KeyboardInterrupt:
        print(f"\nstopped; the outcomes so far are in {args.state}: run the same command again to resume",
              file=sys.stderr)
        return 130
    return 1 if any(e["survived"] for e in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
