"""The thread setting of a benchmark run, read before numpy, torch or jax load (their pools are
sized then). Benchmarks measure the default environment — no thread variables, as users run —
unless the caller sets ``OMP_NUM_THREADS=N``: then OPENBLAS_NUM_THREADS and MKL_NUM_THREADS follow
unless set, and with N = 1 XLA runs single-threaded Eigen too.

Import it first: ``from thread_setting import THREADS`` (None in the default environment).
"""
import os

THREADS = int(os.environ["OMP_NUM_THREADS"].split(",")[0]) if os.environ.get("OMP_NUM_THREADS") else None
if THREADS is not None:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
    os.environ.setdefault("MKL_NUM_THREADS", str(THREADS))
    if THREADS == 1:
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
