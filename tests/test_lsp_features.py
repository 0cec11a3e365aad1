"""A happy path for every capability and command `segpilot serve` advertises, over stdio
with the real default model: each asserts a successful, well-formed result. (With Lean
checking, through the fake REPL: test_lsp_checked.py.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lsp_harness import FAST_MODEL, sidecar
from lsprotocol import types

pytestmark = pytest.mark.slow

NO_LEAN = {"replCommand": ["segpilot-no-such-repl"], "leanServerCommand": ["no-such-lake"]}
# Enough samples that the default model offers blocks here (seeded: always the same ones).
OFFERS = {"k": 8, "maxTokens": 24}
HOLE = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  sorry\n"


def run(coroutine):
    return asyncio.run(coroutine)


def execute(command: str, *arguments: Any) -> types.ExecuteCommandParams:
    return types.ExecuteCommandParams(command=command, arguments=list(arguments))


def at(uri: str, line: int, character: int) -> dict[str, Any]:
    return {"uri": uri, "position": {"line": line, "character": character}}


def test_code_actions_are_well_formed_and_their_command_runs(tmp_path):
    options = {**NO_LEAN, **OFFERS}

    async def scenario():
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "H.lean", HOLE)
            params = types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri),
                range=types.Range(types.Position(1, 2), types.Position(1, 2)),
                context=types.CodeActionContext(diagnostics=[]),
            )
            actions = await car.raw_request(types.TEXT_DOCUMENT_CODE_ACTION, params)
            insert = next(a for a in actions if a["title"] == "segpilot: Insert segment")
            result = await car.request(
                types.WORKSPACE_EXECUTE_COMMAND,
                execute(insert["command"]["command"], *insert["command"]["arguments"]),
                timeout=120,
            )
            outside = await car.raw_request(
                types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionParams(
                    text_document=types.TextDocumentIdentifier(uri),
                    range=types.Range(types.Position(0, 3), types.Position(0, 3)),
                    context=types.CodeActionContext(diagnostics=[]),
                ),
            )
            status = await car.status()
            await car.stop()
            return actions, result, outside, car.edits, status

    actions, result, outside, edits, status = run(scenario())
    titles = [a["title"] for a in actions]
    assert titles == ["segpilot: Insert segment", "segpilot: Complete this proof (search)"]
    uri = actions[0]["command"]["arguments"][0]["uri"]
    commands = [a["command"] for a in actions]
    assert [c["command"] for c in commands] == ["segpilot.insertSegment", "segpilot.proveTheorem"]
    for action, command in zip(actions, commands, strict=True):
        assert action["kind"] == "refactor.rewrite"
        assert isinstance(command["title"], str) and command["title"]
        assert command["arguments"] == [at(uri, 1, 2)]
        assert set(command) == {"title", "command", "arguments"}
    assert "disabled" not in actions[0]
    assert "needs Lean" in actions[1]["disabled"]["reason"]
    assert outside is None
    assert result["inserted"] is True and result["checked"] is False
    (edit,) = edits
    change = edit.edit.document_changes[0]
    assert change.text_document.version == 1
    (text_edit,) = change.edits
    # Unchecked, so it cannot close the goal: it goes before the sorry, which keeps a line.
    assert text_edit.range.start == text_edit.range.end == types.Position(1, 2)
    assert text_edit.new_text == result["text"] and text_edit.new_text.endswith("\n  ")
    assert status.stats.requests.code_action == 2
    assert status.stats.requests.insert_segment == 1
    assert status.errors == []


def test_reload_model_answers_the_status_with_the_model_loaded(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL}) as car:
            before = await car.status()
            after = await car.request(
                types.WORKSPACE_EXECUTE_COMMAND, execute("segpilot.reloadModel"), timeout=120
            )
            await car.stop()
            return before, after

    before, after = run(scenario())
    assert after["modelLoaded"] is True and after["model"].endswith(".gguf")
    assert after["stats"]["reloads"] == before.stats.reloads + 1


def test_status_reports_model_lean_caches_and_counts(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL}) as car:
            uri = car.open(tmp_path / "H.lean", HOLE)
            await car.inline(uri, 1, 2)
            status = await car.status()
            await car.stop()
            return status

    status = run(scenario())
    assert status.preset == "segment"
    assert status.lean.found is False and status.lean.checking is False
    assert status.lean.replCommand == ["segpilot-no-such-repl"]
    assert status.caches.suggestions == 1
    assert status.stats.requests.inline_completion == 1
    assert status.stats.requests.status == 1
    assert status.errors == []


def test_did_change_configuration_applies_a_good_change(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL}) as car:
            uri = car.open(tmp_path / "H.lean", HOLE)
            car.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(
                    settings={"segpilot": {**NO_LEAN, **OFFERS, "maxItems": 1}}
                )
            )
            # The new model settings load in the background: ask once they are in.
            await car.wait_for(lambda s: s.stats.reloads >= 1, what="the model reloaded")
            items = await car.inline(uri, 1, 2)
            await car.stop()
            return items, car.log()

    items, log = run(scenario())
    assert len(items.items) == 1, log
    assert "settings applied" in log


def test_suggestion_accepted_with_goals_left_starts_a_prefetch(tmp_path):
    text = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  constructor\n  \n"

    async def scenario():
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL}) as car:
            uri = car.open(tmp_path / "A.lean", text)
            info = {
                "uri": uri,
                "goalsBefore": 2,
                "goalsAfter": ["p q : Prop\nhp : p\nhq : q\n⊢ q"],
                "position": {"line": 2, "character": 2},
            }
            answer = await car.request(
                types.WORKSPACE_EXECUTE_COMMAND, execute("segpilot.suggestionAccepted", info)
            )
            status = await car.wait_for(lambda s: s.stats.prefetches >= 1, what="a prefetch")
            await car.stop()
            return answer, status

    answer, status = run(scenario())
    assert answer is None
    assert status.stats.prefetches == 1 and status.errors == []
