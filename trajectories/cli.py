"""The optimal control subcommands of ``diffsim`` and their sections of ``diffsim demo``.

    diffsim control SYSTEM  solve a ready optimal control problem (or sweep one over a parameter)
    diffsim compare SYSTEM  BPTT vs the continuous adjoint on it
    diffsim mpc SYSTEM      model-predictive control of a ready task in a closed loop (or a Monte-Carlo of it)

:func:`register` adds them to the ``diffsim`` command (:mod:`diffsim.cli`); each imports what it
needs when it runs, so ``diffsim --help`` loads no solver.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="diffsim")
>>> register(parser.add_subparsers(dest="command"))
>>> parser.parse_args(["control", "pendulum", "--method", "single"]).solver
'ip'
"""

from __future__ import annotations

import argparse
import sys

from diffsim.command import ComputationFailed, UsageError, cluster_client, cluster_options, count, output_file
from diffsim.demo import DemoSection

from .demo import control_section, mpc_section

DEMO_SECTIONS = (
    DemoSection("control", "cart-pole swing-up, BPTT and adjoint", control_section,
                ("cartpole_trajectory.png", "cartpole_controls.png", "cartpole_costates.png", "gradient_vs_dt.png")),
    DemoSection("mpc", "cart-pole MPC under pushes", mpc_section, ("cartpole_mpc.png",)))


def demo_section(report, size: str) -> tuple[dict, list]:
    """The optimal control part of ``diffsim demo`` (``size`` "quick" or "full") as one section:
    each of :data:`DEMO_SECTIONS` in turn, their results keyed by section, their checks in one list.
    (The demo itself runs them as separate sections, each with its own heading.)"""
    results, checks = {}, []
    for section in DEMO_SECTIONS:
        results[section.key], more = section.run(report, size)
        checks += more
    return results, checks


def register(sub) -> None:
    """Add ``control``, ``compare`` and ``mpc`` to the subparsers ``sub`` of the ``diffsim`` command."""
    for add in (_add_control, _add_compare, _add_mpc):
        add(sub)


def _add_control(sub) -> None:
    """Register ``control``."""
    from .systems import SYSTEMS  # names only; cheap

    control = sub.add_parser("control", help="solve a ready optimal control problem",
                             description=_control.__doc__)
    control.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    control.add_argument("--method", choices=["multiple", "single", "collocation", "pontryagin"], default="multiple",
                         help="direct multiple shooting (default), single shooting, Hermite-Simpson collocation, "
                              "or Pontryagin's BVP")
    control.add_argument("--solver", choices=["ip", "ipopt", "scipy"], default="ip",
                         help="the stage-wise interior-point method (default), IPOPT (the [ipopt] extra), or scipy")
    control.add_argument("--gradient", choices=["bptt", "checkpointed", "adjoint"], default=None,
                         help="with --solver scipy --method single: how the rollout is differentiated (default bptt)")
    control.add_argument("--verbose", action="store_true", help="print the solver's iteration table")
    control.add_argument("--steps", type=count, help="number of control intervals N (default: the system's)")
    control.add_argument("--plot", metavar="FILE", type=output_file,
                         help="write states, controls and costates to FILE (png, pdf)")
    control.add_argument("--sweep", action="append", metavar="NAME=a:b:n",
                         help="solve over n values of the system's parameter NAME from a to b (repeat for a grid), "
                              "e.g. T=2:6:5; --plot draws cost against it")
    control.add_argument("--starts", type=count, default=1,
                         help="with --sweep: starting guesses per point (0: the system's; others random; default 1)")
    cluster_options(control)
    control.set_defaults(func=_control)


def _add_compare(sub) -> None:
    """Register ``compare``."""
    from .systems import SYSTEMS

    comp = sub.add_parser("compare", help="BPTT vs continuous adjoint on a ready problem", description=_compare.__doc__)
    comp.add_argument("system", choices=sorted(SYSTEMS), help="which problem")
    comp.add_argument("--steps", type=count, help="number of control intervals N ≥ 1 (default: the system's)")
    comp.add_argument("--plot", metavar="FILE", type=output_file, help="write the comparison figure to FILE")
    comp.add_argument("--no-optimize", action="store_true", help="compare gradients only, do not optimise")
    comp.set_defaults(func=_compare)


def _add_mpc(sub) -> None:
    """Register ``mpc``."""
    from .regulation import MPC_SYSTEMS

    p = sub.add_parser("mpc", help="model-predictive control of a ready task in a closed loop",
                       description=_mpc.__doc__)
    p.add_argument("system", choices=sorted(MPC_SYSTEMS), help="which task")
    p.add_argument("--horizon", type=int, default=40, help="planning horizon in steps of the task's dt (default 40)")
    p.add_argument("--method", choices=("ddp", "ip"), default="ddp",
                   help="the planner: warm FDDP iterations (ddp, default) or the interior-point solver (ip)")
    p.add_argument("--steps", type=int, default=150, help="closed-loop steps (default 150)")
    p.add_argument("--disturbance", type=float, default=0.0, metavar="SIGMA",
                   help="standard deviation of Gaussian kicks added to the state each step (default 0)")
    p.add_argument("--model-error", type=float, default=0.0, metavar="FRACTION",
                   help="the plant's physical parameters are (1 + FRACTION) times the model's (default 0)")
    p.add_argument("--plot", metavar="FILE", help="write states, controls and the solve-time histogram to FILE")
    p.add_argument("--runs", type=int, default=1, metavar="K",
                   help="closed-loop Monte-Carlo: K runs, each with its own random kicks of --disturbance SIGMA; "
                        "prints the cost's mean ± standard error and quantiles (--plot: state envelopes, costs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Monte-Carlo disturbances (default 0)")
    cluster_options(p, what="--runs")
    p.set_defaults(func=_mpc)


def _control(args: argparse.Namespace) -> int:
    """Solve a ready optimal control problem; print the result, optionally plot it."""
    from . import SYSTEMS, solve

    if args.sweep:
        return _control_sweep(args)
    if args.method == "collocation" and args.solver == "scipy":
        raise UsageError("--method collocation is solved by --solver ip or ipopt, not scipy")
    problem = SYSTEMS[args.system](N=args.steps) if args.steps is not None else SYSTEMS[args.system]()
    options = {"verbose": True} if args.verbose and args.solver != "scipy" and args.method != "pontryagin" else {}
    sol = solve(problem, method=args.method, solver=args.solver, gradient=args.gradient, **options)
    print(f"{problem.name} (N = {problem.N}, {problem.scheme}): {sol}")
    if sol.status:
        print("final state: " + ", ".join(f"{n} = {v:.6g}" for n, v in zip(problem.x_names, sol.x[-1])))
    if args.plot:
        sol.plot(args.plot, names=(problem.x_names, problem.u_names))
        print(f"wrote {args.plot}")
    if not sol.status:
        raise ComputationFailed(sol.message)
    return 0


def _control_sweep(args: argparse.Namespace) -> int:
    """diffsim control SYSTEM --sweep NAME=a:b:n [--starts K]: a table and a figure; exits 1 if a
    grid point has no converged start."""
    import numpy as np

    from diffsim import DiffsimError

    from . import SYSTEMS, ProblemError
    from .sweep import sweep

    grid = {}
    for spec in args.sweep:
        try:
            name, rng = spec.split("=")
            a, b, n = rng.split(":")
            grid[name] = np.linspace(float(a), float(b), int(n))
        except ValueError:
            print(f"error: --sweep {spec!r}: write NAME=start:stop:count, e.g. T=2:6:5", file=sys.stderr)
            return 2
    fixed = {"N": args.steps} if args.steps is not None else {}
    options = {"gradient": args.gradient}  # as a single solve of the command takes them
    if getattr(args, "solver", None):
        options["solver"] = args.solver
    try:
        with cluster_client(args) as client:
            result = sweep(SYSTEMS[args.system], grid, starts=args.starts, method=args.method, fixed=fixed,
                           client=client, solutions=False, **options)  # a table and a figure: no trajectories
    except (ProblemError, DiffsimError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    unsolved = [p for p, k in zip(result.points, result.best_start()) if k < 0]
    if unsolved:
        print(f"error: no start converged at {len(unsolved)} of {len(result.points)} points", file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    """BPTT, checkpointed BPTT and the continuous adjoint on a ready problem: table and figure."""
    from . import SYSTEMS, compare

    problem = SYSTEMS[args.system](N=args.steps) if args.steps is not None else SYSTEMS[args.system]()
    result = compare(problem, optimize=not args.no_optimize)
    print(result.table())
    if args.plot:
        result.plot(args.plot)
        print(f"wrote {args.plot}")
    failed = [k for k, s in (result.solutions or {}).items() if not s.status]
    if failed:
        raise ComputationFailed(f"the optimisation with {', '.join(failed)} gradients did not converge")
    return 0


def _mpc(args: argparse.Namespace) -> int:
    """Run MPC (one warm real-time iteration per step, DDP or interior point) on a ready task in a closed loop, with
    optional state disturbances and model error; compare it with the open-loop replay of a plan
    over the whole run and with that plan's DDP feedback gains alone."""
    import numpy as np

    from .ddp import ddp
    from .mpc import MPC, MPCError
    from .regulation import mpc_task, plan_baselines

    if args.runs != 1:
        return _monte_carlo(args)
    try:
        if args.steps < 1:
            raise MPCError(f"--steps must be at least 1, got {args.steps}")
        ocp, plan_ocp, guess = mpc_task(args.system, args.steps)
        mpc = MPC(ocp, horizon=args.horizon, method=getattr(args, "method", "ddp"), initial_states=guess)
        common = dict(x0=ocp.x0, steps=args.steps, disturbance=args.disturbance or None, model_error=args.model_error)
        run = mpc.simulate(**common)
        plan = ddp(plan_ocp, X0=None if guess is None else np.tile(guess, (plan_ocp.N + 1, 1)))
        others = plan_baselines(plan_ocp, plan, **common) if plan.status else {}
        if not plan.status:
            print(f"the plan over the whole run failed ({plan.message}): no open-loop baselines")
    except MPCError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{ocp.name}: horizon {args.horizon} x dt {ocp.T / ocp.N:g}, {args.steps} steps, "
          f"disturbance σ = {args.disturbance:g}, model error {args.model_error:+.0%}")
    for r in [run, *others.values()]:
        print(f"  {r}")
    if args.plot:
        run.plot(args.plot, others=others, names=(ocp.x_names, ocp.u_names))
        print(f"wrote {args.plot}")
    return 0 if run.status else 1


def _monte_carlo(args: argparse.Namespace) -> int:
    """diffsim mpc SYSTEM --runs K --disturbance SIGMA [--workers N | --scheduler ADDR]: K closed loops
    under random kicks; exits 1 if any run failed."""
    from diffsim.cluster import ClusterError

    from .monte_carlo import monte_carlo
    from .mpc import MPCError
    from .regulation import mpc_task

    try:
        if args.runs < 2:
            raise MPCError(f"--runs must be at least 2 for a Monte-Carlo, got {args.runs}")
        if not args.disturbance > 0:
            raise MPCError("a Monte-Carlo needs random disturbances: give --disturbance SIGMA > 0")
        ocp, _, guess = mpc_task(args.system, args.steps)
        with cluster_client(args) as c:
            mc = monte_carlo(ocp, runs=args.runs, disturbance=args.disturbance, model_error=args.model_error,
                             horizon=args.horizon, steps=args.steps, seed=args.seed, client=c, initial_states=guess)
    except (MPCError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{ocp.name}: " + mc.table())
    if args.plot:
        mc.plot(args.plot)
        print(f"wrote {args.plot}")
    return 0 if mc.success_rate == 1.0 else 1
