"""IPOPT as a second solver for the same transcriptions (the ``[ipopt]`` extra: cyipopt-wheels).

IPOPT sees the NLP of a :class:`~trajectories.transcription.Transcription` through its sparse
interface: multiple shooting as stage-interleaved variables z = (x_0, u_0, ..., x_{N-1}, u_{N-1},
x_N) with block-sparse defect, path and terminal Jacobians and the block-diagonal Hessian of the
Lagrangian from the same generated kernels the interior-point solver uses; single shooting as
the controls alone, with Jacobians from forward sensitivities and the dense reduced Hessian
Σ_k S_kᵀ H_k S_k (states eliminated). Multipliers follow the transcription's conventions, so the
returned costates are comparable with every other solver's.

>>> from trajectories.systems import double_integrator_lqr
>>> from trajectories.transcription import MultipleShooting
>>> sol = ipopt(MultipleShooting(double_integrator_lqr(N=20)))   # doctest: +SKIP
"""

from __future__ import annotations

import time

import numpy as np

from diffsim import DiffsimError

from .interior_point import Iterate, _Solver
from .result import Solution
from .transcription import Transcription

_STATUS_OK = 0


class MissingExtraError(DiffsimError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


def available() -> bool:
    """True when cyipopt is importable."""
    try:
        import cyipopt  # noqa: F401
    except ImportError:
        return False
    return True


def ipopt(tr: Transcription, warm: Solution | None = None, U0=None, X0=None, T0=None, tol: float = 1e-8,
          constr_viol_tol: float = 1e-8, max_iter: int = 3000, time_limit: float = 1e20, verbose: bool = False,
          callback=None, mu_init: float = 0.1, watchdog_shortened_iter_trigger: int = 10,
          watchdog_trial_iter_max: int = 3, bound_relax_factor: float | None = None) -> Solution:
    """Solve the transcription with IPOPT (exact Hessians); never raises for a numerical failure.
    ``extra["ipopt_seconds"]`` is IPOPT's own time (the solve less the time in our callbacks)."""
    try:
        import cyipopt
    except ImportError as exc:
        raise MissingExtraError("solver='ipopt' needs cyipopt: pip install 'diffsim[ipopt]' "
                                "(the cyipopt-wheels build bundles IPOPT and MUMPS)") from exc
    start = time.perf_counter()
    own = getattr(tr, "ipopt_nlp", None)  # a transcription with its own NLP layout (collocation)
    nlp = own() if own is not None else _SparseNLP(tr) if tr.lifted else _ReducedNLP(tr)
    X, U = tr.initial_guess(U0, X0, T0)
    if warm is not None and warm.extra.get("iterate") is not None:
        X, U = warm.extra["iterate"].X.copy(), warm.extra["iterate"].U.copy()
    z0 = nlp.pack(X, U)
    problem = cyipopt.Problem(n=z0.size, m=nlp.n_con, problem_obj=nlp, lb=nlp.lb, ub=nlp.ub, cl=nlp.cl, cu=nlp.cu)
    for key, value in (("tol", tol), ("constr_viol_tol", constr_viol_tol), ("max_iter", int(max_iter)),
                       ("max_wall_time", float(time_limit)), ("print_level", 5 if verbose else 0), ("sb", "yes"),
                       ("hessian_approximation", "exact"), ("mu_strategy", "monotone"), ("mu_init", float(mu_init)),
                       ("watchdog_shortened_iter_trigger", int(watchdog_shortened_iter_trigger)),
                       ("watchdog_trial_iter_max", int(watchdog_trial_iter_max))):
        problem.add_option(key, value)
    if bound_relax_factor is not None:  # otherwise IPOPT's own default (1e-8)
        problem.add_option("bound_relax_factor", float(bound_relax_factor))
    nlp.user_callback = callback
    t0 = time.perf_counter()
    z, info = problem.solve(z0)
    total = time.perf_counter() - t0
    X, U = nlp.unpack(z)
    vals = tr.values(X, U)
    it = nlp.iterate(X, U, info, vals)
    d = tr.jacobians(X, U)
    if not tr.lifted:
        it.lam = tr.costates(d, it.y_path, it.y_final, it.nu, it.y_in)
    helper = _Solver(tr, _Options(), start)
    res = helper._residuals(it, vals, d, 0.0)
    sol = helper._finish(it, vals, d, info["status"] == _STATUS_OK, _message(info), nlp.iterations, res)
    sol.solver = "ipopt"
    sol.extra["ipopt_seconds"] = max(total - nlp.callback_seconds, 0.0)
    sol.extra["ipopt_status"] = int(info["status"])
    sol.seconds = time.perf_counter() - start
    return sol


class _Options:
    tol = 1e-8
    bound_relax_factor = 0.0  # the residuals at IPOPT's point are of the rows as posed


def _message(info) -> str:
    msg = info["status_msg"]
    msg = msg.decode() if isinstance(msg, bytes) else str(msg)
    return f"IPOPT status {info['status']}: {msg}"


class _Common:
    """Bookkeeping shared by both layouts: timing of callbacks, iteration count, caching."""

    def __init__(self, tr: Transcription):
        self.tr = tr
        self.iterations = 0
        self.callback_seconds = 0.0
        self.user_callback = None
        self._key = None
        self._cache = {}

    def intermediate(self, alg_mod, iter_count, obj_value, inf_pr, inf_du, mu, d_norm, regularization_size,
                     alpha_du, alpha_pr, ls_trials):
        self.iterations = int(iter_count)
        if self.user_callback is not None:
            return not self.user_callback({"iter": iter_count, "cost": obj_value, "inf_pr": inf_pr,
                                           "inf_du": inf_du, "mu": mu})
        return True

    def _at(self, z):
        """Values and Jacobians at z, computed once per point."""
        key = z.tobytes()
        if key != self._key:
            t = time.perf_counter()
            X, U = self.unpack(z)
            vals = self.tr.values(X, U)
            d = self.tr.jacobians(X, U) if vals.bad < 0 else None
            self._cache = {"X": X, "U": U, "vals": vals, "d": d}
            self._key = key
            self.callback_seconds += time.perf_counter() - t
        return self._cache

    def _timed(self, fn, *args):
        t = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.callback_seconds += time.perf_counter() - t

    def _constraint_bounds(self, n_defect):
        tr = self.tr
        n_path = (tr.N + 1) * tr.ng
        self.n_con = n_defect + n_path + tr.n_eq + tr.n_in
        self.cl = np.concatenate([np.zeros(n_defect), np.full(n_path, -np.inf), np.zeros(tr.n_eq),
                                  np.full(tr.n_in, -np.inf)])
        self.cu = np.concatenate([np.zeros(n_defect), np.zeros(n_path), np.zeros(tr.n_eq), np.zeros(tr.n_in)])

    def _split_multipliers(self, mult, n_defect):
        tr = self.tr
        N, ng = tr.N, tr.ng
        lam_d = mult[:n_defect]
        o = n_defect
        y_path = mult[o:o + N * ng].reshape(N, ng)
        o += N * ng
        y_final = mult[o:o + ng]
        o += ng
        nu = mult[o:o + tr.n_eq]
        y_in = mult[o + tr.n_eq:o + tr.n_eq + tr.n_in]
        return lam_d, y_path, y_final, nu, y_in

    def iterate(self, X, U, info, vals) -> Iterate:
        tr = self.tr
        lam_d, y_path, y_final, nu, y_in = self._split_multipliers(np.asarray(info["mult_g"]), self.n_defect)
        lam = np.zeros((tr.N + 1, tr.ns))
        if tr.lifted:
            lam[1:] = lam_d.reshape(tr.N, tr.ns)
        z_lo, z_hi = self.bound_multipliers(np.asarray(info["mult_x_L"]), np.asarray(info["mult_x_U"]))
        slack = lambda g: np.maximum(-g, 0.0)
        return Iterate(X, U, lam, nu.copy(), slack(vals.path), np.maximum(y_path, 0.0), slack(vals.path_final),
                       np.maximum(y_final, 0.0), slack(vals.inequality), np.maximum(y_in, 0.0), z_lo, z_hi)


class _SparseNLP(_Common):
    """Multiple shooting: every stage variable is a decision; block-sparse derivatives."""

    def __init__(self, tr: Transcription):
        super().__init__(tr)
        N, ns, nv, m = tr.N, tr.ns, tr.nv, tr.m
        self.nz = (N + 1) * nv - m
        lo, hi = tr.lower.ravel()[:self.nz].copy(), tr.upper.ravel()[:self.nz].copy()
        lo[:tr.n] = hi[:tr.n] = tr.problem.x0   # x_0 is fixed: IPOPT removes fixed variables
        self.lb, self.ub = lo, hi
        self.n_defect = N * ns
        self._constraint_bounds(self.n_defect)
        self._structure()

    def pack(self, X, U):
        V = np.zeros((self.tr.N + 1, self.tr.nv))
        V[:, :self.tr.ns] = X
        V[:self.tr.N, self.tr.ns:] = U
        return V.ravel()[:self.nz].copy()

    def unpack(self, z):
        tr = self.tr
        V = np.zeros((tr.N + 1) * tr.nv)
        V[:self.nz] = z
        V = V.reshape(tr.N + 1, tr.nv)
        return np.ascontiguousarray(V[:, :tr.ns]), np.ascontiguousarray(V[:tr.N, tr.ns:])

    def bound_multipliers(self, zl, zu):
        tr = self.tr
        full = lambda v: np.concatenate([v, np.zeros(tr.m)]).reshape(tr.N + 1, tr.nv)
        z_lo, z_hi = full(zl), full(zu)
        z_lo[0, :tr.n] = z_hi[0, :tr.n] = 0.0
        return z_lo, z_hi

    def _structure(self):
        tr = self.tr
        N, ns, nv, ng = tr.N, tr.ns, tr.nv, tr.ng
        rows, cols = [], []
        col0 = lambda k: k * nv
        for k in range(N):  # defects: [A_k B_k] on v_k, -I on x_{k+1}
            r = k * ns + np.arange(ns)
            rr, cc = np.meshgrid(r, col0(k) + np.arange(nv), indexing="ij")
            rows.append(rr.ravel())
            cols.append(cc.ravel())
            rows.append(r)
            cols.append(col0(k + 1) + np.arange(ns))
        o = self.n_defect
        for k in range(N):
            rr, cc = np.meshgrid(o + k * ng + np.arange(ng), col0(k) + np.arange(nv), indexing="ij")
            rows.append(rr.ravel())
            cols.append(cc.ravel())
        rr, cc = np.meshgrid(o + N * ng + np.arange(ng), col0(N - 1) + np.arange(nv), indexing="ij")
        rows.append(rr.ravel())
        cols.append(cc.ravel())
        o += (N + 1) * ng
        n_t = tr.n_eq + tr.n_in
        rr, cc = np.meshgrid(o + np.arange(n_t), col0(N) + np.arange(ns), indexing="ij")
        rows.append(rr.ravel())
        cols.append(cc.ravel())
        self._jrows, self._jcols = np.concatenate(rows).astype(np.int32), np.concatenate(cols).astype(np.int32)
        hr, hc = [], []
        for k in range(N + 1):
            size = nv if k < N else ns
            i, j = np.tril_indices(size)
            hr.append(col0(k) + i)
            hc.append(col0(k) + j)
        self._hrows, self._hcols = np.concatenate(hr).astype(np.int32), np.concatenate(hc).astype(np.int32)

    def objective(self, z):
        return self._at(z)["vals"].cost

    def gradient(self, z):
        c = self._at(z)
        return c["d"].grad.ravel()[:self.nz].copy()

    def constraints(self, z):
        v = self._at(z)["vals"]
        return np.concatenate([v.defects.ravel(), v.path.ravel(), v.path_final, v.equality, v.inequality])

    def jacobianstructure(self):
        return self._jrows, self._jcols

    def jacobian(self, z):
        tr, d = self.tr, self._at(z)["d"]
        N, ns, ng = tr.N, tr.ns, tr.ng
        parts = []
        AB = np.concatenate([d.A, d.B], axis=2)  # (N, ns, nv)
        for k in range(N):
            parts.append(AB[k].ravel())
            parts.append(-np.ones(ns))
        if ng:
            parts.append(d.GJ[:, :ng].ravel())
            parts.append(d.GNJ[:ng].ravel())
        parts.append(d.TJ[1:].ravel())
        return np.concatenate(parts)

    def hessianstructure(self):
        return self._hrows, self._hcols

    def hessian(self, z, lagrange, obj_factor):
        def compute():
            tr = self.tr
            X, U = self.unpack(z)
            lam_d, y_path, y_final, nu, y_in = self._split_multipliers(np.asarray(lagrange), self.n_defect)
            lam = np.zeros((tr.N + 1, tr.ns))
            lam[1:] = lam_d.reshape(tr.N, tr.ns)
            H = tr.hessians(X, U, lam, y_path, y_final, nu, y_in, sigma=float(obj_factor))
            out = []
            for k in range(tr.N + 1):
                size = tr.nv if k < tr.N else tr.ns
                i, j = np.tril_indices(size)
                out.append(H[k][i, j])
            return np.concatenate(out)
        return self._timed(compute)


class _ReducedNLP(_Common):
    """Single shooting: the controls (and T) are the decisions; dense reduced derivatives."""

    def __init__(self, tr: Transcription):
        super().__init__(tr)
        N, m = tr.N, tr.m
        self.nT = int(tr.free)
        self.nz = N * m + self.nT
        self.lb = np.concatenate([tr.lower[:N, tr.ns:].ravel(), [tr.problem.T_bounds[0]] if self.nT else []])
        self.ub = np.concatenate([tr.upper[:N, tr.ns:].ravel(), [tr.problem.T_bounds[1]] if self.nT else []])
        self.n_defect = 0
        self._constraint_bounds(0)
        self._X0 = None

    def pack(self, X, U):
        self._X0 = X[0].copy()
        return np.concatenate([U.ravel(), X[0, self.tr.n:]])

    def unpack(self, z):
        tr = self.tr
        X = np.zeros((tr.N + 1, tr.ns))
        X[0] = self._X0
        if self.nT:
            X[0, tr.n] = z[-1]
        return X, np.ascontiguousarray(z[:tr.N * tr.m].reshape(tr.N, tr.m))

    def bound_multipliers(self, zl, zu):
        tr = self.tr
        z_lo, z_hi = np.zeros((tr.N + 1, tr.nv)), np.zeros((tr.N + 1, tr.nv))
        z_lo[:tr.N, tr.ns:] = zl[:tr.N * tr.m].reshape(tr.N, tr.m)
        z_hi[:tr.N, tr.ns:] = zu[:tr.N * tr.m].reshape(tr.N, tr.m)
        if self.nT:
            z_lo[0, tr.n], z_hi[0, tr.n] = zl[-1], zu[-1]
        return z_lo, z_hi

    def _sensitivities(self, c):
        """S_k = ∂v_k/∂z (N+1, nv, nz) by forward propagation through the stage Jacobians."""
        if "S" in c:
            return c["S"]
        tr, d = self.tr, c["d"]
        N, ns, m, nv = tr.N, tr.ns, tr.m, tr.nv
        S = np.zeros((N + 1, nv, self.nz))
        if self.nT:
            S[0, tr.n, -1] = 1.0
        for k in range(N):
            S[k, ns:, k * m:(k + 1) * m] = np.eye(m)
            S[k + 1, :ns] = d.A[k] @ S[k, :ns] + d.B[k] @ S[k, ns:]
        c["S"] = S
        return S

    def objective(self, z):
        return self._at(z)["vals"].cost

    def gradient(self, z):
        c = self._at(z)
        return self._timed(lambda: np.einsum("ki,kij->j", c["d"].grad, self._sensitivities(c)))

    def constraints(self, z):
        v = self._at(z)["vals"]
        return np.concatenate([v.path.ravel(), v.path_final, v.equality, v.inequality])

    def jacobianstructure(self):
        r, c = np.meshgrid(np.arange(self.n_con), np.arange(self.nz), indexing="ij")
        return r.ravel().astype(np.int32), c.ravel().astype(np.int32)

    def jacobian(self, z):
        def compute():
            c = self._at(z)
            tr, d = self.tr, c["d"]
            S = self._sensitivities(c)
            rows = []
            if tr.ng:
                rows.append(np.einsum("kij,kjl->kil", d.GJ[:, :tr.ng], S[:tr.N]).reshape(-1, self.nz))
                rows.append(d.GNJ[:tr.ng] @ S[tr.N - 1])
            rows.append(d.TJ[1:] @ S[tr.N, :tr.ns])
            return np.concatenate(rows, axis=0).ravel()
        return self._timed(compute)

    def hessianstructure(self):
        return np.tril_indices(self.nz)

    def hessian(self, z, lagrange, obj_factor):
        def compute():
            c = self._at(z)
            tr = self.tr
            _, y_path, y_final, nu, y_in = self._split_multipliers(np.asarray(lagrange), 0)
            # the costates of σJ + multipliers·constraints, then Σ_k S_kᵀ H_k S_k
            d = c["d"]
            grad = d.grad * obj_factor
            scaled = type(d)(d.A, d.B, grad, d.GJ, d.GNJ, d.TJ.copy())
            scaled.TJ[0] *= obj_factor
            lam = tr.costates(scaled, y_path, y_final, nu, y_in)
            H = tr.hessians(c["X"], c["U"], lam, y_path, y_final, nu, y_in, sigma=float(obj_factor))
            S = self._sensitivities(c)
            Hr = np.einsum("kia,kij,kjb->ab", S, H, S)
            i, j = np.tril_indices(self.nz)
            return Hr[i, j]
        return self._timed(compute)
