"""diffsim potential generate → train → evaluate → md, in quick mode, and its failures. The errors
`evaluate` prints are recomputed here structure by structure through the ASE calculator against
the EMT labels stored in the dataset."""

import re

import numpy as np
import pytest

from diffsim.cli import main
from potentials.calculator import Calculator
from potentials.model import load_model
from potentials.reference_data import load_dataset


def calculator_errors(model_path, data_path):
    """(energy MAE meV/atom, force MAE meV/Å) of a saved model on a dataset, one ASE calculation a frame."""
    model = load_model(model_path)
    e_err, f_err = [], []
    for labelled in load_dataset(data_path):
        atoms = labelled.copy()
        atoms.calc = Calculator(model)
        e_err.append(abs(atoms.get_potential_energy() - labelled.get_potential_energy()) / len(atoms))
        f_err.append(np.abs(atoms.get_forces() - labelled.get_forces()).ravel())
    return 1000 * np.mean(e_err), 1000 * np.mean(np.concatenate(f_err))


def assert_printed_errors_are_true(out, model_path, data_path):
    printed = re.search(r"(\d+) structures: energy MAE ([0-9.]+) meV/atom, force MAE ([0-9.]+) meV/Å", out)
    assert printed, out
    energy, force = calculator_errors(model_path, data_path)
    assert int(printed.group(1)) == len(load_dataset(data_path))
    assert float(printed.group(2)) == pytest.approx(energy, abs=0.0051)  # printed with 2 decimals
    assert float(printed.group(3)) == pytest.approx(force, abs=0.051)  # with 1


def test_potential_workflow_prints_true_errors_and_writes_its_files(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["potential", "generate", "--quick", "--size", "2", "--out", "d.db"]) == 0
    assert "wrote 40 EMT-labelled Cu configurations" in capsys.readouterr().out
    assert len(load_dataset("d.db")) == 40  # 2 temperatures × 10 MD samples + 5 rattled, strained, vacancies, EOS
    assert main(["potential", "train", "--data", "d.db", "--quick", "--hidden", "8", "--curve", "c.png"]) == 0
    assert main(["potential", "evaluate", "model.npz", "--data", "d.db", "--plot", "p.png"]) == 0
    assert_printed_errors_are_true(capsys.readouterr().out, "model.npz", "d.db")
    assert main(["potential", "md", "model.npz", "--steps", "20", "--size", "2", "--plot", "m.png"]) == 0
    assert re.search(r"NVE drift -?[0-9.]+ meV/atom/ps", capsys.readouterr().out)
    for name in ("d.db", "model.npz", "c.png", "p.png", "m.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_potential_errors_exit_nonzero(tmp_path, capsys):
    assert main(["potential", "train", "--data", str(tmp_path / "missing.db")]) == 2
    assert "missing.db: no such file" in capsys.readouterr().err
    assert main(["potential", "evaluate", str(tmp_path / "none.npz"), "--data", "x.db"]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err
    assert main(["potential", "generate", "--element", "Fe", "--out", str(tmp_path / "fe.db")]) == 2
    assert "EMT has no parameters for ['Fe']" in capsys.readouterr().err


def test_painn_through_the_same_commands_prints_true_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["potential", "generate", "--quick", "--size", "2", "--out", "d.db"]) == 0
    assert main(["potential", "train", "--data", "d.db", "--quick", "--model", "painn", "--features", "8",
                 "--stress-weight", "0", "--out", "p.npz"]) == 0
    capsys.readouterr()
    assert main(["potential", "evaluate", "p.npz", "--data", "d.db"]) == 0
    assert_printed_errors_are_true(capsys.readouterr().out, "p.npz", "d.db")
    assert main(["potential", "md", "p.npz", "--steps", "10", "--size", "2"]) == 0
    assert "NVE drift" in capsys.readouterr().out
