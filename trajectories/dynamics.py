"""Equations of motion of classic control systems, as plain functions ``f(x, u, p) -> ẋ``.

Written with ``diffsim.numpy`` only, so each one can be differentiated eagerly or traced by
``ds.compile`` into Numba kernels. Parameters ``p`` are a vector (defaults in ``MODELS``), so
gradients with respect to physical constants come for free.

>>> import numpy as np
>>> f, n_x, n_u, p = MODELS["pendulum"]
>>> f(np.array([0.0, 0.0]), np.array([1.0]), p)
array([0., 1.])
"""

from __future__ import annotations

import numpy as np

import diffsim.numpy as dnp


def pendulum(x, u, p):
    """Damped pendulum, θ = 0 hanging down. x = (θ, θ̇); p = (m, l, g, b); torque u[0]."""
    m, l, g, b = p[0], p[1], p[2], p[3]
    return dnp.array([x[1], (u[0] - b * x[1] - m * g * l * dnp.sin(x[0])) / (m * l * l)])


def cart_pole(x, u, p):
    """Cart-pole (Tedrake, Underactuated Robotics, eq. 3.16), θ = 0 hanging down.
    x = (cart position, θ, cart velocity, θ̇); p = (m_cart, m_pole, l, g); force u[0]."""
    mc, mp, l, g = p[0], p[1], p[2], p[3]
    s, c = dnp.sin(x[1]), dnp.cos(x[1])
    d = mc + mp * s * s
    xdd = (u[0] + mp * s * (l * x[3] * x[3] + g * c)) / d
    thdd = (-u[0] * c - mp * l * x[3] * x[3] * c * s - (mc + mp) * g * s) / (l * d)
    return dnp.array([x[2], x[3], xdd, thdd])


def _two_link_acceleration(x, tau1, tau2, p):
    """q̈ = M(q)⁻¹ (τ + τ_g(q) − C(q, q̇) q̇) for a two-link planar arm (Spong's acrobot model,
    Tedrake eq. 3.19), with the 2×2 mass matrix inverted in closed form.
    p = (m1, m2, l1, lc1, lc2, I1, I2, g) with I1, I2 the links' moments of inertia about their
    joints (a uniform rod of mass m and length l: m l²/3); q1 = 0 hanging down."""
    m1, m2, l1, lc1, lc2, i1, i2, g = (p[k] for k in range(8))
    q1, q2, dq1, dq2 = x[0], x[1], x[2], x[3]
    s1, s2, c2, s12 = dnp.sin(q1), dnp.sin(q2), dnp.cos(q2), dnp.sin(q1 + q2)
    m11 = i1 + i2 + m2 * l1 * l1 + 2.0 * m2 * l1 * lc2 * c2
    m12 = i2 + m2 * l1 * lc2 * c2
    m22 = i2
    h = m2 * l1 * lc2 * s2
    # right-hand side: τ + τ_g − C q̇
    r1 = tau1 - m1 * g * lc1 * s1 - m2 * g * (l1 * s1 + lc2 * s12) + 2.0 * h * dq1 * dq2 + h * dq2 * dq2
    r2 = tau2 - m2 * g * lc2 * s12 - h * dq1 * dq1
    det = m11 * m22 - m12 * m12
    return (m22 * r1 - m12 * r2) / det, (m11 * r2 - m12 * r1) / det


def acrobot(x, u, p):
    """Acrobot: two-link arm actuated at the elbow only. x = (q1, q2, q̇1, q̇2); u = (τ2,)."""
    a1, a2 = _two_link_acceleration(x, 0.0, u[0], p)
    return dnp.array([x[2], x[3], a1, a2])


def two_link_arm(x, u, p):
    """Fully actuated two-link planar arm. x = (q1, q2, q̇1, q̇2); u = (τ1, τ2)."""
    a1, a2 = _two_link_acceleration(x, u[0], u[1], p)
    return dnp.array([x[2], x[3], a1, a2])


def lorenz(x, u, p):
    """Lorenz system with a control added to the first equation; p = (σ, ρ, β)."""
    sigma, rho, beta = p[0], p[1], p[2]
    return dnp.array([sigma * (x[1] - x[0]) + u[0], x[0] * (rho - x[2]) - x[1], x[0] * x[1] - beta * x[2]])


def unicycle(x, u, p):
    """Kinematic unicycle. x = (px, py, heading); u = (speed, turn rate); p unused (length 1)."""
    return dnp.array([u[0] * dnp.cos(x[2]), u[0] * dnp.sin(x[2]), u[1]])


def quadrotor_2d(x, u, p):
    """Planar quadrotor. x = (px, py, θ, ṗx, ṗy, θ̇); u = (left, right thrust); p = (m, I, r, g)."""
    m, inertia, r, g = p[0], p[1], p[2], p[3]
    thrust = u[0] + u[1]
    return dnp.array([x[3], x[4], x[5], -thrust * dnp.sin(x[2]) / m, thrust * dnp.cos(x[2]) / m - g,
                      r * (u[0] - u[1]) / inertia])


def van_der_pol(x, u, p):
    """Controlled Van der Pol oscillator in the form of the CasADi optimal-control example:
    ẋ0 = μ(1 − x1²)x0 − x1 + u, ẋ1 = x0; p = (μ,)."""
    return dnp.array([p[0] * (1.0 - x[1] * x[1]) * x[0] - x[1] + u[0], x[0]])


def double_integrator(x, u, p):
    """ẍ = u. x = (position, velocity); p unused (length 1)."""
    return dnp.array([x[1], u[0]])


def quadratic_cost(x, u, p):
    """Running cost xᵀQx + uᵀRu with Q = diag(p[:n]) coupled by p[n] off the diagonal, R = p[-1]."""
    n = x.shape[0]
    q = dnp.diag(p[:n]) + p[n] * (np.ones((n, n)) - np.eye(n))
    return x @ q @ x + p[-1] * dnp.sum(u * u)


#: name -> (dynamics, state size, control size, default parameters)
MODELS = {
    "pendulum": (pendulum, 2, 1, np.array([1.0, 1.0, 9.81, 0.1])),
    "cart_pole": (cart_pole, 4, 1, np.array([1.0, 0.1, 0.5, 9.81])),
    "acrobot": (acrobot, 4, 1, np.array([1.0, 1.0, 1.0, 0.5, 0.5, 1 / 3, 1 / 3, 9.81])),
    "two_link_arm": (two_link_arm, 4, 2, np.array([1.0, 1.0, 1.0, 0.5, 0.5, 1 / 3, 1 / 3, 0.0])),
    "lorenz": (lorenz, 3, 1, np.array([10.0, 28.0, 8.0 / 3.0])),
    "unicycle": (unicycle, 3, 2, np.array([0.0])),
    "quadrotor_2d": (quadrotor_2d, 6, 2, np.array([1.0, 0.01, 0.1, 9.81])),
    "van_der_pol": (van_der_pol, 2, 1, np.array([1.0])),
    "double_integrator": (double_integrator, 2, 1, np.array([0.0])),
}
