"""Committee training on a real LocalCluster of two worker processes: each member equals the plain
single-model training with the member's seed, bit for bit, here and on the workers; a killed
worker and an interrupted client lose no member and train none twice."""

import dataclasses
import os
import time

import numpy as np
import pytest

from potentials.committee import member_path, train_committee
from potentials.model import ACSFModel, ModelFileError
from potentials.training import TrainConfig, train
from tests.reliability.worker_faults import kill_a_busy_worker, wait_for_workers

CONFIG = TrainConfig(epochs=15, batch_size=4, learning_rate=1e-2, patience=1000, progress=False, seed=3)
SIZE = 3


def make(k):
    return ACSFModel(["Cu"], hidden=(8,), seed=100 + k)


@pytest.fixture(scope="module")
def data(frames):
    return frames[:12]


@pytest.fixture(scope="module")
def reference(data):
    """Each member trained on its own, as one model, with the seed the committee gives it."""
    out = []
    for k in range(SIZE):
        model = make(k)
        history = train(model, data, dataclasses.replace(CONFIG, seed=CONFIG.seed + k))
        out.append((model.to_arrays(), history.train_loss))
    return out


def _assert_members(committee, histories, reference):
    assert len(committee) == SIZE
    for member, history, (arrays, losses) in zip(committee.members, histories, reference):
        got = member.to_arrays()
        assert sorted(got) == sorted(arrays)
        for name in arrays:
            np.testing.assert_array_equal(got[name], arrays[name], err_msg=name)  # bit for bit
        assert history.train_loss == losses


def test_members_on_workers_equal_serial_members_bit_for_bit(dask_client, data, reference, tmp_path):
    serial = train_committee(make, data, CONFIG, size=SIZE)
    _assert_members(*serial, reference)
    parallel = train_committee(make, data, CONFIG, size=SIZE, client=dask_client, members_dir=tmp_path / "m")
    _assert_members(*parallel, reference)
    assert sorted(os.listdir(tmp_path / "m")) == [f"member{k}.npz" for k in range(SIZE)]


def test_killing_a_worker_mid_committee_trains_each_member_once(dask_client, data, reference, tmp_path):
    finished = []
    start = time.time()
    killer, killed = kill_a_busy_worker(dask_client, lambda: time.time() - start > 0.5)  # past the imports
    committee, histories = train_committee(make, data, CONFIG, size=SIZE, client=dask_client,
                                           members_dir=tmp_path / "m", progress=lambda k, h: finished.append(k))
    killer.join()
    assert killed and killed[0][1], "no worker was killed while it trained a member"
    assert sorted(finished) == list(range(SIZE))  # each member reported (and written) once
    _assert_members(committee, histories, reference)
    wait_for_workers(dask_client, 2)


def test_an_interrupted_committee_resumes_without_retraining_kept_members(data, reference, tmp_path):
    folder = tmp_path / "members"

    def interrupt(k, history):
        raise KeyboardInterrupt  # the client dies after the first member was written

    with pytest.raises(KeyboardInterrupt):
        train_committee(make, data, CONFIG, size=SIZE, members_dir=folder, progress=interrupt)
    assert [member_path(folder, k).exists() for k in range(SIZE)] == [True, False, False]
    stamp = member_path(folder, 0).stat().st_mtime_ns
    retrained = []
    committee, histories = train_committee(make, data, CONFIG, size=SIZE, members_dir=folder,
                                           progress=lambda k, h: retrained.append(k))
    assert retrained == [1, 2] and member_path(folder, 0).stat().st_mtime_ns == stamp
    _assert_members(committee, histories, reference)
    with pytest.raises(ModelFileError, match="other data, options or initial weights"):
        train_committee(make, data, dataclasses.replace(CONFIG, epochs=5), size=SIZE, members_dir=folder)
    with pytest.raises(ModelFileError, match="other data"):
        train_committee(make, data[:-1], CONFIG, size=SIZE, members_dir=folder)


@pytest.mark.slow  # ~20 s: the command starts its own LocalCluster
def test_cli_trains_the_committee_on_workers_as_it_does_in_one_process(frames, tmp_path):
    from ase.io import write

    from diffsim.cli import main
    from potentials.committee import members_folder
    from potentials.model import load_model

    write(tmp_path / "cu.extxyz", frames[:8])
    common = ["potential", "train", "--data", str(tmp_path / "cu.extxyz"), "--ensemble", "2", "--epochs", "3",
              "--hidden", "4"]
    assert main(common + ["--out", str(tmp_path / "serial.npz")]) == 0
    assert main(common + ["--out", str(tmp_path / "parallel.npz"), "--workers", "2"]) == 0
    serial, parallel = load_model(tmp_path / "serial.npz"), load_model(tmp_path / "parallel.npz")
    for a, b in zip(serial.members, parallel.members):
        for x, y in zip(a.weights, b.weights):
            np.testing.assert_array_equal(x, y)
    assert not members_folder(tmp_path / "parallel.npz").exists()  # the committee file holds the members now
    assert main(["potential", "train", "--data", str(tmp_path / "cu.extxyz"), "--workers", "2",
                 "--out", str(tmp_path / "one.npz")]) == 2  # --workers without --ensemble: a usage error
