"""The interior-point solver's Newton step in two compiled calls per iteration (Numba, cached on
disk, compiled once for every problem): :func:`assemble` builds the condensed system, and
:func:`newton_step` regularises it, solves it by the Riccati recursion and recovers every step
(states, controls, costates, terminal multipliers, slacks, inequality and bound multipliers).

On small problems a solve is bound by the Python between the compiled loops; here the dozens
of small numpy operations of a step become one call each. The equations are IPOPT's (Wächter &
Biegler 2006): the bound terms Σ = Z/(x − x_L) of their eq. 13, the bound multipliers' steps of
eq. 11, the inequality rows g + s = 0 eliminated per stage with σ = y/s and right-hand side
μ/s + σ(g + s).

The inequality rows are one flat vector in :class:`~trajectories.interior_point.Iterate`'s
layout: the path rows of every stage (N·ng), the final node's (ng), the terminal inequalities.

>>> import numpy as np
>>> H = np.zeros((2, 2, 2)); H[:, 0, 0] = H[:, 1, 1] = 1.0     # one stage, ns = m = 1, no bounds
>>> grad = np.zeros((2, 2)); grad[1, 0] = -1.0                 # min ½x0² + ½u² + ½x1² − x1
>>> V, no = np.zeros((2, 2)), np.zeros((2, 2), dtype=np.bool_)
>>> e, e3, TJ = np.zeros(0), np.zeros((1, 0, 2)), np.zeros((1, 1))
>>> Hn, G, dlo, dhi, scale = assemble(H, grad, V, V, V, no, no, V, V, 0.1, e3, np.zeros((0, 2)), 0, e, e, TJ, 0)
>>> out = newton_step(Hn, G, np.ones((1, 1, 1)), np.ones((1, 1, 1)), np.zeros((1, 1)), np.zeros(1, dtype=np.bool_),
...                   no, 0.0, np.zeros((0, 1)), 0.0, e, no, no, V, V, dlo, dhi, 0.1, e3, np.zeros((0, 2)), 0, TJ,
...                   e, e, e, e, e)
>>> out[0], round(float(out[2][0, 0]), 12)                   # x1 = x0 + u: u = ½
(True, 0.5)
"""
import numpy as np
from numba import njit

from .ip_vectors import bound_barrier, bound_steps, curvature
from .riccati import condense, lu, lu_solve, riccati


@njit(cache=True)
def assemble(H, grad, V, lo, hi, has_lo, has_hi, z_lo, z_hi, mu, GJ, GNJ, ng, sigma, rhs, TJ, n_eq):
    """The condensed Newton system before regularisation: (Hn, G, dlo, dhi, diag_scale).

    Hn is the Lagrangian's Hessian H (N+1, nv, nv) plus the bound terms and Jᵀ diag(σ) J of the
    inequality rows (``ng`` path rows per stage: GJ may hold a placeholder row when there are
    none); G (N+1, nv, 1 + n_eq) holds the right-hand side in column 0 and, at the final node,
    the terminal equalities' Jacobian Cᵀ in the others; dlo/dhi are the bound
    distances (1 where there is none); diag_scale = max(1, max |diag Hn_N,xx|) scales the
    terminal penalty ρCᵀC. ``sigma``/``rhs`` are σ and μ/s + σ(g + s) in the flat layout."""
    N1, nv = V.shape
    N, ns = N1 - 1, TJ.shape[1]
    Hn = H.copy()
    G = np.zeros((N1, nv, 1 + n_eq))
    for k in range(N1):
        for j in range(nv):
            G[k, j, 0] = grad[k, j]
    dlo, dhi = np.empty((N1, nv)), np.empty((N1, nv))
    bound_barrier(V, lo, hi, has_lo, has_hi, z_lo, z_hi, mu, Hn, G, dlo, dhi)
    for i in range(ns, nv):  # the final stage has no control
        for j in range(ns, nv):
            Hn[N, i, j] = 1.0 if i == j else 0.0
        G[N, i, :] = 0.0
    if ng:
        for k in range(N):
            condense(Hn, G, GJ[k], sigma[k * ng:(k + 1) * ng], rhs[k * ng:(k + 1) * ng], k, nv)
        condense(Hn, G, GNJ, sigma[N * ng:(N + 1) * ng], rhs[N * ng:(N + 1) * ng], N - 1, nv)
    n_in = TJ.shape[0] - 1 - n_eq
    if n_in:
        J = np.zeros((n_in, nv))
        J[:, :ns] = TJ[1 + n_eq:]
        first = (N + 1) * ng
        condense(Hn, G, J, sigma[first:first + n_in], rhs[first:first + n_in], N, nv)
    for i in range(n_eq):
        for j in range(ns):
            G[N, j, 1 + i] = TJ[1 + i, j]
    scale = 1.0
    for j in range(ns):
        scale = max(scale, abs(Hn[N, j, j]))
    return Hn, G, dlo, dhi, scale


@njit(cache=True)
def newton_step(Hs, G, A, B, r, free0, decision, delta, C, rho, equality, has_lo, has_hi, z_lo, z_hi, dlo, dhi, mu,
                GJ, GNJ, ng, TJ, g, s, y, sigma, rhs):
    """Regularise the assembled system (δ on the decisions' diagonal, ρCᵀC on the final node's
    states: it leaves the step unchanged, since C dx_N = −h holds, and convexifies what the
    terminal equalities control), factor it by the Riccati recursion and recover the step:
    (ok, dX, dU, λ, ν, dV, ds, dy, dz_lo, dz_hi, curvature, K), K the Riccati feedback gains;
    ok is False when the inertia is wrong or the terminal equalities' Schur complement is singular."""
    N1, nv = Hs.shape[0], Hs.shape[1]
    N, ns, m, n_eq = N1 - 1, A.shape[1], B.shape[2], C.shape[0]
    R = 1 + n_eq
    Hn = Hs.copy()
    if delta != 0.0:
        for k in range(N1):
            for i in range(nv):
                if decision[k, i]:
                    Hn[k, i, i] += delta
    if n_eq:
        for i in range(ns):
            for j in range(ns):
                v = 0.0
                for e in range(n_eq):
                    v += C[e, i] * C[e, j]
                Hn[N, i, j] += rho * v
    dX3, dU3, Lam3, K = np.empty((N1, ns, R)), np.empty((N, m, R)), np.empty((N1, ns, R)), np.empty((N, m, ns))
    ok = riccati(Hn, G, A, B, r, free0, dX3, dU3, Lam3, K) < 0
    # the terminal multipliers' correction: C (dX_N,0 + dX_N,1: ν) = −h (a small Schur complement)
    S, b = np.empty((n_eq, n_eq)), np.empty(n_eq)
    for e in range(n_eq):
        v = equality[e]
        for j in range(ns):
            v += C[e, j] * dX3[N, j, 0]
        b[e] = -v
        for f in range(n_eq):
            v = 0.0
            for j in range(ns):
                v += C[e, j] * dX3[N, j, 1 + f]
            S[e, f] = v
    nu_p = np.zeros(n_eq)
    if ok and n_eq:
        piv = np.empty(n_eq, dtype=np.int64)
        col = b.reshape((n_eq, 1))
        ok = lu(S, piv, n_eq)
        if ok:
            lu_solve(S, piv, col, n_eq, 1)
            nu_p = col[:, 0].copy()
            ok = np.all(np.isfinite(nu_p))
    w = np.ones(R)
    w[1:] = nu_p
    dX, dU, lam, dV = np.empty((N1, ns)), np.empty((N, m)), np.empty((N1, ns)), np.zeros((N1, nv))
    for k in range(N1):
        for i in range(ns):
            a, c = 0.0, 0.0
            for q in range(R):
                a += dX3[k, i, q] * w[q]
                c += Lam3[k, i, q] * w[q]
            dX[k, i], lam[k, i], dV[k, i] = a, c, a
        if k < N:
            for i in range(m):
                a = 0.0
                for q in range(R):
                    a += dU3[k, i, q] * w[q]
                dU[k, i], dV[k, ns + i] = a, a
    nu = nu_p - rho * equality if n_eq else nu_p
    # the inequality rows' linearised change, then their slack and multiplier steps
    dg = np.empty(g.shape[0])
    for i in range(ng):
        for k in range(N):
            v = 0.0
            for j in range(nv):
                v += GJ[k, i, j] * dV[k, j]
            dg[k * ng + i] = v
        v = 0.0
        for j in range(nv):
            v += GNJ[i, j] * dV[N - 1, j]
        dg[N * ng + i] = v
    first = (N + 1) * ng
    for i in range(g.shape[0] - first):
        v = 0.0
        for j in range(ns):
            v += TJ[1 + n_eq + i, j] * dV[N, j]
        dg[first + i] = v
    ds = -(g + s) - dg
    dy = rhs + sigma * dg - y
    dz_lo, dz_hi = np.empty((N1, nv)), np.empty((N1, nv))
    bound_steps(dV, has_lo, has_hi, z_lo, z_hi, dlo, dhi, mu, dz_lo, dz_hi)
    curv = curvature(dV, Hn)
    for e in range(n_eq):
        v = 0.0
        for j in range(ns):
            v += C[e, j] * dV[N, j]
        curv -= rho * v * v
    return ok, dX, dU, lam, nu, dV, ds, dy, dz_lo, dz_hi, curv, K
