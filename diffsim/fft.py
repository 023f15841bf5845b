"""Differentiable ``numpy.fft``: fft, ifft, rfft, irfft, fft2, ifft2, fftn, ifftn, rfft2, irfft2,
rfftn, irfftn, hfft, ihfft, fftshift, ifftshift (and fftfreq, rfftfreq as constants).

Complex transforms are linear with a symmetric matrix, so their cotangent rule is the same
transform; ``rfft`` and ``irfft`` are real-linear and get their own rules
(:mod:`diffsim.primitives`). Every ``n``/``s``/``axes``/``norm`` argument works as in numpy.

>>> import diffsim as ds, diffsim.numpy as dnp
>>> x = dnp.array([1.0, 2.0, 0.5, -1.0])
>>> ds.grad(lambda x: dnp.sum(dnp.abs(dnp.fft.fft(x)) ** 2))(x)  # Parseval: Σ|X|² = n Σx²
array([ 8., 16.,  4., -8.])
"""

from __future__ import annotations

import numpy as _np

from . import primitives as _p
from .tracer import is_traced, raw

__all__ = ["fft", "ifft", "rfft", "irfft", "fft2", "ifft2", "fftn", "ifftn", "rfft2", "irfft2", "rfftn", "irfftn",
           "hfft", "ihfft", "fftshift", "ifftshift", "fftfreq", "rfftfreq"]

fftfreq, rfftfreq = _np.fft.fftfreq, _np.fft.rfftfreq


def _dnp():
    from . import numpy as dnp

    return dnp


def _fit(x, n, axis):
    """``x`` cropped or zero-padded to length ``n`` along ``axis`` (numpy's ``n`` argument)."""
    dnp = _dnp()
    m = dnp.shape(x)[axis]
    if n is None or n == m:
        return x
    if n < 1:
        raise ValueError(f"invalid number of data points ({n}) specified")
    if n < m:
        return x[(slice(None),) * axis + (slice(0, n),)]
    s = list(dnp.shape(x))
    s[axis] = n - m
    return dnp.concatenate([x, _np.zeros(s, dtype=_np.result_type(raw(x), float))], axis=axis)


def _norm(norm):
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f'invalid norm {norm!r}: use "backward", "ortho" or "forward"')
    return norm


def _cooked(x, s, axes):
    """numpy's defaults: ``axes`` and ``s`` of an n-dimensional transform."""
    nd = _dnp().ndim(x)
    if axes is None:
        axes = tuple(range(nd)) if s is None else tuple(range(nd - len(s), nd))
    axes = tuple(int(a) % nd for a in axes)
    if s is None:
        s = [None] * len(axes)
    if len(s) != len(axes):
        raise ValueError("shape and axes have different lengths")
    return list(s), axes


def _c2c(x, n_by_axis, axes, norm, inverse):
    if not is_traced(x):
        f = _np.fft.ifftn if inverse else _np.fft.fftn
        s = None if all(n is None for n in n_by_axis) else [
            _np.shape(x)[a] if n is None else n for n, a in zip(n_by_axis, axes)]
        return f(x, s=s, axes=axes, norm=norm)
    for n, a in zip(n_by_axis, axes):
        x = _fit(x, n, a)
    return _p.fftn_c(x, axes=tuple(axes), norm=_norm(norm), inverse=inverse)


def fft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.fft``."""
    return _c2c(a, [n], (int(axis) % _dnp().ndim(a),), norm, False)


def ifft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.ifft``."""
    return _c2c(a, [n], (int(axis) % _dnp().ndim(a),), norm, True)


def fftn(a, s=None, axes=None, norm=None):
    """``numpy.fft.fftn``."""
    s, axes = _cooked(a, s, axes)
    return _c2c(a, s, axes, norm, False)


def ifftn(a, s=None, axes=None, norm=None):
    """``numpy.fft.ifftn``."""
    s, axes = _cooked(a, s, axes)
    return _c2c(a, s, axes, norm, True)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    """``numpy.fft.fft2``."""
    return fftn(a, s, axes, norm)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """``numpy.fft.ifft2``."""
    return ifftn(a, s, axes, norm)


def rfft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.rfft`` of a real input."""
    if not is_traced(a):
        return _np.fft.rfft(a, n, axis, norm)
    axis = int(axis) % _dnp().ndim(a)
    if _p.is_complex(a):
        raise TypeError("rfft needs a real input; use fft for a complex one")
    return _p.rfft_r(_fit(a, n, axis), axis=axis, norm=_norm(norm))


def irfft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.irfft``: a real signal of length ``n`` (default 2(m − 1))."""
    if not is_traced(a):
        return _np.fft.irfft(a, n, axis, norm)
    axis = int(axis) % _dnp().ndim(a)
    m = _dnp().shape(a)[axis]
    n = 2 * (m - 1) if n is None else int(n)
    a = _fit(a, n // 2 + 1, axis)
    if not _p.is_complex(a):
        a = a + 0j
    return _p.irfft_r(a, n=n, axis=axis, norm=_norm(norm))


def rfftn(a, s=None, axes=None, norm=None):
    """``numpy.fft.rfftn``: rfft along the last axis, then fft along the others."""
    if not is_traced(a):
        return _np.fft.rfftn(a, s, axes, norm)
    s, axes = _cooked(a, s, axes)
    out = rfft(a, s[-1], axes[-1], norm)
    return _c2c(out, s[:-1], axes[:-1], norm, False) if len(axes) > 1 else out


def irfftn(a, s=None, axes=None, norm=None):
    """``numpy.fft.irfftn``: ifft along all axes but the last, then irfft along it."""
    if not is_traced(a):
        return _np.fft.irfftn(a, s, axes, norm)
    s, axes = _cooked(a, s, axes)
    out = _c2c(a, s[:-1], axes[:-1], norm, True) if len(axes) > 1 else a
    return irfft(out, s[-1], axes[-1], norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """``numpy.fft.rfft2``."""
    return rfftn(a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """``numpy.fft.irfft2``."""
    return irfftn(a, s, axes, norm)


_SWAP_NORM = {None: "forward", "backward": "forward", "ortho": "ortho", "forward": "backward"}


def hfft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.hfft``: the FFT of a Hermitian-symmetric signal (``irfft(conj(a))`` rescaled)."""
    if not is_traced(a):
        return _np.fft.hfft(a, n, axis, norm)
    dnp = _dnp()
    return irfft(dnp.conjugate(a) if _p.is_complex(a) else a, n, axis, _SWAP_NORM[_norm(norm)])


def ihfft(a, n=None, axis=-1, norm=None):
    """``numpy.fft.ihfft``."""
    if not is_traced(a):
        return _np.fft.ihfft(a, n, axis, norm)
    return _dnp().conjugate(rfft(a, n, axis, _SWAP_NORM[_norm(norm)]))


def fftshift(x, axes=None):
    """``numpy.fft.fftshift`` (a gather)."""
    return _dnp()._gather(x, lambda i: _np.fft.fftshift(i, axes))


def ifftshift(x, axes=None):
    """``numpy.fft.ifftshift`` (a gather)."""
    return _dnp()._gather(x, lambda i: _np.fft.ifftshift(i, axes))
