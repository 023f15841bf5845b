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
the network, i.e. ``acsf_vjp`` with respect to g, which is ``acsf_jvp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

import diffsim as ds
import diffsim.numpy as dnp

from .neighbors import neighbor_list

ANGLE_SCALE = 0.95


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
        from ase.data import atomic_numbers

        self.numbers = np.array([atomic_numbers[e] if isinstance(e, str) else int(e) for e in elements])
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
        numbers = np.asarray(numbers)
        index = np.full(numbers.shape, -1)
        for k, z in enumerate(self.numbers):
            index[numbers == z] = k
        if np.any(index < 0):
            from ase.data import chemical_symbols

            missing = sorted({chemical_symbols[z] for z in numbers[index < 0]})
            known = [chemical_symbols[z] for z in self.numbers]
            raise ValueError(f"element(s) {missing} not covered by this descriptor (it knows {known}); "
                             "train a model that includes them")
        return index

    def topology(self, positions, cell, pbc, numbers, pairs=None):
        """The static part: pairs (i, j, S) within the cutoff and the angular triplets."""
        i, j, S, d = pairs if pairs is not None else neighbor_list(positions, cell, pbc, self.cutoff)
        if len(d) and d.min() < self.params.inner:
            k = int(np.argmin(d))
            raise ValueError(f"atoms {int(i[k])} and {int(j[k])} are {d[k]:.3f} Å apart, closer than the "
                             f"descriptor's inner range ({self.params.inner} Å): no training data looks like "
                             "this; check the structure (overlapping atoms, wrong units or cell)")
        species = self.species_index(numbers)
        triplets = _triplets(i, d, self.params.rc_angular, len(positions))
        return dict(centers=i.astype(np.int64), species=species[j].astype(np.int64), neighbors=j, shifts=S,
                    triplets=triplets, n_atoms=len(positions))

    def __call__(self, positions, cell, pbc, numbers, topology=None):
        """Features (N, n_features); differentiable in ``positions`` and ``cell``."""
        top = topology or self.topology(dnp.stop_gradient(positions), dnp.stop_gradient(cell), pbc, numbers)
        i, j = top["centers"], top["neighbors"]
        D = positions[j] - positions[i] + top["shifts"].astype(float) @ cell
        return acsf(D, **self.static(top))

    def static(self, top) -> dict:
        """The keyword parameters of the primitives for one structure."""
        return dict(centers=top["centers"], species=top["species"], triplets=top["triplets"],
                    n_atoms=top["n_atoms"], n_species=self.n_species, packed=self._packed)


def _triplets(centers, dist, rc_angular, n_atoms) -> np.ndarray:
    """Pairs (p, q), p < q, of pair indices sharing a centre, both within the angular cutoff."""
    keep = np.flatnonzero(dist < rc_angular)
    order = keep[np.argsort(centers[keep], kind="stable")]
    out = []
    c = centers[order]
    bounds = np.searchsorted(c, np.arange(n_atoms + 1))
    for a in range(n_atoms):
        group = order[bounds[a]:bounds[a + 1]]
        if len(group) > 1:
            p, q = np.triu_indices(len(group), 1)
            out.append(np.stack([group[p], group[q]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.zeros((0, 2), dtype=np.int64)


# ---------------------------------------------------------------- kernels


@njit(cache=True, inline="always")
def _cutoff(r, rc):
    if r >= rc:
        return 0.0, 0.0
    x = np.pi * r / rc
    return 0.5 * np.cos(x) + 0.5, -0.5 * np.pi / rc * np.sin(x)


@njit(cache=True, inline="always")
def _pair_index(s, t, n_species):
    if s > t:
        s, t = t, s
    return s * n_species - s * (s - 1) // 2 + (t - s)


@njit(cache=True)
def _acsf(D, gin, tin, mode, centers, species, triplets, n_atoms, n_species, rc_r, eta_r, shifts_r, rc_a, eta_a,
          zeta, angles, shifts_a):
    """mode 0: features G; mode 1: VJP, returns dG/dD ᵀ gin (M, 3); mode 2: JVP, (dG/dD) tin (N, F)."""
    n_rs, n_th, n_ra = shifts_r.shape[0], angles.shape[0], shifts_a.shape[0]
    n_radial = n_species * n_rs
    n_feat = n_radial + n_species * (n_species + 1) // 2 * n_th * n_ra
    G = np.zeros((n_atoms, n_feat))
    gD = np.zeros(D.shape)
    M = D.shape[0]
    r = np.empty(M)
    for p in range(M):
        r[p] = np.sqrt(D[p, 0] ** 2 + D[p, 1] ** 2 + D[p, 2] ** 2)
    for p in range(M):
        if r[p] >= rc_r:
            continue
        fc, dfc = _cutoff(r[p], rc_r)
        a, base = centers[p], species[p] * n_rs
        for k in range(n_rs):
            e = np.exp(-eta_r * (r[p] - shifts_r[k]) ** 2)
            if mode == 0:
                G[a, base + k] += e * fc
            else:
                dg = e * (dfc - 2.0 * eta_r * (r[p] - shifts_r[k]) * fc)  # d/dr
                for c in range(3):
                    u = D[p, c] / r[p]
                    if mode == 1:
                        gD[p, c] += gin[a, base + k] * dg * u
                    else:
                        G[a, base + k] += dg * u * tin[p, c]
    pref = 2.0 ** (1.0 - zeta)
    for t in range(triplets.shape[0]):
        p, q = triplets[t, 0], triplets[t, 1]
        a = centers[p]
        r1, r2 = r[p], r[q]
        f1, df1 = _cutoff(r1, rc_a)
        f2, df2 = _cutoff(r2, rc_a)
        dot = D[p, 0] * D[q, 0] + D[p, 1] * D[q, 1] + D[p, 2] * D[q, 2]
        cos_t = dot / (r1 * r2)
        theta = np.arccos(ANGLE_SCALE * cos_t)
        dtheta_dcos = -ANGLE_SCALE / np.sqrt(1.0 - (ANGLE_SCALE * cos_t) ** 2)
        base = n_radial + _pair_index(species[p], species[q], n_species) * n_th * n_ra
        ravg = 0.5 * (r1 + r2)
        for m in range(n_th):
            ang = 1.0 + np.cos(theta - angles[m])
            angz = ang ** zeta
            dang = -zeta * ang ** (zeta - 1.0) * np.sin(theta - angles[m])  # d(angz)/dθ
            for n in range(n_ra):
                e = np.exp(-eta_a * (ravg - shifts_a[n]) ** 2)
                f = base + m * n_ra + n
                if mode == 0:
                    G[a, f] += pref * angz * e * f1 * f2
                    continue
                de = -eta_a * (ravg - shifts_a[n]) * e  # d e / d r1 (= d e / d r2)
                dA_dr1 = pref * angz * (de * f1 * f2 + e * df1 * f2)
                dA_dr2 = pref * angz * (de * f1 * f2 + e * f1 * df2)
                dA_dcos = pref * dang * dtheta_dcos * e * f1 * f2
                for c in range(3):
                    # ∂cos/∂D_p = D_q/(r1 r2) − cos D_p/r1²,  ∂r1/∂D_p = D_p/r1 (and p ↔ q)
                    dp_ = dA_dcos * (D[q, c] / (r1 * r2) - cos_t * D[p, c] / (r1 * r1)) + dA_dr1 * D[p, c] / r1
                    dq_ = dA_dcos * (D[p, c] / (r1 * r2) - cos_t * D[q, c] / (r2 * r2)) + dA_dr2 * D[q, c] / r2
                    if mode == 1:
                        gD[p, c] += gin[a, f] * dp_
                        gD[q, c] += gin[a, f] * dq_
                    else:
                        G[a, f] += dp_ * tin[p, c] + dq_ * tin[q, c]
    return G if mode != 1 else gD


def _run(mode, D, g, t, centers, species, triplets, n_atoms, n_species, packed):
    D = np.ascontiguousarray(D, dtype=float)
    g = np.zeros((1, 1)) if g is None else np.ascontiguousarray(g, dtype=float)
    t = np.zeros((1, 1)) if t is None else np.ascontiguousarray(t, dtype=float)
    return _acsf(D, g, t, mode, centers, species, triplets, n_atoms, n_species, *packed)


acsf = ds.primitive(lambda D, **k: _run(0, D, None, None, **k), name="acsf")
acsf_vjp = ds.primitive(lambda g, D, **k: _run(1, D, g, None, **k), name="acsf_vjp")
acsf_jvp = ds.primitive(lambda D, t, **k: _run(2, D, None, t, **k), name="acsf_jvp")

ds.defvjp(acsf, lambda g, ans, D, **k: acsf_vjp(g, D, **k))
ds.defjvp(acsf, lambda t, ans, D, **k: acsf_jvp(D, t, **k))
# acsf_vjp is linear in g; acsf_jvp is linear in t. Second derivatives in D are not provided:
# asking for them raises NonDifferentiableError naming the primitive (force training never does).
ds.defvjp(acsf_vjp, lambda c, ans, g, D, **k: acsf_jvp(D, c, **k), None)
ds.defjvp(acsf_vjp, lambda tg, ans, g, D, **k: acsf_vjp(tg, D, **k), None)
ds.defvjp(acsf_jvp, None, lambda c, ans, D, t, **k: acsf_vjp(c, D, **k))
ds.defjvp(acsf_jvp, None, lambda tt, ans, D, t, **k: acsf_jvp(D, tt, **k))
