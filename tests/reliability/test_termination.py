"""SIGTERM raises Terminated even when the handler runs where Python swallows exceptions: in a
ctypes callback (Numba's LLVM object-cache hook is one, during every compilation) and in a
finaliser. Before diffsim.termination retried a swallowed Terminated, a demo signalled while
Numba compiled ignored SIGTERM and finished with exit status 0."""

import ctypes
import gc
import os
import signal
import subprocess
import sys
import time

import pytest

from diffsim.termination import Terminated, signals_raise

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)


def _busy(seconds):
    """Python bytecode for a while: where a retried Terminated lands."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(100))


def _signal_inside_a_ctypes_callback(x):
    os.kill(os.getpid(), signal.SIGTERM)
    _busy(0.05)  # the handler runs here, inside the callback, and its exception is swallowed
    return x


class _SignalsWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        _busy(0.05)


def _swallow_in_callback():
    CALLBACK(_signal_inside_a_ctypes_callback)(7)  # returns garbage: the callback was cut short


def _swallow_in_finaliser():
    a = _SignalsWhenCollected()
    a.cycle = a
    del a
    gc.collect()


@pytest.mark.parametrize("swallow", [_swallow_in_callback, _swallow_in_finaliser], ids=["ctypes", "finaliser"])
def test_a_terminated_swallowed_by_python_is_raised_again(swallow, capfd):
    reached_the_end = False
    with pytest.raises(Terminated, match="SIGTERM"):
        with signals_raise():
            swallow()
            _busy(2.0)
            reached_the_end = True
    assert not reached_the_end
    assert "Traceback" not in capfd.readouterr().err  # no "Exception ignored" report for it


def test_other_unraisable_exceptions_still_reach_the_previous_hook():
    seen = []
    previous, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        class Bad:
            def __del__(self):
                raise RuntimeError("from a finaliser")

        with signals_raise():
            Bad()
            gc.collect()
    finally:
        sys.unraisablehook = previous
    assert [type(u.exc_value) for u in seen] == [RuntimeError]


def test_handlers_are_restored_after_the_block():
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM), sys.unraisablehook
    with signals_raise():
        assert signal.getsignal(signal.SIGTERM) is not before[0]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGALRM), sys.unraisablehook) == before


def test_the_command_exits_143_when_signalled_during_parsing(tmp_path):
    """The handler is installed before the parser (which imports the applications) is built."""
    code = ("import os, signal, sys\n"
            "import diffsim.cli as cli\n"
            "real = cli.build_parser\n"
            "def build():\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    return real()\n"
            "cli.build_parser = build\n"
            "sys.exit(cli.main(['--version']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 143, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
