"""The plain Lean REPL client: one `repl` subprocess, one request at a time.

The REPL reads one JSON command followed by a blank line and answers one JSON object
(often pretty-printed over several lines) followed by a blank line. A reader thread turns
stdout into whole replies on a queue, so every call waits with a timeout; another thread
drains stderr so the child never blocks on it and errors can quote its tail. One lock
serialises the pipe. Recovery (restarts, recycling, replaying environments) is not here:
it is `segpilot.lean.supervisor.SupervisedRepl`, a layer around this client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import queue
import resource
import signal
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, overload

from segpilot.config import check_declared
from segpilot.lean.errors import (
    LeanProcessError,
    ReplCrashedError,
    ReplOutOfMemoryError,
    ReplProtocolError,
    ReplStartError,
    ReplTimeoutError,
)
from segpilot.lean.protocol import (
    CommandResponse,
    EnvRequest,
    ProofStateRequest,
    ProofStepResponse,
    ReplError,
    Request,
    Response,
    parse_response,
    reply_type,
    validate_request,
)
from segpilot.lean.settings import LeanSettings

_LEAN = LeanSettings()  # the declared defaults
STDERR_TAIL_LINES = 40
CLOSE_GRACE_S = 2.0
# What Lean's runtime prints when an allocation fails (also under an address-space cap).
OUT_OF_MEMORY_MARKERS = ("out of memory", "std::bad_alloc")


@dataclass
class ReplSettings:
    """How to run the Lean REPL. Each field's metadata holds its help and bounds."""

    command: list[str] = field(
        default_factory=lambda: list(_LEAN.repl_command),
        metadata={"help": "REPL command run in project_dir (`[lean] repl_command`)."},
    )
    project_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Lean project the REPL runs in (its imports resolve there); "
            "None: the current directory."
        },
    )
    timeout_s: float = field(
        default=_LEAN.repl_timeout_s,
        metadata={"help": "Seconds one request may take before the REPL is killed.", "min": 0.001},
    )
    memory_limit_mb: int | None = field(
        default=_LEAN.memory_limit_mb,
        metadata={
            "help": "Address-space cap (RLIMIT_AS) of the REPL process, in MiB; None: no cap. "
            "Generous because Lean memory-maps .olean files (several GiB for Mathlib).",
            "min": 64,
        },
    )
    rss_limit_mb: int | None = field(
        default=_LEAN.rss_limit_mb,
        metadata={
            "help": "Resident memory (MiB) past which the supervisor recycles the REPL "
            "before the next request; None: never.",
            "min": 1,
        },
    )
    recycle_after: int | None = field(
        default=_LEAN.recycle_after,
        metadata={
            "help": "Requests after which the supervisor restarts the REPL (Lean's memory "
            "only grows); None: never.",
            "min": 1,
        },
    )
    max_restarts: int = field(
        default=3,
        metadata={
            "help": "Restarts the supervisor tries for one request whose REPL died "
            "before it gives up.",
            "min": 0,
        },
    )
    restart_backoff_s: float = field(
        default=0.5,
        metadata={
            "help": "Pause before the first restart of a failing request; doubles "
            "with each further one.",
            "min": 0.0,
        },
    )

    @classmethod
    def from_lean(cls, lean: LeanSettings, project_dir: Path) -> ReplSettings:
        """The REPL process settings for `project_dir` from the `[lean]` settings."""
        return cls(
            command=lean.resolved_repl_command(project_dir),
            project_dir=project_dir,
            timeout_s=lean.repl_timeout_s,
            memory_limit_mb=lean.memory_limit_mb,
            rss_limit_mb=lean.rss_limit_mb,
            recycle_after=lean.recycle_after,
        )

    def __post_init__(self) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise ValueError(f"command must be a non-empty list of strings, got {self.command!r}")
        if self.project_dir is not None:
            self.project_dir = Path(self.project_dir)
        check_declared(self)


def _limit_memory(limit_mb: int) -> None:
    """Runs in the child between fork and exec: cap its address space."""
    limit = limit_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


class _Process:
    """One running REPL: the child, its reply queue and its stderr tail."""

    _EOF = object()

    def __init__(self, settings: ReplSettings) -> None:
        limit = settings.memory_limit_mb
        try:
            self.popen = subprocess.Popen(
                settings.command,
                cwd=settings.project_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # one group: `lake` and the `repl` it starts die together
                preexec_fn=None if limit is None else lambda: _limit_memory(limit),
            )
        except OSError as err:
            raise ReplStartError(
                f"cannot start the Lean REPL `{' '.join(settings.command)}`: {err}",
                fix="install Lean with elan and check the REPL command and project directory",
            ) from err
        self.replies: queue.Queue[Any] = queue.Queue()
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self.threads = [
            threading.Thread(target=self._read_replies, args=(self.popen.stdout,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(self.popen.stderr,), daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _read_replies(self, stream: IO[bytes]) -> None:
        lines: list[str] = []
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.strip():
                lines.append(line)
            elif lines:
                self.replies.put("\n".join(lines))
                lines = []
        if lines:
            self.replies.put("\n".join(lines))
        self.replies.put(self._EOF)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.stderr_lines.append(raw.decode("utf-8", errors="replace").rstrip("\r\n"))

    def stderr_tail(self) -> str:
        return "\n".join(self.stderr_lines)

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        self._close_pipes()

    def close(self) -> None:
        """Close stdin (the REPL ends on empty input), then kill what is left."""
        try:
            if self.popen.stdin is not None:
                self.popen.stdin.close()
            self.popen.wait(timeout=CLOSE_GRACE_S)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def _close_pipes(self) -> None:
        for thread in self.threads:
            thread.join(timeout=1.0)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class AsyncReplMixin:
    """`arun` and `async with` for a client whose `run`, `start` and `close` block."""

    async def arun(self, request: Request, *, timeout: float | None = None) -> Response:
        """`run` in a worker thread, so the event loop never blocks on Lean."""
        return await asyncio.to_thread(self.run, request, timeout=timeout)  # type: ignore[attr-defined]

    async def __aenter__(self) -> Any:
        await asyncio.to_thread(self.start)  # type: ignore[attr-defined]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)  # type: ignore[attr-defined]


class ReplClient(AsyncReplMixin):
    """One Lean REPL process: start, run requests with a timeout, close.

    A call that times out kills the process and raises `ReplTimeoutError`; a process that
    dies raises `ReplCrashedError` (`ReplOutOfMemoryError` when Lean ran out of memory); a
    reply that is not JSON raises `ReplProtocolError`. After any of these the next call
    starts a fresh process, whose environments and proof states start again from 0.
    """

    def __init__(self, settings: ReplSettings | None = None) -> None:
        self.settings = settings or ReplSettings()
        self._lock = threading.Lock()
        self._process: _Process | None = None
        self._poisoned = False
        self.generation = 0
        """How many processes this client has started (a change means all ids were lost)."""
        self.requests_served = 0
        """Requests answered by the current process."""

    # lifecycle

    def start(self) -> None:
        """Start the process unless it is running."""
        with self._lock:
            self._ensure_running()

    def close(self) -> None:
        """Stop the process (gracefully, then by force)."""
        with self._lock:
            self._stop()

    def restart(self) -> None:
        with self._lock:
            self._stop()
            self._ensure_running()

    def is_alive(self) -> bool:
        process = self._process
        return process is not None and process.popen.poll() is None and not self._poisoned

    @property
    def pid(self) -> int | None:
        return self._process.popen.pid if self._process is not None else None

    def __enter__(self) -> ReplClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.close()
        self._process = None
        self._poisoned = False

    def _ensure_running(self) -> _Process:
        if self._process is not None and not self.is_alive():
            self._process.kill()
            self._process = None
        if self._process is None:
            self._process = _Process(self.settings)
            self._poisoned = False
            self.generation += 1
            self.requests_served = 0
        return self._process

    # requests

    @overload
    def run(
        self, request: EnvRequest, *, timeout: float | None = None
    ) -> CommandResponse | ReplError: ...
    @overload
    def run(  # type: ignore[overload-cannot-match]  # mypy sees the request unions overlap
        self, request: ProofStateRequest, *, timeout: float | None = None
    ) -> ProofStepResponse | ReplError: ...
    def run(self, request: Request, *, timeout: float | None = None) -> Response:
        """Send one request; the reply typed, or the REPL's refusal as a `ReplError`."""
        obj = request.to_json()
        reply = parse_response(self.run_json(obj, timeout=timeout))
        if not isinstance(reply, (ReplError, reply_type(request))):
            self._poisoned = True
            raise ReplProtocolError(
                f"a {type(request).__name__} got a {type(reply).__name__}", request=obj
            )
        return reply

    def run_json(self, obj: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send one request dict (validated first) and return the reply object as parsed."""
        validate_request(obj)
        line = json.dumps(obj, ensure_ascii=False) + "\n\n"
        timeout = self.settings.timeout_s if timeout is None else timeout
        with self._lock:
            process = self._ensure_running()
            try:
                assert process.popen.stdin is not None
                process.popen.stdin.write(line.encode("utf-8"))
                process.popen.stdin.flush()
            except OSError:
                pass  # it died; the reply queue reports how, below
            text = self._next_reply(process, obj, timeout)
            try:
                reply = json.loads(text)
            except json.JSONDecodeError as err:
                self._poisoned = True
                raise ReplProtocolError(
                    f"the Lean REPL answered with something that is not JSON: {text[:200]!r}",
                    request=obj,
                    stderr_tail=process.stderr_tail(),
                ) from err
            if not isinstance(reply, dict):
                self._poisoned = True
                raise ReplProtocolError(f"reply is not a JSON object: {text[:200]!r}", request=obj)
            self.requests_served += 1
            return reply

    def _next_reply(self, process: _Process, request: Mapping[str, Any], timeout: float) -> str:
        try:
            item = process.replies.get(timeout=timeout)
        except queue.Empty:
            process.kill()
            raise ReplTimeoutError(
                f"the Lean REPL did not answer within {timeout:g} s; it was killed",
                timeout_s=timeout,
                request=request,
                stderr_tail=process.stderr_tail(),
            ) from None
        if item is not _Process._EOF:
            return item
        process.kill()  # reaps it and waits for the rest of stderr
        raise self._crash(process, request)

    @staticmethod
    def _crash(process: _Process, request: Mapping[str, Any]) -> LeanProcessError:
        code = process.popen.returncode
        tail = process.stderr_tail()
        out_of_memory = any(m in tail.lower() for m in OUT_OF_MEMORY_MARKERS)
        cls = ReplOutOfMemoryError if out_of_memory else ReplCrashedError
        what = "ran out of memory" if out_of_memory else f"exited (code {code})"
        return cls(
            f"the Lean REPL {what} before answering",
            returncode=code,
            request=request,
            stderr_tail=tail,
            fix="raise memory_limit_mb" if out_of_memory else None,
        )
