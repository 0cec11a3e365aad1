"""Candidate clean-up: indentation, comments, cutting at the first non-tactic line, splitting
into tactics, de-duplication and ranking."""

from __future__ import annotations

import json
import textwrap

import pytest
from test_safety import fixture_tactics

from segpilot.lean.lexer import strip_comments
from segpilot.model import safety
from segpilot.model.candidates import (
    SORRY_REJECTED,
    Candidate,
    clean_block,
    dedup_key,
    indent_block,
    rank,
    split_tactics,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  intro h\n  exact h", "intro h\nexact h"),  # flush left
        ("\tintro h\n\t\texact h", "intro h\n  exact h"),  # tabs become two spaces
        ("simp   \n\n\nexact h  ", "simp\nexact h"),  # trailing spaces and blank lines
        ("simp -- close it\n/- a note\nacross lines -/\nexact h", "simp\nexact h"),
        ("simp\nThis closes the goal because addition commutes.", "simp"),
        ("simp\nHere is the proof:", "simp"),
        ("intro h\nthen we apply the hypothesis to finish.", "intro h"),
        (
            "induction n generalizing m k with\n| zero => simp",
            "induction n generalizing m k with\n| zero => simp",
        ),
        ("omega\n```", "omega"),
        ("omega\n<|im_end|>", "omega"),
        ("omega\n</think>", "omega"),
        ("omega\n## Explanation", "omega"),
        ("omega\n- first we intro", "omega"),
        ("omega\n1. intro", "omega"),
        ("intro h\n⊢ p", "intro h"),  # an echoed goal
        ("exact h\n\ntheorem next : True := trivial", "exact h"),  # the proof is over
        ("exact h\nend", "exact h"),
        ("Sure! Here it is\nsimp", ""),  # prose first: nothing left
        ("", ""),
    ],
)
def test_clean_block(raw, expected):
    assert clean_block(raw) == expected


def test_real_proofs_survive_clean_up_unchanged_but_for_comments(shared_data):
    rows = (shared_data / "core-benchmark" / "core_benchmark.jsonl").open(encoding="utf-8")
    for row in map(json.loads, rows):
        proof = strip_comments(row["proof"].removeprefix("by"))
        kept = [line.rstrip() for line in proof.split("\n") if line.strip()]
        assert clean_block(proof) == textwrap.dedent("\n".join(kept)), row["name"]


def test_real_fixture_tactics_survive_clean_up_unchanged_but_for_comments():
    # Fragments of LeanInk sentences (` at h`, `← h,`) are not tactics: the lexicon cuts them.
    for tactic in filter(lambda t: safety.allowed(t).ok, fixture_tactics()):
        kept = [line.rstrip() for line in strip_comments(tactic).split("\n") if line.strip()]
        assert clean_block(tactic) == textwrap.dedent("\n".join(kept))


def test_commands_are_not_cut_so_the_safety_filter_sees_them():
    assert clean_block("simp\nset_option maxHeartbeats 0 in\nsimp") == (
        "simp\nset_option maxHeartbeats 0 in\nsimp"
    )
    assert clean_block("simp\n#eval 1") == "simp\n#eval 1"


def test_open_comment_is_left_for_the_safety_filter():
    assert clean_block("simp /- never closed\n#eval 1").startswith("simp /- never closed")


def test_truncated_output_loses_its_unfinished_last_line():
    assert clean_block("intro h\nexact Nat.le_tr", truncated=True) == "intro h"
    assert clean_block("intro h\nexact h\n", truncated=True) == "intro h\nexact h"
    assert clean_block("intro h\nexact Nat.le_tr", truncated=False) == "intro h\nexact Nat.le_tr"


def test_nested_lines_stay_with_their_tactic():
    block = (
        "induction n with\n| zero => simp\n| succ n ih =>\n  rw [Nat.add_succ]\n  simp [ih]\n"
        "constructor\n· exact hp\n· exact hq\nsimp <;>\n  omega\nall_goals\n  simp\n<;> rfl"
    )
    assert split_tactics(block) == [
        "induction n with\n| zero => simp\n| succ n ih =>\n  rw [Nat.add_succ]\n  simp [ih]",
        "constructor",
        "· exact hp",
        "· exact hq",
        "simp <;>\n  omega",
        "all_goals\n  simp\n<;> rfl",
    ]


def test_insert_text_indents_following_lines_to_the_column():
    block = "constructor\n· exact hp\n  done\n· exact hq"
    assert indent_block(block, 4) == "constructor\n    · exact hp\n      done\n    · exact hq"
    assert Candidate(block, (), 0.0).insert_text(0) == block


def test_spacing_inside_a_line_does_not_make_a_new_candidate():
    assert dedup_key("simp  [h,  g]\n  exact  h") == dedup_key("simp [h, g]\n  exact h")
    assert dedup_key("simp\n  exact h") != dedup_key("simp\nexact h")  # nesting matters


def test_rank_keeps_the_best_duplicate_and_orders_accepted_before_rejected():
    ranked = rank(
        [
            Candidate("simp", ("simp",), -3.0),
            Candidate("simp ", ("simp",), -1.0),
            Candidate("sorry", ("sorry",), -0.5, uses_sorry=True),
            Candidate("#eval 1", ("#eval 1",), -0.1, rejected_reason="line 1: '#eval'"),
            Candidate("omega", ("omega",), -2.0),
        ]
    )
    assert [(c.text, c.logprob) for c in ranked] == [
        ("simp ", -1.0),
        ("omega", -2.0),
        ("#eval 1", -0.1),
        ("sorry", -0.5),
    ]
    assert [c.accepted for c in ranked] == [True, True, False, False]


def test_a_candidate_using_sorry_is_never_accepted():
    made = Candidate("sorry", ("sorry",), -0.1, uses_sorry=True)
    assert not made.accepted and made.rejected_reason == SORRY_REJECTED
    given = Candidate("admit", ("admit",), -0.1, rejected_reason="line 1: 'admit'", uses_sorry=True)
    assert given.rejected_reason == "line 1: 'admit'"
