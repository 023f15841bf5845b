"""Learning-rate schedules against their closed forms, the weight average against its
recursion, clipping against the norm, and training that uses them all."""

import math

import numpy as np
import pytest

from potentials.model import ACSFModel
from potentials.schedules import LearningRate, WeightAverage, clip_gradients
from potentials.training import TrainConfig, train


def test_schedules_follow_their_formulas():
    cos = LearningRate("cosine", 0.1, epochs=20, min_fraction=0.0)
    for e in (0, 5, 10, 20, 25):
        assert cos.rate(e) == pytest.approx(0.05 * (1 + math.cos(math.pi * min(e, 20) / 20)), abs=1e-15)
    exp = LearningRate("exponential", 0.1, epochs=20, decay=0.9)
    assert exp.rate(7) == pytest.approx(0.1 * 0.9 ** 7)
    plateau = LearningRate("plateau", 1.0, epochs=50, patience=1, factor=0.1)
    rates = [plateau.step(v) for v in (5.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0)]
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01])
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        LearningRate("step", 0.1, 10)


def test_weight_average_is_the_recursion_and_clipping_bounds_the_norm():
    rng = np.random.default_rng(0)
    seq = [{"a": rng.standard_normal(3), "b": [rng.standard_normal((2, 2))]} for _ in range(30)]
    avg = WeightAverage(seq[0], decay=0.9)
    a, b = seq[0]["a"].copy(), seq[0]["b"][0].copy()
    for t, w in enumerate(seq[1:]):
        avg.update(w)
        d = min(0.9, (1 + t) / (10 + t))
        a, b = d * a + (1 - d) * w["a"], d * b + (1 - d) * w["b"][0]
    np.testing.assert_allclose(avg.weights["a"], a, rtol=1e-13)
    np.testing.assert_allclose(avg.weights["b"][0], b, rtol=1e-13)
    g = {"x": rng.standard_normal(5) * 10, "y": [rng.standard_normal(4)]}
    norm = np.sqrt(np.sum(g["x"] ** 2) + np.sum(g["y"][0] ** 2))
    clipped, n = clip_gradients(g, 1.0)
    assert n == pytest.approx(norm)
    np.testing.assert_allclose(clipped["x"], g["x"] / norm, rtol=1e-13)
    same, _ = clip_gradients(g, 2 * norm)
    np.testing.assert_array_equal(same["x"], g["x"])


@pytest.mark.parametrize("schedule", ["cosine", "plateau"])
def test_training_with_each_schedule_records_its_rates(frames, schedule):
    model = ACSFModel(["Cu"], hidden=(4,), seed=0)
    h = train(model, frames[:10], TrainConfig(epochs=4, learning_rate=1e-2, schedule=schedule, progress=False,
                                              clip_norm=1.0, ema_decay=0.9))
    if schedule == "cosine":
        assert h.learning_rate == pytest.approx([LearningRate("cosine", 1e-2, 4).rate(e) for e in range(4)])
    else:
        assert h.learning_rate[0] == 1e-2
    assert np.isfinite(h.train_loss).all() and h.errors["train"]
