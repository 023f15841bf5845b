"""Committees of potentials: K models of one architecture trained with different seeds and
validation splits, stored in one model file. The committee predicts the mean, and its spread
measures how far a structure lies from what the members agree on (query by committee, Seung,
Opper and Sompolinsky 1992; as DP-GEN's model deviation):

    energy_std = std_k E_k,     forces_std_i = sqrt(mean_k |F_ik − F̄_i|²)   (population std)

:func:`select_uncertain` picks the frames of a trajectory where the spread is largest, for
labelling: the active-learning loop of ``examples/active_learning.py``.

>>> import numpy as np
>>> from potentials.model import ACSFModel
>>> c = Committee([ACSFModel(["Cu"], hidden=(4,), seed=k) for k in range(3)])
>>> R = np.array([[0.0, 0, 0], [2.5, 0, 0]])
>>> p = c.predict(R, np.zeros((3, 3)), [False] * 3, [29, 29])
>>> p["forces"].shape, p["forces_std"].shape, bool(p["energy_std"] > 0)
((2, 3), (2,), True)
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import sys
from typing import Callable

import numpy as np

from diffsim.files import write_npz_atomically

from .model import FORMAT, FORMAT_VERSION, ModelFileError, Potential, model_from_arrays


class Committee:
    """K potentials of the same kind, elements and cutoff; the ASE :class:`~potentials.calculator.Calculator`
    takes it like a single model and adds ``energy_std`` and ``forces_std`` to its results."""

    kind = "committee"

    def __init__(self, members: list[Potential]) -> None:
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        first = members[0]
        for k, m in enumerate(members[1:], 1):
            if m.kind != first.kind or m.symbols != first.symbols or m.cutoff != first.cutoff:
                raise ValueError(f"committee member {k} is a {m.kind} model of {m.symbols} with cutoff {m.cutoff}; "
                                 f"member 0 is a {first.kind} model of {first.symbols} with cutoff {first.cutoff}: "
                                 "members must share kind, elements and cutoff")
        self.members = members
        self.symbols, self.numbers, self.cutoff = first.symbols, first.numbers, first.cutoff

    def __len__(self) -> int:
        return len(self.members)

    def topology(self, positions, cell, pbc, numbers, pairs=None) -> dict:
        """The members' shared topology (same kind and cutoff: the same pairs)."""
        return self.members[0].topology(positions, cell, pbc, numbers, pairs=pairs)

    def predict(self, positions, cell, pbc, numbers, topology=None, stress: bool = False,
                energies: bool = False) -> dict:
        """Mean and spread: energy, energy_std, forces (N, 3), forces_std (N,), the members'
        ``energy_members`` (K,) and ``forces_members`` (K, N, 3); stress (3, 3) and stress_std
        with ``stress``; per-atom ``energies`` with ``energies``."""
        top = topology or self.topology(np.asarray(positions, float), np.asarray(cell, float), pbc, numbers)
        Es, Fs, Ss, eps = [], [], [], []
        for m in self.members:
            E, F, S = m.energy_forces(positions, cell, pbc, numbers, topology=top, stress=stress)
            Es.append(E)
            Fs.append(F)
            if stress:
                Ss.append(S)
            if energies:
                eps.append(m.per_atom_energies(positions, cell, pbc, numbers, topology=top))
        Es, Fs = np.array(Es), np.array(Fs)
        F = Fs.mean(axis=0)
        out = {"energy": float(Es.mean()), "energy_std": float(Es.std()), "forces": F,
               "forces_std": np.sqrt(np.mean(np.sum((Fs - F) ** 2, axis=2), axis=0)),
               "energy_members": Es, "forces_members": Fs}
        if stress:
            Ss = np.array(Ss)
            out["stress"], out["stress_std"] = Ss.mean(axis=0), Ss.std(axis=0)
        if energies:
            out["energies"] = np.mean(eps, axis=0)
        return out

    def energy_forces(self, positions, cell, pbc, numbers, topology=None, stress: bool = False):
        """(mean E, mean F, mean stress or None), as :meth:`Potential.energy_forces`."""
        p = self.predict(positions, cell, pbc, numbers, topology=topology, stress=stress)
        return p["energy"], p["forces"], p.get("stress")

    def per_atom_energies(self, positions, cell, pbc, numbers, topology=None) -> np.ndarray:
        return np.mean([m.per_atom_energies(positions, cell, pbc, numbers, topology=topology)
                        for m in self.members], axis=0)

    def stresses(self, positions, cell, pbc, numbers, topology=None) -> np.ndarray:
        """Mean per-atom stresses (N, 3, 3), see :meth:`Potential.stresses`."""
        return np.mean([m.stresses(positions, cell, pbc, numbers, topology=topology) for m in self.members], axis=0)

    # ------------------------------------------------------------ files

    def to_arrays(self) -> dict:
        arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
                  "kind": np.array(self.kind), "members": np.array(len(self.members))}
        for k, m in enumerate(self.members):
            arrays.update({f"member{k}/{name}": v for name, v in m.to_arrays().items()
                           if name not in ("format", "format_version")})
        return arrays

    def save(self, path: str | os.PathLike) -> None:
        """All members in one ``.npz``, written atomically; :func:`potentials.model.load_model` reads it."""
        write_npz_atomically(path, self.to_arrays())

    @classmethod
    def from_arrays(cls, data: dict, path="model") -> "Committee":
        try:
            n = int(data["members"])
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{path}: a committee file without its member count") from None
        members = []
        for k in range(n):
            prefix = f"member{k}/"
            part = {name[len(prefix):]: v for name, v in data.items() if name.startswith(prefix)}
            if not part:
                raise ModelFileError(f"{path}: committee member {k} of {n} is missing")
            part.update({name: data[name] for name in ("format", "format_version") if name in data})
            members.append(model_from_arrays(part, f"{path} (member {k})"))
        return cls(members)


def train_committee(make_model: Callable[[int], Potential], frames, config=None, size: int = 4,
                    validation=None, test=None, progress: Callable[[int, object], None] | None = None,
                    client=None, members_dir: str | os.PathLike | None = None):
    """Train ``size`` models ``make_model(k)`` (k = 0..size−1: give each its own seed), member k
    with ``config.seed + k`` (its own validation split and batch order) and its own checkpoint
    file; returns (Committee, [History]). ``progress(k, history)`` is called after each member.

    The members are independent tasks keyed ``member-k`` (:func:`diffsim.cluster.map_tasks`): on
    ``client``'s workers, or here one after the other, with one BLAS thread either way, so the
    two give the same weights bit for bit. With ``members_dir``, each finished member is written
    there at once (atomically, with a digest of the data, options and initial weights); a rerun
    after a crash or a killed client keeps the members already there and trains only the rest,
    and refuses members trained on other data or options.

    >>> import tempfile
    >>> from potentials.labelling import emt_tasks, label
    >>> from potentials.model import ACSFModel
    >>> from potentials.training import TrainConfig
    >>> tasks = emt_tasks("Cu", size=(2, 2, 2), temperatures=(300,), md_samples=4, rattled=2, strained=0, vacancies=0)
    >>> frames = [atoms for t in tasks for atoms, _ in label(t)]
    >>> folder = tempfile.mkdtemp()
    >>> c, h = train_committee(lambda k: ACSFModel(["Cu"], hidden=(4,), seed=k), frames,
    ...                        TrainConfig(epochs=2, progress=False), size=2, members_dir=folder)
    >>> again, _ = train_committee(lambda k: ACSFModel(["Cu"], hidden=(4,), seed=k), frames,
    ...                            TrainConfig(epochs=2, progress=False), size=2, members_dir=folder,
    ...                            progress=lambda k, h: print("retrained", k))
    >>> all(np.array_equal(a, b) for m, n in zip(c.members, again.members) for a, b in zip(m.weights, n.weights))
    True
    """
    from diffsim.cluster import map_tasks

    from .training import TrainConfig

    config = config or TrainConfig()
    if int(size) != size or size < 2:
        raise ValueError(f"a committee needs at least 2 members (--ensemble K with K >= 2), got {size}")
    size = int(size)
    plans = {k: _member_plan(make_model, k, frames, config, validation, test) for k in range(size)}
    kept = _kept_members(members_dir, plans)
    todo = [k for k in range(size) if k not in kept]
    if kept and config.progress:
        print(f"resuming the committee in {members_dir}: {len(kept)} of {size} members are already trained",
              file=sys.stderr)
    on_workers = client is not None
    shared = (make_model, frames, config, validation, test, on_workers)
    for key, (arrays, history) in map_tasks(_train_member, todo, keys=[f"member-{k}" for k in todo], client=client,
                                            shared=shared, progress=config.progress and on_workers,
                                            description="committee members"):
        k = int(key.split("-")[1])
        if k in kept:  # never twice, whatever the scheduler does
            continue
        if members_dir is not None:
            _save_member(members_dir, k, arrays, history, plans[k])
        kept[k] = (model_from_arrays(arrays, f"committee member {k}"), history)
        if progress is not None:
            progress(k, history)
    return Committee([kept[k][0] for k in range(size)]), [kept[k][1] for k in range(size)]


def _member_config(config, k: int, on_workers: bool):
    checkpoint = None
    if config.checkpoint:
        p = pathlib.Path(config.checkpoint)
        checkpoint = str(p.with_name(f"{p.stem}.member{k}{p.suffix or '.npz'}"))
    # a worker's progress bars would go to its log: the client shows one bar over the members instead
    return dataclasses.replace(config, seed=config.seed + k, checkpoint=checkpoint,
                               progress=config.progress and not on_workers)


def _train_member(k: int, shared) -> tuple[dict, object]:
    """The task: train member k; its model travels back as the arrays of its file (no pickle)."""
    from diffsim.threads import single_threaded_blas

    from .training import train

    make_model, frames, config, validation, test, on_workers = shared
    model = make_model(k)
    with single_threaded_blas():  # the same arithmetic here and on a worker (one BLAS thread there)
        history = train(model, frames, _member_config(config, k, on_workers), validation=validation, test=test)
    return model.to_arrays(), history


def _member_plan(make_model, k, frames, config, validation, test) -> str:
    """A digest of what member k is trained from: data, options, its initial weights."""
    import hashlib

    h = hashlib.sha256()
    for name, part in (("train", frames), ("validation", validation or []), ("test", test or [])):
        h.update(name.encode())
        for atoms in part:
            _hash_atoms(h, atoms)
    options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
               if f.name not in ("progress", "checkpoint")}
    h.update(json.dumps(options, sort_keys=True, default=repr).encode())
    h.update(str(k).encode())
    for name, value in sorted(make_model(k).to_arrays().items()):
        a = np.ascontiguousarray(value)
        h.update(f"{name}{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _hash_atoms(h, atoms) -> None:
    arrays = [atoms.numbers, atoms.positions, np.asarray(atoms.cell), atoms.pbc]
    results = getattr(atoms.calc, "results", None) or {}
    arrays += [np.asarray(results[name], dtype=float) for name in sorted(results)]
    arrays += [np.asarray(v) for _, v in sorted(atoms.info.items()) if isinstance(v, (int, float, np.ndarray))]
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    h.update(json.dumps({k: v for k, v in sorted(atoms.info.items()) if isinstance(v, str)}).encode())


def members_folder(model_file: str | os.PathLike) -> pathlib.Path:
    """The side directory where ``train --ensemble K --out model_file`` keeps finished members
    until the committee file is written.

    >>> members_folder("runs/cu.npz").as_posix()
    'runs/cu.npz.members'
    """
    p = pathlib.Path(model_file)
    return p.with_name(p.name + ".members")


def remove_members(folder: str | os.PathLike) -> None:
    """Remove a side directory of members (once the committee file holds them)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def member_path(members_dir: str | os.PathLike, k: int) -> pathlib.Path:
    """Where member k of a committee being trained is kept until the committee file is written."""
    return pathlib.Path(members_dir) / f"member{k}.npz"


def _save_member(members_dir, k, arrays, history, plan) -> None:
    pathlib.Path(members_dir).mkdir(parents=True, exist_ok=True)
    extra = {"member/plan": np.array(plan), "member/history": np.array(json.dumps(dataclasses.asdict(history),
                                                                                 default=_plain))}
    write_npz_atomically(member_path(members_dir, k), dict(arrays, **extra))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in a member's history")


def _kept_members(members_dir, plans: dict) -> dict:
    """Members already trained in ``members_dir`` for these plans; refuses foreign ones."""
    from .training import History

    kept: dict = {}
    if members_dir is None or not pathlib.Path(members_dir).is_dir():
        return kept
    for k, plan in plans.items():
        path = member_path(members_dir, k)
        if not path.exists():
            continue
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {name: f[name] for name in f.files}
        except (OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: a damaged committee member ({exc}); remove it to retrain that member") \
                from None
        if str(data.pop("member/plan", "")) != plan:
            raise ModelFileError(f"{path} was trained from other data, options or initial weights: to resume use "
                                 f"the same ones, otherwise remove {members_dir}")
        history = History(**json.loads(str(data.pop("member/history"))))
        kept[k] = (model_from_arrays(data, str(path)), history)
    return kept


def frame_uncertainty(committee: Committee, frames) -> np.ndarray:
    """The largest per-atom force spread (eV/Å) of each frame."""
    out = []
    for atoms in frames:
        p = committee.predict(atoms.positions, np.array(atoms.cell), atoms.pbc, atoms.numbers)
        out.append(float(np.max(p["forces_std"])) if len(atoms) else 0.0)
    return np.array(out)


def select_uncertain(committee: Committee, frames, n: int, min_separation: int = 1,
                     threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``n`` frames with the largest force spread (greedy: no two picks closer
    than ``min_separation`` frames, so that one excursion of a trajectory is not picked n
    times; only frames above ``threshold`` eV/Å if given), and every frame's spread."""
    scores = frame_uncertainty(committee, frames)
    chosen: list[int] = []
    for k in np.argsort(-scores, kind="stable"):
        if len(chosen) >= n:
            break
        if threshold is not None and scores[k] < threshold:
            break
        if all(abs(int(k) - c) >= min_separation for c in chosen):
            chosen.append(int(k))
    return np.array(chosen, dtype=int), scores
