"""One BLAS thread for hot paths made of small dense algebra.

OpenBLAS starts its thread pool on matrices far smaller than its threads can pay for; on a busy
machine that makes small solves 10-250x slower. Solvers wrap their loops in
:func:`single_threaded_blas` (threadpoolctl, about 10 µs a call once the libraries are known).

>>> import numpy as np
>>> with single_threaded_blas():
...     float(np.ones(3) @ np.ones(3))
3.0
"""

from __future__ import annotations

import contextlib

_controller = None


def single_threaded_blas():
    """A context manager limiting every loaded BLAS to one thread (a no-op without threadpoolctl)."""
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return contextlib.nullcontext()
    if _controller is None:
        import scipy.linalg  # noqa: F401  (load scipy's BLAS too, so the controller sees it)

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
