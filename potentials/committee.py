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
import os
import pathlib
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
                    validation=None, test=None, progress: Callable[[int, object], None] | None = None):
    """Train ``size`` models ``make_model(k)`` (k = 0..size−1: give each its own seed), member k
    with ``config.seed + k`` (its own validation split and batch order) and its own checkpoint
    file; returns (Committee, [History]). ``progress(k, history)`` is called after each member."""
    from .training import TrainConfig, train

    config = config or TrainConfig()
    if size < 2:
        raise ValueError(f"a committee needs at least 2 members (--ensemble K with K >= 2), got {size}")
    members, histories = [], []
    for k in range(size):
        checkpoint = None
        if config.checkpoint:
            p = pathlib.Path(config.checkpoint)
            checkpoint = str(p.with_name(f"{p.stem}.member{k}{p.suffix or '.npz'}"))
        member_config = dataclasses.replace(config, seed=config.seed + k, checkpoint=checkpoint)
        model = make_model(k)
        history = train(model, frames, member_config, validation=validation, test=test)
        members.append(model)
        histories.append(history)
        if progress is not None:
            progress(k, history)
    return Committee(members), histories


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
