"""The interior-point solver's per-iteration vector work, compiled once (Numba, cached on disk)
for every problem: the bound barrier terms of the Newton system, the KKT residual's scalars, the
filter's merit values, the fraction-to-the-boundary step limits, the dual reset and the
directional derivative of the barrier objective.

Each is a single pass over the stage variables ``V`` (N+1, nv) with their bounds ``lo``/``hi``
and masks ``has_lo``/``has_hi``, and over the inequality rows flattened into one vector ``g``
(path rows of every stage, the final node's, the terminal inequalities) with their slacks ``s``
and multipliers ``y``. The equations are IPOPT's (Wächter & Biegler 2006): the barrier terms
Σ = Z/(x - x_L) of their eq. 13, the fraction to the boundary of eq. 15, the reset of eq. 16.

>>> import numpy as np
>>> V = np.array([[0.5, 2.0]]); lo = np.array([[0.0, -np.inf]]); hi = np.full((1, 2), np.inf)
>>> has_lo, has_hi = np.isfinite(lo), np.isfinite(hi)
>>> s = np.array([1.0]); ds = np.array([-2.0])
>>> step_limits(V, np.array([[-1.0, 0.0]]), lo, hi, has_lo, has_hi, s, ds, np.ones((1, 2)),
...             np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), s, np.zeros(1), 0.99)
(0.495, 1.0)
"""
import numpy as np
from numba import njit

from .riccati import lagrangian_gradient

_jit = njit(cache=True, error_model="numpy")


@_jit
def bound_barrier(V, lo, hi, has_lo, has_hi, z_lo, z_hi, mu, H, G, dlo, dhi):
    """Add the bounds' primal-dual terms to the Newton system in place: Σ = z_L/(v - lo) +
    z_U/(hi - v) on H's diagonal, −μ/(v − lo) + μ/(hi − v) to the gradient column G[..., 0];
    the distances go to ``dlo``/``dhi`` (1 where there is no bound)."""
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            a = 1.0
            b = 1.0
            sig = 0.0
            gr = 0.0
            if has_lo[k, i]:
                a = V[k, i] - lo[k, i]
                sig += z_lo[k, i] / a
                gr -= mu / a
            if has_hi[k, i]:
                b = hi[k, i] - V[k, i]
                sig += z_hi[k, i] / b
                gr += mu / b
            dlo[k, i] = a
            dhi[k, i] = b
            H[k, i, i] += sig
            G[k, i, 0] += gr


@_jit
def bound_steps(dV, has_lo, has_hi, z_lo, z_hi, dlo, dhi, mu, dz_lo, dz_hi):
    """The bound multipliers' Newton steps (IPOPT eq. 11): Δz = μ/d − z ∓ (z/d) Δv."""
    for k in range(dV.shape[0]):
        for i in range(dV.shape[1]):
            dz_lo[k, i] = mu / dlo[k, i] - z_lo[k, i] - z_lo[k, i] / dlo[k, i] * dV[k, i] if has_lo[k, i] else 0.0
            dz_hi[k, i] = mu / dhi[k, i] - z_hi[k, i] + z_hi[k, i] / dhi[k, i] * dV[k, i] if has_hi[k, i] else 0.0


@_jit
def kkt_scalars(V, lo, hi, has_lo, has_hi, z_lo, z_hi, g, s, y, lam, nu):
    """(max |g + s|, max(0, max g), the smallest and largest complementarity product of slacks
    and bound distances with their multipliers, Σz + Σy, their count, Σ|λ| + Σ|ν|). The
    complementarity residual at μ is then max(p_max − μ, μ − p_min), exactly max |p − μ|."""
    slack_res = 0.0
    true_in = 0.0
    p_min = np.inf
    p_max = -np.inf
    total = 0.0
    count = 0
    for j in range(g.shape[0]):
        slack_res = max(slack_res, abs(g[j] + s[j]))
        true_in = max(true_in, g[j])
        p = s[j] * y[j]
        p_min = min(p_min, p)
        p_max = max(p_max, p)
        total += y[j]
        count += 1
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            total += z_lo[k, i] + z_hi[k, i]
            if has_lo[k, i]:
                p = (V[k, i] - lo[k, i]) * z_lo[k, i]
                p_min = min(p_min, p)
                p_max = max(p_max, p)
                count += 1
            if has_hi[k, i]:
                p = (hi[k, i] - V[k, i]) * z_hi[k, i]
                p_min = min(p_min, p)
                p_max = max(p_max, p)
                count += 1
    lam_total = 0.0
    for k in range(lam.shape[0]):
        for i in range(lam.shape[1]):
            lam_total += abs(lam[k, i])
    for j in range(nu.shape[0]):
        lam_total += abs(nu[j])
    return slack_res, true_in, p_min, p_max, total, count, lam_total


@_jit
def kkt_parts(A, B, grad, lam, TJ, nu, y_in, GJ, GNJ, yp, yN, ng, z_lo, z_hi, decision, lifted, V, lo, hi, has_lo,
              has_hi, g, s, y, defects, equality, gl):
    """The KKT residual's parts in one pass: (max |∇L|, primal infeasibility, worst true violation,
    IPOPT's scalings s_d and s_c of the dual residual and of complementarity (their eq. 5, with
    s_max = 100), the smallest and largest complementarity product, their count); ∇L into ``gl``."""
    tw = np.zeros(1 + nu.shape[0] + y_in.shape[0])
    tw[1:1 + nu.shape[0]] = nu
    tw[1 + nu.shape[0]:] = y_in
    stat = lagrangian_gradient(A, B, grad, lam, TJ, tw, GJ, GNJ, yp, yN, ng, z_lo, z_hi, decision, lifted, gl)
    worst = 0.0
    if lifted:
        for k in range(defects.shape[0]):
            for i in range(defects.shape[1]):
                worst = max(worst, abs(defects[k, i]))
    for j in range(equality.shape[0]):
        worst = max(worst, abs(equality[j]))
    slack_res, true_in, p_min, p_max, z_total, n_z, lam_total = kkt_scalars(V, lo, hi, has_lo, has_hi, z_lo, z_hi,
                                                                            g, s, y, lam, nu)
    s_max = 100.0
    n_mult = lam.size + nu.size + n_z
    s_d = max(s_max, (lam_total + z_total) / max(n_mult, 1)) / s_max
    s_c = max(s_max, z_total / max(n_z, 1)) / s_max
    return stat, max(worst, slack_res), max(worst, true_in), s_d, s_c, p_min, p_max, n_z


@_jit
def merit(V, lo, hi, has_lo, has_hi, g, s, equality, defects, lifted):
    """(Σ log of every bound distance and slack, the ℓ1 infeasibility θ): the barrier objective is
    the cost − μ times the first (IPOPT eq. 3a)."""
    logs = 0.0
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            if has_lo[k, i]:
                logs += np.log(V[k, i] - lo[k, i])
            if has_hi[k, i]:
                logs += np.log(hi[k, i] - V[k, i])
    theta = 0.0
    for j in range(g.shape[0]):
        logs += np.log(s[j])
        theta += abs(g[j] + s[j])
    for j in range(equality.shape[0]):
        theta += abs(equality[j])
    if lifted:
        for k in range(defects.shape[0]):
            for i in range(defects.shape[1]):
                theta += abs(defects[k, i])
    return logs, theta


@_jit
def _limit(a, value, delta, tau):
    if delta < 0.0:
        return min(a, -tau * value / delta)
    return a


@_jit
def step_limits(V, dV, lo, hi, has_lo, has_hi, s, ds, z_lo, dz_lo, z_hi, dz_hi, y, dy, tau):
    """The largest primal and dual steps ≤ 1 that keep bound distances, slacks and multipliers
    above (1 − τ) of their values (IPOPT eq. 15)."""
    a_p = 1.0
    a_d = 1.0
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            if has_lo[k, i]:
                a_p = _limit(a_p, V[k, i] - lo[k, i], dV[k, i], tau)
                a_d = _limit(a_d, z_lo[k, i], dz_lo[k, i], tau)
            if has_hi[k, i]:
                a_p = _limit(a_p, hi[k, i] - V[k, i], -dV[k, i], tau)
                a_d = _limit(a_d, z_hi[k, i], dz_hi[k, i], tau)
    for j in range(s.shape[0]):
        a_p = _limit(a_p, s[j], ds[j], tau)
        a_d = _limit(a_d, y[j], dy[j], tau)
    return a_p, a_d


@_jit
def reset_duals(V, lo, hi, has_lo, has_hi, z_lo, z_hi, s, y, mu, kappa):
    """Keep every multiplier within a factor κ_Σ of μ over its distance (IPOPT eq. 16), in place."""
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            if has_lo[k, i]:
                d = V[k, i] - lo[k, i]
                z_lo[k, i] = min(max(z_lo[k, i], mu / (kappa * d)), kappa * mu / d)
            if has_hi[k, i]:
                d = hi[k, i] - V[k, i]
                z_hi[k, i] = min(max(z_hi[k, i], mu / (kappa * d)), kappa * mu / d)
    for j in range(s.shape[0]):
        y[j] = min(max(y[j], mu / (kappa * s[j])), kappa * mu / s[j])


@_jit
def barrier_directional(V, dV, grad, lo, hi, has_lo, has_hi, s, ds, mu):
    """The barrier objective's directional derivative along the step: ∇fᵀΔv − μ Σ Δv/(v − lo)
    + μ Σ Δv/(hi − v) − μ Σ Δs/s."""
    val = 0.0
    for k in range(V.shape[0]):
        for i in range(V.shape[1]):
            val += grad[k, i] * dV[k, i]
            if has_lo[k, i]:
                val -= mu * dV[k, i] / (V[k, i] - lo[k, i])
            if has_hi[k, i]:
                val += mu * dV[k, i] / (hi[k, i] - V[k, i])
    for j in range(s.shape[0]):
        val -= mu * ds[j] / s[j]
    return val


@_jit
def curvature(dV, H):
    """Σ_k Δv_kᵀ H_k Δv_k, the quadratic model's curvature along the step."""
    val = 0.0
    for k in range(dV.shape[0]):
        for i in range(dV.shape[1]):
            row = 0.0
            for j in range(dV.shape[1]):
                row += H[k, i, j] * dV[k, j]
            val += dV[k, i] * row
    return val
