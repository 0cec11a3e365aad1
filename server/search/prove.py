"""Best-first proof search over Lean proof states, with goal-aware rollout.

Nodes are proof states; a node's priority is the summed log-probability of the blocks on
its path. Expanding a node asks the policy for k blocks and checks each in Lean; a block
that closes every goal ends the search. States are deduplicated by goal text, and a
(state, block) result already known to the checker costs no Lean call.

Goal-aware rollout (`segpilot.search.rollout`): when a child's goal count moves the way
the trigger asks, the search continues greedily from it at once (each move: the policy's
favourite block that Lean accepts). A rollout move that moves the count the way the trigger
asks is such a transition itself, so the rollout goes on from it, within the same H moves.
Every state the rollout reaches joins the queue with its cumulative score. Rollout steps
are not expansions.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from segpilot.lean.errors import ReplTimeoutError
from segpilot.lean.goals import GoalParseError
from segpilot.model.candidates import Candidate
from segpilot.search.budget import SearchBudget
from segpilot.search.check import LeanChecker, LeanState, Outcome
from segpilot.search.ranking import Checked, accepted
from segpilot.search.rollout import closed, rollout, triggers


class ProposalPolicy(Protocol):
    """What the search needs from a policy (`segpilot.model.policy.Policy`, or a script)."""

    def propose(
        self, state: Any, k: int, *, cancel: threading.Event | None = None
    ) -> list[Candidate]: ...


@dataclass(frozen=True)
class SearchResult:
    """How a search ended."""

    proof: tuple[str, ...] | None
    """The blocks, in order, that close the root goal (`None`: not proved)."""
    expansions: int
    lean_calls: int
    elapsed_s: float
    reason: str
    """"proved", "exhausted", "budget: wall", "budget: expansions", "budget: lean calls"
    or "cancelled"."""

    def proof_text(self) -> str:
        """The proof's blocks joined by newlines, flush left ("" when not proved)."""
        return "\n".join(self.proof or ())


@dataclass(frozen=True)
class _Node:
    state: LeanState
    path: tuple[str, ...]
    score: float


class _Stop(Exception):
    """Unwinds the search when it must end without a proof."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _policy_state(state: LeanState) -> Any:
    """The state as the policy reads it; the raw text if our parser does not know it,
    so one odd printout does not end a search."""
    try:
        return state.goal_state()
    except GoalParseError:
        return state.key()


class _Search:
    def __init__(
        self,
        policy: ProposalPolicy,
        checker: LeanChecker,
        budget: SearchBudget,
        cancel: threading.Event | None,
        on_progress: Callable[[int, int, float], None] | None,
    ) -> None:
        self.policy = policy
        self.checker = checker
        self.budget = budget
        self.cancel = cancel
        self.on_progress = on_progress
        self.start = time.monotonic()
        self.expansions = 0
        self.lean_calls = 0
        self.seen: set[str] = set()
        self.queue: list[tuple[float, int, _Node]] = []
        self.order = itertools.count()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def run(self, root: LeanState) -> SearchResult:
        try:
            proof: tuple[str, ...] | None = self.search(root)
            reason = "proved"
        except _Stop as stop:
            proof, reason = None, stop.reason
        return SearchResult(proof, self.expansions, self.lean_calls, self.elapsed(), reason)

    def search(self, root: LeanState) -> tuple[str, ...]:
        self.push(_Node(root, (), 0.0))
        while self.queue:
            self.ensure_budget("expansion")
            node = heapq.heappop(self.queue)[2]
            self.expansions += 1
            proof = self.expand(node)
            if self.on_progress is not None:
                self.on_progress(self.expansions, self.budget.expansions, self.elapsed())
            if proof is not None:
                return proof
        raise _Stop("exhausted")

    def ensure_budget(self, before: Literal["expansion", "model", "lean"]) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Stop("cancelled")
        if self.elapsed() >= self.budget.wall_s:
            raise _Stop("budget: wall")
        if before == "expansion" and self.expansions >= self.budget.expansions:
            raise _Stop("budget: expansions")
        if before == "lean" and self.lean_calls >= self.budget.lean_calls:
            raise _Stop("budget: lean calls")

    def push(self, node: _Node) -> bool:
        """Queue a state not seen before; False when its goals were already reached."""
        key = node.state.key()
        if key in self.seen:
            return False
        self.seen.add(key)
        heapq.heappush(self.queue, (-node.score, next(self.order), node))
        return True

    def propose(self, state: LeanState) -> list[Candidate]:
        self.ensure_budget("model")
        proposed = self.policy.propose(_policy_state(state), self.budget.k, cancel=self.cancel)
        return [c for c in proposed if c.accepted]

    def outcome(self, state: LeanState, block: str) -> Outcome | None:
        """What Lean makes of `block`; `None` when the REPL timed out on it (a runaway
        tactic is a bad candidate, not a reason to end the search)."""
        found = self.checker.cached(state, block)
        if found is not None:
            return found
        self.ensure_budget("lean")
        self.lean_calls += 1
        try:
            return self.checker.check(state, block)
        except ReplTimeoutError:
            return None

    def expand(self, node: _Node) -> tuple[str, ...] | None:
        for candidate in self.propose(node.state):
            outcome = self.outcome(node.state, candidate.text)
            if outcome is None or not accepted(outcome):
                continue
            path = (*node.path, candidate.text)
            if outcome.kind == "closed":
                return path
            child = _Node(node.state.after(outcome), path, node.score + candidate.logprob)
            rolls = self.budget.rollout and triggers(
                self.budget.trigger, node.state.n_goals, child.state.n_goals
            )
            if self.push(child) and rolls:
                proof = self.roll_out(child)
                if proof is not None:
                    return proof
        return None

    def roll_out(self, node: _Node) -> tuple[str, ...] | None:
        """Goal-aware rollout from `node`; every state it reaches joins the queue."""
        path, score = node.path, node.score

        def visit(reached: LeanState, move: Checked) -> bool:
            nonlocal path, score
            path, score = (*path, move.candidate.text), score + move.candidate.logprob
            return self.push(_Node(reached, path, score))

        moves = rollout(
            node.state,
            self.greedy_step,
            self.budget.rollout_depth,
            visit=visit,
            retrigger=self.budget.trigger,
        )
        if closed(moves):
            return (*node.path, *(move.candidate.text for _, move in moves))
        return None

    def greedy_step(self, state: LeanState) -> Checked | None:
        """The policy's favourite block on `state` that Lean accepts: candidates are checked
        in the policy's order and checking stops at the first accepted one, so a rollout
        step costs one Lean call when the favourite works, not k. The others stay unchecked
        until the state is expanded, if it ever is."""
        for candidate in self.propose(state):
            outcome = self.outcome(state, candidate.text)
            if accepted(outcome):
                return Checked(candidate, outcome)
        return None


def best_first(
    policy: ProposalPolicy,
    checker: LeanChecker,
    root: LeanState,
    budget: SearchBudget,
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> SearchResult:
    """Search for blocks that close every goal of `root`.

    Budgets and `cancel` are checked before every expansion, model call and Lean call;
    `on_progress(expansions, max_expansions, elapsed_s)` is called after each expansion.
    Failures of the Lean process other than a timeout on one block propagate.
    """
    return _Search(policy, checker, budget, cancel, on_progress).run(root)
