"""Ready-made optimal control problems, each with its source and (where known) its optimum.

>>> sorted(SYSTEMS)[:3]
['brachistochrone', 'cart_pole', 'double_integrator_lqr']
>>> ocp = SYSTEMS["double_integrator_lqr"](N=50)
>>> ocp.N, ocp.T
(50, 5.0)
"""

from __future__ import annotations

import numpy as np

import diffsim.numpy as dnp

from . import dynamics as dyn
from .problem import OptimalControlProblem

G0 = 9.80665


def double_integrator_lqr(N: int = 200, T: float = 5.0) -> OptimalControlProblem:
    """ẍ = u, Q = I, R = 1, terminal weight I, x0 = (1, 0): the optimum is x0ᵀP(0)x0 from the
    Riccati equation (see :func:`riccati_lqr`)."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[1.0, 0.0], T=T, N=N, n_u=1,
                                 running_cost=lambda x, u: dnp.sum(x * x) + u[0] ** 2,
                                 terminal_cost=lambda x: dnp.sum(x * x), x_names=["position", "velocity"],
                                 u_names=["force"], name="double_integrator_lqr")


def riccati_lqr(T: float = 5.0, n_points: int = 201):
    """Finite-horizon LQR of :func:`double_integrator_lqr` by integrating the Riccati equation
    −Ṗ = AᵀP + PA − PBR⁻¹BᵀP + Q, P(T) = S, backward with scipy. Returns (J*, t, P(t), x(t), u(t))
    with u = −R⁻¹BᵀP x along the closed loop."""
    from scipy.integrate import solve_ivp

    A, B, Q, R, S = np.array([[0.0, 1.0], [0.0, 0.0]]), np.array([[0.0], [1.0]]), np.eye(2), np.eye(1), np.eye(2)

    def riccati(t, p):
        P = p.reshape(2, 2)
        return -(A.T @ P + P @ A - P @ B @ np.linalg.solve(R, B.T) @ P + Q).ravel()

    ts = np.linspace(0.0, T, n_points)
    back = solve_ivp(riccati, [T, 0.0], S.ravel(), t_eval=ts[::-1], rtol=1e-12, atol=1e-12, dense_output=True)
    P = back.sol
    x0 = np.array([1.0, 0.0])
    closed = solve_ivp(lambda t, x: (A - B @ np.linalg.solve(R, B.T) @ P(t).reshape(2, 2)) @ x, [0.0, T], x0,
                       t_eval=ts, rtol=1e-12, atol=1e-12)
    u = np.array([-(np.linalg.solve(R, B.T) @ P(t).reshape(2, 2) @ x)[0] for t, x in zip(ts, closed.y.T)])
    return float(x0 @ P(0.0).reshape(2, 2) @ x0), ts, P, closed.y.T, u


def pendulum_swingup(N: int = 100, T: float = 4.0, u_max: float = 4.0) -> OptimalControlProblem:
    """Torque-limited pendulum (m = l = 1, g = 9.81, damping 0.1) from hanging (θ = 0) to upright
    (θ = π, at rest), minimising ∫ u² dt. |u| ≤ u_max < mgl, so it must pump energy."""
    f, _, _, p = dyn.MODELS["pendulum"]
    return OptimalControlProblem(f, x0=[0.0, 0.0], T=T, N=N, n_u=1, params=p,
                                 running_cost=lambda x, u, p: u[0] ** 2, u_lower=-u_max, u_upper=u_max,
                                 terminal_equality=lambda x, p: dnp.array([x[0] - np.pi, x[1]]),
                                 x_names=["angle", "rate"], u_names=["torque"], name="pendulum_swingup")


def cart_pole_swingup(N: int = 100, T: float = 2.0, distance: float = 1.0,
                      u_max: float = 20.0) -> OptimalControlProblem:
    """Cart-pole swing-up of Kelly (2017), "An introduction to trajectory optimization", §6:
    cart 1 kg, pole 0.3 kg and 0.5 m, move the cart by ``distance`` and invert the pole in T = 2 s,
    |F| ≤ 20 N, minimising ∫ F² dt."""
    return OptimalControlProblem(dyn.cart_pole, x0=[0.0, 0.0, 0.0, 0.0], T=T, N=N, n_u=1,
                                 params=[1.0, 0.3, 0.5, 9.81], running_cost=lambda x, u, p: u[0] ** 2,
                                 u_lower=-u_max, u_upper=u_max,
                                 terminal_equality=lambda x, p: x - np.array([distance, np.pi, 0.0, 0.0]),
                                 x_names=["cart", "angle", "cart speed", "rate"], u_names=["force"],
                                 name="cart_pole_swingup")


def two_link_arm_reach(N: int = 80, T: float = 1.5, target=(np.pi / 2, np.pi / 4), tau_max: float = 15.0
                       ) -> OptimalControlProblem:
    """Planar two-link arm (no gravity) from rest at (0, 0) to rest at ``target`` joint angles,
    minimising ∫ |τ|² dt with |τ_i| ≤ tau_max."""
    f, _, _, p = dyn.MODELS["two_link_arm"]
    goal = np.array([target[0], target[1], 0.0, 0.0])
    return OptimalControlProblem(f, x0=np.zeros(4), T=T, N=N, n_u=2, params=p,
                                 running_cost=lambda x, u, p: dnp.sum(u * u), u_lower=-tau_max, u_upper=tau_max,
                                 terminal_equality=lambda x, p: x - goal,
                                 x_names=["shoulder", "elbow", "shoulder rate", "elbow rate"],
                                 u_names=["shoulder torque", "elbow torque"], name="two_link_arm_reach")


def unicycle_parking(N: int = 60, T: float = 6.0) -> OptimalControlProblem:
    """Unicycle from (0, 0, heading 0) to park at (2, 1) facing π/2, with |v| ≤ 1, |ω| ≤ 1, minimising
    ∫ v² + ω² dt."""
    return OptimalControlProblem(dyn.unicycle, x0=[0.0, 0.0, 0.0], T=T, N=N, n_u=2, params=[0.0],
                                 running_cost=lambda x, u, p: dnp.sum(u * u), u_lower=[-1.0, -1.0], u_upper=[1.0, 1.0],
                                 terminal_equality=lambda x, p: x - np.array([2.0, 1.0, np.pi / 2]),
                                 x_names=["x", "y", "heading"], u_names=["speed", "turn rate"], u_init=[0.5, 0.0],
                                 name="unicycle_parking")


def van_der_pol(N: int = 100, T: float = 10.0) -> OptimalControlProblem:
    """The Van der Pol problem of CasADi's direct-shooting examples: x0 = (0, 1), u ∈ [−0.75, 1],
    minimise ∫ x0² + x1² + u² dt over T = 10."""
    return OptimalControlProblem(dyn.van_der_pol, x0=[0.0, 1.0], T=T, N=N, n_u=1, params=[1.0],
                                 running_cost=lambda x, u, p: dnp.sum(x * x) + u[0] ** 2, u_lower=-0.75, u_upper=1.0,
                                 x_names=["x0", "x1"], u_names=["u"], name="van_der_pol")


def goddard_rocket(N: int = 100) -> OptimalControlProblem:
    """Goddard rocket (COPS 3.0, problem 10; Bryson 1999), scaled: maximise the final altitude h(T)
    of a rocket with drag D = 310 v² exp(−500 (h − 1)), gravity 1/h², thrust u ∈ [0, 3.5],
    ṁ = −u / 0.5, from (h, v, m) = (1, 0, 1) until the mass is 0.6; T free.
    COPS reports h(T) = 1.01283 (a singular arc: shooting gets close, not always to 1e-5)."""

    def f(x, u):
        h, v, m = x[0], x[1], x[2]
        drag = 310.0 * v * v * dnp.exp(-500.0 * (h - 1.0))
        return dnp.array([v, (u[0] - drag) / m - 1.0 / (h * h), -u[0] / 0.5])

    return OptimalControlProblem(f, x0=[1.0, 0.0, 1.0], T=0.2, N=N, n_u=1, u_lower=0.0, u_upper=3.5,
                                 terminal_cost=lambda x: -x[0], terminal_equality=lambda x: dnp.array([x[2] - 0.6]),
                                 free_final_time=True, T_bounds=(0.01, 1.0), x_names=["altitude", "speed", "mass"],
                                 u_names=["thrust"], name="goddard_rocket")


def brachistochrone(N: int = 100, g: float = G0) -> OptimalControlProblem:
    """Fastest frictionless slide from (0, 10) to (10, 5) (free final time): ẋ = v sin θ,
    ẏ = −v cos θ, v̇ = g cos θ. The cycloid gives T* = 1.8016 s for g = 9.80665. The guess is
    θ = 1 rad: at rest with θ = π/2 (the bounds' mid-point) no control moves y to first order."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[2] * dnp.sin(u[0]), -x[2] * dnp.cos(u[0]),
                                                         g * dnp.cos(u[0])]),
                                 x0=[0.0, 10.0, 0.0], T=2.0, N=N, n_u=1, running_cost=lambda x, u: 1.0 + 0.0 * u[0],
                                 u_lower=0.0, u_upper=np.pi,
                                 terminal_equality=lambda x: dnp.array([x[0] - 10.0, x[1] - 5.0]),
                                 free_final_time=True, T_bounds=(0.1, 10.0), x_names=["x", "y", "speed"],
                                 u_names=["angle"], u_init=[1.0], name="brachistochrone")


def speed_limited_transfer(N: int = 50, T: float = 2.0, v_max: float = 0.6) -> OptimalControlProblem:
    """Double integrator rest to rest over a unit distance in T with the speed path constraint
    v ≤ v_max, minimising ∫ u² dt. For T = 2, v_max = 0.6 the optimum is a constant-speed arc
    between two quadratic blends (constraint active on an interval)."""
    return OptimalControlProblem(lambda x, u: dnp.array([x[1], u[0]]), x0=[0.0, 0.0], T=T, N=N, n_u=1,
                                 running_cost=lambda x, u: u[0] ** 2,
                                 terminal_equality=lambda x: x - np.array([1.0, 0.0]),
                                 path_constraints=lambda x, u: dnp.array([x[1] - v_max]),
                                 x_names=["position", "velocity"], u_names=["force"], name="speed_limited_transfer")


def quadrotor_obstacle(N: int = 60, T: float = 3.0, centre=(1.0, 0.1), radius: float = 0.4) -> OptimalControlProblem:
    """Planar quadrotor (m = 1, I = 0.01, arm 0.1) from hover at the origin to hover at (2, 0) in
    T, thrusts in [0, 10] each, minimising ∫ |u - u_hover|² dt, around a circular obstacle:
    (px - cx)² + (py - cy)² ≥ r² at every node (a non-convex path constraint). The state guess
    passes below the obstacle; from hover at the start the straight line runs through it."""
    f, _, _, p = dyn.MODELS["quadrotor_2d"]
    hover = 0.5 * p[0] * p[3]
    c = np.asarray(centre, dtype=float)
    return OptimalControlProblem(f, x0=np.zeros(6), T=T, N=N, n_u=2, params=p,
                                 running_cost=lambda x, u, p: dnp.sum((u - hover) ** 2),
                                 u_lower=0.0, u_upper=10.0, u_init=[hover, hover],
                                 x_init=[[0.0, 0.0, 0, 0, 0, 0], [1.0, -0.6, 0, 0, 0, 0], [2.0, 0.0, 0, 0, 0, 0]],
                                 terminal_equality=lambda x, p: x - np.array([2.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
                                 path_constraints=lambda x, u, p: dnp.array(
                                     [radius ** 2 - (x[0] - c[0]) ** 2 - (x[1] - c[1]) ** 2]),
                                 x_names=["px", "py", "angle", "vx", "vy", "rate"], u_names=["left", "right"],
                                 name="quadrotor_obstacle")


def brachistochrone_time(g: float = G0, start=(0.0, 10.0), end=(10.0, 5.0)) -> float:
    """The cycloid's descent time between ``start`` and ``end`` (closed form up to one root)."""
    from scipy.optimize import brentq

    dx, dy = end[0] - start[0], start[1] - end[1]
    phi = brentq(lambda f: (f - np.sin(f)) / (1 - np.cos(f)) - dx / dy, 1e-6, 2 * np.pi - 1e-6)
    return float(phi * np.sqrt(dy / (1 - np.cos(phi)) / g))


SYSTEMS = {
    "pendulum": pendulum_swingup,
    "cart_pole": cart_pole_swingup,
    "two_link_arm": two_link_arm_reach,
    "unicycle": unicycle_parking,
    "double_integrator_lqr": double_integrator_lqr,
    "van_der_pol": van_der_pol,
    "goddard": goddard_rocket,
    "brachistochrone": brachistochrone,
    "speed_limit": speed_limited_transfer,
    "quadrotor_obstacle": quadrotor_obstacle,
}
