"""Many independent tasks on Dask distributed: this machine's cores by default, or a cluster.

The engine's door to scale-out; it knows nothing of atoms or robots. :func:`client` connects to a
scheduler (an address, or ``$DIFFSIM_SCHEDULER``) or starts a ``LocalCluster`` of single-threaded
worker processes, one per core. :func:`map_tasks` submits a function over tasks, each with a key,
and yields ``(key, result)`` in completion order with a progress bar. Dask's scheduler reruns
the tasks of a worker that dies (up to ``distributed.scheduler.allowed-failures`` times); a task
that raises is reported with its key and the last line of its remote traceback while the rest
go on, and :class:`TasksFailed` summarises the failures at the end. Without a client the same
tasks run here, one after the other, with the same keys, reports and results: with seeds drawn
from :func:`task_rng` (a function of the key, not of the order), serial and parallel runs agree
bit for bit.

Every worker keeps its BLAS pool at one thread (threadpoolctl) and uses the client's kernel
cache directory (``$DIFFSIM_CACHE_DIR``, on a shared disk for a cluster), so a kernel compiled
once is loaded by every worker.

>>> results = dict(map_tasks(lambda x: x * x, [1, 2, 3], keys=["a", "b", "c"], progress=False))
>>> results
{'a': 1, 'b': 4, 'c': 9}
>>> float(task_rng("a", seed=1).random()) == float(task_rng("a", seed=1).random())
True
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import DiffsimError
from .progress import progress_bar

SCHEDULER_ENV = "DIFFSIM_SCHEDULER"
EXTRA = "pip install 'diffsim[cluster]'  (Dask distributed)"

# The LocalCluster's housekeeping, for a cluster without a dashboard: with Dask's defaults, the
# scheduler and the two nannies (in the client's process) and each idle worker burn 100 ms of CPU
# per second between them (measured: 40 ms/s in the client, 30 ms/s per worker), i.e. 5 % of a
# 2-core machine taken from the tasks. These settings bring it to ~20 ms/s: no statistical profiler
# sampling the task thread every 10 ms (it feeds only the dashboard), the system monitor (CPU,
# memory, network for the dashboard and heartbeats) every 5 s, the event-loop tick check every
# second (it still catches a blocked loop: its limit is 3 s), the memory monitor twice a second.
# The worker plugin applies them again to a worker that a nanny restarts (with Dask's defaults).
QUIET_LOCAL = {"distributed.worker.profile.enabled": False, "distributed.admin.system-monitor.interval": "5s",
               "distributed.admin.tick.interval": "1s", "distributed.worker.memory.monitor-interval": "500ms"}


# A ``shared`` object smaller than this, pickled, rides along with each chunk instead of being
# scattered first (a scatter is a round trip to every worker, 5-50 ms here, before any task starts).
SHARED_INLINE = 64 * 1024


class ClusterError(DiffsimError):
    """Dask is missing, or the scheduler cannot be reached or was lost; the message says what to do."""


@dataclass
class TaskFailure:
    """One task that raised: its key and the last line of its (remote) traceback."""

    key: str
    message: str


class TasksFailed(DiffsimError):
    """Raised by :func:`map_tasks` after every other task has finished, when some tasks raised."""

    def __init__(self, failures: list[TaskFailure], total: int):
        self.failures, self.total = failures, total
        shown = "; ".join(f"{f.key}: {f.message}" for f in failures[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} of {total} tasks failed: {shown}{more}")


def _distributed():
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(f"running on several workers needs Dask distributed: {EXTRA}") from exc
    return distributed


def task_rng(key: str, seed: int = 0) -> np.random.Generator:
    """A random generator that depends on ``seed`` and the task's ``key`` only, never on which
    worker runs the task or when: the seed of a reproducible parallel run.

    >>> a, b = task_rng("md-300", 0).random(), task_rng("md-600", 0).random()
    >>> bool(a != b), bool(a == task_rng("md-300", 0).random())
    (True, True)
    """
    digest = hashlib.sha256(str(key).encode()).digest()
    return np.random.default_rng([int(seed), *np.frombuffer(digest, dtype=np.uint32).tolist()])


class _WorkerSetup:
    """Run on every worker as it starts (a Dask worker plugin): one BLAS thread, and the client's
    kernel cache directory when the client names one."""

    name = "diffsim-worker-setup"

    def __init__(self, cache_dir: str | None, quiet: bool = False):
        self.cache_dir, self.quiet = cache_dir, quiet

    def setup(self, worker=None):
        if self.cache_dir:
            os.environ["DIFFSIM_CACHE_DIR"] = self.cache_dir
        if self.quiet and worker is not None:
            _quieten(worker)
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(limits=1)  # kept alive: the limit holds while the worker lives
        except ImportError:  # the nanny's OMP/MKL/OPENBLAS_NUM_THREADS=1 already apply
            pass

    def teardown(self, worker=None):
        pass


def _quieten(worker) -> None:
    """Apply :data:`QUIET_LOCAL` to a running worker: its first start read it from the
    configuration, but a nanny restarts a crashed worker with Dask's defaults."""
    import dask

    dask.config.set(QUIET_LOCAL)
    timers = worker.periodic_callbacks
    for name in ("profile", "profile-cycle"):
        if name in timers:
            timers.pop(name).stop()
    for name, ms in (("monitor", 5000), ("tick", 1000), ("memory_monitor", 500)):
        if name in timers:
            timers[name].callback_time = ms


def client(scheduler: str | None = None, workers: int | None = None, timeout: float = 10.0):
    """A ``dask.distributed.Client``: connected to ``scheduler`` (e.g. ``tcp://host:8786``; default
    ``$DIFFSIM_SCHEDULER``), or, when neither names one, to a new ``LocalCluster`` of ``workers``
    single-threaded worker processes (default: one per core) that closes with the client. Use it
    as a context manager. Raises :class:`ClusterError` naming the address if no scheduler answers
    within ``timeout`` seconds.

    >>> with client(workers=1) as c:                      # doctest: +SKIP
    ...     dict(map_tasks(abs, [-1, -2], client=c, progress=False))
    {'0': 1, '1': 2}
    """
    distributed = _distributed()
    address = scheduler or os.environ.get(SCHEDULER_ENV) or None
    if address:
        try:
            c = distributed.Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"no Dask scheduler answers at {address} within {timeout:g} s ({exc}); start one "
                               f"with 'dask scheduler' and workers with 'dask worker {address}', or leave out "
                               f"--scheduler (and ${SCHEDULER_ENV}) to use this machine's cores") from exc
    else:
        n = (os.cpu_count() or 1) if workers is None else int(workers)
        if n < 1:
            raise ClusterError(f"workers must be at least 1, got {workers}")
        import logging

        import dask

        with dask.config.set(QUIET_LOCAL):  # the scheduler, nannies and first workers read it as they start
            c = distributed.Client(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL, set_as_default=False)
    c.register_plugin(_plugin(distributed, os.environ.get("DIFFSIM_CACHE_DIR"), quiet=not address))
    return c


def _plugin(distributed, cache_dir, quiet=False):
    class WorkerSetup(_WorkerSetup, distributed.WorkerPlugin):
        pass

    return WorkerSetup(cache_dir, quiet)


def _last_line(exc: BaseException) -> str:
    return traceback.format_exception_only(type(exc), exc)[-1].strip()


def map_tasks(fn: Callable, tasks: Iterable[Any], keys: Sequence[str] | None = None, *, client=None,
              shared: Any = None, progress: bool = True, description: str = "tasks",
              raise_failures: bool = True, in_flight: int | None = None,
              chunk: int | None = None) -> Iterator[tuple[str, Any]]:
    """Run ``fn(task)`` (``fn(task, shared)`` if ``shared`` is given) for every task and yield
    ``(key, result)`` as each finishes: on ``client``'s workers, or here one after the other if
    ``client`` is None. ``keys`` name the tasks (default "0", "1", ...; they must be unique).
    ``shared`` (a model, a problem) is sent to each worker once, not with every task: scattered
    to every worker when large; when small (under :data:`SHARED_INLINE` bytes pickled, such as a
    sweep's builder and options) it travels inside each chunk, which costs less than the scatter's
    round trip before the first task can start.

    A task that raises is reported on stderr with its key and the last line of its traceback; the
    others continue. At the end, :class:`TasksFailed` lists the failures (or, with
    ``raise_failures=False``, they are yielded as ``(key, TaskFailure)``). A task whose worker
    died is rerun by the scheduler on another worker; each key is yielded once. ``in_flight``
    bounds the tasks submitted at once (topped up as results arrive): for runs of millions of
    tasks, so the scheduler holds a window of them rather than all. ``chunk`` tasks travel as one
    Dask task (their results still come back one key at a time, failures one key at a time): for
    tasks of a few milliseconds, whose cost the scheduler's round trip per task would dominate. The
    default, :func:`auto_chunks`, sends big chunks first and ever smaller ones (down to single
    tasks) towards the end, so that few messages carry the run and no worker idles at its end.

    >>> out = list(map_tasks(lambda t, s: t + s, [1, 2], keys=["x", "y"], shared=10, progress=False))
    >>> sorted(out)
    [('x', 11), ('y', 12)]
    """
    tasks = list(tasks)
    keys = [str(i) for i in range(len(tasks))] if keys is None else [str(k) for k in keys]
    if len(keys) != len(tasks):
        raise ValueError(f"map_tasks: {len(keys)} keys for {len(tasks)} tasks")
    if len(set(keys)) != len(keys):
        seen: set = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        raise ValueError(f"map_tasks: task keys must be unique; {dup!r} appears more than once")
    if chunk is not None and (int(chunk) != chunk or chunk < 1):
        raise ValueError(f"map_tasks: chunk must be a whole number ≥ 1, got {chunk!r}")
    bar = progress_bar(len(tasks), description, "task", enabled=progress and bool(tasks))
    failures: list[TaskFailure] = []
    try:
        if client is None:
            results = _run_serial(fn, tasks, keys, shared)
        else:
            sizes = auto_chunks(client, len(tasks)) if chunk is None else [int(chunk)] * -(-len(tasks) // int(chunk))
            results = _run_on_cluster(fn, tasks, keys, client, shared, in_flight, sizes)
        for key, value, failed in results:
            bar.update(1)
            if failed:
                failures.append(value)
                bar.write(f"task {key} failed: {value.message}", file=sys.stderr)
                bar.set_postfix(failed=len(failures))
                if not raise_failures:
                    yield key, value
                continue
            yield key, value
    finally:
        bar.close()
    if failures and raise_failures:
        raise TasksFailed(failures, len(tasks))


def auto_chunks(client, tasks: int, per_worker: int = 4, most: int = 32, tail: int = 16) -> list[int]:
    """Chunk sizes for ``tasks`` tasks on ``client``'s W workers, in the order they are sent, by
    factoring (Hummel, Schonberg & Flynn 1992): batches of W chunks, each of ceil(R / 2W) tasks
    where R is what the batch starts from, so the chunks halve from batch to batch, which evens out
    the workers' finishing times whatever the tasks' durations (the scheduler hands each chunk to
    the first worker free). Each chunk is at most ``most`` tasks and at most 1/(``per_worker`` W) of
    all of them, so tasks of mixed lengths (labelling's MD chains beside single structures) spread
    over the workers, a run of few tasks (long ones, most likely: MD replicas) travels in small
    chunks and a dead worker costs little; and at least 1/(``tail`` W) of them, so a run of many
    short tasks (a sweep's 5-ms solves) does not end in a dozen chunks of one or two tasks: every
    chunk costs the client and the workers ~9 ms of CPU between them on a loaded 2-core VM
    (measured: 4.5 ms each per extra chunk of 8-ms tasks), as much as the tasks it would balance. A
    run of up to 2 ``tail`` W tasks still ends in single tasks.

    >>> auto_chunks(None, 10)                 # without a client: as for one worker; few tasks: small chunks
    [2, 2, 2, 2, 1, 1]
    >>> sizes = auto_chunks(None, 200)
    >>> sizes[:3], sizes[-3:], len(sizes), sum(sizes)
    ([32, 32, 32], [20, 12, 8], 8, 200)
    >>> auto_chunks(None, 24, tail=8)[-3:]       # at least 24 // 8 = 3 tasks a chunk
    [6, 3, 3]
    """
    workers = max(1, len((client.scheduler_info(n_workers=-1) or {}).get("workers", {}))) if client is not None else 1
    tasks = int(tasks)
    cap = max(1, min(int(most), tasks // (per_worker * workers)))
    least = max(1, min(cap, tasks // (int(tail) * workers)))
    sizes, left = [], tasks
    while left > 0:
        size = max(least, min(cap, -(-left // (2 * workers))))
        for _ in range(workers):
            if left > 0:
                sizes.append(min(size, left))
                left -= sizes[-1]
    return sizes


def _run_serial(fn, tasks, keys, shared):
    args = () if shared is None else (shared,)
    for key, task in zip(keys, tasks):
        try:
            value = fn(task, *args)
        except Exception as exc:  # reported with its key; the others continue, as on a cluster
            yield key, TaskFailure(key, _last_line(exc)), True
            continue
        yield key, value, False


def _run_chunk(fn, keys, tasks, *shared):
    """The Dask task of a chunk: each of its tasks run on its own, a failure kept with its key.
    The outcomes travel as one pickle: one frame on the wire, and Dask sizes a bytes object at
    once, where it walks every dict and array of the outcomes (a chunk of sweep solutions: 5000
    calls of its sizeof per chunk, a fifth of the worker's event-loop time)."""
    import pickle

    outcomes = list(_run_serial(fn, tasks, keys, shared[0] if shared else None))
    try:
        return pickle.dumps(outcomes, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # lambdas and the like, as Dask itself would send them
        import cloudpickle

        return cloudpickle.dumps(outcomes, protocol=pickle.HIGHEST_PROTOCOL)


def _run_on_cluster(fn, tasks, keys, client, shared, in_flight, sizes):
    distributed = _distributed()
    token = uuid.uuid4().hex[:8]  # Dask keys are global to the scheduler: never reuse another run's
    args = () if shared is None else (_ship(client, shared),)
    ends = np.cumsum(sizes)
    chunks = [range(int(end) - size, min(int(end), len(tasks))) for size, end in zip(sizes, ends)]
    single = max(sizes, default=1) == 1
    futures: dict = {}
    queue = iter(enumerate(chunks))
    group = f"{getattr(fn, '__name__', 'task')}-{token}"

    def submit(n):  # one message for a batch of chunks, not one per chunk
        numbered = [c for _, c in zip(range(n), queue)]
        if not numbered:
            return []
        batch = [c for _, c in numbered]
        # one task group for the run, numbered in sending order: the scheduler sees a large group
        # of root tasks and queues them, handing a worker its next chunk when it frees up (late
        # binding: the small chunks at the end go to whoever is idle), in this order
        dask_keys = [(group, i) for i, _ in numbered]
        if single:
            new = client.map(fn, [tasks[c[0]] for c in batch], *[[a] * len(batch) for a in args], key=dask_keys,
                             pure=False)
        else:
            new = client.map(_run_chunk, [fn] * len(batch), [[keys[i] for i in c] for c in batch],
                             [[tasks[i] for i in c] for c in batch], *[[a] * len(batch) for a in args],
                             key=dask_keys, pure=False)
        futures.update(zip(new, batch))
        return new

    window = len(chunks) if in_flight is None else max(1, -(-int(in_flight) // max(1, int(np.mean(sizes)))))
    with client.as_current():  # results are fetched in the event loop, not by one round trip each
        done = distributed.as_completed(submit(window), loop=client.loop, with_results=True, raise_errors=False)
    low, pending = max(1, window // 2), window
    try:
        for batch in done.batches():
            pending -= len(batch)
            if in_flight and pending <= low:  # top the window up in blocks, one message each
                more = submit(window - pending)
                pending += len(more)
                done.update(more)
            for future, value in batch:
                members = futures.pop(future)
                yield from _outcomes(distributed, future, value, members, keys, single)
                future.release()
    finally:
        if futures:  # interrupted: nothing keeps running for a client that is gone
            client.cancel(list(futures))


def _ship(client, shared):
    """``shared`` itself if it pickles small (it goes inside each chunk), else its future, scattered
    to every worker once."""
    import pickle

    import cloudpickle

    try:
        small = len(cloudpickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)) < SHARED_INLINE
    except Exception:  # let Dask's own serialisation report what cannot be sent
        small = False
    return shared if small else client.scatter(shared, broadcast=True, hash=False)


def _outcomes(distributed, future, value, members, keys, single):
    import asyncio

    cancelled = (asyncio.CancelledError, distributed.client.FutureCancelledError)
    if future.status not in ("finished", "error") or isinstance(value, cancelled):
        # the result was lost before it was fetched (its worker died): the scheduler recomputes it
        distributed.wait(future)
        if future.status == "finished":
            value = future.result()
    if future.status == "cancelled":
        raise ClusterError(f"task {keys[members[0]]} was cancelled: the scheduler was lost or restarted; rerun to "
                           "resume where it stopped")
    if future.status == "error":
        value = future.exception()  # a round trip, for failures only
        if isinstance(value, distributed.KilledWorker):
            message = "its worker died every time it ran (a crash or out of memory in the task?)"
        else:
            message = _last_line(value)
        for i in members:
            yield keys[i], TaskFailure(keys[i], message), True
        return
    if single:
        yield keys[members[0]], value, False
    else:
        import pickle

        yield from pickle.loads(value)


def warm(client, fn: Callable, *args) -> None:
    """Run ``fn(*args)`` once in every worker process of ``client`` at the same time (here, if
    ``client`` is None): imports and Numba kernels loaded from the disk cache before real work, so
    that no task pays for them and every worker, not just the first to ask, is ready.

    >>> warm(None, print, "ready")
    ready
    """
    if client is None:
        fn(*args)
    else:
        client.run(_warmed, fn, *args)


def _warmed(fn: Callable, *args) -> None:
    """``fn(*args)``, then the worker's long-lived objects (Dask's own, the imports, the warm-up's)
    leave the garbage collector's generations (``gc.freeze``): a task that builds many objects,
    such as tracing a problem, then pays for collections of its own objects only."""
    import gc

    fn(*args)
    gc.collect()
    gc.freeze()


def overhead(client, tasks: int = 200) -> float:
    """Seconds per task of submitting, running and collecting ``tasks`` empty tasks on ``client``
    (the price of one task, for sizing them: keep each task well above it).

    >>> 0 < overhead(None, tasks=10) < 1        # here, without a cluster
    True
    """
    start = time.perf_counter()
    for _ in map_tasks(_nothing, range(tasks), client=client, progress=False):
        pass
    return (time.perf_counter() - start) / tasks


def _nothing(task):
    return task
