"""Optimal control on the diffsim engine: transcriptions (single and multiple shooting) solved
by a stage-wise interior-point method (or IPOPT, or scipy), Pontryagin's costate boundary-value
problem, ready systems, and BPTT-versus-adjoint comparisons.

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
            "MultipleShooting": "transcription", "SingleShooting": "transcription",
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


METHODS = ("multiple", "single", "collocation", "pontryagin", "ddp")
SOLVERS = ("ip", "ipopt", "scipy")
_IP_OPTIONS = {"tol", "constr_viol_tol", "max_iter", "time_limit", "mu_init", "verbose", "callback",
               "bound_relax_factor", "watchdog_shortened_iter_trigger", "watchdog_trial_iter_max", "closed_loop"}
_START = {"warm_start", "U0", "X0", "T0"}


def solve(problem: "OptimalControlProblem", method: str = "multiple", solver: str = "ip", gradient: str | None = None,
          scheme: str | None = None, **options) -> "Solution":
    """Solve ``problem`` by a direct ``method`` ("multiple" shooting, "single" shooting,
    "collocation" with ``scheme`` "hermite-simpson" (default) or "trapezoidal") with
    ``solver`` ("ip": the stage-wise interior-point method, the default; "ipopt": IPOPT through
    cyipopt, the ``[ipopt]`` extra; "scipy": the first-order scipy path, the only one that takes
    ``gradient=`` "bptt" | "checkpointed" | "adjoint"), or by "pontryagin" (the costate
    boundary-value problem, warm-started from a direct solve).

    Options of the "ip" and "ipopt" solvers: ``tol``, ``constr_viol_tol``, ``max_iter``,
    ``time_limit`` (s), ``verbose`` (an iteration table), ``callback(record) -> stop?`` and
    ``mu_init``, ``bound_relax_factor`` (1e-9: rows solved as g ≤ ε), IPOPT's watchdog,
    ``watchdog_shortened_iter_trigger`` (10; 0: off), ``watchdog_trial_iter_max`` (3);
    single shooting with "ip": ``closed_loop`` (True: the trial controls follow the Newton
    step's Riccati feedback along the nonlinear rollout, as in DDP; False: open loop); starts:
    ``warm_start`` (an earlier Solution), ``U0``, ``X0``, ``T0``.
    A user's mistake (an unknown method or option, a wrong shape) raises :class:`ProblemError`;
    a numerical failure returns a Solution whose ``status`` is False and ``message`` says why.

    >>> from trajectories import SYSTEMS, solve
    >>> sol = solve(SYSTEMS["van_der_pol"](N=50))
    >>> sol.status, bool(sol.kkt["scaled_error"] < 1e-8)
    (True, True)
    """
    from .problem import ProblemError

    if method not in METHODS:
        raise ProblemError(f"unknown method {method!r}: choose one of {METHODS}")
    if solver not in SOLVERS:
        raise ProblemError(f"unknown solver {solver!r}: choose one of {SOLVERS}")
    if scheme is not None and method != "collocation":
        raise ProblemError(f"scheme={scheme!r} is an option of method='collocation' only; method={method!r} "
                           "integrates with the problem's own scheme (OptimalControlProblem(scheme=...))")
    if method == "collocation" and solver == "scipy":
        raise ProblemError("method='collocation' is solved by solver='ip' or solver='ipopt', not 'scipy'")
    if method == "pontryagin":
        return pontryagin(problem, **options)
    if method == "ddp":
        return _ddp(problem, options)
    if solver == "scipy":
        return _scipy(problem, method, gradient, options)
    if gradient not in (None, "bptt"):
        raise ProblemError(f"gradient={gradient!r} applies to solver='scipy' only: the {solver!r} solver takes exact "
                           "second derivatives (its single-shooting costates are the BPTT adjoint of the "
                           "Lagrangian); drop the option or pass solver='scipy'")
    return _stage_wise(problem, method, solver, scheme, options)


def _ddp(problem, options: dict):
    """``solve(method="ddp")``: the option names checked against DDP's own (a bare TypeError otherwise)."""
    import inspect

    from .ddp import DDPSolver, ddp, run_ddp
    from .problem import ProblemError

    takes = (set(inspect.signature(DDPSolver.__init__).parameters) | set(inspect.signature(ddp).parameters)) \
        - {"self", "problem", "options"}
    unknown = set(options) - takes
    if unknown:
        raise ProblemError(f"unknown option(s) {sorted(unknown)} for method='ddp': it takes {sorted(takes)}")
    run = {k: options.pop(k) for k in ("U0", "X0", "time_budget") if k in options}
    return run_ddp(DDPSolver(problem, **options), **run)  # a setting it cannot take raises, as for the other methods


def _scipy(problem, method: str, gradient: str | None, options: dict):
    """``solve(solver="scipy")``: the first-order path, shooting only."""
    from .problem import ProblemError
    from .shooting import multiple_shooting, single_shooting

    if method == "single":
        return single_shooting(problem, gradient=gradient or "bptt", **options)
    if gradient is not None:
        raise ProblemError("gradient= applies to single shooting only (method='single', solver='scipy'): "
                           "multiple shooting differentiates each interval with the step Jacobians")
    return multiple_shooting(problem, **options)


def _stage_wise(problem, method: str, solver: str, scheme: str | None, options: dict):
    """The transcription of ``method`` solved by the interior-point method or IPOPT, with the
    options and starts checked first."""
    from diffsim.threads import single_threaded_blas

    from .interior_point import Options, interior_point
    from .problem import ProblemError
    from .transcription import TRANSCRIPTIONS

    unknown = set(options) - _IP_OPTIONS - _START
    if unknown:
        raise ProblemError(f"unknown option(s) {sorted(unknown)} for solver {solver!r}: it takes "
                           f"{sorted(_IP_OPTIONS | _START)}")
    if "closed_loop" in options and (method != "single" or solver != "ip"):
        raise ProblemError(f"closed_loop applies to method='single' with solver='ip' (its trial rollouts); "
                           f"got method={method!r}, solver={solver!r}: drop the option")
    start = {k: options.pop(k) for k in list(options) if k in _START}
    if method == "single" and start.get("X0") is not None:
        raise ProblemError("X0 (a state guess) applies to method='multiple' or 'collocation': single shooting's "
                           "states are the rollout of its controls; give U0 instead")
    settings = Options(**options)  # raises ProblemError for a value the solver cannot take (IPOPT's too)
    if method == "collocation":
        from .collocation import Collocation

        tr = Collocation(problem, scheme or "hermite-simpson")
    else:
        tr = TRANSCRIPTIONS[method](problem)
    warm = start.pop("warm_start", None)
    with single_threaded_blas():
        if solver == "ipopt":
            from .ipopt_backend import ipopt

            sol = ipopt(tr, warm=warm, **start, **options)
        else:
            sol = interior_point(tr, settings, warm=warm, **start)
    return tr.finish(sol) if method == "collocation" else sol


__all__ = ["METHODS", "SOLVERS", "SYSTEMS", "Comparison", "MultipleShooting", "SingleShooting", "OptimalControlProblem",
           "ProblemError", "Solution", "compare", "multiple_shooting", "pontryagin", "single_shooting", "solve"]
