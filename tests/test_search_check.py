"""The Lean checker against the fake REPL over real pipes: states, outcomes, caches, verify."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, PYTHON
from fakes.graphs import (
    error_edge,
    plain_command,
    sorry_command,
    sorry_edge,
    tactic_edge,
    write_graph,
)

from segpilot.lean.errors import ReplCrashedError
from segpilot.lean.protocol import Command, ProofStep, Request
from segpilot.lean.repl import ReplSettings
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.search.check import (
    LeanChecker,
    LeanState,
    ProofContext,
    StaleStateError,
    as_one_tactic,
)

FAKE = FAKES / "fake_repl.py"
HEADER = "def double (n : Nat) : Nat := n + n\n"
OTHER_HEADER = "def triple (n : Nat) : Nat := n + n + n\n"
BODY = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
SAME_GOAL_BODY = "theorem and_swap' (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
HAVE_BODY = (
    "theorem and_swap₂ (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  have h : p := sorry\n  "
)
BROKEN_BODY = "theorem broken : := by\n  "
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
HAVE_GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ p"
AFTER_HAVE = "p q : Prop\nhp : p\nhq : q\nh : p\n⊢ q ∧ p"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ q"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ p"
PROOF = "constructor\nexact hq\nexact hp"
DECLARATION = BODY + PROOF.replace("\n", "\n  ")
MISMATCH = "type mismatch\n  hp\nhas type\n  p : Prop\nbut is expected to have type\n  q ∧ p : Prop"


def and_swap_graph(path: Path, tactics: Sequence[dict[str, Any]] = ()) -> Path:
    """`and_swap` below two headers and none, with the edges of its proof and some failures."""
    commands = [
        plain_command(HEADER),
        plain_command(OTHER_HEADER),
        *(
            sorry_command(b + "sorry", GOAL, requires=[HEADER], all_tactics=True)
            for b in (BODY, SAME_GOAL_BODY)
        ),
        sorry_command(BODY + "sorry", GOAL, requires=[OTHER_HEADER], all_tactics=True),
        sorry_command(BODY + "sorry", GOAL, all_tactics=True),
        sorry_command(
            HAVE_BODY + "sorry",
            HAVE_GOAL,
            AFTER_HAVE,
            requires=[HEADER],
            all_tactics=True,
            goals_before={"have h : p := sorry": GOAL},
        ),
        plain_command(
            BROKEN_BODY + "sorry",
            requires=[HEADER],
            errors=["unexpected token ':='; expected term"],
            all_tactics=True,
        ),
        sorry_command(BODY + "sorry", GOAL, requires=[HEADER]),
        plain_command(DECLARATION, requires=[HEADER]),
        plain_command(BODY + "exact hp", requires=[HEADER], errors=[MISMATCH]),
    ]
    edges = [
        tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
        tactic_edge([LEFT, RIGHT], "exact hq", [RIGHT]),
        tactic_edge([RIGHT], "exact hp", []),
        tactic_edge([GOAL], "skip", [GOAL]),
        sorry_edge([GOAL], "exact sorry"),
        error_edge([GOAL], "exact hp", MISMATCH),
        *tactics,
    ]
    return write_graph(path, commands, edges)


class CountingRepl(SupervisedRepl):
    """A supervised fake REPL that records every request, and can act after each reply."""

    def __init__(self, settings: ReplSettings) -> None:
        super().__init__(settings)
        self.sent: list[Request] = []
        self.after: Callable[[Request], None] = lambda request: None

    def run(self, request: Request, *, timeout: float | None = None) -> Any:
        self.sent.append(request)
        reply = super().run(request, timeout=timeout)
        self.after(request)
        return reply

    def count(self, kind: type) -> int:
        return sum(isinstance(r, kind) for r in self.sent)


def fake_repl(tmp_path: Path, graph: Path, **overrides: Any) -> CountingRepl:
    values = {"timeout_s": 10.0, "memory_limit_mb": None, "restart_backoff_s": 0.0, **overrides}
    command = [PYTHON, str(FAKE), str(graph), "--unrecorded-tactics", "error"]
    return CountingRepl(ReplSettings(command=command, project_dir=tmp_path, **values))


@pytest.fixture
def repl(tmp_path: Path) -> Iterator[CountingRepl]:
    with fake_repl(tmp_path, and_swap_graph(tmp_path / "graph.json")) as running:
        yield running


@pytest.fixture
def checker(repl: CountingRepl) -> LeanChecker:
    return LeanChecker(repl)


def root_state(checker: LeanChecker, body: str = BODY, header: str = HEADER) -> LeanState:
    state = checker.state_at(ProofContext(header, body))
    assert state is not None
    return state


# --- proof states from file text -------------------------------------------------------------


def test_header_env_is_reused_across_bodies(checker: LeanChecker, repl: CountingRepl) -> None:
    first = root_state(checker)
    second = root_state(checker, SAME_GOAL_BODY)
    assert first.env == second.env is not None
    assert first.proof_state != second.proof_state
    assert (first.goals, first.n_goals, first.key()) == ((GOAL,), 1, GOAL)
    assert first.goal_state().texts() == [GOAL]
    assert repl.count(Command) == 3  # one header, two bodies
    assert repl.count(ProofStep) == 2  # a `skip` on each to list its goals
    assert root_state(checker) == first  # the same text again costs nothing
    assert repl.count(Command) == 3
    assert checker.stats() == {
        "envs": 1,
        "states": 2,
        "outcomes": 0,
        "calls.goals": 2,
        "calls.header": 1,
        "calls.state": 2,
    }


def test_changed_header_gets_its_own_env(checker: LeanChecker, repl: CountingRepl) -> None:
    first = root_state(checker)
    other = root_state(checker, header=OTHER_HEADER)
    assert first.env != other.env
    assert [r.cmd for r in repl.sent if isinstance(r, Command)] == [
        HEADER,
        BODY + "sorry",
        OTHER_HEADER,
        BODY + "sorry",
    ]
    assert checker.stats()["envs"] == 2


def test_empty_header_runs_the_body_on_a_fresh_env(
    checker: LeanChecker, repl: CountingRepl
) -> None:
    state = root_state(checker, header="\n")
    assert state.env is None and state.goals == (GOAL,)
    assert repl.sent[0] == Command(BODY + "sorry", all_tactics=True)
    assert [type(r) for r in repl.sent] == [Command, ProofStep]


def test_state_is_the_sorry_at_the_cursor_not_an_earlier_one(checker: LeanChecker) -> None:
    assert root_state(checker, HAVE_BODY).goals == (AFTER_HAVE,)


def test_body_without_a_sorry_state_gives_none(checker: LeanChecker) -> None:
    assert checker.state_at(ProofContext(HEADER, BROKEN_BODY)) is None


# --- candidate blocks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "sent"),
    [
        ("exact hp", "(\n  exact hp)"),
        ("constructor\nexact hq", "(\n  constructor\n  exact hq)"),
        (
            "cases h with\n| inl a => exact a\n| inr b =>\n  exact b",
            "(\n  cases h with\n  | inl a => exact a\n  | inr b =>\n    exact b)",
        ),
        ("constructor\n\nexact hq", "(\n  constructor\n\n  exact hq)"),
    ],
)
def test_as_one_tactic_puts_every_tactic_in_one_column(block: str, sent: str) -> None:
    assert as_one_tactic(block) == sent


@pytest.mark.parametrize(
    ("block", "kind", "goals", "message"),
    [
        (PROOF, "closed", (), ""),
        ("constructor", "progress", (LEFT, RIGHT), ""),
        ("skip", "no-progress", (GOAL,), ""),
        ("frobnicate", "error", (), "<input>:2:3: unknown tactic"),
        ("exact hp", "error", (), MISMATCH),
        ("exact sorry", "error", (), "uses sorry"),
    ],
)
def test_check_tells_each_outcome_kind(
    checker: LeanChecker, block: str, kind: str, goals: tuple[str, ...], message: str
) -> None:
    outcome = checker.check(root_state(checker), block)
    assert (outcome.kind, outcome.goals, outcome.message) == (kind, goals, message)
    assert (outcome.proof_state is not None) == (kind in ("progress", "no-progress"))


def test_outcome_cache_hit_does_not_call_the_repl(checker: LeanChecker, repl: CountingRepl) -> None:
    state = root_state(checker)
    same_goal = root_state(checker, SAME_GOAL_BODY)
    assert checker.cached(state, "constructor") is None
    first = checker.check(state, "constructor")
    assert checker.check(state, "constructor") == first
    assert checker.check(same_goal, "constructor") == first  # cached by goal text
    assert checker.cached(same_goal, "constructor") == first
    assert checker.calls["check"] == 1
    assert checker.stats()["outcomes"] == 1


def test_a_state_the_repl_forgot_is_a_lean_failure_not_a_verdict(checker: LeanChecker) -> None:
    root = root_state(checker)
    root_state(checker, SAME_GOAL_BODY)  # several cached states to look through
    stale = LeanState(999, root.goals, root.env)
    with pytest.raises(StaleStateError, match="999"):
        checker.check(stale, "constructor")
    assert checker.cached(stale, "constructor") is None
    assert checker.check(root, "constructor").kind == "progress"


def test_progress_state_continues_the_proof(checker: LeanChecker) -> None:
    root = root_state(checker)
    split = checker.check(root, "constructor")
    assert split.proof_state is not None
    after = LeanState(split.proof_state, split.goals, root.env)
    assert checker.check(after, "exact hq\nexact hp").kind == "closed"


def test_check_many_stops_when_cancelled(checker: LeanChecker, repl: CountingRepl) -> None:
    state = root_state(checker)
    cancel = threading.Event()
    repl.after = lambda request: cancel.set() if isinstance(request, ProofStep) else None
    outcomes = checker.check_many(state, ["skip", "constructor", PROOF], cancel=cancel)
    assert [o and o.kind for o in outcomes] == ["no-progress", None, None]
    assert checker.calls["check"] == 1


def test_check_many_stops_at_the_deadline(checker: LeanChecker, repl: CountingRepl) -> None:
    state = root_state(checker)
    assert checker.check_many(state, ["skip", PROOF], deadline=time.monotonic() - 1) == [
        None,
        None,
    ]
    assert checker.calls["check"] == 0
    outcomes = checker.check_many(state, ["skip", PROOF], deadline=time.monotonic() + 60)
    assert [o and o.kind for o in outcomes] == ["no-progress", "closed"]


def test_longest_accepted_prefix_of_a_failed_block(checker: LeanChecker) -> None:
    state = root_state(checker)
    tactics = ("constructor", "exact hq", "exact hq")
    assert checker.check(state, "\n".join(tactics)).kind == "error"
    n, outcome = checker.longest_accepted(state, tactics) or (0, None)
    assert n == 2 and outcome is not None
    assert (outcome.kind, outcome.goals) == ("progress", (RIGHT,))
    # The first tactic fails: no prefix is accepted.
    assert checker.longest_accepted(state, ("exact hp", "constructor")) is None
    calls = checker.calls["check"]
    assert checker.longest_accepted(state, tactics, deadline=time.monotonic() - 1) is None
    assert checker.calls["check"] == calls


@pytest.mark.parametrize(
    ("declaration", "verdict"),
    [
        (DECLARATION, (True, "")),
        (BODY + "exact hp", (False, MISMATCH)),
        (BODY + "sorry", (False, "uses sorry")),
    ],
)
def test_final_check_rechecks_a_declaration_in_command_mode(
    checker: LeanChecker, declaration: str, verdict: tuple[bool, str]
) -> None:
    why = checker.final_check(HEADER, declaration)
    assert (not why, why) == verdict


def test_process_crash_propagates_and_is_not_cached(tmp_path: Path) -> None:
    graph = and_swap_graph(tmp_path / "graph.json")
    with fake_repl(tmp_path, graph, max_restarts=0) as repl:
        checker = LeanChecker(repl)
        state = root_state(checker)
        with pytest.raises(ReplCrashedError):
            checker.check(state, "fake:crash")
        assert checker.cached(state, "fake:crash") is None
        assert checker.check(state, "constructor").kind == "progress"  # after a restart


def test_close_stops_the_repl(checker: LeanChecker, repl: CountingRepl) -> None:
    root_state(checker)
    assert repl.is_alive()
    checker.close()
    assert not repl.is_alive()


# --- what Lean is sent ------------------------------------------------------------------------


def test_every_block_is_sent_as_exactly_one_parenthesised_tactic(
    checker: LeanChecker, repl: CountingRepl
) -> None:
    state = root_state(checker)
    checker.check(state, "constructor")
    checker.check(state, PROOF)
    sent = [r.tactic for r in repl.sent if isinstance(r, ProofStep) and r.tactic != "skip"]
    assert sent == ["(\n  constructor)", "(\n  constructor\n  exact hq\n  exact hp)"]
    assert as_one_tactic("simp; rfl") == "(\n  simp; rfl)"
    assert as_one_tactic("cases h\n· exact a\n  rfl") == "(\n  cases h\n  · exact a\n    rfl)"


IMPORTS = "import Init\n"
REST = "open Nat\n\ndef double (n : Nat) : Nat := n + n\n"
OTHER_REST = "open Nat\n\ndef double (n : Nat) : Nat := 2 * n\n"


def test_the_import_block_is_elaborated_once_and_the_rest_continued(tmp_path: Path) -> None:
    commands = [
        plain_command(IMPORTS),
        *(plain_command(rest, requires=[IMPORTS]) for rest in (REST, OTHER_REST)),
        *(
            sorry_command(BODY + "sorry", GOAL, requires=[rest], all_tactics=True)
            for rest in (REST, OTHER_REST)
        ),
    ]
    graph = write_graph(tmp_path / "g.json", commands, [tactic_edge([GOAL], "skip", [GOAL])])
    with fake_repl(tmp_path, graph) as repl:
        checker = LeanChecker(repl)
        first = root_state(checker, header=IMPORTS + REST)
        second = root_state(checker, header=IMPORTS + OTHER_REST)  # an edit above the cursor
        again = root_state(checker, header=IMPORTS + REST)
        checker.close()
    assert first.goals == second.goals == (GOAL,) and again == first
    cmds = [(r.cmd, r.env is None) for r in repl.sent if isinstance(r, Command)]
    assert cmds[0] == (IMPORTS, True)  # imports need a fresh environment
    assert [c for c, _ in cmds].count(IMPORTS) == 1
    assert checker.calls["imports"] == 1 and checker.calls["header"] == 2
    assert all(not fresh for c, fresh in cmds[1:])  # the rest runs on the imports' env


BY_LINE = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by"


def test_a_cursor_right_after_by_gets_its_state(tmp_path: Path) -> None:
    graph = write_graph(
        tmp_path / "g.json", [sorry_command(BY_LINE + " sorry", GOAL, all_tactics=True)]
    )
    with fake_repl(tmp_path, graph) as repl:
        checker = LeanChecker(repl)
        state = checker.state_at(ProofContext("", BY_LINE))
        checker.close()
    assert state is not None and state.goals == (GOAL,)  # not `bysorry`, one identifier


AFTER_SPLIT = BODY + "constructor\n  "


def split_graph(path: Path) -> Path:
    return write_graph(
        path,
        [
            sorry_command(
                AFTER_SPLIT + "sorry",
                [LEFT, RIGHT],
                all_tactics=True,
                goals_before={"constructor": GOAL},
            ),
            sorry_command(AFTER_SPLIT + "sorry", [LEFT, RIGHT]),
        ],
        [tactic_edge([LEFT], "exact hq", []), tactic_edge([RIGHT], "exact hp", [])],
    )


def test_closing_every_goal_of_a_several_goal_state_counts_as_closed(tmp_path: Path) -> None:
    """The REPL never verifies a state with several root goals ("Not verified: more than
    one initial goal"); closing them all without error or sorry is closing them."""
    with fake_repl(tmp_path, split_graph(tmp_path / "g.json")) as repl:
        checker = LeanChecker(repl)
        state = checker.state_at(ProofContext("", AFTER_SPLIT))
        assert state is not None and state.goals == (LEFT, RIGHT)
        both = checker.check(state, "· exact hq\n· exact hp")
        one = checker.check(state, "exact hq")
        checker.close()
    assert both.kind == "closed"
    assert (one.kind, one.goals) == ("progress", (RIGHT,))


def test_a_hole_state_is_the_sorrys_own_main_goal(tmp_path: Path) -> None:
    with fake_repl(tmp_path, split_graph(tmp_path / "g.json")) as repl:
        checker = LeanChecker(repl)
        hole = checker.state_at(ProofContext("", AFTER_SPLIT), hole=True)
        cursor = checker.state_at(ProofContext("", AFTER_SPLIT))
        closed = checker.check(hole, "exact hq") if hole is not None else None
        checker.close()
    assert hole is not None and hole.goals == (LEFT,)
    assert cursor is not None and cursor.goals == (LEFT, RIGHT)
    assert closed is not None and closed.kind == "closed"
