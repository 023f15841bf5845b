"""Reference energies E0(Z) of the elements (the "E0s"): E = Σ_i E0(Z_i) + what the network
learns. Three sources, as in MACE:

- a mapping given by the user ({"Cu": -0.007, "Au": -0.006}, eV per atom);
- isolated-atom frames in the data (``config_type=IsolatedAtom``, or one atom without
  periodicity): their energy is the element's E0, and they are not trained on;
- a least-squares fit of the structures' energies on their element counts (the default when the
  data has no isolated atoms).

>>> from ase import Atoms
>>> from ase.calculators.singlepoint import SinglePointCalculator
>>> atom = Atoms("Cu"); atom.calc = SinglePointCalculator(atom, energy=-0.25)
>>> frames, isolated = split_isolated([atom])
>>> frames, isolated
([], {'Cu': -0.25})
"""

from __future__ import annotations

import numpy as np

from .labels import LabelKeys, is_isolated_atom, read_labels
from .reference_data import DatasetError

E0_SOURCES = ("isolated", "fit")


def split_isolated(frames, keys: LabelKeys | None = None) -> tuple[list, dict]:
    """(the frames that are not isolated atoms, {symbol: energy of its isolated atom})."""
    keys = keys or LabelKeys()
    rest, isolated = [], {}
    for k, atoms in enumerate(frames):
        labels = read_labels(atoms, keys, where=f"record {k}")
        if is_isolated_atom(atoms, labels):
            symbol = atoms.get_chemical_symbols()[0] if len(atoms) == 1 else None
            if symbol is None:
                raise DatasetError(f"record {k}: config_type {labels.config_type!r} but {len(atoms)} atoms; an "
                                   "isolated-atom frame holds one atom")
            isolated[symbol] = labels.energy
        else:
            rest.append(atoms)
    return rest, isolated


def parse_e0s(text: str) -> dict | str:
    """``--E0s`` as given on the command line: "isolated", "fit", a JSON/Python mapping
    '{"Cu": -0.007}' or 'Cu:-0.007,Au:-0.006'.

    >>> parse_e0s("Cu:-0.5,Au:-0.25")
    {'Cu': -0.5, 'Au': -0.25}
    """
    import json

    text = text.strip()
    if text in E0_SOURCES:
        return text
    try:
        if text.startswith("{"):
            value = json.loads(text.replace("'", '"'))
        else:
            value = {k.strip(): v for k, v in (item.split(":") for item in text.split(","))}
        return {str(k): float(v) for k, v in value.items()}
    except (ValueError, TypeError):
        raise DatasetError(f"cannot read E0s {text!r}: give 'isolated', 'fit', or a mapping such as "
                           "'{\"Cu\": -0.007}' or 'Cu:-0.007,Au:-0.006' (eV per atom)") from None


def reference_energies(model, e0s, structures, isolated: dict | None = None) -> dict:
    """E0 of each of ``model``'s elements from ``e0s`` (a mapping, "isolated", "fit" or None:
    isolated atoms if the data has them for every element, else "fit"). Raises
    :class:`DatasetError` for an element of a mapping that the data does not contain, or an
    element the model needs that the source does not give."""
    isolated = isolated or {}
    present = {s for st in structures for s in _symbols(st.numbers)} | set(isolated)
    if e0s is None:
        e0s = "isolated" if isolated and set(model.symbols) <= set(isolated) else "fit"
    if isinstance(e0s, str):
        if e0s == "fit":
            return fit_reference_energies(model, structures)
        if e0s != "isolated":
            raise DatasetError(f"unknown E0 source {e0s!r}: use a mapping, 'isolated' or 'fit'")
        given, source = isolated, "the isolated-atom frames"
    else:
        given, source = {str(k): float(v) for k, v in e0s.items()}, "the E0s given"
        extra = sorted(set(given) - present)
        if extra:
            raise DatasetError(f"E0s given for {extra}, which no structure contains (elements in the data: "
                               f"{sorted(present)}); remove them or check the symbols")
    missing = [s for s in model.symbols if s not in given]
    if missing:
        raise DatasetError(f"{source} have no E0 for {missing}; give every element of the model "
                           f"({model.symbols}), or use --E0s fit")
    return {s: given[s] for s in model.symbols}


def fit_reference_energies(model, structures) -> dict:
    """Least squares of the structures' energies on their element counts (structures without an
    energy are skipped; zero for every element if none has one)."""
    labelled = [st for st in structures if st.has_energy]
    if not labelled:
        return {s: 0.0 for s in model.symbols}
    counts = np.array([[np.sum(st.numbers == z) for z in model.numbers] for st in labelled], dtype=float)
    energies = np.array([st.energy for st in labelled])
    ref, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {s: float(r) for s, r in zip(model.symbols, ref)}


def _symbols(numbers) -> list[str]:
    from ase.data import chemical_symbols

    return [chemical_symbols[z] for z in np.unique(numbers)]
