"""The code base stays ruff-clean and keeps its layering (see DESIGN.md)."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ruff_clean():
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_engine_does_not_import_applications():
    pattern = re.compile(r"^\s*(from|import)\s+(potentials|trajectories)\b", re.M)
    for path in (ROOT / "diffsim").rglob("*.py"):
        if path.name == "cli.py":
            continue  # the CLI may, inside its subcommands
        assert not pattern.search(path.read_text()), f"{path} imports an application package"
