"""Reference data out of the box: configurations labelled by ASE's EMT, stored in an ase.db.

The generator samples what a learned potential must know: Langevin MD at several temperatures,
rattled and strained cells, and vacancies, for one fcc element or a random alloy of EMT's
elements (Al, Cu, Ag, Au, Ni, Pd, Pt). Files are written atomically (temporary file, then
rename). :func:`load_dataset` reads ase.db or extxyz files and checks every record.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "cu.db")
>>> n = generate_emt_dataset(path, "Cu", size=(2, 2, 2), temperatures=(300,), md_samples=2, rattled=1,
...                          strained=1, vacancies=1, progress=False)
>>> len(load_dataset(path)) == n
True
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Sequence

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


def _structure(elements: list[str], size, rng):
    from ase.build import bulk

    atoms = bulk(elements[0], "fcc", cubic=True).repeat(size)
    if len(elements) > 1:
        atoms.set_chemical_symbols(rng.choice(elements, size=len(atoms)).tolist())
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
                         resume: bool = False, chain_samples: int = 10, eos: int = 0) -> int:
    """Write EMT-labelled configurations of ``elements`` to ``path``, an ase.db (``.db`` or a
    database URL) or an extxyz file (``.xyz``, ``.extxyz``); returns how many it holds.

    Each record carries ``source`` (md, rattle, strain, vacancy), ``temperature`` and ``task``
    (the key of the task that made it; see :mod:`potentials.labelling`); ``eos`` adds that many
    isotropically scaled crystals (volume within ±10 %), the E(V) curve bulk moduli depend on.
    ``client``: label on a
    Dask cluster (:func:`diffsim.cluster.client`); the same seed gives the same data either way.
    By default the file appears only when complete; with ``resume`` (always for a URL) each
    task's rows are committed as it finishes and a rerun skips the tasks already written."""
    from .labelling import emt_tasks, is_url, write_dataset

    tasks = emt_tasks(elements, size, temperatures, md_samples, md_interval, timestep_fs, rattled, strained,
                      vacancies, seed, chain_samples, eos)
    path = str(path) if is_url(path) else pathlib.Path(path)
    if isinstance(path, pathlib.Path) and path.suffix in (".xyz", ".extxyz"):  # through a temporary ase.db
        with tempfile.TemporaryDirectory() as scratch:
            n = write_dataset(pathlib.Path(scratch) / "data.db", tasks, client, progress).total
            _write_extxyz(load_dataset(pathlib.Path(scratch) / "data.db"), path)
        return n
    if resume or isinstance(path, str):
        return write_dataset(path, tasks, client, progress).total
    with atomic_path(path) as tmp:
        return write_dataset(tmp, tasks, client, progress).total


def _write_extxyz(frames, path: pathlib.Path) -> None:
    """Write ``frames`` (with their stored energy, forces and stress) to extxyz, atomically."""
    from ase.io import write

    with atomic_path(path) as tmp:
        write(tmp, frames, format="extxyz")


def load_dataset(path: str | os.PathLike, keys=None) -> list:
    """Atoms from an ase.db (``.db``) or any file ase.io reads (extxyz...), each with at least an
    energy or forces (where to find them: ``keys``, a :class:`potentials.labels.LabelKeys`).
    An ase.db row's key-value pairs go into ``atoms.info`` (``source`` becomes the config_type
    when there is none). Raises :class:`DatasetError` naming the record that has no label (and
    the keys it has), a key that names nothing, a wrong shape or a NaN."""
    from .labels import LabelKeys, check_explicit_keys, keys_found, read_labels

    keys = keys or LabelKeys()
    path = pathlib.Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset file")
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
    if not frames:
        raise DatasetError(f"{path}: the dataset is empty")
    check_explicit_keys(frames, keys, str(path))
    for k, atoms in enumerate(frames):
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
