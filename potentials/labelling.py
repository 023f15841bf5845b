"""EMT reference data as independent tasks, labelled anywhere and written by one writer.

A dataset is a list of :class:`LabelTask`: a Langevin MD chain at one temperature (a few samples),
or one rattled, strained or vacancy structure. Each task draws its random numbers from
:func:`diffsim.cluster.task_rng` of its key, so its structures do not depend on which worker
labels it, or when. :func:`write_dataset` runs the tasks (here, or on a Dask client) and the
client, the one writer, appends each task's rows to the ase.db as the task finishes, in one
transaction, each row carrying its task key. A crash loses only unfinished tasks; a rerun
skips the keys already in the database: no duplicates, nothing redone, nothing half-written.
The database may be any ase.db URL (a ``.db`` SQLite file, ``postgresql://user:pw@host/db``).

>>> import tempfile, os
>>> tasks = emt_tasks("Cu", size=(2, 2, 2), temperatures=(300,), md_samples=2, rattled=1, strained=0, vacancies=0)
>>> [t.key for t in tasks]
['md-300K-0', 'rattle-0']
>>> path = os.path.join(tempfile.mkdtemp(), "cu.db")
>>> write_dataset(path, tasks, progress=False).rows, write_dataset(path, tasks, progress=False).skipped
(3, 2)
"""

from __future__ import annotations

import os
import pathlib
import sys
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from diffsim.cluster import map_tasks, task_rng
from diffsim.files import WriterBusy, sole_writer

from . import reference_data

GENERATOR = "diffsim EMT reference data, v3 (a task per MD chain or structure; seeds per task key; alloys a third pure)"


@dataclass(frozen=True)
class LabelTask:
    """One unit of labelling work: ``kind`` is md, rattle, strain or vacancy; ``samples`` the MD
    samples of a chain (1 otherwise)."""

    key: str
    kind: str
    elements: tuple
    size: tuple
    temperature: float = 0.0
    samples: int = 1
    md_interval: int = 10
    timestep_fs: float = 2.0
    seed: int = 0


@dataclass
class WriteSummary:
    """What :func:`write_dataset` did: rows written now, tasks run now, tasks skipped as done, and
    the rows the database holds in all."""

    rows: int
    tasks: int
    skipped: int
    total: int


def emt_tasks(elements: str = "Cu", size: Sequence[int] = (3, 3, 3),
              temperatures: Sequence[float] = (300.0, 600.0, 900.0, 1200.0), md_samples: int = 50,
              md_interval: int = 10, timestep_fs: float = 2.0, rattled: int = 20, strained: int = 20,
              vacancies: int = 20, seed: int = 0, chain_samples: int = 10, eos: int = 0,
              vacancy_size: Sequence[int] | None = None) -> list[LabelTask]:
    """The tasks of an EMT dataset: per temperature, ``md_samples`` split into independent MD chains
    of at most ``chain_samples`` samples; then one task per rattled, strained, vacancy structure.
    ``vacancy_size`` (default ``size``) is the supercell a vacancy is made in: a model whose
    receptive field passes a small cell sees the vacancy's periodic images, not a vacancy.

    >>> [t.key for t in emt_tasks(temperatures=(300,), md_samples=15, rattled=0, strained=1, vacancies=0)]
    ['md-300K-0', 'md-300K-1', 'strain-0']
    """
    names = tuple(reference_data._elements(elements))
    counts = dict(md_samples=md_samples, rattled=rattled, strained=strained, vacancies=vacancies,
                  chain_samples=chain_samples, md_interval=md_interval, eos=eos)
    bad = {k: v for k, v in counts.items() if int(v) != v or v < (1 if k in ("chain_samples", "md_interval") else 0)}
    if bad:
        raise reference_data.DatasetError(f"counts must be whole numbers ≥ 0 (chain_samples, md_interval ≥ 1), "
                                          f"got {bad}")
    common = dict(elements=names, size=tuple(int(s) for s in size), md_interval=int(md_interval),
                  timestep_fs=float(timestep_fs), seed=int(seed))
    tasks = []
    for T in temperatures:
        for c, start in enumerate(range(0, int(md_samples), int(chain_samples))):
            tasks.append(LabelTask(f"md-{float(T):g}K-{c}", "md", temperature=float(T),
                                   samples=min(int(chain_samples), int(md_samples) - start), **common))
    for kind, n in (("rattle", rattled), ("strain", strained), ("vacancy", vacancies), ("eos", eos)):
        own = common if kind != "vacancy" or vacancy_size is None else dict(
            common, size=tuple(int(s) for s in vacancy_size))
        tasks += [LabelTask(f"{kind}-{i}", kind, **own) for i in range(int(n))]
    return tasks


def label(task: LabelTask) -> list:
    """Run one task: its structures, each a copy carrying EMT's energy, forces and stress, with
    the keys to store beside it (``task``, ``sample``, ``source``, ``temperature``)."""
    from ase import units
    from ase.calculators.emt import EMT
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    rng = task_rng(task.key, task.seed)
    atoms = reference_data._structure(list(task.elements), task.size, rng)
    keys = dict(task=task.key, source=task.kind, temperature=task.temperature)
    if task.kind == "md":
        atoms.calc = EMT()
        reference_data._thermalize(atoms, task.temperature, rng)
        atoms.set_constraint(FixCom())  # no drift of the centre of mass (ASE's advice over fixcm)
        dyn = Langevin(atoms, task.timestep_fs * units.fs, temperature_K=task.temperature, friction=0.02, rng=rng,
                       fixcm=False)
        rows = []
        for k in range(task.samples):
            dyn.run(task.md_interval)
            sample = atoms.copy()
            sample.set_constraint()
            rows.append((reference_data._labelled(sample), dict(keys, sample=k)))
        return rows
    if task.kind == "rattle":
        atoms.rattle(stdev=float(rng.uniform(0.02, 0.15)), seed=int(rng.integers(2**31)))
    elif task.kind == "strain":
        eps = rng.uniform(-0.04, 0.04, (3, 3))
        atoms.set_cell(atoms.cell @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(stdev=0.03, seed=int(rng.integers(2**31)))
    elif task.kind == "vacancy":
        del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(stdev=0.05, seed=int(rng.integers(2**31)))
    elif task.kind == "eos":  # isotropic scaling, volume within ±10 %: the E(V) curve bulk moduli need
        atoms.set_cell(atoms.cell * float(rng.uniform(0.9, 1.1)) ** (1 / 3), scale_atoms=True)
        atoms.rattle(stdev=0.01, seed=int(rng.integers(2**31)))
    else:
        raise ValueError(f"unknown task kind {task.kind!r}")
    return [(reference_data._labelled(atoms), dict(keys, sample=0))]


def is_url(target) -> bool:
    """True for a database server URL (``postgresql://...``), False for a file path."""
    return "://" in str(target)


def write_dataset(target: str | os.PathLike, tasks: Sequence[LabelTask], client=None,
                  progress: bool = True) -> WriteSummary:
    """Label ``tasks`` (on ``client``'s workers, or here) and append each task's rows to the ase.db
    ``target`` (a file or a URL) as it finishes, skipping tasks whose key is already there. The
    database remembers how it was generated: resuming with other parameters raises
    :class:`~potentials.reference_data.DatasetError`. Failed tasks are reported; the others are
    written, then :class:`diffsim.cluster.TasksFailed` is raised (a rerun retries just those)."""
    from ase.db import connect

    plan = _plan(tasks)
    if is_url(target):
        return _write_dataset(target, tasks, plan, client, progress, connect(str(target), append=True))
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sole_writer(target):  # SQLite's own locks guard each transaction; this guards the run
            # ase.db's lock file is not used: a killed run would leave it behind and the next one
            # would wait for it forever.
            db = connect(str(target), append=True, use_lock_file=False)
            return _write_dataset(target, tasks, plan, client, progress, db)
    except WriterBusy as exc:
        raise reference_data.DatasetError(str(exc)) from None


def _write_dataset(target, tasks, plan, client, progress, db) -> WriteSummary:
    # no outer transaction: each task commits on its own
    done = _check_plan(db, plan, target)
    todo = [t for t in tasks if t.key not in done]
    if done and progress:
        print(f"resuming {target}: {len(tasks) - len(todo)} of {len(tasks)} tasks are already there", file=sys.stderr)
    rows = ran = 0
    try:
        for key, result in map_tasks(label, todo, keys=[t.key for t in todo], client=client, progress=progress,
                                     description=f"EMT labels → {pathlib.Path(str(target)).name}"):
            if key in done:  # never twice, whatever the scheduler does
                continue
            with db:  # one transaction per task: all its rows or none
                for atoms, keys in result:
                    db.write(atoms, **keys)
            done.add(key)
            rows += len(result)
            ran += 1
    finally:
        db.metadata = dict(db.metadata, complete=len(done) == len(tasks))
    return WriteSummary(rows, ran, len(tasks) - len(todo), db.count())


def _plan(tasks) -> dict:
    """What the database records about its generation: the generator and a digest of the tasks."""
    import hashlib
    import json

    spec = json.dumps([asdict(t) for t in tasks], sort_keys=True, default=list)
    return {"generator": GENERATOR, "tasks": len(tasks), "digest": hashlib.sha256(spec.encode()).hexdigest()[:16]}


def _check_plan(db, plan: dict, target) -> set:
    """The keys already written; records the plan in a new database, refuses a different one."""
    meta = db.metadata
    n = db.count()
    if not meta.get("generator"):
        if n:
            raise reference_data.DatasetError(f"{target} already holds {n} rows not written by this generator: "
                                              "choose another output or remove it")
        db.metadata = dict(plan, complete=False)
        return set()
    if {k: meta.get(k) for k in plan} != plan:
        raise reference_data.DatasetError(f"{target} was generated with other parameters ({meta.get('tasks')} tasks, "
                                          f"digest {meta.get('digest')}); to resume it use the same parameters, "
                                          "otherwise choose another output or remove it")
    return {row.get("task") for row in db.select(include_data=False)}
