"""Transcriptions: an optimal control problem as a nonlinear program with stage structure.

Every direct method here sees the problem as N stages k = 0..N-1 with variables v_k = (x_k, u_k)
and a final stage x_N; a stage has its cost ℓ_k, its dynamics F(x_k, u_k) (one step of the
problem's scheme on scaled time s = t/T), its path constraints g(x_k, u_k) ≤ 0 and the final stage
its terminal cost Φ, equalities h_eq = 0 and inequalities h_in ≤ 0. A free final time rides along
as the last state component (T_{k+1} = T_k), so the structure stays stage-wise.

- :class:`MultipleShooting`: states and controls are both decisions, tied by the defects
  F(x_k, u_k) - x_{k+1} = 0 (one node per control interval, as CasADi and acados lay it out).
- :class:`SingleShooting`: the controls (and T) are the decisions; states come from a rollout,
  so the defects are zero and their multipliers are the adjoint (BPTT) costates of the
  Lagrangian. Path constraints hold at every node, each with its own multiplier.

Both share one generated kernel module (values, Jacobians, Lagrangian Hessians per stage, the
Riccati recursion) compiled by Numba and cached on disk; the solvers in
:mod:`trajectories.interior_point` and :mod:`trajectories.ipopt_backend` consume them.

>>> from trajectories.systems import double_integrator_lqr
>>> tr = MultipleShooting(double_integrator_lqr(N=20))
>>> tr.n_variables, tr.n_constraints    # x_1..x_20 (2 each) and u_0..u_19; 20 two-state defects
(60, 40)
"""

from __future__ import annotations

import functools
import pathlib
from dataclasses import dataclass

import numpy as np

import diffsim.numpy as dnp
from diffsim.codegen import compile_module
from diffsim.ode.schemes import FIXED_STEP, augmented_rhs, make_step
from diffsim.transforms import hessian

from . import riccati
from .problem import OptimalControlProblem, ProblemError

_LOOPS = (pathlib.Path(__file__).parent / "stage_loops.py").read_text()


def stage_module(problem: OptimalControlProblem):
    """The compiled stage kernels and loops of ``problem`` (built once per problem, cached on disk)."""
    cached = getattr(problem, "_stage_module", None)
    if cached is not None:
        return cached
    if problem.scheme not in FIXED_STEP:
        raise ProblemError(f"direct transcriptions integrate with a fixed-step scheme; got scheme={problem.scheme!r}: "
                           f"use one of {FIXED_STEP}")
    n, m, k, free = problem.n_x, problem.n_u, problem.n_p, problem.free_time
    ns = n + int(free)
    f, L, g = problem.f, problem.L, problem.g

    def horizon(x, q):
        return x[n] if free else q[k]

    def scaled(x, u, q, s):  # dx/ds = T f(x, u, p, T s): the state part of the augmented rhs
        T = horizon(x, q)
        xdot = T * f(x[:n], u, q[:k], T * s)
        return dnp.concatenate([xdot, dnp.zeros(1)]) if free else xdot

    def scaled_cost(x, u, q, s):
        T = horizon(x, q)
        return T * L(x[:n], u, q[:k], T * s) if L is not None else 0.0 * s

    step = make_step(augmented_rhs(scaled, scaled_cost), ns, problem.scheme)

    terminal = terminal_vector(problem)

    if g is not None:
        def path(x, u, q, s):
            return dnp.atleast_1d(g(x[:n], u, q[:k], horizon(x, q) * s))

        def path_final(x, u, q, s, h):
            return path(step(x, u, q, s, h)[:ns], u, q, s + h)
    else:  # never evaluated (ng = 0), but the loops name them
        def path(x, u, q, s):
            return dnp.zeros(1) + 0.0 * x[0]

        def path_final(x, u, q, s, h):
            return dnp.zeros(1) + 0.0 * x[0]

    def lagrangian_hessian(x, u, q, s, h, ct, y):  # ∇²(x, u) [ctᵀF + yᵀg], flat (nv·nv)
        def lagrangian(x, u):
            value = dnp.sum(ct * step(x, u, q, s, h))
            return value + dnp.sum(y * path(x, u, q, s)) if g is not None else value
        return _flat_hessian(lagrangian, x, u)

    def final_rows_hessian(x, u, q, s, h, y):  # ∇²(x, u) [yᵀg(F(x, u))], the final node's rows
        return _flat_hessian(lambda x, u: dnp.sum(y * path_final(x, u, q, s, h)), x, u)

    nq, ng = k + 1, max(problem.n_g, 1)
    # only the kernels the loops of stage_loops.py call are traced and emitted
    values, rows, into = ("forward", "jacobian"), ("forward", "jacobian"), ("forward_into",)
    specs = {"stage_": (step, (ns, m, nq, (), ()), ("forward_into", "jacobian")),
             "term_": (terminal, (ns, nq), values + ("hvp",)),
             "path_": (path, (ns, m, nq, ()), rows), "pathN_": (path_final, (ns, m, nq, (), ()), rows),
             "lagh_": (lagrangian_hessian, (ns, m, nq, (), (), ns + 1, ng), into),
             "finalh_": (final_rows_hessian, (ns, m, nq, (), (), ng), into)}
    module, _ = compile_module(specs, extra=_LOOPS, title=f"stages({problem.name}, {problem.scheme}, free={free})",
                               calls=tuple(specs), interpret_first=True)
    problem._stage_module = module
    return module


def _flat_hessian(fun, x, u):
    """The Hessian of the scalar ``fun(x, u)`` over (x, u), row by row as one flat vector. Traced
    once for all directions, they share one forward and one reverse sweep, and the unit tangents
    fold away: a few times fewer operations than a Hessian-vector product per direction."""
    (xx, xu), (ux, uu) = hessian(fun, argnums=(0, 1))(x, u)
    blocks = dnp.concatenate([dnp.concatenate([xx, xu], axis=1), dnp.concatenate([ux, uu], axis=1)], axis=0)
    return dnp.reshape(blocks, (-1,))


def terminal_vector(problem: OptimalControlProblem):
    """The final stage's function (x, q) -> [Φ, h_eq, h_in] of the state part x[:n], q = (p, T)."""
    n, k, Phi, h_eq, h_in = problem.n_x, problem.n_p, problem.Phi, problem.h_eq, problem.h_in

    def terminal(x, q):
        parts = [dnp.reshape(Phi(x[:n], q[:k]) if Phi is not None else 0.0 * x[0], (1,))]
        if h_eq is not None:
            parts.append(dnp.atleast_1d(h_eq(x[:n], q[:k])))
        if h_in is not None:
            parts.append(dnp.atleast_1d(h_in(x[:n], q[:k])))
        return dnp.concatenate(parts)

    return terminal


@dataclass
class Values:
    """Cost and constraint values at a point (see :meth:`Transcription.values`)."""

    cost: float
    defects: np.ndarray      # (N, ns) F(x_k, u_k) - x_{k+1}
    path: np.ndarray         # (N, ng) g(x_k, u_k)
    path_final: np.ndarray   # (ng,)   g at the final node
    equality: np.ndarray     # (n_eq,) h_eq(x_N)
    inequality: np.ndarray   # (n_in,) h_in(x_N)
    bad: int                 # first stage with a non-finite value, or -1

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """Every inequality row's value in one vector: the path rows of every stage, the final
        node's, the terminal inequalities (the layout of the interior-point solver's slacks)."""
        return np.concatenate((self.path.ravel(), self.path_final, self.inequality))


@dataclass
class Derivatives:
    """Stage Jacobians and Lagrangian Hessians at a point (see :meth:`Transcription.jacobians`)."""

    A: np.ndarray      # (N, ns, ns)
    B: np.ndarray      # (N, ns, m)
    grad: np.ndarray   # (N+1, nv) cost gradient per stage (the final stage: ∇Φ in its x part)
    GJ: np.ndarray     # (N, ng, nv) path Jacobians
    GNJ: np.ndarray    # (ng, nv)    final-node path Jacobian (over stage N-1's variables)
    TJ: np.ndarray     # (1 + n_eq + n_in, ns) terminal Jacobian: ∇Φ, ∇h_eq, ∇h_in


class Transcription:
    """The stage layout shared by the direct methods (see the module docstring)."""

    name = "transcription"
    lifted = True

    def __init__(self, problem: OptimalControlProblem) -> None:
        problem.check()
        self.problem = problem
        self.n, self.m, self.N = problem.n_x, problem.n_u, problem.N
        self.free = problem.free_time
        self.ns = self.n + int(self.free)
        self.nv = self.ns + self.m
        self.ng, self.n_eq, self.n_in = problem.n_g, problem.n_eq, problem.n_in
        self.h = 1.0 / self.N
        self.module = stage_module(problem)
        self.q = np.append(problem.params, problem.T)
        self.free0 = np.zeros(self.ns, dtype=np.bool_)
        self.free0[self.n:] = True
        # simple bounds per stage variable (N+1, nv): controls at stages 0..N-1, T at stage 0
        lo, hi = np.full((self.N + 1, self.nv), -np.inf), np.full((self.N + 1, self.nv), np.inf)
        lo[:self.N, self.ns:], hi[:self.N, self.ns:] = problem.u_lower, problem.u_upper
        if self.free:
            lo[0, self.n], hi[0, self.n] = problem.T_bounds
        self.lower, self.upper = lo, hi
        # variables that are not decisions: x_0's fixed part, the final stage's (absent) control,
        # and in single shooting every state after the first
        fixed = np.zeros((self.N + 1, self.nv), dtype=np.bool_)
        fixed[0, :self.n] = True
        fixed[self.N, self.ns:] = True
        if not self.lifted:
            fixed[1:, :self.ns] = True
        self.fixed = fixed

    # ------------------------------------------------------------ sizes

    @property
    def n_variables(self) -> int:
        """Decision variables (fixed initial states excluded)."""
        return int((~self.fixed).sum())

    @property
    def n_constraints(self) -> int:
        """Equality and inequality constraints (bounds excluded)."""
        defects = self.N * self.ns if self.lifted else 0
        return defects + (self.N + 1) * self.ng + self.n_eq + self.n_in

    # ------------------------------------------------------------ points

    def initial_guess(self, U0=None, X0=None, T0=None) -> tuple[np.ndarray, np.ndarray]:
        """States (N+1, ns) and controls (N, m) to start from: ``U0`` (default the problem's guess),
        ``X0`` (default a rollout of ``U0``, or x0 repeated if that fails), ``T0`` (default T)."""
        p = self.problem
        U = p.u_guess() if U0 is None else _shaped(U0, (self.N, self.m), "U0 (the initial controls)")
        U = np.ascontiguousarray(np.clip(U, p.u_lower, p.u_upper), dtype=float)
        T = p.T if T0 is None else float(T0)
        X = np.empty((self.N + 1, self.ns))
        X[0, :self.n] = p.x0
        if self.free:
            X[:, self.n] = T
        if X0 is None and self.lifted:
            X0 = p.x_guess()
        if X0 is not None and self.lifted:
            X[:, :self.n] = _shaped(X0, (self.N + 1, self.n), "X0 (the initial states)")
            X[0, :self.n] = p.x0
        else:
            X[1:] = X[0]
            trial = X.copy()
            if self.rollout(trial, U) < 0:  # start on the trajectory of U0 where it is finite
                X = trial
        return X, U

    def rollout(self, X: np.ndarray, U: np.ndarray) -> int:
        """Overwrite X[1:] with the states reached from X[0] under U; the first stage where they
        are not finite, or -1."""
        N, ng = self.N, max(self.ng, 1)
        return int(self.module.nlp_values(X, U, self.q, self.h, self.ng, True, np.zeros((N, self.ns)),
                                          np.zeros((N, ng)), np.zeros(ng), np.zeros(1 + self.n_eq + self.n_in))[1])

    def closed_loop(self, X: np.ndarray, U: np.ndarray, K: np.ndarray, Xref: np.ndarray, lo: np.ndarray,
                    hi: np.ndarray) -> int:
        """Roll out from X[0] under u_k = U_k + K_k (x_k − Xref_k), clipped to [lo_k, hi_k],
        overwriting X[1:] and U; the first stage where the states are not finite, or -1."""
        return int(self.module.nlp_closed_loop(X, U, K, Xref, lo, hi, self.q, self.h))

    def values(self, X: np.ndarray, U: np.ndarray) -> Values:
        """Cost and constraints at (X, U); single shooting overwrites X with the rollout of U."""
        N, ng = self.N, max(self.ng, 1)
        R, Gp, GN = np.zeros((N, self.ns)), np.zeros((N, ng)), np.zeros(ng)
        TV = np.zeros(1 + self.n_eq + self.n_in)
        # compiled code keeps no numpy error state: an overflow is reported by ``bad``
        f, bad = self.module.nlp_values(X, U, self.q, self.h, self.ng, not self.lifted, R, Gp, GN, TV)
        return Values(float(f), R, Gp[:, :self.ng], GN[:self.ng], TV[1:1 + self.n_eq], TV[1 + self.n_eq:], int(bad))

    def jacobians(self, X: np.ndarray, U: np.ndarray) -> Derivatives:
        """Every first derivative at (X, U), one compiled pass over the stages."""
        N, ns, m, nv, ng = self.N, self.ns, self.m, self.nv, max(self.ng, 1)
        d = Derivatives(np.empty((N, ns, ns)), np.empty((N, ns, m)), np.zeros((N + 1, nv)),
                        np.zeros((N, ng, nv)), np.zeros((ng, nv)), np.zeros((1 + self.n_eq + self.n_in, ns)))
        self.module.nlp_jacobians(X, U, self.q, self.h, self.ng, d.A, d.B, d.grad, d.GJ, d.GNJ, d.TJ)
        return d

    def hessians(self, X, U, lam, y_path, y_final, nu, y_in, sigma: float = 1.0) -> np.ndarray:
        """Per-stage Hessians (N+1, nv, nv) of σℓ_k + λ_{k+1}ᵀF + y_kᵀg (the final stage:
        σΦ + νᵀh_eq + y_inᵀh_in), the blocks of the Lagrangian's Hessian."""
        H = np.zeros((self.N + 1, self.nv, self.nv))
        ng = max(self.ng, 1)
        yp = np.zeros((self.N, ng)) if not self.ng else np.ascontiguousarray(y_path)
        yN = np.zeros(ng) if not self.ng else np.ascontiguousarray(y_final)
        tw = np.concatenate([[sigma], nu, y_in])
        self.module.nlp_hessians(X, U, self.q, self.h, np.ascontiguousarray(lam), yp, yN, tw, sigma, self.ng, H)
        return H

    def costates(self, d: Derivatives, y_path, y_final, nu, y_in) -> np.ndarray:
        """λ_k by the adjoint recursion of the Lagrangian (N+1, ns): BPTT of J + νᵀh_eq + ... ."""
        lam = np.zeros((self.N + 1, self.ns))
        ng = max(self.ng, 1)
        yp = np.zeros((self.N, ng)) if not self.ng else np.ascontiguousarray(y_path)
        yN = np.zeros(ng) if not self.ng else np.ascontiguousarray(y_final)
        tw = np.concatenate([[1.0], nu, y_in])
        riccati.costates(d.A, d.grad, d.GJ, d.GNJ, yp, yN, d.TJ, tw, self.ng, lam)
        return lam

    def times(self, X: np.ndarray) -> np.ndarray:
        return np.linspace(0.0, self.horizon(X), self.N + 1)

    def horizon(self, X: np.ndarray) -> float:
        return float(X[0, self.n]) if self.free else self.problem.T


class MultipleShooting(Transcription):
    """States at every node are decisions, tied by the defects F(x_k, u_k) - x_{k+1} = 0."""

    name = "multiple"
    lifted = True


class SingleShooting(Transcription):
    """Controls (and T) are the decisions; the states are a rollout (the defects vanish)."""

    name = "single"
    lifted = False


TRANSCRIPTIONS = {"multiple": MultipleShooting, "single": SingleShooting}


def _shaped(a, shape, what) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.shape != shape:
        if a.ndim == 1 and len(shape) == 2 and shape[1] == 1 and a.shape[0] == shape[0]:
            return a[:, None].copy()
        raise ProblemError(f"{what} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ProblemError(f"{what} contains NaN or inf")
    return a.copy()
