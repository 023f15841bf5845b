"""An independent reference for transcribed optimal control problems, in plain numpy.

It re-implements the discrete problem the transcriptions pose (scaled time s = t/T, one classical
RK4 step per control interval on the state and the running cost, a free final time as the last
state component, the final-node path constraint through the last step) with the user's own
functions evaluated on numpy arrays, and checks the KKT conditions of a returned solution by
central finite differences of the Lagrangian built from the solver's multipliers. Nothing here
calls the generated kernels or the solvers.
"""

from __future__ import annotations

import numpy as np


class Reference:
    def __init__(self, problem):
        self.p = problem
        self.n, self.m, self.N = problem.n_x, problem.n_u, problem.N
        self.free = problem.free_time
        self.h = 1.0 / self.N

    # the stage function on the augmented state (x, T)
    def _T(self, xt):
        return xt[self.n] if self.free else self.p.T

    def rhs(self, xt, u, s):
        p, n = self.p, self.n
        T = self._T(xt)
        x = xt[:n]
        xdot = T * np.asarray(p.f(x, u, p.params, T * s), dtype=float)
        cost = T * float(p.L(x, u, p.params, T * s)) if p.L is not None else 0.0
        if self.free:
            xdot = np.append(xdot, 0.0)
        return np.append(xdot, cost)

    def step(self, xt, u, s):
        """(x_next (augmented), cost increment) of one RK4 step."""
        h, ns = self.h, xt.size
        k1 = self.rhs(xt, u, s)
        k2 = self.rhs(xt + 0.5 * h * k1[:ns], u, s + 0.5 * h)
        k3 = self.rhs(xt + 0.5 * h * k2[:ns], u, s + 0.5 * h)
        k4 = self.rhs(xt + h * k3[:ns], u, s + h)
        inc = (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        return xt + inc[:ns], inc[ns]

    def path(self, xt, u, s):
        p = self.p
        return np.atleast_1d(np.asarray(p.g(xt[:self.n], u, p.params, self._T(xt) * s), dtype=float))

    def terminal(self, xt):
        p = self.p
        x = xt[:self.n]
        phi = float(p.Phi(x, p.params)) if p.Phi is not None else 0.0
        eq = np.atleast_1d(np.asarray(p.h_eq(x, p.params), dtype=float)) if p.h_eq is not None else np.zeros(0)
        ineq = np.atleast_1d(np.asarray(p.h_in(x, p.params), dtype=float)) if p.h_in is not None else np.zeros(0)
        return phi, eq, ineq

    def augmented(self, sol) -> np.ndarray:
        X = sol.x
        if self.free:
            X = np.column_stack([X, np.full(len(X), sol.T)])
        return X

    def rollout(self, U, T=None):
        """States (N+1, n) and cost J of the controls U (from x0; T for a free horizon)."""
        xt = np.append(self.p.x0, T) if self.free else self.p.x0.copy()
        xs, J = [xt], 0.0
        for k in range(self.N):
            xt, c = self.step(xt, U[k], k * self.h)
            xs.append(xt)
            J += c
        J += self.terminal(xt)[0]
        return np.array(xs)[:, :self.n], J

    # ------------------------------------------------------------ the KKT conditions

    def kkt(self, sol, fd: float = 1e-6) -> dict:
        """Stationarity of the Lagrangian in every decision (central differences), the constraint
        violation at every node, dual feasibility and complementarity, from sol's multipliers."""
        mult = sol.multipliers
        X, U = self.augmented(sol), sol.u
        N, n, h = self.N, self.n, self.h
        ns = X.shape[1]
        lam = np.asarray(mult["defects"])          # (N+1, ns) with the horizon's component if free
        nu, y_in = np.asarray(mult["terminal_equality"]), np.asarray(mult["terminal_inequality"])
        yp, yN = np.asarray(mult["path"]), np.asarray(mult["path_final"])
        zl, zu = np.asarray(mult["u_lower"]), np.asarray(mult["u_upper"])
        ng = self.p.n_g

        def stage_terms(k, xt, u):
            """The Lagrangian's terms that depend on stage k's variables (x_k, u_k)."""
            nxt, c = self.step(xt, u, k * h)
            val = c + lam[k + 1] @ nxt
            if ng:
                val += yp[k] @ self.path(xt, u, k * h)
                if k == N - 1:
                    val += yN @ self.path(nxt, u, (k + 1) * h)
            val -= zl[k] @ u - zu[k] @ u
            return val

        def final_terms(xt):
            phi, eq, ineq = self.terminal(xt)
            return phi + nu @ eq + y_in @ ineq

        grads = []
        for k in range(N):
            for j in range(self.m):
                e = np.zeros(self.m)
                e[j] = fd * max(1.0, abs(U[k, j]))
                grads.append((stage_terms(k, X[k], U[k] + e) - stage_terms(k, X[k], U[k] - e)) / (2 * e[j]))
            for j in range(ns):
                if k == 0 and j < n:
                    continue   # x_0 is fixed
                e = np.zeros(ns)
                e[j] = fd * max(1.0, abs(X[k, j]))
                d = (stage_terms(k, X[k] + e, U[k]) - stage_terms(k, X[k] - e, U[k])) / (2 * e[j])
                if k > 0:
                    d -= lam[k, j]   # -λ_kᵀx_k from the previous defect
                grads.append(d)
        for j in range(ns):
            e = np.zeros(ns)
            e[j] = fd * max(1.0, abs(X[N, j]))
            grads.append((final_terms(X[N] + e) - final_terms(X[N] - e)) / (2 * e[j]) - lam[N, j])
        # primal feasibility, with the trajectory re-integrated here
        defects = [np.max(np.abs(self.step(X[k], U[k], k * h)[0] - X[k + 1])) for k in range(N)]
        _, eq, ineq = self.terminal(X[N])
        g = np.array([self.path(X[k], U[k], k * h) for k in range(N)]) if ng else np.zeros((N, 0))
        gN = self.path(self.step(X[N - 1], U[N - 1], (N - 1) * h)[0], U[N - 1], 1.0) if ng else np.zeros(0)
        lo, hi = self.p.u_lower, self.p.u_upper
        viol = max([max(defects), np.max(np.abs(eq), initial=0.0), np.max(ineq, initial=0.0),
                    np.max(g, initial=0.0), np.max(gN, initial=0.0), np.max(lo - U, initial=0.0),
                    np.max(U - hi, initial=0.0), 0.0])
        comp = [np.abs(yp * g).max(initial=0.0), np.abs(yN * gN).max(initial=0.0), np.abs(y_in * ineq).max(initial=0.0),
                np.abs(zl * np.where(np.isfinite(lo), U - lo, 0.0)).max(initial=0.0),
                np.abs(zu * np.where(np.isfinite(hi), hi - U, 0.0)).max(initial=0.0)]
        duals = min([yp.min(initial=0.0), yN.min(initial=0.0), y_in.min(initial=0.0), zl.min(initial=0.0),
                     zu.min(initial=0.0)])
        scale = max(1.0, np.max(np.abs(lam)), np.max(np.abs(nu), initial=0.0))
        return {"stationarity": float(np.max(np.abs(grads))) / scale, "violation": float(viol),
                "complementarity": float(max(comp)), "min_dual": float(duals)}
