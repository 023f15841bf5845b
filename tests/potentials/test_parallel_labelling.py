"""Parallel EMT labelling on a real LocalCluster of two worker processes: the same rows as a serial
run, bit for bit, each exactly once, through a killed worker and a killed client."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.db import connect

from potentials.labelling import emt_tasks, write_dataset
from potentials.reference_data import DatasetError, generate_emt_dataset
from tests.reliability.worker_faults import kill_a_busy_worker, wait_for_workers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# MD chains of 3 samples x 15 steps, and single structures: long enough tasks to kill a worker among them
SPEC = dict(elements="Cu", size=(2, 2, 2), temperatures=(300.0, 900.0), md_samples=9, md_interval=15,
            rattled=4, strained=3, vacancies=3, seed=5, chain_samples=3)


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("serial") / "serial.db"
    summary = write_dataset(path, emt_tasks(**SPEC), progress=False)
    assert summary.rows == 2 * 9 + 10 and summary.tasks == 2 * 3 + 10
    return _rows(path)


def _rows(path) -> dict:
    """(task, sample) -> (numbers, positions, cell, energy, forces, stress) for every row; fails on duplicates."""
    out = {}
    for row in connect(str(path)).select():
        key = (row.task, row.sample)
        assert key not in out, f"duplicate row for {key}"
        out[key] = (row.numbers, row.positions, np.asarray(row.cell), row.energy, row.forces, row.stress)
    return out


def _assert_same(rows, reference):
    assert sorted(rows) == sorted(reference)
    for key, values in reference.items():
        for a, b in zip(rows[key], values):
            np.testing.assert_array_equal(a, b)  # bit for bit


def test_parallel_equals_serial_bit_for_bit_and_emt_labels_are_right(dask_client, serial_rows, tmp_path):
    summary = write_dataset(tmp_path / "parallel.db", emt_tasks(**SPEC), client=dask_client, progress=False)
    assert summary.total == len(serial_rows)
    _assert_same(_rows(tmp_path / "parallel.db"), serial_rows)
    atoms = connect(str(tmp_path / "parallel.db")).get(task="md-900K-1", sample=2).toatoms()
    fresh = atoms.copy()
    fresh.calc = EMT()  # the independent reference: EMT on the stored structure
    assert atoms.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), fresh.get_forces(), atol=1e-10)


def rows_written(path) -> int:
    """Rows in the ASE database at ``path`` so far, read without writing: ``ase.db.connect`` would create the
    tables if the writer has not yet, racing it ("table systems already exists"); 0 while there is none."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)) as con:
            return con.execute("SELECT COUNT(*) FROM systems").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killing_a_worker_mid_generate_loses_nothing_and_duplicates_nothing(dask_client, serial_rows, tmp_path):
    path = tmp_path / "killed.db"
    killer, killed = kill_a_busy_worker(dask_client, lambda: rows_written(path) >= 1)
    write_dataset(path, emt_tasks(**SPEC), client=dask_client, progress=False)
    killer.join()
    assert killed and killed[0][1], "no worker was killed while it held tasks"
    rows = _rows(path)  # raises on a duplicate
    _assert_same(rows, serial_rows)
    wait_for_workers(dask_client, 2)


@pytest.mark.slow  # ~25 s: a client process with its own cluster, killed, a rerun and an uninterrupted reference
def test_killing_the_client_then_rerunning_redoes_nothing(serial_rows, tmp_path):
    path = tmp_path / "resumed.db"
    args = ["potential", "generate", "--element", "Cu", "--size", "3", "--temperatures", "300", "900",
            "--md-samples", "9", "--eos", "0", "--seed", "5", "--out", str(path)]
    code = "import sys; from diffsim.cli import main; sys.exit(main(sys.argv[1:]))"
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-c", code, *args, "--workers", "2"], cwd=tmp_path, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            if rows_written(path) >= 5:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its local workers, as a crash would
        proc.wait()
    before = {(r.task, r.sample): (r.id, r.ctime) for r in connect(str(path)).select()}
    total = len(emt_tasks("Cu", size=(3, 3, 3), temperatures=(300.0, 900.0), md_samples=9, seed=5))
    done = {t for t, _ in before}
    assert 0 < len(done) < total, "the client was not killed in the middle of the run"
    rerun = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} of {total} tasks are already there" in rerun.stderr
    after = {(r.task, r.sample): (r.id, r.ctime) for r in connect(str(path)).select()}
    assert all(after[k] == v for k, v in before.items())  # rows written before the crash were not rewritten
    reference = tmp_path / "reference.db"
    generate_emt_dataset(reference, "Cu", size=(3, 3, 3), temperatures=(300, 900), md_samples=9, seed=5,
                         eos=0, progress=False)
    _assert_same(_rows(path), _rows(reference))  # every row once, and the data an uninterrupted run gives


def test_a_lock_left_by_a_killed_run_does_not_block_the_next_and_a_live_writer_is_refused(tmp_path):
    spec = dict(SPEC, temperatures=(), rattled=2, strained=0, vacancies=0)
    path = tmp_path / "a.db"
    write_dataset(path, emt_tasks(**spec), progress=False)
    with connect(str(path)) as db:  # as if the run had been killed before its last task
        db.delete([row.id for row in db.select(task="rattle-1")])
    (tmp_path / "a.db.lock").touch()  # what ase.db's lock leaves when its holder is SIGKILLed
    code = ("import sys; from potentials.labelling import emt_tasks, write_dataset; "
            f"print(write_dataset(sys.argv[1], emt_tasks(**{spec!r}), progress=False).total)")
    # a rerun that waits on the stale lock never ends: the timeout turns that into a failure
    run = subprocess.run([sys.executable, "-c", code, str(path)], env=dict(os.environ, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == "2" and len(_rows(path)) == 2
    assert not (tmp_path / "a.db.lock").exists()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from diffsim.files import sole_writer\n"
                               "with sole_writer(sys.argv[1]):\n print('held', flush=True); time.sleep(60)", str(path)],
                              env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DatasetError, match=f"another process \\(pid {holder.pid}\\) is writing"):
            write_dataset(path, emt_tasks(**spec), progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert write_dataset(path, emt_tasks(**spec), progress=False).total == 2  # the kernel freed the dead holder's lock


def test_resuming_with_other_parameters_or_a_foreign_db_is_refused(tmp_path):
    spec = dict(SPEC, temperatures=(), rattled=2, strained=0, vacancies=0)
    write_dataset(tmp_path / "a.db", emt_tasks(**spec), progress=False)
    with pytest.raises(DatasetError, match="generated with other parameters"):
        write_dataset(tmp_path / "a.db", emt_tasks(**dict(spec, seed=6)), progress=False)
    foreign = connect(str(tmp_path / "foreign.db"))
    foreign.write(bulk_cu())
    with pytest.raises(DatasetError, match="1 rows not written by this generator"):
        write_dataset(tmp_path / "foreign.db", emt_tasks(**spec), progress=False)
    with pytest.raises(DatasetError, match="whole numbers"):
        emt_tasks(md_samples=-1)


def bulk_cu():
    from ase.build import bulk

    return bulk("Cu")
