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

import time
from dataclasses import dataclass, field

import numpy as np

from diffsim.progress import progress_bar
from diffsim.results import ReadsLikeADict

from .neighbors import neighbor_list


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
    volumes: np.ndarray | None = None  # Å³ per atom at each sample (NaN without a full periodic cell)

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


ENSEMBLES = ("nve", "nvt", "npt")


def _check_md_options(atoms, temperature_K, timestep_fs, steps, interval, ensemble) -> None:
    count = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
    if ensemble not in ENSEMBLES:
        raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
    problems = [f"{name} = {value!r} ({what})" for name, value, what, ok in [
        ("steps", steps, "a count ≥ 1", count(steps)), ("interval", interval, "a count ≥ 1", count(interval)),
        ("timestep_fs", timestep_fs, "positive", bool(np.isfinite(timestep_fs) and timestep_fs > 0)),
        ("temperature_K", temperature_K, "≥ 0, and > 0 with a thermostat",
         bool(np.isfinite(temperature_K) and (temperature_K > 0 or (ensemble == "nve" and temperature_K == 0))))]
        if not ok]
    if problems:
        raise ValueError("MD options out of range: " + "; ".join(problems))
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms")
    if ensemble == "npt" and not np.all(atoms.pbc):
        raise ValueError("NPT changes the cell, so it needs a structure periodic in all three directions "
                         "(use nvt or nve for a cluster or a slab)")


def run_md(atoms, calculator, temperature_K: float = 300.0, timestep_fs: float = 2.0, steps: int = 1000,
           interval: int = 10, ensemble: str = "nve", friction: float = 0.01, seed: int = 0,
           trajectory: str | None = None, progress: bool = False, uncertainty_threshold: float | None = None,
           stop_on_uncertainty: bool = False, pressure_GPa: float = 1e-4, bulk_modulus_GPa: float = 140.0) -> MDRun:
    """Velocity Verlet (NVE), Langevin (NVT) or Berendsen thermostat and barostat (NPT, at
    ``pressure_GPa``, with the compressibility 1/``bulk_modulus_GPa`` setting the barostat's
    response) with ``calculator`` from Maxwell-Boltzmann velocities at ``temperature_K``; samples
    every ``interval`` steps (with a progress bar if ``progress``). With a committee calculator
    (results hold ``forces_std``) the largest per-atom force spread is recorded at each sample;
    every step whose spread passes ``uncertainty_threshold`` (eV/Å) is flagged, and with
    ``stop_on_uncertainty`` the run stops at the first (``MDRun.stopped_at``)."""
    from .reference_data import _thermalize

    _check_md_options(atoms, temperature_K, timestep_fs, steps, interval, ensemble)
    atoms = atoms.copy()
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    _thermalize(atoms, temperature_K, rng)
    dyn = _integrator(atoms, ensemble, timestep_fs, temperature_K, friction, rng, pressure_GPa, bulk_modulus_GPa)
    n = len(atoms)
    times, pot, kin, pos, spread, flagged, vol = [], [], [], [], [], [], []

    def sample():
        times.append(dyn.get_number_of_steps() * timestep_fs / 1000.0)
        pot.append(atoms.get_potential_energy() / n)
        kin.append(atoms.get_kinetic_energy() / n)
        pos.append(atoms.positions.copy())  # ASE keeps positions unwrapped during MD
        vol.append(abs(atoms.get_volume()) / n if np.all(atoms.pbc) else np.nan)
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
                 np.array(spread) if spread else None, flagged, stopped, np.array(vol))


def _integrator(atoms, ensemble: str, timestep_fs: float, temperature_K: float, friction: float, rng,
                pressure_GPa: float, bulk_modulus_GPa: float):
    """ASE's dynamics object for ``ensemble``: velocity Verlet, Langevin or Berendsen NPT."""
    from ase import units

    dt = timestep_fs * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)
    if ensemble == "nvt":
        from ase.md.langevin import Langevin

        return Langevin(atoms, dt, temperature_K=temperature_K, friction=friction, rng=rng, fixcm=False)
    from ase.md.nptberendsen import NPTBerendsen

    return NPTBerendsen(atoms, dt, temperature_K=temperature_K, taut=100 * units.fs,
                        pressure_au=pressure_GPa * units.GPa, taup=1000 * units.fs,
                        compressibility_au=1.0 / (bulk_modulus_GPa * units.GPa))


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


@dataclass
class MDComparison(ReadsLikeADict):
    """The learned potential's MD against a reference's from the same start: g(r) of both (NVT)
    and their relative L1 difference, MSD(t) of both, and the NVE run with the learned potential
    with its energy drift (meV/atom/ps). Reads like the dict it used to be (``out["drift"]``)."""

    r: np.ndarray
    g_learned: np.ndarray
    g_reference: np.ndarray
    rdf_difference: float
    msd_learned: np.ndarray
    msd_reference: np.ndarray
    times: np.ndarray
    drift: float
    nve: MDRun
    seconds: float = 0.0

    def plot(self, path: str | None = None):
        """g(r), MSD and the NVE energy side by side (:func:`potentials.figures.md_checks`);
        saved to ``path`` if given. Returns the figure."""
        from .figures import md_checks

        return md_checks(self, path)


@dataclass
class MDReport(ReadsLikeADict):
    """What :func:`md_report` found: the run, its mean temperature over the second half, the NVE
    drift or NPT volume where they apply, a one-line ``summary``, and when EMT could serve as a
    reference the same g(r)/MSD comparison as :class:`MDComparison`."""

    run: MDRun
    ensemble: str
    atoms: int
    temperature: float
    summary: str = ""
    drift: float | None = None
    volume_per_atom: float | None = None
    r: np.ndarray | None = None
    g_learned: np.ndarray | None = None
    g_reference: np.ndarray | None = None
    rdf_difference: float | None = None
    msd_learned: np.ndarray | None = None
    msd_reference: np.ndarray | None = None
    times: np.ndarray | None = None
    nve: MDRun | None = None
    seconds: float = 0.0

    def plot(self, path: str | None = None):
        """The MD checks against EMT when there is a reference, else the run's energies; saved to
        ``path`` if given. Returns the figure."""
        from .figures import md_checks, nve_energy

        return md_checks(self, path) if self.r is not None else nve_energy(self.run, path)


def compare_with_reference(atoms, calculator, reference, temperature_K: float = 600.0, steps: int = 2000,
                           interval: int = 20, seed: int = 0, plot: str | None = None, progress: bool = False,
                           uncertainty_threshold: float | None = None,
                           stop_on_uncertainty: bool = False) -> MDComparison:
    """NVT runs with ``calculator`` and ``reference`` from the same start: g(r) difference,
    MSD, and an NVE drift with ``calculator``; optionally a figure (see also
    :mod:`potentials.figures` for each panel on its own)."""
    start = time.perf_counter()
    kw = dict(steps=steps, interval=interval, seed=seed, progress=progress)
    learned = run_md(atoms, calculator, temperature_K, ensemble="nvt", **kw)
    ref = run_md(atoms, reference, temperature_K, ensemble="nvt", **kw)
    nve = run_md(atoms, calculator, temperature_K, ensemble="nve", uncertainty_threshold=uncertainty_threshold,
                 stop_on_uncertainty=stop_on_uncertainty, **kw)
    skip = len(learned.times) // 4
    r, g_l = radial_distribution(learned, skip=skip)
    _, g_r = radial_distribution(ref, skip=skip)
    out = MDComparison(r=r, g_learned=g_l, g_reference=g_r,
                       rdf_difference=float(np.trapezoid(np.abs(g_l - g_r), r) / np.trapezoid(g_r, r)),
                       msd_learned=mean_squared_displacement(learned),
                       msd_reference=mean_squared_displacement(ref), times=learned.times, drift=nve.drift, nve=nve,
                       seconds=time.perf_counter() - start)
    if plot:
        _close(out.plot(plot))
    return out


def md_report(atoms, model, ensemble: str = "nve", temperature_K: float = 600.0, steps: int = 2000,
              timestep_fs: float = 2.0, pressure_GPa: float = 1e-4, seed: int = 0, plot: str | None = None,
              progress: bool = False, uncertainty_threshold: float | None = None,
              stop_on_uncertainty: bool = False) -> MDReport:
    """MD of ``atoms`` with ``model`` in ``ensemble`` and what it shows: the energy drift (NVE),
    the mean temperature, the volume (NPT); and, when ASE's EMT knows every element and the cell
    is periodic, the same run with EMT from the same start and the two g(r) compared. Returns the
    numbers and a one-line ``summary``; raises ``ComputationFailed`` (a ``RuntimeError``) if the run
    blows up (NaN or inf) or leaves the model's range. A committee's force spread is recorded, and
    flagged (or the run stopped) past ``uncertainty_threshold``, as in :func:`run_md`.

    >>> from ase.build import bulk
    >>> from potentials.model import ACSFModel
    >>> out = md_report(bulk("Cu", cubic=True), ACSFModel(["Cu"], hidden=(4,)), steps=4, temperature_K=100)
    >>> out.summary.startswith("4 atoms (Cu4), 4 steps of 2 fs, NVE from 100 K")
    True
    """
    clock = time.perf_counter()
    from ase.calculators.emt import EMT

    from diffsim.errors import ComputationFailed

    from .calculator import Calculator
    from .reference_data import EMT_ELEMENTS

    interval = max(1, min(20, steps // 10)) if isinstance(steps, (int, np.integer)) and steps > 0 else 1
    kw = dict(temperature_K=temperature_K, timestep_fs=timestep_fs, steps=steps, interval=interval, seed=seed,
              ensemble=ensemble, pressure_GPa=pressure_GPa, progress=progress)
    start = atoms.copy()
    start.calc = Calculator(model)
    start.get_potential_energy()  # a structure the model cannot evaluate is the input's fault (ValueError)
    try:
        run = run_md(atoms, Calculator(model), **kw, uncertainty_threshold=uncertainty_threshold,
                     stop_on_uncertainty=stop_on_uncertainty)
    except ValueError as exc:  # the start was fine: the dynamics went where the model cannot follow
        raise ComputationFailed(f"the MD run left the model's range ({exc}); use a smaller --timestep, a lower "
                           "temperature or a better-trained model") from None
    if not (np.all(np.isfinite(run.total)) and all(np.all(np.isfinite(p)) for p in run.positions)):
        bad = run.times[~np.isfinite(run.total)]
        when = f" at {bad[0]:g} ps" if len(bad) else ""
        raise ComputationFailed(f"the MD run blew up (energies or positions NaN or inf{when}); "
                           "use a smaller --timestep, a lower temperature or a better-trained model")
    half = slice(len(run.times) // 2, None)
    out = MDReport(run=run, ensemble=ensemble, atoms=len(atoms), drift=run.drift if ensemble == "nve" else None,
                   temperature=float(np.mean(run.temperature[half])),
                   volume_per_atom=float(np.mean(run.volumes[half])) if ensemble == "npt" else None)
    parts = [f"{len(atoms)} atoms ({atoms.get_chemical_formula()}), {steps} steps of {timestep_fs:g} fs, "
             f"{ensemble.upper()} from {temperature_K:g} K: mean T {out.temperature:.0f} K (second half)"]
    if ensemble == "nve":
        parts.append(f"NVE drift {out.drift:.3f} meV/atom/ps")
    if ensemble == "npt":
        parts.append(f"volume {out.volume_per_atom:.3f} Å³/atom at {pressure_GPa:g} GPa")
    periodic = bool(np.all(atoms.pbc)) and abs(np.linalg.det(np.array(atoms.cell))) > 1e-9
    if periodic and set(atoms.get_chemical_symbols()) <= set(EMT_ELEMENTS) and len(run.times) >= 2:
        ref = run_md(atoms, EMT(), **kw)
        skip = len(run.times) // 4
        r, g_l = radial_distribution(run, skip=skip)
        _, g_r = radial_distribution(ref, skip=skip)
        out.r, out.g_learned, out.g_reference = r, g_l, g_r
        out.rdf_difference = float(np.trapezoid(np.abs(g_l - g_r), r) / max(np.trapezoid(g_r, r), 1e-300))
        out.msd_learned, out.msd_reference = mean_squared_displacement(run), mean_squared_displacement(ref)
        out.times, out.nve = run.times, run
        parts.append(f"g(r) differs from EMT's by {out.rdf_difference:.3f} (relative L1, same start)")
    else:
        parts.append("no EMT reference for these elements or this cell")
    out.summary = "; ".join(parts)
    out.seconds = time.perf_counter() - clock
    if plot:
        _close(out.plot(plot))
    return out


def _close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)
