"""Positions between Python strings and LSP's UTF-16 columns, with Lean's symbols."""

from __future__ import annotations

import pytest

from segpilot.lean.positions import (
    DocumentPositions,
    LspPosition,
    PositionError,
    TextPosition,
    utf16_length,
)

LINE = "∀ n : ℕ, 😀 ⊢ n = n"
PROOF = "theorem foo (n : ℕ) : n = n := by\n  -- 😀 done\n  rfl\n"


@pytest.mark.parametrize(
    ("text", "needle", "expected"),
    [
        (LINE, "ℕ", LspPosition(0, 6)),  # BMP symbols take one unit each
        (LINE, "😀", LspPosition(0, 9)),
        (LINE, "⊢", LspPosition(0, 12)),  # the emoji before it took two units
        (LINE, "n = n", LspPosition(0, 14)),
        (PROOF, "done", LspPosition(1, 8)),
        (PROOF, "rfl", LspPosition(2, 2)),
    ],
)
def test_offset_maps_to_utf16_character(text: str, needle: str, expected: LspPosition) -> None:
    positions = DocumentPositions(text)
    offset = text.index(needle)
    assert positions.offset_to_lsp(offset) == expected
    assert positions.lsp_to_offset(expected) == offset


def test_every_offset_round_trips_and_agrees_with_utf16_encoding() -> None:
    text = PROOF + LINE + "\n\n😀😀ℕ"
    positions = DocumentPositions(text)
    for offset in range(len(text) + 1):
        lsp = positions.offset_to_lsp(offset)
        line_start = text.rfind("\n", 0, offset) + 1
        units = len(text[line_start:offset].encode("utf-16-le")) // 2
        assert lsp == LspPosition(text.count("\n", 0, offset), units)
        assert positions.lsp_to_offset(lsp) == offset


def test_text_position_uses_code_point_columns() -> None:
    positions = DocumentPositions(LINE)
    assert positions.text_to_lsp(TextPosition(0, 11)) == LspPosition(0, 12)
    assert positions.lsp_to_text(LspPosition(0, 12)) == TextPosition(0, 11)
    assert positions.offset_to_text(LINE.index("⊢")) == TextPosition(0, 11)
    assert positions.text_to_offset(TextPosition(0, 11)) == LINE.index("⊢")


def test_character_inside_surrogate_pair_moves_past_the_emoji() -> None:
    positions = DocumentPositions(LINE)
    # 😀 occupies units 9 and 10; unit 10 is its second half.
    assert positions.lsp_to_text(LspPosition(0, 10)) == TextPosition(0, 10)


def test_character_past_line_end_clamps_to_that_line() -> None:
    positions = DocumentPositions(PROOF)
    assert positions.lsp_to_text(LspPosition(1, 500)) == TextPosition(1, len("  -- 😀 done"))
    assert positions.lsp_to_offset(LspPosition(1, 500)) == PROOF.index("\n  rfl")


def test_end_of_document_after_final_newline_is_an_empty_line() -> None:
    positions = DocumentPositions(PROOF)
    assert positions.offset_to_lsp(len(PROOF)) == LspPosition(3, 0)


def test_carriage_return_stays_on_its_line() -> None:
    positions = DocumentPositions("a ℕ\r\nb")
    assert positions.offset_to_lsp(4) == LspPosition(0, 4)
    assert positions.offset_to_lsp(5) == LspPosition(1, 0)


@pytest.mark.parametrize(
    "convert",
    [
        lambda p: p.offset_to_lsp(-1),
        lambda p: p.offset_to_lsp(len(PROOF) + 1),
        lambda p: p.lsp_to_text(LspPosition(4, 0)),
        lambda p: p.lsp_to_text(LspPosition(-1, 0)),
        lambda p: p.lsp_to_text(LspPosition(0, -1)),
        lambda p: p.text_to_lsp(TextPosition(1, 13)),
        lambda p: p.text_to_offset(TextPosition(9, 0)),
    ],
    ids=[
        "negative-offset",
        "offset-past-end",
        "line-past-end",
        "negative-line",
        "negative-character",
        "column-past-line-end",
        "text-line-past-end",
    ],
)
def test_positions_outside_the_document_raise(convert) -> None:
    with pytest.raises(PositionError, match=r"outside|negative"):
        convert(DocumentPositions(PROOF))


def test_utf16_length_counts_astral_characters_twice() -> None:
    assert utf16_length("😀ℕ⊢∀") == 5
    assert utf16_length("") == 0


def test_lsp_position_json_round_trip() -> None:
    position = LspPosition(3, 7)
    assert position.to_json() == {"line": 3, "character": 7}
    assert LspPosition.from_json(position.to_json()) == position
