"""The ``diffsim`` command: the entry point composing the applications' subcommands and demo
sections. Subcommands import what they need when they run, so ``--help`` is instant.

    diffsim demo            the main job: control and a learned potential, checked, written as a report
    diffsim control SYSTEM  solve a ready optimal control problem          (trajectories.cli)
    diffsim compare SYSTEM  BPTT vs the continuous adjoint on it           (trajectories.cli)
    diffsim mpc SYSTEM      model-predictive control in a closed loop      (trajectories.cli)
    diffsim potential ...   generate EMT data, train, evaluate, run MD     (potentials.cli)
    diffsim --version

Argument types, the usage error and the error policy are in :mod:`diffsim.command`; the demo's
runner and the engine's section in :mod:`diffsim.demo`.
"""

from __future__ import annotations

import argparse
import sys

import potentials.cli
import trajectories.cli

from .command import Parser, UsageError, os_error_message, output_folder
from .command import run_command as _run
from .demo import ENGINE, demo_files, run_demo
from .termination import Terminated, signals_raise

# the demo's sections in order: the engine, then each application's
DEMO_SECTIONS = (ENGINE, *trajectories.cli.DEMO_SECTIONS, *potentials.cli.DEMO_SECTIONS)

# Every file the demo writes into its folder.
DEMO_FILES = demo_files(DEMO_SECTIONS)


def _demo(args: argparse.Namespace) -> int:
    """The main job, on embedded defaults (no network, no external data): (1) the engine's gradients
    against closed forms and finite differences; (2) the cart-pole swing-up solved with BPTT and with
    continuous-adjoint gradients, and their gap as dt shrinks; (3) EMT copper data generated into an
    ase.db, an ACSF potential trained on it, its held-out force error, and MD with it (NVE drift, g(r)
    against EMT). Writes a report (report.md, report.html), its figures and results.json into --out.
    Exits non-zero if any of the report's checks fails."""
    return run_demo(args.out, args.quick, DEMO_SECTIONS)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``diffsim`` command. A subcommand is a subparser whose
    ``func`` default runs it; :func:`main` runs every one under the same error handling."""
    from . import __version__

    parser = Parser(
        prog="diffsim",
        description="Differentiable physics on a CPU: exact gradients, compiled loops.",
        epilog="Start with 'diffsim demo'. 'diffsim COMMAND --help' describes a command's options.")
    parser.add_argument("--version", action="version", version=f"diffsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    demo = sub.add_parser("demo", help="run the main job: control and a learned potential, checked, in a report",
                          description=_demo.__doc__)
    demo.add_argument("--quick", action="store_true",
                      help="a smaller, faster run (about 20 s with warm caches; the full run takes a few minutes; "
                           "the first run on a machine also compiles Numba kernels)")
    demo.add_argument("--out", metavar="DIR", default="diffsim-demo-report", type=output_folder,
                      help="folder for the report, its figures, data and model (default ./diffsim-demo-report)")
    demo.set_defaults(func=_demo)
    trajectories.cli.register(sub)
    potentials.cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``diffsim`` console script: parse, then run the subcommand under
    :func:`_run` (every subcommand, present and future, gets the same error handling). SIGTERM
    and SIGHUP raise :class:`~diffsim.termination.Terminated` from the first statement on, so a
    run signalled at any point after its imports cleans up and exits 143."""
    try:
        with signals_raise():
            return _main(argv)
    except Terminated as exc:  # before a subcommand started (its own are reported by _run)
        print(f"diffsim: terminated by {exc}", file=sys.stderr)
        return 143


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported in one line
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    args.command_name = " ".join(["diffsim"] + [getattr(args, k) for k in ("command", "action")
                                                if getattr(args, k, None)])
    return _run(args.func, args)


__all__ = ["DEMO_FILES", "DEMO_SECTIONS", "Terminated", "UsageError", "build_parser", "main", "os_error_message"]

if __name__ == "__main__":
    sys.exit(main())
