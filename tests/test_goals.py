"""The goal parser on every real goal Lean printed in the fixtures (and in ../shared/data), and
on hand-written cases for the shapes the real files do not cover."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES

from segpilot.lean.goals import (
    Goal,
    GoalParseError,
    GoalState,
    Hypothesis,
    parse_goal,
    parse_goals,
    parse_plain_goal,
    parse_state,
)

# --- reading the real files -------------------------------------------------------------


def responses(path: Path) -> Iterator[dict]:
    """The JSON objects of a REPL `.expected.out` (pretty-printed, separated by blank lines)."""
    text, decoder, at = path.read_text(encoding="utf-8"), json.JSONDecoder(), 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        value, at = decoder.raw_decode(text, at)
        yield value


def repl_goals(root: Path) -> Iterator[tuple[str, str, str]]:
    """(where, kind, text): `goal` for one goal, `state` for a goals string or message."""
    for path in sorted((root / "lean-repl-transcripts" / "core").glob("*.expected.out")):
        for i, reply in enumerate(responses(path)):
            where = f"{path.name}#{i}"
            for goal in reply.get("goals") or []:
                yield where, "goal", goal
            for sorry in reply.get("sorries") or []:
                yield where, "goal", sorry["goal"]
            for tactic in reply.get("tactics") or []:
                yield where, "state", tactic["goals"]
            for message in reply.get("messages") or []:
                if message["data"].startswith("unsolved goals\n"):
                    yield where, "message", message["data"]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def plain_goal_pairs(root: Path) -> Iterator[tuple[str, dict]]:
    for path in sorted((root / "lean-lsp-examples").glob("*.json")):
        for i, pair in enumerate(json.loads(path.read_text(encoding="utf-8"))["pairs"]):
            yield f"{path.name}#{i}", pair


def assert_round_trip(where: str, kind: str, text: str) -> None:
    if kind == "goal":
        assert parse_goal(text).pretty() == text, where
    elif kind == "state":
        assert parse_state(text).pretty() == text, where
    else:  # an "unsolved goals" error message: the header, then the goals
        assert "unsolved goals\n" + parse_state(text).pretty() == text, where


def check_repl_transcripts(root: Path) -> int:
    found = list(repl_goals(root))
    for where, kind, text in found:
        assert_round_trip(where, kind, text)
    return len(found)


def check_plain_goals(root: Path) -> int:
    checked = 0
    for where, pair in plain_goal_pairs(root):
        result = pair["result"]
        if pair["method"] == "$/lean/plainTermGoal":
            assert parse_goal(result["goal"]).pretty() == result["goal"], where
        elif result is None:
            assert parse_plain_goal(result) is None
        else:
            state = parse_plain_goal(result)
            assert state.texts() == result["goals"], where
            assert state.is_solved == (result["rendered"] == "no goals"), where
            if result["goals"]:
                fenced = [f"```lean\n{g}\n```" for g in state.texts()]
                assert result["rendered"] == "\n---\n".join(fenced), where
        checked += 1
    return checked


def check_trajectories(root: Path) -> int:
    checked = 0
    for name in ("repl_transcript_steps.jsonl", "pantograph_doc_invocations.jsonl"):
        for row in jsonl(root / "trajectories" / name):
            for side in ("before", "after"):
                goals = row[f"goals_{side}"]
                if goals is None:
                    continue
                state = parse_goals(goals)
                assert state.n_goals == row[f"n_goals_{side}"], row
                assert state.texts() == goals
                checked += 1
    for row in jsonl(root / "trajectories" / "leanink_sentences.jsonl"):
        # LeanInk's counts are local to the focused block, but they are the goals shown.
        state = parse_goals(row["goals"])
        assert state.n_goals == row["n_goals"], row
        assert state.is_solved == (row["goals_accomplished_marker"] or not row["n_goals"])
        shown = [g for g in row["goals_structured"] if row["goals"]]
        for goal, structured in zip(state.goals, shown, strict=True):
            assert goal.case == (structured["name"] or None)
            assert goal.target == structured["conclusion"]
            assert [(h.names, h.type, h.value) for h in goal.hypotheses] == [
                (tuple(h["names"]), h["type"], h["body"] or None) for h in structured["hypotheses"]
            ]
        checked += 1
    return checked


def check_book_states(root: Path) -> int:
    rows = jsonl(root / "goal-states" / "tpil_proofstate_blocks.jsonl")
    for row in rows:
        state = parse_state(row["goal_text"])
        assert state.pretty() == row["goal_text"], row["name"]
        assert state.n_goals == row["goal_text"].count("⊢ ")
    return len(rows)


# --- every real goal in tests/fixtures --------------------------------------------------


def test_every_repl_transcript_goal_round_trips():
    assert check_repl_transcripts(FIXTURES) > 100


def test_every_plain_goal_result_parses_including_null_and_no_goals():
    assert check_plain_goals(FIXTURES) > 50
    results = [pair["result"] for _, pair in plain_goal_pairs(FIXTURES)]
    assert None in results
    assert any(r and r.get("rendered") == "no goals" for r in results)


def test_trajectory_goal_lists_count_as_recorded():
    assert check_trajectories(FIXTURES) > 600


def test_book_goal_states_round_trip_with_their_goal_counts():
    assert check_book_states(FIXTURES) == 18


def test_repl_branching_goals_have_case_tags_and_hypotheses():
    (reply,) = [
        r
        for r in responses(FIXTURES / "lean-repl-transcripts/core/proof_branching.expected.out")
        if r.get("proofState") == 1
    ]
    state = parse_goals(reply["goals"])
    assert [g.case for g in state.goals] == ["left", "right"]
    assert state.goals[0].hypotheses == (
        Hypothesis(("p", "q", "r"), "Prop"),
        Hypothesis(("h1",), "p ∧ q"),
        Hypothesis(("h2",), "q → r"),
    )
    assert [g.target for g in state.goals] == ["p", "r"]


def test_anonymous_hypothesis_from_the_language_server():
    (_, pair), *_ = plain_goal_pairs_of("lean4-tests-anonHyp.json")
    (goal,) = parse_plain_goal(pair["result"]).goals
    assert Hypothesis((), "n✝ + 1 > 0") in goal.hypotheses


def test_conv_goal_from_the_language_server():
    conv = [
        g
        for _, pair in plain_goal_pairs(FIXTURES)
        if pair["method"] == "$/lean/plainGoal" and pair["result"]
        for g in parse_plain_goal(pair["result"]).goals
        if g.conv
    ]
    assert conv
    assert all(g.pretty().split("\n")[-1].startswith("| ") for g in conv)


def plain_goal_pairs_of(name: str) -> list[tuple[str, dict]]:
    return [(w, p) for w, p in plain_goal_pairs(FIXTURES) if w.startswith(name)]


# --- the larger shared data -------------------------------------------------------------


def test_shared_repl_transcripts_round_trip(shared_data):
    assert check_repl_transcripts(shared_data) > 100


def test_shared_plain_goals_parse(shared_data):
    assert check_plain_goals(shared_data) > 50


def test_shared_trajectories_count_as_recorded(shared_data):
    assert check_trajectories(shared_data) > 600


def test_shared_book_states_round_trip(shared_data):
    assert check_book_states(shared_data) == 18


def test_minif2f_initial_goals_round_trip(shared_data):
    rows = jsonl(shared_data / "minif2f" / "minif2f_test_deepseek_prover_v1.5.jsonl")
    assert len(rows) == 244
    for row in rows:
        goal = parse_goal(row["goal"])
        assert goal.pretty() == row["goal"], row["name"]
        assert "⊢" not in goal.target
        assert all(h.type and "\n" not in h.type for h in goal.hypotheses), row["name"]


# --- hand-written shapes ----------------------------------------------------------------


def test_goal_count_header_is_read_and_dropped():
    state = parse_state("2 goals\ncase a\n⊢ p\n\ncase b\n⊢ q")
    assert state.n_goals == 2
    assert state.pretty() == "case a\n⊢ p\n\ncase b\n⊢ q"
    assert parse_state("1 goal\nh : p\n⊢ p").goals == (Goal("p", (Hypothesis(("h",), "p"),)),)


def test_header_that_disagrees_with_the_goals_is_an_error():
    with pytest.raises(GoalParseError, match="header says 3 goals but 2"):
        parse_state("3 goals\n⊢ p\n\n⊢ q")


def test_unsolved_goals_header():
    assert parse_state("unsolved goals\ncase pos\nh✝ : x = true\n⊢ Nat").goals[0].case == "pos"


@pytest.mark.parametrize("text", ["no goals", "", "\n", "no goals\n"])
def test_no_goals(text):
    state = parse_state(text)
    assert state.is_solved
    assert state.n_goals == 0
    assert state.pretty() == "no goals"


def test_empty_goal_list_is_solved():
    assert parse_goals([]) == GoalState()


def test_case_tag_with_dots():
    goal = parse_goal("case succ.inl.h\nn : Nat\n⊢ n = n")
    assert goal.case == "succ.inl.h"
    assert goal.hypotheses == (Hypothesis(("n",), "Nat"),)


def test_inaccessible_names():
    goal = parse_goal("n✝ a✝¹ : Nat\ninst✝ : DecidableEq α\n⊢ n✝ = a✝¹")
    assert goal.hypotheses[0].names == ("n✝", "a✝¹")
    assert goal.hypotheses[1] == Hypothesis(("inst✝",), "DecidableEq α")


def test_anonymous_hypothesis():
    goal = parse_goal(": p\n⊢ q")
    assert goal.hypotheses == (Hypothesis((), "p"),)
    assert goal.pretty() == ": p\n⊢ q"


def test_let_value():
    goal = parse_goal("x : Nat := 5\n⊢ x = 5")
    assert goal.hypotheses == (Hypothesis(("x",), "Nat", "5"),)
    assert goal.pretty() == "x : Nat := 5\n⊢ x = 5"


def test_hypothesis_named_case():
    goal = parse_goal("case : Nat\n⊢ case = case")
    assert goal.case is None
    assert goal.hypotheses == (Hypothesis(("case",), "Nat"),)


def test_case_tag_then_hypothesis_named_case():
    goal = parse_goal("case h\ncase : Nat\n⊢ True")
    assert goal.case == "h"
    assert goal.hypotheses == (Hypothesis(("case",), "Nat"),)


WRAPPED_TYPE = (
    "S =\n    Finset.filter (fun n => n % 10 = 0)\n      (Finset.filter (fun n => n % 5 = 0) s)"
)


def test_hypothesis_too_long_for_its_line_puts_the_type_below_the_names():
    # Lean's layout for a long hypothesis: the names and ` :`, then the type indented by two.
    text = f"S : Finset ℕ\nthis :\n  {WRAPPED_TYPE}\n⊢ S.card = 100"
    goal = parse_goal(text)
    assert goal.hypotheses == (
        Hypothesis(("S",), "Finset ℕ"),
        Hypothesis(("this",), WRAPPED_TYPE, wrapped=True),
    )
    assert goal.pretty() == text


def test_wrapped_hypothesis_first_and_with_several_names():
    text = "a b :\n  ∀ (x : ℕ),\n    x + 0 = x\nh : a = b\n⊢ b = a"
    goal = parse_goal(text)
    assert [(h.names, h.wrapped) for h in goal.hypotheses] == [(("a", "b"), True), (("h",), False)]
    assert goal.hypotheses[0].type == "∀ (x : ℕ),\n    x + 0 = x"
    assert goal.pretty() == text


def test_indented_continuation_of_a_hypothesis():
    text = "h : ∀ (x : ℕ),\n    x + 0 = x\nk : Nat\n⊢ True"
    goal = parse_goal(text)
    assert goal.hypotheses == (
        Hypothesis(("h",), "∀ (x : ℕ),\n    x + 0 = x"),
        Hypothesis(("k",), "Nat"),
    )
    assert goal.pretty() == text


def test_wrapped_target():
    text = f"S : Finset ℕ\n⊢ {WRAPPED_TYPE}"
    goal = parse_goal(text)
    assert goal.target == WRAPPED_TYPE
    assert goal.pretty() == text


def test_wrapped_goals_in_a_state_string():
    first = f"case this\nS : Finset ℕ\n⊢ {WRAPPED_TYPE}"
    second = f"S : Finset ℕ\nthis :\n  {WRAPPED_TYPE}\n⊢ S.card = 100"
    state = parse_state(f"unsolved goals\n{first}\n\n{second}")
    assert state.texts() == [first, second]
    assert state.goals[1].hypotheses[1].names == ("this",)


def test_conv_goal():
    goal = parse_goal("x : Nat\n| x + 0")
    assert goal.conv
    assert goal.target == "x + 0"
    assert goal.pretty() == "x : Nat\n| x + 0"


def test_state_with_three_goals():
    goals = ["case a\n⊢ p", "case b\nh : p\n⊢ q", "⊢ r"]
    state = parse_state("\n\n".join(goals))
    assert state.texts() == goals
    assert [g.case for g in state.goals] == ["a", "b", None]


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "h : p",
        "x y z\n⊢ p",
        "",
        "case a",
    ],
)
def test_garbage_is_a_parse_error(text):
    with pytest.raises(GoalParseError):
        parse_goal(text)


@pytest.mark.parametrize("text", ["hello", "h : p\n\nk : q", "2 goals\n⊢ p"])
def test_garbage_state_is_a_parse_error(text):
    with pytest.raises(GoalParseError):
        parse_state(text)


def test_plain_goal_without_a_goal_list_is_an_error():
    with pytest.raises(GoalParseError):
        parse_plain_goal({"rendered": "no goals"})
