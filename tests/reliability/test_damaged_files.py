"""Damaged models and datasets are refused, naming the file and the record, never used: and a
SIGKILLed generate leaves either no dataset or a complete one."""

import random
import signal
import time
import zipfile

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from potentials.model import ACSFModel, ModelFileError, load_model
from potentials.reference_data import DatasetError, check_record, load_dataset
from potentials.training import prepare

from .reliability_helpers import start_python


def _labelled(energy=-3.0, forces=None, n=4):
    a = bulk("Cu", cubic=True)[:n]
    a.calc = SinglePointCalculator(a, energy=energy, forces=np.zeros((n, 3)) if forces is None else forces)
    return a


@pytest.mark.parametrize("damage", ["truncate", "half", "empty", "flip"])
def test_a_damaged_model_file_is_refused(tiny_model, tmp_path, damage):
    blob = bytearray(tiny_model.read_bytes())
    if damage == "flip":  # a flipped byte inside a weight array: the zip checksum catches it
        blob[len(blob) // 2] ^= 0xFF
    blob = {"truncate": blob[:100], "half": blob[: len(blob) // 2], "empty": b"", "flip": blob}[damage]
    path = tmp_path / "m.npz"
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="m.npz"):
        load_model(path)


def test_nan_weights_and_missing_arrays_are_refused(tiny_model, tmp_path):
    with np.load(tiny_model) as f:
        arrays = {k: f[k] for k in f.files}
    bad = dict(arrays, **{"weight/0": np.full_like(arrays["weight/0"], np.nan)})
    np.savez(tmp_path / "nan.npz", **bad)
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(tmp_path / "nan.npz")
    np.savez(tmp_path / "nover.npz", **{k: v for k, v in arrays.items() if k != "format_version"})
    with pytest.raises(ModelFileError, match="damaged or incomplete"):
        load_model(tmp_path / "nover.npz")
    np.savez(tmp_path / "nobuf.npz", **{k: v for k, v in arrays.items() if not k.startswith("buffer/")})
    with pytest.raises(ModelFileError, match="damaged or incomplete"):
        load_model(tmp_path / "nobuf.npz")


@pytest.mark.parametrize("frame, says", [
    (_labelled(forces=np.zeros((3, 3))), "record 1: calculator's forces has shape (3, 3), expected (4, 3)"),
    (_labelled(energy=np.nan), "record 1: calculator's energy is nan"),
    (_labelled(forces=np.full((4, 3), np.inf)), "record 1: calculator's forces contains NaN or inf"),
    (_labelled(energy=-3.0e5), "not a plausible energy in eV"),
    (_labelled(forces=np.full((4, 3), 5e4)), "not plausible: store forces in eV/Å"),
])
def test_bad_records_are_named(frame, says):
    with pytest.raises(DatasetError, match=says.replace("(", r"\(").replace(")", r"\)")):
        prepare(ACSFModel(["Cu"], hidden=(4,)), [_labelled(), frame])


def test_a_record_without_labels_or_with_a_bad_cell_is_named():
    plain = bulk("Cu", cubic=True)
    with pytest.raises(DatasetError, match="record 3: no stored energy and forces"):
        check_record(plain, 3)
    flat = _labelled()
    flat.cell[2] = 0.0
    with pytest.raises(DatasetError, match="cell vectors"):
        check_record(flat, 0)


def test_a_bad_extxyz_record_is_named_with_the_file(tmp_path):
    from ase.io import write

    write(tmp_path / "d.xyz", [_labelled(), _labelled(), _labelled(energy=np.nan)], format="extxyz")
    with pytest.raises(DatasetError, match=r"d.xyz: record 2: calculator.s energy is nan"):
        load_dataset(tmp_path / "d.xyz")


@pytest.mark.parametrize("cut", [0.05, 0.5, 0.9])
def test_a_truncated_database_is_refused(tiny_dataset, tmp_path, cut):
    blob = tiny_dataset.read_bytes()
    (tmp_path / "cut.db").write_bytes(blob[: int(cut * len(blob))])
    try:
        frames = load_dataset(tmp_path / "cut.db")
    except DatasetError as exc:
        assert "cut.db" in str(exc)
    else:  # SQLite may still read the pages before the cut: then every record it returns is whole
        assert 0 < len(frames) and all(len(a) == len(a.get_forces()) for a in frames)


def test_a_model_npz_is_not_a_dataset(tiny_model):
    assert zipfile.is_zipfile(tiny_model)
    with pytest.raises(DatasetError, match="cannot read it as a dataset"):
        load_dataset(tiny_model)


def _kill_generate(tmp_path, cache, delay):
    code = ("from potentials.reference_data import generate_emt_dataset as g; "
            "g('d.db', 'Cu', size=(2, 2, 2), temperatures=(300.0,), md_samples=60, rattled=40, strained=0, "
            "vacancies=0, eos=0, progress=False)")  # 60 + 40 rows: the defaults add 20 + 20 + 40 more cells
    child = start_python(code, cache, cwd=tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".partial-*")) and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    if (tmp_path / "d.db").exists():  # finished before the kill: complete
        assert len(load_dataset(tmp_path / "d.db")) == 100
    else:
        assert list(tmp_path.glob(".partial-*"))  # the kill's leftover, swept by the next write there
        from diffsim.files import write_atomic

        write_atomic(tmp_path / "other.txt", "x")
        assert not list(tmp_path.glob(".partial-*"))


def test_sigkill_during_generate_leaves_no_half_dataset(tmp_path, cache):
    _kill_generate(tmp_path, cache, random.Random(1).uniform(0.0, 0.5))


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
def test_sigkill_generate_soak(tmp_path, cache, trial):
    _kill_generate(tmp_path, cache, random.Random(100 + trial).uniform(0.0, 3.0))
