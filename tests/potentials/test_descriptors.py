"""ACSF descriptor primitives: check_grads in both modes, invariances, forces and stress by FD."""

import numpy as np
import pytest
from ase.build import bulk

import diffsim as ds
import diffsim.numpy as dnp
from potentials.descriptors import (
    ANGLE_SCALE,
    ACSFParameters,
    Descriptor,
    acsf,
    acsf_jvp,
    acsf_vjp,
)


def cluster(rng, n=7):
    pos = rng.uniform(0, 4.0, (n, 3))
    return pos, np.zeros((3, 3)), [False] * 3, np.array([29, 79] * (n // 2) + [29] * (n % 2))


@pytest.fixture(scope="module")
def desc():
    return Descriptor(["Cu", "Au"])


def reference_acsf(desc, D0, centers, species, n_atoms):
    """The module docstring's formulas written out with engine ops, pairs and triplets found by plain
    loops (not by the kernels' triplet list): a slow, obviously correct function of D near D0."""
    p = desc.params
    r0 = np.linalg.norm(D0, axis=1)
    radial = [a for a in range(len(D0)) if r0[a] < p.rc_radial]
    tri = [(a, b) for a in range(len(D0)) for b in range(a + 1, len(D0))
           if centers[a] == centers[b] and r0[a] < p.rc_angular and r0[b] < p.rc_angular]
    tp, tq = np.array([a for a, _ in tri]), np.array([b for _, b in tri])
    pair_species = [(s, t) for s in range(desc.n_species) for t in range(s, desc.n_species)]
    sorted_species = np.sort(np.stack([species[tp], species[tq]], axis=1), axis=1)

    def cutoff(r, rc):
        return 0.5 * dnp.cos(np.pi * r / rc) + 0.5

    def features(D):
        r = dnp.sqrt(dnp.sum(D * D, axis=1))
        columns = []
        for s in range(desc.n_species):
            idx = np.array([a for a in radial if species[a] == s], dtype=int)
            for R in p.shifts_radial:
                term = dnp.exp(-p.eta_radial * (r[idx] - R) ** 2) * cutoff(r[idx], p.rc_radial)
                columns.append(dnp.index_add(np.zeros(n_atoms), centers[idx], term))
        r1, r2 = r[tp], r[tq]
        cos = dnp.sum(D[tp] * D[tq], axis=1) / (r1 * r2)
        theta = dnp.arccos(ANGLE_SCALE * cos)
        radial_part = cutoff(r1, p.rc_angular) * cutoff(r2, p.rc_angular)
        for st in pair_species:
            keep = np.all(sorted_species == st, axis=1)
            for angle in p.angles:
                for R in p.shifts_angular:
                    term = 2.0 ** (1 - p.zeta) * (1 + dnp.cos(theta - angle)) ** p.zeta \
                        * dnp.exp(-p.eta_angular * ((r1 + r2) / 2 - R) ** 2) * radial_part
                    columns.append(dnp.index_add(np.zeros(n_atoms), centers[tp[keep]], term[keep]))
        return dnp.stack(columns, axis=1)

    return features


KERNEL_CASES = {
    # integer ζ (repeated squaring), evenly spaced shifts (the Gaussians' product recurrence)
    "ANI-like": dict(zeta=32.0, angles=tuple((np.arange(8) + 0.5) * np.pi / 8)),
    # ζ not a whole number (a power per angle), uneven radial shifts and a single angular one
    "uneven": dict(zeta=3.7, shifts_radial=(1.0, 1.7, 2.1, 3.3, 4.0), shifts_angular=(2.0,)),
    # a width at which the recurrence could underflow (one exponential per shift), ζ = 1, and
    # an angular cutoff beyond the radial one
    "wide": dict(zeta=1.0, eta_radial=300.0, rc_radial=3.0, rc_angular=4.0),
}


@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernels_match_the_formulas_written_out(case):
    # features, VJP and JVP against the engine's evaluation and derivatives of the formulas
    desc = Descriptor(["Cu", "Au"], ACSFParameters(**KERNEL_CASES[case]))
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.15, seed=7)
    atoms.numbers[::3] = 79
    pos, cell = atoms.positions, np.array(atoms.cell)
    top = desc.topology(pos, cell, [True] * 3, atoms.numbers)
    D = pos[top["neighbors"]] - pos[top["centers"]] + top["shifts"] @ cell
    k = desc.static(top)
    ref = reference_acsf(desc, D, top["centers"], top["neighbor_species"], len(pos))
    rng = np.random.default_rng(8)
    g, t = rng.standard_normal((len(pos), desc.n_features)), rng.standard_normal(D.shape)
    G, back = ds.vjp(ref, D)
    _, JVP = ds.jvp(ref, (D,), (t,))
    for new, old in [(acsf(D, **k), G), (acsf_vjp(g, D, **k), back(g)[0]), (acsf_jvp(D, t, **k), JVP)]:
        np.testing.assert_allclose(new, old, rtol=0, atol=1e-12 * np.max(np.abs(old)))


def test_triplets_are_the_pairs_of_pairs_of_each_centre(desc):
    pos, cell, pbc, Z = cluster(np.random.default_rng(0))
    top = desc.topology(pos, cell, pbc, Z)
    r = np.linalg.norm(pos[top["neighbors"]] - pos[top["centers"]], axis=1)
    c, rc = top["centers"], desc.params.rc_angular
    expected = [(a, b) for a in range(len(c)) for b in range(a + 1, len(c)) if c[a] == c[b] and max(r[a], r[b]) < rc]
    assert sorted(map(tuple, top["triplets"].tolist())) == expected


def test_primitives_pass_check_grads(desc):
    rng = np.random.default_rng(0)
    pos, cell, pbc, Z = cluster(rng)
    top = desc.topology(pos, cell, pbc, Z)
    assert len(top["triplets"]) > 5
    D = pos[top["neighbors"]] - pos[top["centers"]]
    k = desc.static(top)
    ds.check_grads(lambda D: acsf(D, **k), (D,), order=1, modes=("rev", "fwd"), rtol=1e-6)
    g = rng.standard_normal((len(pos), desc.n_features))
    t = rng.standard_normal(D.shape)
    ds.check_grads(lambda g: acsf_vjp(g, D, **k), (g,), order=2, modes=("rev", "fwd"))
    ds.check_grads(lambda t: acsf_jvp(D, t, **k), (t,), order=2, modes=("rev", "fwd"))


def test_force_training_gradient_differentiates_the_force(desc):
    # loss(w) = |F(w)|², F = -dE/dR, E = Σ tanh(G w): the double-backward path through acsf_vjp
    rng = np.random.default_rng(1)
    pos, cell, pbc, Z = cluster(rng)
    top = desc.topology(pos, cell, pbc, Z)

    def energy(R, w):
        return dnp.sum(dnp.tanh(desc(R, cell, pbc, Z, top) @ w))

    def loss(w):
        F = -ds.grad(energy)(pos, w)
        return dnp.sum(F * F)

    ds.check_grads(loss, (0.1 * rng.standard_normal(desc.n_features),), order=1, modes=("rev",), rtol=1e-5)


def test_invariances_and_forces_periodic():
    d = Descriptor(["Cu"])
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.1, seed=3)
    pos, cell, Z = atoms.positions, np.array(atoms.cell), atoms.numbers
    G = d(pos, cell, [True] * 3, Z)
    rot = np.linalg.qr(np.random.default_rng(4).standard_normal((3, 3)))[0]
    np.testing.assert_allclose(d(pos @ rot.T, cell @ rot.T, [True] * 3, Z), G, atol=1e-10)
    np.testing.assert_allclose(d(pos + 0.37, cell, [True] * 3, Z), G, atol=1e-10)
    perm = np.random.default_rng(5).permutation(len(pos))
    np.testing.assert_allclose(d(pos[perm], cell, [True] * 3, Z[perm]), G[perm], atol=1e-10)
    w = np.random.default_rng(6).standard_normal(d.n_features)
    top = d.topology(pos, cell, [True] * 3, Z)
    E = lambda R, C: dnp.sum(dnp.tanh(d(R, C, [True] * 3, Z, top) @ w))
    F = -ds.grad(E)(pos, cell)
    fd = np.zeros_like(pos)
    for a in range(3):
        for c in range(3):
            e = np.zeros_like(pos)
            e[a, c] = 1e-5
            fd[a, c] = -(E(pos + e, cell) - E(pos - e, cell)) / 2e-5
    np.testing.assert_allclose(F[:3], fd[:3], rtol=1e-6, atol=1e-9)
    # stress: derivative with respect to a homogeneous strain of positions and cell
    dE_deps = ds.grad(lambda eps: E(pos @ (np.eye(3) + eps), cell @ (np.eye(3) + eps)))(np.zeros((3, 3)))
    fd_eps = np.zeros((3, 3))
    for a in range(3):
        for c in range(3):
            e = np.zeros((3, 3))
            e[a, c] = 1e-6
            fd_eps[a, c] = (E(pos @ (np.eye(3) + e), cell @ (np.eye(3) + e))
                            - E(pos @ (np.eye(3) - e), cell @ (np.eye(3) - e))) / 2e-6
    np.testing.assert_allclose(dE_deps, fd_eps, rtol=1e-5, atol=1e-8)


def test_unknown_element_is_named():
    with pytest.raises(ValueError, match=r"\['Fe'\] not covered"):
        Descriptor(["Cu"])(np.zeros((2, 3)) + [[0, 0, 0], [2, 0, 0]], np.zeros((3, 3)), [False] * 3,
                           np.array([29, 26]))


def test_atoms_closer_than_the_inner_range_are_refused():
    with pytest.raises(ValueError, match=r"atoms 0 and 1 are 0\.300 Å apart"):
        Descriptor(["Cu"])(np.array([[0.0, 0, 0], [0.3, 0, 0]]), np.zeros((3, 3)), [False] * 3, np.array([29, 29]))
