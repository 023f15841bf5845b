"""Fault injection helpers: run diffsim in a child process (which a test may kill) with its own
kernel cache."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def child_env(cache: pathlib.Path) -> dict:
    """The environment of a child: this checkout first on the path, its own kernel cache (Numba's
    files beside the generated modules, as without ``NUMBA_CACHE_DIR``)."""
    env = dict(os.environ, DIFFSIM_CACHE_DIR=str(cache), PYTHONPATH=str(ROOT))
    env.pop("DIFFSIM_TRACEBACK", None)
    env.pop("NUMBA_CACHE_DIR", None)
    return env


def run_python(code: str, cache: pathlib.Path, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=child_env(cache), cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def start_python(code: str, cache: pathlib.Path, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], env=child_env(cache), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_cli(args, cache: pathlib.Path, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "diffsim", *args], env=child_env(cache), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
