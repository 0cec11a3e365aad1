"""Running proof jobs from the command line (`prove`, `bench`): progress bars, Ctrl-C, and
the message when Lean is missing."""

from __future__ import annotations

import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from segpilot.engine.jobs import JobResult, ProofJob
from segpilot.engine.projects import Projects
from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError

LEAN_HINT = (
    "install Lean with elan (curl https://elan.lean-lang.org/elan-init.sh -sSf | sh), add "
    "the REPL to the project and `lake build repl` (README, section Lean); `segpilot doctor "
    "--project DIR` checks it"
)


class NoLeanError(SegpilotError):
    """Proof search cannot run here: nothing is searched and nothing written."""

    exit_code = 2


def require_lean(settings: Settings, roots: Iterable[Path], what: str) -> None:
    """`NoLeanError` (exit status 2, with the install hint) unless the REPL command is there
    in every project root."""
    if not settings.lean.check:
        raise NoLeanError(f"{what} needs Lean, and checking is off ([lean] check = false)")
    projects = Projects()
    for root in roots:
        if not projects.at_root(root).repl_found(settings.lean):
            command = " ".join(settings.lean.repl_command)
            raise NoLeanError(
                f"{what} needs Lean: the REPL command `{command}` is not there in {root}",
                fix=LEAN_HINT,
            )


class Progress:
    """An overall bar (theorems), and one for the search running now (its expansions) where
    the executor reports them (local and processes: one search at a time each)."""

    def __init__(self, total: int) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.overall = tqdm(total=total, desc="theorems", unit="thm", file=sys.stderr)
        self.search: Any = None
        self.proved = 0
        self._key = ""
        self._lock = threading.Lock()

    def step(self, job: ProofJob, done: int, most: int) -> None:
        with self._lock:
            if self.search is None:
                self.search = self._tqdm(
                    total=most, unit="exp", file=sys.stderr, position=1, leave=False
                )
            if self._key != job.key:
                self._key = job.key
                self.search.reset(total=most)
                self.search.set_description(job.theorem[:40], refresh=False)
            self.search.update(done - self.search.n)

    def done(self, result: JobResult) -> None:
        with self._lock:
            self.proved += result.status == "proved"
            self.overall.set_postfix(proved=self.proved, refresh=False)
            self.overall.update(1)
            why = f" ({result.message})" if result.message and result.status != "proved" else ""
            self.overall.write(
                f"{result.theorem}: {result.status} in {result.seconds:.1f} s{why}", file=sys.stderr
            )

    def close(self) -> None:
        if self.search is not None:
            self.search.close()
        self.overall.close()


def run_jobs(
    executor: Any,
    jobs: Sequence[ProofJob],
    on_result: Callable[[JobResult], None] | None = None,
) -> tuple[list[JobResult], bool]:
    """Run the jobs on a thread, with a progress bar. The first Ctrl-C stops them and the
    results so far are kept (a second one interrupts at once). Returns (results, whether
    Ctrl-C stopped the run)."""
    cancel = threading.Event()
    found: queue.Queue[JobResult | None] = queue.Queue()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            for result in executor.run(jobs, cancel, progress.step):
                found.put(result)
        except BaseException as err:  # reported on the main thread
            failure.append(err)
        finally:
            found.put(None)

    def stop(_signal: int, _frame: Any) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        print(
            "\nsegpilot: stopping the searches (Ctrl-C; again to quit at once)...", file=sys.stderr
        )

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, stop) if main else None
    thread = threading.Thread(target=work, name="segpilot-jobs", daemon=True)
    progress = Progress(len(jobs))
    results: list[JobResult] = []
    thread.start()
    try:
        while (item := found.get()) is not None:
            results.append(item)
            if on_result is not None:
                on_result(item)
            progress.done(item)
    finally:
        progress.close()
        if main:
            signal.signal(signal.SIGINT, previous or signal.default_int_handler)
    thread.join()
    cancelled = cancel.is_set()
    if failure:
        raise failure[0]
    return results, cancelled
