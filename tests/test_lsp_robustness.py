"""`segpilot serve` against what a client may send: malformed JSON-RPC, bad positions, huge
and exotic documents, a failing Lean, a broken model, the ways a session ends, and a fuzz
run (issue #4 item 7).

Every case checks three things: the server answers (an LSP error or an empty result), it
says so in its log, and it still serves a valid request afterwards. Raw messages are
written straight to the server's stdin; `Inbox` records what comes back, since pygls's
client drops responses to ids it did not send itself. The server handles messages in the
order they arrive and answers protocol-level errors while reading them, so once the reply
to a `segpilot/status` sent afterwards is in, the answer to a raw message sent before it is
in too: a missing answer fails at once instead of after a timeout.

Cases that run the real model use `FAST_MODEL` and assert nothing about what it writes
beyond there being a suggestion; no check depends on the machine's speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from fakes.graphs import write_graph
from lsp_harness import FAST_MODEL, Sidecar, fake_lean_options, sidecar
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.client import LanguageClient

PARSE_ERROR = -32700
INTERNAL_ERROR = -32603
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602

# A proof whose cursor line holds an astral character (two UTF-16 units) and BMP symbols
# (one unit each) before the cursor, inside a comment so the typed text starts after it.
EMOJI_LINE = "  /- ∀ ℕ ⊢ 😀 -/ "
EMOJI_DOC = f"theorem emoji_demo (n : ℕ) : n + 0 = n := by\n{EMOJI_LINE}\n"
PROOF_DOC = "-- a small file\ntheorem small (n : Nat) : n + 0 = n := by\n  \n"
# No Lean even where `lake` is installed (case 6 wires the fake REPL instead).
NO_LEAN = {"replCommand": ["segpilot-no-such-repl"], "leanServerCommand": ["no-such-lake"]}


def run(coroutine: Coroutine[Any, Any, Any], timeout: float = 240.0) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def frame(body: bytes, length: int | None = None) -> bytes:
    """A message as LSP frames it; `length` overrides the Content-Length header."""
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def request(msg_id: str, method: str, params: Any = None) -> bytes:
    """A JSON-RPC request; `params` None leaves the member out."""
    message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


def inline_params(uri: str, position: Any) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 1}}


async def write(car: Sidecar, data: bytes) -> None:
    stdin = car.process.stdin
    assert stdin is not None
    stdin.write(data)
    await stdin.drain()


class Inbox:
    """Every message the client receives from the server, from now on."""

    def __init__(self, car: Sidecar) -> None:
        self.messages: list[Any] = []
        protocol = car.client.protocol
        handle = protocol.handle_message

        def record(message: Any) -> None:
            self.messages.append(message)
            handle(message)

        protocol.handle_message = record  # type: ignore[method-assign]

    def responses(self, msg_id: Any = ...) -> list[Any]:
        found = [m for m in self.messages if hasattr(m, "error") or hasattr(m, "result")]
        return found if msg_id is ... else [m for m in found if m.id == msg_id]

    def errors(self, code: int | None = None) -> list[types.ResponseError]:
        return [
            m.error
            for m in self.responses()
            if getattr(m, "error", None) is not None and code in (None, m.error.code)
        ]

    async def unanswered(self, ids: set[Any], timeout: float) -> set[Any]:
        """The ids among `ids` still without a response after waiting up to `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while missing := ids - {m.id for m in self.responses()}:
            if asyncio.get_running_loop().time() > deadline:
                return missing
            await asyncio.sleep(0.05)
        return set()


def describe(inbox: Inbox, car: Sidecar) -> str:
    """What came back and the server's last log records (traceback lines left out)."""
    lines = [line for line in car.log().splitlines() if line[:2] == "20"]  # dated records
    answers = "\n".join(repr(m)[:300] for m in inbox.responses())
    return f"responses:\n{answers}\nserver log (last lines):\n" + "\n".join(lines[-15:])


async def logged(car: Sidecar, *needles: str, timeout: float = 30.0) -> str:
    """Wait until every needle is in the server's log (stderr is drained asynchronously)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while missing := [n for n in needles if n not in car.log()]:
        if asyncio.get_running_loop().time() > deadline:
            tail = "\n".join(car.log().splitlines()[-30:])
            raise AssertionError(f"the server log lacks {missing}; its tail:\n{tail}")
        await asyncio.sleep(0.02)
    return car.log()


async def logged_after(car: Sidecar, mark: int, *levels: str, timeout: float = 30.0) -> str:
    """Wait for a log line at one of `levels` written after `mark` (a length of the log)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not any(level in car.log()[mark:] for level in levels):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing logged at {levels}:\n{car.log()[mark:][-3000:]}")
        await asyncio.sleep(0.02)
    return car.log()[mark:]


async def alive(car: Sidecar) -> Any:
    """The server still answers a valid request (and has not exited); its status."""
    status = await car.status()
    assert car.process.returncode is None
    return status


async def answers_to(car: Sidecar, inbox: Inbox, msg_id: Any, data: bytes) -> list[Any]:
    """Write one raw message, then a valid request; the responses to `msg_id` by then."""
    await write(car, data)
    await alive(car)
    return inbox.responses(msg_id)


def started(
    tmp_path: Path, scenario: Callable[[Sidecar, Inbox], Coroutine[Any, Any, Any]], **options
) -> Any:
    async def main() -> Any:
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL, **options}) as car:
            return await scenario(car, Inbox(car))

    return run(main())


# -- 1. malformed JSON-RPC ------------------------------------------------------------------


def test_invalid_json_is_answered_with_a_parse_error(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        for body in (b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": ', b""):
            await write(car, frame(body))
        await alive(car)
        errors = [m for m in inbox.responses(None) if m.error.code == PARSE_ERROR]
        # The empty body ("Content-Length: 0") is no message at all: two parse errors.
        assert len(errors) == 2, describe(inbox, car)
        await logged(car, "unreadable message", "answered with a parse error")

    started(tmp_path, scenario)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"a string"',
        b"42",
        b'{"foo": 1}',
        b'{"jsonrpc": "2.0"}',
        b'{"jsonrpc": "1.0", "id": "v1", "method": "segpilot/status", "params": {}}',
        b'{"jsonrpc": "2.0", "id": "m1", "method": ["segpilot/status"], "params": {}}',
        b'{"jsonrpc": "2.0", "id": "m2", "method": {"name": "x"}}',
        b'{"jsonrpc": "2.0", "id": "m3", "method": 5, "params": {}}',
        b'{"jsonrpc": "2.0", "id": [1], "method": "segpilot/status", "params": {}}',
        b'{"jsonrpc": "2.0", "id": {"a": 1}, "method": "textDocument/inlineCompletion", '
        b'"params": {"context": {"goals": ["a"]}}}',
    ],
    ids=[
        "array",
        "string",
        "number",
        "object",
        "no-method",
        "version-1.0",
        "method-array",
        "method-object",
        "method-number",
        "id-array",
        "id-object",
    ],
)
def test_json_that_is_not_a_jsonrpc_message_is_an_invalid_request(
    tmp_path: Path, body: bytes
) -> None:
    """JSON-RPC 2.0 answers a request object it cannot use with -32600: the id is null,
    or the request's own when that much is readable. `method` must be a string, `id` a
    string or number."""

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        await alive(car)
        mark = len(car.log())
        await write(car, frame(body))
        await alive(car)
        invalid = [
            m
            for m in inbox.responses()
            if getattr(m, "error", None) is not None
            and m.error.code == INVALID_REQUEST
            and m.id in (None, "v1", "m1", "m2", "m3")  # a readable id may be echoed
        ]
        assert invalid, f"no Invalid Request answer to {body!r}\n{describe(inbox, car)}"
        await logged_after(car, mark, " WARNING ", " ERROR ")

    started(tmp_path, scenario)


@pytest.mark.parametrize(
    "params",
    [
        inline_params("file:///nowhere/A.lean", "3:4"),
        inline_params("file:///nowhere/A.lean", {"line": "three", "character": 0}),
        {"position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
        "junk",
        [1, 2],
    ],
    ids=["position-string", "line-string", "no-text-document", "params-string", "params-array"],
)
def test_request_with_invalid_params_gets_invalid_params(tmp_path: Path, params: Any) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        data = frame(request("bad-params", types.TEXT_DOCUMENT_INLINE_COMPLETION, params))
        answers = await answers_to(car, inbox, "bad-params", data)
        assert len(answers) == 1, f"no answer to the request\n{describe(inbox, car)}"
        assert answers[0].error is not None
        assert answers[0].error.code == INVALID_PARAMS
        await logged(car, "Invalid Params")

    started(tmp_path, scenario)


@pytest.mark.parametrize("params", [{}, None], ids=["with-params", "params-omitted"])
def test_unknown_method_is_method_not_found(tmp_path: Path, params: Any) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        data = frame(request("unknown", "segpilot/noSuchMethod", params))
        answers = await answers_to(car, inbox, "unknown", data)
        assert len(answers) == 1, describe(inbox, car)
        assert answers[0].error is not None
        assert answers[0].error.code == METHOD_NOT_FOUND, describe(inbox, car)
        await logged(car, "segpilot/noSuchMethod")

    started(tmp_path, scenario)


def test_request_without_params_is_served(tmp_path: Path) -> None:
    """JSON-RPC lets a request leave `params` out; `segpilot/status` needs none."""

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        answers = await answers_to(car, inbox, "bare", frame(request("bare", "segpilot/status")))
        assert len(answers) == 1, describe(inbox, car)
        assert getattr(answers[0], "error", None) is None, describe(inbox, car)
        assert answers[0].result.preset == (await alive(car)).preset

    started(tmp_path, scenario)


def test_unknown_notification_is_ignored(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        for method in ("segpilot/noSuchNotification", "$/somethingNew"):
            body = json.dumps({"jsonrpc": "2.0", "method": method, "params": {"x": 1}})
            await write(car, frame(body.encode()))
        await alive(car)
        assert inbox.errors() == []
        await logged(car, "unknown method 'segpilot/noSuchNotification'")

    started(tmp_path, scenario)


def test_notification_method_sent_with_an_id_is_answered(tmp_path: Path) -> None:
    """A message with an id is a request (JSON-RPC 2.0), whatever its method: its sender
    waits for the answer, an error here (LSP has no such request)."""

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        mark = len(car.log())
        params = {"textDocument": {"uri": (tmp_path / "A.lean").as_uri()}}
        data = frame(request("closing", types.TEXT_DOCUMENT_DID_CLOSE, params))
        answers = await answers_to(car, inbox, "closing", data)
        assert len(answers) == 1, f"no answer\n{describe(inbox, car)}"
        assert getattr(answers[0], "error", None) is not None
        await logged_after(car, mark, " WARNING ", " ERROR ")

    started(tmp_path, scenario)


# -- 2. positions outside the document ------------------------------------------------------


def test_positions_outside_the_document_get_an_empty_list(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Small.lean", PROOF_DOC)
        lines = PROOF_DOC.count("\n") + 1
        for line, character in ((lines, 0), (40, 2), (2**31 - 1, 0), (0, 2**31 - 1)):
            result = await car.inline(uri, line, character, timeout=60)
            assert not result.items, (line, character)
        await logged(car, f"position {lines}:0 in {uri}", "position 40:2")
        # Negative numbers are not LSP positions at all: an error, not a crash.
        for msg_id, line, character in (("neg-line", -1, 0), ("neg-char", 1, -5)):
            where = {"line": line, "character": character}
            method = types.TEXT_DOCUMENT_INLINE_COMPLETION
            data = frame(request(msg_id, method, inline_params(uri, where)))
            answers = await answers_to(car, inbox, msg_id, data)
            assert [a.error.code for a in answers] == [INVALID_PARAMS], describe(inbox, car)
        assert (await alive(car)).stats.lastModelS is None  # the model never ran

    started(tmp_path, scenario)


def test_document_never_opened_gets_an_empty_list(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = (tmp_path / "Never.lean").as_uri()
        assert not (await car.inline(uri, 1, 2, timeout=60)).items
        await logged(car, f"request for {uri}, which is not open")
        assert (await alive(car)).stats.lastModelS is None

    started(tmp_path, scenario)


def test_character_past_the_line_end_is_the_line_end(tmp_path: Path) -> None:
    """LSP: "If the character value is greater than the line length it defaults back to the
    line length". Outside a proof that is an empty answer; on a proof line it is the end of
    the line, and the same suggestions come back (from the cache)."""

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Small.lean", PROOF_DOC)
        assert not (await car.inline(uri, 0, 500, timeout=60)).items
        await logged(car, "no suggestion at 0:500")
        at_end = await car.inline(uri, 2, 2)
        assert at_end.items, "the model gave no suggestion to compare"
        past_end = await car.inline(uri, 2, 900)
        assert [i.insert_text for i in past_end.items] == [i.insert_text for i in at_end.items]
        assert all(i.range.start == types.Position(2, 2) for i in past_end.items)
        assert (await alive(car)).stats.cacheHits == 1

    started(tmp_path, scenario)


# -- 3. a 10 MB document --------------------------------------------------------------------


def big_document(size: int = 10_000_000) -> tuple[str, int]:
    """Lean-like text of `size` bytes and more, ending with a theorem whose proof is open;
    returns the text and the (0-based) line inside that proof."""
    block = (
        "/-- The filler definition number {i}, over ℕ. -/\n"
        "def filler{i} (n : ℕ) : ℕ := n + {i}\n"
        "theorem filler{i}_eq (n : ℕ) : filler{i} n = n + {i} := rfl\n\n"
    )
    parts, total, i = [], 0, 0
    while total < size:
        part = block.format(i=i)
        parts.append(part)
        total += len(part.encode())
        i += 1
    text = "".join(parts) + "theorem big_end (n : ℕ) : n + 0 = n := by\n  \n"
    return text, text.count("\n") - 1


@pytest.mark.slow
def test_ten_megabyte_document_is_served(tmp_path: Path) -> None:
    text, proof_line = big_document()
    assert len(text.encode()) > 10_000_000

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Big.lean", text)
        assert not (await car.inline(uri, 1, 10, timeout=120)).items
        assert not (await car.inline(uri, proof_line // 2, 3, timeout=120)).items
        await logged(car, "no suggestion at 1:10", "not inside a tactic proof")
        inside = await car.inline(uri, proof_line, 2, timeout=240)
        assert isinstance(inside, types.InlineCompletionList)
        await logged(car, f"inlineCompletion Big.lean {proof_line}:2")
        assert (await alive(car)).stats.lastModelS is not None

    started(tmp_path, scenario)


# -- 4. bytes that are not UTF-8 ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": "u1", "method": "segpilot/status", "params": {"x": "\xff\xfe"}}',
        b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": '
        b'{"uri": "file:///u.lean", "languageId": "lean4", "version": 1, "text": "\xc3\x28"}}}',
        b'{"jsonrpc": "2.0", "id": "u3", "method": "segpilot/st\x80tus", "params": {}}',
    ],
    ids=["in-params", "in-document-text", "in-method"],
)
def test_non_utf8_body_is_a_parse_error(tmp_path: Path, body: bytes) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        await write(car, frame(body))
        await alive(car)
        codes = [m.error.code for m in inbox.responses(None)]
        assert codes == [PARSE_ERROR], describe(inbox, car)
        await logged(car, "unreadable message", "codec can't decode")

    started(tmp_path, scenario)


# -- 5. UTF-16 surrogate pairs before the cursor ---------------------------------------------


def test_range_counts_utf16_units_of_emoji_and_lean_symbols(tmp_path: Path) -> None:
    cursor = utf16(EMOJI_LINE)
    assert cursor == len(EMOJI_LINE) + 1  # the emoji is two units, ℕ ⊢ ∀ one each

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Emoji.lean", EMOJI_DOC)
        first = await car.inline(uri, 1, cursor)
        assert first.items, "the model gave no suggestion to check the range on"
        for item in first.items:
            assert item.range == types.Range(types.Position(1, cursor), types.Position(1, cursor))
        # Type the start of a suggestion: it stays (from the cache) and its range now
        # covers what was typed, from the UTF-16 column where typing started.
        head = max((i.insert_text.split("\n")[0] for i in first.items), key=len)
        typed = head[: max(1, min(3, len(head) - 1))].rstrip()
        assert typed, f"no usable prefix in {head!r}"
        car.change(uri, (1, cursor), (1, cursor), typed)
        end = cursor + utf16(typed)
        second = await car.inline(uri, 1, end)
        assert second.items, f"no suggestion kept after typing {typed!r}"
        for item in second.items:
            assert item.range == types.Range(types.Position(1, cursor), types.Position(1, end))
            assert item.insert_text.startswith(typed)
        await logged(car, f"inlineCompletion Emoji.lean 1:{end}")
        assert (await alive(car)).stats.cacheHits == 1

    started(tmp_path, scenario)


# -- 6. Lean crashing, hanging or garbling ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        ("crash", "exited (code 1) before answering"),
        ("hang", "did not answer within 2 s"),
        ("garbage", "answered with something that is not JSON"),
    ],
    ids=["crash", "hang", "garbage"],
)
def test_lean_failure_leaves_suggestions_unchecked(
    tmp_path: Path, fault: str, failure: str
) -> None:
    graph = write_graph(tmp_path / "graph.json", [])
    # The header is elaborated under the long elaboration timeout: 2 s for both here.
    options = fake_lean_options(graph, leanTimeoutS=2, lean={"elaborationTimeoutS": 2})
    # The text above the theorem is the first REPL command: its first line is the fault.
    text = f"fake:{fault}\n\ntheorem t (n : Nat) : n + 0 = n := by\n  \n"

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Faulty.lean", text)
        result = await car.inline(uri, 3, 2, timeout=180)
        assert result.items, "the model gave no suggestion to check the marks on"
        for item in result.items:
            assert item.command is not None
            info = item.command.arguments[0]
            assert info["checked"] is False
            assert failure in info["leanError"]
        await logged(car, "Lean REPL", failure)
        status = await alive(car)
        assert any(failure in error for error in status.errors), status.errors

    started(tmp_path, scenario, **options)


# -- 7. a broken model file -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["random-bytes", "gguf-magic-then-junk"])
def test_corrupt_model_file_is_an_error_not_a_crash(tmp_path: Path, kind: str) -> None:
    rng = random.Random(0)
    model = tmp_path / "corrupt.gguf"
    junk = rng.randbytes(64 * 1024)
    model.write_bytes(junk if kind == "random-bytes" else b"GGUF" + struct.pack("<I", 3) + junk)

    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Small.lean", PROOF_DOC)
        try:
            result = await car.inline(uri, 2, 2, timeout=120)
        except JsonRpcException as err:
            assert str(model) in str(err)
        else:
            assert not result.items
        await logged(car, f"model failed to load: {model}")
        status = await alive(car)
        assert status.modelLoaded is False
        assert any(str(model) in error for error in status.errors), status.errors

    started(tmp_path, scenario, modelPath=str(model))


# -- 8. how a session ends -------------------------------------------------------------------


def test_exit_after_shutdown_is_code_0(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        await alive(car)
        assert await car.stop() == 0

    started(tmp_path, scenario)


def test_exit_without_shutdown_is_code_1(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        await alive(car)
        car.notify("exit", None)
        assert await asyncio.wait_for(car.process.wait(), 60) == 1

    started(tmp_path, scenario)


def test_process_ends_when_stdin_closes(tmp_path: Path) -> None:
    async def scenario(car: Sidecar, inbox: Inbox) -> None:
        uri = car.open(tmp_path / "Small.lean", PROOF_DOC)
        await car.inline(uri, 0, 0, timeout=60)
        stdin = car.process.stdin
        assert stdin is not None
        stdin.close()
        code = await asyncio.wait_for(car.process.wait(), 60)
        assert code >= 0, f"killed by signal {-code}"

    started(tmp_path, scenario)


# -- 9. fuzz ---------------------------------------------------------------------------------

FUZZ_BEFORE_INITIALIZE = 400
FUZZ_AFTER_INITIALIZE = 2600
# Documents with no declaration and no `:= by`, so no message can make the model run.
FUZZ_DOCS = [
    "import Foo.Bar\n\nopen Nat\n\n-- ℕ ⊢ ∀ 😀 in a comment\n#check Nat.succ\n",
    "/- a block ⊢ comment -/\nnamespace Foo\n\nend Foo\n",
    "",
    "#eval 1 + 1\n" * 40,
    "\r\n\t😀😀ℕ\n\n",
]
JUNK: list[Any] = [
    None,
    True,
    -1,
    0,
    7,
    2**31,
    2**63,
    -(2**40),
    1.5,
    "",
    "x",
    "😀",
    "\ud83d",
    [],
    {},
    [1, "a", None],
    {"line": "a"},
    {"line": -3, "character": 2},
    {"uri": 5},
]
COMMANDS = [
    "segpilot.suggestionAccepted",
    "segpilot.insertSegment",
    "segpilot.proveTheorem",
    "segpilot.proveFile",
    "segpilot.noSuchCommand",
    "",
]
UNKNOWN_METHODS = ["textDocument/hover", "segpilot/nope", "$/junk", "textDocument/completion"]
ALPHABET = '{}[]":,\\ \r\n\t0123456789-.eEabcxyz/😀ℕ\x00\x1f\u2028'


class Fuzzer:
    """Seeded messages: valid templates with junk inside, then maybe mutated and misframed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        # Fixed uris (the files need not exist): the byte stream depends on the seed alone.
        self.uris = [f"file:///fuzz/Fuzz{i}.lean" for i in range(len(FUZZ_DOCS))]
        self.count = 0

    def junk(self) -> Any:
        return self.rng.choice(JUNK)

    def uri(self) -> Any:
        return self.rng.choice([*self.uris, *self.uris, "file:///never/Opened.lean", "x", 3])

    def position(self) -> Any:
        rng = self.rng
        if rng.random() < 0.3:
            return self.junk()
        return {
            "line": rng.choice([0, 1, 3, 50, -1, 2**31, rng.randrange(10)]),
            "character": rng.choice([0, 2, 900, -7, rng.randrange(20)]),
        }

    def range(self) -> Any:
        if self.rng.random() < 0.2:
            return self.junk()
        return {"start": self.position(), "end": self.position()}

    def template(self) -> dict[str, Any]:
        """One message as an editor might send it, with junk where the fuzz wants it."""
        rng = self.rng
        self.count += 1
        msg_id: Any = f"fz-{self.count}" if rng.random() < 0.8 else self.count
        kind = rng.randrange(10)
        if kind == 0:
            i = rng.randrange(len(FUZZ_DOCS))
            version = rng.choice([1, 2, -1, "v"])
            item = {"uri": self.uris[i], "languageId": "lean4", "version": version}
            message = {"method": "textDocument/didOpen", "params": {"textDocument": item}}
            item["text"] = FUZZ_DOCS[i] if rng.random() < 0.8 else self.junk()
        elif kind == 1:
            changes = [
                {"range": self.range(), "text": rng.choice(["x", "", "😀\n", "ℕ ⊢", "\n\n"])}
                for _ in range(rng.randrange(1, 4))
            ]
            document = {"uri": self.uri(), "version": rng.choice([2, 3, None, "v"])}
            params = {"textDocument": document, "contentChanges": changes}
            message = {"method": "textDocument/didChange", "params": params}
        elif kind == 2:
            message = {"method": "textDocument/didClose", "params": {"textDocument": {}}}
            message["params"]["textDocument"]["uri"] = self.uri()
        elif kind == 3:
            context = rng.choice([{"triggerKind": 1}, {"triggerKind": 9}, self.junk()])
            params = {"textDocument": {"uri": self.uri()}, "position": self.position()}
            params["context"] = context
            message = {"id": msg_id, "method": "textDocument/inlineCompletion", "params": params}
        elif kind == 4:
            params = rng.choice(
                [
                    {"uri": self.uri(), "position": self.position(), "goals": self.junk()},
                    {"uri": self.uri(), "version": self.junk(), "goals": ["⊢ True", "⊢ False"]},
                    {"uri": self.uri(), "position": self.position(), "goals": ["⊢ True"]},
                    {"position": {"line": "x"}},
                    self.junk(),
                ]
            )
            message = {"method": "segpilot/goalState", "params": params}
        elif kind == 5:
            arguments = rng.choice(
                [
                    [],
                    [self.junk()],
                    [{"uri": self.uri(), "position": self.position()}],
                    [self.uri(), self.position()],
                    [{"uri": self.uri(), "goalsAfter": ["⊢ x"], "goalsBefore": self.junk()}],
                    self.junk(),
                ]
            )
            params = {"command": rng.choice(COMMANDS), "arguments": arguments}
            message = {"id": msg_id, "method": "workspace/executeCommand", "params": params}
        elif kind == 6:
            params = {"textDocument": {"uri": self.uri()}, "range": self.range()}
            params["context"] = {"diagnostics": []}
            message = {"id": msg_id, "method": "textDocument/codeAction", "params": params}
        elif kind == 7:
            message = {"id": msg_id, "method": "segpilot/status", "params": self.junk()}
        elif kind == 8:
            message = {"method": "$/cancelRequest", "params": {"id": self.junk()}}
        else:
            message = {"id": msg_id, "method": rng.choice(UNKNOWN_METHODS), "params": {}}
        if rng.random() < 0.05 and "id" not in message:
            message["id"] = msg_id  # a notification sent as a request
        if rng.random() < 0.05:
            message["params"] = self.junk()  # params of the wrong shape altogether
        if rng.random() < 0.02:
            message["method"] = self.junk()  # not a string
        if rng.random() < 0.02 and "id" in message:
            message["id"] = self.junk()  # an id that is no string or number
        return {"jsonrpc": "2.0", **message}

    def mutate(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(text) + 1)
            action = rng.randrange(5)
            if action == 0 and at < len(text):  # flip
                text = text[:at] + rng.choice(ALPHABET) + text[at + 1 :]
            elif action == 1:  # delete
                text = text[:at] + text[at + 1 :]
            elif action == 2:  # insert
                text = text[:at] + rng.choice(ALPHABET) + text[at:]
            elif action == 3:  # truncate
                text = text[:at]
            else:  # repeat a slice
                end = min(len(text), at + rng.randrange(1, 12))
                text = text[:end] + text[at:end] + text[end:]
        return text

    def message(self) -> tuple[bytes, bytes | None]:
        """(bytes to write, the body when it is framed with its exact length)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:  # random bytes, framed
            body = rng.randbytes(rng.randrange(1, 200))
            return frame(body), body
        if roll < 0.08:  # random bytes outside any frame, ended by a line break
            return rng.randbytes(rng.randrange(1, 200)) + b"\r\n", None
        while True:
            text = json.dumps(self.template(), ensure_ascii=rng.random() < 0.5)
            if rng.random() < 0.4:
                text = self.mutate(text)
            if "by" not in text:  # nothing may open a tactic proof
                break
        body = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.03:
            at = rng.randrange(len(body) + 1)
            body = body[:at] + rng.choice([b"\xff", b"\xc3", b"\x80\x80"]) + body[at:]
        roll = rng.random()
        if roll < 0.08 and body:  # Content-Length short of the body: the rest is a junk line
            return frame(body, rng.randrange(0, len(body))) + b"\r\n", None
        if roll < 0.12:  # no header at all
            return body + b"\r\n", None
        if roll < 0.16:  # another header beside Content-Length
            header = b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
            return b"Content-Length: %d\r\n" % len(body) + header + b"\r\n" + body, body
        return frame(body), body


def expected_request_id(body: bytes | None) -> Any:
    """The id a well-framed body must be answered with, if it is a JSON-RPC request."""
    if body is None:
        return None
    try:
        message = json.loads(body)  # as the server reads it
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return None
    msg_id = message.get("id")
    valid_id = isinstance(msg_id, str) or (type(msg_id) is int and abs(msg_id) < 2**31)
    # Whatever the method (a notification's, junk): a message with an id is a request.
    return msg_id if valid_id and "method" in message else None


@contextlib.asynccontextmanager
async def uninitialized_sidecar() -> AsyncIterator[Sidecar]:
    """`segpilot serve` with nothing sent yet (the harness's `sidecar` initializes at once)."""
    client = LanguageClient("segpilot-robustness", "0")
    await client.start_io(sys.executable, "-m", "segpilot", "serve", "--log-level", "debug")
    car = Sidecar(client)
    drain = asyncio.ensure_future(car._drain())
    try:
        yield car
    finally:
        if car.process.returncode is None:
            car.process.kill()
            await car.process.wait()
        await client.stop()
        await drain


async def fuzz(car: Sidecar, fuzzer: Fuzzer, count: int) -> dict[Any, bytes]:
    """Write `count` fuzz messages; the requests that must be answered, by id."""
    expected: dict[Any, bytes] = {}
    for _ in range(count):
        data, body = fuzzer.message()
        msg_id = expected_request_id(body)
        if msg_id is not None:
            expected[msg_id] = data
        await write(car, data)
    return expected


def unanswered_report(missing: set[Any], sent: dict[Any, bytes]) -> str:
    shown = sorted(missing, key=str)[:10]
    return f"{len(missing)} request(s) never answered, e.g.:\n" + "\n".join(
        repr(sent[msg_id][:400]) for msg_id in shown
    )


def test_fuzzed_messages_never_stop_the_server(tmp_path: Path) -> None:
    """Seeded junk before and after `initialize`; every well-framed request is answered,
    and a valid request still is at the end."""
    fuzzer = Fuzzer(0)

    async def main() -> None:
        async with uninitialized_sidecar() as car:
            inbox = Inbox(car)
            before = await fuzz(car, fuzzer, FUZZ_BEFORE_INITIALIZE)
            await write(car, b"\r\n")  # ends whatever line the fuzz left half-read
            init = types.InitializeParams(
                capabilities=types.ClientCapabilities(),
                root_uri=tmp_path.as_uri(),
                initialization_options={**NO_LEAN, **FAST_MODEL},
            )
            await asyncio.wait_for(car.client.initialize_async(init), 60)
            car.client.initialized(types.InitializedParams())
            # LSP: before `initialize`, every request is refused with an error.
            missing = await inbox.unanswered(set(before), timeout=30)
            assert not missing, unanswered_report(missing, before)
            served = [
                m for m in inbox.responses() if m.id in before and getattr(m, "error", None) is None
            ]
            assert not served, f"served before initialize: {served[:5]}"

            after = await fuzz(car, fuzzer, FUZZ_AFTER_INITIALIZE)
            await write(car, b"\r\n")
            status = await alive(car)
            assert status.stats.lastModelS is None  # no fuzz message ran the model
            missing = await inbox.unanswered(set(after), timeout=30)
            assert not missing, unanswered_report(missing, after)
            assert inbox.errors(PARSE_ERROR), "no parse error answered"
            internal = inbox.errors(INTERNAL_ERROR)
            assert not internal, f"{len(internal)} Internal Error(s), e.g. {internal[:3]}"
            await logged(car, "unreadable message")
            assert car.process.returncode is None

    run(main(), timeout=180)
