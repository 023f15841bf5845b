"""A stage-wise primal-dual interior-point method for transcribed optimal control problems.

The method is IPOPT's (Wächter & Biegler 2006): a barrier problem per μ, solved by Newton steps
on the primal-dual equations, μ decreased superlinearly (their eq. 7), a fraction-to-the-boundary
rule, inertia correction of the Hessian, and their scaled termination test (eq. 5). What differs
is the linear algebra: inequality rows and bounds are eliminated per stage, and the remaining
equality-constrained quadratic program is solved by a Riccati recursion over the stages, as
HPIPM and FATROP do, in O(N (n + m)³); terminal equalities enter through a small Schur
complement. The step is accepted by an ℓ1 exact-penalty merit function with Armijo backtracking
(Nocedal & Wright 2006, Algorithm 19.2 and eq. 18.36 for the penalty).

Single shooting uses the same recursion on the eliminated states: its Newton step for the
reduced problem is the Riccati step with zero defects and the adjoint costates in the Hessian
(Dunn & Bertsekas 1989), so it, too, converges quadratically.

>>> from trajectories.systems import double_integrator_lqr
>>> from trajectories.transcription import MultipleShooting
>>> sol = interior_point(MultipleShooting(double_integrator_lqr(N=40)))
>>> sol.status, sol.iterations <= 3
(True, True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from diffsim.packing import pack, unpack

from . import ip_vectors as ipv
from . import newton_system
from .result import Solution
from .transcription import Transcription


@dataclass
class Options:
    """Solver settings (IPOPT's names and defaults where they have one)."""

    tol: float = 1e-8                 # scaled KKT error at which the solve stops
    constr_viol_tol: float = 1e-8     # worst constraint violation at any node, unscaled
    max_iter: int = 300
    time_limit: float = math.inf      # seconds
    mu_init: float = 0.1
    kappa_eps: float = 10.0
    kappa_mu: float = 0.2
    theta_mu: float = 1.5
    tau_min: float = 0.99
    bound_push: float = 1e-2
    bound_relax_factor: float = 1e-9   # inequality rows g ≤ 0 solved as g ≤ ε (IPOPT's bound_relax_factor)
    bound_frac: float = 1e-2
    watchdog_shortened_iter_trigger: int = 10  # shortened steps in a row that start the watchdog (0: never)
    watchdog_trial_iter_max: int = 3            # watchdog steps taken before going back
    closed_loop: bool = True         # single shooting: trial controls follow the Newton step's feedback gains
    verbose: bool = False
    callback: Callable | None = None  # callback(iteration_record) -> True to stop

    def __post_init__(self) -> None:
        """Refuse settings the iteration cannot honour (a tol ≤ 0 never converges and the barrier
        update would loop forever), naming the option and what it takes."""
        from .problem import ProblemError

        positive = ("tol", "constr_viol_tol", "time_limit", "mu_init", "kappa_eps", "bound_push", "bound_frac")
        unit = ("kappa_mu", "tau_min")  # in (0, 1)
        for name in positive + unit + ("theta_mu", "bound_relax_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or math.isnan(value):
                raise ProblemError(f"option {name}={value!r}: give a number")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ProblemError(f"option {name}={getattr(self, name)!r}: it must be > 0")
        for name in unit:
            if not 0 < getattr(self, name) < 1:
                raise ProblemError(f"option {name}={getattr(self, name)!r}: it must lie in (0, 1)")
        if not 1 < self.theta_mu < 2:
            raise ProblemError(f"option theta_mu={self.theta_mu!r}: it must lie in (1, 2)")
        if not 0 <= self.bound_relax_factor < math.inf:
            raise ProblemError(f"option bound_relax_factor={self.bound_relax_factor!r}: it must be ≥ 0 (0: rows "
                               "solved as posed)")
        for name in ("max_iter", "watchdog_shortened_iter_trigger", "watchdog_trial_iter_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ProblemError(f"option {name}={value!r}: give a whole number ≥ 0")
        if self.callback is not None and not callable(self.callback):
            raise ProblemError(f"option callback={self.callback!r}: give a function record -> stop? or None")


class Iterate:
    """The primal-dual point: states, controls, every multiplier and slack.

    The slacks and multipliers of the inequality rows are stored as one vector each (``s``, ``y``:
    the path rows of every stage, then the final node's, then the terminal inequalities), which
    the compiled vector loops read; ``s_path``, ``y_final``, ... are views of their blocks."""

    def __init__(self, X, U, lam, nu, s_path, y_path, s_final, y_final, s_in, y_in, z_lo, z_hi, extra=None):
        self.X, self.U, self.lam, self.nu = X, U, lam, nu
        self.path_shape = np.shape(s_path)
        self._n_path, self._n_final = int(np.size(s_path)), int(np.size(s_final))
        self.s = np.concatenate([np.ravel(s_path), np.ravel(s_final), np.ravel(s_in)]).astype(float)
        self.y = np.concatenate([np.ravel(y_path), np.ravel(y_final), np.ravel(y_in)]).astype(float)
        self.z_lo, self.z_hi = z_lo, z_hi
        self.extra = {} if extra is None else extra

    def _blocks(self, v):
        a, b = self._n_path, self._n_path + self._n_final
        return v[:a].reshape(self.path_shape), v[a:b], v[b:]

    def _flat(name):  # noqa: N805 (a property factory): the vector, and the views of its blocks
        def get(self):
            return self.__dict__[name]

        def put(self, value):
            self.__dict__[name] = value
            self.__dict__[name + "_blocks"] = self._blocks(value)
        return property(get, put)

    def _block(k, flat):  # noqa: N805 (a property factory)
        def get(self):
            return self.__dict__[flat + "_blocks"][k]

        def put(self, value):
            self.__dict__[flat + "_blocks"][k][...] = value
        return property(get, put)

    s, y = _flat("s"), _flat("y")

    def copy(self) -> Iterate:
        """An independent copy (the block views of the copy view the copy's vectors)."""
        c = Iterate.__new__(Iterate)
        c.X, c.U, c.lam, c.nu = self.X.copy(), self.U.copy(), self.lam.copy(), self.nu.copy()
        c.path_shape, c._n_path, c._n_final = self.path_shape, self._n_path, self._n_final
        c.s, c.y = self.s.copy(), self.y.copy()
        c.z_lo, c.z_hi, c.extra = self.z_lo.copy(), self.z_hi.copy(), dict(self.extra)
        return c

    def __reduce__(self):
        """Pickled as its arrays in one buffer (:mod:`diffsim.packing`) without the block views,
        which the copy rebuilds as views of its own ``s`` and ``y``."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("s_blocks", "y_blocks")}
        return _unpickle_iterate, (pack(state),)

    s_path, s_final, s_in = _block(0, "s"), _block(1, "s"), _block(2, "s")
    y_path, y_final, y_in = _block(0, "y"), _block(1, "y"), _block(2, "y")
    del _block, _flat


def _unpickle_iterate(state) -> Iterate:
    it = Iterate.__new__(Iterate)
    for name, value in unpack(state).items():  # in the original order: the sizes before s and y
        setattr(it, name, value)               # s and y through their property: the block views too
    return it


def interior_point(tr: Transcription, options: Options | None = None, warm: Solution | None = None,
                   U0=None, X0=None, T0=None) -> Solution:
    """Solve the transcribed problem ``tr``; never raises for a numerical failure (read ``status``).

    ``warm`` starts from an earlier solution of the same problem (primal and dual variables, a
    small barrier parameter)."""
    opt = options or Options()
    start = time.perf_counter()
    return _Solver(tr, opt, start).run(warm, U0, X0, T0)


class _Solver:
    def __init__(self, tr: Transcription, opt: Options, start: float):
        self.tr, self.opt, self.start = tr, opt, start
        self.gradient_evaluations = 0  # every evaluation of the first derivatives, restoration's included
        self._first_derivatives = None  # the initial point's, evaluated by _initial and used by run
        self.N, self.ns, self.m, self.nv, self.ng = tr.N, tr.ns, tr.m, tr.nv, tr.ng
        self.lo = np.ascontiguousarray(tr.lower, dtype=float)
        self.hi = np.ascontiguousarray(tr.upper, dtype=float)
        free = ~tr.fixed
        self.has_lo = np.ascontiguousarray(np.isfinite(self.lo) & free)
        self.has_hi = np.ascontiguousarray(np.isfinite(self.hi) & free)
        self._bounds = (self.lo, self.hi, self.has_lo, self.has_hi)
        self.decision = free
        self.n_lo, self.n_hi = int(self.has_lo.sum()), int(self.has_hi.sum())
        self.lo_idx, self.hi_idx = np.flatnonzero(self.has_lo), np.flatnonzero(self.has_hi)
        self.lo_val, self.hi_val = self.lo.ravel()[self.lo_idx], self.hi.ravel()[self.hi_idx]
        self.log: list[dict] = []
        self._stacked: list = []
        self._no_defects = np.zeros((self.N, self.ns))
        self._no_path_rows = (np.zeros((self.N, 1)), np.zeros(1))  # placeholders the compiled loops index
        # ε of the rows' relaxation g − ε ≤ 0: bound_relax_factor, at most a tenth of constr_viol_tol (IPOPT
        # caps its relaxation by that tolerance too), so the rows as posed still meet the tolerance
        opt = self.opt  # the ipopt backend's residual helper passes fewer options
        self._relax = min(getattr(opt, "bound_relax_factor", 0.0), 0.1 * getattr(opt, "constr_viol_tol", np.inf))
        self._tau = getattr(opt, "tau_min", 0.99)  # the fraction to the boundary; run() sets it per iteration

    # ------------------------------------------------------------ setup

    def _push_into_bounds(self, V):
        """IPOPT's bound push (§3.6): strictly inside every bound."""
        lo, hi, o = self.lo, self.hi, self.opt
        span = np.where(np.isfinite(hi - lo), hi - lo, np.inf)
        p_lo = np.minimum(o.bound_push * np.maximum(1.0, np.abs(np.where(np.isfinite(lo), lo, 0.0))),
                          o.bound_frac * span)
        p_hi = np.minimum(o.bound_push * np.maximum(1.0, np.abs(np.where(np.isfinite(hi), hi, 0.0))),
                          o.bound_frac * span)
        V = np.where(self.has_lo, np.maximum(V, lo + p_lo), V)
        V = np.where(self.has_hi, np.minimum(V, hi - p_hi), V)
        return V

    def _stack(self, X, U):
        """The stage variables V (N+1, nv) = [x_k, u_k]; the last two stacks are remembered (the
        current and the trial point: neither X nor U is changed in place once stacked)."""
        for key, V in self._stacked:
            if key[0] is X and key[1] is U:
                return V
        V = self._stack_fresh(X, U)
        self._stacked = [((X, U), V)] + self._stacked[:1]
        return V

    def _stack_fresh(self, X, U):
        V = np.zeros((self.N + 1, self.nv))
        V[:, :self.ns] = X
        V[:self.N, self.ns:] = U
        return V

    def _initial(self, warm, U0, X0, T0):
        tr, N, ng = self.tr, self.N, self.ng
        if warm is not None and warm.extra.get("iterate") is not None:
            it = warm.extra["iterate"]
            self.mu = max(self.opt.tol / 10, 1e-6)
            X, U = it.X.copy(), it.U.copy()
            V = self._push_into_bounds(self._stack(X, U))
            X, U = np.ascontiguousarray(V[:, :self.ns]), np.ascontiguousarray(V[:N, self.ns:])
            vals = self._values(X, U)
            return Iterate(X, U, it.lam.copy(), it.nu.copy(), np.maximum(it.s_path, 1e-8), it.y_path.copy(),
                           np.maximum(it.s_final, 1e-8), it.y_final.copy(), np.maximum(it.s_in, 1e-8),
                           it.y_in.copy(), it.z_lo.copy(), it.z_hi.copy()), vals
        self.mu = self.opt.mu_init
        X, U = tr.initial_guess(U0, X0, T0)
        V = self._push_into_bounds(self._stack(X, U))
        X, U = np.ascontiguousarray(V[:, :self.ns]), np.ascontiguousarray(V[:N, self.ns:])
        vals = self._values(X, U)
        push = lambda g: np.maximum(-g, self.opt.bound_push * np.maximum(1.0, np.abs(g)))
        s_path, s_final, s_in = push(vals.path), push(vals.path_final), push(vals.inequality)
        y = lambda s: self.mu / s
        V = self._stack(X, U)
        with np.errstate(all="ignore"):  # a rollout that blew up is reported by the caller
            z_lo = np.where(self.has_lo, self.mu / np.where(self.has_lo, V - self.lo, 1.0), 0.0)
            z_hi = np.where(self.has_hi, self.mu / np.where(self.has_hi, self.hi - V, 1.0), 0.0)
        it = Iterate(X, U, np.zeros((N + 1, self.ns)), np.zeros(tr.n_eq), s_path, y(s_path), s_final, y(s_final),
                     s_in, y(s_in), z_lo, z_hi)
        if vals.bad < 0:
            d = self._first_derivatives = self._jacobians(X, U)
            it.lam = tr.costates(d, it.y_path, it.y_final, it.nu, it.y_in)
        del ng
        return it, vals

    # ------------------------------------------------------------ residuals

    def _residuals(self, it: Iterate, vals, d, mu):
        """(stationarity, primal infeasibility, complementarity at ``mu``, worst true violation,
        IPOPT's scalings s_d and s_c of the dual residual and complementarity, ∇L)."""
        parts = self._kkt_parts(it, vals, d)
        return parts[:2] + (self._complementarity(parts[-1], mu),) + parts[2:-1]

    def _kkt_parts(self, it: Iterate, vals, d):
        gl = np.empty((self.N + 1, self.nv))
        yp, yN = (it.y_path, it.y_final) if self.ng else self._no_path_rows
        stat, primal, violation, s_d, s_c, p_min, p_max, n_z = ipv.kkt_parts(
            d.A, d.B, d.grad, it.lam, d.TJ, it.nu, it.y_in, d.GJ, d.GNJ, yp, yN, self.ng, it.z_lo, it.z_hi,
            self.decision, self.tr.lifted, self._stack(it.X, it.U), *self._bounds, vals.rows, it.s, it.y,
            self._nlp_defects(vals),
            vals.equality, gl)
        if self._relax and vals.rows.size:  # the worst violation of the rows as posed, not relaxed
            violation = max(violation, float(vals.rows.max()) + self._relax)
        return stat, primal, violation, s_d, s_c, gl, (p_min, p_max, n_z)

    @staticmethod
    def _complementarity(products, mu) -> float:
        """max |p − μ| over the complementarity products p, from their extremes."""
        p_min, p_max, n = products
        return float(max(p_max - mu, mu - p_min)) if n else 0.0

    # ------------------------------------------------------------ the Newton step

    def _assemble(self, it: Iterate, vals, d, H, mu):
        """The condensed Newton system before regularisation (:func:`newton_system.assemble`):
        the Hessian with the bound and inequality terms eliminated per stage, the right-hand
        sides, and what the step recovery needs. Built once per iteration; :meth:`_newton` adds δ
        and ρ, factors and recovers the step."""
        g = vals.rows
        sigma = it.y / it.s
        rhs = mu / it.s + sigma * (g + it.s)
        Hn, G, dlo, dhi, scale = newton_system.assemble(
            H, d.grad, self._stack(it.X, it.U), *self._bounds, it.z_lo, it.z_hi, mu, d.GJ, d.GNJ, self.ng, sigma, rhs,
            d.TJ, self.tr.n_eq)
        return dict(H=H, Hn=Hn, G=G, dlo=dlo, dhi=dhi, g=g, sigma=sigma, rhs=rhs, mu=mu, diag_scale=scale)

    def _newton(self, it: Iterate, vals, d, system, delta, rho_scale=1.0):
        """The regularised Newton step (δ on the decisions' diagonal, ρCᵀC on the terminal block)
        by the Riccati recursion, every step recovered (:func:`newton_system.newton_step`); None
        when the inertia is wrong."""
        tr = self.tr
        n_eq = tr.n_eq
        rho = rho_scale * system["diag_scale"] if n_eq else 0.0
        r = np.ascontiguousarray(vals.defects) if tr.lifted else self._no_defects
        ok, dX, dU, lam, nu, dV, ds, dy, dz_lo, dz_hi, curv, K = newton_system.newton_step(
            system["Hn"], system["G"], d.A, d.B, r, tr.free0, self.decision, float(delta), d.TJ[1:1 + n_eq], rho,
            vals.equality, self.has_lo, self.has_hi, it.z_lo, it.z_hi, system["dlo"], system["dhi"], system["mu"],
            d.GJ, d.GNJ, self.ng, d.TJ, system["g"], it.s, it.y, system["sigma"], system["rhs"])
        if not ok:
            return None
        return _Step(dX, dU, lam, nu, dV, ds, dy, dz_lo, dz_hi, curv, K=K)

    # ------------------------------------------------------------ merit function

    def _merit_parts(self, X, U, vals, s, mu):
        """The barrier objective φ and the ℓ1 infeasibility θ of the filter (``s``: every slack)."""
        logs, theta = ipv.merit(self._stack(X, U), *self._bounds, vals.rows, s, vals.equality,
                                self._nlp_defects(vals),
                                self.tr.lifted)
        return vals.cost - mu * logs, theta

    # ------------------------------------------------------------ the main loop

    def run(self, warm, U0, X0, T0) -> Solution:
        opt = self.opt
        it, vals = self._initial(warm, U0, X0, T0)
        if vals.bad >= 0:
            return self._finish(it, vals, None, False, f"the dynamics or costs are not finite at the initial guess "
                                                       f"(stage {vals.bad}); give another u_init/U0", 0, None)
        self._delta_last = self._rho_last = 0.0
        self._next_window_test = 0
        restorations = 0
        filt: list = []
        theta_max = theta_min = None
        self._watchdog, self._shortened = None, 0
        mu = self.mu
        history = []
        it_count = 0
        message, status = "", False
        d = self._derivatives(it) if self._first_derivatives is None else self._first_derivatives
        self._first_derivatives = None
        res = None
        while True:
            stat, primal, violation, s_d, s_c, gl, res_products = self._kkt_parts(it, vals, d)
            comp = self._complementarity(res_products, 0.0)
            res = (stat, primal, comp, violation, s_d, s_c, gl)
            err = max(stat / s_d, primal, comp / s_c)
            record = {"iter": it_count, "cost": vals.cost, "inf_pr": primal, "inf_du": stat, "mu": mu,
                      "violation": violation}
            stop = self._stop(err, violation, it_count)
            if stop is not None:
                status, message = stop
                break
            new_mu = self._barrier_update(mu, stat, primal, s_d, s_c, res_products)
            if new_mu != mu:
                mu, filt = new_mu, []
            system, step, delta, rho_used = self._newton_step(it, vals, d, mu)
            if step is None:
                message = "the Newton system could not be regularised (inertia correction failed)"
                break
            # fraction to the boundary (IPOPT eq. 15)
            tau = self._tau = max(opt.tau_min, 1 - mu)
            a_p, a_d = self._step_limits(it, step, tau)
            # filter line search (IPOPT §2.3): accept a trial point that reduces the infeasibility θ or
            # the barrier objective φ enough and is not dominated by the filter
            ref = self._merit_parts(it.X, it.U, vals, it.s, mu) + (self._barrier_directional(it, d, step, mu), a_p)
            if theta_max is None:
                theta_max = 1e4 * max(1.0, ref[1])
                theta_min = 1e-4 * max(1.0, ref[1])
            bounds = (filt, theta_min, theta_max, mu)
            found = self._search(it, vals, d, system, step, a_p, a_d, tau, delta, rho_used, ref, bounds)
            it, vals, d, ref = found.it, found.vals, found.d, found.ref
            accepted, f_step, trial, step, alpha, a_d = (found.accepted, found.f_step, found.trial, found.step,
                                                         found.alpha, found.a_d)
            if accepted and not f_step:
                filt.append(((1 - 1e-5) * ref[1], ref[0] - 1e-8 * ref[1]))
            if not accepted:
                restored = self._restore(it) if restorations < 3 else None
                restorations += 1
                message = self._restoration_failure(restored, err)
                if message:
                    break
                it, vals = self._restart(it, restored, mu)
                filt = []
                d = self._derivatives(it)
                it_count += 1
                continue
            vals = self._take_step(it, trial, step, alpha, a_d, mu)
            it_count += 1
            d_old, d = d, self._derivatives(it)
            self._carry_defect_multipliers(it, d_old, d)
            record.update(alpha_pr=alpha, alpha_du=a_d, reg=delta, watchdog=found.by_watchdog)
            history.append(record)
            if opt.verbose:
                self._print(record, it_count)
            if opt.callback is not None and opt.callback(record):
                message = "stopped by the callback"
                break
            infeasible = self._infeasible(history, it, vals, d)
            if infeasible:
                message = infeasible
                break
        return self._finish(it, vals, d, status, message, it_count, res, history)

    def _newton_step(self, it, vals, d, mu):
        """The primal-dual Newton system at ``it`` (exact Lagrangian Hessians) and its step, with the
        regularisation the inertia correction chose; the step is None when no regularisation works."""
        H = self.tr.hessians(it.X, it.U, it.lam, it.y_path, it.y_final, it.nu, it.y_in)
        system = self._assemble(it, vals, d, H, mu)
        return (system,) + tuple(self._inertia_corrected_step(it, vals, d, system))

    def _stop(self, err, violation, it_count):
        """(status, message) when the solve ends here: converged, or out of iterations or time."""
        opt = self.opt
        if err <= opt.tol and violation <= opt.constr_viol_tol:
            return True, f"converged: scaled KKT error {err:.1e} ≤ tol {opt.tol:g}"
        if it_count >= opt.max_iter:
            return False, f"iteration limit ({opt.max_iter}) reached with KKT error {err:.1e}"
        if time.perf_counter() - self.start > opt.time_limit:
            return False, f"time limit ({opt.time_limit:g} s) reached with KKT error {err:.1e}"
        return None

    def _barrier_update(self, mu, stat, primal, s_d, s_c, products) -> float:
        """IPOPT's monotone barrier update (their eq. 7), possibly several times at once: μ falls
        while the barrier problem's own error is within κ_ε μ."""
        opt = self.opt
        while True:
            co_mu = self._complementarity(products, mu)
            if max(stat / s_d, primal, co_mu / s_c) > opt.kappa_eps * mu or mu <= opt.tol / 10:
                return mu
            mu = max(opt.tol / 10, min(opt.kappa_mu * mu, mu ** opt.theta_mu))

    def _inertia_corrected_step(self, it, vals, d, system):
        """The Newton step with the right inertia (IPOPT §3.1): (step or None, δ, ρ). The Riccati
        recursion needs the Hessian positive definite on the null space of the dynamics, IPOPT's
        test only on that of every equality: first raise ρ of the exact penalty ρCᵀC on the
        terminal equalities (it does not change the step), from the last ρ that worked (the
        penalty's curvature need is a property of the problem, so it rarely falls again), then
        regularise the Hessian itself by δ."""
        step = None
        rhos = ([r for r in (1e2, 1e4, 1e6, 1e8) if r >= self._rho_last] or [1e8]) if self.tr.n_eq else (1.0,)
        for rho_used in rhos:
            step = self._newton(it, vals, d, system, 0.0, rho_used)
            if step is not None:
                self._rho_last = rho_used
                return step, 0.0, rho_used
        delta_last = self._delta_last
        delta = first = 1e-4 if delta_last == 0 else max(1e-20, delta_last / 3)
        while True:
            step = self._newton(it, vals, d, system, delta, rho_used)
            if step is not None or delta > 1e40:
                break
            delta *= 100 if delta_last == 0 else 8
        if step is not None and delta_last > 0 and delta == first:
            # IPOPT lowers δ by κ_w⁻ = 1/3 a try (§3.1), so after a spell of large δ (1e15 after a
            # restoration, seen on the quadrotor) it spends an iteration per factor of 3 with steps
            # shrunk by δ; a factorisation here is one Riccati sweep, cheap beside the Hessians, so
            # look further down, by factors of 100, while the inertia stays right
            while delta > 1e-8:
                smaller = self._newton(it, vals, d, system, delta / 100, rho_used)
                if smaller is None:
                    break
                step, delta = smaller, delta / 100
        if step is not None:
            # the curvature the penalty could not supply is the Hessian's own: later iterations
            # start from this ρ instead of climbing the ladder again
            self._delta_last, self._rho_last = delta, rho_used
        return step, delta, rho_used

    def _jacobians(self, X, U):
        """The transcription's first derivatives at (X, U), counted (``gradient_evaluations``)."""
        self.gradient_evaluations += 1
        return self.tr.jacobians(X, U)

    def _derivatives(self, it: Iterate):
        """The first derivatives at the iterate; single shooting's costates follow from them (the
        adjoint recursion), the lifted transcriptions carry theirs as variables."""
        d = self._jacobians(it.X, it.U)
        if not self.tr.lifted:
            it.lam = self.tr.costates(d, it.y_path, it.y_final, it.nu, it.y_in)
        return d

    def _take_step(self, it: Iterate, trial, step, alpha, a_d, mu):
        """Move to the accepted trial point: primal step α, multipliers of the equalities by α,
        of the inequalities and bounds by the dual step, then the dual reset (IPOPT eq. 16).
        Returns the trial point's values."""
        tvals, it.X, it.U, it.s = trial
        it.lam = it.lam + alpha * (step.lam - it.lam)
        it.nu = it.nu + alpha * (step.nu - it.nu)
        it.y = it.y + a_d * step.dy
        it.z_lo = it.z_lo + a_d * step.dz_lo
        it.z_hi = it.z_hi + a_d * step.dz_hi
        self._reset_duals(it, mu)
        return tvals

    @staticmethod
    def _restoration_failure(restored, err) -> str:
        """Why the solve stops after a failed line search and restoration, or "" to go on from
        the restored point."""
        if restored is not None and 1e-6 < restored[1] < np.inf:
            return (f"locally infeasible: the terminal and path constraints stay violated (sum of squares "
                    f"{restored[1]:.2e}) at a stationary point of that violation over the controls "
                    "(restoration phase); no nearby point satisfies them: check the constraints, bounds and horizon")
        if restored is None or not np.isfinite(restored[1]):
            return (f"line search failed at KKT error {err:.1e}; the restoration phase failed: the trajectory of "
                    "the controls is not finite (the dynamics blow up under them)")
        return ""

    def _search(self, it, vals, d, system, step, a_p, a_d, tau, delta, rho_used, ref, bounds) -> _Search:
        """The globalisation of one iteration: the filter line search, or a watchdog step (after
        ``watchdog_shortened_iter_trigger`` shortened steps in a row), or, when the watchdog fails,
        the line search from the point where it started."""
        mu = bounds[-1]
        wd = self._watchdog
        if wd is not None and wd.mu != mu:
            wd = None  # a new barrier problem: the watchdog's reference belongs to the old one
        if wd is None and 0 < self.opt.watchdog_shortened_iter_trigger <= self._shortened:
            wd, self._shortened = _Watchdog(mu, (it.copy(), vals, d, system, step, a_p, a_d, delta, rho_used, ref)), 0
        self._watchdog = wd
        outcome = self._watchdog_trial(wd, it, step, a_p, bounds) if wd is not None else None
        if outcome is not None and outcome[0] != "back":
            if outcome[0] == "success":
                ref, self._watchdog = wd.saved[-1], None
            return _Search(it, vals, d, True, outcome[1], outcome[2], step, a_p, a_d, ref, outcome[0] == "watchdog")
        if outcome is not None:  # the watchdog failed: back to its point and its step
            it, vals, d, system, step, a_p, a_d, delta, rho_used, ref = wd.saved
            self._watchdog = None
        accepted, f_step, trial, step, alpha, a_d = self._filter_line_search(
            it, vals, d, system, step, a_p, a_d, tau, delta, rho_used, ref, bounds, skip_first=outcome is not None)
        self._shortened = self._shortened + 1 if accepted and alpha < a_p else 0
        return _Search(it, vals, d, accepted, f_step, trial, step, alpha, a_d, ref, False)

    def _acceptable(self, trial, alpha, ref, bounds):
        """IPOPT's filter acceptance (§2.3) of a trial point against the reference point ``ref`` =
        (φ, θ, φ's directional derivative, the step's largest α): (accepted, f-type step, θ)."""
        phi0, theta0, dphi, _ = ref
        filt, theta_min, theta_max, mu = bounds
        tvals, tX, tU, ts = trial
        phi, theta = self._merit_parts(tX, tU, tvals, ts, mu)
        if theta > theta_max or any(theta >= ft and phi >= fp for ft, fp in filt):
            return False, False, theta
        switching = dphi < 0 and alpha * (-dphi) ** 2.3 > theta0 ** 1.1
        if theta0 <= theta_min and switching:
            # Armijo on φ; the step keeps the linearised constraints, so a violation far
            # above θ_min means the model is wrong there: shorten the step
            ok = phi <= phi0 + 1e-4 * alpha * dphi + 1e-14 * abs(phi0) and theta <= max(theta_min, 10 * theta0)
            return ok, True, theta
        return theta <= (1 - 1e-5) * theta0 or phi <= phi0 - 1e-8 * theta0, False, theta

    def _filter_line_search(self, it, vals, d, system, step, a_p, a_d, tau, delta, rho_used, ref, bounds,
                            skip_first=False):
        """Backtracking from the largest step ``a_p`` (from a_p / 2 with ``skip_first``) with
        IPOPT's filter acceptance (§2.3) and second-order corrections after a first rejected trial
        (§2.4): (accepted, f-type step, trial point, step taken, α, dual step)."""
        tr, mu = self.tr, bounds[-1]
        acceptable = lambda trial, alpha: self._acceptable(trial, alpha, ref, bounds)  # noqa: E731
        alpha, accepted, trial, f_step = a_p * (0.5 if skip_first else 1.0), False, None, False
        for attempt in range(int(skip_first), 40):
            trial = self._trial(it, step, alpha)
            if trial is not None:
                accepted, f_step, theta = acceptable(trial, alpha)
                if accepted:
                    break
                if attempt == 0 and theta >= ref[1] and tr.lifted:
                    soc = self._second_order_corrections(it, vals, d, system, trial, alpha, theta, mu, tau, delta,
                                                         rho_used, acceptable)
                    if soc is not None:
                        step, alpha, trial, f_step = soc
                        accepted, a_d = True, step.a_d  # the dual step of the corrected direction (IPOPT)
                        break
            alpha *= 0.5
            if alpha < 1e-14:
                break
        return accepted, f_step, trial, step, alpha, a_d

    def _watchdog_trial(self, watchdog, it, step, a_p, bounds):
        """IPOPT's watchdog (Wächter & Biegler 2006, §3.2; Chamberlain et al. 1982): after a run of
        shortened steps, full steps are taken without the acceptance test, a few at most, until
        one passes the test against the point where the watchdog started. ("success", f-type,
        trial) when the full step from here passes it, ("watchdog", True, trial) for a full step
        taken untested, ("back", False, None) when the watchdog failed."""
        trial = self._trial(it, step, a_p)
        if trial is None:
            return "back", False, None
        ref = watchdog.saved[-1]
        accepted, f_step, _ = self._acceptable(trial, ref[3], ref, bounds)
        if accepted:
            return "success", f_step, trial
        if watchdog.trials < self.opt.watchdog_trial_iter_max:
            watchdog.trials += 1
            return "watchdog", True, trial
        return "back", False, None

    def _step_limits(self, it, step, tau):
        """The largest primal and dual steps that keep slacks, bound distances and multipliers
        above (1 - τ) of their values (fraction to the boundary)."""
        return ipv.step_limits(self._stack(it.X, it.U), step.dV, *self._bounds, it.s, step.ds, it.z_lo, step.dz_lo,
                               it.z_hi, step.dz_hi, it.y, step.dy, tau)

    def _second_order_corrections(self, it, vals, d, system, trial, alpha, theta, mu, tau, delta, rho_scale,
                                  acceptable, max_soc=4, kappa_soc=0.99):
        """IPOPT's second-order corrections (§2.4, Algorithm A-5.7-A-5.10), against the Maratos
        effect: the step from the same matrix with c_soc = α c(x) + c(x + αd) in place of c(x),
        for every equality row (defects, terminal equalities, inequality rows with their slacks);
        repeated with c_soc ← α_soc c_soc + c(x + α_soc d_soc) while the infeasibility falls by
        κ_soc, at most ``max_soc`` times. (step, α, trial point, f-type) of the first accepted
        correction, or None."""

        c_soc = self._equality_rows(vals, it._blocks(it.s))
        alpha_test = alpha  # the acceptance tests take the original step's α (IPOPT's alpha_primal_test)
        for _ in range(max_soc):
            tvals, _, _, ts = trial
            rows = self._equality_rows(tvals, it._blocks(ts))
            if getattr(d, "Ey", None) is not None:  # collocation: the trial's defects in this point's rows
                rows[0] = rows[0].copy()
                rows[0][:, self.tr.y_rows] = -np.linalg.solve(d.Ey, tvals.raw_defects[..., None])[..., 0]
            c_soc = [alpha * a + b for a, b in zip(c_soc, rows)]
            sv = replace(vals, defects=c_soc[0], equality=c_soc[1], path=c_soc[2] - it.s_path,
                         path_final=c_soc[3] - it.s_final, inequality=c_soc[4] - it.s_in)
            step = self._newton(it, sv, d, self._assemble(it, sv, d, system["H"], mu), delta, rho_scale)
            if step is None:
                return None
            alpha, step.a_d = self._step_limits(it, step, tau)
            trial = self._trial(it, step, alpha)
            if trial is None:
                return None
            accepted, f_step, theta_soc = acceptable(trial, alpha_test)
            if accepted:
                return step, alpha, trial, f_step
            if theta_soc > kappa_soc * theta:
                return None
            theta = theta_soc
        return None

    @staticmethod
    def _equality_rows(vals, s_blocks):
        """The equality rows' residuals: defects, terminal equalities, and g + s of the path, final
        and terminal inequality rows with their slacks."""
        return [vals.defects, vals.equality, vals.path + s_blocks[0], vals.path_final + s_blocks[1],
                vals.inequality + s_blocks[2]]

    def _barrier_directional(self, it, d, step, mu):
        """Directional derivative of the barrier objective along the step. Single shooting: the
        states' steps are their linearised response to the controls' steps, so their gradient terms
        count (dX[0]'s fixed part and the final control are zero)."""
        return ipv.barrier_directional(self._stack(it.X, it.U), step.dV, d.grad, *self._bounds, it.s, step.ds, mu)

    def _values(self, X, U):
        """The transcription's values with every inequality row relaxed by ε (g − ε ≤ 0): a row that
        the equalities make active (a state bound at a terminal target) keeps a strict interior for the
        barrier, as IPOPT's ``bound_relax_factor`` does."""
        vals = self.tr.values(X, U)
        eps = self._relax
        if eps and (vals.path.size or vals.inequality.size):
            raw = getattr(vals, "raw_defects", None)
            vals = replace(vals, path=vals.path - eps, path_final=vals.path_final - eps,
                           inequality=vals.inequality - eps)
            if raw is not None:
                vals.raw_defects = raw
        return vals

    def _nlp_defects(self, vals):
        """The defects of the NLP as posed, which the filter's θ, the primal infeasibility and the
        termination test measure (as IPOPT does on the same NLP). Collocation's stage residuals
        r_k = −E_k⁻¹c_k (:mod:`trajectories.collocation`) are its defects c_k under a row
        transformation that changes with the point: measured in r, θ rewards or punishes a trial
        point for the change of E_k (a watchdog's full step rejected as more infeasible while c
        fell); their y rows are replaced by c_k (``vals.raw_defects``), the copy rows kept."""
        raw = getattr(vals, "raw_defects", None)
        if raw is None:
            return vals.defects
        R = vals.defects.copy()
        R[:, self.tr.y_rows] = raw
        return R

    def _carry_defect_multipliers(self, it, d_old, d):
        """Collocation's stage multipliers λ_{k+1} (y rows) are those of the defects, μ_k =
        −E_k⁻ᵀλ_{k+1}, at the point where E_k is evaluated: the step updates λ by α toward the
        Newton multipliers in the old point's rows, i.e. μ ← μ + α(μ⁺ − μ), IPOPT's update of the
        defects' multipliers. At the new point the same μ is λ_{k+1} = −E_k,newᵀ μ_k: without this
        the implied μ changes with E_k (the stationarity residual grows over short steps and holds
        μ's decrease back). No-op for the shooting transcriptions (E = −I)."""
        if getattr(d, "Ey", None) is None or getattr(d_old, "Ey", None) is None:
            return
        y = self.tr.y_rows
        mu_def = np.linalg.solve(np.swapaxes(d_old.Ey, 1, 2), -it.lam[1:, y][..., None])
        it.lam[1:, y] = -np.einsum("kij,kil->kj", d.Ey, mu_def)

    def _trial(self, it, step, alpha):
        tr = self.tr
        U = np.ascontiguousarray(it.U + alpha * step.dU)
        X = it.X + alpha * step.dX
        if not tr.lifted:
            Xref, X = X, it.X.copy()
            X[0] = it.X[0] + alpha * step.dX[0]
            if self.opt.closed_loop and step.K is not None:
                # the controls follow the Newton step's feedback u = U + αdU + K(x − X − αdX) along the
                # nonlinear rollout, as DDP's forward pass does (Mayne 1966; Giftthaler et al. 2018, GNMS):
                # the same first-order step, but the states no longer drift from the linear model's
                lo, hi = self._closed_loop_box(it.U, self._tau)
                if tr.closed_loop(X, U, step.K, np.ascontiguousarray(Xref), lo, hi) >= 0:
                    return None
        X = np.ascontiguousarray(X)
        vals = self._values(X, U)
        if vals.bad >= 0:
            return None
        return vals, X, U, it.s + alpha * step.ds

    def _closed_loop_box(self, U, tau):
        """The bounds of a feedback control: within the fraction τ of the way from U to each bound
        (the fraction-to-the-boundary rule applied to the feedback term too)."""
        N, ns = self.N, self.ns
        lo, hi = self.lo[:N, ns:], self.hi[:N, ns:]
        has_lo, has_hi = self.has_lo[:N, ns:], self.has_hi[:N, ns:]
        box_lo = np.where(has_lo, U - tau * (U - np.where(has_lo, lo, 0.0)), -np.inf)
        box_hi = np.where(has_hi, U + tau * (np.where(has_hi, hi, 0.0) - U), np.inf)
        return np.ascontiguousarray(box_lo), np.ascontiguousarray(box_hi)

    def _reset_duals(self, it, mu, kappa=1e10):
        """Keep each bound multiplier within a factor κ_Σ of μ/distance (IPOPT eq. 16)."""
        ipv.reset_duals(self._stack(it.X, it.U), *self._bounds, it.z_lo, it.z_hi, it.s, it.y, mu, kappa)

    def _infeasible(self, history, it, vals, d, window=True):
        """Local infeasibility: the constraint violation has stalled far from zero (over a window
        of iterations, or where the line search failed) at a stationary point of the violation
        itself (the test of Byrd, Nocedal & Waltz 2006). The window's test asks for no iterate of
        the last 25 to have improved on the first by 1 %, and after a restoration finds the
        constraints satisfiable it waits another 25 iterations: on a feasible problem whose
        infeasibility rises and falls (a watchdog's full steps) it costs no restoration phase."""
        if window:
            if len(history) < max(30, self._next_window_test):
                return ""
            recent = [h["inf_pr"] for h in history[-25:]]
            if min(recent) < 1e-4 or min(recent[1:]) < 0.99 * recent[0]:
                return ""
            self._next_window_test = len(history) + 25
        restored = self._restore(it)
        if restored is None or restored[1] <= 1e-6 or not np.isfinite(restored[1]):
            return ""
        return (f"locally infeasible: the terminal and path constraints stay violated (sum of squares "
                f"{restored[1]:.2e}) at a stationary point of that violation over the controls (restoration "
                "phase); no nearby point satisfies them: check the constraints, bounds and horizon")

    def _restart(self, it, restored, mu):
        """Resume from the restoration phase's point: states rolled out, slacks and multipliers
        reset around the new point (IPOPT resets the bound multipliers likewise)."""
        U, _, X = restored
        V = self._push_into_bounds(self._stack(X, U))
        X, U = np.ascontiguousarray(V[:, :self.ns]), np.ascontiguousarray(V[:self.N, self.ns:])
        self.tr.rollout(X, U)
        vals = self._values(X, U)
        push = lambda g: np.maximum(-g, self.opt.bound_push * np.maximum(1.0, np.abs(g)))
        it.X, it.U = X, U
        it.s_path, it.s_final, it.s_in = push(vals.path), push(vals.path_final), push(vals.inequality)
        it.y_path, it.y_final, it.y_in = mu / it.s_path, mu / it.s_final, mu / it.s_in
        V = self._stack(X, U)
        it.z_lo = np.where(self.has_lo, mu / np.where(self.has_lo, V - self.lo, 1.0), 0.0)
        it.z_hi = np.where(self.has_hi, mu / np.where(self.has_hi, self.hi - V, 1.0), 0.0)
        it.nu = np.zeros_like(it.nu)
        return it, vals

    def _violation(self, U, X):
        """½(|h_eq|² + |max(g, 0)|² + |max(h_in, 0)|²) of the controls' own trajectory and its
        gradient w.r.t. the controls (and a free T), by the adjoint recursion with the violations as
        weights (the dynamics are always satisfiable: only these constraints can be infeasible)."""
        tr, N, ns = self.tr, self.N, self.ns
        if tr.rollout(X, U) >= 0:
            return np.inf, None
        v = tr.values(X, U)
        dr = self._jacobians(X, U)
        yp, yN, yI = np.maximum(v.path, 0.0), np.maximum(v.path_final, 0.0), np.maximum(v.inequality, 0.0)
        c2 = 0.5 * float(np.sum(v.equality ** 2) + np.sum(yp ** 2) + np.sum(yN ** 2) + np.sum(yI ** 2))
        dr.grad[:] = 0.0
        lam = tr.costates(dr, yp, yN, v.equality, yI)
        gu = np.einsum("kij,ki->kj", dr.B, lam[1:])
        if self.ng:
            gu += np.einsum("kij,ki->kj", dr.GJ[:, :, ns:], yp)
            gu[N - 1] += dr.GNJ[:, ns:].T @ yN
        return c2, np.concatenate([gu.ravel(), lam[0, tr.n:]])

    def _restore(self, it):
        """Restoration phase: minimise the violation over the controls (and T) within their bounds
        by projected quasi-Newton (L-BFGS-B). Returns (U, violation, X) or None if it failed."""
        import scipy.optimize as so

        tr, N, m = self.tr, self.N, self.m
        X = it.X.copy()

        def fun(w):
            U = np.ascontiguousarray(w[:N * m].reshape(N, m))
            X[0, tr.n:] = w[N * m:]
            c2, g = self._violation(U, X)
            if g is None:
                return np.inf, np.zeros_like(w)
            return c2, g

        lo = np.concatenate([self.lo[:N, tr.ns:].ravel(), self.lo[0, tr.n:tr.ns]])
        hi = np.concatenate([self.hi[:N, tr.ns:].ravel(), self.hi[0, tr.n:tr.ns]])
        w0 = np.concatenate([it.U.ravel(), it.X[0, tr.n:tr.ns]])
        bounds = [(a if np.isfinite(a) else None, b if np.isfinite(b) else None) for a, b in zip(lo, hi)]
        try:
            res = so.minimize(fun, w0, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 500, "ftol": 1e-16, "gtol": 1e-10})
        except (FloatingPointError, ValueError):
            return None
        U = np.ascontiguousarray(res.x[:N * m].reshape(N, m))
        X[0, tr.n:] = res.x[N * m:]
        return U, float(res.fun), X

    def _print(self, r, k):
        if k == 1:
            print(" iter    objective    inf_pr   inf_du   lg(mu)  lg(rg)  alpha_du  alpha_pr  (w: watchdog step)")
        rg = "-" if not r.get("reg") else f"{math.log10(r['reg']):.1f}"
        print(f"{r['iter']:5d}  {r['cost']: .7e}  {r['inf_pr']:.2e} {r['inf_du']:.2e}  {math.log10(r['mu']):5.1f}  "
              f"{rg:>6}  {r['alpha_du']:.2e}  {r['alpha_pr']:.2e}{'w' if r.get('watchdog') else ''}")

    def _finish(self, it, vals, d, status, message, iterations, res, history=()):
        tr = self.tr
        X = it.X
        T = tr.horizon(X)
        kkt = {}
        if res is not None:
            stat, primal, comp, violation, s_d, s_c, _ = res
            kkt = {"stationarity": stat, "primal": primal, "complementarity": comp, "violation": violation,
                   "scaled_error": max(stat / s_d, primal, comp / s_c)}
        if d is not None:  # λ_0 = ∂L/∂x_0: the costate at t = 0 (x_0 is fixed, not a decision)
            it.lam[0] = d.grad[0, :tr.ns] + d.A[0].T @ it.lam[1]
            if self.ng:
                it.lam[0] += d.GJ[0, :, :tr.ns].T @ it.y_path[0] + (d.GNJ[:, :tr.ns].T @ it.y_final if tr.N == 1 else 0)
        # "defects": (N+1, ns), with the free horizon's component
        multipliers = {"defects": it.lam.copy(), "terminal_equality": it.nu.copy(),
                       "terminal_inequality": it.y_in.copy(), "path": it.y_path.copy(),
                       "path_final": it.y_final.copy(), "u_lower": it.z_lo[:tr.N, tr.ns:].copy(),
                       "u_upper": it.z_hi[:tr.N, tr.ns:].copy()}
        return Solution(bool(status), message, tr.name, None, cost=float(vals.cost), t=tr.times(X),
                        x=X[:, :tr.n].copy(), u=it.U.copy(), costates=it.lam[:, :tr.n].copy(), T=T,
                        iterations=iterations, gradient_evaluations=self.gradient_evaluations,
                        seconds=time.perf_counter() - self.start,
                        constraint_violation=float(kkt.get("violation", np.nan)),
                        extra={"iterate": it, "history": list(history)}, solver="ip", kkt=kkt,
                        multipliers=multipliers)


@dataclass
class _Search:
    """What the globalisation of an iteration found: the point it searched from (the watchdog's,
    when it went back there), whether and where a trial point was accepted, and the filter's
    reference values for that point."""

    it: Iterate
    vals: object
    d: object
    accepted: bool
    f_step: bool
    trial: tuple | None
    step: _Step
    alpha: float
    a_d: float
    ref: tuple
    by_watchdog: bool


@dataclass
class _Watchdog:
    """The watchdog's start: its barrier parameter, the point with its system and step, and
    the reference (φ, θ, dφ, α_max) its trial points are tested against."""

    mu: float
    saved: tuple
    trials: int = 0


@dataclass
class _Step:
    dX: np.ndarray
    dU: np.ndarray
    lam: np.ndarray
    nu: np.ndarray
    dV: np.ndarray | None = None
    ds: np.ndarray = field(default_factory=lambda: np.zeros(0))   # every slack's step (Iterate.s's layout)
    dy: np.ndarray = field(default_factory=lambda: np.zeros(0))   # every inequality multiplier's step
    dz_lo: np.ndarray | None = None
    dz_hi: np.ndarray | None = None
    curvature: float = 0.0
    a_d: float = 1.0
    K: np.ndarray | None = None    # the Riccati feedback gains (N, m, ns): du_k = k_k + K_k dx_k
