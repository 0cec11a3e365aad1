"""A model of Lean's elaboration for a small core-logic fragment, for `fake_repl.py --elaborate`.

The fake REPL answers from recordings; model candidates are open-ended text that no
recording covers. This module elaborates, the way Lean does, the tactics and declarations
that lie in a small fragment, from and to the goal TEXTS the fake keeps (it parses a goal
back into a local context and a target, runs the tactic, and pretty-prints the result).
Anything outside the fragment, or any case where Lean's behaviour could not be pinned down,
raises `Unmodelled`, and the fake falls back to its unrecorded behaviour: it never guesses.
Facts cite Lean 4 sources as `Meta/Tactic/Apply.lean` for `src/Lean/Meta/Tactic/Apply.lean`
etc., and the REPL's test transcripts as `test:<name>` (as `fake_repl.py` does).

Terms and propositions: local constants (hypotheses, Prop variables, `α : Type`, local
functions), `→` (and dependent `∀ (x : α), ...`, `∀ {x : α}, ...`), `¬`, `∧`, `∨`, `↔`,
`True`, `False`, `=`, `≠`, `<`, `>`, `≤`, `≥`, Nat numerals, `+`, `*`, application,
`∃ x, ...`, `fun x => ...`, parentheses, anonymous constructors `⟨a, b⟩` (flattened to the
right, as Lean's anonymous-constructor elaborator does), projections `.1 .2 .left .right
.mp .mpr .symm`, and these core constants with their signatures from `Init/Prelude.lean`
and `Init/Core.lean` (binder names matter: they become case tags): `And.intro (left)
(right)`, `And.left`, `And.right`, `Or.inl (h)`, `Or.inr (h)`, `Or.elim (h) (left)
(right)`, `Iff.intro (mp) (mpr)`, `Iff.mp`, `Iff.mpr`, `absurd (h₁) (h₂)`, `False.elim
(h)`, `trivial`, `True.intro`, `rfl`, `Eq.refl`, `Eq.symm (h)`, `Eq.trans (h₁) (h₂)`,
`congrArg (f) (h)`, `id`. Any other identifier that is no hypothesis is unmodelled (it may
be any of core's constants, so "unknown identifier" is never claimed).

Printing (Lean's notations in `Init/Prelude.lean`, `Init/Core.lean`, `Init/Notation.lean`
and the parenthesizer): `→` infixr 25, `↔` 20, `∨` infixr 30, `∧` infixr 35, `¬` max
with its argument at 40 (`¬a = b`, `¬(p ∧ q)`), `=` `≠` `<` `>` `≤` `≥` 50, `+` infixl 65,
`*` infixl 70, application at max; binder notations (`∀`, `∃`, `fun`) need no parentheses
in the rightmost position; `∀ (a b : Nat), ...` groups consecutive binders of one type and
kind (pp.piBinderTypes); `∃ x y, ...` merges nested `Exists` and hides the types (its app
unexpander; test:variables `∃ k, f 2015 = k`); a non-dependent explicit binder is an arrow.
Goals print as `Meta/PPGoal.lean` `ppGoal`: `case tag`, then hypotheses, consecutive ones of
the same type grouped (`p q : Prop`, test:name_generator `h0 h : x > 0`), then `⊢ target`;
a shadowed or hygienic name shows as `h✝`. Where two hypotheses would both show with `✝`
and the same base name, Lean adds superscript indices whose order is not established here:
unmodelled. So is any line longer than 80 characters (Lean would wrap it at some width).

Tactics (each on the main goal; the other goals follow its new goals):
  - `intro`, `intro x y`, `intro _` (`Meta/Tactic/Intro.lean` `introNCore`: a binder is
    found by `whnf`, so `¬p` intros; a name-less or `_` binder gets its binder name made
    inaccessible: `a✝` for an arrow, whose binder name is `a`); `intros` (`getIntrosSize`:
    the syntactic binders only, no unfolding). No binder: an error (thrown).
  - `exact e` (`Elab/Tactic/ElabTerm.lean`: `elabTermEnsuringType` with error recovery, so
    a mistyped term logs its error and the goal is admitted, test:invalid_tactic).
  - `apply e` (`Meta/Tactic/Apply.lean`): an identifier is taken as the constant itself
    (`elabTermForApply`), other terms are elaborated with no expected type; the conclusion
    after i = (its arity - the target's arity) .. arity arguments is unified with the target;
    new goals are the unassigned explicit arguments, in order; `appendParentTag`: a single
    new metavariable inherits the goal's tag, else under a tagged goal each gets
    `tag.binderName` and under an untagged goal its binder name (test:proof_branching,
    Pantograph `apply Or.inr` -> `inl.h`, LeanInk `apply Or.elim (And.right h)` ->
    `mp.left`). Unassigned implicit arguments (goals `?a` would show) are unmodelled.
  - `constructor` (`Meta/Tactic/Constructor.lean`: `apply` with each constructor in turn):
    ∧, ↔, `True`, ∨ (its first constructor `Or.inl` always applies); `left`, `right`
    (`nthConstructor`, same tags as `apply`); `exfalso` (`refine False.elim ?_`, the tag
    kept); `exact` forms above.
  - `rfl` (`Elab/Tactic/Rfl.lean`, `Meta/Tactic/Rfl.lean`): `Eq` by definitional equality,
    `Iff` by syntactic equality; any other target fails.
  - `assumption` (`Meta/Tactic/Assumption.lean`: the LAST hypothesis whose type is defeq).
  - `contradiction` (`Meta/Tactic/Contradiction.lean`): a `False` hypothesis, `h : ¬p` with
    `p` among the hypotheses, `a ≠ a`, `¬a = a`, or two distinct numerals equal; when none is
    found and some hypothesis is an equation of Nat terms that are no numerals (a constructor
    clash could close it), unmodelled.
  - `trivial` (`Init/Tactics.lean` macro_rules, latest first: `apply And.intro <;>
    trivial`, `apply True.intro`, `decide`, `contradiction`, `rfl`, `assumption`).
  - `decide` on propositions without free variables built from closed Nat (in)equalities
    and the connectives.
  - `cases h` (`Meta/Tactic/Cases.lean`) for `h` of type ∧ (`case intro`, `left✝ right✝`),
    ∨ (`case inl`/`inr`, `h✝`), ∃ (`case intro`, `w✝ h✝`), `False` (closes); the tags are
    appended to the goal's tag; `h` leaves the context and the fields come last (Pantograph
    `cases h` on `p ∨ q`). A hypothesis that depends on `h` is unmodelled.
Declarations (`theorem`/`example` with `(x : T)`/`{x : T}` binders, no auto-bound names):
the first goal is the binders as hypotheses and the statement as target (test:
proof_branching). No linter warning is modelled: with `linter.unusedVariables.analyzeTactics`
off (its default), variables in scope of a tactic block count as used.
Unmodelled on purpose: `rcases`/`obtain`/`intro ⟨..⟩` patterns, `cases ... with`,
`constructor` on ∃ (goals with `?w`), `exists`, `have`, `show`, `simp`, `rw`, `omega`.

Definitional equality: syntactic up to unfolding `¬`/`≠`, beta, and evaluation of closed Nat
arithmetic; distinct rigid heads (local constants, numerals, connectives) differ; any other
comparison (e.g. `x + 0` against `x`, where Lean would unfold `Nat.add`) is unmodelled.

Error texts: Lean's own wording is used only where a recording establishes it for this
Lean version (v4.33.0-rc2): `apply` of a term whose type is no function, `Tactic \\`apply\\`
failed: could not unify the type of \\`e\\`` + the two types + the goal (test:
app_type_mismatch2). Every other failure is reported at the place Lean reports it (a thrown
error, or a logged one with the goal admitted) with the double's own text, which says so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace

_UIDS = itertools.count(1)
MAX_LINE = 80
OWN = "(the double does not know Lean's wording)"


class Unmodelled(Exception):
    """Outside the fragment, or a behaviour of Lean this model cannot be sure of."""


class Failure(Exception):
    """The tactic fails in Lean. `logged`: the error is logged and the goal admitted (term
    elaboration with error recovery); else it is thrown."""

    def __init__(self, text: str, logged: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.logged = logged


def own(what: str) -> str:
    return f"core_logic: {what} {OWN}"


# --- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    uid: int


@dataclass(frozen=True)
class MVar:
    uid: int


@dataclass(frozen=True)
class Const:
    name: str  # Prop, Type, Nat, True, False


@dataclass(frozen=True)
class Lit:
    n: int


@dataclass(frozen=True)
class Opaque:
    """A proof (its value never matters in the fragment) or a sorry."""

    uid: int


@dataclass(frozen=True)
class Op:
    name: str  # And Or Iff Not Eq Ne Lt Gt Le Ge Add Mul
    args: tuple[E, ...]


@dataclass(frozen=True)
class App:
    fn: E
    arg: E


@dataclass(frozen=True)
class Bind:
    kind: str  # "pi", "lam", "ex"
    uid: int
    name: str
    dom: E
    body: E
    implicit: bool = False


E = Var | MVar | Const | Lit | Opaque | Op | App | Bind
PROP, TYPE, NAT = Const("Prop"), Const("Type"), Const("Nat")
TRUE, FALSE = Const("True"), Const("False")
_REL = {"Eq": "=", "Ne": "≠", "Lt": "<", "Gt": ">", "Le": "≤", "Ge": "≥"}
_LOGIC = {"And": ("∧", 35, 36, 35), "Or": ("∨", 30, 31, 30), "Iff": ("↔", 20, 21, 21)}
_ARITH = {"Add": ("+", 65, 65, 66), "Mul": ("*", 70, 70, 71)}
MAX = 1024


def fresh() -> int:
    return next(_UIDS)


def subst(e: E, uid: int, val: E) -> E:
    if isinstance(e, Var):
        return val if e.uid == uid else e
    if isinstance(e, Op):
        return Op(e.name, tuple(subst(a, uid, val) for a in e.args))
    if isinstance(e, App):
        return App(subst(e.fn, uid, val), subst(e.arg, uid, val))
    if isinstance(e, Bind):
        return replace(e, dom=subst(e.dom, uid, val), body=subst(e.body, uid, val))
    return e


def occurs(e: E, pred: Callable[[E], bool]) -> bool:
    if pred(e):
        return True
    if isinstance(e, Op):
        return any(occurs(a, pred) for a in e.args)
    if isinstance(e, App):
        return occurs(e.fn, pred) or occurs(e.arg, pred)
    if isinstance(e, Bind):
        return occurs(e.dom, pred) or occurs(e.body, pred)
    return False


def mentions(e: E, uid: int) -> bool:
    return occurs(e, lambda x: isinstance(x, Var) and x.uid == uid)


def _is_mvar(uid: int) -> Callable[[E], bool]:
    return lambda e: isinstance(e, MVar) and e.uid == uid


def closed_nat(e: E) -> int | None:
    """The value of a closed Nat term (numerals, `+`, `*`), else None."""
    if isinstance(e, Lit):
        return e.n
    if isinstance(e, Op) and e.name in _ARITH:
        a, b = (closed_nat(x) for x in e.args)
        if a is None or b is None:
            return None
        return a + b if e.name == "Add" else a * b
    return None


def unfold(e: E) -> E:
    """`whnf` as far as the fragment needs: `¬p` is `p → False`, `a ≠ b` is `a = b → False`
    (`Not`, `Ne` in Init/Prelude.lean, Init/Core.lean: binder `a`), and beta."""
    if isinstance(e, Op) and e.name == "Not":
        return Bind("pi", fresh(), "a", e.args[0], FALSE)
    if isinstance(e, Op) and e.name == "Ne":
        return Bind("pi", fresh(), "a", Op("Eq", e.args), FALSE)
    if isinstance(e, App) and isinstance(e.fn, Bind) and e.fn.kind == "lam":
        return unfold(subst(e.fn.body, e.fn.uid, e.arg))
    return e


# --- metavariables and definitional equality -------------------------------------------------


class Meta:
    """Metavariable assignments (first-order, rolled back on failure as `isDefEq` does)."""

    def __init__(self) -> None:
        self.assigned: dict[int, E] = {}
        self.types: dict[int, E] = {}
        self.names: dict[int, str] = {}

    def new(self, type_: E, name: str = "") -> MVar:
        m = MVar(fresh())
        self.types[m.uid] = type_
        self.names[m.uid] = name
        return m

    def inst(self, e: E) -> E:
        if isinstance(e, MVar):
            val = self.assigned.get(e.uid)
            return e if val is None else self.inst(val)
        if isinstance(e, Op):
            return Op(e.name, tuple(self.inst(a) for a in e.args))
        if isinstance(e, App):
            fn = self.inst(e.fn)
            arg = self.inst(e.arg)
            return App(fn, arg)
        if isinstance(e, Bind):
            return replace(e, dom=self.inst(e.dom), body=self.inst(e.body))
        return e

    def unassigned(self, e: E) -> bool:
        return occurs(self.inst(e), lambda x: isinstance(x, MVar))

    def defeq(self, a: E, b: E) -> bool:
        saved = dict(self.assigned)
        try:
            ok = self._defeq(self.inst(a), self.inst(b))
        except Unmodelled:
            self.assigned = saved
            raise
        if not ok:
            self.assigned = saved
        return ok

    def _defeq(self, a: E, b: E) -> bool:
        a, b = self.inst(a), self.inst(b)
        if a == b:
            return True
        for x, y in ((a, b), (b, a)):
            if isinstance(x, MVar):
                if occurs(y, _is_mvar(x.uid)):
                    raise Unmodelled("occurs check")
                self.assigned[x.uid] = y
                return True
        if isinstance(a, Opaque) or isinstance(b, Opaque):
            return True  # proofs are definitionally equal (proof irrelevance)
        va, vb = closed_nat(a), closed_nat(b)
        if va is not None and vb is not None:
            return va == vb
        for x in (a, b):
            if isinstance(x, Op) and x.name in ("Not", "Ne"):
                return self._defeq(unfold(a), unfold(b))
            if isinstance(x, App) and isinstance(x.fn, Bind):
                return self._defeq(unfold(a), unfold(b))
        if isinstance(a, Op) and isinstance(b, Op) and a.name == b.name:
            if all(self._defeq(x, y) for x, y in zip(a.args, b.args, strict=True)):
                return True
            if a.name in _ARITH:
                raise Unmodelled("Nat arithmetic that does not match syntactically")
            return False
        if isinstance(a, App) and isinstance(b, App):
            if self._defeq(a.fn, b.fn) and self._defeq(a.arg, b.arg):
                return True
            raise Unmodelled("applications that differ")
        if isinstance(a, Bind) and isinstance(b, Bind):
            if a.kind != b.kind or a.implicit != b.implicit:
                return False
            if not self._defeq(a.dom, b.dom):
                return False
            shared = Var(fresh())
            return self._defeq(subst(a.body, a.uid, shared), subst(b.body, b.uid, shared))
        for x in (a, b):
            if (isinstance(x, Op) and x.name in _ARITH) or isinstance(x, App):
                raise Unmodelled("a Nat term or application against another head")
        return False  # distinct rigid heads


# --- tokens and syntax -----------------------------------------------------------------------


def _letter_like(c: str) -> bool:
    n = ord(c)
    return (
        (0x3B1 <= n <= 0x3C9 and n != 0x3BB)
        or (0x391 <= n <= 0x3A9 and n not in (0x3A0, 0x3A3))
        or 0x3CA <= n <= 0x3FB
        or 0x1F00 <= n <= 0x1FFE
        or 0x2100 <= n <= 0x214F
    )


def _id_first(c: str) -> bool:
    return (c.isascii() and c.isalpha()) or c == "_" or _letter_like(c)


def _id_rest(c: str) -> bool:
    sub = 0x2080 <= ord(c) <= 0x2089 or 0x2090 <= ord(c) <= 0x209C
    return (c.isascii() and c.isalnum()) or c in "_'!?" or _letter_like(c) or sub


_SYMS = sorted(
    [
        "→",
        "↔",
        "∧",
        "∨",
        "¬",
        "=",
        "≠",
        "<",
        ">",
        "≤",
        "≥",
        "+",
        "*",
        "(",
        ")",
        "⟨",
        "⟩",
        ",",
        ":",
        ":=",
        "=>",
        "∀",
        "∃",
        "{",
        "}",
        "->",
        "<->",
        "⊢",
        "✝",
    ],
    key=len,
)[::-1]
_RESERVED = set(
    [
        "at",
        "by",
        "calc",
        "do",
        "else",
        "forall",
        "from",
        "have",
        "if",
        "in",
        "let",
        "match",
        "show",
        "suffices",
        "then",
    ]
)
_RESERVED |= set(["using", "with", "sorry", "Sort", "fun"])


def _dot_continues(src: str, i: int) -> bool:
    """`a.b` and `h.1` are one identifier (name components, projections folded in)."""
    return src[i] == "." and i + 1 < len(src) and (_id_first(src[i + 1]) or src[i + 1].isdigit())


@dataclass(frozen=True)
class Tok:
    kind: str  # ident num sym eof
    text: str
    start: int


def tokenize(src: str, goal_names: bool = False) -> list[Tok]:
    """Identifiers (dotted, `h.1` projections folded in), numerals, the fragment's
    symbols; with `goal_names`, an identifier may end in `✝` (a printed goal)."""
    out: list[Tok] = []
    i, n = 0, len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if src.startswith("--", i) or src.startswith("/-", i):
            raise Unmodelled("comments")
        if i >= n:
            out.append(Tok("eof", "", n))
            return out
        start, c = i, src[i]
        if _id_first(c):
            i += 1
            while i < n and (_id_rest(src[i]) or _dot_continues(src, i)):
                i += 1
            if goal_names and i < n and src[i] == "✝":
                i += 1
                if i < n and src[i] in "¹²³⁴⁵⁶⁷⁸⁹⁰":
                    raise Unmodelled("superscript-indexed inaccessible names")
            out.append(Tok("ident", src[start:i], start))
        elif c.isdigit():
            while i < n and src[i].isdigit():
                i += 1
            if i < n and (src[i].isalpha() or src[i] in "._"):
                raise Unmodelled("numeric literal forms")
            out.append(Tok("num", src[start:i], start))
        else:
            sym = next((s for s in _SYMS if src.startswith(s, i)), None)
            if sym is None:
                raise Unmodelled(f"the symbol {c!r}")
            i += len(sym)
            out.append(Tok("sym", {"->": "→", "<->": "↔"}.get(sym, sym), start))


@dataclass(frozen=True)
class S:
    """Syntax: kind in ident num app paren anon fun pi ex op not arrow; `start` offset."""

    kind: str
    text: str = ""
    kids: tuple[S, ...] = ()
    binders: tuple[tuple[str, S | None, bool], ...] = ()  # name, type, implicit
    start: int = 0


_INFIX = {  # symbol: (op, precedence, lhs precedence, rhs precedence)
    "→": ("Arrow", 25, 26, 25),
    "↔": ("Iff", 20, 21, 21),
    "∨": ("Or", 30, 31, 30),
    "∧": ("And", 35, 36, 35),
    "=": ("Eq", 50, 51, 51),
    "≠": ("Ne", 50, 51, 51),
    "<": ("Lt", 50, 51, 51),
    ">": ("Gt", 50, 51, 51),
    "≤": ("Le", 50, 51, 51),
    "≥": ("Ge", 50, 51, 51),
    "+": ("Add", 65, 65, 66),
    "*": ("Mul", 70, 70, 71),
}


class Parser:
    """A Pratt parser for the fragment's terms, with Lean's precedences."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks, self.i = toks, 0

    def peek(self) -> Tok:
        return self.toks[self.i]

    def take(self) -> Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def at(self, *syms: str) -> bool:
        tok = self.peek()
        return tok.kind == "sym" and tok.text in syms

    def expect(self, sym: str) -> None:
        if not self.at(sym):
            raise Unmodelled(f"expected {sym!r}")  # a syntax error: its wording is unknown
        self.take()

    def starts_arg(self) -> bool:
        tok = self.peek()
        if tok.kind == "num":
            return True
        if tok.kind == "ident":
            return tok.text not in _RESERVED and tok.text != "λ"
        return self.at("(", "⟨")

    def term(self, min_prec: int = 0) -> S:
        left, prec = self.leading()
        while True:
            tok = self.peek()
            if tok.kind != "sym" or tok.text not in _INFIX:
                return left
            op, p, lhs, rhs = _INFIX[tok.text]
            if p < min_prec or prec < lhs:
                return left
            self.take()
            right = self.term(rhs)
            left, prec = S("op", op, (left, right), start=left.start), p

    def leading(self) -> tuple[S, int]:
        tok = self.peek()
        if tok.kind == "sym" and tok.text in ("∀", "∃"):
            self.take()
            binders = self.binders(",")
            body = self.term(0)
            return S("pi" if tok.text == "∀" else "ex", "", (body,), binders, tok.start), 0
        if tok.kind == "ident" and tok.text in ("fun", "λ"):
            self.take()
            binders = self.binders("=>")
            body = self.term(0)
            return S("fun", "", (body,), binders, tok.start), 0
        if self.at("¬"):
            self.take()
            return S("not", "", (self.term(40),), start=tok.start), MAX
        head = self.atom()
        args = []
        while self.starts_arg():
            args.append(self.atom())
        if args:
            return S("app", "", (head, *args), start=head.start), MAX
        return head, MAX

    def atom(self) -> S:
        tok = self.take()
        if tok.kind == "num":
            return S("num", tok.text, start=tok.start)
        if tok.kind == "ident" and tok.text not in _RESERVED and tok.text != "λ":
            return S("ident", tok.text, start=tok.start)
        if tok.kind == "sym" and tok.text == "(":
            inner = self.term(0)
            if self.at(":"):
                raise Unmodelled("type ascriptions")
            self.expect(")")
            return S("paren", "", (inner,), start=tok.start)
        if tok.kind == "sym" and tok.text == "⟨":
            items: list[S] = []
            if not self.at("⟩"):
                items.append(self.term(0))
                while self.at(","):
                    self.take()
                    items.append(self.term(0))
            self.expect("⟩")
            return S("anon", "", tuple(items), start=tok.start)
        raise Unmodelled(f"the term syntax {tok.text!r}")

    def binders(self, end: str) -> tuple[tuple[str, S | None, bool], ...]:
        out: list[tuple[str, S | None, bool]] = []
        while not self.at(end):
            if self.at("(", "{"):
                implicit = self.take().text == "{"
                names = self.names()
                self.expect(":")
                ty = self.term(0)
                self.expect("}" if implicit else ")")
                out += [(n, ty, implicit) for n in names]
            else:
                names = self.names()
                ty = None
                if self.at(":"):
                    self.take()
                    ty = self.term(0)
                out += [(n, ty, False) for n in names]
                if not self.at(end):
                    raise Unmodelled("binder syntax")
        if not out:
            raise Unmodelled("empty binders")
        self.take()
        return tuple(out)

    def names(self) -> list[str]:
        names = []
        while self.peek().kind == "ident" and self.peek().text not in _RESERVED:
            names.append(self.take().text)
        if not names:
            raise Unmodelled("binder names")
        return names

    def done(self) -> None:
        if self.peek().kind != "eof":
            raise Unmodelled("trailing input")


def parse_term(text: str, goal_names: bool = False) -> S:
    parser = Parser(tokenize(text, goal_names))
    term = parser.term(0)
    parser.done()
    return term


# --- local contexts and goals ----------------------------------------------------------------


@dataclass
class Hyp:
    uid: int
    name: str  # the user name, without `✝`
    type: E
    hidden: bool = False  # inaccessible (hygienic)


@dataclass
class Goal:
    hyps: list[Hyp]
    target: E
    tag: str = ""

    def types(self) -> dict[int, E]:
        return {h.uid: h.type for h in self.hyps}

    def lookup(self, name: str) -> Hyp | None:
        """An accessible hypothesis by name (the last one of that name)."""
        for h in reversed(self.hyps):
            if h.name == name:
                return None if h.hidden else h
        return None


def shown_names(hyps: list[Hyp]) -> dict[int, str]:
    """Display names: a hidden or shadowed hypothesis shows as `name✝`."""
    out: dict[int, str] = {}
    seen: set[str] = set()
    daggers: set[str] = set()
    for h in reversed(hyps):
        if h.hidden or h.name in seen:
            if h.name in daggers:
                raise Unmodelled("two inaccessible names with one base (superscripts)")
            daggers.add(h.name)
            out[h.uid] = h.name + "✝"
        else:
            out[h.uid] = h.name
        seen.add(h.name)
    return out


# --- elaboration of types and terms ----------------------------------------------------------


@dataclass
class Sig:
    """A core constant: binders (name, type builder index, implicit) as a Pi type."""

    type: Callable[[Meta], E]


def _pi(name: str, dom: E, body: Callable[[Var], E], implicit: bool = False) -> E:
    v = Var(fresh())
    return Bind("pi", v.uid, name, dom, body(v), implicit)


def _props(n: int, body: Callable[..., E]) -> E:
    """`∀ {a b ... : Prop}, body(a, b, ...)`."""
    names = ["a", "b", "c"][:n]
    vs = [Var(fresh()) for _ in names]
    e = body(*vs)
    for name, v in reversed(list(zip(names, vs, strict=True))):
        e = Bind("pi", v.uid, name, PROP, e, True)
    return e


def _arrow(name: str, dom: E, body: E) -> E:
    return Bind("pi", fresh(), name, dom, body)


def _sort_poly(name: str, body: Callable[[Var], E]) -> E:
    """`∀ {α : Sort u}, ...`: the universe is not modelled; the binder's type is a marker
    that is never compared (its metavariable is assigned by unification)."""
    return _pi(name, Const("Sort"), body, True)


def _not(e: E) -> E:
    return Op("Not", (e,))


CONSTANTS: dict[str, Callable[[], E]] = {
    "And.intro": lambda: _props(
        2, lambda a, b: _arrow("left", a, _arrow("right", b, Op("And", (a, b))))
    ),
    "And.left": lambda: _props(2, lambda a, b: _arrow("self", Op("And", (a, b)), a)),
    "And.right": lambda: _props(2, lambda a, b: _arrow("self", Op("And", (a, b)), b)),
    "Or.inl": lambda: _props(2, lambda a, b: _arrow("h", a, Op("Or", (a, b)))),
    "Or.inr": lambda: _props(2, lambda a, b: _arrow("h", b, Op("Or", (a, b)))),
    "Or.elim": lambda: _props(
        3,
        lambda a, b, c: _arrow(
            "h",
            Op("Or", (a, b)),
            _arrow("left", _arrow("a", a, c), _arrow("right", _arrow("a", b, c), c)),
        ),
    ),
    "Iff.intro": lambda: _props(
        2,
        lambda a, b: _arrow(
            "mp", _arrow("a", a, b), _arrow("mpr", _arrow("a", b, a), Op("Iff", (a, b)))
        ),
    ),
    "Iff.mp": lambda: _props(2, lambda a, b: _arrow("self", Op("Iff", (a, b)), _arrow("a", a, b))),
    "Iff.mpr": lambda: _props(2, lambda a, b: _arrow("self", Op("Iff", (a, b)), _arrow("a", b, a))),
    "absurd": lambda: _pi(
        "a",
        PROP,
        lambda a: _pi("b", PROP, lambda b: _arrow("h₁", a, _arrow("h₂", _not(a), b)), True),
        True,
    ),
    "False.elim": lambda: _pi("C", PROP, lambda c: _arrow("h", FALSE, c), True),
    "trivial": lambda: TRUE,
    "True.intro": lambda: TRUE,
    "rfl": lambda: _sort_poly("α", lambda t: _pi("a", t, lambda a: Op("Eq", (a, a)), True)),
    "Eq.refl": lambda: _sort_poly("α", lambda t: _pi("a", t, lambda a: Op("Eq", (a, a)))),
    "Eq.symm": lambda: _sort_poly(
        "α",
        lambda t: _pi(
            "a",
            t,
            lambda a: _pi("b", t, lambda b: _arrow("h", Op("Eq", (a, b)), Op("Eq", (b, a))), True),
            True,
        ),
    ),
    "Eq.trans": lambda: _sort_poly(
        "α",
        lambda t: _pi(
            "a",
            t,
            lambda a: _pi(
                "b",
                t,
                lambda b: _pi(
                    "c",
                    t,
                    lambda c: _arrow(
                        "h₁", Op("Eq", (a, b)), _arrow("h₂", Op("Eq", (b, c)), Op("Eq", (a, c)))
                    ),
                    True,
                ),
                True,
            ),
            True,
        ),
    ),
    "congrArg": lambda: _sort_poly(
        "α",
        lambda t: _sort_poly(
            "β",
            lambda u: _pi(
                "a₁",
                t,
                lambda a: _pi(
                    "a₂",
                    t,
                    lambda b: _pi(
                        "f",
                        _arrow("a", t, u),
                        lambda f: _arrow("h", Op("Eq", (a, b)), Op("Eq", (App(f, a), App(f, b)))),
                    ),
                    True,
                ),
                True,
            ),
        ),
    ),
    "id": lambda: _sort_poly("α", lambda t: _pi("a", t, lambda a: t)),
}


class Elab:
    """Elaborates fragment syntax in a goal's local context."""

    def __init__(self, goal: Goal, meta: Meta | None = None) -> None:
        self.goal = goal
        self.meta = meta or Meta()
        self.ctx: dict[int, E] = goal.types()
        self.scope: dict[str, int] = {}  # bound variables in scope, by name
        self.errors: list[str] = []

    # types
    def infer(self, e: E) -> E:
        e = self.meta.inst(e)
        if isinstance(e, Var):
            return self.ctx[e.uid]
        if isinstance(e, MVar):
            return self.meta.types[e.uid]
        if isinstance(e, Lit):
            return NAT
        if isinstance(e, Const):
            if e.name in ("True", "False"):
                return PROP
            if e.name in ("Prop", "Nat"):
                return TYPE
            if e.name == "Type":
                return Const("Type 1")
            raise Unmodelled("universes")
        if isinstance(e, Op):
            if e.name in _ARITH:
                return NAT
            return PROP
        if isinstance(e, App):
            fn = unfold(self.meta.inst(self.infer(e.fn)))
            if not (isinstance(fn, Bind) and fn.kind == "pi"):
                raise Unmodelled("application of a non-function")
            return subst(fn.body, fn.uid, e.arg)
        if isinstance(e, Bind):
            if e.kind == "ex":
                return PROP
            if e.kind == "lam":
                self.ctx[e.uid] = e.dom
                return Bind("pi", e.uid, e.name, e.dom, self.infer(e.body))
            self.ctx[e.uid] = e.dom
            body = self.meta.inst(self.infer(e.body))
            if body == PROP:
                return PROP
            if body == TYPE and self.meta.inst(self.infer(e.dom)) == TYPE:
                return TYPE
            raise Unmodelled("the sort of a Pi type")
        raise Unmodelled("the type of a proof")

    def is_prop(self, e: E) -> bool:
        return self.meta.inst(self.infer(e)) == PROP

    def type_of_type(self, stx: S) -> E:
        """Elaborate `stx` as a type (a Prop or a Type)."""
        e = self.expr(stx, None)
        sort = self.meta.inst(self.infer(e))
        if sort not in (PROP, TYPE, Const("Type 1")):
            raise Unmodelled("a type that is no Prop or Type")
        return e

    def name(self, text: str) -> E:
        if text in self.scope:
            return Var(self.scope[text])
        hyp = self.goal.lookup(text)
        if hyp is not None:
            return Var(hyp.uid)
        if text in ("Prop", "Nat", "True", "False", "Type"):
            return Const(text)
        raise Unmodelled(f"the identifier {text}")

    def expr(self, stx: S, expected: E | None) -> E:
        """Elaborate a term that is a type or data (no proofs): its value."""
        k = stx.kind
        if k == "paren":
            return self.expr(stx.kids[0], expected)
        if k == "num":
            if expected is not None and not self.meta.defeq(expected, NAT):
                raise Unmodelled("numerals of other types")
            return Lit(int(stx.text))
        if k == "ident":
            if "." in stx.text:
                raise Unmodelled("dotted names in types")
            return self.name(stx.text)
        if k == "not":
            return Op("Not", (self.prop(stx.kids[0]),))
        if k == "op":
            a, b = stx.kids
            if stx.text == "Arrow":
                dom = self.type_of_type(a)
                return Bind("pi", fresh(), "a", dom, self.type_of_type(b))
            if stx.text in ("And", "Or", "Iff"):
                return Op(stx.text, (self.prop(a), self.prop(b)))
            if stx.text in _ARITH:
                lhs, rhs = self.expr(a, NAT), self.expr(b, NAT)
                if not all(self.meta.defeq(self.infer(v), NAT) for v in (lhs, rhs)):
                    raise Unmodelled("arithmetic outside Nat")
                return Op(stx.text, (lhs, rhs))
            # relations: both sides of one type (numerals default to Nat)
            x: E | None = self.expr(a, None) if a.kind != "num" else None
            y = self.expr(b, self.infer(x) if x is not None else None)
            if x is None:
                x = self.expr(a, self.infer(y))
            if not self.meta.defeq(self.infer(x), self.infer(y)):
                raise Unmodelled("a relation between terms of different types")
            ty = self.meta.inst(self.infer(x))
            if stx.text not in ("Eq", "Ne") and ty != NAT:
                raise Unmodelled("orders outside Nat")
            if isinstance(ty, MVar) or self.meta.inst(self.infer(ty)) != TYPE:
                raise Unmodelled("relations between types or propositions")
            return Op(stx.text, (x, y))
        if k == "app":
            fn = self.expr(stx.kids[0], None)
            for arg in stx.kids[1:]:
                ft = unfold(self.meta.inst(self.infer(fn)))
                if not (isinstance(ft, Bind) and ft.kind == "pi" and not ft.implicit):
                    raise Unmodelled("application of a non-function")
                val = self.expr(arg, ft.dom)
                if not self.meta.defeq(self.infer(val), ft.dom):
                    raise Unmodelled("an ill-typed argument in a statement")
                fn = App(fn, val)
            return fn
        if k in ("pi", "ex", "fun"):
            return self.binder(stx)
        raise Unmodelled(f"{k} in a type")

    def prop(self, stx: S) -> E:
        e = self.expr(stx, None)
        if not self.meta.defeq(self.infer(e), PROP):
            raise Unmodelled("a non-proposition where a proposition is expected")
        return e

    def binder(self, stx: S) -> E:
        saved = dict(self.scope)
        made: list[tuple[int, str, E, bool]] = []
        for name, ty, implicit in stx.binders:
            dom = self.type_of_type(ty) if ty is not None else self.meta.new(TYPE)
            uid = fresh()
            self.ctx[uid] = dom
            self.scope[name] = uid
            made.append((uid, name, dom, implicit))
        body = self.prop(stx.kids[0]) if stx.kind != "fun" else self.expr(stx.kids[0], None)
        self.scope = saved
        kind = {"pi": "pi", "ex": "ex", "fun": "lam"}[stx.kind]
        for uid, name, dom, implicit in reversed(made):
            dom = self.meta.inst(dom)
            if isinstance(dom, MVar):
                raise Unmodelled("a binder type left to inference")
            body = Bind(kind, uid, name, dom, self.meta.inst(body), implicit)
        return body

    # proofs
    def proof(self, stx: S, expected: E | None) -> tuple[E, E]:
        """Elaborate a proof or data term against `expected`: (value, type). Errors in
        sub-terms are logged and the sub-term becomes a sorry (Lean's error recovery)."""
        k = stx.kind
        if k == "paren":
            return self.proof(stx.kids[0], expected)
        if k == "num":
            return self.expr(stx, expected), NAT
        if k == "anon":
            return self.anon(stx, expected)
        if k == "fun":
            return self.fun(stx, expected)
        if k == "ident":
            return self.head(stx.text)
        if k == "app":
            return self.app(stx, expected)
        if k in ("op", "not", "pi", "ex"):
            value = self.expr(stx, None)
            return value, self.infer(value)
        raise Unmodelled(f"the term {k}")

    def head(self, text: str) -> tuple[E, E]:
        """An identifier with its implicit arguments instantiated, or a projection."""
        base, _, rest = text.partition(".")
        if base in self.scope or self.goal.lookup(base) is not None:
            value: E = self.name(base)
            type_ = self.infer(value)
            for field_ in rest.split(".") if rest else []:
                value, type_ = self.project(value, type_, field_)
            return value, type_
        if text not in CONSTANTS:
            raise Unmodelled(f"the identifier {text}")
        value = Opaque(fresh())
        type_ = CONSTANTS[text]()
        return self.implicits(value, type_)

    def implicits(self, value: E, type_: E) -> tuple[E, E]:
        while isinstance(type_, Bind) and type_.kind == "pi" and type_.implicit:
            m = self.meta.new(type_.dom, type_.name)
            value, type_ = App(value, m), subst(type_.body, type_.uid, m)
        return value, type_

    def project(self, value: E, type_: E, name: str) -> tuple[E, E]:
        t = self.meta.inst(type_)
        if isinstance(t, Op) and t.name == "And" and name in ("1", "2", "left", "right"):
            return Opaque(fresh()), t.args[0 if name in ("1", "left") else 1]
        if isinstance(t, Op) and t.name == "Iff" and name in ("1", "2", "mp", "mpr"):
            a, b = t.args if name in ("1", "mp") else t.args[::-1]
            return Opaque(fresh()), _arrow("a", a, b)
        if isinstance(t, Op) and t.name == "Eq" and name == "symm":
            return Opaque(fresh()), Op("Eq", t.args[::-1])
        raise Unmodelled(f"the projection .{name}")

    def app(self, stx: S, expected: E | None) -> tuple[E, E]:
        head = stx.kids[0]
        if head.kind != "ident":
            raise Unmodelled("application of a compound term")
        fn, type_ = self.head(head.text)
        args = stx.kids[1:]
        # propagate the expected type (`propagateExpectedType`: when the output type does not
        # depend on the explicit arguments; a failure here is no error)
        if expected is not None:
            t, binders = self.meta.inst(type_), []
            for _ in args:
                t = unfold(t)
                if not (isinstance(t, Bind) and t.kind == "pi"):
                    break
                binders.append(t.uid)
                t = t.body
            else:
                t = self.meta.inst(t)
                if not (isinstance(t, Bind) and t.implicit) and not any(
                    mentions(t, u) for u in binders
                ):
                    self.meta.defeq(t, expected)
        for arg in args:
            fn, type_ = self.implicits(fn, self.meta.inst(type_))
            ft = unfold(self.meta.inst(type_))
            if not (isinstance(ft, Bind) and ft.kind == "pi"):
                raise Unmodelled("too many arguments")
            dom = self.meta.inst(ft.dom)
            val = self.check(arg, dom)
            fn, type_ = App(fn, val), subst(ft.body, ft.uid, val)
        fn, type_ = self.implicits(fn, self.meta.inst(type_))
        return fn, type_

    def check(self, stx: S, expected: E) -> E:
        """Elaborate `stx` against `expected`; a mismatch is logged, the term a sorry."""
        expected = self.meta.inst(expected)
        if isinstance(expected, MVar) and stx.kind in ("anon", "fun"):
            raise Unmodelled("a postponed argument")
        value, type_ = self.proof(stx, expected)
        if not self.meta.defeq(type_, expected):
            self.errors.append(own("type mismatch"))
            return Opaque(fresh())
        return value if not self.is_prop(expected) else Opaque(fresh())

    def anon(self, stx: S, expected: E | None) -> tuple[E, E]:
        """`⟨a, b, ...⟩` against a structure type; extra items nest in the last field."""
        if expected is None:
            raise Unmodelled("an anonymous constructor with no expected type")
        t = self.meta.inst(expected)
        items = list(stx.kids)
        if t == TRUE and not items:
            return Opaque(fresh()), TRUE
        if isinstance(t, Op) and t.name in ("And", "Iff") and len(items) >= 2:
            first, second = t.args
            if t.name == "Iff":
                first, second = _arrow("a", first, second), _arrow("a", second, first)
            self.check(items[0], first)
            rest = (
                items[1]
                if len(items) == 2
                else S("anon", "", tuple(items[1:]), start=items[1].start)
            )
            self.check(rest, second)
            return Opaque(fresh()), t
        if isinstance(t, Bind) and t.kind == "ex" and len(items) >= 2:
            w = self.check(items[0], t.dom)
            rest = (
                items[1]
                if len(items) == 2
                else S("anon", "", tuple(items[1:]), start=items[1].start)
            )
            self.check(rest, subst(t.body, t.uid, w))
            return Opaque(fresh()), t
        raise Unmodelled("this anonymous constructor")

    def fun(self, stx: S, expected: E | None) -> tuple[E, E]:
        if expected is None:
            raise Unmodelled("a function with no expected type")
        saved = dict(self.scope)
        t = self.meta.inst(expected)
        pis: list[Bind] = []
        for name, ty, implicit in stx.binders:
            t = unfold(t)
            if implicit or not (isinstance(t, Bind) and t.kind == "pi") or t.implicit:
                raise Unmodelled("this function's binders")
            if ty is not None and not self.meta.defeq(self.type_of_type(ty), t.dom):
                raise Unmodelled("a binder type that differs")
            uid = fresh()
            self.ctx[uid] = t.dom
            if name != "_":
                self.scope[name] = uid
            pis.append(t)
            t = self.meta.inst(subst(t.body, t.uid, Var(uid)))
        self.check(stx.kids[0], t)
        self.scope = saved
        return Opaque(fresh()), expected


# --- printing ----------------------------------------------------------------------------------


class Printer:
    def __init__(self, names: dict[int, str], meta: Meta | None = None) -> None:
        self.names = dict(names)
        self.meta = meta

    def __call__(self, e: E) -> str:
        return self.pp(e, 0, True)

    def pp(self, e: E, prec: int, last: bool) -> str:
        if self.meta is not None:
            e = self.meta.inst(e)
        text, p, binder = self.go(e, last)
        if binder:
            return text if last else f"({text})"
        return text if p >= prec else f"({text})"

    def go(self, e: E, last: bool) -> tuple[str, int, bool]:
        if isinstance(e, Var):
            return self.names[e.uid], MAX, False
        if isinstance(e, Lit):
            return str(e.n), MAX, False
        if isinstance(e, Const) and e.name in ("Prop", "Type", "Nat", "True", "False"):
            return e.name, MAX, False
        if isinstance(e, Op):
            if e.name == "Not":
                return "¬" + self.pp(e.args[0], 40, last), MAX, False
            if e.name in _REL:
                sym, p, lhs, rhs = _REL[e.name], 50, 51, 51
            elif e.name in _LOGIC:
                sym, p, lhs, rhs = _LOGIC[e.name]
            else:
                sym, p, lhs, rhs = _ARITH[e.name]
            a, b = e.args
            return f"{self.pp(a, lhs, False)} {sym} {self.pp(b, rhs, last)}", p, False
        if isinstance(e, App):
            fn: E = e
            args: list[E] = []
            while isinstance(fn, App):
                args.append(fn.arg)
                fn = fn.fn
            if not isinstance(fn, Var):
                raise Unmodelled("printing an application of a non-local")
            parts = [self.names[fn.uid]]
            for a in reversed(args):
                if isinstance(self.meta.inst(a) if self.meta else a, Bind):
                    raise Unmodelled("printing a binder as an argument")
                parts.append(self.pp(a, MAX, False))
            return " ".join(parts), MAX, False
        if isinstance(e, Bind) and _is_arrow(e):  # `→` is infixr 25, not a binder notation
            return f"{self.pp(e.dom, 26, False)} → {self.pp(e.body, 25, last)}", 25, False
        if isinstance(e, Bind):
            return self.binder(e, last), 0, True
        raise Unmodelled("printing this term")

    def bind_name(self, b: Bind) -> str:
        if b.name in self.names.values():
            raise Unmodelled("a binder name that clashes (Lean would rename it)")
        self.names[b.uid] = b.name
        return b.name

    def binder(self, e: Bind, last: bool) -> str:
        saved = dict(self.names)
        try:
            return self._binder(e, last)
        finally:
            self.names = saved

    def _binder(self, e: Bind, last: bool) -> str:
        if e.kind == "ex":
            names = [self.bind_name(e)]
            body = e.body
            while isinstance(body, Bind) and body.kind == "ex":
                names.append(self.bind_name(body))
                body = body.body
            return f"∃ {' '.join(names)}, {self.pp(body, 0, True)}"
        if e.kind == "lam":
            return f"fun {self.bind_name(e)} => {self.pp(e.body, 0, True)}"
        groups: list[str] = []
        b: E = e
        while isinstance(b, Bind) and b.kind == "pi" and (b.implicit or mentions(b.body, b.uid)):
            dom = self.pp(b.dom, 0, True)
            implicit = b.implicit
            names = [self.bind_name(b)]
            body = b.body
            while (
                isinstance(body, Bind) and body.kind == "pi" and body.implicit == implicit
                and (implicit or mentions(body.body, body.uid))
                and self.pp(body.dom, 0, True) == dom
            ):  # fmt: skip
                names.append(self.bind_name(body))
                body = body.body
            groups.append(("{%s : %s}" if implicit else "(%s : %s)") % (" ".join(names), dom))
            b = body
        return f"∀ {' '.join(groups)}, {self.pp(b, 0, True)}"


def _is_arrow(e: Bind) -> bool:
    """A non-dependent explicit `∀`, which Lean prints as `a → b`."""
    return e.kind == "pi" and not e.implicit and not mentions(e.body, e.uid)


def print_goal(goal: Goal) -> str:
    names = shown_names(goal.hyps)
    pp = Printer(names)
    lines = [f"case {goal.tag}"] if goal.tag else []
    i = 0
    while i < len(goal.hyps):
        j = i + 1
        while j < len(goal.hyps) and goal.hyps[j].type == goal.hyps[i].type:
            j += 1
        group = " ".join(names[h.uid] for h in goal.hyps[i:j])
        lines.append(f"{group} : {Printer(names)(goal.hyps[i].type)}")
        i = j
    lines.append(f"⊢ {pp(goal.target)}")
    if any(len(line) > MAX_LINE for line in lines):
        raise Unmodelled("a line Lean might wrap")
    return "\n".join(lines)


def parse_goal(text: str) -> Goal:
    """A goal from its printed text (the inverse of `print_goal` on the fragment)."""
    lines = text.split("\n")
    tag = ""
    if lines and lines[0].startswith("case "):
        tag = lines.pop(0)[len("case ") :]
        if not tag or " " in tag:
            raise Unmodelled("a case tag")
    if not lines or not lines[-1].startswith("⊢ "):
        raise Unmodelled("a goal without one ⊢ line")
    goal = Goal([], TRUE, tag)
    shown: dict[str, int] = {}
    for line in lines[:-1]:
        names, sep, type_text = line.partition(" : ")
        if not sep or line.startswith(" ") or ":=" in line:
            raise Unmodelled("a hypothesis line")
        elab = _GoalElab(goal, shown)
        type_ = elab.type_of_type(parse_term(type_text, goal_names=True))
        if elab.meta.unassigned(type_):
            raise Unmodelled("a hypothesis type with holes")
        type_ = elab.meta.inst(type_)
        for name in names.split():
            if name in shown or not all(_id_rest(c) or c == "✝" for c in name):
                raise Unmodelled("a hypothesis name")
            hidden = name.endswith("✝")
            hyp = Hyp(fresh(), name.removesuffix("✝"), type_, hidden)
            goal.hyps.append(hyp)
            shown[name] = hyp.uid
    elab = _GoalElab(goal, shown)
    goal.target = elab.meta.inst(elab.type_of_type(parse_term(lines[-1][2:], goal_names=True)))
    if print_goal(goal) != text:  # a shadowed accessible name shows as `h✝`, and so on
        raise Unmodelled("a goal text that does not print back the same")
    return goal


class _GoalElab(Elab):
    """Names in a printed goal are its display names (`h✝` included)."""

    def __init__(self, goal: Goal, shown: dict[str, int]) -> None:
        super().__init__(goal)
        self.shown = shown

    def name(self, text: str) -> E:
        if text in self.scope:
            return Var(self.scope[text])
        if text in self.shown:
            return Var(self.shown[text])
        if text in ("Prop", "Nat", "True", "False", "Type"):
            return Const(text)
        raise Unmodelled(f"the identifier {text} in a goal")


# --- tactics -----------------------------------------------------------------------------------


@dataclass
class Step:
    """What a tactic did to the main goal: its new goals, or a logged error (the goal
    admitted); a thrown error is a `Failure`."""

    goals: list[Goal] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)


def _words(text: str) -> tuple[str, str]:
    text = text.strip()
    head, _, rest = text.partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + " " + rest
    return head, rest.strip()


def intro(goal: Goal, names: list[str | None], reduce: bool = True) -> Goal:
    """`MVarId.introN`: one binder per name (None: a hygienic name from the binder)."""
    hyps, target = list(goal.hyps), goal.target
    for name in names:
        t = unfold(target) if reduce else target
        if not (isinstance(t, Bind) and t.kind == "pi"):
            raise Failure(own("intro: no binder to introduce"))
        uid = fresh()
        hyps.append(Hyp(uid, name or t.name, t.dom, hidden=name is None))
        target = subst(t.body, t.uid, Var(uid))
    return Goal(hyps, target, goal.tag)


def _tag(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def apply_type(goal: Goal, elab: Elab, value: E, type_: E, label: str) -> list[Goal]:
    """`MVarId.apply` with a term of type `type_` (see the module docstring)."""
    meta = elab.meta

    def telescope(t: E, n: int) -> tuple[list[tuple[MVar, Bind]], E]:
        out = []
        for _ in range(n):
            t = unfold(meta.inst(t))
            assert isinstance(t, Bind)
            m = meta.new(t.dom, t.name)
            out.append((m, t))
            t = subst(t.body, t.uid, m)
        return out, t

    def arity(t: E) -> int:
        n = 0
        while True:
            t = unfold(meta.inst(t))
            if not (isinstance(t, Bind) and t.kind == "pi"):
                return n
            t = subst(t.body, t.uid, Var(fresh()))
            n += 1

    n_args, n_target = arity(type_), arity(goal.target)
    for i in range(max(n_args - n_target, 0), n_args + 1):
        mvars, concl = telescope(type_, i)
        if meta.defeq(concl, goal.target):
            break
    else:
        if n_args == 0:  # test:app_type_mismatch2's wording
            pp = Printer(shown_names(goal.hyps), meta)
            raise Failure(
                f"Tactic `apply` failed: could not unify the type of `{label}`\n  "
                f"{pp(type_)}\nwith the goal\n  {pp(goal.target)}\n\n{print_goal(goal)}"
            )
        raise Failure(own("apply: the conclusion does not unify with the goal"))
    new = [(m, b) for m, b in mvars if meta.inst(m) == m]
    if any(b.implicit for _, b in new):
        raise Unmodelled("implicit arguments left as goals")
    goals = []
    for m, b in new:
        dom = meta.inst(meta.types[m.uid])
        if meta.unassigned(dom):
            raise Unmodelled("a new goal with metavariables")
        if not elab.is_prop(dom):
            raise Unmodelled("a data goal")
        if len(mvars) == 1:
            tag = goal.tag
        elif b.name == "a" and b.kind == "pi":
            raise Unmodelled("the tag of an anonymous binder")
        else:
            tag = _tag(goal.tag, b.name)
        goals.append(Goal(list(goal.hyps), dom, tag))
    return goals


def _hyp(goal: Goal, name: str) -> Hyp:
    hyp = goal.lookup(name)
    if hyp is None:
        raise Unmodelled(f"the name {name}")
    return hyp


def _decide(e: E) -> bool:
    if e in (TRUE, FALSE):
        return e == TRUE
    if isinstance(e, Op):
        if e.name == "Not":
            return not _decide(e.args[0])
        if e.name in _LOGIC:
            a, b = (_decide(x) for x in e.args)
            return {"And": a and b, "Or": a or b, "Iff": a == b}[e.name]
        if e.name in _REL:
            x, y = (closed_nat(v) for v in e.args)
            if x is None or y is None:
                raise Unmodelled("decide on terms that are not closed")
            ops: dict[str, Callable[[int, int], bool]] = {
                "Eq": lambda p, q: p == q, "Ne": lambda p, q: p != q,
                "Lt": lambda p, q: p < q, "Gt": lambda p, q: p > q,
                "Le": lambda p, q: p <= q, "Ge": lambda p, q: p >= q,
            }  # fmt: skip
            return ops[e.name](x, y)
    if isinstance(e, Bind) and e.kind == "pi" and not mentions(e.body, e.uid):
        return (not _decide(e.dom)) or _decide(e.body)
    raise Unmodelled("decide on this proposition")


def rfl(goal: Goal) -> list[Goal]:
    t = goal.target
    if isinstance(t, Op) and t.name in ("Eq", "Iff"):
        if Meta().defeq(t.args[0], t.args[1]):
            return []
        raise Failure(own("rfl: the two sides are not definitionally equal"))
    if isinstance(t, Op) and t.name in _REL:
        raise Unmodelled("rfl on an order")
    raise Failure(own("rfl: the goal is no reflexive relation"))


def assumption(goal: Goal) -> list[Goal]:
    for hyp in reversed(goal.hyps):
        if Meta().defeq(hyp.type, goal.target):
            return []
    raise Failure(own("assumption: no hypothesis matches"))


def contradiction(goal: Goal) -> list[Goal]:
    types = [h.type for h in goal.hyps]
    for t in types:
        if t == FALSE:
            return []
        if isinstance(t, Op) and t.name == "Not" and any(t.args[0] == u for u in types):
            return []
        if isinstance(t, Op) and t.name == "Ne" and Meta().defeq(*t.args):
            return []
        if isinstance(t, Op) and t.name == "Not" and isinstance(t.args[0], Op):
            inner = t.args[0]
            if inner.name == "Eq" and Meta().defeq(*inner.args):
                return []
        if isinstance(t, Op) and t.name == "Eq":
            a, b = t.args
            if isinstance(a, Lit) and isinstance(b, Lit) and a.n != b.n:
                return []
    for t in types:
        if isinstance(t, Op) and t.name == "Eq":
            raise Unmodelled("contradiction with equations")
    if any(isinstance(t, Bind) for t in types):
        raise Unmodelled("contradiction with binder hypotheses")
    raise Failure(own("contradiction: no contradiction found"))


def cases(goal: Goal, name: str) -> list[Goal]:
    hyp = _hyp(goal, name)
    rest = [h for h in goal.hyps if h.uid != hyp.uid]
    if any(mentions(h.type, hyp.uid) for h in rest) or mentions(goal.target, hyp.uid):
        raise Unmodelled("cases with dependencies")
    t = hyp.type
    if t == FALSE:
        return []
    if isinstance(t, Op) and t.name == "And":
        left = Hyp(fresh(), "left", t.args[0], True)
        right = Hyp(fresh(), "right", t.args[1], True)
        return [Goal([*rest, left, right], goal.target, _tag(goal.tag, "intro"))]
    if isinstance(t, Op) and t.name == "Or":
        return [
            Goal([*rest, Hyp(fresh(), "h", side, True)], goal.target, _tag(goal.tag, tag))
            for side, tag in zip(t.args, ("inl", "inr"), strict=True)
        ]
    if isinstance(t, Bind) and t.kind == "ex":
        w = Hyp(fresh(), "w", t.dom, True)
        h = Hyp(fresh(), "h", subst(t.body, t.uid, Var(w.uid)), True)
        return [Goal([*rest, w, h], goal.target, _tag(goal.tag, "intro"))]
    raise Unmodelled("cases on this type")


def run_on(goal: Goal, text: str) -> Step:
    """Run one tactic (`text`, as the fake's parser accepted it) on `goal`."""
    name, rest = _words(text)
    if name in ("intro", "intros"):
        toks = tokenize(rest)
        names: list[str | None] = []
        for tok in toks[:-1]:
            if tok.kind != "ident" or tok.text in _RESERVED or "." in tok.text:
                raise Unmodelled("intro patterns")
            names.append(None if tok.text == "_" else tok.text)
        if name == "intros":
            if names:
                raise Unmodelled("intros with names")
            n, t = 0, goal.target
            while isinstance(t, Bind) and t.kind == "pi":
                n, t = n + 1, subst(t.body, t.uid, Var(fresh()))
            return Step([intro(goal, [None] * n, reduce=False)])
        return Step([intro(goal, names or [None])])
    if name in ("exact", "apply") and rest:
        stx = parse_term(rest)
        elab = Elab(goal)
        if name == "apply":
            value: E
            if stx.kind == "ident" and stx.text in CONSTANTS:
                value, type_ = Opaque(fresh()), CONSTANTS[stx.text]()
            else:
                value, type_ = elab.proof(stx, None)
            if elab.errors:
                raise Unmodelled("apply of a term with errors")
            return Step(apply_type(goal, elab, value, type_, rest))
        value, type_ = elab.proof(stx, goal.target)
        if not elab.errors and not elab.meta.defeq(type_, goal.target):
            elab.errors.append(own("type mismatch"))
        if elab.meta.unassigned(type_):
            raise Unmodelled("metavariables left after exact")
        if elab.errors:
            return Step([], elab.errors)
        return Step([])
    if name == "cases":
        toks = tokenize(rest)
        if len(toks) != 2 or toks[0].kind != "ident" or "." in toks[0].text:
            raise Unmodelled("cases on a term, or with clauses")
        return Step(cases(goal, toks[0].text))
    if rest:
        raise Unmodelled(f"the arguments of {name}")
    if name in ("constructor", "left", "right"):
        t = goal.target
        ctor = None
        if isinstance(t, Op) and t.name == "And" and name == "constructor":
            ctor = "And.intro"
        elif isinstance(t, Op) and t.name == "Iff" and name == "constructor":
            ctor = "Iff.intro"
        elif t == TRUE and name == "constructor":
            return Step([])
        elif isinstance(t, Op) and t.name == "Or":
            ctor = "Or.inr" if name == "right" else "Or.inl"
        if ctor is None:
            raise Unmodelled(f"{name} on this goal")
        return Step(apply_type(goal, Elab(goal), Opaque(fresh()), CONSTANTS[ctor](), ctor))
    if name == "exfalso":
        return Step([Goal(list(goal.hyps), FALSE, goal.tag)])
    if name == "rfl":
        return Step(rfl(goal))
    if name == "assumption":
        return Step(assumption(goal))
    if name == "contradiction":
        return Step(contradiction(goal))
    if name == "decide":
        if occurs(goal.target, lambda x: isinstance(x, Var)):
            raise Unmodelled("decide with free variables")
        if _decide(goal.target):
            return Step([])
        raise Failure(own("decide: the proposition is false"))
    if name == "trivial":
        return Step(trivial(goal))
    raise Unmodelled(f"the tactic {name}")


def trivial(goal: Goal) -> list[Goal]:
    """The `trivial` macro's rules, latest first; each must close the goal."""
    attempts: list[Callable[[], list[Goal]]] = [
        lambda: _and_trivial(goal),
        lambda: [] if goal.target == TRUE else _fail(),
        lambda: run_on(goal, "decide").goals,
        lambda: contradiction(goal),
        lambda: rfl(goal),
        lambda: assumption(goal),
    ]
    unsure = False
    for attempt in attempts:  # whichever rule closes it, the goal is closed
        try:
            if attempt() == []:
                return []
        except Failure:
            continue
        except Unmodelled:
            unsure = True
    if unsure:
        raise Unmodelled("trivial: a rule that may close the goal")
    raise Failure(own("trivial: no rule closes the goal"))


def _fail() -> list[Goal]:
    raise Failure("")


def _and_trivial(goal: Goal) -> list[Goal]:
    t = goal.target
    if not (isinstance(t, Op) and t.name == "And"):
        raise Failure("")
    for side in t.args:
        trivial(Goal(goal.hyps, side, ""))
    return []


# --- the interface for the fake ---------------------------------------------------------------


@dataclass
class Result:
    """A tactic's effect on a goal list: `goals` after it; `logged` errors (the main goal
    admitted); `thrown`: the error it threw (then `goals` is meaningless)."""

    goals: list[str]
    logged: list[str] = field(default_factory=list)
    thrown: str | None = None


def run_tactic(goals: list[str], text: str) -> Result | None:
    """Elaborate tactic `text` on the main goal of `goals`; None when unmodelled."""
    if not goals:
        return None
    try:
        goal = parse_goal(goals[0])
        step = run_on(goal, text)
        return Result([print_goal(g) for g in step.goals] + goals[1:], step.logged)
    except Failure as err:
        return Result(list(goals), thrown=err.text)
    except (Unmodelled, RecursionError):
        return None


@dataclass
class Declaration:
    """`theorem NAME BINDERS : STMT := by ...` / `example ...`: its first goal, where the
    `by` block starts, and where Lean puts `declaration uses sorry` (the name, or `example`)."""

    goal: str
    by_offset: int
    name_span: tuple[int, int]


def parse_declaration(cmd: str) -> Declaration | None:
    try:
        return _declaration(cmd)
    except (Unmodelled, RecursionError):
        return None


def _declaration(cmd: str) -> Declaration:
    toks = tokenize_header(cmd)
    if not toks or toks[0].text not in ("theorem", "example"):
        raise Unmodelled("the command")
    i = 1
    if toks[0].text == "theorem":
        name = toks[1]
        if name.kind != "ident" or name.text in _RESERVED:
            raise Unmodelled("the theorem name")
        span = (name.start, name.start + len(name.text))
        i = 2
    else:
        span = (toks[0].start, toks[0].start + len("example"))
    by_at = next(
        (k for k in range(i, len(toks) - 1) if toks[k].text == ":=" and toks[k + 1].text == "by"),
        None,
    )
    if by_at is None:
        raise Unmodelled("a declaration without `:= by`")
    header = Parser([*toks[i:by_at], Tok("eof", "", toks[by_at].start)])
    goal = Goal([], TRUE)
    elab = Elab(goal)
    shown: dict[str, int] = {}
    while header.at("(", "{"):
        implicit = header.take().text == "{"
        names = header.names()
        header.expect(":")
        ty = header.term(0)
        header.expect("}" if implicit else ")")
        type_ = elab.meta.inst(elab.type_of_type(ty))
        for n in names:
            hyp = Hyp(fresh(), n, type_)
            goal.hyps.append(hyp)
            elab.ctx[hyp.uid] = type_
            shown[n] = hyp.uid
    header.expect(":")
    target = elab.type_of_type(header.term(0))
    header.done()
    if elab.meta.unassigned(target) or any(elab.meta.unassigned(h.type) for h in goal.hyps):
        raise Unmodelled("a statement with holes")
    goal.target = elab.meta.inst(target)
    if len({h.name for h in goal.hyps}) != len(goal.hyps):
        raise Unmodelled("repeated binder names")
    return Declaration(print_goal(goal), toks[by_at + 1].start + 2, span)


def tokenize_header(cmd: str) -> list[Tok]:
    """The tokens of a declaration up to its `:= by` (the proof is the fake's to parse)."""
    cut = cmd.find(":= by")
    if cut < 0:
        raise Unmodelled("no `:= by`")
    toks = tokenize(cmd[:cut])[:-1]
    return [*toks, Tok("sym", ":=", cut), Tok("ident", "by", cut + 3), Tok("eof", "", cut + 5)]
