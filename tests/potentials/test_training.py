"""Force-matching training on generated EMT copper: it learns, it resumes exactly, its gradient
is right."""

import numpy as np
import pytest

import diffsim as ds
from potentials.model import ACSFModel
from potentials.training import TrainConfig, _batch, batch_loss, evaluate, prepare, train


def test_training_learns_forces_well_below_their_spread(frames):
    model = ACSFModel(["Cu"], hidden=(16, 16), seed=0)
    order = np.random.default_rng(7).permutation(len(frames))  # held out at random, from every source
    train_set, held_out = [frames[k] for k in order[8:]], [frames[k] for k in order[:8]]
    history = train(model, train_set, TrainConfig(epochs=40, batch_size=8, progress=False))
    assert history.train_loss[-1] < 0.2 * history.train_loss[0]
    spread = 1000 * np.mean(np.abs(np.concatenate([a.get_forces() for a in held_out])))
    errors = evaluate(model, prepare(model, held_out))
    assert errors.force_mae < 0.5 * spread, (errors, spread)  # a constant (zero) force model scores `spread`


def test_interrupted_training_resumes_to_the_same_weights(frames, tmp_path):
    data = frames[:20]
    straight = ACSFModel(["Cu"], hidden=(8,), seed=3)
    train(straight, data, TrainConfig(epochs=6, batch_size=5, progress=False, seed=3))
    ckpt = tmp_path / "ckpt.npz"
    resumed = ACSFModel(["Cu"], hidden=(8,), seed=3)
    train(resumed, data, TrainConfig(epochs=3, batch_size=5, progress=False, seed=3, checkpoint=str(ckpt)))
    again = ACSFModel(["Cu"], hidden=(8,), seed=99)  # a fresh process would start from nothing
    h = train(again, data, TrainConfig(epochs=6, batch_size=5, progress=False, seed=3, checkpoint=str(ckpt)))
    assert len(h.train_loss) == 6
    for a, b in zip(ds.tree.flatten(straight.weights)[0], ds.tree.flatten(again.weights)[0]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_force_matching_gradient_matches_finite_differences(frames):
    model = ACSFModel(["Cu"], hidden=(4,), seed=1)
    data = prepare(model, frames[:3])
    batch = _batch(data)
    config = TrainConfig()
    ds.check_grads(lambda w: batch_loss(model, w, batch, config), (model.weights,), order=1, modes=("rev",),
                   rtol=1e-5, eps=1e-5)


def test_lbfgs_training_reduces_the_loss(frames):
    model = ACSFModel(["Cu"], hidden=(8,), seed=2)
    history = train(model, frames[:12], TrainConfig(epochs=15, optimizer="lbfgs", progress=False))
    assert len(history.train_loss) > 3 and history.train_loss[-1] < 0.3 * history.train_loss[0]
    with pytest.raises(ValueError, match="unknown optimizer"):
        train(model, frames[:4], TrainConfig(optimizer="sgd", progress=False))


def test_stage_two_switches_the_loss_weights_and_picks_its_best_epoch_anew(frames):
    """Stage one on forces alone cannot place energies beyond the E0 fit; stage two, with the
    energy term in, must lower the held-out energy error below what stage one alone reaches."""
    held_out, data = frames[:6], frames[6:]
    maes = {}
    for label, stage_two in (("one stage", None), ("two stages", 0.5)):
        model = ACSFModel(["Cu"], hidden=(8,), seed=0)
        config = TrainConfig(epochs=16, batch_size=4, learning_rate=1e-2, energy_weight=0.0, force_weight=10.0,
                             stress_weight=0.0, stage_two=stage_two, stage_two_energy_weight=1000.0,
                             stage_two_force_weight=1.0, stage_two_stress_weight=0.0, progress=False)
        history = train(model, data, config)
        if stage_two is not None:
            assert history.stage_two_epoch == 8 and history.best_epoch >= 8
        else:
            assert history.stage_two_epoch == -1
        maes[label] = evaluate(model, prepare(model, held_out)).energy_mae
    assert maes["two stages"] < 0.8 * maes["one stage"], maes


def test_evaluate_matches_errors_computed_through_the_ase_calculator(frames):
    """The MAEs and RMSEs of evaluate() against the same errors computed apart: the model's energy
    and forces through its ASE calculator, the labels from the frames, numpy for the statistics."""
    from potentials.calculator import Calculator

    model = ACSFModel(["Cu"], hidden=(8,), seed=4)
    data = frames[:6]
    de, df = [], []
    for atoms in data:
        probe = atoms.copy()
        probe.calc = Calculator(model)
        de.append((probe.get_potential_energy() - atoms.get_potential_energy()) / len(atoms))
        df.append(probe.get_forces() - atoms.get_forces())
    de, df = 1000 * np.array(de), 1000 * np.concatenate(df).ravel()
    e = evaluate(model, prepare(model, data))
    assert e.structures == len(data)
    np.testing.assert_allclose([e.energy_mae, e.energy_rmse], [np.abs(de).mean(), np.sqrt((de ** 2).mean())],
                               rtol=1e-9)
    np.testing.assert_allclose([e.force_mae, e.force_rmse], [np.abs(df).mean(), np.sqrt((df ** 2).mean())],
                               rtol=1e-9)
    assert e.seconds > 0


def test_a_term_switched_off_in_training_is_not_fitted_by_the_readout_refit(frames):
    """Stress weight 0 in every stage: the stress labels must change nothing, the final read-out
    refit included (it has its own default weights); with the weight on, they do change the model."""
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(7)
    data = frames[:12]
    scrambled = []
    for a in data:
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces(),
                                       stress=rng.normal(size=6) * 0.05)  # nonsense stresses
        scrambled.append(b)

    def trained(frames_, stress_weight):
        model = ACSFModel(["Cu"], hidden=(6,), seed=0)
        train(model, frames_, TrainConfig(epochs=3, batch_size=4, stress_weight=stress_weight,
                                          stage_two_stress_weight=stress_weight, progress=False))
        return np.concatenate([np.ravel(w) for w in ds.tree.flatten(model.weights)[0]])

    np.testing.assert_array_equal(trained(data, 0.0), trained(scrambled, 0.0))
    assert not np.array_equal(trained(data, 100.0), trained(scrambled, 100.0))
