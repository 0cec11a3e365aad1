"""Reading a cursor's proof site from Lean source text alone."""

from __future__ import annotations

import pytest

from segpilot.lean.source import NotInProof, proof_site, sorries

FILE = """\
import Init
open Nat

/-- `theorem` in a comment does not start anything. -/
theorem two (p q : Prop) (hp : p) (hq : q) : p ∧ q := by
  constructor
  · exa
  · exact hq

example (n : ℕ) : n + 0 = n := by simp

def plain : Nat := 3
"""
LINES = FILE.split("\n")


def test_body_ends_at_the_indentation_and_the_typed_text_is_kept_apart():
    site = proof_site(FILE, 6, 7)  # after `exa` behind a focusing dot
    assert (
        site.header
        == "import Init\nopen Nat\n\n/-- `theorem` in a comment does not start anything. -/\n"
    )
    assert site.body.endswith("  constructor\n  · ")
    assert site.typed == "exa"
    assert site.column == 4
    assert site.name == "two"
    assert site.proof_before == "constructor\n·"
    assert site.statement_goal == "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"
    assert site.header + site.body + site.typed == FILE[: FILE.index("exa") + 3]


def test_a_cursor_after_by_on_the_statement_line():
    line = 9
    site = proof_site(FILE, line, len(LINES[line]))
    assert site.typed == "simp"
    assert site.column == LINES[line].index("simp")
    assert site.body.endswith(":= by ")
    assert site.name == ""
    assert site.statement_goal == "n : ℕ\n⊢ n + 0 = n"


def test_an_empty_indented_line_types_nothing():
    text = FILE.replace("  · exa\n", "  \n")
    site = proof_site(text, 6, 2)
    assert (site.typed, site.column) == ("", 2)
    assert (site.body + "sorry").endswith("constructor\n  sorry")


def test_columns_past_the_line_end_are_clamped():
    assert proof_site(FILE, 5, 500).typed == "constructor"


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        (0, 5, "no theorem, lemma or example"),
        (3, 10, "inside a comment"),
        (11, 10, "not inside a tactic proof"),
        (10, 0, "after the end of the declaration"),
        (40, 0, "outside the file"),
    ],
)
def test_positions_outside_a_tactic_proof_say_why(line, column, reason):
    with pytest.raises(NotInProof, match=reason):
        proof_site(FILE, line, column)


def test_a_later_command_at_column_zero_ends_the_proof():
    text = FILE.replace("\nexample", "#check two\nexample", 1) + "  \n"
    with pytest.raises(NotInProof, match="after the end"):
        proof_site(text.replace("def plain : Nat := 3\n", ""), 10, 2)


def test_sorries_skip_comments_strings_and_longer_names():
    text = 'theorem t : p := by\n  sorry -- sorry\n  exact "sorry"\n  exact sorry_lemma\n  sorry\n'
    assert sorries(text) == [(1, 2), (4, 2)]


def test_multibyte_symbols_before_the_cursor_count_as_one_character_each():
    text = "theorem t (h : ∀ x : ℕ, x = x) : True := by\n  -- 🎉 ⊢\n  triv"
    site = proof_site(text, 2, 6)
    assert (site.typed, site.column) == ("triv", 2)
