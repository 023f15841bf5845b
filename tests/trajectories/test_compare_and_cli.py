"""trajectories.compare and the control/compare subcommands."""

import numpy as np
import pytest

from diffsim.cli import main
from trajectories import ProblemError, compare, solve
from trajectories.systems import SYSTEMS, pendulum_swingup


def test_compare_measures_the_adjoint_gap_and_its_order(tmp_path):
    c = compare(pendulum_swingup(N=50), steps=(25, 50, 100, 200), optimize=True, repeats=1)
    rows = {r["method"]: r for r in c.rows}
    assert rows["checkpointed"]["gap"] == 0.0 and rows["bptt"]["gap"] == 0.0
    assert 1e-10 < rows["adjoint"]["gap"] < 1e-3
    assert c.fd_error < 1e-6
    assert abs(c.slope - 4.0) < 0.4 and np.all(np.diff(np.log(c.gaps[:, 1])) < 0)
    costs = {k: s.cost for k, s in c.solutions.items()}
    assert all(s.status for s in c.solutions.values())
    assert abs(costs["adjoint"] - costs["bptt"]) / costs["bptt"] < 1e-6
    assert "measured" in c.table()
    c.plot(str(tmp_path / "cmp.png"))
    assert (tmp_path / "cmp.png").stat().st_size > 20_000


def test_solve_dispatches_and_raises_for_unknown_methods():
    sol = solve(SYSTEMS["double_integrator_lqr"](N=30), method="multiple")
    assert sol.status and sol.method == "multiple" and sol.solver == "ip"
    with pytest.raises(ProblemError, match="unknown method"):
        solve(SYSTEMS["double_integrator_lqr"](N=30), method="magic")


def test_cli_control_solves_plots_and_fails_cleanly(tmp_path, capsys):
    assert main(["control", "double_integrator_lqr", "--steps", "40", "--plot", str(tmp_path / "u.png")]) == 0
    out = capsys.readouterr().out
    assert "solved" in out and (tmp_path / "u.png").exists()
    assert main(["control", "pendulum", "--steps", "0"]) == 2  # a usage error, refused before any work
    assert "--steps: 0 is not a whole number ≥ 1" in capsys.readouterr().err


def test_cli_compare_prints_the_table(capsys, tmp_path):
    assert main(["compare", "pendulum", "--steps", "40", "--no-optimize", "--plot", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "adjoint - bptt" in out and (tmp_path / "c.png").exists()


def test_compare_at_an_optimum_uses_the_lagrangian_and_shows_ddp_costates():
    """At the constrained optimum the control-gradient density vanishes (it was ±60 with unit
    weights) and the four costates agree: BPTT, checkpointed BPTT, the adjoint (to O(dt⁴)) and
    DDP's V_x; the least-squares multipliers equal DDP's own."""
    from trajectories.compare import lagrange_multipliers
    from trajectories.ddp import ddp

    problem = pendulum_swingup(N=60)
    opt = ddp(problem)
    assert opt.status
    c = compare(problem, solution=opt, steps=None, optimize=False, repeats=1)
    assert np.allclose(c.multipliers, opt.extra["multipliers"]["eq"])
    assert np.allclose(lagrange_multipliers(problem, opt.u), opt.extra["multipliers"]["eq"], rtol=1e-5)
    free = np.abs(opt.u) < 4.0 - 1e-9
    assert np.max(np.abs(c.densities["bptt"][free])) < 1e-5
    assert np.max(np.abs(c.costates["ddp"] - c.costates["bptt"])) < 1e-7 * np.max(np.abs(c.costates["bptt"]))
    assert np.max(np.abs(c.costates["adjoint"] - c.costates["bptt"])) < 1e-3 * np.max(np.abs(c.costates["bptt"]))
    assert "Lagrangian" in c.table() and "ddp" in c.table()
    unit = compare(problem, U=opt.u, steps=None, optimize=False, repeats=1)
    assert np.max(np.abs(unit.densities["bptt"][free])) > 1.0  # the old view: not the optimal costates
