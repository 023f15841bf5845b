"""Mutation testing of the code whose bugs users cannot see: plant one small bug at a time in a
scratch copy of the repository, run the tests that guard that code, and list the mutants that
survive (the tests did not notice them).

Run from the repository root::

    python tests/mutation/mutate.py --list                    # the targets and their mutant counts
    python tests/mutation/mutate.py forces                    # every mutant of one target
    python tests/mutation/mutate.py rules loops --sample 30 --budget 1800 --seed 1
    python tests/mutation/mutate.py forces --only model.py:119  # re-test one survivor

Targets (see ``TARGETS``): ``rules`` (the derivative rule table, diffsim/primitives.py),
``loops`` (the compiled BPTT/checkpointed/adjoint loops, diffsim/ode/compiled_loops.py),
``solvers`` (single/multiple shooting and Pontryagin, trajectories/), ``forces`` (energy,
forces and stress of potentials/model.py and the ASE calculator). A mutant is killed when its
tests fail or time out (a planted infinite loop); it survives when they pass. Each survivor is
either an equivalent mutant (no result a user sees changes) or a missing test: add one.

The operators are the classic ones (Offutt's sufficient set): arithmetic (+ ↔ −, × ↔ ÷, ** → ×),
a dropped unary minus, comparisons (< ↔ ≤, > ↔ ≥, == ↔ !=), ``and`` ↔ ``or``, a dropped ``not``,
augmented assignments (+= ↔ −=), numbers (an integer + 1, a float × 1.01, 0.0 → 0.01) and
``True`` ↔ ``False``. Error messages, docstrings and ``raise`` statements are left alone.
mutmut and cosmic-ray were not used: both mutate by importing the module under test, which
the compiled loops (a source template appended to generated Numba modules) never are.

>>> src = "def f(x):\\n    return -x + 2 * x\\n"
>>> [m.description for m in mutants_of_source(src, "f.py", ["f"])]
["'+' -> '-'", 'drop unary minus', "'*' -> '/'", '2 -> 3']
>>> print(apply(src, mutants_of_source(src, "f.py", ["f"])[0]).splitlines()[1])
    return (-x - 2 * x)
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class Target:
    """Files and (optionally) the functions in them to mutate, and the tests that guard them."""

    files: dict  # path -> list of function names, or None for the whole module
    tests: tuple  # pytest arguments, fastest and most sensitive first (the run stops at the first failure)


TARGETS = {
    "rules": Target({"diffsim/primitives.py": None},
                    ("tests/diffsim/test_primitives.py", "tests/diffsim/test_transforms.py",
                     "tests/diffsim/test_properties.py", "tests/diffsim/test_worked_examples.py",
                     "tests/diffsim/test_graph.py")),
    "loops": Target({"diffsim/ode/compiled_loops.py": ["rollout", "rollout_batch", "bptt", "_beta",
                                                       "_left_length", "_advance", "checkpointed",
                                                       "adjoint", "forward_tangent"],
                     "diffsim/ode/common_loops.py": ["_terminal", "_hamiltonian_grads", "_hermite"]},
                    ("tests/diffsim/test_ode.py", "-k", "not dopri5")),
    "solvers": Target({"trajectories/shooting.py": None, "trajectories/pontryagin.py": None},
                      ("tests/trajectories/test_optimal_control.py", "tests/trajectories/test_peer_optima.py",
                       "-k", "lqr or bad_problems or brachistochrone or ipopt")),
    "forces": Target({"potentials/model.py": ["energy", "energy_forces", "per_atom_energies", "reference_energies"],
                      "potentials/calculator.py": ["calculate"]},
                     ("tests/potentials/test_forces_every_path.py", "tests/potentials/test_model_calculator.py")),
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


def _skipped(tree) -> set:
    """ids of nodes never mutated: docstrings, f-strings, raise statements, warnings' arguments."""
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Raise, ast.JoinedStr, ast.Assert)):
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "warn":
            skip.update(id(n) for n in ast.walk(node))
        if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module)) and ast.get_docstring(node) is not None:
            skip.update(id(n) for n in ast.walk(node.body[0]))
    return skip


def _mutations(node):
    """(replacement node or source, description) pairs for one node."""
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        new = _BINOPS[type(node.op)]
        yield ast.BinOp(node.left, new(), node.right), f"'{_SYMBOL[type(node.op)]}' -> '{_SYMBOL[new]}'"
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
    elif isinstance(node, ast.AugAssign) and type(node.op) in (ast.Add, ast.Sub):
        new = ast.Sub if isinstance(node.op, ast.Add) else ast.Add
        yield (ast.AugAssign(node.target, new(), node.value),
               f"'{_SYMBOL[type(node.op)]}=' -> '{_SYMBOL[new]}='")
    elif isinstance(node, ast.Constant) and type(node.value) is bool:
        yield ast.Constant(not node.value), f"{node.value} -> {not node.value}"
    elif isinstance(node, ast.Constant) and type(node.value) is int:
        yield ast.Constant(node.value + 1), f"{node.value} -> {node.value + 1}"
    elif isinstance(node, ast.Constant) and type(node.value) is float:
        new = 0.01 if node.value == 0.0 else node.value * 1.01
        yield ast.Constant(new), f"{node.value!r} -> {new!r}"


def mutants_of_source(source: str, path: str, functions=None) -> list:
    """Every mutant of ``source`` inside ``functions`` (names of functions or methods; None: all)."""
    tree = ast.parse(source)
    skip = _skipped(tree)
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
            for new, description in _mutations(node):
                text = ast.unparse(new)
                if not isinstance(node, ast.AugAssign):
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


def _copy_repository(dest: str) -> None:
    keep = ("diffsim", "potentials", "trajectories", "tests", "examples", "pyproject.toml", "README.md")
    for name in keep:
        src = os.path.join(ROOT, name)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(dest, name))


def _run_tests(scratch: str, tests: tuple, timeout: float) -> tuple[str, float]:
    """('passed' | 'failed' | 'timeout', seconds) for the tests in the scratch copy."""
    env = dict(os.environ, PYTHONPATH=scratch, DIFFSIM_CACHE_DIR=os.path.join(scratch, ".kernel-cache"),
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=",
           "-m", "not slow", *tests]
    start = time.perf_counter()
    try:
        r = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - start
    if r.returncode not in (0, 1):  # 2: interrupted or an import error, 5: no tests: a mutant that broke loading
        return ("failed" if r.returncode == 2 else f"error {r.returncode}"), time.perf_counter() - start
    return ("passed" if r.returncode == 0 else "failed"), time.perf_counter() - start


def run(names, sample: int | None, seed: int, budget: float, keep: bool = False, only=()) -> dict:
    """Mutate, test, and print a report; returns {target: {"killed": [...], "survived": [...], ...}}."""
    rng = random.Random(seed)
    scratch = tempfile.mkdtemp(prefix="diffsim-mutation-")
    _copy_repository(scratch)
    report, deadline = {}, time.perf_counter() + budget
    try:
        for name in names:
            target = TARGETS[name]
            mutants = all_mutants(name)
            if only:
                mutants = [m for m in mutants if any(o in f"{m.where()} {m.description}" for o in only)]
            chosen = mutants if sample is None or sample >= len(mutants) else sorted(
                rng.sample(mutants, sample), key=lambda m: (m.path, m.line, m.col))
            status, base = _run_tests(scratch, target.tests, timeout=max(60.0, deadline - time.perf_counter()))
            print(f"\n== {name}: {len(mutants)} mutants, testing {len(chosen)}; unmutated tests {status} "
                  f"in {base:.0f} s", flush=True)
            entry = report[name] = {"total": len(mutants), "killed": [], "survived": [], "untested": []}
            if status != "passed":
                print(f"   the tests fail without a mutant ({status}): fix them first")
                entry["untested"] = chosen
                continue
            per_mutant = 3 * base + 60
            for k, m in enumerate(chosen):
                if time.perf_counter() > deadline:
                    entry["untested"] = chosen[k:]
                    print(f"   time budget spent: {len(chosen) - k} mutants not tested")
                    break
                path = os.path.join(scratch, m.path)
                with open(path, encoding="utf-8") as f:
                    original = f.read()
                try:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(apply(original, m))
                    outcome, seconds = _run_tests(scratch, target.tests, per_mutant)
                finally:
                    with open(path, "w", encoding="utf-8") as f:
                        f.write(original)
                killed = outcome != "passed"
                entry["killed" if killed else "survived"].append(m)
                line = original.splitlines()[m.line - 1].strip()
                print(f"   {'killed  ' if killed else 'SURVIVED'} {m.where():45s} {m.description:28s} "
                      f"[{outcome}, {seconds:.0f} s]  {line[:70]}", flush=True)
    finally:
        if keep:
            print(f"scratch copy kept at {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print("\n== summary")
    for name, e in report.items():
        tested = len(e["killed"]) + len(e["survived"])
        print(f"   {name:8s} mutants {e['total']:4d}  tested {tested:4d}  killed {len(e['killed']):4d}  "
              f"survived {len(e['survived']):4d}  untested {len(e['untested']):4d}")
        for m in e["survived"]:
            print(f"      survivor {m.where()} {m.description}")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help=f"targets to mutate (default: all of {sorted(TARGETS)})")
    parser.add_argument("--list", action="store_true", help="list the targets and how many mutants each has")
    parser.add_argument("--sample", type=int, help="test this many mutants per target, drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--budget", type=float, default=3600.0, help="seconds for the whole run (default 3600)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy (to inspect a mutant)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="only the mutants whose 'path:line:col description' contains TEXT (repeatable), "
                             "e.g. --only model.py:119 to re-test a survivor")
    args = parser.parse_args(argv)
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
    report = run(names, args.sample, args.seed, args.budget, args.keep, args.only)
    return 1 if any(e["survived"] for e in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
