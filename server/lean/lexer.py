"""Where Lean source text has comments and string literals, so that words inside them can be
told apart from code.

Lean's rules followed here: `--` comments run to the end of the line; `/- ... -/` comments nest;
string literals take backslash escapes and may span lines; raw strings `r"..."` / `r#"..."#`
take none; a quote right after an identifier is part of the name (`h'`), otherwise `'x'` is a
character literal. Text inside `{...}` of a string is treated as code, since interpolated
strings (`s!"{e}"`) evaluate it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_CHAR_LITERAL = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^'\\\n])'")
_RAW_STRING = re.compile(r'r(#*)"')


class LexError(ValueError):
    """The text ends inside a comment or a literal."""


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_'!?"


def scan(text: str) -> Iterator[tuple[str, int, int]]:
    """Split `text` into consecutive (kind, start, end) spans; kind is code, comment or string."""
    i, code_start, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        prev = text[i - 1] if i else ""
        end = None
        if text.startswith("--", i):
            newline = text.find("\n", i)
            end, kind = (n if newline < 0 else newline), "comment"
        elif text.startswith("/-", i):
            end, kind = _block_comment_end(text, i), "comment"
        elif ch == '"':
            end, kind = _string_end(text, i), "string"
        elif ch == "r" and not _is_ident_char(prev) and (raw := _RAW_STRING.match(text, i)):
            closing = '"' + raw.group(1)
            close_at = text.find(closing, raw.end())
            if close_at < 0:
                raise LexError("unterminated raw string literal")
            end, kind = close_at + len(closing), "string"
        elif ch == "'" and not _is_ident_char(prev) and (char := _CHAR_LITERAL.match(text, i)):
            end, kind = char.end(), "string"
        if end is None:
            i += 1
            continue
        if code_start < i:
            yield "code", code_start, i
        if kind == "string":
            yield from _string_spans(text, i, end)
        else:
            yield kind, i, end
        i = code_start = end
    if code_start < n:
        yield "code", code_start, n


def _block_comment_end(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("/-", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("-/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    raise LexError("unterminated block comment")


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    raise LexError("unterminated string literal")


def _string_spans(text: str, start: int, end: int) -> Iterator[tuple[str, int, int]]:
    """A literal's spans: the `{...}` parts (interpolated code) come out as code."""
    i, piece = start, start
    while i < end:
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < end - 1 and depth:
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            close = j - 1 if depth == 0 else end - 1  # the closing brace, or the closing quote
            yield "string", piece, i + 1
            yield "code", i + 1, close
            piece = i = close
            continue
        i += 1
    if piece < end:
        yield "string", piece, end


def code_only(text: str) -> str:
    """`text` with comments and string contents blanked out (newlines kept, so line numbers
    stay); raises LexError when a comment or literal is never closed."""
    out = []
    for kind, start, end in scan(text):
        piece = text[start:end]
        out.append(piece if kind == "code" else re.sub(r"[^\n]", " ", piece))
    return "".join(out)


def strip_comments(text: str) -> str:
    """`text` without its comments (a comment spanning lines leaves its line breaks)."""
    out = []
    for kind, start, end in scan(text):
        piece = text[start:end]
        if kind == "comment":
            piece = "\n" * piece.count("\n") or " "
        out.append(piece)
    return "".join(out)
