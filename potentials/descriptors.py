"""Atom-centred symmetry functions (Behler-Parrinello, in the ANI form of Smith et al. 2017):
Numba kernels registered as engine primitives, so forces and force training compose with the
networks on top.

For atom i, with f_c(r) = ½ cos(π r / R_c) + ½ and neighbour species resolved:

    radial   G_{s,k}    = Σ_{j ∈ s}  exp(−η_r (r_ij − R_k)²) f_c(r_ij)
    angular  G_{st,m,n} = 2^{1−ζ} Σ_{j<k ∈ (s,t)} (1 + cos(θ_ijk − θ_m))^ζ
                                    exp(−η_a ((r_ij + r_ik)/2 − R_n)²) f_c(r_ij) f_c(r_ik)

with θ_ijk = arccos(0.95 cos θ) as in ANI (smooth at 0 and π). The descriptor is a function of
the pair vectors D_p = r_j − r_i + S·cell, so forces (through positions) and stress (through a
strain of positions and cell) follow by the chain rule in the engine. Three primitives:
``acsf(D)``, its VJP ``acsf_vjp(g, D)`` (linear in g) and JVP ``acsf_jvp(D, t)`` (linear in t),
whose rules point at each other: force-matching training differentiates ∂E/∂D with respect to
the network, i.e. ``acsf_vjp`` with respect to g, which is ``acsf_jvp``. The pair vectors come
from the engine's ``diffsim.graph.pair_differences`` (one gather; its adjoint one scatter-add).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.graph import pair_differences
from diffsim.kernel_cache import heal

from .neighbors import check_inner_range, neighbor_list, shift_vectors

ANGLE_SCALE = 0.95
_BATCH = 64  # triplets whose angular factors the kernels compute together


def atomic_numbers_of(elements) -> np.ndarray:
    """Atomic numbers of chemical symbols or numbers; raises, naming it, for an unknown symbol.

    >>> atomic_numbers_of(["Cu", 79]).tolist()
    [29, 79]
    """
    from ase.data import atomic_numbers

    try:
        return np.array([atomic_numbers[e] if isinstance(e, str) else int(e) for e in elements])
    except KeyError as exc:
        raise ValueError(f"unknown element {exc.args[0]!r}: use chemical symbols such as 'Cu'") from None


def species_index(numbers, known) -> np.ndarray:
    """Index of each atomic number in ``known``; raises, naming them, for elements not in it.

    >>> species_index([29, 79, 29], [79, 29]).tolist()
    [1, 0, 1]
    """
    numbers = np.asarray(numbers)
    index = np.full(numbers.shape, -1)
    for k, z in enumerate(known):
        index[numbers == z] = k
    if np.any(index < 0):
        from ase.data import chemical_symbols

        missing = sorted({chemical_symbols[z] for z in numbers[index < 0]})
        raise ValueError(f"element(s) {missing} not covered by this model (it knows "
                         f"{[chemical_symbols[z] for z in known]}); train a model that includes them")
    return index


@dataclass(frozen=True)
class ACSFParameters:
    """Shapes and widths of the symmetry functions (defaults: a small ANI-like set)."""

    rc_radial: float = 5.0
    eta_radial: float = 16.0
    shifts_radial: tuple = tuple(np.linspace(0.9, 4.8, 8))
    rc_angular: float = 3.8
    eta_angular: float = 8.0
    zeta: float = 8.0
    angles: tuple = tuple(np.linspace(np.pi / 8, 7 * np.pi / 8, 4))
    shifts_angular: tuple = tuple(np.linspace(0.9, 3.4, 4))
    inner: float = 0.75  # closer pairs are outside anything the features describe: an error


class Descriptor:
    """ACSF features for atoms of the given ``elements`` (atomic numbers or symbols).

    >>> import numpy as np
    >>> d = Descriptor(["Cu"])
    >>> G = d(np.array([[0.0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]]), np.zeros((3, 3)), [False] * 3, np.array([29] * 3))
    >>> G.shape == (3, d.n_features)
    True
    """

    def __init__(self, elements, params: ACSFParameters | None = None) -> None:
        self.numbers = atomic_numbers_of(elements)
        self.params = params or ACSFParameters()
        p = self.params
        self.n_species = len(self.numbers)
        self.n_radial = self.n_species * len(p.shifts_radial)
        self.n_pairs = self.n_species * (self.n_species + 1) // 2
        self.n_angular = self.n_pairs * len(p.angles) * len(p.shifts_angular)
        self.n_features = self.n_radial + self.n_angular
        self.cutoff = max(p.rc_radial, p.rc_angular)
        self._packed = (float(p.rc_radial), float(p.eta_radial), np.array(p.shifts_radial, dtype=float),
                        float(p.rc_angular), float(p.eta_angular), float(p.zeta), np.array(p.angles, dtype=float),
                        np.array(p.shifts_angular, dtype=float))

    def species_index(self, numbers) -> np.ndarray:
        """Index of each atom's element in ``self.numbers``; raises for an element not covered."""
        return species_index(numbers, self.numbers)

    def topology(self, positions, cell, pbc, numbers, pairs=None):
        """The static part: pairs (i, j, S) within the cutoff and the angular triplets."""
        i, j, S, d = pairs if pairs is not None else neighbor_list(positions, cell, pbc, self.cutoff)
        check_inner_range(i, j, d, self.params.inner)
        species = self.species_index(numbers)
        triplets = _triplets(i, d, self.params.rc_angular, len(positions))
        return dict(centers=i.astype(np.int64), neighbor_species=species[j].astype(np.int64), neighbors=j,
                    shifts=S, triplets=triplets, n_atoms=len(positions))

    def __call__(self, positions, cell, pbc, numbers, topology=None):
        """Features (N, n_features); differentiable in ``positions`` and ``cell``."""
        top = topology or self.topology(dnp.stop_gradient(positions), dnp.stop_gradient(cell), pbc, numbers)
        D = pair_differences(positions, centers=top["centers"], neighbors=top["neighbors"]) \
            + shift_vectors(top["shifts"], cell)
        return acsf(D, **self.static(top))

    def static(self, top) -> dict:
        """The keyword parameters of the primitives for one structure."""
        return dict(centers=top["centers"], species=top["neighbor_species"], triplets=top["triplets"],
                    n_atoms=top["n_atoms"], n_species=self.n_species, packed=self._packed)


def _triplets(centers, dist, rc_angular, n_atoms) -> np.ndarray:
    """Pairs (p, q), p < q, of pair indices sharing a centre, both within the angular cutoff."""
    return _triplet_list(np.ascontiguousarray(centers, dtype=np.int64), np.ascontiguousarray(dist, dtype=float),
                         float(rc_angular), int(n_atoms))


@njit(cache=True)
def _triplet_list(centers, dist, rc, n_atoms):
    """Counting sort of the pairs within ``rc`` by centre (stable: pair order kept within a centre),
    then every (p, q) with p before q in the same centre's group."""
    start = np.zeros(n_atoms + 1, dtype=np.int64)
    for p in range(centers.shape[0]):
        if dist[p] < rc:
            start[centers[p] + 1] += 1
    n_tri = 0
    for a in range(n_atoms):
        n_tri += start[a + 1] * (start[a + 1] - 1) // 2
        start[a + 1] += start[a]
    order = np.empty(start[n_atoms], dtype=np.int64)
    fill = start[:-1].copy()
    for p in range(centers.shape[0]):
        if dist[p] < rc:
            order[fill[centers[p]]] = p
            fill[centers[p]] += 1
    out = np.empty((n_tri, 2), dtype=np.int64)
    t = 0
    for a in range(n_atoms):
        for x in range(start[a], start[a + 1]):
            for y in range(x + 1, start[a + 1]):
                out[t, 0] = order[x]
                out[t, 1] = order[y]
                t += 1
    return out


# ---------------------------------------------------------------- kernels
#
# Per pair p, r, the unit vector u = D/r and the cutoff (value, slope) at both radii are computed
# once. The angular term of a triplet factorises, A_m(cos θ) E_n(r̄) f_c(r1) f_c(r2), so a triplet
# costs n_angles powers and n_shifts exponentials, not their product of each; the VJP contracts g
# with those factors first and carries three scalars (∂/∂cos θ, ∂/∂r1, ∂/∂r2) to the pair vectors,
# and the JVP pushes the same three scalars forward. Factors are computed for a batch of _BATCH
# pairs or triplets at a time, with loops across the batch, which the compiler vectorises.


@njit(cache=True, inline="always")
def _cutoff(r, rc):
    """f_c(r) = ½ cos(π r/R_c) + ½ = cos²(y) and f_c'(r) = −(π/R_c) sin(y) cos(y), y = π r/(2 R_c):
    one cosine; sin(y) = √(1 − cos²y) is well conditioned on [0, π/2) away from r = 0."""
    if r >= rc:
        return 0.0, 0.0
    c = np.cos(0.5 * np.pi * r / rc)
    return c * c, -np.pi / rc * np.sqrt(1.0 - c * c) * c


@njit(cache=True, inline="always")
def _pair_index(s, t, n_species):
    if s > t:
        s, t = t, s
    return s * n_species - s * (s - 1) // 2 + (t - s)


@njit(cache=True, inline="always")
def _powers(x, y, n, out):
    """out[m] = x[m] ** y; by repeated squaring, all m at once, when y is the whole number n (n < 0:
    it is not). Overwrites x."""
    if n < 0:
        for m in range(x.shape[0]):
            out[m] = x[m] ** y
        return
    out[:] = 1.0
    while n:
        if n & 1:
            for m in range(x.shape[0]):
                out[m] *= x[m]
        n >>= 1
        if n:
            for m in range(x.shape[0]):
                x[m] *= x[m]


@njit(cache=True, inline="always")
def _gaussian_steps(eta, shifts):
    """(Δ, q) for evenly spaced shifts R_k = R_0 + kΔ, q_k = exp(−η(2k+1)Δ²), so that
    exp(−η(x − R_{k+1})²) = exp(−η(x − R_k)²) exp(2ηΔ(x − R_0)) q_k; Δ = 0 when the shifts are
    not evenly spaced or a factor could underflow."""
    n = shifts.shape[0]
    q = np.empty(n)
    step = shifts[1] - shifts[0] if n > 1 else 0.0
    for k in range(n - 1):
        if abs(shifts[k + 1] - shifts[k] - step) > 1e-14 * max(abs(shifts[k]), abs(shifts[k + 1])):
            step = 0.0
    if step <= 0.0 or eta * (2 * n - 1) * step * step > 600.0:
        return 0.0, q
    for k in range(n):
        q[k] = np.exp(-eta * (2 * k + 1) * step * step)
    return step, q


@njit(cache=True, inline="always")
def _gaussians(r, nb, eta, shifts, step, q, out, work):
    """out[k, b] = exp(−η (r[b] − R_k)²) for b < nb: per point two exponentials, then the product
    recurrence across the batch (it vectorises) when the shifts are evenly spaced (step > 0, see
    _gaussian_steps); one exponential each for a point where a factor could overflow, or for all
    when the shifts are uneven."""
    n = shifts.shape[0]
    if n == 0:
        return
    if step > 0.0:
        e, w = work[0, :nb], work[1, :nb]
        for b in range(nb):
            x = r[b] - shifts[0]
            e[b] = np.exp(-eta * x * x)
            w[b] = np.exp(2.0 * eta * step * x)
        for k in range(n):
            for b in range(nb):
                out[k, b] = e[b]
                e[b] *= w[b] * q[k]
    for b in range(nb):
        x = r[b] - shifts[0]
        if step <= 0.0 or not (eta * x * x < 600.0 and abs(2.0 * eta * step * x) < 600.0):
            for k in range(n):
                x = r[b] - shifts[k]
                out[k, b] = np.exp(-eta * x * x)


@njit(cache=True, error_model="numpy")
def _pair_geometry(D, rc_r, rc_a):
    """r (M,), unit vectors u (M, 3), and per pair f_c, f_c' at the radial then the angular cutoff (M, 4)."""
    M = D.shape[0]
    r = np.empty(M)
    u = np.empty((M, 3))
    cut = np.empty((M, 4))
    for p in range(M):
        rp = np.sqrt(D[p, 0] ** 2 + D[p, 1] ** 2 + D[p, 2] ** 2)
        r[p] = rp
        for c in range(3):
            u[p, c] = D[p, c] / rp
        cut[p, 0], cut[p, 1] = _cutoff(rp, rc_r)
        cut[p, 2], cut[p, 3] = _cutoff(rp, rc_a)
    return r, u, cut


@njit(cache=True, inline="always")
def _angular_constants(zeta, angles):
    """(ζ − 1 if ζ is a whole number up to 1024 else −1, 2^{1−ζ}, cos θ_m, sin θ_m)."""
    nz = int(zeta) - 1 if zeta == np.floor(zeta) and 1.0 <= zeta <= 1024.0 else -1
    return nz, 2.0 ** (1.0 - zeta), np.cos(angles), np.sin(angles)


@njit(cache=True, inline="always")
def _angular_factors(cos_t, nb, zeta, nz, pref, cos_m, sin_m, A, dA, work, slopes):
    """For the first nb triplets t of a batch: A[m, t] = 2^{1−ζ} (1 + cos(θ − θ_m))^ζ with
    θ = arccos(0.95 cos_t[t]), and, if ``slopes``, dA[m, t] = ∂A/∂cos_t (the features alone do not
    need them); cos(θ − θ_m) and sin(θ − θ_m) by the addition formulas. Loops run over t, so that
    the compiler vectorises them across triplets."""
    c, s, dtheta, base, power = work[0, :nb], work[1, :nb], work[2, :nb], work[3, :nb], work[4, :nb]
    for t in range(nb):
        c[t] = ANGLE_SCALE * cos_t[t]  # cos θ
        s[t] = np.sqrt(1.0 - c[t] * c[t])  # sin θ, θ in (0, π)
    if slopes:
        for t in range(nb):
            dtheta[t] = -ANGLE_SCALE / s[t]  # dθ/dcos_t
    for m in range(cos_m.shape[0]):
        cm, sm = cos_m[m], sin_m[m]
        for t in range(nb):
            base[t] = 1.0 + c[t] * cm + s[t] * sm
            A[m, t] = base[t]
        if slopes:
            for t in range(nb):
                dA[m, t] = s[t] * cm - c[t] * sm
        _powers(base, zeta - 1.0, nz, power)
        for t in range(nb):
            A[m, t] *= pref * power[t]
        if slopes:
            for t in range(nb):
                dA[m, t] *= -zeta * pref * power[t] * dtheta[t]


@njit(cache=True, error_model="numpy")  # numpy errors: no zero-division checks to block vectorising
def _acsf(D, gin, tin, mode, centers, species, triplets, n_atoms, n_species, rc_r, eta_r, shifts_r, rc_a, eta_a,
          zeta, angles, shifts_a):
    """mode 0: features G; mode 1: VJP, returns dG/dD ᵀ gin (M, 3); mode 2: JVP, (dG/dD) tin (N, F)."""
    n_rs, n_th, n_ra = shifts_r.shape[0], angles.shape[0], shifts_a.shape[0]
    n_radial = n_species * n_rs
    n_feat = n_radial + n_species * (n_species + 1) // 2 * n_th * n_ra
    G = np.zeros((n_atoms if mode != 1 else 0, n_feat))
    gD = np.zeros((D.shape[0] if mode == 1 else 0, 3))
    r, u, cut = _pair_geometry(D, rc_r, rc_a)
    step_r, q_r = _gaussian_steps(eta_r, shifts_r)
    Er, xb, work = np.empty((n_rs, _BATCH)), np.empty(_BATCH), np.empty((5, _BATCH))
    for p in range(D.shape[0]):
        b = p % _BATCH
        if b == 0:
            nb = min(_BATCH, D.shape[0] - p)
            _gaussians(r[p:p + nb], nb, eta_r, shifts_r, step_r, q_r, Er, work)
        if r[p] >= rc_r:
            continue
        a, base = centers[p], species[p] * n_rs
        if mode == 0:
            for k in range(n_rs):
                G[a, base + k] += Er[k, b] * cut[p, 0]
            continue
        # d/dr of each feature is Er[k, b] (f_c' − 2η (r − R_k) f_c); dr/dD_p = u_p
        if mode == 1:
            # Σ_k g_k E_k (f_c' − 2η (r − R_k) f_c) = f_c' Σ_k g_k E_k − 2η f_c Σ_k g_k E_k (r − R_k)
            h = h_r = 0.0
            for k in range(n_rs):
                gk = gin[a, base + k] * Er[k, b]
                h += gk
                h_r += gk * (r[p] - shifts_r[k])
            gr = cut[p, 1] * h - 2.0 * eta_r * cut[p, 0] * h_r
            for c in range(3):
                gD[p, c] += gr * u[p, c]
        else:
            dr = u[p, 0] * tin[p, 0] + u[p, 1] * tin[p, 1] + u[p, 2] * tin[p, 2]
            d1, d0 = cut[p, 1] * dr, -2.0 * eta_r * cut[p, 0] * dr
            for k in range(n_rs):
                G[a, base + k] += Er[k, b] * (d1 + d0 * (r[p] - shifts_r[k]))
    step_a, q_a = _gaussian_steps(eta_a, shifts_a)
    nz, pref, cos_m, sin_m = _angular_constants(zeta, angles)
    A, dA, E = np.empty((n_th, _BATCH)), np.empty((n_th, _BATCH)), np.empty((n_ra, _BATCH))
    cos_b = np.empty(_BATCH)
    for t in range(triplets.shape[0]):
        # G_{a, base + m n_ra + n} += A_m(cos θ) E_n(r̄) F,  F = f_c(r1) f_c(r2); the factors of a
        # batch of triplets first, then each triplet's own terms
        b = t % _BATCH
        if b == 0:
            nb = min(_BATCH, triplets.shape[0] - t)
            for k in range(nb):
                p, q = triplets[t + k, 0], triplets[t + k, 1]
                cos_b[k] = u[p, 0] * u[q, 0] + u[p, 1] * u[q, 1] + u[p, 2] * u[q, 2]
                xb[k] = 0.5 * (r[p] + r[q])
            _gaussians(xb, nb, eta_a, shifts_a, step_a, q_a, E, work)  # E_n' = −2η (r̄ − R_n) E_n
            _angular_factors(cos_b, nb, zeta, nz, pref, cos_m, sin_m, A, dA, work, mode != 0)
        p, q = triplets[t, 0], triplets[t, 1]
        r1, r2 = r[p], r[q]
        cos_t = cos_b[b]
        ravg = 0.5 * (r1 + r2)
        f1, df1, f2, df2 = cut[p, 2], cut[p, 3], cut[q, 2], cut[q, 3]
        F = f1 * f2
        a = centers[p]
        base = n_radial + _pair_index(species[p], species[q], n_species) * n_th * n_ra
        if mode == 0:
            for m in range(n_th):
                AF = A[m, b] * F
                for n in range(n_ra):
                    G[a, base + m * n_ra + n] += AF * E[n, b]
        elif mode == 1:
            g_cos = g_ravg = g_F = 0.0  # the cotangents of cos θ, r̄ and F
            for m in range(n_th):
                h = h_r = 0.0
                for n in range(n_ra):
                    gmn = gin[a, base + m * n_ra + n] * E[n, b]
                    h += gmn
                    h_r += gmn * (ravg - shifts_a[n])
                g_cos += h * dA[m, b]
                g_F += h * A[m, b]
                g_ravg += h_r * A[m, b]
            g_cos *= F
            g_ravg *= -2.0 * eta_a * F
            g_r1 = 0.5 * g_ravg + g_F * df1 * f2
            g_r2 = 0.5 * g_ravg + g_F * f1 * df2
            g_c1, g_c2 = g_cos / r1, g_cos / r2
            for c in range(3):
                # ∂cos/∂D_p = (u_q − cos u_p)/r1,  ∂r1/∂D_p = u_p  (and p ↔ q)
                gD[p, c] += g_c1 * (u[q, c] - cos_t * u[p, c]) + g_r1 * u[p, c]
                gD[q, c] += g_c2 * (u[p, c] - cos_t * u[q, c]) + g_r2 * u[q, c]
        else:
            dr1 = dr2 = dc1 = dc2 = 0.0
            for c in range(3):
                dr1 += u[p, c] * tin[p, c]
                dr2 += u[q, c] * tin[q, c]
                dc1 += (u[q, c] - cos_t * u[p, c]) * tin[p, c]
                dc2 += (u[p, c] - cos_t * u[q, c]) * tin[q, c]
            dcos = dc1 / r1 + dc2 / r2
            dF = df1 * f2 * dr1 + f1 * df2 * dr2
            dravg = -eta_a * (dr1 + dr2)  # the tangent of E_n is dravg (r̄ − R_n) E_n
            for m in range(n_th):
                dAF = dA[m, b] * dcos * F + A[m, b] * dF
                AF = A[m, b] * F * dravg
                for n in range(n_ra):
                    G[a, base + m * n_ra + n] += (dAF + AF * (ravg - shifts_a[n])) * E[n, b]
    return G if mode != 1 else gD


def _run(mode, D, g, t, centers, species, triplets, n_atoms, n_species, packed):
    D = np.ascontiguousarray(D, dtype=float)
    g = np.zeros((1, 1)) if g is None else np.ascontiguousarray(g, dtype=float)
    t = np.zeros((1, 1)) if t is None else np.ascontiguousarray(t, dtype=float)
    return _acsf(D, g, t, mode, centers, species, triplets, n_atoms, n_species, *packed)


acsf = ds.primitive(lambda D, **k: _run(0, D, None, None, **k), name="acsf")
acsf_vjp = ds.primitive(lambda g, D, **k: _run(1, D, g, None, **k), name="acsf_vjp")
acsf_jvp = ds.primitive(lambda D, t, **k: _run(2, D, None, t, **k), name="acsf_jvp")

# The features at a structure's own positions, computed once (training revisits the same
# structures every epoch): the value is the stored G, the derivatives those of acsf at D.
acsf_at = ds.primitive(lambda D, G, **k: G, name="acsf_at")
ds.defvjp(acsf_at, lambda g, ans, D, G, **k: acsf_vjp(g, D, **k), None)
ds.defjvp(acsf_at, lambda t, ans, D, G, **k: acsf_jvp(D, t, **k), None)

ds.defvjp(acsf, lambda g, ans, D, **k: acsf_vjp(g, D, **k))
ds.defjvp(acsf, lambda t, ans, D, **k: acsf_jvp(D, t, **k))
# acsf_vjp is linear in g; acsf_jvp is linear in t. Second derivatives in D are not provided:
# asking for them raises NonDifferentiableError naming the primitive (force training never does).
ds.defvjp(acsf_vjp, lambda c, ans, g, D, **k: acsf_jvp(D, c, **k), None)
ds.defjvp(acsf_vjp, lambda tg, ans, g, D, **k: acsf_vjp(tg, D, **k), None)
ds.defvjp(acsf_jvp, None, lambda c, ans, D, t, **k: acsf_vjp(c, D, **k))
ds.defjvp(acsf_jvp, None, lambda tt, ans, D, t, **k: acsf_jvp(D, tt, **k))


heal(globals())  # damaged Numba cache entries of these kernels are recompiled, not fatal
