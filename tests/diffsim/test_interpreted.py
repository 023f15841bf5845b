"""First calls of a generated module as Python while Numba compiles it in the background
(:mod:`diffsim.interpreted`): the Python twin returns the compiled code's values bit for bit,
including where Python's math raises, and a fresh process's solve is interpreted, then swaps to
Numba once the background process has written the disk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import diffsim.numpy as dnp
from diffsim.codegen import compile_module
from diffsim.errors import DiffsimError
from diffsim.interpreted import background_enabled, python_twin

LOOP = """
@njit(cache=True)
def apply_all(X, out):
    for k in range(X.shape[0]):
        f_forward_into_unchecked(X[k], out[k])
    return out.sum()
"""


def _edge(x):
    # every rule with a domain: log, sqrt, a power with a fractional exponent, exp's overflow,
    # a division, trigonometry of an infinity
    return dnp.array([dnp.log(x[0]), dnp.sqrt(x[1]), x[2] ** 0.5, dnp.exp(x[0] * x[1]), x[1] / x[2],
                      dnp.sin(x[0]) * dnp.cos(x[1]), dnp.tanh(x[2]), dnp.arctan2(x[0], x[1])])


def test_the_python_twin_returns_numpys_values_and_the_compiled_codes_bits_on_and_off_the_domains():
    module, kernels = compile_module({"f_": (_edge, (3,), ("forward_into", "jacobian"))}, extra=LOOP,
                                     title="interpreted edge test")
    twin = python_twin((kernels["f_"].source), kernels["f_"].path)
    X = np.array([[0.7, 2.0, 3.0], [0.0, -1.0, -2.0], [-1.0, 0.0, 0.0], [1e3, 1e3, np.inf], [np.nan, 1.0, 1.0]])
    with np.errstate(all="ignore"):
        reference = np.array([[np.log(a), np.sqrt(b), c ** 0.5, np.exp(a * b), b / c, np.sin(a) * np.cos(b), np.tanh(c),
                               np.arctan2(a, b)] for a, b, c in X])
    out_twin, out_numba = np.zeros((5, 8)), np.zeros((5, 8))
    twin["apply_all"](X, out_twin)
    module.apply_all(X, out_numba)
    np.testing.assert_array_equal(out_twin, reference)  # numpy's values: nan where numpy has nan
    # exactly the compiled values (NaN as NaN: its sign bit is not a value)
    np.testing.assert_array_equal(out_twin, out_numba)
    assert np.array_equal(np.signbit(out_twin[~np.isnan(out_twin)]), np.signbit(out_numba[~np.isnan(out_numba)]))
    for x in X[:3]:
        np.testing.assert_array_equal(twin["f_jacobian"](x), kernels["f_"].jacobian(x))


def test_an_unknown_jit_mode_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("DIFFSIM_JIT", "lazy")
    with pytest.raises(DiffsimError, match="DIFFSIM_JIT='lazy'.*'background'.*'eager'"):
        background_enabled()
    monkeypatch.setenv("DIFFSIM_JIT", "eager")
    assert background_enabled() is False


FRESH = textwrap.dedent("""
    import json, sys, time
    from trajectories import SYSTEMS, solve
    from trajectories.transcription import stage_module
    ocp = SYSTEMS["double_integrator_lqr"](N=30)
    t = time.process_time()
    sol = solve(ocp)
    first = time.process_time() - t
    module = stage_module(ocp)
    kinds = [hasattr(module.nlp_hessians, "py_func")]
    deadline = time.time() + float(sys.argv[1])
    while sys.argv[1] != "0" and not hasattr(module.nlp_hessians, "py_func") and time.time() < deadline:
        time.sleep(0.2)
    kinds.append(hasattr(module.nlp_hessians, "py_func"))
    again = solve(ocp)
    print(json.dumps({"compiled_at_first": kinds[0], "compiled_later": kinds[1], "first_cpu": first,
                      "x": sol.x.tolist(), "u": sol.u.tolist(), "again_x": again.x.tolist(), "cost": sol.cost}))
""")


def _fresh(cache, mode, wait):
    env = dict(os.environ, DIFFSIM_CACHE_DIR=str(cache), DIFFSIM_JIT=mode)
    run = subprocess.run([sys.executable, "-c", FRESH, str(wait)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout)


@pytest.mark.slow
def test_a_fresh_process_solves_interpreted_then_swaps_to_numba_with_the_same_bits(tmp_path):
    from trajectories.systems import riccati_lqr

    eager = _fresh(tmp_path / "eager", "eager", 0)
    assert eager["compiled_at_first"] is True
    fresh = _fresh(tmp_path / "background", "background", 300)
    assert fresh["compiled_at_first"] is False    # served by the Python twin while Numba compiled
    assert fresh["compiled_later"] is True        # then the background process's cache
    # the swap changes nothing but speed: the same bits as compiled code, before and after it
    assert fresh["x"] == eager["x"] and fresh["u"] == eager["u"] and fresh["again_x"] == eager["x"]
    # and it is the optimum: the continuous Riccati cost, up to piecewise-constant controls on 30 intervals
    assert abs(fresh["cost"] - riccati_lqr(5.0)[0]) < 5e-3
    # a third process finds the cache and interprets nothing
    assert _fresh(tmp_path / "background", "background", 0)["compiled_at_first"] is True
