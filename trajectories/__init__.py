"""Optimal control on the diffsim engine: direct shooting (single and multiple), Pontryagin's
costate boundary-value problem, ready systems, and BPTT-versus-adjoint comparisons.

>>> from trajectories import SYSTEMS, solve
>>> sol = solve(SYSTEMS["double_integrator_lqr"](N=50), method="single")
>>> sol.status
True
"""

from __future__ import annotations

from .compare import Comparison, compare
from .pontryagin import pontryagin
from .problem import OptimalControlProblem, ProblemError
from .result import Solution
from .shooting import multiple_shooting, single_shooting
from .systems import SYSTEMS

METHODS = ("single", "multiple", "pontryagin")


def solve(problem: OptimalControlProblem, method: str = "single", gradient: str = "bptt", **options) -> Solution:
    """Solve ``problem`` by ``method`` ("single", "multiple" or "pontryagin"; the last is warm-
    started from single shooting). Never raises for a bad problem: read ``status``/``message``."""
    if method == "single":
        return single_shooting(problem, gradient=gradient, **options)
    if method == "multiple":
        return multiple_shooting(problem, **options)
    if method == "pontryagin":
        return pontryagin(problem, **options)
    return Solution(False, f"unknown method {method!r}: choose one of {METHODS}", method)


__all__ = ["METHODS", "SYSTEMS", "Comparison", "OptimalControlProblem", "ProblemError", "Solution", "compare",
           "multiple_shooting", "pontryagin", "single_shooting", "solve"]
