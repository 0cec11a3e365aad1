"""Segments -> training examples: (prompt, target) texts, then token ids with a loss mask.

The prompt is built by the inference preset itself (`Preset.build_prompt`, the same object
`segpilot suggest` uses), so training and serving cannot drift apart. The target is the
segment's block followed by the preset's end (`\\n\\n` for the segment format): what the
model must write, and where it must stop. Only target tokens carry loss.

Tokenisation mirrors the llama.cpp backend: the prompt is tokenised on its own (the
backend evaluates exactly those tokens, BOS first when the model adds one) and the target
after it, so the first target token is the first token the model generates. Special-token
texts become special tokens only in the preset's own template text, never in user text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError
from segpilot.model.examples import ExampleBank
from segpilot.model.generation import cut_at_specials, prompt_parts
from segpilot.model.presets import Preset
from segpilot.textfiles import open_lines

IGNORE = -100  # the label torch's cross-entropy skips


@dataclass(frozen=True)
class Row:
    """One training row: the goal state, the block to write, and the declaration it is from."""

    state: str
    target: str
    group: str
    line: int


@dataclass(frozen=True)
class Example:
    """A tokenised row: ids (prompt then target) and how many of them are the prompt."""

    ids: tuple[int, ...]
    n_prompt: int
    group: str

    @property
    def labels(self) -> list[int]:
        return [IGNORE] * self.n_prompt + list(self.ids[self.n_prompt :])

    def __len__(self) -> int:
        return len(self.ids)


def group_key(row: dict[str, Any], fields: Sequence[str]) -> str:
    """The declaration a row belongs to, as one string (JSON of the group-by values)."""
    return json.dumps([row.get(f) for f in fields], ensure_ascii=False, sort_keys=True)


def object_rows(path: Path) -> Iterator[tuple[int, bytes | str, dict[str, Any]]]:
    """(line number, raw line, object) for each non-blank line of a JSON Lines file; a line
    that is not a JSON object is an error naming it."""
    with open_lines(path) as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except ValueError:
                raise SegpilotError(f"{path}:{number}: not JSON") from None
            if not isinstance(row, dict):
                raise SegpilotError(f"{path}:{number}: not a JSON object")
            yield number, raw, row


def read_rows(path: Path, group_by: Sequence[str] = ("file", "theorem")) -> list[Row]:
    """The segments of a file `segpilot data segments` wrote (`state` and `target` per row).

    Rows without them are an error naming the line: a steps file must be cut first."""
    rows: list[Row] = []
    for number, _, row in object_rows(path):
        state, target = row.get("state"), row.get("target")
        if not isinstance(state, str) or not isinstance(target, str) or not target.strip():
            raise SegpilotError(
                f"{path}:{number}: no `state` and `target` (is this a segments file?)",
                fix="cut trajectories first: segpilot data segments STEPS.jsonl --rule "
                "change -o segments.jsonl",
            )
        rows.append(Row(state, target, group_key(row, group_by), number))
    return rows


def prompt_and_target(
    preset: Preset, row: Row, bank: ExampleBank | None = None, shots: int = 0
) -> tuple[Any, str]:
    """The prompt (a `PromptText`) and the target text of one row."""
    examples: list[tuple[str, str]] = []
    if bank is not None and shots and "examples" in preset.fields:
        near = bank.nearest(row.state, shots)
        examples = [(e.state, e.tactic) for _, e in reversed(near)]
    prompt = preset.build_prompt(state=row.state, examples=examples)
    return prompt, row.target + end_of_block(preset)


def end_of_block(preset: Preset) -> str:
    """What the model writes after a block so that generation stops: the preset's shortest
    stop string that is newlines only (`\\n\\n` for the segment format), else nothing."""
    ends = [s for s in preset.stop if s and not s.strip("\n")]
    return min(ends, key=len) if ends else ""


class Tokenizer:
    """Token ids of prompts and targets the way the llama.cpp backend makes them."""

    def __init__(self, hf_tokenizer: Any, add_bos: bool) -> None:
        self.hf = hf_tokenizer
        self.add_bos = add_bos
        specials = [t for t in getattr(hf_tokenizer, "all_special_tokens", []) if t]
        self._specials = sorted(set(specials), key=len, reverse=True)
        self.bos_id = hf_tokenizer.bos_token_id
        self.pad_id = hf_tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0

    def literal(self, text: str) -> list[int]:
        """`text` with special-token texts kept as text, no BOS/EOS."""
        if not text:
            return []
        return list(self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def prompt(self, prompt: str) -> list[int]:
        """A prompt's ids: BOS when the model adds one, special tokens only in template
        text, the literal text between them tokenised as one run (as the backend does)."""
        pieces: list[str | int] = []
        for part in prompt_parts(prompt):
            for piece in self._cut(part.text) if part.template else [part.text]:
                if isinstance(piece, str) and pieces and isinstance(pieces[-1], str):
                    pieces[-1] += piece
                else:
                    pieces.append(piece)
        ids = [self.bos_id] if self.add_bos and self.bos_id is not None else []
        for piece in pieces:
            ids += [piece] if isinstance(piece, int) else self.literal(piece)
        return ids

    def _cut(self, text: str) -> list[str | int]:
        found = ((s, int(self.hf.convert_tokens_to_ids(s))) for s in self._specials if s in text)
        return cut_at_specials(text, found)


def tokenize_rows(
    rows: Iterable[Row],
    preset: Preset,
    tokenizer: Tokenizer,
    *,
    max_length: int,
    bank: ExampleBank | None = None,
    shots: int = 0,
) -> tuple[list[Example], int]:
    """The rows as examples, and how many were left out for being longer than `max_length`."""
    out: list[Example] = []
    too_long = 0
    for row in rows:
        prompt, target = prompt_and_target(preset, row, bank, shots)
        p_ids = tokenizer.prompt(prompt)
        t_ids = tokenizer.literal(target)
        if len(p_ids) + len(t_ids) > max_length or not t_ids:
            too_long += 1
            continue
        out.append(Example(tuple(p_ids + t_ids), len(p_ids), row.group))
    return out, too_long


def length_batches(
    examples: Sequence[Example], batch_tokens: int, seed: int, *, pool: int = 64
) -> list[list[int]]:
    """Indices of `examples` cut into batches of similar length, in a seeded random order.

    Examples are shuffled, taken `pool` batches' worth at a time, sorted by length inside
    each pool and cut so that (longest in batch) x (batch size) stays within `batch_tokens`
    (padding included); the batches are then shuffled. Little compute goes to padding, and
    the order still changes from epoch to epoch (pass seed + epoch)."""
    import random

    rng = random.Random(seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    mean = max(1, sum(len(e) for e in examples) // max(1, len(examples)))
    chunk = max(1, pool * max(1, batch_tokens // mean))
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: len(examples[i]))
        batch: list[int] = []
        longest = 0
        for i in part:
            n = len(examples[i])
            if batch and max(longest, n) * (len(batch) + 1) > batch_tokens:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, n)
        if batch:
            batches.append(batch)
    rng.shuffle(batches)
    return batches


def split_groups(groups: Iterable[str], share: float, seed: int) -> set[str]:
    """The groups (declarations) held out: a seeded choice of about `share` of them; at
    least one when `share` > 0 and there are two or more groups."""
    import random

    distinct = sorted(set(groups))
    if share <= 0 or len(distinct) < 2:
        return set()
    n = min(len(distinct) - 1, max(1, round(share * len(distinct))))
    return set(random.Random(seed).sample(distinct, n))


def batches_of(examples: Sequence[Example], batches: Sequence[Sequence[int]]) -> Iterator[Any]:
    """Each batch's examples (a helper for loops and tests)."""
    for batch in batches:
        yield [examples[i] for i in batch]
