"""Goal-shaped openings: how propositions are read, and the first lines a goal determines."""

from __future__ import annotations

import pytest

from segpilot.model.openings import Prop, openings, shape


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p → q → p", Prop("imp", ("p", "q → p"))),
        ("(p → q) → p", Prop("imp", ("(p → q)", "p"))),
        ("p ∧ q ↔ q ∧ p", Prop("iff", ("p ∧ q", "q ∧ p"))),
        ("¬p ∨ q", Prop("or", ("¬p", "q"))),
        ("¬a = b", Prop("not", ("a = b",))),
        ("a = b ∧ c", Prop("and", ("a = b", "c"))),
        ("(p ∧ q)", Prop("and", ("p", "q"))),
        # A binder reaches to the end: the arrow is inside the ∀.
        ("p ∧ ∀ x, q x → r", Prop("and", ("p", "∀ x, q x → r"))),
        ("∀ (x y : Nat), x + y = y + x", Prop("forall", ("x + y = y + x",), ("x", "y"))),
        ("∀ {α : Type} (a : α), a = a", Prop("forall", ("a = a",), ("α", "a"))),
        ("∃ x, x > 0", Prop("exists", ("x > 0",), ("x",))),
        # A binder predicate: no names are read, so no `intro` is made up for it.
        ("∀ x > 0, x = x", Prop("forall", ("x = x",), ())),
        ("f (a → b) = c", Prop("eq", ("f (a → b)", "c"))),
        ("a ≤ b", Prop("atom")),
        ("True", Prop("true")),
        ("x == y", Prop("atom")),
    ],
)
def test_shape_reads_the_top_level_connective_with_lean_s_precedences(text, expected):
    assert shape(text) == expected


@pytest.mark.parametrize(
    ("state", "lines"),
    [
        ("p q : Prop\n⊢ p → q → p", ["intro hp hq"]),
        ("⊢ ∀ (x y : Nat), x + y = y + x", ["intro x y"]),
        # Names already in context are not reused.
        ("x : Nat\nhp : Prop\n⊢ ∀ (x : Nat), p → x = x", ["intro x' hp'"]),
        ("p : Prop\n⊢ ¬p", ["intro hp"]),
        ("p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q", ["exact ⟨hp, hq⟩", "constructor"]),
        ("p q : Prop\nh : p ∧ q\n⊢ q ∧ p", ["constructor", "obtain ⟨hp, hq⟩ := h"]),
        ("p q : Prop\nh : p ∨ q\n⊢ q ∨ p", ["left", "right", "rcases h with hp | hq"]),
        ("p q : Prop\nhp : p\n⊢ p ∨ q", ["exact Or.inl hp", "left", "right"]),
        ("p q : Prop\nhq : q\nh : q → p\n⊢ p", ["apply h"]),
        ("⊢ True", ["trivial"]),
        ("x : Nat\n⊢ x = x", ["rfl"]),
        ("⊢ 2 + 3 = 5", ["rfl"]),
        ("x y : Nat\nh : x = y\n⊢ y = x", ["exact h.symm"]),
        ("p : Prop\nhp : p\nhnp : ¬p\n⊢ False", ["contradiction"]),
        ("α : Type\np : α → Prop\nh : ∃ x, p x\n⊢ True", ["trivial", "obtain ⟨x, hx⟩ := h"]),
        # An inaccessible hypothesis cannot be named: `assumption` finds it.
        ("p : Prop\na✝ : p\n⊢ p", ["assumption"]),
        # Nothing the shape decides: no opening (the examples' names lead instead).
        ("x : Nat\n⊢ 0 + x = x", []),
        ("n : Nat\n⊢ n ≤ n + 1", []),
    ],
)
def test_openings_of_the_main_goal(state, lines):
    assert [o.line for o in openings(state)] == lines


def test_only_a_line_that_closes_the_one_open_goal_is_marked_closing():
    one = openings("p : Prop\nhp : p\n⊢ p")
    assert [(o.line, o.closes) for o in one] == [("exact hp", True)]
    two = openings("case left\np : Prop\nhp : p\n⊢ p\n\ncase right\np : Prop\nhp : p\n⊢ p")
    assert [(o.line, o.closes) for o in two] == [("exact hp", False)]


@pytest.mark.parametrize("state", ["", "no goals", "⊢", "not a goal state ⊢ ⊢"])
def test_states_without_a_readable_goal_have_no_openings(state):
    assert openings(state) == []
