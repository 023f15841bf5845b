"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything diffsim writes (models, datasets, reports, generated kernels) goes through here.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: the umask is process-wide, so setting it per write races with threads


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
        os.chmod(tmp, 0o666 & ~_UMASK)  # the mode an ordinary open() would give, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: str | bytes) -> pathlib.Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically; returns the path.

    >>> import tempfile, pathlib
    >>> write_atomic(pathlib.Path(tempfile.mkdtemp()) / "a.txt", "hello").read_text()
    'hello'
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return pathlib.Path(path)


def write_figure(fig, path: str | os.PathLike, dpi: int = 110) -> pathlib.Path:
    """Save a matplotlib figure to ``path`` atomically (the format from the suffix; png without one).

    >>> import tempfile, pathlib, matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig = plt.figure()
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
