"""The ``diffsim demo`` run: sections, each owned by the package whose science it shows, run in
order into one report whose checks decide the exit status; everything is written into a
temporary folder and moved into place at the end, ``results.json`` last.

A section is a :class:`DemoSection`: its key in ``results.json``, the title of its progress line,
the files it writes beside the report and ``run(report, size) -> (results, checks)`` with
``size`` "quick" or "full" (each section keeps its own sizes). The engine's section is here; the
applications provide theirs (``trajectories.cli.DEMO_SECTIONS``, ``potentials.cli.DEMO_SECTIONS``)
and :mod:`diffsim.cli` composes them.

>>> checks = []
>>> check(checks, "one plus one", 2.0, "= 2", True)
>>> checks
[{'check': 'one plus one', 'value': 2.0, 'limit': '= 2', 'passed': True}]
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Callable

REPORT_FILES = ("report.md", "report.html", "results.json")

# the engine section's deep networks (see README "The demo")
ENGINE_SIZES = {"quick": (20, 32), "full": (50, 64)}  # (depth, width)


@dataclass(frozen=True)
class DemoSection:
    """One section of the demo: ``run(report, size)`` adds its part to ``report`` (a
    :class:`diffsim.report.Report`), writes ``files`` into ``report.folder`` and returns (its
    results for results.json, its checks as made by :func:`check`)."""

    key: str
    title: str
    run: Callable
    files: tuple[str, ...] = ()


def check(checks: list, name: str, value: float, limit: str, passed: bool) -> None:
    """Record one truth the demo asserts about its own results (and say so on stderr if it fails)."""
    checks.append({"check": name, "value": float(value), "limit": limit, "passed": bool(passed)})
    if not passed:
        print(f"   CHECK FAILED: {name}: {value:.3g} (expected {limit})", file=sys.stderr)


def engine_section(report, size: str) -> tuple[dict, list]:
    """Gradients of numpy code against closed forms and finite differences, and the vanishing-
    gradient effect that motivates skip connections."""
    import numpy as np

    import diffsim as ds
    import diffsim.numpy as dnp

    checks: list = []

    f = lambda x, y: dnp.log(x + dnp.exp(y / x))
    gx, gy = ds.grad(f, argnums=(0, 1))(1.0, 2.0)
    e2 = np.exp(2.0)
    closed = max(abs(float(gx) - (1 - 2 * e2) / (1 + e2)), abs(float(gy) - e2 / (1 + e2)))
    rng = np.random.default_rng(0)
    A, X, B = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    G = ds.grad(lambda X: dnp.sum((A @ X - B) ** 2))(X)
    matrix = float(np.max(np.abs(G - 2 * A.T @ (A @ X - B))))
    W = rng.standard_normal((3, 3))
    net = lambda W, x: dnp.sum(dnp.tanh(W @ x) ** 2) + dnp.linalg.slogdet(W @ W.T + dnp.eye(3))[1]
    ds.check_grads(net, (W, rng.standard_normal(3)), order=2)  # raises with a report if wrong
    H = ds.hessian(lambda x: net(W, x))(np.ones(3))
    symmetry = float(np.max(np.abs(H - H.T)))
    depth, width = ENGINE_SIZES[size]
    x0 = rng.standard_normal(width)
    nets = {"sigmoid, plain": lambda x, p: 1 / (1 + dnp.exp(-(p[0] @ x))),
            "relu + skip": lambda x, p: x + p[1] @ dnp.maximum(p[0] @ x, 0.0) / np.sqrt(depth)}
    norms = {}
    for name, layer in nets.items():
        params = [(rng.standard_normal((width, width)) * np.sqrt(2.0 / width),
                   rng.standard_normal((width, width)) * np.sqrt(1.0 / width)) for _ in range(depth)]

        def loss(x, params=params, layer=layer):
            for p in params:
                x = layer(x, p)
            return dnp.sum(x) / np.sqrt(width)

        norms[name] = float(np.linalg.norm(ds.grad(loss)(x0)))
    check(checks, "reverse mode = closed form, f(x, y) = ln(x + exp(y/x))", closed, "< 1e-14", closed < 1e-14)
    check(checks, "gradient of ||AX - B||² = 2Aᵀ(AX - B)", matrix, "< 1e-12", matrix < 1e-12)
    report.heading("1. The engine")
    report.paragraph("Reverse mode checked against closed forms; `check_grads` compares reverse and forward mode "
                     "with finite differences to second order; the input-gradient norm through a deep network "
                     "shows why skip connections matter.")
    report.table(["check", "result"], [
        ["∂/∂(x, y) ln(x + exp(y/x)) at (1, 2) against the closed form", f"max error {closed:.1e}"],
        ["∇_X ‖AX − B‖² against 2Aᵀ(AX − B)", f"max error {matrix:.1e}"],
        ["check_grads (reverse and forward, order 2) on tanh + slogdet", "passed"],
        ["Hessian symmetry", f"{symmetry:.1e}"],
        *[[f"|dL/dx₀| through {depth} layers of width {width}: {k}", f"{v:.3e}"] for k, v in norms.items()]])
    print(f"   closed forms matched to {max(closed, matrix):.1e}; check_grads passed; |dL/dx0| "
          + ", ".join(f"{k} {v:.2e}" for k, v in norms.items()))
    return {"closed_form_error": closed, "matrix_gradient_error": matrix, "hessian_asymmetry": symmetry,
            "input_gradient_norms": norms}, checks




ENGINE = DemoSection("engine", "gradients against closed forms", engine_section)


def demo_files(sections) -> tuple[str, ...]:
    """Every file a demo of ``sections`` writes into its folder."""
    return REPORT_FILES + tuple(name for s in sections for name in s.files)


def _run_sections(report, sections, size: str) -> tuple[dict, list, dict]:
    """Each section in turn, with a progress line: (results by key, every check, seconds by key)."""
    results, checks, seconds = {}, [], {}
    for k, section in enumerate(sections, 1):
        print(f"[{k}/{len(sections)}] {section.title}", flush=True)
        t = time.perf_counter()
        results[section.key], found = section.run(report, size)
        checks += found
        seconds[section.key] = time.perf_counter() - t
    return results, checks, seconds


def run_demo(out: str | pathlib.Path, quick: bool, sections) -> int:
    """Run ``sections`` (:class:`DemoSection`) into a report in folder ``out``: report.md,
    report.html, results.json and each section's files. Returns 1 if a check failed, else 0."""
    from . import __version__
    from .files import atomic_folder, pyplot, write_atomic
    from .report import Report

    pyplot()  # the report's figures are files: no display needed

    final = pathlib.Path(out).resolve()
    # everything is written into a temporary folder inside out and moved in at the end,
    # results.json last: an interrupted run leaves the previous report as it was
    with atomic_folder(final, last=("results.json",)) as folder:
        report = Report(folder, "diffsim demo")
        report.paragraph(f"diffsim {__version__}, `diffsim demo{' --quick' if quick else ''}`, "
                         f"{time.strftime('%Y-%m-%d %H:%M')}. One reverse-mode engine gives the gradients of a "
                         "trajectory (control) and the forces of a learned energy (chemistry); everything below was "
                         "computed in this run, from data generated in it.")
        t0 = time.perf_counter()
        found, checks, seconds = _run_sections(report, sections, "quick" if quick else "full")
        seconds["total"] = time.perf_counter() - t0
        failed = [c for c in checks if not c["passed"]]
        report.heading("Checks")
        report.table(["check", "value", "expected", ""],
                     [[c["check"], f"{c['value']:.3g}", c["limit"], "pass" if c["passed"] else "**FAIL**"]
                      for c in checks])
        parts = ", ".join(f"{s.key} {seconds[s.key]:.1f} s" for s in sections)
        report.paragraph(f"Wall time {seconds['total']:.1f} s: {parts} (the first run on a machine also compiles "
                         "Numba kernels; later runs load them from the cache).")
        results = {"quick": bool(quick), **found, "checks": checks, "seconds": seconds,
                   "files": list(demo_files(sections))}
        write_atomic(folder / "results.json", json.dumps(results, indent=2, default=float) + "\n")
        report.write()
    print(f"\n{len(checks) - len(failed)} of {len(checks)} checks passed in {seconds['total']:.1f} s")
    print(f"wrote the report to {final / 'report.md'} (and report.html, results.json and the figures beside it)")
    return 1 if failed else 0
