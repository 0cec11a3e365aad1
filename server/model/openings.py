"""Goal-shaped openings: first tactic lines whose arguments the goal itself determines.

A 135M model picks a sensible tactic name once it is led to one, but the text after the
name is where it drifts into prose (`exact not True`). For the shapes that decide a first
move in core logic, the goal already says what to write: `intro` with fresh names for the
target's leading binders, `exact h` for a hypothesis that is the target (`h.symm` for an
equation the other way round), `constructor` on `∧`/`↔`, `left`/`right` on `∨`,
`obtain ⟨a, b⟩ := h` for a conjunction in context, `rfl` on an equation whose sides match,
`trivial` on `True`. `openings` lists those lines, the ones that close the goal first;
the policy forces them as the starts of its candidates and the model scores them and writes
what follows (see `Policy.plan`). Lean still checks every candidate: an opening is a likely
move, never a claim.

Propositions are read by their top-level connective with Lean's precedences (`↔` 20,
`→` 25, `∨` 30, `∧` 35, `¬` 40, `=` 50; `→`, `∨`, `∧` associate to the right), brackets
taken whole, and a binder (`∀`, `∃`, `fun`) reaching to the end of its text. What is not
one of these shapes is an atom, and yields no opening.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from segpilot.lean.goals import Goal, GoalParseError, parse_state

_OPEN = "([{⟨"
_CLOSE = ")]}⟩"
_BINDER_WORDS = ("fun", "λ")
_BINDER_SYMBOLS = ("∀", "∃")
# Lowest precedence first; each splits at its first top-level occurrence (right-assoc).
_CONNECTIVES = (("↔", "iff"), ("→", "imp"), ("∨", "or"), ("∧", "and"))
# Lean's identifiers (`isIdFirst`/`isIdRest`): letters (Greek and others, not λ Π Σ), `_`,
# then also digits, `'`, `!`, `?` and subscripts.
_IDENT = re.compile(r"(?![λΠΣ₀-₉])[^\W\d][\w'!?₀-₉]*")
_NUMERAL_ARITH = re.compile(r"[0-9\s+*()]+")
_SUBSCRIPTS = "₁₂₃₄₅₆₇₈₉"
# How many leading binders one `intro` opening names at most.
_MAX_INTRO = 4


@dataclass(frozen=True)
class Prop:
    """A proposition's top-level shape: `kind` with its `parts` (texts), or an atom."""

    kind: str
    parts: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    """The bound names of a `forall` or `exists`."""


@dataclass(frozen=True)
class Opening:
    """A first line for the main goal, and whether it closes that goal."""

    line: str
    closes: bool = False


def _norm(text: str) -> str:
    return " ".join(text.split())


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and _matching(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    return text


def _matching(text: str, start: int) -> int:
    """The index of the bracket closing the one at `start`, or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] in _OPEN:
            depth += 1
        elif text[i] in _CLOSE:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _word_at(text: str, i: int, word: str) -> bool:
    end = i + len(word)
    before = text[i - 1] if i else " "
    after = text[end] if end < len(text) else " "
    return text.startswith(word, i) and not _IDENT.match(before) and not _IDENT.match(after)


def _top_level(text: str, symbol: str) -> int:
    """The first occurrence of `symbol` outside brackets and before any binder, or -1."""
    depth = 0
    for i, c in enumerate(text):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif depth == 0:
            if c in _BINDER_SYMBOLS or any(_word_at(text, i, w) for w in _BINDER_WORDS):
                return -1
            if text.startswith(symbol, i):
                return i
    return -1


def _binder(text: str) -> Prop | None:
    """`∀ x y, body` / `∀ (x : α) {y : β}, body` / `∃ x, body`; None for anything else."""
    symbol = text[0]
    if symbol not in _BINDER_SYMBOLS:
        return None
    rest = text[1:].lstrip("!")
    depth, comma = 0, -1
    for i, c in enumerate(rest):
        if c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            comma = i
            break
    if comma < 0:
        return None
    head, body = rest[:comma].strip(), rest[comma + 1 :]
    groups = re.findall(r"[({⦃]([^:(){}⦃⦄]*):[^(){}⦃⦄]*[)}⦄]", head)
    if groups and re.fullmatch(r"(?:\s*[({⦃][^(){}⦃⦄]*[)}⦄])+\s*", head):
        words = " ".join(groups).split()
    else:
        words = head.split(":", 1)[0].split()
    if not words or not all(_IDENT.fullmatch(w) for w in words):
        words = []  # a binder predicate (`∀ x > 0,`) or an instance: no names read
    kind = "forall" if symbol == "∀" else "exists"
    return Prop(kind, (body.strip(),), tuple(words))


def shape(text: str) -> Prop:
    """The top-level shape of a proposition as Lean prints it (see the module docstring)."""
    text = _strip_parens(text)
    if not text:
        return Prop("atom")
    found = _binder(text)
    if found is not None:
        return found
    for symbol, kind in _CONNECTIVES:
        at = _top_level(text, symbol)
        if at > 0:
            return Prop(kind, (text[:at].strip(), text[at + len(symbol) :].strip()))
    if text.startswith("¬"):
        return Prop("not", (text[1:].strip(),))
    if text == "True":
        return Prop("true")
    if text == "False":
        return Prop("false")
    for symbol, kind in (("≠", "ne"), ("=", "eq")):
        at = _top_level(text, symbol)
        if at > 0 and text[at - 1] not in "=<>:!" and text[at + 1 : at + 2] not in ("=", ">"):
            return Prop(kind, (text[:at].strip(), text[at + len(symbol) :].strip()))
    return Prop("atom")


class _Names:
    """Fresh accessible names, unused in the goal and by each other."""

    def __init__(self, goal: Goal) -> None:
        self.used = {n for h in goal.hypotheses for n in h.names}

    def fresh(self, base: str) -> str:
        if base not in self.used:
            self.used.add(base)
            return base
        for mark in ("'", *_SUBSCRIPTS):
            name = base + mark
            if name not in self.used:
                self.used.add(name)
                return name
        return self.fresh(base + "_")

    def for_proof_of(self, prop: str) -> str:
        """`hp` for a proof of an atom `p`, else `h`."""
        text = _strip_parens(prop)
        return self.fresh("h" + text if _IDENT.fullmatch(text) and len(text) <= 2 else "h")


def _same(a: Prop, b: Prop) -> bool:
    return a.kind == b.kind and [_norm(p) for p in a.parts] == [_norm(p) for p in b.parts]


def _accessible(name: str) -> bool:
    return "✝" not in name and _IDENT.fullmatch(name) is not None


def _intro_names(target: str, names: _Names) -> list[str]:
    out: list[str] = []
    prop = shape(target)
    while len(out) < _MAX_INTRO:
        if prop.kind == "imp":
            out.append(names.for_proof_of(prop.parts[0]))
            prop = shape(prop.parts[1])
        elif prop.kind == "not":
            out.append(names.for_proof_of(prop.parts[0]))
            break
        elif prop.kind == "forall" and prop.names:
            out.extend(names.fresh(n) for n in prop.names[: _MAX_INTRO - len(out)])
            prop = shape(prop.parts[0])
        else:
            break
    return out


def _closed_arith(text: str) -> bool:
    return bool(_NUMERAL_ARITH.fullmatch(text)) and any(c.isdigit() for c in text)


def goal_openings(goal: Goal) -> list[Opening]:
    """The openings for one goal, the ones that close it first."""
    names = _Names(goal)
    target = shape(goal.target)
    by_type: dict[str, str] = {}
    hyp_props: list[tuple[str, Prop]] = []
    for h in goal.hypotheses:
        for n in h.names:
            if h.value is None:
                by_type[_norm(h.type)] = n
                hyp_props.append((n, shape(h.type)))
    closing: list[Opening] = []
    moves: list[Opening] = []

    def proof_of(prop: str) -> str | None:
        name = by_type.get(_norm(_strip_parens(prop)))
        return name if name is not None and _accessible(name) else None

    found = by_type.get(_norm(goal.target))
    if found is not None:
        closing.append(Opening(f"exact {found}" if _accessible(found) else "assumption", True))
    if target.kind == "true":
        closing.append(Opening("trivial", True))
    if target.kind == "eq":
        left, right = (_norm(p) for p in target.parts)
        if left == right or (_closed_arith(left) and _closed_arith(right)):
            closing.append(Opening("rfl", True))
        swapped = Prop("eq", tuple(reversed(target.parts)))
        for name, prop in hyp_props:
            if _accessible(name) and prop.kind == "eq" and _same(prop, swapped):
                closing.append(Opening(f"exact {name}.symm", True))
    negated = {_norm(_strip_parens(p.parts[0])) for _, p in hyp_props if p.kind == "not"}
    if any(p.kind == "false" for _, p in hyp_props) or negated & set(by_type):
        closing.append(Opening("contradiction", True))
    if target.kind == "and":
        parts = [proof_of(p) for p in target.parts]
        if all(parts):
            closing.append(Opening(f"exact ⟨{parts[0]}, {parts[1]}⟩", True))
    if target.kind == "or":
        for side, part in zip(("inl", "inr"), target.parts, strict=True):
            proof = proof_of(part)
            if proof:
                closing.append(Opening(f"exact Or.{side} {proof}", True))
    binders = _intro_names(goal.target, names)
    if binders:
        moves.append(Opening("intro " + " ".join(binders)))
    if target.kind in ("and", "iff"):
        moves.append(Opening("constructor"))
    if target.kind == "or":
        moves.extend((Opening("left"), Opening("right")))
    for name, prop in hyp_props:
        if not _accessible(name):
            continue
        if prop.kind == "imp" and _norm(_strip_parens(prop.parts[1])) == _norm(goal.target):
            moves.append(Opening(f"apply {name}"))
        elif prop.kind in ("and", "iff"):
            a, b = (names.for_proof_of(p) for p in prop.parts)
            moves.append(Opening(f"obtain ⟨{a}, {b}⟩ := {name}"))
        elif prop.kind == "or":
            a, b = (names.for_proof_of(p) for p in prop.parts)
            moves.append(Opening(f"rcases {name} with {a} | {b}"))
        elif prop.kind == "exists" and len(prop.names) == 1:
            witness = names.fresh(prop.names[0])
            moves.append(Opening(f"obtain ⟨{witness}, {names.fresh('h' + witness)}⟩ := {name}"))
    return closing + moves


def openings(state: str) -> list[Opening]:
    """The openings for the main goal of `state`; none for a state that does not parse or
    has no goals. An opening closes only when the main goal is the one goal open."""
    try:
        goals = parse_state(state).goals
    except GoalParseError:
        return []
    if not goals:
        return []
    found = goal_openings(goals[0])
    if len(goals) > 1:
        found = [Opening(o.line) for o in found]
    unique: dict[str, Opening] = {}
    for o in found:
        unique.setdefault(o.line, o)
    return list(unique.values())
