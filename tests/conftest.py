"""Fixtures shared across the test directories."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.fixture
def run_interpreted_and_compiled(tmp_path):
    """``run(child) -> (interpreted, compiled)``: the JSON that the script ``child`` prints, once
    with every generated function kept in its Python twin (the background compiler switched off
    in the child) and once compiled first (``DIFFSIM_JIT=eager``), each with an empty kernel cache
    of its own. ``child`` reads ``sys.argv[1] == "interpreted"`` to switch the compiler off."""

    def one(child: str, mode: str) -> dict:
        env = dict(os.environ, DIFFSIM_CACHE_DIR=str(tmp_path / mode),
                   DIFFSIM_JIT="background" if mode == "interpreted" else "eager")
        for var in ("NUMBA_DISABLE_JIT", "NUMBA_CACHE_DIR"):
            env.pop(var, None)
        run = subprocess.run([sys.executable, "-c", child, mode], env=env, capture_output=True, text=True,
                             timeout=1800)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout)

    return lambda child: (one(child, "interpreted"), one(child, "compiled"))
