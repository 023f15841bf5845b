"""diffsim.ode: rollout gradients by BPTT, checkpointing, the continuous adjoint and forward
sensitivities, checked against finite differences, an analytic LQR gradient and each other."""

import functools
import re

import numpy as np
import pytest

import diffsim.numpy as dnp
from diffsim.ode import BacksolveWarning, ODEProblem
from trajectories.dynamics import cart_pole

P_CARTPOLE = np.array([1.0, 0.1, 0.5, 9.81])


def running(x, u, p, t):
    return 0.1 * dnp.sum(x * x) + u[0] ** 2 + 0.05 * dnp.sin(t) * x[0]


def terminal(x, p):
    return 5.0 * dnp.sum(x * x) + p[1] * x[1]


@functools.lru_cache(maxsize=None)
def cartpole(scheme):
    return ODEProblem(cart_pole, 4, 1, 4, running_cost=running, terminal_cost=terminal, scheme=scheme)


def inputs(N, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([0.1, 0.4, -0.2, 0.3]), 0.5 * rng.standard_normal((N, 1))


def central_fd(fun, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        g[i] = (fun(x + e) - fun(x - e)) / (2 * eps)
    return g


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_bptt_matches_finite_differences(scheme):
    prob = cartpole(scheme)
    x0, U = inputs(30)
    g = prob.gradient(x0, U, P_CARTPOLE, T=1.5, method="bptt")
    J = lambda x0_, U_, p_: prob.rollout(x0_, U_, p_, T=1.5).J
    np.testing.assert_allclose(g.dU, central_fd(lambda u: J(x0, u, P_CARTPOLE), U), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.dx0, central_fd(lambda x: J(x, U, P_CARTPOLE), x0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g.dp, central_fd(lambda p: J(x0, U, p), P_CARTPOLE), rtol=1e-6, atol=1e-8)
    assert g.costate.shape == (31, 4) and np.allclose(g.costate[0], g.dx0)


@pytest.mark.parametrize("N,snapshots", [(1, 1), (7, 1), (50, 2), (50, 6), (257, 5), (300, 300), (40, 0), (2000, 400)])
def test_checkpointed_equals_bptt(N, snapshots):
    prob = cartpole("rk4")
    x0, U = inputs(N, seed=N)
    a = prob.gradient(x0, U, P_CARTPOLE, dt=0.02, method="bptt")
    b = prob.gradient(x0, U, P_CARTPOLE, dt=0.02, method="checkpointed", snapshots=snapshots)
    assert a.J == b.J
    for x, y in ((a.dU, b.dU), (a.dx0, b.dx0), (a.dp, b.dp)):
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-14 * np.max(np.abs(x)))
    np.testing.assert_allclose(b.grad_norm, a.grad_norm, rtol=1e-12)


@functools.lru_cache(maxsize=None)
def fewest_steps(length, s):
    """Fewest forward steps to reverse ``length`` steps from a stored start state with ``s`` free
    snapshots (brute force over every split; Griewank's revolve problem)."""
    if length == 1:
        return 0
    if s == 0:
        return length * (length - 1) // 2
    return min(m + fewest_steps(length - m, s - 1) + fewest_steps(m, s) for m in range(1, length))


@pytest.mark.parametrize("N,snapshots", [(10, 1), (20, 2), (37, 3), (60, 2), (45, 4), (70, 5)])
def test_checkpoint_schedule_is_optimal(N, snapshots):
    x0, U = inputs(N)
    g = cartpole("rk4").gradient(x0, U, P_CARTPOLE, dt=0.01, method="checkpointed", snapshots=snapshots)
    assert g.recomputed_steps == fewest_steps(N, snapshots) - (N - 1)


def test_forward_sensitivities_equal_bptt():
    prob = cartpole("rk4")
    x0, U = inputs(25)
    a = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="bptt")
    f = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="forward")
    for x, y in ((a.dU, f.dU), (a.dx0, f.dx0), (a.dp, f.dp)):
        np.testing.assert_allclose(y, x, rtol=1e-10, atol=1e-12)


def _adjoint_gap(prob, N, T=1.0):
    x0 = np.array([0.1, 0.4, -0.2, 0.3])
    t = (np.arange(N) + 0.5) * T / N
    U = 0.5 * np.sin(3 * t)[:, None]  # a smooth control, sampled at every resolution alike
    a = prob.gradient(x0, U, P_CARTPOLE, T=T, method="bptt")
    c = prob.gradient(x0, U, P_CARTPOLE, T=T, method="adjoint")
    g_err = np.linalg.norm(np.concatenate([c.dx0 - a.dx0, c.dp - a.dp])) / np.linalg.norm(np.concatenate([a.dx0, a.dp]))
    lam_err = np.max(np.abs(c.costate - a.costate)) / np.max(np.abs(a.costate))
    u_err = np.max(np.abs(c.control_density - a.control_density)) / np.max(np.abs(a.control_density))
    return g_err, lam_err, u_err


@pytest.mark.parametrize("scheme,order", [("euler", 1), ("rk4", 4)])
def test_adjoint_converges_to_bptt_with_the_scheme_order(scheme, order):
    prob = cartpole(scheme)
    Ns = [20, 40, 80, 160] if scheme == "rk4" else [100, 200, 400, 800]
    gaps = np.array([_adjoint_gap(prob, N) for N in Ns])
    for column in range(3):  # gradients w.r.t. (x0, p), costates, control densities
        slope = -np.polyfit(np.log(Ns), np.log(gaps[:, column]), 1)[0]
        assert abs(slope - order) < 0.35, (scheme, column, slope, gaps[:, column])


def test_backsolve_adjoint_agrees_on_a_benign_problem_and_is_flagged_when_it_diverges():
    prob = cartpole("rk4")
    x0, U = inputs(100)
    h = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="adjoint")
    b = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="adjoint", interpolation="backsolve")
    assert b.backsolve_error < 1e-8
    np.testing.assert_allclose(b.dx0, h.dx0, rtol=1e-6)
    stiff = ODEProblem(lambda x, u: -40.0 * x + u[0], 2, 1, terminal_cost=lambda x: dnp.sum(x * x))
    with pytest.warns(BacksolveWarning, match="reconstructed x\\(0\\)"):
        g = stiff.gradient(np.array([1.0, -1.0]), np.zeros((100, 1)), T=2.0, method="adjoint",
                           interpolation="backsolve")
    assert g.backsolve_error > 1e-3


def test_lqr_gradient_equals_the_analytic_one():
    A = np.array([[0.0, 1.0], [-2.0, -0.3]])
    B = np.array([[0.0], [1.0]])
    Q, R, S = np.diag([1.0, 0.5]), np.array([[0.2]]), np.diag([3.0, 1.0])
    prob = ODEProblem(lambda x, u: A @ x + B @ u, 2, 1, running_cost=lambda x, u: x @ Q @ x + u @ R @ u,
                      terminal_cost=lambda x: x @ S @ x, scheme="euler")
    N, h = 40, 0.05
    x0, U = np.array([1.0, -0.5]), np.random.default_rng(1).standard_normal((N, 1))
    g = prob.gradient(x0, U, T=N * h, method="bptt")
    # explicit Euler: x_{k+1} = F x_k + G u_k, J = h Σ (x_kᵀQx_k + u_kᵀRu_k) + x_NᵀSx_N
    F, G = np.eye(2) + h * A, h * B
    xs = [x0]
    for k in range(N):
        xs.append(F @ xs[-1] + G @ U[k])
    lam = 2 * S @ xs[N]  # λ_k = ∂J/∂x_k, backward: λ_k = 2hQx_k + Fᵀλ_{k+1}
    dU = np.zeros_like(U)
    for k in range(N - 1, -1, -1):
        dU[k] = 2 * h * R @ U[k] + G.T @ lam
        lam = 2 * h * Q @ xs[k] + F.T @ lam
    np.testing.assert_allclose(g.dU, dU, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g.dx0, lam, rtol=1e-12)


def test_batched_rollouts_equal_single_rollouts():
    prob = cartpole("rk4")
    rng = np.random.default_rng(4)
    X0, U = rng.standard_normal((6, 4)) * 0.3, rng.standard_normal((6, 20, 1))
    XS, J = prob.rollout_batch(X0, U, P_CARTPOLE, T=0.5)
    for b in range(6):
        r = prob.rollout(X0[b], U[b], P_CARTPOLE, T=0.5)
        np.testing.assert_allclose(XS[b], r.x, rtol=1e-15)
        assert J[b] == pytest.approx(r.J, rel=1e-14)


def test_gradient_norm_reveals_vanishing_gradients():
    contracting = ODEProblem(lambda x, u: -3.0 * x + u[0], 2, 1, terminal_cost=lambda x: dnp.sum(x))
    g = contracting.gradient(np.ones(2), np.zeros((200, 1)), T=4.0, method="bptt")
    # λ(t) = e^{-3(T-t)} ∇Φ; the discrete adjoint of RK4 multiplies by R(-3h) = Σ_{j≤4} (-3h)^j/j! per step
    z = -3.0 * 4.0 / 200
    R = 1 + z + z ** 2 / 2 + z ** 3 / 6 + z ** 4 / 24
    assert g.grad_norm[0] / g.grad_norm[-1] == pytest.approx(R ** 200, rel=1e-12)
    assert R ** 200 == pytest.approx(np.exp(-12.0), rel=1e-5)


def test_bad_inputs_name_the_problem():
    prob = cartpole("rk4")
    x0, U = inputs(10)
    with pytest.raises(ValueError, match="x0 must have shape \\(4,\\)"):
        prob.rollout(np.zeros(3), U, P_CARTPOLE, T=1.0)
    with pytest.raises(ValueError, match="N = 0"):
        prob.rollout(x0, np.zeros((0, 1)), P_CARTPOLE, T=1.0)
    with pytest.raises(ValueError, match="step must be positive"):
        prob.rollout(x0, U, P_CARTPOLE, dt=-0.1)
    with pytest.raises(ValueError, match="exactly one of T"):
        prob.rollout(x0, U, P_CARTPOLE)
    with pytest.raises(ValueError, match="p must have 4 entries"):
        prob.rollout(x0, U, np.ones(3), T=1.0)
    with pytest.raises(ValueError, match="x0 contains NaN"):
        prob.rollout(np.array([0.0, np.nan, 0, 0]), U, P_CARTPOLE, T=1.0)
    with pytest.raises(ValueError, match="unknown gradient method"):
        prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="magic")


def test_blow_up_is_reported_with_step_and_time():
    blowup = ODEProblem(lambda x, u: x * x, 1, 1)
    with pytest.raises(FloatingPointError, match=r"non-finite state or cost at step \d+ \(t = "):
        blowup.rollout(np.array([1.0]), np.zeros((200, 1)), T=2.0)  # x(t) = 1/(1-t) blows up at t = 1
    with pytest.raises(FloatingPointError, match="non-finite"):
        blowup.gradient(np.array([1.0]), np.zeros((200, 1)), T=2.0, method="checkpointed")


# ---------------------------------------------------------------- adaptive Dormand-Prince 5(4)


@functools.lru_cache(maxsize=None)
def cartpole_dopri5(rtol):
    return ODEProblem(cart_pole, 4, 1, 4, running_cost=running, terminal_cost=terminal, scheme="dopri5",
                      rtol=rtol, atol=rtol * 1e-2)


def test_dopri5_solution_and_dense_output_match_a_fine_rk4_grid():
    x0, U = inputs(10)
    r = cartpole_dopri5(1e-10).rollout(x0, U, P_CARTPOLE, T=1.0)
    fine = cartpole("rk4").rollout(x0, np.repeat(U, 200, axis=0), P_CARTPOLE, T=1.0)
    assert r.J == pytest.approx(fine.J, rel=1e-9)
    np.testing.assert_allclose(r.x, fine.x[::200], rtol=1e-8, atol=1e-10)
    for t in (0.0, 0.123, 0.5, 0.9871, 1.0):
        np.testing.assert_allclose(r.dense(t), fine.x[int(round(t * 2000))] if t * 2000 % 1 == 0 else
                                   _interp(fine, t), rtol=1e-6, atol=1e-8)
    assert r.stats["accepted"] > 10
    with pytest.raises(ValueError, match="outside the solved horizon"):
        r.dense(1.5)


def _interp(rollout, t):
    return np.array([np.interp(t, rollout.t, rollout.x[:, i]) for i in range(rollout.x.shape[1])])


def test_dopri5_bptt_matches_finite_differences_and_forward_sensitivities():
    prob = cartpole_dopri5(1e-11)
    x0, U = inputs(8)
    g = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="bptt")
    fd = central_fd(lambda u: prob.rollout(x0, u, P_CARTPOLE, T=1.0).J, U, eps=1e-5)
    np.testing.assert_allclose(g.dU, fd, rtol=1e-5, atol=1e-7)
    f = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="forward")
    for a, b in ((g.dU, f.dU), (g.dx0, f.dx0), (g.dp, f.dp)):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_dopri5_adjoint_approaches_bptt_as_the_tolerance_tightens():
    x0, U = inputs(8)
    gaps = []
    for rtol in (1e-5, 1e-7, 1e-9):
        prob = cartpole_dopri5(rtol)
        a = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="bptt")
        c = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="adjoint")
        assert c.extra["backward_accepted"] > 0
        gaps.append(np.max(np.abs(c.dU - a.dU)) / np.max(np.abs(a.dU)))
    assert gaps[2] < 1e-6 and gaps[0] > gaps[1] > gaps[2], gaps


def test_dopri5_adjoint_parameter_and_initial_state_gradients_match_finite_differences():
    """The continuous adjoint's dJ/dp (the quadrature of ∂H/∂p along the backward sweep) and dJ/dx0,
    against central differences of the rollout's cost; the cart-pole's four parameters all act."""
    prob = cartpole_dopri5(1e-10)
    x0, U = inputs(6)
    c = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="adjoint")
    fd_p = central_fd(lambda q: prob.rollout(x0, U, q, T=1.0).J, P_CARTPOLE, eps=1e-5)
    fd_x = central_fd(lambda x: prob.rollout(x, U, P_CARTPOLE, T=1.0).J, x0, eps=1e-5)
    np.testing.assert_allclose(c.dp, fd_p, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c.dx0, fd_x, rtol=1e-5, atol=1e-7)


def test_dopri5_errors_name_the_cause():
    blowup = ODEProblem(lambda x, u: x * x, 1, 1, scheme="dopri5", rtol=1e-6, atol=1e-8)
    with pytest.raises(FloatingPointError, match="dopri5 stopped in control interval"):
        blowup.rollout(np.array([1.0]), np.zeros((4, 1)), T=2.0)
    few = ODEProblem(cart_pole, 4, 1, 4, scheme="dopri5", rtol=1e-12, atol=1e-14, max_steps=5)
    x0, U = inputs(4)
    with pytest.raises(FloatingPointError, match="max_steps"):
        few.rollout(x0, U, P_CARTPOLE, T=1.0)
    with pytest.raises(ValueError, match="fixed-step scheme"):
        cartpole_dopri5(1e-8).gradient(x0, U, P_CARTPOLE, T=1.0, method="checkpointed")


def test_controls_as_a_function_of_time_through_parameters():
    # u(t) = p0 + p1 t inside the dynamics: the gradient w.r.t. p is the control-law gradient
    prob = ODEProblem(lambda x, u, p, t: dnp.array([x[1], p[0] + p[1] * t]), 2, 1, 2,
                      terminal_cost=lambda x, p: (x[0] - 1.0) ** 2)
    p = np.array([0.3, 0.2])
    g = prob.gradient(np.zeros(2), np.zeros((50, 1)), p, T=2.0, method="bptt")
    # x0(T) = p0 T²/2 + p1 T³/6 exactly (RK4 is exact on polynomials of this degree)
    xT = p[0] * 2 + p[1] * 8 / 6
    np.testing.assert_allclose(g.dp, 2 * (xT - 1) * np.array([2.0, 8 / 6]), rtol=1e-12)


def test_bptt_matches_jax_when_installed():
    jax = pytest.importorskip("jax", reason="JAX is an optional peer (pip install -e '.[bench]')")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    prob = cartpole("rk4")
    x0, U = inputs(40)
    h = 1.0 / 40

    def f(x, u, p):
        s, c = jnp.sin(x[1]), jnp.cos(x[1])
        d = p[0] + p[1] * s * s
        xdd = (u[0] + p[1] * s * (p[2] * x[3] ** 2 + p[3] * c)) / d
        thdd = (-u[0] * c - p[1] * p[2] * x[3] ** 2 * c * s - (p[0] + p[1]) * p[3] * s) / (p[2] * d)
        return jnp.array([x[2], x[3], xdd, thdd])

    def g(x, u, p, t):
        L = 0.1 * jnp.sum(x * x) + u[0] ** 2 + 0.05 * jnp.sin(t) * x[0]
        return jnp.concatenate([f(x, u, p), jnp.array([L])])

    def J(x0, U, p):
        def step(carry, k):
            x, cost = carry
            t, u = k * h, U[k]
            k1 = g(x, u, p, t)
            k2 = g(x + h / 2 * k1[:4], u, p, t + h / 2)
            k3 = g(x + h / 2 * k2[:4], u, p, t + h / 2)
            k4 = g(x + h * k3[:4], u, p, t + h)
            inc = h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return (x + inc[:4], cost + inc[4]), None

        (xN, cost), _ = jax.lax.scan(step, (x0, 0.0), jnp.arange(U.shape[0]))
        return cost + 5.0 * jnp.sum(xN * xN) + p[1] * xN[1]

    value, (gx0, gU, gp) = jax.value_and_grad(J, argnums=(0, 1, 2))(x0, U, P_CARTPOLE)
    ours = prob.gradient(x0, U, P_CARTPOLE, T=1.0, method="bptt")
    assert ours.J == pytest.approx(float(value), rel=1e-13)
    np.testing.assert_allclose(ours.dU, np.asarray(gU), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(ours.dx0, np.asarray(gx0), rtol=1e-11)
    np.testing.assert_allclose(ours.dp, np.asarray(gp), rtol=1e-11)


def test_a_blow_up_in_the_very_first_step_is_reported_by_every_gradient_method():
    first = ODEProblem(lambda x, u: x * 1e308, 1, 1, scheme="euler")  # x0 + h·1e309 overflows at step 0
    x0, U = np.array([10.0]), np.zeros((5, 1))
    for method in ("bptt", "checkpointed"):
        with pytest.raises(FloatingPointError, match=r"non-finite state or cost at step 0 "):
            first.gradient(x0, U, T=1.0, method=method)


@pytest.mark.parametrize("N,snapshots", [(12, 0), (1, 2)])
def test_checkpointing_without_a_split_recomputes_what_revolve_says(N, snapshots):
    x0, U = inputs(N)
    # t0 ≠ 0: the recomputed steps must run at their own times (the running cost depends on t)
    g = cartpole("rk4").gradient(x0, U, P_CARTPOLE, dt=0.01, t0=0.7, method="checkpointed", snapshots=snapshots)
    assert g.recomputed_steps == fewest_steps(N, snapshots) - (N - 1)
    b = cartpole("rk4").gradient(x0, U, P_CARTPOLE, dt=0.01, t0=0.7, method="bptt")
    np.testing.assert_allclose(g.dU, b.dU, rtol=1e-12, atol=1e-14 * np.max(np.abs(b.dU)))


def test_adjoint_of_time_dependent_dynamics_matches_bptt_at_t0_not_zero():
    # ẋ = -x + sin(3t)·u + p0·cos(t): every stage of the adjoint must evaluate f at its own time
    prob = ODEProblem(lambda x, u, p, t: dnp.array([-x[0] + dnp.sin(3 * t) * u[0] + p[0] * dnp.cos(t)]), 1, 1, 1,
                      running_cost=lambda x, u, p, t: x[0] ** 2 + 0.1 * u[0] ** 2,
                      terminal_cost=lambda x, p: 2.0 * x[0] ** 2)
    x0, p = np.array([0.5]), np.array([0.7])
    U = np.cos(np.linspace(0.0, 2.0, 200))[:, None]
    a = prob.gradient(x0, U, p, T=2.0, t0=0.4, method="bptt")
    c = prob.gradient(x0, U, p, T=2.0, t0=0.4, method="adjoint")  # O(h⁴) from BPTT: h = 0.01
    np.testing.assert_allclose(c.dx0, a.dx0, rtol=1e-6)
    np.testing.assert_allclose(c.dp, a.dp, rtol=1e-6)


def overflowing_terminal_cost(scheme):
    """States stay finite (x = x0 e^{-t}); only Φ = (10²⁰⁰ x(T))² overflows, for |x(T)| > 1e-46
    (a product, not exp: interpreted, math.exp raises where compiled code returns inf)."""
    return ODEProblem(lambda x, u: -x, 1, 1, terminal_cost=lambda x, p: (1e200 * x[0]) * (1e200 * x[0]),
                      scheme=scheme)


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_a_terminal_cost_that_overflows_is_reported_at_the_final_step_and_time(scheme):
    prob = overflowing_terminal_cost(scheme)
    x0, U = np.array([3.0]), np.zeros((5, 1))
    with pytest.raises(FloatingPointError, match=r"non-finite state or cost at step 5 \(t = 1\.5\)"):
        prob.rollout(x0, U, T=1.0, t0=0.5)
    for method in ("bptt", "adjoint", "forward"):
        with pytest.raises(FloatingPointError, match=r"non-finite state or cost at step 5 \(t = 1\.5\)"):
            prob.gradient(x0, U, T=1.0, t0=0.5, method=method)
    assert np.isfinite(prob.rollout(np.array([1e-160]), U, T=1.0, t0=0.5).cost)   # (1e200 x(T))² ≈ 1e79 is finite


def test_checkpointed_reports_a_terminal_cost_that_overflows():
    """It returned cost inf and dx0 NaN without an error before the forward sweep checked Φ."""
    with pytest.raises(FloatingPointError, match=r"non-finite state or cost at step 5 \(t = 1\.5\)"):
        overflowing_terminal_cost("rk4").gradient(np.array([3.0]), np.zeros((5, 1)), T=1.0, t0=0.5,
                                                  method="checkpointed")


def test_a_batched_rollout_whose_terminal_cost_overflows_is_named():
    """Only rollout 1's Φ overflows (x0 = 3; rollout 0 starts at 1e-160): it is reported, at step N."""
    prob = overflowing_terminal_cost("rk4")
    with pytest.raises(FloatingPointError, match=r"rollout 1 at step 5 \(t = 1\.5\)"):
        prob.rollout_batch(np.array([[1e-160], [3.0]]), np.zeros((2, 5, 1)), T=1.0, t0=0.5)


def test_a_running_cost_that_overflows_with_the_state_finite_is_reported_at_its_own_step():
    # ẋ = −x (states stay finite), ℓ = (10¹⁶⁰·x·r(t))², r = t − 0.52 + |t − 0.52|: zero up to t = 0.52, and
    # it overflows at the stages of step 5 (t in [0.5, 0.6], h = 0.1); only the last entry of the step's
    # output (the cost increment) is non-finite there. A product, not a power: interpreted, ** raises.
    def running_cost(x, u, p, t):
        big = 1e160 * x[0] * (t - 0.52 + dnp.abs(t - 0.52))
        return big * big

    prob = ODEProblem(lambda x, u: -x + u, 1, 1, running_cost=running_cost)
    x0, U = np.array([3.0]), np.zeros((10, 1))
    step5 = r"non-finite state or cost at step 5 \(t = 0\.5\)"
    with pytest.raises(FloatingPointError, match=step5):
        prob.rollout(x0, U, T=1.0)
    for method in ("bptt", "checkpointed"):
        with pytest.raises(FloatingPointError, match=step5):
            prob.gradient(x0, U, T=1.0, method=method)
    with pytest.raises(FloatingPointError, match=r"rollout 1 at step 5 \(t = 0\.5\)"):
        prob.rollout_batch(np.array([[0.0], [3.0]]), np.zeros((2, 10, 1)), T=1.0)


def test_batched_rollouts_run_at_their_own_times_from_t0():
    # ẋ = cos t, ℓ = cos t: x(T) = x0 + sin(t0 + T) − sin(t0), J = sin(t0 + T) − sin(t0) (RK4, h = 0.02)
    prob = ODEProblem(lambda x, u, p, t: dnp.array([dnp.cos(t) + u[0]]), 1, 1,
                      running_cost=lambda x, u, p, t: dnp.cos(t) + 0.0 * x[0])
    X0 = np.array([[0.0], [1.0], [-2.0]])
    XS, J = prob.rollout_batch(X0, np.zeros((50, 1)), T=1.0, t0=0.7)
    exact = np.sin(1.7) - np.sin(0.7)
    np.testing.assert_allclose(XS[:, -1, 0], X0[:, 0] + exact, atol=1e-9)
    np.testing.assert_allclose(J, exact, atol=1e-9)


def test_a_blow_up_in_one_batched_rollout_names_that_rollout_and_its_first_bad_step():
    # x(t) = x0 / (1 − x0 t): only x0 = 1 blows up within T = 2; its running cost x² overflows with it,
    # so its total cost is not finite either (the terminal check must not move the step to N)
    blowup = ODEProblem(lambda x, u: x * x, 1, 1, running_cost=lambda x, u: x[0] ** 2)
    U = np.zeros((200, 1))
    with pytest.raises(FloatingPointError) as single:
        blowup.rollout(np.array([1.0]), U, T=2.0, t0=0.3)
    step = re.search(r"at step (\d+) \(t = ([0-9.]+)\)", str(single.value)).groups()
    with pytest.raises(FloatingPointError, match=rf"in rollout 1 at step {step[0]} \(t = {re.escape(step[1])}\)"):
        blowup.rollout_batch(np.array([[0.1], [1.0], [0.2]]), U, T=2.0, t0=0.3)
    XS, _ = blowup.rollout_batch(np.array([[0.1], [0.2]]), U, T=2.0, t0=0.3)
    np.testing.assert_allclose(XS[:, -1, 0], [0.1 / 0.8, 0.2 / 0.6], rtol=1e-8)


@pytest.mark.parametrize("snapshots", [0, 2])
def test_checkpointing_recomputes_time_dependent_dynamics_at_their_own_times(snapshots):
    # ẋ = −x + sin(3t)·u + p0·cos(t) from t0 = 0.4: each recomputed step must run at t0 + k·h
    prob = ODEProblem(lambda x, u, p, t: dnp.array([-x[0] + dnp.sin(3 * t) * u[0] + p[0] * dnp.cos(t)]), 1, 1, 1,
                      running_cost=lambda x, u, p, t: x[0] ** 2 + 0.1 * u[0] ** 2,
                      terminal_cost=lambda x, p: 2.0 * x[0] ** 2)
    x0, p = np.array([0.5]), np.array([0.7])
    U = np.cos(np.linspace(0.0, 2.0, 16))[:, None]
    g = prob.gradient(x0, U, p, T=2.0, t0=0.4, method="checkpointed", snapshots=snapshots)
    assert g.recomputed_steps > 0
    cost = lambda x0_, U_, p_: prob.rollout(x0_, U_, p_, T=2.0, t0=0.4).cost
    np.testing.assert_allclose(g.dU, central_fd(lambda V: cost(x0, V, p), U), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g.dx0, central_fd(lambda v: cost(v, U, p), x0), rtol=1e-6)
    np.testing.assert_allclose(g.dp, central_fd(lambda q: cost(x0, U, q), p), rtol=1e-6)


def _time_dependent(scheme="rk4"):
    """ẋ = −x + sin(3t)·u + p0·cos(t): every step must run at its own time t0 + k·h."""
    return ODEProblem(lambda x, u, p, t: dnp.array([-x[0] + dnp.sin(3 * t) * u[0] + p[0] * dnp.cos(t)]), 1, 1, 1,
                      running_cost=lambda x, u, p, t: x[0] ** 2 + 0.1 * u[0] ** 2,
                      terminal_cost=lambda x, p: 2.0 * x[0] ** 2, scheme=scheme)


def test_forward_sensitivities_run_time_dependent_dynamics_at_their_own_times_from_t0():
    prob = _time_dependent()
    x0, p = np.array([0.5]), np.array([0.7])
    U = np.cos(np.linspace(0.0, 2.0, 16))[:, None]
    g = prob.gradient(x0, U, p, T=2.0, t0=0.4, method="forward")
    cost = lambda x0_, U_, p_: prob.rollout(x0_, U_, p_, T=2.0, t0=0.4).cost
    np.testing.assert_allclose(g.dU, central_fd(lambda V: cost(x0, V, p), U), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(g.dp, central_fd(lambda q: cost(x0, U, q), p), rtol=1e-6)


def test_dopri5_runs_at_its_own_times_from_t0():
    # ẋ = cos t + u, ℓ = cos t: x(T) = x0 + sin(t0 + T) − sin(t0) and J the same increment (closed form)
    prob = ODEProblem(lambda x, u, p, t: dnp.array([dnp.cos(t) + u[0]]), 1, 1,
                      running_cost=lambda x, u, p, t: dnp.cos(t) + 0.0 * x[0], scheme="dopri5", rtol=1e-10,
                      atol=1e-12)
    r = prob.rollout(np.array([1.0]), np.zeros((4, 1)), T=1.0, t0=0.7)
    exact = np.sin(1.7) - np.sin(0.7)
    assert r.x[-1, 0] == pytest.approx(1.0 + exact, abs=1e-9) and r.J == pytest.approx(exact, abs=1e-9)
    for t in (0.7, 0.83, 1.1, 1.4471, 1.7):  # dense output: the end slope of each step taken at its own time
        assert r.dense(t)[0] == pytest.approx(1.0 + np.sin(t) - np.sin(0.7), abs=1e-8), t


def test_dopri5_controls_the_error_of_the_running_cost_too():
    # ẋ = 0 is integrated exactly, ℓ = cos 3t is not: only the cost's error can limit the step;
    # J = (sin 3(t0 + T) − sin 3 t0)/3 (closed form)
    prob = ODEProblem(lambda x, u: 0.0 * x, 1, 1, running_cost=lambda x, u, p, t: dnp.cos(3 * t) + 0.0 * x[0],
                      scheme="dopri5", rtol=1e-10, atol=1e-12)
    r = prob.rollout(np.array([1.0]), np.zeros((1, 1)), T=6.0, t0=0.2)
    assert r.J == pytest.approx((np.sin(3 * 6.2) - np.sin(3 * 0.2)) / 3, abs=1e-8)


def test_every_control_gets_its_own_gradient_from_the_adjoint():
    # two controls entering differently: the adjoint's quadrature of ∂H/∂u must fill each column
    prob = ODEProblem(lambda x, u, p, t: dnp.array([x[1] + u[1], -x[0] + u[0] - 0.5 * u[1] * x[0]]), 2, 2,
                      running_cost=lambda x, u, p, t: x[0] ** 2 + u[0] ** 2 + 0.3 * u[1] ** 2,
                      terminal_cost=lambda x, p: x[1] ** 2)
    x0, N = np.array([0.4, -0.3]), 100
    s = np.linspace(0.0, 1.0, N)
    U = np.stack([0.3 * np.sin(4 * s), 0.5 * np.cos(3 * s)], axis=1)
    b = prob.gradient(x0, U, T=1.0, method="bptt")
    cost = lambda V: prob.rollout(x0, V, T=1.0).cost
    np.testing.assert_allclose(b.dU, central_fd(cost, U), rtol=1e-6, atol=1e-9)
    a = prob.gradient(x0, U, T=1.0, method="adjoint")  # O(h⁴) from BPTT at h = 0.01
    np.testing.assert_allclose(a.dU, b.dU, rtol=1e-6, atol=1e-8 * np.max(np.abs(b.dU)))


def test_dopri5_error_norm_and_step_controller_follow_hairer_norsett_wanner():
    """The scaled RMS error √(mean((e_i / (atol + rtol·max(|y0_i|, |y1_i|)))²)) and the factor
    min(5, max(0.2, 0.9·err^(−1/5))) (5 for a zero error) of Solving ODEs I, II.4, computed here apart."""
    module = cartpole_dopri5(1e-10).module
    rng = np.random.default_rng(3)
    y0, y1, err = rng.standard_normal(5), rng.standard_normal(5), 1e-6 * rng.standard_normal(5)
    scale = 1e-8 + 1e-6 * np.maximum(np.abs(y0), np.abs(y1))
    assert module._rms_error(y0, y1, err, 1e-6, 1e-8) == pytest.approx(np.sqrt(np.mean((err / scale) ** 2)),
                                                                       rel=1e-14)
    for en in (0.0, 1e-9, 0.01, 0.5, 1.0, 3.0, 1e6):
        want = 5.0 if en == 0.0 else min(5.0, max(0.2, 0.9 * en ** -0.2))
        assert module._controller(en) == pytest.approx(want, rel=1e-15), en
    # a step whose error estimate vanishes (ẋ = 0: both orders exact) is never rejected
    still = ODEProblem(lambda x, u: 0.0 * x, 1, 1, scheme="dopri5")
    assert still.rollout(np.array([1.0]), np.zeros((3, 1)), T=1.0).stats["rejected"] == 0


def test_dopri5_costates_at_every_grid_point_are_the_closed_form_costate():
    # ẋ = A x + B u, Φ = ½|x|², U = 0: λ(t_k) = exp(Aᵀ(T − t_k)) x(T), x(T) = exp(A T) x0 (closed form,
    # scipy's expm). Several accepted steps per interval, and N = 1 (one interval of many steps).
    from scipy.linalg import expm
    A = np.array([[-0.3, 2.0], [-2.0, -0.1]])
    prob = ODEProblem(lambda x, u: dnp.array([A[0, 0] * x[0] + A[0, 1] * x[1],
                                              A[1, 0] * x[0] + A[1, 1] * x[1] + u[0]]), 2, 1,
                      terminal_cost=lambda x, p: 0.5 * dnp.sum(x * x), scheme="dopri5", rtol=1e-10, atol=1e-12)
    x0, T = np.array([1.0, -0.5]), 2.0
    xT = expm(A * T) @ x0
    for N in (1, 4):
        want = np.array([expm(A.T * (T - k * T / N)) @ xT for k in range(N + 1)])
        for method in ("bptt", "adjoint"):
            g = prob.gradient(x0, np.zeros((N, 1)), T=T, method=method)
            assert g.diagnostics.accepted >= 3 * N, (method, g.diagnostics)
            np.testing.assert_allclose(g.costates, want, rtol=1e-7, atol=1e-9, err_msg=f"{method}, N = {N}")
            np.testing.assert_allclose(g.dx0, want[0], rtol=1e-7, atol=1e-9)
        # max_steps = the steps taken: the step records are full, none is left unwritten past the last;
        # from 2 x0 (costates 2λ, linear dynamics), so that no freed buffer holds the right numbers
        M = g.diagnostics.accepted
        r = prob.module.bptt_adaptive(2 * x0, np.zeros((N, 1)), np.zeros(0), 0.0, T / N, prob.rtol, prob.atol, M)
        assert int(r.accepted) == M
        np.testing.assert_allclose(r.costates, 2 * want, rtol=1e-7, atol=1e-9, err_msg=f"full records, N = {N}")
        tab = prob.tableau
        M3 = prob.rollout(3 * x0, np.zeros((N, 1)), T=T).stats["accepted"]
        r = prob.module.adjoint_adaptive(3 * x0, np.zeros((N, 1)), np.zeros(0), 0.0, T / N, prob.rtol, prob.atol,
                                         M3, tab.A, tab.b, tab.b_low, tab.c)
        assert int(r.status) == 0 and int(r.accepted) == M3
        np.testing.assert_allclose(r.costates, 3 * want, rtol=1e-7, atol=1e-9, err_msg=f"adjoint full, N = {N}")
        # the autonomous problem shifted to negative times (t0 = −T), from −x0: costates −λ
        g = prob.gradient(-x0, np.zeros((N, 1)), T=T, t0=-T, method="adjoint")
        np.testing.assert_allclose(g.costates, -want, rtol=1e-7, atol=1e-9, err_msg=f"adjoint t0 < 0, N = {N}")


def test_dopri5_adjoint_of_still_dynamics_takes_one_backward_step_per_interval():
    # ẋ = 0, Φ = x²: λ = 2 x0 constant, integrated exactly (zero error estimate, the step grows 5×); the
    # backward sweep starts from the last forward step, H, so every interval is one accepted step
    prob = ODEProblem(lambda x, u: 0.0 * x + 0.0 * u[0], 1, 1, terminal_cost=lambda x, p: x[0] * x[0],
                      scheme="dopri5")
    g = prob.gradient(np.array([0.7]), np.zeros((5, 1)), T=1.0, method="adjoint")
    assert g.diagnostics.backward_accepted == 5 and g.diagnostics.rejected == 0
    np.testing.assert_allclose(g.costates, np.full((6, 1), 1.4), rtol=1e-14)


def test_dopri5_failures_name_their_own_cause():
    # ẋ = 10³⁰⁰ x² from 1: every trial step's stages overflow to inf until the step is below 10⁻²⁹⁰: a
    # non-finite state. ẋ = x² from 1: x = 1/(1 − t), the step shrinks to nothing before t = 1 while
    # every trial stays finite: a step-size underflow.
    overflow = ODEProblem(lambda x, u: 1e300 * x * x, 1, 1, scheme="dopri5", rtol=1e-6, atol=1e-8)
    with pytest.raises(FloatingPointError, match=r"interval 0 \(t in \[0, 2\]\): non-finite state or cost"):
        overflow.rollout(np.array([1.0]), np.zeros((1, 1)), T=2.0)
    blowup = ODEProblem(lambda x, u: x * x, 1, 1, scheme="dopri5", rtol=1e-6, atol=1e-8)
    with pytest.raises(FloatingPointError, match=r"interval 0 \(t in \[0, 2\]\): step size underflow"):
        blowup.rollout(np.array([1.0]), np.zeros((1, 1)), T=2.0)


def test_dopri5_dense_state_finds_the_step_containing_t_from_any_starting_step():
    # the adjoint calls dense_state with the step it used last, not the one containing t: from every
    # start the search must end on a step [t_j, t_j + h_j] holding t, and the value is the closed form
    # x(t) = 1 + sin t − sin t0 of ẋ = cos t
    prob = ODEProblem(lambda x, u, p, t: dnp.array([dnp.cos(t) + u[0]]), 1, 1, scheme="dopri5", rtol=1e-10,
                      atol=1e-12)
    t0, H, N = -0.7, 0.5, 3  # times of both signs
    r = prob.module.rollout_adaptive(np.array([1.0]), np.zeros((N, 1)), np.zeros(0), t0, H, *prob._adaptive_args())
    steps, M = r.steps, int(r.steps.count)
    assert M >= 2 * N
    out = np.empty(1)
    for t in np.linspace(t0, t0 + N * H, 23):
        for start in range(M):
            j = prob.module.dense_state(t, start, steps, out)
            assert 0 <= j < M and steps.t[j] - 1e-12 <= t <= steps.t[j] + steps.h[j] + 1e-12, (t, start, j)
            bound = steps.h[j] ** 4 / 384 + 1e-9  # cubic Hermite's error bound, h⁴/384·max|x⁗|, |x⁗| = |cos| ≤ 1
            assert out[0] == pytest.approx(1.0 + np.sin(t) - np.sin(t0), abs=bound), (t, start)


def _dopri5_replay(f, x0, U, t0, H, rtol, atol):
    """The step sizes and rejections of the documented controller for a scalar ẋ = f(x, u, t) with no
    running cost, in numpy with scipy's Dormand-Prince tableau: first trial step H/10; the last step of
    an interval shortened to end on it; the scaled RMS error over (x, cost) (the cost's error is 0);
    accept when ≤ 1; h ← h·min(5, max(0.2, 0.9·err^(−1/5))) (5 for a zero error), and h/5 after a
    trial whose stages are not finite. Also the trial step at the start of each interval, and each
    accepted step's (t, h, x, x_end, ẋ, ẋ_end) for dense output."""
    from scipy.integrate import RK45
    A, B, C, E = RK45.A, RK45.B, RK45.C, RK45.E

    def step(x, u, t, h):
        K = np.zeros(7)
        for i in range(6):
            K[i] = f(x + h * (A[i, :i] @ K[:i]), u, t + C[i] * h)
        y = x + h * (B @ K[:6])
        K[6] = f(y, u, t + h)
        return y, h * (E @ K)

    x, h, hs, starts, rejected, records = x0, 0.1 * H, [], [], 0, []
    with np.errstate(all="ignore"):
        for k, u in enumerate(U):
            t, t_end = t0 + k * H, t0 + (k + 1) * H
            starts.append(h)
            while True:
                last = h >= (t_end - t) * (1.0 - 1e-12)
                h_try = t_end - t if last else h
                y, e = step(x, u, t, h_try)
                finite = np.isfinite(y) and np.isfinite(e)
                en = abs(e) / (atol + rtol * max(abs(x), abs(y))) / np.sqrt(2.0) if finite else np.inf
                if en <= 1.0:
                    hs.append(h_try)
                    records.append((t, h_try, x, y, f(x, u, t), f(y, u, t + h_try)))
                    x = y
                    h = h_try * (5.0 if en == 0.0 else min(5.0, max(0.2, 0.9 * en ** -0.2)))
                    if last:
                        break
                    t += h_try
                else:
                    rejected += 1
                    h = h_try * (max(0.2, 0.9 * en ** -0.2) if finite else 0.2)
    return np.array(hs), rejected, x, np.array(starts), records


def _check_against_replay(prob, f, x0, U, t0, H):
    """The compiled rollout's accepted steps, rejections and final state against the replay; every
    accepted step inside its own control interval."""
    hs, rejected, xT, starts, _ = _dopri5_replay(f, x0, U[:, 0], t0, H, prob.rtol, prob.atol)
    r = prob.module.rollout_adaptive(np.array([x0]), U, np.zeros(0), t0, H, *prob._adaptive_args())
    M = int(r.steps.count)
    assert int(r.rejected) == rejected and M == len(hs), (int(r.rejected), rejected, M, len(hs))
    np.testing.assert_allclose(r.steps.h[:M], hs, rtol=1e-6)  # round-off of t_end − t
    assert r.xs[-1, 0] == pytest.approx(xT, rel=1e-12)
    k = r.steps.interval[:M]
    assert np.all(r.steps.t[:M] >= t0 + k * H - 1e-12) and np.all(r.steps.t[:M] + r.steps.h[:M] <= t0 + (k + 1) * H
                                                                  + 1e-12)
    return hs, rejected, starts


def test_dopri5_step_sizes_and_rejections_follow_the_documented_controller():
    # ẋ = −8x + u + sin 3t with controls jumping between ±1: every jump makes the step carried over
    # too large (rejections), every interval ends on a shortened step
    f = lambda x, u, t: -8.0 * x + u + np.sin(3.0 * t)
    prob = ODEProblem(lambda x, u, p, t: dnp.array([-8.0 * x[0] + u[0] + dnp.sin(3.0 * t)]), 1, 1,
                      scheme="dopri5", rtol=1e-6, atol=1e-9)
    U = np.array([1.0, -1.0] * 12)[:, None] * np.linspace(1.0, 3.0, 24)[:, None]
    hs, rejected, _ = _check_against_replay(prob, f, 0.2, U, 0.3, 0.35)
    assert rejected > 5


def _decay_error(H):
    """The Dormand-Prince error estimate of one step of ẋ = −x from x = 1 (scipy's tableau)."""
    from scipy.integrate import RK45
    A, B, E = RK45.A, RK45.B, RK45.E
    K = np.zeros(7)
    for i in range(6):
        K[i] = -(1.0 + H * (A[i, :i] @ K[:i]))
    K[6] = -(1.0 + H * (B @ K[:6]))
    return abs(H * (E @ K))


def test_dopri5_steps_at_the_edges_of_acceptance_and_of_the_control_interval():
    # ẋ = −x under a relative tolerance only: a step of size h has the same scaled error at every state.
    # en(H) = 0.575 grows the step by 0.9·0.575^(−1/5) = 1.005 after it: the next interval's trial step
    # lies in [H, 1.01 H) and must still stop at the interval's end. en(H/10) = 1.005 (the first trial
    # step) must be rejected (accept when ≤ 1), however close.
    H, f = 0.5, lambda x, u, t: -x + u
    for h, en, U in ((H, 0.575, np.zeros((12, 1))), (0.1 * H, 1.005, np.zeros((2, 1)))):
        prob = ODEProblem(lambda x, u: dnp.array([-x[0] + u[0]]), 1, 1, scheme="dopri5",
                          rtol=_decay_error(h) / np.sqrt(2.0) / en, atol=1e-300)
        hs, rejected, starts = _check_against_replay(prob, f, 1.0, U, 0.0, H)
        if en < 1:
            assert np.any((starts >= H) & (starts < 1.01 * H)), starts
        else:
            assert rejected >= 1 and hs[0] < h, (rejected, hs)


def test_dopri5_steps_after_overflowing_and_far_too_large_trials():
    # ẋ = −x³ from 10 over intervals of 5: the first trial steps overflow (non-finite stages, h/5), the
    # next ones are finite with errors far above 1 (the factor 0.2 at its lower clamp)
    prob = ODEProblem(lambda x, u: dnp.array([-x[0] * x[0] * x[0] + u[0]]), 1, 1, scheme="dopri5", rtol=1e-8,
                      atol=1e-10)
    f = lambda x, u, t: -x * x * x + u
    hs, rejected, _ = _check_against_replay(prob, f, 10.0, np.zeros((2, 1)), 0.0, 5.0)
    assert rejected >= 3


def test_dopri5_adjoint_runs_at_its_own_times_from_a_negative_t0():
    # ẋ = x cos t, Φ = x: x(T) = x0 exp(sin(t0 + T) − sin t0), λ(t) = exp(sin(t0 + T) − sin t) (closed form)
    prob = ODEProblem(lambda x, u, p, t: dnp.array([x[0] * dnp.cos(t) + u[0]]), 1, 1,
                      terminal_cost=lambda x, p: x[0], scheme="dopri5", rtol=1e-10, atol=1e-12)
    t0, T, N = -2.0, 1.5, 3
    t = t0 + T / N * np.arange(N + 1)
    for method in ("adjoint", "bptt"):
        g = prob.gradient(np.array([0.8]), np.zeros((N, 1)), T=T, t0=t0, method=method)
        np.testing.assert_allclose(g.costates[:, 0], np.exp(np.sin(t0 + T) - np.sin(t)), rtol=1e-7, err_msg=method)


def _dopri5_backward_replay(G, z, n, m, h, t0, H, N, rtol, atol):
    """The documented backward sweep of the continuous adjoint, in numpy with scipy's Dormand-Prince
    tableau: z = (λ, μ_u, μ_p) integrated in τ = t_{k+1} − t over the intervals k = N − 1, …, 0 with
    dz/dτ = G(z, t) = ∂H/∂(x, u, p); μ_u restarts at 0 in each interval; the first trial step is the
    forward sweep's last accepted step h; each interval's last step is shortened to end on t_k; stage
    times are clipped to the interval; the scaled RMS error over all of z, accept when ≤ 1, and the
    forward controller's step-size factors. Returns the costates (N + 1, n), dU (N, m), μ_p at t0, the
    accepted and rejected counts and the (k, h, err) of every trial."""
    from scipy.integrate import RK45
    A, B, C, E = RK45.A, RK45.B, RK45.C, RK45.E
    z = np.array(z, dtype=float)
    lam, dU, accepted, rejected, trials = np.empty((N + 1, n)), np.zeros((N, m)), 0, 0, []
    lam[N] = z[:n]
    with np.errstate(all="ignore"):
        for k in range(N - 1, -1, -1):
            tb, ta = t0 + (k + 1) * H, t0 + k * H
            z[n:n + m], tau = 0.0, 0.0
            while True:
                last = h >= (H - tau) * (1.0 - 1e-12)
                h_try = H - tau if last else h
                K = np.zeros((7, z.size))
                for i in range(6):
                    K[i] = G(z + h_try * (A[i, :i] @ K[:i]), min(max(tb - (tau + C[i] * h_try), ta), tb))
                z5 = z + h_try * (B @ K[:6])
                K[6] = G(z5, min(max(tb - (tau + h_try), ta), tb))
                scale = atol + rtol * np.maximum(np.abs(z), np.abs(z5))
                en = np.sqrt(np.mean((h_try * (E @ K) / scale) ** 2)) if np.all(np.isfinite(z5)) else np.inf
                trials.append((k, h_try, en))
                if en <= 1.0:
                    z, accepted = z5, accepted + 1
                    h = h_try * (5.0 if en == 0.0 else min(5.0, max(0.2, 0.9 * en ** -0.2)))
                    if last:
                        break
                    tau += h_try
                else:
                    rejected += 1
                    h = h_try * (max(0.2, 0.9 * en ** -0.2) if en < np.inf else 0.2)
            lam[k], dU[k] = z[:n], z[n:n + m]
    return lam, dU, z[n + m:], accepted, rejected, trials


def _hermite_dense(records):
    """x(t) of a replayed forward sweep: scipy's cubic Hermite spline through the accepted steps'
    end points and slopes."""
    from scipy.interpolate import CubicHermiteSpline
    splines = [CubicHermiteSpline([t, t + h], [x, y], [fx, fy]) for t, h, x, y, fx, fy in records]
    starts = np.array([r[0] for r in records])
    return lambda t: float(splines[max(0, np.searchsorted(starts, t, side="right") - 1)](t))


@functools.lru_cache(maxsize=None)
def _forced_linear():
    """ẋ = p2·x + u + p0·sin 3t, Φ = p1·x: ∂H/∂(x, u, p) = (p2 λ, λ, λ sin 3t, 0, λ x)."""
    return ODEProblem(lambda x, u, p, t: dnp.array([p[2] * x[0] + u[0] + p[0] * dnp.sin(3.0 * t)]), 1, 1, 3,
                      terminal_cost=lambda x, p: p[1] * x[0], scheme="dopri5")


def _check_backward_against_replay(x0, U, p, t0, H, rtol, atol):
    """The compiled adjoint's backward accepted and rejected counts, costates and gradients against the
    forward and backward replays of ẋ = p2·x + u + p0·sin 3t, Φ = p1·x; returns the backward trials."""
    prob, N = _forced_linear(), U.shape[0]
    f = lambda x, u, t: p[2] * x + u + p[0] * np.sin(3.0 * t)
    hs, rejected, xT, _, records = _dopri5_replay(f, x0, U[:, 0], t0, H, rtol, atol)
    x = _hermite_dense(records)
    G = lambda z, t: np.array([p[2] * z[0], z[0], z[0] * np.sin(3.0 * t), 0.0, z[0] * x(t)])
    lam, dU, mu_p, accepted, back_rejected, trials = _dopri5_backward_replay(
        G, [p[1], 0.0, 0.0, 0.0, 0.0], 1, 1, hs[-1], t0, H, N, rtol, atol)
    tab = prob.tableau
    r = prob.module.adjoint_adaptive(np.array([x0]), U, p, t0, H, rtol, atol, 10_000, tab.A, tab.b, tab.b_low, tab.c)
    assert int(r.status) == 0 and int(r.accepted) == len(hs)
    assert (int(r.backward_accepted), int(r.rejected)) == (accepted, rejected + back_rejected), trials
    np.testing.assert_allclose(r.costates, lam, rtol=1e-9)
    np.testing.assert_allclose(r.dU, dU, rtol=1e-9)
    np.testing.assert_allclose(r.dp, mu_p + np.array([0.0, xT, 0.0]), rtol=1e-9, atol=1e-15)
    return trials


def test_dopri5_backward_steps_and_rejections_follow_the_documented_controller():
    # ẋ = −8x + u + sin 3t with controls jumping between ±1.5 (the forward replay's case, with a
    # parameter-dependent cost): the backward sweep's own step control, replayed in numpy; under
    # atol = 10⁻¹² the backward sweep rejects steps too
    U = np.array([1.5, -1.5] * 4)[:, None]
    trials = _check_backward_against_replay(0.2, U, np.array([1.0, 2.0, -8.0]), 0.3, 0.35, 1e-7, 1e-12)
    assert len(trials) > 3 * U.shape[0] and sum(err > 1 for _, _, err in trials) >= 3


def _backward_trials_of_a_quadrature(x0, U, t0, H, rtol, atol):
    """ẋ = u + sin 3t from x0 ≫ 1: the forward error is negligible beside the state, its steps grow 5× to
    whole intervals (checked), so the backward sweep's first trial step is H. The replayed backward
    trials (k, h, err) as a function of λ = p1: the errors are those of the quadrature of λ sin 3t
    (μ_p0), scaled by atol + rtol·|μ|, so they grow with p1."""
    f = lambda x, u, t: u + np.sin(3.0 * t)
    hs, _, _, _, records = _dopri5_replay(f, x0, U[:, 0], t0, H, rtol, atol)
    assert hs[-1] == pytest.approx(H)
    x = _hermite_dense(records)
    G = lambda z, t: np.array([0.0, z[0], z[0] * np.sin(3.0 * t), 0.0, z[0] * x(t)])
    return lambda c: _dopri5_backward_replay(G, [c, 0, 0, 0, 0], 1, 1, H, t0, H, U.shape[0], rtol, atol)[5]


def test_dopri5_backward_steps_at_the_edge_of_acceptance_and_after_far_too_large_trials():
    # p1 solved for in the replay so that (a) the first backward trial's error is 1.005: it must be
    # rejected (accept when ≤ 1), however close; (b) the first trial's error is > 1845, where the shrink
    # factor 0.9·err^(−1/5) is clamped to 0.2, the second (0.2 H) is rejected too, and the third's error
    # is 0.999: a clamp 1 % larger would make it > 1 (errors grow about as h⁴ here); (c) as (b) with the
    # third trial's error 1.001: a step after the second rejection 0.7 % shorter (0.9·err^(−0.202),
    # err ≈ 30) would make it < 1.
    from scipy.optimize import brentq
    U, t0, H, atol = np.array([[0.5], [-1.0], [2.0]]), 0.2, 0.5, 1e-9
    cases = ((1e6, 1e-8, 0, 1.005, (1e-12, 1e3)), (1e8, 1e-9, 2, 0.999, (10.0, 100.0)),
             (1e8, 1e-9, 2, 1.001, (10.0, 100.0)))
    for x0, rtol, trial, err, bracket in cases:
        trials_of = _backward_trials_of_a_quadrature(x0, U, t0, H, rtol, atol)
        c = brentq(lambda c: trials_of(c)[trial][2] - err, *bracket, xtol=1e-16, rtol=1e-12)
        trials = _check_backward_against_replay(x0, U, np.array([1.0, c, 0.0]), t0, H, rtol, atol)
        assert trials[0][1] == pytest.approx(H) and trials[trial][2] == pytest.approx(err, rel=1e-6), trials[:3]
        if trial == 0:
            assert trials[1][0] == 2 and trials[1][1] < H, trials[:2]
        else:
            assert trials[0][2] > 1845 and trials[1][1] == pytest.approx(0.2 * H) and trials[1][2] > 1, trials[:3]


def test_dopri5_adjoint_of_nonlinear_dynamics_at_negative_times_is_the_closed_form_costate():
    # ẋ = −x² + u, Φ = x, U = 0 on [−3, −0.5]: x(t) = x0/(1 + x0(t − t0)), λ(t) = (x(T)/x(t))² and
    # dJ/du_k = ∫ λ dt over interval k (closed forms). The backward sweep reads the state from dense
    # output (∂H/∂x = −2λx), and at negative times a dense-output search started outside the step
    # records (an index below 0, the unwritten tail of the buffers) cannot walk into them.
    prob = ODEProblem(lambda x, u: dnp.array([-x[0] * x[0] + u[0]]), 1, 1, terminal_cost=lambda x, p: x[0],
                      scheme="dopri5", rtol=1e-10, atol=1e-12)
    x0, t0, T, N = 0.8, -3.0, 2.5, 3
    t = t0 + T / N * np.arange(N + 1)
    a = 1.0 + x0 * (t - t0)  # x(t) = x0 / a(t)
    g = prob.gradient(np.array([x0]), np.zeros((N, 1)), T=T, t0=t0, method="adjoint")
    assert prob.max_steps >= 2 * g.diagnostics.accepted
    np.testing.assert_allclose(g.costates[:, 0], (a / a[-1]) ** 2, rtol=1e-7)
    np.testing.assert_allclose(g.dU[:, 0], np.diff(a ** 3) / (3 * x0 * a[-1] ** 2), rtol=1e-7)


def test_dopri5_backward_step_size_underflow_is_reported_at_the_replayed_trial():
    # ẋ = p2·x + u, Φ = p1·x with p1 = 10³⁰⁸: J = p1·x(T) is finite, but every backward stage
    # ∂H/∂x = p2·λ overflows, so each trial is non-finite and shrinks the step 5× (from the forward
    # sweep's last step h0) until it is below 10⁻¹³·max(1, |t_N|): UNDERFLOW in the last interval
    # after k rejections, k replayed here. t0 (and for |t_N| < 1 the time scale s) are chosen so that
    # the threshold sits 0.5 % above or 1 % below a trial step: a threshold 1 % higher, a bound 1 %
    # higher at |t_N| < 1, a bound divided instead of multiplied by |t_N|, or a shrink of 0.202 would
    # change k.
    prob, N, x0 = _forced_linear(), 2, 0.2
    for ratio, tN, s in ((1.005, 3.3, 1.0), (0.99, 3.3, 1.0), (1.005, 0.5, None)):
        H, p2 = 0.5, -10.0
        h0 = _dopri5_replay(lambda x, u, t: p2 * x + u, x0, np.zeros(N), 0.0, H, 1e-8, 1e-10)[0][-1]
        k = int(np.floor(np.log(h0 / (ratio * 1e-13 * max(1.0, tN))) / np.log(5.0)))
        if s is None:  # |t_N| < 1: the bound is 10⁻¹³; rescale time (steps scale with it) to place it
            k += 1
            s = ratio * 1e-13 * 5.0 ** k / h0
            assert 1.0 < s <= 5.0
            H, p2 = H * s, p2 / s
        else:
            tN = h0 * 0.2 ** k / (ratio * 1e-13)
        t0 = tN - N * H
        hs, rejected, xT, _, _ = _dopri5_replay(lambda x, u, t: p2 * x + u, x0, np.zeros(N), t0, H, 1e-8, 1e-10)
        h, bound, back = hs[-1], 1e-13 * max(1.0, abs(t0 + N * H)), 0
        while True:  # the backward replay: every trial non-finite
            back, h = back + 1, 0.2 * h
            if h < bound:
                break
        assert h / bound == pytest.approx(0.2 * ratio if ratio > 1 else ratio, rel=1e-3)
        tab = prob.tableau
        p = np.array([0.0, 1e308, p2])
        r = prob.module.adjoint_adaptive(np.array([x0]), np.zeros((N, 1)), p, t0, H, 1e-8, 1e-10, 10_000,
                                         tab.A, tab.b, tab.b_low, tab.c)
        assert r.J == pytest.approx(1e308 * xT, rel=1e-12)
        assert (int(r.status), int(r.where), int(r.backward_accepted)) == (3, N - 1, 0)
        assert int(r.rejected) == rejected + back, (int(r.rejected), rejected, back)
    with pytest.raises(FloatingPointError, match=r"control interval 1 .*step size underflow"):
        prob.gradient(np.array([x0]), np.zeros((N, 1)), p, T=N * H, t0=t0, method="adjoint")
