"""Training checkpoints: ONE file, written atomically after every epoch, holding everything a
resumed run needs to continue exactly where the interrupted one stopped — the model (weights,
references, fitted normalisations), Adam's moments and step count, the epoch, the random
generator's state, the history, the training options and a fingerprint of the training data.

A crash at any moment leaves the previous checkpoint or the new one, never a mixture. Resuming
checks that the run is the same run: the model's kind and architecture, the training options
(all but ``epochs``) and the data must match, and a mismatch is refused with a message that says
what differs.

>>> import tempfile, os, numpy as np
>>> from potentials.model import ACSFModel
>>> from potentials.training import History, TrainConfig
>>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt.npz")
>>> m = ACSFModel(["Cu"], hidden=(4,))
>>> state = {"m": [np.zeros_like(w) for w in flat_weights(m)], "v": [np.zeros_like(w) for w in flat_weights(m)],
...          "t": 0, "best": None}
>>> save_checkpoint(path, m, 3, History(), state, np.random.default_rng(0), TrainConfig(), "abc", 10)
>>> load_checkpoint(path, ACSFModel(["Cu"], hidden=(4,)), TrainConfig(), "abc", 10)[0]
3
>>> load_checkpoint(path, ACSFModel(["Cu"], hidden=(8,)), TrainConfig(), "abc", 10)
Traceback (most recent call last):
...
potentials.checkpoint.CheckpointError: ...hidden: [4] in the checkpoint, [8] now...
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from dataclasses import asdict, fields

import numpy as np

from diffsim.errors import DiffsimError
from diffsim.files import write_npz_atomically
from diffsim.tree import flatten, unflatten

from .model import ModelFileError, model_from_arrays

FORMAT = "diffsim-training-checkpoint"
FORMAT_VERSION = 1
# options that may change between an interrupted run and its resumption
_FREE_OPTIONS = ("epochs", "checkpoint", "progress", "max_seconds")


class CheckpointError(DiffsimError, ValueError):
    """A checkpoint that cannot be resumed: damaged, another format, or another run's (the message
    says what differs and what to do)."""


def flat_weights(model) -> list:
    """The model's weight arrays in a fixed order (the order of the optimiser's moments)."""
    return flatten(model.weights)[0]


def data_fingerprint(structures) -> str:
    """A SHA-256 over the prepared structures' positions, species, periodic shifts and reference
    energies and forces, in order: a resumed run must see exactly the same data.

    >>> from types import SimpleNamespace as S
    >>> a = S(positions=np.zeros((1, 3)), numbers=np.array([29]), energy=-1.0, forces=np.zeros((1, 3)),
    ...       shift_vectors=np.zeros((0, 3)))
    >>> data_fingerprint([a]) == data_fingerprint([a]), len(data_fingerprint([a]))
    (True, 64)
    """
    h = hashlib.sha256()
    for st in structures:
        for array in (st.positions, st.numbers, np.float64(st.energy), st.forces, st.shift_vectors,
                      getattr(st, "stress", np.zeros(0))):
            a = np.ascontiguousarray(array)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
    return h.hexdigest()


def _options(config) -> dict:
    """The options a resumed run must share, as JSON values."""
    from dataclasses import asdict, is_dataclass

    plain = lambda v: asdict(v) if is_dataclass(v) else list(v) if isinstance(v, tuple) else v
    return json.loads(json.dumps({f.name: plain(getattr(config, f.name)) for f in fields(config)
                                  if f.name not in _FREE_OPTIONS}))


def save_checkpoint(path: str | os.PathLike, model, epoch: int, history, state: dict, rng, config,
                    fingerprint: str, n_structures: int) -> None:
    """Write the training state after ``epoch`` epochs to ``path`` in one atomic write."""
    arrays = {f"model/{k}": v for k, v in model.arrays().items()}
    arrays.update({"checkpoint_format": np.array(FORMAT), "checkpoint_version": np.array(FORMAT_VERSION),
                   "epoch": np.array(int(epoch)), "t": np.array(int(state["t"])),
                   "rng": np.array(json.dumps(rng.bit_generator.state)),
                   "history": np.array(json.dumps(asdict(history))),
                   "options": np.array(json.dumps(_options(config))),
                   "fingerprint": np.array(fingerprint), "n_structures": np.array(int(n_structures))})
    for k, (m, v) in enumerate(zip(state["m"], state["v"])):
        arrays[f"adam_m/{k}"], arrays[f"adam_v/{k}"] = np.asarray(m), np.asarray(v)
    if state.get("best") is not None:
        for k, b in enumerate(flatten(state["best"])[0]):
            arrays[f"best/{k}"] = np.asarray(b, dtype=float)
    arrays.update({f"extra/{k}": np.asarray(v) for k, v in state.get("extra", {}).items()})  # schedule, EMA
    write_npz_atomically(path, arrays)


def _differences(stored: dict, now: dict) -> list[str]:
    keys = sorted(set(stored) | set(now))
    return [f"{k}: {stored.get(k, '(absent)')} in the checkpoint, {now.get(k, '(absent)')} now"
            for k in keys if stored.get(k) != now.get(k)]


def _read(path: pathlib.Path) -> dict:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc}); delete it to "
                              "train from the start, or give another --checkpoint") from None
    if "checkpoint_format" not in data or str(data["checkpoint_format"]) != FORMAT:
        raise CheckpointError(f"{path}: not a diffsim training checkpoint (an older two-file checkpoint or another "
                              "file); delete it to train from the start, or give another --checkpoint")
    if int(data["checkpoint_version"]) != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {int(data['checkpoint_version'])}, this diffsim reads "
                              f"{FORMAT_VERSION}; resume it with the diffsim that wrote it, or start afresh")
    return data


def load_checkpoint(path: str | os.PathLike, model, config, fingerprint: str, n_structures: int):
    """Restore ``model`` from the checkpoint at ``path`` and return ``(epoch, history, state,
    rng)``; raises :class:`CheckpointError` if it is damaged or belongs to another run (another
    model kind or architecture, other training options, other data) or has already trained more
    epochs than ``config.epochs``."""
    from .training import History

    path = pathlib.Path(path)
    data = _read(path)
    try:
        stored = model_from_arrays({k[len("model/"):]: v for k, v in data.items() if k.startswith("model/")}, path)
    except ModelFileError as exc:
        raise CheckpointError(f"{exc}; delete the checkpoint to train from the start") from None
    fix = "; resume with the options and data of the interrupted run, or give another --checkpoint to start afresh"
    if stored.kind != model.kind:
        raise CheckpointError(f"{path} holds a '{stored.kind}' model, this run trains a '{model.kind}' model{fix}")
    architecture = lambda m: {k: v for k, v in m.config().items() if k != "seed"}  # the seed only drew the start
    diff = _differences(architecture(stored), architecture(model))
    if diff:
        raise CheckpointError(f"{path}: the model differs from the checkpoint's ({'; '.join(diff)}){fix}")
    try:
        options = json.loads(str(data["options"]))
        diff = _differences(options, json.loads(json.dumps(_options(config))))
        if diff:
            raise CheckpointError(f"{path}: the training options differ ({'; '.join(diff)}){fix}")
        if str(data["fingerprint"]) != fingerprint:
            then = int(data["n_structures"])
            raise CheckpointError(f"{path}: the training data differ from the checkpoint's ({then} structures then, "
                                  f"{n_structures} now, or the same number with other contents){fix}")
        epoch = int(data["epoch"])
        if epoch > config.epochs:
            raise CheckpointError(f"{path} has already trained {epoch} epochs, more than the {config.epochs} asked "
                                  f"for; ask for more than {epoch} epochs to continue it, or give another --checkpoint")
        leaves, tree = flatten(stored.weights)
        n = len(leaves)
        state = {"m": [data[f"adam_m/{k}"] for k in range(n)], "v": [data[f"adam_v/{k}"] for k in range(n)],
                 "t": int(data["t"]), "best": None,
                 "extra": {k[len("extra/"):]: v for k, v in data.items() if k.startswith("extra/")}}
        if "best/0" in data:
            state["best"] = unflatten(tree, [data[f"best/{k}"] for k in range(n)])
        history = History(**json.loads(str(data["history"])))
        rng = np.random.default_rng()
        rng.bit_generator.state = json.loads(str(data["rng"]))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc}); delete it to train from "
                              "the start") from None
    for k, (m, w) in enumerate(zip(state["m"], leaves)):
        if m.shape != np.shape(w) or state["v"][k].shape != np.shape(w):
            raise CheckpointError(f"{path}: damaged checkpoint (optimizer state {k} has shape {m.shape}, the weight "
                                  f"{np.shape(w)}); delete it to train from the start")
    model.weights, model.reference = stored.weights, stored.reference
    model.set_buffers(stored.buffers())
    return epoch, history, state, rng


__all__ = ["CheckpointError", "data_fingerprint", "load_checkpoint", "save_checkpoint"]
