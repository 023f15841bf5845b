"""The read-out refit: its design matrices are the model's energies, forces (finite differences of
the energy) and stress (finite differences in strain); the refit is the exact minimiser of the
training loss (the gradient of potentials.loss in the read-out vanishes); it does not depend on
the read-out it starts from; training keeps it and refuses it for a model without one."""

import numpy as np
import pytest
from ase.calculators.emt import EMT

import diffsim as ds
from potentials.acsf import ACSFModel
from potentials.painn import PaiNNModel
from potentials.refit import readout_design, readout_vector, refit_readout
from potentials.structures import make_batch, prepare
from potentials.training import TrainConfig, batch_loss, train


def _labelled(crystal, k, strain=0.02):
    atoms = crystal(rattle=0.08, seed=k)
    atoms.symbols[10:10 + 2 * k] = "Au"  # compositions differ: each element's bias is determined
    eps = strain * np.random.default_rng(k).standard_normal((3, 3))
    atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
    atoms.calc = EMT()
    atoms.get_stress()
    return atoms


@pytest.fixture(scope="module")
def alloy(crystal):
    """A Cu-Au ACSF model with random read-outs and three EMT-labelled strained cells."""
    model = ACSFModel(["Cu", "Au"], hidden=(5, 4), seed=3)
    frames = [_labelled(crystal, k) for k in range(3)]
    data = prepare(model, frames)
    model.fit_normalisation(data)
    model.cache_inputs(data)
    rng = np.random.default_rng(1)
    for s in model.symbols:
        model.weights[s][-1] = (rng.standard_normal((4, 1)), rng.standard_normal(1))
    return model, frames, data


def _energy(model, atoms):
    cell = np.array(atoms.cell)
    return model.energy(model.weights, atoms.positions, cell, atoms.pbc, atoms.numbers,
                        model.topology(atoms.positions, cell, atoms.pbc, atoms.numbers))


def test_design_matrices_give_the_energy_its_position_and_strain_derivatives(alloy):
    model, frames, data = alloy
    A_E, A_F, A_S = readout_design(model, make_batch(data))
    theta = readout_vector(model)
    atoms = frames[1]
    ref = float(np.sum(model.reference_energies(atoms.numbers)))
    assert np.isclose(A_E[1] @ theta + ref, float(_energy(model, atoms)), rtol=1e-12)
    n0 = len(frames[0])
    h = 1e-5
    for a, c in ((0, 0), (7, 2), (20, 1)):  # forces: −∂E/∂R by central differences
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, c] += h
        minus.positions[a, c] -= h
        fd = -(float(_energy(model, plus)) - float(_energy(model, minus))) / (2 * h)
        assert np.isclose(A_F[n0 + a, c] @ theta, fd, rtol=1e-6, atol=1e-8)
    volume = atoms.get_volume()
    for i, j in ((0, 0), (1, 2), (0, 1)):  # stress: (1/V) ∂E/∂ε for a symmetric strain
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h / (2 if i != j else 1)
        plus, minus = atoms.copy(), atoms.copy()
        plus.set_cell(atoms.cell @ (np.eye(3) + eps), scale_atoms=True)
        minus.set_cell(atoms.cell @ (np.eye(3) - eps), scale_atoms=True)
        fd = (float(_energy(model, plus)) - float(_energy(model, minus))) / (2 * h * volume)
        assert np.isclose(A_S[1, i, j] @ theta, fd, rtol=1e-6, atol=1e-9)


def _readout_gradient(model, data, config):
    grads = ds.grad(lambda w: batch_loss(model, w, make_batch(data), config))(model.weights)
    return np.concatenate([np.concatenate([np.ravel(grads[s][-1][0]), np.ravel(grads[s][-1][1])])
                           for s in model.symbols])


def test_the_refit_is_the_exact_minimiser_of_the_training_loss(alloy):
    model, _, data = alloy
    config = TrainConfig(energy_weight=100.0, force_weight=10.0, stress_weight=1000.0)
    before = np.abs(_readout_gradient(model, data, config)).max()
    info = refit_readout(model, data, 100.0, 10.0, 1000.0, ridge=0.0)
    after = _readout_gradient(model, data, config)
    assert info["loss_after"] < info["loss_before"]
    assert np.isclose(info["loss_after"], float(batch_loss(model, model.weights, make_batch(data), config)),
                      rtol=1e-10)
    assert np.abs(after).max() < 1e-8 * before  # the stationarity condition, from the engine's own gradient


def test_the_refit_minimises_the_loss_with_config_type_weights(alloy, crystal):
    """The weights the validation benchmark gives the EOS and vacancy cells: the refit is still
    the stationary point of the engine's loss with the same config_type weights, on cells with
    different atom counts (a vacancy: the per-atom energy term), and the weights move it."""
    import copy

    model = alloy[0]
    vacancy = crystal(rattle=0.05, seed=9)
    del vacancy[5]
    vacancy.calc = EMT()
    vacancy.get_stress()
    frames = [_labelled(crystal, k) for k in range(3)] + [vacancy]
    for f, kind in zip(frames, ("eos", "md", "strain", "vacancy")):
        f.info["config_type"] = kind
    model = copy.deepcopy(model)
    data = prepare(model, frames)
    model.cache_inputs(data)
    weights = {"eos": 10.0, "vacancy": 25.0}
    config = TrainConfig(energy_weight=100.0, force_weight=10.0, stress_weight=1000.0, config_type_weights=weights)
    plain = copy.deepcopy(model)
    refit_readout(model, data, 100.0, 10.0, 1000.0, config_type_weights=weights, ridge=0.0)
    refit_readout(plain, data, 100.0, 10.0, 1000.0, ridge=0.0)
    scale = np.abs(_readout_gradient(plain, data, config)).max()  # the unweighted refit is not stationary
    assert scale > 1e-6
    assert np.abs(_readout_gradient(model, data, config)).max() < 1e-7 * scale


def test_the_refit_does_not_depend_on_the_readout_it_starts_from(alloy):
    import copy

    model, _, data = alloy
    other = copy.deepcopy(model)
    for s in other.symbols:
        other.weights[s][-1] = (np.zeros((4, 1)), np.zeros(1))
    for m in (model, other):
        refit_readout(m, data, 1000.0, 10.0, 10000.0, ridge=0.0)
    np.testing.assert_allclose(readout_vector(model), readout_vector(other), rtol=1e-7, atol=1e-9)


def test_training_ends_with_the_refit_and_refuses_it_where_there_is_no_readout(alloy, crystal):
    _, frames, _ = alloy
    frames = frames + [_labelled(crystal, k) for k in range(3, 8)]
    model = ACSFModel(["Cu", "Au"], hidden=(4,), seed=0)
    history = train(model, frames, TrainConfig(epochs=2, batch_size=4, progress=False, max_seconds=600))
    assert history.refit and history.refit["loss_after"] <= history.refit["loss_before"]
    off = train(ACSFModel(["Cu", "Au"], hidden=(4,), seed=0), frames,
                TrainConfig(epochs=2, batch_size=4, progress=False, refit=False))
    assert off.refit == {}
    with pytest.raises(ValueError, match="ACSF models, not PaiNNModel"):
        train(PaiNNModel(["Cu", "Au"], features=4, layers=1), frames,
              TrainConfig(epochs=1, progress=False, refit=True))
    with pytest.raises(ValueError, match="refit_weights"):
        train(ACSFModel(["Cu", "Au"], hidden=(4,)), frames, TrainConfig(epochs=1, progress=False,
                                                                           refit_weights=(1.0, -1.0, 1.0)))
