"""Proof states from file text, and candidate blocks checked on them in the Lean REPL.

The text above a declaration (its header) is split in two: the import block, elaborated
once per project and import block (imports are what costs tens of seconds and GBs with
Mathlib), and the rest (opens, earlier declarations), continued from that environment and
re-run only when it changes. The body up to the cursor gets `sorry` appended and is sent
with `allTactics`: a tactic `sorry` itself records only the main goal (the REPL's
`InfoTree.sorries` takes `goalsBefore.head!`), but its `tactics` entry holds a proof state
with every goal open there, and a `skip` on that state lists them (the entry's `goals` text
joins them with single newlines, which cannot be split back). Candidate blocks run on it
as exactly one tactic each (`as_one_tactic`). Outcomes are cached by goal text, not by
proof-state id: the same goals in the same environment give the same answer, wherever they
came from. Failures of the Lean process (`LeanProcessError`) are not outcomes: they
propagate, and the caller decides.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from segpilot.lean.errors import LeanProcessError
from segpilot.lean.goals import GoalState, parse_goals
from segpilot.lean.protocol import (
    Command,
    Message,
    ProofStep,
    ProofStepResponse,
    ReplError,
    Sorry,
    TacticInfo,
)
from segpilot.lean.source import split_imports
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.lru import Lru

HEADER_CACHE_SIZE = 16
SORRY = "sorry"
SKIP = "skip"
LEAN_ERROR_PREFIX = "Lean error:\n"
USES_SORRY = "uses sorry"
CONTAINS_SORRY = "Incomplete: contains sorry"
NOT_VERIFIED = "Not verified: more than one initial goal"
# Lean 4 prints "declaration uses `sorry`"; older versions quoted it as 'sorry'.
_SORRY_WARNING = re.compile(r"declaration uses [`']sorry[`']")

OutcomeKind = Literal["closed", "progress", "no-progress", "error"]


@dataclass(frozen=True)
class ProofContext:
    """Where a proof state comes from."""

    header: str
    """The file text above the declaration (imports, opens, earlier declarations)."""
    body: str
    """The declaration from its first character up to the cursor. The text of the cursor's
    line before the cursor is whitespace only (or the body ends right after `by `);
    `sorry` is appended to it verbatim."""


@dataclass(frozen=True)
class LeanState:
    """A proof state held by the REPL, with its goals as Lean printed them."""

    proof_state: int
    """Stable proof-state id of the `SupervisedRepl`."""
    goals: tuple[str, ...]
    env: int | None
    """The environment the declaration was elaborated in (`None`: a fresh one, no header)."""

    @property
    def n_goals(self) -> int:
        return len(self.goals)

    def goal_state(self) -> GoalState:
        """The goals parsed (raises `GoalParseError` on text that is not a goal)."""
        return parse_goals(self.goals)

    def key(self) -> str:
        """The goals as one text: what caches and the search's dedup key on."""
        return "\n\n".join(self.goals)

    def after(self, outcome: Outcome) -> LeanState:
        """The state an outcome with open goals ("progress", "no-progress") leads to."""
        if outcome.proof_state is None:
            raise ValueError(f"a {outcome.kind!r} outcome leads to no proof state")
        return LeanState(outcome.proof_state, outcome.goals, self.env)


@dataclass(frozen=True)
class Outcome:
    """What Lean made of one candidate block on one state."""

    kind: OutcomeKind
    goals: tuple[str, ...] = ()
    """Open goals after the block (none when "closed")."""
    proof_state: int | None = None
    """The state to continue from ("progress" and "no-progress")."""
    message: str = ""
    """Lean's error text ("error")."""

    @property
    def n_goals(self) -> int:
        return len(self.goals)


def as_one_tactic(block: str) -> str:
    """A flush-left block as exactly one REPL tactic: `(` + newline + the block indented by
    2 + `)`, always, one-liners included.

    The REPL parses its `tactic` string as one tactic that must consume the whole input
    (`runParserCategory ... tactic`, REPL/Snapshots.lean), so `constructor\nexact hp` and
    `simp; rfl` fail unwrapped, while a parenthesised sequence is one tactic. Its tactics
    must share one column, so the first must not share a line with the parenthesis.
    """
    lines = ("  " + line if line.strip() else "" for line in block.strip("\n").split("\n"))
    return "(\n" + "\n".join(lines) + ")"


def _error_text(messages: Sequence[Message]) -> str:
    return "\n".join(m.data for m in messages if m.is_error)


def _outcome(before: LeanState, reply: ProofStepResponse | ReplError) -> Outcome:
    if isinstance(reply, ReplError):
        return Outcome("error", message=reply.message.removeprefix(LEAN_ERROR_PREFIX))
    if reply.has_errors:
        return Outcome("error", message=_error_text(reply.messages))
    if reply.sorries or reply.proof_status == CONTAINS_SORRY:
        return Outcome("error", message=USES_SORRY)
    if reply.is_complete or (not reply.goals and reply.proof_status == NOT_VERIFIED):
        # A state with several root goals (every goal at the cursor) is never verified by
        # the REPL (Main.lean `getProofStatus`); no goal, error or sorry is left, and a
        # finished proof is re-checked in command mode before it is written anywhere.
        return Outcome("closed")
    if not reply.goals:  # no goal left, yet not complete: e.g. metavariables remain
        return Outcome("error", message=reply.proof_status or "the proof is not complete")
    kind: OutcomeKind = "no-progress" if reply.goals == before.goals else "progress"
    return Outcome(kind, reply.goals, reply.proof_state)


def with_hole(body: str) -> tuple[str, tuple[int, int]]:
    """`body` with a `sorry` appended (after a space when it ends in a word, as `:= by`
    does: `bysorry` would be one identifier), and where Lean reports that sorry: 1-based
    line, code-point column."""
    if body and not body[-1].isspace():
        body += " "
    return body + SORRY, (body.count("\n") + 1, len(body) - (body.rfind("\n") + 1))


E = TypeVar("E", Sorry, TacticInfo)


def _entry_at(entries: Sequence[E], where: tuple[int, int]) -> E | None:
    """The reply entry (a sorry, an allTactics tactic) at `where` that has a proof state."""
    return next(
        (
            e
            for e in entries
            if e.pos is not None
            and (e.pos.line, e.pos.column) == where
            and e.proof_state is not None
        ),
        None,
    )


class StaleStateError(LeanProcessError):
    """A proof state the checker held is gone from the REPL (its records were bounded, or
    it restarted without them)."""


class LeanChecker:
    """Gets proof states from file text and runs candidate blocks on them, with caches.

    Safe to call from several threads: the caches are guarded by a lock, and the
    `SupervisedRepl` serialises the pipe. `calls` counts the REPL requests by kind
    (`imports`, `header`, `state`, `goals`, `check`, `verify`).
    """

    def __init__(
        self,
        repl: SupervisedRepl,
        *,
        cache_size: int = 4096,
        elaboration_timeout_s: float | None = None,
    ) -> None:
        self._repl = repl
        self._lock = threading.Lock()
        self._elaboration_timeout_s = elaboration_timeout_s
        self._imports: Lru[str, int | None] = Lru(HEADER_CACHE_SIZE)
        self._headers: Lru[tuple[int | None, str], int | None] = Lru(HEADER_CACHE_SIZE)
        self._states: Lru[tuple[int | None, str, bool], LeanState | None] = Lru(cache_size)
        self._outcomes: Lru[tuple[int | None, str, str], Outcome] = Lru(cache_size)
        self.calls: Counter[str] = Counter()

    def _run(self, kind: str, request: Command | ProofStep, timeout: float | None = None) -> Any:
        """The REPL's reply to `request`, counted under `kind`."""
        with self._lock:
            self.calls[kind] += 1
        return self._repl.run(request, timeout=timeout)

    def _cached_env(
        self, cache: Lru[Any, int | None], key: Any, kind: str, request: Command, timeout=None
    ) -> int | None:
        """The env after `request`, run once per key; `None` when Lean refused it."""
        with self._lock:
            if key in cache:
                return cache.get(key)
        reply = self._run(kind, request, timeout)
        env = None if isinstance(reply, ReplError) else reply.env
        with self._lock:
            cache.put(key, env)
        return env

    def _environment(self, header: str) -> tuple[bool, int | None]:
        """(usable, env) after `header`: its import block from a per-project cache, the rest
        continued from there. Without imports or anything else there is nothing to run: a
        fresh env (`None`)."""
        imports, rest = split_imports(header)
        env: int | None = None
        if imports.strip():
            env = self._cached_env(
                self._imports, imports, "imports", Command(imports), self._elaboration_timeout_s
            )
            if env is None:
                return False, None
        if not rest.strip():
            return True, env
        # The declarations above the cursor can take as long to elaborate as the imports.
        request = Command(rest, env=env)
        after = self._cached_env(
            self._headers, (env, rest), "header", request, self._elaboration_timeout_s
        )
        return after is not None, after

    def state_at(self, context: ProofContext, *, hole: bool = False) -> LeanState | None:
        """The proof state at the end of `context.body`, with every goal open there, or
        `None` when there is none (the cursor is not in a tactic block, the text does not
        parse, the REPL refused). With `hole`, the state of a `sorry` written there
        instead: its main goal alone, what a proof replacing that `sorry` must close."""
        usable, env = self._environment(context.header)
        if not usable:
            return None
        key = (env, context.body, hole)
        with self._lock:
            if key in self._states:
                return self._states.get(key)
        state = self._hole_of(context.body, env) if hole else self._state_of(context.body, env)
        with self._lock:
            self._states.put(key, state)
        return state

    def _hole_of(self, body: str, env: int | None) -> LeanState | None:
        text, where = with_hole(body)
        reply = self._run("state", Command(text, env=env))
        if isinstance(reply, ReplError):
            return None
        ours = _entry_at(reply.sorries, where)
        if ours is None or ours.proof_state is None:
            return None
        return LeanState(ours.proof_state, (ours.goal,), env)

    def _state_of(self, body: str, env: int | None) -> LeanState | None:
        text, where = with_hole(body)
        reply = self._run("state", Command(text, env=env, all_tactics=True))
        if isinstance(reply, ReplError):
            return None
        ours = _entry_at([t for t in reply.tactics if t.tactic.strip() == SORRY], where)
        if ours is None or ours.proof_state is None:
            return None
        listed = self._run("goals", ProofStep(SKIP, ours.proof_state))
        if isinstance(listed, ReplError) or listed.has_errors:
            return None
        return LeanState(listed.proof_state, tuple(listed.goals), env)

    def cached(self, state: LeanState, block: str) -> Outcome | None:
        """The outcome of `block` on `state`'s goals if it is known, without asking Lean."""
        key = (state.env, state.key(), block)
        with self._lock:
            return self._outcomes.get(key) if key in self._outcomes else None

    def check(self, state: LeanState, block: str) -> Outcome:
        """Run `block` on `state` as one tactic (or answer from the cache)."""
        found = self.cached(state, block)
        if found is not None:
            return found
        reply = self._run("check", ProofStep(as_one_tactic(block), state.proof_state))
        if isinstance(reply, ReplError) and not reply.message.startswith(LEAN_ERROR_PREFIX):
            # Not Lean's verdict on the block (`Unknown proof state.`: the supervisor no
            # longer holds the state): the state is forgotten here too, and the caller
            # gets a Lean failure rather than a list of rejected candidates.
            self._forget(state.proof_state)
            raise StaleStateError(f"the REPL no longer knows proof state {state.proof_state}")
        outcome = _outcome(state, reply)
        with self._lock:
            self._outcomes.put((state.env, state.key(), block), outcome)
        return outcome

    def _forget(self, proof_state: int) -> None:
        with self._lock:
            self._states.drop_where(lambda s: s is not None and s.proof_state == proof_state)

    def check_many(
        self,
        state: LeanState,
        blocks: Sequence[str],
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> list[Outcome | None]:
        """`check` each block in turn; `None` for the blocks not run because `cancel` was
        set or `time.monotonic()` passed `deadline` first."""
        out: list[Outcome | None] = []
        for block in blocks:
            if (cancel is not None and cancel.is_set()) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                break
            out.append(self.check(state, block))
        return out + [None] * (len(blocks) - len(out))

    def longest_accepted(
        self,
        state: LeanState,
        tactics: Sequence[str],
        *,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
    ) -> tuple[int, Outcome] | None:
        """For a block that failed as a whole: its longest proper prefix of top-level
        `tactics` that Lean runs without error, as (number of tactics, outcome), trying the
        longest first; None when none does (or `cancel`/`deadline` stopped the search).

        A segment's later lines are the model's guess at what follows; its first moves
        can be right when they are not, and each prefix is one cached REPL call."""
        for n in range(len(tactics) - 1, 0, -1):
            if (cancel is not None and cancel.is_set()) or (
                deadline is not None and time.monotonic() >= deadline
            ):
                return None
            outcome = self.check(state, "\n".join(tactics[:n]))
            if outcome.kind != "error":
                return n, outcome
        return None

    def final_check(
        self, header: str, declaration: str, open_holes: Sequence[tuple[int, int]] = ()
    ) -> str:
        """Why Lean refuses `declaration` in command mode after `header` ("" when it does
        not): an error, or a `sorry` anywhere but at `open_holes` (0-based line, column in
        the declaration: the holes deliberately left open). Tactic mode has accepted wrong
        proofs before: every finished proof is checked this way before it is used."""
        usable, env = self._environment(header)
        if not usable:
            return "the REPL refused the text above the declaration"
        reply = self._run("verify", Command(declaration, env=env))
        if isinstance(reply, ReplError):
            return reply.message.removeprefix(LEAN_ERROR_PREFIX)
        if reply.has_errors:
            return _error_text(reply.messages)
        allowed = set(open_holes)
        stray = [
            s
            for s in reply.sorries
            if s.pos is None or (s.pos.line - 1, s.pos.column) not in allowed
        ]
        if stray or (not allowed and any(_SORRY_WARNING.search(m.data) for m in reply.messages)):
            return USES_SORRY
        return ""

    def forget_results(self) -> None:
        """Drop the proof states and outcomes learnt so far (the environments stay)."""
        with self._lock:
            self._states.clear()
            self._outcomes.clear()

    def stats(self) -> dict[str, int]:
        """Sizes of the caches, and the REPL requests made by kind."""
        with self._lock:
            return {
                "envs": len(self._imports) + len(self._headers),
                "states": len(self._states),
                "outcomes": len(self._outcomes),
                **{f"calls.{kind}": n for kind, n in sorted(self.calls.items())},
            }

    def close(self) -> None:
        self._repl.close()
