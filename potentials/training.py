"""Training a potential on energies, forces and stress: Adam on minibatches (or full-batch
L-BFGS), learning-rate schedules (exponential, cosine, plateau), an exponential moving average
of the weights, gradient clipping, a validation split or file, early stopping, a progress bar,
checkpoints that let an interrupted run resume where it stopped (deterministic with a seed), and
train/valid/test errors per config_type at the end.

A minibatch of structures is one graph (:mod:`potentials.structures`); the loss, a weighted sum
of energy-per-atom, force and stress terms, is in :mod:`potentials.loss`; reference energies
(E0s) in :mod:`potentials.e0s`.
"""

from __future__ import annotations

import pathlib
import time
from dataclasses import dataclass, field

import numpy as np

import diffsim as ds
from diffsim.progress import progress_bar
from diffsim.threads import single_threaded_blas
from diffsim.tree import flatten, unflatten

from .checkpoint import data_fingerprint, load_checkpoint, save_checkpoint
from .e0s import reference_energies, split_isolated
from .labels import LabelKeys
from .loss import batch_loss
from .metrics import ModelErrors, error_table, errors
from .model import Potential
from .reference_data import held_out_split
from .refit import estimate_refit_seconds, refit_readout, supports_refit
from .schedules import LearningRate, WeightAverage, clip_gradients
from .structures import Structure, make_batch, prepare

__all__ = ["TrainConfig", "History", "train", "evaluate", "prepare", "batch_loss", "Structure"]


@dataclass
class TrainConfig:
    """Training options; the defaults fit energies, forces and (where the data has it) stress of a
    small Cu model in a few minutes."""

    epochs: int = 200
    batch_size: int = 8
    learning_rate: float = 5e-3
    schedule: str = "exponential"     # "exponential", "cosine" or "plateau" (potentials.schedules)
    decay: float = 0.985              # exponential: learning rate x decay after every epoch
    plateau_patience: int = 10        # plateau: epochs without improvement before lr x plateau_factor
    plateau_factor: float = 0.5
    energy_weight: float = 100.0      # on (eV/atom)²
    force_weight: float = 10.0        # on (eV/Å)²
    stress_weight: float = 100.0      # on (eV/Å³)²; used where the data has stress
    # stage two (as MACE's): from this fraction of the epochs (or of max_seconds) on, the loss
    # weights below; forces lead first, energies are refined at the end. None: one stage.
    stage_two: float | None = 0.75
    stage_two_energy_weight: float = 1000.0
    stage_two_force_weight: float = 1.0
    stage_two_stress_weight: float = 100.0
    config_type_weights: dict | None = None  # config_type -> weight ("Default" for the rest)
    ema_decay: float | None = 0.99    # exponential moving average of the weights (None: off)
    clip_norm: float | None = 10.0    # global gradient-norm clipping (None: off)
    validation_fraction: float = 0.1
    patience: int = 30                # epochs without a better validation loss before stopping
    seed: int = 0
    checkpoint: str | None = None     # path of a .npz to save every epoch and resume from
    progress: bool = True
    max_seconds: float | None = None  # stop after this much CPU time of the process (checked after each epoch)
    optimizer: str = "adam"           # "adam" (minibatches) or "lbfgs" (full batch, scipy; epochs = iterations)
    keys: LabelKeys = field(default_factory=LabelKeys)   # where the labels are (potentials.labels)
    e0s: dict | str | None = None     # reference energies: a mapping, "isolated", "fit" or None (see e0s)
    # the last step (potentials.refit): the exact least-squares refit of the linear read-out on
    # energies, forces and stress, so that the bulk modulus does not hang on the stopping epoch.
    # None: for models that have one (ACSF), True: required, False: off. Its CPU time is kept
    # inside max_seconds. Weights (energy, forces, stress); None: the last stage's loss weights; a term
    # whose training weight is 0 in every stage is 0 here too.
    refit: bool | None = None
    refit_weights: tuple | None = (1000.0, 10.0, 10000.0)
    refit_structures: int = 200       # structures of the refit's force and stress terms


@dataclass
class History:
    """Per-epoch training and validation losses and errors (meV/atom, meV/Å), and at the end the
    errors of the returned model on the training, validation and test sets (potentials.metrics)."""

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_energy_mae: list = field(default_factory=list)
    val_force_mae: list = field(default_factory=list)
    learning_rate: list = field(default_factory=list)
    best_epoch: int = -1
    stopped_early: bool = False
    seconds: float = 0.0              # wall time
    cpu_seconds: float = 0.0          # CPU time of the process (on a busy machine, less than the wall time)
    errors: dict = field(default_factory=dict)
    resumed_from: int = 0             # the checkpoint's epoch when resumed, else 0
    training_structures: int = 0      # structures trained on (the held-out ones excluded)
    validation_structures: int = 0
    stage_two_epoch: int = -1         # the first epoch of stage two (-1: none)
    refit: dict = field(default_factory=dict)  # the read-out refit's losses before and after (potentials.refit)

    def table(self) -> str:
        """The final errors as a text table (set x config_type)."""
        return error_table(self.errors)


def _check_config(config: TrainConfig) -> None:
    """Refuse options no training can use, before any work."""
    count = lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
    weight = lambda v: bool(np.isfinite(v) and v >= 0)
    ok = {"epochs": count(config.epochs), "batch_size": count(config.batch_size), "patience": count(config.patience),
          "learning_rate": bool(np.isfinite(config.learning_rate) and config.learning_rate > 0),
          "decay": 0 < config.decay <= 1, "energy_weight": weight(config.energy_weight),
          "force_weight": weight(config.force_weight), "validation_fraction": 0 <= config.validation_fraction < 1,
          "stage_two": config.stage_two is None or 0 <= config.stage_two <= 1,
          "stage_two_energy_weight": weight(config.stage_two_energy_weight),
          "stage_two_force_weight": weight(config.stage_two_force_weight),
          "stage_two_stress_weight": weight(config.stage_two_stress_weight)}
    bad = [f"{name} = {getattr(config, name)!r}" for name, good in ok.items() if not good]
    if bad:
        raise ValueError(f"training options out of range: {', '.join(bad)} (epochs, batch_size and patience are "
                         "counts ≥ 1, learning_rate > 0, decay in (0, 1], weights ≥ 0, validation_fraction in [0, 1), "
                         "stage_two in [0, 1] or None)")
    if config.optimizer not in ("adam", "lbfgs"):
        raise ValueError(f"unknown optimizer {config.optimizer!r}: use 'adam' or 'lbfgs'")
    if config.refit_weights is not None and (len(config.refit_weights) != 3
                                             or not all(weight(w) for w in config.refit_weights)):
        raise ValueError(f"refit_weights = {config.refit_weights!r}: give three weights ≥ 0 (energy, forces, stress) "
                         "or None")
    if not count(config.refit_structures):
        raise ValueError(f"refit_structures = {config.refit_structures!r}: a count ≥ 1")
    if config.optimizer == "lbfgs" and config.checkpoint:
        raise ValueError("checkpoints are written by the 'adam' optimizer (L-BFGS runs are full-batch and short): "
                         "drop the checkpoint or use adam")


def _batch(structures):
    return make_batch(structures)


def evaluate(model: Potential, data: list[Structure], batch_size: int = 16) -> ModelErrors:
    """The errors of ``model`` on prepared structures ``data``: energy MAE (meV/atom), force MAE
    (meV/Å), their RMSEs and the stress errors (meV/Å³), per config_type too (see
    :class:`potentials.metrics.ModelErrors`).

    >>> from ase.build import bulk
    >>> from ase.calculators.emt import EMT
    >>> from potentials.model import ACSFModel
    >>> atoms = bulk("Cu", cubic=True); atoms.rattle(0.05, seed=1); atoms.calc = EMT(); _ = atoms.get_forces()
    >>> model = ACSFModel(["Cu"], hidden=(4,))
    >>> e = evaluate(model, prepare(model, [atoms]))
    >>> e.structures, e.force_mae > 0, sorted(e.by_config_type)
    (1, True, ['Default'])
    """
    t0 = time.perf_counter()
    table = errors(model, data, batch_size)
    return ModelErrors.from_table(table, seconds=time.perf_counter() - t0)


def _prepare_sets(model, frames, config, validation, test, rng):
    """Training, validation and test structures, isolated-atom frames set aside for the E0s."""
    frames, isolated = split_isolated(frames, config.keys)
    data = prepare(model, frames, config.keys, "training data")
    if validation is None:
        if len(data) > 1:
            val, data = held_out_split(data, config.validation_fraction, minimum=1, rng=rng)
        else:  # one structure trains; nothing is left to validate
            val = []
    else:
        val = prepare(model, split_isolated(validation, config.keys)[0], config.keys, "validation data")
    tests = prepare(model, split_isolated(test, config.keys)[0], config.keys, "test data") if test is not None \
        else []
    if not data:
        raise ValueError("no training structures left after the validation split")
    for structures in (data, val, tests):
        model.cache_inputs(structures)
    return data, val, tests, isolated


def _learning_rate(config: TrainConfig, schedule: LearningRate, epoch: int, fraction: float) -> float:
    """This epoch's rate: the plateau schedule's current one, a cosine over the time budget when
    there is one (``fraction``: the share of it used), else the schedule at ``epoch``."""
    if config.schedule == "plateau":
        return schedule.current
    if config.max_seconds is not None and config.schedule == "cosine":
        return schedule.rate(epoch, fraction)
    return schedule.rate(epoch)


def _train_epoch(model: Potential, data, order, config: TrainConfig, loss_config: TrainConfig, state, lr: float,
                 average) -> float:
    """One pass of Adam over the mini-batches in ``order`` (gradients clipped, the weight average
    updated after each step); returns the mean batch loss."""
    losses = []
    for k in range(0, len(order), config.batch_size):
        batch = _batch([data[i] for i in order[k:k + config.batch_size]])
        with single_threaded_blas():  # small products: OpenBLAS's pool costs 5x the CPU of a PaiNN step under load
            loss, grads = ds.value_and_grad(lambda w: batch_loss(model, w, batch, loss_config))(model.weights)
        grads, _ = clip_gradients(grads, config.clip_norm)
        _adam_step(model, grads, state, lr)
        if average is not None:
            average.update(model.weights)
        losses.append(float(loss))
    return float(np.mean(losses))


def _validate_epoch(model, val, val_batch, loss_config, average, history, state, epoch: int, best: float) -> float:
    """Score the epoch's weights (the averaged ones with an EMA) on the validation set, record
    them as the best when they are; returns the best validation loss so far."""
    live = model.weights
    if average is not None:
        model.weights = average.weights  # validate, and keep, the averaged weights
    if val_batch is not None:
        history.val_loss.append(float(batch_loss(model, model.weights, val_batch, loss_config)))
        metrics = evaluate(model, val)
        history.val_energy_mae.append(metrics.energy_mae)
        history.val_force_mae.append(metrics.force_mae)
        if history.val_loss[-1] < best:
            best, history.best_epoch = history.val_loss[-1], epoch
            state["best"] = _copy_weights(model.weights)
    else:
        state["best"] = _copy_weights(model.weights)
    model.weights = live
    return best


def _refit(model, data, config: TrainConfig, history: History, reserve: float) -> None:
    """The exact least-squares refit of the read-out with the last stage's loss weights."""
    last = _stage_config(config, 1.0 if history.stage_two_epoch >= 0 else 0.0)
    weights = config.refit_weights or (last.energy_weight, last.force_weight, last.stress_weight)
    # a term the training switched off (weight 0 in every stage) stays off: its labels may be unfit
    stages = (config, _stage_config(config, 1.0))
    on = [any(getattr(c, name) > 0 for c in stages) for name in ("energy_weight", "force_weight", "stress_weight")]
    weights = tuple(w if used else 0.0 for w, used in zip(weights, on))
    c = time.process_time()
    history.refit = refit_readout(model, data, *weights, config_type_weights=config.config_type_weights,
                                  max_structures=config.refit_structures, rng=_refit_rng(config))
    history.refit.update(cpu_seconds=time.process_time() - c, reserved=reserve)


def train(model: Potential, frames, config: TrainConfig | None = None, validation=None, test=None) -> History:
    """Fit ``model`` to ASE Atoms ``frames`` (labels as in :mod:`potentials.labels`). A random
    ``validation_fraction`` is held out unless ``validation`` frames are given; ``test`` frames
    are only scored at the end (``History.errors``). With ``config.checkpoint``, state is saved
    after every epoch and an existing checkpoint resumed."""
    config = config or TrainConfig()
    _check_config(config)
    rng = np.random.default_rng(config.seed)
    data, val, tests, isolated = _prepare_sets(model, frames, config, validation, test, rng)
    schedule = LearningRate(config.schedule, config.learning_rate, config.epochs, config.decay,
                            config.plateau_patience, config.plateau_factor)
    history = History()
    state = _init_state(model)
    start_epoch = 0
    history.training_structures, history.validation_structures = len(data), len(val)
    fingerprint = data_fingerprint(data + val), len(data) + len(val)
    if config.checkpoint and pathlib.Path(config.checkpoint).exists():
        start_epoch, history, state, rng = load_checkpoint(config.checkpoint, model, config, *fingerprint)
        history.resumed_from = start_epoch
    else:
        model.fit_normalisation(data, reference_energies(model, config.e0s, data, isolated))
    if config.optimizer == "lbfgs":
        history = _train_lbfgs(model, data, val, config, history)
        history.errors = _final_errors(model, data, val, tests)
        return history
    refit = _wants_refit(model, config)
    t0, cpu0 = time.perf_counter(), time.process_time()
    reserve = estimate_refit_seconds(model, data, config.refit_structures, _refit_rng(config)) if refit and \
        config.max_seconds is not None else 0.0
    budget = None if config.max_seconds is None else max(config.max_seconds - reserve, 0.0)
    bar = progress_bar(config.epochs, "training", "epoch", config.progress, initial=start_epoch)
    since = history.val_loss[max(history.stage_two_epoch, 0):]  # the best of the current stage
    best = min(since) if since else np.inf
    val_batch = _batch(val) if val else None
    average = WeightAverage(model.weights, config.ema_decay) if config.ema_decay else None
    for part in (average, schedule):  # resumed exactly: their state travels in the checkpoint
        if part is not None:
            part.load_state(state.get("extra", {}))
    for epoch in range(start_epoch, config.epochs if not history.stopped_early else start_epoch):
        fraction = min((history.cpu_seconds + time.process_time() - cpu0) / budget, 1.0) if budget else \
            (1.0 if budget is not None else epoch / config.epochs)
        loss_config = _stage_config(config, 1.0 if history.stage_two_epoch >= 0 else fraction)
        if loss_config is not config and history.stage_two_epoch < 0:
            history.stage_two_epoch, best = epoch, np.inf  # a new loss: the best epoch is chosen afresh
            schedule.best = np.inf
        lr = _learning_rate(config, schedule, epoch, fraction)
        history.train_loss.append(_train_epoch(model, data, rng.permutation(len(data)), config, loss_config, state,
                                               lr, average))
        history.learning_rate.append(lr)
        best = _validate_epoch(model, val, val_batch, loss_config, average, history, state, epoch, best)
        schedule.step(history.val_loss[-1] if history.val_loss else None)
        bar.update(1)
        bar.set_postfix(train=f"{history.train_loss[-1]:.3g}",
                        F_mae=f"{history.val_force_mae[-1]:.1f}meV/Å" if history.val_force_mae else "-")
        if val_batch is not None and epoch - history.best_epoch >= config.patience:
            if config.stage_two is not None and history.stage_two_epoch < 0:
                history.stage_two_epoch = epoch + 1  # stage one has converged: stage two starts now
                best, history.best_epoch, schedule.best = np.inf, epoch, np.inf
            else:
                history.stopped_early = True
        if config.checkpoint:  # after the stopping decision, so that a resumed run makes the same one
            state["extra"] = {**schedule.state_arrays(), **(average.state_arrays() if average is not None else {})}
            save_checkpoint(config.checkpoint, model, epoch + 1, history, state, rng, config, *fingerprint)
        if history.stopped_early:
            break
        if budget is not None and history.cpu_seconds + time.process_time() - cpu0 > budget:
            break
    bar.close()
    if state.get("best") is not None:
        model.weights = state["best"]
    if refit:
        _refit(model, data, config, history, reserve)
    history.seconds += time.perf_counter() - t0
    history.cpu_seconds += time.process_time() - cpu0
    history.errors = _final_errors(model, data, val, tests)
    return history


def _wants_refit(model, config: TrainConfig) -> bool:
    """Whether training ends with the read-out refit; an error if it is asked of a model without one."""
    able = supports_refit(model)
    if config.refit and not able:
        raise ValueError(f"refit=True asks for the read-out refit, which treats ACSF models, not "
                         f"{type(model).__name__}: leave refit at None (or False)")
    return able and config.refit is not False and config.optimizer == "adam"


def _refit_rng(config: TrainConfig) -> np.random.Generator:
    """The refit's own generator (its subset), apart from the training order's."""
    return np.random.default_rng([config.seed, 16])


def _stage_config(config: TrainConfig, fraction: float) -> TrainConfig:
    """``config`` itself in stage one; a copy with the stage-two loss weights from ``stage_two``
    (a fraction of the run) on.

    >>> _stage_config(TrainConfig(stage_two=0.5), 0.6).energy_weight, _stage_config(TrainConfig(), 0.1).energy_weight
    (1000.0, 100.0)
    """
    if config.stage_two is None or fraction < config.stage_two:
        return config
    from dataclasses import replace

    return replace(config, energy_weight=config.stage_two_energy_weight, force_weight=config.stage_two_force_weight,
                   stress_weight=config.stage_two_stress_weight, stage_two=None)


def _final_errors(model, data, val, tests) -> dict:
    sets = {"train": data, "valid": val, "test": tests}
    return {name: errors(model, structures) for name, structures in sets.items() if structures}


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
            history.val_energy_mae.append(metrics.energy_mae)
            history.val_force_mae.append(metrics.force_mae)
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
