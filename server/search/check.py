"""Proof states from file text, and candidate blocks checked on them in the Lean REPL.

The text above a declaration (its header: imports, opens, earlier declarations) is
elaborated once and its environment reused for every body below it; the body up to the
cursor gets `sorry` appended, and that sorry's proof state is the state at the cursor.
Candidate blocks run on it as one tactic each. Outcomes are cached by goal text, not by
proof-state id: the same goals in the same environment give the same answer, wherever
they came from. Failures of the Lean process (`LeanProcessError`) are not outcomes: they
propagate, and the caller decides.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from segpilot.lean.goals import GoalState, parse_goals
from segpilot.lean.protocol import (
    Command,
    CommandResponse,
    Message,
    ProofStep,
    ProofStepResponse,
    ReplError,
)
from segpilot.lean.supervisor import SupervisedRepl

HEADER_CACHE_SIZE = 16
LEAN_ERROR_PREFIX = "Lean error:\n"
USES_SORRY = "uses sorry"
CONTAINS_SORRY = "Incomplete: contains sorry"
# Lean 4 prints "declaration uses `sorry`"; older versions quoted it as 'sorry'.
_SORRY_WARNING = re.compile(r"declaration uses [`']sorry[`']")

OutcomeKind = Literal["closed", "progress", "no-progress", "error"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V:
        """The value (raises `KeyError` when absent), now the most recently used."""
        self._items.move_to_end(key)
        return self._items[key]

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


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
    """A flush-left block as one REPL tactic: a single line as it is, several lines as
    `(` + newline + the block indented by 2 + `)`.

    Lean's tactic sequences need every tactic at the same column, so the first tactic must
    not share a line with the parenthesis.
    """
    if "\n" not in block:
        return block
    lines = ("  " + line if line.strip() else "" for line in block.split("\n"))
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
    if reply.is_complete:
        return Outcome("closed")
    if not reply.goals:  # no goal left, yet not complete: e.g. metavariables remain
        return Outcome("error", message=reply.proof_status or "the proof is not complete")
    kind: OutcomeKind = "no-progress" if reply.goals == before.goals else "progress"
    return Outcome(kind, reply.goals, reply.proof_state)


def _our_sorry_position(body: str) -> tuple[int, int]:
    """Where Lean reports the `sorry` appended to `body`: 1-based line, code-point column."""
    return body.count("\n") + 1, len(body) - (body.rfind("\n") + 1)


class LeanChecker:
    """Gets proof states from file text and runs candidate blocks on them, with caches.

    Safe to call from several threads: the caches are guarded by a lock, and the
    `SupervisedRepl` serialises the pipe.
    """

    def __init__(self, repl: SupervisedRepl, *, cache_size: int = 4096) -> None:
        self._repl = repl
        self._lock = threading.Lock()
        self._envs: _Lru[str, int] = _Lru(HEADER_CACHE_SIZE)
        self._states: _Lru[tuple[int | None, str], LeanState | None] = _Lru(cache_size)
        self._outcomes: _Lru[tuple[int | None, str, str], Outcome] = _Lru(cache_size)

    def _header_env(self, header: str) -> int | None:
        """The environment after `header`; `None` when the REPL refused it."""
        with self._lock:
            if header in self._envs:
                return self._envs.get(header)
        reply = self._repl.run(Command(header))
        if isinstance(reply, ReplError):
            return None
        with self._lock:
            self._envs.put(header, reply.env)
        return reply.env

    def _environment(self, header: str) -> tuple[bool, int | None]:
        """(usable, env): an empty header needs no command and runs on a fresh env."""
        if not header.strip():
            return True, None
        env = self._header_env(header)
        return env is not None, env

    def state_at(self, context: ProofContext) -> LeanState | None:
        """The proof state at the end of `context.body`, or `None` when there is none there
        (the cursor is not in a tactic block, the text does not parse, the REPL refused)."""
        usable, env = self._environment(context.header)
        if not usable:
            return None
        key = (env, context.body)
        with self._lock:
            if key in self._states:
                return self._states.get(key)
        reply = self._repl.run(Command(context.body + "sorry", env=env))
        if isinstance(reply, ReplError):
            return None
        where = _our_sorry_position(context.body)
        ours = next(
            (
                s
                for s in reply.sorries
                if s.pos is not None
                and (s.pos.line, s.pos.column) == where
                and s.proof_state is not None
            ),
            None,
        )
        state = None if ours is None else LeanState(ours.proof_state, (ours.goal,), env)
        with self._lock:
            self._states.put(key, state)
        return state

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
        reply = self._repl.run(ProofStep(as_one_tactic(block), state.proof_state))
        outcome = _outcome(state, reply)
        # A refusal that is not Lean's (`Unknown proof state.`) says nothing about the block.
        if not isinstance(reply, ReplError) or reply.message.startswith(LEAN_ERROR_PREFIX):
            with self._lock:
                self._outcomes.put((state.env, state.key(), block), outcome)
        return outcome

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

    def verify(self, header: str, declaration: str) -> tuple[bool, str]:
        """Re-check a finished declaration in command mode (tactic mode has accepted wrong
        proofs before): `(True, "")` when Lean reports no error and no sorry, else
        `(False, why)`."""
        usable, env = self._environment(header)
        if not usable:
            return False, "the REPL refused the header"
        reply = self._repl.run(Command(declaration, env=env))
        if isinstance(reply, ReplError):
            return False, reply.message.removeprefix(LEAN_ERROR_PREFIX)
        return _verdict(reply)

    def stats(self) -> dict[str, int]:
        """Sizes of the caches."""
        with self._lock:
            return {
                "envs": len(self._envs),
                "states": len(self._states),
                "outcomes": len(self._outcomes),
            }

    def close(self) -> None:
        self._repl.close()


def _verdict(reply: CommandResponse) -> tuple[bool, str]:
    if reply.has_errors:
        return False, _error_text(reply.messages)
    if reply.sorries or any(_SORRY_WARNING.search(m.data) for m in reply.messages):
        return False, USES_SORRY
    return True, ""
