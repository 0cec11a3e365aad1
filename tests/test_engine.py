"""The engine in process, with a scripted policy and the fake REPL over real pipes: goals at a
cursor (every open goal), ranking of checked suggestions, the cache, joining a running
prefetch, the prefetch's goal-aware rollout, cancellation, and filling a `sorry` by search.
The LSP wire is covered by test_lsp_server.py and test_lsp_features.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakes.graphs import plain_command, sorry_command, tactic_edge, write_graph
from lsp_harness import fake_lean_options

from segpilot.engine.goals import GoalAt
from segpilot.engine.service import Engine
from segpilot.engine.settings import editor_overrides, load_settings
from segpilot.lean.source import proof_site
from segpilot.model.candidates import Candidate
from segpilot.model.policy import Proposed
from segpilot.model.settings import ModelSettings
from segpilot.search.fill import Hole, holes_in

BODY = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
TEXT = BODY + "\n"
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ q"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ p"
SPLIT = f"{LEFT}\n\n{RIGHT}"
PROOF = "constructor\nexact hq\nexact hp"
AFTER_CONSTRUCTOR = BODY + "constructor\n  "


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

    def propose_batch(self, state: Any = "", k: int | None = None, *, cancel=None, **_: Any):
        found = self.propose(state, k, cancel=cancel)
        stopped = cancel is not None and cancel.is_set()
        return Proposed(tuple(found), interrupted=stopped, reason="cancelled" if stopped else "")

    def close(self) -> None:
        pass


def graph(tmp_path: Path) -> Path:
    return write_graph(
        tmp_path / "graph.json",
        [
            sorry_command(BODY + "sorry", GOAL, all_tactics=True),
            sorry_command(BODY + "sorry", GOAL),  # the hole's own state, for proof search
            sorry_command(
                AFTER_CONSTRUCTOR + "sorry",
                [LEFT, RIGHT],
                all_tactics=True,
                goals_before={"constructor": GOAL},
            ),
            plain_command(BODY + PROOF.replace("\n", "\n  ") + "\n"),
        ],
        [
            tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
            tactic_edge([LEFT], "exact hq", []),
            tactic_edge([RIGHT], "exact hp", []),
        ],
    )


SCRIPT = {
    GOAL: [
        ("constructor", -0.5),  # best score, but leaves two goals
        ("exact hp", -1.0),  # Lean rejects it (unrecorded: an error)
        (PROOF, -3.0),  # closes everything: ranked first
        ("skip", -0.1),  # changes nothing: dropped
    ],
    SPLIT: [("exact hq", -0.2), ("case right => exact hp", -0.4)],
    RIGHT: [("exact hp", -0.1)],
}


def make_engine(tmp_path: Path, policy: ScriptedPolicy, **options: Any) -> Engine:
    overrides, unknown = editor_overrides(fake_lean_options(graph(tmp_path), **options))
    assert not unknown
    settings = load_settings({}, overrides, environ={})
    engine = Engine(settings, policy_factory=lambda _s: policy)  # type: ignore[arg-type,return-value]
    engine.projects.workspace_root = tmp_path
    return engine


def run(coroutine):
    return asyncio.run(coroutine)


def test_goals_after_constructor_are_both_goals_from_the_repl(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, ScriptedPolicy(SCRIPT))
    text = AFTER_CONSTRUCTOR + "\n"
    site = proof_site(text, 2, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", text, site)
        await engine.close()
        return goal

    goal = run(scenario())
    assert (goal.source, goal.count, goal.goals) == ("repl", 2, (LEFT, RIGHT))
    assert goal.to_json() == {"source": "repl", "count": 2, "goals": [LEFT, RIGHT]}


def test_candidates_for_several_goals_are_checked_against_all_of_them(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, ScriptedPolicy(SCRIPT))
    text = AFTER_CONSTRUCTOR + "\n"
    site = proof_site(text, 2, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", text, site)
        proposal = await engine.suggestions(project, site, goal)
        await engine.close()
        return proposal

    proposal = run(scenario())
    kinds = {i.candidate.text: (i.outcome.kind, i.outcome.goals) for i in proposal.items}
    # `exact hq` closes the main goal only: one goal is left, not "closes every goal".
    assert kinds["exact hq"] == ("progress", (RIGHT,))
    assert kinds["case right => exact hp"] == ("progress", (LEFT,))


def test_checked_suggestions_rank_closing_first_then_fewer_goals(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT)
    engine = make_engine(tmp_path, policy)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        first = await engine.suggestions(project, site, goal)
        again = await engine.suggestions(project, site, goal)
        await engine.close()
        return goal, first, again

    goal, first, again = run(scenario())
    assert (goal.source, goal.text, goal.count) == ("repl", GOAL, 1)
    assert first.checked
    assert [i.candidate.text for i in first.items] == [PROOF, "constructor"]
    assert [i.outcome.kind for i in first.items] == ["closed", "progress"]
    assert first.items[1].outcome.goals == (LEFT, RIGHT)
    assert again is first and policy.calls == [GOAL]
    assert engine.stats.cache_hits == 1


def test_a_failed_segment_is_shown_as_its_longest_prefix_lean_accepts(tmp_path: Path) -> None:
    script = {
        GOAL: [
            ("constructor\nexact hp", -1.0),  # `exact hp` fails on `q`: `constructor` stays
            ("exact hp\nconstructor", -2.0),  # its first tactic fails: nothing stays
            ("constructor\nexact hq\nexact hq", -3.0),  # the last `exact hq` finds no goal
            ("constructor\nexact hp\nexact hq", -4.0),  # the first one's prefix again: once
        ]
    }
    engine = make_engine(tmp_path, ScriptedPolicy(script))
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        proposal = await engine.suggestions(project, site, goal)
        await engine.close()
        return proposal

    proposal = run(scenario())
    items = [(i.candidate.tactics, i.outcome.kind, i.outcome.goals) for i in proposal.items]
    assert items == [
        (("constructor", "exact hq"), "progress", (RIGHT,)),
        (("constructor",), "progress", (LEFT, RIGHT)),
    ]
    assert [i.candidate.text for i in proposal.items] == ["constructor\nexact hq", "constructor"]


def test_without_lean_suggestions_are_unchecked_in_model_order(tmp_path: Path) -> None:
    policy = ScriptedPolicy({GOAL: SCRIPT[GOAL]})
    engine = make_engine(tmp_path, policy, checking=False)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        return goal, await engine.suggestions(project, site, goal)

    goal, proposal = run(scenario())
    assert goal.source in ("statement", "lake-serve")
    assert not proposal.checked and "checking is off" in proposal.lean_error
    assert all(i.outcome is None for i in proposal.items)
    assert [i.candidate.text for i in proposal.items][:2] == ["constructor", "exact hp"]


def test_prefetch_runs_and_a_request_joins_it(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT)
    engine = make_engine(tmp_path, policy, rolloutDepth=3)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        job = engine.start_prefetch("file:///A.lean", project, site, goal)
        assert job is not None
        answer = await engine.suggestions(project, site, goal)
        await job
        await engine.close()
        return answer

    answer = run(scenario())
    assert answer.items[0].candidate.text == PROOF
    assert engine.stats.prefetch_hits == 1  # joined the running prefetch, no second call
    # The rollout follows the best checked move; the closing block is the best one, so
    # there is no state ahead to prepare and the model was asked once.
    assert policy.calls == [GOAL]


def test_prefetch_rollout_prepares_the_state_after_the_next_count_change(tmp_path: Path) -> None:
    policy = ScriptedPolicy({**SCRIPT, GOAL: [("constructor", -0.5)]})
    engine = make_engine(tmp_path, policy, rolloutDepth=3)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        await engine.start_prefetch("file:///A.lean", project, site, goal)
        split = engine.cached(engine.cache_key(project, site, SPLIT, "repl"))
        await engine.close()
        return split

    split = run(scenario())
    # constructor moves the count 1 -> 2: the rollout prepares that state and stops there
    # (DESIGN.md: stop at the next goal-count change), so RIGHT is not asked for.
    assert policy.calls == [GOAL, SPLIT]
    assert split is not None and split.items[0].candidate.text == "exact hq"
    assert split.items[0].outcome.goals == (RIGHT,)
    assert engine.stats.prefetches == 1


def test_cancelling_a_prefetch_leaves_nothing_cached(tmp_path: Path) -> None:
    policy = ScriptedPolicy(SCRIPT, delay=30.0)
    engine = make_engine(tmp_path, policy)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        job = engine.start_prefetch("file:///A.lean", project, site, GoalAt((GOAL,), "client"))
        assert job is not None
        await asyncio.sleep(0.1)
        engine.cancel_prefetch("file:///A.lean")
        proposal = await asyncio.wait_for(job, 10)
        await engine.close()
        return proposal

    proposal = run(scenario())
    assert not proposal.complete
    assert engine.stats.prefetches_cancelled == 1
    assert not len(engine.cache)


def test_fill_holes_proves_a_sorry_and_rechecks_the_declaration(tmp_path: Path) -> None:
    policy = ScriptedPolicy(
        {GOAL: [("constructor", -0.5)], **{k: v for k, v in SCRIPT.items() if k != GOAL}}
    )
    engine = make_engine(tmp_path, policy, proveBudgetS=30, proveExpansions=5)
    text = BODY + "sorry\n"
    assert holes_in(text) == [Hole(1, 2)] == holes_in(text, 0)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        seen: list[tuple[int, int, int, int]] = []
        found = await engine.fill_holes(
            project,
            text,
            holes_in(text),
            cancel=__import__("threading").Event(),
            on_progress=lambda *a: seen.append(a),
        )
        await engine.close()
        return found, seen

    (filled,), seen = run(scenario())
    assert filled.proved, filled.message
    assert filled.replacement == "constructor\n  exact hq\n  exact hp"
    assert filled.result is not None and filled.result.reason == "proved"
    assert seen[0] == (0, 1, 0, 5)


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


def test_a_proposal_cut_short_by_the_model_budget_is_not_cached(tmp_path: Path) -> None:
    class Interrupted(ScriptedPolicy):
        def propose_batch(self, state: Any = "", k: int | None = None, **kw: Any):
            found = self.propose(state, k)
            return Proposed(tuple(found), interrupted=True, reason="budget")

    policy = Interrupted(SCRIPT)
    engine = make_engine(tmp_path, policy, checking=False)
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        goal = GoalAt((GOAL,), "client")
        first = await engine.suggestions(project, site, goal)
        await engine.suggestions(project, site, goal)
        await engine.close()
        return first

    first = run(scenario())
    assert first.items and not first.complete
    assert policy.calls == [GOAL, GOAL]  # asked again: the cut-short answer was not kept
    assert not len(engine.cache)


def test_a_configured_repl_that_does_not_start_is_not_lean_found(tmp_path: Path) -> None:
    broken = tmp_path / "repl"
    broken.write_text("#!/no/such/interpreter\n")
    broken.chmod(0o755)
    settings = load_settings({}, {"lean": {"repl_command": [str(broken)]}}, environ={})
    engine = Engine(settings, policy_factory=lambda _s: ScriptedPolicy(SCRIPT))  # type: ignore[arg-type,return-value]
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        assert engine.checking(project)  # the program is there: it is tried
        goal = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        return project, goal

    project, goal = run(scenario())
    assert goal.source == "statement" and "cannot start" in goal.lean_error
    assert not engine.checking(project)
    assert "does not start" in engine.unchecked_reason(project)
    assert any("does not start" in e for e in engine.stats.errors)


def test_a_configured_repl_that_exits_before_answering_is_not_lean_found(tmp_path: Path) -> None:
    command = ["sh", "-c", "echo 'error: unknown executable repl' >&2; exit 1"]
    settings = load_settings({}, {"lean": {"repl_command": command}}, environ={})
    engine = Engine(settings, policy_factory=lambda _s: ScriptedPolicy(SCRIPT))  # type: ignore[arg-type,return-value]
    site = proof_site(TEXT, 1, 2)

    async def scenario():
        project = engine.project_for(tmp_path / "A.lean")
        first = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        second = await engine.goal_at(project, "file:///A.lean", TEXT, site)
        return project, first, second

    project, first, second = run(scenario())
    assert first.source == second.source == "statement"
    assert "unknown executable repl" in first.lean_error
    assert not engine.checking(project)  # not tried again on every keystroke
    assert second.lean_error == ""
