"""Measuring a call: its time and the resident memory it adds. Used by ``diffsim compare``
(trajectories.compare) and by the benchmark harness (benchmarks/harness.py), so there is one
timer and one reader of the kernel's memory counters.

Peak memory on Linux: the peak resident set (VmHWM in /proc/self/status) is reset by writing 5
to /proc/self/clear_refs, so after the call VmHWM − VmRSS(before) is what the call added at its
peak, including memory that compiled code allocates with malloc (invisible to ``tracemalloc``).
Where clear_refs cannot be written, ``ru_maxrss`` − VmRSS(before) is a lower bound, and said so.

>>> seconds, out = timed(lambda: sum(range(1000)))
>>> out, seconds >= 0.0
(499500, True)
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call of ``fn``."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The best seconds of ``repeats`` calls after one uncounted call (which may compile or load
    compiled code), and the last result.

    >>> best_time(lambda: 3, 2)[1]
    3
    """
    fn()
    best, out = math.inf, None
    for _ in range(repeats):
        t, out = timed(fn)
        best = min(best, t)
    return best, out


def status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (``"VmRSS"``, ``"VmHWM"``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_memory(fn: Callable[[], Any]) -> tuple[float | None, str, Any]:
    """(bytes by which ``fn()`` raised the peak resident memory, how it was measured, the result);
    the bytes are None where neither counter is available."""
    before = status_bytes("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        how = "VmHWM after clear_refs"
    except OSError:
        how = "ru_maxrss (lower bound)"
    out = fn()
    if how.startswith("VmHWM"):
        peak = status_bytes("VmHWM")
    else:
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        except ImportError:
            peak = None
    if peak is None or before is None:
        return None, "unavailable", out
    return max(0.0, float(peak - before)), how, out


def peak_rss_delta(fn: Callable[[], Any]) -> float | None:
    """Bytes by which ``fn()`` raised the process's peak resident memory (None where unknown).

    >>> import numpy as np
    >>> added = peak_rss_delta(lambda: np.ones(4_000_000).sum())
    >>> added is None or added > 16e6
    True
    """
    return peak_memory(fn)[0]
