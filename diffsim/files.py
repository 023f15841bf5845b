"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything diffsim writes (models, datasets, reports, generated kernels) goes through here.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=path.suffix)
    os.close(fd)
    os.unlink(tmp)  # some writers (ase.db) create the file themselves
    try:
        yield pathlib.Path(tmp)
        mask = os.umask(0)  # the mode an ordinary open() would give, not mkstemp's 0600
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> pathlib.Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return pathlib.Path(path)
