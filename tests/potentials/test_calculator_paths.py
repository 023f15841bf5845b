"""The calculator's forces on every path it has (stress requested or not, after cell changes,
per-atom energies and stresses, committees) against finite differences of its energy; stress
for slabs by the strain derivative, with ASE's EMT as the check of the convention; per-atom
stresses sum to the stress."""

import numpy as np
import pytest
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT

from potentials.calculator import Calculator
from potentials.committee import Committee
from potentials.model import ACSFModel


def _acsf(seed=1):
    m = ACSFModel(["Cu", "Au"], hidden=(6,), seed=seed)
    m.reference = {"Cu": -3.0, "Au": -3.5}
    return m


@pytest.fixture(params=["acsf", "painn", "committee"])
def model(request, small_painn):
    if request.param == "acsf":
        return _acsf()
    if request.param == "painn":
        return small_painn
    return Committee([_acsf(1), _acsf(2), _acsf(3)])


def _energy(model, atoms):
    a = atoms.copy()
    a.calc = Calculator(model)
    return a.get_potential_energy()


def _fd_forces(model, atoms, which, h=1e-5):
    out = np.zeros((len(which), 3))
    for n, a in enumerate(which):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += h
            minus.positions[a, c] -= h
            out[n, c] = -(_energy(model, plus) - _energy(model, minus)) / (2 * h)
    return out


def _slab():
    slab = fcc111("Cu", size=(2, 2, 3), a=3.7, vacuum=4.0)
    slab.symbols[[0, 5]] = "Au"
    slab.rattle(0.05, seed=3)
    return slab


@pytest.mark.parametrize("path", ["forces", "stress first", "energies first", "stresses first", "cell changed"])
def test_forces_match_finite_differences_on_every_path(model, crystal, path):
    atoms = crystal(rattle=0.1, seed=4)
    calc = Calculator(model)
    atoms.calc = calc
    if path == "stress first":
        atoms.get_stress()
    elif path == "energies first":
        atoms.get_potential_energies()
    elif path == "stresses first":
        atoms.get_stresses()
    elif path == "cell changed":
        atoms.get_forces()
        atoms.set_cell(atoms.cell * 1.02, scale_atoms=True)  # the same calculator, a new cell
        atoms.get_stress()
    forces = atoms.get_forces()
    which = [0, 1, 7]
    np.testing.assert_allclose(forces[which], _fd_forces(model, atoms, which), rtol=1e-6, atol=1e-7)
    # and the forces with stress requested are the same numbers as without
    fresh = atoms.copy()
    fresh.calc = Calculator(model)
    np.testing.assert_allclose(forces, fresh.get_forces(), rtol=1e-12, atol=1e-12)


def _strain_fd(atoms, energy, h=1e-6):
    V, cell0 = atoms.get_volume(), atoms.cell.copy()
    fd = np.zeros((3, 3))
    for a in range(3):
        for c in range(3):
            e = np.zeros((3, 3))
            e[a, c] = h
            vals = []
            for sign in (1, -1):
                s = atoms.copy()
                s.set_cell(cell0 @ (np.eye(3) + sign * e), scale_atoms=True)
                vals.append(energy(s))
            fd[a, c] = (vals[0] - vals[1]) / (2 * h) / V
    return 0.5 * (fd + fd.T)


def test_slab_stress_is_the_strain_derivative_as_in_ase_emt(model):
    slab = _slab()
    # the convention (virial over the whole cell volume, vacuum included) is EMT's:
    emt = slab.copy()
    emt.calc = EMT()
    np.testing.assert_allclose(emt.get_stress(voigt=False), _strain_fd(slab, lambda s: _energy_emt(s)), atol=1e-8)
    slab.calc = Calculator(model)
    stress = slab.get_stress(voigt=False)
    np.testing.assert_allclose(stress, _strain_fd(slab, lambda s: _energy(model, s)), rtol=1e-5, atol=1e-9)
    assert np.abs(stress).max() > 1e-4
    forces = slab.get_forces()
    np.testing.assert_allclose(forces[[0, 4]], _fd_forces(model, slab, [0, 4]), rtol=1e-6, atol=1e-7)


def _energy_emt(atoms):
    a = atoms.copy()
    a.calc = EMT()
    return a.get_potential_energy()


def test_per_atom_stresses_sum_to_the_stress_and_are_equal_in_a_perfect_crystal(model, crystal):
    for atoms in (crystal(rattle=0.1), _slab()):
        atoms.calc = Calculator(model)
        np.testing.assert_allclose(atoms.get_stresses().sum(axis=0), atoms.get_stress(), rtol=1e-10, atol=1e-12)
    perfect = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    perfect.set_cell(perfect.cell @ np.array([[1.0, 0.01, 0], [0.01, 1, 0], [0, 0, 0.99]]), scale_atoms=True)
    perfect.calc = Calculator(model)
    per_atom = perfect.get_stresses()
    np.testing.assert_allclose(per_atom, np.broadcast_to(per_atom[0], per_atom.shape), atol=1e-10)
    assert np.abs(per_atom[0]).max() > 1e-5


def test_no_volume_no_stress(model):
    from ase.calculators.calculator import PropertyNotImplementedError

    cluster = _slab()
    cluster.set_cell(np.zeros((3, 3)))
    cluster.pbc = False
    cluster.calc = Calculator(model)
    assert np.isfinite(cluster.get_forces()).all()
    with pytest.raises(PropertyNotImplementedError, match="cell with a volume"):
        cluster.get_stress()
