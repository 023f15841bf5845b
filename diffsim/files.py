"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything diffsim writes (models, datasets, reports, generated kernels) goes through here. A
write goes to ``.partial-<pid>-<random><suffix>`` beside its target and is renamed into place
when complete; an exception (and, in the ``diffsim`` command, SIGTERM or SIGHUP, which it turns
into exceptions) removes it. A process killed outright (SIGKILL, power loss) cannot clean up:
the next write into the same folder sweeps temporaries whose process is gone
(:func:`sweep_partials`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import re
import shutil
import tempfile
import time

from .errors import DiffsimError

PARTIAL_PREFIX = ".partial-"
_PARTIAL = re.compile(re.escape(PARTIAL_PREFIX) + r"(\d+)-")
_UNOWNED_AGE = 3600.0  # seconds after which a temporary without a readable owner is stale


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: the umask is process-wide, so setting it per write races with threads


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def sweep_partials(folder: str | os.PathLike) -> list[pathlib.Path]:
    """Remove the temporaries that interrupted writes left in ``folder``: those whose writing
    process no longer exists (and, for names without a process id, those untouched for an
    hour). Returns what was removed. Live writers in other processes are left alone.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / ".partial-999999999-x.npz").write_bytes(b"half")   # no such process
    >>> [p.name for p in sweep_partials(folder)]
    ['.partial-999999999-x.npz']
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(PARTIAL_PREFIX):
            continue
        match = _PARTIAL.match(entry.name)
        try:
            stale = (not _alive(int(match.group(1)))) if match else \
                now - entry.stat(follow_symlinks=False).st_mtime > _UNOWNED_AGE
            if not stale:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
            removed.append(pathlib.Path(entry.path))
        except OSError:
            continue  # another process swept it first, or it is not ours to remove
    return removed


def partial_name(suffix: str = "") -> str:
    """A fresh temporary name (``.partial-<pid>-<random><suffix>``) that :func:`sweep_partials`
    recognises as this process's."""
    return f"{PARTIAL_PREFIX}{os.getpid()}-{os.urandom(6).hex()}{suffix}"


def _remove(path: str | os.PathLike) -> None:
    path = str(path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    for p in (path, path + "-journal", path + "-wal", path + "-shm"):  # SQLite's companions (ase.db)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (same suffix, not yet created) to write to; on
    success it is renamed onto ``path``, on an exception removed. A reader sees the old file or
    the new one, never half of one.

    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_partials(path.parent)
    tmp = path.parent / partial_name(path.suffix)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # the mode an ordinary open() would give
        os.replace(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a full disk says which file it was writing
        raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, last: tuple[str, ...] = ()):
    """Yield a fresh temporary folder inside ``path`` to fill; on success its files are moved
    into ``path`` (created if needed; other files there are kept) and it is removed; on an
    exception it is removed and ``path`` is untouched. Each file arrives whole. The files named
    in ``last`` (say a manifest) are removed from ``path`` before any file moves and moved in
    after all the others, so their presence means the whole set is from one run.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report"
    >>> with atomic_folder(out, last=("done.json",)) as tmp:
    ...     _ = (tmp / "a.txt").write_text("A"); _ = (tmp / "done.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt', 'done.json']
    """
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    sweep_partials(path)
    tmp = path / partial_name()
    tmp.mkdir()
    try:
        yield tmp
        for name in last:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path / name)
        items = sorted(tmp.iterdir(), key=lambda p: (p.name in last, p.name))
        for item in items:
            os.replace(item, path / item.name)
    finally:
        _remove(tmp)


def check_writable(path: str | os.PathLike, folder: bool = False) -> pathlib.Path:
    """Make sure ``path`` can be written (its folder exists or can be made, and accepts files)
    before long work starts; raises ``OSError`` naming the path otherwise. With ``folder``,
    ``path`` itself is the folder.

    >>> import tempfile, pathlib
    >>> check_writable(pathlib.Path(tempfile.mkdtemp()) / "new" / "model.npz").name
    'model.npz'
    """
    path = pathlib.Path(os.path.abspath(path))  # "a/../b" is resolved the way the OS will
    target = path if folder else path.parent
    if not folder and path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(path))
    probe_dir = target
    while not probe_dir.exists() and probe_dir != probe_dir.parent:  # the closest existing ancestor decides
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is a file, so nothing can be written under it", str(probe_dir))
    try:
        fd, probe = tempfile.mkstemp(dir=probe_dir, prefix=partial_name("-probe"))
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(errno.EACCES, f"cannot create files there ({exc.strerror})", str(probe_dir)) from None
    return path


def write_atomic(path: str | os.PathLike, data: str | bytes) -> pathlib.Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path.

    >>> import tempfile, pathlib
    >>> write_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hello").read_text()
    'hello'
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return pathlib.Path(path)


def pyplot(saving: bool = True):
    """``matplotlib.pyplot``, with the non-interactive Agg backend chosen first when the figure is
    to be saved (the one place that picks a backend: no display is needed to write files, and an
    interactive session that already chose a backend keeps it).

    >>> plt = pyplot()
    >>> plt.get_backend().lower()
    'agg'
    """
    import matplotlib

    if saving:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def write_figure(fig, path: str | os.PathLike, dpi: int = 110) -> pathlib.Path:
    """Save a matplotlib figure to ``path`` atomically (the format from the suffix; png without one).

    >>> import tempfile, pathlib
    >>> fig = pyplot().figure()
    >>> write_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "f.png").stat().st_size > 0
    True
    """
    path = pathlib.Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def write_npz_atomically(path: str | os.PathLike, arrays: dict) -> pathlib.Path:
    """``np.savez`` of ``arrays`` to ``path`` atomically (no suffix is added to ``path``).

    >>> import tempfile, pathlib, numpy as np
    >>> p = write_npz_atomically(pathlib.Path(tempfile.mkdtemp()) / "a.npz", {"x": np.arange(3)})
    >>> np.load(p)["x"].tolist()
    [0, 1, 2]
    """
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return pathlib.Path(path)


class WriterBusy(DiffsimError, RuntimeError):
    """Another live process holds the writer lock of a file (:func:`sole_writer`)."""


@contextlib.contextmanager
def sole_writer(path: str | os.PathLike):
    """Hold the writer lock of ``path`` (an advisory ``flock`` on ``<path>.lock``) while the block
    runs; raise :class:`WriterBusy` at once if a live process holds it. The kernel drops the lock
    when its holder dies, so a killed run (SIGKILL, power loss) never leaves a lock that blocks
    the next one, unlike a lock that is a file's existence (ase.db's own). The file is removed
    on release.

    >>> import tempfile, pathlib
    >>> db = pathlib.Path(tempfile.mkdtemp()) / "data.db"
    >>> with sole_writer(db):
    ...     with sole_writer(db):
    ...         pass
    Traceback (most recent call last):
    ...
    diffsim.files.WriterBusy: another process (pid ...) is writing .../data.db; wait for it to finish or stop it
    """
    import fcntl

    lock = pathlib.Path(str(path) + ".lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise WriterBusy(f"another process (pid {holder}) is writing {path}; wait for it to finish or "
                             "stop it") from None
        try:  # the holder before us may have removed the file between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
