"""Where a cursor sits in Lean source: the declaration around it and its tactic proof.

Read from the text alone (no Lean needed): the sidecar uses it to decide fast whether a
position is inside a tactic proof, to cut the file into the parts the REPL elaborates (the
text above the declaration, the declaration up to the cursor), and, when no Lean answers,
to approximate the goal from the statement: the binders become hypotheses and the type
the target, i.e. the goal at the start of the proof whatever tactics come before.
Comments and string literals are blanked first (`lexer.code_only`), so words inside them
never count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from segpilot.errors import SegpilotError
from segpilot.lean.goals import Goal, Hypothesis
from segpilot.lean.lexer import LexError, code_only

_DECL_START = re.compile(
    r"^(?:@\[[^\]]*\]\s*)?(?:(?:private|protected|noncomputable|nonrec)\s+)*"
    r"(theorem|lemma|example|def|instance)\b"
)
_OPEN, _CLOSE = "([{⦃⟨", ")]}⦄⟩"
# What may stand before the typed text on the cursor's line: indentation, focusing dots,
# `case tag =>` and `next =>` (the goal there is the focused one), or the `by` that opens
# the proof.
_LEAD = re.compile(r"^(?:.*:=\s*by\b\s*|\s*(?:(?:[·.]|(?:case|next)\b[^\n]*?=>)\s+)*)")
_SORRY = re.compile(r"(?<![\w'.])sorry(?![\w'!?])")


class NotInProof(SegpilotError):
    """The position is not inside a tactic proof (the reason says why)."""


@dataclass(frozen=True)
class ProofSite:
    """A cursor inside a tactic proof, cut the ways callers need.

    `header + body + typed` is the file text up to the cursor; `body` ends with the
    cursor line's indentation (or right after `by `), so `body + "sorry"` is the
    declaration with a hole where the next tactic goes."""

    header: str
    """The text above the declaration (imports, `open`s, earlier declarations)."""
    body: str
    """The declaration from its first character up to where the typed text starts."""
    typed: str
    """What is typed on the cursor's line before the cursor, after indentation and dots."""
    line: int
    """The cursor's line (0-based)."""
    column: int
    """The column (characters) where `typed` starts: where a suggestion is inserted."""
    theorem: str
    """The declaration's statement through `:= by`, on one line."""
    name: str
    """The declaration's name ("" for `example`)."""
    proof_before: str
    """The tactics between `by` and the typed text, one per line, comments gone."""
    statement_goal: str
    """The goal read from the statement (binders as hypotheses): exact at the proof's
    start, an approximation after tactics."""


def proof_site(text: str, line: int, column: int) -> ProofSite:
    """The proof site at `line`:`column` (0-based; the column counts characters), or
    `NotInProof` saying why there is none."""
    lines = text.split("\n")
    if not 0 <= line < len(lines):
        raise NotInProof(f"line {line + 1} is outside the file (1-{len(lines)})")
    column = min(column, len(lines[line]))
    try:
        code = code_only(text[: line_offset(lines, line, column)])
    except LexError:
        raise NotInProof(f"line {line + 1} is inside a comment or a string") from None
    code_lines = code.split("\n")
    start = next((i for i in range(line, -1, -1) if _DECL_START.match(code_lines[i])), None)
    if start is None:
        raise NotInProof(f"no theorem, lemma or example encloses line {line + 1}")
    ended = any(s[:1].strip() for s in code_lines[start + 1 : line])
    if ended or (line > start and column == 0):
        raise NotInProof(f"line {line + 1} is after the end of the declaration")
    decl_at = line_offset(lines, start, 0)
    declaration = code[decl_at:]
    proof_at = _proof_start(declaration)
    if proof_at is None:
        raise NotInProof(
            f"line {line + 1}:{column} is not inside a tactic proof (no `:= by` before it)"
        )
    cursor_line = code_lines[line]
    lead = _LEAD.match(cursor_line)
    typed_at = max(lead.end() if lead else 0, proof_at - (len(code) - len(cursor_line) - decl_at))
    typed_at = min(typed_at, len(cursor_line))
    body_end = len(code) - len(cursor_line) + typed_at
    keyword = _DECL_START.match(declaration)
    assert keyword is not None
    statement = declaration[:proof_at]
    rest = statement[keyword.end() :]
    name = ""
    named = re.match(r"\s*([^\s(\[{⦃:]+)", rest)
    if keyword.group(1) != "example" and named:
        name, rest = named.group(1), rest[named.end() :]
    hypotheses, target = _split_signature(rest[: rest.rfind(":=")])
    before = code[decl_at + proof_at : body_end]
    return ProofSite(
        header=text[:decl_at],
        body=text[decl_at:body_end],
        typed=text[body_end : len(code)].rstrip(),
        line=line,
        column=typed_at,
        theorem=" ".join(statement.split()),
        name=name,
        proof_before="\n".join(x.strip() for x in before.split("\n") if x.strip()),
        statement_goal=Goal(target, hypotheses).pretty(),
    )


def sorries(text: str) -> list[tuple[int, int]]:
    """(line, column) of every `sorry` in the code (not in comments or strings), 0-based."""
    try:
        code = code_only(text)
    except LexError:
        return []
    found: list[tuple[int, int]] = []
    for number, content in enumerate(code.split("\n")):
        found.extend((number, m.start()) for m in _SORRY.finditer(content))
    return found


def line_offset(lines: list[str], line: int, column: int) -> int:
    """The offset in the text of `lines` (split at newlines) of a 0-based line and column."""
    return sum(len(x) + 1 for x in lines[:line]) + column


def _proof_start(text: str) -> int | None:
    """The index just after the `:= by` that starts the proof (outside any brackets, so a
    binder's default value `(h : p := by simp)` does not count)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0 and text.startswith(":=", i):
            found = re.match(r":=\s*by\b", text[i:])
            if found:
                return i + found.end()
    return None


def _split_signature(signature: str) -> tuple[tuple[Hypothesis, ...], str]:
    """Binders and type of `(x : A) {y : B} [C] : T` -> hypotheses and target."""
    hypotheses = []
    i, n = 0, len(signature)
    while True:
        while i < n and signature[i].isspace():
            i += 1
        if i >= n or signature[i] not in _OPEN:
            break
        depth, j = 0, i
        while j < n:
            if signature[j] in _OPEN:
                depth += 1
            elif signature[j] in _CLOSE:
                depth -= 1
                if depth == 0:
                    break
            j += 1
        inner = " ".join(signature[i + 1 : j].split())
        names, sep, type_ = _top_level_partition(inner, " : ")
        if sep:
            type_ = _top_level_partition(type_, " := ")[0]
            hypotheses.append(Hypothesis(tuple(names.split()), type_))
        else:
            hypotheses.append(Hypothesis(("inst✝",), inner))
        i = j + 1
    rest = signature[i:].strip()
    if not rest.startswith(":"):
        raise NotInProof("cannot read the statement's type (expected `: type := by`)")
    return tuple(hypotheses), " ".join(rest[1:].split())


def _top_level_partition(text: str, sep: str) -> tuple[str, str, str]:
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0 and text.startswith(sep, i):
            return text[:i], sep, text[i + len(sep) :]
    return text, "", ""


def declaration_span(text: str, line: int) -> tuple[int, int]:
    """(start, end) offsets of the command holding `line`: from the last line at or above
    it whose code begins at column 0, to the next such line below it (or the text's end)."""
    try:
        code = code_only(text)
    except LexError:
        return 0, len(text)
    lines = code.split("\n")
    line = max(0, min(line, len(lines) - 1))
    first = next((i for i in range(line, -1, -1) if lines[i][:1].strip()), 0)
    last = next((i for i in range(line + 1, len(lines)) if lines[i][:1].strip()), None)
    start = sum(len(x) + 1 for x in lines[:first])
    end = len(text) if last is None else sum(len(x) + 1 for x in lines[:last])
    return start, end


# The header commands Lean accepts before the first other command (Lean's module system
# adds `module` and the `public`/`meta` modifiers of `import`).
_HEADER_LINE = re.compile(r"^(?:module|prelude|(?:(?:public|private|meta)\s+)*import\s+\S.*)$")


def split_imports(header: str) -> tuple[str, str]:
    """(import block, rest): the leading `import` lines (with the comments and blank lines
    among them) and everything after them. `import` may only start a file, so the REPL
    runs the first part without an environment and the rest in the environment it gives."""
    try:
        code = code_only(header)
    except LexError:
        return "", header
    end = 0
    offset = 0
    for line in code.splitlines(keepends=True):
        stripped = line.strip()
        if stripped and not _HEADER_LINE.match(stripped):
            break
        offset += len(line)
        if stripped:
            end = offset
    return header[:end], header[end:]
