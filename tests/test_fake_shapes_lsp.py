"""The `lake serve` double only says what real Lean says.

Every `$/lean/plainGoal` and `$/lean/plainTermGoal` result the double produces must have a
JSON shape found in real Lean output (tests/fixtures/lean-lsp-examples, and the larger
copy in ../shared/data when present), and the standard LSP messages it sends must
structure cleanly into lsprotocol types. Shapes come from `tests/shapes.py`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, FIXTURES, PYTHON, ROOT
from lsprotocol import types
from lsprotocol.converters import get_converter
from shapes import describe, shape, shapes

from segpilot.lean.lsp_client import LeanServerClient
from segpilot.lean.lsp_transport import JsonRpcProcess, encode_message, read_message

FAKE = FAKES / "fake_lake_serve.py"
URI = "file:///project/Shapes.lean"
GOAL_METHOD, TERM_METHOD = "$/lean/plainGoal", "$/lean/plainTermGoal"
# The marker is the fake's (see fake_lake_serve.py); the line prefix keeps it at column 7.
MARKER_KIND = {GOAL_METHOD: "goal", TERM_METHOD: "term"}
PREFIX = "  skip "


def real_pairs(folder: Path, method: str) -> dict[str, Any]:
    """Real results of `method` in `folder`, keyed the way the fake's markers name them."""
    pairs = {}
    for path in sorted(folder.glob("lean4-tests-*.json")):
        name = path.stem.removeprefix("lean4-tests-")
        for pair in json.loads(path.read_text(encoding="utf-8"))["pairs"]:
            if pair["method"] == method:
                pos = pair["params"]["position"]
                pairs[f"{name}@{pos['line']}:{pos['character']}"] = pair["result"]
    return pairs


def fake_results(method: str, keys: list[str]) -> list[Any]:
    """Ask the fake at one marker per key, plus once on a line without a marker."""
    kind = MARKER_KIND[method]
    text = "theorem shapes : True := by\n"
    text += "".join(f"{PREFIX}/- {kind}: {key} -/\n" for key in keys)

    async def scenario() -> list[Any]:
        command = [PYTHON, str(FAKE), "--elab-delay", "0"]
        async with LeanServerClient(ROOT, command, request_timeout=10) as client:
            await client.did_open(URI, text)
            await client.wait_for_diagnostics(URI)
            lines = [(i + 1, len(PREFIX)) for i in range(len(keys))] + [(0, 3)]
            return [
                await client.request(
                    method,
                    {"textDocument": {"uri": URI}, "position": {"line": ln, "character": ch}},
                )
                for ln, ch in lines
            ]

    return asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.fixture(params=["fixtures", "shared"])
def real_folder(request: pytest.FixtureRequest) -> Path:
    if request.param == "fixtures":
        return FIXTURES / "lean-lsp-examples"
    return request.getfixturevalue("shared_data") / "lean-lsp-examples"


@pytest.mark.parametrize("method", [GOAL_METHOD, TERM_METHOD])
def test_every_fake_goal_result_has_a_real_shape(real_folder: Path, method: str) -> None:
    ours = real_pairs(FIXTURES / "lean-lsp-examples", method)
    real_shapes = shapes(real_pairs(real_folder, method).values())
    if method == TERM_METHOD:
        # No recorded null term goal exists, but Lean's handler returns
        # `Option PlainTermGoal` (src/Lean/Server/FileWorker/RequestHandling.lean).
        real_shapes.add("null")
    results = fake_results(method, sorted(ours))
    assert results[-1] is None  # no marker on that line
    for result in results:
        assert shape(result) in real_shapes, describe(shape(result))


def test_fake_plain_goal_answers_are_the_real_results() -> None:
    real = real_pairs(FIXTURES / "lean-lsp-examples", GOAL_METHOD)
    assert len(real) == 46  # 45 from plainGoal, 1 from anonHyp
    keys = sorted(real)
    assert fake_results(GOAL_METHOD, keys)[:-1] == [real[k] for k in keys]


def test_fake_term_goal_answers_carry_the_real_goal_text() -> None:
    real = real_pairs(FIXTURES / "lean-lsp-examples", TERM_METHOD)
    keys = sorted(real)
    answers = fake_results(TERM_METHOD, keys)[:-1]
    assert [a["goal"] for a in answers] == [real[k]["goal"] for k in keys]
    # The range is the marker's span in the fake's document (line k+1, from column 7).
    assert [a["range"]["start"] for a in answers] == [
        {"line": i + 1, "character": len(PREFIX)} for i in range(len(keys))
    ]


async def _standard_messages() -> tuple[Any, list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []
    rpc = JsonRpcProcess(
        [PYTHON, str(FAKE), "--elab-delay", "0"],
        ROOT,
        on_notification=lambda method, params: seen.append((method, params)),
        on_failure=lambda: None,
        accepted_requests=frozenset({"client/registerCapability"}),
    )
    await rpc.start()
    try:
        init = await rpc.request("initialize", {"processId": None, "capabilities": {}}, timeout=10)
        await rpc.notify("initialized", {}, timeout=10)
        text = "theorem t : 1 = 1 := by\n  sorry /- error: unsolved goals -/\n"
        document = {"uri": URI, "languageId": "lean4", "version": 1, "text": text}
        await rpc.notify("textDocument/didOpen", {"textDocument": document}, timeout=10)
        params = {"uri": URI, "version": 1}
        await rpc.request("textDocument/waitForDiagnostics", params, timeout=10)
        await rpc.request("shutdown", None, timeout=10)
        rpc.expect_exit()
        await rpc.notify("exit", None, timeout=10)
    finally:
        await rpc.close(5)
    return init, seen


def test_fake_standard_messages_structure_into_lsprotocol_types() -> None:
    converter = get_converter()
    init, seen = asyncio.run(asyncio.wait_for(_standard_messages(), 60))

    result = converter.structure(init, types.InitializeResult)
    assert result.capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert result.server_info.name == "Lean 4 Server"
    assert converter.unstructure(result) == init

    published = [params for method, params in seen if method == "textDocument/publishDiagnostics"]
    assert published
    for params in published:
        diagnostics = converter.structure(params, types.PublishDiagnosticsParams)
        assert diagnostics.version == 1
        # `fullRange` is Lean's extension of Diagnostic; everything else is standard LSP.
        plain = [{k: v for k, v in d.items() if k != "fullRange"} for d in params["diagnostics"]]
        standard = dict(params, diagnostics=plain)
        assert converter.unstructure(diagnostics) == standard
    severities = {d.severity for d in diagnostics.diagnostics}
    assert severities == {types.DiagnosticSeverity.Error, types.DiagnosticSeverity.Warning}

    progress = [params for method, params in seen if method == "$/lean/fileProgress"]
    assert [len(p["processing"]) for p in progress] == [1, 0]
    for params in progress:
        converter.structure(params["textDocument"], types.VersionedTextDocumentIdentifier)
        for item in params["processing"]:
            converter.structure(item["range"], types.Range)
            assert item["kind"] in (1, 2)


async def _cancel_transcript() -> list[dict[str, Any]]:
    """Raw replies of the fake to a request that is then cancelled, and to one whose
    handler ignores the cancellation (`--ignore-cancel`), read straight off its stdout."""
    process = await asyncio.create_subprocess_exec(
        PYTHON,
        str(FAKE),
        "--hang-on",
        "textDocument/hover",
        "--slow",
        "$/lean/plainGoal=0.3",
        "--ignore-cancel",
        "$/lean/plainGoal",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    text = "theorem t : True := by\n  /- goal: plainGoal@27:13 -/\n"
    document = {"uri": URI, "languageId": "lean4", "version": 1, "text": text}
    position = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 3}}
    for message in (
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": document}},
        {"jsonrpc": "2.0", "id": 1, "method": "textDocument/waitForDiagnostics",
         "params": {"uri": URI, "version": 1}},
        {"jsonrpc": "2.0", "id": 2, "method": "textDocument/hover", "params": position},
        {"jsonrpc": "2.0", "id": 3, "method": "$/lean/plainGoal", "params": position},
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}},
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 3}},
    ):  # fmt: skip
        process.stdin.write(encode_message(message))
    await process.stdin.drain()
    replies: list[dict[str, Any]] = []
    try:
        while len(replies) < 3:
            message = await read_message(process.stdout)
            assert message is not None
            if "id" in message and "method" not in message:
                replies.append(message)
    finally:
        process.stdin.close()
        await process.wait()
    return replies


def test_fake_answers_a_cancelled_request_with_a_standard_request_cancelled_error() -> None:
    converter = get_converter()
    replies = {r["id"]: r for r in asyncio.run(asyncio.wait_for(_cancel_transcript(), 60))}
    cancelled = converter.structure(replies[2], types.ResponseErrorMessage)
    assert cancelled.error.code == types.LSPErrorCodes.RequestCancelled
    assert converter.unstructure(cancelled) == replies[2]
    # A handler that does not check the cancellation still answers, late, with its result.
    late = replies[3]["result"]
    assert shape(late) in shapes(real_pairs(FIXTURES / "lean-lsp-examples", GOAL_METHOD).values())
