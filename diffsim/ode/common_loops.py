# ruff: noqa: F821
"""Helpers shared by the fixed-step (``compiled_loops.py``) and adaptive (``adaptive_loops.py``)
loop templates: a source template, not an importable module; :mod:`diffsim.ode.problem` puts it
first in a problem's generated module. Kernel sets used: ``rhs_*`` and ``phi_*`` (see
``compiled_loops.py``).
"""
import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _finite(v):
    for i in range(v.shape[0]):
        if not math.isfinite(v[i]):
            return False
    return True


@njit(cache=True)
def _terminal(xN, p, lam, dp):
    """λ_N = ∂Φ/∂x(x_N); dp += ∂Φ/∂p."""
    gp = np.empty(p.shape[0])
    phi_vjp_into_unchecked(xN, p, 1.0, lam, gp)
    dp += gp


@njit(cache=True)
def _hamiltonian_grads(x, u, p, t, lam, ct, gx, gu, gp):
    """(∂H/∂x, ∂H/∂u, ∂H/∂p) at (x, u, p, t) for costate λ, H = L + λᵀf."""
    n = x.shape[0]
    ct[:n] = lam
    ct[n] = 1.0
    rhs_vjp_into_unchecked(x, u, p, t, ct, gx, gu, gp)


@njit(cache=True)
def _hermite(xa, xb, fa, fb, h, s, out):
    """Cubic Hermite interpolation on one step at s = (t - t_a)/h from the end states and slopes:
    O(h^4), the order of RK4."""
    h00 = (1.0 + 2.0 * s) * (1.0 - s) ** 2
    h10 = s * (1.0 - s) ** 2
    h01 = s * s * (3.0 - 2.0 * s)
    h11 = s * s * (s - 1.0)
    for i in range(out.shape[0]):
        out[i] = h00 * xa[i] + h10 * h * fa[i] + h01 * xb[i] + h11 * h * fb[i]
