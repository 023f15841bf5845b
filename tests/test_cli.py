"""The diffsim command: help, version and the demo."""

import subprocess
import sys

from diffsim.cli import main


def test_demo_quick_runs_and_reports(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "closed form" in out and "relu + skip" in out and "adjoint - bptt" in out


def test_help_lists_subcommands(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_console_script_version():
    r = subprocess.run([sys.executable, "-m", "diffsim.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("diffsim ")
