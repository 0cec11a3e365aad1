"""`segpilot serve` over stdio, driven by pygls's LanguageClient, with the real default model
and, where Lean is needed, the fake REPL (tests/fakes). Robustness cases are in
test_lsp_robustness.py; the session's logic in process in test_lsp_session.py."""

from __future__ import annotations

import asyncio
import os

import pytest
from fakes.graphs import plain_command, sorry_command, write_graph
from gguf_files import write_lora
from lsp_harness import FAST_MODEL, fake_lean_options, sidecar
from lsprotocol import types

from segpilot.engine.goals import GoalAt
from segpilot.lean.positions import DocumentPositions
from segpilot.lean.source import proof_site
from segpilot.lsp.documents import DocumentSite
from segpilot.lsp.server import render
from segpilot.model.candidates import Candidate
from segpilot.search.check import Outcome
from segpilot.search.ranking import Checked
from segpilot.search.suggest import Proposal

pytestmark = pytest.mark.slow

NESTED = (
    "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n"
    "  constructor\n"
    "  · \n"
    "  · exact hp\n"
)
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
NO_LEAN = {"replCommand": ["segpilot-no-such-repl"], "leanServerCommand": ["no-such-lake"]}


def run(coroutine):
    return asyncio.run(coroutine)


def test_initialize_advertises_inline_completion_code_actions_and_commands(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, NO_LEAN) as car:
            caps = car.capabilities
            code = await car.stop()
            return caps, code

    caps, code = run(scenario())
    assert caps.inline_completion_provider is not None
    assert caps.code_action_provider is not None
    assert set(caps.execute_command_provider.commands) >= {
        "segpilot.proveTheorem",
        "segpilot.proveFile",
        "segpilot.reloadModel",
        "segpilot.insertSegment",
        "segpilot.suggestionAccepted",
    }
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental
    assert code == 0


def test_without_lean_items_are_indented_for_the_cursor_and_marked_unchecked(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, {**NO_LEAN, **FAST_MODEL}) as car:
            uri = car.open(tmp_path / "Swap.lean", NESTED)
            inside = await car.inline(uri, 2, 4)
            outside = await car.inline(uri, 0, 3)
            status = await car.status()
            await car.stop()
            return inside, outside, status, car.log()

    inside, outside, status, log = run(scenario())
    assert len(outside.items) == 0
    assert inside.items, log
    for item in inside.items:
        assert item.range.start == types.Position(2, 4) and item.range.end == types.Position(2, 4)
        assert all(line.startswith("    ") for line in item.insert_text.split("\n")[1:])
        info = item.command.arguments[0]
        assert item.command.command == "segpilot.suggestionAccepted"
        assert info["checked"] is False and info["outcome"] is None
        assert "unchecked" in item.command.title
    assert status.lean.found is False and status.lean.checking is False
    assert "goal=statement" in log


def test_render_replaces_the_typed_prefix_and_indents_following_lines():
    text = NESTED.replace("  · \n", "  · exa\n")
    site = proof_site(text, 2, 7)
    proposal = Proposal(
        GOAL,
        (
            Checked(Candidate("exact hq\nsimp", ("exact hq", "simp"), -1.0), Outcome("closed")),
            Checked(Candidate("simp", ("simp",), -0.5), None),
            Checked(Candidate("exa", ("exa",), -0.1), None),
        ),
        True,
    )
    found = DocumentSite(text, 1, site, DocumentPositions(text))
    items = render(proposal, found, types.Position(2, 7), 3, "file:///x", GoalAt((GOAL,), "repl"))
    assert [i.insert_text for i in items] == ["exact hq\n    simp"]
    assert items[0].range == types.Range(types.Position(2, 4), types.Position(2, 7))
    assert items[0].command.arguments[0]["outcome"] == "closed"


def test_with_lean_only_checked_suggestions_are_shown(tmp_path):
    """The fake REPL knows no tactic the model may say: Lean rejects every candidate, so
    the answer is an empty list, and the status shows the checks that ran."""
    text = "theorem t (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  \n"
    graph = write_graph(
        tmp_path / "g.json", [sorry_command(text[:-1] + "sorry", GOAL, all_tactics=True)]
    )

    async def scenario():
        async with sidecar(tmp_path, fake_lean_options(graph, **FAST_MODEL)) as car:
            uri = car.open(tmp_path / "T.lean", text)
            answer = await car.inline(uri, 1, 2)
            status = await car.status()
            await car.stop()
            return answer, status, car.log()

    answer, status, log = run(scenario())
    assert len(answer.items) == 0, log
    assert status.lean.checking is True
    assert status.caches.leanStates == 1 and status.caches.leanOutcomes >= 1
    assert "goal=repl(1)" in log


@pytest.mark.parametrize(("trigger", "prefetches"), [("decrease", 1), ("change", 2)])
def test_goal_count_drop_starts_a_prefetch_and_the_next_request_hits_it(
    tmp_path, trigger, prefetches
):
    text = NESTED

    async def scenario():
        options = {**NO_LEAN, **FAST_MODEL, "prefetchTrigger": trigger}
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "Swap.lean", text)
            car.goal_state(uri, 1, 2, [GOAL])
            await car.inline(uri, 1, 2)
            left, right = "case left\nhq : q\n⊢ q", "case right\nhp : p\n⊢ p"
            car.goal_state(uri, 2, 4, [left, right])  # more goals: a prefetch on `change`
            car.goal_state(uri, 2, 4, [left])  # fewer: prefetch the new goal
            await car.wait_for(lambda s: s.stats.prefetches == prefetches, what="prefetches")
            await car.wait_for(lambda s: s.caches.running == 0, what="the prefetch to end")
            before = await car.status()
            await car.inline(uri, 2, 4)
            after = await car.status()
            await car.stop()
            return before, after

    before, after = run(scenario())
    assert after.stats.prefetchHits == before.stats.prefetchHits + 1
    assert after.stats.cacheHits == before.stats.cacheHits + 1


def test_an_edit_cancels_the_running_prefetch(tmp_path):
    async def scenario():
        options = {**NO_LEAN, "k": 4, "maxTokens": 200, "prefetchBudgetS": 60}
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "Swap.lean", NESTED)
            await car.wait_for(lambda s: s.modelLoaded, what="the model to load")
            car.goal_state(uri, 1, 2, [GOAL, GOAL])
            car.goal_state(uri, 2, 4, [GOAL])
            await car.wait_for(lambda s: s.stats.prefetches == 1, what="a prefetch")
            car.change(uri, (2, 4), (2, 4), "e")
            status = await car.wait_for(
                lambda s: s.stats.prefetchesCancelled == 1 and s.caches.running == 0,
                what="the prefetch to stop",
            )
            await car.stop()
            return status

    status = run(scenario())
    assert status.caches.suggestions == 0  # cut short: nothing cached


def test_a_rewritten_adapter_is_reloaded_while_requests_go_on(tmp_path):
    adapter = write_lora(tmp_path / "adapter.gguf")

    async def scenario():
        options = {**NO_LEAN, **FAST_MODEL, "adapterPath": str(adapter)}
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "Swap.lean", NESTED)
            await car.wait_for(lambda s: s.modelLoaded, what="the model to load")
            fresh = write_lora(tmp_path / "adapter.gguf.tmp")
            os.replace(fresh, adapter)
            answered = await car.inline(uri, 2, 4)
            status = await car.wait_for(lambda s: s.stats.reloads >= 1, what="a reload")
            await car.stop()
            return answered, status, car.log()

    answered, status, log = run(scenario())
    assert isinstance(answered, types.InlineCompletionList)
    assert status.adapter == str(adapter)
    assert "rewritten: reloading it" in log


def test_bad_settings_are_refused_whole_and_good_ones_applied(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, NO_LEAN) as car:
            car.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"segpilot": {"maxItems": 0}})
            )
            car.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(
                    settings={"segpilot": {"checking": False, "someFutureKey": 1}}
                )
            )
            await asyncio.sleep(0.5)
            status = await car.status()
            await car.stop()
            return status, car.notifications, car.log()

    status, notes, log = run(scenario())
    assert status.lean.checking is False
    shown = [p.message for _m, p in notes]
    assert any("max_items must be at least 1" in m for m in shown)
    assert "ignoring unknown segpilot settings: someFutureKey" in log


def test_prove_theorem_needs_lean_and_says_so(tmp_path):
    async def scenario():
        async with sidecar(tmp_path, NO_LEAN) as car:
            uri = car.open(tmp_path / "P.lean", "theorem t : True := by\n  sorry\n")
            params = types.ExecuteCommandParams(
                command="segpilot.proveTheorem",
                arguments=[{"uri": uri, "position": {"line": 1, "character": 2}}],
            )
            try:
                await car.request(types.WORKSPACE_EXECUTE_COMMAND, params)
            except Exception as err:
                error = err
            else:
                error = None
            await car.stop()
            return error

    error = run(scenario())
    assert error is not None and "needs Lean" in str(error)


def test_prove_theorem_searches_with_progress_and_reports(tmp_path):
    text = "theorem t (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  sorry\n"
    graph = write_graph(tmp_path / "g.json", [sorry_command(text[:-1], GOAL)])

    async def scenario():
        options = fake_lean_options(graph, **FAST_MODEL, proveExpansions=1)
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "T.lean", text)
            params = types.ExecuteCommandParams(
                command="segpilot.proveTheorem",
                arguments=[{"uri": uri, "position": {"line": 1, "character": 2}}],
            )
            result = await car.request(types.WORKSPACE_EXECUTE_COMMAND, params, timeout=120)
            await car.stop()
            return result, car.progress, car.edits

    result, progress, edits = run(scenario())
    assert (result["holes"], result["proved"], result["applied"]) == (1, 0, False)
    assert result["results"][0]["reason"] in ("exhausted", "budget: expansions")
    assert edits == []
    kinds = [v["kind"] if isinstance(v, dict) else v.kind for v in progress]
    assert kinds[0] == "begin" and kinds[-1] == "end"


def test_prove_file_searches_every_hole_and_reports_each(tmp_path):
    one = "theorem t (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
    two = "theorem u (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
    text = one + "sorry\n\n" + two + "sorry\n"
    graph = write_graph(
        tmp_path / "g.json",
        [
            sorry_command(one + "sorry", GOAL),
            plain_command(one + "sorry\n\n"),
            sorry_command(two + "sorry", GOAL, requires=[one + "sorry\n\n"]),
        ],
    )

    async def scenario():
        options = fake_lean_options(graph, **FAST_MODEL, proveExpansions=1)
        async with sidecar(tmp_path, options) as car:
            uri = car.open(tmp_path / "T.lean", text)
            params = types.ExecuteCommandParams(command="segpilot.proveFile", arguments=[uri])
            result = await car.request(types.WORKSPACE_EXECUTE_COMMAND, params, timeout=180)
            status = await car.status()
            await car.stop()
            return result, status

    result, status = run(scenario())
    assert (result["holes"], result["proved"], result["applied"]) == (2, 0, False)
    assert [(r["line"], r["character"]) for r in result["results"]] == [(1, 2), (4, 2)]
    for found in result["results"]:
        assert found["proved"] is False and found["reason"] in ("exhausted", "budget: expansions")
        assert found["expansions"] >= 1
    assert result["cancelled"] is False and result["changedMeanwhile"] is False
    assert status.errors == []
