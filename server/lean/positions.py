"""The one place where positions in a document are converted.

Lean's language server counts `character` in UTF-16 code units (the LSP default), while
Python strings index code points, and Lean source is full of symbols outside ASCII
(`ℕ`, `⊢`, `∀` take one unit; an emoji such as `😀` takes two). Three forms appear here:

- an *offset*: a Python index into the document text (code points);
- a `TextPosition`: 0-based line and code-point column (what Python slicing of a line gives);
- an `LspPosition`: 0-based line and UTF-16 `character`, as sent over the wire.

Lines end at `\\n` only (a `\\r` before it stays part of the line). The unit counting is
pygls's `PositionCodec`; this module adds the line splitting and the range rules:

- an offset, line or column outside the document raises `PositionError`;
- an LSP `character` past the end of its line is clamped to the line end (the LSP
  specification says so); an LSP line past the last line raises `PositionError`;
- an LSP `character` that falls between the two halves of a surrogate pair moves to the
  end of that character, as Lean does.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition

_CODEC = PositionCodec(types.PositionEncodingKind.Utf16)


class PositionError(ValueError):
    """A position or offset that lies outside the document."""


class TextPosition(NamedTuple):
    """0-based line and code-point column."""

    line: int
    column: int


class LspPosition(NamedTuple):
    """0-based line and UTF-16 `character`, as LSP and Lean's server count them."""

    line: int
    character: int

    def to_json(self) -> dict[str, int]:
        return {"line": self.line, "character": self.character}

    @classmethod
    def from_json(cls, data: dict[str, int]) -> LspPosition:
        return cls(int(data["line"]), int(data["character"]))


def utf16_length(text: str) -> int:
    """The number of UTF-16 code units in `text`."""
    return _CODEC.client_num_units(text)


class DocumentPositions:
    """Converts between offsets, code-point positions and LSP positions for one text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.split("\n")
        starts = [0]
        for line in self.lines[:-1]:
            starts.append(starts[-1] + len(line) + 1)
        self._starts = starts

    def _check_line(self, line: int) -> str:
        if not 0 <= line < len(self.lines):
            raise PositionError(f"line {line} is outside the document (0..{len(self.lines) - 1})")
        return self.lines[line]

    def offset_to_text(self, offset: int) -> TextPosition:
        """The line and code-point column of a string offset (0..len(text))."""
        if not 0 <= offset <= len(self.text):
            raise PositionError(f"offset {offset} is outside the document (0..{len(self.text)})")
        line = bisect.bisect_right(self._starts, offset) - 1
        return TextPosition(line, offset - self._starts[line])

    def text_to_offset(self, position: TextPosition) -> int:
        """The string offset of a line and code-point column."""
        line_text = self._check_line(position.line)
        if not 0 <= position.column <= len(line_text):
            raise PositionError(
                f"column {position.column} is outside line {position.line} (0..{len(line_text)})"
            )
        return self._starts[position.line] + position.column

    def text_to_lsp(self, position: TextPosition) -> LspPosition:
        """Code-point column to UTF-16 `character` on the same line."""
        self.text_to_offset(position)
        converted = _CODEC.position_to_client_units(
            self.lines, ServerTextPosition(position.line, position.column)
        )
        return LspPosition(converted.line, converted.character)

    def lsp_to_text(self, position: LspPosition) -> TextPosition:
        """UTF-16 `character` to code-point column (clamped to the line end)."""
        line_text = self._check_line(position.line)
        if position.character < 0:
            raise PositionError(f"negative character {position.character} in {position}")
        character = min(position.character, utf16_length(line_text))
        converted = _CODEC.position_from_client_units(
            self.lines, types.Position(line=position.line, character=character)
        )
        return TextPosition(converted.line, converted.character)

    def offset_to_lsp(self, offset: int) -> LspPosition:
        """The LSP position of a string offset."""
        return self.text_to_lsp(self.offset_to_text(offset))

    def lsp_to_offset(self, position: LspPosition) -> int:
        """The string offset of an LSP position."""
        return self.text_to_offset(self.lsp_to_text(position))
