"""Goal-aware rollout, the one definition the proof search and the editor's prefetch share.

DESIGN.md, "The method": when an applied block moves the open-goal count the way the
trigger asks (`decrease`: it drops; `change`: it moves at all), continue from the state
reached with the policy, greedily, checking each move in Lean, for at most H moves, and stop
after the next goal-count change (the next structural point). The proof search goes on
through a change that meets the trigger (it is a transition that would start a rollout of
its own); the editor's prefetch stops at every change, where the user goes next. The
states reached are handed to the caller (the search queues them; the prefetch caches
their suggestions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from segpilot.search.check import LeanState
from segpilot.search.ranking import Checked

Trigger = Literal["decrease", "change"]
TRIGGERS: tuple[str, ...] = get_args(Trigger)


def triggers(trigger: Trigger, before: int, after: int) -> bool:
    """Whether a move from `before` to `after` open goals starts a rollout."""
    if trigger == "decrease":
        return after < before
    return after != before


def rollout(
    start: LeanState,
    best_move: Callable[[LeanState], Checked | None],
    depth: int,
    *,
    visit: Callable[[LeanState, Checked], bool] | None = None,
    retrigger: Trigger | None = None,
) -> list[tuple[LeanState, Checked]]:
    """Play the move `best_move` picks, from `start` on, at most `depth` moves.

    `best_move(state)` gives a checked block that closes or changes `state` (None: there is
    none, or the budget is spent): in the proof search, the policy's favourite block that
    Lean accepts; in the editor's prefetch, the best of the checked suggestions it shows.
    Stops after a move that closes every goal, after one that changes the goal count (unless
    it does so the way `retrigger` asks: such a move would start a rollout of its own, so
    this one goes on), or when `visit(reached, move)` says the state reached is not worth
    following (already known). Returns the moves made, each with the state it was played
    on."""
    moves: list[tuple[LeanState, Checked]] = []
    state = start
    for _ in range(depth):
        move = best_move(state)
        if move is None or move.outcome is None:
            break
        moves.append((state, move))
        if move.outcome.kind == "closed":
            break
        reached = state.after(move.outcome)
        if visit is not None and not visit(reached, move):
            break
        before, after = state.n_goals, reached.n_goals
        if after != before and (retrigger is None or not triggers(retrigger, before, after)):
            break
        state = reached
    return moves


def closed(moves: list[tuple[LeanState, Checked]]) -> bool:
    """Whether the rollout's last move closed every goal."""
    return (
        bool(moves) and moves[-1][1].outcome is not None and moves[-1][1].outcome.kind == "closed"
    )
