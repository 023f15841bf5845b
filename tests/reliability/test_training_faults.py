"""Training checkpoints under faults: SIGKILL at a random moment leaves a checkpoint that
resumes to exactly the weights of an uninterrupted run (the reference: the same training run
straight through, in this process); a checkpoint of another run is refused, saying what differs."""

import random
import signal
import time

import numpy as np
import pytest

import diffsim as ds
from potentials.checkpoint import CheckpointError
from potentials.model import ACSFModel
from potentials.painn import PaiNNModel
from potentials.reference_data import load_dataset
from potentials.training import TrainConfig, train

from .reliability_helpers import start_python

EPOCHS = 150  # long enough that a kill up to 1.5 s after the first checkpoint lands mid-run
CHILD = """
import sys
from potentials.model import ACSFModel
from potentials.reference_data import load_dataset
from potentials.training import TrainConfig, train
train(ACSFModel(["Cu"], hidden=(4,), seed=1), load_dataset(sys.argv[1]),
      TrainConfig(epochs={epochs}, batch_size=4, seed=2, patience=10**6, progress=False, checkpoint=sys.argv[2]))
"""


def _config(**kw):
    return TrainConfig(**{**dict(epochs=EPOCHS, batch_size=4, seed=2, patience=10**6, progress=False), **kw})


@pytest.fixture(scope="module")
def straight(tiny_dataset):
    model = ACSFModel(["Cu"], hidden=(4,), seed=1)
    history = train(model, load_dataset(tiny_dataset), _config())
    return model, history


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(ds.tree.flatten(a.weights)[0], ds.tree.flatten(b.weights)[0]))


def _epoch(path) -> int:
    try:
        with np.load(path) as f:
            return int(f["epoch"])
    except (OSError, KeyError, ValueError):
        return 0


def _kill_and_resume(tiny_dataset, tmp_path, cache, delay):
    ckpt = tmp_path / "run.ckpt.npz"
    code = CHILD.replace("{epochs}", str(EPOCHS)).replace("sys.argv[1]", repr(str(tiny_dataset))) \
        .replace("sys.argv[2]", repr(str(ckpt)))
    child = start_python(code, cache)
    deadline = time.time() + 300
    while _epoch(ckpt) < 2 and child.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL
    resumed = ACSFModel(["Cu"], hidden=(4,), seed=1)
    history = train(resumed, load_dataset(tiny_dataset), _config(checkpoint=str(ckpt)))
    assert not list(tmp_path.glob(".partial-*"))  # the next write swept what the kill left
    return resumed, history


def test_sigkill_during_training_resumes_bit_exact(straight, tiny_dataset, tmp_path, cache):
    delay = random.Random(15).uniform(0.0, 0.4)
    resumed, history = _kill_and_resume(tiny_dataset, tmp_path, cache, delay)
    assert _same_weights(resumed, straight[0]), f"killed {delay:.3f} s after the first checkpoint"
    assert history.train_loss == straight[1].train_loss


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(8))
def test_sigkill_soak(straight, tiny_dataset, tmp_path, cache, trial):
    delay = random.Random(trial).uniform(0.0, 1.5)
    resumed, _ = _kill_and_resume(tiny_dataset, tmp_path, cache, delay)
    assert _same_weights(resumed, straight[0]), f"killed {delay:.3f} s after the first checkpoint"


@pytest.fixture
def checkpoint(tiny_dataset, tmp_path):
    path = tmp_path / "c.npz"
    train(ACSFModel(["Cu"], hidden=(4,), seed=1), load_dataset(tiny_dataset), _config(epochs=3, checkpoint=str(path)))
    return path


@pytest.mark.parametrize("change, says", [
    (dict(model=lambda: ACSFModel(["Cu"], hidden=(6,), seed=1)), "hidden: [4] in the checkpoint, [6] now"),
    (dict(model=lambda: PaiNNModel(["Cu"], features=4)), "holds a 'acsf' model, this run trains a 'painn' model"),
    (dict(config=dict(batch_size=5)), "batch_size: 4 in the checkpoint, 5 now"),
    (dict(config=dict(seed=3)), "seed: 2 in the checkpoint, 3 now"),
    (dict(config=dict(learning_rate=1e-3)), "learning_rate"),
    (dict(config=dict(epochs=2)), "already trained 3 epochs, more than the 2 asked for"),
    (dict(data=lambda frames: frames[:-1]), "the training data differ"),
    (dict(data=lambda frames: frames[::-1]), "the training data differ"),
])
def test_resuming_another_run_is_refused_saying_what_differs(checkpoint, tiny_dataset, change, says):
    frames = load_dataset(tiny_dataset)
    frames = change.get("data", lambda f: f)(frames)
    model = change.get("model", lambda: ACSFModel(["Cu"], hidden=(4,), seed=1))()
    before = checkpoint.read_bytes()
    with pytest.raises(CheckpointError, match=says.replace("[", r"\[").replace("]", r"\]")):
        train(model, frames, _config(**{"epochs": 6, "checkpoint": str(checkpoint), **change.get("config", {})}))
    assert checkpoint.read_bytes() == before  # refused before touching it


def test_changed_labels_with_the_same_count_are_refused(checkpoint, tiny_dataset):
    from ase.calculators.singlepoint import SinglePointCalculator

    frames = load_dataset(tiny_dataset)
    a = frames[5]
    a.calc = SinglePointCalculator(a, energy=a.get_potential_energy() + 0.01, forces=a.get_forces())
    with pytest.raises(CheckpointError, match="the training data differ"):
        train(ACSFModel(["Cu"], hidden=(4,), seed=1), frames, _config(epochs=6, checkpoint=str(checkpoint)))


def test_asking_for_the_epochs_already_done_trains_nothing_and_says_so(checkpoint, tiny_dataset):
    model = ACSFModel(["Cu"], hidden=(4,), seed=1)
    h = train(model, load_dataset(tiny_dataset), _config(epochs=3, checkpoint=str(checkpoint)))
    assert h.resumed_from == 3 and len(h.train_loss) == 3
    straight = ACSFModel(["Cu"], hidden=(4,), seed=1)
    train(straight, load_dataset(tiny_dataset), _config(epochs=3))
    assert _same_weights(model, straight)


def test_an_early_stopped_run_stays_stopped(tiny_dataset, tmp_path):
    path = tmp_path / "c.npz"
    config = _config(epochs=60, patience=1, checkpoint=str(path))
    first = ACSFModel(["Cu"], hidden=(4,), seed=1)
    h1 = train(first, load_dataset(tiny_dataset), config)
    assert h1.stopped_early and len(h1.train_loss) < 60
    again = ACSFModel(["Cu"], hidden=(4,), seed=1)
    h2 = train(again, load_dataset(tiny_dataset), config)
    assert len(h2.train_loss) == len(h1.train_loss) and _same_weights(first, again)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "model_file"])
def test_a_damaged_checkpoint_is_refused_with_what_to_do(checkpoint, tiny_dataset, tiny_model, damage):
    blob = checkpoint.read_bytes()
    checkpoint.write_bytes({"truncate": blob[: len(blob) // 2], "garbage": b"PK\x03\x04" + bytes(200), "empty": b"",
                            "model_file": tiny_model.read_bytes()}[damage])
    with pytest.raises(CheckpointError, match="delete it|another --checkpoint"):
        train(ACSFModel(["Cu"], hidden=(4,), seed=1), load_dataset(tiny_dataset),
              _config(epochs=6, checkpoint=str(checkpoint)))


def test_the_checkpoint_is_one_file(checkpoint):
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["c.npz"]
