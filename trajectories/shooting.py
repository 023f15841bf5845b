"""Direct methods: single shooting and multiple shooting, solved with scipy.optimize using
exact gradients from diffsim's compiled rollouts and kernels.

- Single shooting: the decision is the control sequence (and T if free); the cost and every
  terminal constraint are rollout costs, differentiated by BPTT, checkpointed BPTT or the
  continuous adjoint (``gradient=``). Path constraints enter as ∫ Σ max(g, 0)² dt ≤ tolerance.
- Multiple shooting: the states at the N + 1 nodes are decisions too, tied by continuity
  constraints s_{k+1} = F(s_k, u_k) (one integrator step per interval); the constraint Jacobian
  is sparse, assembled from the compiled step Jacobians; path constraints hold at the nodes.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.optimize as so
import scipy.sparse as sp

import diffsim as ds
import diffsim.numpy as dnp

from .problem import OptimalControlProblem, ProblemError
from .result import Solution


class _Aborted(Exception):
    pass


def _fail(method, gradient, message, start) -> Solution:
    return Solution(False, message, method, gradient, seconds=time.perf_counter() - start)


def single_shooting(problem: OptimalControlProblem, gradient: str = "bptt", optimizer: str | None = None,
                    U0: np.ndarray | None = None, T0: float | None = None, maxiter: int = 1000, tol: float = 1e-12,
                    path_tol: float = 1e-8, snapshots: int | None = None) -> Solution:
    """Optimise the controls by single shooting (see the module docstring).

    ``optimizer`` defaults to L-BFGS-B without constraints and SLSQP with them.
    """
    start = time.perf_counter()
    method = "single"
    try:
        problem.check()
    except ProblemError as exc:
        return _fail(method, gradient, str(exc), start)
    if gradient not in ("bptt", "checkpointed", "adjoint"):
        return _fail(method, gradient, f"unknown gradient method {gradient!r}: use bptt, checkpointed or adjoint",
                     start)
    nlp = _SingleShooting(problem, gradient, snapshots)
    z0, bounds = nlp.start(U0, T0)
    constraints = nlp.constraints(path_tol)
    optimizer = optimizer or ("SLSQP" if constraints else "L-BFGS-B")
    try:
        res = _minimize_single(nlp, z0, bounds, constraints, optimizer, maxiter, tol)
    except _Aborted as exc:
        return _fail(method, gradient, str(exc), start)
    return nlp.solution(res, constraints, path_tol, start)


class _SingleShooting:
    """Single shooting's NLP: the decision z = (U, T if free), and the cost, the terminal
    constraints and the path violation at z from compiled rollouts and reverse sweeps, cached by z
    (the optimiser asks again for the point it has just asked for)."""

    def __init__(self, problem: OptimalControlProblem, gradient: str, snapshots: int | None) -> None:
        self.problem, self.gradient, self.snapshots = problem, gradient, snapshots
        self.N, self.m, self.free = problem.N, problem.n_u, problem.free_time
        self.n_w = problem.n_q - problem.n_p - 2
        self.unit = np.eye(self.n_w)
        self.gradients = 0
        self.cache: dict = {}

    def start(self, U0, T0) -> tuple[np.ndarray, list]:
        """The starting decision (U0 clipped into the bounds, T0) and the bounds of z."""
        problem, N, m = self.problem, self.N, self.m
        U0 = problem.u_guess() if U0 is None else np.asarray(U0, dtype=float).reshape(N, m)
        z0 = np.concatenate([np.clip(U0, problem.u_lower, problem.u_upper).ravel(),
                             [T0 or problem.T] if self.free else []])
        bounds = [(None if not np.isfinite(lo) else lo, None if not np.isfinite(hi) else hi)
                  for lo, hi in zip(np.tile(problem.u_lower, N), np.tile(problem.u_upper, N))]
        if self.free:
            bounds.append(tuple(None if not np.isfinite(b) else b for b in problem.T_bounds))
        return z0, bounds

    def unpack(self, z):
        return z[:self.N * self.m].reshape(self.N, self.m), (z[-1] if self.free else self.problem.T)

    def values(self, z):
        """The cost, every terminal constraint and the path violation from one rollout (plus one
        for the violation integral): line searches ask for values far more often than gradients."""
        problem, N, mod = self.problem, self.N, self.problem.ode.module
        key = ("values", z.tobytes())
        if key not in self.cache:
            U, T = self.unpack(z)
            xs, J, status, where = mod.rollout(problem.x0, np.ascontiguousarray(U), problem.q(T), 0.0, 1.0 / N)
            if status != 0:
                raise _Aborted(f"the dynamics produced non-finite values during the optimisation "
                               f"(non-finite state or cost at step {where})")
            h = [mod.phi_forward(xs[N], problem.q(T, 0.0, self.unit[i])) for i in range(problem.n_eq + problem.n_in)]
            if problem.n_g:
                h.append(mod.rollout(problem.x0, np.ascontiguousarray(U), problem.q(T, 0.0, self.unit[-1]), 0.0,
                                     1.0 / N)[1])
            self.cache[key] = (float(J), np.array(h))
        return self.cache[key]

    def evaluate(self, z, cost, weights):
        """(J, dJ/dz, the ODE gradient) of cost * J + Σ weights_i h_i at z, by the chosen method."""
        problem = self.problem
        key = (z.tobytes(), cost, None if weights is None else weights.tobytes())
        if key not in self.cache:
            U, T = self.unpack(z)
            try:
                g = problem.ode.gradient(problem.x0, np.ascontiguousarray(U), problem.q(T, cost, weights), T=1.0,
                                         method=self.gradient, snapshots=self.snapshots, check_inputs=False)
            except FloatingPointError as exc:
                raise _Aborted(f"the dynamics produced non-finite values during the optimisation ({exc})") from exc
            self.gradients += 1
            grad = g.dU.ravel()
            if self.free:
                grad = np.append(grad, g.dp[problem.n_p])
            if len(self.cache) > 64:
                self.cache.clear()
            self.cache[key] = (g.J, grad, g)
        return self.cache[key]

    def constraints(self, path_tol: float) -> list[dict]:
        """scipy's constraint dicts (with the ``sign`` that turns h ≤ 0 into scipy's c ≥ 0): terminal
        equalities, terminal inequalities, then the path violation ≤ ``path_tol``."""
        problem, out = self.problem, []
        for i in range(problem.n_eq + problem.n_in + (1 if problem.n_g else 0)):
            w = np.zeros(self.n_w)
            w[i] = 1.0
            sign = 1.0 if i < problem.n_eq else -1.0  # scipy: eq == 0, ineq >= 0
            offset = path_tol if i == problem.n_eq + problem.n_in else 0.0
            out.append({
                "type": "eq" if i < problem.n_eq else "ineq", "sign": sign,
                "fun": lambda z, i=i, s=sign, o=offset: s * self.values(z)[1][i] + o,
                "jac": lambda z, w=w, s=sign: s * self.evaluate(z, 0.0, w)[1]})
        return out

    def solution(self, res, constraints: list, path_tol: float, start: float) -> Solution:
        """The Solution at scipy's result: the rollout, the costates of J + νᵀh with SLSQP's
        multipliers (Pontryagin's λ at the optimum) and the largest constraint violation."""
        problem = self.problem
        U, T = self.unpack(res.x)
        final = self.evaluate(res.x, 1.0, None)[2]
        nu = _terminal_multipliers(res, [c.get("sign", 1.0) for c in constraints], 0, self.n_w)
        if nu is not None:  # costates of the Lagrangian J + νᵀh: Pontryagin's λ at the optimum
            final_lagrangian = self.evaluate(res.x, 1.0, nu)[2]
        roll = problem.ode.rollout(problem.x0, U, problem.q(T), T=1.0)
        violation = max([abs(c["fun"](res.x) - (path_tol if k == len(constraints) - 1 and problem.n_g else 0.0))
                         if c["type"] == "eq" else max(0.0, -c["fun"](res.x)) for k, c in enumerate(constraints)],
                        default=0.0)
        costates = final_lagrangian.costate if nu is not None else final.costate
        return Solution(bool(res.success), str(res.message), "single", self.gradient, cost=float(final.J),
                        t=roll.t * T, x=roll.x, u=U, costates=costates, T=float(T), iterations=int(res.get("nit", 0)),
                        gradient_evaluations=self.gradients, seconds=time.perf_counter() - start,
                        constraint_violation=float(violation), extra={"multipliers": nu})


def _minimize_single(nlp: _SingleShooting, z0, bounds, constraints, optimizer: str, maxiter: int, tol: float):
    """scipy.optimize.minimize on single shooting's NLP with ``optimizer``'s options."""
    options = {"maxiter": maxiter}
    if optimizer == "L-BFGS-B":
        options.update(ftol=tol, gtol=1e-10, maxcor=30)
    elif optimizer == "SLSQP":
        options.update(ftol=tol)
    # L-BFGS-B wants the gradient wherever it evaluates: one sweep gives both; SQP line
    # searches ask for values far more often than for gradients: a rollout gives those
    fun, jac = ((lambda z: nlp.evaluate(z, 1.0, None)[:2]), True) if optimizer == "L-BFGS-B" else \
        ((lambda z: nlp.values(z)[0]), (lambda z: nlp.evaluate(z, 1.0, None)[1]))
    return so.minimize(fun, z0, jac=jac, bounds=bounds,
                       constraints=[{k: v for k, v in c.items() if k != "sign"} for c in constraints]
                       if optimizer != "L-BFGS-B" else (), method=optimizer, options=options)


def _terminal_multipliers(res, signs, skip_eq, n_w):
    """ν for the weights w of J + Σ w_i h_i from scipy's SLSQP multipliers (∇f = Σ μ_i ∇c_i, with
    c_i = s_i h_i): ν_i = -s_i μ_i. SLSQP orders equalities before inequalities; ``skip_eq`` leading
    equality multipliers (multiple shooting's continuity) are not terminal ones."""
    mu = res.get("multipliers")
    if mu is None or n_w == 0 or len(signs) == 0:
        return None
    mu = np.asarray(mu, dtype=float)[skip_eq:]
    if mu.size != len(signs):
        return None
    return -np.asarray(signs) * mu


def multiple_shooting(problem: OptimalControlProblem, segments: int | None = None, optimizer: str = "SLSQP",
                      U0: np.ndarray | None = None, X0: np.ndarray | None = None, T0: float | None = None,
                      maxiter: int = 1000, tol: float = 1e-12) -> Solution:
    """Optimise the states at the start of each shooting segment together with the controls.

    The N control intervals are grouped into ``segments`` (default min(N, 20)) integrated from
    their own start states; continuity constraints tie a segment's end to the next start. Each
    segment's end state, cost and the states inside it come with their sensitivities, propagated
    through the compiled step Jacobians, so every constraint Jacobian is exact; its block
    structure (a segment depends only on its start state and its own controls) is filled in
    directly. Path constraints hold at every control node."""
    start = time.perf_counter()
    method = "multiple"
    try:
        problem.check()
    except ProblemError as exc:
        return _fail(method, None, str(exc), start)
    nlp = _MultipleShooting(problem, segments)
    z0, bounds = nlp.start(U0, X0, T0)
    constraints = nlp.constraints()
    try:
        res = _minimize_multiple(nlp, z0, bounds, constraints, optimizer, maxiter, tol)
    except (_Aborted, FloatingPointError) as exc:
        return _fail(method, None, f"the dynamics produced non-finite values during the optimisation ({exc})", start)
    return nlp.solution(res, constraints, optimizer, start)


class _MultipleShooting:
    """Multiple shooting's NLP: the decision z = (the S + 1 segment start states, U, T if free);
    one sweep over the segments gives their end states, the cost and the path-constraint values,
    each with its dense Jacobian row, memoised for the last z."""

    def __init__(self, problem: OptimalControlProblem, segments: int | None) -> None:
        self.problem = problem
        self.n, self.m, self.N, self.free, self.kT = problem.n_x, problem.n_u, problem.N, problem.free_time, problem.n_p
        self.mod = problem.ode.module
        self.h = 1.0 / self.N
        S = int(min(self.N, segments or 20))
        self.edges = np.unique(np.round(np.linspace(0, self.N, S + 1)).astype(int))
        self.S = self.edges.size - 1
        self.nX, self.nU = (self.S + 1) * self.n, self.N * self.m
        self.nz = self.nX + self.nU + (1 if self.free else 0)
        self.n_w = problem.n_q - problem.n_p - 2
        self.path = _path_kernel(problem) if problem.n_g else None
        self.gradients = 0
        self.memo: dict = {}

    def start(self, U0, X0, T0) -> tuple[np.ndarray, list]:
        """The starting decision (segment starts from a rollout of U0 unless X0 is given; U0
        clipped into the bounds; T0) and the bounds of z (the first start state fixed at x0)."""
        problem, N, m, S, n = self.problem, self.N, self.m, self.S, self.n
        U0 = problem.u_guess() if U0 is None else np.asarray(U0, dtype=float).reshape(N, m)
        if X0 is None:
            try:
                X0 = problem.ode.rollout(problem.x0, U0, problem.q(T0 or problem.T), T=1.0).x[self.edges]
            except FloatingPointError:
                X0 = np.tile(problem.x0, (S + 1, 1))
        z0 = np.concatenate([np.asarray(X0, dtype=float).ravel(),
                             np.clip(U0, problem.u_lower, problem.u_upper).ravel(),
                             [T0 or problem.T] if self.free else []])
        inf = lambda b: None if not np.isfinite(b) else b
        bounds = [(v, v) for v in problem.x0] + [(None, None)] * (S * n)
        bounds += [(inf(lo), inf(hi)) for lo, hi in zip(np.tile(problem.u_lower, N), np.tile(problem.u_upper, N))]
        if self.free:
            bounds.append(tuple(inf(b) for b in problem.T_bounds))
        return z0, bounds

    def unpack(self, z):
        return (z[:self.nX].reshape(self.S + 1, self.n), z[self.nX:self.nX + self.nU].reshape(self.N, self.m),
                (z[-1] if self.free else self.problem.T))

    def col_u(self, k: int) -> int:
        return self.nX + k * self.m

    def sweep(self, z):
        """Segment ends, costs and path-constraint values with their Jacobian rows (dense)."""
        key = z.tobytes()
        if key in self.memo:
            return self.memo[key]
        n, S, nz, mod = self.n, self.S, self.nz, self.mod
        Xn, U, T = self.unpack(z)
        q = self.problem.q(T)
        ends, dends = np.empty((S, n)), np.zeros((S * n, nz))
        cost, dcost = 0.0, np.zeros(nz)
        gvals, dg = [], []
        for j in range(S):
            a, b = self.edges[j], self.edges[j + 1]
            x, Sx, Su, ST, cost = self._segment(j, Xn[j].copy(), U, q, cost, dcost, gvals, dg)
            if not np.all(np.isfinite(x)):
                raise _Aborted(f"non-finite state at the end of shooting segment {j} (steps {a}..{b})")
            ends[j] = x
            r = slice(j * n, (j + 1) * n)
            dends[r, j * n:(j + 1) * n] = Sx
            dends[r, self.col_u(a):self.col_u(b)] = Su
            if self.free:
                dends[r, -1] = ST
        gx, gq = np.empty(n), np.empty(q.size)
        mod.phi_vjp_into(Xn[S], q, 1.0, gx, gq)
        cost += mod.phi_forward(Xn[S], q)
        dcost[S * n:self.nX] += gx
        if self.free:
            dcost[-1] += gq[self.kT]
        self.gradients += 1
        self.memo.clear()
        self.memo[key] = (ends, dends, cost, dcost, np.concatenate(gvals) if gvals else None,
                          np.vstack(dg) if dg else None)
        return self.memo[key]

    def _segment(self, j: int, x, U, q, cost: float, dcost, gvals: list, dg: list):
        """Integrate segment j from its start state x, adding its steps' costs to ``cost`` (in
        order) and their gradients to ``dcost``, its path-constraint values and rows to ``gvals``
        and ``dg``; returns (end state, its sensitivities to the start state, to the segment's
        controls and to T, cost)."""
        n, m, h, kT, mod, path = self.n, self.m, self.h, self.kT, self.mod, self.path
        a, b = self.edges[j], self.edges[j + 1]
        col_u = self.col_u
        Sx, Su, ST = np.eye(n), np.zeros((n, (b - a) * m)), np.zeros(n)
        for k in range(a, b):
            lk = (k - a) * m
            if path is not None:
                gx, gu, gq, _ = path.jacobian(x, U[k], q, k * h)
                gvals.append(path.forward(x, U[k], q, k * h))
                row = np.zeros((self.problem.n_g, self.nz))
                row[:, j * n:(j + 1) * n] = gx @ Sx
                row[:, col_u(a):col_u(a) + lk] = gx @ Su[:, :lk]
                row[:, col_u(k):col_u(k) + m] += gu
                if self.free:
                    row[:, -1] = gx @ ST + gq[:, kT]
                dg.append(row)
            out = mod.step_forward(x, U[k], q, k * h, h)
            jx, ju, jq, _, _ = mod.step_jacobian(x, U[k], q, k * h, h)
            cost += out[n]
            dcost[j * n:(j + 1) * n] += jx[n] @ Sx
            dcost[col_u(a):col_u(a) + lk] += jx[n] @ Su[:, :lk]
            dcost[col_u(k):col_u(k) + m] += ju[n]
            if self.free:
                dcost[-1] += jx[n] @ ST + jq[n, kT]
            Sx, Su, ST = jx[:n] @ Sx, jx[:n] @ Su, jx[:n] @ ST + jq[:n, kT]
            Su[:, lk:lk + m] += ju[:n]
            x = out[:n]
        return x, Sx, Su, ST, cost

    def constraints(self) -> list[dict]:
        """scipy's constraint dicts: continuity of the segments, terminal equalities and
        inequalities, the path constraints at every node."""
        problem, n, S, nz = self.problem, self.n, self.S, self.nz
        shift = np.zeros((S * n, nz))  # d(X_{j+1})/dz
        shift[np.arange(S * n), n + np.arange(S * n)] = 1.0
        out = [{"type": "eq", "fun": lambda z: (self.unpack(z)[0][1:] - self.sweep(z)[0]).ravel(),
                "jac": lambda z: shift - self.sweep(z)[1]}]
        for i in range(problem.n_eq + problem.n_in):
            w = np.zeros(self.n_w)
            w[i] = 1.0
            sign = 1.0 if i < problem.n_eq else -1.0
            out.append({"type": "eq" if i < problem.n_eq else "ineq",
                        "fun": lambda z, w=w, s=sign: self._terminal(z, w, s),
                        "jac": lambda z, w=w, s=sign: self._terminal_row(z, w, s)})
        if self.path is not None:
            out.append({"type": "ineq", "fun": lambda z: -self.sweep(z)[4], "jac": lambda z: -self.sweep(z)[5]})
        return out

    def _terminal(self, z, w, s: float) -> float:
        """s h(x_N) for the terminal constraint h picked by the weights w."""
        Xn, U, T = self.unpack(z)
        return s * self.mod.phi_forward(Xn[self.S], self.problem.q(T, 0.0, w))

    def _terminal_row(self, z, w, s: float) -> np.ndarray:
        """The Jacobian row of :meth:`_terminal` over z."""
        Xn, U, T = self.unpack(z)
        q = self.problem.q(T, 0.0, w)
        gx, gq = np.empty(self.n), np.empty(q.size)
        self.mod.phi_vjp_into(Xn[self.S], q, 1.0, gx, gq)
        row = np.zeros(self.nz)
        row[self.S * self.n:self.nX] = s * gx
        if self.free:
            row[-1] = s * gq[self.kT]
        return row

    def solution(self, res, constraints: list, optimizer: str, start: float) -> Solution:
        """The Solution at scipy's result: the controls integrated from x0, with the costates of
        J + νᵀh (SLSQP's terminal multipliers), and the largest constraint violation."""
        problem, N, n = self.problem, self.N, self.n
        ode = problem.ode
        Xn, U, T = self.unpack(res.x)
        viol = max([np.max(np.abs(c["fun"](res.x))) if c["type"] == "eq" else max(0.0, -np.min(c["fun"](res.x)))
                    for c in constraints], default=0.0)
        nu = None
        if optimizer == "SLSQP" and problem.n_eq + problem.n_in and not problem.n_g:
            nu = _terminal_multipliers(res, [1.0] * problem.n_eq + [-1.0] * problem.n_in, self.S * n, self.n_w)
        try:  # the trajectory of the controls found, integrated from x0, with its costates (of J + νᵀh)
            g = ode.gradient(problem.x0, U, problem.q(T, 1.0, nu), T=1.0, method="bptt")
            roll = ode.rollout(problem.x0, U, problem.q(T), T=1.0)
            cost, x, lam = roll.J, roll.x, g.costate
        except FloatingPointError:
            cost, x, lam = float(self.sweep(res.x)[2]), None, None
        message = str(res.message) if x is not None else (
            f"{res.message}; the controls integrated from x0 in one piece overflow (unstable dynamics): "
            "x and the costates are left empty, the segments' start states are in extra['segment_states'] "
            "and the cost is the segments' sum")
        return Solution(bool(res.success), message, "multiple", None, cost=float(cost),
                        t=np.linspace(0, T, N + 1), x=x if x is not None else np.zeros((0, n)), u=U, costates=lam,
                        T=float(T), iterations=int(res.get("nit", 0)), gradient_evaluations=self.gradients,
                        seconds=time.perf_counter() - start, constraint_violation=float(viol),
                        extra={"segments": self.S, "segment_states": Xn})


def _minimize_multiple(nlp: _MultipleShooting, z0, bounds, constraints, optimizer: str, maxiter: int, tol: float):
    """scipy.optimize.minimize on multiple shooting's NLP; trust-constr gets the block-sparse
    Jacobians as CSR."""
    if optimizer == "trust-constr":
        cons = [so.NonlinearConstraint(c["fun"], 0.0, 0.0 if c["type"] == "eq" else np.inf,
                                       jac=lambda z, j=c["jac"]: sp.csr_matrix(np.atleast_2d(j(z))))
                for c in constraints]
        return so.minimize(lambda z: nlp.sweep(z)[2:4], z0, jac=True, bounds=so.Bounds(*_bounds_arrays(bounds)),
                           constraints=cons, method="trust-constr",
                           options={"maxiter": maxiter, "gtol": 1e-10, "xtol": 1e-12})
    return so.minimize(lambda z: nlp.sweep(z)[2:4], z0, jac=True, bounds=bounds, constraints=constraints,
                       method=optimizer, options={"maxiter": maxiter, "ftol": tol})


def _bounds_arrays(bounds):
    lo = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    hi = np.array([np.inf if b[1] is None else b[1] for b in bounds])
    return lo, hi


def _path_kernel(problem):
    k = problem.n_p
    g = problem.g
    return ds.compile(lambda x, u, q, s: dnp.atleast_1d(g(x, u, q[:k], q[k] * s)), problem.n_x, problem.n_u,
                      problem.n_q, ())
