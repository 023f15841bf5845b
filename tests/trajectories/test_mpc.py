"""MPC in the closed loop: survives pushes that the open-loop replay of the same plan does not,
warm steps allocate nothing, bad input gives clear messages and a run never dies mid-way."""

import tracemalloc

import numpy as np
import pytest

from trajectories.ddp import ddp
from trajectories.mpc import MPC, FeedbackPolicy, MPCError, OpenLoop, closed_loop
from trajectories.regulation import cart_pole_upright

X0 = np.array([0.0, np.pi - 0.3, 0.0, 0.0])
UPRIGHT = np.array([0.0, np.pi, 0.0, 0.0])
STEPS = 150


def _pushes():
    kicks = np.zeros((STEPS, 4))
    kicks[[20, 50, 80], 3] = [2.0, -2.0, 2.0]   # sudden changes of the pole's rate (rad/s)
    kicks[[35, 65], 2] = [1.0, -1.0]             # and of the cart's speed (m/s)
    return kicks


@pytest.fixture(scope="module")
def runs():
    plan_ocp = cart_pole_upright(N=STEPS, T=STEPS * 0.02, x0=tuple(X0))
    plan = ddp(plan_ocp, X0=np.tile(UPRIGHT, (STEPS + 1, 1)))  # FDDP from an infeasible start
    assert plan.status, plan
    ocp = cart_pole_upright()
    mpc = MPC(ocp, horizon=40, initial_states=UPRIGHT)
    return {"plan": plan, "ocp": plan_ocp, "mpc": mpc.simulate(x0=X0, steps=STEPS, disturbance=_pushes()),
            "open": closed_loop(plan_ocp, OpenLoop(plan.u), x0=X0, steps=STEPS, disturbance=_pushes()),
            "gains": closed_loop(plan_ocp, FeedbackPolicy(plan, plan_ocp), x0=X0, steps=STEPS, disturbance=_pushes()),
            "mpc_object": mpc,
            "ip": MPC(ocp, horizon=40, method="ip", initial_states=UPRIGHT).simulate(x0=X0, steps=STEPS,
                                                                                      disturbance=_pushes())}


def test_mpc_keeps_the_cart_pole_upright_under_pushes(runs):
    mpc, open_loop = runs["mpc"], runs["open"]
    assert mpc.status and len(mpc.u) == STEPS
    assert np.max(np.abs(mpc.x[:, 1] - np.pi)) < 0.6
    assert abs(mpc.x[-1, 1] - np.pi) < 0.05 and np.abs(mpc.x[-1] - UPRIGHT).max() < 0.5  # recovering
    assert np.all(np.abs(mpc.u) <= 20.0)
    assert np.max(np.abs(open_loop.x[:, 1] - np.pi)) > np.pi / 2     # the replay falls over
    assert runs["plan"].cost < mpc.cost < open_loop.cost
    assert mpc.solve_times.shape == (STEPS,) and np.all(mpc.solve_times > 0)
    assert np.all(mpc.iterations[1:] <= 1)                           # one real-time iteration a step
    fig = mpc.plot(others={"open loop": open_loop, "gains": runs["gains"]})
    assert len(fig.axes) == 3


def test_interior_point_mpc_keeps_the_cart_pole_upright_under_pushes(runs):
    """method="ip": one warm Newton iteration of the interior-point solver a step, from the shifted
    primal-dual iterate, survives the pushes the open-loop replay does not."""
    ip, open_loop = runs["ip"], runs["open"]
    assert ip.status and len(ip.u) == STEPS, ip.message
    assert np.max(np.abs(ip.x[:, 1] - np.pi)) < 0.6
    assert abs(ip.x[-1, 1] - np.pi) < 0.05 and np.abs(ip.x[-1] - UPRIGHT).max() < 0.5
    assert np.all(np.abs(ip.u) <= 20.0)
    assert np.all(ip.iterations[1:] == 1) and ip.iterations[0] > 1   # cold first solve, then RTI
    assert runs["plan"].cost < ip.cost < open_loop.cost
    # both controllers track the same optimal policy: their closed-loop costs agree closely
    assert ip.cost == pytest.approx(runs["mpc"].cost, rel=0.05)


def test_interior_point_warm_start_is_the_shifted_iterate():
    """The shift moves every primal and dual variable of stage k + s to stage k (numpy's own
    slicing as the reference) and a time-varying problem is planned at the horizon's times."""
    from types import SimpleNamespace

    from trajectories.mpc_ip import horizon_problem, shift_iterate
    from trajectories.regulation import two_link_arm_tracking

    rng = np.random.default_rng(0)
    N, n, m = 6, 4, 2
    arrays = {"X": (N + 1, n), "U": (N, m), "lam": (N + 1, n), "s_path": (N, 3), "y_path": (N, 3),
              "z_lo": (N + 1, n + m), "z_hi": (N + 1, n + m)}
    it = SimpleNamespace(**{k: rng.standard_normal(s) for k, s in arrays.items()})
    ref = {k: v.copy() for k, v in vars(it).items()}
    shift_iterate(it, 2, n)
    for k in ("X", "U", "lam", "s_path", "y_path"):
        assert np.array_equal(getattr(it, k)[:-2], ref[k][2:]) and np.all(getattr(it, k)[-2:] == ref[k][-1])
    for k in ("z_lo", "z_hi"):
        z = getattr(it, k)
        assert np.array_equal(z[:N - 1, :n], ref[k][2:, :n]) and np.array_equal(z[:N - 2, n:], ref[k][2:N, n:])
        assert np.all(z[N - 2:N, n:] == ref[k][N - 1, n:])
    ocp = two_link_arm_tracking()
    hp = horizon_problem(ocp, 10)
    assert hp.N == 10 and hp.T == pytest.approx(10 * ocp.T / ocp.N)
    x, u, t0 = rng.standard_normal(4), rng.standard_normal(2), 0.37
    q = np.append(ocp.params, t0)
    assert float(hp.L(x, u, q, 0.05)) == pytest.approx(float(ocp.L(x, u, ocp.params, 0.05 + t0)), rel=1e-14)


def test_closed_loop_cost_is_the_running_cost_along_the_run(runs):
    """Independent quadrature: the model's running cost summed along the states with RK4 from the
    recorded (x_k, u_k), compared with what the run reports."""
    run, ocp = runs["open"], runs["ocp"]
    total = 0.0
    for k in range(len(run.u)):  # the ODE problem's own one-step rollouts (scaled time), less Φ
        r = ocp.ode.rollout(run.x[k], run.u[k:k + 1], ocp.q(ocp.T), dt=1.0 / ocp.N)
        total += r.J - ocp.Phi(r.x[-1], ocp.params)
    assert run.cost == pytest.approx(total, rel=1e-10)


def test_warm_steps_allocate_nothing(runs):
    mpc = runs["mpc_object"]
    mpc.reset()
    x = X0.copy()
    mpc.step(x, 0.0)
    for k in range(1, 5):
        mpc.step(x, 0.02 * k)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for k in range(5, 45):
        u = mpc.step(x, 0.02 * k)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 4096, grown
    assert u is mpc.u


def test_model_error_and_noise_and_time_budget():
    ocp = cart_pole_upright()
    mpc = MPC(ocp, horizon=30, time_budget=1e-9)
    run = mpc.simulate(x0=X0, steps=20, disturbance=0.01, model_error=0.2)
    assert run.status and run.over_budget == 20
    assert "over the budget" in mpc.info["message"]
    with pytest.raises(MPCError, match="model_error"):
        mpc.simulate(x0=X0, steps=5, model_error=-2.0)


def test_bad_input():
    ocp = cart_pole_upright()
    with pytest.raises(MPCError, match="longer than the problem"):
        MPC(ocp, horizon=ocp.N + 1)
    with pytest.raises(MPCError, match="initial_states"):
        MPC(ocp, horizon=10, initial_states=np.zeros((3, 4)))
    with pytest.raises(MPCError, match="unknown MPC method"):
        MPC(ocp, method="sqp")
    mpc = MPC(ocp, horizon=20)
    with pytest.raises(MPCError, match="NaN"):
        mpc.step(np.array([0.0, np.nan, 0.0, 0.0]))
    with pytest.raises(MPCError, match="shape"):
        mpc.step(np.zeros(3))
    with pytest.raises(MPCError, match="disturbance array"):
        mpc.simulate(x0=X0, steps=5, disturbance=np.zeros((4, 4)))
    # a plant that blows up ends the run with a message, not a traceback
    bad = mpc.simulate(lambda x, u, t, dt: x * np.nan if t > 0.05 else x, x0=X0, steps=10)
    assert not bad.status and "non-finite state at step 3" in bad.message and len(bad.u) == 3
    raising = mpc.simulate(lambda x, u, t, dt: 1 / 0, x0=X0, steps=10)
    assert not raising.status and "ZeroDivisionError" in raising.message
    with pytest.raises(MPCError, match="no feedback gains"):
        from trajectories import solve
        FeedbackPolicy(solve(cart_pole_upright(N=10), method="single", max_iter=2), ocp)


def test_cli_mpc_runs_and_fails_cleanly(tmp_path, capsys):
    from diffsim.cli import main

    assert main(["mpc", "cart_pole", "--steps", "30", "--disturbance", "0.01", "--model-error", "0.1",
                 "--plot", str(tmp_path / "mpc.png")]) == 0
    out = capsys.readouterr().out
    assert "[mpc]" in out and "[open loop]" in out and "[DDP gains]" in out and (tmp_path / "mpc.png").exists()
    assert main(["mpc", "cart_pole", "--method", "ip", "--steps", "10", "--horizon", "20"]) == 0
    assert "[mpc]" in capsys.readouterr().out
    assert main(["mpc", "cart_pole", "--horizon", "500"]) == 2
    assert "longer than the problem" in capsys.readouterr().err


def test_warm_start_shift_and_first_control_follow_numpy():
    """The receding horizon's two loop helpers against numpy on random arrays, with two controls
    and a box active on one of them: ``first_control`` is clip(u₀ + K₀ (x − x₀), lo, hi) and
    ``shift`` moves stage k + s to stage k, repeating the last state, control and gain."""
    from trajectories.ddp import DDPSolver
    from trajectories.regulation import two_link_arm_tracking

    module = DDPSolver(two_link_arm_tracking(), interpret_first=False).module
    rng = np.random.default_rng(4)
    N, n, m, s = 7, 4, 2, 3
    xs, us, K, kff = (rng.standard_normal(shape) for shape in ((N + 1, n), (N, m), (N, m, n), (N, m)))
    x = rng.standard_normal(n)
    lo, hi = np.array([-0.1, -5.0]), np.array([0.1, 5.0])
    for box in (False, True):
        out = np.empty(m)
        module.first_control(xs, us, K, x, box, lo, hi, out)
        want = us[0] + K[0] @ (x - xs[0])
        np.testing.assert_allclose(out, np.clip(want, lo, hi) if box else want, rtol=1e-14, atol=1e-15)
    assert not np.allclose(np.clip(want, lo, hi), want)   # the box acts on the first control
    for steps in (s, N, N + 2):   # a shift of the whole horizon or more: every stage repeats the last one
        xs, us, K, kff = (rng.standard_normal(shape) for shape in ((N + 1, n), (N, m), (N, m, n), (N, m)))
        ref = [a.copy() for a in (xs, us, K, kff)]
        module.shift(xs, us, K, kff, steps)
        d = min(steps, N)
        for got, old in zip((xs, us, K, kff), ref):
            np.testing.assert_array_equal(got[:N - d], old[d:N])
        np.testing.assert_array_equal(xs[N - d:], np.broadcast_to(ref[0][N], (d + 1, n)))
        np.testing.assert_array_equal(us[N - d:], np.broadcast_to(ref[1][N - 1], (d, m)))
        np.testing.assert_array_equal(K[N - d:], np.broadcast_to(ref[2][N - 1], (d, m, n)))
        np.testing.assert_array_equal(kff[N - d:], 0.0)
