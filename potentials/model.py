"""A learned interatomic potential: per-element networks on atom-centred symmetry functions.

    E = Σ_i [ NN_{Z_i}((G_i − μ_{Z_i}) / σ_{Z_i}) + E_ref(Z_i) ],   F = −∂E/∂R,   σ_stress = (1/V) ∂E/∂ε

Everything is written with the engine, so forces are reverse mode and force-matching training
differentiates the forces again. Models are saved as ``.npz`` with a format version, written
atomically, and loaded without pickle.

>>> import numpy as np
>>> m = ACSFModel(["Cu"], hidden=(8,), seed=0)
>>> E, F, _ = m.energy_forces(np.array([[0.0, 0, 0], [2.5, 0, 0]]), np.zeros((3, 3)), [False] * 3, [29, 29])
>>> F.shape
(2, 3)
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from dataclasses import asdict

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp

from .descriptors import ACSFParameters, Descriptor

FORMAT = "diffsim-potential"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that cannot be loaded: wrong format, another version, or damaged."""


class ACSFModel:
    """Per-element multilayer perceptrons (tanh) on normalised ACSF features."""

    kind = "acsf"

    def __init__(self, elements, hidden=(32, 32), params: ACSFParameters | None = None, seed: int = 0) -> None:
        from ase.data import chemical_symbols

        self.descriptor = Descriptor(elements, params)
        self.symbols = [chemical_symbols[z] for z in self.descriptor.numbers]
        self.hidden = tuple(int(h) for h in hidden)
        rng = np.random.default_rng(seed)
        n_in = self.descriptor.n_features
        self.weights = {}
        for s in self.symbols:
            layers, width = [], n_in
            for h in self.hidden + (1,):
                layers.append((rng.standard_normal((width, h)) * np.sqrt(1.0 / width), np.zeros(h)))
                width = h
            self.weights[s] = layers
        self.mean = {s: np.zeros(n_in) for s in self.symbols}
        self.scale = {s: np.ones(n_in) for s in self.symbols}
        self.reference = {s: 0.0 for s in self.symbols}

    # ------------------------------------------------------------ the model

    def atomic_energies(self, weights, G, species):
        """Energy of each atom (N,) from its features G (N, F): one network per element."""
        out = None
        for k, s in enumerate(self.symbols):
            idx = np.flatnonzero(species == k)
            if idx.size == 0:
                continue
            h = (G[idx] - self.mean[s]) / self.scale[s]
            layers = weights[s]
            for W, b in layers[:-1]:
                h = dnp.tanh(h @ W + b)
            W, b = layers[-1]
            e = dnp.reshape(h @ W + b, (-1,)) + self.reference[s]
            term = dnp.index_add(np.zeros(len(species)), idx, e)
            out = term if out is None else out + term
        return out

    def energy(self, weights, positions, cell, pbc, numbers, topology=None):
        """Total energy (a scalar), differentiable in ``weights``, ``positions`` and ``cell``."""
        top = topology or self.descriptor.topology(ds.stop_gradient(positions), ds.stop_gradient(cell), pbc, numbers)
        G = self.descriptor(positions, cell, pbc, numbers, top)
        species = self.descriptor.species_index(numbers)
        return dnp.sum(self.atomic_energies(weights, G, species))

    def energy_forces(self, positions, cell, pbc, numbers, topology=None, stress: bool = False):
        """(E, F, stress or None) for one structure; stress (3, 3) = (1/V) ∂E/∂ε, symmetrised."""
        positions = np.asarray(positions, dtype=float)
        cell = np.asarray(cell, dtype=float)
        numbers = np.asarray(numbers)
        top = topology or self.descriptor.topology(positions, cell, pbc, numbers)
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

    def per_atom_energies(self, positions, cell, pbc, numbers, topology=None) -> np.ndarray:
        top = topology or self.descriptor.topology(positions, cell, pbc, numbers)
        G = self.descriptor(positions, cell, pbc, numbers, top)
        return np.asarray(self.atomic_energies(self.weights, G, self.descriptor.species_index(numbers)))

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write the model to ``path`` (.npz) atomically: a temporary file, then a rename."""
        arrays = {"format": np.array(FORMAT), "format_version": np.array(FORMAT_VERSION),
                  "kind": np.array(self.kind), "symbols": np.array(self.symbols), "hidden": np.array(self.hidden),
                  "acsf": np.array([repr(tuple(float(x) for x in v)) if isinstance(v, tuple) else repr(float(v))
                                    for v in asdict(self.descriptor.params).values()])}
        for s in self.symbols:
            arrays[f"{s}/mean"], arrays[f"{s}/scale"] = self.mean[s], self.scale[s]
            arrays[f"{s}/reference"] = np.array(self.reference[s])
            for k, (W, b) in enumerate(self.weights[s]):
                arrays[f"{s}/W{k}"], arrays[f"{s}/b{k}"] = np.asarray(W), np.asarray(b)
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ACSFModel":
        """Read a model written by :meth:`save` (no pickle; the format version is checked)."""
        import ast

        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except FileNotFoundError:
            raise ModelFileError(f"{path}: no such model file") from None
        except Exception as exc:
            raise ModelFileError(f"{path}: not a readable .npz model file ({exc})") from exc
        if data.get("format") is None or str(data["format"]) != FORMAT:
            raise ModelFileError(f"{path}: not a diffsim potential (no '{FORMAT}' marker)")
        version = int(data["format_version"])
        if version != FORMAT_VERSION:
            raise ModelFileError(f"{path}: model format version {version}; this diffsim reads version "
                                 f"{FORMAT_VERSION}. Retrain, or use the diffsim version that wrote it")
        if str(data["kind"]) != cls.kind:
            raise ModelFileError(f"{path}: a '{data['kind']}' model, not '{cls.kind}'")
        values = [ast.literal_eval(str(v)) for v in data["acsf"]]
        params = ACSFParameters(*values)
        symbols = [str(s) for s in data["symbols"]]
        model = cls(symbols, hidden=tuple(int(h) for h in data["hidden"]), params=params)
        n_layers = len(model.hidden) + 1
        for s in symbols:
            model.mean[s], model.scale[s] = data[f"{s}/mean"], data[f"{s}/scale"]
            model.reference[s] = float(data[f"{s}/reference"])
            model.weights[s] = [(data[f"{s}/W{k}"], data[f"{s}/b{k}"]) for k in range(n_layers)]
        return model
