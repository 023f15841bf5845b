"""Every subcommand with bad arguments and bad files: exit status 2 (usage or input) or 1 (a
computation that failed), exactly one line on stderr naming the problem, no traceback, and no
work started (so nothing is written)."""

import os

import pytest

from diffsim.cli import main

from .reliability_helpers import run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_dataset, tiny_model):
    d = tmp_path_factory.mktemp("inputs")
    (d / "truncated.npz").write_bytes(tiny_model.read_bytes()[:300])
    (d / "text.xyz").write_text("this is not a structure\n")
    (d / "empty.db").write_bytes(b"")
    (d / "a_file").write_text("x")
    (d / "locked").mkdir()
    os.chmod(d / "locked", 0o500)
    return {"data": str(tiny_dataset), "model": str(tiny_model), "dir": d}


# (arguments, expected exit status, a word the one line must contain); {data}, {model}, {d} filled in
CASES = [
    (["nosuch"], 2, "invalid choice"),
    (["demo", "--out", "{d}/a_file"], 2, "a_file"),
    (["demo", "--out", "{d}/a_file/sub"], 2, "a_file"),
    (["demo", "--bogus"], 2, "--bogus"),
    (["control", "nosuch"], 2, "invalid choice"),
    (["control", "pendulum", "--steps", "0"], 2, "--steps"),
    (["control", "pendulum", "--steps", "-5"], 2, "--steps"),
    (["control", "pendulum", "--steps", "ten"], 2, "ten"),
    (["control", "pendulum", "--method", "magic"], 2, "--method"),
    (["control", "pendulum", "--plot", "{d}/a_file/x.png"], 2, "a_file"),
    (["control", "pendulum", "--plot", "{d}"], 2, "folder"),
    (["compare", "pendulum", "--steps", "0"], 2, "--steps"),
    (["compare", "pendulum", "--plot", "{d}/a_file/c.png"], 2, "a_file"),
    (["potential"], 2, "ACTION"),
    (["potential", "generate", "--size", "0"], 2, "--size"),
    (["potential", "generate", "--md-samples", "-1"], 2, "--md-samples"),
    (["potential", "generate", "--temperatures", "nan"], 2, "--temperatures"),
    (["potential", "generate", "--temperatures", "-300"], 2, "--temperatures"),
    (["potential", "generate", "--element", "Fe", "--out", "{d}/fe.db"], 2, "Fe"),
    (["potential", "generate", "--element", "cu", "--out", "{d}/cu.db"], 2, "cu"),
    (["potential", "generate", "--out", "{d}/data.txt"], 2, ".db"),
    (["potential", "generate", "--out", "{d}/a_file/x.db"], 2, "a_file"),
    (["potential", "train", "--data", "{d}/missing.db"], 2, "missing.db"),
    (["potential", "train", "--data", "{d}"], 2, "folder"),
    (["potential", "train", "--data", "{d}/text.xyz", "--out", "{d}/m.npz"], 2, "text.xyz"),
    (["potential", "train", "--data", "{d}/empty.db", "--out", "{d}/m.npz"], 2, "empty.db"),
    (["potential", "train", "--data", "{data}", "--epochs", "0"], 2, "--epochs"),
    (["potential", "train", "--data", "{data}", "--batch-size", "0"], 2, "--batch-size"),
    (["potential", "train", "--data", "{data}", "--hidden", "0"], 2, "--hidden"),
    (["potential", "train", "--data", "{data}", "--learning-rate", "-1"], 2, "--learning-rate"),
    (["potential", "train", "--data", "{data}", "--cutoff", "inf"], 2, "--cutoff"),
    (["potential", "train", "--data", "{data}", "--out", "{d}/a_file/m.npz"], 2, "a_file"),
    (["potential", "train", "--data", "{data}", "--out", "{data}"], 2, "same file"),
    (["potential", "train", "--data", "{data}", "--out", "{d}/m.npz", "--checkpoint", "{d}/m.npz"], 2, "same file"),
    (["potential", "train", "--data", "{data}", "--out", "{d}/m.npz", "--checkpoint", "{model}"], 2,
     "not a diffsim training checkpoint"),
    (["potential", "train", "--data", "{data}", "--out", "{d}/m.npz", "--optimizer", "lbfgs", "--checkpoint",
      "{d}/c.npz"], 2, "adam"),
    (["potential", "evaluate", "{d}/none.npz", "--data", "{data}"], 2, "none.npz"),
    (["potential", "evaluate", "{d}/truncated.npz", "--data", "{data}"], 2, "truncated.npz"),
    (["potential", "evaluate", "{data}", "--data", "{data}"], 2, "not a diffsim model"),
    (["potential", "evaluate", "{model}", "--data", "{model}"], 2, "dataset"),
    (["potential", "evaluate", "{model}"], 2, "--data"),
    (["potential", "md", "{model}", "--steps", "0"], 2, "--steps"),
    (["potential", "md", "{model}", "--timestep", "0"], 2, "--timestep"),
    (["potential", "md", "{model}", "--temperature", "-10"], 2, "--temperature"),
    (["potential", "md", "{model}", "--ensemble", "npe"], 2, "--ensemble"),
    (["potential", "md", "{model}", "--size", "0"], 2, "--size"),
    (["potential", "md", "{model}", "--structure", "{d}/nothere.xyz"], 2, "nothere.xyz"),
    (["potential", "md", "{model}", "--structure", "{d}/text.xyz"], 2, "text.xyz"),
    (["potential", "md", "{model}", "--plot", "{d}/a_file/md.png"], 2, "a_file"),
    (["potential", "md", "{d}/truncated.npz"], 2, "truncated.npz"),
]
if os.geteuid() != 0:  # root writes anywhere
    CASES.append((["potential", "generate", "--out", "{d}/locked/x.db"], 2, "locked"))


def _fill(args, files):
    return [a.format(data=files["data"], model=files["model"], d=files["dir"]) for a in args]


@pytest.mark.parametrize("args, status, word", CASES, ids=[" ".join(c[0])[:60] for c in CASES])
def test_bad_input_is_one_line_and_an_exit_status(args, status, word, files, capsys):
    before = sorted(p.name for p in files["dir"].iterdir())
    code = main(_fill(args, files))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == status, err
    assert len(lines) == 1, err
    assert "Traceback" not in err and word in lines[0], lines[0]
    assert sorted(p.name for p in files["dir"].iterdir()) == before  # refused before writing anything


def test_a_multi_element_model_needs_a_structure(tmp_path, capsys):
    from potentials.model import ACSFModel

    ACSFModel(["Cu", "Au"], hidden=(4,)).save(tmp_path / "cuau.npz")
    assert main(["potential", "md", str(tmp_path / "cuau.npz"), "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--structure FILE" in err and "Cu, Au" in err


def test_a_structure_with_elements_the_model_lacks_is_refused(tmp_path, tiny_model, capsys):
    from ase.build import bulk

    bulk("Ni", cubic=True).write(tmp_path / "ni.xyz")
    assert main(["potential", "md", str(tiny_model), "--structure", str(tmp_path / "ni.xyz")]) == 2
    assert "Ni, which the model does not know" in capsys.readouterr().err


def test_python_dash_m_diffsim_reports_in_one_line(cache, tmp_path):
    r = run_cli(["potential", "train", "--data", str(tmp_path / "missing.db")], cache)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.db" in r.stderr, r.stderr
    r = run_cli(["--version"], cache)
    assert r.returncode == 0 and r.stdout.startswith("diffsim ")


def test_an_os_error_during_the_work_is_one_line(tmp_path, capsys, monkeypatch, tiny_model):
    import diffsim.cli as cli

    def fail(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out.png"))

    assert cli._run(fail, cli.build_parser().parse_args(["potential", "md", str(tiny_model)])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out.png: permission denied" in err


def test_an_unexpected_error_is_one_line_and_exit_1(capsys, tiny_model):
    import diffsim.cli as cli

    def bug(args):
        raise KeyError("energy_scale")

    assert cli._run(bug, cli.build_parser().parse_args(["potential", "md", str(tiny_model)])) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "KeyError" in err and "DIFFSIM_TRACEBACK" in err


def test_a_solver_that_fails_exits_1(capsys):
    # N = 1 cannot swing the pendulum up: the optimiser reports failure, the command exits 1
    assert main(["control", "pendulum", "--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("diffsim control: failed")


def test_every_subcommand_runs_under_the_one_wrapper():
    """A subcommand registered later (set_defaults(func=...)) is run by the same wrapper: main
    routes every parsed command through _run."""
    import inspect

    import diffsim.cli as cli
    import potentials.cli
    import trajectories.cli

    source = inspect.getsource(cli._main)
    assert "_run(args.func, args)" in source
    for module, name in ((trajectories.cli, "_control"), (trajectories.cli, "_compare"), (cli, "_demo"),
                         (potentials.cli, "_potential_train"), (potentials.cli, "_potential_md")):
        body = inspect.getsource(getattr(module, name))
        assert "except" not in body, name  # no per-command try blocks


def test_a_missing_optional_package_is_one_line(capsys, tiny_model):
    import diffsim.cli as cli

    def needs(args):
        raise ModuleNotFoundError("No module named 'cyipopt'", name="cyipopt")

    assert cli._run(needs, cli.build_parser().parse_args(["potential", "md", str(tiny_model)])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install cyipopt" in err
