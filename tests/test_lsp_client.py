"""The language-server client against the `lake serve` double, over real pipes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import FAKES, FIXTURES, PYTHON, ROOT

from segpilot.lean.errors import LeanProcessError
from segpilot.lean.goals import parse_goals, parse_plain_goal
from segpilot.lean.lsp_client import LeanServerClient, goal_in_file
from segpilot.lean.lsp_transport import (
    LeanElaborationTimeout,
    LeanRequestTimeout,
    LeanServerDied,
    LeanServerError,
    LeanServerProtocolError,
    LeanServerStartError,
    LeanServerTimeout,
    LspResponseError,
)
from segpilot.lean.positions import DocumentPositions, TextPosition

FAKE = FAKES / "fake_lake_serve.py"
URI = "file:///project/Demo.lean"
OTHER_URI = "file:///project/Other.lean"


def real_result(key: str) -> Any:
    """The real Lean result a fake marker key stands for (see fake_lake_serve.py)."""
    name, _, position = key.partition("@")
    line, _, character = position.partition(":")
    data = json.loads((FIXTURES / "lean-lsp-examples" / f"lean4-tests-{name}.json").read_text())
    for pair in data["pairs"]:
        if pair["params"]["position"] == {"line": int(line), "character": int(character)}:
            return pair["result"]
    raise KeyError(key)


def fake(*args: str, log: Path | None = None) -> LeanServerClient:
    command = [PYTHON, str(FAKE), *args]
    if log is not None:
        command += ["--log", str(log)]
    return LeanServerClient(ROOT, command, request_timeout=10.0, elaboration_timeout=10.0)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def received(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def until(condition, timeout: float = 10.0) -> None:
    """Poll `condition()` until it holds (the test fails past `timeout`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def doc(*keys: str) -> str:
    """A small Lean document with one goal marker per tactic line."""
    lines = ["theorem demo (n m : Nat) (h1 : n = m) (h2 : m = 0) : 0 = n := by"]
    lines += [f"  skip /- goal: {key} -/" for key in keys]
    return "\n".join(lines) + "\n"


def test_initialize_handshake_and_lean_capabilities(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"

    async def scenario() -> None:
        async with fake(log=log) as client:
            assert client.is_alive
            assert client.server_info == {"name": "Lean 4 Server", "version": "0.3.0"}
            assert "rpcProvider" in client.capabilities["experimental"]
            await client.did_open(URI, doc())  # a round trip after the handshake

    run(scenario())
    messages = received(log)
    assert messages[0]["method"] == "initialize"
    assert messages[0]["params"]["rootUri"] == ROOT.as_uri()
    assert messages[1]["method"] == "initialized"
    watcher_reply = next(m for m in messages if m.get("id") == "register_lean_watcher")
    assert watcher_reply == {"jsonrpc": "2.0", "id": "register_lean_watcher", "result": None}


def test_unknown_server_request_and_notification_are_handled(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    unknown = ("--ask-client", "workspace/somethingNew", "--tell-client", "$/lean/somethingNew")

    async def scenario() -> None:
        async with fake(*unknown, log=log) as client:
            text = doc("plainGoal@27:13")
            await client.did_open(URI, text)
            assert (await client.goal_at(URI, text.index("/- goal"))).is_solved  # still serving

    run(scenario())
    reply = next(m for m in received(log) if m.get("id") == "fake-workspace/somethingNew")
    assert reply["error"]["code"] == -32601
    assert "result" not in reply


def test_open_change_close_track_versions_and_send_full_text(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    first, second = doc("plainGoal@27:3"), doc("plainGoal@27:9")

    async def scenario() -> None:
        async with fake(log=log) as client:
            assert await client.did_open(URI, first) == 1
            assert await client.did_change(URI, second) == 2
            assert client.documents[URI].text == second
            await client.wait_for_diagnostics(URI)
            await client.did_close(URI)
            assert URI not in client.documents
            assert client.diagnostics(URI) == []
            with pytest.raises(ValueError, match="not open"):
                await client.goal_at(URI, 0)

    run(scenario())
    by_method = {m.get("method"): m for m in received(log)}
    opened = by_method["textDocument/didOpen"]["params"]["textDocument"]
    assert opened == {"uri": URI, "languageId": "lean4", "version": 1, "text": first}
    changed = by_method["textDocument/didChange"]["params"]
    assert changed == {
        "textDocument": {"uri": URI, "version": 2},
        "contentChanges": [{"text": second}],
    }
    assert by_method["textDocument/didClose"]["params"] == {"textDocument": {"uri": URI}}


def test_goal_right_after_change_answers_for_the_new_version(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    old, new = doc("plainGoal@27:9"), doc("plainGoal@27:13")  # `⊢ 0 = m`, then no goals
    cursor = old.index("/- goal")

    async def scenario() -> None:
        async with fake("--elab-delay", "1.0", log=log) as client:
            await client.did_open(URI, old)
            before = await client.goal_at(URI, cursor)
            assert before is not None and before.texts() == real_result("plainGoal@27:9")["goals"]
            await client.did_change(URI, new)
            after = await client.goal_at(URI, cursor)
            assert after is not None and after.is_solved
            # Control: without the barrier the double answers from the stale snapshot.
            await client.did_change(URI, old)
            position = DocumentPositions(old).offset_to_lsp(cursor).to_json()
            raw = await client.request(
                "$/lean/plainGoal", {"textDocument": {"uri": URI}, "position": position}
            )
            assert raw == real_result("plainGoal@27:13")

    run(scenario())
    order = [
        (m["method"], m["params"].get("version"))
        for m in received(log)
        if m.get("method") in ("textDocument/waitForDiagnostics", "$/lean/plainGoal")
    ]
    assert order[:4] == [
        ("textDocument/waitForDiagnostics", 1),
        ("$/lean/plainGoal", None),
        ("textDocument/waitForDiagnostics", 2),
        ("$/lean/plainGoal", None),
    ]


@pytest.mark.parametrize(
    "key",
    ["plainGoal@89:39", "plainGoal@27:13", "plainGoal@40:3", "plainGoal@97:8", "anonHyp@2:4"],
    ids=["null", "no-goals", "two-goals", "conv", "anonymous-hypothesis"],
)
def test_plain_goal_parses_each_real_result_shape(key: str) -> None:
    text = doc(key)
    expected = real_result(key)

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            state = await client.goal_at(URI, text.index("/- goal"))
            if expected is None:
                assert state is None
            else:
                assert state == parse_goals(expected["goals"])
                assert state.texts() == expected["goals"]
                assert state.n_goals == len(expected["goals"])

    run(scenario())


def test_goal_in_file_starts_the_server_and_reads_the_goal_at_a_cursor(tmp_path: Path) -> None:
    source = tmp_path / "Scratch.lean"
    source.write_text(doc("plainGoal@27:3"), encoding="utf-8")
    cursor = doc("plainGoal@27:3").split("\n")[1].index("/-")
    command = [PYTHON, str(FAKE)]
    state = goal_in_file(source, 2, cursor, project_dir=ROOT, command=command, timeout=10.0)
    assert state == parse_plain_goal(real_result("plainGoal@27:3"))
    assert goal_in_file(source, 2, 0, project_dir=ROOT, command=command, timeout=10.0) is None


def test_goal_is_null_before_any_marker_on_the_line() -> None:
    text = doc("plainGoal@27:3")

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            assert await client.goal_at(URI, text.index("skip")) is None
            assert await client.plain_goal(URI, 0, 5) is None

    run(scenario())


def test_utf16_cursor_after_lean_symbols_and_emoji_lands_on_the_marker() -> None:
    text = (
        "example : True := by\n  /- goal: plainGoal@27:9 -/ ∀ ℕ ⊢ 😀 /- goal: plainGoal@27:13 -/\n"
    )
    second = text.index("/- goal: plainGoal@27:13")
    line_start = text.index("\n") + 1
    column = second - line_start  # code points; UTF-16 is one more (the emoji)

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            at_marker = await client.goal_at(URI, second)
            assert at_marker is not None and at_marker.is_solved
            before_marker = await client.goal_at(URI, second - 1)  # the space after 😀
            assert before_marker is not None
            assert before_marker.texts() == real_result("plainGoal@27:9")["goals"]
            assert (await client.plain_goal(URI, 1, column + 1)).is_solved
            # A code-point column sent as if it were UTF-16 falls short of the marker.
            assert not (await client.plain_goal(URI, 1, column)).is_solved

    run(scenario())


def test_plain_term_goal_range_maps_back_to_the_marker() -> None:
    text = "example : 0 < 2 := by\n  exact ⟨😀, /- term: plainTermGoal@11:10 -/⟩\n"
    marker = text.index("/- term")

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            start = DocumentPositions(text).offset_to_lsp(marker)
            term = await client.plain_term_goal(URI, start.line, start.character)
            assert term is not None
            assert term.goal.pretty() == real_result("plainTermGoal@11:10")["goal"]
            positions = DocumentPositions(text)
            assert positions.lsp_to_offset(term.start) == marker
            assert text[positions.lsp_to_offset(term.end) - 2 :].startswith("-/⟩")
            assert await client.plain_term_goal(URI, 0, 0) is None

    run(scenario())


def test_diagnostics_are_collected_per_version() -> None:
    text = "theorem t : 😀 = 😀 := by\n  sorry\n  /- error: unknown identifier 'foo' -/\n"

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            await client.wait_for_diagnostics(URI)
            warning, error = client.diagnostics(URI)
            assert (warning["severity"], warning["message"]) == (2, "declaration uses 'sorry'")
            assert warning["range"]["start"] == {"line": 1, "character": 2}
            assert (error["severity"], error["message"]) == (1, "unknown identifier 'foo'")
            await client.did_change(URI, text.replace("sorry", "rfl"))
            await client.wait_for_diagnostics(URI)
            assert [d["message"] for d in client.diagnostics(URI)] == ["unknown identifier 'foo'"]
            assert client.diagnostics(OTHER_URI) == []

    run(scenario())


def test_file_progress_goes_from_processing_to_done() -> None:
    async def scenario() -> None:
        async with fake("--elab-delay", "2") as client:
            await client.did_open(URI, doc())
            while client.progress(URI) is None:
                await asyncio.sleep(0.01)
            first = client.progress(URI)
            assert not first.done and first.processing[0]["kind"] == 1
            finished = await client.wait_until_processed(URI)
            assert finished.done and not finished.fatal and finished.version == 1

    run(scenario())


def test_crashed_lean_worker_is_reported_not_fatal_to_the_client() -> None:
    text = doc("plainGoal@27:3") + "/- crash-worker -/\n"

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, text)
            progress = await client.wait_until_processed(URI)
            assert progress.fatal
            with pytest.raises(LspResponseError) as caught:
                await client.goal_at(URI, text.index("/- goal"))
            assert caught.value.code == -32902
            assert client.is_alive

    run(scenario())


def test_server_crash_mid_request_fails_with_method_and_stderr() -> None:
    async def scenario() -> None:
        client = fake("--crash-on", "$/lean/plainGoal")
        async with client:
            await client.did_open(URI, doc("plainGoal@27:3"))
            with pytest.raises(LeanServerDied) as caught:
                await client.goal_at(URI, doc("plainGoal@27:3").index("/- goal"))
            assert caught.value.method == "$/lean/plainGoal"
            assert "crashed while handling $/lean/plainGoal" in caught.value.stderr_tail
            assert "crashed while handling" in str(caught.value)
            assert not client.is_alive and not client.running
            with pytest.raises(LeanServerDied, match="not running"):
                await client.wait_for_diagnostics(URI)

    run(scenario())


def test_request_timeout_cancels_the_request_and_keeps_the_server(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    text = doc("plainGoal@27:13")
    faults = ("--hang-on", "$/lean/plainGoal", "--slow", "$/lean/plainTermGoal=1.0")

    async def scenario() -> int:
        async with fake(*faults, log=log) as client:
            pid = client.pid
            await client.did_open(URI, text)
            await client.wait_for_diagnostics(URI)
            params = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 9}}
            other = asyncio.ensure_future(client.request("$/lean/plainTermGoal", params))
            with pytest.raises(LeanRequestTimeout, match="no reply") as caught:
                await client.request("$/lean/plainGoal", params, timeout=0.5)
            error = caught.value
            assert isinstance(error, LeanServerTimeout) and isinstance(error, LeanProcessError)
            assert (error.method, error.timeout_s) == ("$/lean/plainGoal", 0.5)
            assert "keeps running" in str(error)
            # The process and the other request in flight are untouched.
            assert client.is_alive and client.running and client.pid == pid
            assert await other is None
            # Lean answers the cancelled id with RequestCancelled; that reply is dropped.
            await until(lambda: client.late_replies == 1)
            assert client.is_alive
            # The next request goes to the same process and is answered.
            await client.did_change(URI, doc("plainGoal@27:9"))
            await client.wait_for_diagnostics(URI)
            assert client.pid == pid
            return pid

    pid = run(scenario())
    assert gone(pid)
    messages = received(log)
    goal = next(m for m in messages if m.get("method") == "$/lean/plainGoal")
    cancels = [m["params"] for m in messages if m.get("method") == "$/cancelRequest"]
    assert cancels == [{"id": goal["id"]}]


def test_late_result_for_a_timed_out_request_is_dropped_quietly() -> None:
    text = doc("plainGoal@27:13")
    faults = ("--slow", "$/lean/plainGoal=0.8", "--ignore-cancel", "$/lean/plainGoal")

    async def scenario() -> None:
        async with fake(*faults) as client:
            pid = client.pid
            await client.did_open(URI, text)
            client.request_timeout = 0.2
            with pytest.raises(LeanRequestTimeout):
                await client.goal_at(URI, text.index("/- goal"))
            await until(lambda: client.late_replies == 1)  # the result, after the cancel
            client.request_timeout = 5.0
            assert (await client.goal_at(URI, text.index("/- goal"))).is_solved
            assert client.is_alive and client.pid == pid

    run(scenario())


def test_elaboration_timeout_is_separate_and_a_timeout_keeps_the_server() -> None:
    first, second = doc("plainGoal@27:9"), doc("plainGoal@27:13")
    cursor = first.index("/- goal")

    async def scenario() -> None:
        async with fake("--elab-delay", "1.0") as client:
            pid = client.pid
            # Elaboration takes longer than a request may, and that is fine.
            client.request_timeout, client.elaboration_timeout = 0.5, 10.0
            await client.did_open(URI, first)
            before = await client.goal_at(URI, cursor)
            assert before.texts() == real_result("plainGoal@27:9")["goals"]
            # Elaboration past its own limit: a timeout error, the server stays.
            client.elaboration_timeout = 0.2
            await client.did_change(URI, second)
            with pytest.raises(LeanElaborationTimeout) as caught:
                await client.goal_at(URI, cursor)
            assert (caught.value.uri, caught.value.version) == (URI, 2)
            assert caught.value.method == "textDocument/waitForDiagnostics"
            assert isinstance(caught.value, LeanRequestTimeout)
            with pytest.raises(LeanElaborationTimeout, match="keeps running"):
                await client.wait_until_processed(URI, timeout=0.1)
            assert client.is_alive and client.pid == pid
            client.elaboration_timeout = 10.0
            assert (await client.goal_at(URI, cursor)).is_solved
            assert client.pid == pid

    run(scenario())


def test_diagnostics_and_progress_of_an_older_version_arriving_late_are_ignored() -> None:
    # Version 1 is stuck in elaboration (the fake's delay marker): its diagnostics and
    # progress come after version 2's, as Lean allows, and must not replace them.
    old = "theorem t : ∀ n : ℕ, n = n := by\n  sorry /- elab-delay: 1.5 -/\n"
    new = "theorem t : ∀ n : ℕ, n = n := by\n  /- error: unknown tactic 😀 -/\n"

    async def scenario() -> None:
        async with fake() as client:
            await client.did_open(URI, old)
            await client.did_change(URI, new)
            await client.wait_for_diagnostics(URI)
            assert [d["message"] for d in client.diagnostics(URI)] == ["unknown tactic 😀"]
            assert client.diagnostics_version(URI) == 2
            assert client.progress(URI) == (await client.wait_until_processed(URI))
            await until(lambda: client.stale_notifications == 2)  # v1's, 1.5 s later
            assert [d["message"] for d in client.diagnostics(URI)] == ["unknown tactic 😀"]
            assert client.diagnostics_version(URI) == 2
            progress = client.progress(URI)
            assert progress.version == 2 and progress.done

    run(scenario())


def test_goal_asked_before_an_edit_waits_for_the_edited_version() -> None:
    # The edit abandons version 1's elaboration, which ends its waitForDiagnostics early
    # (as Lean's handler does); that answer is for version 1 and must not let the goal
    # through before version 2 is elaborated. The line has ∀, ℕ, ⊢ and an emoji (two
    # UTF-16 units) before the marker, so the cursor only lands on it in UTF-16.
    line = "  exact ∀ ℕ ⊢ 😀 /- goal: {} -/"
    old = "example : True := by\n" + line.format("plainGoal@27:9") + "\n"
    new = "example : True := by\n" + line.format("plainGoal@27:3") + "\n"
    cursor = TextPosition(1, line.index("/- goal"))

    async def scenario() -> None:
        async with fake("--elab-delay", "1.0") as client:
            await client.did_open(URI, old)
            asked = asyncio.ensure_future(client.goal_at(URI, cursor))
            await asyncio.sleep(0.2)  # the goal is waiting for version 1
            await client.did_change(URI, new)
            state = await asked
            assert state is not None
            assert state.texts() == real_result("plainGoal@27:3")["goals"]
            # A goal right after the edit, without one in flight, waits for it too.
            await client.did_change(URI, old)
            again = await client.goal_at(URI, cursor)
            assert again.texts() == real_result("plainGoal@27:9")["goals"]

    run(scenario())


@pytest.mark.parametrize("fault", ["--garbage-on", "--bad-json-on"])
def test_garbage_on_stdout_is_a_protocol_error_and_kills_the_client(fault: str) -> None:
    async def scenario() -> None:
        async with fake(fault, "$/lean/plainGoal") as client:
            await client.did_open(URI, doc())
            with pytest.raises(LeanServerProtocolError, match="garbage") as caught:
                await client.plain_goal(URI, 1, 4)
            assert caught.value.method == "$/lean/plainGoal"
            assert not client.is_alive
            with pytest.raises(LeanServerDied):
                await client.plain_goal(URI, 1, 4)

    run(scenario())


@pytest.mark.parametrize(
    ("timeout", "outcome"), [(5.0, "answer"), (0.3, "timeout")], ids=["within", "past"]
)
def test_slow_reply_is_awaited_until_the_timeout(timeout: float, outcome: str) -> None:
    text = doc("plainGoal@27:13")

    async def scenario() -> None:
        async with fake("--slow", "$/lean/plainGoal=1.0") as client:
            client.request_timeout = timeout
            await client.did_open(URI, text)
            pid = client.pid
            if outcome == "answer":
                assert (await client.goal_at(URI, text.index("/- goal"))).is_solved
            else:
                with pytest.raises(LeanServerTimeout, match="no reply"):
                    await client.goal_at(URI, text.index("/- goal"))
                assert client.is_alive and client.pid == pid

    run(scenario())


def test_restart_reopens_documents_at_their_versions(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    text, other = doc("plainGoal@27:13"), doc("plainGoal@40:3")

    async def scenario() -> None:
        async with fake("--crash-on", "textDocument/hover", log=log) as client:
            await client.did_open(URI, doc())
            await client.did_change(URI, text)
            await client.did_open(OTHER_URI, other)
            with pytest.raises(LeanServerDied):
                await client.request("textDocument/hover", {})
            old_pid = client.pid
            await client.restart()
            assert client.is_alive and client.pid != old_pid
            assert (await client.goal_at(URI, text.index("/- goal"))).is_solved
            assert (await client.goal_at(OTHER_URI, other.index("/- goal"))).n_goals == 2
            assert client.documents[URI].version == 2

    run(scenario())
    opens = [
        m["params"]["textDocument"]
        for m in received(log)
        if m.get("method") == "textDocument/didOpen"
    ]
    assert [(o["uri"], o["version"]) for o in opens[-2:]] == [(URI, 2), (OTHER_URI, 1)]
    assert opens[-2]["text"] == text


def test_context_exit_sends_shutdown_then_exit(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"

    async def scenario() -> int:
        async with fake(log=log) as client:
            pid = client.pid
        assert not client.is_alive
        return pid

    pid = run(scenario())
    methods = [m["method"] for m in received(log) if "method" in m]
    assert methods[-2:] == ["shutdown", "exit"]
    assert gone(pid)


def test_cancelled_request_sends_cancel_request(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"

    async def scenario() -> None:
        async with fake("--hang-on", "textDocument/hover", log=log) as client:
            task = asyncio.ensure_future(client.request("textDocument/hover", {}))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.is_alive
            await client.did_open(URI, doc())
            await until(lambda: client.late_replies == 1)  # its RequestCancelled reply

    run(scenario())
    messages = received(log)
    hover = next(m for m in messages if m.get("method") == "textDocument/hover")
    cancel = next(m for m in messages if m.get("method") == "$/cancelRequest")
    assert cancel["params"] == {"id": hover["id"]}


def test_missing_server_command_raises_start_error_with_fix(tmp_path: Path) -> None:
    client = LeanServerClient(tmp_path, [str(tmp_path / "no-such-lake"), "serve"])
    with pytest.raises(LeanServerStartError, match="could not start") as caught:
        run(client.start())
    assert caught.value.fix and "elan" in caught.value.fix
    assert isinstance(caught.value, LeanServerError)


@pytest.mark.lean
def test_real_lake_serve_reports_goal_before_and_after_tactic(tmp_path: Path) -> None:
    source = tmp_path / "Scratch.lean"
    text = "theorem scratch (p : Prop) (hp : p) : p := by\n  exact hp\n"
    source.write_text(text, encoding="utf-8")

    async def scenario() -> None:
        async with LeanServerClient(ROOT / "lean_project") as client:
            await client.did_open(source.as_uri(), text)
            before = await client.plain_goal(source.as_uri(), 1, 2)
            assert before is not None and before.texts() == ["p : Prop\nhp : p\n⊢ p"]
            after = await client.plain_goal(source.as_uri(), 1, 10)
            assert after is not None and after.is_solved

    run(scenario())
