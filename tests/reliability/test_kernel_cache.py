"""The kernel cache heals itself: a truncated or edited generated module, a truncated Numba
index, a corrupted or garbage Numba data file — each is detected, discarded and rebuilt, by one
process or by several at once, and the kernel's values stay right (checked against the closed
form of the function and its gradient)."""

import pathlib
import subprocess

import pytest

from .reliability_helpers import run_python, start_python

# f(x) = sin(x0) x1² + exp(x1): value and gradient printed by a child that compiles it
CHILD = """
import numpy as np, diffsim as ds, diffsim.numpy as dnp
k = ds.compile(lambda x: dnp.sin(x[0]) * x[1] ** 2 + dnp.exp(x[1]), 2)
x = np.array([0.3, 0.7])
print(repr(float(k.forward(x))), *map(repr, k.vjp(x, 1.0)[0].tolist()), sum(k.forward.stats.cache_hits.values()))
"""


def _expected():
    import math

    x0, x1 = 0.3, 0.7
    return (math.sin(x0) * x1 ** 2 + math.exp(x1), math.cos(x0) * x1 ** 2, 2 * math.sin(x0) * x1 + math.exp(x1))


def _check(result: subprocess.CompletedProcess) -> int:
    assert result.returncode == 0, result.stderr
    *values, hits = result.stdout.split()
    for got, want in zip(map(float, values), _expected()):
        assert abs(got - want) <= 1e-14 * max(1.0, abs(want))
    return int(hits)


def _files(cache: pathlib.Path, pattern: str) -> list[pathlib.Path]:
    return sorted((cache / "kernels").rglob(pattern))


def test_a_truncated_generated_module_is_regenerated(cache):
    _check(run_python(CHILD, cache))
    (module,) = _files(cache, "k_*.py")
    text = module.read_text()
    module.write_text(text[: len(text) // 3])  # cut in the middle of a function
    _check(run_python(CHILD, cache))
    assert module.read_text() == text


@pytest.mark.slow
def test_an_edited_generated_module_is_regenerated(cache):
    _check(run_python(CHILD, cache))
    (module,) = _files(cache, "k_*.py")
    text = module.read_text()
    module.write_text(text.replace("math.sin", "math.cos"))  # valid Python, wrong function
    _check(run_python(CHILD, cache))
    assert module.read_text() == text


def test_damaged_numba_entries_are_recompiled_and_rewritten(cache):
    assert _check(run_python(CHILD, cache)) == 0  # compiled
    index = [p for p in _files(cache, "*.nbi") if ".forward-" in p.name]
    data = [p for p in _files(cache, "*.nbc") if ".vjp-" in p.name or ".vjp_unchecked-" in p.name]
    assert index and data
    for p in index:
        p.write_bytes(p.read_bytes()[:10])  # truncated index: UnpicklingError in plain Numba
    for p in data:
        blob = bytearray(p.read_bytes())
        blob[len(blob) // 2] ^= 0xFF  # one flipped byte in the machine code
        p.write_bytes(bytes(blob))
    assert _check(run_python(CHILD, cache)) == 0  # forward recompiled
    assert _check(run_python(CHILD, cache)) == 1  # and its entry rewritten whole


@pytest.mark.slow
def test_garbage_and_empty_numba_files_are_recompiled(cache):
    _check(run_python(CHILD, cache))
    for k, p in enumerate(_files(cache, "*.nb*")):
        p.write_bytes(b"" if k % 2 else b"\x80\x04garbage" * 50)
    _check(run_python(CHILD, cache))
    assert _check(run_python(CHILD, cache)) == 1


@pytest.mark.slow
def test_concurrent_writers_and_healers_all_succeed(cache):
    writers = [start_python(CHILD, cache) for _ in range(3)]  # an empty cache: all compile and write at once
    for child in writers:
        out, err = child.communicate(timeout=600)
        _check(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    (module,) = _files(cache, "k_*.py")
    module.write_text("")
    for p in _files(cache, "*.nbi"):
        p.write_bytes(b"\x00")
    children = [start_python(CHILD, cache) for _ in range(3)]
    for child in children:
        out, err = child.communicate(timeout=600)
        _check(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    assert _check(run_python(CHILD, cache)) == 1
    assert not list((cache / "kernels").glob(".partial-*"))


def test_an_unwritable_cache_folder_falls_back(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    _check(run_python(CHILD, blocker))  # DIFFSIM_CACHE_DIR is a file: kernels go to the temporary folder


def test_in_process_a_failed_import_leaves_no_half_module(tmp_path, monkeypatch):
    import sys

    from diffsim import codegen

    monkeypatch.setenv("DIFFSIM_CACHE_DIR", str(tmp_path))
    source = "x = 1\nraise RuntimeError('boom')\n"
    with pytest.raises(RuntimeError):
        codegen._load(source)
    assert f"diffsim_kernel_{codegen._digest(source.encode())}" not in sys.modules
