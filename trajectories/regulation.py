"""Receding-horizon tasks: problems stated for model-predictive control (a running cost that
tracks a set point or a moving target, a terminal cost instead of terminal constraints).

>>> sorted(MPC_SYSTEMS)
['cart_pole', 'two_link_arm']
>>> ocp = MPC_SYSTEMS["cart_pole"]()
>>> ocp.N, ocp.T, ocp.n_x
(100, 2.0, 4)
"""

from __future__ import annotations

import numpy as np

import diffsim.numpy as dnp

from . import dynamics as dyn
from .problem import OptimalControlProblem

CART_POLE = np.array([1.0, 0.3, 0.5, 9.81])   # Kelly (2017): cart 1 kg, pole 0.3 kg and 0.5 m
UPRIGHT = np.array([0.0, np.pi, 0.0, 0.0])     # the cart-pole's state held by cart_pole_upright


def cart_pole_upright(N: int = 100, T: float = 2.0, u_max: float = 20.0, x0=(0.0, np.pi, 0.0, 0.0)
                      ) -> OptimalControlProblem:
    """Hold the cart-pole of :func:`trajectories.systems.cart_pole_swingup` upright (θ = π) over the
    origin, |F| ≤ u_max; from hanging (x0 = 0) the same cost swings it up first."""
    weights = np.array([2.0, 20.0, 0.2, 0.2])
    goal = UPRIGHT

    def running(x, u, p):
        e = x - goal
        return dnp.sum(weights * e * e) + 0.01 * u[0] ** 2

    return OptimalControlProblem(dyn.cart_pole, x0=list(x0), T=T, N=N, n_u=1, params=CART_POLE,
                                 running_cost=running,
                                 terminal_cost=lambda x, p: dnp.sum(5.0 * weights * (x - goal) ** 2),
                                 u_lower=-u_max, u_upper=u_max, x_names=["cart", "angle", "cart speed", "rate"],
                                 u_names=["force"], name="cart_pole_upright")


def arm_target(t):
    """The moving target of :func:`two_link_arm_tracking`: joint angles (shoulder, elbow) at time t."""
    return np.pi / 2 + 0.6 * np.sin(1.5 * t), np.pi / 4 + 0.5 * np.cos(1.5 * t)


def two_link_arm_tracking(N: int = 100, T: float = 1.0, tau_max: float = 15.0, scheme: str = "euler"
                          ) -> OptimalControlProblem:
    """The two-link arm of :func:`trajectories.systems.two_link_arm_reach` following a target that
    moves on a circle in joint space (:func:`arm_target`), |τ_i| ≤ tau_max. Explicit Euler steps of
    10 ms by default: the arm's closed-form mass matrix makes RK4's second-order kernels large to
    compile, and a 10 ms step is what a controller would run at anyway."""
    f, _, _, p = dyn.MODELS["two_link_arm"]

    def running(x, u, p, t):
        a = np.pi / 2 + 0.6 * dnp.sin(1.5 * t)
        b = np.pi / 4 + 0.5 * dnp.cos(1.5 * t)
        return 100.0 * ((x[0] - a) ** 2 + (x[1] - b) ** 2) + 0.1 * (x[2] ** 2 + x[3] ** 2) + 0.01 * dnp.sum(u * u)

    return OptimalControlProblem(f, x0=np.zeros(4), T=T, N=N, n_u=2, params=p, running_cost=running,
                                 u_lower=-tau_max, u_upper=tau_max,
                                 x_names=["shoulder", "elbow", "shoulder rate", "elbow rate"],
                                 u_names=["shoulder torque", "elbow torque"], scheme=scheme,
                                 name="two_link_arm_tracking")


MPC_SYSTEMS = {"cart_pole": cart_pole_upright, "two_link_arm": two_link_arm_tracking}


def mpc_task(system: str, steps: int):
    """A ready closed-loop task of :data:`MPC_SYSTEMS` run for ``steps`` steps: (the problem the
    controller plans on, a plan problem over the whole run at the same dt, the states guess that
    starts either solve, or None). The cart-pole starts tilted 0.3 rad from upright.

    >>> ocp, plan, guess = mpc_task("cart_pole", 150)
    >>> plan.N, round(plan.T / plan.N, 6) == round(ocp.T / ocp.N, 6), guess.tolist() == UPRIGHT.tolist()
    (150, True, True)
    """
    ocp = MPC_SYSTEMS[system]()
    dt = ocp.T / ocp.N
    if system == "cart_pole":
        x0 = (0.0, np.pi - 0.3, 0.0, 0.0)
        return cart_pole_upright(x0=x0), cart_pole_upright(N=steps, T=steps * dt, x0=x0), UPRIGHT
    return ocp, MPC_SYSTEMS[system](N=steps, T=steps * dt), None


def plan_baselines(plan_ocp: OptimalControlProblem, plan, **closed_loop_options) -> dict:
    """The two baselines an MPC run is shown beside: the DDP ``plan`` of ``plan_ocp`` replayed open
    loop, and the same plan with its DDP feedback gains alone, each run in a closed loop with
    ``closed_loop_options`` (x0, steps, disturbance, model_error: see
    :func:`trajectories.mpc.closed_loop`). Returns {"open loop": ClosedLoop, "DDP gains": ClosedLoop}."""
    from .mpc import FeedbackPolicy, OpenLoop, closed_loop

    return {"open loop": closed_loop(plan_ocp, OpenLoop(plan.u), name="open loop", **closed_loop_options),
            "DDP gains": closed_loop(plan_ocp, FeedbackPolicy(plan, plan_ocp), name="DDP gains",
                                     **closed_loop_options)}
