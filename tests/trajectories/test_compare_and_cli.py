"""trajectories.compare and the control/compare subcommands; solve() and `diffsim control` reach
the exact optimum of the discretised LQR problem (a discrete Riccati recursion written here)."""

import re

import numpy as np
import pytest

from diffsim.cli import main
from trajectories import ProblemError, compare, solve
from trajectories.systems import SYSTEMS, pendulum_swingup


def discrete_lqr_optimum(N, T=5.0, x0=(1.0, 0.0)):
    """Exact optimum of double_integrator_lqr as diffsim discretises it (piecewise-constant u, one
    RK4 step per interval on (x, cost)): for ẋ = Ax + Bu the RK4 stages are linear maps of z = (x, u),
    so x_{k+1} = Φx + Γu and the step cost is zᵀMz, M the stages' weighted xᵀx + u²; then the
    backward Riccati recursion with the cross term x·u gives J* = x0ᵀP_0x0 and u_k = −K_k x_k."""
    h = T / N
    A, B = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0]])
    S1, Eu = np.hstack([np.eye(2), np.zeros((2, 1))]), np.array([[0.0, 0.0, 1.0]])
    stages, slopes = [S1], []
    for c in (0.5, 0.5, 1.0):
        slopes.append(A @ stages[-1] + B @ Eu)
        stages.append(S1 + c * h * slopes[-1])
    slopes.append(A @ stages[-1] + B @ Eu)
    step = S1 + h / 6 * (slopes[0] + 2 * slopes[1] + 2 * slopes[2] + slopes[3])
    Phi, Gam = step[:, :2], step[:, 2:]
    Q = [S.T @ S + Eu.T @ Eu for S in stages]
    M = h / 6 * (Q[0] + 2 * Q[1] + 2 * Q[2] + Q[3])
    P, gains = np.eye(2), []  # terminal cost xᵀx
    for _ in range(N):
        Mxu, Muu = M[:2, 2:] + Phi.T @ P @ Gam, M[2:, 2:] + Gam.T @ P @ Gam
        K = np.linalg.solve(Muu, Mxu.T)
        P = M[:2, :2] + Phi.T @ P @ Phi - Mxu @ K
        gains.append(K)
    x, U = np.array(x0), []
    for K in reversed(gains):
        U.append(-K @ x)
        x = Phi @ x + Gam @ U[-1]
    return float(np.array(x0) @ P @ np.array(x0)), np.array(U)


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


@pytest.mark.parametrize("method", ["single", "multiple"])
def test_solve_dispatches_and_reaches_the_discrete_riccati_optimum(method):
    J_star, U_star = discrete_lqr_optimum(30)
    sol = solve(SYSTEMS["double_integrator_lqr"](N=30), method=method)
    assert sol.status and sol.method == method, sol.message
    assert sol.cost == pytest.approx(J_star, rel=1e-10)
    np.testing.assert_allclose(sol.u, U_star, atol=1e-5)


def test_solve_raises_for_unknown_methods():
    sol = solve(SYSTEMS["double_integrator_lqr"](N=30), method="multiple")
    assert sol.status and sol.method == "multiple" and sol.solver == "ip"
    with pytest.raises(ProblemError, match="unknown method"):
        solve(SYSTEMS["double_integrator_lqr"](N=30), method="magic")


def test_cli_control_prints_the_discrete_riccati_optimum_plots_and_fails_cleanly(tmp_path, capsys):
    assert main(["control", "double_integrator_lqr", "--steps", "40", "--plot", str(tmp_path / "u.png")]) == 0
    out = capsys.readouterr().out
    cost = float(re.search(r"solved .* cost ([0-9.e+-]+),", out).group(1))
    assert cost == pytest.approx(discrete_lqr_optimum(40)[0], rel=1e-7)  # printed to 8 digits
    assert (tmp_path / "u.png").stat().st_size > 10_000
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
