"""The ``diffsim mpc`` subcommand and the MPC section of ``diffsim demo``.

``diffsim mpc SYSTEM`` runs a receding-horizon controller on a task of
:data:`trajectories.regulation.MPC_SYSTEMS` in a closed loop, beside the open-loop replay of one
plan and beside that plan's DDP gains alone, and prints one line per controller.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

UPRIGHT = np.array([0.0, np.pi, 0.0, 0.0])


def add_mpc_parser(sub) -> None:
    """Register ``mpc`` on the ``diffsim`` subparsers."""
    from .regulation import MPC_SYSTEMS

    p = sub.add_parser("mpc", help="model-predictive control of a ready task in a closed loop",
                       description=run_mpc.__doc__)
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
    p.add_argument("--workers", type=int, metavar="N", help="--runs on N local worker processes (Dask)")
    p.add_argument("--scheduler", metavar="ADDR", help="--runs on the Dask scheduler at ADDR (default "
                   "$DIFFSIM_SCHEDULER; without either, here in one process)")
    p.set_defaults(func=run_mpc)


def _task(system: str, steps: int):
    """(the task for the controller, a plan problem over the whole run, its initial states guess)."""
    from .regulation import MPC_SYSTEMS, cart_pole_upright

    ocp = MPC_SYSTEMS[system]()
    dt = ocp.T / ocp.N
    if system == "cart_pole":
        x0 = (0.0, np.pi - 0.3, 0.0, 0.0)
        return cart_pole_upright(x0=x0), cart_pole_upright(N=steps, T=steps * dt, x0=x0), UPRIGHT
    return ocp, MPC_SYSTEMS[system](N=steps, T=steps * dt), None


def run_mpc(args: argparse.Namespace) -> int:
    """Run MPC (one warm real-time iteration per step, DDP or interior point) on a ready task in a closed loop, with
    optional state disturbances and model error; compare it with the open-loop replay of a plan
    over the whole run and with that plan's DDP feedback gains alone."""
    from .ddp import ddp
    from .mpc import MPC, FeedbackPolicy, MPCError, OpenLoop, closed_loop

    if args.runs != 1:
        return run_monte_carlo(args)
    try:
        if args.steps < 1:
            raise MPCError(f"--steps must be at least 1, got {args.steps}")
        ocp, plan_ocp, guess = _task(args.system, args.steps)
        mpc = MPC(ocp, horizon=args.horizon, method=getattr(args, "method", "ddp"), initial_states=guess)
        common = dict(x0=ocp.x0, steps=args.steps, disturbance=args.disturbance or None, model_error=args.model_error)
        run = mpc.simulate(**common)
        plan = ddp(plan_ocp, X0=None if guess is None else np.tile(guess, (plan_ocp.N + 1, 1)))
        others = {}
        if plan.status:
            others["open loop"] = closed_loop(plan_ocp, OpenLoop(plan.u), name="open loop", **common)
            others["DDP gains"] = closed_loop(plan_ocp, FeedbackPolicy(plan, plan_ocp), name="DDP gains", **common)
        else:
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


def run_monte_carlo(args: argparse.Namespace) -> int:
    """diffsim mpc SYSTEM --runs K --disturbance SIGMA [--workers N | --scheduler ADDR]: K closed loops
    under random kicks; exits 1 if any run failed."""
    import contextlib
    import os

    from diffsim.cluster import ClusterError, client

    from .monte_carlo import monte_carlo
    from .mpc import MPCError

    try:
        if args.runs < 2:
            raise MPCError(f"--runs must be at least 2 for a Monte-Carlo, got {args.runs}")
        if not args.disturbance > 0:
            raise MPCError("a Monte-Carlo needs random disturbances: give --disturbance SIGMA > 0")
        ocp, _, guess = _task(args.system, args.steps)
        where = client(scheduler=args.scheduler, workers=args.workers) \
            if args.workers or args.scheduler or os.environ.get("DIFFSIM_SCHEDULER") else contextlib.nullcontext()
        with where as c:
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


def demo_mpc(report, size: dict, checks: list, check) -> dict:
    """The demo's MPC section: the cart-pole held upright under pushes by MPC, beside the open-loop
    replay of a plan and beside the plan's DDP gains; the figure with the solve-time histogram."""
    from .ddp import ddp
    from .mpc import MPC, FeedbackPolicy, OpenLoop, closed_loop

    steps = 150
    ocp, plan_ocp, guess = _task("cart_pole", steps)
    kicks = np.zeros((steps, 4))
    kicks[[20, 50, 80], 3] = [2.0, -2.0, 2.0]
    kicks[[35, 65], 2] = [1.0, -1.0]
    mpc = MPC(ocp, horizon=40, initial_states=guess)
    run = mpc.simulate(x0=ocp.x0, steps=steps, disturbance=kicks)
    plan = ddp(plan_ocp, X0=np.tile(guess, (steps + 1, 1)))
    common = dict(x0=ocp.x0, steps=steps, disturbance=kicks)
    others = {"open loop": closed_loop(plan_ocp, OpenLoop(plan.u), name="open loop", **common),
              "DDP gains": closed_loop(plan_ocp, FeedbackPolicy(plan, plan_ocp), name="DDP gains", **common)}
    tilt = {name: float(np.max(np.abs(r.x[:, 1] - np.pi))) for name, r in {"mpc": run, **others}.items()}
    median = float(np.median(run.solve_times[1:]))
    print(f"   MPC: {run}")
    check(checks, "MPC keeps the pole within 0.6 rad of upright under the pushes", tilt["mpc"], "< 0.6",
          run.status and tilt["mpc"] < 0.6)
    check(checks, "the open-loop replay of the plan falls (max tilt)", tilt["open loop"], "> π/2",
          tilt["open loop"] > np.pi / 2)
    report.heading("Model-predictive control: the cart-pole under pushes")
    report.paragraph(f"The cart-pole held upright by MPC: every 20 ms one warm real-time DDP iteration over a "
                     f"40-step (0.8 s) horizon, shifted from the last plan, with |F| ≤ 20 N. Five pushes hit the pole "
                     f"and the cart. Beside it, a plan over the whole run replayed open loop, and the same plan with "
                     f"its DDP feedback gains u = u_k + K_k(x − x_k). Median solve time per step "
                     f"{median * 1e6:.0f} µs ({1 / median:,.0f} Hz possible).")
    report.table(["controller", "max |θ − π| (rad)", "closed-loop cost", "status"],
                 [[name, f"{tilt[name]:.3g}", f"{r.cost:.4g}", "ok" if r.status else r.message]
                  for name, r in {"mpc": run, **others}.items()])
    report.figure(run.plot(others=others, names=(ocp.x_names, ocp.u_names)), "cartpole_mpc.png",
                  "Cart-pole MPC under pushes (solid) beside open-loop replay and DDP gains (dashed); "
                  "solve time per step")
    return {"max_tilt": tilt, "median_step_seconds": median, "cost": run.cost}
