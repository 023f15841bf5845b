# ruff: noqa: F821
"""Compiled loops of the adaptive Dormand-Prince 5(4) solver: a source template, appended with
``common_loops.py`` to a problem's generated module (see ``compiled_loops.py``). Kernel sets used:

- ``dp5_*``: one DP5 step ``(x, u, p, t, h) -> [y5, y5 - y4]`` on the augmented state (x, cost);
- ``rhs_*``, ``phi_*`` as for the fixed-step loops.

Within each control interval the step size is chosen by the standard controller
(Hairer, Nørsett & Wanner, Solving ODEs I, II.4): accept when the scaled RMS error is ≤ 1,
h ← h·min(5, max(0.2, 0.9·err^(-1/5))) (5 for a zero error; h/5 after a trial that is not
finite); the first trial step is H/10 and each interval's last step is shortened to end on it.
Accepted steps are stored for the reverse sweeps and for dense output (cubic Hermite between
accepted points, O(h^4)).

Every loop returns a record of :mod:`diffsim.ode.records` ending in ``status`` (``OK``,
``NONFINITE``, ``TOO_MANY`` steps, step size ``UNDERFLOW``) and ``where`` (the control interval).
"""
import math

import numpy as np
from numba import njit

from diffsim.ode.records import (
    NONFINITE,
    OK,
    TOO_MANY,
    UNDERFLOW,
    AcceptedSteps,
    AdaptiveRollout,
    AdaptiveSweep,
)


@njit(cache=True)
def _rms_error(y0, y1, err, rtol, atol):
    s = 0.0
    for i in range(err.shape[0]):
        scale = atol + rtol * max(abs(y0[i]), abs(y1[i]))
        s += (err[i] / scale) ** 2
    return math.sqrt(s / err.shape[0])


@njit(cache=True)
def _controller(en):
    if en == 0.0:
        return 5.0
    return min(5.0, max(0.2, 0.9 * en ** -0.2))


@njit(cache=True)
def rollout_adaptive(x0, U, p, t0, H, rtol, atol, max_steps):
    """An AdaptiveRollout: grid states (N+1, n), J, the accepted steps and the number rejected."""
    n, N = x0.shape[0], U.shape[0]
    xs = np.empty((N + 1, n))
    xs[0] = x0
    st_t = np.empty(max_steps)
    st_h = np.empty(max_steps)
    st_k = np.empty(max_steps, dtype=np.int64)
    st_x = np.empty((max_steps, n))
    st_xe = np.empty((max_steps, n))
    st_f = np.empty((max_steps, n))
    st_fe = np.empty((max_steps, n))
    out = np.empty(2 * n + 2)
    fa = np.empty(n + 1)
    y0 = np.zeros(n + 1)
    x = x0.copy()
    J = 0.0
    M = 0
    rejected = 0
    h = 0.1 * H
    for k in range(N):
        t = t0 + k * H
        t_end = t0 + (k + 1) * H
        while True:
            remaining = t_end - t
            last = h >= remaining * (1.0 - 1e-12)
            h_try = remaining if last else h
            dp5_forward_into_unchecked(x, U[k], p, t, h_try, out)
            y0[:n] = x
            finite = _finite(out)
            en = _rms_error(y0, out[: n + 1], out[n + 1:], rtol, atol) if finite else math.inf
            if en <= 1.0:
                if M >= max_steps:
                    return AdaptiveRollout(xs, J, AcceptedSteps(st_t, st_h, st_k, st_x, st_xe, st_f, st_fe, M),
                                           rejected, TOO_MANY, k)
                st_t[M], st_h[M], st_k[M] = t, h_try, k
                st_x[M] = x
                rhs_forward_into_unchecked(x, U[k], p, t, fa)
                st_f[M] = fa[:n]
                x[:] = out[:n]
                J += out[n]
                rhs_forward_into_unchecked(x, U[k], p, t + h_try, fa)
                st_fe[M] = fa[:n]
                st_xe[M] = x
                M += 1
                h = h_try * _controller(en)
                if last:
                    break
                t += h_try
            else:
                rejected += 1
                h = h_try * (0.2 if not finite else max(0.2, 0.9 * en ** -0.2))
                if h < 1e-13 * max(1.0, abs(t)):
                    return AdaptiveRollout(xs, J, AcceptedSteps(st_t, st_h, st_k, st_x, st_xe, st_f, st_fe, M),
                                           rejected, NONFINITE if not finite else UNDERFLOW, k)
        xs[k + 1] = x
    J += phi_forward_unchecked(x, p)
    status = OK if math.isfinite(J) else NONFINITE
    return AdaptiveRollout(xs, J, AcceptedSteps(st_t, st_h, st_k, st_x, st_xe, st_f, st_fe, M), rejected, status,
                           -1 if status == OK else N - 1)


@njit(cache=True)
def dense_state(t, j, steps, out):
    """x(t) by cubic Hermite interpolation on the accepted step containing t (search from j)."""
    while j > 0 and t < steps.t[j]:
        j -= 1
    while j < steps.count - 1 and t > steps.t[j] + steps.h[j]:
        j += 1
    _hermite(steps.x[j], steps.x_end[j], steps.f[j], steps.f_end[j], steps.h[j], (t - steps.t[j]) / steps.h[j], out)
    return j


@njit(cache=True)
def bptt_adaptive(x0, U, p, t0, H, rtol, atol, max_steps):
    """Discrete adjoint through the accepted DP5 steps, step sizes held fixed: an AdaptiveSweep
    with the costates at the grid (N+1, n)."""
    n, m, N, kp = x0.shape[0], U.shape[1], U.shape[0], p.shape[0]
    xs, J, steps, rej, status, where = rollout_adaptive(x0, U, p, t0, H, rtol, atol, max_steps)
    M, st_t, st_h, st_k, st_x = steps.count, steps.t, steps.h, steps.interval, steps.x
    lam_grid = np.empty((N + 1, n))
    dU = np.zeros((N, m))
    dp = np.zeros(kp)
    if status != OK:
        return AdaptiveSweep(J, dU, dp, lam_grid, M, 0, rej, status, where)
    lam = np.empty(n)
    _terminal(xs[N], p, lam, dp)
    lam_grid[N] = lam
    ct = np.zeros(2 * n + 2)
    gx = np.empty(n)
    gu = np.empty(m)
    gp = np.empty(kp)
    for j in range(M - 1, -1, -1):
        k = st_k[j]
        ct[:n] = lam
        ct[n] = 1.0
        dp5_vjp_into_unchecked(st_x[j], U[k], p, st_t[j], st_h[j], ct, gx, gu, gp)
        lam[:] = gx
        dU[k] += gu
        dp += gp
        if j == 0 or st_k[j - 1] != k:
            lam_grid[k] = lam
    return AdaptiveSweep(J, dU, dp, lam_grid, M, 0, rej, OK, -1)


@njit(cache=True)
def adjoint_adaptive(x0, U, p, t0, H, rtol, atol, max_steps, A, B5, B4, C):
    """Continuous adjoint with its own step control: (λ, μ_u, μ_p) integrated backward by the
    embedded pair of tableau (A, C, B5, B4) in τ = t_{k+1} - t, dλ/dτ = ∂H/∂x, dμ/dτ = ∂H/∂(u, p),
    the state from dense output. Returns an AdaptiveSweep with the costates at the grid."""
    n, m, N, kp = x0.shape[0], U.shape[1], U.shape[0], p.shape[0]
    xs, J, steps, rej, status, where = rollout_adaptive(x0, U, p, t0, H, rtol, atol, max_steps)
    M, S = steps.count, B5.shape[0]
    lam_grid = np.empty((N + 1, n))
    dU = np.zeros((N, m))
    dp = np.zeros(kp)
    if status != OK:
        return AdaptiveSweep(J, dU, dp, lam_grid, M, 0, rej, status, where)
    nz = n + m + kp
    z = np.zeros(nz)
    _terminal(xs[N], p, z[:n], dp)
    lam_grid[N] = z[:n]
    K = np.empty((S, nz))
    zi = np.empty(nz)
    z5 = np.empty(nz)
    err = np.empty(nz)
    xq = np.empty(n)
    ct = np.empty(n + 1)
    j = M - 1
    h = steps.h[M - 1]
    accepted = 0
    for k in range(N - 1, -1, -1):
        tb = t0 + (k + 1) * H
        ta = t0 + k * H
        z[n:n + m] = 0.0
        tau = 0.0
        while True:
            remaining = H - tau
            last = h >= remaining * (1.0 - 1e-12)
            h_try = remaining if last else h
            for i in range(S):
                zi[:] = z
                for q in range(i):
                    if A[i, q] != 0.0:
                        zi += (h_try * A[i, q]) * K[q]
                ti = tb - (tau + C[i] * h_try)
                ti = min(max(ti, ta), tb)
                j = dense_state(ti, j, steps, xq)
                _hamiltonian_grads(xq, U[k], p, ti, zi[:n], ct, K[i, :n], K[i, n:n + m], K[i, n + m:])
            z5[:] = z
            err[:] = 0.0
            for i in range(S):
                z5 += (h_try * B5[i]) * K[i]
                err += (h_try * (B5[i] - B4[i])) * K[i]
            en = _rms_error(z, z5, err, rtol, atol) if _finite(z5) else math.inf
            if en <= 1.0:
                z[:] = z5
                accepted += 1
                h = h_try * _controller(en)
                if last:
                    break
                tau += h_try
            else:
                rej += 1
                h = h_try * max(0.2, 0.9 * en ** -0.2) if en < math.inf else 0.2 * h_try
                if h < 1e-13 * max(1.0, abs(tb)):
                    return AdaptiveSweep(J, dU, dp, lam_grid, M, accepted, rej, UNDERFLOW, k)
        lam_grid[k] = z[:n]
        dU[k] = z[n:n + m]
    dp += z[n + m:]
    return AdaptiveSweep(J, dU, dp, lam_grid, M, accepted, rej, OK, -1)


@njit(cache=True)
def forward_tangent_adaptive(x0, U, p, t0, H, rtol, atol, max_steps, dx0, dU, dp):
    """Directional derivative of J along (dx0, dU, dp) through the accepted DP5 steps."""
    n = x0.shape[0]
    xs, J, steps, rej, status, where = rollout_adaptive(x0, U, p, t0, H, rtol, atol, max_steps)
    M, st_t, st_h, st_k, st_x = steps.count, steps.t, steps.h, steps.interval, steps.x
    dx = dx0.copy()
    dout = np.empty(2 * n + 2)
    dJ = 0.0
    for j in range(M):
        k = st_k[j]
        dp5_jvp_into_unchecked(st_x[j], U[k], p, st_t[j], st_h[j], dx, dU[k], dp, 0.0, 0.0, dout)
        dx[:] = dout[:n]
        dJ += dout[n]
    return dJ + phi_jvp_unchecked(xs[U.shape[0]], p, dx, dp)
