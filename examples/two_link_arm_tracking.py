"""Two-link arm tracking a moving target with MPC (DDP, 0.3 s horizon, box-limited torques),
under a 20% error in the plant's masses and lengths and small random kicks; beside it the
open-loop replay of a plan computed on the nominal model. Writes the figure.

    python examples/two_link_arm_tracking.py [--quick] [--out DIR]
"""

import argparse
import pathlib
import sys

import numpy as np

from trajectories.ddp import ddp
from trajectories.mpc import MPC, OpenLoop, closed_loop
from trajectories.regulation import arm_target, two_link_arm_tracking


def tracking_error(run) -> float:
    a, b = arm_target(run.t)
    late = run.t >= 0.5  # after the arm has caught up with the target
    return float(np.max(np.hypot(run.x[late, 0] - a[late], run.x[late, 1] - b[late])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a shorter run")
    ap.add_argument("--out", default=".", help="folder for the figure")
    args = ap.parse_args()
    steps = 150 if args.quick else 400
    task = two_link_arm_tracking()
    conditions = dict(steps=steps, model_error=0.2, disturbance=0.002)
    run = MPC(task, horizon=30).simulate(**conditions)
    plan_task = two_link_arm_tracking(N=steps, T=steps * task.T / task.N)
    plan = ddp(plan_task)
    replay = closed_loop(plan_task, OpenLoop(plan.u), name="open loop", **conditions)
    for r in (run, replay):
        print(f"{r.controller:>10}: max joint-space tracking error after 0.5 s {tracking_error(r):.3f} rad  ({r})")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run.plot(out / "two_link_arm_tracking.png", others={"open loop": replay}, names=(task.x_names, task.u_names))
    print(f"wrote {out / 'two_link_arm_tracking.png'}")
    return 0 if run.status else 1


if __name__ == "__main__":
    sys.exit(main())
