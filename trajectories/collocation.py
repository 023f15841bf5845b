"""Direct collocation (trapezoidal and Hermite-Simpson) as a stage-wise transcription.

The NLP. Controls are piecewise linear: u_j at the N + 1 nodes (trapezoid), plus a midpoint
control u_c per interval for Hermite-Simpson (piecewise quadratic through u_k, u_c, u_{k+1}).
On scaled time s = t/T with F = T f and ℓ = T L, the defects of interval k are

    trapezoid:        c_k = x_k + h/2 (F_k + F_{k+1}) - x_{k+1}
    Hermite-Simpson:  c_k = [x_k + h/6 (F_k + 4 F_c + F_{k+1}) - x_{k+1},
                             (x_k + x_{k+1})/2 + h/8 (F_k - F_{k+1}) - x_c]

(the separated form: the midpoint state x_c is a variable), and the running cost is the same
quadrature of ℓ (trapezoid or Simpson). Path constraints hold at every node (not at midpoints),
terminal constraints at x_N; a free final time T is one more variable.

The stage form the Riccati interior-point method needs: stage state ξ_j = (x_j, u_j[, x_c, u_c
of interval j - 1][, T]) and stage control w_k = (u_{k+1}[, u_c]). The defect c_k(ξ_k, w_k, y)
= 0, y = x_{k+1} (or (x_{k+1}, x_c)), linearised and solved for dy through E_k = ∂c_k/∂y gives
explicit dynamics dξ_{k+1} = A_k dξ_k + B_k dw_k + r_k (the copies u_{k+1}, u_c, T are identity
rows): the same Newton step as the defects' own KKT system, since the two differ by the row
operation -E_k⁻¹. Every nonlinear term of the Lagrangian is a function of one node's (x, u, T)
or one midpoint's (x_c, u_c, T), both inside a single ξ_j, so its Hessian is stage-separable
with no cross-stage terms to fold. The defects' multipliers are μ_k = -E_k⁻ᵀλ_{k+1}.

Reported costates follow the other transcriptions: λ_j = ∂/∂x_j of the Lagrangian from t_j on
(multiple shooting's multiplier of x_{k+1} = F(x_k, u_k)), i.e. λ_j = -(∂c_{j-1}/∂x_j)ᵀμ_{j-1} -
(the previous interval's quadrature weight) ∇_x ℓ_j, and λ_0 = ∂L/∂x_0.

>>> from trajectories import SYSTEMS, solve
>>> sol = solve(SYSTEMS["double_integrator_lqr"](N=20), method="collocation", scheme="hermite-simpson")
>>> sol.status, sol.u.shape, sol.extra["u_mid"].shape
(True, (21, 1), (20, 1))
"""

from __future__ import annotations

import pathlib

import numpy as np

import diffsim.numpy as dnp
from diffsim.codegen import compile_module

from .interior_point import Iterate
from .problem import OptimalControlProblem, ProblemError
from .result import Solution
from .transcription import Derivatives, Transcription, Values, _shaped, terminal_vector

SCHEMES = ("trapezoidal", "hermite-simpson")
_HERE = pathlib.Path(__file__).parent
_LOOPS = (_HERE / "collocation_loops.py").read_text()


def collocation_module(problem: OptimalControlProblem):
    """The compiled node kernels and collocation loops of ``problem`` (once per problem, cached
    on disk; both schemes share them)."""
    cached = getattr(problem, "_collocation_module", None)
    if cached is not None:
        return cached
    n, m, k, free = problem.n_x, problem.n_u, problem.n_p, problem.free_time
    f, L, g = problem.f, problem.L, problem.g

    def horizon(x, q):
        return x[n] if free else q[k]

    def node(x, u, q, s):  # [F, ℓ, g] on scaled time
        T = horizon(x, q)
        parts = [T * f(x[:n], u, q[:k], T * s),
                 dnp.reshape(T * L(x[:n], u, q[:k], T * s) if L is not None else 0.0 * s, (1,))]
        if g is not None:
            parts.append(dnp.atleast_1d(g(x[:n], u, q[:k], T * s)))
        return dnp.concatenate(parts)

    nt, nq = n + int(free), k + 1
    specs = {"node_": (node, (nt, m, nq, ())), "term_": (terminal_vector(problem), (nt, nq))}
    module, _ = compile_module(specs, extra=_LOOPS, title=f"collocation({problem.name}, free={free})",
                               interpret_first=True)
    problem._collocation_module = module
    return module


class Collocation(Transcription):
    """Direct collocation in the stage form of :mod:`trajectories.transcription` (see the module
    docstring); ``scheme`` is "trapezoidal" or "hermite-simpson"."""

    name = "collocation"
    lifted = True

    def __init__(self, problem: OptimalControlProblem, scheme: str = "hermite-simpson") -> None:
        if scheme not in SCHEMES:
            raise ProblemError(f"unknown collocation scheme {scheme!r}: choose one of {SCHEMES}")
        problem.check()
        self.problem, self.scheme = problem, scheme
        self.hs = scheme == "hermite-simpson"
        n, m, N = problem.n_x, problem.n_u, problem.N
        self.n, self.N, self.free = n, N, problem.free_time
        self.m_node = m
        self.ns = (n + m) * (2 if self.hs else 1) + int(self.free)
        self.m = m * (2 if self.hs else 1)          # the stage control w_k
        self.nv = self.ns + self.m
        self.nc = n * (2 if self.hs else 1)         # defect rows per interval
        self.ng = problem.n_g
        self.n_eq = problem.n_eq
        self.n_in_user = problem.n_in
        self.n_in = problem.n_in + problem.n_g      # the final node's path rows ride as terminal rows
        self.h = 1.0 / N
        self.module = collocation_module(problem)
        self.q = np.append(problem.params, problem.T)
        iT, ixc, iuc = self.ns - 1, n + m, 2 * n + m
        self.iT = iT if self.free else None
        self.free0 = np.zeros(self.ns, dtype=np.bool_)
        self.free0[n:n + m] = True                  # u_0
        if self.free:
            self.free0[iT] = True
        lo, hi = np.full((N + 1, self.nv), -np.inf), np.full((N + 1, self.nv), np.inf)
        lo[0, n:n + m], hi[0, n:n + m] = problem.u_lower, problem.u_upper    # u_0 on ξ_0
        lo[:N, self.ns:self.ns + m], hi[:N, self.ns:self.ns + m] = problem.u_lower, problem.u_upper
        if self.hs:
            lo[:N, self.ns + m:], hi[:N, self.ns + m:] = problem.u_lower, problem.u_upper
        if self.free:
            lo[0, iT], hi[0, iT] = problem.T_bounds
        self.lower, self.upper = lo, hi
        fixed = np.zeros((N + 1, self.nv), dtype=np.bool_)
        fixed[0, :n] = True
        if self.hs:
            fixed[0, ixc:iuc + m] = True           # ξ_0 has no previous interval
        fixed[N, self.ns:] = True
        self.fixed = fixed
        # the y rows of ξ_{k+1} (solved from the defects) and the ξ_j slots of x_j, u_j, x_c, u_c
        self.y_rows = np.r_[np.arange(n), ixc + np.arange(n)] if self.hs else np.arange(n)

    @property
    def n_constraints(self) -> int:
        """Defects and path/terminal constraints of the collocation NLP (bounds excluded)."""
        return self.N * self.nc + (self.N + 1) * self.ng + self.n_eq + self.n_in_user

    @property
    def n_variables(self) -> int:
        """Decisions of the collocation NLP: nodes' x (but x_0) and u, midpoints, T."""
        n, m, N = self.n, self.m_node, self.N
        return N * n + (N + 1) * m + (N * (n + m) if self.hs else 0) + int(self.free)

    # ------------------------------------------------------------ points

    def _args(self):
        return self.q, self.h, self.n, self.m_node, self.hs, int(self.free)

    def pack(self, x, u, T=None, x_mid=None, u_mid=None):
        """The stage-form point (ξ (N+1, ns), w (N, mw)) of node states x (N+1, n), node controls
        u (N+1, m), midpoints (N, n), (N, m) and T."""
        n, m, N = self.n, self.m_node, self.N
        X = np.zeros((N + 1, self.ns))
        X[:, :n], X[:, n:n + m] = x, u
        W = np.zeros((N, self.m))
        W[:, :m] = u[1:]
        if self.hs:
            X[1:, n + m:2 * n + m], X[1:, 2 * n + m:2 * n + 2 * m] = x_mid, u_mid
            W[:, m:] = u_mid
        if self.free:
            X[:, -1] = self.problem.T if T is None else T
        return np.ascontiguousarray(X), np.ascontiguousarray(W)

    def node_controls(self, X) -> np.ndarray:
        return X[:, self.n:self.n + self.m_node].copy()

    def initial_guess(self, U0=None, X0=None, T0=None) -> tuple[np.ndarray, np.ndarray]:
        """Stage-form start: node controls ``U0`` ((N+1, m), or (N, m) piecewise constant, default
        the problem's guess), midpoint controls their averages, states ``X0`` ((N+1, n)) or the
        forward solution of the collocation equations (x0 repeated where it fails), T0."""
        p, N, m, n = self.problem, self.N, self.m_node, self.n
        if U0 is None:
            Uc = p.u_guess()
            U = np.vstack([Uc, Uc[-1:]])
        else:
            U = np.asarray(U0, dtype=float)
            if U.ndim == 1 and m == 1:
                U = U[:, None]
            U = _shaped(U, (N + 1, m) if U.shape[0] == N + 1 else (N, m),
                        f"U0 (the node controls: ({N + 1}, {m}), or ({N}, {m}) piecewise constant)")
            if U.shape[0] == N:
                U = np.vstack([U, U[-1:]])
        U = _inside(U, p.u_lower, p.u_upper)
        Um = 0.5 * (U[:-1] + U[1:])
        T = p.T if T0 is None else float(T0)
        x = np.tile(p.x0, (N + 1, 1))
        X, W = self.pack(x, U, T, 0.5 * (x[:-1] + x[1:]), Um)
        if X0 is not None:
            xs = _shaped(X0, (N + 1, n), "X0 (the initial states)")
            xs[0] = p.x0
            X, W = self.pack(xs, U, T, 0.5 * (xs[:-1] + xs[1:]), Um)
            return X, W
        trial = X.copy()
        if self.rollout(trial, W) < 0 and np.all(np.isfinite(trial)):
            X = trial
        return X, W

    # ------------------------------------------------------------ the stage-form NLP

    def raw_values(self, X, W):
        """(cost, defects c (N, nc), node path values (N+1, ng), terminal vector, bad)."""
        N, ng = self.N, max(self.ng, 1)
        C, Gp, TV = np.zeros((N, self.nc)), np.zeros((N + 1, ng)), np.zeros(1 + self.n_eq + self.n_in_user)
        with np.errstate(all="ignore"):
            q, h, n, m, hs, free = self._args()
            f, bad = self.module.colloc_values(X, W, q, h, 0.0, n, m, hs, free, self.ng, C, Gp, TV)
        return float(f), C, Gp[:, :self.ng], TV, int(bad)

    def raw_jacobians(self, X, W):
        """∂c/∂ξ_k, ∂c/∂w_k, E_k = ∂c_k/∂y (see :mod:`trajectories.collocation_loops`)."""
        N, nc = self.N, self.nc
        Cx, Cw, Ey = np.zeros((N, nc, self.ns)), np.zeros((N, nc, self.m)), np.zeros((N, nc, nc))
        q, h, n, m, hs, free = self._args()
        self.module.colloc_defect_jacobians(X, W, q, h, 0.0, n, m, hs, free, Cx, Cw, Ey)
        return Cx, Cw, Ey

    def values(self, X: np.ndarray, U: np.ndarray) -> Values:
        """Cost and constraints at the stage-form point (X = ξ, U = w); ``defects`` are the
        stage residuals r_k = (-E_k⁻¹c_k on the y rows, the copies' mismatch elsewhere)."""
        N = self.N
        f, C, Gp, TV, bad = self.raw_values(X, U)
        R = np.zeros((N, self.ns))
        if bad < 0:
            _, _, Ey = self.raw_jacobians(X, U)
            with np.errstate(all="ignore"):
                singular = self.module.colloc_stage_residuals(Ey, C, self.n, self.m_node, self.hs, R)
            if singular >= 0 or not np.all(np.isfinite(R)):
                bad = max(singular, 0)
        self.module.colloc_identity_residuals(X, U, self.n, self.m_node, self.hs, int(self.free), R)
        ne = self.n_eq
        inequality = np.concatenate([TV[1 + ne:], Gp[N]])
        vals = Values(f, R, Gp[:N], -np.ones(self.ng), TV[1:1 + ne], inequality, bad)
        vals.raw_defects, vals.raw_path = C, Gp
        return vals

    def jacobians(self, X: np.ndarray, U: np.ndarray) -> Derivatives:
        """Stage-form first derivatives: A_k, B_k, per-stage cost gradients, path Jacobians at
        nodes 0..N-1 (the final node's rows are terminal rows of TJ)."""
        N, ns, nv, ng = self.N, self.ns, self.nv, max(self.ng, 1)
        Cx, Cw, Ey = self.raw_jacobians(X, U)
        A, B, R = np.empty((N, ns, ns)), np.empty((N, ns, self.m)), np.zeros((N, ns))
        C = np.zeros((N, self.nc))
        self.module.colloc_stage_form(Cx, Cw, Ey, C, self.n, self.m_node, self.hs, int(self.free), A, B, R)
        grad = np.zeros((N + 1, nv))
        GP = np.zeros((N + 1, ng, ns))
        TJ0 = np.zeros((1 + self.n_eq + self.n_in_user, ns))
        gs = np.zeros((N + 1, ns))
        self.module.colloc_node_jacobians(X, *self._args(), self.ng, gs, GP, TJ0)
        grad[:, :ns] = gs
        GJ = np.zeros((N, ng, nv))
        GJ[:, :, :ns] = GP[:N]
        TJ = np.concatenate([TJ0, GP[N, :self.ng]])
        d = Derivatives(A, B, grad, GJ, np.zeros((ng, nv)), TJ)
        d.Cx, d.Cw, d.Ey, d.GP = Cx, Cw, Ey, GP
        return d

    def defect_multipliers(self, X, U, lam) -> np.ndarray:
        """μ_k = -E_k⁻ᵀλ_{k+1}[y rows] (N, nc)."""
        _, _, Ey = self.raw_jacobians(X, U)
        MU = np.zeros((self.N, self.nc))
        self.module.colloc_defect_multipliers(Ey, np.ascontiguousarray(lam), self.n, self.m_node, self.hs, MU)
        return MU

    def hessians_mu(self, X, MU, y_nodes, nu, y_in, sigma: float = 1.0) -> np.ndarray:
        """Node-by-node Hessians (N+1, ns, ns) of the Lagrangian with defect multipliers MU,
        node path multipliers (N+1, ng), terminal ν and y_in (the user's terminal rows)."""
        ng = max(self.ng, 1)
        YP = np.zeros((self.N + 1, ng)) if not self.ng else np.ascontiguousarray(y_nodes)
        tw = np.concatenate([[sigma], nu, y_in])
        H = np.zeros((self.N + 1, self.ns, self.ns))
        self.module.colloc_hessians(X, *self._args(), self.ng, np.ascontiguousarray(MU), YP, tw, float(sigma), H)
        return H

    def hessians(self, X, U, lam, y_path, y_final, nu, y_in, sigma: float = 1.0) -> np.ndarray:
        """Stage-form Hessian blocks (N+1, nv, nv): the control block of w_k is zero (w_k only
        copies node values), every curvature sits on the ξ_j it belongs to."""
        MU = self.defect_multipliers(X, U, lam)
        y_nodes = np.vstack([np.reshape(y_path, (self.N, self.ng)), np.reshape(y_in[self.n_in_user:], (1, self.ng))])
        Hs = self.hessians_mu(X, MU, y_nodes, nu, y_in[:self.n_in_user], sigma)
        H = np.zeros((self.N + 1, self.nv, self.nv))
        H[:, :self.ns, :self.ns] = Hs
        return H

    def costates(self, d: Derivatives, y_path, y_final, nu, y_in, keep_rows=None, lam=None) -> np.ndarray:
        """Stage-form multipliers λ (N+1, ns) by the adjoint recursion (with ``keep_rows`` of
        ``lam`` kept: the y rows when the defects' multipliers are known)."""
        ng = max(self.ng, 1)
        YP = np.zeros((self.N + 1, ng))
        if self.ng:
            YP[:self.N] = y_path
            YP[self.N] = y_in[self.n_in_user:]
        out = np.zeros((self.N + 1, self.ns)) if lam is None else np.ascontiguousarray(lam, dtype=float).copy()
        keep = np.zeros(self.ns, dtype=np.bool_)
        if keep_rows is not None:
            keep[keep_rows] = True
        tw = np.concatenate([[1.0], nu, y_in[:self.n_in_user]])
        TJ = np.ascontiguousarray(d.TJ[:1 + self.n_eq + self.n_in_user])
        self.module.colloc_costates(d.A, np.ascontiguousarray(d.grad[:, :self.ns]), d.GP, YP, TJ, tw, keep, out)
        return out

    def rollout(self, X, U) -> int:
        """Overwrite X[1:] with the forward solution of the collocation equations under the
        controls; the first interval where Newton's method fails, or -1."""
        Gp, TV = np.zeros((2, max(self.ng, 1))), np.zeros(1 + self.n_eq + self.n_in_user)
        with np.errstate(all="ignore"):
            return int(self.module.colloc_rollout(X, U, *self._args(), self.ng, Gp, TV, 1e-12, 20))

    def horizon(self, X: np.ndarray) -> float:
        return float(X[0, -1]) if self.free else self.problem.T

    # ------------------------------------------------------------ the user's view of a solution

    def finish(self, sol: Solution) -> Solution:
        """Map a stage-form solution to the collocation NLP's own variables and multipliers:
        node controls (N+1, m), midpoints in ``extra``, the defects' multipliers μ, costates in
        the convention of the other transcriptions, path multipliers at every node, and the
        worst violation of the collocation NLP's own constraints."""
        it = sol.extra.get("iterate")
        if it is None:
            return sol
        X, W = it.X, it.U
        n, m, N, hs = self.n, self.m_node, self.N, self.hs
        d = self.jacobians(X, W)
        f, C, Gp, TV, bad = self.raw_values(X, W)
        lam = it.lam.copy()
        lam[0] = d.grad[0, :self.ns] + d.A[0].T @ lam[1]
        if self.ng:
            lam[0] += d.GP[0].T @ it.y_path[0]
        MU = self.defect_multipliers(X, W, lam)
        costates = lam[:, :n].copy()
        # λ_j from t_j on: drop the previous interval's share of the node cost
        share = (self.h / 6.0 if hs else self.h / 2.0)
        Jl = self.node_cost_gradients(X)
        costates[1:] -= share * Jl[1:]
        sol.costates = costates
        sol.u = self.node_controls(X)
        y_nodes = np.vstack([it.y_path, it.y_in[self.n_in_user:][None, :]]) if self.ng else np.zeros((N + 1, 0))
        z_lo = np.vstack([it.z_lo[0, n:n + m], it.z_lo[:N, self.ns:self.ns + m]])
        z_hi = np.vstack([it.z_hi[0, n:n + m], it.z_hi[:N, self.ns:self.ns + m]])
        sol.multipliers = {"defects": costates.copy(), "collocation": MU,
                           "terminal_equality": it.nu.copy(), "terminal_inequality": it.y_in[:self.n_in_user].copy(),
                           "path": y_nodes[:N].copy(), "path_final": y_nodes[N].copy(), "path_nodes": y_nodes,
                           "u_lower": z_lo, "u_upper": z_hi}
        if hs:
            sol.multipliers["u_mid_lower"] = it.z_lo[:N, self.ns + m:].copy()
            sol.multipliers["u_mid_upper"] = it.z_hi[:N, self.ns + m:].copy()
            sol.extra["x_mid"] = X[1:, n + m:2 * n + m].copy()
            sol.extra["u_mid"] = X[1:, 2 * n + m:2 * n + 2 * m].copy()
        sol.extra["scheme"] = self.scheme
        ne = self.n_eq
        parts = [np.abs(C).ravel(), np.abs(TV[1:1 + ne]), np.maximum(Gp, 0.0).ravel(),
                 np.maximum(TV[1 + ne:], 0.0)]
        violation = float(max([np.max(p) for p in parts if p.size], default=0.0))
        sol.constraint_violation = violation
        if sol.kkt:
            sol.kkt["violation"] = violation
        return sol

    def node_cost_gradients(self, X) -> np.ndarray:
        """∇_x ℓ_j at every node (N+1, n), unweighted."""
        out = np.zeros((self.N + 1, self.n))
        self.module.colloc_node_cost_gradients(X, *self._args(), out)
        return out

    def ipopt_nlp(self):
        """The collocation NLP in its own variables for IPOPT (see :class:`CollocationNLP`)."""
        return CollocationNLP(self)


from .ipopt_backend import _Common  # noqa: E402  (imports no solver: cyipopt loads in ipopt())


class CollocationNLP(_Common):
    """The collocation NLP as IPOPT sees it: z = (ξ_0, ..., ξ_N without T, then T), one copy of
    every variable (x_0 and ξ_0's empty midpoint slots fixed by their bounds); constraints
    c_k (N nc), g at the nodes ((N+1) ng), h_eq, h_in. Multipliers come back in stage form
    (λ_{k+1}[y rows] = -E_kᵀμ_k, the copy rows by the adjoint recursion) so the solvers share
    their residuals and their report."""

    def __init__(self, tr: Collocation):
        super().__init__(tr)
        N, ns, n, m = tr.N, tr.ns, tr.n, tr.m_node
        self.nsb = nsb = ns - int(tr.free)
        self.nz = (N + 1) * nsb + int(tr.free)
        lo, hi = np.full(self.nz, -np.inf), np.full(self.nz, np.inf)
        L, U = np.full((N + 1, nsb), -np.inf), np.full((N + 1, nsb), np.inf)
        L[:, n:n + m], U[:, n:n + m] = tr.problem.u_lower, tr.problem.u_upper
        if tr.hs:
            L[1:, 2 * n + m:], U[1:, 2 * n + m:] = tr.problem.u_lower, tr.problem.u_upper
            L[0, n + m:], U[0, n + m:] = 0.0, 0.0
        L[0, :n] = U[0, :n] = tr.problem.x0
        lo[:(N + 1) * nsb], hi[:(N + 1) * nsb] = L.ravel(), U.ravel()
        if tr.free:
            lo[-1], hi[-1] = tr.problem.T_bounds
        self.lb, self.ub = lo, hi
        self.n_defect = N * tr.nc
        n_path = (N + 1) * tr.ng
        self.n_con = self.n_defect + n_path + tr.n_eq + tr.n_in_user
        self.cl = np.concatenate([np.zeros(self.n_defect), np.full(n_path, -np.inf), np.zeros(tr.n_eq),
                                  np.full(tr.n_in_user, -np.inf)])
        self.cu = np.zeros(self.n_con)
        self._structure()

    def pack(self, X, U):
        z = X[:, :self.nsb].ravel()
        return np.concatenate([z, X[0, -1:]]) if self.tr.free else z.copy()

    def unpack(self, z):
        tr = self.tr
        N, nsb, n, m = tr.N, self.nsb, tr.n, tr.m_node
        X = np.zeros((N + 1, tr.ns))
        X[:, :nsb] = z[:(N + 1) * nsb].reshape(N + 1, nsb)
        if tr.free:
            X[:, -1] = z[-1]
        W = np.zeros((N, tr.m))
        W[:, :m] = X[1:, n:n + m]
        if tr.hs:
            W[:, m:] = X[1:, 2 * n + m:2 * n + 2 * m]
        return np.ascontiguousarray(X), np.ascontiguousarray(W)

    def _structure(self):
        tr = self.tr
        N, nc, nsb, n, m, ng = tr.N, tr.nc, self.nsb, tr.n, tr.m_node, tr.ng
        iTz = (N + 1) * nsb
        node = lambda j, slots: j * nsb + np.asarray(slots)
        xu = np.arange(n + m)
        nxt = np.arange(nsb)       # x_{k+1}, u_{k+1}[, x_c, u_c]
        rows, cols = [], []

        def block(r, c):
            rr, cc = np.meshgrid(r, c, indexing="ij")
            rows.append(rr.ravel())
            cols.append(cc.ravel())

        for k in range(N):
            r = k * nc + np.arange(nc)
            block(r, node(k, xu))
            block(r, node(k + 1, nxt))
            if tr.free:
                block(r, [iTz])
        o = self.n_defect
        for j in range(N + 1):
            r = o + j * ng + np.arange(ng)
            block(r, node(j, xu))
            if tr.free:
                block(r, [iTz])
        o += (N + 1) * ng
        r = o + np.arange(tr.n_eq + tr.n_in_user)
        block(r, node(N, np.arange(n)))
        if tr.free:
            block(r, [iTz])
        self._jrows = np.concatenate(rows).astype(np.int32)
        self._jcols = np.concatenate(cols).astype(np.int32)
        hr, hc = [], []
        for j in range(N + 1):
            i, jj = np.tril_indices(nsb)
            hr.append(node(j, i))
            hc.append(node(j, jj))
            if tr.free:
                hr.append(np.full(nsb, iTz))
                hc.append(node(j, np.arange(nsb)))
        if tr.free:
            hr.append([iTz])
            hc.append([iTz])
        self._hrows = np.concatenate(hr).astype(np.int32)
        self._hcols = np.concatenate(hc).astype(np.int32)

    def objective(self, z):
        return self._at(z)["vals"].cost

    def gradient(self, z):
        tr, d = self.tr, self._at(z)["d"]
        g = d.grad[:, :self.nsb].ravel()
        return np.concatenate([g, [d.grad[:, tr.ns - 1].sum()]]) if tr.free else g.copy()

    def constraints(self, z):
        v = self._at(z)["vals"]
        return np.concatenate([v.raw_defects.ravel(), v.raw_path.ravel(), v.equality,
                               v.inequality[:self.tr.n_in_user]])

    def jacobianstructure(self):
        return self._jrows, self._jcols

    def jacobian(self, z):
        tr, d = self.tr, self._at(z)["d"]
        N, n, m, nc, iT = tr.N, tr.n, tr.m_node, tr.nc, tr.ns - 1
        parts = []
        for k in range(N):
            parts.append(d.Cx[k, :, :n + m].ravel())
            nxt = [d.Ey[k, :, :n], d.Cw[k, :, :m]]
            if tr.hs:
                nxt += [d.Ey[k, :, n:], d.Cw[k, :, m:]]
            parts.append(np.concatenate(nxt, axis=1).ravel())
            if tr.free:
                parts.append(d.Cx[k, :, iT])
        for j in range(N + 1):
            if tr.ng:
                parts.append(d.GP[j, :tr.ng, :n + m].ravel())
                if tr.free:
                    parts.append(d.GP[j, :tr.ng, iT])
        TJ = d.TJ[1:1 + tr.n_eq + tr.n_in_user]
        parts.append(TJ[:, :n].ravel())
        if tr.free:
            parts.append(TJ[:, iT])
        del nc
        return np.concatenate(parts)

    def hessianstructure(self):
        return self._hrows, self._hcols

    def _split(self, mult):
        tr = self.tr
        N, ng = tr.N, tr.ng
        MU = mult[:self.n_defect].reshape(N, tr.nc)
        o = self.n_defect
        y_nodes = mult[o:o + (N + 1) * ng].reshape(N + 1, ng)
        o += (N + 1) * ng
        return MU, y_nodes, mult[o:o + tr.n_eq], mult[o + tr.n_eq:o + tr.n_eq + tr.n_in_user]

    def hessian(self, z, lagrange, obj_factor):
        def compute():
            tr, c = self.tr, self._at(z)
            MU, y_nodes, nu, y_in = self._split(np.asarray(lagrange))
            H = tr.hessians_mu(c["X"], MU, y_nodes, nu, y_in, sigma=float(obj_factor))
            i, j = np.tril_indices(self.nsb)
            out = []
            for k in range(tr.N + 1):
                out.append(H[k][i, j])
                if tr.free:
                    out.append(H[k][-1, :self.nsb])
            if tr.free:
                out.append([H[:, -1, -1].sum()])
            return np.concatenate(out)
        return self._timed(compute)

    def iterate(self, X, U, info, vals) -> Iterate:
        tr = self.tr
        N, n, m, ns = tr.N, tr.n, tr.m_node, tr.ns
        MU, y_nodes, nu, y_in = self._split(np.asarray(info["mult_g"]))
        d = tr.jacobians(X, U)
        lam = np.zeros((N + 1, ns))
        tr.module.colloc_stage_multipliers(d.Ey, np.ascontiguousarray(MU), n, m, tr.hs, lam)
        y_path = np.maximum(y_nodes[:N], 0.0)
        y_all_in = np.concatenate([np.maximum(y_in, 0.0), np.maximum(y_nodes[N], 0.0)])
        lam = tr.costates(d, y_path, None, nu, y_all_in, keep_rows=tr.y_rows, lam=lam)
        zl = np.asarray(info["mult_x_L"])[:(N + 1) * self.nsb].reshape(N + 1, self.nsb)
        zu = np.asarray(info["mult_x_U"])[:(N + 1) * self.nsb].reshape(N + 1, self.nsb)
        z_lo, z_hi = np.zeros((N + 1, tr.nv)), np.zeros((N + 1, tr.nv))
        for Z, src in ((z_lo, zl), (z_hi, zu)):
            Z[0, n:n + m] = src[0, n:n + m]
            Z[:N, ns:ns + m] = src[1:, n:n + m]
            if tr.hs:
                Z[:N, ns + m:] = src[1:, 2 * n + m:2 * n + 2 * m]
        if tr.free:
            z_lo[0, -1 - tr.m], z_hi[0, -1 - tr.m] = info["mult_x_L"][-1], info["mult_x_U"][-1]
        slack = lambda g: np.maximum(-g, 0.0)
        return Iterate(X, U, lam, np.asarray(nu, dtype=float).copy(), slack(vals.path), y_path, np.ones(tr.ng),
                       np.zeros(tr.ng), slack(vals.inequality), y_all_in, z_lo, z_hi)


def _inside(U, lo, hi, push=1e-2):
    """Controls strictly inside finite bounds (IPOPT's bound push), so the solvers' own push
    leaves the copies u_{k+1} = w_k equal."""
    span = np.where(np.isfinite(hi - lo), hi - lo, np.inf)
    p_lo = np.minimum(push * np.maximum(1.0, np.abs(np.where(np.isfinite(lo), lo, 0.0))), push * span)
    p_hi = np.minimum(push * np.maximum(1.0, np.abs(np.where(np.isfinite(hi), hi, 0.0))), push * span)
    U = np.where(np.isfinite(lo), np.maximum(U, lo + p_lo), U)
    return np.ascontiguousarray(np.where(np.isfinite(hi), np.minimum(U, hi - p_hi), U))
