"""Candidate clean-up: from a model's text to a tidy tactic block, and the Candidate record.

A block is stored flush left (its first tactic at column 0, nested lines keeping their relative
indentation); `insert_text` re-indents it for the column where it goes. Clean-up drops comments
and blank lines, and cuts the block at the first top-level line that is not a tactic: one whose
first word is not in the tactic lexicon (`segpilot.model.lexicon`): prose, a Markdown fence or
heading, a special token, an echoed `⊢` goal, an unknown word, or a new declaration (the proof
is over). Commands that would change the environment, and `sorry`, are not cut here: they
reach the safety filter and reject the whole candidate, with the reason kept.
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

from segpilot.lean.lexer import LexError, strip_comments
from segpilot.model import safety
from segpilot.model.lexicon import is_tactic_line, tactic_starts

_NOT_A_TACTIC = re.compile(
    r"""^(?:
        ```                                   # a Markdown fence
      | <\||</?[A-Za-z]+>                     # a special token: <|im_end|>, </think>
      | \#{1,6}\s | [-*+]\s | \d+[.)]\s | >\s  # Markdown heading, list item, quote
      | [A-Z][A-Za-z']*(?=[\s,:;!?]|$)        # prose: a capitalised word (tactics are lower case)
      | [a-z].*\s.*\s.*[a-z)]\.$              # prose: three or more words ending in a period
      | ⊢                                     # an echoed goal
      | (?:theorem|lemma|example|def|abbrev|instance|structure|inductive|class
          |namespace|section|end|begin)\b     # a new declaration: the proof is over
    )""",
    re.VERBOSE,
)
# Lines at the block's base column that continue the tactic above instead of starting one.
_CONTINUATION = re.compile(r"^(?:\||<;>|[)\]}⟩])")


SORRY_REJECTED = "uses sorry or admit: never a proof"


@dataclass(frozen=True)
class Candidate:
    """One proposed tactic block: its text (flush left), its top-level tactics, its score
    (summed token log-probability), and why it was rejected, if it was.

    A candidate that `uses_sorry` is always rejected: made without a reason, it gets
    `SORRY_REJECTED` as its reason (the safety filter gives a more precise one)."""

    text: str
    tactics: tuple[str, ...]
    logprob: float
    n_tokens: int = 0
    rejected_reason: str | None = None
    uses_sorry: bool = False

    def __post_init__(self) -> None:
        if self.uses_sorry and self.rejected_reason is None:
            object.__setattr__(self, "rejected_reason", SORRY_REJECTED)

    @property
    def accepted(self) -> bool:
        return self.rejected_reason is None

    def insert_text(self, column: int) -> str:
        """The block ready to insert at `column`: the first line goes at the cursor, the
        following lines are indented to that column."""
        return indent_block(self.text, column)


def indent_block(block: str, column: int) -> str:
    pad = " " * column
    first, *rest = block.split("\n")
    return "\n".join([first, *(pad + line if line else line for line in rest)])


def clean_block(text: str, *, truncated: bool = False) -> str:
    """Normalise a raw block: comments, blank lines and trailing spaces out, tabs to spaces,
    flush left, cut at the first top-level line that does not lead with a lexicon tactic
    (unless the safety filter rejects that line: it stays, so the filter rejects the whole
    block with its reason). With `truncated` (generation hit
    its token or time limit) an unfinished last line is dropped. Returns "" when nothing is
    left. A comment left open is kept as it is, for the safety filter to reject."""
    with contextlib.suppress(LexError):
        text = strip_comments(text)
    raw_lines = text.expandtabs(2).split("\n")
    if truncated and raw_lines and raw_lines[-1].strip():
        raw_lines = raw_lines[:-1]
    lines = textwrap.dedent("\n".join(line.rstrip() for line in raw_lines if line.strip()))
    kept: list[str] = []
    starts = set(tactic_starts(lines))
    for number, line in enumerate(lines.split("\n") if lines else []):
        at_base = not line[:1].isspace()
        if at_base and _NOT_A_TACTIC.match(line):
            break
        if (
            at_base
            and number in starts
            and not is_tactic_line(line)
            and safety.check(line, lexicon=False).ok
        ):
            break
        kept.append(line)
    return textwrap.dedent("\n".join(kept))


def split_tactics(block: str) -> list[str]:
    """The top-level tactics of a flush-left block, each with its nested lines."""
    tactics: list[str] = []
    for line in block.split("\n"):
        if not line.strip():
            continue
        if tactics and (line[:1].isspace() or _CONTINUATION.match(line)):
            tactics[-1] += "\n" + line
        else:
            tactics.append(line)
    return tactics


def dedup_key(block: str) -> str:
    """Blocks that differ only in spacing inside a line are the same candidate."""
    return "\n".join(
        line[: len(line) - len(line.lstrip())] + " ".join(line.split())
        for line in block.split("\n")
    )


def rank(candidates: Iterable[Candidate], *, per_token: bool = True) -> list[Candidate]:
    """Drop duplicates (keeping the better score) and order: accepted before rejected (those
    using sorry among them), then by score: the mean log-probability per token, or with
    `per_token` off the total, which favours short candidates (every token costs)."""
    best: dict[str, Candidate] = {}
    for c in candidates:
        key = dedup_key(c.text)
        if key not in best or c.logprob > best[key].logprob:
            best[key] = c

    def score(c: Candidate) -> float:
        return c.logprob / max(c.n_tokens, 1) if per_token else c.logprob

    return sorted(best.values(), key=lambda c: (not c.accepted, -score(c)))
