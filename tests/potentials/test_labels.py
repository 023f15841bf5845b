"""Label keys (calculator results, REF_* and named keys), partial labels, stress shapes, units
and virials, and the messages for bad input: each names the record and the key."""

import numpy as np
import pytest
from ase.io import write

from potentials.labels import LabelKeys
from potentials.model import ACSFModel
from potentials.reference_data import DatasetError, load_dataset
from potentials.structures import prepare


def _as_ref_keys(frames, prefix="REF_"):
    """Copies without a calculator, labels under MACE's REF_* keys (as MACE users store them)."""
    out = []
    for a in frames:
        b = a.copy()
        b.calc = None
        b.info[f"{prefix}energy"] = a.get_potential_energy()
        b.arrays[f"{prefix}forces"] = a.get_forces().copy()
        b.info[f"{prefix}stress"] = a.get_stress()  # 6 Voigt values
        out.append(b)
    return out


def test_ref_keys_in_extxyz_read_as_the_calculator_results(frames, tmp_path):
    path = tmp_path / "ref.xyz"
    write(path, _as_ref_keys(frames[:6]), format="extxyz")
    loaded = load_dataset(path)
    model = ACSFModel(["Cu"], hidden=(4,))
    got, want = prepare(model, loaded), prepare(model, frames[:6])
    for g, w, a in zip(got, want, frames[:6]):
        # extxyz keeps 8 decimals
        assert g.energy == pytest.approx(a.get_potential_energy(), abs=1e-7)
        np.testing.assert_allclose(g.forces, a.get_forces(), atol=1e-7)
        np.testing.assert_allclose(g.stress, a.get_stress(voigt=False), atol=1e-8)
        assert g.has_stress and w.has_stress


def test_named_keys_virials_and_a_key_that_names_nothing(frames, tmp_path):
    mine = _as_ref_keys(frames[:3], prefix="dft_")
    for a, src in zip(mine, frames[:3]):
        del a.info["dft_stress"]
        a.info["my_virial"] = -src.get_stress(voigt=False).ravel() * src.get_volume()  # 9 values
    keys = LabelKeys(energy="dft_energy", forces="dft_forces", virials="my_virial")
    [st] = prepare(ACSFModel(["Cu"], hidden=(4,)), mine[:1], keys)
    np.testing.assert_allclose(st.stress, frames[0].get_stress(voigt=False), atol=1e-12)
    path = tmp_path / "mine.xyz"
    write(path, mine, format="extxyz")
    with pytest.raises(DatasetError, match=r"no record has energy under the key 'E_dft'; keys in record 0: .*dft_en"):
        load_dataset(path, LabelKeys(energy="E_dft"))


def test_no_labels_lists_the_keys_found(frames, tmp_path):
    bare = frames[0].copy()
    bare.calc = None
    bare.info["weird_E"] = 1.0
    path = tmp_path / "bare.xyz"
    write(path, [bare], format="extxyz")
    with pytest.raises(DatasetError, match=r"record 0 has no stored energy or forces; keys found: .*info:weird_E"):
        load_dataset(path)


def test_bad_stress_shape_units_and_a_missing_label(frames):
    model = ACSFModel(["Cu"], hidden=(4,))
    data = _as_ref_keys(frames[:3])
    data[1].info["REF_stress"] = np.ones(4) * 1e-3
    with pytest.raises(DatasetError, match=r"record 1: REF_stress has shape \(4,\); a stress is 6 Voigt"):
        prepare(model, data)
    data[1].info["REF_stress"] = frames[1].get_stress() / 0.00624150913  # in GPa
    with pytest.raises(DatasetError, match="record 1: REF_stress .* not a stress in eV/Å³"):
        prepare(model, data)
    data = _as_ref_keys(frames[:3])
    del data[2].info["REF_energy"]
    with pytest.raises(DatasetError, match="record 2 has no energy .* config_energy_weight=0"):
        prepare(model, data)
    data[2].info["config_energy_weight"] = 0.0  # kept on purpose: its forces still count
    structures = prepare(model, data)
    assert not structures[2].has_energy and structures[2].has_forces


def test_energy_only_and_force_only_data(frames):
    model = ACSFModel(["Cu"], hidden=(4,))
    energy_only = _as_ref_keys(frames[:4])
    force_only = _as_ref_keys(frames[:4])
    for a, b in zip(energy_only, force_only):
        del a.arrays["REF_forces"], a.info["REF_stress"]
        del b.info["REF_energy"], b.info["REF_stress"]
    e = prepare(model, energy_only)
    f = prepare(model, force_only)
    assert all(s.has_energy and not s.has_forces for s in e)
    assert all(s.has_forces and not s.has_energy for s in f)
