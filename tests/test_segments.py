"""The segment builder and the trajectory reader: rules, boundaries, state/target text, bad rows."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from conftest import FIXTURES

from segpilot.lean.goals import parse_state
from segpilot.segments import (
    RULES,
    BadRow,
    Segment,
    Step,
    Trajectory,
    build_segments,
    read_trajectories,
)

TRAJECTORIES = FIXTURES / "trajectories"
REPL_STEPS = TRAJECTORIES / "repl_transcript_steps.jsonl"
PANTOGRAPH_STEPS = TRAJECTORIES / "pantograph_doc_invocations.jsonl"

# Written out here, apart from the module's table, so a wrong table entry fails the tests.
ENDS_AFTER = {
    "change": lambda before, after: after != before,
    "close": lambda before, after: after < before,
    "step": lambda before, after: True,
    "whole": lambda before, after: False,
}
CAPPED = {"change": True, "close": True, "step": True, "whole": False}


def steps_from_counts(counts: list[int]) -> list[Step]:
    """Step i goes from counts[i] goals to counts[i + 1]."""
    return [
        Step(f"tac{i}", before, after, f"state{i}")
        for i, (before, after) in enumerate(itertools.pairwise(counts))
    ]


def spans(segments: list[Segment]) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in segments]


def read(lines: list[str], group_by: list[str]) -> tuple[list[Trajectory], list[BadRow]]:
    items = list(read_trajectories(lines, group_by))
    return (
        [i for i in items if isinstance(i, Trajectory)],
        [i for i in items if isinstance(i, BadRow)],
    )


def trajectory(trajectories: list[Trajectory], *key: object) -> list[Step]:
    (found,) = [t.steps for t in trajectories if t.key == key]
    return found


def row(**fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False)


def test_the_rule_table_has_the_four_rules():
    assert list(RULES) == ["change", "close", "step", "whole"]


# --- the rules on hand-written goal-count sequences -------------------------------------

# counts: goal counts before step 0, after step 0, after step 1, ...
RULE_TABLE = [
    # change: ends after 1->2, 2->1 and 1->0
    ("change", [1, 1, 2, 1, 1, 0], 8, [(0, 1), (2, 2), (3, 4)]),
    # close: ends after 2->1 and 1->0, not after 1->2
    ("close", [1, 1, 2, 1, 1, 0], 8, [(0, 2), (3, 4)]),
    ("step", [1, 1, 2, 1, 1, 0], 8, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]),
    ("whole", [1, 1, 2, 1, 1, 0], 8, [(0, 4)]),
    # goals only grow: `close` ends only at the last step, `change` after each growth
    ("close", [1, 2, 3, 4], 8, [(0, 2)]),
    ("change", [1, 2, 3, 4], 8, [(0, 0), (1, 1), (2, 2)]),
    # a count that never changes: only max-tactics and the last step end segments
    ("change", [1] * 11, 4, [(0, 3), (4, 7), (8, 9)]),
    ("close", [1] * 11, 4, [(0, 3), (4, 7), (8, 9)]),
    ("change", [1] * 11, 8, [(0, 7), (8, 9)]),
    ("change", [1] * 9, 8, [(0, 7)]),
    # a change at the very step where the cap is reached ends one segment, not two
    ("change", [1, 1, 1, 2, 2, 2], 3, [(0, 2), (3, 4)]),
    # max-tactics 1 makes every rule but whole step-level
    ("change", [1, 1, 1, 0], 1, [(0, 0), (1, 1), (2, 2)]),
    ("close", [2, 3, 3, 2], 1, [(0, 0), (1, 1), (2, 2)]),
    # `whole` ignores max-tactics
    ("whole", [1] * 21, 3, [(0, 19)]),
    ("whole", [1, 2, 1, 0], 1, [(0, 2)]),
    # a goal count that rises again after a drop: close ends after the drop only
    ("close", [2, 1, 3, 3, 1], 8, [(0, 0), (1, 3)]),
    # the count the next step starts from need not be the last one's result (branching data)
    ("change", [1, 2], 8, [(0, 0)]),
]


@pytest.mark.parametrize(("rule", "counts", "max_tactics", "expected"), RULE_TABLE)
def test_segment_boundaries_follow_the_rule(rule, counts, max_tactics, expected):
    assert spans(build_segments(steps_from_counts(counts), rule, max_tactics)) == expected


@pytest.mark.parametrize("rule", list(RULES))
def test_one_step_trajectory_is_one_segment(rule):
    assert spans(build_segments(steps_from_counts([3, 3]), rule)) == [(0, 0)]


@pytest.mark.parametrize("rule", list(RULES))
def test_empty_trajectory_has_no_segments(rule):
    assert build_segments([], rule) == []


def test_default_max_tactics_is_eight():
    assert spans(build_segments(steps_from_counts([1] * 18), "change")) == [
        (0, 7),
        (8, 15),
        (16, 16),
    ]


def test_segment_carries_start_state_counts_tactics_and_target():
    steps = [
        Step("intro h", 1, 1, "⊢ p → p ∧ p"),
        Step("constructor", 1, 2, "h : p\n⊢ p ∧ p"),
        Step("exact h", 2, 1, "case left\nh : p\n⊢ p\n\ncase right\nh : p\n⊢ p"),
    ]
    (first, second) = build_segments(steps, "change")
    assert first == Segment(0, 1, 1, 2, ("intro h", "constructor"), "⊢ p → p ∧ p")
    assert first.target == "intro h\nconstructor"
    assert second.state == "case left\nh : p\n⊢ p\n\ncase right\nh : p\n⊢ p"
    assert (second.n_goals_before, second.n_goals_after) == (2, 1)
    assert first.as_dict() == {
        "start": 0,
        "end": 1,
        "n_goals_before": 1,
        "n_goals_after": 2,
        "tactics": ["intro h", "constructor"],
        "state": "⊢ p → p ∧ p",
        "target": "intro h\nconstructor",
    }


def test_multi_line_tactic_is_kept_verbatim_in_target():
    block = "calc a = b := by simp\n    _ = c := rfl"
    (segment,) = build_segments([Step("intro a", 1, 1, "s"), Step(block, 1, 0, "t")], "whole")
    assert segment.target == "intro a\n" + block
    assert segment.tactics == ("intro a", block)


def test_unknown_rule_names_the_known_ones():
    with pytest.raises(ValueError, match="change, close, step, whole"):
        build_segments(steps_from_counts([1, 0]), "greedy")


def test_max_tactics_below_one_is_rejected():
    with pytest.raises(ValueError, match="at least 1"):
        build_segments(steps_from_counts([1, 0]), "change", 0)


# --- property check on random count sequences (hypothesis is not installed) ------------


def check_segmentation(steps: list[Step], rule: str, max_tactics: int) -> None:
    """The segments tile the trajectory and each ends exactly where the rule says."""
    segments = build_segments(steps, rule, max_tactics)
    tactics = [t for s in segments for t in s.tactics]
    assert tactics == [s.tactic for s in steps]
    assert [s.start for s in segments] == [0, *(s.end + 1 for s in segments)][: len(segments)]
    assert all(s.end - s.start + 1 == len(s.tactics) for s in segments)
    assert [s.end for s in segments[-1:]] == [len(steps) - 1][: len(steps)]
    for segment in segments:
        length = segment.end - segment.start + 1
        if CAPPED[rule]:
            assert length <= max_tactics
        for i in range(segment.start, segment.end + 1):
            ends = ENDS_AFTER[rule](steps[i].n_goals_before, steps[i].n_goals_after)
            at_cap = CAPPED[rule] and i - segment.start + 1 == max_tactics
            if i == segment.end:
                assert ends or at_cap or i == len(steps) - 1
            else:
                assert not ends and not at_cap
        assert segment.state == steps[segment.start].state_before
        assert segment.n_goals_before == steps[segment.start].n_goals_before
        assert segment.n_goals_after == steps[segment.end].n_goals_after


@pytest.mark.parametrize("seed", range(5))
def test_random_trajectories_tile_and_end_where_the_rule_says(seed):
    rng = random.Random(seed)
    for _ in range(200):
        counts = [rng.randint(0, 4) for _ in range(rng.randint(1, 40))]
        steps = steps_from_counts(counts)
        for rule in RULES:
            check_segmentation(steps, rule, rng.randint(1, 10))


# --- the real trajectories --------------------------------------------------------------


def real_trajectories(path, group_by):
    return read(path.read_text(encoding="utf-8").splitlines(), [group_by])


REAL_TABLE = [
    # proof_branching: apply And.intro 1->2, exact h1.left 2->1, apply h2 1->1, exact 1->0
    (REPL_STEPS, "transcript", "core/proof_branching", "change", 8, [(0, 0), (1, 1), (2, 3)]),
    (REPL_STEPS, "transcript", "core/proof_branching", "close", 8, [(0, 1), (2, 3)]),
    (REPL_STEPS, "transcript", "core/proof_branching", "step", 8, [(0, 0), (1, 1), (2, 2), (3, 3)]),
    (REPL_STEPS, "transcript", "core/proof_branching", "whole", 8, [(0, 3)]),
    (
        REPL_STEPS,
        "transcript",
        "core/proof_branching",
        "close",
        1,
        [(0, 0), (1, 1), (2, 2), (3, 3)],
    ),
    # proof_branching2: intro, have, have (1->1), apply And.intro 1->2, exact 2->1, exact 1->0
    (REPL_STEPS, "transcript", "core/proof_branching2", "change", 8, [(0, 3), (4, 4), (5, 5)]),
    (REPL_STEPS, "transcript", "core/proof_branching2", "close", 8, [(0, 4), (5, 5)]),
    (
        REPL_STEPS,
        "transcript",
        "core/proof_branching2",
        "change",
        2,
        [(0, 1), (2, 3), (4, 4), (5, 5)],
    ),
    (REPL_STEPS, "transcript", "core/proof_branching2", "whole", 2, [(0, 5)]),
    # by_cases: 1->2, 2->1, then `all_goals sorry` 2->0 from the branched state
    (REPL_STEPS, "transcript", "core/by_cases", "change", 8, [(0, 0), (1, 1), (2, 2)]),
    (REPL_STEPS, "transcript", "core/by_cases", "close", 8, [(0, 1), (2, 2)]),
    # app_type_mismatch2: 1->2, 2->1, a multi-line `have` 1->0, `have ... := sorry` 1->1
    # (its fifth row has goals_after null and is not a step)
    (REPL_STEPS, "transcript", "core/app_type_mismatch2", "close", 8, [(0, 1), (2, 2), (3, 3)]),
    (REPL_STEPS, "transcript", "core/app_type_mismatch2", "whole", 8, [(0, 3)]),
    # Pantograph unit 1: intro 1->1, cases 1->2, apply 1->1, assumption 1->0, apply, assumption
    (PANTOGRAPH_STEPS, "unit", 1, "change", 8, [(0, 1), (2, 3), (4, 5)]),
    (PANTOGRAPH_STEPS, "unit", 1, "close", 8, [(0, 3), (4, 5)]),
    (PANTOGRAPH_STEPS, "unit", 1, "close", 3, [(0, 2), (3, 3), (4, 5)]),
    (PANTOGRAPH_STEPS, "unit", 1, "whole", 3, [(0, 5)]),
    (PANTOGRAPH_STEPS, "unit", 0, "change", 8, [(0, 0)]),
]


@pytest.mark.parametrize(("path", "group_by", "key", "rule", "max_tactics", "expected"), REAL_TABLE)
def test_real_trajectory_boundaries(path, group_by, key, rule, max_tactics, expected):
    trajectories, _ = real_trajectories(path, group_by)
    steps = trajectory(trajectories, key)
    assert spans(build_segments(steps, rule, max_tactics)) == expected


@pytest.mark.parametrize(
    ("path", "group_by"), [(REPL_STEPS, "transcript"), (PANTOGRAPH_STEPS, "unit")]
)
@pytest.mark.parametrize("rule", list(RULES))
def test_every_real_trajectory_segments_by_the_rule(path, group_by, rule):
    trajectories, _ = real_trajectories(path, group_by)
    for max_tactics in (1, 2, 8):
        for t in trajectories:
            check_segmentation(t.steps, rule, max_tactics)


def test_real_steps_carry_counts_and_state_from_the_goal_lists():
    rows = [json.loads(line) for line in REPL_STEPS.read_text(encoding="utf-8").splitlines()]
    expected: dict[str, list[Step]] = {}
    for r in rows:
        if r["goals_before"] is not None and r["goals_after"] is not None:
            state = "\n\n".join(r["goals_before"]) or "no goals"
            step = Step(r["tactic"], r["n_goals_before"], r["n_goals_after"], state)
            expected.setdefault(r["transcript"], []).append(step)
    trajectories, _ = real_trajectories(REPL_STEPS, "transcript")
    assert {t.key[0]: t.steps for t in trajectories} == expected
    assert [t.key[0] for t in trajectories] == list(expected)
    for t in trajectories:
        for step in t.steps:
            assert parse_state(step.state_before).n_goals == step.n_goals_before


def test_two_goal_state_is_joined_by_a_blank_line():
    trajectories, _ = real_trajectories(REPL_STEPS, "transcript")
    second = build_segments(trajectory(trajectories, "core/app_type_mismatch"), "change")[1]
    assert second.state == "case zero\n⊢ 0 = 0\n\ncase succ\nn✝ : Nat\n⊢ n✝ + 1 = 0"
    assert second.tactics == ("rfl",)


def test_real_multi_line_tactic_is_verbatim_in_target():
    rows = [json.loads(line) for line in REPL_STEPS.read_text(encoding="utf-8").splitlines()]
    mine = [
        r
        for r in rows
        if r["transcript"] == "core/app_type_mismatch2" and r["goals_after"] is not None
    ]
    multi = [r["tactic"] for r in mine if "\n" in r["tactic"]]
    trajectories, _ = real_trajectories(REPL_STEPS, "transcript")
    (whole,) = build_segments(trajectory(trajectories, "core/app_type_mismatch2"), "whole")
    assert len(multi) == 1
    assert multi[0] in whole.tactics
    assert whole.target == "\n".join(r["tactic"] for r in mine)
    assert whole.state == "⊢ 1 = 0"


def test_null_goal_lists_in_the_real_file_are_bad_rows_with_their_lines():
    lines = REPL_STEPS.read_text(encoding="utf-8").splitlines()
    expected = [
        n
        for n, line in enumerate(lines, 1)
        if None in (json.loads(line)["goals_before"], json.loads(line)["goals_after"])
    ]
    _, bad = read(lines, ["transcript"])
    assert [b.line for b in bad] == expected
    assert all(b.reason.endswith("is null") for b in bad)


def test_pantograph_units_are_int_keys_in_order():
    trajectories, bad = real_trajectories(PANTOGRAPH_STEPS, "unit")
    assert bad == []
    assert [t.key for t in trajectories] == [(0,), (1,)]
    assert [len(t.steps) for t in trajectories] == [1, 6]


# --- grouping ---------------------------------------------------------------------------


def step_row(tactic: str, before: int = 1, after: int = 1, **key: object) -> str:
    goals = [f"⊢ p{i}" for i in range(before)]
    return row(
        **key, tactic=tactic, goals_before=goals, goals_after=[f"⊢ q{i}" for i in range(after)]
    )


def test_several_group_by_fields_and_non_contiguous_groups():
    lines = [
        step_row("a1", file="A.lean", theorem="t"),
        step_row("b1", file="B.lean", theorem="t"),
        step_row("a2", file="A.lean", theorem="t"),
        step_row("c1", file="A.lean", theorem="u"),
        step_row("b2", file="B.lean", theorem="t"),
    ]
    trajectories, bad = read(lines, ["file", "theorem"])
    assert bad == []
    assert [t.key for t in trajectories] == [("A.lean", "t"), ("B.lean", "t"), ("A.lean", "u")]
    assert [[s.tactic for s in t.steps] for t in trajectories] == [
        ["a1", "a2"],
        ["b1", "b2"],
        ["c1"],
    ]


def test_group_values_keep_their_json_type():
    lines = [
        step_row("int", unit=1),
        step_row("str", unit="1"),
        step_row("bool", unit=True),
        step_row("float", unit=1.0),
        step_row("null", unit=None),
        step_row("list", unit=[1, "a"]),
        step_row("int again", unit=1),
        step_row("list again", unit=[1, "a"]),
    ]
    trajectories, _ = read(lines, ["unit"])
    assert [t.key for t in trajectories] == [(1,), ("1",), (True,), (1.0,), (None,), ([1, "a"],)]
    assert [type(t.key[0]) for t in trajectories[:4]] == [int, str, bool, float]
    assert [s.tactic for s in trajectories[0].steps] == ["int", "int again"]
    assert [s.tactic for s in trajectories[5].steps] == ["list", "list again"]


def test_bad_rows_come_before_any_trajectory():
    lines = [step_row("a", theorem="t"), "not json", step_row("b", theorem="u"), "[]"]
    kinds = [type(item) for item in read_trajectories(lines, ["theorem"])]
    assert kinds == [BadRow, BadRow, Trajectory, Trajectory]


def test_group_by_must_name_a_field():
    with pytest.raises(ValueError, match="at least one"):
        list(read_trajectories([step_row("a", theorem="t")], []))


# --- goal forms -------------------------------------------------------------------------


def test_state_strings_are_counted_and_kept_exactly():
    state = "2 goals\ncase a\nh : p\n⊢ p\n\ncase b\n⊢ q"
    lines = [row(theorem="t", tactic="exact h", state_before=state, state_after="case b\n⊢ q")]
    (t,), bad = read(lines, ["theorem"])
    assert bad == []
    assert t.steps == [Step("exact h", 2, 1, state)]


def test_no_goals_state_string_counts_zero():
    lines = [row(theorem="t", tactic="rfl", state_before="⊢ 1 = 1", state_after="no goals")]
    (t,), _ = read(lines, ["theorem"])
    assert (t.steps[0].n_goals_before, t.steps[0].n_goals_after) == (1, 0)


def test_empty_goal_list_prints_no_goals():
    lines = [row(theorem="t", tactic="skip", goals_before=[], goals_after=[])]
    (t,), _ = read(lines, ["theorem"])
    assert t.steps == [Step("skip", 0, 0, "no goals")]


def test_goal_lists_win_over_state_strings():
    lines = [
        row(
            theorem="t",
            tactic="exact h",
            goals_before=["h : p\n⊢ p"],
            state_before="1 goal\nh : p\n⊢ p",
            goals_after=[],
            state_after="no goals",
        )
    ]
    (t,), bad = read(lines, ["theorem"])
    assert bad == []
    assert t.steps == [Step("exact h", 1, 0, "h : p\n⊢ p")]


def test_each_side_may_use_its_own_form():
    lines = [row(theorem="t", tactic="intro h", goals_before=["⊢ p → p"], state_after="h : p\n⊢ p")]
    (t,), _ = read(lines, ["theorem"])
    assert t.steps == [Step("intro h", 1, 1, "⊢ p → p")]


def test_first_line_may_start_with_a_byte_order_mark():
    first = "\ufeff" + step_row("a", theorem="t")
    (t,), bad = read([first.encode("utf-8")], ["theorem"])
    assert bad == []
    assert t.steps[0].tactic == "a"


BAD_ROWS = [
    ("not json {", "not JSON"),
    ('["a", "list"]', "not a JSON object"),
    (row(tactic="rfl", goals_before=[], goals_after=[]), "missing group-by field 'theorem'"),
    (row(theorem="t", goals_before=[], goals_after=[]), "missing tactic"),
    (row(theorem="t", tactic=None, goals_before=[], goals_after=[]), "tactic is not a string"),
    (row(theorem="t", tactic=["rfl"], goals_before=[], goals_after=[]), "tactic is not a string"),
    (row(theorem="t", tactic="  \n", goals_before=[], goals_after=[]), "tactic is blank"),
    (row(theorem="t", tactic="rfl", goals_before=None, goals_after=[]), "goals_before is null"),
    (row(theorem="t", tactic="rfl", goals_before=["⊢ p"], goals_after=None), "goals_after is null"),
    (
        row(theorem="t", tactic="rfl", goals_before="⊢ p", goals_after=[]),
        "goals_before is not a list",
    ),
    (
        row(theorem="t", tactic="rfl", goals_before=["⊢ p", 3], goals_after=[]),
        "goals_before[1] is not",
    ),
    (row(theorem="t", tactic="rfl", goals_after=[]), "missing goals_before (or state_before)"),
    (row(theorem="t", tactic="rfl", goals_before=["⊢ p"]), "missing goals_after (or state_after)"),
    (row(theorem="t", tactic="rfl", state_before="hello", state_after="no goals"), "state_before:"),
    (
        row(theorem="t", tactic="rfl", state_before=None, state_after=""),
        "state_before is not a string",
    ),
    (
        row(theorem="t", tactic="rfl", state_before="⊢ p", state_after="2 goals\n⊢ q"),
        "header says 2",
    ),
    (
        row(
            theorem="t",
            tactic="rfl",
            goals_before=["⊢ p"],
            state_before="⊢ p\n\n⊢ q",
            goals_after=[],
        ),
        "goals_before has 1 goals but state_before has 2",
    ),
]


@pytest.mark.parametrize(("line", "reason"), BAD_ROWS)
def test_bad_row_is_reported_with_its_line_and_skipped(line, reason):
    lines = [step_row("before", theorem="t"), "", line, step_row("after", theorem="t")]
    (t,), bad = read(lines, ["theorem"])
    assert [b.line for b in bad] == [3]
    assert reason in bad[0].reason
    assert "\n" not in bad[0].reason
    assert str(bad[0]).startswith("line 3: ")
    assert [s.tactic for s in t.steps] == ["before", "after"]


def test_undecodable_line_is_a_bad_row():
    lines = [step_row("a", theorem="t").encode(), b'{"theorem": "t", "tactic": "\xff"}']
    (t,), bad = read(lines, ["theorem"])
    assert bad == [BadRow(2, bad[0].reason)]
    assert "not UTF-8" in bad[0].reason
    assert len(t.steps) == 1


def test_blank_lines_are_skipped_but_counted_for_line_numbers():
    lines = ["", "   ", step_row("a", theorem="t"), "\n", "oops"]
    (t,), bad = read(lines, ["theorem"])
    assert len(t.steps) == 1
    assert [b.line for b in bad] == [5]


def test_long_reasons_are_clipped_to_one_line():
    garbage = "x\n" * 500
    lines = [row(theorem="t", tactic="rfl", state_before=garbage, state_after="no goals")]
    _, (bad,) = read(lines, ["theorem"])
    assert len(bad.reason) <= 300
    assert "\n" not in bad.reason


def test_state_string_with_a_wrapped_hypothesis_is_a_good_row():
    # Lean puts a long hypothesis's type on the lines below `name :`.
    state = "this :\n  ∀ (x : ℕ),\n    x + 0 = x\n⊢ True"
    lines = [row(theorem="t", tactic="trivial", state_before=state, state_after="no goals")]
    (t,), bad = read(lines, ["theorem"])
    assert bad == []
    assert t.steps == [Step("trivial", 1, 0, state)]
