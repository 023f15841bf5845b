"""What every ``diffsim`` subcommand shares, whichever package registers it: the argument parser
with one-line errors, argument types that check files before any long work, the ``--workers`` /
``--scheduler`` options, and the one error policy under which :func:`run_command` runs a command.

The applications' ``cli`` modules build their subcommands from these; :mod:`diffsim.cli` composes
them into the ``diffsim`` command.

>>> count("3"), positive("0.5")
(3, 0.5)
>>> parser = Parser(prog="diffsim demo")
>>> cluster_options(parser)
>>> parser.parse_args(["--workers", "2"]).workers
2
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import sys

from .errors import ComputationFailed, DiffsimError  # ComputationFailed: a computation that ran and failed, exit 1
from .termination import Terminated


class UsageError(DiffsimError):
    """A mistake in the command line or its input files: one line on stderr, exit status 2."""


_OS_ADVICE = {errno.ENOENT: "no such file or folder: check the path",
              errno.EACCES: "permission denied: choose a place you can write to, or change its permissions",
              errno.EPERM: "not permitted: choose another place",
              errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
              errno.EISDIR: "is a folder: give a file name",
              errno.ENOSPC: "the disk is full: free some space or write elsewhere",
              errno.EROFS: "a read-only file system: write elsewhere",
              errno.EEXIST: "already exists and is in the way: remove it or choose another path",
              errno.ENAMETOOLONG: "the name is too long: choose a shorter path"}


def os_error_message(exc: OSError) -> str:
    """One line for an OS error: the path, what went wrong and what to do.

    >>> os_error_message(FileNotFoundError(2, "No such file or directory", "/no/such/file.npz"))
    '/no/such/file.npz: no such file or folder: check the path'
    """
    where = exc.filename if exc.filename is not None else ""
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    what = _OS_ADVICE.get(exc.errno, f"{exc.strerror or exc}" if exc.errno else str(exc))
    return f"{where}: {what}" if where else what


def _user_error_types() -> tuple:
    """Exceptions that mean a mistake in the input (exit 2): diffsim's own, and the ValueErrors of
    the applications' checks of arguments and files (DatasetError, ModelFileError, ...)."""
    return (UsageError, DiffsimError, ValueError)


def one_line(text: str) -> str:
    """``text`` with every run of white space (newlines too) made one space."""
    return " ".join(str(text).split())


def run_command(func, args: argparse.Namespace) -> int:
    """Run one subcommand under the one error policy of the command: a user's mistake or an OS
    error is one line on stderr and exit status 2, a failed computation one line and 1, an
    interruption 130 (SIGINT) or 143 (SIGTERM), a closed output pipe 141; never a traceback (set DIFFSIM_TRACEBACK=1 to
    see one for an unexpected error)."""
    import os
    import warnings

    name = getattr(args, "command_name", "diffsim")

    def one_line_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{name}: warning: {one_line(message)}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("once")  # each distinct warning once, on one line
            warnings.showwarning = one_line_warning
            code = func(args)
        return 0 if code is None else int(code)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"{name}: terminated by {exc}; nothing half-written was left behind", file=sys.stderr)
        return 143
    except ComputationFailed as exc:
        print(f"{name}: failed: {one_line(exc)}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into a reader that stopped (| head): not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's status for a process ended by SIGPIPE
    except OSError as exc:
        print(f"{name}: error: {one_line(os_error_message(exc))}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"{name}: error: {one_line(exc)}; this needs an optional package: pip install "
              f"{exc.name or 'it'}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{name}: failed: out of memory; try a smaller problem (fewer atoms, steps or structures)",
              file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("DIFFSIM_TRACEBACK"):
            raise
        if isinstance(exc, _user_error_types()):
            print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        print(f"{name}: failed: {type(exc).__name__}: {one_line(exc)} (set DIFFSIM_TRACEBACK=1 to see where)",
              file=sys.stderr)
        return 1


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where the help is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see '{self.prog} --help')\n")


def number(kind, least=None, above=None, what="a number"):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        if (least is not None and value < least) or (above is not None and value <= above):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


count = number(int, least=1, what="a whole number ≥ 1")
nonnegative = seed_type = number(int, least=0, what="a whole number ≥ 0")
positive = number(float, above=0.0, what="a positive number")
nonnegative_float = number(float, least=0.0, what="a number ≥ 0")


def output_file(text: str) -> str:
    """An argparse type: a file that can be written (checked now, before any long work)."""
    from .files import check_writable

    try:
        check_writable(text)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {os_error_message(exc)}") from None
    return text


def output_folder(text: str) -> str:
    """An argparse type: a folder that exists or can be made, and can be written."""
    from .files import check_writable

    try:
        check_writable(text, folder=True)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {os_error_message(exc)}") from None
    return text


def input_file(text: str) -> str:
    """An argparse type: an existing, readable file."""
    import os

    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: a folder, not a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: not readable (permission denied)")
    return text


def dataset_output(text: str) -> str:
    """An argparse type: a writable .db, .xyz or .extxyz file."""
    if not text.endswith((".db", ".xyz", ".extxyz")):
        raise argparse.ArgumentTypeError(f"{text}: a dataset file must end in .db (ase.db), .xyz or .extxyz")
    return output_file(text)


def cluster_options(parser: argparse.ArgumentParser, what: str = "run the tasks") -> None:
    """--workers / --scheduler: where a command's independent tasks run (``what``: the help's subject)."""
    parser.add_argument("--workers", type=int, metavar="N",
                        help=f"{what} on N local worker processes (Dask; pip install 'diffsim[cluster]')")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help=f"{what} on the Dask scheduler at ADDR, e.g. tcp://host:8786 "
                             "(default $DIFFSIM_SCHEDULER; without either, here in one process)")


def cluster_client(args: argparse.Namespace):
    """A Dask client for --workers/--scheduler/$DIFFSIM_SCHEDULER, or a context holding None (run here)."""
    import os

    if args.scheduler or args.workers or os.environ.get("DIFFSIM_SCHEDULER"):
        from .cluster import client

        return client(scheduler=args.scheduler, workers=args.workers)
    return contextlib.nullcontext(None)
