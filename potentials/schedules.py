"""Learning-rate schedules, an exponential moving average of the weights, and gradient clipping.

- ``exponential``: lr_0 γ^epoch;
- ``cosine``: lr_0 (min_fraction + (1 − min_fraction) (1 + cos(π epoch / epochs)) / 2)
  (Loshchilov and Hutter, SGDR, 2017, without restarts);
- ``plateau``: lr × factor when the validation loss has not improved by a relative 1e-4 for
  ``patience`` epochs (as torch's ReduceLROnPlateau, mode "min", threshold "rel").

>>> s = LearningRate("cosine", 1e-2, epochs=10)
>>> round(s.rate(0), 6), round(s.rate(10), 6)
(0.01, 0.0001)
>>> p = LearningRate("plateau", 1.0, epochs=100, patience=2, factor=0.5)
>>> [p.step(loss) for loss in (3.0, 2.0, 2.0, 2.0, 2.0)]
[1.0, 1.0, 1.0, 1.0, 0.5]
"""

from __future__ import annotations

import math

import numpy as np

from diffsim.tree import flatten, unflatten

SCHEDULES = ("exponential", "cosine", "plateau")


class LearningRate:
    """The learning rate of each epoch: ``rate(epoch)``, and ``step(val_loss)`` after an epoch
    (which the plateau schedule needs) returning the rate of the next."""

    def __init__(self, kind: str, initial: float, epochs: int, decay: float = 0.985, patience: int = 10,
                 factor: float = 0.5, min_fraction: float = 0.01) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {kind!r}: use one of {', '.join(SCHEDULES)}")
        if not initial > 0:
            raise ValueError(f"the learning rate must be positive, got {initial}")
        self.kind, self.initial, self.epochs = kind, float(initial), max(int(epochs), 1)
        self.decay, self.patience, self.factor, self.min_fraction = decay, int(patience), factor, min_fraction
        self.current, self.best, self.bad, self.epoch = self.initial, np.inf, 0, 0

    def state_arrays(self) -> dict:
        """What a checkpoint stores to continue the schedule exactly."""
        return {"schedule/state": np.array([self.current, self.best, self.bad, self.epoch], dtype=float)}

    def load_state(self, arrays: dict) -> None:
        if "schedule/state" in arrays:
            current, best, bad, epoch = np.asarray(arrays["schedule/state"], dtype=float)
            self.current, self.best, self.bad, self.epoch = float(current), float(best), int(bad), int(epoch)

    def rate(self, epoch: int, fraction: float | None = None) -> float:
        """The rate of ``epoch``; the cosine follows ``fraction`` of the run when given (a
        training limited by time rather than epochs)."""
        if self.kind == "exponential":
            return self.initial * self.decay ** epoch
        if self.kind == "cosine":
            x = min(epoch, self.epochs) / self.epochs if fraction is None else min(max(fraction, 0.0), 1.0)
            return self.initial * (self.min_fraction + (1 - self.min_fraction) * 0.5 * (1 + math.cos(math.pi * x)))
        return self.current

    def step(self, val_loss: float | None) -> float:
        """Record the epoch's validation loss; the rate of the next epoch."""
        self.epoch += 1
        if self.kind == "plateau" and val_loss is not None and np.isfinite(val_loss):
            if val_loss < self.best * (1 - 1e-4):
                self.best, self.bad = val_loss, 0
            else:
                self.bad += 1
                if self.bad > self.patience:
                    self.current *= self.factor
                    self.bad = 0
        return self.rate(self.epoch)


class WeightAverage:
    """Exponential moving average of the weights, w̄ ← d w̄ + (1 − d) w after every step, with
    the warm-up d_t = min(d, (1 + t)/(10 + t)) (as TensorFlow's ExponentialMovingAverage with
    num_updates) so that early weights fade quickly.

    >>> avg = WeightAverage({"w": np.zeros(2)}, decay=0.5)
    >>> avg.update({"w": np.ones(2)}); avg.weights["w"].tolist()   # warm-up: d_0 = 1/10
    [0.9, 0.9]
    """

    def __init__(self, weights, decay: float = 0.99) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"the EMA decay must lie in [0, 1), got {decay}")
        leaves, self._tree = flatten(weights)
        self._avg = [np.array(x, dtype=float, copy=True) for x in leaves]
        self.decay, self.updates = float(decay), 0

    def update(self, weights) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, x in enumerate(flatten(weights)[0]):
            self._avg[k] = d * self._avg[k] + (1 - d) * np.asarray(x)
        self.updates += 1

    def state_arrays(self) -> dict:
        """What a checkpoint stores to continue the average exactly."""
        return {"ema/updates": np.array(self.updates), **{f"ema/{k}": a for k, a in enumerate(self._avg)}}

    def load_state(self, arrays: dict) -> None:
        if "ema/updates" in arrays:
            self.updates = int(arrays["ema/updates"])
            self._avg = [np.array(arrays[f"ema/{k}"], dtype=float) for k in range(len(self._avg))]

    @property
    def weights(self):
        return unflatten(self._tree, [a.copy() for a in self._avg])


def clip_gradients(grads, max_norm: float | None):
    """``grads`` scaled so that their global 2-norm is at most ``max_norm`` (None: unchanged);
    returns (grads, the norm before clipping).

    >>> g, n = clip_gradients({"a": np.array([3.0, 4.0])}, 1.0)
    >>> [round(float(x), 12) for x in g["a"]], n
    ([0.6, 0.8], 5.0)
    """
    leaves, tree = flatten(grads)
    leaves = [np.asarray(g, dtype=float) for g in leaves]
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in leaves)))
    if max_norm is None or norm <= max_norm or norm == 0.0:
        return unflatten(tree, leaves), norm
    scale = max_norm / norm
    return unflatten(tree, [g * scale for g in leaves]), norm
