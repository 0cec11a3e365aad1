"""Fill one `sorry` of a file by proof search, and re-check the result in command mode.

The engine's proof search (`Engine.fill_holes`, behind the editor commands
`segpilot.proveTheorem` and `segpilot.proveFile`) calls it for each hole: it finds the hole's
proof state from the file text, searches, and gives back the text that replaces the
`sorry`, indented for its column.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from segpilot.lean.source import declaration_span, proof_site, sorries
from segpilot.model.candidates import indent_block
from segpilot.search.check import LeanChecker, ProofContext
from segpilot.search.prove import ProposalPolicy, SearchBudget, SearchResult, best_first

SORRY = "sorry"


@dataclass(frozen=True)
class Hole:
    """A `sorry` in a file (0-based line, column in characters)."""

    line: int
    column: int


@dataclass(frozen=True)
class Filled:
    """What a search made of one hole."""

    hole: Hole
    result: SearchResult | None
    replacement: str = ""
    """The text that replaces the `sorry` (empty when not proved or not verified)."""
    message: str = ""
    """Why there is no replacement, or "" when there is one."""

    @property
    def proved(self) -> bool:
        return bool(self.replacement)


def holes_in(text: str, line: int | None = None) -> list[Hole]:
    """The holes of the file, or of the declaration around `line` when it is given."""
    found = [Hole(*where) for where in sorries(text)]
    if line is None:
        return found
    start, end = declaration_span(text, line)
    first, last = text.count("\n", 0, start), text.count("\n", 0, end)
    return [h for h in found if first <= h.line < last or (h.line == last and end == len(text))]


def fill(
    policy: ProposalPolicy,
    checker: LeanChecker,
    text: str,
    hole: Hole,
    budget: SearchBudget,
    *,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int, float], None] | None = None,
) -> Filled:
    """Search for a proof of `hole` and re-check the declaration with it in place."""
    site = proof_site(text, hole.line, hole.column)
    if site.typed:
        return Filled(hole, None, message=f"a sorry inside `{site.typed}`: only tactic holes")
    # The sorry's own state: its main goal alone, all that a proof in its place must close
    # (the other goals open there belong to the tactics after it).
    root = checker.state_at(ProofContext(site.header, site.body), hole=True)
    if root is None:
        return Filled(hole, None, message="Lean gives no proof state at this sorry")
    result = best_first(policy, checker, root, budget, cancel=cancel, on_progress=on_progress)
    if result.proof is None:
        return Filled(hole, result, message=f"no proof found ({result.reason})")
    replacement = indent_block(result.proof_text(), hole.column)
    start = len(site.header) + len(site.body)
    end = declaration_span(text, hole.line)[1]
    declaration = site.body + replacement + text[start + len(SORRY) : end]
    # The declaration's other holes stay open; this one must be filled.
    why = checker.final_check(site.header, declaration, sorries(declaration))
    if why:
        return Filled(hole, result, message=f"the proof failed the final check: {why}")
    return Filled(hole, result, replacement)
