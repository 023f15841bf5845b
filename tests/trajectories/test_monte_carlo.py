"""Closed-loop Monte-Carlo of MPC: the kicks each run receives are Gaussian with the σ asked for
(checked against an independent RK4 of ẍ = u), common random numbers make every run's cost an
exact quadratic in σ (the LQ controller is affine in the state), the summary is numpy's, and bad
input is refused."""

import numpy as np
import pytest
from scipy import stats

from trajectories.monte_carlo import monte_carlo
from trajectories.mpc import MPC, MPCError
from trajectories.systems import double_integrator_lqr

OCP = dict(N=40, T=1.0)
RUN = dict(horizon=10, steps=20, progress=False)


def _rk4(x, u, h):
    """ẍ = u, one RK4 step with u held: the plant, written apart from the toolkit."""
    f = lambda s: np.array([s[1], u])
    k1 = f(x)
    k2 = f(x + h / 2 * k1)
    k3 = f(x + h / 2 * k2)
    k4 = f(x + h * k3)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def test_kicks_are_gaussian_with_sigma_and_independent_between_runs(tmp_path):
    sigma, h = 0.02, OCP["T"] / OCP["N"]
    mc = monte_carlo(double_integrator_lqr(**OCP), runs=12, disturbance=sigma, **RUN)
    kicks = np.array([[r.x[k + 1] - _rk4(r.x[k], r.u[k, 0], h) for k in range(RUN["steps"])] for r in mc.runs])
    assert kicks.shape == (12, 20, 2)
    flat = kicks.reshape(-1)
    assert abs(flat.std() / sigma - 1) < 0.1          # 480 draws: the std is within ~3 % (1 s.d.)
    assert abs(flat.mean()) < 4 * sigma / np.sqrt(flat.size)
    assert abs(np.corrcoef(kicks[0].ravel(), kicks[1].ravel())[0, 1]) < 0.3  # runs are not the same draws
    nominal = mc.nominal.x
    for k in range(RUN["steps"]):  # the nominal run has no kicks at all
        np.testing.assert_allclose(nominal[k + 1], _rk4(nominal[k], mc.nominal.u[k, 0], h), atol=1e-12)
    c = mc.costs
    assert mc.cost_mean == pytest.approx(np.mean(c), rel=1e-12)
    assert mc.cost_error == pytest.approx(stats.sem(c), rel=1e-10)
    np.testing.assert_allclose(mc.quantiles(), np.quantile(c, [0.05, 0.5, 0.95]))
    assert "cost mean ± s.e." in mc.table() and mc.success_rate == 1.0
    mc.plot(tmp_path / "mc.png")
    assert (tmp_path / "mc.png").stat().st_size > 1000


def test_each_runs_cost_is_exactly_quadratic_in_sigma_and_sigma_zero_is_the_nominal_run():
    ocp = double_integrator_lqr(**OCP)
    # iterated to convergence each step, MPC of an LQ problem is the receding-horizon LQR: affine in the
    # state (a real-time iteration's convergence test may skip a step, which breaks exactness slightly)
    costs = np.array([monte_carlo(ocp, runs=4, disturbance=s, real_time_iteration=False, **RUN).costs
                      for s in (0.0, 0.01, 0.02, 0.03)])
    third = costs[3] - 3 * costs[2] + 3 * costs[1] - costs[0]  # zero for a quadratic in σ
    assert np.all(np.abs(third) < 1e-9 * costs.max()), third
    assert np.all(np.diff(costs[:, 0]) != 0)  # the kicks are there and scale with σ
    direct = MPC(ocp, horizon=RUN["horizon"], real_time_iteration=False).simulate(steps=RUN["steps"])
    assert np.all(costs[0] == direct.cost)  # σ = 0: every run is the undisturbed closed loop


def test_bad_input_is_refused():
    ocp = double_integrator_lqr(**OCP)
    for kwargs, match in [(dict(runs=0), "runs"), (dict(disturbance=-1.0), "disturbance"),
                          (dict(steps=0), "steps"), (dict(horizon=100), "horizon 100 is longer")]:
        with pytest.raises(MPCError, match=match):
            monte_carlo(ocp, **dict(dict(runs=2, steps=5, progress=False), **kwargs))


def test_cli_monte_carlo_prints_the_summary_and_refuses_no_disturbance(tmp_path, capsys):
    from diffsim.cli import main

    out = tmp_path / "mc.png"
    assert main(["mpc", "cart_pole", "--runs", "3", "--disturbance", "0.005", "--steps", "15",
                 "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 runs of 15 steps" in text and "cost mean ± s.e." in text and out.exists()
    assert main(["mpc", "cart_pole", "--runs", "3", "--steps", "5"]) == 2
    assert "--disturbance SIGMA > 0" in capsys.readouterr().err
