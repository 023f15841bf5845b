# ruff: noqa: F821
"""Compiled loops of the ODE solvers: a source template, not an importable module.

:mod:`diffsim.ode.problem` appends this file's text to the generated module holding a
problem's kernels, so these ``@njit(cache=True)`` functions call the kernels by name and Numba
caches them with the kernels. Kernel sets (see :mod:`diffsim.codegen`):

- ``step_*``: one integrator step ``(x, u, p, t, h) -> [x_next, cost increment]`` (n + 1);
- ``rhs_*``: the augmented right-hand side ``(x, u, p, t) -> [f, L]``; its VJP with cotangent
  ``[λ, 1]`` is (∂H/∂x, ∂H/∂u, ∂H/∂p) for the Hamiltonian H = L + λᵀf;
- ``phi_*``: the terminal cost ``(x, p) -> Φ``.

Every loop returns a named record of :mod:`diffsim.ode.records` ending in ``status`` (``OK`` or
``NONFINITE``) and ``where`` (the first step whose state or cost is not finite, -1 if none); the
Python side turns a failure into an exception naming the step and time.

The helpers ``_finite``, ``_terminal``, ``_hamiltonian_grads`` and ``_hermite`` come from
``common_loops.py``, which precedes this text in the generated module.
"""
import math

import numpy as np
from numba import njit, prange

from diffsim.ode.records import NONFINITE, OK, BatchRollout, CheckpointedSweep, FixedRollout, Sweep


@njit(cache=True)
def rollout(x0, U, p, t0, h):
    """States (N+1, n) and the cost J, as a FixedRollout."""
    n, N = x0.shape[0], U.shape[0]
    xs = np.empty((N + 1, n))
    xs[0] = x0
    out = np.empty(n + 1)
    J = 0.0
    for k in range(N):
        step_forward_into_unchecked(xs[k], U[k], p, t0 + k * h, h, out)
        if not _finite(out):
            return FixedRollout(xs, J, NONFINITE, k)
        xs[k + 1] = out[:n]
        J += out[n]
    J += phi_forward_unchecked(xs[N], p)
    if not math.isfinite(J):
        return FixedRollout(xs, J, NONFINITE, N)
    return FixedRollout(xs, J, OK, -1)


@njit(cache=True, parallel=True)
def rollout_batch(X0, U, p, t0, h):
    """Independent rollouts in parallel: X0 (B, n), U (B, N, m) -> a BatchRollout."""
    B, n, N = X0.shape[0], X0.shape[1], U.shape[1]
    XS = np.empty((B, N + 1, n))
    J = np.zeros(B)
    status = np.full(B, OK)
    where = np.full(B, -1)
    for b in prange(B):
        out = np.empty(n + 1)
        XS[b, 0] = X0[b]
        for k in range(N):
            step_forward_into_unchecked(XS[b, k], U[b, k], p, t0 + k * h, h, out)
            XS[b, k + 1] = out[:n]
            J[b] += out[n]
            if status[b] == OK and not _finite(out):
                status[b], where[b] = NONFINITE, k
        J[b] += phi_forward_unchecked(XS[b, N], p)
        if status[b] == OK and not math.isfinite(J[b]):
            status[b], where[b] = NONFINITE, N
    return BatchRollout(XS, J, status, where)


@njit(cache=True)
def bptt(x0, U, p, t0, h):
    """Discrete adjoint of the integrator: store the states, and in the reverse sweep let each
    step's VJP recompute its stages. Returns a Sweep with the costates λ_k = ∂J/∂x_k (N+1, n)."""
    n, m, N = x0.shape[0], U.shape[1], U.shape[0]
    xs, J, status, where = rollout(x0, U, p, t0, h)
    lam = np.empty((N + 1, n))
    dU = np.empty((N, m))
    dp = np.zeros(p.shape[0])
    if status != OK:
        return Sweep(J, dU, dp, lam, x0, status, where)
    _terminal(xs[N], p, lam[N], dp)
    ct = np.empty(n + 1)
    ct[n] = 1.0
    gp = np.empty(p.shape[0])
    for k in range(N - 1, -1, -1):
        ct[:n] = lam[k + 1]
        step_vjp_into_unchecked(xs[k], U[k], p, t0 + k * h, h, ct, lam[k], dU[k], gp)
        dp += gp
    return Sweep(J, dU, dp, lam, x0, OK, -1)


@njit(cache=True)
def _beta(c, t):
    """β(c, t) = C(c + t, c): steps reversible with c checkpoints and t repetitions (Griewank)."""
    if t < 0:
        return 0.0
    r = 1.0
    k, top = min(c, t), max(c, t)  # C(c+t, c) = C(c+t, t): loop over the smaller (O(t), not O(snapshots))
    for i in range(1, k + 1):
        r = r * (top + i) / i
    return r


@njit(cache=True)
def _left_length(length, s):
    """Optimal split of a segment whose start state is stored, with s free snapshots (c = s + 1
    checkpoints): advance m steps, store, reverse the right part with s - 1 free snapshots, then
    the left part with s. With t the smallest repetition number such that β(c, t) ≥ length, any m
    with β(c, t-2) ≤ m ≤ β(c, t-1) and β(c-1, t-1) ≤ length - m ≤ β(c-1, t) attains Griewank's
    minimum t·length − β(c+1, t−1) forward steps; take the smallest such m."""
    c = s + 1
    t = 0
    while _beta(c, t) < length:
        t += 1
    m = max(_beta(c, t - 2), length - _beta(c - 1, t))
    return int(min(max(m, 1.0), length - 1))


@njit(cache=True)
def _advance(x, U, p, t0, h, a, b, out):
    """x := state at step b, from the state at step a (in place)."""
    n = x.shape[0]
    for k in range(a, b):
        step_forward_into_unchecked(x, U[k], p, t0 + k * h, h, out)
        x[:] = out[:n]


@njit(cache=True)
def checkpointed(x0, U, p, t0, h, snapshots):
    """The BPTT gradient with binomial checkpointing: at most ``snapshots`` stored states besides
    x0. Returns a CheckpointedSweep (λ_0, |λ_k| and the forward steps beyond the N - 1 of BPTT)."""
    n, m, N = x0.shape[0], U.shape[1], U.shape[0]
    snaps = np.empty((snapshots + 1, n))
    snaps[0] = x0
    # tasks: reverse steps [start, end) with the state at start in snaps[slot] and s free slots
    cap = 64 + 4 * (snapshots + 64)
    tasks = np.empty((cap, 4), dtype=np.int64)
    top = 0
    x = x0.copy()
    out = np.empty(n + 1)
    J = 0.0
    # forward sweep: compute the cost, leaving snapshots on the right spine of the schedule
    start, s, slot = 0, snapshots, 0
    k = 0
    spine = 0  # steps of the sweep that are part of the schedule (advances to a split)
    while True:
        if N - start > 1 and s > 0:
            mid = start + _left_length(N - start, s)
            spine = mid
        else:
            mid = N
        while k < mid:
            step_forward_into_unchecked(x, U[k], p, t0 + k * h, h, out)
            if not _finite(out):
                return CheckpointedSweep(J, x, np.empty((N, m)), np.zeros(p.shape[0]), 0, np.empty(N + 1),
                                         NONFINITE, k)
            x[:] = out[:n]
            J += out[n]
            k += 1
        if mid == N:
            break
        tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3] = start, mid, s, slot
        top += 1
        slot += 1
        snaps[slot] = x
        start, s = mid, s - 1
    J += phi_forward_unchecked(x, p)
    if not math.isfinite(J):  # the terminal cost overflowed: reported at step N, as rollout does
        return CheckpointedSweep(J, x, np.empty((N, m)), np.zeros(p.shape[0]), 0, np.empty(N + 1), NONFINITE, N)
    tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3] = start, N, s, slot
    top += 1

    lam = np.empty(n)
    dp = np.zeros(p.shape[0])
    _terminal(x, p, lam, dp)
    dU = np.empty((N, m))
    norms = np.empty(N + 1)
    norms[N] = math.sqrt(np.dot(lam, lam))
    ct = np.empty(n + 1)
    ct[n] = 1.0
    gx = np.empty(n)
    gp = np.empty(p.shape[0])
    recomputed = 0
    while top > 0:
        top -= 1
        a, b, s, slot = tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3]
        if b - a == 1 or s == 0:
            for j in range(b - 1, a - 1, -1):  # s == 0: recompute from the snapshot each time
                x[:] = snaps[slot]
                _advance(x, U, p, t0, h, a, j, out)
                recomputed += j - a
                ct[:n] = lam
                step_vjp_into_unchecked(x, U[j], p, t0 + j * h, h, ct, gx, dU[j], gp)
                acc = 0.0
                for i in range(n):
                    lam[i] = gx[i]
                    acc += gx[i] * gx[i]
                norms[j] = math.sqrt(acc)
                dp += gp
            continue
        mid = a + _left_length(b - a, s)
        x[:] = snaps[slot]
        _advance(x, U, p, t0, h, a, mid, out)
        recomputed += mid - a
        snaps[slot + 1] = x
        if top + 2 > cap:
            raise RuntimeError("checkpointing schedule deeper than its task stack")
        tasks[top, 0], tasks[top, 1], tasks[top, 2], tasks[top, 3] = a, mid, s, slot
        tasks[top + 1, 0], tasks[top + 1, 1], tasks[top + 1, 2], tasks[top + 1, 3] = mid, b, s - 1, slot + 1
        top += 2
    # Griewank's count: the schedule's forward steps beyond the N - 1 a stored-state BPTT takes
    return CheckpointedSweep(J, lam, dU, dp, spine + recomputed - (N - 1), norms, OK, -1)


@njit(cache=True)
def adjoint(x0, U, p, t0, h, A, b, c, backsolve):
    """Continuous adjoint: λ̇ = −∂H/∂x integrated backward by the explicit scheme of tableau
    (A, b, c) in reversed time τ = t_{k+1} − t, on y = (x, λ, μ_u, μ_p) with dx/dτ = −f
    (backsolve only), dλ/dτ = ∂H/∂x and dμ/dτ = ∂H/∂(u, p): ∂J/∂u_k and ∂J/∂p by quadrature. The
    forward state at a stage time comes from the stored grid states by cubic Hermite
    interpolation (default), or is integrated backward alongside λ (``backsolve``, which only
    keeps x_N). Returns a Sweep whose ``x_start`` is the x(0) the backward integration reached."""
    n, m, N, kp, S = x0.shape[0], U.shape[1], U.shape[0], p.shape[0], b.shape[0]
    xs, J, status, where = rollout(x0, U, p, t0, h)
    lam = np.empty((N + 1, n))
    dU = np.zeros((N, m))
    dp = np.zeros(kp)
    if status != OK:
        return Sweep(J, dU, dp, lam, xs[0].copy(), status, where)
    _terminal(xs[N], p, lam[N], dp)
    interior = False  # a stage strictly inside the step needs the interpolant (not so for Euler)
    for i in range(S):
        if 0.0 < c[i] < 1.0:
            interior = True
    ct = np.empty(n + 1)
    fa = np.empty(n + 1)
    fb = np.empty(n + 1)
    xb = xs[N].copy()  # backsolve: the state carried backward
    xq = np.empty(n)
    gx = np.empty((S, n))
    gu = np.empty((S, m))
    gp = np.empty((S, kp))
    kx = np.empty((S, n))
    ly = np.empty(n)
    for k in range(N - 1, -1, -1):
        tb, ta = t0 + (k + 1) * h, t0 + k * h
        u = U[k]
        if interior and not backsolve:
            rhs_forward_into_unchecked(xs[k], u, p, ta, fa)
            rhs_forward_into_unchecked(xs[k + 1], u, p, tb, fb)
        for i in range(S):
            tq = tb - c[i] * h
            ly[:] = lam[k + 1]
            if backsolve:
                xq[:] = xb
            for j in range(i):  # scalar loops: no temporary arrays inside the sweep
                a = h * A[i, j]
                if a != 0.0:
                    for q in range(n):
                        ly[q] += a * gx[j, q]
                    if backsolve:
                        for q in range(n):
                            xq[q] -= a * kx[j, q]
            if backsolve:
                rhs_forward_into_unchecked(xq, u, p, tq, fa)
                kx[i] = fa[:n]
            elif c[i] == 0.0:
                xq[:] = xs[k + 1]
            elif c[i] == 1.0:
                xq[:] = xs[k]
            else:
                _hermite(xs[k], xs[k + 1], fa, fb, h, 1.0 - c[i], xq)
            _hamiltonian_grads(xq, u, p, tq, ly, ct, gx[i], gu[i], gp[i])
        lam[k] = lam[k + 1]
        dU[k] = 0.0
        for i in range(S):
            w = h * b[i]
            if w != 0.0:
                for q in range(n):
                    lam[k, q] += w * gx[i, q]
                for q in range(m):
                    dU[k, q] += w * gu[i, q]
                for q in range(kp):
                    dp[q] += w * gp[i, q]
                if backsolve:
                    for q in range(n):
                        xb[q] -= w * kx[i, q]
    return Sweep(J, dU, dp, lam, xb, OK, -1)


@njit(cache=True)
def forward_tangent(x0, U, p, t0, h, dx0, dU, dp):
    """Directional derivative of J along (dx0, dU, dp) by forward sensitivities (step JVPs)."""
    n, N = x0.shape[0], U.shape[0]
    x = x0.copy()
    dx = dx0.copy()
    out = np.empty(n + 1)
    dout = np.empty(n + 1)
    dJ = 0.0
    for k in range(N):
        t = t0 + k * h
        step_jvp_into_unchecked(x, U[k], p, t, h, dx, dU[k], dp, 0.0, 0.0, dout)
        step_forward_into_unchecked(x, U[k], p, t, h, out)
        x[:] = out[:n]
        dx[:] = dout[:n]
        dJ += dout[n]
    return dJ + phi_jvp_unchecked(x, p, dx, dp)
