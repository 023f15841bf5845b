"""Interrupted writes leave nothing behind: an exception or SIGTERM removes the temporary file,
a SIGKILLed writer's leftovers are swept by the next write into the folder, and a live writer's
temporary is left alone."""

import os
import signal
import time

import pytest

from diffsim.files import atomic_folder, atomic_path, partial_name, sweep_partials, write_atomic

from .reliability_helpers import start_python


def test_an_exception_removes_the_temporary_and_keeps_the_old_file(tmp_path):
    target = write_atomic(tmp_path / "a.txt", "old")
    with pytest.raises(ZeroDivisionError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise ZeroDivisionError
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_failed_folder_leaves_the_destination_untouched(tmp_path):
    write_atomic(tmp_path / "results.json", "{}")
    with pytest.raises(RuntimeError):
        with atomic_folder(tmp_path, last=("results.json",)) as tmp:
            (tmp / "report.md").write_text("new")
            raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_stale_temporaries_of_dead_processes_are_swept(tmp_path):
    child = start_python("import os; print(os.getpid())", tmp_path)
    dead = int(child.communicate()[0])
    stale = tmp_path / f".partial-{dead}-abc.npz"
    stale.write_bytes(b"half")
    (tmp_path / f".partial-{dead}-dir").mkdir()
    live = tmp_path / partial_name(".db")  # this process: alive
    live.write_bytes(b"in progress")
    old_unowned = tmp_path / ".partial-legacy.db"
    old_unowned.write_bytes(b"x")
    os.utime(old_unowned, (time.time() - 7200, time.time() - 7200))
    removed = sorted(p.name for p in sweep_partials(tmp_path))
    assert removed == sorted([stale.name, f".partial-{dead}-dir", old_unowned.name])
    assert live.exists()


def test_sigterm_during_generate_leaves_nothing_half_written(tmp_path, cache):
    code = ("from diffsim.cli import main; import sys; sys.exit(main(['potential', 'generate', '--size', '2', "
            "'--md-samples', '400', '--out', 'd.db']))")
    child = start_python(code, cache, cwd=tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".partial-*.db")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob(".partial-*.db")), "the writer never started"
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143 and "Traceback" not in err, err
    assert not list(tmp_path.glob(".partial-*")) and not (tmp_path / "d.db").exists()


def test_a_full_disk_names_the_file_being_written(tmp_path):
    import errno

    from diffsim.cli import os_error_message

    with pytest.raises(OSError) as info:
        with atomic_path(tmp_path / "model.npz"):
            raise OSError(errno.ENOSPC, "No space left on device")  # as a write into the temporary would
    message = os_error_message(info.value)
    assert message == f"{tmp_path / 'model.npz'}: the disk is full: free some space or write elsewhere"
    assert not list(tmp_path.iterdir())
