"""The indirect method: Pontryagin's minimum principle as a two-point boundary-value problem.

With H(x, u, λ, t) = L + λᵀf, an optimal trajectory satisfies

    ẋ = ∂H/∂λ = f(x, u*, t),   λ̇ = −∂H/∂x,   u* = argmin_{u_lo ≤ u ≤ u_hi} H(x, u, λ, t),
    x(0) = x0,   λ(T) = ∂Φ/∂x(x(T)) + (∂h/∂x)ᵀν,   h(x(T)) = 0   (terminal equalities, multipliers ν).

Everything is derived from the traced dynamics and costs: ∂H/∂x by reverse mode inside the
trace, and u* by Newton's method on ∂H/∂u = 0 with projection on the box, unrolled in the
trace: one step is exact when H is quadratic in u with a diagonal ∂²H/∂u² (then the projection
is exact too); otherwise ``newton_steps`` diagonal-Newton steps are taken. The reduced
right-hand side and the boundary residual are compiled, and their Jacobians (from the same
engine) are handed to ``scipy.integrate.solve_bvp``. The initial guess comes from a direct
solution: its states and BPTT costates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp

from .problem import OptimalControlProblem, ProblemError
from .result import Solution


def hamiltonian(problem: OptimalControlProblem):
    """H(x, u, λ, p, t) = L + λᵀf for ``problem`` (a function written with diffsim.numpy)."""
    f, L = problem.f, problem.L

    def H(x, u, lam, p, t):
        running = L(x, u, p, t) if L is not None else 0.0
        return running + dnp.sum(lam * f(x, u, p, t))

    return H


def is_quadratic_in_u(problem: OptimalControlProblem, samples: int = 4, seed: int = 0) -> bool:
    """True if ∂²H/∂u² does not change with u (checked at random points) and is diagonal."""
    H = hamiltonian(problem)
    rng = np.random.default_rng(seed)
    n, m = problem.n_x, problem.n_u
    hess = ds.hessian(lambda u, x, lam, t: H(x, u, lam, problem.params, t))
    for _ in range(samples):
        x, lam, t = rng.standard_normal(n), rng.standard_normal(n), float(rng.uniform(0, problem.T))
        a = hess(rng.standard_normal(m), x, lam, t)
        b = hess(rng.standard_normal(m), x, lam, t)
        if not np.allclose(a, b, rtol=1e-10, atol=1e-12) or not np.allclose(a, np.diag(np.diag(a))):
            return False
    return True


def _control_law(problem: OptimalControlProblem, steps: int):
    """u*(x, λ, p, t): ``steps`` projected diagonal-Newton steps on ∂H/∂u = 0 from the box centre."""
    H = hamiltonian(problem)
    lo, hi = problem.u_lower, problem.u_upper
    centre = problem.u_guess()[0]
    grad_u = ds.grad(H, argnums=1)

    def ustar(x, lam, p, t):
        u = dnp.array(centre) + 0.0 * x[0]
        for _ in range(steps):
            g = grad_u(x, u, lam, p, t)
            # the diagonal of ∂²H/∂u² by forward-over-reverse, one direction per control
            d = dnp.stack([ds.jvp(lambda v: grad_u(x, v, lam, p, t), (u,), (np.eye(problem.n_u)[i],))[1][i]
                           for i in range(problem.n_u)])
            u = dnp.clip(u - g / d, np.where(np.isfinite(lo), lo, -1e300), np.where(np.isfinite(hi), hi, 1e300))
        return u

    return ustar


def pontryagin(problem: OptimalControlProblem, warm_start: Solution | None = None, mesh: int | None = None,
               newton_steps: int | None = None, tol: float = 1e-8, max_nodes: int = 200_000) -> Solution:
    """Solve ``problem`` by the indirect method (see the module docstring). Terminal equality
    constraints and a free final time (the transversality condition H(T) = 0, T an unknown of
    the boundary-value problem on scaled time) are supported; inequalities and path constraints
    are not (ProblemError), nor Hamiltonians linear in a control (a failed Solution that says so)."""
    start = time.perf_counter()
    method = "pontryagin"
    problem.check()
    if problem.n_in or problem.n_g:
        raise ProblemError("the Pontryagin method here handles terminal equalities (and a free final time); "
                           "solve problems with inequality or path constraints with a direct method: "
                           "solve(problem, method='multiple')")
    singular = _singular_controls(problem)
    if singular:
        return Solution(False, f"∂²H/∂u² vanishes for {singular}: the Hamiltonian is linear in those controls "
                               "(bang-bang or singular arcs), so ∂H/∂u = 0 does not give u*(x, λ); solve with a "
                               "direct method: solve(problem, method='multiple')", method,
                        seconds=time.perf_counter() - start)
    quadratic = is_quadratic_in_u(problem)
    steps = newton_steps or (1 if quadratic else 12)
    try:
        system = _compile_system(problem, steps, quadratic)
    except Exception as exc:  # a construct the tracer cannot compile: say which
        return Solution(False, f"could not derive the Pontryagin system: {exc}", method,
                        seconds=time.perf_counter() - start)
    if warm_start is None:
        from . import solve

        warm_start = solve(problem.with_steps(min(problem.N, 100)), method="multiple")
    if warm_start.costates is None or warm_start.x.size == 0:
        return Solution(False, "the warm start has no costates: " + warm_start.message, method,
                        seconds=time.perf_counter() - start)
    t0, y0 = _initial_guess(warm_start, mesh)
    if problem.free_time:
        return _free_time(problem, system, t0, y0, tol, max_nodes, start)
    return _fixed_time(problem, system, t0, y0, tol, max_nodes, start)


@dataclass
class _System:
    """The compiled Pontryagin system: the reduced right-hand side in (x, λ) with u = u*(x, λ)
    (``rhs``; ``rhs_s`` on scaled time s = t/T with T the last parameter, for a free final time),
    the terminal boundary residual ``bc_k``, H at the end (``h_end``, free time) and the control
    law u*(x, λ, p, t) (``steps`` Newton steps, exact if H is ``quadratic`` in u)."""

    rhs: object
    rhs_s: object
    h_end: object
    bc_k: object
    law: object
    quadratic: bool = True
    steps: int = 1


def _compile_system(problem: OptimalControlProblem, steps: int, quadratic: bool) -> _System:
    """Trace and compile the reduced dynamics, the boundary residual λ(T) − ∂Φ/∂x − (∂h/∂x)ᵀν, h(x(T))
    and the control law (``steps`` projected Newton steps)."""
    n, ne, kp = problem.n_x, problem.n_eq, problem.n_p
    free = problem.free_time
    ustar = _control_law(problem, steps)
    H = hamiltonian(problem)
    f = problem.f
    Phi, h_eq = problem.Phi, problem.h_eq

    def reduced(y, p, t):
        x, lam = y[:n], y[n:]
        u = ustar(x, lam, p, t)
        return dnp.concatenate([f(x, u, p, t), -ds.grad(H)(x, u, lam, p, t)])

    def boundary(xT, lamT, nu, p):
        dphi = ds.grad(Phi)(xT, p) if Phi is not None else 0.0 * xT
        if ne:
            jh = ds.jacobian(lambda x: dnp.atleast_1d(h_eq(x, p)))(xT)
            return dnp.concatenate([lamT - dphi - nu @ jh, dnp.atleast_1d(h_eq(xT, p))])
        return lamT - dphi

    def scaled(y, q, s):  # d/ds on s = t/T ∈ [0, 1]: T is the last entry of q
        T_ = q[kp]
        return T_ * reduced(y, q[:kp], T_ * s)

    def end_hamiltonian(y, q):  # the transversality condition of a free final time: H(T) = 0
        x, lam = y[:n], y[n:]
        return dnp.reshape(H(x, ustar(x, lam, q[:kp], q[kp]), lam, q[:kp], q[kp]), (1,))

    return _System(rhs=ds.compile(reduced, 2 * n, max(problem.n_p, 0), ()),
                   rhs_s=ds.compile(scaled, 2 * n, kp + 1, ()) if free else None,
                   h_end=ds.compile(end_hamiltonian, 2 * n, kp + 1) if free else None,
                   bc_k=ds.compile(boundary, n, n, ne, max(problem.n_p, 0)),
                   law=ds.compile(ustar, n, n, max(problem.n_p, 0), ()), quadratic=quadratic, steps=steps)


def _initial_guess(warm_start: Solution, mesh: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The BVP's starting mesh and (x, λ) on it: a direct solution's states and costates,
    resampled on ``mesh`` uniform nodes if given."""
    t0 = warm_start.t
    y0 = np.vstack([warm_start.x.T, warm_start.costates.T])
    if mesh:
        ts = np.linspace(0.0, t0[-1], mesh)
        y0 = np.array([np.interp(ts, t0, row) for row in y0])
        t0 = ts
    return t0, y0


def _fixed_time(problem: OptimalControlProblem, system: _System, t0, y0, tol: float, max_nodes: int,
                start: float) -> Solution:
    """The boundary-value problem on [0, T] with the terminal multipliers ν as unknown parameters."""
    from scipy.integrate import solve_bvp

    n, ne, p = problem.n_x, problem.n_eq, problem.params
    rhs, bc_k = system.rhs, system.bc_k

    def fun(t, y, nu=None):
        return np.stack([rhs.forward(y[:, j], p, float(t[j])) for j in range(y.shape[1])], axis=1)

    def fun_jac(t, y, nu=None):
        jy = np.stack([rhs.jacobian(y[:, j], p, float(t[j]))[0] for j in range(y.shape[1])], axis=2)
        return (jy, np.zeros((2 * n, ne, y.shape[1]))) if ne else jy

    def bc(ya, yb, nu=None):
        return np.concatenate([ya[:n] - problem.x0, bc_k.forward(yb[:n], yb[n:], _nu(nu, ne), p)])

    def bc_jac(ya, yb, nu=None):
        jx, jl, jnu, _ = bc_k.jacobian(yb[:n], yb[n:], _nu(nu, ne), p)
        dya = np.zeros((2 * n + ne, 2 * n))
        dya[:n, :n] = np.eye(n)
        dyb = np.zeros((2 * n + ne, 2 * n))
        dyb[n:, :n], dyb[n:, n:] = jx, jl
        if ne:
            dnu = np.zeros((2 * n + ne, ne))
            dnu[n:] = jnu
            return dya, dyb, dnu
        return dya, dyb

    args = dict(fun_jac=fun_jac, bc_jac=bc_jac, tol=tol, max_nodes=max_nodes)
    if ne:
        args["p"] = np.zeros(ne)
    try:
        sol = solve_bvp(fun, bc, t0, y0, **args)
    except (FloatingPointError, ValueError, np.linalg.LinAlgError) as exc:
        return Solution(False, f"solve_bvp failed: {exc}", "pontryagin", seconds=time.perf_counter() - start)
    T = problem.T
    fine = np.linspace(0.0, T, 4001)
    viol = float(np.max(np.abs(bc(sol.y[:, 0], sol.y[:, -1], sol.p if ne else None)))) if sol.success else np.inf
    return _solution(problem, system, sol, problem.times(), 1.0, fine, fine, 1.0, T, viol,
                     None if not ne else sol.p, start)


def _singular_controls(problem: OptimalControlProblem, samples: int = 4, seed: int = 1) -> list[str]:
    """Controls whose ∂²H/∂u² is zero at every sampled point (H linear in them)."""
    H = hamiltonian(problem)
    rng = np.random.default_rng(seed)
    hess = ds.hessian(lambda u, x, lam, t: H(x, u, lam, problem.params, t))
    flat = np.ones(problem.n_u, dtype=bool)
    for _ in range(samples):
        x, lam = problem.x0 + 0.1 * rng.standard_normal(problem.n_x), rng.standard_normal(problem.n_x)
        u = problem.u_guess()[0] + 0.1 * rng.standard_normal(problem.n_u)
        with np.errstate(all="ignore"):
            d = np.abs(np.diag(np.atleast_2d(hess(u, x, lam, float(rng.uniform(0, problem.T))))))
        flat &= d < 1e-12
    return [problem.u_names[i] for i in np.flatnonzero(flat)]


def _free_time(problem: OptimalControlProblem, system: _System, t0, y0, tol: float, max_nodes: int,
               start: float) -> Solution:
    """The boundary-value problem on scaled time with T as an unknown parameter and the
    transversality condition H(T) = 0 (autonomous dynamics and costs, Φ independent of T)."""
    from scipy.integrate import solve_bvp

    n, ne, p = problem.n_x, problem.n_eq, problem.params
    rhs_s, h_end, bc_k = system.rhs_s, system.h_end, system.bc_k
    T0 = float(t0[-1])
    s0 = t0 / T0

    def split(par):
        return par[:ne], float(par[ne])

    def fun(s, y, par):
        q = np.append(p, split(par)[1])
        return np.stack([rhs_s.forward(y[:, j], q, float(s[j])) for j in range(y.shape[1])], axis=1)

    def fun_jac(s, y, par):
        q = np.append(p, split(par)[1])
        jac = [rhs_s.jacobian(y[:, j], q, float(s[j])) for j in range(y.shape[1])]
        jy = np.stack([j[0] for j in jac], axis=2)
        jp = np.zeros((2 * n, ne + 1, y.shape[1]))
        jp[:, ne, :] = np.stack([j[1][:, -1] for j in jac], axis=1)
        return jy, jp

    def bc(ya, yb, par):
        nu, T_ = split(par)
        q = np.append(p, T_)
        return np.concatenate([ya[:n] - problem.x0, bc_k.forward(yb[:n], yb[n:], nu, p), h_end.forward(yb, q)])

    par0 = np.append(np.zeros(ne), T0)
    try:
        sol = solve_bvp(fun, bc, s0, y0, p=par0, fun_jac=fun_jac, tol=tol, max_nodes=max_nodes)
    except (FloatingPointError, ValueError, np.linalg.LinAlgError) as exc:
        return Solution(False, f"solve_bvp failed: {exc}", "pontryagin", seconds=time.perf_counter() - start)
    nu, T = split(sol.p)
    fine = np.linspace(0.0, 1.0, 4001)
    viol = float(np.max(np.abs(bc(sol.y[:, 0], sol.y[:, -1], sol.p)))) if sol.success else np.inf
    return _solution(problem, system, sol, np.linspace(0.0, 1.0, problem.N + 1), T, fine, fine * T, T, T, viol,
                     nu if ne else None, start)


def _solution(problem: OptimalControlProblem, system: _System, sol, grid, time_scale, fine, fine_times, cost_scale,
              T, violation: float, multipliers, start: float) -> Solution:
    """The Solution of a solved BVP: x, λ and u* on the problem's ``grid`` (times ``grid * time_scale``)
    and the cost, ``cost_scale`` × Simpson's rule of L over ``fine`` (at ``fine_times``) plus Φ."""
    from scipy.integrate import simpson

    n, p, law = problem.n_x, problem.params, system.law
    yg = sol.sol(grid)
    x, lam = yg[:n].T, yg[n:].T
    u = np.array([law.forward(x[k], lam[k], p, float(grid[k] * time_scale)) for k in range(problem.N)])
    yf = sol.sol(fine)
    running = np.array([float(problem.L(yf[:n, j], law.forward(yf[:n, j], yf[n:, j], p, float(t)), p, float(t)))
                        for j, t in enumerate(fine_times)]) if problem.L is not None else np.zeros(fine.size)
    cost = cost_scale * simpson(running, x=fine) + (float(problem.Phi(yf[:n, -1], p)) if problem.Phi is not None
                                                    else 0.0)
    return Solution(bool(sol.success), str(sol.message), "pontryagin", None, cost=float(cost), t=grid * time_scale,
                    x=x, u=u, costates=lam, T=T, iterations=int(sol.niter), gradient_evaluations=0,
                    seconds=time.perf_counter() - start, constraint_violation=violation,
                    extra={"bvp": sol, "quadratic_in_u": system.quadratic, "newton_steps": system.steps,
                           "multipliers": multipliers, "control_law": law})


def _nu(nu, ne) -> np.ndarray:
    return np.zeros(0) if nu is None or ne == 0 else np.asarray(nu, dtype=float)
