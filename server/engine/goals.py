"""The goal at a cursor: the one type every front end shows and every search starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from segpilot.search.check import LeanState

GoalSource = Literal["client", "repl", "lake-serve", "statement"]


def goal_text(goals: tuple[str, ...] | list[str]) -> str:
    """Goals as one text, separated by blank lines (the LeanDojo-style state string)."""
    return "\n\n".join(goals)


@dataclass(frozen=True)
class GoalAt:
    """The goals open at a cursor, where they came from, and the REPL state to check on."""

    goals: tuple[str, ...]
    """Each goal as Lean prints it (optional `case tag`, hypotheses, `⊢ target`)."""
    source: GoalSource
    """`client` (the editor's Lean), `repl`, `lake-serve`, or `statement` (approximated
    from the declaration's text: the goal at the start of the proof)."""
    state: LeanState | None = None
    """The REPL's proof state with these goals, when Lean gave one."""
    lean_error: str = ""
    """Why Lean gave no goals, when it failed."""

    @property
    def count(self) -> int:
        return len(self.goals)

    @property
    def text(self) -> str:
        return goal_text(self.goals)

    def to_json(self) -> dict[str, Any]:
        """`{"source", "count", "goals"}` (what `segpilot goals --json` prints)."""
        out: dict[str, Any] = {
            "source": self.source,
            "count": self.count,
            "goals": list(self.goals),
        }
        if self.lean_error:
            out["leanError"] = self.lean_error
        return out
