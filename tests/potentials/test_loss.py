"""The weighted loss: its value against the formula evaluated on the ASE calculator's own
energies, forces and stresses; its gradient against finite differences, stress term included;
partial labels; and stress training recovers EMT's stress on held-out cells."""

import numpy as np

import diffsim as ds
from potentials.calculator import Calculator
from potentials.model import ACSFModel
from potentials.structures import make_batch, prepare
from potentials.training import TrainConfig, batch_loss, evaluate, train


def test_loss_value_is_the_formula_on_the_calculator_predictions(frames):
    model = ACSFModel(["Cu"], hidden=(5,), seed=3)
    model.reference = {"Cu": -0.1}
    data = [a.copy() for a in frames[:5]]
    for a, src in zip(data, frames[:5]):
        a.calc = src.calc
    data[1].info["config_weight"] = 2.0
    data[3].info["config_stress_weight"] = 0.5
    structures = prepare(model, data)
    weights = {"md": 3.0}
    config = TrainConfig(energy_weight=7.0, force_weight=2.0, stress_weight=50.0, config_type_weights=weights)
    loss = float(batch_loss(model, model.weights, make_batch(structures), config))
    e = f = s = 0.0
    n_atoms = 0
    for a, st in zip(data, structures):
        calc_atoms = a.copy()
        calc_atoms.calc = Calculator(model)
        c = a.info.get("config_weight", 1.0) * weights.get(st.config_type, 1.0)
        e += c * ((calc_atoms.get_potential_energy() - a.get_potential_energy()) / len(a)) ** 2
        f += c * np.sum((calc_atoms.get_forces() - a.get_forces()) ** 2)
        s += c * a.info.get("config_stress_weight", 1.0) * np.sum(
            (calc_atoms.get_stress(voigt=False) - a.get_stress(voigt=False)) ** 2)
        n_atoms += len(a)
    expected = 7.0 * e / 5 + 2.0 * f / (3 * n_atoms) + 50.0 * s / (9 * 5)
    assert abs(loss - expected) < 1e-10 * expected


def test_loss_gradient_with_stress_and_partial_labels_matches_finite_differences(frames):
    model = ACSFModel(["Cu"], hidden=(4,), seed=1)
    structures = prepare(model, frames[:3])
    structures[1].has_energy = False  # as energy-less data would be
    structures[2].has_forces = False
    batch = make_batch(structures)
    config = TrainConfig(stress_weight=100.0)
    ds.check_grads(lambda w: batch_loss(model, w, batch, config), (model.weights,), order=1, modes=("rev",),
                   rtol=1e-5, eps=1e-5)


def _spread(cells) -> float:
    """meV/Å³: the held-out stress MAE of the best constant stress (the cells' mean)."""
    S = np.array([a.get_stress(voigt=False) for a in cells])
    return 1000 * float(np.abs(S - S.mean(axis=0)).mean())


def test_stress_training_recovers_emt_stress_on_held_out_cells(frames):
    order = np.random.default_rng(3).permutation(len(frames))
    held_out, data = [frames[k] for k in order[:8]], [frames[k] for k in order[8:]]
    model = ACSFModel(["Cu"], hidden=(16,), seed=0)
    train(model, data, TrainConfig(epochs=150, batch_size=4, learning_rate=1e-2, stress_weight=100.0,
                                   stage_two_stress_weight=100.0, progress=False))
    mae = evaluate(model, prepare(model, held_out)).stress_mae
    # a constant stress model scores the spread. (With or without the stress term differ by less than
    # the seeds do here, 2.2 against 2.4 and 2.6 against 2.0 meV/Å³ on seeds 0 and 1: that comparison,
    # asserted before, passed by chance on one seed and is not made.)
    assert mae < 0.7 * _spread(held_out), (mae, _spread(held_out))


def test_cached_training_features_give_the_finite_difference_forces_and_loss_gradient(frames):
    """Training stores each structure's ACSF features once (cache_inputs); the forces and the
    weight gradient through them must still be the derivatives of the model's energy."""
    model = ACSFModel(["Cu"], hidden=(4,), seed=2)
    structures = prepare(model, frames[:2])
    model.cache_inputs(structures)
    batch = make_batch(structures)
    assert "features" in batch.top
    from potentials.loss import predict

    _, F, _ = predict(model, model.weights, batch)
    st, h = structures[0], 1e-5
    n = len(st.positions)
    for atom, axis in ((0, 0), (3, 2)):
        step = np.zeros_like(st.positions)
        step[atom, axis] = h
        energy = lambda R: float(model.energy(model.weights, R, st.cell, [True] * 3, st.numbers))
        numeric = -(energy(st.positions + step) - energy(st.positions - step)) / (2 * h)
        assert abs(F[:n][atom, axis] - numeric) < 1e-6
    ds.check_grads(lambda w: batch_loss(model, w, batch, TrainConfig(stress_weight=100.0)), (model.weights,),
                   order=1, modes=("rev",), rtol=1e-5, eps=1e-5)
