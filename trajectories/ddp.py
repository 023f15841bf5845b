"""Differential dynamic programming with feedback gains: FDDP (Mastalli et al. 2020), box-
constrained controls by projected Newton (BoxDDP, Tassa, Mansard & Todorov 2014), terminal and path
constraints by an augmented-Lagrangian outer loop (as ALTRO and ProxDDP do). Terminal equalities are
then held exactly (ALTRO's two phases): once a round ends within ``newton_switch`` of them, each
iteration solves the equality-constrained LQ subproblem, the backward pass carrying the value's
dependence on their multipliers (Bryson & Ho's sweep) and the multipliers taking its Newton step.

DDP works on the discrete dynamics of the problem's integration scheme: a stage is one step of
the scheme on the augmented state ``[x, running cost]``, so its optimum is the optimum of the
same discrete problem the direct methods solve, and its value gradient V_x(k) is the BPTT costate
∂J/∂x_k (with the constraint multipliers, the Lagrangian's). Two variants:

- ``"gauss-newton"`` (iLQR): the step Jacobian and the exact Hessian of the stage cost;
- ``"second-order"``: also the dynamics' curvature, the step's Hessian contracted with V_x';
- ``"auto"`` (default): second order when the problem has constraints (their multipliers put the
  dynamics' curvature into the Lagrangian's Hessian, where Gauss-Newton converges slowly), else
  Gauss-Newton.

The backward (Riccati) sweep and the forward rollout are each one compiled Numba loop
(:mod:`trajectories.ddp_loops`), generated into one module with the problem's kernels and cached
on disk. Sign convention: δu_k = α k_k + K_k δx_k.

>>> from trajectories.systems import double_integrator_lqr
>>> sol = ddp(double_integrator_lqr(N=50))
>>> sol.status, sol.iterations, sol.gains.shape
(True, 1, (50, 1, 2))
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

import diffsim.numpy as dnp
from diffsim.codegen import compile_module
from diffsim.interpreted import compiled_module
from diffsim.ode.schemes import FIXED_STEP, augmented_rhs, make_step
from diffsim.transforms import vjp

from .problem import OptimalControlProblem, ProblemError
from .result import Solution

VARIANTS = {"auto": "auto", "gauss-newton": "gauss_newton", "ilqr": "gauss_newton", "second-order": "second_order",
            "full": "second_order"}
_LOOPS = (pathlib.Path(__file__).parent / "ddp_loops.py").read_text()
# from this many states on, the backward sweep's stage products (Fᵀ V_xx' F, Q_uxᵀ K) go to BLAS:
# on the 12-state LQR that halves a sweep; below it a BLAS call's ~0.1 µs outweighs the loops
_GEMM_MIN_STATES = 8
CONVERGED, STEPPED, NO_STEP, REG_MAX, NONFINITE, DIVERGED = range(6)
_CODES = {NO_STEP: "no step accepted", REG_MAX: "the regularisation reached its maximum (the stage Hessians stay "
          "indefinite: try variant='gauss-newton', a better initial guess or more control bounds)"}


# ---------------------------------------------------------------- the stage and terminal functions


def _layout(problem: OptimalControlProblem):
    """Sizes of the stage parameters q = (p, c, λ_g, μ) and terminal parameters r = (p, c, λ_eq, λ_in, μ):
    c switches the augmented-Lagrangian terms on (1) or off (0, for the plain cost)."""
    k, ng = problem.n_p, problem.n_g
    return k + (2 + ng if ng else 0), k + 2 + problem.n_eq + problem.n_in


def _stage_functions(problem: OptimalControlProblem):
    n, k = problem.n_x, problem.n_p
    ng, ne, ni = problem.n_g, problem.n_eq, problem.n_in
    step = make_step(augmented_rhs(problem.f, problem.L), n, problem.scheme)
    g, h_eq, h_in, Phi = problem.g, problem.h_eq, problem.h_in, problem.Phi

    def stage(x, u, q, t, h):
        out = step(x, u, q[:k], t, h)
        if ng:  # PHR augmented Lagrangian of g(x_k, u_k) ≤ 0 at the node (Rockafellar 1973)
            c, lam, mu = q[k], q[k + 1:k + 1 + ng], q[k + 1 + ng]
            z = dnp.maximum(lam + mu * dnp.atleast_1d(g(x, u, q[:k], t)), 0.0)
            out = out + dnp.concatenate([dnp.zeros(n), dnp.reshape(c * dnp.sum(z * z - lam * lam) / (2.0 * mu), (1,))])
        return out

    def terminal(x, r):
        p, c, mu = r[:k], r[k], r[k + 1 + ne + ni]
        total = Phi(x, p) if Phi is not None else 0.0 * x[0]
        if ne:
            lam, hv = r[k + 1:k + 1 + ne], dnp.atleast_1d(h_eq(x, p))
            total = total + c * (dnp.sum(lam * hv) + 0.5 * mu * dnp.sum(hv * hv))
        if ni:
            lam = r[k + 1 + ne:k + 1 + ne + ni]
            z = dnp.maximum(lam + mu * dnp.atleast_1d(h_in(x, p)), 0.0)
            total = total + c * dnp.sum(z * z - lam * lam) / (2.0 * mu)
        return total

    return stage, terminal


def _derivative_function(stage, n: int, m: int, second_order: bool):
    """The stage's derivatives DDP's backward sweep reads, as one flat vector [Fᵀ, l, H] over
    z = (x, u) (layout in :mod:`trajectories.ddp_loops`), traced with the engine's ``vjp``: row i
    of Fᵀ and of H come from one reverse sweep each, so no derivative in q, t or h is formed.

    Gauss-Newton: the step Jacobian (n sweeps of the step), the cost gradient and its Jacobian,
    the exact Hessian of the stage cost (n+m sweeps of the gradient). Second order: the gradient
    g = ∇_z ctᵀ·stage; one sweep of g_i in (z, ct) gives row i of the Hessian of ctᵀ·stage and,
    in ct, ∂stage/∂z_i, i.e. row i of [Fᵀ, l]."""
    nz = n + m

    def unit(size, i):
        e = np.zeros(size)
        e[i] = 1.0
        return e

    if second_order:
        def derivatives(x, u, q, t, h, ct):
            def gradient(x, u, c):
                gx, gu = vjp(lambda x, u: stage(x, u, q, t, h), x, u)[1](c)
                return dnp.concatenate([gx, gu])

            back = vjp(gradient, x, u, ct)[1]
            rows = [back(unit(nz, i)) for i in range(nz)]   # (∂g_i/∂x, ∂g_i/∂u, ∂g_i/∂ct)
            FT = [r[2][:n] for r in rows]
            lz = [r[2][n] for r in rows]
            H = [dnp.concatenate([r[0], r[1]]) for r in rows]
            return dnp.concatenate([dnp.reshape(dnp.stack(FT), (-1,)), dnp.stack(lz), dnp.reshape(dnp.stack(H), (-1,))])
        return derivatives

    def derivatives(x, u, q, t, h):
        back = vjp(lambda x, u: stage(x, u, q, t, h), x, u)[1]
        rows = [back(unit(n + 1, a)) for a in range(n + 1)]    # (∂F_a/∂x, ∂F_a/∂u); a = n: the cost

        def gradient(x, u):
            gx, gu = vjp(lambda x, u: stage(x, u, q, t, h), x, u)[1](unit(n + 1, n))
            return dnp.concatenate([gx, gu])

        hback = vjp(gradient, x, u)[1]
        H = [dnp.concatenate(hback(unit(nz, i))) for i in range(nz)]
        F = [dnp.concatenate([r[0], r[1]]) for r in rows[:n]]  # rows of [A B]
        FT = [dnp.stack([F[a][i] for a in range(n)]) for i in range(nz)]
        lz = dnp.concatenate(rows[n])
        return dnp.concatenate([dnp.reshape(dnp.stack(FT), (-1,)), lz, dnp.reshape(dnp.stack(H), (-1,))])
    return derivatives


def _module(problem: OptimalControlProblem, variant: str, interpret_first: bool = True):
    """The generated module of DDP's kernels and loops for ``problem`` (kept on the problem). With
    ``interpret_first`` its loops run as Python until Numba has compiled them in the background
    (:mod:`diffsim.interpreted`), else they compile at their first call."""
    cache = problem.__dict__.setdefault("_ddp_modules", {})
    if variant in cache:  # traced once; the compiled side serves callers that must not interpret
        return cache[variant] if interpret_first else compiled_module(cache[variant])
    n, m = problem.n_x, problem.n_u
    nq, nr = _layout(problem)
    stage, terminal = _stage_functions(problem)

    def terminal_gradient(x, r):
        return vjp(lambda x: terminal(x, r), x)[1](1.0)[0]

    specs = {"st_": (stage, (n, m, nq, (), ())), "tm_": (terminal, (n, nr)), "tg_": (terminal_gradient, (n, nr))}
    second = variant == "second_order"
    dd_shapes = (n, m, nq, (), ()) + ((n + 1,) if second else ())
    specs["dd_"] = (_derivative_function(stage, n, m, second), dd_shapes, ("forward", "forward_into"))
    if problem.n_g:
        specs["pc_"] = (problem.g, (n, m, problem.n_p, ()))
    if problem.n_eq:
        h_eq, kp = problem.h_eq, problem.n_p
        specs["he_"] = (lambda x, r: dnp.atleast_1d(h_eq(x, r[:kp])), (n, nr))
    extra = _LOOPS + f"\n\n_derivatives = _derivatives_{variant}\n" \
        f"_terminal_constraint = _terminal_constraint_{'eq' if problem.n_eq else 'none'}\n" \
        f"_NX, _NU, _NE = {n}, {m}, {problem.n_eq}\n" \
        f"_GEMM = {n >= _GEMM_MIN_STATES}\n"
    module, _ = compile_module(specs, extra=extra, title=f"DDP({problem.name}, {problem.scheme}, {variant})",
                               interpret_first=True)
    cache[variant] = module
    return module if interpret_first else compiled_module(module)


def check_problem(problem: OptimalControlProblem) -> None:
    """Raise :class:`ProblemError` if DDP cannot take ``problem`` as stated."""
    problem.check()
    if problem.free_time:
        raise ProblemError("DDP solves a fixed horizon: fix T (free_final_time=False), or use method='single' "
                           "or 'multiple' for a free final time")
    if problem.scheme not in FIXED_STEP:
        raise ProblemError(f"DDP needs a fixed-step scheme ({', '.join(FIXED_STEP)}), got {problem.scheme!r}")


# ---------------------------------------------------------------- the solver


class DDPSolver:
    """FDDP/BoxFDDP with an augmented-Lagrangian outer loop, on a horizon of ``N`` stages of the
    problem's step ``T/N`` (``N`` defaults to the problem's). Holds every array it works on, so
    repeated solves (a receding horizon) allocate nothing in Python.

    >>> from trajectories.systems import pendulum_swingup
    >>> s = DDPSolver(pendulum_swingup(N=60))
    >>> s.solve().status
    True
    """

    def __init__(self, problem: OptimalControlProblem, N: int | None = None, variant: str = "auto",
                 tol: float = 1e-8, constraint_tol: float = 1e-7, max_iterations: int = 500,
                 penalty: float = 100.0, penalty_factor: float = 10.0, max_penalty: float = 1e9,
                 reg_init: float = 0.0, reg_min: float = 1e-9, reg_max: float = 1e9, reg_factor: float = 10.0,
                 line_search: int = 10, exact_terminal: bool = True, newton_switch: float = 0.15,
                 dual_reg: float = 1e-13, al_tol: float = 0.1, interpret_first: bool = True) -> None:
        check_problem(problem)
        if variant not in VARIANTS:
            raise ProblemError(f"unknown DDP variant {variant!r}: choose one of {sorted(VARIANTS)}")
        self.problem, self.variant = problem, VARIANTS[variant]
        if self.variant == "auto":  # multipliers weigh the dynamics' curvature into the Lagrangian's Hessian
            constrained = problem.n_eq or problem.n_in or problem.n_g
            self.variant = "second_order" if constrained else "gauss_newton"
        self.N = problem.N if N is None else int(N)
        if self.N < 1:
            raise ProblemError(f"the DDP horizon needs at least one stage, got N = {self.N}")
        if not (tol > 0 and constraint_tol > 0 and max_iterations >= 1 and penalty > 0 and penalty_factor > 1):
            raise ProblemError("need tol > 0, constraint_tol > 0, max_iterations >= 1, penalty > 0 and "
                               f"penalty_factor > 1; got {tol}, {constraint_tol}, {max_iterations}, {penalty}, "
                               f"{penalty_factor}")
        self.h = problem.T / problem.N
        self.reg_init = float(reg_init)
        self.tol, self.constraint_tol, self.max_iterations = float(tol), float(constraint_tol), int(max_iterations)
        self.penalty0, self.penalty_factor, self.max_penalty = float(penalty), float(penalty_factor), float(max_penalty)
        self.module = _module(problem, self.variant, interpret_first)
        n, m, N = problem.n_x, problem.n_u, self.N
        nq, nr = _layout(problem)
        self.lo, self.hi = problem.u_lower.copy(), problem.u_upper.copy()
        self.box = bool(np.any(np.isfinite(self.lo)) or np.any(np.isfinite(self.hi)))
        self.xs, self.us = np.zeros((N + 1, n)), np.zeros((N, m))
        self.fs = np.zeros((N + 1, n))
        self.xs_try, self.us_try = np.zeros((N + 1, n)), np.zeros((N, m))
        self.K, self.k = np.zeros((N, m, n)), np.zeros((N, m))
        self.Vx, self.Vxx = np.zeros((N + 1, n)), np.zeros((N + 1, n, n))
        self.Qu, self.Quu = np.zeros((N, m)), np.zeros((N, m, m))
        self.alphas = 0.5 ** np.arange(max(1, int(line_search)))
        # state of the compiled iteration: see ddp_loops.iterate
        self.state = np.array([reg_init, reg_min, reg_max, reg_factor, 0.0, tol, 1e-12, 0, 0, 0, 0, 0,
                               constraint_tol, 0, dual_reg, 1e-13, 0.0, 0.0, 0.0], float)
        # terminal equalities held exactly: each iteration solves the equality-constrained LQ
        # subproblem (the multipliers' Newton step); the augmented Lagrangian is then only the
        # line search's merit, and outer rounds remain for inequalities and path constraints
        self.exact_terminal = bool(exact_terminal and problem.n_eq)
        ne = problem.n_eq if self.exact_terminal else 0
        self.W, self.Gu, self.Kn = np.zeros((N + 1, n, ne)), np.zeros((N, m, ne)), np.zeros((N, m, ne))
        self.ev, self.Sm, self.hv, self.Ht = np.zeros(ne), np.zeros((ne, ne)), np.zeros(ne), np.zeros((ne, n))
        self._with_newton = (self.W, self.Gu, self.Kn, self.ev, self.Sm, self.hv, self.Ht)
        self._without = (np.zeros((N + 1, n, 0)), np.zeros((N, m, 0)), np.zeros((N, m, 0)), np.zeros(0),
                         np.zeros((0, 0)), np.zeros(0), np.zeros((0, n)))
        self._newton = False  # on once an augmented-Lagrangian round ends within newton_switch (see solve)
        self.newton_switch, self.al_tol = float(newton_switch), float(al_tol)
        kp, ng = problem.n_p, problem.n_g
        self.Q = np.zeros((N, nq))
        self.Q[:, :kp] = problem.params
        self.r = np.zeros(nr)
        self.r[:kp] = problem.params
        self._constrained = bool(problem.n_eq or problem.n_in or ng)
        self._outer = bool(problem.n_eq or problem.n_in or ng)
        self.Q_plain, self.r_plain = self.Q.copy(), self.r.copy()
        if ng:
            self.Q[:, kp] = 1.0
            self.Q_plain[:, kp + 1 + ng] = 1.0
        self.r[kp] = 1.0
        self.r_plain[-1] = 1.0
        self.reset_multipliers()
        self.initialised = False
        self.t0 = 0.0

    # ------------------------------------------------------------ multipliers

    def reset_multipliers(self) -> None:
        """λ = 0 and the initial penalty μ for every constraint."""
        kp, ng = self.problem.n_p, self.problem.n_g
        self.mu = self.penalty0
        if ng:
            self.Q[:, kp + 1:kp + 1 + ng] = 0.0
            self.Q[:, kp + 1 + ng] = self.mu
        self.r[kp + 1:-1] = 0.0
        self.r[-1] = self.mu

    def _set_penalty(self, mu: float) -> None:
        self.mu = mu
        if self.problem.n_g:
            self.Q[:, -1] = mu
        self.r[-1] = mu

    def constraint_values(self):
        """(h_eq(x_N), h_in(x_N), g(x_k, u_k) (N, n_g)) at the current iterate."""
        p = self.problem.params
        x_N = self.xs[-1]
        he = np.atleast_1d(self.problem.h_eq(x_N, p)).astype(float) if self.problem.n_eq else np.zeros(0)
        hi = np.atleast_1d(self.problem.h_in(x_N, p)).astype(float) if self.problem.n_in else np.zeros(0)
        if self.problem.n_g:
            pc = self.module.pc_forward
            ts = self.t0 + self.h * np.arange(self.N)
            G = np.array([pc(self.xs[k], self.us[k], p, float(ts[k])) for k in range(self.N)]).reshape(self.N, -1)
        else:
            G = np.zeros((self.N, 0))
        return he, hi, G

    @staticmethod
    def violation(he, hi, G) -> float:
        parts = [np.abs(he), np.maximum(hi, 0.0), np.maximum(G, 0.0).ravel()]
        return float(max((np.max(a) for a in parts if a.size), default=0.0))

    def _update_multipliers(self, he, hi, G) -> None:
        kp, ne, ni, ng, mu = self.problem.n_p, self.problem.n_eq, self.problem.n_in, self.problem.n_g, self.mu
        r = self.r
        if not self._newton:  # else the iterations' Newton steps update them
            r[kp + 1:kp + 1 + ne] += mu * he
        r[kp + 1 + ne:kp + 1 + ne + ni] = np.maximum(r[kp + 1 + ne:kp + 1 + ne + ni] + mu * hi, 0.0)
        if ng:
            lam = self.Q[:, kp + 1:kp + 1 + ng]
            lam[:] = np.maximum(lam + mu * G, 0.0)

    def multipliers(self) -> dict:
        """First-order multiplier estimates λ + μ·c at the current iterate (the Lagrangian's):
        ``eq`` (n_eq,), ``in`` (n_in,), ``path`` (N, n_g)."""
        kp, ne, mu = self.problem.n_p, self.problem.n_eq, self.mu
        he, hi, G = self.constraint_values()
        nu_in, nu_path = self._inequality_multipliers(hi, G)
        return {"eq": self.r[kp + 1:kp + 1 + ne] + mu * he, "in": nu_in, "path": nu_path}

    def _inequality_multipliers(self, hi, G):
        """max(λ + μ c, 0) of the terminal inequalities (n_in,) and the path constraints (N, n_g)."""
        kp, ne, ni, ng, mu = self.problem.n_p, self.problem.n_eq, self.problem.n_in, self.problem.n_g, self.mu
        nu_in = np.maximum(self.r[kp + 1 + ne:kp + 1 + ne + ni] + mu * hi, 0.0)
        nu_path = np.maximum(self.Q[:, kp + 1:kp + 1 + ng] + mu * G, 0.0) if ng else np.zeros((self.N, 0))
        return nu_in, nu_path

    def complementarity(self, hi, G) -> float:
        """max |min(−c, ν)| over the inequalities c ≤ 0 and their multiplier estimates ν: zero only
        where each constraint is active or its multiplier vanishes. Feasibility alone is not
        optimality: an inequality left slack by the outer rounds with ν > 0 still pulls the iterate."""
        nu_in, nu_path = self._inequality_multipliers(hi, G)
        parts = [np.abs(np.minimum(-hi, nu_in)), np.abs(np.minimum(-G, nu_path)).ravel()]
        return float(max((np.max(a) for a in parts if a.size), default=0.0))

    # ------------------------------------------------------------ iterates

    def initialise(self, x0=None, U0=None, X0=None, t0: float = 0.0) -> None:
        """Start from controls ``U0`` (default the problem's guess) and states ``X0`` (default the
        rollout of U0 from x0; any other X0 starts FDDP infeasible, with gaps)."""
        pr = self.problem
        x0 = pr.x0 if x0 is None else np.asarray(x0, dtype=float)
        if U0 is None:
            U0 = pr.with_steps(self.N).u_guess() if self.N != pr.N else pr.u_guess()
        U0 = np.asarray(U0, dtype=float).reshape(self.N, pr.n_u)
        if not np.all(np.isfinite(U0)):
            raise ProblemError("the initial controls U0 contain NaN or inf")
        self.us[:] = np.clip(U0, self.lo, self.hi)
        self.t0 = float(t0)
        self.k[:] = 0.0
        if X0 is None:
            _, bad = self.module.rollout(x0, self.us, self.Q, self.r, self.t0, self.h, self.xs)
            if bad >= 0:
                raise ProblemError(f"the rollout of the initial controls is not finite from stage {bad} "
                                   f"(t = {self.t0 + bad * self.h:.4g}): give U0 or X0, or bound the controls")
        else:
            X0 = np.asarray(X0, dtype=float).reshape(self.N + 1, pr.n_x)
            if not np.all(np.isfinite(X0)):
                raise ProblemError("the initial states X0 contain NaN or inf")
            self.xs[:] = X0
        self.x0 = np.array(x0, dtype=float)
        self.initialised = True

    def evaluate(self) -> float:
        """Gaps and cost (with the augmented-Lagrangian terms) of the current iterate."""
        cost, bad = self.module.evaluate(self.x0, self.xs, self.us, self.Q, self.r, self.t0, self.h, self.fs)
        if bad >= 0:
            raise FloatingPointError(f"non-finite state or cost at stage {bad}")
        self.state[4] = cost
        return cost

    def plain_cost(self) -> float:
        """The problem's cost J (no multiplier or penalty terms) along the current iterate."""
        fs = np.empty_like(self.fs)
        return float(self.module.evaluate(self.x0, self.xs, self.us, self.Q_plain, self.r_plain, self.t0, self.h,
                                          fs)[0])

    def iterate(self, max_steps: int) -> int:
        """Up to ``max_steps`` FDDP iterations on the current multipliers (one compiled call)."""
        return int(self.module.iterate(self.xs, self.us, self.fs, self.Q, self.r, self.t0, self.h, self.box,
                                       self.lo, self.hi, self.K, self.k, self.Vx, self.Vxx, self.Qu, self.Quu,
                                       self.xs_try, self.us_try, self.alphas, self.state, max_steps,
                                       *(self._with_newton if self._newton else self._without), self.problem.n_p + 1))

    # ------------------------------------------------------------ the solve

    def solve(self, x0=None, U0=None, X0=None, t0: float = 0.0, warm: bool = False,
              time_budget: float | None = None) -> Solution:
        """Solve from ``x0`` at time ``t0`` (cold, or ``warm`` from the current iterate and
        multipliers). ``status`` is True only when stationarity (max |projected Q_u| ≤ tol),
        feasibility (gaps and constraints within tolerance) and complementarity (each inequality
        active or its multiplier zero, within the constraint tolerance) hold at the returned iterate."""
        start = time.perf_counter()
        if warm and self.initialised:
            if x0 is not None:
                self.x0 = np.asarray(x0, dtype=float)
            self.t0 = float(t0)
        else:
            self.initialise(x0, U0, X0, t0)
            self.reset_multipliers()
            self.state[0] = self.reg_init
            self.state[16] = 0.0
            self._newton = False
        self._fallback = None
        self._check_initial_state()
        self.state[9:12] = 0.0
        steps = outer = 0
        code = STEPPED
        viol = kkt = np.inf
        comp = np.nan
        budget_hit = False
        self.evaluate()
        # the first round only finds the neighbourhood (its multipliers are a guess): a loose
        # stationarity test there, tenfold tighter each round, and the exact terminal steps after
        inner_tol = self.tol if not self._outer else max(self.tol, self.al_tol)
        while True:
            self.state[5] = inner_tol
            code = self._inner(start, time_budget)
            steps = int(self.state[10])
            if code == DIVERGED:  # the Newton phase left the neighbourhood: back to the AL rounds
                inner_tol = self._leave_newton()
                continue
            if code == NONFINITE or code == REG_MAX:
                break
            he, hi, G = self.constraint_values()
            viol = self.violation(he, hi, G)
            comp = self.complementarity(hi, G)
            kkt = max(viol, comp)  # the constraints' part of the KKT conditions
            if time_budget is not None and time.perf_counter() - start > time_budget:
                budget_hit = True
                break
            if code == CONVERGED and kkt <= self.constraint_tol and inner_tol <= self.tol:
                break
            if steps >= self.max_iterations:
                break
            if not self._outer or (self._newton and not (self.problem.n_in or self.problem.n_g)):
                if code == CONVERGED:
                    break
                continue
            if code == CONVERGED or kkt > self.constraint_tol:
                outer += 1
                if kkt > self.constraint_tol:
                    self._update_multipliers(he, hi, G)
                    if kkt > 0.25 * getattr(self, "_last_violation", np.inf) and self.mu < self.max_penalty:
                        self._set_penalty(min(self.mu * self.penalty_factor, self.max_penalty))
                    self._last_violation = kkt
                inner_tol = max(self.tol, 0.1 * inner_tol) if code == CONVERGED else inner_tol
                if self.exact_terminal and not self._newton and self._fallback is None \
                        and np.max(np.abs(he)) <= self.newton_switch:
                    inner_tol = self._enter_newton(he, inner_tol)
                self.evaluate()
        self._last_violation = np.inf
        converged = code == CONVERGED and kkt <= self.constraint_tol and self.state[5] <= self.tol
        message = self._stop_message(converged, budget_hit, time_budget, code, steps, viol)
        seconds = time.perf_counter() - start
        N = self.N
        t = self.t0 + self.h * np.arange(N + 1)
        # unconstrained, the augmented cost of the iterate (kept by the iterations) is the cost J
        cost = self.plain_cost() if self._constrained else float(self.state[4])
        mult = self.multipliers() if self._constrained else {}
        return Solution(bool(converged), message, "ddp", self.variant.replace("_", "-"), cost=cost, t=t,
                        x=self.xs.copy(), u=self.us.copy(), costates=self.Vx.copy(), T=self.h * N,
                        iterations=steps, gradient_evaluations=steps, seconds=seconds,
                        constraint_violation=float(viol if np.isfinite(viol) else np.nan),
                        extra={"stationarity": float(self.state[7]), "gaps": float(np.max(np.abs(self.fs))),
                               "outer_iterations": outer, "penalty": self.mu, "regularisation": float(self.state[0]),
                               "multipliers": mult, "box": self.box, "time_budget_exceeded": budget_hit,
                               "failed_sweeps": int(self.state[11]),
                               "complementarity": float(comp),
                               "augmented_cost": float(self.state[4])},
                        gains=self.K.copy(), feedforward=self.k.copy())

    def _enter_newton(self, he, inner_tol: float) -> float:
        """ALTRO's two phases: the augmented Lagrangian has found the neighbourhood of the optimum,
        and Newton steps on the terminal multipliers converge from there; should they diverge,
        the rounds go on from this saved point without them. Returns the next inner tolerance."""
        kp, ne = self.problem.n_p, self.problem.n_eq
        self._fallback = (self.xs.copy(), self.us.copy(), self.r[kp + 1:kp + 1 + ne].copy())
        self._switch_violation = max(float(np.max(np.abs(he))), self.constraint_tol)
        self._newton, self._switch_tol = True, inner_tol
        return self.tol if not (self.problem.n_in or self.problem.n_g) else inner_tol

    def _leave_newton(self) -> float:
        """Back to the saved point and multipliers of :meth:`_enter_newton`, for good; returns the
        inner tolerance the rounds had there."""
        self._newton = False
        kp, ne = self.problem.n_p, self.problem.n_eq
        self.xs[:], self.us[:], self.r[kp + 1:kp + 1 + ne] = self._fallback
        self._fallback = ()
        self.state[0] = max(self.state[0], 1e-6)
        self.evaluate()
        return self._switch_tol

    def _stop_message(self, converged: bool, budget_hit: bool, time_budget, code: int, steps: int,
                      viol: float) -> str:
        if converged:
            return f"converged: max |projected Q_u| {self.state[7]:.1e}, constraint violation {viol:.1e}"
        if budget_hit:
            return f"time budget of {time_budget * 1e3:.3g} ms reached after {steps} iterations: the best " \
                   "iterate so far, not converged"
        if code in _CODES:
            return _CODES[code]
        if steps >= self.max_iterations:
            return f"stopped after max_iterations = {self.max_iterations} iterations, not converged " \
                   f"(max |Q_u| {self.state[7]:.1e}, constraint violation {viol:.1e})"
        return "stopped"

    def _inner(self, start, time_budget) -> int:
        """Iterate on fixed multipliers until converged, stuck, out of iterations or time."""
        while True:
            left = self.max_iterations - int(self.state[10])
            if left <= 0:
                return STEPPED
            watch = self._newton and self._fallback
            chunk = left if time_budget is None and not watch else 1
            code = self.iterate(chunk)
            if watch and (self.state[13] > 10.0 * self._switch_violation or self.state[0] >= 1e3):
                return DIVERGED
            if code != STEPPED:
                if code == NO_STEP:
                    if self.state[0] >= self.state[2]:
                        return REG_MAX
                    continue
                return code
            if time_budget is not None and time.perf_counter() - start > time_budget:
                return STEPPED

    def _check_initial_state(self) -> None:
        """A path constraint that the initial state violates whatever the control: no solution."""
        pr = self.problem
        if not pr.n_g:
            return
        g0 = np.atleast_1d(self.module.pc_forward(self.x0, self.us[0], pr.params, self.t0))
        du = self.module.pc_jacobian(self.x0, self.us[0], pr.params, self.t0)[1].reshape(pr.n_g, pr.n_u)
        for i in np.flatnonzero(g0 > self.constraint_tol):
            if not np.any(du[i]):
                raise ProblemError(f"the initial state {self.x0} violates path constraint {i} "
                                   f"(g_{i} = {g0[i]:.3g} > 0) and no control can change that at t = {self.t0:g}: "
                                   "start from a state inside the constraints or relax them")


def ddp(problem: OptimalControlProblem, variant: str = "auto", U0=None, X0=None,
        time_budget: float | None = None, **options) -> Solution:
    """Solve ``problem`` by FDDP (see the module docstring); options as :class:`DDPSolver`
    (``tol``, ``constraint_tol``, ``max_iterations``, ``penalty``, ``reg_*``, ``line_search``,
    ``exact_terminal``, ``newton_switch``, ``al_tol``, ``dual_reg``, ``interpret_first``: a new
    problem's first solves run as Python while Numba compiles, with the compiled code's bits).
    Never raises for a bad problem: read ``status`` and ``message``. The solution carries the
    feedback gains ``gains`` K_k (N, m, n), the feed-forward terms ``feedforward`` k_k (N, m)
    and the value gradients V_x(k) as ``costates``.

    >>> from trajectories.systems import double_integrator_lqr
    >>> s = ddp(double_integrator_lqr(N=40), variant="second-order")
    >>> s.status, s.method, s.gradient
    (True, 'ddp', 'second-order')
    """
    start = time.perf_counter()
    try:
        solver = DDPSolver(problem, variant=variant, **options)
    except ProblemError as exc:
        return Solution(False, str(exc), "ddp", variant, seconds=time.perf_counter() - start)
    return run_ddp(solver, U0, X0, time_budget, start)


def run_ddp(solver: DDPSolver, U0=None, X0=None, time_budget: float | None = None,
            start: float | None = None) -> Solution:
    """``solver.solve`` with a numerical failure or an infeasible start reported as status False
    (``start``: the clock's reading the solve's seconds count from).

    >>> from trajectories.systems import double_integrator_lqr
    >>> run_ddp(DDPSolver(double_integrator_lqr(N=20))).status
    True
    """
    start = time.perf_counter() if start is None else start
    try:
        sol = solver.solve(U0=U0, X0=X0, time_budget=time_budget)
    except (ProblemError, FloatingPointError) as exc:
        return Solution(False, str(exc), "ddp", solver.variant, seconds=time.perf_counter() - start)
    sol.seconds = time.perf_counter() - start
    return sol


__all__ = ["DDPSolver", "VARIANTS", "check_problem", "ddp"]
