"""Kill a Dask worker process while it holds tasks: the fault the cluster tests inject."""

import os
import signal
import threading
import time


def kill_a_busy_worker(client, ready=lambda: True, timeout: float = 60.0):
    """Start a thread that, once ``ready()`` is true, SIGKILLs the first worker of ``client`` that
    is processing tasks. Returns (thread, killed): ``killed`` gets (address, tasks) of the victim."""
    workers = client.run(os.getpid)
    killed = []

    def watch():
        deadline = time.time() + timeout
        while time.time() < deadline and not killed:
            if ready():
                for address, tasks in client.processing().items():
                    if tasks and address in workers:
                        os.kill(workers[address], signal.SIGKILL)
                        killed.append((address, tasks))
                        return
            time.sleep(0.02)

    thread = threading.Thread(target=watch)
    thread.start()
    return thread, killed


def wait_for_workers(client, n: int, timeout: float = 30.0) -> None:
    """Wait until the nanny has restarted the killed worker (the next test wants n again)."""
    deadline = time.time() + timeout
    while len(client.scheduler_info()["workers"]) < n and time.time() < deadline:
        time.sleep(0.2)
