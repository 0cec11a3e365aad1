"""JSON-RPC over a subprocess's stdio, framed as LSP frames it (`Content-Length` headers).

`JsonRpcProcess` owns the process: it starts it in its own process group, serialises
writes, matches replies to requests, answers the server's own requests, and reads stderr
so that failures can show its tail.

A request without a reply within its timeout is *cancelled*, not taken for a hung server:
Lean answers slowly while it elaborates (a Mathlib file takes minutes), and killing it
would throw that work away. The client sends `$/cancelRequest` for the id, raises
`LeanRequestTimeout`, and keeps the process; the reply Lean may still send for that id (a
late result, or the `RequestCancelled` error, -32800, that Lean's request handlers throw
once they see the cancellation: `checkCancelled` in src/Lean/Server/Requests.lean, the token
in src/Lean/Server/RequestCancellation.lean) is dropped quietly. Only a process that exits
or a pipe that breaks (`LeanServerDied`), or garbage on stdout (a bad header, a body that
is not JSON: `LeanServerProtocolError`) ends the process and fails every pending request.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import contextlib
import itertools
import json
import os
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any

from segpilot.lean.errors import LeanProcessError

METHOD_NOT_FOUND = -32601
REQUEST_CANCELLED = -32800
"""LSP's `RequestCancelled`: Lean's answer to a request it dropped after `$/cancelRequest`."""
CONTENT_MODIFIED = -32801
"""LSP's `ContentModified`: Lean's "File changed." for a request whose snapshot an edit
abandoned (src/Lean/Server/Requests.lean)."""
_CANCELLED_IDS_KEPT = 1024
_STDERR_TAIL_LINES = 40
_STDERR_LINE_CHARS = 400
_INSTALL_FIX = "install Lean 4 with elan so that `lake` is on PATH, or set the server command"


class LeanServerError(LeanProcessError):
    """The language server failed (base of every language-server failure)."""

    @property
    def method(self) -> str | None:
        """The method of the request or notification in flight, if any."""
        return self.request.get("method") if self.request else None


class LeanServerStartError(LeanServerError):
    """The server command could not be started."""


class LeanServerDied(LeanServerError):
    """The server process is gone: it exited, crashed, or was stopped."""


class LeanServerTimeout(LeanServerError):
    """No answer within a time limit (base of the timeouts below)."""

    def __init__(self, message: str, *, timeout_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout_s = timeout_s


class LeanRequestTimeout(LeanServerTimeout):
    """A request got no reply in time (or a message could not be written in time).

    The request was cancelled with `$/cancelRequest` and the server keeps running: a slow
    answer usually means Lean is busy, and a restart would lose all it has elaborated. The
    next request goes to the same process."""


class LeanElaborationTimeout(LeanRequestTimeout):
    """A document version was not elaborated within the elaboration timeout.

    The server keeps running and keeps elaborating; asking again later may succeed."""

    def __init__(
        self, message: str, *, uri: str | None = None, version: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.uri = uri
        self.version = version


class LeanServerProtocolError(LeanServerError):
    """The server wrote something that is not a framed JSON-RPC message."""


class LspResponseError(LeanServerError):
    """The server answered a request with a JSON-RPC error (the server stays up)."""

    def __init__(self, code: int, message: str, *, request: Mapping[str, Any], data: Any = None):
        super().__init__(
            f"{request.get('method')} failed with error {code}: {message}", request=request
        )
        self.code = code
        self.data = data


class _FramingError(Exception):
    """Bytes on stdout that are not an LSP-framed JSON object."""


def encode_message(message: Mapping[str, Any]) -> bytes:
    """Frame one JSON-RPC message with its Content-Length header."""
    body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """Read one framed message; `None` when the stream ends cleanly between messages.

    Raises `_FramingError` for anything else."""
    length = None
    at_start = True
    while True:
        try:
            line = await reader.readline()
        except ValueError as exc:  # a line longer than the reader's limit
            raise _FramingError(f"header line too long ({exc})") from None
        if not line:
            if at_start:
                return None
            raise _FramingError("the stream ended inside a message header")
        at_start = False
        if line in (b"\r\n", b"\n"):
            break
        name, sep, value = line.decode("ascii", "replace").partition(":")
        if not sep:
            raise _FramingError(f"not a message header: {line[:80]!r}")
        if name.strip().lower() == "content-length":
            if not value.strip().isdigit():
                raise _FramingError(f"bad Content-Length: {line[:80]!r}")
            length = int(value)
    if length is None:
        raise _FramingError("a message header without Content-Length")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise _FramingError("the stream ended inside a message body") from None
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _FramingError(f"a message body that is not JSON: {body[:80]!r}") from None
    if not isinstance(message, dict):
        raise _FramingError(f"a message that is not a JSON object: {body[:80]!r}")
    return message


class JsonRpcProcess:
    """A subprocess speaking framed JSON-RPC on stdin/stdout.

    `on_notification(method, params)` receives every server notification;
    `on_failure()` runs once the process is dead. Server requests whose method is in
    `accepted_requests` get a `null` result, any other one `MethodNotFound`.
    """

    def __init__(
        self,
        command: Sequence[str],
        cwd: Path,
        *,
        env: Mapping[str, str] | None = None,
        on_notification: Callable[[str, Any], None],
        on_failure: Callable[[], None],
        accepted_requests: frozenset[str] = frozenset(),
    ) -> None:
        self.command = list(command)
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self._on_notification = on_notification
        self._on_failure = on_failure
        self._accepted_requests = accepted_requests
        self._process: asyncio.subprocess.Process | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[int, tuple[dict[str, Any], asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._write_lock = asyncio.Lock()
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
        self._stderr_partial = ""
        self._failure: str | None = "the server has not been started"
        self._exit_expected = False
        self._cancelled: collections.OrderedDict[Any, None] = collections.OrderedDict()
        """Ids of requests given up on (timed out or cancelled), newest last, bounded."""
        self.late_replies = 0
        """Replies that came for a request already given up on, and were dropped."""

    @property
    def is_alive(self) -> bool:
        process = self._process
        return self._failure is None and process is not None and process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stderr_tail(self) -> str:
        """The last lines the process wrote to stderr."""
        lines = [*self._stderr, self._stderr_partial] if self._stderr_partial else self._stderr
        return "\n".join(line[:_STDERR_LINE_CHARS] for line in lines)

    async def start(self) -> None:
        """Start the process and its stdout and stderr readers."""
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Its own process group, so that killing it also ends Lean's workers.
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            self._failure = f"could not start `{' '.join(self.command)}` in {self.cwd}: {exc}"
            raise LeanServerStartError(self._failure, fix=_INSTALL_FIX) from exc
        self._failure = None
        stderr_task = self._spawn(self._read_stderr(self._process.stderr))
        self._spawn(self._read_stdout(self._process, stderr_task))

    def expect_exit(self) -> None:
        """The next exit is a requested one, not a crash."""
        self._exit_expected = True

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` for the process to exit, kill it otherwise, stop the readers."""
        process = self._process
        if process is None:
            return
        self._exit_expected = True
        if process.returncode is None:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                self._kill()
                await process.wait()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout)
        self.fail(LeanServerDied, "the server was shut down")

    def fail(self, kind: type[LeanServerError], reason: str) -> None:
        """Mark the process dead, kill it, and fail every pending request with `kind`."""
        first = self._failure is None
        if first:
            self._failure = reason
        tail = self.stderr_tail()
        for message, future in self._pending.values():
            if not future.done():
                future.set_exception(kind(reason, request=message, stderr_tail=tail))
        self._pending.clear()
        self._kill()
        if first:
            self._on_failure()

    def _kill(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()

    def _dead(self, message: Mapping[str, Any]) -> LeanServerDied:
        reason = self._failure or "it exited"
        return LeanServerDied(
            f"the server is not running ({reason})", request=message, stderr_tail=self.stderr_tail()
        )

    async def request(self, method: str, params: Any, *, timeout: float) -> Any:
        """Send a request and wait up to `timeout` seconds for its result.

        Past the timeout the request is cancelled (`$/cancelRequest`) and
        `LeanRequestTimeout` is raised; the process keeps running. Cancelling the awaiting
        task cancels the request the same way."""
        request_id = next(self._ids)
        message = _message(method, params, request_id)
        if not self.is_alive:
            raise self._dead(message)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending[request_id] = (message, future)
        try:
            try:
                await asyncio.wait_for(self._round_trip(message, future), timeout)
            except asyncio.TimeoutError:
                self._give_up(request_id)
                reason = (
                    f"no reply to {method} within {timeout:g} s; the request was cancelled "
                    "and the server keeps running"
                )
                raise LeanRequestTimeout(
                    reason, request=message, stderr_tail=self.stderr_tail(), timeout_s=timeout
                ) from None
            return future.result()
        except asyncio.CancelledError:
            self._give_up(request_id)
            raise
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, method: str, params: Any, *, timeout: float) -> None:
        """Send a notification. If it cannot be written within `timeout` (the server is not
        reading its input), `LeanRequestTimeout` is raised; the bytes stay queued in order,
        so the stream is intact and the process is kept."""
        message = _message(method, params)
        if not self.is_alive:
            raise self._dead(message)
        try:
            await asyncio.wait_for(self._send(message), timeout)
        except asyncio.TimeoutError:
            reason = f"the server did not read {method} within {timeout:g} s (it stays queued)"
            raise LeanRequestTimeout(
                reason, request=message, stderr_tail=self.stderr_tail(), timeout_s=timeout
            ) from None

    def _give_up(self, request_id: int) -> None:
        """Forget a pending request and tell the server (`$/cancelRequest`); a reply that
        still comes for it is dropped in `_on_response`."""
        self._pending.pop(request_id, None)
        self._cancelled[request_id] = None
        while len(self._cancelled) > _CANCELLED_IDS_KEPT:
            self._cancelled.popitem(last=False)
        if self.is_alive:
            self._spawn(self._send_quietly(_message("$/cancelRequest", {"id": request_id})))

    async def _round_trip(self, message: dict[str, Any], future: asyncio.Future[Any]) -> None:
        await self._send(message)
        await asyncio.shield(future)  # a timeout cancels this wait, not the future

    async def _send(self, message: Mapping[str, Any]) -> None:
        process = self._process
        assert process is not None and process.stdin is not None
        data = encode_message(message)
        async with self._write_lock:
            try:
                process.stdin.write(data)
                await process.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise LeanServerDied(
                    f"cannot write to the server: {exc}",
                    request=message,
                    stderr_tail=self.stderr_tail(),
                ) from None

    async def _send_quietly(self, message: Mapping[str, Any]) -> None:
        with contextlib.suppress(LeanServerError):
            await self._send(message)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _read_stdout(
        self, process: asyncio.subprocess.Process, stderr_task: asyncio.Task[Any]
    ) -> None:
        assert process.stdout is not None
        try:
            while (message := await read_message(process.stdout)) is not None:
                self._dispatch(message)
        except _FramingError as exc:
            self.fail(LeanServerProtocolError, f"garbage on the server's stdout: {exc}")
        try:
            code = await asyncio.wait_for(process.wait(), 2.0)
        except asyncio.TimeoutError:
            self._kill()
            code = await process.wait()
        await asyncio.wait({stderr_task}, timeout=1.0)
        expected = self._exit_expected
        self.fail(
            LeanServerDied,
            "the server was shut down" if expected else f"the server exited (code {code})",
        )

    async def _read_stderr(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := await stream.read(65536):
            text = self._stderr_partial + decoder.decode(chunk)
            *lines, self._stderr_partial = text.split("\n")
            self._stderr.extend(lines)

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        try:
            if method is None:
                self._on_response(message)
            elif "id" in message:
                self._on_server_request(message["id"], method)
            else:
                self._on_notification(method, message.get("params"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _FramingError(f"malformed {method or 'response'} message: {exc!r}") from None

    def _on_response(self, message: dict[str, Any]) -> None:
        request_id = message["id"]
        entry = self._pending.get(request_id)
        if entry is None:
            # A late reply (a result, or RequestCancelled) to a request given up on, or a
            # reply to no request of ours: neither is a reason to stop the server.
            if request_id in self._cancelled:
                del self._cancelled[request_id]
                self.late_replies += 1
            return
        request, future = entry
        if future.done():
            return
        error = message.get("error")
        if error is not None:
            code, text = error["code"], error["message"]
            future.set_exception(
                LspResponseError(code, text, request=request, data=error.get("data"))
            )
        else:
            future.set_result(message.get("result"))

    def _on_server_request(self, request_id: Any, method: str) -> None:
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if method in self._accepted_requests:
            reply["result"] = None
        else:
            reply["error"] = {"code": METHOD_NOT_FOUND, "message": f"unsupported method {method}"}
        self._spawn(self._send_quietly(reply))


def _message(method: str, params: Any, request_id: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0"}
    if request_id is not None:
        message["id"] = request_id
    message["method"] = method
    if params is not None:
        message["params"] = params
    return message
