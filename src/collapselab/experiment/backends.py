"""Where a sweep's work runs: in this process, in a local process pool, or on Ray.

A unit of work is a :class:`Task`: a point's config as plain data, the point's run
directory and, for finer tasks, an arm index and a seed. Workers receive only these
(never live models or open files), rebuild everything from the config, and write
their results atomically into the shared run directory. Because every random
stream is a pure function of the config and the seed, a task gives the same bytes
wherever it runs and however often it is retried.

Three kinds of task:

* ``run``: a whole point (every arm, every seed), written by :func:`~.runner.run`;
* ``arm``: one arm of a point, for arms on the batched path;
* ``seed``: one seed of a per-seed arm, for expensive models. It leaves its final
  checkpoint; the driver then assembles the arm's ``metrics.parquet`` from the
  checkpoints without recomputing anything.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CollapseLabError, ResultsError, require

#: Thread pools of BLAS and OpenMP: one thread per worker. Oversubscribed pools made
#: small fits 25x slower, and a fixed thread count keeps reductions bit-identical.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: Ray re-executes a task whose worker died this many times; the task resumes
#: from its checkpoints, so a retry repeats at most the work since the last one.
RAY_MAX_RETRIES = 3


@dataclass(frozen=True)
class Task:
    """One unit of a sweep's work, as plain data (picklable, JSON-able)."""

    kind: str  # "run", "arm" or "seed"
    config: dict[str, Any]  # the point's whole config (mode="json" dump)
    directory: str  # the point's run directory
    arm: int | None = None
    seed: int | None = None

    def label(self) -> str:
        parts = [Path(self.directory).name]
        if self.arm is not None:
            parts.append(f"arm {self.arm}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts)


def pin_threads() -> None:
    """Limit BLAS/OpenMP thread pools to one thread in this process, and end it when
    its parent dies (the local pool's worker initializer)."""
    from threadpoolctl import threadpool_limits

    from .resources import exit_with_parent

    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    threadpool_limits(1)
    exit_with_parent()


def execute(task: Task) -> dict[str, Any]:
    """Do one task in whatever process this is; returns a small summary."""
    from threadpoolctl import threadpool_limits

    from .config import load_config
    from .runner import prepare, run, run_arm, run_seed_task

    with threadpool_limits(1):
        config = load_config(task.config)
        directory = Path(task.directory)
        if task.kind == "run":
            run(config, directory, workers=1)
        elif task.kind == "arm":
            arm = prepare(config)[task.arm or 0]
            run_arm(arm, directory / arm.name)
        elif task.kind == "seed":
            arm = prepare(config)[task.arm or 0]
            assert task.seed is not None
            # The same checkpoint and snapshot files the runner reads when it assembles the arm.
            run_seed_task(arm, directory / arm.name, task.seed)
        else:  # pragma: no cover - tasks are built by the sweep
            raise ValueError(f"unknown task kind {task.kind!r}")
    return {"kind": task.kind, "directory": task.directory, "seed": task.seed, "pid": os.getpid()}


class Backend(abc.ABC):
    """Runs tasks and yields each as it completes (in completion order)."""

    name = "base"

    @abc.abstractmethod
    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        """Run ``tasks``; yield ``(task, summary)`` as each completes."""

    def close(self) -> None:  # noqa: B027 - optional: only a backend that holds something
        """Release what the backend holds (a Ray session it started)."""


class SerialBackend(Backend):
    """Every task in this process, one after another."""

    name = "serial"

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        for task in tasks:
            yield task, execute(task)


class ProcessPoolBackend(Backend):
    """Tasks across a local process pool (one thread per process)."""

    name = "process-pool"

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        from .runner import stop_pool

        workers = min(self.workers, len(tasks))
        pool = ProcessPoolExecutor(max_workers=max(workers, 1), initializer=pin_threads)
        try:
            pending = {pool.submit(execute, task): task for task in tasks}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    try:
                        result = future.result()
                    except CollapseLabError:
                        raise
                    except Exception as exc:
                        raise ResultsError(
                            f"a worker failed on {task.label()} ({type(exc).__name__}: {exc}); "
                            "rerun the same command to resume"
                        ) from exc
                    yield task, result
        except BaseException:
            stop_pool(pool)  # an interrupt or a failure: the other workers stop now
            raise
        pool.shutdown(wait=True)


class RayBackend(Backend):
    """Tasks on a Ray cluster: an existing one at ``address`` (``HOST:PORT``, or ``auto``:
    the cluster of ``RAY_ADDRESS`` or the one ``ray start`` left on this machine), or a
    new local one.

    Each task asks for one CPU; Ray re-executes a task whose worker dies
    (:data:`RAY_MAX_RETRIES` times), and the retry resumes from the task's checkpoints.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        from .storage import KEY_VARIABLE, checkpoint_key

        self.ray = require("ray", "ray", "the Ray backend")
        self.owns_session = False
        if not self.ray.is_initialized():
            import logging

            options: dict[str, Any] = {
                "log_to_driver": False,
                "include_dashboard": False,
                "logging_level": logging.WARNING,
            }
            if address:
                _check_reachable(address)
                options["address"] = address
            else:  # a new cluster on this machine, never one that happens to be running
                options["address"] = "local"
                if workers:
                    options["num_cpus"] = workers
            _init_ray(self.ray, options, address)
            self.owns_session = True
        # Workers on other machines authenticate checkpoints with this driver's key.
        env = {"env_vars": {KEY_VARIABLE: checkpoint_key().hex()}}
        self.remote = self.ray.remote(num_cpus=1, max_retries=RAY_MAX_RETRIES, runtime_env=env)(
            execute
        )

    def map(self, tasks: list[Task]) -> Iterator[tuple[Task, dict[str, Any]]]:
        ray = self.ray
        pending = {self.remote.remote(task): task for task in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                task = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, CollapseLabError):
                        raise type(cause)(str(cause)) from None
                    raise ResultsError(
                        f"{task.label()} failed on Ray ({type(cause).__name__}: {cause}); "
                        "rerun the same command to resume"
                    ) from None
                except ray.exceptions.RayError as exc:
                    raise ResultsError(
                        f"{task.label()} was lost on Ray after {RAY_MAX_RETRIES} retries "
                        f"({type(exc).__name__}); rerun the same command to resume"
                    ) from None
                yield task, result

    def close(self) -> None:
        if self.owns_session:
            self.ray.shutdown()


#: Seconds to reach a Ray cluster's address, and to start or join a cluster.
RAY_CONNECT_SECONDS = 10.0
RAY_INIT_SECONDS = 120.0


def _check_reachable(address: str) -> None:
    """Refuse an address whose port does not answer, in seconds (Ray itself retries
    for minutes, printing its logs). ``auto`` is checked where ``RAY_ADDRESS`` names
    the cluster; else Ray finds it on this machine, within :data:`RAY_INIT_SECONDS`."""
    import socket

    if address == "auto":
        named = os.environ.get("RAY_ADDRESS", "").strip()
        if named and named != "auto" and "://" not in named:
            _check_reachable(named)
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ResultsError(
            f"--address {address!r}: expected HOST:PORT (e.g. 127.0.0.1:6379) or auto"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_SECONDS).close()
    except OSError as exc:
        raise ResultsError(
            f"cannot connect to --address {address} ({exc.strerror or exc}); start one with "
            "'ray start --head' or check the address"
        ) from None


def _init_ray(ray: Any, options: dict[str, Any], address: str | None) -> None:
    """``ray.init`` within :data:`RAY_INIT_SECONDS`, Ray's own log lines held back and
    read for the cause (authentication says so), every failure one line."""
    import tempfile
    import threading

    where = f"--address {address}" if address else "a local Ray cluster"
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            ray.init(**options)
            outcome.append(None)
        except BaseException as exc:  # reported below, in one line
            outcome.append(exc)

    with tempfile.TemporaryFile() as logs:
        saved = os.dup(2)
        os.dup2(logs.fileno(), 2)  # Ray's C++ core writes to fd 2 directly
        try:
            thread = threading.Thread(target=start, name="ray-init", daemon=True)
            thread.start()
            thread.join(RAY_INIT_SECONDS)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        logs.seek(0)
        log = logs.read().decode(errors="replace")
    if not outcome:
        raise ResultsError(
            f"cannot start or join {where} within {RAY_INIT_SECONDS:.0f} s; check the "
            "address and that the cluster is healthy"
        )
    error = outcome[0]
    if error is None:
        return
    text = f"{type(error).__name__} {error} {log}".lower()
    if "authenticat" in text or "unauthenticated" in text or "auth token" in text:
        raise ResultsError(
            f"{where} refused the connection: Ray's authentication failed (set the "
            "cluster's token, e.g. RAY_AUTH_TOKEN, or check RAY_AUTH_MODE)"
        )
    first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
    raise ResultsError(
        f"cannot start or join {where} ({first.strip()[:200]}); start one with "
        "'ray start --head' or check the address"
    )


def make_backend(name: str, *, workers: int, address: str | None = None) -> Backend:
    """The backend for ``--backend`` (``local`` is a process pool, or serial with one worker)."""
    if name == "ray":
        return RayBackend(address, workers)
    if address:
        raise CollapseLabError("--address applies only to --backend ray")
    if name != "local":
        raise CollapseLabError(f"--backend must be local or ray; got {name!r}")
    return ProcessPoolBackend(workers) if workers > 1 else SerialBackend()
