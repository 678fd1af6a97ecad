"""Where a batch's jobs run: ``local`` (a process pool on this machine, the default) or ``ray``
(tasks on a Ray cluster, or on a Ray instance started here). Both run :func:`runner.run_job`
and hand every result row to ``on_result`` as it arrives.

A worker that dies (killed outright, a lost node) has its jobs run again, at most ``retries``
times each; they resume from their checkpoints. A job's own failure (a bad picture, a fit that
diverged) is a result, not a death, and is not retried. Ctrl-C or SIGTERM stops the batch:
running fits checkpoint and report themselves interrupted, and nothing new starts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..errors import ConfigError
from .jobs import Job
from .runner import RESULT_FILE, WORKER_FILE, read_result, run_job, stop_on_signals

__all__ = ["Engine", "LocalEngine", "RayEngine", "make_engine", "ENGINES"]

ENGINES = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")
OnResult = Callable[[dict[str, Any]], None]


class Engine(Protocol):
    name: str
    workers: int
    device: str  # where the fits run: "cpu" or "cuda"

    def run(self, jobs: list[Job], on_result: OnResult) -> None:
        """Run every job, calling ``on_result`` with each result row as it arrives."""


def _died(job: Job, attempts: int) -> dict[str, Any]:
    return {"name": job.name, "input": job.target, "status": "failed", "psnr": None, "ssim": None, "primitives": None,
            "seconds": None, "worker": "",
            "error": f"its worker died {attempts} time{'s' if attempts != 1 else ''} (killed, or out of memory); "
                     "run the batch again to resume it from its checkpoint"}


# -- local ------------------------------------------------------------------------------------


def _init_worker(devices: Any, pids: Any) -> None:
    """Each worker: says who it is, Ctrl-C or SIGTERM stops its job (a fit checkpoints first)
    and it starts no other; on a GPU machine it takes one GPU for itself."""
    pids.put(os.getpid())
    stop_on_signals()
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _died_running(job: Job, since: float) -> bool:
    """Whether the job was running in a worker of this pool that is gone without reporting: its
    worker file was written after ``since``, names a dead process, and no result followed it.
    (Jobs the broken pool stopped on its own report themselves interrupted and are not counted.)"""
    folder = Path(job.folder)
    try:
        worker = folder / WORKER_FILE
        started = worker.stat().st_mtime
        pid = int(worker.read_text().strip().rsplit(":", 1)[1])
    except (OSError, ValueError, IndexError):
        return False
    try:
        reported = (folder / RESULT_FILE).stat().st_mtime >= started
    except OSError:
        reported = False
    return started >= since and not reported and not _alive(pid)


def gpu_ids(count: int) -> list[str]:
    """The first ``count`` GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (a
    worker pinned to one must stay within what the batch itself was given)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = [name.strip() for name in visible.split(",") if name.strip()] if visible else []
    return (names or [str(index) for index in range(count)])[:count]


def _workers(pids: Any) -> list[int]:
    """The process ids of a pool's workers that are still running (children of this process
    that announced themselves on ``pids``)."""
    announced = set()
    while not pids.empty():
        announced.add(pids.get())
    return [child.pid for child in multiprocessing.active_children() if child.pid in announced]


class LocalEngine:
    """A pool of worker processes on this machine: ``workers`` of them (default: one per core,
    or one per GPU with ``device="cuda"``, each pinned to its GPU)."""

    name = "local"

    def __init__(self, workers: int | None = None, *, device: str = "auto", retries: int = 2):
        if device in ("auto", "cuda"):
            import torch

            gpus = torch.cuda.device_count()
            if device == "cuda" and gpus == 0:
                raise ConfigError("device cuda was asked for but PyTorch sees no GPU; use --device cpu")
            device = "cuda" if gpus else "cpu"
            if device == "cuda":
                workers = min(workers or gpus, gpus)
        self.device = device  # where the fits run: "cpu" or "cuda"
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.retries = retries

    def _pool(self) -> tuple[ProcessPoolExecutor, Any]:
        """A new pool, and the queue its workers put their process ids on."""
        context = multiprocessing.get_context("spawn")  # no forked copies of PyTorch's threads
        devices = None
        if self.device == "cuda":
            devices = context.Queue()
            for gpu in gpu_ids(self.workers):
                devices.put(gpu)
        pids = context.SimpleQueue()
        pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_worker, initargs=(devices, pids))
        return pool, pids

    def run(self, jobs: list[Job], on_result: OnResult) -> None:
        pending, attempts = list(jobs), {job.name: 0 for job in jobs}
        while pending:
            since = time.time() - 1  # file times may be rounded to the second
            pool, pids = self._pool()
            futures = {pool.submit(run_job, job.to_dict()): job for job in pending}
            pending = []
            waiting, reported, broken = set(futures), set(), []
            try:
                while waiting:
                    finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                    for future in finished:
                        reported.add(future)
                        try:
                            row = future.result()
                        except BrokenProcessPool:  # a worker died: every job not yet finished ends here
                            broken.append(futures[future])
                        else:
                            on_result(row)
                if broken:
                    # Once the pool has stopped its other workers (their fits checkpoint and say
                    # so), the jobs whose worker died without a word are the ones that count.
                    pool.shutdown(wait=True)
                    for job in broken:
                        if _died_running(job, since):
                            attempts[job.name] += 1
                        if attempts[job.name] > self.retries:
                            on_result(_died(job, attempts[job.name]))
                        else:
                            pending.append(job)
            except KeyboardInterrupt as error:
                # Stopping: the running fits checkpoint and report themselves interrupted.
                signum = getattr(error, "signum", signal.SIGINT)
                for pid in _workers(pids):  # the pool's workers, no other child
                    try:
                        os.kill(pid, signum)
                    except OSError:
                        pass
                left = [future for future in futures if future not in reported]
                for future in left:
                    future.cancel()
                for future in [f for f in left if not f.cancelled()]:
                    try:
                        row = future.result(timeout=120)
                    except Exception:  # noqa: BLE001 (a worker that did not answer: nothing to report)
                        continue
                    if row.get("started", True):  # jobs the stop reached before they began are not reported
                        on_result(row)
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)


# -- ray --------------------------------------------------------------------------------------


@contextlib.contextmanager
def _keeping_signal_handlers() -> Iterator[None]:
    """The Python handlers of Ctrl-C, SIGTERM and SIGHUP as they were before the block (in the
    main thread; elsewhere nothing can be restored)."""
    from ..interrupts import INTERRUPT_SIGNALS

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:
                signal.signal(signum, handler)


def _check_reachable(address: str) -> None:
    """A ``host:port`` that nothing answers on is said at once (Ray itself would retry for minutes)."""
    import re
    import socket

    found = re.fullmatch(r"\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if found is None:  # "auto", "ray://...": Ray's to judge
        return
    try:
        socket.create_connection((found[1], int(found[2])), timeout=10).close()
    except OSError as error:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}); start its head with "
                          "`ray start --head --port PORT`, or check the address and the firewall") from None


class RayEngine:
    """Jobs as Ray tasks, each asking for ``cpus`` CPUs (and ``gpus`` GPUs), so Ray's scheduler
    fills a cluster of mixed machines. Connects to ``address`` (else ``RAY_ADDRESS``), or
    starts a Ray instance on this machine. Every node needs diffbmp installed."""

    name = "ray"

    def __init__(self, address: str | None = None, *, cpus: float = 1, device: str = "auto", retries: int = 2):
        try:
            import ray
        except ImportError:
            raise ConfigError("the ray engine needs Ray: pip install 'diffbmp[ray]'") from None
        self.ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
            try:
                with _keeping_signal_handlers():  # Ray's own would end this process on SIGTERM
                    ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                             configure_logging=False)
            except ConnectionError as error:
                hint = ""
                if "auth" in f"{error} {error.__cause__}".lower():
                    hint = ("; the cluster wants its token: set RAY_AUTH_MODE=token and copy the head's "
                            "~/.ray/auth_token here (or set RAY_AUTH_TOKEN)")
                raise ConfigError(f"cannot reach the Ray cluster at {address}: {error}{hint}") from None
        resources = ray.cluster_resources()
        if device == "cuda" and not resources.get("GPU"):
            raise ConfigError("device cuda was asked for but the Ray cluster has no GPUs; use --device cpu")
        self.device = "cuda" if device == "cuda" or (device == "auto" and resources.get("GPU")) else "cpu"
        gpus = 1 if self.device == "cuda" else 0
        self.workers = max(1, int(min(resources.get("CPU", 1) // max(cpus, 1e-9),
                                      resources.get("GPU", 0) if gpus else float("inf"))))
        self.task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=False)(run_job)
        self.retries = retries

    def run(self, jobs: list[Job], on_result: OnResult) -> None:
        from ..interrupts import Interrupted, handling

        ray = self.ray
        received: list[int] = []

        def on_signal(signum: int, frame: Any) -> None:
            received.append(signum)  # Ray may turn the exception into a plain KeyboardInterrupt
            raise Interrupted(signum)

        with handling(on_signal):
            refs = {self.task.remote(job.to_dict()): job for job in jobs}
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1)
                    for ref in ready:
                        job = refs.pop(ref)
                        try:
                            on_result(ray.get(ref))
                        except ray.exceptions.RayError as error:  # the worker died more often than allowed
                            row = _died(job, self.retries + 1)
                            row["error"] = f"{row['error']}: {type(error).__name__}"
                            on_result(row)
            except KeyboardInterrupt as error:
                for ref in refs:
                    ray.cancel(ref)  # a running task gets Ctrl-C: its fit checkpoints and stops
                for ref, job in refs.items():
                    try:
                        row = ray.get(ref, timeout=120)
                    except Exception:  # noqa: BLE001 (cancelled: what it wrote in its folder, if anything)
                        row = read_result(job.folder)
                        if row is None or row.get("status") != "interrupted":
                            continue
                        row.pop("settings", None)
                    on_result(row)
                if not hasattr(error, "signum") and received:
                    raise Interrupted(received[0]) from None
                raise


def make_engine(name: str, *, workers: int | None = None, device: str = "auto", address: str | None = None,
                retries: int = 2, threads: int = 1) -> Engine:
    """The engine called ``name`` ("local" or "ray"). ``device`` "auto" is "cuda" where there are
    GPUs (this machine's, or the Ray cluster's), else "cpu"; the engine's ``device`` says which."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if name == "local":
        return LocalEngine(workers, device=device, retries=retries)
    if name == "ray":
        return RayEngine(address, cpus=threads, device=device, retries=retries)
    raise ConfigError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
