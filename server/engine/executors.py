"""Executors: who runs the proof jobs. Each takes a list of `ProofJob`s and yields their
`JobResult`s as they finish (in any order); results are the same whichever runs them.

* `local`: in this process, one job after another (the default).
* `processes`: N worker processes, each with its own model and REPL, one job at a time each;
  a worker over its memory cap is stopped, and a job whose worker died is run once more on a
  fresh worker (a second death is an `error` result).
* `ray`: N Ray actors (the extra `segpilot[cluster]`), on a Ray started here on loopback or
  on an existing cluster (`address`); the same retry rule.

Cancelling (Ctrl-C) stops the jobs that are running; their results are not given, so a
resumed run does them again.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any, Protocol

from segpilot.engine.jobs import JobResult, JobRunner, ProofJob, failed
from segpilot.errors import SegpilotError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "processes", "ray")
_POLL_S = 0.2
_STOP_S = 5.0


Progress = Callable[[ProofJob, int, int], None]
"""`(job, expansions done, expansion budget)`: a running search's progress."""


class Executor(Protocol):
    def run(
        self, jobs: Sequence[ProofJob], cancel: threading.Event, on_progress: Progress | None = None
    ) -> Iterator[JobResult]: ...

    def close(self) -> None: ...


class LocalExecutor:
    """Runs the jobs in this process, on one runner kept between calls."""

    def __init__(self, runner: JobRunner | None = None) -> None:
        self.runner = runner or JobRunner()

    def run(
        self, jobs: Sequence[ProofJob], cancel: threading.Event, on_progress: Progress | None = None
    ) -> Iterator[JobResult]:
        for job in jobs:
            if cancel.is_set():
                return
            step = None if on_progress is None else partial(on_progress, job)
            result = self.runner.run(job, cancel, step)
            if result is not None:
                yield result

    def close(self) -> None:
        self.runner.close()


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """A worker process: jobs in, results out, until it is sent None. SIGTERM stops the
    job in progress cleanly (its REPL is closed) and ends the process; Ctrl-C is the
    parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = JobRunner()
    try:
        while not stop.is_set():
            if not conn.poll(_POLL_S):
                continue
            message = conn.recv()
            if message is None:
                break

            def progress(done: int, most: int) -> None:
                conn.send({"progress": [done, most]})

            result = runner.run(ProofJob.from_dict(message), stop, progress)
            conn.send({"result": None if result is None else result.to_dict()})
    except (EOFError, OSError):  # the parent is gone
        pass
    finally:
        runner.close()


class _Worker:
    def __init__(self, context: Any) -> None:
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child,), daemon=True)
        self.process.start()
        child.close()
        self.job: ProofJob | None = None

    def give(self, job: ProofJob) -> None:
        self.job = job
        self.conn.send(job.to_dict())

    def rss_mb(self) -> float:
        import psutil

        try:
            return float(psutil.Process(self.process.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        """End the worker: ask, then SIGTERM, then SIGKILL (it is our own child)."""
        with contextlib.suppress(OSError, ValueError):
            if self.job is None:
                self.conn.send(None)
        if self.job is not None:
            self.process.terminate()
        self.process.join(_STOP_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(_STOP_S)
        self.conn.close()


class ProcessExecutor:
    """N worker processes (spawned, so no state of this process leaks into them)."""

    def __init__(self, workers: int, memory_mb: float | None = None) -> None:
        if workers < 1:
            raise SegpilotError("--workers must be at least 1")
        self.workers = workers
        self.memory_mb = memory_mb
        self._context = multiprocessing.get_context("spawn")

    def run(
        self, jobs: Sequence[ProofJob], cancel: threading.Event, on_progress: Progress | None = None
    ) -> Iterator[JobResult]:
        pending = deque(jobs)
        attempts: Counter[str] = Counter()
        pool = [_Worker(self._context) for _ in range(min(self.workers, len(jobs)))]
        try:
            while pending or any(w.job is not None for w in pool):
                if cancel.is_set():
                    return
                for worker in pool:
                    if worker.job is None and pending:
                        worker.give(pending.popleft())
                busy = [w for w in pool if w.job is not None]
                multiprocessing.connection.wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy], _POLL_S
                )
                for index, worker in enumerate(pool):
                    job = worker.job
                    if job is None:
                        continue
                    finished, data, why = self._collect(worker, job, on_progress)
                    if finished:
                        worker.job = None
                        if data is not None:
                            yield JobResult.from_dict({**data, "attempts": attempts[job.key] + 1})
                        continue
                    if not why:
                        continue
                    worker.stop()
                    pool[index] = _Worker(self._context)
                    attempts[job.key] += 1
                    log.warning("worker for %s: %s", job.key, why)
                    if attempts[job.key] >= 2:
                        yield failed(job, f"{why}, twice", attempts=attempts[job.key])
                    else:
                        pending.appendleft(job)
        finally:
            for worker in pool:
                worker.stop()

    def _collect(
        self, worker: _Worker, job: ProofJob, on_progress: Progress | None
    ) -> tuple[bool, dict[str, Any] | None, str]:
        """(True, its result, "") when a busy worker has answered; (False, None, why) when
        it must be replaced; (False, None, "") while it works (its progress reported)."""
        while worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                break  # it died: its end of the pipe closed
            if "result" in message:
                return True, message["result"], ""
            if on_progress is not None:
                on_progress(job, *message["progress"])
        if not worker.process.is_alive() or worker.conn.closed:
            worker.process.join(_STOP_S)
            return False, None, f"the worker process died (exit {worker.process.exitcode})"
        if self.memory_mb is not None and worker.rss_mb() > self.memory_mb:
            return False, None, f"the worker went over its memory cap of {self.memory_mb:.0f} MB"
        return False, None, ""

    def close(self) -> None:
        pass


class _RayWorker:
    """A Ray actor: one JobRunner (model and REPL) kept between jobs."""

    def __init__(self) -> None:
        self.runner = JobRunner()

    def run(self, job: dict[str, Any]) -> dict[str, Any] | None:
        result = self.runner.run(ProofJob.from_dict(job))
        return None if result is None else result.to_dict()


class RayExecutor:
    """N Ray actors. Without an address, Ray is started here, bound to loopback; with one,
    the jobs go to that cluster (`ray start --head` on one machine, `ray start
    --address=HEAD:6379` on the others)."""

    def __init__(self, workers: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise SegpilotError(
                "the ray executor needs Ray", fix="pip install 'segpilot[cluster]'"
            ) from None
        if workers < 1:
            raise SegpilotError("--workers must be at least 1")
        self.ray = ray
        self.workers = workers
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "configure_logging": False,
            }
            if address:
                options["address"] = address
            else:
                options.update(num_cpus=workers, _node_ip_address="127.0.0.1")
            ray.init(**options)
            self._started = True
        self._actor = ray.remote(num_cpus=1, max_restarts=0)(_RayWorker)

    def run(
        self, jobs: Sequence[ProofJob], cancel: threading.Event, on_progress: Progress | None = None
    ) -> Iterator[JobResult]:
        """`on_progress` is not called: Ray gives results only."""
        ray = self.ray
        pending = deque(jobs)
        attempts: Counter[str] = Counter()
        actors: list[Any] = [self._actor.remote() for _ in range(min(self.workers, len(jobs)))]
        running: dict[Any, tuple[Any, ProofJob]] = {}
        try:
            while pending or running:
                if cancel.is_set():
                    return
                busy = {id(actor) for actor, _ in running.values()}
                for actor in actors:
                    if id(actor) not in busy and pending:
                        job = pending.popleft()
                        running[actor.run.remote(job.to_dict())] = (actor, job)
                done, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
                for ref in done:
                    actor, job = running.pop(ref)
                    try:
                        data = ray.get(ref)
                    except ray.exceptions.RayActorError as err:
                        attempts[job.key] += 1
                        why = f"the Ray worker died ({type(err).__name__})"
                        log.warning("worker for %s: %s", job.key, why)
                        actors[actors.index(actor)] = self._actor.remote()
                        if attempts[job.key] >= 2:
                            yield failed(job, f"{why}, twice", attempts=attempts[job.key])
                        else:
                            pending.appendleft(job)
                        continue
                    if data is not None:
                        yield JobResult.from_dict({**data, "attempts": attempts[job.key] + 1})
        finally:
            for actor in actors:
                with contextlib.suppress(Exception):
                    ray.kill(actor)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_executor(name: str, workers: int = 1, address: str | None = None, **options: Any) -> Any:
    """The executor called `name` (one of `EXECUTORS`)."""
    makers: dict[str, Callable[[], Any]] = {
        "local": LocalExecutor,
        "processes": lambda: ProcessExecutor(workers, options.get("memory_mb")),
        "ray": lambda: RayExecutor(workers, address),
    }
    if name not in makers:
        raise SegpilotError(f"unknown executor {name!r}", fix=f"one of: {', '.join(EXECUTORS)}")
    return makers[name]()
