"""Ranking checked candidates: closes > fewer goals left > the model's order; unchecked keep
order."""

from __future__ import annotations

import pytest

from segpilot.model.candidates import Candidate
from segpilot.search.check import Outcome
from segpilot.search.ranking import Checked, rank_checked

GOAL = "⊢ p"


def item(name: str, logprob: float, kind: str | None = None, n_goals: int = 0) -> Checked:
    outcome = None if kind is None else Outcome(kind, (GOAL,) * n_goals)  # type: ignore[arg-type]
    return Checked(Candidate(name, (name,), logprob), outcome)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (
            [
                item("two_goals", -0.1, "progress", 2),
                item("one_goal_ranked_first", -0.5, "progress", 1),
                item("closes", -3.0, "closed"),
                item("one_goal_ranked_later", -0.2, "progress", 1),
            ],
            # Among equals the policy's order stands (its ranking is per token, not the sum).
            ["closes", "one_goal_ranked_first", "one_goal_ranked_later", "two_goals"],
        ),
        (
            [
                item("fails", -0.01, "error"),
                item("does_nothing", -0.01, "no-progress", 1),
                item("progress", -2.0, "progress", 1),
            ],
            ["progress"],
        ),
        (
            [item("first", -3.0), item("second", -0.1), item("third", -1.0)],
            ["first", "second", "third"],
        ),
        (
            [item("unchecked", -0.1), item("checked", -5.0, "progress", 3)],
            ["checked", "unchecked"],
        ),
        ([], []),
    ],
    ids=[
        "closed-then-goals-then-model-order",
        "drops-rejected",
        "unchecked-keep-order",
        "mixed",
        "empty",
    ],
)
def test_rank_checked_orders_by_outcome_then_model_order(
    items: list[Checked], expected: list[str]
) -> None:
    assert [c.candidate.text for c in rank_checked(items)] == expected


def test_checked_tells_whether_lean_saw_it() -> None:
    assert item("a", -1.0, "closed").checked
    assert not item("a", -1.0).checked
