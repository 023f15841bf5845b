"""Committees: the calculator's mean and spread against the members' own calculators, one file
for all members, a spread that grows away from the training data, MD that flags and stops on
the spread, and selection of the most uncertain frames."""

import numpy as np
import pytest
from ase.build import bulk

from potentials.calculator import Calculator
from potentials.committee import Committee, select_uncertain, train_committee
from potentials.md import run_md
from potentials.model import ACSFModel, load_model
from potentials.painn import PaiNNModel
from potentials.training import TrainConfig


def _members():
    out = []
    for k in range(3):
        m = ACSFModel(["Cu", "Au"], hidden=(6,), seed=k)
        m.reference = {"Cu": -3.0 - 0.01 * k, "Au": -3.5}
        out.append(m)
    return out


def test_mean_and_spread_are_those_of_the_members(crystal, tmp_path):
    members = _members()
    committee = Committee(members)
    atoms = crystal()
    atoms.calc = Calculator(committee)
    E, F, S = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    singles = []
    for m in members:
        a = atoms.copy()
        a.calc = Calculator(m)
        singles.append((a.get_potential_energy(), a.get_forces(), a.get_stress()))
    Es, Fs, Ss = (np.array([s[k] for s in singles]) for k in range(3))
    assert E == pytest.approx(Es.mean(), rel=1e-12)
    np.testing.assert_allclose(F, Fs.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(S, Ss.mean(axis=0), atol=1e-14)
    assert atoms.calc.results["energy_std"] == pytest.approx(Es.std(), rel=1e-10)
    expected = np.sqrt(np.mean([np.sum((f - Fs.mean(axis=0)) ** 2, axis=1) for f in Fs], axis=0))
    np.testing.assert_allclose(atoms.calc.results["forces_std"], expected, atol=1e-12)
    path = tmp_path / "committee.npz"
    committee.save(path)
    again = load_model(path)
    assert isinstance(again, Committee) and len(again) == 3
    copy = atoms.copy()
    copy.calc = Calculator(again)
    assert copy.get_potential_energy() == E
    with pytest.raises(ValueError, match="members must share kind"):
        Committee([members[0], PaiNNModel(["Cu", "Au"], features=4, layers=1)])


def test_spread_grows_away_from_the_training_data_and_md_flags_and_stops(frames):
    md = [a for a in frames if a.info.get("config_type") == "md"]
    committee, histories = train_committee(lambda k: ACSFModel(["Cu"], hidden=(8,), seed=k), md[:16],
                                           TrainConfig(epochs=15, batch_size=4, learning_rate=1e-2, progress=False),
                                           size=3)
    assert len(histories) == 3 and all(h.errors["train"] for h in histories)
    near = md[16:]  # held out, but like the training data
    far = []
    for k, a in enumerate(near):
        b = a.copy()
        b.set_cell(b.cell * 0.93, scale_atoms=True)  # compressed 7 %: never seen
        b.rattle(0.1, seed=k)
        far.append(b)
    _, s_near = select_uncertain(committee, near, 1)
    _, s_far = select_uncertain(committee, far, 1)
    assert np.median(s_far) > 2 * np.median(s_near), (s_near, s_far)
    # selection: the largest spreads, as the calculator reports them
    mixed = near[:3] + far[:3]
    picked, scores = select_uncertain(committee, mixed, 2)
    by_calc = []
    for a in mixed:
        b = a.copy()
        b.calc = Calculator(committee)
        b.get_forces()
        by_calc.append(np.max(b.calc.results["forces_std"]))
    np.testing.assert_allclose(scores, by_calc, rtol=1e-12)
    assert sorted(picked.tolist()) == sorted(np.argsort(by_calc)[-2:].tolist())
    picked, _ = select_uncertain(committee, mixed, 3, min_separation=2)
    assert all(abs(a - b) >= 2 for a in picked for b in picked if a != b)
    # MD: flagged everywhere below the smallest spread, stopped at once with stop_on_uncertainty
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    run = run_md(atoms, Calculator(committee), 300, steps=10, interval=5, uncertainty_threshold=0.0,
                 stop_on_uncertainty=True)
    assert run.stopped_at == 0 and len(run.flagged) == 1
    run = run_md(atoms, Calculator(committee), 300, steps=10, interval=5, uncertainty_threshold=1e3)
    assert run.stopped_at is None and not run.flagged and len(run.uncertainty) == 3
