"""diffsim.cluster on a real LocalCluster of two worker processes: results, failures, dead workers."""

import math
import os
import signal
import sys
import time

import numpy as np
import pytest

from diffsim import cluster


@pytest.fixture(scope="module")
def dask_client():
    with cluster.client(workers=2) as c:
        yield c


def _noisy_sum(task):
    """A task whose result depends on its key's generator only."""
    key, n = task
    return float(np.sum(cluster.task_rng(key, seed=7).standard_normal(n)))


def _fails_on_three(x):
    if x == 3:
        raise ArithmeticError(f"no threes here (got {x})")
    return x * 10


def _slow(x):
    time.sleep(0.4)
    return os.getpid(), x


def _worker_state(_):
    from threadpoolctl import threadpool_info

    return os.getpid(), [p["num_threads"] for p in threadpool_info()], os.environ.get("DIFFSIM_CACHE_DIR")


def test_parallel_results_equal_serial_bit_for_bit(dask_client):
    tasks = [(f"k{i}", 50 + i) for i in range(12)]
    keys = [t[0] for t in tasks]
    serial = dict(cluster.map_tasks(_noisy_sum, tasks, keys=keys, progress=False))
    parallel = dict(cluster.map_tasks(_noisy_sum, tasks, keys=keys, client=dask_client, progress=False))
    for key, _n in tasks:
        assert parallel[key] == serial[key]  # ==, not approx: the same bits from another process
    assert len(set(serial.values())) == len(tasks)  # the key, not the order, seeds each task
    windowed = dict(cluster.map_tasks(_noisy_sum, tasks, keys=keys, client=dask_client, progress=False, in_flight=3))
    assert windowed == serial


def test_both_workers_are_used_with_one_blas_thread(dask_client):
    states = dict(cluster.map_tasks(_worker_state, range(8), client=dask_client, progress=False))
    pids = {s[0] for s in states.values()}
    assert os.getpid() not in pids
    assert all(set(s[1]) <= {1} for s in states.values())  # every BLAS/OpenMP pool at one thread
    workers = dask_client.run(os.getpid)
    assert pids <= set(workers.values()) and len(workers) == 2
    plugins = dask_client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert all("diffsim-worker-setup" in names for names in plugins.values())


def test_a_failing_task_is_named_and_the_rest_finish(dask_client, capsys):
    got = {}
    with pytest.raises(cluster.TasksFailed) as info:
        for key, value in cluster.map_tasks(_fails_on_three, range(6), keys=list("abcdef"), client=dask_client,
                                            progress=False):
            got[key] = value
    assert got == {k: 10 * i for i, k in enumerate("abcdef") if i != 3}
    assert [(f.key, f.message) for f in info.value.failures] == [("d", "ArithmeticError: no threes here (got 3)")]
    assert "1 of 6 tasks failed" in str(info.value)
    assert "task d failed: ArithmeticError: no threes here (got 3)" in capsys.readouterr().err
    # the serial path reports the same way
    with pytest.raises(cluster.TasksFailed, match="d: ArithmeticError"):
        list(cluster.map_tasks(_fails_on_three, range(6), keys=list("abcdef"), progress=False))
    failures = [v for _, v in cluster.map_tasks(_fails_on_three, range(6), client=dask_client, progress=False,
                                                raise_failures=False) if isinstance(v, cluster.TaskFailure)]
    assert [f.key for f in failures] == ["3"]


def test_a_killed_worker_s_tasks_rerun_elsewhere_exactly_once(dask_client):
    workers = dask_client.run(os.getpid)
    seen = []
    for key, (pid, x) in cluster.map_tasks(_slow, range(8), client=dask_client, progress=False):
        if not seen:  # the first result is in: both workers are busy with the next tasks
            address, victim = next((a, p) for a, p in workers.items() if p != pid)
            busy = dask_client.processing()[address]
            os.kill(victim, signal.SIGKILL)
        seen.append((key, x))
    assert busy  # it died with tasks in hand
    assert sorted(seen) == sorted((str(i), i) for i in range(8))
    deadline = time.time() + 30
    while len(dask_client.scheduler_info()["workers"]) < 2 and time.time() < deadline:  # the nanny restarts it
        time.sleep(0.2)


def test_shared_object_is_sent_once_and_used_by_every_task(dask_client):
    weights = np.arange(5.0)  # small: it travels with each chunk
    out = dict(cluster.map_tasks(np.dot, [np.ones(5), np.arange(5.0)], keys=["ones", "same"], shared=weights,
                                 client=dask_client, progress=False))
    assert out == {"ones": 10.0, "same": 30.0}
    big = np.random.default_rng(3).standard_normal(20_000)  # 160 kB: scattered to every worker first
    tasks = [np.ones(20_000), big]
    out = dict(cluster.map_tasks(np.dot, tasks, shared=big, client=dask_client, progress=False, chunk=1))
    assert out == pytest.approx({"0": math.fsum(big), "1": math.fsum(big * big)}, rel=1e-12)  # BLAS's own order


def test_bad_keys_and_unreachable_scheduler():
    with pytest.raises(ValueError, match="'a' appears more than once"):
        list(cluster.map_tasks(abs, [1, 2], keys=["a", "a"]))
    with pytest.raises(ValueError, match="2 keys for 3 tasks"):
        list(cluster.map_tasks(abs, [1, 2, 3], keys=["a", "b"]))
    with pytest.raises(cluster.ClusterError, match=r"no Dask scheduler answers at tcp://127.0.0.1:9 within 1 s"):
        cluster.client("tcp://127.0.0.1:9", timeout=1)
    with pytest.raises(cluster.ClusterError, match="at least 1"):
        cluster.client(workers=0)


def test_without_dask_the_message_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed now raises ImportError
    with pytest.raises(cluster.ClusterError, match=r"diffsim\[cluster\]"):
        cluster.client(workers=1)
    assert dict(cluster.map_tasks(abs, [-2], progress=False)) == {"0": 2}  # serial needs no dask


def test_chunks_of_tasks_give_each_key_its_own_result_and_failure(dask_client):
    keys = [f"t{i}" for i in range(11)]
    tasks = [(k, 50 + i) for i, k in enumerate(keys)]
    serial = dict(cluster.map_tasks(_noisy_sum, tasks, keys=keys, progress=False))
    for chunk, in_flight in ((3, None), (4, 5), (20, None)):
        got = dict(cluster.map_tasks(_noisy_sum, tasks, keys=keys, client=dask_client, progress=False, chunk=chunk,
                                     in_flight=in_flight))
        assert got.keys() == serial.keys() and all(got[k] == serial[k] for k in keys)  # bit for bit
    out = dict(cluster.map_tasks(_fails_on_three, range(6), keys=list("abcdef"), client=dask_client, progress=False,
                                 chunk=4, raise_failures=False))
    assert isinstance(out["d"], cluster.TaskFailure) and "no threes" in out["d"].message
    assert {k: v for k, v in out.items() if k != "d"} == {k: 10 * i for i, k in enumerate("abcdef") if i != 3}
    with pytest.raises(ValueError, match="chunk"):
        list(cluster.map_tasks(_noisy_sum, tasks, chunk=0, progress=False))


def test_default_guided_chunks_cover_every_key_once_in_shrinking_chunks(dask_client):
    keys = [f"g{i}" for i in range(70)]
    tasks = [(k, 20 + i) for i, k in enumerate(keys)]
    sizes = cluster.auto_chunks(dask_client, len(tasks))
    assert sum(sizes) == 70 and sizes == sorted(sizes, reverse=True) and sizes[0] == 70 // 8
    assert sizes[-1] == 2  # 70 short tasks on 2 workers: no chunk under 70 // 32 tasks, each chunk's cost
    few = cluster.auto_chunks(dask_client, 20)
    assert sum(few) == 20 and few[0] == 20 // 8 and few[-2:] == [1, 1]  # few (long) tasks: small chunks, then single
    reference = {k: float(np.sum(cluster.task_rng(k, seed=7).standard_normal(n))) for k, n in tasks}
    got = list(cluster.map_tasks(_noisy_sum, tasks, keys=keys, client=dask_client, progress=False))
    assert sorted(k for k, _ in got) == sorted(keys) and dict(got) == reference  # once each, bit for bit


def _wait_for(task, shared):
    """Return at once for the first chunk's tasks; the others wait until the file ``shared`` exists."""
    i, = task
    deadline = time.time() + 30
    while i >= 2 and not os.path.exists(shared) and time.time() < deadline:
        time.sleep(0.01)
    return i, os.path.exists(shared) or i < 2


def _queued(dask_scheduler=None):
    return len(dask_scheduler.queued)


def test_chunks_wait_on_the_scheduler_until_a_worker_is_free(dask_client, tmp_path):
    # late binding: a worker holds the chunk it runs and one more; the rest stay queued on the
    # scheduler (Dask's root-task queuing), so whichever worker frees up first takes the next, and
    # the small chunks at the end go to idle workers instead of waiting behind a long one
    release = str(tmp_path / "release")
    results = cluster.map_tasks(_wait_for, [(i,) for i in range(24)], client=dask_client, shared=release, chunk=2,
                                progress=False)
    first = next(results)  # the first chunk (tasks 0 and 1) returns; every other chunk blocks
    queued = dask_client.run_on_scheduler(_queued)
    open(release, "w").close()
    rest = [first, *results]
    assert queued >= 12 - 1 - 2 * 2  # 12 chunks, one done, at most two on each of the two workers
    assert sorted(int(k) for k, _ in rest) == list(range(24)) and all(ok for _, (_, ok) in rest)


def _housekeeping(dask_worker=None):
    timers = dask_worker.periodic_callbacks
    return "profile" in timers, timers["tick"].callback_time, timers["monitor"].callback_time


def test_local_workers_run_without_the_dashboard_profiler(dask_client):
    # every worker, also one the nanny restarted after the kill test: no profiler, slow timers
    states = dask_client.run(_housekeeping)
    assert list(states.values()) == [(False, 1000, 5000)] * 2
