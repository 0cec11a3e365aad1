"""The `[search]` settings: the budget and shape of one proof search, and the goal-aware
rollout that the search and the editor's prefetch share. Loaded through `segpilot.config`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from segpilot.config import check_declared
from segpilot.search.rollout import Trigger


@dataclass(frozen=True)
class SearchBudget:
    """Limits and shape of one search. Each field's metadata holds its help and bounds."""

    wall_s: float = field(
        default=60.0, metadata={"help": "seconds one proof search may run", "min": 0.0}
    )
    expansions: int = field(
        default=100,
        metadata={"help": "states one search may expand (rollout steps not counted)", "min": 1},
    )
    lean_calls: int = field(
        default=2000,
        metadata={"help": "blocks one search may run in Lean (cached answers are free)", "min": 1},
    )
    k: int = field(
        default=4, metadata={"help": "candidates asked of the model per expansion", "min": 1}
    )
    rollout: bool = field(
        default=True,
        metadata={"help": "goal-aware rollout: follow the best block when the goal count moves"},
    )
    rollout_depth: int = field(
        default=4,
        metadata={"help": "moves one rollout (or one editor prefetch) may make (H)", "min": 1},
    )
    trigger: Trigger = field(
        default="change",
        metadata={
            "help": "goal-count move that starts a rollout or a prefetch: decrease or change"
        },
    )

    def __post_init__(self) -> None:
        check_declared(self)

    def updated(self, **changes: Any) -> SearchBudget:
        """A copy with `changes` applied; None values are ignored (an unset flag)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
