"""Learned interatomic potentials: the interface every model shares, saving and loading.

A model maps a structure to per-atom energies, E = Σ_i ε_i + E_ref(Z_i), written with the engine,
so forces F = −∂E/∂R are reverse mode, stress σ = (1/V) ∂E/∂ε is the strain derivative, and
force-matching training differentiates the forces once more. Every model offers the same
methods (``topology``, ``atom_energies``, ``energy_forces``, ``fit_normalisation``, ``save``), so
the trainer, the ASE calculator and the CLI serve them all. Two kinds:

- :class:`potentials.acsf.ACSFModel`: per-element networks on atom-centred symmetry functions;
- :class:`potentials.painn.PaiNNModel`: an equivariant message-passing network.

Models are saved as ``.npz`` with a format version, written atomically, loaded without pickle;
:func:`load_model` reads either kind.

>>> import numpy as np
>>> from potentials.acsf import ACSFModel
>>> m = ACSFModel(["Cu"], hidden=(8,), seed=0)
>>> E, F, _ = m.energy_forces(np.array([[0.0, 0, 0], [2.5, 0, 0]]), np.zeros((3, 3)), [False] * 3, [29, 29])
>>> F.shape
(2, 3)
"""

from __future__ import annotations

import json
import os

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.errors import DiffsimError
from diffsim.files import write_npz_atomically
from diffsim.threads import single_threaded_blas
from diffsim.tree import flatten, unflatten

from .descriptors import atomic_numbers_of, species_index
from .neighbors import shift_vectors

FORMAT = "diffsim-potential"
FORMAT_VERSION = 2


class ModelFileError(DiffsimError, ValueError):
    """A model file that cannot be loaded: wrong format, another version, or damaged."""


class Potential:
    """What every model shares: elements, reference energies, energy/forces/stress, files.

    >>> import numpy as np
    >>> from potentials.acsf import ACSFModel
    >>> m = ACSFModel(["Cu"], hidden=(4,))
    >>> isinstance(m, Potential), m.species_index([29, 29]).tolist()
    (True, [0, 0])

    A subclass sets ``kind`` and ``cutoff``, and defines ``topology`` (the static pair data of a
    structure), ``atom_energies`` (the differentiable part), ``config`` (its constructor's
    arguments) and, if it has any, ``buffers``/``set_buffers`` (fitted constants such as feature
    normalisations).
    """

    kind = "?"
    cutoff = 0.0

    def __init__(self, elements) -> None:
        from ase.data import chemical_symbols

        if isinstance(elements, str):
            elements = [elements]
        self.numbers = atomic_numbers_of(elements)
        if len(self.numbers) == 0 or len(set(self.numbers.tolist())) != len(self.numbers) \
                or not all(0 < z < len(chemical_symbols) for z in self.numbers):
            raise ValueError(f"a model needs one or more distinct chemical elements, got {list(elements)!r}")
        self.symbols = [chemical_symbols[z] for z in self.numbers]
        self.reference = {s: 0.0 for s in self.symbols}
        self.weights = {}

    # ------------------------------------------------------------ to define in a model

    def topology(self, positions, cell, pbc, numbers, pairs=None) -> dict:
        """Static data of a structure: at least ``centers``, ``neighbors``, ``shifts`` (integer
        cell offsets of each pair) and ``n_atoms``."""
        raise NotImplementedError

    def atom_energies(self, weights, positions, numbers, top, shift_vectors):
        """Per-atom energies (N,) without the references, differentiable in ``weights`` and
        ``positions``; pair p's vector is R[neighbors[p]] − R[centers[p]] + shift_vectors[p]."""
        raise NotImplementedError

    def config(self) -> dict:
        """The constructor's keyword arguments (JSON-able), so ``type(self)(**config())`` rebuilds it."""
        raise NotImplementedError

    def buffers(self) -> dict:
        """Fitted constants that are not trained (name → array)."""
        return {}

    def set_buffers(self, arrays: dict) -> None:
        """Restore what :meth:`buffers` returned."""

    def fit_inputs(self, structures) -> None:
        """Fit input normalisations on prepared training structures (before training)."""

    def cache_inputs(self, structures) -> None:
        """Store in each prepared structure's topology what depends on its positions only (the
        trainer revisits the same structures every epoch); nothing by default."""

    # ------------------------------------------------------------ shared

    def species_index(self, numbers) -> np.ndarray:
        """Index of each atom's element in ``self.numbers``; raises for an element not covered."""
        return species_index(numbers, self.numbers)

    def reference_energies(self, numbers) -> np.ndarray:
        """E_ref(Z_i) of each atom."""
        ref = np.array([self.reference[s] for s in self.symbols])
        return ref[self.species_index(numbers)]

    def energy(self, weights, positions, cell, pbc, numbers, topology=None):
        """Total energy (a scalar), differentiable in ``weights``, ``positions`` and ``cell``."""
        top = topology or self.topology(ds.stop_gradient(positions), ds.stop_gradient(cell), pbc, numbers)
        eps = self.atom_energies(weights, positions, numbers, top, shift_vectors(top["shifts"], cell))
        return dnp.sum(eps) + float(np.sum(self.reference_energies(numbers)))

    def energy_forces(self, positions, cell, pbc, numbers, topology=None, stress: bool = False):
        """(E, F, stress or None) for one structure; stress (3, 3) = (1/V) ∂E/∂ε, symmetrised.
        numpy's BLAS runs on one thread here: the products are (atoms or pairs) × (tens of
        features), which OpenBLAS's pool slows down on a busy machine (2-5x the CPU time)."""
        with single_threaded_blas():
            return self._energy_forces(positions, cell, pbc, numbers, topology, stress)

    def _energy_forces(self, positions, cell, pbc, numbers, topology, stress):
        positions = np.asarray(positions, dtype=float)
        cell = np.asarray(cell, dtype=float)
        numbers = np.asarray(numbers)
        if numbers.shape != positions.shape[:1]:
            raise ValueError(f"{len(numbers)} atomic numbers for {len(positions)} positions: give one per atom")
        top = topology or self.topology(positions, cell, pbc, numbers)
        if not stress:
            E, dR = ds.value_and_grad(lambda R: self.energy(self.weights, R, cell, pbc, numbers, top))(positions)
            return float(E), -np.asarray(dR), None
        eye = np.eye(3)

        def strained(R, eps):
            return self.energy(self.weights, R @ (eye + eps), cell @ (eye + eps), pbc, numbers, top)

        E, (dR, deps) = ds.value_and_grad(strained, argnums=(0, 1))(positions, np.zeros((3, 3)))
        volume = abs(np.linalg.det(cell))
        sigma = 0.5 * (deps + deps.T) / volume
        return float(E), -np.asarray(dR), sigma

    def stresses(self, positions, cell, pbc, numbers, topology=None) -> np.ndarray:
        """Per-atom stresses (N, 3, 3) in eV/Å³ that sum to the stress: with g_p = ∂E/∂D_p the
        energy gradient of pair p's vector, each pair's virial D_p ⊗ g_p is shared half and half
        by its two atoms, symmetrised and divided by the cell volume (as ASE's LennardJones)."""
        positions, cell = np.asarray(positions, dtype=float), np.asarray(cell, dtype=float)
        top = topology or self.topology(positions, cell, pbc, numbers)
        volume = abs(np.linalg.det(cell))
        if volume < 1e-12:
            raise ValueError("per-atom stresses need a cell with a volume")
        base = shift_vectors(top["shifts"], cell)
        # D_p = R_j − R_i + shift_p, so the gradient in the (additive) shift is the gradient in D_p
        g = np.asarray(ds.grad(lambda sv: dnp.sum(self.atom_energies(self.weights, positions, numbers, top, sv)))(base))
        i, j = top["centers"], top["neighbors"]
        W = (positions[j] - positions[i] + base)[:, :, None] * g[:, None, :]
        n = len(positions)
        per_atom = np.zeros((n, 3, 3))
        np.add.at(per_atom, i, 0.5 * W)
        np.add.at(per_atom, j, 0.5 * W)
        return 0.5 * (per_atom + per_atom.transpose(0, 2, 1)) / volume

    def per_atom_energies(self, positions, cell, pbc, numbers, topology=None) -> np.ndarray:
        """Energy of each atom (its share of E, references included)."""
        positions, cell = np.asarray(positions, dtype=float), np.asarray(cell, dtype=float)
        top = topology or self.topology(positions, cell, pbc, numbers)
        eps = self.atom_energies(self.weights, positions, numbers, top, shift_vectors(top["shifts"], cell))
        return np.asarray(eps) + self.reference_energies(numbers)

    def fit_normalisation(self, structures, reference: dict | None = None) -> None:
        """Input normalisations (:meth:`fit_inputs`), then the reference energies: ``reference``
        (symbol → eV) if given, else a least-squares fit on the element counts
        (:func:`potentials.e0s.fit_reference_energies`), so the network learns the small remainder."""
        from .e0s import fit_reference_energies

        self.fit_inputs(structures)
        self.reference = dict(reference) if reference is not None else fit_reference_energies(self, structures)

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` (.npz) atomically: a temporary file, then a rename."""
        write_npz_atomically(path, self.arrays())

    def to_arrays(self) -> dict:
        """The same as :meth:`arrays` (the name committees use)."""
        return self.arrays()

    def arrays(self) -> dict:
        """What :meth:`save` writes (name → array); :func:`model_from_arrays` reads it back."""
        leaves, _ = flatten(self.weights)
        arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
                  "kind": np.array(self.kind), "config": np.array(json.dumps(self.config())),
                  "symbols": np.array(self.symbols),
                  "reference": np.array([self.reference[s] for s in self.symbols], dtype=float)}
        arrays.update({f"weight/{k}": np.asarray(w, dtype=float) for k, w in enumerate(leaves)})
        arrays.update({f"buffer/{name}": np.asarray(v) for name, v in self.buffers().items()})
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Potential":
        """Read a model written by :meth:`save` (no pickle; format, version and kind are checked)."""
        model = load_model(path)
        if cls is not Potential and not isinstance(model, cls):
            raise ModelFileError(f"{path}: a '{model.kind}' model, not '{cls.kind}'; use potentials.model.load_model")
        return model


def model_kinds() -> dict:
    """Model kinds by name.

    >>> sorted(model_kinds())
    ['acsf', 'painn']
    """
    from .acsf import ACSFModel
    from .painn import PaiNNModel

    return {"acsf": ACSFModel, "painn": PaiNNModel}


def load_model(path: str | os.PathLike) -> Potential:
    """Read any model written by ``save``: the file's ``kind`` picks the class.

    >>> import tempfile, os
    >>> from potentials.acsf import ACSFModel
    >>> path = os.path.join(tempfile.mkdtemp(), "m.npz")
    >>> ACSFModel(["Cu"], hidden=(4,)).save(path)
    >>> type(load_model(path)).__name__
    'ACSFModel'
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path}: a folder, not a model file") from None
    except Exception as exc:
        why = "it holds pickled objects, which a diffsim model never does" if "pickle" in str(exc) else \
            f"{type(exc).__name__}: {exc}"
        raise ModelFileError(f"{path}: not a diffsim model file (an .npz written by 'diffsim potential train'; "
                             f"{why})") from None
    return model_from_arrays(data, path)


def model_from_arrays(data: dict, path) -> Potential:
    """The model described by ``data`` (what :meth:`Potential.arrays` gives); ``path`` names where
    it came from in error messages. Raises :class:`ModelFileError` for anything missing or wrong."""
    if data.get("format") is None or str(data["format"]) != FORMAT:
        raise ModelFileError(f"{path}: not a diffsim potential (no '{FORMAT}' marker)")
    if str(data.get("kind")) == "committee":
        from .committee import Committee

        return Committee.from_arrays(data, path)
    try:
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ModelFileError(f"{path}: model format version {version}; this diffsim reads version "
                                 f"{FORMAT_VERSION}. Retrain, or use the diffsim version that wrote it")
        kinds = model_kinds()
        kind = str(data["kind"])
        if kind not in kinds:
            raise ModelFileError(f"{path}: unknown model kind {kind!r} (known: {sorted(kinds)})")
        model = kinds[kind](**json.loads(str(data["config"])))
        leaves, tree = flatten(model.weights)
        n_stored = sum(k.startswith("weight/") for k in data)
        if n_stored != len(leaves):
            raise ModelFileError(f"{path}: {n_stored} weight arrays; the '{kind}' model it describes has {len(leaves)}")
        stored = [data[f"weight/{k}"] for k in range(len(leaves))]
        for k, (a, b) in enumerate(zip(leaves, stored)):
            if np.shape(a) != b.shape:
                raise ModelFileError(f"{path}: weight {k} has shape {b.shape}, the model needs {np.shape(a)}")
            if not np.all(np.isfinite(b)):
                raise ModelFileError(f"{path}: weight {k} holds NaN or infinite values; the model is unusable "
                                     "(retrain it, with a smaller learning rate if training diverged)")
        reference = np.asarray(data["reference"], dtype=float)
        if reference.shape != (len(model.symbols),) or not np.all(np.isfinite(reference)):
            raise ModelFileError(f"{path}: the reference energies are damaged (shape {reference.shape}, "
                                 f"{len(model.symbols)} elements)")
        model.weights = unflatten(tree, stored)
        model.reference = {s: float(r) for s, r in zip(model.symbols, reference)}
        buffers = {k[len("buffer/"):]: v for k, v in data.items() if k.startswith("buffer/")}
        for name, v in buffers.items():
            if not np.all(np.isfinite(np.asarray(v, dtype=float))):
                raise ModelFileError(f"{path}: the fitted constant {name!r} holds NaN or infinite values")
        model.set_buffers(buffers)
    except ModelFileError:
        raise
    except Exception as exc:  # a damaged file can fail in many ways; none of them is a usable model
        raise ModelFileError(f"{path}: damaged or incomplete model file ({type(exc).__name__}: {exc})") from exc
    return model


def __getattr__(name: str):
    """``potentials.model.ACSFModel``, the name it had before it moved to :mod:`potentials.acsf`
    (resolved on first use: acsf imports this module)."""
    if name == "ACSFModel":
        from .acsf import ACSFModel

        return ACSFModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
