"""The demo under faults: it writes into a temporary folder inside --out and moves the files in
at the end (results.json last), so a killed run leaves the previous report as it was and never
a mixture; SIGTERM cleans up at once, SIGKILL's leftovers are swept by the next run."""

import json
import random
import signal
import time

import pytest

from diffsim.cli import DEMO_FILES
from diffsim.files import write_atomic

from .reliability_helpers import start_python

DEMO = "from diffsim.cli import main; import sys; sys.exit(main(['demo', '--quick', '--out', 'out']))"


def _staging(out):
    return [p for p in out.glob(".partial-*") if p.is_dir()] if out.exists() else []


def _start_and_wait(tmp_path, cache):
    child = start_python(DEMO, cache, cwd=tmp_path)
    deadline = time.time() + 300
    # wait until the staging folder holds a first file (the run is past its imports and first
    # compilations, in the demo's own code): a signal then lands mid-run
    while not any(any(d.iterdir()) for d in _staging(tmp_path / "out")) and child.poll() is None \
            and time.time() < deadline:
        time.sleep(0.02)
    return child


def _consistent(out):
    """Either the old report untouched, or a complete new one."""
    results = out / "results.json"
    if json.loads(results.read_text()).get("old"):
        return sorted(p.name for p in out.iterdir() if not p.name.startswith(".partial-")) == ["results.json"]
    return all((out / name).stat().st_size > 0 for name in DEMO_FILES)


def test_sigterm_during_the_demo_leaves_the_old_report(tmp_path, cache):
    write_atomic(tmp_path / "out" / "results.json", json.dumps({"old": True}))
    child = _start_and_wait(tmp_path, cache)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143 and "Traceback" not in err, err
    assert not _staging(tmp_path / "out") and _consistent(tmp_path / "out")


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_sigkill_during_the_demo_soak(tmp_path, cache, trial):
    write_atomic(tmp_path / "out" / "results.json", json.dumps({"old": True}))
    child = _start_and_wait(tmp_path, cache)
    time.sleep(random.Random(trial).uniform(0.0, 40.0))
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert _consistent(tmp_path / "out")
    write_atomic(tmp_path / "out" / "note.txt", "next run")  # the next write there sweeps the leftovers
    assert not list((tmp_path / "out").glob(".partial-*"))
