"""Reference energies: a given mapping shifts the energies exactly, isolated-atom frames give
them (and are not trained on), least squares recovers a linear law, bad mappings are named."""

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

import diffsim as ds
from potentials.e0s import fit_reference_energies, reference_energies, split_isolated
from potentials.model import ACSFModel
from potentials.reference_data import DatasetError
from potentials.structures import prepare
from potentials.training import TrainConfig, train


def _shifted(frames, per_atom):
    out = []
    for a in frames:
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy() + per_atom * len(a), forces=a.get_forces(),
                                       stress=a.get_stress())
        out.append(b)
    return out


def test_given_e0s_shift_the_energies_exactly(frames):
    config = TrainConfig(epochs=3, batch_size=4, progress=False, seed=5)
    data = frames[:12]
    a = ACSFModel(["Cu"], hidden=(6,), seed=2)
    train(a, data, TrainConfig(**{**config.__dict__, "e0s": {"Cu": -0.3}}))
    b = ACSFModel(["Cu"], hidden=(6,), seed=2)
    train(b, _shifted(data, 0.25), TrainConfig(**{**config.__dict__, "e0s": {"Cu": -0.05}}))
    assert a.reference == {"Cu": -0.3} and b.reference == {"Cu": -0.05}
    for x, y in zip(ds.tree.flatten(a.weights)[0], ds.tree.flatten(b.weights)[0]):
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12)  # the loss did not see the shift
    atoms = frames[20]
    Ea = a.energy_forces(atoms.positions, atoms.cell[:], atoms.pbc, atoms.numbers)[0]
    Eb = b.energy_forces(atoms.positions, atoms.cell[:], atoms.pbc, atoms.numbers)[0]
    assert Eb - Ea == pytest.approx(0.25 * len(atoms), abs=1e-9)


def test_isolated_atom_frames_give_the_e0s_and_are_not_trained_on(frames):
    atom = Atoms("Cu", positions=[[0, 0, 0]])
    atom.calc = EMT()
    e_atom = atom.get_potential_energy()
    atom.calc = SinglePointCalculator(atom, energy=e_atom)
    rest, isolated = split_isolated([atom] + frames[:6])
    assert isolated == {"Cu": pytest.approx(e_atom)} and len(rest) == 6
    model = ACSFModel(["Cu"], hidden=(4,))
    history = train(model, [atom] + frames[:10], TrainConfig(epochs=1, progress=False))
    assert model.reference["Cu"] == pytest.approx(e_atom)
    assert sum(r["count"] for r in history.errors["train"].values() if r is not history.errors["train"].get("all")) \
        + sum(r["count"] for k, r in history.errors["valid"].items() if k != "all") == 10


def test_least_squares_recovers_a_linear_law_and_bad_mappings_are_named(crystal):
    model = ACSFModel(["Cu", "Au"], hidden=(4,))
    law = {"Cu": -3.5, "Au": -4.25}
    frames = []
    for seed in range(4):
        a = crystal(seed=seed)
        a.symbols[: 2 * seed] = "Au"
        a.calc = SinglePointCalculator(a, energy=sum(law[s] for s in a.get_chemical_symbols()),
                                       forces=np.zeros((len(a), 3)))
        frames.append(a)
    structures = prepare(model, frames)
    fit = fit_reference_energies(model, structures)
    assert fit == {k: pytest.approx(v, abs=1e-10) for k, v in law.items()}
    with pytest.raises(DatasetError, match=r"E0s given for \['Ni'\], which no structure contains"):
        reference_energies(model, {"Cu": 1.0, "Au": 2.0, "Ni": 0.0}, structures)
    with pytest.raises(DatasetError, match=r"no E0 for \['Au'\]"):
        reference_energies(model, {"Cu": 1.0}, structures)
