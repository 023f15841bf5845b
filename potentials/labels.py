"""Reference labels of a configuration: which keys hold its energy, forces and stress, and its
weights and config_type, as MACE and NequIP users store them in extxyz or ase.db.

By default a label is taken from the attached calculator's results (what ASE writes for
``energy``, ``forces``, ``stress``), then from the common key names in ``atoms.info`` (energy,
stress, virials) or ``atoms.arrays`` (forces): ``REF_energy``, ``energy``, ``DFT_energy``...
A key given explicitly must exist in every record that is labelled at all. Weights follow
MACE's conventions: ``config_weight`` and ``config_energy_weight``/``config_forces_weight``/
``config_stress_weight`` in ``atoms.info``, and ``config_type`` (default ``"Default"``).

>>> from ase.build import bulk
>>> atoms = bulk("Cu", cubic=True)
>>> atoms.info["REF_energy"] = -1.5
>>> labels = read_labels(atoms, LabelKeys())
>>> labels.energy, labels.forces is None, labels.config_type
(-1.5, True, 'Default')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference_data import DatasetError

# searched in this order after the calculator's results, when no key is given
DEFAULT_KEYS = {
    "energy": ("REF_energy", "energy", "DFT_energy", "dft_energy", "total_energy"),
    "forces": ("REF_forces", "forces", "DFT_forces", "dft_forces"),
    "stress": ("REF_stress", "stress", "DFT_stress", "dft_stress"),
    "virials": ("REF_virials", "virials", "virial", "REF_virial"),
}
# a stress beyond this (eV/Å³, 160 GPa) is not a stress in eV/Å³: most likely GPa or kbar
STRESS_LIMIT = 1.0
ISOLATED_ATOM = "IsolatedAtom"


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live: ``None`` searches the calculator's results, then :data:`DEFAULT_KEYS`.
    ``virials`` (eV, virial = −stress × volume) is read when there is no stress."""

    energy: str | None = None
    forces: str | None = None
    stress: str | None = None
    virials: str | None = None


@dataclass
class Labels:
    """One configuration's labels (``None`` where absent), weights and config_type."""

    energy: float | None
    forces: np.ndarray | None
    stress: np.ndarray | None          # (3, 3), eV/Å³, ASE's sign (positive under tension)
    config_type: str = "Default"
    weight: float = 1.0
    energy_weight: float = 1.0
    forces_weight: float = 1.0
    stress_weight: float = 1.0


def _calc_results(atoms) -> dict:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def keys_found(atoms) -> list[str]:
    """Every key a label could come from in ``atoms``: calculator results, info and arrays.

    >>> from ase.build import bulk
    >>> a = bulk("Cu"); a.info["REF_energy"] = 1.0
    >>> keys_found(a)
    ['info:REF_energy', 'arrays:numbers', 'arrays:positions']
    """
    return ([f"calc:{k}" for k in sorted(_calc_results(atoms))] + [f"info:{k}" for k in sorted(atoms.info)]
            + [f"arrays:{k}" for k in sorted(atoms.arrays)])


def _lookup(atoms, kind: str, key: str | None, where: str):
    """The raw value of label ``kind`` (or None), and the key it came from."""
    store = atoms.arrays if kind == "forces" else atoms.info
    if key is not None:
        results = _calc_results(atoms)
        if key in store:
            return store[key], key
        if key in results:
            return results[key], key
        if kind == "forces" and key in atoms.info:  # some writers put per-atom data in info
            return atoms.info[key], key
        return None, key
    results = _calc_results(atoms)
    calc_key = "forces" if kind == "forces" else kind
    if calc_key in results and results[calc_key] is not None:
        return results[calc_key], f"calculator's {calc_key}"
    for name in DEFAULT_KEYS[kind]:
        if name in store and store[name] is not None:
            return store[name], name
    return None, None


def _float(value, name: str, where: str) -> float:
    try:
        x = float(np.asarray(value, dtype=float).reshape(()))
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: {name} must be one number, got {np.shape(value)}") from None
    if not np.isfinite(x):
        raise DatasetError(f"{where}: {name} is {x}")
    return x


def stress_matrix(value, name: str, where: str) -> np.ndarray:
    """A (3, 3) stress from 6 Voigt values (xx, yy, zz, yz, xz, xy), 9 values or a 3 x 3 matrix;
    raises naming the record and the key for another shape, NaN, or values too large to be eV/Å³.

    >>> float(stress_matrix([1e-3, 2e-3, 3e-3, 0, 0, 4e-4], "stress", "record 0")[0, 1])
    0.0004
    """
    from ase.stress import voigt_6_to_full_3x3_stress

    a = np.asarray(value, dtype=float)
    if a.size == 6:
        m = voigt_6_to_full_3x3_stress(a.reshape(6))
    elif a.size == 9:
        m = a.reshape(3, 3)
    else:
        raise DatasetError(f"{where}: {name} has shape {a.shape}; a stress is 6 Voigt values (xx yy zz yz xz xy), "
                           "9 values or a 3 x 3 matrix")
    if not np.all(np.isfinite(m)):
        raise DatasetError(f"{where}: {name} contains NaN or inf")
    if np.max(np.abs(m)) > STRESS_LIMIT:
        raise DatasetError(f"{where}: {name} reaches {np.max(np.abs(m)):.3g}, not a stress in eV/Å³ (> {STRESS_LIMIT}"
                           " eV/Å³ = 160 GPa); convert it (1 GPa = 1/160.2 eV/Å³, 1 kbar = 0.1 GPa)")
    return 0.5 * (m + m.T)


def read_labels(atoms, keys: LabelKeys, where: str = "record") -> Labels:
    """The labels of one configuration; raises :class:`DatasetError` naming ``where`` and the key
    for a key that holds nothing, a wrong shape or a non-finite value."""
    out = {}
    for kind in ("energy", "forces", "stress", "virials"):
        key = getattr(keys, kind)
        value, source = _lookup(atoms, kind, key, where)
        if value is None and key is not None and kind != "virials" and not (kind == "stress" and keys.virials):
            continue  # an explicit key missing from this record: checked over the dataset (load_dataset)
        out[kind] = (value, source)
    energy = forces = stress = None
    if out.get("energy", (None,))[0] is not None:
        energy = _float(out["energy"][0], out["energy"][1], where)
    if out.get("forces", (None,))[0] is not None:
        forces = np.asarray(out["forces"][0], dtype=float)
        if forces.shape != (len(atoms), 3):
            raise DatasetError(f"{where}: {out['forces'][1]} has shape {forces.shape}, expected ({len(atoms)}, 3)")
        if not np.all(np.isfinite(forces)):
            raise DatasetError(f"{where}: {out['forces'][1]} contains NaN or inf")
    n = max(len(atoms), 1)
    if energy is not None and abs(energy) / n > 1e4:
        raise DatasetError(f"{where}: {energy / n:.3g} eV per atom is not a plausible energy in eV (meV, kJ/mol, "
                           "kcal/mol?): store energies in eV")
    if forces is not None and forces.size and np.max(np.abs(forces)) > 1e4:
        raise DatasetError(f"{where}: a force of {np.max(np.abs(forces)):.3g} eV/Å is not plausible: store forces in "
                           "eV/Å (not meV/Å or kJ/mol/nm), or drop the exploded structure")
    if out.get("stress", (None,))[0] is not None:
        stress = stress_matrix(out["stress"][0], out["stress"][1], where)
    elif out.get("virials", (None,))[0] is not None:
        volume = abs(np.linalg.det(np.array(atoms.cell)))
        if volume < 1e-12:
            raise DatasetError(f"{where}: {out['virials'][1]} given but the cell has no volume")
        virial = np.asarray(out["virials"][0], dtype=float)
        if virial.size not in (6, 9):
            raise DatasetError(f"{where}: {out['virials'][1]} has shape {virial.shape}; expected 6 or 9 values")
        stress = stress_matrix(-virial / volume, out["virials"][1], where)
    info = atoms.info

    def weight(name):
        return _float(info.get(name, 1.0), name, where)

    config_type = str(info.get("config_type", "Default"))
    return Labels(energy, forces, stress, config_type, weight("config_weight"), weight("config_energy_weight"),
                  weight("config_forces_weight"), weight("config_stress_weight"))


def is_isolated_atom(atoms, labels: Labels) -> bool:
    """An isolated-atom reference frame (MACE's ``config_type=IsolatedAtom``, or one atom without
    periodicity) that carries an energy.

    >>> from ase import Atoms
    >>> is_isolated_atom(Atoms("Cu"), Labels(-0.1, None, None))
    True
    """
    if labels.energy is None:
        return False
    return labels.config_type == ISOLATED_ATOM or (len(atoms) == 1 and not np.any(atoms.pbc))


def check_explicit_keys(frames, keys: LabelKeys, source: str) -> None:
    """Raise if an explicitly given key names nothing in any record, listing the keys found."""
    for kind in ("energy", "forces", "stress", "virials"):
        key = getattr(keys, kind)
        if key is None:
            continue
        if not any(_lookup(a, kind, key, "")[0] is not None for a in frames):
            raise DatasetError(f"{source}: no record has {kind} under the key {key!r}; keys in record 0: "
                               f"{', '.join(keys_found(frames[0]))}")
