"""Where a suggestion goes at a cursor: at a `sorry`, a closing segment replaces it and any
other goes before it with the `sorry` kept on its own line; never glued to what follows.
Shared by the inline items and the Insert segment command."""

from __future__ import annotations

from lsprotocol import types

from segpilot.engine.goals import GoalAt
from segpilot.lean.positions import DocumentPositions
from segpilot.lean.source import proof_site
from segpilot.lsp.documents import DocumentSite
from segpilot.lsp.server import render
from segpilot.lsp.workspace_commands import placement
from segpilot.model.candidates import Candidate
from segpilot.search.check import Outcome
from segpilot.search.ranking import Checked
from segpilot.search.suggest import Proposal

TEXT = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  sorry\n"
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"
CLOSES = Checked(
    Candidate("constructor\nexact hp\nexact hq", ("constructor", "exact hp", "exact hq"), -1.0),
    Outcome("closed"),
)
LEAVES = Checked(
    Candidate("constructor", ("constructor",), -0.5), Outcome("progress", ("a", "b"), 7)
)
UNCHECKED = Checked(Candidate("constructor", ("constructor",), -0.5), None)


def site(text: str, line: int, column: int) -> DocumentSite:
    return DocumentSite(text, 1, proof_site(text, line, column), DocumentPositions(text))


def apply(text: str, found: DocumentSite, item: Checked) -> str:
    place = placement(found, item)
    lines = text.split("\n")
    s = found.site
    line = lines[s.line]
    cut = s.column + len(s.typed)
    lines[s.line] = line[: s.column] + place.text + line[cut + place.replaced :]
    return "\n".join(lines)


def test_a_closing_segment_replaces_the_sorry():
    found = site(TEXT, 1, 2)
    assert apply(TEXT, found, CLOSES) == (
        "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n"
        "  constructor\n  exact hp\n  exact hq\n"
    )


def test_a_segment_that_leaves_goals_goes_before_the_sorry_on_its_own_line():
    found = site(TEXT, 1, 2)
    for item in (LEAVES, UNCHECKED):
        assert apply(TEXT, found, item) == (
            "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  constructor\n  sorry\n"
        )


def test_without_a_hole_nothing_after_the_cursor_is_touched():
    text = "theorem t (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  \n"
    place = placement(site(text, 1, 2), CLOSES)
    assert place.replaced == 0 and not place.text.endswith("\n")


def test_sorry_inside_a_longer_name_is_no_hole():
    text = "theorem t (p : Prop) (hp : p) : p := by\n  sorry_lemma hp\n"
    assert placement(site(text, 1, 2), CLOSES).replaced == 0


def test_inline_items_at_a_sorry_cover_it_when_they_close():
    found = site(TEXT, 1, 2)
    proposal = Proposal(GOAL, (CLOSES, LEAVES), True)
    items = render(proposal, found, types.Position(1, 2), 3, "file:///t", GoalAt((GOAL,), "repl"))
    assert items[0].range == types.Range(types.Position(1, 2), types.Position(1, 7))
    assert items[1].range == types.Range(types.Position(1, 2), types.Position(1, 2))
    assert items[1].insert_text == "constructor\n  "
