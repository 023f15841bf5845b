"""Numba's on-disk cache, made to heal itself.

Numba keeps, per compiled function, an index (``*.nbi``: signature → data file) and data files
(``*.nbc``: pickled machine code). Numba itself trusts them: a truncated index raises
``UnpicklingError`` on every later call, and a flipped byte in a data file could load wrong
machine code. :func:`heal` gives the dispatchers of a namespace a cache whose files carry a
SHA-256 of their content: an index or data file that is missing its checksum, truncated or
altered is treated as absent, so the function is compiled again and the entry rewritten
(atomically, as Numba writes). Several processes healing one entry at once each compile and
each replace the file whole; whichever rename lands last leaves a valid entry.

Generated kernels (:mod:`diffsim.codegen`) and the engine's own Numba kernels get it when loaded:

>>> import numpy as np, diffsim as ds, diffsim.numpy as dnp
>>> k = ds.compile(lambda x: dnp.sum(x * x), 2)
>>> type(k.forward._cache).__name__, float(k.forward(np.array([1.0, 2.0])))
('HealingCache', 5.0)
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

_MAGIC = b"diffsim-nb1\n"
_HASH = hashlib.sha256().digest_size


class DamagedCacheEntry(OSError):
    """A Numba cache file whose checksum does not match (Numba's loader treats an ``OSError`` as
    a missing entry, and so compiles again)."""


def _seal(payload: bytes) -> bytes:
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unseal(blob: bytes, path: str) -> bytes:
    head, digest, payload = blob[:len(_MAGIC)], blob[len(_MAGIC):len(_MAGIC) + _HASH], blob[len(_MAGIC) + _HASH:]
    if head != _MAGIC or hashlib.sha256(payload).digest() != digest:
        raise DamagedCacheEntry(f"damaged Numba cache file {path}")
    return payload


_classes: dict[str, Any] = {}


def _healing_classes():
    """The two subclasses, made on first use so that importing diffsim does not import Numba."""
    if _classes:
        return _classes["cache"], _classes["file"]
    from numba.core.caching import FunctionCache, IndexDataCacheFile

    class VerifiedCacheFile(IndexDataCacheFile):
        """Index and data files with a checksum; a bad one reads as absent."""

        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    payload = _unseal(f.read(), self._index_path)
                version, stamp, overloads = pickle.loads(payload)
            except FileNotFoundError:
                return {}
            except Exception:  # damaged: rewritten at the next save
                return {}
            if version != self._version or stamp != self._source_stamp:
                return {}
            return overloads

        def _save_index(self, overloads):
            payload = pickle.dumps((self._version, self._source_stamp, overloads), protocol=-1)
            with self._open_for_write(self._index_path) as f:
                f.write(_seal(payload))

        def _load_data(self, name):
            path = self._data_path(name)
            with open(path, "rb") as f:
                payload = _unseal(f.read(), path)
            try:
                return pickle.loads(payload)
            except Exception as exc:
                raise DamagedCacheEntry(f"unreadable Numba cache file {path}: {exc}") from None

        def _save_data(self, name, data):
            with self._open_for_write(self._data_path(name)) as f:
                f.write(_seal(self._dump(data)))

    class HealingCache(FunctionCache):
        """Numba's per-function cache, never failing a call: what it cannot load it recompiles."""

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except OSError:
                pass  # a read-only or vanished cache folder: the compiled code still runs

    _classes.update(cache=HealingCache, file=VerifiedCacheFile, plain=FunctionCache)
    return HealingCache, VerifiedCacheFile


def heal(namespace: Any) -> int:
    """Give every cached Numba dispatcher in ``namespace`` (a module or a dict) the self-healing
    cache; returns how many. Call it before the functions first run.
    """
    items = namespace.values() if isinstance(namespace, dict) else vars(namespace).values()
    dispatchers = [d for d in items if hasattr(d, "_cache") and hasattr(d, "py_func")]
    if not dispatchers:
        return 0
    cache_class, file_class = _healing_classes()
    count = 0
    for d in dispatchers:
        cache = d._cache
        if type(cache) is _classes["plain"]:
            cache.__class__ = cache_class
            cache._cache_file.__class__ = file_class
        if isinstance(cache, cache_class):
            count += 1
    return count


__all__ = ["heal", "DamagedCacheEntry"]
