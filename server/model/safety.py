"""The safety filter: model output must not run code or change Lean's environment.

Every candidate passes here before Lean sees it. The check works on what Lean would read:
comments and string contents are blanked first (words inside them do nothing; the `{...}` of
a string is kept, since interpolation evaluates it), then the text is normalised (NFKC, common
look-alike letters mapped to Latin, `«»` name quotes dropped) so disguised words still match,
and every line is searched. Invisible or control characters, and comments or literals left
open, are rejected outright.

A block that admits a goal is rejected too (`uses_sorry` set): it can never be a suggestion,
since Lean accepts it without proving anything. That covers `sorry` as a tactic or a term,
`admit`, `stop` (it admits the rest of the proof), `sorryAx` (the axiom `sorry` elaborates
to, qualified or not: `_root_.sorryAx`), and `apply?` (which admits the goal when no lemma
closes it). The words match as whole names only: not inside another name (`sorry_lemma`,
`my_admit`, `admit'`), nor as a field (`h.sorry` is a projection, not the keyword), nor in a
comment or a string. A quoted name such as `«sorry»` counts (the quotes are dropped first).

The allow-side (`allowed`): every line that starts a tactic must lead with a tactic of the
lexicon (`segpilot.model.lexicon.TACTICS`, the same list the clean-up and `segpilot eval`
use); an unknown leading word is not a tactic. It runs after the deny-side, so a block that is
both unsafe and unknown gets the unsafe reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from segpilot.lean.lexer import LexError, code_only
from segpilot.model.lexicon import first_non_tactic

# Cyrillic, Greek and other letters that render like Latin ones (Unicode confusables).
_CONFUSABLES = str.maketrans(
    {
        **dict(zip("аеорсухіјѕԁһӏԛԝьт", "aeopcyxijsdhlqwbt", strict=True)),
        **dict(zip("АВЕКМНОРСТХІЅЈУ", "ABEKMHOPCTXISJY", strict=True)),
        **dict(zip("αεηικνορτυχ", "aenikvoptux", strict=True)),
        **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
        **dict(zip("ıɑɡօսᴏ", "iagouo", strict=True)),
        "«": "",
        "»": "",
    }
)
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}

_B = r"(?<![\w'!?.])"  # not inside a name, and not a field (`h.open`)
_E = r"(?![\w'!?])"


def _words(*words: str) -> str:
    return _B + "(?:" + "|".join(re.escape(w) for w in words) + ")" + _E


_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (
            r"#\s*(?!v\[)[A-Za-z_][\w!]*",
            "a `#` command (#eval, #exit, ...) runs code or ends the file",
        ),
        (
            _words(
                "run_tac",
                "run_cmd",
                "run_elab",
                "run_meta",
                "by_elab",
                "elab",
                "elab_rules",
                "macro",
                "macro_rules",
                "syntax",
                "declare_syntax_cat",
                "notation",
                "infix",
                "infixl",
                "infixr",
                "prefix",
                "postfix",
                "initialize",
                "builtin_initialize",
                "simproc",
                "dsimproc",
            ),
            "defines or runs a metaprogram",
        ),
        (r"`\(", "a syntax quotation is a metaprogram"),
        (r"@\[", "an attribute can attach compiled code (implemented_by, extern, init)"),
        (_words("implemented_by", "extern"), "attaches compiled code to a declaration"),
        (
            _words(
                "set_option",
                "import",
                "open",
                "export",
                "attribute",
                "local",
                "scoped",
                "instance",
                "namespace",
                "section",
                "end",
                "universe",
                "variable",
                "omit",
                "include",
                "mutual",
                "axiom",
                "theorem",
                "lemma",
                "def",
                "example",
                "abbrev",
                "opaque",
                "structure",
                "class",
                "inductive",
                "noncomputable",
                "private",
                "protected",
                "partial",
                "deriving",
                "add_decl_doc",
                "meta",
            ),
            "is a command: it changes the environment or Lean's options",
        ),
        (r"(?i)unsafe", "unsafe code"),
        (r"(?<![\w'!?])(?:IO|EIO|BaseIO)" + _E, "runs IO actions"),
        (r"(?<![\w'!?])dbg(?:_trace|Trace|Sleep)\w*", "debug tracing runs code"),
        (
            r"(?<![\w'!?])(?:native_decide|native|ofReduceBool|ofReduceNat|reduceBool|reduceNat"
            r"|trustCompiler)" + _E,
            "trusts compiled code instead of the kernel",
        ),
    )
)
_SORRY = re.compile(
    _words("sorry", "admit", "stop") + r"|(?<![\w'!?])sorryAx" + _E + r"|" + _B + r"apply\?"
)


SORRY_REASON = "admits the goal instead of proving it: never a proof"
NOT_A_TACTIC_REASON = "is not a tactic of the lexicon"


@dataclass(frozen=True)
class Verdict:
    """The filter's answer: `ok`, or the first reason found; `uses_sorry` when the block
    admits goals (`sorry`, `admit`, ...), which always rejects it: it is never a proof."""

    ok: bool
    reason: str | None = None
    uses_sorry: bool = False


def normalize(text: str) -> str:
    """Fold look-alikes to plain Latin so disguised words match (for matching only)."""
    return unicodedata.normalize("NFKC", text).translate(_CONFUSABLES)


def allowed(block: str) -> Verdict:
    """The allow-side alone: every tactic line of the block (comments and strings blanked)
    leads with a lexicon tactic; the reason names the first line that does not."""
    try:
        code = code_only(block)
    except LexError as err:
        return Verdict(False, f"{err}: it would swallow what follows")
    number = first_non_tactic(code)
    if number is None:
        return Verdict(True)
    line = code.split("\n")[number].strip()
    word = line.split()[0] if line.split() else line
    return Verdict(False, f"line {number + 1}: {word!r} {NOT_A_TACTIC_REASON}")


def check(block: str, *, lexicon: bool = True) -> Verdict:
    """Check one tactic block; the reason names the line and the offending text. With
    `lexicon` (the default) the allow-side runs too (see `allowed`); without it, only what
    runs code, changes the environment or admits a goal is rejected."""
    for ch in block:
        if ch not in "\n\t" and unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
            return Verdict(False, f"invisible or control character U+{ord(ch):04X}")
    try:
        code = normalize(code_only(block))
    except LexError as err:
        return Verdict(False, f"{err}: it would swallow what follows")
    lines = code.split("\n")
    uses_sorry = _SORRY.search(code) is not None
    for number, line in enumerate(lines, 1):
        for pattern, reason in _RULES:
            found = pattern.search(line)
            if found:
                return Verdict(
                    False, f"line {number}: {found.group(0).strip()!r} {reason}", uses_sorry
                )
    for number, line in enumerate(lines, 1):
        found = _SORRY.search(line)
        if found:
            return Verdict(False, f"line {number}: {found.group(0)!r} {SORRY_REASON}", True)
    if lexicon:
        return allowed(block)
    return Verdict(True)
