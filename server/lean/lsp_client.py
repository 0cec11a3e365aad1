"""An asyncio client for Lean's language server (`lake serve`).

Goals come from `$/lean/plainGoal`, which may answer from a stale snapshot right after an
edit; `textDocument/waitForDiagnostics` for the document's version is the freshness
barrier, so `plain_goal` passes it first (once per version), and passes it again when the
document was edited while it waited: a goal is only asked once Lean has answered the
barrier for the version the question is about.

Versions matter because Lean does not promise order. Its `waitForDiagnostics` handler
waits for the document that is current when the version check passes
(`handleWaitForDiagnostics`, src/Lean/Server/FileWorker/RequestHandling.lean), so an edit
that abandons that elaboration can end the wait before the newer version is done; and it
may publish an old version's diagnostics after a newer one's (the note in `nextCmdSnap`,
src/Lean/Server/FileWorker.lean, asks clients to prefer newer versions). So diagnostics
and `$/lean/fileProgress` are kept per document with their version, and those for an
older version than the one held are dropped.

Two time limits: `request_timeout` for ordinary requests (goals), `elaboration_timeout`
for waiting until a version is elaborated (minutes for a Mathlib file). Passing either
cancels what was asked (`LeanRequestTimeout`, `LeanElaborationTimeout`) and keeps the
server, with all it has elaborated. Only a process that died (`LeanServerDied`) or spoke
garbage needs `restart()`, which starts a new one with the documents that were open.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segpilot.lean.goals import Goal, GoalState, parse_goal, parse_plain_goal
from segpilot.lean.lsp_transport import (
    CONTENT_MODIFIED,
    REQUEST_CANCELLED,
    JsonRpcProcess,
    LeanElaborationTimeout,
    LeanRequestTimeout,
    LeanServerDied,
    LeanServerError,
    LspResponseError,
)
from segpilot.lean.positions import DocumentPositions, LspPosition, TextPosition
from segpilot.lean.settings import LeanSettings

_LEAN = LeanSettings()  # the declared defaults ([lean] settings)
DEFAULT_COMMAND = tuple(_LEAN.server_command)
DEFAULT_REQUEST_TIMEOUT_S = _LEAN.server_request_timeout_s
DEFAULT_ELABORATION_TIMEOUT_S = _LEAN.elaboration_timeout_s
# Server->client requests that need nothing from us (Lean registers a file watcher after
# `initialized`); any other one is answered with MethodNotFound.
_ACCEPTED_SERVER_REQUESTS = frozenset(
    {"client/registerCapability", "client/unregisterCapability", "window/workDoneProgress/create"}
)


@dataclass
class OpenDocument:
    """A document the client has opened, at its latest version."""

    uri: str
    text: str
    version: int
    language_id: str = "lean4"


@dataclass(frozen=True)
class FileProgress:
    """The latest `$/lean/fileProgress` of a document: the ranges still being elaborated."""

    version: int | None
    processing: tuple[Mapping[str, Any], ...]

    @property
    def done(self) -> bool:
        return not self.processing

    @property
    def fatal(self) -> bool:
        """Lean's worker for this file stopped with a fatal error (kind 2)."""
        return any(item.get("kind") == 2 for item in self.processing)


@dataclass(frozen=True)
class PlainTermGoal:
    """A `$/lean/plainTermGoal` result: the expected type of the term at a position."""

    goal: Goal
    start: LspPosition
    end: LspPosition


class LeanServerClient:
    """One `lake serve` process and the documents opened in it. An async context manager.

    `request_timeout` (seconds) bounds ordinary requests such as `$/lean/plainGoal`;
    `elaboration_timeout` bounds waiting for a document version to be elaborated, which
    takes minutes for files importing Mathlib, hence the separate and much longer default.
    Passing either cancels the request and raises (`LeanRequestTimeout`,
    `LeanElaborationTimeout`); the server keeps running.
    """

    def __init__(
        self,
        project_dir: str | os.PathLike[str] = ".",
        command: Sequence[str] = DEFAULT_COMMAND,
        *,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        elaboration_timeout: float = DEFAULT_ELABORATION_TIMEOUT_S,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.command = list(command)
        self.request_timeout = request_timeout
        self.elaboration_timeout = elaboration_timeout
        self.env = env
        self.documents: dict[str, OpenDocument] = {}
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] | None = None
        self._rpc: JsonRpcProcess | None = None
        self._diagnostics: dict[str, tuple[int | None, list[dict[str, Any]]]] = {}
        """uri -> (version, diagnostics) of the newest version Lean published for."""
        self._progress: dict[str, FileProgress] = {}
        self._fresh: dict[str, int] = {}
        """uri -> the newest version Lean has answered `waitForDiagnostics` for."""
        self._updated = asyncio.Event()
        self.stale_notifications = 0
        """Diagnostics or progress for an older version than the one held: dropped."""

    async def __aenter__(self) -> LeanServerClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def is_alive(self) -> bool:
        """The process is running; after a timeout it still is (only death ends it)."""
        return self._rpc is not None and self._rpc.is_alive

    @property
    def running(self) -> bool:
        """Same as `is_alive`: False means the server needs `restart()` (or a new client)."""
        return self.is_alive

    @property
    def pid(self) -> int | None:
        return self._rpc.pid if self._rpc is not None else None

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr."""
        return self._rpc.stderr_tail() if self._rpc is not None else ""

    @property
    def late_replies(self) -> int:
        """Replies that came after their request was cancelled (dropped)."""
        return self._rpc.late_replies if self._rpc is not None else 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the server and run the initialize handshake (no-op when it is running)."""
        if self.is_alive:
            return
        self._rpc = JsonRpcProcess(
            self.command,
            self.project_dir,
            env=self.env,
            on_notification=self._on_notification,
            on_failure=self._bump,
            accepted_requests=_ACCEPTED_SERVER_REQUESTS,
        )
        await self._rpc.start()
        params = {
            "processId": os.getpid(),
            "rootUri": self.project_dir.resolve().as_uri(),
            "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
            "initializationOptions": {"hasWidgets": False},
        }
        result = await self.request("initialize", params) or {}
        self.capabilities = result.get("capabilities", {})
        self.server_info = result.get("serverInfo")
        await self.notify("initialized", {})

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Ask the server to shut down and exit; kill it if it has not within `timeout`."""
        rpc = self._rpc
        if rpc is None:
            return
        if rpc.is_alive:
            try:
                await rpc.request("shutdown", None, timeout=timeout)
                rpc.expect_exit()
                await rpc.notify("exit", None, timeout=timeout)
            except LeanServerError:
                pass  # it is killed below if it is still there
        await rpc.close(timeout)

    async def restart(self) -> None:
        """Stop the server (whatever its state), start a new one, re-open the open documents."""
        documents = list(self.documents.values())
        await self.shutdown()
        self.documents.clear()
        self._diagnostics.clear()
        self._progress.clear()
        self._fresh.clear()
        await self.start()
        for doc in documents:
            await self.did_open(doc.uri, doc.text, language_id=doc.language_id, version=doc.version)

    async def request(self, method: str, params: Any, *, timeout: float | None = None) -> Any:
        """Send any request and return its raw result."""
        limit = self.request_timeout if timeout is None else timeout
        return await self._transport(method).request(method, params, timeout=limit)

    async def notify(self, method: str, params: Any) -> None:
        """Send any notification."""
        await self._transport(method).notify(method, params, timeout=self.request_timeout)

    def _transport(self, method: str) -> JsonRpcProcess:
        if self._rpc is None:
            raise LeanServerDied("the server has not been started", request={"method": method})
        return self._rpc

    def _on_notification(self, method: str, params: Any) -> None:
        if method == "textDocument/publishDiagnostics":
            uri, version = params["uri"], params.get("version")
            held = self._diagnostics.get(uri)
            if self._stale(uri, version, held[0] if held is not None else None):
                return
            self._diagnostics[uri] = (version, list(params["diagnostics"]))
        elif method == "$/lean/fileProgress":
            document = params["textDocument"]
            uri, version = document["uri"], document.get("version")
            progress = self._progress.get(uri)
            if self._stale(uri, version, progress.version if progress is not None else None):
                return
            self._progress[uri] = FileProgress(version, tuple(params["processing"]))
        else:
            return
        self._bump()

    def _stale(self, uri: str, version: int | None, held: int | None) -> bool:
        """Whether a notification for `version` is older than the one held for `uri`, or
        newer than the open document (left over from before it was closed and reopened)."""
        doc = self.documents.get(uri)
        stale = version is not None and (
            (held is not None and version < held) or (doc is not None and version > doc.version)
        )
        if stale:
            self.stale_notifications += 1
        return stale

    def _bump(self) -> None:
        """Wake whatever waits for a change of diagnostics, progress or liveness."""
        self._updated.set()
        self._updated = asyncio.Event()

    # -- documents -------------------------------------------------------------------------

    def _document(self, uri: str) -> OpenDocument:
        try:
            return self.documents[uri]
        except KeyError:
            raise ValueError(f"{uri} is not open in this client") from None

    async def did_open(
        self, uri: str, text: str, *, language_id: str = "lean4", version: int = 1
    ) -> int:
        """Open a document; returns its version."""
        if uri in self.documents:
            raise ValueError(f"{uri} is already open")
        self.documents[uri] = OpenDocument(uri, text, version, language_id)
        for held in (self._diagnostics, self._progress, self._fresh):
            held.pop(uri, None)  # what a closed incarnation of this uri left
        document = {"uri": uri, "languageId": language_id, "version": version, "text": text}
        await self.notify("textDocument/didOpen", {"textDocument": document})
        return version

    async def did_change(self, uri: str, text: str) -> int:
        """Replace the whole text of an open document; returns its new version."""
        doc = self._document(uri)
        doc.version += 1
        doc.text = text
        params = {
            "textDocument": {"uri": uri, "version": doc.version},
            "contentChanges": [{"text": text}],
        }
        await self.notify("textDocument/didChange", params)
        return doc.version

    async def did_close(self, uri: str) -> None:
        """Close a document and forget what the server said about it."""
        self._document(uri)
        del self.documents[uri]
        self._diagnostics.pop(uri, None)
        self._progress.pop(uri, None)
        self._fresh.pop(uri, None)
        await self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def diagnostics(self, uri: str) -> list[dict[str, Any]]:
        """The diagnostics of the newest version Lean published for (LSP Diagnostic objects);
        after `wait_for_diagnostics` those of the version waited for, or a newer one."""
        held = self._diagnostics.get(uri)
        return list(held[1]) if held is not None else []

    def diagnostics_version(self, uri: str) -> int | None:
        """The document version the current `diagnostics(uri)` belong to, if known."""
        held = self._diagnostics.get(uri)
        return held[0] if held is not None else None

    def progress(self, uri: str) -> FileProgress | None:
        """The latest `$/lean/fileProgress` for `uri`, if one arrived."""
        return self._progress.get(uri)

    async def wait_for_diagnostics(
        self, uri: str, version: int | None = None, *, timeout: float | None = None
    ) -> None:
        """Wait until Lean has elaborated `version` (default: the latest) of the document.

        Done means Lean answered the `waitForDiagnostics` request for that very version
        (replies are matched by request id, so an answer for an older version, even a late
        one, never counts). Past `timeout` (default `elaboration_timeout`) the request is
        cancelled and `LeanElaborationTimeout` raised; the server goes on elaborating."""
        doc = self._document(uri)
        target = doc.version if version is None else version
        limit = self.elaboration_timeout if timeout is None else timeout
        params = {"uri": uri, "version": target}
        try:
            await self.request("textDocument/waitForDiagnostics", params, timeout=limit)
        except LeanRequestTimeout as err:
            raise LeanElaborationTimeout(
                f"{uri} version {target} was not elaborated within {limit:g} s; "
                "the wait was cancelled and the server keeps elaborating",
                uri=uri,
                version=target,
                timeout_s=limit,
                request=err.request,
                stderr_tail=err.stderr_tail,
            ) from None
        if self.documents.get(uri) is doc:
            self._fresh[uri] = max(target, self._fresh.get(uri, target))

    async def wait_until_processed(self, uri: str, *, timeout: float | None = None) -> FileProgress:
        """Wait until fileProgress reports nothing left to process (or a fatal error) for
        the document's current version. Past `timeout` (default `elaboration_timeout`)
        `LeanElaborationTimeout` is raised; the server keeps running."""
        doc = self._document(uri)
        limit = self.elaboration_timeout if timeout is None else timeout
        method = "$/lean/fileProgress"

        async def settled() -> FileProgress:
            while True:
                if not self.is_alive:
                    raise LeanServerDied(
                        "the server stopped while elaborating",
                        request={"method": method, "uri": uri},
                        stderr_tail=self.stderr_tail(),
                    )
                progress = self._progress.get(uri)
                if (
                    progress is not None
                    and (progress.version or 0) >= doc.version
                    and (progress.done or progress.fatal)
                ):
                    return progress
                await self._updated.wait()

        try:
            return await asyncio.wait_for(settled(), limit)
        except asyncio.TimeoutError:
            raise LeanElaborationTimeout(
                f"{uri} was still being processed after {limit:g} s; the server keeps running",
                uri=uri,
                version=doc.version,
                timeout_s=limit,
                request={"method": method, "uri": uri},
                stderr_tail=self.stderr_tail(),
            ) from None

    # -- goals -----------------------------------------------------------------------------

    async def _fresh_request(
        self, method: str, uri: str, position: Callable[[str], LspPosition]
    ) -> Any:
        """Ask `method` at `position(text)` once Lean has answered `waitForDiagnostics` for
        the version whose `text` the position is computed from.

        If the document is edited while we wait (or Lean answers that the content changed
        under the request), the question moves to the new version: wait for it, recompute
        the position from its text, ask again."""
        while True:
            doc = self._document(uri)
            version, text = doc.version, doc.text
            if self._fresh.get(uri, -1) < version:
                await self.wait_for_diagnostics(uri, version)
                if self._document(uri) is not doc or doc.version != version:
                    continue  # edited meanwhile: that answer was for an older version
            params = {"textDocument": {"uri": uri}, "position": position(text).to_json()}
            try:
                return await self.request(method, params)
            except LspResponseError as err:
                edited = self.documents.get(uri) is not doc or doc.version != version
                if edited and err.code in (CONTENT_MODIFIED, REQUEST_CANCELLED):
                    continue
                raise

    async def plain_goal(self, uri: str, line: int, character: int) -> GoalState | None:
        """The tactic goals at an LSP position (UTF-16 `character`); `None` outside a proof."""
        at = LspPosition(line, character)
        return parse_plain_goal(await self._fresh_request("$/lean/plainGoal", uri, lambda _: at))

    async def goal_at(self, uri: str, where: int | TextPosition) -> GoalState | None:
        """The tactic goals at a string offset or a (line, code-point column) of the document.

        The position is converted to LSP's UTF-16 units against the text of the version
        the answer is for: the latest one, also when an edit arrives while waiting."""

        def position(text: str) -> LspPosition:
            positions = DocumentPositions(text)
            if isinstance(where, TextPosition):
                return positions.text_to_lsp(where)
            return positions.offset_to_lsp(where)

        return parse_plain_goal(await self._fresh_request("$/lean/plainGoal", uri, position))

    async def plain_term_goal(self, uri: str, line: int, character: int) -> PlainTermGoal | None:
        """The expected type at an LSP position; `None` where there is no term."""
        at = LspPosition(line, character)
        result = await self._fresh_request("$/lean/plainTermGoal", uri, lambda _: at)
        if result is None:
            return None
        span = result["range"]
        return PlainTermGoal(
            parse_goal(result["goal"]),
            LspPosition.from_json(span["start"]),
            LspPosition.from_json(span["end"]),
        )


def goal_in_file(
    path: Path,
    line: int,
    column: int,
    *,
    project_dir: Path,
    command: Sequence[str] = DEFAULT_COMMAND,
    timeout: float = 600.0,
) -> GoalState | None:
    """One-shot, for command-line use: start the server in `project_dir`, open `path`, and
    return the tactic goals at 1-based `line`, 0-based code-point `column` (None: no goal)."""
    text = path.read_text(encoding="utf-8")

    async def ask() -> GoalState | None:
        async with LeanServerClient(
            project_dir, command, request_timeout=timeout, elaboration_timeout=timeout
        ) as client:
            uri = path.resolve().as_uri()
            await client.did_open(uri, text)
            return await client.goal_at(uri, TextPosition(line - 1, column))

    return asyncio.run(ask())
