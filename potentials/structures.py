"""Training structures: ASE Atoms turned into labels plus neighbour topology, and minibatches
that concatenate them into one graph.

A structure's labels may be partial (energy-only or force-only data); which terms a batch can
train is recorded as masks. A frame that lacks a label the rest of the data has is an error
naming the record and the key (set its ``config_<term>_weight`` to 0 to keep it on purpose),
except stress, which only fully periodic cells are expected to carry.

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> from potentials.model import ACSFModel
>>> atoms = bulk("Cu", cubic=True); atoms.rattle(0.05, seed=1); atoms.calc = EMT()
>>> _ = atoms.get_stress()
>>> [st] = prepare(ACSFModel(["Cu"], hidden=(4,)), [atoms])
>>> st.has_energy, st.has_forces, st.has_stress
(True, True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .labels import LabelKeys, check_explicit_keys, keys_found, read_labels
from .neighbors import shift_vectors
from .reference_data import DatasetError

TERMS = ("energy", "forces", "stress")


@dataclass
class Structure:
    """One configuration ready for training: geometry, topology, labels and their weights."""

    positions: np.ndarray
    numbers: np.ndarray
    cell: np.ndarray
    energy: float                    # NaN when absent
    forces: np.ndarray               # (N, 3), NaN when absent
    stress: np.ndarray               # (3, 3), NaN when absent
    top: dict
    shift_vectors: np.ndarray
    config_type: str = "Default"
    weights: tuple = (1.0, 1.0, 1.0)  # per term: config_weight x config_<term>_weight
    has_energy: bool = True
    has_forces: bool = True
    has_stress: bool = False

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.cell)))


def prepare(model, frames, keys: LabelKeys | None = None, source: str = "dataset") -> list[Structure]:
    """Labels (see :mod:`potentials.labels`) and neighbour topology of ASE Atoms ``frames``."""
    keys = keys or LabelKeys()
    frames = list(frames)
    if not frames:
        raise DatasetError(f"{source}: no structures")
    check_explicit_keys(frames, keys, source)
    labels = [read_labels(a, keys, where=f"{source}: record {k}") for k, a in enumerate(frames)]
    present = {"energy": any(lb.energy is not None for lb in labels),
               "forces": any(lb.forces is not None for lb in labels)}
    if not (present["energy"] or present["forces"]):
        raise DatasetError(f"{source}: no record has an energy or forces; keys in record 0: "
                           f"{', '.join(keys_found(frames[0]))}. Name them with --energy-key/--forces-key "
                           "(LabelKeys(energy=..., forces=...))")
    out = []
    for k, (atoms, lb) in enumerate(zip(frames, labels)):
        per_term = {"energy": lb.energy_weight, "forces": lb.forces_weight, "stress": lb.stress_weight}
        for term in ("energy", "forces"):
            value = lb.energy if term == "energy" else lb.forces
            if present[term] and value is None and lb.weight * per_term[term] != 0:
                raise DatasetError(f"{source}: record {k} has no {term} (key {getattr(keys, term) or 'default'}) "
                                   f"while other records do; keys found: {', '.join(keys_found(atoms))}. Give it "
                                   f"one, or set config_{term}_weight=0 in its info to keep it without")
        pos, cell = atoms.positions.astype(float), np.array(atoms.cell, dtype=float)
        top = model.topology(pos, cell, atoms.pbc, atoms.numbers)
        stress = lb.stress
        if stress is not None and abs(np.linalg.det(cell)) < 1e-12:
            raise DatasetError(f"{source}: record {k} has a stress but its cell has no volume")
        out.append(Structure(
            pos, atoms.numbers.copy(), cell,
            lb.energy if lb.energy is not None else np.nan,
            lb.forces if lb.forces is not None else np.full((len(atoms), 3), np.nan),
            stress if stress is not None else np.full((3, 3), np.nan),
            top, shift_vectors(top["shifts"], cell), lb.config_type,
            tuple(lb.weight * per_term[t] for t in TERMS),
            lb.energy is not None, lb.forces is not None, stress is not None))
    return out


# topology entries that index atoms, and pairs, and so are offset when structures are concatenated
_ATOM_INDEX, _PAIR_INDEX = ("centers", "neighbors"), ("triplets",)


@dataclass
class Batch:
    """Structures concatenated into one graph: positions (N, 3), numbers, topology, shift vectors
    (M, 3), atom and pair structure ids, atoms per structure, volumes, labels and masks."""

    positions: np.ndarray
    numbers: np.ndarray
    top: dict
    shift_vectors: np.ndarray
    atom_structure: np.ndarray
    pair_structure: np.ndarray
    n_atoms: np.ndarray
    volumes: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    stress: np.ndarray
    weights: np.ndarray              # (S, 3): energy, forces, stress weight per structure, 0 where unlabelled
    config_types: list

    @property
    def n_structures(self) -> int:
        return len(self.n_atoms)


def make_batch(structures: list[Structure]) -> Batch:
    """Concatenate ``structures`` into one :class:`Batch`."""
    tops = [st.top for st in structures]
    n_atoms = np.array([len(st.positions) for st in structures])
    n_pairs = np.array([len(t["centers"]) for t in tops])
    atom_offset = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    pair_offset = np.concatenate([[0], np.cumsum(n_pairs)[:-1]])
    top = {"n_atoms": int(n_atoms.sum())}
    for key in tops[0]:
        if key in ("n_atoms", "shifts") or any(key not in t for t in tops):  # e.g. features cached in some only
            continue
        parts = [t[key] for t in tops]
        if key in _ATOM_INDEX:
            parts = [p + o for p, o in zip(parts, atom_offset)]
        elif key in _PAIR_INDEX:
            parts = [p + o for p, o in zip(parts, pair_offset)]
        top[key] = np.concatenate(parts)
    masks = np.array([[st.has_energy, st.has_forces, st.has_stress] for st in structures], dtype=float)
    return Batch(np.concatenate([st.positions for st in structures]),
                 np.concatenate([st.numbers for st in structures]), top,
                 np.concatenate([st.shift_vectors for st in structures]),
                 np.repeat(np.arange(len(structures)), n_atoms), np.repeat(np.arange(len(structures)), n_pairs),
                 n_atoms, np.array([st.volume for st in structures]),
                 np.array([st.energy for st in structures]), np.concatenate([st.forces for st in structures]),
                 np.stack([st.stress for st in structures]),
                 masks * np.array([st.weights for st in structures], dtype=float),
                 [st.config_type for st in structures])
