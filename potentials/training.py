"""Force-matching training of a potential: energy per atom and forces, Adam with a decaying
learning rate, minibatches, a validation split, early stopping, a progress bar, and
checkpoints that let an interrupted run resume where it stopped (deterministic with a seed).

A minibatch of structures is one graph: their atoms concatenated, pair lists offset, and each
pair's periodic shift S·cell a constant. The loss

    L = w_E mean_s ((E_s − E_s^ref) / N_s)² + w_F mean_{atoms, xyz} (F − F^ref)²

differentiates the forces F = −∂E/∂R once more with respect to the weights (through acsf_vjp).
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

import diffsim as ds
import diffsim.numpy as dnp
from diffsim.tree import flatten, unflatten

from .checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from .model import Potential
from .progress import progress_bar
from .reference_data import check_record


@dataclass
class TrainConfig:
    """Training options; the defaults train a small Cu model in a few minutes."""

    epochs: int = 200
    batch_size: int = 8
    learning_rate: float = 5e-3
    decay: float = 0.985              # learning rate × decay after every epoch
    energy_weight: float = 1.0        # on (eV/atom)²
    force_weight: float = 10.0        # on (eV/Å)²
    validation_fraction: float = 0.1
    patience: int = 30                # epochs without a better validation loss before stopping
    seed: int = 0
    checkpoint: str | None = None     # path of a .npz to save every epoch and resume from
    progress: bool = True
    optimizer: str = "adam"           # "adam" (minibatches) or "lbfgs" (full batch, scipy; epochs = iterations)


@dataclass
class History:
    """Per-epoch training and validation losses and errors (meV/atom, meV/Å)."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_energy_mae: list = field(default_factory=list)
    val_force_mae: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0
    resumed_from: int = 0             # the checkpoint's epoch when resumed, else 0
    training_structures: int = 0      # structures trained on (the held-out ones excluded)
    validation_structures: int = 0


@dataclass
class Structure:
    positions: np.ndarray
    numbers: np.ndarray
    energy: float
    forces: np.ndarray
    top: dict
    shift_vectors: np.ndarray


def _check_config(config: TrainConfig) -> None:
    """Refuse options no training can use, before any work."""
    count = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
    weight = lambda v: bool(np.isfinite(v) and v >= 0)
    ok = {"epochs": count(config.epochs), "batch_size": count(config.batch_size), "patience": count(config.patience),
          "learning_rate": bool(np.isfinite(config.learning_rate) and config.learning_rate > 0),
          "decay": 0 < config.decay <= 1, "energy_weight": weight(config.energy_weight),
          "force_weight": weight(config.force_weight), "validation_fraction": 0 <= config.validation_fraction < 1}
    bad = [f"{name} = {getattr(config, name)!r}" for name, good in ok.items() if not good]
    if bad:
        raise ValueError(f"training options out of range: {', '.join(bad)} (epochs, batch_size and patience are "
                         "counts ≥ 1, learning_rate > 0, decay in (0, 1], weights ≥ 0, validation_fraction in [0, 1))")
    if config.optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"unknown optimizer {config.optimizer!r}: use 'adam' or 'lbfgs'")
    if config.optimizer == "lbfgs" and config.checkpoint:
        raise ValueError("checkpoints are written by the 'adam' optimizer (L-BFGS runs are full-batch and short): "
                         "drop the checkpoint or use adam")


def prepare(model: Potential, frames) -> list[Structure]:
    """Neighbour lists and reference labels of ASE Atoms with stored energy and forces."""
    out = []
    for k, atoms in enumerate(frames):
        check_record(atoms, k)
        e, f = float(atoms.get_potential_energy()), np.asarray(atoms.get_forces(), dtype=float)
        pos, cell = atoms.positions.astype(float), np.array(atoms.cell, dtype=float)
        top = model.topology(pos, cell, atoms.pbc, atoms.numbers)
        out.append(Structure(pos, atoms.numbers.copy(), e, f, top, top["shifts"].astype(float) @ cell))
    return out


# topology entries that index atoms, and pairs, and so are offset when structures are concatenated
_ATOM_INDEX, _PAIR_INDEX = ("centers", "neighbors"), ("triplets",)


def _batch(structures: list[Structure]):
    """Concatenate structures into one graph; returns positions, numbers, topology, shift
    vectors, atom→structure ids, atoms per structure and the references."""
    tops = [st.top for st in structures]
    n_atoms = np.array([len(st.positions) for st in structures])
    n_pairs = np.array([len(t["centers"]) for t in tops])
    atom_offset = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
    pair_offset = np.concatenate([[0], np.cumsum(n_pairs)[:-1]])
    top = {"n_atoms": int(n_atoms.sum())}
    for key in tops[0]:
        if key in ("n_atoms", "shifts"):
            continue
        parts = [t[key] for t in tops]
        if key in _ATOM_INDEX:
            parts = [p + o for p, o in zip(parts, atom_offset)]
        elif key in _PAIR_INDEX:
            parts = [p + o for p, o in zip(parts, pair_offset)]
        top[key] = np.concatenate(parts)
    sid = np.repeat(np.arange(len(structures)), n_atoms)
    E = np.array([st.energy for st in structures])
    F = np.concatenate([st.forces for st in structures])
    return np.concatenate([st.positions for st in structures]), np.concatenate([st.numbers for st in structures]), \
        top, np.concatenate([st.shift_vectors for st in structures]), sid, n_atoms, E, F


def _predict(model: Potential, weights, R, numbers, top, shifts, sid, n_struct):
    """Energies per structure (differentiable in weights and R)."""
    eps = model.atom_energies(weights, R, numbers, top, shifts) + model.reference_energies(numbers)
    return dnp.segment_sum(eps, sid, n_struct)


def batch_loss(model: Potential, weights, batch, config: TrainConfig):
    R, numbers, top, shifts, sid, nat, E_ref, F_ref = batch
    n = len(nat)
    energy = lambda w, R: dnp.sum(_predict(model, w, R, numbers, top, shifts, sid, n))
    E = _predict(model, weights, R, numbers, top, shifts, sid, n)
    F = -ds.grad(energy, argnums=1)(weights, R)
    e_term = dnp.mean(((E - E_ref) / nat) ** 2)
    f_term = dnp.mean((F - F_ref) ** 2)
    return config.energy_weight * e_term + config.force_weight * f_term


def evaluate(model: Potential, data: list[Structure], batch_size: int = 16) -> dict:
    """Energy MAE (meV/atom) and force MAE (meV/Å) of ``model`` on ``data``."""
    if not data:
        raise ValueError("no structures to evaluate on")
    e_err, f_err = [], []
    for k in range(0, len(data), batch_size):
        R, numbers, top, shifts, sid, nat, E_ref, F_ref = _batch(data[k:k + batch_size])
        n = len(nat)
        energy = lambda R: dnp.sum(_predict(model, model.weights, R, numbers, top, shifts, sid, n))
        E = np.asarray(_predict(model, model.weights, R, numbers, top, shifts, sid, n))
        F = -np.asarray(ds.grad(energy)(R))
        e_err.append(np.abs(E - E_ref) / nat)
        f_err.append(np.abs(F - F_ref).ravel())
    return {"energy_mae": 1000 * float(np.mean(np.concatenate(e_err))),
            "force_mae": 1000 * float(np.mean(np.concatenate(f_err)))}


def train(model: Potential, frames, config: TrainConfig | None = None, validation=None) -> History:
    """Fit ``model`` to ASE Atoms ``frames`` (with stored energy and forces). A random
    ``validation_fraction`` is held out unless ``validation`` frames are given. With
    ``config.checkpoint``, state is saved after every epoch and an existing checkpoint resumed."""
    config = config or TrainConfig()
    _check_config(config)
    rng = np.random.default_rng(config.seed)
    data = prepare(model, frames)
    if not data:
        raise ValueError("no structures to train on: give at least one structure with energy and forces")
    if validation is None:
        order = rng.permutation(len(data))
        n_val = max(1, int(round(config.validation_fraction * len(data)))) if len(data) > 1 else 0
        val = [data[k] for k in order[:n_val]]
        data = [data[k] for k in order[n_val:]]
    else:
        val = prepare(model, validation)
    if not data:
        raise ValueError("no training structures left after the validation split")
    history = History()
    state = _init_state(model)
    start_epoch = 0
    history.training_structures, history.validation_structures = len(data), len(val)
    fingerprint = data_fingerprint(data + val), len(data) + len(val)
    if config.checkpoint and pathlib.Path(config.checkpoint).exists():
        start_epoch, history, state, rng = load_checkpoint(config.checkpoint, model, config, *fingerprint)
        history.resumed_from = start_epoch
    else:
        model.fit_normalisation(data)
    if config.optimizer == "lbfgs":
        return _train_lbfgs(model, data, val, config, history)
    bar = progress_bar(config.epochs, "training", "epoch", config.progress, initial=start_epoch)
    t0 = time.perf_counter()
    best = min(history.val_loss) if history.val_loss else np.inf
    val_batch = _batch(val) if val else None
    for epoch in range(start_epoch, config.epochs if not history.stopped_early else start_epoch):
        lr = config.learning_rate * config.decay ** epoch
        order = rng.permutation(len(data))
        losses = []
        for k in range(0, len(order), config.batch_size):
            batch = _batch([data[i] for i in order[k:k + config.batch_size]])
            loss, grads = ds.value_and_grad(lambda w: batch_loss(model, w, batch, config))(model.weights)
            _adam_step(model, grads, state, lr)
            losses.append(float(loss))
        history.train_loss.append(float(np.mean(losses)))
        if val_batch is not None:
            history.val_loss.append(float(batch_loss(model, model.weights, val_batch, config)))
            metrics = evaluate(model, val)
            history.val_energy_mae.append(metrics["energy_mae"])
            history.val_force_mae.append(metrics["force_mae"])
            if history.val_loss[-1] < best:
                best, history.best_epoch = history.val_loss[-1], epoch
                state["best"] = _copy_weights(model.weights)
        bar.update(1)
        bar.set_postfix(train=f"{history.train_loss[-1]:.3g}",
                        F_mae=f"{history.val_force_mae[-1]:.1f}meV/Å" if history.val_force_mae else "-")
        if val_batch is not None and epoch - history.best_epoch >= config.patience:
            history.stopped_early = True
        if config.checkpoint:  # after the stopping decision, so that a resumed run makes the same one
            save_checkpoint(config.checkpoint, model, epoch + 1, history, state, rng, config, *fingerprint)
        if history.stopped_early:
            break
    bar.close()
    if state.get("best") is not None:
        model.weights = state["best"]
    history.seconds += time.perf_counter() - t0
    return history


def _train_lbfgs(model, data, val, config, history) -> History:
    """Full-batch L-BFGS (scipy) on the flattened weights; one history entry per iteration."""
    import scipy.optimize as so

    t0 = time.perf_counter()
    leaves, tree = flatten(model.weights)
    shapes = [np.shape(x) for x in leaves]
    sizes = [int(np.prod(sh)) for sh in shapes]
    full = _batch(data)
    val_batch = _batch(val) if val else None
    bar = progress_bar(config.epochs, "training", "epoch", config.progress)

    def unpack(z):
        parts = np.split(z, np.cumsum(sizes)[:-1])
        return unflatten(tree, [p.reshape(sh) for p, sh in zip(parts, shapes)])

    def fun(z):
        loss, grads = ds.value_and_grad(lambda w: batch_loss(model, w, full, config))(unpack(z))
        return float(loss), np.concatenate([np.ravel(g) for g in flatten(grads)[0]])

    def record(z):
        model.weights = unpack(z)
        history.train_loss.append(fun(z)[0])
        if val_batch is not None:
            history.val_loss.append(float(batch_loss(model, model.weights, val_batch, config)))
            metrics = evaluate(model, val)
            history.val_energy_mae.append(metrics["energy_mae"])
            history.val_force_mae.append(metrics["force_mae"])
        bar.update(1)

    z0 = np.concatenate([np.ravel(x) for x in leaves])
    res = so.minimize(fun, z0, jac=True, method="L-BFGS-B", callback=record,
                      options={"maxiter": config.epochs, "ftol": 1e-14, "gtol": 1e-10})
    model.weights = unpack(res.x)
    bar.close()
    history.best_epoch = len(history.train_loss) - 1
    history.seconds += time.perf_counter() - t0
    return history


# ---------------------------------------------------------------- Adam, checkpoints


def _copy_weights(w):
    leaves, tree = flatten(w)
    return unflatten(tree, [np.array(x, dtype=float, copy=True) for x in leaves])


def _init_state(model):
    leaves, _ = flatten(model.weights)
    return {"m": [np.zeros_like(x) for x in leaves], "v": [np.zeros_like(x) for x in leaves], "t": 0, "best": None}


def _adam_step(model, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8):
    leaves, tree = flatten(model.weights)
    g_leaves = flatten(grads)[0]
    state["t"] += 1
    t = state["t"]
    new = []
    for k, (w, g) in enumerate(zip(leaves, g_leaves)):
        g = np.asarray(g)
        state["m"][k] = b1 * state["m"][k] + (1 - b1) * g
        state["v"][k] = b2 * state["v"][k] + (1 - b2) * g * g
        mhat, vhat = state["m"][k] / (1 - b1 ** t), state["v"][k] / (1 - b2 ** t)
        new.append(np.asarray(w) - lr * mhat / (np.sqrt(vhat) + eps))
    model.weights = unflatten(tree, new)
