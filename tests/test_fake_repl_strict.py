"""The fake REPL is as strict as the real one: it parses a tactic as Lean's parser does (one
tactic, then end of input; columns and nesting), runs blocks tactic by tactic, keeps only
the main goal at a sorry and every goal in an `allTactics` entry, and uses Lean's texts.

Every test talks to `tests/fakes/fake_repl.py` over real pipes. The facts cite the REPL at
commit 8948401 (REPL/Main.lean, REPL/Snapshots.lean, REPL/Lean/InfoTree.lean) and its test
transcripts in tests/fixtures/lean-repl-transcripts/core.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, FIXTURES, PYTHON
from fakes import fake_repl
from fakes.graphs import (
    error_edge,
    plain_command,
    sorry_command,
    sorry_edge,
    tactic_edge,
    thrown_edge,
    write_graph,
)

FAKE = FAKES / "fake_repl.py"
BODY = "theorem and_intro (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  "
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ p"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ q"
APP_BODY = "theorem app (P : Nat → Prop) (f : ∀ n, P n) (x : Nat) : P x := by\n  "
APP = "P : Nat → Prop\nf : ∀ (n : Nat), P n\nx : Nat\n⊢ P x"
MISMATCH = "type mismatch\n  hq\nhas type\n  q : Prop\nbut is expected to have type\n  p : Prop"
EXPECTED_END = "Lean error:\n<input>:{}: expected end of input"


def _graph(path: Path) -> Path:
    commands = [
        sorry_command(BODY + "sorry", GOAL),
        sorry_command(BODY + "constructor\n  sorry", [LEFT, RIGHT]),
        sorry_command(
            BODY + "constructor\n  sorry",
            [LEFT, RIGHT],
            all_tactics=True,
            goals_before={"constructor": GOAL},
        ),
        sorry_command(APP_BODY + "sorry", APP),
        plain_command("def f := 37"),
    ]
    edges = [
        tactic_edge(GOAL, "constructor", [LEFT, RIGHT]),
        tactic_edge(LEFT, "exact hp", []),
        tactic_edge(RIGHT, "exact hq", []),
        tactic_edge(LEFT, "assumption", []),
        tactic_edge(RIGHT, "assumption", []),
        error_edge(LEFT, "exact hq", MISMATCH),
        thrown_edge(LEFT, "apply hq", "Tactic `apply` failed: could not unify"),
        tactic_edge(APP, "exact (f x)", []),
        tactic_edge(APP, "exact\n  f x", []),
    ]
    return write_graph(path, commands, edges)


class Fake:
    """The fake REPL as a child process, spoken to over its pipes."""

    def __init__(self, graph: Path, cwd: Path, *flags: str) -> None:
        self.popen = subprocess.Popen(
            [PYTHON, str(FAKE), str(graph), *flags],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.watchdog = threading.Timer(30, self.popen.kill)
        self.watchdog.start()

    def send(self, request: dict[str, Any] | str) -> dict[str, Any] | None:
        """One request and its reply; None when the process ended instead."""
        assert self.popen.stdin is not None and self.popen.stdout is not None
        text = request if isinstance(request, str) else json.dumps(request, ensure_ascii=False)
        try:
            self.popen.stdin.write(text + "\n\n")
            self.popen.stdin.flush()
        except BrokenPipeError:
            return None
        lines = []
        while True:
            line = self.popen.stdout.readline()
            if not line:
                return None
            if not line.strip():
                return json.loads("".join(lines))
            lines.append(line)

    def ended(self) -> tuple[int, str]:
        """The exit code and stderr once the process has ended."""
        assert self.popen.stderr is not None
        code = self.popen.wait(timeout=20)
        return code, self.popen.stderr.read()

    def close(self) -> None:
        self.watchdog.cancel()
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    return _graph(tmp_path / "graph.json")


@pytest.fixture
def fake(graph: Path, tmp_path: Path) -> Iterator[Fake]:
    running = Fake(graph, tmp_path)
    yield running
    running.close()


@pytest.fixture
def lenient(graph: Path, tmp_path: Path) -> Iterator[Fake]:
    """Unrecorded tactics get Lean's elaboration-error reply instead of ending the process."""
    running = Fake(graph, tmp_path, "--unrecorded-tactics", "error")
    yield running
    running.close()


def _state(fake: Fake, body: str = BODY) -> int:
    reply = fake.send({"cmd": body + "sorry"})
    assert reply is not None
    return reply["sorries"][0]["proofState"]


def _split(fake: Fake) -> int:
    """A proof state with the goals [LEFT, RIGHT]."""
    reply = fake.send({"tactic": "constructor", "proofState": _state(fake)})
    assert reply is not None and reply["goals"] == [LEFT, RIGHT]
    return reply["proofState"]


# --- one tactic, then end of input (Snapshots.lean `runString`: `runParserCategory`) -------


def test_second_line_after_a_no_argument_tactic_is_expected_end_of_input(fake: Fake) -> None:
    reply = fake.send({"tactic": "constructor\nexact hp", "proofState": _state(fake)})
    assert reply == {"message": EXPECTED_END.format("2:0")}


def test_identifiers_on_the_next_line_continue_the_term(lenient: Fake) -> None:
    # `intro h exact h`: one tactic (tactic names are not reserved words), which fails to
    # run: an elaboration error, not a parse error.
    reply = lenient.send({"tactic": "intro h\nexact h", "proofState": _state(lenient)})
    assert reply is not None and "message" not in reply
    assert [m["severity"] for m in reply["messages"]] == ["error"]
    assert reply["proofStatus"] == fake_repl.CONTAINS_SORRY and reply["goals"] == []


def test_identifiers_on_the_next_line_are_unrecorded_not_misparsed(fake: Fake) -> None:
    fake.send({"tactic": "intro h\nexact h", "proofState": _state(fake)})
    code, stderr = fake.ended()
    assert code == 3 and "no recorded reply for tactic 'intro h\\nexact h'" in stderr


@pytest.mark.parametrize(
    ("tactic", "where"),
    [
        ("constructor; exact hp", "1:11"),
        ("ext1 x; ext1 n", "1:6"),  # leanprover-community/repl issue #43
        ("exact hp)", "1:8"),
        ("constructor\n· exact hp", "2:0"),
        ("have h : p := by exact hp\nexact h", "2:0"),
        ("(\n  constructor)\nexact hp", "3:0"),
    ],
)
def test_what_follows_the_one_tactic_is_expected_end_of_input(
    fake: Fake, tactic: str, where: str
) -> None:
    assert fake.send({"tactic": tactic, "proofState": _state(fake)}) == {
        "message": EXPECTED_END.format(where)
    }


def test_then_combinator_is_one_tactic(fake: Fake) -> None:
    reply = fake.send({"tactic": "constructor <;> assumption", "proofState": _state(fake)})
    assert reply is not None
    assert (reply["goals"], reply["proofStatus"]) == ([], "Completed")


@pytest.mark.parametrize(
    ("tactic", "where"),
    [("frobnicate", "1:1"), ("  frobnicate h", "1:3"), ("(\n  constructor\n  frobnicate)", "3:3")],
)
def test_unknown_word_is_lean_unknown_tactic_in_either_mode(
    graph: Path, tmp_path: Path, tactic: str, where: str
) -> None:
    # Tactic.lean `unknown`: the error sits one code point after the word's start
    # (transcript `unknown_tactic`: `exat 42` -> `<input>:1:1: unknown tactic`).
    for flags in ((), ("--unrecorded-tactics", "error")):
        running = Fake(graph, tmp_path, *flags)
        try:
            reply = running.send({"tactic": tactic, "proofState": _state(running)})
        finally:
            running.close()
        assert reply == {"message": f"Lean error:\n<input>:{where}: unknown tactic"}


def test_other_syntax_errors_are_located_but_not_worded(graph: Path, tmp_path: Path) -> None:
    # `exact` at column 4 is no argument of `constructor` and not in the block's column.
    block = "(\n  constructor\n    exact hp)"
    running = Fake(graph, tmp_path)
    try:
        running.send({"tactic": block, "proofState": _state(running)})
        code, stderr = running.ended()
    finally:
        running.close()
    assert code == 3 and "does not parse at 3:4" in stderr
    running = Fake(graph, tmp_path, "--unrecorded-tactics", "error")
    try:
        reply = running.send({"tactic": block, "proofState": _state(running)})
    finally:
        running.close()
    assert reply is not None and reply["message"].startswith("Lean error:\n<input>:3:4: ")


# --- blocks run tactic by tactic, as one step ----------------------------------------------


def test_parenthesised_block_runs_its_tactics_in_order_as_one_step(fake: Fake) -> None:
    state = _state(fake)
    block = "(\n  constructor\n  exact hp\n  exact hq)"
    reply = fake.send({"tactic": block, "proofState": state})
    assert reply == {"proofStatus": "Completed", "proofState": state + 1, "goals": []}


def test_block_stops_at_the_first_tactic_that_throws(fake: Fake) -> None:
    reply = fake.send({"tactic": "(\n  apply hq\n  exact hp)", "proofState": _split(fake)})
    assert reply == {"message": "Lean error:\nTactic `apply` failed: could not unify"}


def test_parenthesis_inside_a_term_is_kept(fake: Fake) -> None:
    reply = fake.send({"tactic": "(\n  exact (f x))", "proofState": _state(fake, APP_BODY)})
    assert reply is not None and reply["proofStatus"] == "Completed"


def test_deeper_lines_continue_the_tactic_above(fake: Fake) -> None:
    # recorded as `exact\n  f x`; in the block it sits at column 2, its continuation at 4
    reply = fake.send({"tactic": "(\n  exact\n    f x)", "proofState": _state(fake, APP_BODY)})
    assert reply is not None and reply["proofStatus"] == "Completed"


def test_cdot_focuses_the_main_goal(fake: Fake) -> None:
    split = _split(fake)
    reply = fake.send({"tactic": "· exact hp", "proofState": split})
    assert reply is not None and reply["goals"] == [RIGHT]
    reply = fake.send({"tactic": "· exact hq", "proofState": split})  # the wrong hypothesis
    assert reply is not None and reply["goals"] == [RIGHT]
    assert [m["data"] for m in reply["messages"]] == [MISMATCH]


def test_cdot_that_leaves_its_goal_open_logs_unsolved_goals(fake: Fake) -> None:
    reply = fake.send({"tactic": "· skip", "proofState": _split(fake)})
    assert reply is not None and reply["goals"] == [RIGHT]
    assert [m["data"] for m in reply["messages"]] == ["unsolved goals\n" + LEFT]


def test_cdot_on_the_last_goal_admits_it(fake: Fake) -> None:
    last = fake.send({"tactic": "case right => exact hq", "proofState": _split(fake)})
    assert last is not None and last["goals"] == [LEFT]
    for tactic in ("· skip", "· apply hq"):  # left open; threw (Lean's `closeUsingOrAdmit`)
        reply = fake.send({"tactic": tactic, "proofState": last["proofState"]})
        assert reply is not None and "proofState" in reply, tactic
        assert (reply["goals"], reply["proofStatus"]) == ([], fake_repl.CONTAINS_SORRY)
        assert [m["severity"] for m in reply["messages"]] == ["error"]


def test_case_focuses_the_goal_with_that_tag(fake: Fake) -> None:
    split = _split(fake)
    reply = fake.send({"tactic": "case right => exact hq", "proofState": split})
    assert reply is not None and (reply["goals"], reply.get("messages")) == ([LEFT], None)
    reply = fake.send({"tactic": "next => exact hp", "proofState": split})
    assert reply is not None and reply["goals"] == [RIGHT]
    reply = fake.send({"tactic": "case _ => exact hp", "proofState": split})
    assert reply is not None and reply["goals"] == [RIGHT]


def test_nested_blocks_parse_by_columns(fake: Fake) -> None:
    block = "(\n  constructor\n  · exact hp\n  · exact hq)"
    reply = fake.send({"tactic": block, "proofState": _state(fake)})
    assert reply is not None and (reply["goals"], reply["proofStatus"]) == ([], "Completed")
    block = "(\n  constructor\n  all_goals\n    assumption)"
    reply = fake.send({"tactic": block, "proofState": _state(fake)})
    assert reply is not None and (reply["goals"], reply["proofStatus"]) == ([], "Completed")


def test_all_goals_runs_on_each_goal_past_a_logged_error(fake: Fake) -> None:
    reply = fake.send({"tactic": "all_goals exact hq", "proofState": _split(fake)})
    assert reply is not None and [m["data"] for m in reply["messages"]] == [MISMATCH]
    assert (reply["goals"], reply["proofStatus"]) == ([], fake_repl.CONTAINS_SORRY)


def test_try_and_first_fall_back_when_a_tactic_logs_an_error(fake: Fake) -> None:
    split = _split(fake)
    reply = fake.send({"tactic": "try exact hq", "proofState": split})
    assert reply is not None and (reply["goals"], reply.get("messages")) == ([LEFT, RIGHT], None)
    reply = fake.send({"tactic": "first | exact hq | exact hp", "proofState": split})
    assert reply is not None and reply["goals"] == [RIGHT]


def test_a_sorry_in_a_block_makes_the_proof_incomplete(fake: Fake) -> None:
    reply = fake.send({"tactic": "(\n  sorry\n  exact hq)", "proofState": _split(fake)})
    assert reply is not None
    assert (reply["goals"], reply["proofStatus"]) == ([], fake_repl.CONTAINS_SORRY)
    assert [s["goal"] for s in reply["sorries"]] == [LEFT]


def test_main_goal_tactic_uses_the_recording_on_the_main_goal(fake: Fake) -> None:
    split = _split(fake)  # recorded: `exact hp` on [LEFT] alone
    reply = fake.send({"tactic": "exact hp", "proofState": split})
    assert reply == {"proofStatus": fake_repl.OPEN_GOALS, "proofState": split + 1, "goals": [RIGHT]}


def test_unrecorded_tactic_ends_the_process_or_gets_an_elaboration_error(
    fake: Fake, lenient: Fake
) -> None:
    fake.send({"tactic": "exact foo", "proofState": _split(fake)})
    assert fake.ended()[0] == 3
    reply = lenient.send({"tactic": "exact foo", "proofState": _split(lenient)})
    assert reply is not None and reply["goals"] == [RIGHT]  # the main goal is admitted
    assert [(m["severity"], m["pos"]) for m in reply["messages"]] == [
        ("error", {"line": 0, "column": 0})
    ]


# --- sorries and allTactics ----------------------------------------------------------------


def test_sorry_after_constructor_records_only_the_main_goal(fake: Fake) -> None:
    reply = fake.send({"cmd": BODY + "constructor\n  sorry"})
    assert reply is not None and [s["goal"] for s in reply["sorries"]] == [LEFT]
    listed = fake.send({"tactic": "skip", "proofState": reply["sorries"][0]["proofState"]})
    assert listed is not None and listed["goals"] == [LEFT]


def test_all_tactics_sorry_entry_holds_every_goal(fake: Fake) -> None:
    body = BODY + "constructor\n  "
    reply = fake.send({"cmd": body + "sorry", "allTactics": True})
    assert reply is not None
    assert [s["goal"] for s in reply["sorries"]] == [LEFT]
    entries = {t["tactic"]: t for t in reply["tactics"]}
    assert set(entries) == {"constructor", "sorry"}
    assert entries["constructor"]["goals"] == GOAL
    ours = entries["sorry"]
    assert ours["goals"] == LEFT + "\n" + RIGHT  # one newline between goals: no way back
    assert (ours["pos"]["line"], ours["pos"]["column"]) == (3, 2)
    assert not [k for t in reply["tactics"] for k in t if k.startswith("fake:")]
    # ids: the sorry's state first, then the entries' states in order
    assert reply["sorries"][0]["proofState"] == 0
    assert [entries[t]["proofState"] for t in ("constructor", "sorry")] == [1, 2]
    listed = fake.send({"tactic": "skip", "proofState": ours["proofState"]})
    assert listed == {"proofStatus": fake_repl.OPEN_GOALS, "proofState": 3, "goals": [LEFT, RIGHT]}
    done = fake.send({"tactic": "(\n  exact hp\n  exact hq)", "proofState": 3})
    # The entry's roots are its two goals: Main.lean `getProofStatus` checks a proof only
    # when there is one root goal.
    assert done is not None and done["goals"] == []
    assert done["proofStatus"] == "Not verified: more than one initial goal"
    first = fake.send({"tactic": "exact hp", "proofState": 3})
    assert first is not None and first["proofStatus"] == fake_repl.OPEN_GOALS


# --- Lean's texts ---------------------------------------------------------------------------


def test_unknown_ids_get_the_repl_texts(fake: Fake, tmp_path: Path) -> None:
    assert fake.send({"tactic": "skip", "proofState": 7}) == {"message": "Unknown proof state."}
    pickle = str(tmp_path / "s.olean")
    assert fake.send({"pickleTo": pickle, "proofState": 7}) == {"message": "Unknown proof State."}
    assert fake.send({"cmd": "def f := 37", "env": 7}) == {"message": "Unknown environment."}


def test_sorry_warning_quotes_with_backticks(fake: Fake) -> None:
    reply = fake.send({"cmd": BODY + "sorry"})
    assert reply is not None
    assert [m["data"] for m in reply["messages"]] == ["declaration uses `sorry`"]
    assert reply["messages"][0]["pos"] == {"line": 1, "column": 8}  # the theorem's name


def test_malformed_json_ends_the_process(fake: Fake) -> None:
    assert fake.send('{"cmd": "def f := 37"') is None
    code, stderr = fake.ended()
    assert code == 1 and "Could not parse JSON" in stderr


def test_request_of_no_kind_ends_the_process(fake: Fake) -> None:
    assert fake.send({"tactic": "skip"}) is None  # no proofState: no input kind fits
    code, stderr = fake.ended()
    assert code == 1 and "Could not parse as a valid JSON command" in stderr


def test_ambiguous_tactics_entry_is_a_graph_mistake(tmp_path: Path) -> None:
    entry = sorry_command(BODY + "constructor\n  sorry", [LEFT, RIGHT], all_tactics=True,
                          goals_before={"constructor": GOAL})  # fmt: skip
    for info in entry["reply"]["tactics"]:
        del info["fake:goals"]  # "case left ... ⊢ p\ncase right ... ⊢ q" could be any split
    running = Fake(write_graph(tmp_path / "g.json", [entry]), tmp_path)
    try:
        code, stderr = running.ended()
    finally:
        running.close()
    assert code == 3 and "fake:goals" in stderr


# --- the builders -------------------------------------------------------------------------


@pytest.mark.parametrize("tactic", ["constructor\nexact hp", "constructor; exact hp", "exat 42"])
def test_builders_refuse_a_text_lean_would_not_parse_as_one_tactic(tactic: str) -> None:
    with pytest.raises(ValueError, match="not one tactic"):
        tactic_edge(GOAL, tactic, [])


def test_builder_lists_tactic_sorries_before_term_sorries() -> None:
    # InfoTree.lean `sorries`: findSorryTacticNodes ++ findSorryTermNodes
    cmd = BODY + "have h : p := sorry\n  sorry"
    built = sorry_command(cmd, "p q : Prop\nhp : p\nhq : q\n⊢ p", GOAL)
    assert [s["pos"]["line"] for s in built["reply"]["sorries"]] == [3, 2]
    assert [s["goal"] for s in built["reply"]["sorries"]] == [
        GOAL,
        "p q : Prop\nhp : p\nhq : q\n⊢ p",
    ]


def test_builder_needs_the_goals_before_every_listed_tactic() -> None:
    with pytest.raises(ValueError, match="goals_before"):
        sorry_command(BODY + "constructor\n  sorry", [LEFT, RIGHT], all_tactics=True)


def test_builder_goal_strings_are_one_goal_lists() -> None:
    assert tactic_edge(GOAL, "skip", GOAL)["goals"] == [GOAL]
    assert sorry_edge([LEFT, RIGHT], "sorry", RIGHT)["reply"]["goals"] == [RIGHT]
    assert error_edge([LEFT, RIGHT], "exact hq", MISMATCH)["reply"]["goals"] == [RIGHT]


# --- the parser model on its own -----------------------------------------------------------


@pytest.mark.parametrize(
    ("tactic", "kind", "inner"),
    [
        ("(\n  constructor\n  exact hp)", "paren", ["constructor", "exact hp"]),
        ("(\n  exact f\n    x\n  rfl)", "paren", ["exact f\n    x", "rfl"]),
        ("· simp\n  exact h", "cdot", ["simp", "exact h"]),
        ("case succ n ih => simp [ih]", "case", ["simp [ih]"]),
        ("all_goals\n  simp\n  rfl", "block", ["simp", "rfl"]),
        ("{ simp (config := {m := 1}) [h] }", "braces", ["simp (config := {m := 1}) [h]"]),
        ("intro h\nexact h", "leaf", []),
        ("simp at h\nexact h", "leaf", []),  # the location's hypotheses are terms too
        ("induction n with\n| zero => simp\n| succ n ih =>\n  simp\n  exact ih", "leaf", []),
        ("have: true := by\n    apply ?succ\n    trivial", "leaf", []),
        ("calc a = b := h\n  _ = c := h2", "leaf", []),
        ("rcases h with ⟨a, b⟩ | c", "leaf", []),
        ("obtain ⟨a, b⟩ := h", "leaf", []),
        ("rw [h] at h' ⊢", "leaf", []),
        ("first | simp | rfl", "first", []),
        ("constructor <;> simp", "then", []),
    ],
)  # fmt: skip
def test_parser_model_reads_one_tactic(tactic: str, kind: str, inner: list[str]) -> None:
    node = fake_repl.parse_tactic(tactic)
    assert (node.kind, [t.text for t in node.seq]) == (kind, inner)


def test_parser_model_keeps_nested_by_blocks_for_all_tactics() -> None:
    (have,) = fake_repl.proof_tactics(BODY + "have h : p := by\n    exact hp\n  sorry")[:1]
    listed = [(n.text, depth) for n, depth in have.walk()]
    assert listed == [("have h : p := by\n    exact hp", 0), ("exact hp", 1)]


def _proof_problems(text: str, start: int) -> list[str]:
    """What the model refuses in the tactic block after token `start` (a `by`), if any."""
    parser = fake_repl._Parser(text)
    parser.i = start + 1
    try:
        parser.seq()
    except fake_repl.ParseError as err:
        return [f"{fake_repl.position(text, err.offset)}: {err.message}\n{text}"]
    rest = parser.peek()  # what follows the block starts a new command (`where`, ...)
    if rest.kind != "eof" and rest.col != 0:
        return [f"{fake_repl.position(text, rest.start)}: the block ended early\n{text}"]
    return []


def test_parser_model_reads_the_proofs_of_the_lean_book() -> None:
    """Every `:= by` block of the Theorem Proving in Lean 4 examples (checked by the book's
    build) parses: the model is not stricter than Lean."""
    path = FIXTURES / "goal-states" / "tpil_proofstate_blocks.jsonl"
    blocks = {json.loads(line)["lean_block"] for line in path.read_text("utf-8").splitlines()}
    problems, seen = [], 0
    for text in sorted(blocks):
        toks = fake_repl._Parser(text).toks
        for k in range(1, len(toks)):
            if toks[k].word("by") and toks[k - 1].sym(":="):
                seen += 1
                problems += _proof_problems(text, k)
    assert seen >= 10 and not problems, "\n\n".join(problems)


def test_parser_model_reads_every_real_proof_of_the_core_benchmark(shared_data: Path) -> None:
    rows = (shared_data / "core-benchmark" / "core_benchmark.jsonl").read_text("utf-8")
    proofs = [json.loads(line)["proof"] for line in rows.splitlines() if line.strip()]
    assert len(proofs) > 200 and all(p.startswith("by") for p in proofs)
    problems = [q for proof in proofs for q in _proof_problems(proof, 0)]
    assert not problems, "\n\n".join(problems)
