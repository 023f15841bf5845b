"""Closed-loop Monte-Carlo of an MPC controller: many runs under random disturbances (and model
error), as independent tasks here or on Dask workers, summarised with error bars.

``monte_carlo(ocp, runs=K, disturbance=σ)`` runs the receding-horizon controller
:class:`trajectories.mpc.MPC` of ``ocp`` in a closed loop K times; run i adds Gaussian kicks of
standard deviation σ to the state after every step, drawn from :func:`diffsim.cluster.task_rng` of
its key ``run-i``, so a run's disturbances do not depend on which worker runs it or when, and the
same key gets the same standard-normal draws at every σ (common random numbers: costs at two σ
differ by the noise's effect, not by luck). One more task, ``nominal``, runs without kicks. The
result gives the success rate, the mean cost with its standard error, quantiles, a table and a
figure (state envelopes over time, the distribution of costs).

Each worker builds its controller once per study (the kernels load from the shared disk cache) and resets it
before every run, so a run starts from a cold solve wherever it runs.

>>> from trajectories.systems import double_integrator_lqr
>>> mc = monte_carlo(double_integrator_lqr(N=40, T=1.0), runs=4, disturbance=0.01, horizon=10, steps=20,
...                  progress=False)
>>> mc.success_rate, len(mc.costs), bool(mc.cost_mean > mc.nominal.cost * 0.5)
(1.0, 4, True)
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import numpy as np

from diffsim.cluster import map_tasks, task_rng

from .mpc import MPC, ClosedLoop, MPCError
from .problem import OptimalControlProblem
from .sweep import portable

NOMINAL = "nominal"


@dataclass
class MonteCarlo:
    """The runs of :func:`monte_carlo`: ``runs[i]`` the :class:`~trajectories.mpc.ClosedLoop` of run i
    (key ``run-i``), ``nominal`` the run without disturbances, and the settings."""

    runs: list
    nominal: ClosedLoop
    disturbance: float
    model_error: float
    horizon: int
    steps: int
    names: tuple = ((), ())
    extra: dict = field(default_factory=dict)

    @property
    def costs(self) -> np.ndarray:
        """Closed-loop cost of every run (NaN where the run failed)."""
        return np.array([r.cost if r.status else np.nan for r in self.runs])

    @property
    def success_rate(self) -> float:
        """Fraction of runs that finished every step with finite states."""
        return float(np.mean([r.status for r in self.runs]))

    @property
    def cost_mean(self) -> float:
        """Mean cost over the successful runs."""
        c = self.costs[np.isfinite(self.costs)]
        return float(c.mean()) if c.size else math.nan

    @property
    def cost_error(self) -> float:
        """Standard error of :attr:`cost_mean` (sample std / √n)."""
        c = self.costs[np.isfinite(self.costs)]
        return float(c.std(ddof=1) / math.sqrt(c.size)) if c.size > 1 else math.nan

    def quantiles(self, q=(0.05, 0.5, 0.95)) -> np.ndarray:
        """Quantiles of the successful runs' costs."""
        c = self.costs[np.isfinite(self.costs)]
        return np.quantile(c, q) if c.size else np.full(len(q), np.nan)

    def final_error(self) -> np.ndarray:
        """Per successful run, |x(end) − x_nominal(end)|: how far the disturbances left the end state."""
        end = self.nominal.x[-1]
        return np.array([np.linalg.norm(r.x[-1] - end) for r in self.runs if r.status])

    def table(self) -> str:
        """A short summary: runs, success rate, cost mean ± standard error and quantiles beside the nominal."""
        q05, q50, q95 = self.quantiles()
        err = self.final_error()
        lines = [f"closed-loop Monte-Carlo: {len(self.runs)} runs of {self.steps} steps, MPC horizon {self.horizon}, "
                 f"disturbance σ = {self.disturbance:g}, model error {self.model_error:+.0%}",
                 f"  succeeded        {self.success_rate:8.1%}",
                 f"  nominal cost     {self.nominal.cost:14.6g}",
                 f"  cost mean ± s.e. {self.cost_mean:14.6g} ± {self.cost_error:.3g}",
                 f"  cost 5/50/95 %   {q05:14.6g} {q50:14.6g} {q95:14.6g}",
                 f"  end-state spread {float(np.median(err)) if err.size else math.nan:14.6g} (median |x − x_nominal|)"]
        return "\n".join(lines)

    def plot(self, path: str | None = None):
        """Each state's median and 5–95 % band over the runs against time, the nominal run dashed;
        and a histogram of the costs with the nominal cost marked. Saved to ``path`` if given."""
        from diffsim.files import pyplot, write_figure

        plt = pyplot(saving=path is not None)

        ok = [r for r in self.runs if r.status and len(r.x) == self.steps + 1]
        n = self.nominal.x.shape[1]
        x_names = self.names[0] or [f"x{i}" for i in range(n)]
        fig, (ax, ax_c) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [2, 1]})
        t = self.nominal.t
        if ok:
            X = np.stack([r.x for r in ok])
            lo, mid, hi = np.quantile(X, [0.05, 0.5, 0.95], axis=0)
            for i in range(n):
                ax.fill_between(t, lo[:, i], hi[:, i], color=f"C{i}", alpha=0.25)
                ax.plot(t, mid[:, i], color=f"C{i}", label=f"{x_names[i]} (median, 5–95 %)")
        for i in range(n):
            ax.plot(self.nominal.t, self.nominal.x[:, i], "--", color=f"C{i}", lw=1)
        ax.set(xlabel="t", ylabel="state", title=f"{len(ok)} of {len(self.runs)} runs, σ = {self.disturbance:g} "
                                                  "(dashed: no disturbance)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        c = self.costs[np.isfinite(self.costs)]
        if c.size:
            ax_c.hist(c, bins=min(30, max(5, c.size // 3)), color="C2", alpha=0.8)
        ax_c.axvline(self.nominal.cost, color="k", ls="--", label=f"nominal {self.nominal.cost:.4g}")
        if c.size:
            ax_c.axvline(self.cost_mean, color="C3", label=f"mean {self.cost_mean:.4g} ± {self.cost_error:.2g}")
        ax_c.set(xlabel="closed-loop cost", ylabel="runs", title="cost distribution")
        ax_c.legend(fontsize=7)
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path)
        return fig


_CONTROLLERS: dict = {}  # this process's controllers, by Monte-Carlo token (a worker builds one per study)


def _controller(token: str, ocp, mpc_options) -> MPC:
    if token not in _CONTROLLERS:
        while len(_CONTROLLERS) >= 4:  # a long-lived worker keeps the last few studies' controllers only
            _CONTROLLERS.pop(next(iter(_CONTROLLERS)))
        _CONTROLLERS[token] = MPC(ocp, **mpc_options)
    return _CONTROLLERS[token]


def _run(key: str, shared) -> ClosedLoop:
    """The task: one closed-loop run (``key`` is ``run-i`` or ``nominal``)."""
    ocp, settings, mpc_options, token = shared
    controller = _controller(token, ocp, mpc_options)
    steps, sigma, model_error, x0, seed = settings
    kicks = None
    if key != NOMINAL and sigma > 0:
        kicks = sigma * task_rng(key, seed).standard_normal((steps, ocp.n_x))
    controller.reset()
    return controller.simulate(x0=x0, steps=steps, disturbance=kicks, model_error=model_error,
                               progress=False)  # the runs have their own bar


def monte_carlo(ocp: OptimalControlProblem, runs: int = 100, disturbance: float = 0.05, model_error: float = 0.0,
                horizon: int | None = None, steps: int = 100, x0=None, seed: int = 0, client=None,
                progress: bool = True, **mpc_options) -> MonteCarlo:
    """Run :class:`~trajectories.mpc.MPC` (``horizon``, default the problem's N; ``mpc_options`` such as
    ``initial_states`` or ``real_time_iteration`` passed on) in a closed loop ``runs`` times for
    ``steps`` steps from ``x0`` (default the problem's), each run with its own Gaussian state kicks
    of standard deviation ``disturbance`` and the plant's parameters scaled by ``1 + model_error``;
    on ``client``'s workers or here. Serial and parallel runs agree bit for bit. See the module
    docstring."""
    if int(runs) != runs or runs < 1:
        raise MPCError(f"runs must be a whole number ≥ 1, got {runs!r}")
    if int(steps) != steps or steps < 1:
        raise MPCError(f"steps must be a positive integer, got {steps!r}")
    sigma = float(disturbance)
    if not (sigma >= 0 and math.isfinite(sigma)):
        raise MPCError(f"disturbance σ must be a non-negative number, got {disturbance!r}")
    MPC(ocp, horizon=horizon, **mpc_options)  # bad options fail here, once, not in every task
    if client is not None:
        ocp = portable(ocp)
    x0 = None if x0 is None else np.asarray(x0, dtype=float)
    token = uuid.uuid4().hex
    shared = (ocp, (int(steps), sigma, float(model_error), x0, int(seed)), dict(mpc_options, horizon=horizon), token)
    keys = [NOMINAL] + [f"run-{i}" for i in range(int(runs))]
    done = dict(map_tasks(_run, keys, keys=keys, client=client, shared=shared, progress=progress,
                          description="closed-loop runs"))
    return MonteCarlo([done[k] for k in keys[1:]], done[NOMINAL], sigma, float(model_error),
                      ocp.N if horizon is None else int(horizon), int(steps), (tuple(ocp.x_names), tuple(ocp.u_names)))


__all__ = ["MonteCarlo", "monte_carlo"]
