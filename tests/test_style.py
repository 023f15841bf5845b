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


def test_one_place_picks_the_matplotlib_backend():
    """diffsim.files.pyplot chooses Agg when a figure is saved; nothing else calls matplotlib.use
    (an interactive session that chose a backend keeps it)."""
    pattern = re.compile(r"matplotlib\.use\(|\bmpl\.use\(")
    places = [path.relative_to(ROOT).as_posix()
              for folder in ("diffsim", "trajectories", "potentials", "examples", "benchmarks")
              for path in (ROOT / folder).rglob("*.py") if pattern.search(path.read_text())]
    assert places == ["diffsim/files.py"], places
