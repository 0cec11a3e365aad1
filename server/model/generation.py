"""What goes into one generation call and what comes out.

In: a prompt. A `PromptText` (what `Preset.build_prompt` returns) is a str that also knows
which of its pieces are the preset's own template text and which came from the user (a goal
state, a theorem, a name, the proof so far): the backend parses special-token texts such as
`<|im_end|>` in the template pieces only, so user text can never close a turn or open a new
one. A plain str counts as template text throughout (it is trusted as written).

Out: k samples and what they cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from segpilot.errors import SegpilotError


class PromptPart(NamedTuple):
    """One piece of a prompt: `template` pieces are the preset's text (special-token texts in
    them are special tokens), the others are user text (always read literally)."""

    text: str
    template: bool


class PromptText(str):
    """A prompt that is the str it spells (it compares, hashes and prints as that str) and
    remembers its `parts`. String operations on it return plain str, which forget the parts:
    build a new `PromptText` instead of editing one."""

    parts: tuple[PromptPart, ...]

    def __new__(cls, parts: Iterable[tuple[str, bool]]) -> PromptText:
        kept = tuple(PromptPart(text, bool(template)) for text, template in parts if text)
        self = super().__new__(cls, "".join(p.text for p in kept))
        self.parts = kept
        return self

    def __getnewargs__(self) -> tuple[tuple[PromptPart, ...]]:  # type: ignore[override]  # copy and pickle rebuild from the parts
        return (self.parts,)

    def __repr__(self) -> str:
        return f"PromptText({list(self.parts)!r})"


def prompt_parts(prompt: str) -> tuple[PromptPart, ...]:
    """The pieces of `prompt`: its own for a `PromptText`, one template piece for a str."""
    if isinstance(prompt, PromptText):
        return prompt.parts
    return (PromptPart(prompt, True),) if prompt else ()


def encode_utf8(text: str, what: str) -> bytes:
    """`text` as UTF-8; a clear one-line `SegpilotError` naming `what` when it cannot be (a
    str holding lone surrogates, as a non-UTF-8 command-line argument or file name decodes
    to with surrogateescape)."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as err:
        code = ord(text[err.start])
        found = (
            f"the undecodable byte 0x{code - 0xDC00:02x}"
            if 0xDC80 <= code <= 0xDCFF
            else f"a lone surrogate U+{code:04X}"
        )
        line = text.count("\n", 0, err.start) + 1
        column = err.start - (text.rfind("\n", 0, err.start) + 1) + 1
        what = " ".join(what.split())
        raise SegpilotError(
            f"{what} is not valid UTF-8 text: it holds {found} at line {line}, column {column}",
            fix="give it as UTF-8",
        ) from None


@dataclass(frozen=True)
class Sample:
    """One generated continuation: its text (cut before any stop string), tokens, score
    (summed log-probability) and why it ended: eos, stop, length, budget or cancelled."""

    text: str
    n_tokens: int
    logprob: float
    finish: str


@dataclass(frozen=True)
class Generation:
    """The k samples of one call and what it cost: prompt and decode time, the CPU threads
    it ran on, and each decode step's batch size and time."""

    samples: tuple[Sample, ...]
    n_prompt_tokens: int
    n_prompt_reused: int
    prompt_s: float
    decode_s: float
    n_threads: int = 0
    steps: tuple[tuple[int, float], ...] = ()  # (live sequences, seconds) per llama_decode

    @property
    def n_generated(self) -> int:
        return sum(s.n_tokens for s in self.samples)


# -- tactic-shaped decoding ------------------------------------------------------------------

# Longest run of spaces a line may start with under the grammar (bounded, so a model cannot
# spend its whole budget on indentation).
_MAX_INDENT = 16


def _gbnf_literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def tactic_grammar(tactics: Iterable[str]) -> str:
    """A GBNF grammar for tactic blocks whose every non-blank line leads with one of `tactics`
    as `lexicon.leading_tactic` reads a line: indentation, focusing dots (`·`, `. `) and an
    opening `(` / `{` may come first; the name ends at a character that cannot extend it (so
    `intro` does not admit `introduction`, nor `rw` admit `rw!`); a `case tag =>` / `next =>`
    header is followed by nothing or by such a line. Blank lines may come between and after
    lines (a `\\n\\n` stop string still ends a segment). The rest of a line is free text.
    """
    names = sorted(set(tactics) - {"case", "case'", "next"})
    if not names:
        raise SegpilotError("the tactic grammar needs at least one tactic name")
    headers = sorted({"case", "case'", "next"} & set(tactics))
    rules = [
        "root ::= nl* line (nl+ line)* nl*",
        'nl ::= "\\n"',
        f"line ::= [ ]{{0,{_MAX_INDENT}}} ({'header | ' if headers else ''}body)",
        "body ::= lead* tactic after",
        'lead ::= ("·" | "(" | "{" | ". ") [ \\t]*',
        "tactic ::= " + " | ".join(_gbnf_literal(n) for n in names),
        # The rest of the line starts with a character that no name continues with.
        "after ::= ([^\\nA-Za-z0-9_'!?] [^\\n]*)?",
    ]
    if headers:
        alternatives = " | ".join(_gbnf_literal(h) for h in headers)
        rules.append(f'header ::= ({alternatives}) ([ \\t] [^\\n=]*)? ("=>" [ \\t]* body?)?')
    return "\n".join(rules) + "\n"


def cut_at_specials(text: str, specials: Iterable[tuple[str, int]]) -> list[str | int]:
    """`text` with each special-token text replaced by its id, in the order `specials` gives
    (longest first, as llama.cpp matches them), the literal runs between them kept as text."""
    pieces: list[str | int] = [text]
    for special, token in specials:
        if special not in text:
            continue
        cut: list[str | int] = []
        for piece in pieces:
            if isinstance(piece, int):
                cut.append(piece)
                continue
            first, *rest = piece.split(special)
            cut.append(first)
            for after in rest:
                cut += [token, after]
        pieces = cut
    return [piece for piece in pieces if piece != ""]
