"""MD replicas with EMT, here and on a LocalCluster of two workers: ensemble statistics."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from scipy import stats

from diffsim import cluster
from potentials.replicas import run_replicas

ATOMS = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
RUN = dict(temperatures=(300.0, 600.0), replicas=3, steps=20, interval=4, progress=False)


@pytest.fixture(scope="module")
def dask_client():
    with cluster.client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def serial():
    return run_replicas(EMT(), ATOMS, **RUN)


def test_replicas_on_the_cluster_equal_the_serial_ones(dask_client, serial):
    parallel = run_replicas(EMT(), ATOMS, client=dask_client, **RUN)
    assert sorted(parallel.runs) == sorted(serial.runs) == ["300K-r0", "300K-r1", "300K-r2", "600K-r0", "600K-r1",
                                                            "600K-r2"]
    for key, run in serial.runs.items():
        for name in ("g", "msd", "D", "drift"):
            np.testing.assert_array_equal(parallel.runs[key][name], run[name])


def test_ensemble_statistics_and_physics(serial, tmp_path):
    for k, T in enumerate((300.0, 600.0)):
        runs = [serial.runs[f"{T:g}K-r{i}"] for i in range(3)]
        D = [r["D"] for r in runs]
        assert serial.D_mean[k] == pytest.approx(np.mean(D), rel=1e-12)
        assert serial.D_sem[k] == pytest.approx(stats.sem(D), rel=1e-12)  # scipy's standard error of the mean
        np.testing.assert_allclose(serial.g_sem[k], stats.sem([r["g"] for r in runs], axis=0), rtol=1e-12)
        assert len({r["drift"] for r in runs}) == 3  # independent replicas
    peak = serial.r[np.argmax(serial.g_mean[0])]
    assert abs(peak - 3.61 / np.sqrt(2)) < 0.1  # fcc nearest neighbours at a/√2
    assert np.all(serial.msd_mean[:, 0] == 0.0) and np.all(serial.msd_mean[:, -1] > 0)
    assert "± " in serial.table() and len(serial.table().splitlines()) == 3
    serial.plot(tmp_path / "replicas.png")
    assert (tmp_path / "replicas.png").stat().st_size > 0


def test_bad_replica_requests():
    with pytest.raises(ValueError, match="replicas must be"):
        run_replicas(EMT(), ATOMS, temperatures=(300,), replicas=0)
    with pytest.raises(ValueError, match="positive kelvins"):
        run_replicas(EMT(), ATOMS, temperatures=(), replicas=2)
    with pytest.raises(ValueError, match="twice the sampling interval"):
        run_replicas(EMT(), ATOMS, temperatures=(300,), replicas=2, steps=5, interval=5)
