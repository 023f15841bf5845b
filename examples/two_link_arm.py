"""Two-link planar arm reaching: from rest at (0, 0) to rest at (π/2, π/4) in 1.5 s with
|τ| <= 15 N·m, minimising ∫|τ|² dt. Solved by direct multiple shooting, then by Pontryagin's
costate equations warm-started from it; plots both and the arm's path.

    python examples/two_link_arm.py [--quick] [--out DIR]
"""

import argparse
import pathlib

import numpy as np

from trajectories import multiple_shooting, pontryagin
from trajectories.systems import two_link_arm_reach


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grid")
    parser.add_argument("--out", default=".", help="folder for the figures")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = two_link_arm_reach(N=30 if args.quick else 80)
    direct = multiple_shooting(problem)
    indirect = pontryagin(problem, warm_start=direct)
    for sol in (direct, indirect):
        print(sol)
    names = (problem.x_names, problem.u_names)
    direct.plot(str(out / "two_link_arm_direct.png"), names=names)
    indirect.plot(str(out / "two_link_arm_pontryagin.png"), names=names)

    from diffsim.files import pyplot, write_figure

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for k in range(0, len(direct.t), max(1, len(direct.t) // 12)):
        q1, q2 = direct.x[k, 0], direct.x[k, 1]
        elbow = np.array([np.sin(q1), -np.cos(q1)])  # q1 = 0 hangs down, as in the dynamics
        hand = elbow + np.array([np.sin(q1 + q2), -np.cos(q1 + q2)])
        ax.plot([0, elbow[0], hand[0]], [0, elbow[1], hand[1]], "-o", color=plt.cm.viridis(k / len(direct.t)), ms=3)
    ax.set_aspect("equal")
    ax.set_title("two-link arm: reaching motion")
    write_figure(fig, out / "two_link_arm_path.png")
    return 0 if direct.status and indirect.status else 1


if __name__ == "__main__":
    raise SystemExit(main())
