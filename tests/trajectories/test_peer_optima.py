"""Optima against a peer: CasADi + IPOPT solves the same discretised problem (RK4 steps on the
same grid, piecewise-constant controls, the dynamics written again in CasADi's symbols), and
diffsim's solvers must reach its optimal cost, controls and final state. Needs casadi
(``pip install -e '.[crosscheck]'``); CI installs it."""

import numpy as np
import pytest

from trajectories.shooting import multiple_shooting, single_shooting
from trajectories.systems import cart_pole_swingup, pendulum_swingup

ca = pytest.importorskip("casadi", reason="CasADi is the cross-check peer (pip install -e '.[crosscheck]')")


def pendulum_casadi(x, u, p):
    m, length, g, b = p
    return ca.vertcat(x[1], (u[0] - b * x[1] - m * g * length * ca.sin(x[0])) / (m * length * length)), u[0] ** 2


def cart_pole_casadi(x, u, p):
    mc, mp, length, g = p
    s, c = ca.sin(x[1]), ca.cos(x[1])
    d = mc + mp * s * s
    xdd = (u[0] + mp * s * (length * x[3] * x[3] + g * c)) / d
    thdd = (-u[0] * c - mp * length * x[3] * x[3] * c * s - (mc + mp) * g * s) / (length * d)
    return ca.vertcat(x[2], x[3], xdd, thdd), u[0] ** 2


def ipopt_optimum(ocp, model, target):
    """Multiple shooting in CasADi: x_{k+1} = RK4 step of (f, L), bounds on u, x_N = target,
    from the same initial guess as diffsim (so the same local optimum)."""
    n, m, N, h = ocp.n_x, ocp.n_u, ocp.N, ocp.T / ocp.N
    x, u = ca.SX.sym("x", n), ca.SX.sym("u", m)
    f = ca.Function("f", [x, u], list(model(x, u, [float(v) for v in ocp.params])))
    k1, q1 = f(x, u)
    k2, q2 = f(x + h / 2 * k1, u)
    k3, q3 = f(x + h / 2 * k2, u)
    k4, q4 = f(x + h * k3, u)
    step = ca.Function("F", [x, u], [x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4), h / 6 * (q1 + 2 * q2 + 2 * q3 + q4)])
    X = [ca.MX.sym(f"X{k}", n) for k in range(N + 1)]
    U = [ca.MX.sym(f"U{k}", m) for k in range(N)]
    J, g = 0, []
    for k in range(N):
        xn, q = step(X[k], U[k])
        J, g = J + q, g + [xn - X[k + 1]]
    w = ca.vertcat(*X, *U)
    lbx = list(ocp.x0) + [-np.inf] * n * (N - 1) + list(target) + list(ocp.u_lower) * N
    ubx = list(ocp.x0) + [np.inf] * n * (N - 1) + list(target) + list(ocp.u_upper) * N
    U0 = ocp.u_guess()  # the start diffsim's solvers take; states rolled out with CasADi's own step
    guess = [np.asarray(ocp.x0, dtype=float)]
    for k in range(N):
        guess.append(np.asarray(step(guess[-1], U0[k])[0]).ravel())
    solver = ca.nlpsol("s", "ipopt", {"x": w, "f": J, "g": ca.vertcat(*g)},
                       {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes", "ipopt.tol": 1e-12})
    sol = solver(x0=np.concatenate([np.concatenate(guess), U0.ravel()]), lbx=lbx, ubx=ubx, lbg=0, ubg=0)
    assert solver.stats()["success"], solver.stats()["return_status"]
    z = np.asarray(sol["x"]).ravel()
    return float(sol["f"]), z[n * (N + 1):].reshape(N, m), z[:n * (N + 1)].reshape(N + 1, n)


CASES = {
    "pendulum": (lambda: pendulum_swingup(N=60), pendulum_casadi, [np.pi, 0.0]),
    "cart-pole": (lambda: cart_pole_swingup(N=50), cart_pole_casadi, [1.0, np.pi, 0.0, 0.0]),
}


SOLVERS = {"single": single_shooting, "multiple": multiple_shooting}


@pytest.mark.parametrize("case, solver", [
    ("pendulum", "single"), ("pendulum", "multiple"), ("cart-pole", "single"),
    pytest.param("cart-pole", "multiple", marks=pytest.mark.slow),  # about 40 s of SLSQP
])
def test_shooting_reaches_ipopts_optimum(case, solver):
    make, model, target = CASES[case]
    J_ref, U_ref, X_ref = ipopt_optimum(make(), model, target)
    sol = SOLVERS[solver](make())
    assert sol.status, sol.message
    assert sol.cost == pytest.approx(J_ref, rel=1e-6), (sol.cost, J_ref)
    np.testing.assert_allclose(sol.u, U_ref, atol=1e-3 * np.abs(U_ref).max())
    np.testing.assert_allclose(sol.x[-1], target, atol=1e-6)
    np.testing.assert_allclose(sol.x, X_ref, atol=1e-3 * np.abs(X_ref).max())
