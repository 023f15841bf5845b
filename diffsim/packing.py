"""Many small numpy arrays pickled as one buffer: the compact wire form of a result object.

Pickling a result that holds a few dozen small arrays (a solver's trajectories, multipliers and
last iterate) costs numpy's reduction of each array, a few µs apiece, on both sides. :func:`pack`
copies every plain numeric array of a ``dict`` (and of the plain dicts nested in it) into one
``bytearray`` and leaves a skeleton of everything else; :func:`unpack` rebuilds the dict, each
array a writeable view of that one buffer with the original dtype, shape, memory order (C or
Fortran) and bits. Anything else (strings, floats, lists, other objects, object or structured
arrays, read-only or strided arrays) stays in the skeleton and pickles as usual. A class gives
itself this wire form with ``__reduce__`` (see :class:`trajectories.result.Solution`).

>>> import pickle
>>> state = pack({"x": np.arange(6.0).reshape(2, 3), "info": {"lam": np.ones(2)}, "name": "run"})
>>> back = unpack(pickle.loads(pickle.dumps(state)))
>>> back["x"][1], back["info"]["lam"], back["name"]
(array([3., 4., 5.]), array([1., 1.]), 'run')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_KINDS = frozenset("biufc")  # bool, integers, floats, complex: their bytes are the whole value
_ALIGN = 16                  # every array starts on a 16-byte boundary of the buffer


def _order(value) -> str | None:
    """'C' or 'F' for an array whose bytes this module may carry, None to pickle it as usual."""
    if type(value) is not np.ndarray or value.dtype.kind not in _KINDS:
        return None
    flags = value.flags  # a new object at each access: read it once
    if not flags.writeable:
        return None
    if flags.c_contiguous:
        return "C"
    return "F" if flags.f_contiguous else None


def pack(values: dict) -> tuple[dict, tuple, bytearray]:
    """``(skeleton, layout, buffer)``: ``values`` with its arrays (also those in nested plain dicts)
    replaced by None in the skeleton, their bytes in ``buffer`` and where they are in ``layout``.
    Pickles small; :func:`unpack` inverts it.

    >>> skeleton, layout, buffer = pack({"a": np.zeros(3), "n": 2})
    >>> skeleton, layout, len(buffer)
    ({'a': None, 'n': 2}, ((('a',), '<f8', (3,), 'C', 0),), 32)
    """
    layout: list = []
    parts: list = []
    skeleton = _pack(values, (), layout, parts, [0])
    return skeleton, tuple(layout), bytearray().join(parts)


def _pack(values: dict, path: tuple, layout: list, parts: list, offset: list) -> dict:
    skeleton = {}
    for key, value in values.items():
        if type(value) is dict:
            skeleton[key] = _pack(value, (*path, key), layout, parts, offset)
            continue
        order = _order(value)
        if order is None:
            skeleton[key] = value
            continue
        skeleton[key] = None
        layout.append(((*path, key), value.dtype.str, value.shape, order, offset[0]))
        parts.append(value.tobytes(order))
        pad = -value.nbytes % _ALIGN
        if pad:
            parts.append(bytes(pad))
        offset[0] += value.nbytes + pad
    return skeleton


def unpack(state: tuple[dict, tuple, Any]) -> dict:
    """The dict that :func:`pack` packed: every array a writeable view of the one buffer (copied
    once into a ``bytearray`` if it arrives as read-only bytes).

    >>> unpack(pack({"u": np.array([[1, 2]], dtype=np.int32)}))["u"]
    array([[1, 2]], dtype=int32)
    """
    skeleton, layout, buffer = state
    if not isinstance(buffer, bytearray):
        buffer = bytearray(buffer)
    for path, dtype, shape, order, offset in layout:
        array = np.frombuffer(buffer, dtype, math.prod(shape), offset).reshape(shape, order=order)
        target = skeleton
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = array
    return skeleton
