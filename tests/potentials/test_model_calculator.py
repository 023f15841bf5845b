"""Both models through the one interface and the ASE calculator: forces and stress by finite
differences, invariances, the ASE contract, files, bad input."""

import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet

from potentials.calculator import Calculator
from potentials.model import ACSFModel, ModelFileError, load_model
from potentials.painn import PaiNNModel


def test_forces_are_minus_the_energy_gradient(model, crystal):
    for atoms in (crystal(), molecule("CH4")):
        if "C" in atoms.get_chemical_symbols():
            atoms.set_chemical_symbols(["Cu"] + ["Au"] * 4)
            atoms.positions *= 2.0
        atoms.calc = Calculator(model)
        F = atoms.get_forces()
        fd = np.zeros_like(F)
        for a in range(min(3, len(atoms))):
            for c in range(3):
                plus, minus = atoms.copy(), atoms.copy()
                plus.positions[a, c] += 1e-5
                minus.positions[a, c] -= 1e-5
                plus.calc, minus.calc = Calculator(model), Calculator(model)
                fd[a, c] = -(plus.get_potential_energy() - minus.get_potential_energy()) / 2e-5
        np.testing.assert_allclose(F[:3], fd[:3], rtol=1e-6, atol=1e-8)


def test_stress_is_the_strain_derivative(model, crystal):
    atoms = crystal()
    atoms.calc = Calculator(model)
    stress = atoms.get_stress(voigt=False)
    V, cell0 = atoms.get_volume(), atoms.cell.copy()
    fd = np.zeros((3, 3))
    for a in range(3):
        for c in range(3):
            e = np.zeros((3, 3))
            e[a, c] = 1e-6
            vals = []
            for sign in (1, -1):
                s = atoms.copy()
                s.set_cell(cell0 @ (np.eye(3) + sign * e), scale_atoms=True)
                s.calc = Calculator(model)
                vals.append(s.get_potential_energy())
            fd[a, c] = (vals[0] - vals[1]) / 2e-6 / V
    np.testing.assert_allclose(stress, 0.5 * (fd + fd.T), rtol=1e-5, atol=1e-9)


def test_invariance_and_per_atom_energies(model, crystal):
    atoms = crystal()
    atoms.calc = Calculator(model)
    E = atoms.get_potential_energy()
    assert atoms.get_potential_energies().sum() == pytest.approx(E, rel=1e-12)
    moved = atoms.copy()
    moved.translate([0.3, -0.2, 0.5])
    moved.rotate(37, "z", rotate_cell=True)
    moved.calc = Calculator(model)
    assert moved.get_potential_energy() == pytest.approx(E, rel=1e-10)


def test_ase_contract_caches_results_reuses_neighbours_in_md_and_needs_a_cell_for_stress(model, tmp_path, crystal):
    atoms = crystal(0.05)
    calc = Calculator(model)
    atoms.calc = calc
    e1 = atoms.get_potential_energy()
    builds = calc.neighbors.builds
    assert atoms.get_potential_energy() == e1 and calc.neighbors.builds == builds  # cached: no recompute
    from ase.io import Trajectory

    with Trajectory(tmp_path / "md.traj", "w", atoms) as traj:
        dyn = VelocityVerlet(atoms, timestep=1.0 * 0.09822694788464063)  # 1 fs in ASE units
        dyn.attach(traj.write, interval=5)
        dyn.run(20)
    assert calc.neighbors.builds < 20  # the Verlet skin: 20 MD steps, fewer neighbour builds
    # (what MD and BFGS runs are for, energy conservation and convergence, is asserted in test_md.py)
    cluster = molecule("CH4")
    cluster.set_chemical_symbols(["Cu"] * 5)
    cluster.positions *= 2.2
    cluster.calc = Calculator(model)
    with pytest.raises(PropertyNotImplementedError, match="cell with a volume"):
        cluster.get_stress()


def test_save_load_round_trip_and_bad_files(model, tmp_path, crystal):
    path = tmp_path / "m.npz"
    model.save(path)
    again = load_model(path)
    assert type(again) is type(model) and again.config() == model.config()
    atoms = crystal()
    atoms.calc = Calculator(model)
    copy = atoms.copy()
    copy.calc = Calculator(again)
    assert copy.get_potential_energy() == atoms.get_potential_energy()
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(ModelFileError, match="not a diffsim potential"):
        load_model(tmp_path / "other.npz")
    data = dict(np.load(path))
    data["format_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **data)
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(tmp_path / "future.npz")
    with pytest.raises(ModelFileError, match="no such model"):
        load_model(tmp_path / "missing.npz")
    other = PaiNNModel if isinstance(model, ACSFModel) else ACSFModel
    with pytest.raises(ModelFileError, match=f"a '{model.kind}' model, not '{other.kind}'"):
        other.load(path)


def test_unknown_element_and_zero_volume(model, crystal):
    atoms = crystal()
    atoms.symbols[0] = "Fe"
    atoms.calc = Calculator(model)
    with pytest.raises(ValueError, match=r"\['Fe'\] not covered"):
        atoms.get_potential_energy()
    flat = crystal()
    flat.set_cell(np.zeros((3, 3)))
    flat.calc = Calculator(model)
    with pytest.raises(ValueError, match="zero volume"):
        flat.get_potential_energy()
