"""Reference data out of the box: configurations labelled by ASE's EMT, stored in an ase.db.

The generator samples what a learned potential must know: Langevin MD at several temperatures,
rattled and strained cells, and vacancies, for one fcc element or a random alloy of EMT's
elements (Al, Cu, Ag, Au, Ni, Pd, Pt) of random composition on Vegard's lattice constant. Files
are written atomically (temporary file, then rename). :func:`load_dataset` reads ase.db or
extxyz files and checks every record.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "cu.db")
>>> n = generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300,), md_samples=2, rattled=1,
...                          strained=1, vacancies=1, eos=1, progress=False)
>>> len(load_dataset(path)) == n
True
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Sequence

import numpy as np

from diffsim.errors import DiffsimError
from diffsim.files import atomic_path

EMT_ELEMENTS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")


class DatasetError(DiffsimError, ValueError):
    """A dataset that cannot be used; the message names the file, the record and the problem."""


def _elements(spec: str) -> list[str]:
    """'Cu' -> ['Cu'], 'CuAu' -> ['Cu', 'Au']."""
    import re

    names = re.findall(r"[A-Z][a-z]?", spec)
    if not names or "".join(names) != spec:
        raise DatasetError(f"cannot read the element(s) {spec!r}: write them as symbols, e.g. 'Cu' or 'CuAu'")
    unknown = [e for e in names if e not in EMT_ELEMENTS]
    if unknown:
        raise DatasetError(f"ASE's EMT has no parameters for {unknown}; choose from {EMT_ELEMENTS}")
    return names


PURE_SHARE = 1 / 3  # of an alloy's structures, the share that is one of its pure elements


def _structure(elements: list[str], size, rng):
    """An fcc crystal of ``elements``; for an alloy, a third of the time one of its pure elements
    (each equally likely: the end members, whose crystals, vacancies and equations of state a
    validation asks for, are otherwise a few per cent of the data), else a random composition
    (fractions uniform on the simplex), atoms placed at random, on the lattice constant of
    Vegard's law (the composition-weighted mean of the elements' own, ASE's reference states)."""
    from ase.build import bulk
    from ase.data import atomic_numbers, reference_states

    if len(elements) == 1:
        return bulk(elements[0], "fcc", cubic=True).repeat(size)
    atoms = bulk(elements[0], "fcc", a=1.0, cubic=True).repeat(size)
    if rng.random() < PURE_SHARE:
        counts = np.eye(len(elements), dtype=int)[rng.integers(len(elements))] * len(atoms)
    else:
        counts = rng.multinomial(len(atoms), rng.dirichlet(np.ones(len(elements))))
    symbols = np.repeat(elements, counts)
    rng.shuffle(symbols)
    a = sum(c * reference_states[atomic_numbers[e]]["a"] for e, c in zip(elements, counts)) / len(atoms)
    atoms.set_cell(atoms.cell * a, scale_atoms=True)
    atoms.set_chemical_symbols(symbols.tolist())
    return atoms


def _labelled(atoms):
    """A copy carrying EMT's energy, forces and stress as stored results."""
    from ase.calculators.emt import EMT

    return label_frames([atoms], EMT)[0]


def label_frames(frames, make_calculator) -> list:
    """Copies of ``frames`` carrying the energy, forces and (for a cell with a volume) stress of
    ``make_calculator()`` as stored results: the oracle step of active learning.

    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> [a] = label_frames([bulk("Cu", cubic=True)], EMT)
    >>> sorted(a.calc.results)
    ['energy', 'forces', 'stress']
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    out = []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = make_calculator()
        results = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces())
        if abs(atoms.cell.volume) > 1e-12:
            results["stress"] = atoms.get_stress()
        atoms.calc = SinglePointCalculator(atoms, **results)
        out.append(atoms)
    return out


def generate_emt_dataset(path: str | os.PathLike, elements: str = "Cu", size: Sequence[int] = (3, 3, 3),
                         temperatures: Sequence[float] = (300.0, 600.0, 900.0, 1200.0), md_samples: int = 50,
                         md_interval: int = 10, timestep_fs: float = 2.0, rattled: int = 20, strained: int = 20,
                         vacancies: int = 20, seed: int = 0, progress: bool = True, client=None,
                         resume: bool = False, chain_samples: int = 10, eos: int = 40,
                         vacancy_size: Sequence[int] | None = None) -> int:
    """Write EMT-labelled configurations of ``elements`` to ``path``, an ase.db (``.db`` or a
    database URL) or an extxyz file (``.xyz``, ``.extxyz``); returns how many it holds.

    Each record carries ``source`` (md, rattle, strain, vacancy), ``temperature`` and ``task``
    (the key of the task that made it; see :mod:`potentials.labelling`); ``eos`` adds that many
    isotropically scaled crystals (volume within ±10 %), the E(V) curve bulk moduli depend on
    (the default 40 is an eighth of the default data: with none, a model's bulk modulus rests on
    the strained cells alone); ``vacancy_size`` (default ``size``) the supercell of the vacancy cells.
    ``client``: label on a
    Dask cluster (:func:`diffsim.cluster.client`); the same seed gives the same data either way.
    By default the file appears only when complete; with ``resume`` (always for a URL) each
    task's rows are committed as it finishes and a rerun skips the tasks already written."""
    from .labelling import emt_tasks, is_url, write_dataset

    tasks = emt_tasks(elements, size, temperatures, md_samples, md_interval, timestep_fs, rattled, strained,
                      vacancies, seed, chain_samples, eos, vacancy_size)
    path = str(path) if is_url(path) else pathlib.Path(path)
    if isinstance(path, pathlib.Path):
        _check_generate_options(path, size, temperatures, md_samples, md_interval, timestep_fs, rattled, strained,
                                vacancies, eos)
        if vacancy_size is not None:
            _check_generate_options(path, vacancy_size, temperatures, md_samples, md_interval, timestep_fs, rattled,
                                    strained, vacancies, eos)
    if isinstance(path, pathlib.Path) and path.suffix in (".xyz", ".extxyz"):  # through a temporary ase.db
        with tempfile.TemporaryDirectory() as scratch:
            n = write_dataset(pathlib.Path(scratch) / "data.db", tasks, client, progress).total
            _write_extxyz(load_dataset(pathlib.Path(scratch) / "data.db"), path)
        return n
    if resume or isinstance(path, str):
        return write_dataset(path, tasks, client, progress).total
    with atomic_path(path) as tmp:
        return write_dataset(tmp, tasks, client, progress).total


DATASET_SUFFIXES = (".db", ".xyz", ".extxyz")


def _check_generate_options(path, size, temperatures, md_samples, md_interval, timestep_fs, rattled, strained,
                            vacancies, eos=0) -> None:
    """Refuse, before any work, options that cannot give a dataset."""
    count = lambda v, least: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= least
    if path.suffix not in DATASET_SUFFIXES:
        raise DatasetError(f"{path}: the dataset file must end in one of {', '.join(DATASET_SUFFIXES)}")
    size = tuple(size) if np.ndim(size) else (size,) * 3
    problems = []
    if len(size) != 3 or not all(count(n, 1) for n in size):
        problems.append(f"size must be three repetitions ≥ 1, got {size}")
    temps = np.asarray(temperatures, dtype=float).ravel()
    if md_samples and (not np.all(np.isfinite(temps)) or np.any(temps <= 0)):
        problems.append(f"MD temperatures must be positive and finite (K), got {list(temps)}")
    for name, value, least in (("md_samples", md_samples, 0), ("md_interval", md_interval, 1), ("rattled", rattled, 0),
                               ("strained", strained, 0), ("vacancies", vacancies, 0)):
        if not count(value, least):
            problems.append(f"{name} must be an integer ≥ {least}, got {value!r}")
    if not (np.isfinite(timestep_fs) and timestep_fs > 0):
        problems.append(f"timestep_fs must be positive, got {timestep_fs!r}")
    if not problems and len(temps) * md_samples + rattled + strained + vacancies + eos == 0:
        problems.append("nothing to generate: ask for MD samples, rattled, strained, vacancy or EOS structures")
    if problems:
        raise DatasetError("cannot generate the dataset: " + "; ".join(problems))


def check_record(atoms, k: int, where: str = "", labels: bool = True) -> None:
    """Raise :class:`DatasetError` naming record ``k`` (of ``where``) if it cannot be trained on:
    no atoms, unknown elements, non-finite positions or cell, a degenerate periodic cell, no stored
    energy and forces, forces of the wrong shape, NaN or inf, or values far outside eV and eV/Å.

    >>> from ase import Atoms
    >>> from ase.calculators.singlepoint import SinglePointCalculator
    >>> a = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    >>> a.calc = SinglePointCalculator(a, energy=-7.0, forces=np.zeros((2, 3)))
    >>> check_record(a, 0)
    >>> a.calc = SinglePointCalculator(a, energy=-7.0, forces=np.zeros((3, 3)))
    >>> check_record(a, 4, "data.xyz")
    Traceback (most recent call last):
    ...
    potentials.reference_data.DatasetError: data.xyz: record 4: forces have shape (3, 3), the structure has 2 atoms
    """
    at = f"{where}: record {k}" if where else f"record {k}"
    n = len(atoms)
    if n == 0:
        raise DatasetError(f"{at}: the structure has no atoms")
    if np.any(atoms.numbers <= 0):
        raise DatasetError(f"{at}: atoms without a chemical element (atomic number 0)")
    if not np.all(np.isfinite(atoms.positions)):
        raise DatasetError(f"{at}: positions contain NaN or inf")
    cell = np.asarray(atoms.cell, dtype=float)
    if not np.all(np.isfinite(cell)):
        raise DatasetError(f"{at}: the cell contains NaN or inf")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and np.linalg.matrix_rank(cell[pbc]) < int(pbc.sum()):
        raise DatasetError(f"{at}: periodic in {int(pbc.sum())} directions but the cell vectors of those directions "
                           "are zero or parallel: store the cell, or set pbc False")
    if not labels:  # the labels are read and checked by their keys (potentials.labels)
        return
    try:
        e, f = atoms.get_potential_energy(), np.asarray(atoms.get_forces(), dtype=float)
    except Exception as exc:
        raise DatasetError(f"{at}: no stored energy and forces ({type(exc).__name__}: {exc})") from None
    if np.ndim(e) != 0:
        raise DatasetError(f"{at}: the energy must be one number, got shape {np.shape(e)}")
    if f.shape != (n, 3):
        raise DatasetError(f"{at}: forces have shape {f.shape}, the structure has {n} atoms")
    if not (np.isfinite(e) and np.all(np.isfinite(f))):
        raise DatasetError(f"{at}: a NaN or infinite energy or force")
    if abs(e) / n > 1e4:
        raise DatasetError(f"{at}: {e / n:.3g} eV per atom is not a plausible energy in eV (meV, kJ/mol, kcal/mol?): "
                           "store energies in eV")
    if np.max(np.abs(f)) > 1e4:
        raise DatasetError(f"{at}: a force of {np.max(np.abs(f)):.3g} eV/Å is not plausible: store forces in eV/Å "
                           "(not meV/Å or kJ/mol/nm), or drop the exploded structure")


def _write_extxyz(frames, path: pathlib.Path) -> None:
    """Write ``frames`` (with their stored energy, forces and stress) to extxyz, atomically."""
    from ase.io import write

    with atomic_path(path) as tmp:
        write(tmp, frames, format="extxyz")


def load_dataset(path: str | os.PathLike, keys=None) -> list:
    """Atoms from an ase.db (``.db``) or any file ase.io reads (extxyz...), each with at least an
    energy or forces (where to find them: ``keys``, a :class:`potentials.labels.LabelKeys`).
    An ase.db row's key-value pairs go into ``atoms.info`` (``source`` becomes the config_type
    when there is none). Raises :class:`DatasetError` naming the record that cannot be used
    (:func:`check_record`), that has no label (and the keys it has), a key that names nothing,
    a wrong shape or a NaN."""
    from .labels import LabelKeys, check_explicit_keys, keys_found, read_labels

    keys = keys or LabelKeys()
    path = pathlib.Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file")
    if path.is_dir():
        raise DatasetError(f"{path}: a folder, not a dataset file")
    try:
        if path.suffix == ".db":
            from ase.db import connect

            frames = []
            with connect(str(path)) as db:
                for row in db.select():
                    atoms = row.toatoms()
                    atoms.info.update(row.key_value_pairs)
                    if "source" in row.key_value_pairs:
                        atoms.info.setdefault("config_type", row.key_value_pairs["source"])
                    frames.append(atoms)
        else:
            from ase.io import read

            frames = read(str(path), index=":")
    except DatasetError:
        raise
    except Exception as exc:  # ase raises many kinds for a damaged file
        raise DatasetError(f"{path}: cannot read it as a dataset ({type(exc).__name__}: {exc})") from exc
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise DatasetError(f"{path}: the dataset is empty")
    check_explicit_keys(frames, keys, str(path))
    for k, atoms in enumerate(frames):
        check_record(atoms, k, str(path), labels=False)
        labels = read_labels(atoms, keys, where=f"{path}: record {k}")
        if labels.energy is None and labels.forces is None:
            raise DatasetError(f"{path}: record {k} has no stored energy or forces; keys found: "
                               f"{', '.join(keys_found(atoms))}. Name them with --energy-key/--forces-key")
    return list(frames)


def _thermalize(atoms, temperature_K, rng):
    """Maxwell-Boltzmann momenta (``thermalize_momenta`` from ASE 3.28 on; the older name before)."""
    from ase.md import velocitydistribution as vd

    if hasattr(vd, "thermalize_momenta"):
        vd.thermalize_momenta(atoms, temperature_K=temperature_K, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


def held_out_split(frames: Sequence, fraction: float = 0.1, minimum: int = 0, seed: int = 0,
                   rng: np.random.Generator | None = None) -> tuple[list, list]:
    """(held out, training): a random ``fraction`` of ``frames`` (rounded, at least ``minimum``)
    set aside for scoring or validation, the rest for training; the same ``seed`` gives the same
    split (``rng``: draw the permutation from this generator instead, as the trainer does).

    >>> held, train = held_out_split(list(range(30)))
    >>> len(held), len(train), sorted(held + train) == list(range(30))
    (3, 27, True)
    """
    if not 0.0 <= fraction < 1.0:
        raise DatasetError(f"the held-out fraction must be in [0, 1), got {fraction}")
    order = (rng if rng is not None else np.random.default_rng(seed)).permutation(len(frames))
    n = min(len(frames), max(int(minimum), int(round(len(frames) * fraction))))
    return [frames[k] for k in order[:n]], [frames[k] for k in order[n:]]
