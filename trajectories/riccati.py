"""The stage-wise linear algebra of the interior-point solver, compiled once (Numba, cached on
disk) for every problem: the Riccati recursion of a Newton step, the elimination of inequality
rows, and the adjoint recursion of the Lagrangian.

Small dense algebra (Cholesky, LU with partial pivoting, products) is written out here: nothing
calls BLAS, so the solver does not depend on the BLAS thread setting. The collocation loops and
the Newton step's terminal Schur complement use the same LU.

>>> import numpy as np
>>> H = np.zeros((2, 2, 2)); H[:, 0, 0] = H[:, 1, 1] = 1.0      # one stage, ns = m = 1
>>> G = np.zeros((2, 2, 1)); G[1, 0, 0] = -1.0    # min ½x0² + ½u² + ½x1² - x1, x1 = x0 + u, x0 = 0
>>> A, B, r = np.ones((1, 1, 1)), np.ones((1, 1, 1)), np.zeros((1, 1))
>>> dX, dU, Lam, K = np.empty((2, 1, 1)), np.empty((1, 1, 1)), np.empty((2, 1, 1)), np.empty((1, 1, 1))
>>> riccati(H, G, A, B, r, np.zeros(1, dtype=np.bool_), dX, dU, Lam, K), round(float(dU[0, 0, 0]), 12)
(-1, 0.5)
>>> round(float(K[0, 0, 0]), 12)        # du = -½ dx0: the feedback gain of the stage
-0.5
"""
import math

import numpy as np
from numba import njit


@njit(cache=True)
def costates(A, grad, GJ, GNJ, yp, yN, TJ, tw, ng, lam):
    """The adjoint recursion of the Lagrangian (single shooting: the states are eliminated, so
    the defect multipliers are these): λ_N = ∇(tw · term), λ_k = ∇_x ℓ_k + A_kᵀλ_{k+1} + G_xᵀy_k."""
    N, ns = A.shape[0], A.shape[1]
    for j in range(ns):
        v = 0.0
        for i in range(TJ.shape[0]):
            v += tw[i] * TJ[i, j]
        lam[N, j] = v
    for k in range(N - 1, -1, -1):
        for j in range(ns):
            v = grad[k, j]
            for i in range(ns):
                v += A[k, i, j] * lam[k + 1, i]
            for i in range(ng):
                v += GJ[k, i, j] * yp[k, i]
                if k == N - 1:
                    v += GNJ[i, j] * yN[i]
            lam[k, j] = v


@njit(cache=True, inline="always")
def _cholesky(M, L, n):
    """L Lᵀ = M (lower), on the leading n x n block; False if M is not positive definite."""
    for j in range(n):
        d = M[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:
            return False
        L[j, j] = math.sqrt(d)
        for i in range(j + 1, n):
            v = M[i, j]
            for k in range(j):
                v -= L[i, k] * L[j, k]
            L[i, j] = v / L[j, j]
        for i in range(j):
            L[i, j] = 0.0
    return True


@njit(cache=True, inline="always")
def _chol_solve(L, b, n, cols):
    """Solve (L Lᵀ) X = b in place for the first ``cols`` columns of b (n x cols)."""
    for c in range(cols):
        for i in range(n):
            v = b[i, c]
            for k in range(i):
                v -= L[i, k] * b[k, c]
            b[i, c] = v / L[i, i]
        for i in range(n - 1, -1, -1):
            v = b[i, c]
            for k in range(i + 1, n):
                v -= L[k, i] * b[k, c]
            b[i, c] = v / L[i, i]


@njit(cache=True)
def lu(M, piv, n):
    """In-place LU with partial pivoting of the leading n x n block; False if singular."""
    for j in range(n):
        p = j
        big = abs(M[j, j])
        for i in range(j + 1, n):
            if abs(M[i, j]) > big:
                big = abs(M[i, j])
                p = i
        piv[j] = p
        if not big > 0.0:
            return False
        if p != j:
            for c in range(n):
                t = M[j, c]
                M[j, c] = M[p, c]
                M[p, c] = t
        for i in range(j + 1, n):
            M[i, j] /= M[j, j]
            for c in range(j + 1, n):
                M[i, c] -= M[i, j] * M[j, c]
    return True


@njit(cache=True)
def lu_solve(M, piv, b, n, cols):
    """Solve (LU) X = P b in place for the first ``cols`` columns of b."""
    for c in range(cols):
        for j in range(n):
            p = piv[j]
            if p != j:
                t = b[j, c]
                b[j, c] = b[p, c]
                b[p, c] = t
        for i in range(n):
            v = b[i, c]
            for k in range(i):
                v -= M[i, k] * b[k, c]
            b[i, c] = v
        for i in range(n - 1, -1, -1):
            v = b[i, c]
            for k in range(i + 1, n):
                v -= M[i, k] * b[k, c]
            b[i, c] = v / M[i, i]


@njit(cache=True)
def lu_solve_t(M, piv, b, n):
    """Solve (P⁻¹ L U)ᵀ y = b in place (one column): Uᵀ z = b, Lᵀ w = z, y = Pᵀ w."""
    for i in range(n):
        v = b[i]
        for k in range(i):
            v -= M[k, i] * b[k]
        b[i] = v / M[i, i]
    for i in range(n - 1, -1, -1):
        v = b[i]
        for k in range(i + 1, n):
            v -= M[k, i] * b[k]
        b[i] = v
    for j in range(n - 1, -1, -1):
        p = piv[j]
        if p != j:
            t = b[j]
            b[j] = b[p]
            b[p] = t


@njit(cache=True)
def riccati(H, G, A, B, r, free0, dX, dU, Lam, K):
    """Solve the equality-constrained LQ subproblem of a Newton step by a Riccati recursion:

        min Σ_k ½ v_kᵀH_k v_k + G_kᵀv_k   s.t.  dx_{k+1} = A_k dx_k + B_k du_k + r_k,

    v_k = (dx_k, du_k), dx_0 zero except where ``free0`` (the free final time), for every column
    of G (several right-hand sides share one factorisation; r enters column 0 only). Writes the
    step dX, dU, the defect multipliers Lam (the value gradients P dx + p, i.e. the costates) and
    the feedback gains K (N, m, ns), du_k = k_k + K_k dx_k.
    Returns -1, or the stage whose reduced Hessian is not positive definite (inertia wrong: the
    caller regularises and tries again). O(N (n + m)³)."""
    N, ns, m = B.shape[0], B.shape[1], B.shape[2]
    R = G.shape[2]
    P = np.empty((N + 1, ns, ns))
    p = np.empty((N + 1, ns, R))
    kf = np.empty((N, m, R))
    for i in range(ns):
        for j in range(ns):
            P[N, i, j] = H[N, i, j]
        for c in range(R):
            p[N, i, c] = G[N, i, c]
    PA = np.empty((ns, ns))
    PB = np.empty((ns, m))
    Quu = np.empty((m, m))
    Lu = np.empty((m, m))
    Qux = np.empty((m, ns))
    pp = np.empty((ns, R))
    for k in range(N - 1, -1, -1):
        Pn = P[k + 1]
        for i in range(ns):
            for j in range(ns):
                v = 0.0
                for l in range(ns):
                    v += Pn[i, l] * A[k, l, j]
                PA[i, j] = v
            for j in range(m):
                v = 0.0
                for l in range(ns):
                    v += Pn[i, l] * B[k, l, j]
                PB[i, j] = v
            for c in range(R):
                v = p[k + 1, i, c]
                if c == 0:
                    for l in range(ns):
                        v += Pn[i, l] * r[k, l]
                pp[i, c] = v
        for i in range(m):
            for j in range(m):
                v = H[k, ns + i, ns + j]
                for l in range(ns):
                    v += B[k, l, i] * PB[l, j]
                Quu[i, j] = v
            for j in range(ns):
                v = H[k, ns + i, j]
                for l in range(ns):
                    v += B[k, l, i] * PA[l, j]
                Qux[i, j] = v
            for c in range(R):
                v = G[k, ns + i, c]
                for l in range(ns):
                    v += B[k, l, i] * pp[l, c]
                kf[k, i, c] = -v
        if not _cholesky(Quu, Lu, m):
            return k
        for j in range(ns):
            for i in range(m):
                K[k, i, j] = -Qux[i, j]
        _chol_solve(Lu, K[k], m, ns)
        _chol_solve(Lu, kf[k], m, R)
        for i in range(ns):
            for j in range(i + 1):
                v = H[k, i, j]
                for l in range(ns):
                    v += A[k, l, i] * PA[l, j]
                for l in range(m):
                    v += Qux[l, i] * K[k, l, j]
                P[k, i, j] = v
                P[k, j, i] = v
            for c in range(R):
                v = G[k, i, c]
                for l in range(ns):
                    v += A[k, l, i] * pp[l, c]
                for l in range(m):
                    v += Qux[l, i] * kf[k, l, c]
                p[k, i, c] = v
    # the first state: fixed components stay, free ones minimise the stage-0 value function
    nf = 0
    for i in range(ns):
        if free0[i]:
            nf += 1
    for i in range(ns):
        for c in range(R):
            dX[0, i, c] = 0.0
    if nf > 0:
        idx = np.empty(nf, dtype=np.int64)
        j = 0
        for i in range(ns):
            if free0[i]:
                idx[j] = i
                j += 1
        Pf = np.empty((nf, nf))
        Lf = np.empty((nf, nf))
        bf = np.empty((nf, R))
        for a in range(nf):
            for b in range(nf):
                Pf[a, b] = P[0, idx[a], idx[b]]
            for c in range(R):
                bf[a, c] = -p[0, idx[a], c]
        if not _cholesky(Pf, Lf, nf):
            return N
        _chol_solve(Lf, bf, nf, R)
        for a in range(nf):
            for c in range(R):
                dX[0, idx[a], c] = bf[a, c]
    for k in range(N):
        for c in range(R):
            for i in range(m):
                v = kf[k, i, c]
                for j in range(ns):
                    v += K[k, i, j] * dX[k, j, c]
                dU[k, i, c] = v
            for i in range(ns):
                v = r[k, i] if c == 0 else 0.0
                for j in range(ns):
                    v += A[k, i, j] * dX[k, j, c]
                for j in range(m):
                    v += B[k, i, j] * dU[k, j, c]
                dX[k + 1, i, c] = v
    for k in range(N + 1):
        for c in range(R):
            for i in range(ns):
                v = p[k, i, c]
                for j in range(ns):
                    v += P[k, i, j] * dX[k, j, c]
                Lam[k, i, c] = v
    return -1


@njit(cache=True)
def condense(H, G, J, sigma, rhs, k, nv):
    """Add Jᵀ diag(σ) J to H[k] and Jᵀ rhs to G[k, :, 0]: inequality rows eliminated from the
    primal-dual Newton system (their slack and multiplier steps follow from the primal step)."""
    rows = J.shape[0]
    for a in range(nv):
        v = 0.0
        for i in range(rows):
            v += J[i, a] * rhs[i]
        G[k, a, 0] += v
        for b in range(a + 1):
            w = 0.0
            for i in range(rows):
                w += J[i, a] * sigma[i] * J[i, b]
            H[k, a, b] += w
            if b != a:
                H[k, b, a] += w


@njit(cache=True)
def condense_all(H, G, GJ, sp, sN, rp, rN, GNJ, N, ns, nv, ng):
    """:func:`condense` for the path rows of every stage and the final-node rows."""
    for k in range(N):
        condense(H, G, GJ[k], sp[k], rp[k], k, nv)
    condense(H, G, GNJ, sN, rN, N - 1, nv)


@njit(cache=True)
def rows_times(GJ, dV, out):
    """out[k] = GJ[k] @ dV[k] for every stage (a constraint's linearised change)."""
    for k in range(GJ.shape[0]):
        for i in range(GJ.shape[1]):
            v = 0.0
            for j in range(GJ.shape[2]):
                v += GJ[k, i, j] * dV[k, j]
            out[k, i] = v


@njit(cache=True)
def lagrangian_gradient(A, B, grad, lam, TJ, tw, GJ, GNJ, yp, yN, ng, z_lo, z_hi, decision, lifted, out):
    """∇_v L per stage into ``out`` (N+1, nv), zero on non-decisions; returns max |∇L|.
    L = f + Σ λ_{k+1}ᵀ(F(v_k) - x_{k+1}) + νᵀh_eq + y_inᵀh_in + Σ y_kᵀg_k - z_loᵀ(v - lo) + z_hiᵀ(v - hi)."""
    N, ns, m = B.shape[0], B.shape[1], B.shape[2]
    nv = ns + m
    worst = 0.0
    for k in range(N + 1):
        for j in range(nv):
            v = grad[k, j] - z_lo[k, j] + z_hi[k, j]
            if k < N:
                if j < ns:
                    for i in range(ns):
                        v += A[k, i, j] * lam[k + 1, i]
                else:
                    for i in range(ns):
                        v += B[k, i, j - ns] * lam[k + 1, i]
                for i in range(ng):
                    v += GJ[k, i, j] * yp[k, i]
                    if k == N - 1:
                        v += GNJ[i, j] * yN[i]
            elif j < ns:
                for i in range(1, TJ.shape[0]):
                    v += tw[i] * TJ[i, j]
            if j < ns and k > 0:
                if lifted:
                    v -= lam[k, j]
                else:
                    v = 0.0  # eliminated states: the adjoint recursion makes these exact
            if not decision[k, j]:
                v = 0.0
            out[k, j] = v
            if abs(v) > worst:
                worst = abs(v)
    return worst
