"""The PaiNN model: equivariance, the force-training gradient (double backward) against finite
differences, training on EMT copper, bad input. Forces, stress, files and the ASE contract are
tested for every model in test_model_calculator.py."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import diffsim as ds
from potentials.calculator import Calculator
from potentials.painn import PaiNNModel
from potentials.training import TrainConfig, _batch, batch_loss, evaluate, prepare, train


@pytest.fixture
def model(small_painn):
    return small_painn


def features(model, atoms):
    pos, cell = atoms.positions, np.array(atoms.cell)
    top = model.topology(pos, cell, atoms.pbc, atoms.numbers)
    return model.atom_features(model.weights, pos, atoms.numbers, top, top["shifts"] @ cell)


@pytest.mark.parametrize("make", ["crystal", "cluster"])
def test_vectors_rotate_with_the_structure_and_the_energy_does_not(model, make, request):
    atoms = request.getfixturevalue(make)()
    s, v = features(model, atoms)
    E = model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)[0]
    assert np.abs(v).max() > 1e-3  # the vector features are not trivially zero
    for seed in range(3):
        Q = Rotation.random(random_state=seed).as_matrix()
        turned = atoms.copy()
        turned.positions = atoms.positions @ Q.T + np.array([0.3, -1.1, 2.0])
        turned.cell = np.array(atoms.cell) @ Q.T
        s2, v2 = features(model, turned)
        np.testing.assert_allclose(s2, s, rtol=0, atol=1e-10)
        np.testing.assert_allclose(v2, np.einsum("xy,nyf->nxf", Q, v), rtol=0, atol=1e-10)
        E2, F2, _ = model.energy_forces(turned.positions, np.array(turned.cell), turned.pbc, turned.numbers)
        assert abs(E2 - E) < 1e-10


def test_energy_is_invariant_to_permuting_like_atoms(model, crystal):
    atoms = crystal()
    E = model.energy_forces(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)[0]
    perm = np.random.default_rng(0).permutation(len(atoms))
    shuffled = atoms[perm]
    assert abs(model.energy_forces(shuffled.positions, np.array(shuffled.cell), shuffled.pbc,
                                   shuffled.numbers)[0] - E) < 1e-10


def test_force_training_gradient_matches_finite_differences(frames):
    model = PaiNNModel(["Cu"], features=4, layers=2, n_rbf=4, cutoff=4.0, seed=2)
    data = prepare(model, frames[:2])
    model.fit_normalisation(data)
    batch = _batch(data)
    config = TrainConfig()
    ds.check_grads(lambda w: batch_loss(model, w, batch, config), (model.weights,), order=1, modes=("rev",),
                   rtol=1e-5, eps=1e-5)


def test_training_beats_the_constant_force_baseline(frames):
    model = PaiNNModel(["Cu"], features=16, layers=2, n_rbf=8, cutoff=4.5, seed=0)
    order = np.random.default_rng(7).permutation(len(frames))
    train_set, held_out = [frames[k] for k in order[8:]], [frames[k] for k in order[:8]]
    history = train(model, train_set, TrainConfig(epochs=15, batch_size=2, learning_rate=3e-3, stress_weight=0.0,
                                                  progress=False))  # forces and energies: the stress term costs more
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    spread = 1000 * np.mean(np.abs(np.concatenate([a.get_forces() for a in held_out])))
    errors = evaluate(model, prepare(model, held_out))
    assert errors.force_mae < 0.35 * spread, (errors, spread)  # a constant (zero) force model scores `spread`


def test_close_atoms_and_unknown_elements_are_refused_by_name(model, crystal):
    close = crystal()
    close.positions[1] = close.positions[0] + [0.5, 0, 0]
    close.calc = Calculator(model)
    with pytest.raises(ValueError, match="closer than the model's inner range"):
        close.get_potential_energy()
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        PaiNNModel(["Xx"])
