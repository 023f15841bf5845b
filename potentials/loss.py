"""Predictions of a minibatch and the weighted loss on energy per atom, forces and stress.

For structure s with N_s atoms, volume V_s and per-structure weights c (config_weight x
config_<term>_weight x the config_type's weight; 0 where a label is absent):

    L = w_E Σ_s c_s^E ((E_s − E_s^ref)/N_s)² / n_E
      + w_F Σ_i c_{s(i)}^F |F_i − F_i^ref|² / (3 n_F)
      + w_S Σ_s c_s^S |σ_s − σ_s^ref|²_F / (9 n_S)

(n_E, n_F, n_S: labelled structures, atoms, structures in the batch), in (eV/atom)², (eV/Å)² and
(eV/Å³)². Forces F = −∂E/∂R and the stress σ_s = (1/V_s) sym ∂E/∂ε_s come from one reverse
sweep: every structure gets its own homogeneous strain ε_s applied to its positions and periodic
shifts, R → R(1 + ε_s), so the stress is the virial for any cell, periodic in any directions.
Training differentiates both once more with respect to the weights.

>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> from potentials.model import ACSFModel
>>> from potentials.structures import make_batch, prepare
>>> atoms = bulk("Cu", cubic=True); atoms.rattle(0.05, seed=1); atoms.calc = EMT(); _ = atoms.get_stress()
>>> model = ACSFModel(["Cu"], hidden=(4,))
>>> E, F, S = predict(model, model.weights, make_batch(prepare(model, [atoms])), stress=True)
>>> E.shape, F.shape, S.shape
((1,), (4, 3), (1, 3, 3))
"""

from __future__ import annotations

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp

from .structures import Batch


def _energies(model, weights, batch: Batch, R, strain):
    """Energies per structure, differentiable in weights, positions and the strains (S, 3, 3)."""
    shifts = batch.shift_vectors
    if strain is not None:
        R = R + dnp.einsum("ia,iac->ic", R, strain[batch.atom_structure])
        shifts = shifts + dnp.einsum("pa,pac->pc", shifts, strain[batch.pair_structure])
    eps = model.atom_energies(weights, R, batch.numbers, batch.top, shifts) + model.reference_energies(batch.numbers)
    return dnp.segment_sum(eps, batch.atom_structure, batch.n_structures)


def predict(model, weights, batch: Batch, stress: bool = False):
    """(energies (S,), forces (N, 3), stresses (S, 3, 3) or None), differentiable in ``weights``.
    Stress is zero for a structure whose cell has no volume. One forward pass gives the energies
    and the reverse sweep the forces (and stress) beside them."""
    if not stress:
        def total(R):
            E = _energies(model, weights, batch, R, None)
            return dnp.sum(E), E

        (_, E), dR = ds.value_and_grad(total, has_aux=True)(batch.positions)
        return E, -dR, None

    def strained(R, e):
        E = _energies(model, weights, batch, R, e)
        return dnp.sum(E), E

    zero = np.zeros((batch.n_structures, 3, 3))
    (_, E), (dR, deps) = ds.value_and_grad(strained, argnums=(0, 1), has_aux=True)(batch.positions, zero)
    volumes = np.where(batch.volumes > 1e-12, batch.volumes, np.inf)
    sigma = 0.5 * (deps + dnp.transpose(deps, (0, 2, 1))) / volumes[:, None, None]
    return E, -dR, sigma


def term_weights(batch: Batch, config_type_weights: dict | None) -> np.ndarray:
    """(S, 3) weights of each structure's energy, forces and stress terms, with the config_type's
    weight (default 1) applied."""
    if not config_type_weights:
        return batch.weights
    types = np.array([float(config_type_weights.get(t, config_type_weights.get("Default", 1.0)))
                      for t in batch.config_types])
    return batch.weights * types[:, None]


def batch_loss(model, weights, batch: Batch, config) -> object:
    """The weighted loss above with ``config``'s ``energy_weight``, ``force_weight``,
    ``stress_weight`` and ``config_type_weights``; terms whose weight is 0, or without labels in
    the batch, are left out (the stress term costs one more derivative only when it is in)."""
    c = term_weights(batch, getattr(config, "config_type_weights", None))
    labelled = batch.weights > 0
    w_e, w_f, w_s = config.energy_weight, config.force_weight, getattr(config, "stress_weight", 0.0)
    want_stress = w_s > 0 and labelled[:, 2].any()
    E, F, S = predict(model, weights, batch, stress=want_stress)
    loss = 0.0
    if w_e > 0 and labelled[:, 0].any():
        r = (E - np.nan_to_num(batch.energy)) / batch.n_atoms
        loss = loss + w_e * dnp.sum(c[:, 0] * r * r) / labelled[:, 0].sum()
    if w_f > 0 and labelled[:, 1].any():
        ca = c[batch.atom_structure, 1]
        d = F - np.nan_to_num(batch.forces)
        loss = loss + w_f * dnp.sum(ca[:, None] * d * d) / (3.0 * labelled[batch.atom_structure, 1].sum())
    if want_stress:
        d = S - np.nan_to_num(batch.stress)
        loss = loss + w_s * dnp.sum(c[:, 2][:, None, None] * d * d) / (9.0 * labelled[:, 2].sum())
    return loss
