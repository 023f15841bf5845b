"""The Numba cell list equals ase.neighborlist.neighbor_list on random cells."""

import numpy as np
import pytest
from ase.neighborlist import neighbor_list as ase_neighbor_list

import diffsim as ds
import diffsim.numpy as dnp
from potentials.neighbors import NeighborError, VerletList, neighbor_list, shift_vectors


def as_set(i, j, S):
    return {(int(a), int(b), *map(int, s)) for a, b, s in zip(i, j, S)}


def random_system(rng, pbc, triclinic, n=40, small=False):
    cell = np.diag(rng.uniform(2.5, 4.0, 3) if small else rng.uniform(6.0, 10.0, 3))
    if triclinic:
        cell = cell + np.triu(rng.uniform(-2.0, 2.0, (3, 3)), 1)
    frac = rng.uniform(-0.3, 1.3, (n, 3))  # some atoms outside the cell: wrapping is exercised
    return frac @ cell, cell, pbc


CASES = [(pbc, tri, small) for pbc in ([True] * 3, [False] * 3, [True, False, True], [False, False, True])
         for tri in (False, True) for small in (False, True)]


@pytest.mark.parametrize("pbc,triclinic,small", CASES)
def test_equals_ase(pbc, triclinic, small):
    rng = np.random.default_rng(hash((tuple(pbc), triclinic, small)) % 2**32)
    for _ in range(3):
        pos, cell, pbc = random_system(rng, pbc, triclinic, small=small)
        cutoff = rng.uniform(2.0, 4.5)
        i, j, S, d = neighbor_list(pos, cell, pbc, cutoff)
        ai, aj, aS, ad = ase_neighbor_list("ijSd", _atoms(pos, cell, pbc), cutoff)
        assert as_set(i, j, S) == as_set(ai, aj, aS)
        np.testing.assert_allclose(np.sort(d), np.sort(ad), rtol=1e-12)
        np.testing.assert_allclose(d, np.linalg.norm(pos[j] - pos[i] + S @ cell, axis=1), rtol=1e-12)


def _atoms(pos, cell, pbc):
    from ase import Atoms

    return Atoms("H" * len(pos), positions=pos, cell=cell, pbc=pbc)


def test_molecule_without_cell_equals_ase():
    pos = np.random.default_rng(1).uniform(0, 5, (30, 3))
    i, j, S, d = neighbor_list(pos, np.zeros((3, 3)), [False] * 3, 2.0)
    ai, aj, aS = ase_neighbor_list("ijS", _atoms(pos, np.zeros((3, 3)), False), 2.0)
    assert as_set(i, j, S) == as_set(ai, aj, aS) and not S.any()


def test_verlet_skin_rebuilds_only_when_atoms_moved_half_the_skin():
    rng = np.random.default_rng(2)
    pos, cell, pbc = random_system(rng, [True] * 3, False)
    nl = VerletList(cutoff=3.0, skin=0.4)
    for _ in range(10):
        pos = pos + rng.normal(0, 0.02, pos.shape)  # small MD-like moves
        i, j, S, d = nl.pairs(pos, cell, pbc)
        ai, aj, aS = ase_neighbor_list("ijS", _atoms(pos, cell, pbc), 3.0)
        assert as_set(i, j, S) == as_set(ai, aj, aS)
        np.testing.assert_allclose(d, np.linalg.norm(pos[j] - pos[i] + S @ cell, axis=1), rtol=1e-14)
    assert nl.builds < 10


def test_bad_input_is_named():
    with pytest.raises(NeighborError, match="zero volume|cell vector 0 is zero"):
        neighbor_list(np.zeros((2, 3)), np.zeros((3, 3)), [True] * 3, 2.0)
    with pytest.raises(NeighborError, match="shape \\(N, 3\\)"):
        neighbor_list(np.zeros((2, 2)), np.eye(3), [True] * 3, 2.0)
    with pytest.raises(NeighborError, match="NaN"):
        neighbor_list(np.array([[np.nan, 0, 0]]), np.eye(3), [True] * 3, 2.0)


def test_shift_vectors_are_the_cell_images_and_differentiate_in_the_cell():
    # S·cell written out row by row (S_p0 a + S_p1 b + S_p2 c), on a triclinic cell; the cell
    # derivative (the stress path) by finite differences
    rng = np.random.default_rng(3)
    S = rng.integers(-2, 3, (50, 3))
    cell = np.diag(rng.uniform(3.0, 5.0, 3)) + np.triu(rng.uniform(-1.0, 1.0, (3, 3)), 1) \
        + np.tril(rng.uniform(-0.5, 0.5, (3, 3)), -1)
    expected = np.array([sum(s[k] * cell[k] for k in range(3)) for s in S])
    np.testing.assert_allclose(shift_vectors(S, cell), expected, rtol=0, atol=1e-13)
    w = rng.standard_normal((50, 3))
    ds.check_grads(lambda c: dnp.sum(w * dnp.sin(shift_vectors(S, c))), (cell,), order=2, modes=("rev", "fwd"))
