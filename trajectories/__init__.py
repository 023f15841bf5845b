"""Optimal control on the diffsim engine: direct shooting (single and multiple), Pontryagin's
costate boundary-value problem, ready systems, and BPTT-versus-adjoint comparisons.

>>> from trajectories import SYSTEMS, solve
>>> sol = solve(SYSTEMS["double_integrator_lqr"](N=50), method="single")
>>> sol.status
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# functions named like their modules are bound now (a submodule import would otherwise rebind the
# name to the module); their modules import scipy only when called. The rest load on first use
# (PEP 562), so `import trajectories.dynamics` stays cheap.
from .compare import Comparison, compare  # noqa: E402
from .pontryagin import pontryagin  # noqa: E402

_EXPORTS = {"OptimalControlProblem": "problem", "ProblemError": "problem", "Solution": "result",
            "multiple_shooting": "shooting", "single_shooting": "shooting", "SYSTEMS": "systems"}

if TYPE_CHECKING:
    from .problem import OptimalControlProblem, ProblemError
    from .result import Solution
    from .shooting import multiple_shooting, single_shooting
    from .systems import SYSTEMS


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trajectories' has no attribute {name!r}")


METHODS = ("single", "multiple", "pontryagin", "ddp")


def solve(problem: "OptimalControlProblem", method: str = "single", gradient: str = "bptt", **options) -> "Solution":
    """Solve ``problem`` by ``method`` ("single", "multiple" or "pontryagin"; the last is warm-
    started from single shooting). Never raises for a bad problem: read ``status``/``message``."""
    from .result import Solution

    if method == "single":
        from .shooting import single_shooting

        return single_shooting(problem, gradient=gradient, **options)
    if method == "multiple":
        from .shooting import multiple_shooting

        return multiple_shooting(problem, **options)
    if method == "pontryagin":
        return pontryagin(problem, **options)
    if method == "ddp":
        from .ddp import ddp
        return ddp(problem, **options)
    return Solution(False, f"unknown method {method!r}: choose one of {METHODS}", method)


__all__ = ["METHODS", "SYSTEMS", "Comparison", "OptimalControlProblem", "ProblemError", "Solution", "compare",
           "multiple_shooting", "pontryagin", "single_shooting", "solve"]
