"""PaiNN: an equivariant message-passing energy model (Schütt, Unke and Gastegger, ICML 2021).

Each atom carries scalar features s_i ∈ R^F and vector features v_i ∈ R^{3×F} that rotate with
the structure. With r_ij = |D_ij|, û_ij = D_ij / r_ij, a radial basis sin(nπ r/r_c)/r and the
cosine cutoff f_c, each interaction layer is (the paper's eqs. 7-9):

    message   (a, b, c)_ij = φ(s_j) ∘ W(r_ij),   W(r) = (rbf(r) W_r + b_r) f_c(r)
              s_i += Σ_j a_ij,                  v_i += Σ_j (v_j b_ij + û_ij ⊗ c_ij)
    update    (a_vv, a_sv, a_ss) = ψ(s_i, ‖V v_i‖)
              v_i += a_vv ∘ U v_i,              s_i += a_sv ∘ ⟨U v_i, V v_i⟩ + a_ss

and the energy is a readout network on the final scalars, ε_i = σ_E · MLP(s_i), plus the
element's reference energy (σ_E, the training data's RMS force component, sets the scale).
Everything is ``diffsim.numpy`` on the pair list (gathers, ``segment_sum`` back onto atoms) plus
the engine's fused message primitives (:mod:`diffsim.graph`) and the fused radial-filter kernels of
:mod:`potentials.painn_kernels` (the basis by recurrence, one table per structure), so forces are
reverse mode and force training differentiates the forces again.

>>> import numpy as np
>>> m = PaiNNModel(["Cu"], features=8, layers=2, seed=0)
>>> E, F, _ = m.energy_forces(np.array([[0.0, 0, 0], [2.5, 0, 0], [0, 2.4, 0]]), np.zeros((3, 3)),
...                           [False] * 3, [29, 29, 29])
>>> F.shape, bool(abs(F.sum(axis=0)).max() < 1e-12)
((3, 3), True)
"""

from __future__ import annotations

import numpy as np

import diffsim.numpy as dnp
from diffsim.graph import gather_mul_scatter, outer_scatter, pair_differences

from .model import Potential
from .neighbors import check_inner_range, neighbor_list
from .painn_kernels import radial_apply, radial_basis

_NORM_EPS = 1e-8  # ‖Vv‖ = sqrt(Σ (Vv)² + ε): smooth where the vector features vanish (e.g. a perfect crystal)


def silu(x):
    """x σ(x), written with tanh so it cannot overflow: σ(x) = (1 + tanh(x/2)) / 2."""
    return 0.5 * x * (1.0 + dnp.tanh(0.5 * x))


def _dense(rng, n_in, n_out):
    return rng.standard_normal((n_in, n_out)) * np.sqrt(1.0 / n_in), np.zeros(n_out)


class PaiNNModel(Potential):
    """PaiNN with ``layers`` interaction blocks of width ``features`` on pairs within ``cutoff`` (Å).

    ``inner`` is the closest pair distance accepted (closer atoms raise: nothing in the training
    data looks like that).
    """

    kind = "painn"

    def __init__(self, elements, features: int = 32, layers: int = 2, n_rbf: int = 16, cutoff: float = 4.5,
                 inner: float = 0.75, seed: int = 0) -> None:
        super().__init__(elements)
        if features < 1 or layers < 1 or n_rbf < 1 or not (0 <= inner < cutoff < np.inf):
            raise ValueError("PaiNNModel needs features, layers and n_rbf ≥ 1 and a finite cutoff > inner ≥ 0")
        self.features, self.layers, self.n_rbf = int(features), int(layers), int(n_rbf)
        self.cutoff, self.inner, self.seed = float(cutoff), float(inner), int(seed)
        self.energy_scale = 1.0
        F = self.features
        rng = np.random.default_rng(seed)
        self.weights = {
            "embedding": rng.standard_normal((len(self.symbols), F)),
            "interactions": [{"phi": [_dense(rng, F, F), _dense(rng, F, 3 * F)],
                              "radial": _dense(rng, self.n_rbf, 3 * F),
                              "U": rng.standard_normal((F, F)) * np.sqrt(1.0 / F),
                              "V": rng.standard_normal((F, F)) * np.sqrt(1.0 / F),
                              "psi": [_dense(rng, 2 * F, F), _dense(rng, F, 3 * F)]}
                             for _ in range(self.layers)],
            "readout": [_dense(rng, F, max(F // 2, 1)), _dense(rng, max(F // 2, 1), 1)],
        }

    def config(self) -> dict:
        return {"elements": self.symbols, "features": self.features, "layers": self.layers, "n_rbf": self.n_rbf,
                "cutoff": self.cutoff, "inner": self.inner, "seed": self.seed}

    def buffers(self) -> dict:
        return {"energy_scale": np.array(self.energy_scale)}

    def set_buffers(self, arrays: dict) -> None:
        self.energy_scale = float(arrays["energy_scale"])

    def fit_inputs(self, structures) -> None:
        """The energy scale: the RMS force component of the training data (eV/Å × 1 Å)."""
        forces = np.concatenate([np.ravel(st.forces) for st in structures]) if structures else np.zeros(0)
        forces = forces[np.isfinite(forces)]  # energy-only structures carry NaN forces
        rms = float(np.sqrt(np.mean(forces ** 2))) if forces.size else 0.0
        self.energy_scale = rms if rms > 1e-8 else 1.0

    def topology(self, positions, cell, pbc, numbers, pairs=None) -> dict:
        i, j, S, d = pairs if pairs is not None else neighbor_list(positions, cell, pbc, self.cutoff)
        check_inner_range(i, j, d, self.inner)
        return dict(centers=np.asarray(i, dtype=np.int64), neighbors=np.asarray(j, dtype=np.int64), shifts=S,
                    species=self.species_index(numbers), n_atoms=len(positions))

    # ------------------------------------------------------------ the network

    def radial(self, r):
        """Radial basis sin(nπ r/r_c)/r (E, n_rbf) and the cosine cutoff f_c(r) (E,), in plain numpy
        (the model's filters take the same from :mod:`potentials.painn_kernels`)."""
        n = np.arange(1, self.n_rbf + 1)
        fc = dnp.where(r < self.cutoff, 0.5 * dnp.cos(np.pi * r / self.cutoff) + 0.5, 0.0)
        return dnp.sin(r[:, None] * (n * np.pi / self.cutoff)) / r[:, None], fc

    def atom_features(self, weights, positions, numbers, top, shift_vectors):
        """Final scalar (N, F) and vector (N, 3, F) features."""
        i, j, N, F = top["centers"], top["neighbors"], top["n_atoms"], self.features
        D = pair_differences(positions, centers=i, neighbors=j) + shift_vectors
        r = dnp.sqrt(dnp.sum(D * D, axis=1))
        unit = D / r[:, None]
        ones, basis = np.ones(len(i)), radial_basis(r, self.cutoff)  # sin, cos of πr/r_c: once for all filters
        s = weights["embedding"][top["species"]]
        v = None  # zero vector features before the first message
        for block in weights["interactions"]:
            (W1, b1), (W2, b2) = block["phi"]
            Wr, br = block["radial"]
            phi = silu(s @ W1 + b1)
            # the three F-wide parts of φ(s_j) ∘ W(r_ij) = (a, b, c): weights sliced, atom and pair factors kept apart
            phi_a, phi_b, phi_c = [phi @ W2[:, k * F:(k + 1) * F] + b2[k * F:(k + 1) * F] for k in range(3)]
            # W(r_ij) = f_c (rbf W_r + b_r) of each part, by the fused radial kernel (bias as basis function 0)
            # (w_b only once there are vector features to carry: the first block's would multiply zeros)
            w_a, w_b, w_c = [radial_apply(ones, r, dnp.concatenate([dnp.reshape(br[k * F:(k + 1) * F], (1, F)),
                                                                    Wr[:, k * F:(k + 1) * F]], axis=0),
                                          d=0, basis=basis) if k != 1 or v is not None else None for k in range(3)]
            # s_i += Σ_j φ_a(s_j) w_a(r_ij);  v_i += Σ_j (v_j ∘ φ_b(s_j)) w_b(r_ij) + û_ij ⊗ φ_c(s_j) w_c(r_ij),
            # by fused gather-product-scatter kernels: no (pairs, 3, F) arrays, forward or backward
            s = s + gather_mul_scatter(phi_a[:, None, :], w_a, src=j, dst=i, n=N)[:, 0, :]
            dv = outer_scatter(unit, phi_c[j] * w_c, dst=i, n=N)
            v = dv if v is None else v + dv + gather_mul_scatter(v * phi_b[:, None, :], w_b, src=j, dst=i, n=N)
            Uv, Vv = v @ block["U"], v @ block["V"]
            norm = dnp.sqrt(dnp.sum(Vv * Vv, axis=1) + _NORM_EPS)
            (P1, c1), (P2, c2) = block["psi"]
            y = silu(dnp.concatenate([s, norm], axis=1) @ P1 + c1) @ P2 + c2
            a_vv, a_sv, a_ss = dnp.split(y, 3, axis=1)
            v = v + a_vv[:, None, :] * Uv
            s = s + a_sv * dnp.sum(Uv * Vv, axis=1) + a_ss
        if v is None:
            v = np.zeros((N, 3, F))
        return s, v

    def atom_energies(self, weights, positions, numbers, top, shift_vectors):
        s, _ = self.atom_features(weights, positions, numbers, top, shift_vectors)
        (W1, b1), (W2, b2) = weights["readout"]
        return self.energy_scale * dnp.reshape(silu(s @ W1 + b1) @ W2 + b2, (-1,))
