"""The diffsim command: help, version and the demo."""

import json
import math
import subprocess
import sys

import pytest

from diffsim.cli import DEMO_FILES, build_parser, main


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One quick demo run (about 20 s warm) shared by the checks below."""
    folder = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--quick", "--out", str(folder)])
    return code, folder, json.loads((folder / "results.json").read_text())


def test_demo_quick_writes_every_promised_file(quick_demo, capsys):
    code, folder, results = quick_demo
    assert code == 0, [c for c in results["checks"] if not c["passed"]]
    for name in DEMO_FILES:
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    assert sorted(results["files"]) == sorted(DEMO_FILES)
    assert not list(folder.glob(".partial-*"))  # every file was renamed into place
    md = (folder / "report.md").read_text()
    for name in DEMO_FILES:
        if name.endswith(".png"):
            assert f"]({name})" in md, name
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == sum(n.endswith(".png") for n in DEMO_FILES)


def test_demo_report_states_its_numbers(quick_demo):
    _, folder, results = quick_demo
    md = (folder / "report.md").read_text()
    pot, ctl = results["potential"], results["control"]
    assert f"{pot['force_mae_meV_per_A']:.1f}" in md and f"{pot['energy_mae_meV_per_atom']:.2f}" in md
    assert f"{pot['nve_drift_meV_per_atom_per_ps']:.2g}" in md
    assert f"slope {ctl['slope']:.2f}" in md and "Checks" in md


def test_demo_truths(quick_demo):
    _, _, results = quick_demo
    ctl, pot, eng = results["control"], results["potential"], results["engine"]
    assert eng["closed_form_error"] < 1e-14
    assert all(ctl["status"].values())
    assert abs(ctl["costs"]["adjoint"] - ctl["costs"]["bptt"]) / ctl["costs"]["bptt"] < 1e-4
    assert ctl["gradient_gaps"]["adjoint"] < 1e-3 and ctl["gradient_gaps"]["checkpointed"] < 1e-12
    gaps = ctl["gaps_vs_dt"]
    assert all(a > b for a, b in zip(gaps, gaps[1:])) and abs(ctl["slope"] - 4) < 0.5  # RK4: fourth order
    assert pot["force_mae_meV_per_A"] < 0.5 * pot["force_spread_meV_per_A"]
    assert math.isfinite(pot["nve_drift_meV_per_atom_per_ps"]) and abs(pot["nve_drift_meV_per_atom_per_ps"]) < 1.0
    assert all(c["passed"] for c in results["checks"])


def test_demo_help_names_its_options():
    text = build_parser()._subparsers._group_actions[0].choices["demo"].format_help()
    assert "--quick" in text and "--out" in text and "report.md" in text


def test_help_lists_subcommands(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_console_script_version():
    r = subprocess.run([sys.executable, "-m", "diffsim.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("diffsim ")


def test_every_option_of_every_command_has_help():
    import argparse

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield from walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield name, action

    missing = [f"{name}: {a.dest}" for name, a in walk(build_parser(), "diffsim") if not a.help]
    assert not missing, missing


@pytest.mark.slow
def test_each_application_provides_its_demo_section_as_one_call(tmp_path):
    """trajectories.cli.demo_section and potentials.cli.demo_section(report, size) -> (results,
    checks): every check passes on the quick size and each section writes its own figures."""
    import potentials.cli
    import trajectories.cli
    from diffsim.report import Report

    for app in (trajectories.cli, potentials.cli):
        folder = tmp_path / app.__name__
        folder.mkdir()
        results, checks = app.demo_section(Report(folder, "one section"), "quick")
        assert isinstance(results, dict) and results and checks
        assert all(c["passed"] for c in checks), [c for c in checks if not c["passed"]]
        for section in app.DEMO_SECTIONS:
            for name in section.files:
                assert (folder / name).stat().st_size > 0, name
