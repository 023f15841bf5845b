"""Scatter-add of rows, the adjoint of a gather: ``out[ids[e]] += data[e]``.

``np.add.at`` handles every index form but is slow on the long row lists of atom graphs (an
edge list of 10⁵ pairs with 96 values each: 35 ms against 2 ms here). The primitives use this
kernel when the index is one integer array on the first axis, and ``np.add.at`` otherwise.

>>> import numpy as np
>>> scatter_add_rows(np.array([[1.0], [2.0], [3.0]]), np.array([0, 2, 0]), 3).ravel().tolist()
[4.0, 0.0, 2.0]
"""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def _kernel():
    """The Numba kernel, compiled (or loaded from Numba's cache) on first use, so that importing
    diffsim does not import Numba."""
    from numba import njit

    from .kernel_cache import heal

    @njit(cache=True)
    def scatter(out, ids, data):
        for e in range(ids.shape[0]):
            r = ids[e]
            for k in range(data.shape[1]):
                out[r, k] += data[e, k]

    heal({"scatter": scatter})
    return scatter


def applies(data, ids) -> bool:
    """True if the fast kernel handles ``out[ids] += data`` (float64 arrays, 1-D integer ids).

    >>> applies(np.ones((3, 2)), np.array([0, 1, 0])), applies(np.ones((3, 2)), (np.array([0]), 1))
    (True, False)
    """
    return (type(data) is np.ndarray and data.dtype == np.float64 and data.ndim >= 1
            and isinstance(ids, np.ndarray) and ids.ndim == 1 and ids.dtype.kind in "iu"
            and data.shape[0] == ids.shape[0] and ids.shape[0] > 0)


def scatter_add_rows(data: np.ndarray, ids: np.ndarray, n_rows: int) -> np.ndarray:
    """Rows of ``data`` summed into ``n_rows`` rows by ``ids`` (negative ids count from the end)."""
    ids = np.where(ids < 0, ids + n_rows, ids).astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_rows):
        raise IndexError(f"index out of range for {n_rows} rows")
    flat = np.ascontiguousarray(data).reshape(data.shape[0], -1)
    out = np.zeros((n_rows, flat.shape[1]))
    _kernel()(out, ids, flat)
    return out.reshape((n_rows,) + data.shape[1:])
