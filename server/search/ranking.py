"""Order checked candidates for display: closes the goal > fewer goals left > the model's
order (the policy's ranking, `segpilot.model.candidates.rank`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from segpilot.model.candidates import Candidate
from segpilot.search.check import Outcome

_DROPPED = ("error", "no-progress")


@dataclass(frozen=True)
class Checked:
    """A candidate with what Lean made of it."""

    candidate: Candidate
    outcome: Outcome | None
    """`None`: unchecked (no Lean, checking off, or Lean failed)."""

    @property
    def checked(self) -> bool:
        return self.outcome is not None


def accepted(outcome: Outcome | None) -> bool:
    """Whether Lean took a block and it moved the proof: checked, no error, not a no-op."""
    return outcome is not None and outcome.kind not in _DROPPED


def rank_checked(items: Iterable[Checked]) -> list[Checked]:
    """Drop what Lean rejected or what changed nothing; checked candidates first (closed,
    then fewer goals left, then in the order given: the model's), then unchecked ones in the
    order given."""
    checked: list[Checked] = []
    unchecked: list[Checked] = []
    for item in items:
        if item.outcome is None:
            unchecked.append(item)
        elif accepted(item.outcome):
            checked.append(item)
    checked.sort(key=_rank_key)
    return checked + unchecked


def _rank_key(item: Checked) -> tuple[bool, int]:
    outcome = item.outcome
    assert outcome is not None
    return outcome.kind != "closed", outcome.n_goals
