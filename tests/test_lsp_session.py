"""The sidecar's session in process, with a scripted policy and the fake REPL over real
pipes: ranking of checked suggestions, the cache, joining a running prefetch, rollout, and
filling a `sorry` by search. The LSP wire is covered by test_lsp_server.py."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes.graphs import plain_command, sorry_command, tactic_edge, write_graph
from lsp_harness import fake_lean_options

from segpilot.lean.source import proof_site
from segpilot.lsp.session import GoalAt, Session
from segpilot.lsp.settings import build_settings, editor_options
from segpilot.model.candidates import Candidate
from segpilot.model.settings import ModelSettings
from segpilot.search.fill import Hole, fill, holes_in
from segpilot.search.prove import SearchBudget

BODY = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
TEXT = BODY + "\n"
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ q"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ p"
PROOF = "constructor\nexact hq\nexact hp"


class ScriptedPolicy:
    """Answers each goal text with fixed candidates, counting the calls."""

    def __init__(self, script: dict[str, list[tuple[str, float]]], delay: float = 0.0) -> None:
        self.script = script
        self.settings = ModelSettings(k=4)
        self.calls: list[str] = []
        self.delay = delay
        self.loaded = None

    def propose(self, state: Any = "", k: int | None = None, *, cancel=None, **_: Any):
        text = state if isinstance(state, str) else state.pretty()
        self.calls.append(text)
        if self.delay and cancel is not None:
            cancel.wait(self.delay)
        return [Candidate(t, tuple(t.split("\n")), lp) for t, lp in self.script.get(text, [])]

    def close(self) -> None:
        pass


def graph(tmp_path: Path) -> Path:
    return write_graph(
        tmp_path / "graph.json",
        [
            sorry_command(BODY + "sorry", GOAL),
            plain_command(BODY + PROOF.replace("\n", "\n  ") + "\n"),
        ],
        [
            tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
            tactic_edge([LEFT, RIGHT], "exact hq", [RIGHT]),
            tactic_edge([RIGHT], "exact hp", []),
            tactic_edge([GOAL], "skip", [GOAL]),
        ],
    )


SCRIPT = {
    GOAL: [
        ("constructor", -0.5),  # best score, but leaves two goals
        ("exact hp", -1.0),  # Lean rejects it (unrecorded: an error)
        (PROOF, -3.0),  # closes everything: ranked first
        ("skip", -0.1),  # changes nothing: dropped
    ],
    f"{LEFT}\n\n{RIGHT}": [("exact hq", -0.2)],
    RIGHT: [("exact hp", -0.1)],
}


def make_session(tmp_path: Path, policy: ScriptedPolicy, **options: Any) -> Session:
    options, unknown = editor_options(fake_lean_options(graph(tmp_path), **options))
    assert not unknown
    settings = build_settings(options, environ={})
    return Session(settings, ModelSettings(), policy_factory=lambda _s: policy)


def run(coroutine):
    return asyncio.run(coroutine)


def test_checked_suggestions_rank_closing_first_then_fewer_goals(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT)
    session = make_session(tmp_path, policy)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = session.project_for(tmp_path / "A.lean")
        goal = await session.goal_at(project, "file:///A.lean", TEXT, site, None)
        first = await session.suggestions(project, site, goal)
        again = await session.suggestions(project, site, goal)
        await session.close()
        return goal, first, again

    goal, first, again = run(scenario())
    assert (goal.source, goal.text, goal.n_goals) == ("repl", GOAL, 1)
    assert first.checked
    assert [i.candidate.text for i in first.items] == [PROOF, "constructor"]
    assert [i.outcome.kind for i in first.items] == ["closed", "progress"]
    assert first.items[1].outcome.goals == (LEFT, RIGHT)
    assert again is first and policy.calls == [GOAL]
    assert session.stats.cache_hits == 1


def test_without_lean_suggestions_are_unchecked_in_model_order(tmp_path: Path) -> None:
    policy = ScriptedPolicy({GOAL: SCRIPT[GOAL]})
    session = make_session(tmp_path, policy, checking=False)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = session.project_for(tmp_path / "A.lean")
        goal = await session.goal_at(project, "file:///A.lean", TEXT, site, None)
        return goal, await session.suggestions(project, site, goal)

    goal, proposal = run(scenario())
    assert goal.source in ("statement", "lake-serve")
    assert not proposal.checked
    assert all(i.outcome is None for i in proposal.items)
    assert [i.candidate.text for i in proposal.items][:2] == ["constructor", "exact hp"]


def test_prefetch_rolls_out_and_a_request_joins_or_hits_it(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT)
    session = make_session(tmp_path, policy, rolloutDepth=3)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = session.project_for(tmp_path / "A.lean")
        goal = await session.goal_at(project, "file:///A.lean", TEXT, site, None)
        job = session.start_prefetch("file:///A.lean", project, site, goal)
        assert job is not None
        answer = await session.suggestions(project, site, goal)
        await job
        split = f"{LEFT}\n\n{RIGHT}"
        ahead = session.cached(session.cache_key(project, site, split, "repl"))
        await session.close()
        return answer, ahead

    answer, ahead = run(scenario())
    assert answer.items[0].candidate.text == PROOF
    assert session.stats.prefetch_hits == 1  # joined the running prefetch, no second call
    # The rollout followed the best checked suggestion that leaves goals ("constructor"
    # ranks after the closing block, so the rollout has nothing to follow): only the
    # first state was prepared, and the model was asked once.
    assert policy.calls == [GOAL]
    assert ahead is None


def test_an_edit_cancels_the_documents_prefetch(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT, delay=30.0)
    session = make_session(tmp_path, policy)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = session.project_for(tmp_path / "A.lean")
        goal = GoalAt(GOAL, 1, "client")
        job = session.start_prefetch("file:///A.lean", project, site, goal)
        await asyncio.sleep(0.1)
        session.document_changed("file:///A.lean")
        proposal = await asyncio.wait_for(job, 10)
        await session.close()
        return proposal

    proposal = run(scenario())
    assert not proposal.complete
    assert session.stats.prefetches_cancelled == 1
    assert not session.cache


def test_fill_proves_a_sorry_and_rechecks_the_declaration(tmp_path: Path) -> None:
    policy = ScriptedPolicy(
        {GOAL: [("constructor", -0.5)], **{k: v for k, v in SCRIPT.items() if k != GOAL}}
    )
    session = make_session(tmp_path, policy)
    text = BODY + "sorry\n"
    project = session.project_for(tmp_path / "A.lean")
    checker = session.checker(project)
    assert checker is not None
    assert holes_in(text) == [Hole(1, 2)] == holes_in(text, 0)
    filled = fill(policy, checker, text, Hole(1, 2), SearchBudget(wall_s=30, expansions=5))
    checker.close()
    assert filled.proved, filled.message
    assert filled.replacement == "constructor\n  exact hq\n  exact hp"
    assert filled.result is not None and filled.result.reason == "proved"


def test_fill_reports_a_search_that_finds_nothing(tmp_path: Path) -> None:
    policy = ScriptedPolicy({GOAL: [("skip", -0.1)]})
    session = make_session(tmp_path, policy)
    checker = session.checker(session.project_for(tmp_path / "A.lean"))
    assert checker is not None
    cancel = threading.Event()
    filled = fill(
        policy, checker, BODY + "sorry\n", Hole(1, 2), SearchBudget(expansions=2), cancel=cancel
    )
    checker.close()
    assert not filled.proved
    assert filled.message.startswith("no proof found")


@pytest.mark.parametrize(
    ("text", "line", "holes"),
    [
        ("theorem a : p := by\n  sorry\n\ntheorem b : q := by\n  sorry\n", 0, [Hole(1, 2)]),
        ("theorem a : p := by\n  sorry\n\ntheorem b : q := by\n  sorry\n", 4, [Hole(4, 2)]),
        (
            "theorem a : p := by\n  sorry\n\ntheorem b : q := by\n  sorry\n",
            None,
            [Hole(1, 2), Hole(4, 2)],
        ),
    ],
)
def test_holes_of_a_theorem_or_of_the_file(text: str, line: int | None, holes: list[Hole]) -> None:
    assert holes_in(text, line) == holes


def test_prefetch_follows_the_best_checked_suggestion_ahead(tmp_path: Path) -> None:
    script = {**SCRIPT, GOAL: [("constructor", -0.5)]}
    policy = ScriptedPolicy(script)
    session = make_session(tmp_path, policy, rolloutDepth=3)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = session.project_for(tmp_path / "A.lean")
        goal = await session.goal_at(project, "file:///A.lean", TEXT, site, None)
        await session.start_prefetch("file:///A.lean", project, site, goal)
        keys = [session.cache_key(project, site, g, "repl") for g in (f"{LEFT}\n\n{RIGHT}", RIGHT)]
        ahead = [session.cached(k) for k in keys]
        await session.close()
        return ahead

    split, last = run(scenario())
    assert policy.calls == [GOAL, f"{LEFT}\n\n{RIGHT}", RIGHT]
    assert split.items[0].candidate.text == "exact hq" and split.items[0].outcome.goals == (RIGHT,)
    assert last.items[0].outcome.kind == "closed"


def test_readme_settings_table_is_the_generated_one() -> None:
    from conftest import ROOT

    from segpilot.lsp.settings import settings_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- generated by segpilot.lsp.settings.settings_table()")
    block = readme[readme.index("\n", start) + 1 : readme.index("<!-- end of generated table")]
    assert block.strip() == settings_table()
