#!/usr/bin/env python3
"""A protocol double for `lake serve`: LSP over stdio, answering goals from real Lean output.

It speaks the wire protocol of Lean's language server (Content-Length framed JSON-RPC),
keeps the documents the client opens, and "elaborates" each version in the background
(`--elab-delay` seconds): `$/lean/fileProgress` reports the whole file as processing, then
diagnostics are published, then an empty `processing` says that version is done. A newer
version abandons the elaboration of an older one, as Lean does. Goal requests answer from
the last elaborated snapshot, so a goal asked without the barrier right after an edit is
stale.

`textDocument/waitForDiagnostics` `{uri, version}` behaves as Lean's
`handleWaitForDiagnostics` (src/Lean/Server/FileWorker/RequestHandling.lean): it waits
until the document has reached `version`, then for the elaboration of the document current
at that moment to end. An edit that abandons that elaboration ends the wait early, before
the newer version is elaborated: the reply means "no longer elaborating what was current",
not "the newest version is done".

Cancellation: `$/cancelRequest` stops the request and answers it with `RequestCancelled`
(-32800; the message text is ours), as Lean's handlers do once they check the token
(`checkCancelled`, src/Lean/Server/Requests.lean). With `--ignore-cancel METHOD` that
method's handler does not check it and answers late with its result, as a Lean handler
that never checks does (the wait loop of `handleWaitForDiagnostics` does not).

Answers come from markers in the document text, with results copied from
`tests/fixtures/lean-lsp-examples/lean4-tests-<name>.json` (real Lean output); a key is
`<name>@<line>:<character>`, the position of the pair in that file:

- `/- goal: plainGoal@27:13 -/`: `$/lean/plainGoal` at or after the marker's first
  character on its line answers that pair's result (the last such marker on the line
  wins); before any marker on the line the answer is `null`;
- `/- term: plainTermGoal@2:13 -/`: the same for `$/lean/plainTermGoal`, with `range`
  set to the marker's span in this document;
- `sorry` gives the warning "declaration uses 'sorry'"; `/- error: TEXT -/` an error;
- `/- crash-worker -/`: the file's worker "crashes": fileProgress reports a fatal error
  (kind 2) and requests on that version fail with WorkerCrashed (-32902);
- `/- elab-delay: SECONDS -/`: this version takes SECONDS to elaborate and a newer version
  does not abandon it (a command stuck in user code that never checks its cancel token):
  its diagnostics and progress arrive late, after the newer version's, which Lean allows
  (see the note in `nextCmdSnap`, src/Lean/Server/FileWorker.lean). A late version never
  replaces a newer snapshot.

Positions are read as Lean reads them: UTF-16 code units, a position inside a surrogate
pair counting as after that character, a character past the line end as the line end.

Fault switches (METHOD is a request method): `--crash-on METHOD` exits with code 3 and a
line on stderr; `--hang-on METHOD` never answers; `--garbage-on METHOD` writes a broken
header, `--bad-json-on METHOD` a framed body that is not JSON; `--slow METHOD=SECONDS`
delays the answer; `--ignore-cancel METHOD` see above. `--ask-client METHOD` sends one
more server-to-client request after `initialized`, `--tell-client METHOD` one more
notification; `--log FILE` appends every message received, one JSON object per line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lean-lsp-examples"
GOAL_MARKER = re.compile(r"/-\s*goal:\s*(\S+)\s*-/")
TERM_MARKER = re.compile(r"/-\s*term:\s*(\S+)\s*-/")
ERROR_MARKER = re.compile(r"/-\s*error:\s*(.*?)\s*-/")
CRASH_MARKER = "/- crash-worker -/"
DELAY_MARKER = re.compile(r"/-\s*elab-delay:\s*([0-9.]+)\s*-/")
SORRY = re.compile(r"\bsorry\b")
INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
WORKER_CRASHED = -32902
REQUEST_CANCELLED = -32800

# Modelled on Lean's `mkLeanServerCapabilities` (src/Lean/Server/Watchdog.lean), less the
# semantic-token legend.
CAPABILITIES = {
    "textDocumentSync": {
        "openClose": True,
        "change": 2,
        "willSave": False,
        "willSaveWaitUntil": False,
        "save": {"includeText": True},
    },
    "completionProvider": {"triggerCharacters": ["."], "resolveProvider": True},
    "hoverProvider": True,
    "declarationProvider": True,
    "definitionProvider": True,
    "typeDefinitionProvider": True,
    "referencesProvider": True,
    "callHierarchyProvider": True,
    "renameProvider": {"prepareProvider": True},
    "workspaceSymbolProvider": True,
    "documentHighlightProvider": True,
    "documentSymbolProvider": True,
    "foldingRangeProvider": True,
    "codeActionProvider": {
        "resolveProvider": True,
        "codeActionKinds": ["quickfix", "refactor", "source.organizeImports"],
    },
    "inlayHintProvider": {"resolveProvider": False},
    "experimental": {
        "moduleHierarchyProvider": {},
        "rpcProvider": {"highlightMatchesProvider": {}},
    },
}
SERVER_INFO = {"name": "Lean 4 Server", "version": "0.3.0"}
WATCHER_REQUEST = {
    "jsonrpc": "2.0",
    "id": "register_lean_watcher",
    "method": "client/registerCapability",
    "params": {
        "registrations": [
            {
                "id": "lean_watcher",
                "method": "workspace/didChangeWatchedFiles",
                "registerOptions": {
                    "watchers": [{"globPattern": "**/*.lean"}, {"globPattern": "**/*.ilean"}]
                },
            }
        ]
    },
}


def load_fixtures() -> dict[str, Any]:
    """Every real result, keyed `<name>@<line>:<character>`."""
    results = {}
    for path in sorted(FIXTURES.glob("lean4-tests-*.json")):
        name = path.stem[len("lean4-tests-") :]
        for pair in json.loads(path.read_text(encoding="utf-8"))["pairs"]:
            pos = pair["params"]["position"]
            results[f"{name}@{pos['line']}:{pos['character']}"] = pair["result"]
    return results


def column_at(line: str, character: int) -> int:
    """The code-point column of a UTF-16 `character` on `line`, read the way Lean reads it."""
    data = line.encode("utf-16-le")[: 2 * max(character, 0)]
    text = data.decode("utf-16-le", errors="ignore")
    if len(text.encode("utf-16-le")) < len(data):  # cut inside a surrogate pair: round up
        return len(text) + 1
    return len(text)


def utf16_character(line: str, column: int) -> int:
    return len(line[:column].encode("utf-16-le")) // 2


def lsp_range(line_text: str, line: int, start: int, end: int) -> dict[str, Any]:
    return {
        "start": {"line": line, "character": utf16_character(line_text, start)},
        "end": {"line": line, "character": utf16_character(line_text, end)},
    }


def apply_change(text: str, change: dict[str, Any]) -> str:
    """A full-text change, or a ranged one (UTF-16 positions)."""
    if "range" not in change:
        return change["text"]
    lines = text.split("\n")

    def offset(pos: dict[str, int]) -> int:
        line = min(pos["line"], len(lines) - 1)
        return sum(len(x) + 1 for x in lines[:line]) + column_at(lines[line], pos["character"])

    return (
        text[: offset(change["range"]["start"])]
        + change["text"]
        + text[offset(change["range"]["end"]) :]
    )


class Document:
    def __init__(self, uri: str, version: int, text: str) -> None:
        self.uri, self.version, self.text = uri, version, text
        self.snapshot: tuple[int, str] | None = None  # (version, text) last elaborated
        self.task: asyncio.Task[None] | None = None  # the current version's elaboration
        self.changed = asyncio.Event()  # set (and replaced) on each new version


class FakeLeanServer:
    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options
        self.fixtures = load_fixtures()
        self.documents: dict[str, Document] = {}
        self.shut_down = False
        self.closing = False  # after `exit`: pending handlers end without replies
        self.tasks: set[asyncio.Task[None]] = set()
        self.requests: dict[Any, tuple[str, asyncio.Task[None]]] = {}  # id -> method, handler
        self.stuck: set[asyncio.Task[None]] = set()  # elaborations no edit abandons
        self.slow = {m: float(s) for m, _, s in (x.partition("=") for x in options.slow)}

    def write(self, data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        self.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def run(self, reader: asyncio.StreamReader) -> None:
        while True:
            length = None
            while True:
                line = await reader.readline()
                if not line:
                    return  # the client closed our stdin: like Lean, treat it as `exit`
                if line.strip() == b"":
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None, "no Content-Length"
            message = json.loads(await reader.readexactly(length))
            if self.options.log:
                with open(self.options.log, "a", encoding="utf-8") as log:
                    log.write(json.dumps(message, ensure_ascii=False) + "\n")
            if "id" in message and "method" in message:
                task = asyncio.get_running_loop().create_task(self.on_request(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                task.add_done_callback(lambda t, rid=message["id"]: self.request_ended(rid, t))
                self.requests[message["id"]] = (message["method"], task)
            elif "method" in message:
                if message["method"] == "exit":
                    return
                self.on_notification(message["method"], message.get("params") or {})

    def request_ended(self, request_id: Any, task: asyncio.Task[None]) -> None:
        self.requests.pop(request_id, None)
        if task.cancelled() and not self.closing:  # by `$/cancelRequest`, maybe unstarted
            error = {"code": REQUEST_CANCELLED, "message": "Request cancelled"}
            self.send({"jsonrpc": "2.0", "id": request_id, "error": error})

    def cancel_request(self, request_id: Any) -> None:
        method, task = self.requests.get(request_id, ("", None))
        if task is None or task.done():
            return  # already answered: Lean ignores the cancellation too
        if method not in self.options.ignore_cancel:
            task.cancel()

    async def on_request(self, message: dict[str, Any]) -> None:
        method, request_id = message["method"], message["id"]
        params = message.get("params") or {}
        if method in self.options.crash_on:
            sys.stderr.write(f"fake lake serve: crashed while handling {method}\n")
            sys.stderr.flush()
            os._exit(3)
        if method in self.options.hang_on:
            await asyncio.Event().wait()
        if method in self.options.garbage_on:
            self.write(b"this is not an LSP header\r\n\r\n")
            return
        if method in self.options.bad_json_on:
            self.write(b"Content-Length: 9\r\n\r\n{not json")
            return
        await asyncio.sleep(self.slow.get(method, 0.0))
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        try:
            reply["result"] = await self.answer(method, params)
        except LookupError as exc:
            code, text = exc.args
            reply["error"] = {"code": code, "message": text}
        self.send(reply)

    async def answer(self, method: str, params: dict[str, Any]) -> Any:
        if self.shut_down:
            raise LookupError(INVALID_REQUEST, "Request received after 'shutdown' request.")
        if method == "initialize":
            return {"capabilities": CAPABILITIES, "serverInfo": SERVER_INFO}
        if method == "shutdown":
            self.shut_down = True
            return None
        if method == "textDocument/waitForDiagnostics":
            doc = self.document(params["uri"])
            while doc.version < params["version"]:
                await doc.changed.wait()
            if doc.task is not None:
                await asyncio.wait({doc.task})  # finished, or abandoned by an edit
            self.check_worker(doc)
            return {}
        if method in ("$/lean/plainGoal", "$/lean/plainTermGoal"):
            doc = self.document(params["textDocument"]["uri"])
            if doc.snapshot is None:
                return None
            self.check_worker(doc)
            marker = GOAL_MARKER if method == "$/lean/plainGoal" else TERM_MARKER
            return self.goal(doc.snapshot[1], params["position"], marker)
        raise LookupError(METHOD_NOT_FOUND, f"method not found: {method}")

    def document(self, uri: str) -> Document:
        if uri not in self.documents:
            raise LookupError(INVALID_PARAMS, f"Cannot process request to closed file '{uri}'")
        return self.documents[uri]

    def check_worker(self, doc: Document) -> None:
        if doc.snapshot is not None and CRASH_MARKER in doc.snapshot[1]:
            text = f"Server process for {doc.uri} crashed, likely due to a stack overflow or a bug."
            raise LookupError(WORKER_CRASHED, text)

    def goal(self, text: str, position: dict[str, int], marker: re.Pattern[str]) -> Any:
        lines = text.split("\n")
        line_no = position["line"]
        if not 0 <= line_no < len(lines):
            return None
        line = lines[line_no]
        column = column_at(line, position["character"])
        found = [m for m in marker.finditer(line) if m.start() <= column]
        if not found:
            return None
        match = found[-1]
        key = match.group(1)
        if key not in self.fixtures:
            raise LookupError(INVALID_PARAMS, f"fake lake serve: no real result {key!r}")
        result = self.fixtures[key]
        if marker is TERM_MARKER and result is not None:
            result = dict(result, range=lsp_range(line, line_no, match.start(), match.end()))
        return result

    def on_notification(self, method: str, params: dict[str, Any]) -> None:
        if method == "$/cancelRequest":
            self.cancel_request(params["id"])
        elif method == "initialized":
            self.send(WATCHER_REQUEST)
            for ask in self.options.ask_client:
                self.send({"jsonrpc": "2.0", "id": f"fake-{ask}", "method": ask, "params": {}})
            for tell in self.options.tell_client:
                self.notify(tell, {})
        elif method == "textDocument/didOpen":
            item = params["textDocument"]
            self.documents[item["uri"]] = Document(item["uri"], item["version"], item["text"])
            self.elaborate(self.documents[item["uri"]])
        elif method == "textDocument/didChange":
            doc = self.documents[params["textDocument"]["uri"]]
            for change in params["contentChanges"]:
                doc.text = apply_change(doc.text, change)
            doc.version = params["textDocument"]["version"]
            self.elaborate(doc)
        elif method == "textDocument/didClose":
            doc = self.documents.pop(params["textDocument"]["uri"])
            if doc.task is not None:
                doc.task.cancel()

    def elaborate(self, doc: Document) -> None:
        old = doc.task
        if old is not None and old not in self.stuck:
            old.cancel()  # Lean abandons the elaboration of an outdated version
        delay = DELAY_MARKER.search(doc.text)
        seconds = float(delay.group(1)) if delay else self.options.elab_delay
        task = asyncio.get_running_loop().create_task(
            self.elaboration(doc, doc.version, doc.text, seconds)
        )
        if delay is not None:
            self.stuck.add(task)
            task.add_done_callback(self.stuck.discard)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        doc.task = task
        doc.changed.set()
        doc.changed = asyncio.Event()

    async def elaboration(self, doc: Document, version: int, text: str, delay: float) -> None:
        lines = text.split("\n")
        whole = {
            "start": {"line": 0, "character": 0},
            "end": {
                "line": len(lines) - 1,
                "character": utf16_character(lines[-1], len(lines[-1])),
            },
        }
        document = {"uri": doc.uri, "version": version}
        self.notify(
            "$/lean/fileProgress",
            {"textDocument": document, "processing": [{"range": whole, "kind": 1}]},
        )
        await asyncio.sleep(delay)
        self.notify(
            "textDocument/publishDiagnostics",
            {"uri": doc.uri, "version": version, "diagnostics": diagnostics(lines)},
        )
        crashed = CRASH_MARKER in text
        processing = [{"range": whole, "kind": 2}] if crashed else []
        self.notify("$/lean/fileProgress", {"textDocument": document, "processing": processing})
        if doc.snapshot is None or doc.snapshot[0] < version:
            doc.snapshot = (version, text)


def diagnostics(lines: list[str]) -> list[dict[str, Any]]:
    found = []
    for line_no, line in enumerate(lines):
        spots = [(m, 2, "declaration uses 'sorry'") for m in SORRY.finditer(line)]
        spots += [(m, 1, m.group(1)) for m in ERROR_MARKER.finditer(line)]
        for match, severity, message in spots:
            span = lsp_range(line, line_no, match.start(), match.end())
            found.append(
                {
                    "source": "Lean 4",
                    "severity": severity,
                    "range": span,
                    "message": message,
                    "fullRange": span,
                }
            )
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elab-delay", type=float, default=0.05)
    faults = ("crash-on", "hang-on", "garbage-on", "bad-json-on", "slow", "ignore-cancel")
    for name in (*faults, "ask-client", "tell-client"):
        parser.add_argument(f"--{name}", action="append", default=[])
    parser.add_argument("--log")
    return parser.parse_args(argv)


async def main(argv: list[str]) -> int:
    options = parse_args(argv)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    server = FakeLeanServer(options)
    await server.run(reader)
    server.closing = True
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
