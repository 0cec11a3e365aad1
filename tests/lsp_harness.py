"""Drive `segpilot serve` as an editor does: a subprocess spoken to over stdio with pygls's
`LanguageClient`, its stderr drained (a full pipe would block the server) and kept for
assertions, notifications recorded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

# Small enough that a real-model round takes about a second on a busy 2-core machine.
FAST_MODEL = {"k": 2, "maxTokens": 16}


class Sidecar:
    """A running `segpilot serve` and the client talking to it."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.stderr: list[str] = []
        self.log_messages: list[types.LogMessageParams] = []
        self.notifications: list[tuple[str, Any]] = []
        self.progress: list[Any] = []
        self.edits: list[types.ApplyWorkspaceEditParams] = []
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self.client._server is not None
        return self.client._server

    def log(self) -> str:
        """What the server logged: to the editor (`window/logMessage`), then to stderr."""
        shown = "".join(f"{m.message}\n" for m in self.log_messages)
        return shown + "".join(self.stderr)

    async def _drain(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while line := await stream.readline():
            self.stderr.append(line.decode("utf-8", "replace"))

    async def request(self, method: str, params: Any, timeout: float = 60.0) -> Any:
        return await asyncio.wait_for(
            self.client.protocol.send_request_async(method, params), timeout
        )

    async def raw_request(self, method: str, params: Any, timeout: float = 60.0) -> Any:
        """A request whose result is kept as the JSON the server sent (pygls's client turns
        a `(CodeAction | Command)[]` result into Commands with the action in a string)."""
        protocol = self.client.protocol
        typed = protocol.get_result_type
        protocol.get_result_type = lambda _method: None  # type: ignore[method-assign]
        try:
            future = protocol.send_request_async(method, params)
        finally:
            protocol.get_result_type = typed  # type: ignore[method-assign]
        return await asyncio.wait_for(future, timeout)

    def notify(self, method: str, params: Any) -> None:
        self.client.protocol.notify(method, params)

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        self.versions[uri] = 1
        self.texts[uri] = text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "lean4", 1, text))
        )
        return uri

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        """An incremental edit replacing the range start-end (LSP line, character)."""
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(self.versions[uri], uri),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(types.Position(*start), types.Position(*end)),
                        text=text,
                    )
                ],
            )
        )

    async def inline(
        self, uri: str, line: int, character: int, timeout: float = 120.0
    ) -> types.InlineCompletionList:
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
        return await asyncio.wait_for(
            self.client.text_document_inline_completion_async(params), timeout
        )

    async def status(self) -> Any:
        return await self.request("segpilot/status", {})

    def goal_state(self, uri: str, line: int, character: int, goals: list[str]) -> None:
        self.notify(
            "segpilot/goalState",
            {
                "uri": uri,
                "version": self.versions.get(uri),
                "position": {"line": line, "character": character},
                "goals": goals,
            },
        )

    async def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition") -> Any:
        """Poll the server's status until `predicate(status)` holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status = await self.status()
            if predicate(status):
                return status
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; status {status}")
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        """shutdown + exit; the server's exit code."""
        await self.request("shutdown", None, timeout=30)
        self.client.protocol.notify("exit", None)
        return await asyncio.wait_for(self.process.wait(), 30)


@contextlib.asynccontextmanager
async def sidecar(
    root: Path,
    options: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
) -> AsyncIterator[Sidecar]:
    """Start `segpilot serve`, initialize it with `options`, and stop it at the end."""
    client = LanguageClient("segpilot-tests", "0")
    await client.start_io(
        sys.executable,
        "-m",
        "segpilot",
        "serve",
        "--log-level",
        "debug",
        *args,
        env={**os.environ, **(env or {})},
    )
    car = Sidecar(client)
    drain = asyncio.ensure_future(car._drain())

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def _show(params: types.ShowMessageParams) -> None:
        car.notifications.append((types.WINDOW_SHOW_MESSAGE, params))

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def _log(params: types.LogMessageParams) -> None:
        car.log_messages.append(params)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def _create(_params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def _progress(params: types.ProgressParams) -> None:
        car.progress.append(params.value)

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def _apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        car.edits.append(params)
        return types.ApplyWorkspaceEditResult(applied=True)

    try:
        result = await asyncio.wait_for(
            client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(
                        window=types.WindowClientCapabilities(work_done_progress=True)
                    ),
                    root_uri=root.as_uri(),
                    initialization_options=options or {},
                )
            ),
            60,
        )
        car.capabilities = result.capabilities
        client.initialized(types.InitializedParams())
        yield car
    finally:
        if car.process.returncode is None:
            car.process.kill()
            await car.process.wait()
        await client.stop()
        await drain


def fake_lean_options(graph: Path, **extra: Any) -> dict[str, Any]:
    """Options wiring the sidecar's REPL to the fake REPL answering from `graph`."""
    fakes = Path(__file__).parent / "fakes"
    return {
        "replCommand": [
            sys.executable,
            str(fakes / "fake_repl.py"),
            str(graph),
            "--unrecorded-tactics",
            "error",
        ],
        **extra,
    }
