"""Forces are −∂E/∂R on every path that produces them, against central finite differences of the
energy computed by fresh calculators: with stress requested (the branch ASE's cell filters take),
with per-atom energies requested, through ``energy_forces(stress=True)`` directly, and with one
calculator kept across cell changes (its Verlet list must follow the cell). Both models."""

import numpy as np
import pytest

from potentials.calculator import Calculator

H = 1e-5
ATOMS_CHECKED = (0, 1, 5)  # a Cu, and the Au atoms 1 and 5 of the crystal fixture


def fresh_energy(model, atoms):
    atoms = atoms.copy()
    atoms.calc = Calculator(model)
    return atoms.get_potential_energy()


def fd_forces(model, atoms, indices=ATOMS_CHECKED):
    """−∂E/∂R_a by central differences, each energy from a new calculator (plain energy path)."""
    fd = np.zeros((len(indices), 3))
    for row, a in enumerate(indices):
        for c in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[a, c] += H
            minus.positions[a, c] -= H
            fd[row, c] = -(fresh_energy(model, plus) - fresh_energy(model, minus)) / (2 * H)
    return fd


def fd_stress(model, atoms):
    """(1/V) ∂E/∂ε by central differences of homogeneous strains, symmetrised, Voigt order."""
    cell0, V = np.array(atoms.cell), atoms.get_volume()
    fd = np.zeros((3, 3))
    for a in range(3):
        for c in range(3):
            e = np.zeros((3, 3))
            e[a, c] = 1e-6
            vals = []
            for sign in (1, -1):
                s = atoms.copy()
                s.set_cell(cell0 @ (np.eye(3) + sign * e), scale_atoms=True)
                vals.append(fresh_energy(model, s))
            fd[a, c] = (vals[0] - vals[1]) / 2e-6 / V
    fd = 0.5 * (fd + fd.T)
    return fd[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]


def assert_forces(F, fd):
    assert np.abs(fd).max() > 1e-3  # the reference is not trivially zero, so a sign flip shows
    np.testing.assert_allclose(F[list(ATOMS_CHECKED)], fd, rtol=1e-6, atol=1e-8)


def test_forces_after_a_stress_request_are_minus_the_energy_gradient(model, crystal):
    atoms = crystal()
    atoms.calc = Calculator(model)
    atoms.get_stress()  # computes the forces on the stress=True branch; get_forces reads them back
    assert_forces(atoms.get_forces(), fd_forces(model, atoms))


def test_forces_with_stress_and_per_atom_energies_in_one_call(model, crystal):
    atoms = crystal(seed=3)
    calc = Calculator(model)
    atoms.calc = calc
    calc.calculate(atoms, ["energy", "forces", "stress", "energies"])
    assert_forces(calc.results["forces"], fd_forces(model, atoms))
    assert calc.results["energies"].sum() == pytest.approx(fresh_energy(model, atoms), rel=1e-12)


def test_forces_after_a_per_atom_energy_request_are_minus_the_energy_gradient(model, crystal):
    atoms = crystal(seed=4)
    atoms.calc = Calculator(model)
    eps = atoms.get_potential_energies()
    assert_forces(atoms.get_forces(), fd_forces(model, atoms))
    assert eps.sum() == pytest.approx(fresh_energy(model, atoms), rel=1e-12)


def test_energy_forces_stress_branch_returns_minus_the_energy_gradient(model, crystal):
    atoms = crystal(seed=5)
    E, F, sigma = model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers, stress=True)
    assert E == pytest.approx(fresh_energy(model, atoms), rel=1e-12)
    assert_forces(F, fd_forces(model, atoms))
    assert sigma.shape == (3, 3)


@pytest.mark.parametrize("scale_atoms", [True, False], ids=["atoms-follow-cell", "atoms-stay"])
def test_one_calculator_follows_cell_changes(model, crystal, scale_atoms):
    atoms = crystal(seed=6)
    atoms.calc = Calculator(model)
    atoms.get_stress()
    atoms.get_forces()
    # a sheared, stretched cell: periodic images and pair shifts change under the same calculator
    atoms.set_cell(np.array(atoms.cell) @ np.array([[1.03, 0.04, 0.0], [0.0, 0.98, 0.03], [0.02, 0.0, 1.01]]),
                   scale_atoms=scale_atoms)
    stress, F = atoms.get_stress(), atoms.get_forces()
    assert_forces(F, fd_forces(model, atoms))
    np.testing.assert_allclose(stress, fd_stress(model, atoms), rtol=1e-5, atol=1e-9)
    assert atoms.get_potential_energy() == pytest.approx(fresh_energy(model, atoms), rel=1e-12)


def test_energy_without_a_given_topology_is_differentiable_in_positions_and_cell(model, crystal):
    import diffsim as ds

    atoms = crystal(seed=7)
    R, cell, pbc, Z = atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers
    energy = lambda R_, cell_: model.energy(model.weights, R_, cell_, pbc, Z)  # builds its own topology
    E, (dR, dcell) = ds.value_and_grad(energy, argnums=(0, 1))(R, cell)
    assert float(E) == pytest.approx(fresh_energy(model, atoms), rel=1e-12)
    assert_forces(-np.asarray(dR), fd_forces(model, atoms))
    # ∂E/∂cell at fixed Cartesian positions: only the periodic images move
    fd = np.zeros((3, 3))
    for a in range(3):
        for c in range(3):
            e = np.zeros((3, 3))
            e[a, c] = H
            fd[a, c] = (float(energy(R, cell + e)) - float(energy(R, cell - e))) / (2 * H)
    assert np.abs(fd).max() > 1e-3
    np.testing.assert_allclose(np.asarray(dcell), fd, rtol=1e-6, atol=1e-8)


def test_energy_forces_returns_no_stress_unless_asked(model, crystal):
    atoms = crystal()
    E, F, sigma = model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
    assert sigma is None and F.shape == (len(atoms), 3)


def test_per_atom_energies_without_a_given_topology_sum_to_the_energy(model, crystal):
    atoms = crystal(seed=8)
    eps = model.per_atom_energies(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
    assert eps.shape == (len(atoms),) and eps.sum() == pytest.approx(fresh_energy(model, atoms), rel=1e-12)


@pytest.mark.parametrize("properties", [("energy",), ("energy", "stress"), ("energies",)])
def test_reference_energies_add_their_element_constants_to_the_energy_on_every_path(model, crystal, properties):
    """E_ref(Z) shifts E by Σ_i E_ref(Z_i) and each atom's energy by its own E_ref, forces untouched."""
    atoms = crystal()
    saved = dict(model.reference)
    shift = {sym: 1.25 * (k + 1) * (-1) ** k for k, sym in enumerate(model.symbols)}  # distinct, of both signs
    try:
        model.reference = {sym: 0.0 for sym in model.symbols}
        atoms.calc = Calculator(model)
        atoms.calc.calculate(atoms, list(properties) + ["forces"])
        before = dict(atoms.calc.results)
        model.reference = shift
        atoms.calc = Calculator(model)
        atoms.calc.calculate(atoms, list(properties) + ["forces"])
        after = atoms.calc.results
    finally:
        model.reference = saved
    expected = np.array([shift[s] for s in atoms.get_chemical_symbols()])
    assert len(set(atoms.get_chemical_symbols())) > 1
    np.testing.assert_allclose(after["energy"] - before["energy"], expected.sum(), rtol=1e-12, atol=1e-10)
    if "energies" in properties:
        np.testing.assert_allclose(after["energies"] - before["energies"], expected, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(after["forces"], before["forces"], rtol=1e-12, atol=1e-12)


def test_energy_forces_without_a_given_topology_equals_the_calculators(model, crystal):
    atoms = crystal()
    atoms.calc = Calculator(model)
    E, F = atoms.get_potential_energy(), atoms.get_forces()
    stress = atoms.get_stress(voigt=False)
    for want_stress in (False, True):
        E2, F2, s2 = model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers,
                                         stress=want_stress)
        assert abs(E2 - E) < 1e-10 * max(1.0, abs(E))
        np.testing.assert_allclose(F2, F, rtol=1e-10, atol=1e-12)
        if want_stress:
            np.testing.assert_allclose(s2, stress, rtol=1e-10, atol=1e-12)
        else:
            assert s2 is None


def test_per_atom_stresses_without_a_given_topology_equal_the_calculators(model, crystal):
    from ase.stress import full_3x3_to_voigt_6_stress

    atoms = crystal()
    atoms.calc = Calculator(model)
    want = atoms.get_stresses()
    got = model.stresses(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
    np.testing.assert_allclose(full_3x3_to_voigt_6_stress(got), want, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(want.sum(axis=0), atoms.get_stress(), rtol=1e-9, atol=1e-12)


def test_a_committee_predicts_on_a_molecule_without_stress_or_per_atom_energies_unless_asked(cluster):
    # no cell: a stress would be undefined, so the defaults must not ask for one
    from potentials.committee import Committee
    from potentials.model import ACSFModel

    members = [ACSFModel(["Cu", "Au"], hidden=(4,), seed=k) for k in range(2)]
    atoms = cluster()
    args = (atoms.positions, np.zeros((3, 3)), np.zeros(3, bool), atoms.numbers)
    out = Committee(members).predict(*args)
    assert set(out) == {"energy", "energy_std", "forces", "forces_std", "energy_members", "forces_members"}
    singles = [m.energy_forces(*args) for m in members]
    assert out["energy"] == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
    np.testing.assert_allclose(out["forces"], np.mean([s[1] for s in singles], axis=0), atol=1e-12)
    np.testing.assert_allclose(out["forces"][:1], fd_forces(Committee(members), atoms, indices=(0,)), atol=1e-6)
    E, F, S = Committee(members).energy_forces(*args)
    assert S is None and E == out["energy"] and np.array_equal(F, out["forces"])


def test_a_committees_stress_spread_and_per_atom_energies_are_numpys_over_its_members(crystal):
    from potentials.committee import Committee
    from potentials.model import ACSFModel

    members = [ACSFModel(["Cu", "Au"], hidden=(4,), seed=k) for k in range(3)]
    atoms = crystal()
    args = (atoms.positions, np.asarray(atoms.cell), atoms.pbc, atoms.numbers)
    out = Committee(members).predict(*args, stress=True, energies=True)
    S = np.array([m.energy_forces(*args, stress=True)[2] for m in members])   # (K, 3, 3)
    e = np.array([m.per_atom_energies(*args) for m in members])               # (K, N)
    np.testing.assert_allclose(out["stress"], S.mean(axis=0), atol=1e-14)
    np.testing.assert_allclose(out["stress_std"], np.std(S, axis=0), atol=1e-14)
    np.testing.assert_allclose(out["energies"], e.mean(axis=0), atol=1e-12)
    assert out["energies"].shape == (len(atoms),) and out["stress_std"].shape == (3, 3)
    assert np.sum(out["energies"]) == pytest.approx(out["energy"], rel=1e-12)
    committee = Committee(members)
    np.testing.assert_allclose(committee.per_atom_energies(*args), e.mean(axis=0), atol=1e-12)
    per_atom = np.array([m.stresses(*args) for m in members])                  # (K, N, 3, 3)
    np.testing.assert_allclose(committee.stresses(*args), per_atom.mean(axis=0), atol=1e-14)
