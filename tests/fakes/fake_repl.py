#!/usr/bin/env python3
"""A stand-in for the Lean REPL (leanprover-community/repl) over stdin/stdout.

It speaks the REPL's wire protocol and answers from a graph of recorded real replies
(`repl_graph.json` beside this file, built from the upstream REPL test transcripts; tests
write their own with `graphs.py`). Facts below cite the REPL at commit 8948401 (Lean
v4.33.0-rc2) as `Main.lean` etc. for `REPL/Main.lean`, and its tests as `test:<name>`.

Wire protocol (Main.lean `getLines`, `parse`, `repl`): a query is the lines up to a blank
line, each trimmed at its end and joined without newlines; a query starting with `#` or
`--` is skipped; end of input ends the process. A query is tried as ProofStep, then
PickleEnvironment, UnpickleEnvironment, PickleProofState, UnpickleProofState, Command,
File; one that is no JSON, or none of those, ends the process (`uncaught exception`).
Replies are laid out by Lean's `Json.pretty` (width 80, keys in descending order) and
followed by a blank line. Environment and proof-state ids are numbered as the REPL numbers
them: for a command, its sorries' states first, then its `tactics` entries' states; for a
tactic, its sorries' states, then the new state (Main.lean `sorries`, `tactics`,
`createProofStepReponse`). Errors: `Unknown environment.`, `Unknown proof state.`
(`runProofStep`), `Unknown proof State.` (`pickleProofSnapshot`, capital S).

Commands answer from recordings keyed on the exact request (`cmd` or `path` and the
options `allTactics`, `rootGoals`, `infotree`), among those whose `requires` (commands of
the environment they ran in) the env's lineage holds, the most specific first. Each sorry
gets a proof state holding only its goal, the MAIN goal where the sorry is a tactic
(InfoTree.lean `sorries`: `.tactic i.goalsBefore.head!`; test:no_goal_sorry_2). Each
`tactics` entry (allTactics) gets a proof state holding ALL goals before that tactic
(Main.lean `tactics`: `ProofSnapshot.create ctx none env? goals rootGoals`); its `goals`
text is `ppGoals` of them joined with one newline, so the list is never read back from
that text: a recording stores it in the entry's `fake:goals` field, which the fake strips
(fields named `fake:...` never go on the wire). Without one, the entry must be unambiguous
(`no goals`, or one `⊢` line: one goal), else the graph is refused at start (exit 3).
An entry's proof state has its own goals as root goals (InfoTree.lean
`findAllInfoTactics` passes each entry its `goalsBefore`): closing them all is `Completed`
with one root and `Not verified: more than one initial goal` with several.

Tactics are parsed first, by a model of `Parser.runParserCategory env `tactic t`
(Snapshots.lean `ProofSnapshot.runString`): exactly ONE tactic, then end of input, else
`Lean error:\\n<input>:L:C: expected end of input` at the next token (1-based line,
code-point column; leanprover-community/repl issue #43: `ext1 x; ext1 n` ->
`<input>:1:6`). The model (`parse_tactic`), from Lean's `Lean/Parser/Term.lean`,
`Lean/Parser/Tactic.lean` and `Init/Tactics.lean`:
  - tokens: identifiers (`isIdFirst`/`isIdRest`: `exact?`, `h₁`, `h'`, dotted names),
    numbers, strings, chars, `--` and nested `/- -/` comments, symbols (longest match);
    reserved words (`at`, `with`, `using`, `fun`, `by`, `have`, `show`, `from`, ...).
  - the `tactic` category has leadingIdentBehavior `both`: tactic names are not reserved,
    so they are identifiers elsewhere. `intro h\\nexact h` is ONE tactic `intro h exact h`
    (application arguments continue across lines while `checkColGt` holds, and at the top
    level no position is saved), which then fails when it runs; `constructor\\nexact hp`
    is `expected end of input` at 2:0 (`constructor` takes no argument); a top-level `;`
    is `expected end of input` at the `;` (`t1 <;> t2` is one tactic).
  - an identifier that is no tactic name of the model: `unknown tactic` one code point
    after its start (Tactic.lean `unknown`: `errorAtSavedPos "unknown tactic" true`;
    test:unknown_tactic `exat 42` -> `<input>:1:1: unknown tactic`).
  - tactic sequences (`sepByIndentSemicolon`): the first tactic saves the position;
    further ones follow a `;` or a line break at exactly that column; tokens of a tactic's
    arguments must lie right of it (`checkColGt`); brackets of terms lift the constraint
    (`withoutPosition`). They nest in `(...)` (`Tactic.paren`), `{...}`, `· ...`,
    `case tag => ...`, `next => ...`, `all_goals`/`any_goals`/`focus`/`try`/`repeat`/...,
    `first | ... | ...`, `induction x with | zero => ... | succ n ih => ...`, `calc`
    steps, and `by` blocks inside terms.
  - a table of tactic names with their argument shapes: none (`constructor`, `rfl`, ...),
    optional clauses (`simp`-like: config, `only`, `[...]`, `at h`, `using e`), terms
    (`exact`, `apply`, `refine`, `use`, ...), binders (`intro`, `rintro`, ...), rewrites
    (`rw [...] at h`), `have`-like declarations, `cases`/`induction`/`rcases`/`obtain`,
    `by_cases`, `calc`, and the sequence-taking ones above.
Only two parse-error texts are Lean's own, so only they are answered as such: `expected
end of input` and `unknown tactic`. Any other syntax error (a missing term, an unclosed
bracket, ...) is located where the model finds it, but its wording cannot be told: by
default it ends the process (exit 3) like an unrecorded tactic; `--unrecorded-tactics
error` answers `Lean error:\\n<input>:L:C: <the model's wording>`.

A tactic that parses then runs on the goal list of its proof state:
  1. a recording of its exact text on exactly these goals (edges `(goals, tactic)`);
  2. for a tactic that works on the main goal, the recording on the main goal alone,
     the other goals appended after its result (what main-goal tactics do);
  3. for a plain tactic (no block) on the main goal, a recording that closed the same goal
     with another `case` tag, or none (a tag changes how a goal prints, not what closes
     it; `case` and `next` clear it);
  4. the structure of a block with no recording of its own, one new proof state at the
     end: `( ... )` runs its tactics in order, each by its own exact text (continuation
     lines kept; a recording may also be keyed on the text dedented to column 0);
     `· ...`, `{ ... }` and `next => ...` focus the main goal and must close it, and
     `case tag => ...` the first goal tagged `tag` (shown without its tag), else the error
     is logged (`unsolved goals` and the goals, or the error a tactic threw) and the goal
     admitted (Lean's `closeUsingOrAdmit`); `focus` focuses; `all_goals t` / `any_goals t`
     run `t` on each goal; `t1 <;> t2` runs `t2` on each goal `t1` made; `try t`,
     `first | ... | ...` and `t1 <|> t2` fall back when an alternative throws or logs an
     error; `skip` keeps the goals; `sorry`/`admit` close the main goal with a sorry.
  5. otherwise the tactic is unrecorded: by default the process ends with exit 3 (a
     mistake in a test's graph); with `--unrecorded-tactics error` it gets Lean's reply to
     an elaboration error (test:invalid_tactic: an error message at 0:0, the main goal
     admitted; the message text says the fake had no recording).
Proof statuses follow Main.lean `getProofStatus`: `Incomplete: open goals remain` while
goals remain, else the recorded status, made `Incomplete: contains sorry` when a sorry or
a logged error entered the proof on the way, and `Incomplete: contains metavariable(s)`
when the state's root goal has other goals pending (states of sorries inside a tactic
step, test:name_generator). Messages in tactic mode sit at line 0 (the proof state has no
file map: test:invalid_tactic); sorries there carry no position (JSON.lean `Sorry`).

Not modelled: elaboration (results come from recordings, but for `--elaborate`); the
wording of syntax errors other than the two above; term-level `match`/`do`/`let rec` and the tactics
`open ... in`/`set_option ... in` (a syntax error of the model); the syntax of tactics
outside the table (`unknown tactic`) and details of those in it (the `conv` language,
rcases patterns, `calc` steps are taken loosely); precedence of term operators (a term is
a run of operands and operators, brackets taken whole); running `conv`, `repeat`,
`iterate`, `on_goal`, `case`/`next` with renaming names, and the alternatives of
`induction ... with`/`match` (these need a recording of the whole text); `case` with a tag
no goal has, and statuses nothing recorded says (exit 3); which tactics `t <;> u` makes
`allTactics` list more than once; messages, traces and `usedConstants` other than
recorded ones.

With `--elaborate`, a tactic (a leaf of the structure above) or a command that nothing
recorded is elaborated by `core_logic.py` when it lies in that module's fragment (core
logic: →, ∧, ∨, ↔, ¬, =, Nat numerals; see its docstring): a tactic gets the goals,
status and errors Lean gives; a `theorem`/`example` declaration with a `:= by` proof run in
a fresh environment gets its `sorries`, the `declaration uses sorry` warning and, with
`allTactics`, its `tactics` entries (`usedConstants` as `graphs.py` writes them: the REPL's
real list is not modelled). Recordings still win; outside the fragment the behaviour is
the unrecorded one above. Without the flag nothing changes.

Usage: fake_repl.py [GRAPH] [--delay SECONDS] [--unrecorded-tactics {fatal,error}]
                    [--elaborate]
(GRAPH defaults to $FAKE_REPL_GRAPH, then repl_graph.json beside this file.) Fault switches
for tests are leading lines of a `cmd` or `tactic` text:
  fake:crash        exit without replying         fake:hang     never reply
  fake:garbage      print a non-JSON reply        fake:sleep S  wait S seconds, then go on
  fake:alloc MB     hold MB more memory, then go on (`INTERNAL PANIC: out of memory` and
                    exit, as Lean does, when the memory cap is hit)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # imported as part of the tests' `fakes` package, or run as a script
    from . import core_logic
except ImportError:
    import core_logic  # type: ignore[no-redef]

DEFAULT_GRAPH = Path(__file__).with_name("repl_graph.json")
FAULT_PREFIX = "fake:"
HIDDEN_PREFIX = "fake:"  # fields of a recording that never go on the wire
OPEN_GOALS = "Incomplete: open goals remain"
CONTAINS_SORRY = "Incomplete: contains sorry"
CONTAINS_MVARS = "Incomplete: contains metavariable(s)"
COMPLETED = "Completed"
# Main.lean `getProofStatus`: a finished proof is checked only when it has one root goal.
NOT_VERIFIED = "Not verified: more than one initial goal"
LEAN_ERROR = "Lean error:\n"
AT_ZERO = {"line": 0, "column": 0}  # where tactic-mode messages sit (test:invalid_tactic)
LINE_WIDTH = 80  # Lean's `Json.pretty` default
_HELD: list[bytearray] = []  # memory held by `fake:alloc`


# --- Lean's JSON layout: Wadler-style groups; keys in descending order ----------------------


def _doc(value: Any) -> Any:
    """A layout document: str (text), None (a line), ("nest", n, [docs]), ("group", [docs])."""
    if isinstance(value, dict):
        items = [
            ("group", [json.dumps(k, ensure_ascii=False) + ":", None, _doc(value[k])])
            for k in sorted(value, reverse=True)
        ]
        return _bracket("{", items, "}")
    if isinstance(value, list):
        return _bracket("[", [_doc(v) for v in value], "]")
    return json.dumps(value, ensure_ascii=False)


def _bracket(left: str, items: list[Any], right: str) -> Any:
    body: list[Any] = [left]
    for i, item in enumerate(items):
        body.extend([",", None, item] if i else [item])
    body.append(right)
    return ("group", [("nest", len(left), body)])


def _fits(width: int, items: list[tuple[int, bool, Any]]) -> bool:
    """Whether the items fit in `width` up to the first line break in break mode."""
    stack = list(items)
    while stack:
        if width < 0:
            return False
        indent, flat, doc = stack.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif doc is None:
            if not flat:
                return True
            width -= 1
        elif doc[0] == "nest":
            stack.extend((indent + doc[1], flat, d) for d in reversed(doc[2]))
        else:
            stack.extend((indent, flat, d) for d in reversed(doc[1]))
    return width >= 0


def render(value: Any) -> str:
    out: list[str] = []
    column = 0
    stack: list[tuple[int, bool, Any]] = [(0, False, _doc(value))]
    while stack:
        indent, flat, doc = stack.pop()
        if isinstance(doc, str):
            out.append(doc)
            column += len(doc)
        elif doc is None:
            out.append(" " if flat else "\n" + " " * indent)
            column = column + 1 if flat else indent
        elif doc[0] == "nest":
            stack.extend((indent + doc[1], flat, d) for d in reversed(doc[2]))
        else:
            flat = flat or _fits(LINE_WIDTH - column, [*stack, (indent, True, doc)])
            stack.extend((indent, flat, d) for d in reversed(doc[1]))
    return "".join(out)


def public(value: Any) -> Any:
    """`value` without the `fake:` fields a recording keeps for the fake alone."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not k.startswith(HIDDEN_PREFIX)}
    if isinstance(value, list):
        return [public(v) for v in value]
    return value


# --- a model of Lean's tokens (Lean/Parser/Basic.lean, Init/Meta.lean) ----------------------


def _letter_like(c: str) -> bool:
    """`Lean.isLetterLike`: Greek but λ Π Σ, Coptic, letter-like symbols, math alphabets."""
    n = ord(c)
    return (
        (0x3B1 <= n <= 0x3C9 and n != 0x3BB)
        or (0x391 <= n <= 0x3A9 and n not in (0x3A0, 0x3A3))
        or 0x3CA <= n <= 0x3FB
        or 0x1F00 <= n <= 0x1FFE
        or 0x2100 <= n <= 0x214F
        or 0x1D49C <= n <= 0x1D59F
    )


def _subscript(c: str) -> bool:
    n = ord(c)
    return 0x2080 <= n <= 0x2089 or 0x2090 <= n <= 0x209C or 0x1D62 <= n <= 0x1D6A or n == 0x2C7C


def _id_first(c: str) -> bool:
    return (c.isascii() and c.isalpha()) or c == "_" or _letter_like(c)


def _id_rest(c: str) -> bool:
    return (c.isascii() and c.isalnum()) or c in "_'!?" or _letter_like(c) or _subscript(c)


def _words(text: str) -> list[str]:
    return text.split()


# Multi-character symbols, longest first; any other character is a symbol on its own.
_SYMBOLS = sorted(
    _words("<;> <|> <-> := => -> <- <| |>. |> :: ++ && || == != <= >= ... .. ⁻¹ |- #[ %[ @[ ∃!"),
    key=len,
    reverse=True,
)
# Reserved words: identifier-shaped tokens that are no identifiers (keywords of terms and
# of non-leading tactic syntax). Tactic names are not among them (leadingIdentBehavior
# `both`), except those that are also terms' keywords (`have`, `show`, `calc`, `sorry`...).
_RESERVED = set(
    _words("""at by calc do else fun forall from have if in let match show suffices then using
    with generalizing deriving where sorry Type Sort Prop mut return open set_option""")
)
_TERM_KEYWORDS = set(
    _words("fun forall by show have let suffices if match calc sorry Type Sort Prop do")
)
_ARG_KEYWORDS = {"fun", "sorry", "Type", "Sort", "Prop"}  # keywords that start an argument
_OPEN = {"(": ")", "[": "]", "{": "}", "⟨": "⟩", "⦃": "⦄", "‹": "›", "⌊": "⌋", "⌈": "⌉",
         "#[": "]", "%[": "]", "@[": "]", "‖": "‖"}  # fmt: skip
_CLOSE = {")", "]", "}", "⟩", "⦄", "›", "⌋", "⌉"}
_BINDERS = {"∀", "∃", "∃!", "Σ", "Π", "∑", "∏", "⋃", "⋂", "λ"}
_PREFIX = {"¬", "-", "↑", "⇑", "↥", "!", "√", "∑", "@"}
_ATOMS = {"_", "·", "∅", "⊤", "⊥"}
# Symbols that end a term (besides closers and reserved words).
_STOPS = {",", ";", ":=", ":", "=>", "↦", "|", "<;>", "←", "<-", "..", "...", "·", "⊢", "|-"}
_POSTFIX = {"⁻¹", "ᶜ", "†", "ᵀ", "ᵒᵖ"}


class ParseError(Exception):
    """A syntax error at `offset`; `known` when the text is Lean's own."""

    def __init__(self, offset: int, message: str, known: bool = False) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message
        self.known = known


@dataclass
class Token:
    kind: str  # "ident" (reserved words too), "num", "str", "char", "sym", "eof"
    text: str
    start: int
    end: int
    col: int  # code points from the start of its line
    nl: bool  # a line break lies between the previous token and this one
    ws: bool  # whitespace (or a comment) lies between the previous token and this one

    def sym(self, *texts: str) -> bool:
        return self.kind == "sym" and self.text in texts

    def word(self, *texts: str) -> bool:
        return self.kind == "ident" and self.text in texts

    @property
    def reserved(self) -> bool:
        return self.kind == "ident" and self.text in _RESERVED

    @property
    def name(self) -> bool:
        """An identifier or `_` (a binder name)."""
        return (self.kind == "ident" and self.text not in _RESERVED) or self.sym("_")


def position(text: str, offset: int) -> tuple[int, int]:
    """A REPL position of `offset` in `text`: 1-based line, column in code points."""
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1)


def tokenize(src: str) -> list[Token]:
    toks: list[Token] = []
    i, n = 0, len(src)
    while True:
        nl = ws = False
        while i < n:
            if src[i] == "\n":
                nl = ws = True
                i += 1
            elif src[i].isspace():
                ws = True
                i += 1
            elif src.startswith("--", i):
                j = src.find("\n", i)
                i, ws = (n if j < 0 else j), True
            elif src.startswith("/-", i):
                depth, i, ws = 1, i + 2, True
                while depth:
                    if i >= n:
                        raise ParseError(n, "unterminated comment")
                    if src.startswith("/-", i):
                        depth, i = depth + 1, i + 2
                    elif src.startswith("-/", i):
                        depth, i = depth - 1, i + 2
                    else:
                        i += 1
            else:
                break
        col = i - (src.rfind("\n", 0, i) + 1)
        if i >= n:
            toks.append(Token("eof", "", n, n, col, nl, ws))
            return toks
        start, c = i, src[i]
        if _id_first(c) or c == "«":
            kind = "ident"
            while True:
                if src[i] == "«":
                    j = src.find("»", i)
                    if j < 0:
                        raise ParseError(n, "unterminated identifier escape")
                    i = j + 1
                else:
                    i += 1
                    while i < n and _id_rest(src[i]):
                        i += 1
                # dotted names, and `h.1`-style projections folded into the name
                if i + 1 < n and src[i] == "." and (_id_first(src[i + 1]) or src[i + 1] == "«"):
                    i += 1
                    continue
                if i + 1 < n and src[i] == "." and src[i + 1].isdigit():
                    i += 1
                    while i < n and src[i].isdigit():
                        i += 1
                break
        elif c.isdigit():
            kind = "num"
            i += 1
            while i < n and (src[i].isalnum() or src[i] == "_"):
                i += 1
            if i + 1 < n and src[i] == "." and src[i + 1].isdigit():
                i += 1
                while i < n and src[i].isalnum():
                    i += 1
        elif c == '"':
            kind, i = "str", i + 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            if i >= n:
                raise ParseError(n, "unterminated string literal")
            i += 1
        elif c == "'" and i + 2 < n and (src[i + 2] == "'" or src[i + 1] == "\\"):
            kind = "char"
            j = src.find("'", i + 2)
            i = (j + 1) if j > 0 else i + 3
        else:
            kind = "sym"
            i += next((len(s) for s in _SYMBOLS if src.startswith(s, i)), 1)
        toks.append(Token(kind, src[start:i], start, i, col, nl, ws))


# --- a model of Lean's tactic parser ---------------------------------------------------------


@dataclass
class Syn:
    """One parsed tactic. `kind`: "leaf", "paren", "braces", "cdot", "case", "next",
    "block" (a sequence-taking tactic named `name`), "first", "then" (`<;>`), "orelse"."""

    kind: str
    name: str
    start: int
    end: int
    src: str
    main: bool = True  # works on the main goal only (the rest is left as it is)
    seq: list[Syn] = field(default_factory=list)  # the nested tactic sequence
    alts: list[list[Syn]] = field(default_factory=list)  # `first` alternatives, `<;>` sides
    tags: list[tuple[str, list[str]]] = field(default_factory=list)  # `case` tags and names
    nested: list[list[Syn]] = field(default_factory=list)  # sequences inside its terms

    @property
    def text(self) -> str:
        return self.src[self.start : self.end]

    def keys(self) -> list[str]:
        """The texts a recording of this tactic may be keyed on: its source text, and the
        same dedented to column 0 (a tactic shifted right in a block means the same)."""
        text = self.text
        col = self.start - (self.src.rfind("\n", 0, self.start) + 1)
        pad = "\n" + " " * col
        dedented = text.replace(pad, "\n") if col else text
        return [text] if dedented == text else [text, dedented]

    @property
    def substantive(self) -> bool:
        """Whether `allTactics` lists it (InfoTree.lean `isSubstantive`: not `·`, `( )`,
        `<;>`, `by` or sequences)."""
        return self.kind not in ("paren", "cdot", "then")

    def walk(self) -> Iterator[tuple[Syn, int]]:
        """This tactic and every tactic inside it, in source order, with their depth in
        goal-focusing blocks (`·`, `case`, `{}`, `focus`, nested `by`...)."""
        yield self, 0
        inner = self.kind in ("cdot", "braces", "case", "next") or (
            self.kind == "block" and self.name in ("focus", "on_goal")
        )
        for seqs, deeper in (
            ([self.seq], inner),
            (self.alts, self.kind != "then"),
            (self.nested, True),
        ):
            for seq in seqs:
                for tac in seq:
                    for sub, depth in tac.walk():
                        yield sub, depth + int(deeper)


# Tactic names and the shapes of their arguments.
_SHAPES: dict[str, str] = {}
for _shape, _names in {
    "none": """constructor rfl rfl' trivial assumption assumption' skip sorry admit contradiction
        exfalso left right done ac_rfl eq_refl infer_instance and_intros subst_vars nofun
        split_ands simp_wf decreasing_tactic apply_assumption swap econstructor fconstructor
        tfae_finish abel1 module trace_state slim_check plausible bv_decide bv_omega triv
        assumption_mod_cast subst_eqs injections solve_by_elim""",
    "mods": """simp simp? simp! simp?! simp_all simp_all? simp_all! dsimp dsimp? dsimp! simpa
        simpa? simpa! simp_arith norm_num norm_num1 linarith linarith! nlinarith nlinarith!
        positivity ring ring1 ring_nf ring_nf! field_simp push_cast norm_cast abel abel_nf
        group noncomm_ring omega decide decide! native_decide tauto itauto aesop aesop?
        aesop_cat cat_disch bound exact? apply? rw? unfold? hint polyrith split split_ifs
        push_neg symm zify qify rify contrapose contrapose! by_contra! cancel_denoms
        simp_intro congr congr! gcongr nontriviality finiteness continuity measurability
        fun_prop""",
    "term": """exact apply refine refine' exact_mod_cast apply_mod_cast specialize trace
        absurd nomatch exacts show convert convert_to apply_rules trans linear_combination""",
    "terms": "use use! exists existsi refine_lift constructorm casesm subst",
    "term_at": "change apply_fun",
    "binders": """intro intros rintro ext ext1 funext clear revert rename_i unfold unfold_let
        delta clear_value""",
    "rw": "rw rewrite rwa erw rw_mod_cast simp_rw nth_rewrite nth_rw",
    "have": "have haveI replace let letI set suffices obtain",
    "cases": "cases induction fun_induction fun_cases",
    "rcases": "rcases",
    "generic": """cases' induction' generalize lift choose choose! interval_cases fin_cases
        wlog rename rename' field_simp? by_contra filter_upwards peel injection tfae_have
        rel mono dbg_trace fail guard_hyp guard_target observe mod_cases inhabit borelize""",
    "by_cases": "by_cases",
    "case": "case case'",
    "next": "next",
    "seq": """all_goals any_goals focus try repeat repeat' classical fail_if_success
        with_reducible stop iterate on_goal unhygienic""",
    "first": "first",
    "goal_num": "pick_goal rotate_left rotate_right",
    "calc": "calc",
    "conv": "conv conv_lhs conv_rhs",
    "match": "match",
    "unsupported": "open set_option",
}.items():
    for _name in _words(_names):
        _SHAPES[_name] = _shape
# Tactics that act on more than the main goal (for a recording on the main goal alone).
_NOT_MAIN = set(
    _words("""show done swap pick_goal rotate_left rotate_right on_goal all_goals any_goals
    case case' repeat repeat' iterate first try skip classical fail_if_success stop""")
)
_ASCII_OPERATORS = set(
    _words("""= < > + - * / % ^ $ \\ & <= >= == != && || ++ :: -> <-> <| |> |>. <|> >>= >>
    <$> <*> !""")
)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = tokenize(src)
        self.i = 0
        self.last_end = 0
        self.nested: list[list[list[Syn]]] = []  # the `by` sequences met in terms, per tactic

    # tokens
    def peek(self, k: int = 0) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def take(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
            self.last_end = tok.end
        return tok

    def fail(self, tok: Token, what: str) -> ParseError:
        found = "end of input" if tok.kind == "eof" else f"token '{tok.text}'"
        return ParseError(tok.start, f"unexpected {found}; expected {what}")

    def expect_sym(self, text: str) -> Token:
        if not self.peek().sym(text):
            raise self.fail(self.peek(), f"'{text}'")
        return self.take()

    @staticmethod
    def right_of(tok: Token, pos: int | None) -> bool:
        """`checkColGt`: the token lies right of the saved position (none: no constraint)."""
        return pos is None or tok.col > pos

    # terms
    def starts_term(self, tok: Token) -> bool:
        if tok.kind in ("num", "str", "char"):
            return True
        if tok.kind == "ident":
            return not tok.reserved or tok.text in _TERM_KEYWORDS
        return tok.kind == "sym" and (
            tok.text in _OPEN or tok.text in _BINDERS or tok.text in _PREFIX
            or tok.text in _ATOMS or tok.text in ("?", ".")
        )  # fmt: skip

    def starts_arg(self, tok: Token) -> bool:
        """An application argument (`argPrec`: a term at maximal precedence)."""
        if tok.kind in ("num", "str", "char"):
            return True
        if tok.kind == "ident":
            return not tok.reserved or tok.text in _ARG_KEYWORDS
        if tok.kind != "sym":
            return False
        if tok.text == ".":  # `.inl h`: an anonymous constructor (`tok` is the next token)
            after = self.peek(1)
            return after.kind == "ident" and not after.ws
        return tok.text in _OPEN or tok.text in _ATOMS or tok.text in ("?", "¬", "↑", "!", "@")

    def is_operator(self, tok: Token) -> bool:
        if tok.kind != "sym" or tok.text in _STOPS or tok.text in _CLOSE or tok.text in _OPEN:
            return False
        if tok.text in _BINDERS or tok.text in ("?", "@", "_", "∅", "⊤", "⊥"):
            return False
        if tok.text == ".":  # `(f x).2`: a projection, no space before it
            return not tok.ws
        if tok.text.isascii():
            return tok.text in _ASCII_OPERATORS
        return True  # a mathematical symbol: an infix or postfix notation

    def term(self, pos: int | None) -> None:
        if not self.starts_term(self.peek()):
            raise self.fail(self.peek(), "term")
        if self.lead(pos):
            self.trail(pos)

    def trail(self, pos: int | None) -> None:
        while True:
            tok = self.peek()
            if self.is_operator(tok):
                self.take()
                if tok.text == "." or tok.text == "|>.":
                    if self.peek().kind in ("ident", "num"):
                        self.take()
                    continue
                if self.starts_term(self.peek()):
                    if not self.lead(pos):
                        return
                elif tok.text not in _POSTFIX and tok.text != "!" and tok.text.isascii():
                    raise self.fail(self.peek(), "term")
                continue
            if self.starts_arg(tok) and self.right_of(tok, pos):
                if not self.lead(pos):
                    return
                continue
            return

    def lead(self, pos: int | None) -> bool:
        """A leading term; False when it extends as far as it can (`fun`, `by`, ...), so no
        argument or operator may follow it."""
        tok = self.take()
        if tok.kind == "ident" and tok.reserved:
            if tok.text in ("fun",):
                self.binders_until("=>", "↦")
                self.term(pos)
                return False
            if tok.text == "forall":
                self.binders_until(",")
                self.term(pos)
                return False
            if tok.text == "by":
                self.by_block(pos)
                return False
            if tok.text == "show":
                self.term(pos)
                if self.peek().word("from"):
                    self.take()
                    self.term(pos)
                elif self.peek().word("by"):
                    self.take()
                    self.by_block(pos)
                return False
            if tok.text == "if":
                if self.peek().kind == "ident" and self.peek(1).sym(":"):
                    self.take(), self.take()
                self.term(pos)
                if not self.peek().word("then"):
                    raise self.fail(self.peek(), "'then'")
                self.take()
                self.term(pos)
                if not self.peek().word("else"):
                    raise self.fail(self.peek(), "'else'")
                self.take()
                self.term(pos)
                return False
            if tok.text == "calc":
                self.calc_steps()
                return False
            if tok.text in ("sorry", "Type", "Sort", "Prop"):
                return True
            if tok.text in ("have", "let", "suffices"):  # `have d; body`, `have d\n body`
                self.shape_have(tok, pos)
                if self.peek().sym(";"):
                    self.take()
                self.term(pos)
                return False
            raise ParseError(tok.start, f"the fake does not model the term `{tok.text}`")
        if tok.kind == "sym":
            if tok.text in _OPEN:
                self.group(tok)
                return True
            if tok.text == "λ":
                self.binders_until("=>", "↦")
                self.term(pos)
                return False
            if tok.text in _BINDERS:
                self.binders_until(",")
                self.term(pos)
                return False
            if tok.text == "?":
                nxt = self.peek()
                if nxt.ws or not (nxt.kind == "ident" or nxt.sym("_")):
                    raise self.fail(nxt, "identifier or '_'")
                self.take()
                return True
            if tok.text == ".":
                self.take()  # `.inl`
                return True
            if tok.text in _PREFIX:
                if not self.starts_term(self.peek()):
                    raise self.fail(self.peek(), "term")
                return self.lead(pos)
        return True

    def group(self, opener: Token) -> None:
        """A bracketed term, taken whole: inside brackets no column constraint holds."""
        stack = [_OPEN[opener.text]]
        while stack:
            tok = self.peek()
            if tok.kind == "eof":
                raise self.fail(tok, f"'{stack[-1]}'")
            self.take()
            if tok.kind != "sym":
                continue
            if tok.text == stack[-1]:
                stack.pop()
            elif tok.text in _OPEN:
                stack.append(_OPEN[tok.text])
            elif tok.text in _CLOSE:
                raise ParseError(
                    tok.start, f"unexpected token '{tok.text}'; expected '{stack[-1]}'"
                )

    def binders_until(self, *ends: str) -> None:
        while not self.peek().sym(*ends):
            tok = self.peek()
            if tok.kind == "eof" or tok.sym(";", ":=") or tok.text in _CLOSE:
                raise self.fail(tok, f"'{ends[0]}'")
            self.take()
            if tok.kind == "sym" and tok.text in _OPEN:
                self.group(tok)
        self.take()

    def by_block(self, pos: int | None) -> None:
        """`by` and a tactic sequence right of the saved position (`tacticSeqIndentGt`)."""
        tok = self.peek()
        if tok.sym("{"):
            self.take()
            seq = self.seq_until("}")
        else:
            if not self.right_of(tok, pos) and tok.kind != "eof":
                raise self.fail(tok, "indented tactic sequence")
            seq = self.seq()
        if self.nested:
            self.nested[-1].append(seq)

    def calc_steps(self) -> None:
        """`calc` steps: `withPosition(first step) withPosition((colGe step)*)`."""
        first = self.peek()
        self.term(first.col)
        if self.peek().sym(":="):
            self.take()
            self.term(first.col)
        step = self.peek()
        if not (step.nl and self.starts_term(step)):
            return
        col = step.col
        while self.peek().nl and self.starts_term(self.peek()) and self.peek().col >= col:
            self.term(col)
            self.expect_sym(":=")
            self.term(col)

    # tactic sequences
    def starts_tactic(self, tok: Token) -> bool:
        if tok.kind == "ident":
            return not tok.reserved or tok.text in _SHAPES
        return tok.sym("(", "{", "·", ".")

    def seq(self) -> list[Syn]:
        """`sepBy1IndentSemicolon tacticParser`: the first tactic saves the position."""
        first = self.peek()
        if not self.starts_tactic(first):
            raise self.fail(first, "tactic")
        col = first.col
        items = [self.tactic(col)]
        while True:
            tok = self.peek()
            if tok.sym(";"):
                self.take()
                nxt = self.peek()
                if nxt.kind != "eof" and nxt.col >= col and self.starts_tactic(nxt):
                    items.append(self.tactic(col))
                    continue
                return items  # a trailing `;`
            if tok.nl and tok.col == col and self.starts_tactic(tok):
                items.append(self.tactic(col))
                continue
            return items

    def seq_until(self, closer: str) -> list[Syn]:
        items = [] if self.peek().sym(closer) else self.seq()
        self.expect_sym(closer)
        return items

    def tactic_seq(self) -> list[Syn]:
        """`tacticSeq`: `{ ... }` or an indented sequence."""
        if self.peek().sym("{"):
            start = self.take()
            inner = self.seq_until("}")
            return [self.syn("braces", "{", start, seq=inner)]
        return self.seq()

    def syn(self, kind: str, name: str, start: Token, **more: Any) -> Syn:
        return Syn(kind, name, start.start, self.last_end, self.src, **more)

    def tactic(self, pos: int | None) -> Syn:
        """One tactic with its trailing `<;>`/`<|>` (`t <;> u` is `macro:1 ... tactic:2`)."""
        node = self.tactic_lead(pos)
        while self.peek().sym("<;>", "<|>"):
            op = self.take()
            rhs = self.tactic_lead(pos)
            kind = "then" if op.text == "<;>" else "orelse"
            node = Syn(kind, op.text, node.start, rhs.end, self.src, alts=[[node], [rhs]])
        return node

    def tactic_lead(self, pos: int | None) -> Syn:
        tok = self.peek()
        if tok.sym("("):
            self.take()
            inner = self.seq()
            self.expect_sym(")")
            return self.syn("paren", "(", tok, seq=inner, main=False)
        if tok.sym("{"):
            self.take()
            return self.syn("braces", "{", tok, seq=self.seq_until("}"))
        if tok.sym("·", "."):
            self.take()
            return self.syn("cdot", "·", tok, seq=self.seq())
        if tok.kind != "ident" or (tok.reserved and tok.text not in _SHAPES):
            raise self.fail(tok, "tactic")
        shape = _SHAPES.get(tok.text)
        if shape is None:  # Tactic.lean `unknown`: `errorAtSavedPos "unknown tactic" true`
            raise ParseError(tok.start + 1, "unknown tactic", known=True)
        self.take()
        self.nested.append([])
        node = getattr(self, "shape_" + shape)(tok, pos)
        node.nested = self.nested.pop()
        node.main = node.main and tok.text not in _NOT_MAIN
        return node

    # argument shapes
    def leaf(self, tok: Token) -> Syn:
        return self.syn("leaf", tok.text, tok)

    def shape_none(self, tok: Token, pos: int | None) -> Syn:
        self.config(pos)
        return self.leaf(tok)

    def config(self, pos: int | None, clauses: bool = False) -> None:
        """`optConfig`: `(config := ...)`, `(discharger := ...)`, `+opt`, `-opt`; with
        `clauses`, any `(name ...)` (aesop's `(add ...)`, `(rule_sets := ...)`)."""
        while True:
            tok, nxt = self.peek(), self.peek(1)
            if not self.right_of(tok, pos):
                return
            if tok.sym("(") and nxt.kind == "ident" and (clauses or self.peek(2).sym(":=")):
                self.group(self.take())
            elif tok.sym("+", "-") and nxt.kind == "ident" and not nxt.ws:
                self.take(), self.take()
            else:
                return

    def location(self, pos: int | None) -> None:
        """`at *`, or `at` hypotheses (`term:max` each) and `⊢`."""
        if not self.peek().word("at"):
            return
        self.take()
        if self.peek().sym("*"):
            self.take()
            return
        found = False
        while True:
            tok = self.peek()
            if tok.sym("⊢", "|-") and self.right_of(tok, pos):
                self.take()
            elif self.starts_arg(tok) and self.right_of(tok, pos):
                self.lead(pos)
            else:
                break
            found = True
        if not found:
            raise self.fail(self.peek(), "'*', term or '⊢'")

    def shape_mods(self, tok: Token, pos: int | None) -> Syn:
        self.config(pos, clauses=tok.text.startswith("aesop"))
        for _ in range(2):
            nxt = self.peek()
            if nxt.word("only") and self.right_of(nxt, pos):
                self.take()
            nxt = self.peek()
            if nxt.sym("[") and self.right_of(nxt, pos):
                self.group(self.take())
            self.location(pos)
            nxt = self.peek()
            if nxt.word("using") and self.right_of(nxt, pos):
                self.take()
                self.term(pos)
            if self.peek().word("with") and self.right_of(self.peek(), pos):
                self.take()
                self.names(pos)
            nxt = self.peek()
            congr = tok.text in ("congr", "gcongr")
            if congr and self.starts_term(nxt) and self.right_of(nxt, pos):
                self.term(pos)
        return self.leaf(tok)

    def names(self, pos: int | None) -> None:
        while self.starts_arg(self.peek()) and self.right_of(self.peek(), pos):
            self.lead(pos)

    def shape_term(self, tok: Token, pos: int | None) -> Syn:
        if tok.text in ("trans", "linear_combination") and not self.starts_term(self.peek()):
            return self.leaf(tok)
        self.term(pos)
        if tok.text in ("convert", "convert_to") and self.peek().word("using"):
            self.take()
            self.term(pos)
        return self.leaf(tok)

    def shape_terms(self, tok: Token, pos: int | None) -> Syn:
        self.term(pos)
        while self.peek().sym(","):
            self.take()
            self.term(pos)
        return self.leaf(tok)

    def shape_term_at(self, tok: Token, pos: int | None) -> Syn:
        self.term(pos)
        self.location(pos)
        return self.leaf(tok)

    def shape_binders(self, tok: Token, pos: int | None) -> Syn:
        # `intro` parses `notFollowedBy "|"` then `(colGt term:max)*`; or match alternatives
        if tok.text == "intro" and self.peek().sym("|"):
            return self.syn("leaf", tok.text, tok, alts=self.match_alts(pos))
        if not tok.text.startswith("rintro"):
            self.names(pos)
        if tok.text == "rintro":
            self.pattern(pos)
            if self.peek().sym(":"):
                self.take()
                self.term(pos)
            return self.leaf(tok)
        if tok.text in ("unfold", "unfold_let", "delta"):
            self.location(pos)
        return self.leaf(tok)

    def shape_rw(self, tok: Token, pos: int | None) -> Syn:
        self.config(pos)
        while self.peek().kind == "num":
            self.take()
        self.expect_sym("[")
        self.group(self.toks[self.i - 1])
        self.location(pos)
        return self.leaf(tok)

    def shape_have(self, tok: Token, pos: int | None) -> Syn:
        seen = False
        nxt = self.peek()
        if tok.text == "obtain" and not nxt.sym(":", ":="):
            self.pattern(pos)
        elif nxt.name:
            self.take()
            self.names(pos)  # binders
        elif nxt.sym("⟨", "("):
            self.group(self.take())
        if self.peek().sym(":"):
            self.take()
            self.term(pos)
            seen = True
        if self.peek().sym(":="):
            self.take()
            self.term(pos)
            while tok.text == "obtain" and self.peek().sym(","):
                self.take()
                self.term(pos)
            seen = True
        elif tok.text == "suffices" and self.peek().word("by", "from"):
            if self.take().text == "by":
                self.by_block(pos)
            else:
                self.term(pos)
        if tok.text == "set" and self.peek().word("with"):
            self.take()
            if self.peek().sym("←", "<-"):
                self.take()
            self.names(pos)
        if not seen and tok.text not in ("obtain", "suffices"):
            raise self.fail(self.peek(), "':' or ':='")
        return self.leaf(tok)

    def targets(self, pos: int | None) -> None:
        """`sepBy1 (atomic (ident " : ")? term) ", "`."""
        while True:
            if self.peek().kind == "ident" and self.peek(1).sym(":"):
                self.take(), self.take()
            self.term(pos)
            if not self.peek().sym(","):
                return
            self.take()

    def shape_cases(self, tok: Token, pos: int | None) -> Syn:
        self.targets(pos)
        if self.peek().word("using"):
            self.take()
            self.term(pos)
        if self.peek().word("generalizing"):
            self.take()
            self.names(pos)
        alts: list[list[Syn]] = []
        if self.peek().word("with"):
            self.take()
            nxt = self.peek()
            if not nxt.sym("|") and self.starts_tactic(nxt) and self.right_of(nxt, pos):
                self.tactic(pos)
            col = self.peek().col
            if not self.peek().sym("|"):
                raise self.fail(self.peek(), "'|'")
            while self.peek().sym("|") and self.peek().col >= col:
                self.take()
                while not self.peek().sym("=>"):
                    nxt = self.peek()
                    if nxt.kind == "eof" or not (self.starts_arg(nxt) or nxt.sym("|", "@")):
                        raise self.fail(nxt, "'=>'")
                    self.take()
                self.take()
                if self.peek().sym("_") or self.peek().sym("?"):
                    self.lead(pos)
                else:
                    alts.append(self.tactic_seq())
        return self.syn("leaf", tok.text, tok, alts=alts)

    def pattern(self, pos: int | None) -> None:
        """rcases patterns: `⟨...⟩`, `(...)`, names, `_`, `-`, `@`, joined by `|`."""
        found = False
        while True:
            tok = self.peek()
            if not self.right_of(tok, pos):
                break
            if tok.sym("⟨", "("):
                self.group(self.take())
            elif tok.name or tok.sym("-", "@", "|"):
                self.take()
            else:
                break
            found = True
        if not found:
            raise self.fail(self.peek(), "rcases pattern")

    def shape_rcases(self, tok: Token, pos: int | None) -> Syn:
        self.targets(pos)
        if self.peek().word("with"):
            self.take()
            self.pattern(pos)
        return self.leaf(tok)

    def shape_generic(self, tok: Token, pos: int | None) -> Syn:
        while True:
            nxt = self.peek()
            if not self.right_of(nxt, pos) or nxt.kind == "eof":
                break
            if self.starts_arg(nxt):
                self.term(pos)
            elif nxt.word("at"):
                self.location(pos)
            elif nxt.word("with", "generalizing", "only") or nxt.sym(",", "←", "<-", "*", "⊢"):
                self.take()
            elif nxt.word("using") or nxt.sym(":=", ":", "=", "=>"):
                self.take()
                self.term(pos)
            else:
                break
        return self.leaf(tok)

    def shape_by_cases(self, tok: Token, pos: int | None) -> Syn:
        if self.peek().kind == "ident" and self.peek(1).sym(":"):
            self.take(), self.take()
        self.term(pos)
        return self.leaf(tok)

    def shape_case(self, tok: Token, pos: int | None) -> Syn:
        tags: list[tuple[str, list[str]]] = []
        while True:
            tag = self.peek()
            if not tag.name:
                raise self.fail(tag, "identifier or '_'")
            self.take()
            names = []
            while self.peek().name:
                names.append(self.take().text)
            tags.append((tag.text, names))
            if not self.peek().sym("|"):
                break
            self.take()
        self.expect_sym("=>")
        return self.syn("case", tok.text, tok, seq=self.tactic_seq(), tags=tags, main=False)

    def shape_next(self, tok: Token, pos: int | None) -> Syn:
        names = []
        while self.peek().name:
            names.append(self.take().text)
        self.expect_sym("=>")
        return self.syn("next", tok.text, tok, seq=self.tactic_seq(), tags=[("_", names)])

    def shape_seq(self, tok: Token, pos: int | None) -> Syn:
        if tok.text == "on_goal" and self.peek().sym("-"):
            self.take()
        if tok.text in ("iterate", "on_goal") and self.peek().kind == "num":
            self.take()
        if tok.text == "on_goal":
            self.expect_sym("=>")
        return self.syn("block", tok.text, tok, seq=self.tactic_seq())

    def shape_first(self, tok: Token, pos: int | None) -> Syn:
        col = self.peek().col
        alts = []
        if not self.peek().sym("|"):
            raise self.fail(self.peek(), "'|'")
        while self.peek().sym("|") and self.peek().col >= col:
            self.take()
            alts.append(self.tactic_seq())
        return self.syn("first", tok.text, tok, alts=alts, main=False)

    def shape_goal_num(self, tok: Token, pos: int | None) -> Syn:
        if self.peek().sym("-"):
            self.take()
        if self.peek().kind == "num" and self.right_of(self.peek(), pos):
            self.take()
        elif tok.text == "pick_goal":
            raise self.fail(self.peek(), "numeral")
        return self.leaf(tok)

    def shape_calc(self, tok: Token, pos: int | None) -> Syn:
        self.calc_steps()
        return self.leaf(tok)

    def shape_conv(self, tok: Token, pos: int | None) -> Syn:
        while not self.peek().sym("=>"):
            nxt = self.peek()
            if nxt.kind == "eof":
                raise self.fail(nxt, "'=>'")
            self.take()
            if nxt.kind == "sym" and nxt.text in _OPEN:
                self.group(nxt)
        self.take()
        self.conv_seq()
        return self.leaf(tok)

    def conv_seq(self) -> None:
        """A `conv` sequence: its tactics are taken as a name and arguments."""
        col = self.peek().col
        while True:
            tok = self.peek()
            if tok.sym("·", "."):
                self.take()
                self.conv_seq()
            elif tok.sym("(", "{"):
                self.group(self.take())
            elif tok.kind == "ident" and not tok.reserved:
                self.take()
                if tok.text in ("rw", "erw", "simp_rw", "rewrite"):
                    self.shape_rw(tok, col)
                else:
                    self.shape_generic(tok, col)
            else:
                raise self.fail(tok, "conv tactic")
            nxt = self.peek()
            if nxt.sym(";"):
                self.take()
            elif not (nxt.nl and nxt.col == col):
                return

    def shape_match(self, tok: Token, pos: int | None) -> Syn:
        """`match (h :)? e, ... with | pats => tactics | ...` (Tactic.lean `match`)."""
        self.targets(pos)
        if not self.peek().word("with"):
            raise self.fail(self.peek(), "'with'")
        self.take()
        return self.syn("leaf", tok.text, tok, alts=self.match_alts(pos))

    def match_alts(self, pos: int | None) -> list[list[Syn]]:
        """`withPosition((colGe "| " pats " => " rhs)+)`; the tactic sequences of the rhs."""
        col, alts = self.peek().col, []
        if not self.peek().sym("|"):
            raise self.fail(self.peek(), "'|'")
        while self.peek().sym("|") and self.peek().col >= col:
            self.take()
            self.binders_until("=>")
            if self.peek().sym("_") or self.peek().sym("?"):
                self.lead(pos)
            else:
                alts.append(self.tactic_seq())
        return alts

    def shape_unsupported(self, tok: Token, pos: int | None) -> Syn:
        raise ParseError(tok.start, f"the fake does not model the syntax of `{tok.text}`")


def parse_tactic(text: str) -> Syn:
    """`Parser.runParserCategory env `tactic text`: one tactic, then end of input."""
    parser = _Parser(text)
    node = parser.tactic(None)
    rest = parser.peek()
    if rest.kind != "eof":
        raise ParseError(rest.start, "expected end of input", known=True)
    return node


def proof_tactics(cmd: str) -> list[Syn]:
    """The tactic sequence of the first `:= by` block of a command (the top-level `by` of a
    declaration saves no position), or [] when there is none."""
    parser = _Parser(cmd)
    for k, tok in enumerate(parser.toks[1:], 1):
        if tok.word("by") and parser.toks[k - 1].sym(":="):
            parser.i = k + 1
            return parser.seq()
    return []


def parse_error_text(text: str, err: ParseError) -> str:
    line, column = position(text, err.offset)
    return f"{LEAN_ERROR}<input>:{line}:{column}: {err.message}"


# --- running a parsed tactic on a goal list ---------------------------------------------------


class Fatal(Exception):
    """Ends the process with a message on stderr, as an uncaught exception ends the REPL."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Thrown:
    """A tactic threw: the REPL answers `{"message": "Lean error:\\n<text>"}`."""

    text: str


@dataclass
class Outcome:
    """What running a tactic did. `status`: what `getProofStatus` said of the recording when
    no goal was left (None: not known); `sorry`: a sorry (or an admitted goal) entered."""

    goals: list[str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    sorries: list[dict[str, Any]] = field(default_factory=list)
    traces: list[str] = field(default_factory=list)
    status: str | None = None
    sorry: bool = False

    def then(self, other: Outcome) -> Outcome:
        """This, then `other` on its goals."""
        return Outcome(
            other.goals,
            self.messages + other.messages,
            self.sorries + other.sorries,
            self.traces + other.traces,
            other.status if other.status is not None or other.goals else self.status,
            self.sorry or other.sorry,
        )

    @property
    def failed(self) -> bool:
        return any(m.get("severity") == "error" for m in self.messages)


Result = Outcome | Thrown


def _outcome(reply: dict[str, Any]) -> Result:
    if "message" in reply:
        return Thrown(reply["message"].removeprefix(LEAN_ERROR))
    status = reply.get("proofStatus")
    sorries = copy.deepcopy(reply.get("sorries", []))
    messages = copy.deepcopy(reply.get("messages", []))
    return Outcome(
        list(reply["goals"]),
        messages,
        sorries,
        list(reply.get("traces", [])),
        None if reply["goals"] else status,
        bool(sorries)
        or status == CONTAINS_SORRY
        or any(m.get("severity") == "error" for m in messages),
    )


def _tag(goal: str) -> str | None:
    first = goal.split("\n", 1)[0]
    return first[len("case ") :] if first.startswith("case ") else None


def _untagged(goal: str) -> str:
    return goal.split("\n", 1)[1] if _tag(goal) is not None and "\n" in goal else goal


def _tag_matches(wanted: str, tag: str | None) -> bool:
    """`case` tag lookup: the tag itself, or a suffix of it made of whole name components."""
    return tag is not None and (tag == wanted or tag.endswith("." + wanted))


def _logged_error(text: str) -> dict[str, Any]:
    return {"severity": "error", "pos": dict(AT_ZERO), "endPos": dict(AT_ZERO), "data": text}


def _unsolved(goals: list[str]) -> str:
    """Lean's `unsolved goals` error (`goalsToMessageData`: goals apart by a blank line)."""
    return "unsolved goals\n" + "\n\n".join(goals)


class Runner:
    """Runs one parsed tactic against the recorded edges (see the module docstring)."""

    def __init__(self, repl: FakeRepl) -> None:
        self.repl = repl

    def recorded(self, node: Syn, goals: list[str], extra: tuple[str, ...] = ()) -> Result | None:
        edges = self.repl.edges
        keys = [*extra, *node.keys()]
        for text in keys:
            reply = edges.get((tuple(goals), text))
            if reply is not None:
                return _outcome(reply)
        if not goals or not (node.main or len(goals) == 1):
            return None
        rest = goals[1:]
        for text in keys:
            reply = edges.get(((goals[0],), text)) if rest else None
            if reply is not None:
                found = _outcome(reply)
                if isinstance(found, Outcome):
                    found.goals += rest
                return found
        for text in keys if node.kind == "leaf" else ():
            reply = self.repl.closing.get((_untagged(goals[0]), text))
            if reply is not None:
                found = _outcome(reply)
                if isinstance(found, Outcome):
                    found.goals = rest
                return found
        return None

    def unrecorded(self, node: Syn, goals: list[str]) -> Result:
        if self.repl.unrecorded_tactics != "error":
            raise Fatal(f"fake_repl: no recorded reply for tactic {node.text!r} on {goals!r}", 3)
        # Lean's reply to an elaboration error (test:invalid_tactic): logged, goal admitted
        text = f"fake_repl: nothing is recorded for `{node.text}` on these goals"
        return Outcome(goals[1:], [_logged_error(text)], status=CONTAINS_SORRY, sorry=True)

    def run(
        self, node: Syn, goals: list[str], status: str | None, extra: tuple[str, ...] = ()
    ) -> Result:
        found = self.recorded(node, goals, extra)
        if found is not None:
            return found
        kind, name = node.kind, node.name
        if kind == "leaf" and name == "skip":
            return Outcome(list(goals), status=status)
        if kind == "leaf" and name in ("sorry", "admit") and goals:
            sorry = {"proofState": 0, "goal": goals[0]}
            return Outcome(goals[1:], sorries=[sorry], status=CONTAINS_SORRY, sorry=True)
        if kind == "paren":
            return self.seq(node.seq, goals, status)
        if kind in ("cdot", "braces") and goals:
            return self.close(node.seq, goals[0], goals[1:])
        if kind == "next" and goals and not node.tags[0][1]:
            return self.close(node.seq, _untagged(goals[0]), goals[1:])
        if kind == "case" and all(not names for _, names in node.tags):
            return self.case(node, goals)
        if kind == "block" and name in ("focus", "all_goals", "any_goals", "try"):
            return self.block(node, goals, status)
        if kind == "then" and goals:
            return self.then(node, goals)
        if kind in ("first", "orelse"):
            return self.first(node.alts, goals, status)
        if self.repl.elaborate and kind == "leaf":
            found = self.elaborated(node, goals)
            if found is not None:
                return found
        return self.unrecorded(node, goals)

    def elaborated(self, node: Syn, goals: list[str]) -> Result | None:
        """`--elaborate`: the tactic as `core_logic` elaborates it, or None outside its
        fragment. A logged error admits the main goal (test:invalid_tactic)."""
        done = core_logic.run_tactic(goals, node.text)
        if done is None:
            return None
        if done.thrown is not None:
            return Thrown(done.thrown)
        if done.logged:
            errors = [_logged_error(text) for text in done.logged]
            return Outcome(done.goals, errors, status=CONTAINS_SORRY, sorry=True)
        return Outcome(done.goals, status=None if done.goals else COMPLETED)

    def seq(self, tactics: list[Syn], goals: list[str], status: str | None) -> Result:
        done = Outcome(list(goals), status=status)
        for tac in tactics:
            step = self.run(tac, done.goals, done.status)
            if isinstance(step, Thrown):
                return step
            done = done.then(step)
        return done

    def close(self, tactics: list[Syn], goal: str, rest: list[str]) -> Result:
        """Focus on `goal`, run, and close it, else log why and admit it (Lean's
        `closeUsingOrAdmit`, which `·`, `{}`, `case` and `next` use)."""
        inner = self.seq(tactics, [goal], None)
        if isinstance(inner, Thrown):
            error = _logged_error(inner.text)
            return Outcome(list(rest), [error], status=CONTAINS_SORRY, sorry=True)
        if inner.goals:
            inner.messages.append(_logged_error(_unsolved(inner.goals)))
            inner.status, inner.sorry = CONTAINS_SORRY, True
        inner.goals = list(rest)
        return inner

    def case(self, node: Syn, goals: list[str]) -> Result:
        done = Outcome(list(goals))
        for tag, _ in node.tags:
            if tag == "_":  # the first goal, whatever its tag
                at = 0 if done.goals else None
            else:
                found = (i for i, g in enumerate(done.goals) if _tag_matches(tag, _tag(g)))
                at = next(found, None)
            if at is None:  # Lean says which tags there are, in words the fake cannot tell
                return self.unrecorded(node, goals)
            goal, rest = done.goals[at], done.goals[:at] + done.goals[at + 1 :]
            step = self.close(node.seq, _untagged(goal), rest)
            if isinstance(step, Thrown):
                return step
            done = done.then(step)
        return done

    def block(self, node: Syn, goals: list[str], status: str | None) -> Result:
        name = node.name
        if name == "focus":
            if not goals:
                return self.unrecorded(node, goals)
            inner = self.seq(node.seq, goals[:1], None)
            if isinstance(inner, Outcome):
                inner.goals += goals[1:]
            return inner
        if name == "try":
            inner = self.seq(node.seq, goals, status)
            if isinstance(inner, Thrown) or inner.failed:
                return Outcome(list(goals), status=status)
            return inner
        return self.each(node, node.seq, goals, status)

    def each(self, node: Syn, tactics: list[Syn], goals: list[str], status: str | None) -> Result:
        """Run `tactics` on each goal alone, results in goal order (`all_goals`, `<;>`: a
        throw ends it, a logged error is kept; `any_goals`: a goal it fails on stays as it
        was, unless it fails on all)."""
        total, failures = Outcome([], status=status), 0
        for goal in goals:
            inner = self.seq(tactics, [goal], None)
            if isinstance(inner, Thrown) and node.name != "any_goals":
                return inner
            if isinstance(inner, Thrown) or (inner.failed and node.name == "any_goals"):
                failures += 1
                inner = Outcome([goal])
            merged = total.then(inner)
            merged.goals = total.goals + inner.goals
            total = merged
        if node.name == "any_goals" and failures == len(goals):
            return self.unrecorded(node, goals)
        return total

    def then(self, node: Syn, goals: list[str]) -> Result:
        """`t <;> u`: `t` on the main goal, then `u` on each goal it made."""
        (left,), (right,) = node.alts
        first = self.run(left, goals[:1], None)
        if isinstance(first, Thrown):
            return first
        made = self.each(node, [right], first.goals, first.status)
        if isinstance(made, Thrown):
            return made
        both = first.then(made)
        both.goals = made.goals + goals[1:]
        return both

    def first(self, alts: list[list[Syn]], goals: list[str], status: str | None) -> Result:
        """`first | a | b` and `a <|> b`: the first alternative that neither throws nor logs
        an error (all but the last run without error recovery)."""
        for k, alt in enumerate(alts):
            found = self.seq(alt, goals, status)
            last = k == len(alts) - 1
            if last or not (isinstance(found, Thrown) or found.failed):
                return found
        raise AssertionError("no alternative")


# --- the REPL state machine ----------------------------------------------------------------


@dataclass
class State:
    """A proof state: its goals; `status`, what `getProofStatus` says of it when it has no
    goal (None: not known); `sorry`, a sorry is in its root goal's proof already; `pending`,
    its root goal has other goals still open (metavariables remain when these are closed)."""

    goals: list[str]
    status: str | None = None
    sorry: bool = False
    pending: bool = False
    roots: int = 1
    """Its root goals: those `getProofStatus` checks the proof of. An `allTactics` entry's
    state has the goals before that tactic as its roots (InfoTree.lean
    `findAllInfoTactics` hands each entry its own `goalsBefore`; Main.lean `tactics`),
    a command sorry's state its one goal; a step keeps the roots of the state it ran on."""


def _options(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "env" and v is not None and v is not False}


def _nat(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _kind(request: dict[str, Any]) -> str:
    """Which input a query is, tried in Main.lean `parse`'s order (`fromJson?` of each)."""
    get = request.get
    if _nat(get("proofState")) and isinstance(get("tactic"), str):
        return "tactic"
    if _nat(get("env")) and isinstance(get("pickleTo"), str):
        return "pickle_env"
    if isinstance(get("unpickleEnvFrom"), str):
        return "unpickle_env"
    if _nat(get("proofState")) and isinstance(get("pickleTo"), str):
        return "pickle_state"
    env_ok = get("env") is None or _nat(get("env"))
    if isinstance(get("unpickleProofStateFrom"), str) and env_ok:
        return "unpickle_state"
    options_ok = all(
        get(k) is None or isinstance(get(k), bool) for k in ("allTactics", "rootGoals")
    )
    options_ok = options_ok and (get("infotree") is None or isinstance(get("infotree"), str))
    if env_ok and options_ok and isinstance(get("cmd"), str):
        return "command"
    if env_ok and options_ok and isinstance(get("path"), str):
        return "file"
    raise Fatal(_uncaught("Could not parse as a valid JSON command:\nno input kind fits"))


def _uncaught(message: str) -> str:
    return "uncaught exception: " + render({"message": message})


def entry_goals(info: dict[str, Any]) -> list[str]:
    """The goal list behind a `tactics` entry: its `fake:goals`, or what its text can only
    mean (`no goals`; a single `⊢` line: one goal)."""
    hidden = info.get("fake:goals")
    if hidden is not None:
        if ("\n".join(hidden) if hidden else "no goals") != info["goals"]:
            raise Fatal(f"fake_repl: fake:goals {hidden!r} do not print as {info['goals']!r}", 3)
        return list(hidden)
    text = info["goals"]
    if text == "no goals":
        return []
    if sum(line.startswith("⊢") for line in text.split("\n")) == 1:
        return [text]
    raise Fatal(f"fake_repl: say the goals behind {text!r} in fake:goals (tactics entry)", 3)


class FakeRepl:
    def __init__(
        self, graph: dict[str, Any], unrecorded_tactics: str = "fatal", elaborate: bool = False
    ) -> None:
        self.unrecorded_tactics = unrecorded_tactics
        self.elaborate = elaborate
        self.commands: list[dict[str, Any]] = graph["commands"]
        self.edges: dict[tuple[tuple[str, ...], str], dict[str, Any]] = {}
        # recordings that closed their one goal cleanly, by the goal without its `case` tag
        self.closing: dict[tuple[str, str], dict[str, Any]] = {}
        for edge in graph["tactics"]:
            goals, reply = tuple(edge["goals"]), edge["reply"]
            self.edges[(goals, edge["tactic"])] = reply
            clean = not any(reply.get(k) for k in ("messages", "sorries", "message"))
            if len(goals) == 1 and clean and reply.get("goals") == []:
                self.closing.setdefault((_untagged(goals[0]), edge["tactic"]), reply)
        for entry in self.commands:
            for info in entry["reply"].get("tactics", []):
                entry_goals(info)  # a graph mistake shows at once
        self.envs: list[tuple[str, ...]] = []  # env id -> the commands it holds
        self.states: list[State] = []  # proof state id -> the state

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = _kind(request)
        if kind in ("command", "file"):
            return self.command(request)
        return getattr(self, kind)(request)

    def _new_state(self, state: State) -> int:
        self.states.append(state)
        return len(self.states) - 1

    def _env(self, request: dict[str, Any]) -> tuple[str, ...] | None:
        env = request.get("env")
        if env is None:
            return ()
        return self.envs[env] if 0 <= env < len(self.envs) else None

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        lineage = self._env(request)
        if lineage is None:
            return {"message": "Unknown environment."}
        text = request.get("cmd", request.get("path"))
        wanted = _options(request)
        matches = [
            c
            for c in self.commands
            if _options(c["request"]) == wanted and set(c["requires"]) <= set(lineage)
        ]
        elaborated = None
        if not matches and self.elaborate and not lineage:
            elaborated = self.elaborated_command(request)
        if not matches and elaborated is None:
            raise Fatal(f"fake_repl: no recorded reply for {wanted!r} after {list(lineage)}", 3)
        if elaborated is not None:
            reply = elaborated
        else:
            reply = copy.deepcopy(max(matches, key=lambda c: len(c["requires"]))["reply"])
        sorries = reply.get("sorries", [])
        for sorry in sorries:  # one goal each: the main goal for a tactic `sorry`
            if sorry.get("proofState") is not None:
                sorry["proofState"] = self._new_state(State([sorry["goal"]]))
        for info in reply.get("tactics", []):  # all goals before the tactic
            if info.get("proofState") is not None:
                goals = entry_goals(info)
                # Its roots are its own goals: an earlier sorry or a goal pending outside
                # them is no part of their proof.
                info["proofState"] = self._new_state(State(goals, roots=len(goals)))
        self.envs.append((*lineage, text))
        reply["env"] = len(self.envs) - 1
        return public(reply)

    def elaborated_command(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """`--elaborate`: the reply to a declaration of `core_logic`'s fragment, in a fresh
        environment, when its proof is modelled: each tactic elaborated in turn, each
        top-level `sorry` a sorry of the main goal (with the warning at the declared name or
        `example`), every goal closed. Errors and unsolved goals are not modelled (their
        positions are not established), nor `allTactics` for nested or multi-line tactics."""
        if set(_options(request)) - {"cmd", "allTactics"}:
            return None
        cmd: str = request["cmd"]
        decl = core_logic.parse_declaration(cmd)
        if decl is None:
            return None
        parser = _Parser(cmd)
        at = next((k for k, t in enumerate(parser.toks) if t.start == decl.by_offset - 2), None)
        if at is None or not parser.toks[at].word("by"):
            return None
        parser.i = at + 1
        if parser.peek().col <= parser.toks[0].col:
            return None  # not right of the command (`checkColGt`; test:line_breaks): an error
        try:
            seq = parser.seq()
        except ParseError:
            return None
        if parser.peek().kind != "eof":
            return None
        all_tactics = bool(request.get("allTactics"))
        for tac in seq:
            inner = [n for n, _ in tac.walk()][1:]
            if any(n.kind == "leaf" and n.name == "sorry" for n in inner):
                return None
            if all_tactics and (inner or tac.kind != "leaf" or "\n" in tac.text):
                return None

        def span(node: Syn) -> dict[str, Any]:
            (line, col), (end_line, end_col) = position(cmd, node.start), position(cmd, node.end)
            return {
                "pos": {"line": line, "column": col},
                "endPos": {"line": end_line, "column": end_col},
            }

        goals = [decl.goal]
        sorries: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        runner = Runner(self)
        for tac in seq:
            if not goals:
                return None  # `No goals to be solved` (an error: not modelled here)
            sorry = tac.kind == "leaf" and tac.name == "sorry"
            entries.append({
                "usedConstants": ["sorryAx"] if sorry else [],
                "tactic": tac.text,
                "proofState": 0,
                **span(tac),
                "goals": "\n".join(goals),
                "fake:goals": list(goals),
            })  # fmt: skip
            if sorry:
                sorries.append({"proofState": 0, **span(tac), "goal": goals[0]})
                goals = goals[1:]
                continue
            found = runner.run(tac, goals, None)
            if isinstance(found, Thrown) or found.messages or found.sorries or found.traces:
                return None
            goals = found.goals
        if goals:
            return None  # `unsolved goals` (an error: not modelled here)
        reply: dict[str, Any] = {}
        if sorries:
            line, col = position(cmd, decl.name_span[0])
            end_line, end_col = position(cmd, decl.name_span[1])
            warning = {
                "severity": "warning",
                "pos": {"line": line, "column": col},
                "endPos": {"line": end_line, "column": end_col},
                "data": "declaration uses `sorry`",
            }
            reply.update(sorries=sorries, messages=[warning])
        if all_tactics:
            reply["tactics"] = entries
        reply["env"] = 0
        return reply

    def tactic(self, request: dict[str, Any]) -> dict[str, Any]:
        state_id, text = request["proofState"], request["tactic"]
        if not state_id < len(self.states):
            return {"message": "Unknown proof state."}  # Main.lean `runProofStep`
        state = self.states[state_id]
        try:
            node = parse_tactic(text)
        except ParseError as err:
            if err.known or self.unrecorded_tactics == "error":
                return {"message": parse_error_text(text, err)}
            where = "{}:{}".format(*position(text, err.offset))
            raise Fatal(
                f"fake_repl: {text!r} does not parse at {where} ({err.message}); the fake "
                "cannot tell Lean's words for that error",
                3,
            ) from err
        found = Runner(self).run(node, list(state.goals), state.status, (text,))
        if isinstance(found, Thrown):
            return {"message": LEAN_ERROR + found.text}
        status = self._status(found, state, text)
        pending = state.pending or bool(found.goals) or len(found.sorries) > 1
        reply: dict[str, Any] = {}
        if found.messages:
            reply["messages"] = found.messages
        if found.sorries:
            for sorry in found.sorries:
                sorry["proofState"] = self._new_state(State([sorry["goal"]], pending=pending))
            reply["sorries"] = found.sorries
        if found.traces:
            reply["traces"] = found.traces
        new = State(found.goals, None if found.goals else status)
        new.sorry, new.pending, new.roots = state.sorry or found.sorry, state.pending, state.roots
        reply.update(proofStatus=status, proofState=self._new_state(new), goals=found.goals)
        return reply

    def _status(self, found: Outcome, state: State, text: str) -> str:
        """Main.lean `getProofStatus`, from what the recordings said."""
        if found.goals:
            return OPEN_GOALS
        if state.roots > 1:
            return NOT_VERIFIED
        status = found.status
        if status is None:
            raise Fatal(f"fake_repl: nothing tells the proof status after {text!r}", 3)
        if status in (COMPLETED, CONTAINS_SORRY) and state.pending:
            return CONTAINS_MVARS
        if status == COMPLETED and (state.sorry or found.sorry):
            return CONTAINS_SORRY
        return status

    def pickle_env(self, request: dict[str, Any]) -> dict[str, Any]:
        lineage = self._env(request)
        if lineage is None:
            return {"message": "Unknown environment."}
        Path(request["pickleTo"]).write_text(json.dumps({"env": list(lineage)}))
        return {"env": request["env"]}

    def unpickle_env(self, request: dict[str, Any]) -> dict[str, Any]:
        self.envs.append(tuple(_read_pickle(request["unpickleEnvFrom"])["env"]))
        return {"env": len(self.envs) - 1}

    def _state_reply(self, state: State) -> dict[str, Any]:
        """`createProofStepReponse` with no previous state."""
        if state.goals:
            status = OPEN_GOALS
        elif state.status is not None:
            status = state.status
        else:
            raise Fatal("fake_repl: nothing tells the proof status of this state", 3)
        new = self._new_state(copy.deepcopy(state))
        return {"proofStatus": status, "proofState": new, "goals": list(state.goals)}

    def pickle_state(self, request: dict[str, Any]) -> dict[str, Any]:
        state_id = request["proofState"]
        if not state_id < len(self.states):
            return {"message": "Unknown proof State."}  # sic: Main.lean `pickleProofSnapshot`
        state = self.states[state_id]
        Path(request["pickleTo"]).write_text(json.dumps({"state": vars(state)}))
        return self._state_reply(state)

    def unpickle_state(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._env(request) is None:
            return {"message": "Unknown environment."}
        return self._state_reply(State(**_read_pickle(request["unpickleProofStateFrom"])["state"]))


def _read_pickle(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise Fatal(f"uncaught exception: {err}") from err


def _apply_faults(text: str, out: Any) -> tuple[str, bool]:
    """Act on leading `fake:` lines; returns the rest, and whether the request is answered.
    In a parenthesised block (`(` + newline + indented tactics, as segpilot sends every
    candidate) the fault lines are the block's first lines."""
    wrapped = text.startswith("(\n")
    lines = text[2:].split("\n") if wrapped else text.split("\n")
    while lines and lines[0].strip().removesuffix(")").startswith(FAULT_PREFIX):
        line = lines.pop(0).strip()
        if wrapped and line.endswith(")") and not lines:
            line = line[:-1]
        word, _, arg = line[len(FAULT_PREFIX) :].partition(" ")
        if word == "crash":
            raise Fatal("fake_repl: crashing as asked")
        if word == "hang":
            while True:
                time.sleep(60)
        if word == "garbage":
            out.write("this is not JSON {\n\n")
            out.flush()
            return "", True
        if word == "sleep":
            time.sleep(float(arg))
        elif word == "alloc":
            try:
                _HELD.append(bytearray(b"\x01") * (int(arg) << 20))
            except MemoryError as err:
                raise Fatal("INTERNAL PANIC: out of memory") from err
    rest = "\n".join(lines)
    return ("(\n" + rest if wrapped else rest), False


_ASCII_SPACE = " \t\n\r\x0b\x0c"


def read_queries(stream: Any) -> Iterator[str]:
    """Queries as Main.lean `getLines` reads them: lines up to a blank one, each trimmed at
    its end (ASCII whitespace), joined without newlines."""
    lines: list[str] = []
    for line in stream:
        if line.strip(_ASCII_SPACE):
            lines.append(line.rstrip(_ASCII_SPACE))
        elif lines:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def serve(repl: FakeRepl, stdin: Any, stdout: Any, delay: float) -> None:
    for query in read_queries(stdin):
        if query.startswith(("#", "--")):
            continue
        try:
            request = json.loads(query)
        except json.JSONDecodeError as err:
            raise Fatal(_uncaught(f"Could not parse JSON:\n{err}")) from err
        if not isinstance(request, dict):
            raise Fatal(_uncaught("Could not parse as a valid JSON command:\nnot an object"))
        for key in ("cmd", "tactic"):
            if isinstance(request.get(key), str):
                request[key], answered = _apply_faults(request[key], stdout)
                if answered:
                    break
        else:
            time.sleep(delay)
            stdout.write(render(repl.handle(request)) + "\n\n")
            stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("graph", nargs="?", default=os.environ.get("FAKE_REPL_GRAPH"))
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument(
        "--unrecorded-tactics",
        choices=("fatal", "error"),
        default="fatal",
        help="a tactic with no recording ends the process (fatal) or gets Lean's error reply",
    )
    parser.add_argument(
        "--elaborate",
        action="store_true",
        help="elaborate unrecorded commands and tactics of core_logic.py's fragment",
    )
    args = parser.parse_args(argv)
    graph = json.loads(Path(args.graph or DEFAULT_GRAPH).read_text(encoding="utf-8"))
    try:
        repl = FakeRepl(graph, args.unrecorded_tactics, args.elaborate)
        with (
            open(sys.stdin.fileno(), encoding="utf-8", closefd=False) as stdin,
            open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False) as stdout,
        ):
            serve(repl, stdin, stdout, args.delay)
    except Fatal as err:
        sys.stderr.write(f"{err}\n")
        sys.stderr.flush()
        os._exit(err.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
