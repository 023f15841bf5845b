"""Molecular dynamics with a learned potential, and how to check it: energy drift in NVE, and the
radial distribution function and mean-squared displacement against the reference potential.

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
>>> run = run_md(atoms, EMT(), temperature_K=300, steps=20, interval=5, seed=0)
>>> len(run.times), abs(run.drift) < 5.0    # meV/atom/ps over a very short run
(5, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .neighbors import neighbor_list
from .progress import progress_bar


@dataclass
class MDRun:
    """Samples of an MD run: times (ps), energies per atom (eV) and positions (unwrapped)."""

    times: np.ndarray
    potential: np.ndarray
    kinetic: np.ndarray
    positions: list = field(default_factory=list)
    cell: np.ndarray | None = None
    pbc: np.ndarray | None = None
    uncertainty: np.ndarray | None = None   # committees: max per-atom force spread (eV/Å) at each sample
    flagged: list = field(default_factory=list)   # (step, spread) where the spread passed the threshold
    stopped_at: int | None = None            # the step at which the run stopped on the spread

    @property
    def total(self) -> np.ndarray:
        return self.potential + self.kinetic

    @property
    def drift(self) -> float:
        """Energy drift in meV/atom/ps: the slope of a linear fit of the total energy."""
        if len(self.times) < 2:
            return float("nan")
        return 1000.0 * float(np.polyfit(self.times, self.total, 1)[0])

    @property
    def temperature(self) -> np.ndarray:
        from ase.units import kB

        return 2.0 * self.kinetic / (3.0 * kB)


def run_md(atoms, calculator, temperature_K: float = 300.0, timestep_fs: float = 2.0, steps: int = 1000,
           interval: int = 10, ensemble: str = "nve", friction: float = 0.01, seed: int = 0,
           trajectory: str | None = None, progress: bool = False, uncertainty_threshold: float | None = None,
           stop_on_uncertainty: bool = False) -> MDRun:
    """Velocity Verlet (NVE) or Langevin (NVT) with ``calculator`` from Maxwell-Boltzmann
    velocities at ``temperature_K``; samples every ``interval`` steps (with a progress bar if
    ``progress``). With a committee calculator (results hold ``forces_std``) the largest
    per-atom force spread is recorded at each sample; every step whose spread passes
    ``uncertainty_threshold`` (eV/Å) is flagged, and with ``stop_on_uncertainty`` the run stops
    at the first (``MDRun.stopped_at``)."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet

    if ensemble not in ("nve", "nvt"):
        raise ValueError(f"ensemble must be 'nve' or 'nvt', got {ensemble!r}")
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    from .reference_data import _thermalize

    _thermalize(atoms, temperature_K, rng)
    dt = timestep_fs * units.fs
    dyn = VelocityVerlet(atoms, dt) if ensemble == "nve" else \
        Langevin(atoms, dt, temperature_K=temperature_K, friction=friction, rng=rng, fixcm=False)
    n = len(atoms)
    times, pot, kin, pos, spread, flagged = [], [], [], [], [], []

    def sample():
        times.append(dyn.get_number_of_steps() * timestep_fs / 1000.0)
        pot.append(atoms.get_potential_energy() / n)
        kin.append(atoms.get_kinetic_energy() / n)
        pos.append(atoms.positions.copy())  # ASE keeps positions unwrapped during MD
        if "forces_std" in calculator.results:
            spread.append(float(np.max(calculator.results["forces_std"])))

    def watch():
        atoms.get_forces()
        value = float(np.max(calculator.results.get("forces_std", [0.0])))
        if value > uncertainty_threshold:
            flagged.append((dyn.get_number_of_steps(), value))
            if stop_on_uncertainty:
                raise _Uncertain

    dyn.attach(sample, interval=interval)
    if uncertainty_threshold is not None:
        dyn.attach(watch, interval=1)
    bar = progress_bar(steps, f"MD {ensemble.upper()} {type(calculator).__name__}", "step", progress)
    done = [0]

    def advance():  # observers also run at step 0
        bar.update(dyn.get_number_of_steps() - done[0])
        done[0] = dyn.get_number_of_steps()

    dyn.attach(advance, interval=interval)
    traj = None
    if trajectory:
        from ase.io import Trajectory

        traj = Trajectory(trajectory, "w", atoms)
        dyn.attach(traj.write, interval=interval)
    stopped = None
    try:
        dyn.run(steps)
        advance()  # the last steps when steps is not a multiple of interval
    except _Uncertain:
        stopped = flagged[-1][0]
    finally:
        bar.close()
        if traj is not None:
            traj.close()
    return MDRun(np.array(times), np.array(pot), np.array(kin), pos, np.array(atoms.cell), atoms.pbc.copy(),
                 np.array(spread) if spread else None, flagged, stopped)


class _Uncertain(Exception):
    """Raised inside the MD loop to stop it where the committee's spread passed the threshold."""


def radial_distribution(run: MDRun, r_max: float = 6.0, bins: int = 120, skip: int = 0):
    """g(r) averaged over the samples (after ``skip``): returns bin centres and g."""
    edges = np.linspace(0.0, r_max, bins + 1)
    hist = np.zeros(bins)
    frames = run.positions[skip:]
    volume = abs(np.linalg.det(run.cell))
    for pos in frames:
        _, _, _, d = neighbor_list(pos, run.cell, run.pbc, r_max)
        hist += np.histogram(d, edges)[0]
    n = len(frames[0])
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (len(frames) * n * (n / volume) * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def mean_squared_displacement(run: MDRun) -> np.ndarray:
    """MSD(t) in Å² relative to the first sample (positions are unwrapped)."""
    ref = run.positions[0]
    return np.array([np.mean(np.sum((p - ref) ** 2, axis=1)) for p in run.positions])


def compare_with_reference(atoms, calculator, reference, temperature_K: float = 600.0, steps: int = 2000,
                           interval: int = 20, seed: int = 0, plot: str | None = None, progress: bool = False,
                           uncertainty_threshold: float | None = None, stop_on_uncertainty: bool = False) -> dict:
    """NVT runs with ``calculator`` and ``reference`` from the same start: g(r) difference,
    MSD, and an NVE drift with ``calculator``; optionally a figure (see also
    :mod:`potentials.figures` for each panel on its own)."""
    kw = dict(steps=steps, interval=interval, seed=seed, progress=progress)
    learned = run_md(atoms, calculator, temperature_K, ensemble="nvt", **kw)
    ref = run_md(atoms, reference, temperature_K, ensemble="nvt", **kw)
    nve = run_md(atoms, calculator, temperature_K, ensemble="nve", uncertainty_threshold=uncertainty_threshold,
                 stop_on_uncertainty=stop_on_uncertainty, **kw)
    skip = len(learned.times) // 4
    r, g_l = radial_distribution(learned, skip=skip)
    _, g_r = radial_distribution(ref, skip=skip)
    out = {"r": r, "g_learned": g_l, "g_reference": g_r,
           "rdf_difference": float(np.trapezoid(np.abs(g_l - g_r), r) / np.trapezoid(g_r, r)),
           "msd_learned": mean_squared_displacement(learned), "msd_reference": mean_squared_displacement(ref),
           "times": learned.times, "drift": nve.drift, "nve": nve}
    if plot:
        _plot(out, plot)
    return out


def _plot(out, path):
    import matplotlib.pyplot as plt

    from .figures import md_checks

    plt.close(md_checks(out, path))
