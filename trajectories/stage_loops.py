# ruff: noqa: F821
"""Compiled loops over the stages of a transcribed optimal control problem: a source template,
not an importable module.

:mod:`trajectories.transcription` appends this text to the generated module holding the stage
kernels (see :mod:`diffsim.codegen` for the kernel set), so these loops call them by name and
Numba caches everything together. Kernels, with ``x`` the stage state (the free final time, when
there is one, is its last component) and ``q`` = (p, T):

- ``stage_*``: ``(x, u, q, s, h) -> [x_next, cost increment]``, one integrator step;
- ``term_*``: ``(x, q) -> [Φ, h_eq, h_in]`` at the final node;
- ``path_*``: ``(x, u, q, s) -> g`` at a node; ``pathN_*``: g at the final node, through the step.

The problem-independent loops (the Riccati recursion, condensing, the adjoint recursion) live in
:mod:`trajectories.riccati`, compiled once for every problem.
"""
import math

import numpy as np
from numba import njit


@njit(cache=True)
def nlp_values(X, U, q, h, ng, single, R, Gp, GN, TV):
    """Cost, defects R (x_{k+1} - F(x_k, u_k) is written as F - x_{k+1}), path values and the
    terminal vector. With ``single`` the states X are overwritten by the rollout (R = 0).
    Returns (cost, first non-finite stage or -1)."""
    N, ns = U.shape[0], X.shape[1]
    out = np.empty(ns + 1)
    f = 0.0
    bad = -1
    for k in range(N):
        s = k * h
        stage_forward_into_unchecked(X[k], U[k], q, s, h, out)
        for i in range(ns + 1):
            if not math.isfinite(out[i]) and bad < 0:
                bad = k
        if single:
            for i in range(ns):
                X[k + 1, i] = out[i]
                R[k, i] = 0.0
        else:
            for i in range(ns):
                R[k, i] = out[i] - X[k + 1, i]
        f += out[ns]
        if ng > 0:
            g = path_forward_unchecked(X[k], U[k], q, s)
            for i in range(ng):
                Gp[k, i] = g[i]
    if ng > 0:
        g = pathN_forward_unchecked(X[N - 1], U[N - 1], q, (N - 1) * h, h)
        for i in range(ng):
            GN[i] = g[i]
    tv = term_forward_unchecked(X[N], q)
    for i in range(tv.shape[0]):
        TV[i] = tv[i]
    f += tv[0]
    if not math.isfinite(f) and bad < 0:
        bad = N
    return f, bad


@njit(cache=True)
def nlp_closed_loop(X, U, K, Xref, lo, hi, q, h):
    """Single shooting's trial rollout under the Newton step's feedback: u_k = U_k + K_k (x_k − Xref_k)
    clipped to [lo_k, hi_k], x_{k+1} = F(x_k, u_k), from X[0]; overwrites X[1:] and U. Returns
    the first non-finite stage or -1."""
    N, ns, m = U.shape[0], X.shape[1], U.shape[1]
    out = np.empty(ns + 1)
    for k in range(N):
        for i in range(m):
            v = U[k, i]
            for j in range(ns):
                v += K[k, i, j] * (X[k, j] - Xref[k, j])
            U[k, i] = min(max(v, lo[k, i]), hi[k, i])
        stage_forward_into_unchecked(X[k], U[k], q, k * h, h, out)
        for i in range(ns):
            if not math.isfinite(out[i]):
                return k
            X[k + 1, i] = out[i]
    return -1


@njit(cache=True)
def nlp_jacobians(X, U, q, h, ng, A, B, grad, GJ, GNJ, TJ):
    """Stage Jacobians A_k, B_k, cost gradients per stage, path-constraint Jacobians and the
    terminal Jacobian. The final-node path constraint is g(F(x_{N-1}, u_{N-1}), u_{N-1}): its
    Jacobian belongs to stage N - 1."""
    N, ns, m = U.shape[0], X.shape[1], U.shape[1]
    for k in range(N):
        s = k * h
        Jx, Ju, Jq, Js, Jh = stage_jacobian_unchecked(X[k], U[k], q, s, h)
        for i in range(ns):
            for j in range(ns):
                A[k, i, j] = Jx[i, j]
            for j in range(m):
                B[k, i, j] = Ju[i, j]
        for j in range(ns):
            grad[k, j] = Jx[ns, j]
        for j in range(m):
            grad[k, ns + j] = Ju[ns, j]
        if ng > 0:
            gx, gu, gq, gs = path_jacobian_unchecked(X[k], U[k], q, s)
            for i in range(ng):
                for j in range(ns):
                    GJ[k, i, j] = gx[i, j]
                for j in range(m):
                    GJ[k, i, ns + j] = gu[i, j]
            if k == N - 1:
                gx, gu, gq, gs, gh = pathN_jacobian_unchecked(X[k], U[k], q, s, h)
                for i in range(ng):
                    for j in range(ns):
                        GNJ[i, j] = gx[i, j]
                    for j in range(m):
                        GNJ[i, ns + j] = gu[i, j]
    tx, tq = term_jacobian_unchecked(X[N], q)
    for i in range(tx.shape[0]):
        for j in range(ns):
            TJ[i, j] = tx[i, j]
    for j in range(ns):
        grad[N, j] = tx[0, j]


@njit(cache=True)
def nlp_hessians(X, U, q, h, lam, yp, yN, tw, sigma, ng, H):
    """The Hessian of the Lagrangian, stage by stage: ∇²[σℓ_k + λ_{k+1}ᵀF + y_kᵀg] over
    (x_k, u_k) (one traced Hessian kernel per stage, the final node's rows added at N - 1), and
    ∇²[tw · term] at N with tw = (σ, ν, y_in) (forward-over-reverse, one per direction)."""
    N, ns, m = U.shape[0], X.shape[1], U.shape[1]
    nv = ns + m
    ct = np.empty(ns + 1)
    dx = np.zeros(ns)
    dq = np.zeros(q.shape[0])
    flat = np.empty(nv * nv)
    for k in range(N):
        s = k * h
        for i in range(ns):
            ct[i] = lam[k + 1, i]
        ct[ns] = sigma
        lagh_forward_into_unchecked(X[k], U[k], q, s, h, ct, yp[k], flat)
        for i in range(nv):
            for j in range(nv):
                H[k, i, j] = flat[i * nv + j]
        if ng > 0 and k == N - 1:
            finalh_forward_into_unchecked(X[k], U[k], q, s, h, yN, flat)
            for i in range(nv):
                for j in range(nv):
                    H[k, i, j] += flat[i * nv + j]
    for j in range(ns):
        dx[j] = 1.0
        hx, hq = term_hvp_unchecked(X[N], q, tw, dx, dq)
        for i in range(ns):
            H[N, i, j] = hx[i]
        dx[j] = 0.0
    for k in range(N + 1):  # exact Hessians are symmetric: remove round-off asymmetry
        for i in range(nv):
            for j in range(i):
                a = 0.5 * (H[k, i, j] + H[k, j, i])
                H[k, i, j] = a
                H[k, j, i] = a
