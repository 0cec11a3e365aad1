"""The fake REPL's elaborator (`fakes/core_logic.py`, `fake_repl.py --elaborate`): every real
Lean answer we hold that lies in its fragment is reproduced exactly, it is as strict as Lean
on what it models, it stays out of what it does not, and the checker works through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, FIXTURES, PYTHON
from fakes import core_logic, fake_repl
from fakes.graphs import write_graph

from segpilot.lean.repl import ReplSettings
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.search.check import LeanChecker, ProofContext

TRAJECTORIES = FIXTURES / "trajectories"
EASY = FIXTURES / "easy_core" / "easy_core.jsonl"
DEEP = FIXTURES / "deep_core" / "deep_core.jsonl"
OWN = core_logic.OWN


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _one_leaf(tactic: str) -> bool:
    """Whether the fake's parser takes `tactic` as one plain tactic (what the elaborator
    is handed: blocks are the fake's to take apart)."""
    try:
        return fake_repl.parse_tactic(tactic).kind == "leaf"
    except fake_repl.ParseError:
        return False


# --- real cases: (goals before, tactic, what Lean answered) -----------------------------------


def _graph_cases() -> Iterator[tuple[str, list[str], str, dict[str, Any]]]:
    graph = json.loads((FAKES / "repl_graph.json").read_text(encoding="utf-8"))
    for edge in graph["tactics"]:
        reply = edge["reply"]
        expect: dict[str, Any] = {}
        if "message" in reply:
            expect["thrown"] = reply["message"].removeprefix(fake_repl.LEAN_ERROR)
        else:
            expect["goals"] = reply["goals"]
            errors = [m["data"] for m in reply.get("messages", []) if m["severity"] == "error"]
            expect["logged"] = errors
        yield f"graph:{edge['source']}", edge["goals"], edge["tactic"], expect


def _step_cases() -> Iterator[tuple[str, list[str], str, dict[str, Any]]]:
    for name in ("repl_transcript_steps.jsonl", "pantograph_doc_invocations.jsonl"):
        for k, row in enumerate(_rows(TRAJECTORIES / name)):
            if row["goals_before"] is None:
                continue
            expect: dict[str, Any] = {}
            if row.get("repl_message"):
                expect["thrown"] = row["repl_message"].removeprefix(fake_repl.LEAN_ERROR)
            elif row["goals_after"] is None:
                continue
            else:
                expect["goals"] = row["goals_after"]
                expect["logged"] = row.get("error_messages") or []
            yield f"{name}:{k}", row["goals_before"], row["tactic"], expect


def _leanink_cases() -> Iterator[tuple[str, list[str], str, dict[str, Any]]]:
    """Before/after pairs from LeanInk sentences. A sentence carries the goals after it
    within its focus (see trajectories/README.md); a tactic's goals before are those of
    the sentence before it (`by`: the whitespace after it; `·` and `case ... =>`: the goal
    they focus), skipping separators; after a sentence that closed its focus, unknown."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for row in _rows(TRAJECTORIES / "leanink_sentences.jsonl"):
        by_file.setdefault(row["source"], []).append(row)
    for source, rows in by_file.items():
        rows.sort(key=lambda r: r["fragment_index"])
        for k, row in enumerate(rows):
            text = row["text"].strip()
            if row["is_whitespace"] or text in ("by", ".", "·", ";") or text.startswith("case"):
                continue
            if k == 0 or rows[k - 1]["fragment_index"] != row["fragment_index"] - 1:
                continue
            j = k - 1
            while j >= 0 and (rows[j]["is_whitespace"] or rows[j]["text"].strip() == ";"):
                j -= 1
            if j < 0:
                continue
            prev = rows[j]
            if prev["text"].strip() == "by":
                before = rows[j + 1]["goals"] if j + 1 < k else None
            elif prev["goals_accomplished_marker"]:
                before = None
            else:
                before = prev["goals"]
            if not before or not _one_leaf(text):
                continue
            expect = {"goals": row["goals"], "logged": []}
            yield (
                f"leanink:{source.rsplit('/', 1)[-1]}:{row['fragment_index']}",
                before,
                text,
                expect,
            )


CASES = [*_graph_cases(), *_step_cases(), *_leanink_cases()]
IN_FRAGMENT = [c for c in CASES if core_logic.run_tactic(c[1], c[2]) is not None]


def test_enough_real_cases_lie_in_the_fragment() -> None:
    print(f"\ncore_logic: {len(IN_FRAGMENT)} of {len(CASES)} real tactic cases in the fragment")
    assert len(CASES) >= 150
    assert len(IN_FRAGMENT) >= 60


@pytest.mark.parametrize(
    ("where", "goals", "tactic", "expect"), IN_FRAGMENT, ids=[c[0] for c in IN_FRAGMENT]
)
def test_a_real_answer_is_reproduced(
    where: str, goals: list[str], tactic: str, expect: dict[str, Any]
) -> None:
    found = core_logic.run_tactic(goals, tactic)
    assert found is not None
    if "thrown" in expect:
        assert found.thrown is not None
        if OWN not in found.thrown:
            assert found.thrown == expect["thrown"]
        return
    assert found.thrown is None
    assert found.goals == expect["goals"]
    assert len(found.logged) == len(expect["logged"])
    for ours, lean in zip(found.logged, expect["logged"], strict=True):
        assert OWN in ours or ours == lean


def _normal(reply: dict[str, Any]) -> dict[str, Any]:
    """A command reply without what only numbering or `usedConstants` decide."""
    out = {k: v for k, v in reply.items() if k != "env"}
    for key in ("sorries", "tactics"):
        if key in out:
            out[key] = [
                {k: v for k, v in e.items() if k not in ("proofState", "usedConstants")}
                for e in out[key]
            ]
    return out


def _graph_commands() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    graph = json.loads((FAKES / "repl_graph.json").read_text(encoding="utf-8"))
    return [
        (c["source"], c["request"], c["reply"])
        for c in graph["commands"]
        if not c["requires"] and "cmd" in c["request"]
    ]


def _elaborated(request: dict[str, Any]) -> dict[str, Any] | None:
    repl = fake_repl.FakeRepl({"commands": [], "tactics": []}, elaborate=True)
    try:
        return repl.command(dict(request))
    except fake_repl.Fatal:
        return None


COMMANDS = [c for c in _graph_commands() if _elaborated(c[1]) is not None]


def test_recorded_commands_in_the_fragment_are_counted() -> None:
    print(f"\ncore_logic: {len(COMMANDS)} of {len(_graph_commands())} recorded commands")
    assert len(COMMANDS) >= 8


@pytest.mark.parametrize(("where", "request_", "reply"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_recorded_command_is_reproduced(
    where: str, request_: dict[str, Any], reply: dict[str, Any]
) -> None:
    found = _elaborated(request_)
    assert found is not None
    assert _normal(found) == _normal(reply)


# --- the easy core-Lean theorems ----------------------------------------------------------------


def test_the_easy_core_selection_is_reproducible(shared_data: Path) -> None:
    import runpy

    select = runpy.run_path(str(FIXTURES.parents[1] / "scripts" / "select_easy_core.py"))
    rows = _rows(shared_data / "core-benchmark" / "core_benchmark.jsonl")
    assert select["render"](select["select"](rows)) == EASY.read_text(encoding="utf-8")


def _proof_reply(row: dict[str, Any]) -> dict[str, Any] | None:
    return _elaborated({"cmd": f"{row['statement']} := {row['proof']}"})


def test_every_easy_theorem_is_in_the_fragment_and_real_proofs_are_accepted() -> None:
    rows = _rows(EASY)
    assert 20 <= len(rows) <= 40
    accepted = 0
    for row in rows:
        decl = core_logic.parse_declaration(row["statement"] + " := by sorry")
        assert decl is not None, row["name"]
        found = _proof_reply(row)
        if found is not None:  # every tactic modelled: Lean accepted it, so must we
            assert found == {"env": 0}, row["name"]
            accepted += 1
    print(f"\ncore_logic: {accepted} of {len(rows)} easy theorems' real proofs fully modelled")
    assert accepted >= 6


def test_every_deep_theorem_is_in_the_fragment_and_its_reference_proof_is_accepted() -> None:
    rows = _rows(DEEP)
    assert len(rows) == 25 and len({r["name"] for r in rows}) == 25
    for row in rows:
        assert core_logic.parse_declaration(row["statement"] + " := by sorry"), row["name"]
        assert _proof_reply(row) == {"env": 0}, row["name"]
        # A proof of at least two tactics: somewhere for a rollout to go.
        assert row["proof"].count("\n") >= 2, row["name"]


def test_an_arrow_inside_a_connective_keeps_its_parentheses() -> None:
    """`→` is Lean's `arrow` trailing parser at precedence 25 (`Parser/Term.lean`), not a
    binder notation: as an operand of `∧` (35) it is parenthesised on either side."""
    decl = core_logic.parse_declaration(
        "theorem t (p q r : Prop) : (p → q ∧ r) → (p → q) ∧ (p → r) := by sorry"
    )
    assert decl is not None
    assert decl.goal == "p q r : Prop\n⊢ (p → q ∧ r) → (p → q) ∧ (p → r)"
    after = core_logic.run_tactic([decl.goal], "intro h")
    assert after is not None
    assert after.goals == ["p q r : Prop\nh : p → q ∧ r\n⊢ (p → q) ∧ (p → r)"]


def test_real_proofs_of_the_whole_benchmark_are_never_rejected(shared_data: Path) -> None:
    """Every checked proof in the benchmark whose statement is in the fragment: when all of
    it is modelled, it is accepted (an unmodelled one is no verdict)."""
    rows = _rows(shared_data / "core-benchmark" / "core_benchmark.jsonl")
    rows = [r for r in rows if r.get("self_contained") and not r.get("imports")]
    accepted = 0
    for row in rows:
        found = _proof_reply(row)
        if found is not None:
            assert found == {"env": 0}, row["name"]
            accepted += 1
    print(f"\ncore_logic: {accepted} benchmark proofs fully modelled and accepted")
    assert accepted >= 10


# --- strictness ---------------------------------------------------------------------------------

AND = "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"


@pytest.mark.parametrize(
    ("goal", "tactic"),
    [
        ("p q : Prop\nhp : p\n⊢ q", "exact hp"),
        (AND, "exact ⟨hq, hp⟩"),
        (AND, "exact And.intro hp hp"),
        ("p q : Prop\nh : p ∧ q\n⊢ q", "exact h.1"),
    ],
)
def test_a_mistyped_exact_logs_an_error_and_admits_the_goal(goal: str, tactic: str) -> None:
    found = core_logic.run_tactic([goal, "⊢ True"], tactic)
    assert found is not None and found.thrown is None
    assert found.logged and all(OWN in text for text in found.logged)
    assert found.goals == ["⊢ True"]


@pytest.mark.parametrize(
    ("goal", "tactic"),
    [
        ("p : Prop\n⊢ p", "intro h"),
        ("p q : Prop\n⊢ p ∧ q", "intro h"),
        ("p q : Prop\n⊢ p ↔ q", "intro h"),
        ("p : Prop\n⊢ p → p", "intro a b"),
        ("p q : Prop\n⊢ p = q", "rfl"),
        ("p : Prop\n⊢ p ∧ p", "rfl"),
        ("p q : Prop\nhp : p\n⊢ q", "assumption"),
        ("p q : Prop\nhp : p\n⊢ q", "contradiction"),
        ("⊢ 2 + 2 = 5", "decide"),
        ("p q : Prop\nhp : p\n⊢ q", "apply hp"),
        ("p : Prop\nhp : p\n⊢ False", "trivial"),
    ],
)
def test_a_failing_tactic_throws(goal: str, tactic: str) -> None:
    found = core_logic.run_tactic([goal], tactic)
    assert found is not None and found.thrown


def test_apply_of_a_non_function_has_leans_wording() -> None:
    found = core_logic.run_tactic(["p q : Prop\nhp : p\n⊢ q"], "apply hp")
    assert found is not None
    assert found.thrown == (
        "Tactic `apply` failed: could not unify the type of `hp`\n  p\nwith the goal\n  q\n\n"
        "p q : Prop\nhp : p\n⊢ q"
    )


@pytest.mark.parametrize(
    ("goal", "tactic"),
    [
        ("p : Prop\nhp : p\n⊢ p", "simp"),
        ("p : Prop\nhp : p\n⊢ p", "exact foo"),  # a core constant? not claimed unknown
        ("p : Prop\nhp : p\n⊢ p", "omega"),
        ("x : Nat\n⊢ x + 0 = x", "rfl"),  # needs Nat.add's unfolding
        ("⊢ ∀ (a b : Nat), a = b → b = a", "intros"),  # two `a✝`: superscripts
        ("p : Prop\n⊢ p → p", "exact fun ⟨a, b⟩ => a"),
        ("f : Nat → Nat\n⊢ f = f", "exact rfl"),  # no `→` between types in the fragment?
    ],
)
def test_out_of_the_fragment_is_unmodelled(goal: str, tactic: str) -> None:
    if tactic == "exact rfl":
        # a function equality is in the fragment: `rfl` closes it syntactically
        found = core_logic.run_tactic([goal], tactic)
        assert found is not None and found.goals == []
        return
    assert core_logic.run_tactic([goal], tactic) is None


def test_names_tags_and_shadowing_follow_lean() -> None:
    found = core_logic.run_tactic(["case foo\np q : Prop\nh : p ∨ q\n⊢ q ∨ p"], "cases h")
    assert found is not None
    assert found.goals == [
        "case foo.inl\np q : Prop\nh✝ : p\n⊢ q ∨ p",
        "case foo.inr\np q : Prop\nh✝ : q\n⊢ q ∨ p",
    ]
    found = core_logic.run_tactic(["p : Prop\nh : p\n⊢ p → p"], "intro h")
    assert found is not None and found.goals == ["p : Prop\nh✝ h : p\n⊢ p"]
    found = core_logic.run_tactic(["p q : Prop\n⊢ ¬p → q → p"], "intro")
    assert found is not None and found.goals == ["p q : Prop\na✝ : ¬p\n⊢ q → p"]
    found = core_logic.run_tactic(["p : Prop\n⊢ ¬p"], "intro hp")
    assert found is not None and found.goals == ["p : Prop\nhp : p\n⊢ False"]


# --- through the real client -----------------------------------------------------------------

BODY = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  "
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"


@pytest.fixture
def checker(tmp_path: Path) -> Iterator[LeanChecker]:
    graph = write_graph(tmp_path / "empty.json", [])
    command = [PYTHON, str(FAKES / "fake_repl.py"), str(graph), "--elaborate"]
    command += ["--unrecorded-tactics", "error"]
    settings = ReplSettings(
        command=command, project_dir=tmp_path, timeout_s=10.0, memory_limit_mb=None
    )
    with SupervisedRepl(settings) as repl:
        checker = LeanChecker(repl)
        yield checker
        checker.close()


def test_the_checker_works_through_the_elaborator(checker: LeanChecker) -> None:
    state = checker.state_at(ProofContext("", BODY))
    assert state is not None and state.goals == (GOAL,)
    assert checker.check(state, "constructor").kind == "progress"
    assert checker.check(state, "exact foo").kind == "error"
    assert checker.check(state, "exact hp").kind == "error"
    assert checker.check(state, "intro h").kind == "error"
    assert checker.check(state, "exact ⟨hq, hp⟩").kind == "closed"
    assert checker.check(state, "constructor\nexact hq\nexact hp").kind == "closed"
    assert checker.check(state, "constructor\n· exact hq\n· exact hp").kind == "closed"
    assert checker.final_check("", BODY + "exact ⟨hq, hp⟩\n") == ""


def test_intro_at_a_cursor_right_after_by_is_progress(checker: LeanChecker) -> None:
    body = "example (p q : Prop) : p ∧ q → q ∧ p := by\n  "
    state = checker.state_at(ProofContext("", body))
    assert state is not None and state.goals == ("p q : Prop\n⊢ p ∧ q → q ∧ p",)
    step = checker.check(state, "intro h")
    assert step.kind == "progress" and step.goals == ("p q : Prop\nh : p ∧ q\n⊢ q ∧ p",)
    assert checker.check(state, "exact foo").kind == "error"
    assert checker.check(state, "intro h\nexact ⟨h.2, h.1⟩").kind == "closed"
    assert checker.check(state, "exact fun h => ⟨h.2, h.1⟩").kind == "closed"
