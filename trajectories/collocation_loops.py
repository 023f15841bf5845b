# ruff: noqa: F821
"""Compiled loops of the direct-collocation transcription: a source template, not an importable
module.

:mod:`trajectories.collocation` appends this text (and :mod:`trajectories.stage_loops`, for the
Riccati recursion and the condensing loops) to the generated module of the problem's kernels:

- ``node_*``: ``(xt, u, q, s) -> [F, ℓ, g]`` at one node, with ``xt`` = (x, T) when the final time
  is free (else x, T = q[-1]), F = T f(x, u, p, T s) the scaled dynamics, ℓ = T L the scaled
  running cost and g the path constraints;
- ``term_*``: ``(xt, q) -> [Φ, h_eq, h_in]``.

Layout (see :mod:`trajectories.collocation`): the stage state is ξ_j = (x_j, u_j[, x_c, u_c], [T])
with the midpoint pair of interval j - 1 (Hermite-Simpson), the stage control w_k = (u_{k+1}[, u_c]).
The defects c_k of interval k are written with u_{k+1}, u_c and T taken from (w_k, ξ_k); the
Lagrangian's second derivatives per node from ξ_j (the two copies agree at every iterate, the
identity rows being linear). Small dense algebra is written out: nothing calls BLAS.
"""
import math

import numpy as np
from numba import njit

from trajectories.riccati import lu as _lu
from trajectories.riccati import lu_solve as _lu_solve
from trajectories.riccati import lu_solve_t as _lu_solve_t


@njit(cache=True, inline="always")
def _gather(xi, off, n, free, iT, xt):
    for i in range(n):
        xt[i] = xi[off + i]
    if free:
        xt[n] = xi[iT]


@njit(cache=True)
def colloc_weights(N, h, hs):
    """Quadrature weights of the running cost at the nodes (trapezoid or Simpson)."""
    w = np.empty(N + 1)
    base = h / 6.0 if hs else h / 2.0
    for j in range(N + 1):
        w[j] = base if (j == 0 or j == N) else 2.0 * base
    return w


@njit(cache=True)
def colloc_values(X, W, q, h, s0, n, m, hs, free, ng, C, Gp, TV):
    """Cost, raw defects C (N, nc), path values at every node (N+1, ng) and the terminal vector.

    Trapezoid: c_k = x_k + h/2 (F_k + F_{k+1}) - x_{k+1}. Hermite-Simpson (separated form):
    c_k = [x_k + h/6 (F_k + 4 F_c + F_{k+1}) - x_{k+1},  (x_k + x_{k+1})/2 + h/8 (F_k - F_{k+1}) - x_c].
    Node j is at time s0 + j h. Returns (cost, first non-finite stage or -1)."""
    N, ns = W.shape[0], X.shape[1]
    iT = ns - 1
    nt = n + free
    ixc, iuc = n + m, 2 * n + m
    wq = colloc_weights(N, h, hs)
    xt = np.empty(nt)
    out = np.empty(n + 1 + ng)
    Fk = np.empty(n)
    f = 0.0
    bad = -1
    for j in range(N + 1):
        _gather(X[j], 0, n, free, iT, xt)
        node_forward_into_unchecked(xt, X[j, n:n + m], q, s0 + j * h, out)
        f += wq[j] * out[n]
        for i in range(ng):
            Gp[j, i] = out[n + 1 + i]
        if hs and j > 0:  # the midpoint cost of interval j - 1, from ξ_j
            _gather(X[j], ixc, n, free, iT, xt)
            node_forward_into_unchecked(xt, X[j, iuc:iuc + m], q, s0 + (j - 0.5) * h, out)
            f += 4.0 * h / 6.0 * out[n]
            for i in range(n + 1):
                if not math.isfinite(out[i]) and bad < 0:
                    bad = j - 1
    for k in range(N):
        _gather(X[k], 0, n, free, iT, xt)
        node_forward_into_unchecked(xt, X[k, n:n + m], q, s0 + k * h, out)
        for i in range(n + 1):
            if not math.isfinite(out[i]) and bad < 0:
                bad = k
        for i in range(n):
            Fk[i] = out[i]
        # F_{k+1} with u_{k+1} = w_k and T = T_k
        for i in range(n):
            xt[i] = X[k + 1, i]
        if free:
            xt[n] = X[k, iT]
        node_forward_into_unchecked(xt, W[k, :m], q, s0 + (k + 1) * h, out)
        for i in range(n + 1):
            if not math.isfinite(out[i]) and bad < 0:
                bad = k
        if not hs:
            for i in range(n):
                C[k, i] = X[k, i] + 0.5 * h * (Fk[i] + out[i]) - X[k + 1, i]
        else:
            for i in range(n):
                C[k, n + i] = 0.5 * (X[k, i] + X[k + 1, i]) + h / 8.0 * (Fk[i] - out[i]) - X[k + 1, ixc + i]
                C[k, i] = X[k, i] + h / 6.0 * (Fk[i] + out[i]) - X[k + 1, i]
            for i in range(n):
                xt[i] = X[k + 1, ixc + i]
            node_forward_into_unchecked(xt, W[k, m:2 * m], q, s0 + (k + 0.5) * h, out)
            for i in range(n):
                C[k, i] += 4.0 * h / 6.0 * out[i]
    _gather(X[N], 0, n, free, iT, xt)
    tv = term_forward_unchecked(xt, q)
    for i in range(tv.shape[0]):
        TV[i] = tv[i]
    f += tv[0]
    if not math.isfinite(f) and bad < 0:
        bad = N
    return f, bad


@njit(cache=True)
def colloc_defect_jacobians(X, W, q, h, s0, n, m, hs, free, Cx, Cw, Ey):
    """∂c_k/∂ξ_k (N, nc, ns), ∂c_k/∂w_k (N, nc, mw) and E_k = ∂c_k/∂y_{k+1} (N, nc, nc), with
    y_{k+1} = x_{k+1} (trapezoid) or (x_{k+1}, x_c) (Hermite-Simpson)."""
    N, ns = W.shape[0], X.shape[1]
    iT = ns - 1
    nt = n + free
    ixc = n + m
    xt = np.empty(nt)
    for k in range(N):
        _gather(X[k], 0, n, free, iT, xt)
        Jx, Ju, Jq, Js = node_jacobian_unchecked(xt, X[k, n:n + m], q, s0 + k * h)
        for i in range(n):
            xt[i] = X[k + 1, i]
        if free:
            xt[n] = X[k, iT]
        J1x, J1u, J1q, J1s = node_jacobian_unchecked(xt, W[k, :m], q, s0 + (k + 1) * h)
        if not hs:
            a = 0.5 * h
            for i in range(n):
                for j in range(n):
                    Cx[k, i, j] = a * Jx[i, j] + (1.0 if i == j else 0.0)
                    Ey[k, i, j] = a * J1x[i, j] - (1.0 if i == j else 0.0)
                for j in range(m):
                    Cx[k, i, n + j] = a * Ju[i, j]
                    Cw[k, i, j] = a * J1u[i, j]
                if free:
                    Cx[k, i, iT] = a * (Jx[i, n] + J1x[i, n])
        else:
            for i in range(n):
                xt[i] = X[k + 1, ixc + i]
            Jcx, Jcu, Jcq, Jcs = node_jacobian_unchecked(xt, W[k, m:2 * m], q, s0 + (k + 0.5) * h)
            a, b, c = h / 6.0, 4.0 * h / 6.0, h / 8.0
            for i in range(n):
                for j in range(n):
                    e = 1.0 if i == j else 0.0
                    Cx[k, i, j] = a * Jx[i, j] + e
                    Cx[k, n + i, j] = c * Jx[i, j] + 0.5 * e
                    Ey[k, i, j] = a * J1x[i, j] - e
                    Ey[k, i, n + j] = b * Jcx[i, j]
                    Ey[k, n + i, j] = 0.5 * e - c * J1x[i, j]
                    Ey[k, n + i, n + j] = -e
                for j in range(m):
                    Cx[k, i, n + j] = a * Ju[i, j]
                    Cx[k, n + i, n + j] = c * Ju[i, j]
                    Cw[k, i, j] = a * J1u[i, j]
                    Cw[k, i, m + j] = b * Jcu[i, j]
                    Cw[k, n + i, j] = -c * J1u[i, j]
                    Cw[k, n + i, m + j] = 0.0
                if free:
                    Cx[k, i, iT] = a * (Jx[i, n] + J1x[i, n]) + b * Jcx[i, n]
                    Cx[k, n + i, iT] = c * (Jx[i, n] - J1x[i, n])


@njit(cache=True)
def colloc_node_jacobians(X, q, h, n, m, hs, free, ng, grad, GP, TJ):
    """Cost gradient per stage over ξ_j (N+1, ns) (quadrature weights included, ∇Φ at N), path
    Jacobians at every node over ξ_j (N+1, ng, ns) and the terminal Jacobian over ξ_N."""
    N1, ns = X.shape[0], X.shape[1]
    N = N1 - 1
    iT = ns - 1
    nt = n + free
    ixc, iuc = n + m, 2 * n + m
    wq = colloc_weights(N, h, hs)
    xt = np.empty(nt)
    for j in range(N + 1):
        _gather(X[j], 0, n, free, iT, xt)
        Jx, Ju, Jq, Js = node_jacobian_unchecked(xt, X[j, n:n + m], q, j * h)
        for i in range(n):
            grad[j, i] += wq[j] * Jx[n, i]
        for i in range(m):
            grad[j, n + i] += wq[j] * Ju[n, i]
        if free:
            grad[j, iT] += wq[j] * Jx[n, n]
        for r in range(ng):
            for i in range(n):
                GP[j, r, i] = Jx[n + 1 + r, i]
            for i in range(m):
                GP[j, r, n + i] = Ju[n + 1 + r, i]
            if free:
                GP[j, r, iT] = Jx[n + 1 + r, n]
        if hs and j > 0:
            _gather(X[j], ixc, n, free, iT, xt)
            Jx, Ju, Jq, Js = node_jacobian_unchecked(xt, X[j, iuc:iuc + m], q, (j - 0.5) * h)
            b = 4.0 * h / 6.0
            for i in range(n):
                grad[j, ixc + i] += b * Jx[n, i]
            for i in range(m):
                grad[j, iuc + i] += b * Ju[n, i]
            if free:
                grad[j, iT] += b * Jx[n, n]
    _gather(X[N], 0, n, free, iT, xt)
    tx, tq = term_jacobian_unchecked(xt, q)
    for r in range(tx.shape[0]):
        for i in range(n):
            TJ[r, i] = tx[r, i]
        if free:
            TJ[r, iT] = tx[r, n]
    for i in range(ns):
        grad[N, i] += TJ[0, i]


@njit(cache=True)
def _y_rows(n, m, hs, nc):
    """The stage-form rows of the E⁻¹-solved unknowns y: the next state (and the midpoint's)."""
    rows = np.empty(nc, dtype=np.int64)
    for i in range(n):
        rows[i] = i
        if hs:
            rows[n + i] = n + m + i
    return rows


@njit(cache=True)
def colloc_stage_form(Cx, Cw, Ey, C, n, m, hs, free, A, B, R):
    """The explicit stage form of the linearised defects: with y = E⁻¹-solved unknowns,
    dy = -E⁻¹(Cx dξ_k + Cw dw_k + c_k), the copies (u_{k+1}[, u_c], T) are identity rows.
    Writes A (N, ns, ns), B (N, ns, mw) and, if C has rows, R (N, ns) = the residuals r_k of
    dξ_{k+1} = A dξ_k + B dw_k + r_k. Returns -1 or the first stage with a singular E_k."""
    N, nc, ns = Cx.shape[0], Cx.shape[1], Cx.shape[2]
    mw = Cw.shape[2]
    iT = ns - 1
    iuc = 2 * n + m
    rows = _y_rows(n, m, hs, nc)
    M = np.empty((nc, nc))
    piv = np.empty(nc, dtype=np.int64)
    rhs = np.empty((nc, ns + mw + 1))
    for k in range(N):
        for i in range(nc):
            for j in range(nc):
                M[i, j] = Ey[k, i, j]
            for j in range(ns):
                rhs[i, j] = Cx[k, i, j]
            for j in range(mw):
                rhs[i, ns + j] = Cw[k, i, j]
            rhs[i, ns + mw] = C[k, i]
        if not _lu(M, piv, nc):
            return k
        _lu_solve(M, piv, rhs, nc, ns + mw + 1)
        for i in range(ns):
            for j in range(ns):
                A[k, i, j] = 0.0
            for j in range(mw):
                B[k, i, j] = 0.0
        for a in range(nc):
            for j in range(ns):
                A[k, rows[a], j] = -rhs[a, j]
            for j in range(mw):
                B[k, rows[a], j] = -rhs[a, ns + j]
            R[k, rows[a]] = -rhs[a, ns + mw]
        for i in range(m):
            B[k, n + i, i] = 1.0
            if hs:
                B[k, iuc + i, m + i] = 1.0
        if free:
            A[k, iT, iT] = 1.0
    return -1


@njit(cache=True)
def colloc_stage_residuals(Ey, C, n, m, hs, R):
    """Only the residuals r_k = -E_k⁻¹c_k of :func:`colloc_stage_form` on the y rows (a trial
    point's values need no A_k, B_k): one right-hand side per stage instead of ns + mw + 1.
    Returns -1 or the first stage with a singular E_k."""
    N, nc = Ey.shape[0], Ey.shape[1]
    rows = _y_rows(n, m, hs, nc)
    M = np.empty((nc, nc))
    piv = np.empty(nc, dtype=np.int64)
    rhs = np.empty((nc, 1))
    for k in range(N):
        for i in range(nc):
            for j in range(nc):
                M[i, j] = Ey[k, i, j]
            rhs[i, 0] = C[k, i]
        if not _lu(M, piv, nc):
            return k
        _lu_solve(M, piv, rhs, nc, 1)
        for a in range(nc):
            R[k, rows[a]] = -rhs[a, 0]
    return -1


@njit(cache=True)
def colloc_identity_residuals(X, W, n, m, hs, free, R):
    """r_k of the copy rows: u_{k+1} = w_k[:m], u_c = w_k[m:], T_{k+1} = T_k."""
    N, ns = W.shape[0], X.shape[1]
    iT = ns - 1
    iuc = 2 * n + m
    for k in range(N):
        for i in range(m):
            R[k, n + i] = W[k, i] - X[k + 1, n + i]
            if hs:
                R[k, iuc + i] = W[k, m + i] - X[k + 1, iuc + i]
        if free:
            R[k, iT] = X[k, iT] - X[k + 1, iT]


@njit(cache=True)
def colloc_defect_multipliers(Ey, lam, n, m, hs, MU):
    """μ_k = -E_k⁻ᵀ λ_{k+1}[y rows]: the multipliers of the defects c_k from those of the
    explicit stage rows (the two systems differ by the invertible row operation -E_k⁻¹)."""
    N, nc = Ey.shape[0], Ey.shape[1]
    ixc = n + m
    M = np.empty((nc, nc))
    piv = np.empty(nc, dtype=np.int64)
    b = np.empty(nc)
    for k in range(N):
        for i in range(nc):
            for j in range(nc):
                M[i, j] = Ey[k, i, j]
        for i in range(n):
            b[i] = -lam[k + 1, i]
            if hs:
                b[n + i] = -lam[k + 1, ixc + i]
        if not _lu(M, piv, nc):
            return k
        _lu_solve_t(M, piv, b, nc)
        for i in range(nc):
            MU[k, i] = b[i]
    return -1


@njit(cache=True)
def colloc_stage_multipliers(Ey, MU, n, m, hs, lam):
    """The inverse map: λ_{k+1}[y rows] = -E_kᵀ μ_k."""
    N, nc = Ey.shape[0], Ey.shape[1]
    ixc = n + m
    for k in range(N):
        for j in range(nc):
            v = 0.0
            for i in range(nc):
                v -= Ey[k, i, j] * MU[k, i]
            if j < n:
                lam[k + 1, j] = v
            else:
                lam[k + 1, ixc + j - n] = v


@njit(cache=True)
def colloc_hessians(X, q, h, n, m, hs, free, ng, MU, YP, tw, sigma, H):
    """∇² of the Lagrangian σJ + Σ μ_kᵀc_k + Σ y_jᵀg_j + terminal terms, node by node over ξ_j
    (N+1, ns, ns): every nonlinear term is a function of one node's (x, u, T) or one midpoint's
    (x_c, u_c, T), so the blocks are exact and separate. tw = (σ, ν, y_in) weighs term."""
    N1, ns = X.shape[0], X.shape[1]
    N = N1 - 1
    iT = ns - 1
    nt = n + free
    ixc, iuc = n + m, 2 * n + m
    nl = nt + m
    wq = colloc_weights(N, h, hs)
    xt = np.empty(nt)
    ct = np.zeros(n + 1 + ng)
    dx = np.zeros(nt)
    du = np.zeros(m)
    dq = np.zeros(q.shape[0])
    idx = np.empty(nl, dtype=np.int64)
    for i in range(ns):
        for j in range(ns):
            for k in range(N1):
                H[k, i, j] = 0.0
    for point in range(N1 + (N if hs else 0)):
        mid = point > N
        j = point - N if mid else point   # a midpoint of interval j - 1 lives in ξ_j
        off = ixc if mid else 0
        uoff = iuc if mid else n
        for i in range(n):
            idx[i] = off + i
        if free:
            idx[n] = iT
        for i in range(m):
            idx[nt + i] = uoff + i
        _gather(X[j], off, n, free, iT, xt)
        for i in range(n + 1 + ng):
            ct[i] = 0.0
        if mid:
            for i in range(n):
                ct[i] = 4.0 * h / 6.0 * MU[j - 1, i]
            ct[n] = sigma * 4.0 * h / 6.0
            s = (j - 0.5) * h
        else:
            for i in range(n):
                v = 0.0
                if not hs:
                    if j > 0:
                        v += 0.5 * h * MU[j - 1, i]
                    if j < N:
                        v += 0.5 * h * MU[j, i]
                else:
                    if j > 0:
                        v += h / 6.0 * MU[j - 1, i] - h / 8.0 * MU[j - 1, n + i]
                    if j < N:
                        v += h / 6.0 * MU[j, i] + h / 8.0 * MU[j, n + i]
                ct[i] = v
            ct[n] = sigma * wq[j]
            for i in range(ng):
                ct[n + 1 + i] = YP[j, i]
            s = j * h
        u = X[j, uoff:uoff + m].copy()
        for a in range(nl):
            if a < nt:
                dx[a] = 1.0
            else:
                du[a - nt] = 1.0
            hx, hu, hq, hs_ = node_hvp_unchecked(xt, u, q, s, ct, dx, du, dq, 0.0)
            for b in range(nt):
                H[j, idx[b], idx[a]] += hx[b]
            for b in range(m):
                H[j, idx[nt + b], idx[a]] += hu[b]
            if not mid and j == N and a < nt:
                tx, tq = term_hvp_unchecked(xt, q, tw, dx, dq)
                for b in range(nt):
                    H[j, idx[b], idx[a]] += tx[b]
            if a < nt:
                dx[a] = 0.0
            else:
                du[a - nt] = 0.0
    for k in range(N1):
        for i in range(ns):
            for j in range(i):
                a = 0.5 * (H[k, i, j] + H[k, j, i])
                H[k, i, j] = a
                H[k, j, i] = a


@njit(cache=True)
def colloc_costates(A, grad, GJ, YP, TJ, tw, keep, lam):
    """The stage-form adjoint recursion λ_N = ∇_ξ(J_N + tw·term), λ_k = ∇_ξ ℓ_k + A_kᵀλ_{k+1}
    + G_kᵀy_k; rows where ``keep`` is true keep the values already in lam (the defect rows,
    when their multipliers are known)."""
    N, ns = A.shape[0], A.shape[1]
    ng = YP.shape[1]
    for j in range(ns):
        if keep[j]:
            continue
        v = grad[N, j]
        for i in range(1, TJ.shape[0]):
            v += tw[i] * TJ[i, j]
        for i in range(ng):
            v += GJ[N, i, j] * YP[N, i]
        lam[N, j] = v
    for k in range(N - 1, -1, -1):
        for j in range(ns):
            if keep[j] and k > 0:
                continue
            v = grad[k, j]
            for i in range(ns):
                v += A[k, i, j] * lam[k + 1, i]
            for i in range(ng):
                v += GJ[k, i, j] * YP[k, i]
            lam[k, j] = v


@njit(cache=True)
def colloc_rollout(X, W, q, h, n, m, hs, free, ng, Gp, TV, tol, max_newton):
    """Integrate the collocation equations forward from X[0] under the controls (W, X[0]'s u):
    Newton on c_k(y) = 0 for each interval (Gp (2, ng), TV: scratch of colloc_values). Returns
    the first interval that does not converge, or -1."""
    N, ns = W.shape[0], X.shape[1]
    nc = n * (2 if hs else 1)
    ixc, iuc = n + m, 2 * n + m
    C = np.zeros((1, nc))
    Cx = np.zeros((1, nc, ns))
    Cw = np.zeros((1, nc, W.shape[1]))
    Ey = np.zeros((1, nc, nc))
    M = np.empty((nc, nc))
    piv = np.empty(nc, dtype=np.int64)
    b = np.empty((nc, 1))
    for k in range(N):
        for i in range(m):
            X[k + 1, n + i] = W[k, i]
            if hs:
                X[k + 1, iuc + i] = W[k, m + i]
        if free:
            X[k + 1, ns - 1] = X[k, ns - 1]
        for i in range(n):
            X[k + 1, i] = X[k, i]
            if hs:
                X[k + 1, ixc + i] = X[k, i]
        ok = False
        for _ in range(max_newton):
            colloc_values(X[k:k + 2], W[k:k + 1], q, h, k * h, n, m, hs, free, ng, C, Gp, TV)
            err = 0.0
            for i in range(nc):
                if not math.isfinite(C[0, i]):
                    return k
                err = max(err, abs(C[0, i]))
            if err <= tol:
                ok = True
                break
            colloc_defect_jacobians(X[k:k + 2], W[k:k + 1], q, h, k * h, n, m, hs, free, Cx, Cw, Ey)
            for i in range(nc):
                for j in range(nc):
                    M[i, j] = Ey[0, i, j]
                b[i, 0] = C[0, i]
            if not _lu(M, piv, nc):
                return k
            _lu_solve(M, piv, b, nc, 1)
            for i in range(n):
                X[k + 1, i] -= b[i, 0]
                if hs:
                    X[k + 1, ixc + i] -= b[n + i, 0]
        if not ok:
            return k
    return -1


@njit(cache=True)
def colloc_node_cost_gradients(X, q, h, n, m, hs, free, out):
    """∇_x ℓ_j at every node (N+1, n), without quadrature weights."""
    N1, ns = X.shape[0], X.shape[1]
    xt = np.empty(n + free)
    for j in range(N1):
        _gather(X[j], 0, n, free, ns - 1, xt)
        Jx, Ju, Jq, Js = node_jacobian_unchecked(xt, X[j, n:n + m], q, j * h)
        for i in range(n):
            out[j, i] = Jx[n, i]
