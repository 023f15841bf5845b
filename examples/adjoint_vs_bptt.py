"""The adjoint-versus-BPTT study: on the cart-pole swing-up, compare the exact discrete adjoint
(BPTT), its checkpointed form and the continuous costate equation: gradients, costate curves,
the gap as dt shrinks (fourth order with RK4), time, memory and the optimum each one reaches.

    python examples/adjoint_vs_bptt.py [--quick] [--out DIR]
"""

import argparse
import pathlib

from trajectories import compare
from trajectories.systems import cart_pole_swingup


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer grids, no optimisation")
    parser.add_argument("--out", default=".", help="folder for the figure")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = compare(cart_pole_swingup(N=100), steps=(25, 50, 100) if args.quick else (25, 50, 100, 200, 400, 800),
                     optimize=not args.quick)
    print(result.table())
    result.plot(str(out / "adjoint_vs_bptt.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
