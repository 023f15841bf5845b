"""SIGTERM and SIGHUP as an exception, for a command that must clean up before it exits.

:func:`signals_raise` turns SIGTERM (and SIGHUP) into :class:`Terminated`, raised in the main
thread, so ``finally`` blocks and :mod:`diffsim.files`' atomic writes remove their temporary
files. Python runs a signal handler at the next bytecode of the main thread, and that bytecode
may belong to code whose exceptions Python swallows and only prints: a ctypes callback (Numba's
LLVM object-cache hook runs as one during every compilation) or a finaliser (``__del__``, a
weakref callback). An exception raised there never reaches the program, and a terminated run
would go on to finish. So the handler is backed by :data:`sys.unraisablehook`: when a
``Terminated`` is swallowed, it is raised again from a timer (SIGALRM) a moment later, at the
next bytecode, until it propagates.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

RETRY_SECONDS = 0.02  # the delay of a re-raise after a swallowed Terminated


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the main thread is. A BaseException, like
    KeyboardInterrupt, so that ``except Exception`` clauses let it pass."""


def _signals() -> list[signal.Signals]:
    return [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGHUP raise :class:`Terminated` (its message the signal's
    name) in the main thread, and keep raising until it propagates; the previous handlers and
    hooks are restored on exit. Outside the main thread it does nothing.

    >>> import os, signal
    >>> try:
    ...     with signals_raise():
    ...         os.kill(os.getpid(), signal.SIGTERM)
    ...         for _ in range(10**6):
    ...             pass
    ... except Terminated as exc:
    ...     print("terminated by", exc)
    terminated by SIGTERM
    """
    received: list[str] = []

    def terminate(signum, frame):
        received.append(signal.Signals(signum).name)
        raise Terminated(received[0])

    def retry(signum, frame):
        raise Terminated(received[0] if received else "SIGTERM")

    previous_hook = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, Terminated):
            # swallowed (a ctypes callback, a finaliser): raise it again once out of there
            signal.setitimer(signal.ITIMER_REAL, RETRY_SECONDS)
            return
        previous_hook(unraisable)

    previous = {}
    try:
        for sig in _signals():
            previous[sig] = signal.signal(sig, terminate)
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, retry)
    except ValueError:  # not the main thread: signals are not ours to handle
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        yield
        return
    sys.unraisablehook = hook
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["Terminated", "signals_raise"]
