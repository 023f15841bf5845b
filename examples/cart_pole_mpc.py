"""Cart-pole MPC: swing up from hanging and stay upright under pushes, with one warm DDP
real-time iteration every 20 ms; beside it, a plan over the whole run replayed open loop and the
same plan with its DDP feedback gains alone. Writes the figure (states, controls, solve times).

    python examples/cart_pole_mpc.py [--quick] [--out DIR]
"""

import argparse
import pathlib
import sys

import numpy as np

from trajectories.ddp import ddp
from trajectories.mpc import MPC
from trajectories.regulation import UPRIGHT, cart_pole_upright, plan_baselines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a shorter run")
    ap.add_argument("--out", default=".", help="folder for the figure")
    args = ap.parse_args()
    steps = 200 if args.quick else 300
    kicks = np.zeros((steps, 4))
    kicks[[120, 160], 3] = [2.0, -2.0]                 # pushes on the pole once it is up (rad/s)
    if not args.quick:
        kicks[[200, 240], 2] = [1.0, -1.0]             # and on the cart (m/s)
    task = cart_pole_upright(x0=(0.0, 0.0, 0.0, 0.0))  # the same cost swings it up from hanging
    mpc = MPC(task, horizon=50, initial_states=UPRIGHT)
    run = mpc.simulate(steps=steps, disturbance=kicks)

    plan_task = cart_pole_upright(N=steps, T=steps * 0.02, x0=(0.0, 0.0, 0.0, 0.0))
    plan = ddp(plan_task, X0=np.tile(UPRIGHT, (steps + 1, 1)))
    print(f"plan over the whole run: {plan}")
    others = plan_baselines(plan_task, plan, steps=steps, disturbance=kicks)
    for r in (run, *others.values()):
        up = np.abs(r.x[100:, 1] - np.pi).max()
        print(f"{r.controller:>10}: max |θ − π| after t = 2 s {up:.3f} rad, cost {r.cost:.4g}  ({r})")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run.plot(out / "cart_pole_mpc.png", others=others, names=(task.x_names, task.u_names))
    print(f"wrote {out / 'cart_pole_mpc.png'}")
    return 0 if run.status and np.abs(run.x[100:, 1] - np.pi).max() < 0.6 else 1


if __name__ == "__main__":
    sys.exit(main())
