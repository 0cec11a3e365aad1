"""The safety filter: hostile blocks are rejected with a reason; real tactics pass."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from segpilot.lean.lexer import LexError, code_only, strip_comments
from segpilot.model import safety

HOSTILE = [
    # plain forms
    ("#eval IO.println 1", "#eval"),
    ("simp\n#exit", "#exit"),
    ('run_tac do Lean.logInfo m!"hi"', "run_tac"),
    ('run_cmd Lean.logInfo "x"', "run_cmd"),
    ("run_elab pure ()", "run_elab"),
    ("exact (by_elab pure (Lean.mkConst ``True.intro))", "by_elab"),
    ("exact (IO.getStdout : IO _)", "IO"),
    ("exact _root_.IO.Process.exit 0", "IO"),
    ("exact (unsafeBaseIO (pure ()))", "unsafe"),
    ("exact unsafeCast h", "unsafe"),
    ("set_option maxHeartbeats 0 in\nsimp", "set_option"),
    ("set_option debug.skipKernelTC true in exact h", "set_option"),
    ("import Mathlib", "import"),
    ("open Classical in\nexact em p", "open"),
    ("attribute [local simp] Nat.add_comm in\nsimp", "attribute"),
    ("local instance : Inhabited Nat := ⟨0⟩", "local"),
    ('macro "cheat" : tactic => `(tactic| sorry)', "macro"),
    ('elab "cheat" : tactic => pure ()', "elab"),
    ('syntax "cheat" : tactic', "syntax"),
    ('notation "ℵ" => False', "notation"),
    ("exact h\naxiom cheat : False", "axiom"),
    ("exact h\n  theorem other : True := trivial", "theorem"),
    ("@[implemented_by foo] def bar := 1", "@["),
    ("exact (implemented_by)", "implemented_by"),
    ('exact @[extern "c_fn"] 1', "@["),
    ("native_decide", "native_decide"),
    ("decide +native", "native"),
    ("exact Lean.ofReduceBool _ _ rfl", "ofReduceBool"),
    ('exact dbg_trace "x" fun _ => h', "dbg_trace"),
    ("exact `(tactic| simp)", "`("),
    # unicode look-alikes and disguises
    ("#еval 1", "#"),  # Cyrillic е
    ("＃eval 1", "#"),  # fullwidth number sign
    ("#𝐞𝐯𝐚𝐥 1", "#"),  # mathematical bold letters
    ("set_optіon maxHeartbeats 0 in simp", "set_option"),  # Cyrillic і
    ("exact ІО.println 1", "IO"),  # Cyrillic І and О
    ("exact «IO».println 1", "IO"),  # quoted name parts
    ("exact IO.«println» 1", "IO"),
    ("run_ｔac pure ()", "run_tac"),  # fullwidth t
    ("ｕｎｓａｆｅ", "unsafe"),
    ("oρen Nat in simp", "open"),  # Greek rho
    # invisible characters
    ("#ev\u200bal 1", "U+200B"),
    ("simp\u202e ]h[ tcaxe", "U+202E"),  # right-to-left override
    ("run\u00adtac pure ()", "U+00AD"),  # soft hyphen
    ("simp\u2028#eval 1", "U+2028"),  # line separator
    # comments and strings used to hide code from a naive filter
    ("/- comment -/ #eval 1", "#eval"),
    ("exact h /- open -/ -- fine\n#exit", "#exit"),
    ("/- unterminated comment hides the rest", "unterminated block comment"),
    ("/- /- nested -/ still comment -/ #eval 1", "#eval"),
    ('exact "\\\\" #eval 1', "#eval"),  # the string is one backslash; #eval is outside
    ("exact '\"' ++ #eval 1", "#eval"),  # a quote character literal, not a string start
    ('exact r"\\" ++ #eval 1', "#eval"),  # raw strings take no escapes
    ('exact r#"a"b"# ++ #eval 1', "#eval"),
    ('exact s!"{IO.println 1}"', "IO"),  # interpolation evaluates code
    ('exact "unterminated string #eval', "unterminated string"),
    # multi-line tricks
    ("simp\n  set_option\n  maxHeartbeats 0 in\n  simp", "set_option"),
    ("intro h\nexact h\n#print axioms", "#print"),
    ("exact (by\n  run_tac pure ())", "run_tac"),
    ("first\n| simp\n| native_decide", "native_decide"),
    ("exact h -- the next line is code\nopen Nat in simp", "open"),
]


@pytest.mark.parametrize(("block", "needle"), HOSTILE)
def test_hostile_block_is_rejected_with_a_reason(block, needle):
    verdict = safety.check(block)
    assert not verdict.ok
    assert needle in verdict.reason


@pytest.mark.parametrize(
    "block",
    [
        "simp -- #eval would run code, but this is a comment",
        "/- run_tac and IO.println are words in a comment -/ exact h",
        'exact "#eval IO.println"',  # a string literal is data
        "exact h'",  # a prime ends a name; it does not start a character literal
        "intro ε hε",
        "infer_instance",
        "exact inferInstance",
        "rw [h.def, Set.open_iff]",
        "exact #v[1, 2]",
        "exact (⟨1, by simp⟩ : {n : Nat // n > 0})",
        "cases h with\n| inl h => exact h\n| inr h => exact h",
        "decide",
        "omega",
        "calc a = b := by rw [h]\n  _ = c := by simp",
    ],
)
def test_benign_block_passes(block):
    verdict = safety.check(block)
    assert verdict.ok, verdict.reason
    assert not verdict.uses_sorry


@pytest.mark.parametrize(
    ("block", "word"),
    [
        ("sorry", "sorry"),
        ("constructor\n· exact hp\n· admit", "admit"),
        ("stop\nsimp", "stop"),  # admits the rest of the proof
        ("exact sorryAx _", "sorryAx"),
        ("exact _root_.sorryAx _ false", "sorryAx"),  # qualified, still the axiom
        ("have h : x = 1 := by sorry\nomega", "sorry"),
        ("exact (sorry : p)", "sorry"),  # as a term
        ("all_goals sorry", "sorry"),
        ("exact «sorry»", "sorry"),  # quoted name
        ("exact ѕorry", "sorry"),  # Cyrillic ѕ
        ("apply?", "apply?"),  # admits the goal when no lemma closes it
        ("apply? using h", "apply?"),
    ],
)
def test_block_that_admits_a_goal_is_rejected(block, word):
    verdict = safety.check(block)
    assert not verdict.ok and verdict.uses_sorry
    assert f"{word!r} admits the goal" in verdict.reason


@pytest.mark.parametrize(
    "block",
    [
        "exact sorry_lemma h",  # inside another name
        "simp [my_admit, admit_iff]",
        "exact admit' h",
        "exact h.sorry",  # a field, not the keyword
        "intro stopped",
        "exact?",
        "apply h",
        "simp -- sorry, not yet",  # a comment
        "/- admit -/ simp",
        'exact "sorry"',  # a string
    ],
)
def test_sorry_inside_names_comments_and_strings_does_not_count(block):
    verdict = safety.check(block)
    assert verdict.ok, verdict.reason
    assert not verdict.uses_sorry


def test_an_unsafe_block_that_also_uses_sorry_gets_the_unsafe_reason():
    verdict = safety.check("sorry\n#eval IO.println 1")
    assert not verdict.ok and verdict.uses_sorry
    assert "#eval" in verdict.reason


def test_reason_names_the_line():
    assert safety.check("intro h\nexact h\n#exit").reason.startswith("line 3:")


def fixture_tactics() -> list[str]:
    """Real tactics from the committed trajectories (LeanInk sentences include the commands
    `#check`, `#eval`, `#print` of the book's examples: not tactics, left out)."""
    folder = FIXTURES / "trajectories"
    tactics = []
    for name in ("repl_transcript_steps", "pantograph_doc_invocations"):
        tactics += [json.loads(line)["tactic"] for line in (folder / f"{name}.jsonl").open()]
    for line in (folder / "leanink_sentences.jsonl").open():
        row = json.loads(line)
        if not row["is_whitespace"] and not row["text"].startswith("#"):
            tactics.append(row["text"])
    return sorted(set(tactics))


def test_real_tactics_from_the_fixtures_pass_but_those_using_sorry():
    tactics = fixture_tactics()
    assert len(tactics) >= 200
    # The deny-side alone: LeanInk sentences include fragments (` at h`, `← h,`) that are not
    # whole tactics, which the allow-side (the tactic lexicon) rejects, as it should.
    verdicts = {t: safety.check(t, lexicon=False) for t in tactics}
    blocked = {t: v.reason for t, v in verdicts.items() if not v.ok and not v.uses_sorry}
    assert blocked == {}
    admitted = sorted(t for t, v in verdicts.items() if v.uses_sorry)
    assert admitted == sorted(t for t in tactics if "sorry" in t.split())  # the data has no admit
    assert "sorry" in admitted and all(not verdicts[t].ok for t in admitted)


def test_real_proofs_from_the_shared_benchmark_pass(shared_data):
    rows = [
        json.loads(line)
        for line in (shared_data / "core-benchmark" / "core_benchmark.jsonl").open()
    ]
    proofs = [row["proof"].removeprefix("by").strip("\n") for row in rows]
    assert len(proofs) >= 200
    blocked = {p: safety.check(p).reason for p in proofs if not safety.check(p).ok}
    assert blocked == {}


def test_code_only_blanks_comments_and_strings_but_keeps_lines():
    text = 'simp -- note\nexact "a\nb" /- c -/ h'
    masked = code_only(text)
    assert masked.count("\n") == text.count("\n")
    assert "note" not in masked and "a" not in masked.replace("exact", "")
    assert masked.split("\n")[2].strip().endswith("h")


def test_strip_comments_keeps_strings():
    assert strip_comments('exact "--" -- gone').rstrip() == 'exact "--"'


def test_unterminated_raw_string_is_a_lex_error():
    with pytest.raises(LexError, match="raw string"):
        code_only('exact r#"never closed"')
