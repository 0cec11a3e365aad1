"""Best-first proof search with goal-aware rollout, on the fake REPL and a scripted policy."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakes.graphs import plain_command, sorry_command, tactic_edge, write_graph
from test_search_check import (
    BODY,
    GOAL,
    HEADER,
    LEFT,
    RIGHT,
    and_swap_graph,
    fake_repl,
    root_state,
)

from segpilot.model.candidates import Candidate
from segpilot.search.check import LeanChecker, LeanState, Outcome
from segpilot.search.prove import SearchBudget, best_first
from segpilot.search.ranking import Checked
from segpilot.search.rollout import Trigger, rollout

TWO = f"{LEFT}\n\n{RIGHT}"
RIGHT_HAVE = "case right\np q : Prop\nhp : p\nhq : q\nhp' : p\n⊢ p"
GOAL_HAVE = "p q : Prop\nhp : p\nhq : q\nhp' : p\n⊢ q ∧ p"
EXTRA_EDGES = [
    tactic_edge([GOAL], "apply And.intro", [LEFT, RIGHT]),
    tactic_edge([GOAL], "have hp' := hp", [GOAL_HAVE]),
    tactic_edge([GOAL_HAVE], "exact ⟨hq, hp'⟩", []),
    tactic_edge([RIGHT], "skip", [RIGHT]),
    tactic_edge([RIGHT], "have hp' := hp", [RIGHT_HAVE]),
    tactic_edge([RIGHT_HAVE], "exact hp'", []),
]
# Three steps: `constructor` (1 goal -> 2), `exact hq` (2 -> 1), `exact hp` (1 -> 0);
# wrong candidates are refused by Lean (the fake answers "unknown tactic").
THREE_STEPS = {
    GOAL: [("exact hp", -0.5), ("constructor", -1.0)],
    TWO: [("exact hp", -0.2), ("exact hq", -0.3)],
    RIGHT: [("exact hp", -0.1)],
}


class ScriptedPolicy:
    """Proposes the scripted (block, logprob) list for a goal text, and records each state."""

    def __init__(self, script: Mapping[str, Sequence[tuple[str, float]]]) -> None:
        self.script = script
        self.calls: list[Any] = []

    def propose(
        self, state: Any, k: int, *, cancel: threading.Event | None = None
    ) -> list[Candidate]:
        self.calls.append(state)
        text = state if isinstance(state, str) else state.pretty()
        return [Candidate(b, tuple(b.split("\n")), lp) for b, lp in self.script.get(text, [])][:k]

    def texts(self) -> list[str]:
        return [s if isinstance(s, str) else s.pretty() for s in self.calls]


@pytest.fixture
def checker(tmp_path: Path) -> Iterator[LeanChecker]:
    graph = and_swap_graph(tmp_path / "graph.json", EXTRA_EDGES)
    with fake_repl(tmp_path, graph) as repl:
        yield LeanChecker(repl)


@pytest.fixture
def root(checker: LeanChecker) -> LeanState:
    return root_state(checker)


def two_goals(checker: LeanChecker, root: LeanState) -> LeanState:
    split = checker.check(root, "constructor")
    assert split.proof_state is not None
    return LeanState(split.proof_state, split.goals, root.env)


def test_best_first_proves_a_three_step_theorem(checker: LeanChecker, root: LeanState) -> None:
    progress: list[tuple[int, int, float]] = []
    result = best_first(
        ScriptedPolicy(THREE_STEPS),
        checker,
        root,
        SearchBudget(rollout=False),
        on_progress=lambda *args: progress.append(args),
    )
    assert (result.reason, result.proof) == ("proved", ("constructor", "exact hq", "exact hp"))
    assert result.proof_text() == "constructor\nexact hq\nexact hp"
    assert (result.expansions, result.lean_calls) == (3, 5)
    assert [(done, most) for done, most, _ in progress] == [(1, 100), (2, 100), (3, 100)]
    elapsed = [seconds for *_, seconds in progress]
    assert elapsed == sorted(elapsed) and elapsed[-1] <= result.elapsed_s
    declaration = BODY + result.proof_text().replace("\n", "\n  ")
    assert checker.final_check(HEADER, declaration) == ""


def test_cached_results_cost_no_lean_calls(checker: LeanChecker, root: LeanState) -> None:
    policy = ScriptedPolicy(THREE_STEPS)
    assert best_first(policy, checker, root, SearchBudget(rollout=False)).lean_calls == 5
    again = best_first(policy, checker, root, SearchBudget(rollout=False, lean_calls=1))
    assert (again.reason, again.lean_calls) == ("proved", 0)


@pytest.mark.parametrize(
    ("rollout", "depth", "reason"),
    [
        (False, 4, "budget: expansions"),
        (True, 1, "budget: expansions"),  # one greedy step reaches RIGHT_HAVE, not the end
        (True, 2, "proved"),
    ],
)
def test_rollout_finds_a_proof_the_expansion_budget_alone_would_not(
    checker: LeanChecker, root: LeanState, rollout: bool, depth: int, reason: str
) -> None:
    script = {
        TWO: [("exact hq", -1.0)],  # 2 goals -> 1: the rollout starts from here
        RIGHT: [("have hp' := hp", -1.0)],  # 1 -> 1: it goes on
        RIGHT_HAVE: [("exact hp'", -1.0)],
    }
    budget = SearchBudget(expansions=1, rollout=rollout, rollout_depth=depth)
    result = best_first(ScriptedPolicy(script), checker, two_goals(checker, root), budget)
    assert (result.reason, result.expansions) == (reason, 1)
    if reason == "proved":
        assert result.proof == ("exact hq", "have hp' := hp", "exact hp'")


def test_rollout_takes_the_first_step_lean_accepts(checker: LeanChecker, root: LeanState) -> None:
    script = {
        TWO: [("exact hq", -1.0)],
        # The model's favourite fails in Lean, and `skip` changes nothing.
        RIGHT: [("exact hq", -0.1), ("skip", -0.2), ("have hp' := hp", -3.0)],
        RIGHT_HAVE: [("exact hp'", -1.0)],
    }
    budget = SearchBudget(expansions=1)
    result = best_first(ScriptedPolicy(script), checker, two_goals(checker, root), budget)
    assert result.proof == ("exact hq", "have hp' := hp", "exact hp'")
    assert result.lean_calls == 5  # 1 expansion + 3 on RIGHT + 1 on RIGHT_HAVE


def test_a_rollout_step_stops_checking_at_the_first_accepted_block(
    checker: LeanChecker, root: LeanState
) -> None:
    """Greedy: the favourite that Lean accepts is played even when a later candidate would
    close the goal; that candidate is checked only if the state is expanded."""
    script = {
        TWO: [("exact hq", -1.0)],
        RIGHT: [("have hp' := hp", -0.1), ("exact hp", -0.2)],
        RIGHT_HAVE: [("exact hp'", -1.0)],
    }
    policy = ScriptedPolicy(script)
    budget = SearchBudget(expansions=1)
    result = best_first(policy, checker, two_goals(checker, root), budget)
    assert result.proof == ("exact hq", "have hp' := hp", "exact hp'")
    assert result.lean_calls == 3  # `exact hp` on RIGHT was never checked
    assert checker.cached(LeanState(0, (RIGHT,), root.env), "exact hp") is None


@pytest.mark.parametrize(
    ("trigger", "proposed"), [("decrease", [GOAL]), ("change", [GOAL, TWO, RIGHT])]
)
def test_change_trigger_rolls_out_when_goals_grow_and_goes_on_through_each_change(
    checker: LeanChecker, root: LeanState, trigger: str, proposed: list[str]
) -> None:
    policy = ScriptedPolicy({GOAL: [("constructor", -1.0)], TWO: [("exact hq", -1.0)]})
    budget = SearchBudget(expansions=1, trigger=trigger)  # type: ignore[arg-type]
    result = best_first(policy, checker, root, budget)
    assert result.reason == "budget: expansions"
    # `change`: the rollout from TWO went on after `exact hq` (2 -> 1 goals, a change that
    # meets the trigger) and asked at RIGHT, where the policy has nothing.
    assert policy.texts() == proposed


def _walk(counts: list[int]) -> tuple[LeanState, Callable[[LeanState], Checked]]:
    """A start state with counts[0] goals and a move function that leads, move by move,
    through states with counts[1], counts[2], ... goals (proof states 0, 1, 2, ...)."""

    def state(i: int) -> LeanState:
        return LeanState(i, tuple(f"⊢ g{j}" for j in range(counts[i])), None)

    def move(at: LeanState) -> Checked:
        after = state(at.proof_state + 1)
        outcome = Outcome("progress", after.goals, after.proof_state)
        return Checked(Candidate(f"t{at.proof_state}", (f"t{at.proof_state}",), -1.0), outcome)

    return state(0), move


@pytest.mark.parametrize(
    ("retrigger", "made"),
    [
        (None, 1),  # stops after the first count change
        ("decrease", 2),  # 3 -> 2 meets the trigger and goes on; 2 -> 3 does not
        ("change", 4),  # every change meets it: only H = 4 stops it
    ],
)
def test_a_rollout_goes_on_through_the_count_changes_that_meet_the_trigger(
    retrigger: Trigger | None, made: int
) -> None:
    start, move = _walk([3, 2, 3, 3, 2, 1, 2])
    moves = rollout(start, move, 4, retrigger=retrigger)
    assert [played.proof_state for played, _ in moves] == list(range(made))


@pytest.mark.parametrize(
    ("budget", "script", "reason", "expansions", "lean_calls"),
    [
        (SearchBudget(wall_s=0.0), THREE_STEPS, "budget: wall", 0, 0),
        (SearchBudget(expansions=1, rollout=False), THREE_STEPS, "budget: expansions", 1, 2),
        (SearchBudget(lean_calls=1), THREE_STEPS, "budget: lean calls", 1, 1),
        (SearchBudget(), {GOAL: [("skip", -1.0), ("frobnicate", -2.0)]}, "exhausted", 1, 2),
    ],
)
def test_search_ends_with_the_reason_it_stopped(
    checker: LeanChecker,
    root: LeanState,
    budget: SearchBudget,
    script: dict[str, list[tuple[str, float]]],
    reason: str,
    expansions: int,
    lean_calls: int,
) -> None:
    result = best_first(ScriptedPolicy(script), checker, root, budget)
    assert (result.reason, result.expansions, result.lean_calls) == (reason, expansions, lean_calls)
    assert result.proof is None and result.proof_text() == ""


def test_cancel_ends_the_search(checker: LeanChecker, root: LeanState) -> None:
    cancel = threading.Event()
    cancel.set()
    policy = ScriptedPolicy(THREE_STEPS)
    before = best_first(policy, checker, root, SearchBudget(), cancel=cancel)
    assert (before.reason, before.expansions, policy.calls) == ("cancelled", 0, [])

    cancel.clear()
    during = best_first(
        policy,
        checker,
        root,
        SearchBudget(rollout=False),
        cancel=cancel,
        on_progress=lambda *args: cancel.set(),
    )
    assert (during.reason, during.expansions) == ("cancelled", 1)


def test_states_are_deduplicated_by_goal_text(checker: LeanChecker, root: LeanState) -> None:
    # Two blocks reach the same two goals; RIGHT is a dead end, so the search runs dry.
    script = {GOAL: [("constructor", -1.0), ("apply And.intro", -2.0)], TWO: [("exact hq", -1.0)]}
    policy = ScriptedPolicy(script)
    result = best_first(policy, checker, root, SearchBudget(rollout=False))
    assert (result.reason, result.expansions) == ("exhausted", 3)
    assert policy.texts() == [GOAL, TWO, RIGHT]


@pytest.mark.parametrize(
    ("split", "first_goal", "have", "proof"),
    [
        (-0.1, -1.0, -3.0, ("constructor", "exact hq", "exact hp")),
        (-2.0, -1.0, -0.5, ("have hp' := hp", "exact ⟨hq, hp'⟩")),
        # `constructor` is likelier alone, but its path is not: the sum decides.
        (-0.1, -4.0, -3.0, ("have hp' := hp", "exact ⟨hq, hp'⟩")),
    ],
)
def test_best_first_expands_the_likeliest_path_first(
    checker: LeanChecker,
    root: LeanState,
    split: float,
    first_goal: float,
    have: float,
    proof: tuple[str, ...],
) -> None:
    script = {
        GOAL: [("constructor", split), ("have hp' := hp", have)],
        TWO: [("exact hq", first_goal)],
        RIGHT: [("exact hp", -1.0)],
        GOAL_HAVE: [("exact ⟨hq, hp'⟩", -1.0)],
    }
    result = best_first(ScriptedPolicy(script), checker, root, SearchBudget(rollout=False))
    assert result.proof == proof


def test_a_block_that_hangs_lean_is_skipped(tmp_path: Path) -> None:
    graph = and_swap_graph(tmp_path / "graph.json")
    with fake_repl(tmp_path, graph, timeout_s=2.0) as repl:
        checker = LeanChecker(repl)
        root = root_state(checker)
        script = {**THREE_STEPS, GOAL: [("fake:hang", -0.1), ("constructor", -1.0)]}
        result = best_first(ScriptedPolicy(script), checker, root, SearchBudget(rollout=False))
        assert result.proof == ("constructor", "exact hq", "exact hp")
        assert result.lean_calls == 5  # the hung block counts
        assert checker.cached(root, "fake:hang") is None
        assert repl.restarts == 1


def test_goal_text_the_parser_does_not_know_reaches_the_policy_as_text(tmp_path: Path) -> None:
    odd = "a goal printed in a way our parser does not know"
    graph = write_graph(
        tmp_path / "graph.json",
        [
            plain_command(HEADER),
            sorry_command(BODY + "sorry", odd, requires=[HEADER], all_tactics=True),
        ],
    )
    with fake_repl(tmp_path, graph) as repl:
        checker = LeanChecker(repl)
        policy = ScriptedPolicy({})
        result = best_first(policy, checker, root_state(checker), SearchBudget())
    assert (result.reason, policy.calls) == ("exhausted", [odd])


@pytest.mark.parametrize(
    "bad", [{"trigger": "always"}, {"k": 0}, {"expansions": 0}, {"wall_s": -1.0}]
)
def test_search_budget_refuses_bad_values(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SearchBudget(**bad)
