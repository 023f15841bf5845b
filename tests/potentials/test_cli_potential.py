"""diffsim potential generate → train → evaluate → md, in quick mode, and its failures."""

from diffsim.cli import main


def test_potential_workflow(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["potential", "generate", "--quick", "--size", "2", "--out", "d.db"]) == 0
    assert main(["potential", "train", "--data", "d.db", "--quick", "--hidden", "8", "--curve", "c.png"]) == 0
    assert main(["potential", "evaluate", "model.npz", "--data", "d.db", "--plot", "p.png"]) == 0
    assert main(["potential", "md", "model.npz", "--steps", "20", "--size", "2", "--plot", "m.png"]) == 0
    out = capsys.readouterr().out
    assert "force MAE" in out and "NVE drift" in out
    for name in ("d.db", "model.npz", "c.png", "p.png", "m.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_potential_errors_exit_nonzero(tmp_path, capsys):
    assert main(["potential", "train", "--data", str(tmp_path / "missing.db")]) == 2
    assert "missing.db: no such file" in capsys.readouterr().err
    assert main(["potential", "evaluate", str(tmp_path / "none.npz"), "--data", "x.db"]) == 2
    assert "none.npz: no such file" in capsys.readouterr().err
    assert main(["potential", "generate", "--element", "Fe", "--out", str(tmp_path / "fe.db")]) == 2
    assert "EMT has no parameters for ['Fe']" in capsys.readouterr().err


def test_painn_through_the_same_commands(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["potential", "generate", "--quick", "--size", "2", "--out", "d.db"]) == 0
    assert main(["potential", "train", "--data", "d.db", "--quick", "--model", "painn", "--features", "8",
                 "--stress-weight", "0", "--out", "p.npz"]) == 0
    assert main(["potential", "evaluate", "p.npz", "--data", "d.db"]) == 0
    assert main(["potential", "md", "p.npz", "--steps", "10", "--size", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("force MAE") == 1 and "F MAE" in out and "NVE drift" in out
