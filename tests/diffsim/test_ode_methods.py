"""diffsim.ode gradient methods as objects and schemes as tableaus: each method object rejects
bad options with a clear DiffsimError, every method and scheme agrees with central finite
differences of the rollout cost, and the tableaus have the order they claim."""

import numpy as np
import pytest
from test_ode import central_fd

import diffsim.numpy as dnp
from diffsim import DiffsimError
from diffsim.ode import (
    TABLEAUS,
    Adjoint,
    Bptt,
    ButcherTableau,
    Checkpointed,
    Forward,
    GradientOptionError,
    ODEProblem,
    gradient_method,
)
from diffsim.ode.tableaus import TableauError


def pendulum(x, u, p):
    return dnp.array([x[1], -p[0] * dnp.sin(x[0]) - 0.1 * x[1] + u[0]])


def problem(scheme):
    return ODEProblem(pendulum, 2, 1, 1, running_cost=lambda x, u: x[0] ** 2 + 0.5 * u[0] ** 2,
                      terminal_cost=lambda x, p: 3.0 * x[1] ** 2 + p[0] * x[0], scheme=scheme,
                      rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("make, message", [
    (lambda: Checkpointed(snapshots=-1), "snapshots must be an integer >= 0"),
    (lambda: Checkpointed(snapshots=2.5), "snapshots must be an integer"),
    (lambda: Checkpointed(snapshots=3, memory=1000), "snapshots or memory, not both"),
    (lambda: Checkpointed(memory=0), "memory must be a positive number of bytes"),
    (lambda: Adjoint(interpolation="linear"), "interpolation must be 'hermite' or 'backsolve'"),
    (lambda: Adjoint(backsolve_tol=-1.0), "backsolve_tol must be a positive finite number"),
    (lambda: Adjoint(backsolve_tol=float("nan")), "backsolve_tol must be a positive finite number"),
    (lambda: Forward(wrt=("x0", "q")), "wrt must name one or more of"),
    (lambda: Forward(wrt=()), "wrt must name one or more of"),
    (lambda: Forward(max_tangents=0), "max_tangents must be a positive integer"),
    (lambda: gradient_method("magic"), "unknown gradient method 'magic'"),
    (lambda: gradient_method(Bptt(), snapshots=3), "go into the method object"),
])
def test_each_method_validates_its_own_options(make, message):
    with pytest.raises(GradientOptionError, match=message) as info:
        make()
    assert isinstance(info.value, DiffsimError) and isinstance(info.value, ValueError)


def test_the_string_shortcut_builds_the_same_object():
    assert gradient_method("checkpointed", snapshots=3, interpolation="backsolve") == Checkpointed(snapshots=3)
    assert gradient_method("adjoint", interpolation="backsolve") == Adjoint("backsolve")
    assert gradient_method("forward", wrt="p") == Forward(wrt=("p",))
    assert Forward(wrt=("p", "x0")).wrt == ("x0", "p")


# (scheme, method, rtol against finite differences of the discrete cost): the continuous adjoint
# differs from the discrete gradient by O(h^order) of its scheme (Euler's: see the next test).
CASES = [(s, m, 1e-6) for s in ("euler", "rk4") for m in (Bptt(), Checkpointed(snapshots=2), Forward())] + [
    ("rk4", Adjoint(), 1e-4), ("rk4", Adjoint(interpolation="backsolve"), 1e-4),
    ("dopri5", Bptt(), 1e-5), ("dopri5", Adjoint(), 1e-5), ("dopri5", Forward(wrt=("x0", "U", "p")), 1e-5)]


@pytest.mark.parametrize("scheme, method, rtol", CASES, ids=[f"{s}-{m!r}" for s, m, _ in CASES])
def test_every_method_agrees_with_finite_differences(scheme, method, rtol):
    prob = problem(scheme)
    x0, p = np.array([0.6, -0.2]), np.array([2.0])
    U = 0.3 * np.cos(np.arange(12.0))[:, None]
    g = prob.gradient(x0, U, p, T=1.2, method=method)
    J = lambda x0_, U_, p_: prob.rollout(x0_, U_, p_, T=1.2).J
    eps = 1e-5 if scheme == "dopri5" else 1e-6
    scale = lambda a: rtol * np.max(np.abs(a))
    fd_U = central_fd(lambda v: J(x0, v, p), U, eps)
    np.testing.assert_allclose(g.dU, fd_U, rtol=rtol, atol=scale(fd_U))
    fd_x = central_fd(lambda v: J(v, U, p), x0, eps)
    np.testing.assert_allclose(g.dx0, fd_x, rtol=rtol, atol=scale(fd_x))
    np.testing.assert_allclose(g.dp, central_fd(lambda v: J(x0, U, v), p, eps), rtol=rtol)
    assert g.method == method.name and g.cost == pytest.approx(J(x0, U, p), rel=1e-12)


@pytest.mark.parametrize("interpolation", ["hermite", "backsolve"])
def test_euler_adjoint_error_is_first_order(interpolation):
    """The one-stage tableau through the generic adjoint sweep: its gap to the (finite-difference
    checked) BPTT gradient halves with the step."""
    prob = problem("euler")
    x0, p = np.array([0.6, -0.2]), np.array([2.0])
    gaps = []
    for N in (100, 200, 400):
        U = 0.3 * np.cos(np.linspace(0.0, 11.0, N))[:, None]
        a = prob.gradient(x0, U, p, T=1.2, method=Adjoint(interpolation=interpolation, backsolve_tol=0.1))
        b = prob.gradient(x0, U, p, T=1.2, method=Bptt())
        gaps.append(np.max(np.abs(a.control_density - b.control_density)) + abs(a.dp[0] - b.dp[0]))
    ratios = gaps[0] / gaps[1], gaps[1] / gaps[2]
    assert all(1.7 < r < 2.3 for r in ratios), (gaps, ratios)


def test_diagnostics_belong_to_the_method():
    prob = problem("rk4")
    x0, p, U = np.array([0.6, -0.2]), np.array([2.0]), np.zeros((30, 1))
    c = prob.gradient(x0, U, p, T=1.0, method=Checkpointed(snapshots=3))
    assert c.diagnostics.snapshots == 3 and c.diagnostics.recomputed_steps > 0 and c.costate is None
    a = prob.gradient(x0, U, p, T=1.0, method=Adjoint(interpolation="backsolve"))
    assert a.diagnostics.interpolation == "backsolve" and a.diagnostics.backsolve_error < 1e-8
    f = prob.gradient(x0, U, p, T=1.0, method=Forward(wrt="p"))
    assert f.dU is None and f.diagnostics.tangent_rollouts == 1


@pytest.mark.parametrize("name", ["euler", "rk4", "dopri5"])
def test_tableaus_have_their_order(name):
    """The order conditions up to the claimed order (Butcher; Hairer-Nørsett-Wanner I, II.2):
    b·1 = 1, b·c = 1/2, b·c² = 1/3, b·Ac = 1/6, b·c³ = 1/4, b·(c∘Ac) = 1/8, b·Ac² = 1/12, b·A²c = 1/24."""
    t = TABLEAUS[name]
    b, A, c = t.b, t.A, t.c
    conditions = [(1, b.sum(), 1.0), (2, b @ c, 1 / 2), (3, b @ c**2, 1 / 3), (3, b @ A @ c, 1 / 6),
                  (4, b @ c**3, 1 / 4), (4, b @ (c * (A @ c)), 1 / 8), (4, b @ A @ c**2, 1 / 12),
                  (4, b @ A @ A @ c, 1 / 24)]
    for order, value, exact in conditions:
        if order <= min(t.order, 4):
            assert value == pytest.approx(exact, abs=1e-14), (name, order)
    if t.order == 1:  # Euler is not second order
        assert b @ c != pytest.approx(0.5)


def test_a_tableau_that_is_not_explicit_or_consistent_is_refused():
    with pytest.raises(TableauError, match="not explicit"):
        ButcherTableau("implicit", c=[1.0], A=[[1.0]], b=[1.0], order=1)
    with pytest.raises(TableauError, match="inconsistent"):
        ButcherTableau("bad", c=[0.0, 0.4], A=[[0, 0], [0.5, 0]], b=[0.5, 0.5], order=2)


def test_results_use_the_shared_names():
    prob = problem("rk4")
    x0, p, U = np.array([0.6, -0.2]), np.array([2.0]), np.zeros((10, 1))
    g, r = prob.gradient(x0, U, p, T=1.0), prob.rollout(x0, U, p, T=1.0)
    assert g.cost == r.cost == g.J == r.J
    assert g.costates is g.costate and g.costates.shape == (11, 2) and hasattr(g, "seconds")


def test_a_template_calling_an_undeclared_kernel_is_refused():
    from diffsim.codegen import compile_module

    template = "@njit(cache=True)\ndef loop(x):\n    return step_forward_unchecked(x)\n"
    with pytest.raises(ValueError, match=r"prefixes \['step_'\] beyond the declared \['rhs_'\]"):
        compile_module({"rhs_": (lambda x: x * 2.0, (2,))}, extra=template, calls=("rhs_",))
    with pytest.raises(ValueError, match=r"prefixes \['step_'\] that no spec defines"):
        compile_module({"rhs_": (lambda x: x * 2.0, (2,))}, extra=template, calls=("rhs_", "step_"))


# Ralston's second-order scheme: its only interior stage is the last one (c = 2/3), and 2/3 is
# not the midpoint, where the cubic Hermite interpolant is symmetric in its two end states
RALSTON = ButcherTableau("ralston", c=[0.0, 2 / 3], A=[[0.0, 0.0], [2 / 3, 0.0]], b=[0.25, 0.75], order=2)


def test_a_new_tableau_runs_through_the_generic_adjoint_sweep_with_its_order(monkeypatch):
    """"A new scheme is a new tableau" (diffsim.ode.tableaus): registered, Ralston's scheme gets a
    BPTT gradient equal to central finite differences of its rollout, and a continuous adjoint whose
    gap to it falls as h² (the interpolated state at t_k + 2h/3 must come from the right end states)."""
    import diffsim.ode.schemes as schemes

    monkeypatch.setitem(TABLEAUS, "ralston", RALSTON)
    monkeypatch.setattr(schemes, "FIXED_STEP", (*schemes.FIXED_STEP, "ralston"))
    prob = problem("ralston")
    x0, p = np.array([0.6, -0.2]), np.array([2.0])
    U = 0.3 * np.cos(np.linspace(0.0, 11.0, 20))[:, None]
    g = prob.gradient(x0, U, p, T=1.2, method=Bptt())
    np.testing.assert_allclose(g.dU, central_fd(lambda v: prob.rollout(x0, v, p, T=1.2).J, U), rtol=1e-6,
                               atol=1e-9)
    gaps = []
    for N in (40, 80, 160):
        U = 0.3 * np.cos(np.linspace(0.0, 11.0, N))[:, None]
        a = prob.gradient(x0, U, p, T=1.2, method=Adjoint())
        b = prob.gradient(x0, U, p, T=1.2, method=Bptt())
        gaps.append(np.max(np.abs(a.control_density - b.control_density)) + abs(a.dp[0] - b.dp[0]))
    ratios = gaps[0] / gaps[1], gaps[1] / gaps[2]
    assert all(3.2 < r < 4.8 for r in ratios), (gaps, ratios)
