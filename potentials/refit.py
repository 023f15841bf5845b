"""A deterministic last step of training: the exact least-squares refit of an ACSF model's linear
read-out (each element's last layer, ε_i = h_i · w_Z + b_Z) on energies, forces and stress.

The energy is linear in the read-out θ = (w_Z, b_Z) for every element Z, and so are the forces
F = −∂E/∂R and the stress σ = (1/V) ∂E/∂ε: each is a design matrix times θ, whose column for
hidden unit u of element Z is the energy, forces and stress of the function Σ_{i∈Z} h_iu. The
weighted loss of :mod:`potentials.loss` is then an ordinary linear least-squares problem in θ,
solved exactly (with a small ridge towards the stochastic solution), so what depends on the
read-out, the bulk modulus above all, no longer depends on the epoch the stochastic training
stopped at. The columns' forces and stresses take one descriptor VJP each (the ACSF kernel's
own, :data:`potentials.descriptors.acsf_vjp`), on the cached features.

>>> import numpy as np
>>> from ase.build import bulk
>>> from ase.calculators.emt import EMT
>>> from potentials.acsf import ACSFModel
>>> from potentials.structures import prepare
>>> frames = []
>>> for k in range(4):
...     a = bulk("Cu", cubic=True); a.rattle(0.05, seed=k); a.calc = EMT(); _ = a.get_stress(); frames.append(a)
>>> model = ACSFModel(["Cu"], hidden=(4,))
>>> data = prepare(model, frames); model.fit_normalisation(data)
>>> info = refit_readout(model, data, energy_weight=1.0, force_weight=1.0, stress_weight=1.0)
>>> info["loss_after"] <= info["loss_before"]
True
"""

from __future__ import annotations

import numpy as np

from diffsim.graph import pair_differences

from .descriptors import acsf_vjp
from .loss import term_weights
from .structures import Structure, make_batch

__all__ = ["readout_design", "refit_readout", "estimate_refit_seconds", "supports_refit"]


def _hidden(model, symbol: str, G):
    """The last hidden layer's activations (n, K) of element ``symbol``'s network on features G,
    and the activations of every hidden layer (for the backward sweep)."""
    h = (G - model.mean[symbol]) / model.scale[symbol]
    acts = []
    for W, b in model.weights[symbol][:-1]:
        h = np.tanh(h @ np.asarray(W) + np.asarray(b))
        acts.append(h)
    return h, acts


def _feature_cotangent(model, symbol: str, acts, unit: int) -> np.ndarray:
    """∂h_u/∂G (n, F) for hidden unit ``unit`` of the last hidden layer, through the tanh layers."""
    c = np.zeros_like(acts[-1])
    c[:, unit] = 1.0
    for (W, _), h in zip(reversed(model.weights[symbol][:-1]), reversed(acts)):
        c = (c * (1.0 - h * h)) @ np.asarray(W).T
    return c / model.scale[symbol]


def readout_design(model, batch, derivatives: bool = True):
    """(A_E (S, P), A_F (N, 3, P), A_S (S, 3, 3, P)): energies, forces and stresses of ``batch``
    (a :class:`potentials.structures.Batch` with cached features) are these matrices times the
    read-out θ, the P = Σ_Z (K + 1) numbers of :func:`readout_vector`, plus the reference
    energies. ``derivatives=False``: A_E only (A_F and A_S None), without any descriptor VJP."""
    if not model.hidden:
        raise ValueError("the read-out refit needs a model with at least one hidden layer")
    top = batch.top
    if "features" not in top:
        raise ValueError("the batch carries no cached features: call model.cache_inputs(structures) first")
    G = top["features"]
    species = model.species_index(batch.numbers)
    S, N, K = batch.n_structures, len(batch.positions), model.hidden[-1]
    P = len(model.symbols) * (K + 1)
    A_E = np.zeros((S, P))
    A_F, A_S = (np.zeros((N, 3, P)), np.zeros((S, 3, 3, P))) if derivatives else (None, None)
    if derivatives:
        D, static, column = _pair_geometry(model, batch)
    for e, symbol in enumerate(model.symbols):
        idx = np.flatnonzero(species == e)
        col = e * (K + 1)
        A_E[:, col + K] = np.bincount(batch.atom_structure[idx], minlength=S)  # the bias: one per atom
        if idx.size == 0:
            continue
        h, acts = _hidden(model, symbol, G[idx])
        A_E[:, col:col + K] = np.stack([np.bincount(batch.atom_structure[idx], h[:, u], minlength=S)
                                        for u in range(K)], axis=1)
        if not derivatives:
            continue
        for u in range(K):
            cot = np.zeros_like(G)
            cot[idx] = _feature_cotangent(model, symbol, acts, u)
            A_F[:, :, col + u], A_S[:, :, :, col + u] = column(cot)
    return A_E, A_F, A_S


def _pair_geometry(model, batch):
    """(D, the descriptor's static arguments, column): column(∂E/∂G) is (forces (N, 3), stresses
    (S, 3, 3)) of an energy whose feature gradient is ∂E/∂G, by one descriptor VJP."""
    import scipy.sparse as sp

    top = batch.top
    D = np.asarray(pair_differences(batch.positions, centers=top["centers"], neighbors=top["neighbors"])) \
        + batch.shift_vectors
    static = model.descriptor.static(top)
    N, S, n_pairs = len(batch.positions), batch.n_structures, len(D)
    pairs, ones = np.arange(n_pairs), np.ones(n_pairs)
    # ∂E/∂R_a = Σ_p ([a = j(p)] − [a = i(p)]) ∂E/∂D_p, and the virial Σ_{p∈s} D_p ⊗ ∂E/∂D_p: sparse sums
    incidence = sp.csr_matrix((ones, (top["neighbors"], pairs)), shape=(N, n_pairs)) \
        - sp.csr_matrix((ones, (top["centers"], pairs)), shape=(N, n_pairs))
    owner = sp.csr_matrix((ones, (batch.pair_structure, pairs)), shape=(S, n_pairs))
    volumes = np.where(batch.volumes > 1e-12, batch.volumes, np.inf)

    def column(cotangent):
        gD = np.asarray(acsf_vjp(cotangent, D, **static))  # ∂E/∂D_p
        virial = (owner @ (D[:, :, None] * gD[:, None, :]).reshape(n_pairs, 9)).reshape(S, 3, 3)
        return -(incidence @ gD), 0.5 * (virial + virial.transpose(0, 2, 1)) / volumes[:, None, None]

    return D, static, column


def supports_refit(model) -> bool:
    """Whether ``model`` has the linear read-out this refit treats (an ACSF model with hidden layers)."""
    return hasattr(model, "descriptor") and hasattr(model, "network_energies") and bool(getattr(model, "hidden", ()))


def _subset(structures, max_structures, rng):
    if max_structures is None or len(structures) <= max_structures:
        return structures
    order = (rng if rng is not None else np.random.default_rng(0)).permutation(len(structures))
    return [structures[k] for k in np.sort(order[:max_structures])]


def estimate_refit_seconds(model, structures: list[Structure], max_structures: int | None = None,
                           rng: np.random.Generator | None = None) -> float:
    """CPU seconds :func:`refit_readout` will take on these arguments, from one timed column
    (a descriptor VJP on the subset) times the number of hidden units, with a margin, so a
    trainer can keep the refit inside its time budget. ``rng`` is not advanced: pass a
    generator in the state the refit will get.

    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> from potentials.acsf import ACSFModel
    >>> from potentials.structures import prepare
    >>> a = bulk("Cu", cubic=True); a.rattle(0.05, seed=1); a.calc = EMT(); _ = a.get_stress()
    >>> model = ACSFModel(["Cu"], hidden=(4,))
    >>> estimate_refit_seconds(model, prepare(model, [a])) > 0
    True
    """
    import copy
    import time

    t = time.process_time()
    subset = _subset(structures, max_structures, copy.deepcopy(rng) if rng is not None else None)
    model.cache_inputs(subset)
    batch = make_batch(subset)
    column = _pair_geometry(model, batch)[2]
    setup = time.process_time() - t
    ones, one = np.ones_like(batch.top["features"]), np.inf
    for _ in range(2):  # the first call also pays one-off costs (kernel dispatch, caches): the faster
        t1 = time.process_time()
        column(ones)
        one = min(one, time.process_time() - t1)
    return 1.25 * (setup + one * len(model.symbols) * model.hidden[-1]) + 0.05


def readout_vector(model) -> np.ndarray:
    """θ: for each element in order, its last layer's weights (K) and bias."""
    return np.concatenate([np.concatenate([np.ravel(model.weights[s][-1][0]), np.ravel(model.weights[s][-1][1])])
                           for s in model.symbols])


def _set_readout(model, theta) -> None:
    K = model.hidden[-1]
    for e, s in enumerate(model.symbols):
        part = theta[e * (K + 1):(e + 1) * (K + 1)]
        layers = list(model.weights[s])
        layers[-1] = (part[:K].reshape(K, 1).copy(), part[K:].copy())
        model.weights[s] = layers


def refit_readout(model, structures: list[Structure], energy_weight: float, force_weight: float,
                  stress_weight: float, config_type_weights: dict | None = None, ridge: float = 1e-6,
                  max_structures: int | None = None, rng: np.random.Generator | None = None) -> dict:
    """Replace ``model``'s read-out by the minimiser of the loss of :mod:`potentials.loss` (these
    weights) on prepared ``structures``, the hidden layers kept, plus ``ridge`` |θ − θ_now|²
    (relative to the mean squared design entry; it only settles directions the data leave free).
    The energy term takes every structure; the force and stress terms, which cost a descriptor
    VJP per hidden unit, a random ``max_structures`` of them (``rng``; all if None).
    Returns {"loss_before", "loss_after"} (the loss without the ridge) and "structures" (those
    of the force and stress terms)."""
    if not supports_refit(model):
        raise TypeError(f"the read-out refit treats ACSF models (potentials.acsf.ACSFModel), not "
                        f"{type(model).__name__}")
    if max_structures is not None and max_structures < 1:
        raise ValueError(f"max_structures must be ≥ 1 or None, got {max_structures}")
    model.cache_inputs(structures)
    theta0 = readout_vector(model)
    rows, targets = [], []
    batch = make_batch(structures)
    c, labelled = term_weights(batch, config_type_weights), batch.weights > 0
    if energy_weight > 0 and labelled[:, 0].any():
        A_E = readout_design(model, batch, derivatives=False)[0]
        ref = np.bincount(batch.atom_structure, model.reference_energies(batch.numbers), minlength=batch.n_structures)
        s = np.sqrt(energy_weight * c[:, 0] / labelled[:, 0].sum()) / batch.n_atoms
        rows.append(s[:, None] * A_E)
        targets.append(s * np.nan_to_num(batch.energy - ref))
    subset = _subset(structures, max_structures, rng)
    batch = make_batch(subset)
    c, labelled = term_weights(batch, config_type_weights), batch.weights > 0
    want_f = force_weight > 0 and labelled[:, 1].any()
    want_s = stress_weight > 0 and labelled[:, 2].any()
    if want_f or want_s:
        _, A_F, A_S = readout_design(model, batch)
    if want_f:
        s = np.sqrt(force_weight * c[batch.atom_structure, 1] / (3.0 * labelled[batch.atom_structure, 1].sum()))
        rows.append((s[:, None, None] * A_F).reshape(-1, A_F.shape[-1]))
        targets.append((s[:, None] * np.nan_to_num(batch.forces)).ravel())
    if want_s:
        s = np.sqrt(stress_weight * c[:, 2] / (9.0 * labelled[:, 2].sum()))
        rows.append((s[:, None, None, None] * A_S).reshape(-1, A_S.shape[-1]))
        targets.append((s[:, None, None] * np.nan_to_num(batch.stress)).ravel())
    if not rows:
        raise ValueError("nothing to refit on: every loss weight is 0 or the data have no labels for them")
    A, y = np.concatenate(rows), np.concatenate(targets)
    loss_before = float(np.sum((A @ theta0 - y) ** 2))
    lam = ridge * float(np.mean(A * A)) * len(A)
    theta = np.linalg.solve(A.T @ A + lam * np.eye(A.shape[1]), A.T @ y + lam * theta0)
    _set_readout(model, theta)
    return {"loss_before": loss_before, "loss_after": float(np.sum((A @ theta - y) ** 2)), "structures": len(subset)}
