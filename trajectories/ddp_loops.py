# ruff: noqa: F821
"""Compiled passes of DDP: a source template, not an importable module.

:mod:`trajectories.ddp` appends this text (and one of the two ``_derivatives`` bodies below it)
to a generated module holding the problem's kernels, so these ``@njit(cache=True)`` functions
call them by name and Numba caches everything together. Kernels (see :mod:`diffsim.codegen`):

- ``st_*``: one stage ``(x, u, q, t, h) -> [x_next, stage cost]`` (the integrator step of the
  augmented state plus the stage's augmented-Lagrangian path term);
- ``dd_*``: the stage's derivatives as one flat vector [Fᵀ, l, H] over z = (x, u): Fᵀ
  (n+m, n) the step Jacobian [A B] transposed, l the stage cost's gradient, H (n+m, n+m) the
  stage cost's Hessian (Gauss-Newton) or the Hessian of ctᵀ·stage with ct = [V_x', 1] (second
  order), generated with only its ``forward_into`` kernel, written into a buffer of the sweep;
- ``tm_*``, ``tg_*``: the terminal cost (with its augmented-Lagrangian terms) and its gradient.

Sign conventions: the control update is δu_k = α k_k + K_k δx_k (k, K are the feed-forward term
and the feedback gain), the gaps are f_0 = x0 − x_0, f_{k+1} = F(x_k, u_k) − x_{k+1}, and
``Vx`` holds the gap-corrected value gradient V_x + V_xx f of Mastalli et al. (2020), eq. 11.
"""
import math

import numpy as np
from numba import njit

CONVERGED, STEPPED, NO_STEP, REG_MAX, NONFINITE = 0, 1, 2, 3, 4


@njit(cache=True, inline="always")
def _cholesky(H, L, idx, nf):
    """L Lᵀ = H[idx][:, idx] for the first nf indices; False if not positive definite."""
    for a in range(nf):
        s = H[idx[a], idx[a]]
        for c in range(a):
            s -= L[a, c] * L[a, c]
        if not s > 0.0:
            return False
        L[a, a] = math.sqrt(s)
        for b in range(a + 1, nf):
            s = H[idx[b], idx[a]]
            for c in range(a):
                s -= L[b, c] * L[a, c]
            L[b, a] = s / L[a, a]
    return True


@njit(cache=True, inline="always")
def _chol_solve(L, b, x, nf):
    """x = (L Lᵀ)⁻¹ b (x may alias b)."""
    for a in range(nf):
        s = b[a]
        for c in range(a):
            s -= L[a, c] * x[c]
        x[a] = s / L[a, a]
    for a in range(nf - 1, -1, -1):
        s = x[a]
        for c in range(a + 1, nf):
            s -= L[c, a] * x[c]
        x[a] = s / L[a, a]


@njit(cache=True, inline="always")
def _free_set(H, g, x, lo, hi, idx, L):
    """Indices of the controls not held at a bound by the gradient of ½xᵀHx + gᵀx, and the
    Cholesky factor of H on them. Returns their number, or -1 if that block is not positive definite."""
    m = x.shape[0]
    nf = 0
    for i in range(m):
        gi = g[i]
        for j in range(m):
            gi += H[i, j] * x[j]
        if not ((x[i] <= lo[i] and gi > 0.0) or (x[i] >= hi[i] and gi < 0.0)):
            idx[nf] = i
            nf += 1
    if not _cholesky(H, L, idx, nf):
        return -1
    return nf


@njit(cache=True, inline="always")
def _max_abs(v):
    """max |v_i| without the temporary array of np.max(np.abs(v))"""
    s = 0.0
    for i in range(v.shape[0]):
        s = max(s, abs(v[i]))
    return s


@njit(cache=True, inline="always")
def _qp_value(H, g, x):
    m = x.shape[0]
    v = 0.0
    for i in range(m):
        s = 0.5 * H[i, i] * x[i]
        for j in range(i):
            s += H[i, j] * x[j]
        v += x[i] * (s + g[i])
    return v


@njit(cache=True, inline="always")
def _box_qp(H, g, lo, hi, x, idx, L, w, xn):
    """Projected Newton (Bertsekas 1982; Tassa, Mansard & Todorov 2014, Alg. 3) for
    min ½xᵀHx + gᵀx on lo ≤ x ≤ hi, warm-started at x. Returns the size of the free set at the
    solution (its factor in L, its indices in idx), or -1 if H is not positive definite there."""
    m = x.shape[0]
    for i in range(m):
        x[i] = min(max(x[i], lo[i]), hi[i])
    for _ in range(100):
        nf = _free_set(H, g, x, lo, hi, idx, L)
        if nf < 0:
            return -1
        gmax = 0.0
        for a in range(nf):
            i = idx[a]
            gi = g[i]
            for j in range(m):
                gi += H[i, j] * x[j]
            w[a] = gi
            gmax = max(gmax, abs(gi))
        if gmax <= 1e-13 * (1.0 + _max_abs(g)):
            return nf
        # Newton step on the free controls; the clamped ones stay where they are
        _chol_solve(L, w, w, nf)
        f0 = _qp_value(H, g, x)
        step = 1.0
        moved = False
        while step > 1e-12:
            for i in range(m):
                xn[i] = x[i]
            for a in range(nf):
                i = idx[a]
                xn[i] = min(max(x[i] - step * w[a], lo[i]), hi[i])
            # Armijo on the projected arc: sufficient decrease against the gradient along it
            slope = 0.0
            for i in range(m):
                gi = g[i]
                for j in range(m):
                    gi += H[i, j] * x[j]
                slope += gi * (xn[i] - x[i])
            if _qp_value(H, g, xn) <= f0 + 0.1 * slope:
                moved = True
                break
            step *= 0.5
        if not moved:
            break
        change = 0.0
        for i in range(m):
            change = max(change, abs(xn[i] - x[i]))
        for i in range(m):
            x[i] = xn[i]
        if change <= 1e-15 * (1.0 + _max_abs(x)):
            break
    return _free_set(H, g, x, lo, hi, idx, L)


@njit(cache=True)
def evaluate(x0, xs, us, Q, r, t0, h, fs):
    """The gaps fs and the cost of (xs, us) with stage parameters Q and terminal parameters r.
    Returns (cost, first non-finite stage or -1)."""
    n, N = xs.shape[1], us.shape[0]
    out = np.empty(n + 1)
    for i in range(n):
        fs[0, i] = x0[i] - xs[0, i]
    cost = 0.0
    for k in range(N):
        st_forward_into_unchecked(xs[k], us[k], Q[k], t0 + k * h, h, out)
        for i in range(n + 1):
            if not math.isfinite(out[i]):
                return math.inf, k
        cost += out[n]
        for i in range(n):
            fs[k + 1, i] = out[i] - xs[k + 1, i]
    cost += tm_forward_unchecked(xs[N], r)
    if not math.isfinite(cost):
        return math.inf, N
    return cost, -1


@njit(cache=True)
def rollout(x0, us, Q, r, t0, h, xs):
    """xs := the states of a rollout of us from x0; returns (cost, first non-finite stage or -1)."""
    n, N = xs.shape[1], us.shape[0]
    out = np.empty(n + 1)
    xs[0] = x0
    cost = 0.0
    for k in range(N):
        st_forward_into_unchecked(xs[k], us[k], Q[k], t0 + k * h, h, out)
        for i in range(n + 1):
            if not math.isfinite(out[i]):
                return math.inf, k
        cost += out[n]
        xs[k + 1] = out[:n]
    cost += tm_forward_unchecked(xs[N], r)
    return cost, (-1 if math.isfinite(cost) else N)


@njit(cache=True)  # no fastmath: the Python twin of a first solve (diffsim.interpreted) gives the same bits
def backward(xs, us, fs, Q, r, t0, h, reg, box, lo, hi, K, kff, Vx, Vxx, Qu, Quu, W, Gu, Kn, ev, Sm, hv, Ht):
    """The Riccati sweep of FDDP (Mastalli et al. 2020, eqs. 9-12) in one loop, with the
    projected-Newton box step (Tassa et al. 2014) when ``box``. Writes the gains K, k, the value
    derivatives and Q_u, Q_uu (regularised) per stage.

    With terminal equalities h(x_N) = 0 held exactly (``W`` has n_e > 0 columns) the sweep also
    carries the value's dependence on a change δν of their multiplier (the sweep method of
    Bryson & Ho 1975, §2.8, for terminal constraints): V_x(ν) = V_x + W δν with W_N = ∂h/∂xᵀ and
    W_k = (A + BK)ᵀ W_{k+1}, the feed-forward k(ν) = k + Kn δν on the free controls
    (Kn = −Q_uu⁻¹ Bᵀ W_{k+1}, Gu = Bᵀ W_{k+1}), and the linear prediction of h after the full step,
    h + ∂h/∂x δx_N = ev + Sm δν with ev = h + W_0ᵀ f_0 + Σ (Guᵀ k + W_{k+1}ᵀ f_{k+1}) and
    Sm = Σ Guᵀ Kn (negative semidefinite). hv := h(x_N), Ht := ∂h/∂x.

    The stage's derivatives come from :func:`_derivatives` as Fᵀ = [A B]ᵀ (rows: the step's
    derivative along one of x, u), the cost gradient l and the Hessian H over z = (x, u); with V'
    symmetric every product below is a dot product of two contiguous rows, P = Fᵀ V' and
    Q_zz = H + P F, and the sizes n = _NX, m = _NU are constants of the generated module, so the
    compiler unrolls them; from ``_GEMM_MIN_STATES`` states on (``_GEMM``) those
    products and Q_uxᵀ K go to BLAS instead, and the gains' triangular solves run row by row.

    Returns (failed stage or -1, stationarity max|proj Q_u|, dg, dq) where dg, dq are the
    first- and second-order terms of the expected improvement (Mastalli et al. eq. 15)."""
    n, m, N = _NX, _NU, us.shape[0]
    nz = n + m
    d = np.empty(nz * n + nz + nz * nz)
    FT = d[:nz * n].reshape((nz, n))
    lz = d[nz * n:nz * n + nz]
    H = d[nz * n + nz:].reshape((nz, nz))
    P = np.empty((nz, n))
    Qzz = np.empty((nz, nz))
    Vt = np.empty((n, n))
    Qx = np.empty(n)
    Qxx = np.empty((n, n))
    Qux = np.empty((m, n))
    L = np.empty((m, m))
    idx = np.empty(m, dtype=np.int64)
    w = np.empty(m)
    wn = np.empty(m)
    dlo = np.empty(m)
    dhi = np.empty(m)
    col = np.empty(m)
    ct = np.empty(n + 1)
    Y = np.empty((m, n))
    Yn = np.empty((m, _NE))
    # terminal: V = Φ (with its augmented-Lagrangian terms)
    tg_forward_into_unchecked(xs[N], r, Vx[N])
    Jt = tg_jacobian_unchecked(xs[N], r)[0]
    for i in range(n):
        for j in range(n):
            Vxx[N, i, j] = 0.5 * (Jt[i, j] + Jt[j, i])
        Vxx[N, i, i] += reg
    dg, dq, stat = 0.0, 0.0, 0.0
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += Vxx[N, i, j] * fs[N, j]
        dq += fs[N, i] * s
        Vx[N, i] += s
        dg -= Vx[N, i] * fs[N, i]
    ne = W.shape[2]
    if ne:
        _terminal_constraint(xs[N], r, hv, Ht)
        Sm[:, :] = 0.0
        for a in range(ne):
            ev[a] = hv[a]
            for i in range(n):
                W[N, i, a] = Ht[a, i]
    for k in range(N - 1, -1, -1):
        for i in range(n):
            ct[i] = Vx[k + 1, i]
        ct[n] = 1.0
        _derivatives(xs[k], us[k], Q[k], t0 + k * h, h, ct, d)
        # Q_z = l + Fᵀ V_x'
        for r_ in range(nz):
            s = lz[r_]
            for a in range(n):
                s += FT[r_, a] * Vx[k + 1, a]
            if r_ < n:
                Qx[r_] = s
            else:
                Qu[k, r_ - n] = s
        # projected stationarity at the current controls
        for c in range(m):
            qc = Qu[k, c]
            if box and ((us[k, c] <= lo[c] and qc > 0.0) or (us[k, c] >= hi[c] and qc < 0.0)):
                qc = 0.0
            stat = max(stat, abs(qc))
        if _GEMM:
            # P = Fᵀ V_xx' = FT V_xx' (V_xx' symmetric) and Q_zz = H + P F as two small BLAS
            # products: on a dense 12 × 6 stage (12 × 18 products) 2.5 times the speed of the
            # written-out loops below, which stay for small stages (a BLAS call costs ~0.1 µs)
            np.dot(FT, Vxx[k + 1], P)
            np.dot(P, FT.T, Qzz)
            for i in range(n):
                for j in range(i, n):
                    Qxx[i, j] = Qzz[i, j] + H[i, j]
            for c in range(m):
                for j in range(n):
                    Qux[c, j] = Qzz[n + c, j] + H[n + c, j]
                for e in range(m):
                    Quu[k, c, e] = Qzz[n + c, n + e] + H[n + c, n + e]
                Quu[k, c, c] += reg
        else:
            # P = Fᵀ V_xx' (V_xx' symmetric: P[r, j] = F[:, r]·V_xx'[j, :])
            for r_ in range(nz):
                for j in range(n):
                    s = 0.0
                    for a in range(n):
                        s += FT[r_, a] * Vxx[k + 1, j, a]
                    P[r_, j] = s
            # Q_zz = H + P F: the upper triangle of Q_xx (only V_xx needs it), Q_ux and Q_uu
            for i in range(n):
                for j in range(i, n):
                    s = H[i, j]
                    for a in range(n):
                        s += P[i, a] * FT[j, a]
                    Qxx[i, j] = s
            for c in range(m):
                for j in range(n):
                    s = H[n + c, j]
                    for a in range(n):
                        s += P[n + c, a] * FT[j, a]
                    Qux[c, j] = s
                for e in range(m):
                    s = H[n + c, n + e]
                    for a in range(n):
                        s += P[n + c, a] * FT[n + e, a]
                    Quu[k, c, e] = s
                Quu[k, c, c] += reg
        Qk = Quu[k]
        # feed-forward k = argmin ½kᵀQuu k + Quᵀk (in the box lo - u ≤ k ≤ hi - u)
        if box:
            for c in range(m):
                dlo[c] = lo[c] - us[k, c]
                dhi[c] = hi[c] - us[k, c]
                w[c] = kff[k, c]  # warm start from the previous iteration's step
            nf = _box_qp(Qk, Qu[k], dlo, dhi, w, idx, L, col, wn)
            if nf < 0:
                return k, stat, dg, dq
            for c in range(m):
                kff[k, c] = w[c]
        else:
            for c in range(m):
                idx[c] = c
            nf = m
            if not _cholesky(Qk, L, idx, m):
                return k, stat, dg, dq
            _chol_solve(L, Qu[k], w, m)
            for c in range(m):
                kff[k, c] = -w[c]
        # feedback K = −Quu_ff⁻¹ Qux_f on the free controls (all columns at once), zero rows on
        # the clamped ones; written out here, not in a helper, as are the other helpers inlined:
        # a call that passes arrays costs the stage loop their reference counts
        for c in range(m):
            for j in range(n):
                K[k, c, j] = 0.0
        # row by row, each row an axpy over the n columns (vectorised), not a dot product a column
        for a in range(nf):
            inv = 1.0 / L[a, a]
            ia = idx[a]
            for j in range(n):
                Y[a, j] = Qux[ia, j]
            for c in range(a):
                lc = L[a, c]
                for j in range(n):
                    Y[a, j] -= lc * Y[c, j]
            for j in range(n):
                Y[a, j] *= inv
        for a in range(nf - 1, -1, -1):
            inv = 1.0 / L[a, a]
            for c in range(a + 1, nf):
                lc = L[c, a]
                for j in range(n):
                    Y[a, j] -= lc * Y[c, j]
            for j in range(n):
                Y[a, j] *= inv
        for a in range(nf):
            ia = idx[a]
            for j in range(n):
                K[k, ia, j] = -Y[a, j]
        if ne:
            _multiplier_sensitivity(k, FT, K, kff, fs, L, idx, nf, Yn, W, Gu, Kn, ev, Sm)
        # V_x = Q_x + Kᵀ Quu k + Kᵀ Q_u + Q_uxᵀ k ; V_xx = Q_xx + Kᵀ Quu K + Kᵀ Q_ux + Q_uxᵀ K
        kq = 0.0
        for c in range(m):
            s = 0.0
            for e in range(m):
                s += Quu[k, c, e] * kff[k, e]
            w[c] = s + Qu[k, c]   # Quu k + Qu
            kq += kff[k, c] * s
            dg -= Qu[k, c] * kff[k, c]
        dq -= kq
        for i in range(n):
            Vx[k, i] = Qx[i]
        for c in range(m):
            wc, kc = w[c], kff[k, c]
            for i in range(n):
                Vx[k, i] += K[k, c, i] * wc + Qux[c, i] * kc
        # V_xx = Q_xx + Kᵀ Quu K + Kᵀ Q_ux + Q_uxᵀ K = Q_xx + Q_uxᵀ K, as Quu_ff K_f = −Q_ux,f on the
        # free controls and K is zero on the clamped ones: symmetric, so its upper triangle, mirrored
        if _GEMM:
            np.dot(Qux.T, K[k], Vt)
            for i in range(n):
                for j in range(i, n):
                    Vxx[k, i, j] = Qxx[i, j] + Vt[i, j]
        else:
            for i in range(n):
                for j in range(i, n):
                    s = Qxx[i, j]
                    for c in range(m):
                        s += Qux[c, i] * K[k, c, j]
                    Vxx[k, i, j] = s
        for i in range(n):
            for j in range(i):
                Vxx[k, i, j] = Vxx[k, j, i]
            Vxx[k, i, i] += reg
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += Vxx[k, i, j] * fs[k, j]
            dq += fs[k, i] * s
            Vx[k, i] += s
            dg -= Vx[k, i] * fs[k, i]
    for a in range(ne):
        for i in range(n):
            ev[a] += W[0, i, a] * fs[0, i]
    return -1, stat, dg, dq


@njit(cache=True, inline="always")
def _multiplier_sensitivity(k, FT, K, kff, fs, L, idx, nf, Yn, W, Gu, Kn, ev, Sm):
    """Stage k of the terminal-multiplier sweep (see :func:`backward`): Gu, Kn at k, W_k from
    W_{k+1}, and the stage's terms of ev and Sm (FT = [A B]ᵀ). The sizes are the module's
    constants and Kn is solved for all n_e columns at once, as K is: with sizes read from the
    arrays and one solve a column this took as long as the rest of the stage."""
    n, m, ne = _NX, _NU, _NE
    for c in range(m):
        for a in range(ne):
            s = 0.0
            for i in range(n):
                s += FT[n + c, i] * W[k + 1, i, a]
            Gu[k, c, a] = s
    # Kn = −Quu_ff⁻¹ Gu_f on the free controls, zero rows on the clamped ones
    for c in range(m):
        for a in range(ne):
            Kn[k, c, a] = 0.0
    for f in range(nf):
        inv = 1.0 / L[f, f]
        for a in range(ne):
            s = Gu[k, idx[f], a]
            for c in range(f):
                s -= L[f, c] * Yn[c, a]
            Yn[f, a] = s * inv
    for f in range(nf - 1, -1, -1):
        inv = 1.0 / L[f, f]
        for a in range(ne):
            s = Yn[f, a]
            for c in range(f + 1, nf):
                s -= L[c, f] * Yn[c, a]
            Yn[f, a] = s * inv
    for f in range(nf):
        for a in range(ne):
            Kn[k, idx[f], a] = -Yn[f, a]
    for a in range(ne):
        s = 0.0
        for c in range(m):
            s += Gu[k, c, a] * kff[k, c]
        for i in range(n):
            s += W[k + 1, i, a] * fs[k + 1, i]
        ev[a] += s
        for b in range(ne):
            s = 0.0
            for c in range(m):
                s += Gu[k, c, a] * Kn[k, c, b]
            Sm[a, b] += s
    for i in range(n):   # W_k = Aᵀ W_{k+1} + Kᵀ Gu = (A + BK)ᵀ W_{k+1}
        for a in range(ne):
            s = 0.0
            for j in range(n):
                s += FT[i, j] * W[k + 1, j, a]
            for c in range(m):
                s += K[k, c, i] * Gu[k, c, a]
            W[k, i, a] = s


@njit(cache=True)
def multiplier_step(ev, Sm, hv, W, Gu, Kn, kff, Qu, Vx, r, eq0, tau, dn):
    """The terminal multipliers' Newton step: δν solving ev + Sm δν = 0 (the linearised terminal
    equalities hold after the full step), applied to the feed-forward terms, Q_u, the value
    gradients and the multipliers in r[eq0:eq0 + n_e], δν in dn. Returns the change δνᵀh of the
    augmented-Lagrangian cost at the current iterate, or NaN if −Sm is singular (the terminal
    equalities are not reachable by the free controls): nothing is changed then."""
    ne = ev.shape[0]
    M = np.empty((ne, ne))
    L = np.empty((ne, ne))
    idx = np.arange(ne)
    dn[:] = 0.0
    scale = 0.0
    for a in range(ne):
        scale = max(scale, -Sm[a, a])
    if not scale > 0.0:
        return math.nan
    for a in range(ne):
        for b in range(ne):
            M[a, b] = -0.5 * (Sm[a, b] + Sm[b, a])
        M[a, a] += tau * scale
    if not _cholesky(M, L, idx, ne):
        return math.nan
    _chol_solve(L, ev, dn, ne)
    for a in range(ne):
        if not math.isfinite(dn[a]):
            return math.nan
    N, m, n = kff.shape[0], kff.shape[1], Vx.shape[1]
    for k in range(N + 1):
        for i in range(n):
            s = 0.0
            for a in range(ne):
                s += W[k, i, a] * dn[a]
            Vx[k, i] += s
        if k == N:
            break
        for c in range(m):
            s, s2 = 0.0, 0.0
            for a in range(ne):
                s += Kn[k, c, a] * dn[a]
                s2 += Gu[k, c, a] * dn[a]
            kff[k, c] += s
            Qu[k, c] += s2
    change = 0.0
    for a in range(ne):
        r[eq0 + a] += dn[a]
        change += dn[a] * hv[a]
    return change


@njit(cache=True)
def model_terms(us, fs, box, lo, hi, kff, Vx, Vxx, Qu, Quu):
    """(stationarity, dg, dq) of :func:`backward` recomputed from its stored results (after
    :func:`multiplier_step` changed k, Q_u and V_x)."""
    n, m, N = Vx.shape[1], us.shape[1], us.shape[0]
    stat, dg, dq = 0.0, 0.0, 0.0
    for k in range(N + 1):
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += Vxx[k, i, j] * fs[k, j]
            dq += fs[k, i] * s
            dg -= Vx[k, i] * fs[k, i]
        if k == N:
            break
        for c in range(m):
            qc = Qu[k, c]
            if box and ((us[k, c] <= lo[c] and qc > 0.0) or (us[k, c] >= hi[c] and qc < 0.0)):
                qc = 0.0
            stat = max(stat, abs(qc))
            dg -= Qu[k, c] * kff[k, c]
            s = 0.0
            for d in range(m):
                s += Quu[k, c, d] * kff[k, d]
            dq -= kff[k, c] * s
    return stat, dg, dq


@njit(cache=True)
def forward(xs, us, fs, Q, r, t0, h, alpha, K, kff, box, lo, hi, Vxx, xs_try, us_try):
    """The nonlinear rollout of FDDP with gaps (Mastalli et al. 2020, eq. 16) in one loop:
    x̂_0 = x_0 + α f_0, û_k = u_k + α k_k + K_k (x̂_k − x_k) (clamped into the box),
    x̂_{k+1} = F(x̂_k, û_k) − (1 − α) f_{k+1}. Returns (cost, dv, first non-finite stage or -1)
    where dv = Σ f_kᵀ V_xx,k (x̂_k − x_k) enters the expected improvement."""
    n, m, N = xs.shape[1], us.shape[1], us.shape[0]
    out = np.empty(n + 1)
    dx = np.empty(n)
    cost = 0.0
    dv = 0.0
    for i in range(n):
        xs_try[0, i] = xs[0, i] + alpha * fs[0, i]
    for k in range(N + 1):
        for i in range(n):
            dx[i] = xs_try[k, i] - xs[k, i]
        for i in range(n):
            s = 0.0
            for j in range(n):
                s += Vxx[k, i, j] * dx[j]
            dv += fs[k, i] * s
        if k == N:
            break
        for c in range(m):
            s = us[k, c] + alpha * kff[k, c]
            for j in range(n):
                s += K[k, c, j] * dx[j]
            if box:
                s = min(max(s, lo[c]), hi[c])
            us_try[k, c] = s
        st_forward_into_unchecked(xs_try[k], us_try[k], Q[k], t0 + k * h, h, out)
        for i in range(n + 1):
            if not math.isfinite(out[i]):
                return math.inf, dv, k
        cost += out[n]
        for i in range(n):
            xs_try[k + 1, i] = out[i] - (1.0 - alpha) * fs[k + 1, i]
    cost += tm_forward_unchecked(xs_try[N], r)
    if not math.isfinite(cost):
        return math.inf, dv, N
    return cost, dv, -1


@njit(cache=True)
def iterate(xs, us, fs, Q, r, t0, h, box, lo, hi, K, kff, Vx, Vxx, Qu, Quu, xs_try, us_try, alphas, state,
            max_steps, W, Gu, Kn, ev, Sm, hv, Ht, eq0):
    """Up to ``max_steps`` FDDP iterations (crocoddyl's SolverFDDP::solve logic): backward pass
    with the regularisation raised until it succeeds (tenfold, and at once past the failed stage's
    deficit and the level that cured the last failure), then a backtracking line search on the
    cost with FDDP's acceptance test, then the regularisation schedule. ``state`` holds
    [reg, reg_min, reg_max, reg_factor, cost, tol, feas_tol, (out) stationarity, feasibility,
    alpha, steps taken, backward failures, terminal-equality tol, (out) max |h(x_N)|, dual reg,
    its minimum, the regularisation that cured the last failed sweep (0: none yet), (out) the
    expected and the actual decrease of the last accepted step (crocoddyl's dV_exp and dV)]. With
    terminal equalities held exactly (W with n_e > 0 columns) each backward pass is followed by
    the multipliers' Newton step (:func:`multiplier_step`): the step is then the one of the
    equality-constrained LQ subproblem, and the line search runs on the augmented Lagrangian with
    the new multipliers, along which that step descends. Returns a code: CONVERGED when stationarity and
    feasibility are below their tolerances at the current iterate (nothing changed), STEPPED
    after max_steps steps, NO_STEP (no step accepted, regularisation raised), REG_MAX, NONFINITE."""
    n, N = xs.shape[1], us.shape[0]
    reg_min, reg_max, factor, tol, feas_tol = state[1], state[2], state[3], state[5], state[6]
    dn = np.zeros(W.shape[2])
    for _ in range(max_steps):
        feas = 0.0
        for k in range(N + 1):
            for i in range(n):
                feas = max(feas, abs(fs[k, i]))
        failed = False
        while True:
            bad, stat, dg, dq = backward(xs, us, fs, Q, r, t0, h, state[0], box, lo, hi, K, kff, Vx, Vxx, Qu,
                                         Quu, W, Gu, Kn, ev, Sm, hv, Ht)
            if bad < 0:
                break
            state[11] += 1
            if state[0] >= reg_max:
                state[7], state[8] = stat, feas
                return REG_MAX
            # raise it tenfold, and at once past both the level that cured the last failed sweep
            # and the failed stage's own deficit (Gershgorin's bound on Q_uu's lowest eigenvalue):
            # levels below those fail again, each a sweep of ~90 % of the stages
            low = math.inf
            for c in range(Quu.shape[1]):
                g = Quu[bad, c, c]
                for e in range(Quu.shape[1]):
                    if e != c:
                        g -= abs(Quu[bad, c, e])
                low = min(low, g)
            deficit = state[0] - low if math.isfinite(low) else 0.0
            state[0] = min(max(state[0] * factor, reg_min, state[16], deficit), reg_max)
            failed = True
        if failed:
            state[16] = state[0]
        hmax = 0.0
        ne = W.shape[2]
        if ne:
            change = multiplier_step(ev, Sm, hv, W, Gu, Kn, kff, Qu, Vx, r, eq0, state[14], dn)
            if math.isfinite(change):
                state[4] += change
                stat, dg, dq = model_terms(us, fs, box, lo, hi, kff, Vx, Vxx, Qu, Quu)
            else:
                change = 0.0
            for a in range(hv.shape[0]):
                hmax = max(hmax, abs(hv[a]))
        state[7], state[8], state[13] = stat, feas, hmax
        if stat <= tol and feas <= feas_tol and hmax <= state[12]:
            return CONVERGED
        cost = state[4]
        accepted = False
        alpha = 0.0
        for a in range(alphas.shape[0]):
            alpha = alphas[a]
            cost_try, dv, bad = forward(xs, us, fs, Q, r, t0, h, alpha, K, kff, box, lo, hi, Vxx, xs_try, us_try)
            if bad >= 0:
                continue
            d0 = dg + dv
            d1 = dq - 2.0 * dv
            expected = alpha * (d0 + 0.5 * alpha * d1)
            dV = cost - cost_try
            if expected >= 0.0:
                ok = d0 < 1e-12 or dV > 0.1 * expected
            else:  # a cost increase allowed while the gaps close (Mastalli et al., §IV-C)
                ok = d0 < 1e-12 or dV < 2.0 * expected
            if ok:
                accepted = True
                break
        if accepted:
            xs[:] = xs_try
            us[:] = us_try
            fs *= (1.0 - alpha)
            state[4] = cost_try
            state[9] = alpha
            state[10] += 1
            state[17], state[18] = expected, dV
            if ne and alpha < 1.0:  # the multipliers move by the step's fraction too: ν̄ + α δν
                _terminal_constraint(xs[N], r, hv, Ht)
                for a in range(ne):
                    r[eq0 + a] -= (1.0 - alpha) * dn[a]
                    state[4] -= (1.0 - alpha) * dn[a] * hv[a]
        elif ne:  # no step: back to the multipliers of the iterate
            for a in range(ne):
                r[eq0 + a] -= dn[a]
            state[4] -= change
        if not accepted or alpha <= 0.01:
            if state[0] >= reg_max:
                return REG_MAX
            state[0] = min(max(state[0] * factor, reg_min), reg_max)
            if not accepted:
                state[9] = 0.0
                return NO_STEP
        elif alpha > 0.5:
            state[0] = state[0] / factor if state[0] / factor >= reg_min else 0.0
        if accepted and alpha > 0.5:
            state[14] = max(state[14] / factor, state[15])
        elif state[14] < 1.0:
            state[14] = min(state[14] * factor, 1.0)
    return STEPPED


@njit(cache=True)
def shift(xs, us, K, kff, steps):
    """Warm start of a receding horizon: drop the first ``steps`` stages, repeat the last one."""
    N = us.shape[0]
    s = min(steps, N)
    for k in range(N - s):
        xs[k] = xs[k + s]
        us[k] = us[k + s]
        K[k] = K[k + s]
        kff[k] = kff[k + s]
    for k in range(N - s, N):
        xs[k] = xs[N]
        us[k] = us[N - 1]   # never overwritten above: s ≥ 1 there
        K[k] = K[N - 1]
        kff[k] = 0.0


# ---------------------------------------------------------------- stage derivatives, one per variant
# trajectories.ddp appends `_derivatives = _derivatives_<variant>`: only that one is compiled.


@njit(cache=True)
def _derivatives_gauss_newton(x, u, q, t, h, ct, d):
    """d := [Fᵀ, l, H] of the stage: the step Jacobian and the exact Hessian of the stage cost
    (the dynamics' curvature left out; see ``trajectories.ddp._derivative_functions``)."""
    dd_forward_into_unchecked(x, u, q, t, h, d)


@njit(cache=True)
def _derivatives_second_order(x, u, q, t, h, ct, d):
    """d := [Fᵀ, l, H] with H the Hessian of ctᵀ·stage, ct = [V_x', 1]: the cost's and the
    dynamics' curvature (the tensor term of DDP, Mayne 1966)."""
    dd_forward_into_unchecked(x, u, q, t, h, ct, d)


@njit(cache=True)
def _terminal_constraint_eq(x, r, hv, Ht):
    """hv := h(x), Ht := ∂h/∂x of the terminal equalities."""
    he_forward_into_unchecked(x, r, hv)
    Ht[:, :] = he_jacobian_unchecked(x, r)[0]


@njit(cache=True)
def _terminal_constraint_none(x, r, hv, Ht):
    pass


@njit(cache=True)
def first_control(xs, us, K, x, box, lo, hi, out):
    """out := u_0 + K_0 (x − x_0), clamped into the box: the plan's first control with its feedback."""
    n, m = xs.shape[1], us.shape[1]
    for c in range(m):
        s = us[0, c]
        for j in range(n):
            s += K[0, c, j] * (x[j] - xs[0, j])
        out[c] = min(max(s, lo[c]), hi[c]) if box else s
