"""The tactic lexicon: the one list of Lean tactic names, and how a line's leading tactic is read.

Candidate clean-up (`candidates.clean_block`), the safety filter's allow-side
(`safety.allowed`), `segpilot eval` and constrained decoding all use this one list: a line
whose first word is not a lexicon tactic is not a tactic.

Provenance (names only; no documentation text is copied):

* ``CORE``: tactic syntax declared by Lean 4 itself, namespace ``Lean.Parser.Tactic``
  (``leanprover/lean4``, ``src/Init/Tactics.lean``, ``src/Init/Conv.lean``,
  ``src/Init/RCases.lean``, ``src/Init/Omega.lean`` and friends), as listed by Lean's own
  ``#help tactic`` command; the listing read here is the one recorded in
  ``klavins/LeanW26``, ``md/slider/dist/src/Appendix/Tactics.md`` (commit a491301, 2026-03),
  its ``a`` to ``c`` part completed from ``src/Init/Tactics.lean`` (commit 00165f8).
* ``BATTERIES``: the ``Batteries.Tactic`` entries of that same listing.
* ``MATHLIB``: the common Mathlib tactics (``Mathlib.Tactic.*`` entries of that listing, and
  the Mathlib tactic reference), chosen for how often they start a proof line.

Left out on purpose, although they parse as tactics: what admits a goal (``sorry``,
``admit``, ``stop``, ``apply?``), what trusts compiled code or runs code (``native_decide``,
``run_tac``, ``dbg_trace``), commands used as tactics (``set_option ... in``, ``open ... in``),
test-only and metaprogramming helpers (``sleep``, ``with_annotate_state``, ...), and the
``Std.Do`` ``m...`` program-logic tactics. The safety filter rejects the first groups anyway;
leaving them out keeps generation constrained to this list from ever proposing them.
"""

from __future__ import annotations

import re

CORE: frozenset[str] = frozenset(
    [
        "ac_nf",
        "ac_rfl",
        "all_goals",
        "and_intros",
        "any_goals",
        "apply",
        "apply_assumption",
        "apply_ext_theorem",
        "apply_mod_cast",
        "apply_rfl",
        "apply_rules",
        "assumption",
        "assumption_mod_cast",
        "bv_decide",
        "bv_normalize",
        "bv_omega",
        "by_cases",
        "calc",
        "case",
        "case'",
        "cases",
        "change",
        "checkpoint",
        "clear",
        "congr",
        "constructor",
        "contradiction",
        "conv",
        "conv'",
        "cutsat",
        "decide",
        "decreasing_tactic",
        "decreasing_trivial",
        "decreasing_with",
        "delta",
        "done",
        "dsimp",
        "dsimp!",
        "dsimp?",
        "dsimp?!",
        "eq_refl",
        "erw",
        "exact",
        "exact?",
        "exact_mod_cast",
        "exfalso",
        "exists",
        "expose_names",
        "ext",
        "ext1",
        "extract_lets",
        "fail",
        "fail_if_success",
        "false_or_by_contra",
        "fin_cases",
        "first",
        "focus",
        "fun_cases",
        "fun_induction",
        "funext",
        "generalize",
        "get_elem_tactic",
        "grind",
        "grind?",
        "guard_expr",
        "guard_hyp",
        "guard_target",
        "have",
        "have'",
        "haveI",
        "induction",
        "infer_instance",
        "inhabit",
        "injection",
        "injections",
        "intro",
        "intros",
        "iterate",
        "left",
        "let",
        "let'",
        "letI",
        "let_to_have",
        "lift_lets",
        "match",
        "next",
        "nofun",
        "nomatch",
        "norm_cast",
        "norm_cast0",
        "obtain",
        "omega",
        "push_cast",
        "rcases",
        "refine",
        "refine'",
        "refine_lift",
        "refine_lift'",
        "rename",
        "rename_i",
        "repeat",
        "repeat'",
        "repeat1'",
        "replace",
        "revert",
        "rewrite",
        "rfl",
        "rfl'",
        "right",
        "rintro",
        "rotate_left",
        "rotate_right",
        "rw",
        "rw?",
        "rw_mod_cast",
        "rwa",
        "show",
        "show_term",
        "simp",
        "simp!",
        "simp?",
        "simp?!",
        "simp_all",
        "simp_all!",
        "simp_all?",
        "simp_all?!",
        "simp_all_arith",
        "simp_all_arith!",
        "simp_arith",
        "simp_arith!",
        "simp_wf",
        "simpa",
        "simpa!",
        "simpa?",
        "simpa?!",
        "skip",
        "solve",
        "solve_by_elim",
        "specialize",
        "split",
        "subst",
        "subst_eqs",
        "subst_vars",
        "suffices",
        "symm",
        "symm_saturate",
        "trace",
        "trace_state",
        "trivial",
        "try",
        "try?",
        "unfold",
        "unhygienic",
        "with_reducible",
        "with_reducible_and_instances",
        "with_unfolding_all",
    ]
)

BATTERIES: frozenset[str] = frozenset(
    [
        "eapply",
        "exacts",
        "fapply",
        "generalize_proofs",
        "on_goal",
        "pick_goal",
        "rcongr",
        "split_ands",
        "squeeze_scope",
        "swap",
        "trans",
        "transitivity",
        "triv",
    ]
)

MATHLIB: frozenset[str] = frozenset(
    [
        "abel",
        "abel!",
        "abel1",
        "abel_nf",
        "absurd",
        "aesop",
        "aesop?",
        "apply_fun",
        "bound",
        "by_contra",
        "by_contra!",
        "by_contra'",
        "cancel_denoms",
        "cases'",
        "casesm",
        "cases_type",
        "choose",
        "clear_value",
        "compute_degree",
        "congr!",
        "congrm",
        "constructorm",
        "continuity",
        "contrapose",
        "contrapose!",
        "conv_lhs",
        "conv_rhs",
        "convert",
        "convert_to",
        "econstructor",
        "existsi",
        "extract_goal",
        "fconstructor",
        "field_simp",
        "filter_upwards",
        "fin_omega",
        "finiteness",
        "fun_prop",
        "gcongr",
        "generalize'",
        "group",
        "hint",
        "induction'",
        "interval_cases",
        "intro",
        "introv",
        "itauto",
        "lift",
        "linarith",
        "linarith!",
        "linear_combination",
        "measurability",
        "mod_cases",
        "module",
        "monicity",
        "mono",
        "nlinarith",
        "nlinarith!",
        "noncomm_ring",
        "nontriviality",
        "norm_num",
        "norm_num1",
        "nth_rewrite",
        "nth_rw",
        "observe",
        "order",
        "peel",
        "plausible",
        "polyrith",
        "positivity",
        "push_neg",
        "qify",
        "rcongr",
        "reduce",
        "rel",
        "rename'",
        "rify",
        "ring",
        "ring!",
        "ring1",
        "ring_nf",
        "ring_nf!",
        "rsuffices",
        "set",
        "set!",
        "simp_intro",
        "simp_rw",
        "specialize_all",
        "split_ifs",
        "subsingleton",
        "substs",
        "swap_var",
        "tauto",
        "tfae_finish",
        "tfae_have",
        "unfold_projs",
        "use",
        "use!",
        "whnf",
        "wlog",
        "zify",
        "classical",
        "exact_mod_cast",
    ]
)

# Conv-mode tactics of Lean core (`src/Init/Conv.lean`) that are not tactic-mode names too.
CONV: frozenset[str] = frozenset(["lhs", "rhs", "arg", "enter", "pattern", "zeta", "tactic"])

TACTICS: frozenset[str] = CORE | BATTERIES | MATHLIB | CONV

# A tactic name: letters, digits, `_`, `'`, and a trailing `!`/`?` (`simp?`, `by_contra!`).
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_']*[!?]*")
# Focusing headers whose body may follow on the same line: `case tag x =>`, `next h =>`.
_HEADER = re.compile(r"(case'?|next)(?=\s)[^\n]*?=>\s*")


def leading_tactic(line: str) -> str | None:
    """The lexicon tactic a line starts with, or None when its first word is not one.

    Indentation, focusing dots (`·`, `.`) and opening `(` / `{` are skipped; a
    `case tag =>` or `next =>` header with a body on the same line leads with the body's
    tactic (a header alone leads with `case` / `next`); a `t <;> u` chain leads with `t`.
    """
    rest = line.strip()
    while True:
        before = rest
        if rest[:1] in ("·", "(", "{") or rest[:2] == ". " or rest == ".":
            rest = rest[1:].lstrip()
        header = _HEADER.match(rest)
        if header and rest[header.end() :].strip():
            rest = rest[header.end() :]
        if rest == before:
            break
    word = _WORD.match(rest)
    if word is None:
        return None
    name = word.group(0)
    if name in TACTICS:
        return name
    # `rfl'`-style forms are listed; a `?` or `!` the list does not know is not accepted.
    return None


def is_tactic_line(line: str) -> bool:
    """Whether the line starts with a lexicon tactic (see `leading_tactic`)."""
    return leading_tactic(line) is not None


_OPEN = "([{⟨⦃"
_CLOSE = ")]}⟩⦄"
# A line that starts like this continues the tactic above: a match alternative, a `<;>`
# chain, a closing bracket, a `calc` step, a termination clause.
_CONTINUATION = re.compile(r"^(?:\||<;>|[)\]}⟩⦄]|_\s|termination_by\b|decreasing_by\b)")
# After a `where` line come auxiliary definitions, not tactics.
_WHERE = re.compile(r"^where\b")
# A previous line ending like this is unfinished: what follows is its term.
_UNFINISHED = re.compile(r"(?:,|:=|:|=|←|→|↔|∧|∨|\+|-|\*|/|<|>|≤|≥|≠|\$|<\||\|>|fun\s.*|λ.*)$")
# A previous line ending like this opens a nested tactic block.
_OPENS_BLOCK = re.compile(
    r"(?:\bby|=>|\bwith|\bthen|\belse|\bdo|·|<;>|\b(?:all_goals|any_goals|focus|try|repeat"
    r"|iterate\s+\d+|first|classical|on_goal\s+-?\d+))$"
)


def bracket_depth(text: str) -> int:
    """Opening minus closing brackets (round, square, curly, angle): 0 when balanced."""
    return sum(text.count(c) for c in _OPEN) - sum(text.count(c) for c in _CLOSE)


def brackets_balance(text: str) -> bool:
    """Whether every bracket closes, in order, with its own kind."""
    stack: list[str] = []
    for ch in text:
        if ch in _OPEN:
            stack.append(_CLOSE[_OPEN.index(ch)])
        elif ch in _CLOSE and (not stack or stack.pop() != ch):
            return False
    return not stack


def tactic_starts(block: str) -> list[int]:
    """The indices of the block's lines that must start a tactic: not a continuation of the
    line above (inside open brackets, after an unfinished line, an alternative `| ...`,
    a `calc` step `_ = ...`, or indented under a term), blank lines skipped; nothing after a
    `where` line (auxiliary definitions follow)."""
    starts: list[int] = []
    depth = 0
    previous = ""
    previous_indent = 0
    for number, line in enumerate(block.split("\n")):
        stripped = line.strip()
        if not stripped:
            continue
        if _WHERE.match(stripped):
            break
        indent = len(line) - len(line.lstrip())
        continued = (
            depth > 0
            or _CONTINUATION.match(stripped) is not None
            or (previous and _UNFINISHED.search(previous) is not None)
            or (previous and indent > previous_indent and not _OPENS_BLOCK.search(previous))
        )
        if not continued:
            starts.append(number)
        depth = max(0, depth + bracket_depth(stripped))
        previous = stripped
        previous_indent = indent
    return starts


def first_non_tactic(block: str) -> int | None:
    """The index of the first line that should start a tactic but does not lead with a
    lexicon tactic, or None when every tactic line does."""
    lines = block.split("\n")
    for number in tactic_starts(block):
        if not is_tactic_line(lines[number]):
            return number
    return None


def well_formed(block: str) -> bool:
    """A non-empty block whose every tactic line leads with a lexicon tactic and whose
    brackets balance (the `segpilot eval` measure)."""
    return bool(block.strip()) and first_non_tactic(block) is None and brackets_balance(block)
