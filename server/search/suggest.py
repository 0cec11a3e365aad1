"""One editor suggestion round: propose candidates for a goal, check them in Lean, rank.

The engine calls `propose_checked` from a worker thread (the model call itself runs on the
process's single llama.cpp thread); a prefetch follows `best_move` with the goal-aware
rollout of `segpilot.search.rollout` to prepare what the user will ask for next.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Protocol

from segpilot.lean.errors import LeanProcessError
from segpilot.model.candidates import Candidate
from segpilot.model.policy import Proposed
from segpilot.search.check import LeanChecker, LeanState, Outcome
from segpilot.search.ranking import Checked, rank_checked


class Proposer(Protocol):
    """What a suggestion round needs of a policy (`segpilot.model.policy.Policy`)."""

    def propose_batch(
        self,
        state: Any = "",
        k: int | None = None,
        *,
        theorem: str = "",
        name: str = "",
        proof_before: str = "",
        cancel: threading.Event | None = None,
    ) -> Proposed: ...


@dataclass(frozen=True)
class Prompt:
    """What the model is told besides the goal (the declaration and the proof so far)."""

    theorem: str = ""
    name: str = ""
    proof_before: str = ""


@dataclass(frozen=True)
class Proposal:
    """Ranked suggestions for one goal, and what they cost."""

    goal: str
    items: tuple[Checked, ...]
    checked: bool
    """Whether Lean ran every item (False: no Lean, checking off, or Lean failed)."""
    lean_error: str = ""
    """Why Lean did not check, when it failed."""
    model_s: float = 0.0
    check_s: float = 0.0
    complete: bool = True
    """False when cancelled or out of budget: such a proposal is not cached."""


def propose_checked(
    policy: Proposer,
    goal: str,
    prompt: Prompt,
    *,
    k: int,
    checker: LeanChecker | None = None,
    state: LeanState | None = None,
    cancel: threading.Event | None = None,
    check_budget_s: float = 10.0,
) -> Proposal:
    """Candidates for `goal`, checked against `state` when a checker and a state are given."""
    started = time.monotonic()
    proposed = policy.propose_batch(
        goal,
        k,
        theorem=prompt.theorem,
        name=prompt.name,
        proof_before=prompt.proof_before,
        cancel=cancel,
    )
    candidates = list(proposed.candidates)
    model_s = time.monotonic() - started
    if cancel is not None and cancel.is_set():
        return Proposal(goal, (), False, model_s=model_s, complete=False)
    if checker is None or state is None:
        items = tuple(Checked(c, None) for c in candidates)
        # Cut short by the model's time limit: shown, but not cached as the whole answer.
        return Proposal(goal, items, False, model_s=model_s, complete=proposed.complete)
    started = time.monotonic()
    try:
        outcomes = checker.check_many(
            state,
            [c.text for c in candidates],
            cancel=cancel,
            deadline=started + check_budget_s,
        )
        done = _with_accepted_prefixes(
            checker, state, candidates, outcomes, cancel, started + check_budget_s
        )
    except LeanProcessError as err:
        items = tuple(Checked(c, None) for c in candidates)
        # Shown unchecked, but not kept: once Lean is back the same goal is checked.
        check_s = time.monotonic() - started
        return Proposal(goal, items, False, str(err), model_s, check_s, complete=False)
    check_s = time.monotonic() - started
    return Proposal(
        goal,
        tuple(rank_checked(done)),
        True,
        model_s=model_s,
        check_s=check_s,
        complete=proposed.complete and None not in outcomes,
    )


def _with_accepted_prefixes(
    checker: LeanChecker,
    state: LeanState,
    candidates: list[Candidate],
    outcomes: list[Outcome | None],
    cancel: threading.Event | None,
    deadline: float,
) -> list[Checked]:
    """The checked candidates, a failed multi-tactic one replaced by its longest prefix
    that Lean accepts (`LeanChecker.longest_accepted`) unless another candidate already is
    that text; candidates not run (cancelled, out of time) are left out."""
    done: list[Checked] = []
    texts = {c.text for c in candidates}
    for candidate, outcome in zip(candidates, outcomes, strict=True):
        if outcome is None:
            continue
        if outcome.kind == "error" and len(candidate.tactics) > 1:
            found = checker.longest_accepted(
                state, candidate.tactics, cancel=cancel, deadline=deadline
            )
            if found is not None:
                n, outcome = found
                kept = candidate.tactics[:n]
                if "\n".join(kept) in texts:
                    continue
                candidate = replace(candidate, text="\n".join(kept), tactics=kept)
                texts.add(candidate.text)
        done.append(Checked(candidate, outcome))
    return done


def best_move(proposal: Proposal) -> Checked | None:
    """The suggestion a rollout follows: the best checked one that closes or changes the
    goals (ranked first), or None when Lean checked none of them."""
    if not (proposal.checked and proposal.complete):
        return None
    return next((item for item in proposal.items if item.outcome is not None), None)
