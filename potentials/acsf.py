"""The descriptor model: per-element multilayer perceptrons on atom-centred symmetry functions
(Behler and Parrinello, PRL 98, 146401 (2007)), ε_i = NN_{Z_i}((G_i − μ_{Z_i}) / σ_{Z_i}).

>>> import numpy as np
>>> m = ACSFModel(["Cu"], hidden=(8,), seed=0)
>>> E, F, _ = m.energy_forces(np.array([[0.0, 0, 0], [2.5, 0, 0]]), np.zeros((3, 3)), [False] * 3, [29, 29])
>>> F.shape
(2, 3)
"""

from __future__ import annotations

import numpy as np

import diffsim.numpy as dnp
from diffsim.graph import pair_differences

from .descriptors import ACSFParameters, Descriptor, acsf, acsf_at
from .model import Potential


class ACSFModel(Potential):
    """Per-element multilayer perceptrons (tanh) on normalised ACSF features:
    ε_i = NN_{Z_i}((G_i − μ_{Z_i}) / σ_{Z_i})."""

    kind = "acsf"

    def __init__(self, elements, hidden=(32, 32), params: ACSFParameters | dict | None = None, seed: int = 0) -> None:
        super().__init__(elements)
        if isinstance(params, dict):
            params = ACSFParameters(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        self.descriptor = Descriptor(self.symbols, params)
        self.cutoff = self.descriptor.cutoff
        self.hidden = tuple(int(h) for h in hidden)
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden layer widths must be ≥ 1, got {list(hidden)}")
        self.seed = int(seed)
        rng = np.random.default_rng(seed)
        n_in = self.descriptor.n_features
        for s in self.symbols:
            layers, width = [], n_in
            for h in self.hidden + (1,):
                layers.append((rng.standard_normal((width, h)) * np.sqrt(1.0 / width), np.zeros(h)))
                width = h
            self.weights[s] = layers
        self.mean = {s: np.zeros(n_in) for s in self.symbols}
        self.scale = {s: np.ones(n_in) for s in self.symbols}

    def config(self) -> dict:
        p = self.descriptor.params
        params = {k: [float(x) for x in v] if isinstance(v, tuple) else float(v) for k, v in vars(p).items()}
        return {"elements": self.symbols, "hidden": list(self.hidden), "params": params, "seed": self.seed}

    def buffers(self) -> dict:
        return {**{f"mean/{s}": self.mean[s] for s in self.symbols},
                **{f"scale/{s}": self.scale[s] for s in self.symbols}}

    def set_buffers(self, arrays: dict) -> None:
        for s in self.symbols:
            self.mean[s], self.scale[s] = arrays[f"mean/{s}"], arrays[f"scale/{s}"]

    def topology(self, positions, cell, pbc, numbers, pairs=None) -> dict:
        return self.descriptor.topology(positions, cell, pbc, numbers, pairs=pairs)

    def features(self, positions, numbers, top, shift_vectors):
        """ACSF features (N, F) of the atoms; the values stored by :meth:`cache_inputs` when the
        topology carries them (a training structure, at its own positions), with the same derivatives."""
        D = pair_differences(positions, centers=top["centers"], neighbors=top["neighbors"]) + shift_vectors
        if "features" in top:
            return acsf_at(D, top["features"], **self.descriptor.static(top))
        return acsf(D, **self.descriptor.static(top))

    def cache_inputs(self, structures) -> None:
        """The ACSF features of each structure at its positions, into ``st.top["features"]``."""
        for st in structures:
            if "features" not in st.top:
                st.top["features"] = np.asarray(acsf(
                    pair_differences(st.positions, centers=st.top["centers"], neighbors=st.top["neighbors"])
                    + st.shift_vectors, **self.descriptor.static(st.top)))

    def atom_energies(self, weights, positions, numbers, top, shift_vectors):
        return self.network_energies(weights, self.features(positions, numbers, top, shift_vectors),
                                     self.species_index(numbers))

    def network_energies(self, weights, G, species):
        """ε_i (N,) from the features G (N, F): one network per element."""
        out = None
        for k, s in enumerate(self.symbols):
            idx = np.flatnonzero(species == k)
            if idx.size == 0:
                continue
            every = idx.size == len(species)  # one element: no gather of G, no scatter of ε (nor their adjoints)
            h = ((G if every else G[idx]) - self.mean[s]) / self.scale[s]
            layers = weights[s]
            for W, b in layers[:-1]:
                h = dnp.tanh(h @ W + b)
            W, b = layers[-1]
            eps = dnp.reshape(h @ W + b, (-1,))
            term = eps if every else dnp.index_add(np.zeros(len(species)), idx, eps)
            out = term if out is None else out + term
        return out

    def fit_inputs(self, structures) -> None:
        """Per-element feature mean and spread."""
        feats = {s: [] for s in self.symbols}
        self.cache_inputs(structures)
        for st in structures:
            G = st.top["features"]
            species = self.species_index(st.numbers)
            for k, s in enumerate(self.symbols):
                feats[s].append(G[species == k])
        for s in self.symbols:
            allf = np.concatenate(feats[s]) if feats[s] else np.zeros((0, 1))
            if len(allf):
                std = allf.std(axis=0)
                self.mean[s], self.scale[s] = allf.mean(axis=0), np.where(std > 1e-8, std, 1.0)
