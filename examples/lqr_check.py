"""The LQR check: a double integrator with Q = I, R = 1, terminal weight I, T = 5, x0 = (1, 0).
The direct method converges to the Riccati optimum at second order in the grid, and the
Pontryagin method reproduces the feedback law u = −R⁻¹BᵀP(t)x(t).

    python examples/lqr_check.py [--quick] [--out DIR]
"""

import argparse
import pathlib

import numpy as np

from trajectories import pontryagin, single_shooting
from trajectories.systems import double_integrator_lqr, riccati_lqr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer grids")
    parser.add_argument("--out", default=".", help="folder for the figure")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    J_star, ts, P, x_ric, u_ric = riccati_lqr()
    print(f"Riccati optimum J* = {J_star:.12f}")
    grids = (50, 100, 200) if args.quick else (50, 100, 200, 400, 800)
    errors = []
    for N in grids:
        sol = single_shooting(double_integrator_lqr(N=N))
        errors.append(abs(sol.cost - J_star) / J_star)
        print(f"direct, N = {N:4d}: J = {sol.cost:.12f}   relative error {errors[-1]:.2e}")
    ind = pontryagin(double_integrator_lqr(N=200))
    u_fb = np.array([-(P(t).reshape(2, 2) @ x)[1] for t, x in zip(ind.t[:-1], ind.x[:-1])])
    print(f"Pontryagin: J = {ind.cost:.12f}   relative error {abs(ind.cost - J_star) / J_star:.2e}, "
          f"max |u - (-R⁻¹BᵀPx)| = {np.max(np.abs(ind.u[:, 0] - u_fb)):.1e}")

    from diffsim.files import pyplot, write_figure

    plt = pyplot()

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].loglog(grids, errors, "o-", label="direct (single shooting)")
    ax[0].loglog(grids, errors[0] * (np.array(grids) / grids[0]) ** -2.0, "k:", label="N⁻²")
    ax[0].set_xlabel("N")
    ax[0].set_ylabel("relative cost error")
    ax[0].legend()
    ax[1].plot(ts, u_ric, label="Riccati feedback")
    ax[1].step(ind.t[:-1], ind.u[:, 0], "--", where="post", label="Pontryagin")
    ax[1].set_xlabel("t")
    ax[1].legend()
    fig.tight_layout()
    write_figure(fig, out / "lqr_check.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
