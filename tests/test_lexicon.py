"""The tactic lexicon: names from Lean's and Mathlib's tactic lists, and leading tactics."""

from __future__ import annotations

import pytest

from segpilot.model.lexicon import TACTICS, is_tactic_line, leading_tactic, well_formed


def test_core_names_are_present():
    core = "intro intros exact apply refine rfl simp rw omega decide constructor cases induction"
    assert set(core.split()) <= TACTICS
    assert {"norm_num", "linarith", "ring", "aesop"} <= TACTICS


@pytest.mark.parametrize("word", ["copyp1,", "ice", "limpain", "voiditalertools", "sorry", "admit"])
def test_unknown_or_admitting_words_are_not_tactics(word):
    assert leading_tactic(word) is None and not is_tactic_line(f"{word} h")


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("· exact h", "exact"),
        ("case h => simp", "simp"),
        ("  next => rfl", "rfl"),
        ("constructor <;> simp", "constructor"),
        ("case inl h =>", "case"),
        ("simp? at h", "simp?"),
        ("Copy the proof", None),
    ],
)
def test_leading_tactic(line, name):
    assert leading_tactic(line) == name


def test_well_formed_blocks():
    assert well_formed("induction n with\n| zero => simp\n| succ n ih =>\n  rw [ih]")
    assert well_formed("calc a = b := by rw [h]\n  _ = c := by simp")
    assert not well_formed("simp [h")
    assert not well_formed("subtract p ∧ q")
