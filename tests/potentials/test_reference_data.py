"""EMT reference data: generated, stored atomically, read back and checked."""

import numpy as np
import pytest
from ase.calculators.emt import EMT

from potentials.reference_data import DatasetError, generate_emt_dataset, load_dataset


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "cu.db"
    n = generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300, 900), md_samples=3, md_interval=5,
                             rattled=2, strained=2, vacancies=2, eos=0, progress=False)
    return path, n


def test_every_record_is_labelled_by_emt(small_db):
    path, n = small_db
    frames = load_dataset(path)
    assert len(frames) == n == 2 * 3 + 6
    sizes = {len(a) for a in frames}
    assert sizes == {32, 31}  # vacancies remove one atom
    for atoms in frames[:: max(1, n // 4)]:
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        fresh = atoms.copy()
        fresh.calc = EMT()
        assert e == pytest.approx(fresh.get_potential_energy(), abs=1e-10)
        np.testing.assert_allclose(f, fresh.get_forces(), atol=1e-10)


def test_alloy_data_holds_only_its_elements_and_an_unknown_element_leaves_no_file(tmp_path):
    n = generate_emt_dataset(tmp_path / "cuau.db", "CuAu", size=(2, 2, 2), temperatures=(), rattled=2, strained=0,
                             vacancies=0, eos=0, progress=False)
    symbols = set().union(*(set(a.get_chemical_symbols()) for a in load_dataset(tmp_path / "cuau.db")))
    assert n == 2 and symbols <= {"Cu", "Au"}
    with pytest.raises(DatasetError, match="no parameters for \\['Fe'\\]"):
        generate_emt_dataset(tmp_path / "fe.db", "Fe", progress=False)
    assert not (tmp_path / "fe.db").exists()


def test_bad_datasets_are_named(tmp_path):
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset(tmp_path / "missing.db")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not sqlite" * 10)
    with pytest.raises(DatasetError, match="cannot read it"):
        load_dataset(broken)
    from ase import Atoms
    from ase.io import write

    write(tmp_path / "nolabels.extxyz", Atoms("Cu2", positions=[[0, 0, 0], [2, 0, 0]]))
    with pytest.raises(DatasetError, match="record 0 has no stored energy or forces"):
        load_dataset(tmp_path / "nolabels.extxyz")


def test_interrupted_generation_leaves_no_file(tmp_path, monkeypatch):
    import potentials.reference_data as rd

    calls = {"n": 0}
    original = rd._labelled

    def flaky(atoms):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(atoms)

    monkeypatch.setattr(rd, "_labelled", flaky)
    with pytest.raises(KeyboardInterrupt):
        generate_emt_dataset(tmp_path / "x.db", "Cu", size=(2, 2, 2), temperatures=(), rattled=5, strained=0,
                             vacancies=0, eos=0, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_extxyz_round_trip_keeps_the_emt_labels(tmp_path):
    n = generate_emt_dataset(tmp_path / "cu.extxyz", "Cu", size=(2, 2, 2), temperatures=(), rattled=3, strained=0,
                             vacancies=0, eos=0, progress=False)
    frames = load_dataset(tmp_path / "cu.extxyz")
    assert len(frames) == n == 3
    fresh = frames[0].copy()
    fresh.calc = EMT()
    np.testing.assert_allclose(frames[0].get_forces(), fresh.get_forces(), atol=1e-6)  # extxyz is text: ~8 digits


def test_alloy_compositions_vary_and_follow_vegards_lattice_constant():
    from ase.data import atomic_numbers, reference_states

    from potentials.reference_data import _structure

    rng = np.random.default_rng(0)
    a_cu, a_au = (reference_states[atomic_numbers[e]]["a"] for e in ("Cu", "Au"))
    fractions = []
    for _ in range(60):
        atoms = _structure(["Cu", "Au"], (2, 2, 2), rng)
        x = np.mean(atoms.numbers == atomic_numbers["Au"])
        fractions.append(x)
        assert atoms.cell[0, 0] / 2 == pytest.approx((1 - x) * a_cu + x * a_au, rel=1e-12)
        assert np.all(np.diag(atoms.cell) > 0) and len(atoms) == 32
    assert min(fractions) < 0.15 and max(fractions) > 0.85  # the composition spans the range


def test_a_third_of_alloy_structures_are_pure_elements():
    """The end members (pure Cu, pure Au) a validation asks about are a third of the alloy data, not
    the ~3 % each a composition uniform on the simplex gives a 32-atom cell (1/33)."""
    from ase.data import atomic_numbers

    from potentials.reference_data import _structure

    rng = np.random.default_rng(3)
    fractions = np.array([np.mean(_structure(["Cu", "Au"], (2, 2, 2), rng).numbers == atomic_numbers["Au"])
                          for _ in range(300)])
    pure_cu, pure_au = np.mean(fractions == 0.0), np.mean(fractions == 1.0)
    # each 1/6 + (2/3)(1/33) = 0.19; binomial sd over 300 draws 0.023
    assert 0.12 < pure_cu < 0.27 and 0.12 < pure_au < 0.27
    assert np.mean((fractions > 0.25) & (fractions < 0.75)) > 0.3  # the mixed compositions remain


def test_vacancy_cells_can_be_larger_than_the_rest_and_emt_labels_them(tmp_path):
    # a vacancy in a 3x3x3 fcc supercell: 4 * 27 - 1 atoms, the other cells 4 * 8; each row is EMT's
    path = tmp_path / "vac.db"
    generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300.0,), md_samples=1, rattled=1, strained=0,
                         vacancies=2, eos=0, vacancy_size=(3, 3, 3), progress=False)
    frames = load_dataset(path)
    sizes = sorted(len(a) for a in frames)
    assert sizes == [32, 32, 107, 107]
    for atoms in frames:
        reference = atoms.copy()
        reference.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    with pytest.raises(DatasetError, match="size must be three repetitions"):
        generate_emt_dataset(tmp_path / "bad.db", "Cu", size=(2, 2, 2), vacancy_size=(3, 0, 3), progress=False)
