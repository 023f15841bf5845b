"""BPTT against the continuous adjoint (and checkpointed BPTT, and finite differences).

BPTT differentiates the discrete cost exactly; the adjoint integrates the costate equation
λ̇ = −∂H/∂x of the continuous problem. They are the same object seen from two sides, and the
comparison makes that measurable: their gradients and costates differ by O(dt^order) and the
gap shrinks at the integrator's order as the grid is refined.

>>> from trajectories.systems import pendulum_swingup
>>> c = compare(pendulum_swingup(N=40), steps=(20, 40, 80), optimize=False, repeats=1)
>>> round(c.slope)
4
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from diffsim.files import pyplot, write_figure
from diffsim.measure import best_time, peak_rss_delta, timed
from diffsim.progress import progress_bar

from .problem import OptimalControlProblem
from .result import Solution

ORDER = {"euler": 1, "rk4": 4, "dopri5": 5}


@dataclass
class Comparison:
    """Everything :func:`compare` measured; ``table()`` formats it, ``plot()`` draws it."""

    problem: str
    N: int
    rows: list = field(default_factory=list)          # per gradient method at the problem's grid
    t: np.ndarray | None = None
    costates: dict = field(default_factory=dict)      # method -> (N+1, n)
    densities: dict = field(default_factory=dict)     # method -> (N, m) control-gradient densities
    fd_error: float = float("nan")                    # BPTT vs central differences, relative
    steps: np.ndarray | None = None
    gaps: np.ndarray | None = None                    # (len(steps), 2): gradient and costate gap
    slope: float = float("nan")
    order: int = 0
    solutions: dict = field(default_factory=dict)     # method -> Solution of the optimisation
    controls: str = "a smooth test control"           # where the gradients were taken
    multipliers: np.ndarray | None = None              # weights of the terminal constraints in the Lagrangian
    multiplier_source: str = "unit weights"

    def table(self) -> str:
        what = ("J + Σ h_i(x(T))" if self.multipliers is None else
                f"the Lagrangian J + Σ λ_i h_i(x(T)), λ = {np.array2string(self.multipliers, precision=6)} "
                f"({self.multiplier_source})")
        lines = [f"{self.problem}: gradients of {what} at {self.controls}, N = {self.N}",
                 f"{'method':<14}{'|dJ/dU| rel. gap to bptt':>26}{'costate gap':>14}{'time':>12}{'stored arrays':>16}"
                 f"{'peak RSS Δ':>13}{'extra steps':>13}"]
        for r in self.rows:
            cg = "-" if np.isnan(r["costate_gap"]) else f"{r['costate_gap']:.2e}"
            rss = "n/a" if r["rss"] is None else f"{r['rss'] / 1024:.0f}kB"
            lines.append(f"{r['method']:<14}{r['gap']:>26.2e}{cg:>14}{r['seconds'] * 1e3:>10.3f}ms"
                         f"{r['bytes'] / 1024:>14.1f}kB{rss:>13}{r['recomputed']:>13}")
        lines.append(f"bptt against central finite differences (random directions): {self.fd_error:.1e}")
        if self.steps is not None:
            lines.append(f"adjoint - bptt as the grid is refined (expected order {self.order}, "
                         f"measured {self.slope:.2f}):")
            for n, (g, c) in zip(self.steps, self.gaps):
                lines.append(f"  N = {n:<6d} dt = {1.0 / n:<10.4g} gradient gap {g:.2e}   costate gap {c:.2e}")
        if self.solutions:
            lines.append("optimised with each gradient:")
            for name, s in self.solutions.items():
                lines.append(f"  {name:<13} cost {s.cost:.10g}  {s.iterations} iterations, "
                             f"{s.gradient_evaluations} gradients, {s.seconds:.2f} s  "
                             f"{'ok' if s.status else 'FAILED: ' + s.message}")
        return "\n".join(lines)

    PANELS = ("costates", "densities", "gap", "controls")

    def plot(self, path: str | None = None, panels=PANELS):
        """Costates from both methods, control-gradient densities, the gap against dt (log-log) and
        the optimised controls; ``panels`` picks some of them, in that order (one panel: one plot).
        Saved to ``path`` if given; returns the figure.

        >>> from trajectories.systems import pendulum_swingup
        >>> c = compare(pendulum_swingup(N=20), steps=(10, 20), optimize=False, repeats=1)
        >>> len(c.plot(panels=("gap",)).axes)
        1
        """
        plt = pyplot(saving=path is not None)

        unknown = [p for p in panels if p not in self.PANELS]
        if unknown or not panels:
            raise ValueError(f"unknown panels {unknown}: choose from {self.PANELS}" if unknown else
                             f"no panels asked for: choose one or more of {self.PANELS}")
        shape = (2, 2) if len(panels) == 4 else (1, len(panels))
        fig, ax = plt.subplots(*shape, figsize=(11, 7.5) if len(panels) == 4 else (5.5 * len(panels), 3.9),
                               squeeze=False)
        for name, a in zip(panels, ax.ravel()):
            getattr(self, f"_draw_{name}")(a)
            a.grid(alpha=0.3)
            if a.get_legend_handles_labels()[0]:
                a.legend(fontsize=7)
        fig.suptitle(f"{self.problem}: BPTT vs continuous adjoint")
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path, dpi=110)
        return fig

    _STYLES = {"bptt": "-", "checkpointed": ":", "adjoint": "--", "ddp": "-."}

    def _draw_costates(self, ax):
        for name, lam in self.costates.items():
            for i in range(lam.shape[1]):
                ax.plot(self.t, lam[:, i], self._STYLES.get(name, "-"),
                        label=f"{name} λ{i}" if name != "checkpointed" else None)
        ax.set_title("costates: BPTT ∂J/∂x_k, adjoint λ(t)" + (", DDP V_x" if "ddp" in self.costates else ""))
        ax.set_xlabel("t")

    def _draw_densities(self, ax):
        for name, d in self.densities.items():
            ax.step(self.t[:-1], d[:, 0], self._STYLES.get(name, "-"), where="post", label=name)
        ax.set_title("control gradient density ∂J/∂u_k / dt  (≈ ∂H/∂u)")
        ax.set_xlabel("t")

    def _draw_gap(self, ax):
        import matplotlib.ticker

        if self.steps is None:
            ax.text(0.5, 0.5, "no grid refinement\n(compare(..., steps=...))", ha="center", va="center",
                    transform=ax.transAxes)
            return
        dt = 1.0 / np.asarray(self.steps)
        ax.loglog(dt, self.gaps[:, 0], "o-", label="gradient gap")
        ax.loglog(dt, self.gaps[:, 1], "s-", label="costate gap")
        ref = self.gaps[-1, 0] * (dt / dt[-1]) ** self.order
        ax.loglog(dt, ref, "k:", label=f"dt^{self.order}")
        ax.set_title(f"adjoint − BPTT: slope {self.slope:.2f}")
        ax.set_xlabel("dt (scaled time)")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())

    def _draw_controls(self, ax):
        for name, s in self.solutions.items():
            if s.u.size:
                ax.step(s.t[:-1], s.u[:, 0], self._STYLES.get(name, "-"), where="post", label=f"{name}: {s.cost:.6g}")
        if not self.solutions:
            ax.text(0.5, 0.5, "not optimised\n(compare(..., optimize=True))", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_title("optimised control with each gradient")
        ax.set_xlabel("t")


def _test_controls(problem: OptimalControlProblem) -> np.ndarray:
    """A smooth, non-trivial control inside the bounds: the initial guess plus a sine wave."""
    lo, hi = problem.u_lower, problem.u_upper
    amp = np.where(np.isfinite(lo) & np.isfinite(hi), 0.25 * (hi - lo), 1.0)
    s = (np.arange(problem.N) + 0.5) / problem.N
    wave = np.sin(2 * np.pi * s[:, None] + np.arange(problem.n_u)[None, :])
    return np.clip(problem.u_guess() + amp * wave, lo, hi)


def _solver_multipliers(problem: OptimalControlProblem, solution: Solution) -> tuple[np.ndarray, str] | None:
    """The terminal-constraint multipliers a solver reports, as one vector (n_eq + n_in,): the
    interior-point and IPOPT solvers' ``multipliers`` (terminal_equality, terminal_inequality),
    DDP's (eq, in), or the scipy path's vector in ``extra["multipliers"]``."""
    n = problem.n_eq + problem.n_in
    candidates = [getattr(solution, "multipliers", None)]
    if isinstance(solution.extra, dict):
        candidates.append(solution.extra.get("multipliers"))
    for found in candidates:
        if isinstance(found, dict):
            eq = found.get("terminal_equality", found.get("eq"))
            ineq = found.get("terminal_inequality", found.get("in"))
            if eq is None and ineq is None:
                continue
            w = np.concatenate([np.asarray(eq if eq is not None else np.zeros(problem.n_eq), float).reshape(-1),
                                np.asarray(ineq if ineq is not None else np.zeros(problem.n_in), float).reshape(-1)])
        elif found is not None and np.size(found):
            w = np.asarray(found, float).reshape(-1)
        else:
            continue
        if w.size == n:
            return w, f"the {solution.method} solver's multipliers"
    return None


def lagrange_multipliers(problem: OptimalControlProblem, U: np.ndarray) -> np.ndarray:
    """Least-squares multipliers of the terminal constraints at controls U: the λ minimising
    |∂J/∂U + Σ λ_i ∂h_i/∂U| over the controls not at a bound (one BPTT sweep per constraint).
    At a KKT point that residual is zero and λ is the optimum's multiplier."""
    ode, T = problem.ode, problem.T
    n_w = problem.n_eq + problem.n_in
    free = ((U > problem.u_lower + 1e-9) & (U < problem.u_upper - 1e-9)).ravel()
    pad = np.zeros(problem.n_q - problem.n_p - 2 - n_w)
    gJ = ode.gradient(problem.x0, U, problem.q(T, 1.0, np.concatenate([np.zeros(n_w), pad])), T=1.0).dU.ravel()
    G = np.stack([ode.gradient(problem.x0, U, problem.q(T, 0.0, np.concatenate([np.eye(n_w)[i], pad])),
                               T=1.0).dU.ravel() for i in range(n_w)], axis=1)
    lam, *_ = np.linalg.lstsq(G[free], -gJ[free], rcond=None)
    return lam


def compare(problem: OptimalControlProblem, U: np.ndarray | None = None, steps=(25, 50, 100, 200, 400),
            methods=("bptt", "checkpointed", "adjoint"), optimize: bool = True, repeats: int = 3,
            fd_directions: int = 3, seed: int = 0, solution: Solution | None = None,
            with_ddp: bool = True, progress: bool = True) -> Comparison:
    """Compare gradient methods on ``problem`` at controls ``U`` (default: a smooth test control).

    Measures, at the problem's grid, each method's gradient gap to BPTT, costate gap, wall time,
    the arrays it keeps (by its storage model) and the rise of the process's peak RSS (measured,
    on Linux; page-granular, so meaningful for large N); BPTT against finite differences; the
    adjoint-BPTT gap over ``steps`` (with a smooth control resampled on each grid) and its slope;
    and, with ``optimize``, the optimum single shooting reaches with each gradient.

    At a ``solution`` (an optimum) the gradients are those of the Lagrangian J + Σ λ_i h_i(x(T))
    with the solver's multipliers (or, if it reports none, the least-squares multipliers of
    :func:`lagrange_multipliers`), so the costates are the optimal ones and the control-gradient
    density ∂H/∂u vanishes on the free controls; and, ``with_ddp``, DDP's value gradient V_x(k)
    (:mod:`trajectories.ddp`, on the same discrete problem) is the fourth costate beside BPTT's
    ∂J/∂x_k, checkpointed BPTT and the continuous adjoint's λ(t_k). Without a solution the
    terminal constraints get unit weights (at a test control there are no multipliers). ``progress``:
    a bar over the gradient methods, the grids and the optimisations (on a terminal)."""
    N, m = problem.N, problem.n_u
    out = Comparison(problem=problem.name, N=N, t=problem.times(), order=ORDER.get(problem.scheme, 0),
                     controls="a smooth test control" if U is None else "the given controls")
    if solution is not None:
        U, out.controls = solution.u, f"the {solution.method} optimum"
    U = _test_controls(problem) if U is None else np.asarray(U, dtype=float).reshape(N, m)
    q = _weighted_parameters(out, problem, U, solution)
    study = bool(steps) and "adjoint" in methods
    bar = progress_bar(len(methods) * (1 + bool(optimize)) + (len(steps) if study else 0), "compare", "step",
                       progress)
    ref = _measure_methods(out, problem, U, q, methods, repeats, bar)
    out.fd_error = _finite_difference_error(problem, U, q, ref, fd_directions, seed)
    if study:
        _dt_study(out, problem, U, q, steps, bar)
    if with_ddp and solution is not None:
        _add_ddp(out, problem, ref)
    if optimize:
        _optimise(out, problem, methods, bar)
    bar.close()
    return out


def _weighted_parameters(out: Comparison, problem: OptimalControlProblem, U: np.ndarray,
                         solution: Solution | None) -> np.ndarray:
    """The rollout parameters q of the Lagrangian J + Σ w_i h_i(x(T)) whose gradients are compared:
    w the multipliers at an optimum (recorded in ``out``), unit weights otherwise."""
    n_w = problem.n_q - problem.n_p - 2
    n_h = problem.n_eq + problem.n_in
    if solution is not None and n_h:
        found = _solver_multipliers(problem, solution)
        out.multipliers, out.multiplier_source = found if found else (lagrange_multipliers(problem, U),
                                                                       "least-squares multipliers at these controls")
    # without multipliers, J + Σ h_i(x(T)): the terminal constraints make λ non-zero even when J is ∫u² alone
    w = out.multipliers if out.multipliers is not None else np.ones(n_h)
    return problem.q(problem.T, 1.0, np.concatenate([w, np.ones(n_w - n_h)]) if n_w else None)


def _measure_methods(out: Comparison, problem: OptimalControlProblem, U, q, methods, repeats: int, bar):
    """Each method's gradient at the problem's grid: time, storage, peak RSS, costates, densities
    and gaps to BPTT, as ``out.rows``; returns the reference (BPTT's) gradient."""
    ode, T = problem.ode, problem.T
    N, n, m = problem.N, problem.n_x, problem.n_u
    grads = {}
    for name in methods:
        seconds, g = best_time(lambda: ode.gradient(problem.x0, U, q, T=1.0, method=name), repeats)
        grads[name] = g
        snapshots = g.snapshots or 0
        stored = {"bptt": 2 * (N + 1) * n, "checkpointed": (snapshots + 1) * n + (N + 1),
                  "adjoint": 2 * (N + 1) * n}.get(name, 0) * 8 + N * m * 8
        rss = peak_rss_delta(lambda: ode.gradient(problem.x0, U, q, T=1.0, method=name))
        out.rows.append({"method": name, "seconds": seconds, "bytes": stored, "rss": rss, "g": g,
                         "recomputed": "-" if g.recomputed_steps is None else g.recomputed_steps})
        if g.costate is not None:
            out.costates[name] = g.costate
        out.densities[name] = g.dU * N / T  # ∂J/∂u_k per unit of real time
        bar.update()
    ref = grads.get("bptt") or next(iter(grads.values()))
    for r in out.rows:
        g = r.pop("g")
        r["gap"] = float(np.linalg.norm(g.dU - ref.dU) / np.linalg.norm(ref.dU))
        r["costate_gap"] = (float(np.max(np.abs(g.costate - ref.costate)) / np.max(np.abs(ref.costate)))
                            if g.costate is not None and ref.costate is not None else float("nan"))
    return ref


def _finite_difference_error(problem: OptimalControlProblem, U, q, ref, directions: int, seed: int) -> float:
    """The largest relative gap between the reference gradient and central differences of J along
    ``directions`` random directions."""
    ode = problem.ode
    rng = np.random.default_rng(seed)
    errs = []
    for _ in range(directions):
        d = rng.standard_normal(U.shape)
        eps = 1e-6 * max(1.0, np.max(np.abs(U)))
        J = lambda V: ode.rollout(problem.x0, V, q, T=1.0).J
        fd = (J(U + eps * d) - J(U - eps * d)) / (2 * eps)
        errs.append(abs(fd - np.vdot(ref.dU, d)) / max(abs(fd), 1e-300))
    return float(max(errs))


def _dt_study(out: Comparison, problem: OptimalControlProblem, U, q, steps, bar) -> None:
    """The adjoint-BPTT gradient and costate gaps with U resampled on each grid of ``steps``, and
    the slope of the gradient gap against dt (the integrator's order)."""
    ode, N, m = problem.ode, problem.N, problem.n_u
    s_mid = (np.arange(N) + 0.5) / N
    gaps = []
    for k in steps:
        s = (np.arange(k) + 0.5) / k
        Uk = np.stack([np.interp(s, s_mid, U[:, j]) for j in range(m)], axis=1)
        b = ode.gradient(problem.x0, Uk, q, T=1.0, method="bptt")
        a = ode.gradient(problem.x0, Uk, q, T=1.0, method="adjoint")
        gaps.append([np.linalg.norm((a.dU - b.dU) * k) / np.linalg.norm(b.dU * k),
                     np.max(np.abs(a.costate - b.costate)) / np.max(np.abs(b.costate))])
        bar.update()
    out.steps, out.gaps = np.asarray(steps), np.asarray(gaps)
    usable = out.gaps[:, 0] > 1e-13  # below that, rounding, not truncation
    if usable.sum() >= 2:
        out.slope = float(np.polyfit(np.log(1.0 / out.steps[usable]), np.log(out.gaps[usable, 0]), 1)[0])


def _optimise(out: Comparison, problem: OptimalControlProblem, methods, bar) -> None:
    """The optimum single shooting reaches with each gradient method, into ``out.solutions``."""
    from .shooting import single_shooting

    for name in methods:
        # the adjoint's gradient is consistent with the discrete cost only to O(dt^order): ask the
        # optimiser for what that gradient can certify
        out.solutions[name] = single_shooting(problem, gradient=name, tol=1e-8 if name == "adjoint" else 1e-12)
        bar.update()


def _add_ddp(out: Comparison, problem: OptimalControlProblem, ref) -> None:
    """DDP's V_x at its own optimum of the same discrete problem, beside BPTT's costates at U."""
    from .ddp import ddp

    if problem.free_time or problem.scheme not in ("euler", "rk4"):
        return
    seconds, sol = timed(lambda: ddp(problem))
    if not sol.status or ref.costate is None:
        return
    out.costates["ddp"] = sol.costates
    gap = float(np.max(np.abs(sol.costates - ref.costate)) / np.max(np.abs(ref.costate)))
    out.rows.append({"method": "ddp", "seconds": seconds, "bytes": sol.gains.nbytes + sol.costates.nbytes,
                     "rss": None, "recomputed": "-", "gap": float("nan"), "costate_gap": gap})
    out.solutions.setdefault("ddp", sol)

