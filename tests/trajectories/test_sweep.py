"""Sweeps over a parameter grid and starting guesses, here and on a LocalCluster of two workers."""

import numpy as np
import pytest
from solution_equality import assert_same

from diffsim import cluster
from diffsim.cli import main
from trajectories import ProblemError, solve
from trajectories.sweep import random_start, sweep
from trajectories.systems import double_integrator_lqr, pendulum_swingup, riccati_lqr


@pytest.fixture(scope="module")
def dask_client():
    with cluster.client(workers=2) as c:
        yield c


def _monte_carlo(sigma, rng):
    """A stand-in for a closed-loop Monte-Carlo task: the spread of random disturbances."""
    return {"cost": float(np.std(rng.normal(0.0, sigma, 4000))), "status": True}


def test_lqr_sweep_meets_riccati_and_cluster_equals_serial(dask_client):
    grid = {"T": [1.0, 3.0]}
    serial = sweep(double_integrator_lqr, grid, starts=2, fixed={"N": 40}, progress=False)
    parallel = sweep(double_integrator_lqr, grid, starts=2, fixed={"N": 40}, client=dask_client, progress=False)
    for p, best in zip(serial.points, serial.best_rows()):
        J = riccati_lqr(p["T"])[0]  # the continuous optimum from the Riccati equation (scipy)
        assert best["status"] and abs(best["cost"] - J) / J < 1e-3
    for a_row, b_row in zip(serial.rows, parallel.rows):
        for a, b in zip(a_row, b_row):
            assert a["cost"] == b["cost"] and a["status"] == b["status"]
            np.testing.assert_array_equal(a["result"].u, b["result"].u)
    for row in serial.rows:  # LQR is convex: the random start 1 reaches start 0's optimum
        assert row[1]["cost"] == pytest.approx(row[0]["cost"], rel=1e-7)
    assert len(serial.table().splitlines()) == 3
    compact = sweep(double_integrator_lqr, grid, starts=2, fixed={"N": 40}, client=dask_client, progress=False,
                    solutions=False)  # what the table and the figure need, without the trajectories
    assert compact.table() == serial.table()
    assert all(r["result"] is None for row in compact.rows for r in row)
    assert [[r["cost"] for r in row] for row in compact.rows] == [[r["cost"] for r in row] for row in serial.rows]


def test_solutions_from_the_workers_equal_fresh_serial_solves_bit_for_bit(dask_client):
    # each worker's Solution travels in its compact wire form (diffsim.packing): every field,
    # multiplier, gain and the interior point's last iterate must arrive as a solve here makes them
    grid = {"T": [3.5, 4.5]}
    for method in ("multiple", "ddp"):
        parallel = sweep(pendulum_swingup, grid, starts=2, fixed={"N": 20}, method=method, client=dask_client,
                         progress=False)
        for p, row in zip(parallel.points, parallel.rows):
            for k, out in enumerate(row):
                ocp = pendulum_swingup(N=20, T=p["T"])
                start = {} if k == 0 else {"U0": random_start(ocp, cluster.task_rng(f"start-{k}", 0))}
                fresh = solve(ocp, method=method, **start)
                assert_same(fresh, out["result"], f"{method} T={p['T']} start {k}", skip=("seconds",))
                assert out["cost"] == fresh.cost and out["iterations"] == fresh.iterations
        back = parallel.rows[1][1]["result"]
        assert back.x.flags.writeable and (back.gains is not None) == (method == "ddp")


def test_random_starts_are_the_same_at_every_point_and_within_bounds():
    a = random_start(pendulum_swingup(N=30), cluster.task_rng("start-1", 0))
    b = random_start(pendulum_swingup(N=30, T=5.0), cluster.task_rng("start-1", 0))
    np.testing.assert_array_equal(a, b)
    assert np.all(np.abs(a) <= 4.0) and np.std(a) > 1.0  # uniform on [-4, 4]: std 2.3


def test_any_callable_task_monte_carlo(dask_client):
    grid = {"sigma": [0.5, 2.0]}
    serial = sweep(_monte_carlo, grid, starts=3, progress=False)
    parallel = sweep(_monte_carlo, grid, starts=3, client=dask_client, progress=False)
    assert [[r["cost"] for r in row] for row in serial.rows] == [[r["cost"] for r in row] for row in parallel.rows]
    for p, row in zip(serial.points, serial.rows):
        costs = [r["cost"] for r in row]
        assert len(set(costs)) == 3  # each start its own draws
        np.testing.assert_allclose(costs, p["sigma"], rtol=0.05)  # the sample std of N(0, σ²) is σ


def _builder_that_fails_above_one(T, N=10):
    if T > 1:
        raise ValueError(f"T = {T} is too long")
    from trajectories.systems import double_integrator_lqr

    return double_integrator_lqr(N=N, T=T)


def test_a_point_whose_builder_raises_is_a_failed_row(capsys):
    s = sweep(_builder_that_fails_above_one, {"T": [1.0, 2.0]}, progress=False)
    assert [r["status"] for r in s.best_rows()] == [True, False] and s.best_start() == [0, -1]
    assert "ValueError: T = 2.0 is too long" in s.rows[1][0]["message"]
    assert "task T=2/start=0 failed" in capsys.readouterr().err


def test_bad_sweeps_are_named(tmp_path, capsys):
    with pytest.raises(ProblemError, match=r"has no parameter \['mass'\]; it takes \['N', 'T', 'u_max'\]"):
        sweep(pendulum_swingup, {"mass": [1.0]}, progress=False)
    with pytest.raises(ProblemError, match="T and N only"):
        sweep(pendulum_swingup(), {"u_max": [1.0]}, progress=False)
    with pytest.raises(ProblemError, match="starts must be"):
        sweep(pendulum_swingup, {"T": [1.0]}, starts=0, progress=False)
    with pytest.raises(ProblemError, match="non-empty"):
        sweep(pendulum_swingup, {"T": []}, progress=False)
    assert main(["control", "pendulum", "--sweep", "T=1:2"]) == 2
    assert "NAME=start:stop:count" in capsys.readouterr().err


def test_cli_sweep_table_and_figure(tmp_path, capsys):
    out = tmp_path / "sweep.png"
    assert main(["control", "double_integrator_lqr", "--sweep", "T=1:3:2", "--starts", "2", "--steps", "30",
                 "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "best cost" in text and out.stat().st_size > 0
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == ["3"])
    J = riccati_lqr(3.0)[0]
    assert abs(float(row[1]) - J) / J < 2e-3  # the Riccati optimum at T = 3, to the N = 30 grid's accuracy


def test_closed_loop_monte_carlo_on_the_cluster_equals_serial_bit_for_bit(dask_client):
    from trajectories.monte_carlo import monte_carlo

    ocp = double_integrator_lqr(N=40, T=1.0)
    kwargs = dict(runs=6, disturbance=0.02, model_error=0.1, horizon=10, steps=20, progress=False)
    serial = monte_carlo(ocp, **kwargs)
    parallel = monte_carlo(ocp, client=dask_client, **kwargs)
    for a, b in zip([serial.nominal, *serial.runs], [parallel.nominal, *parallel.runs]):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.u, b.u)
        assert a.cost == b.cost
    assert len({r.cost for r in serial.runs}) == 6  # six different disturbances


def _weighted_lqr(T, w=1.0, N=30):
    """The double integrator with state weight ``w``: w is captured by the cost's closure, so it is
    in the generated code (a problem of its own), where T is an argument of the kernels."""
    import diffsim.numpy as dnp
    from trajectories import OptimalControlProblem

    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=T, N=N, n_u=1,
                                 running_cost=lambda x, u: w * dnp.sum(x * x) + u[0] ** 2,
                                 terminal_cost=lambda x: dnp.sum(x * x), name="weighted_lqr")


def test_a_sweep_compiles_each_structure_once_and_equals_fresh_solves(monkeypatch):
    from collections import OrderedDict

    import trajectories.sweep as sweep_module
    import trajectories.transcription as transcription
    from trajectories import OptimalControlProblem, solve

    monkeypatch.setattr(sweep_module, "_KNOWN", OrderedDict())
    traced = []
    compile_module = transcription.compile_module
    monkeypatch.setattr(transcription, "compile_module", lambda *a, **k: traced.append(1) or compile_module(*a, **k))
    checks = []  # the check that every control enters the functions (a trace of their derivatives)
    check = OptimalControlProblem._check_controls_used
    monkeypatch.setattr(OptimalControlProblem, "_check_controls_used",
                        lambda self: checks.append(getattr(self, "_controls_checked", False)) or check(self))
    grid = {"w": [1.0, 4.0], "T": [1.0, 2.0, 3.0]}
    s = sweep(_weighted_lqr, grid, starts=2, progress=False)
    assert len(traced) == 2  # one per weight (a closure value: new code), not one per task (12)
    assert checks.count(False) == 2  # likewise the controls check: the other ten reuse its verdict
    for p, row in zip(s.points, s.rows):  # each point as a fresh problem solved on its own
        fresh = solve(_weighted_lqr(**p))
        assert row[0]["cost"] == fresh.cost
        np.testing.assert_array_equal(row[0]["result"].u, fresh.u)
    J = riccati_lqr(3.0)[0]  # w = 1 is the textbook problem: the Riccati optimum (scipy)
    assert abs(s.rows[2][0]["cost"] - J) / J < 2e-3
    assert s.rows[5][0]["cost"] > 1.5 * s.rows[2][0]["cost"]  # a heavier state weight costs more



def _two_controls(T, N=20):
    """A double integrator given two controls, of which it uses one: a mistake in n_u."""
    import diffsim.numpy as dnp
    from trajectories import OptimalControlProblem

    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=T, N=N, n_u=2,
                                 running_cost=lambda x, u: u[0] ** 2, terminal_cost=lambda x: dnp.sum(x * x),
                                 name="two_controls")


def test_an_unused_control_is_still_reported_at_every_point():
    # the verdict of the controls check is reused by problems of the same structure only once it passed
    bad = sweep(_two_controls, {"T": [1.0, 2.0]}, starts=2, progress=False)
    assert [r["status"] for row in bad.rows for r in row] == [False] * 4
    assert all("control u1 (index 1) enters neither" in r["message"] for row in bad.rows for r in row)
