"""MD replicas across temperatures and seeds, run as independent tasks, and their ensemble averages.

Each replica is one task (keyed by temperature and replica index, seeded by its key): an NVT
(Langevin) run for the structure and transport — g(r), MSD(t) and the diffusion coefficient
D = lim MSD/6t (Einstein), fitted on the second half of the run — and an NVE run from the same
start for the energy drift. Replicas at one temperature are averaged and their standard error
of the mean, s/√K, gives the error bars. The potential is sent to each worker once.

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
>>> ens = run_replicas(EMT(), atoms, temperatures=(300,), replicas=2, steps=20, interval=5, progress=False)
>>> ens.D_mean.shape, ens.g_mean.shape[0]
((1,), 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from diffsim.cluster import map_tasks, task_rng

from .md import mean_squared_displacement, radial_distribution, run_md


@dataclass(frozen=True)
class ReplicaTask:
    """One replica: temperature (K), index, MD length (steps of ``timestep_fs``), sampling interval."""

    key: str
    temperature: float
    replica: int
    steps: int
    interval: int
    timestep_fs: float
    seed: int
    r_max: float
    bins: int


def diffusion_coefficient(times: np.ndarray, msd: np.ndarray) -> float:
    """D in Å²/ps from the Einstein relation MSD = 6 D t, fitted on the second half of the run.

    >>> t = np.linspace(0.0, 2.0, 21)
    >>> round(diffusion_coefficient(t, 6 * 0.25 * t + 0.1), 12)
    0.25
    """
    half = len(times) // 2
    if len(times) - half < 2:
        return float("nan")
    return float(np.polyfit(times[half:], msd[half:], 1)[0] / 6.0)


def run_replica(task: ReplicaTask, shared) -> dict:
    """The task function: NVT and NVE runs of one replica, reduced to g(r), MSD, D and drift.
    ``shared`` is ``(potential, atoms)``; a potential that is not an ASE calculator is a model,
    wrapped in :class:`potentials.calculator.Calculator`."""
    potential, atoms = shared
    from ase.calculators.calculator import BaseCalculator

    if isinstance(potential, BaseCalculator):
        import copy

        calc = copy.deepcopy(potential)  # a fresh one per task: no neighbour-list state from the previous task
    else:
        from .calculator import Calculator

        calc = Calculator(potential)
    seeds = task_rng(task.key, task.seed).integers(2**31, size=2)
    kw = dict(temperature_K=task.temperature, timestep_fs=task.timestep_fs, steps=task.steps, interval=task.interval)
    nvt = run_md(atoms, calc, ensemble="nvt", seed=int(seeds[0]), **kw)
    nve = run_md(atoms, calc, ensemble="nve", seed=int(seeds[1]), **kw)
    r, g = radial_distribution(nvt, r_max=task.r_max, bins=task.bins, skip=len(nvt.times) // 4)
    msd = mean_squared_displacement(nvt)
    return {"r": r, "g": g, "times": nvt.times, "msd": msd, "D": diffusion_coefficient(nvt.times, msd),
            "drift": nve.drift, "temperature": float(np.mean(nvt.temperature[len(nvt.times) // 4:]))}


@dataclass
class ReplicaEnsemble:
    """Ensemble averages per temperature (rows) and their standard errors (``*_sem``, s/√K; NaN
    for one replica). ``runs`` holds each replica's own results by task key."""

    temperatures: np.ndarray
    replicas: int
    r: np.ndarray
    times: np.ndarray
    g_mean: np.ndarray
    g_sem: np.ndarray
    msd_mean: np.ndarray
    msd_sem: np.ndarray
    D_mean: np.ndarray
    D_sem: np.ndarray
    drift_mean: np.ndarray
    drift_sem: np.ndarray
    T_mean: np.ndarray
    runs: dict = field(default_factory=dict)

    def table(self) -> str:
        """One line per temperature: sampled temperature, D and NVE drift with their errors."""
        lines = [f"{'T (K)':>7} {'<T> NVT (K)':>12} {'D (Å²/ps)':>22} {'NVE drift (meV/atom/ps)':>26}  replicas"]
        for k, T in enumerate(self.temperatures):
            lines.append(f"{T:7g} {self.T_mean[k]:12.1f} {self.D_mean[k]:12.3e} ± {self.D_sem[k]:7.1e} "
                         f"{self.drift_mean[k]:15.3g} ± {self.drift_sem[k]:8.2g}  {self.replicas:8d}")
        return "\n".join(lines)

    def plot(self, path: str | None = None):
        """g(r) and MSD(t) with ±1 standard-error bands, D(T) and drift(T) with error bars."""
        from diffsim.files import pyplot, write_figure

        plt = pyplot(saving=path is not None)

        fig, ax = plt.subplots(2, 2, figsize=(10, 7))
        for k, T in enumerate(self.temperatures):
            for a, x, m, s in ((ax[0, 0], self.r, self.g_mean[k], self.g_sem[k]),
                               (ax[0, 1], self.times, self.msd_mean[k], self.msd_sem[k])):
                line, = a.plot(x, m, label=f"{T:g} K")
                a.fill_between(x, m - s, m + s, color=line.get_color(), alpha=0.3)
        ax[0, 0].set(xlabel="r (Å)", ylabel="g(r)", title=f"g(r), NVT, mean ± s.e. of {self.replicas} replicas")
        ax[0, 1].set(xlabel="t (ps)", ylabel="MSD (Å²)", title="mean-squared displacement")
        ax[1, 0].errorbar(self.temperatures, self.D_mean, yerr=self.D_sem, fmt="o-", capsize=3)
        ax[1, 0].set(xlabel="T (K)", ylabel="D (Å²/ps)", title="diffusion coefficient (MSD = 6Dt)")
        ax[1, 1].errorbar(self.temperatures, self.drift_mean, yerr=self.drift_sem, fmt="s-", capsize=3)
        ax[1, 1].axhline(0.0, color="k", lw=0.5)
        ax[1, 1].set(xlabel="T (K)", ylabel="meV/atom/ps", title="NVE energy drift")
        for a in ax.flat:
            a.grid(alpha=0.3)
        ax[0, 0].legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            write_figure(fig, path)
        return fig


def replica_tasks(temperatures: Sequence[float], replicas: int, steps: int = 1000, interval: int = 10,
                  timestep_fs: float = 2.0, seed: int = 0, r_max: float = 6.0, bins: int = 120) -> list[ReplicaTask]:
    """One task per (temperature, replica), keyed ``"<T>K-r<i>"``.

    >>> [t.key for t in replica_tasks((300, 600), 2)]
    ['300K-r0', '300K-r1', '600K-r0', '600K-r1']
    """
    temperatures = [float(T) for T in temperatures]
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"temperatures must be positive kelvins, at least one, got {temperatures}")
    if int(replicas) != replicas or replicas < 1:
        raise ValueError(f"replicas must be a whole number ≥ 1, got {replicas}")
    if steps < 2 * interval:
        raise ValueError(f"steps ({steps}) must be at least twice the sampling interval ({interval})")
    return [ReplicaTask(f"{T:g}K-r{i}", T, i, int(steps), int(interval), float(timestep_fs), int(seed), float(r_max),
                        int(bins)) for T in temperatures for i in range(int(replicas))]


def run_replicas(potential, atoms, temperatures: Sequence[float] = (300.0, 600.0, 900.0), replicas: int = 4,
                 steps: int = 1000, interval: int = 10, timestep_fs: float = 2.0, seed: int = 0, client=None,
                 progress: bool = True, r_max: float = 6.0, bins: int = 120) -> ReplicaEnsemble:
    """``replicas`` MD replicas of ``atoms`` at each temperature with ``potential`` (a model or an
    ASE calculator), on ``client``'s workers or here; returns their :class:`ReplicaEnsemble`."""
    tasks = replica_tasks(temperatures, replicas, steps, interval, timestep_fs, seed, r_max, bins)
    runs = dict(map_tasks(run_replica, tasks, keys=[t.key for t in tasks], client=client, shared=(potential, atoms),
                          progress=progress, description="MD replicas"))
    temps = sorted({t.temperature for t in tasks})
    by_T = [[runs[t.key] for t in tasks if t.temperature == T] for T in temps]

    def stats(name):
        values = np.array([[run[name] for run in group] for group in by_T], dtype=float)
        k = values.shape[1]
        sem = values.std(axis=1, ddof=1) / np.sqrt(k) if k > 1 else np.full(values.shape[:1] + values.shape[2:], np.nan)
        return values.mean(axis=1), sem

    first = runs[tasks[0].key]
    (g_m, g_s), (msd_m, msd_s), (D_m, D_s), (dr_m, dr_s) = (stats(n) for n in ("g", "msd", "D", "drift"))
    return ReplicaEnsemble(np.array(temps), int(replicas), first["r"], first["times"], g_m, g_s, msd_m, msd_s, D_m, D_s,
                           dr_m, dr_s, stats("temperature")[0], runs)
