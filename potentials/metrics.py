"""Errors of a model on labelled structures: energy per atom, forces and stress, MAE and RMSE,
overall and per config_type, and a table of them for train/valid/test sets.

Units: meV/atom, meV/Å and meV/Å³ (1 meV/Å³ = 0.1602 GPa).

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> from potentials.model import ACSFModel
>>> from potentials.structures import prepare
>>> atoms = bulk("Cu", cubic=True); atoms.rattle(0.05, seed=1); atoms.calc = EMT(); _ = atoms.get_stress()
>>> model = ACSFModel(["Cu"], hidden=(4,))
>>> sorted(errors(model, prepare(model, [atoms]))["Default"])[:3]
['count', 'energy_mae', 'energy_rmse']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loss import predict
from .structures import make_batch

ALL = "all"


def residuals(model, structures, batch_size: int = 16) -> dict:
    """Per structure: config_type, energy residual per atom (eV), force residuals (n, 3) and
    stress residual (3, 3); NaN where the label is absent. A committee is scored by its mean."""
    out = {"config_type": [], "energy": [], "forces": [], "stress": []}
    want_stress = any(st.has_stress for st in structures)
    for k in range(0, len(structures), batch_size):
        part = structures[k:k + batch_size]
        batch = make_batch(part)
        members = getattr(model, "members", [model])  # a committee is scored by its mean
        preds = [predict(m, m.weights, batch, stress=want_stress) for m in members]
        E = np.mean([np.asarray(p[0]) for p in preds], axis=0)
        F = np.mean([np.asarray(p[1]) for p in preds], axis=0)
        S = np.mean([np.asarray(p[2]) for p in preds], axis=0) if want_stress else np.full((len(part), 3, 3), np.nan)
        offsets = np.concatenate([[0], np.cumsum(batch.n_atoms)])
        for s, st in enumerate(part):
            out["config_type"].append(st.config_type)
            out["energy"].append((E[s] - st.energy) / len(st.positions))
            out["forces"].append(F[offsets[s]:offsets[s + 1]] - st.forces)
            out["stress"].append(S[s] - st.stress)
    return out


def _stats(values) -> tuple[float, float]:
    v = np.concatenate([np.ravel(x) for x in values]) if values else np.zeros(0)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return 1000 * float(np.mean(np.abs(v))), 1000 * float(np.sqrt(np.mean(v * v)))


def errors(model, structures, batch_size: int = 16) -> dict:
    """{config_type (and "all" when there are several): {count, energy_mae, energy_rmse,
    forces_mae, forces_rmse, stress_mae, stress_rmse}}; NaN where a set has no such label."""
    res = residuals(model, structures, batch_size)
    types = sorted(set(res["config_type"]))
    groups = {t: [k for k, c in enumerate(res["config_type"]) if c == t] for t in types}
    if len(types) > 1:
        groups[ALL] = list(range(len(res["config_type"])))
    out = {}
    for name, idx in groups.items():
        row = {"count": len(idx)}
        for term in ("energy", "forces", "stress"):
            row[f"{term}_mae"], row[f"{term}_rmse"] = _stats([res[term][k] for k in idx])
        out[name] = row
    return out


@dataclass(frozen=True)
class ModelErrors:
    """A model's errors on one set of structures (all config_types together): MAE and RMSE of the
    energy per atom (meV/atom), the force components (meV/Å) and the stress (meV/Å³, NaN where no
    structure has a stress label); ``by_config_type`` holds :func:`errors`' rows per config_type;
    ``seconds`` the time the evaluation took."""

    structures: int
    energy_mae: float
    energy_rmse: float
    force_mae: float
    force_rmse: float
    stress_mae: float
    stress_rmse: float
    by_config_type: dict
    seconds: float = 0.0

    @classmethod
    def from_table(cls, table: dict, seconds: float = 0.0) -> ModelErrors:
        """From the output of :func:`errors`: its "all" row, or its one config_type's row."""
        row = table.get(ALL, next(iter(table.values())))
        return cls(structures=row["count"], energy_mae=row["energy_mae"], energy_rmse=row["energy_rmse"],
                   force_mae=row["forces_mae"], force_rmse=row["forces_rmse"], stress_mae=row["stress_mae"],
                   stress_rmse=row["stress_rmse"], by_config_type=table, seconds=seconds)


def error_table(sets: dict) -> str:
    """A text table of :func:`errors` for named sets ({"train": {...}, "valid": ..., "test": ...}).

    >>> print(error_table({"test": {"Default": {"count": 2, "energy_mae": 1.0, "energy_rmse": 1.5,
    ...     "forces_mae": 20.0, "forces_rmse": 30.0, "stress_mae": float("nan"), "stress_rmse": float("nan")}}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    set    config_type  count  E MAE  E RMSE  F MAE  F RMSE  S MAE  S RMSE
    test   Default          2   1.00    1.50   20.0    30.0      -       -
    (E meV/atom, F meV/Å, S meV/Å³)
    """
    head = ["set", "config_type", "count", "E MAE", "E RMSE", "F MAE", "F RMSE", "S MAE", "S RMSE"]
    rows = []
    for name, table in sets.items():
        for ctype, r in table.items():
            def fmt(x, digits):
                return "-" if not np.isfinite(x) else f"{x:.{digits}f}"

            rows.append([name, ctype, str(r["count"]), fmt(r["energy_mae"], 2), fmt(r["energy_rmse"], 2),
                         fmt(r["forces_mae"], 1), fmt(r["forces_rmse"], 1), fmt(r["stress_mae"], 3),
                         fmt(r["stress_rmse"], 3)])
    widths = [max(len(h), *(len(r[k]) for r in rows)) if rows else len(h) for k, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) if k < 2 else h.rjust(w) for k, (h, w) in enumerate(zip(head, widths)))]
    for r in rows:
        lines.append("  ".join(c.ljust(w) if k < 2 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))))
    lines.append("(E meV/atom, F meV/Å, S meV/Å³)")
    return "\n".join(lines)
