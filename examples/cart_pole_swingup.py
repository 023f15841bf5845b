"""Cart-pole swing-up (Kelly 2017): move the cart 1 m and invert the pole in 2 s, |F| <= 20 N,
minimising the integral of F². Solved by single shooting with BPTT gradients; writes the
trajectory plot and, unless --quick, an animation (GIF) of the swing.

    python examples/cart_pole_swingup.py [--quick] [--out DIR]
"""

import argparse
import pathlib

import numpy as np

from trajectories import single_shooting
from trajectories.systems import cart_pole_swingup


def animate(sol, path, pole_length=0.5):
    from diffsim.files import atomic_path, pyplot

    plt = pyplot()
    from matplotlib.animation import FuncAnimation, PillowWriter

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_xlim(-0.8, 1.8)
    ax.set_ylim(-0.7, 0.7)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.6", lw=1)
    cart, = ax.plot([], [], "s", ms=18, color="tab:blue")
    pole, = ax.plot([], [], "-o", lw=3, color="tab:orange")

    def draw(k):
        x, th = sol.x[k, 0], sol.x[k, 1]
        tip = (x + pole_length * np.sin(th), -pole_length * np.cos(th))  # θ = 0 hangs down
        cart.set_data([x], [0.0])
        pole.set_data([x, tip[0]], [0.0, tip[1]])
        return cart, pole

    with atomic_path(path) as tmp:  # a reader never sees half a GIF
        FuncAnimation(fig, draw, frames=range(0, len(sol.t), 2), blit=True).save(tmp, writer=PillowWriter(fps=25))
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grid, no animation")
    parser.add_argument("--out", default=".", help="folder for the figures")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    problem = cart_pole_swingup(N=40 if args.quick else 100)
    sol = single_shooting(problem, gradient="bptt")
    print(sol)
    print("final state:", np.round(sol.x[-1], 6), " goal: [1, π, 0, 0]")
    sol.plot(str(out / "cart_pole_swingup.png"), names=(problem.x_names, problem.u_names))
    if not args.quick:
        animate(sol, str(out / "cart_pole_swingup.gif"))
    return 0 if sol.status else 1


if __name__ == "__main__":
    raise SystemExit(main())
