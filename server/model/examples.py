"""Worked examples for the goal at hand: a bank of real (goal state, tactic) pairs, the
nearest ones to a goal, and the tactic names they make likely.

The built-in bank (`data/examples.jsonl`, built by `scripts/build_examples.py`) holds real
Lean output with its provenance in every row: Pantograph's recorded tactic invocations and
LeanInk's test expectations (Theorem Proving in Lean 4 examples, core's
`Init/Data/Nat/Basic.lean`). A user's own steps or segments (`[model] examples`, the files
`segpilot data segments` reads or writes) replace it.

Nearness is a weighted overlap of goal features: the main goal's target and hypothesis types
as tokens, local names abstracted (`hp : p` and `h : q` look alike), the target's head symbol,
whether a hypothesis already is the target, how many goals are open. It is cheap (no model
call) and explainable, which matters more here than recall: a 135M model copies the examples
it is shown.

`lead_names` turns the neighbours into a distribution over leading tactic names: their own
names weighted by nearness, mixed with how often each name leads a tactic in the whole bank,
so a goal unlike any example still gets the common tactics.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

from segpilot.errors import SegpilotError
from segpilot.lean.goals import GoalParseError, parse_state
from segpilot.model.lexicon import leading_tactic

BUILTIN_NAME = "built-in examples"
# Names that cannot lead a candidate on their own: block headers need a tag or alternatives.
_NOT_LEADS = frozenset({"case", "case'", "next", "match", "show"})
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_'.!?₀-₉]*|\d+|[^\sA-Za-z0-9_]")
_HEADS = ("↔", "→", "∧", "∨", "¬", "=", "≠", "≤", "<", "≥", ">", "∀", "∃", "∣")
# Weight of the bank-wide frequencies against the neighbours in `lead_names`.
_FREQUENCY_MIX = 0.35
_NEIGHBOURS = 8


@dataclass(frozen=True)
class Example:
    """One recorded step: the goals before it, the tactic (or segment), where it came from."""

    state: str
    tactic: str
    source: str

    @property
    def lead(self) -> str | None:
        first = self.tactic.lstrip().split("\n", 1)[0]
        return leading_tactic(first)


def features(state: str) -> Counter[str]:
    """The features `ExampleBank.nearest` compares (see the module docstring)."""
    try:
        goals = parse_state(state).goals
    except GoalParseError:
        return Counter(f"T:{t}" for t in _TOKEN.findall(state))
    if not goals:
        return Counter({"solved": 1})
    goal = goals[0]
    local = {n for h in goal.hypotheses for n in h.names}

    def tokens(text: str) -> list[str]:
        return ["·" if t in local else t for t in _TOKEN.findall(text)]

    out: Counter[str] = Counter()
    target = tokens(goal.target)
    out.update(f"T:{t}" for t in target)
    out.update(f"T2:{a} {b}" for a, b in itertools.pairwise(target))
    for h in goal.hypotheses:
        out.update(f"H:{t}" for t in tokens(h.type))
    head = next((s for s in _HEADS if s in target), target[0] if target else "")
    out[f"head:{head}"] += 3
    if any(" ".join(h.type.split()) == " ".join(goal.target.split()) for h in goal.hypotheses):
        out["hyp-is-target"] += 4
    out[f"goals:{min(len(goals), 3)}"] += 1
    return out


class ExampleBank:
    """Examples with their features, and nearest-neighbour lookup over them."""

    def __init__(self, examples: Iterable[Example], name: str = "examples") -> None:
        self.name = name
        self.examples = tuple(e for e in examples if e.lead is not None)
        self._features = [features(e.state) for e in self.examples]
        df: Counter[str] = Counter()
        for f in self._features:
            df.update(f.keys())
        n = len(self.examples) + 1
        self._idf = {k: math.log(n / v) + 1.0 for k, v in df.items()}
        self._norms = [self._norm(f) for f in self._features]

    def __len__(self) -> int:
        return len(self.examples)

    def _norm(self, f: Mapping[str, int]) -> float:
        return math.sqrt(sum((c * self._idf.get(k, 1.0)) ** 2 for k, c in f.items())) or 1.0

    def nearest(
        self, state: str, n: int, *, exclude_source: str | None = None
    ) -> list[tuple[float, Example]]:
        """The `n` examples nearest to `state`, best first, with their similarity (0-1);
        examples recorded in `exclude_source` are skipped (an evaluation never sees its own
        file's steps as examples)."""
        if n <= 0 or not self.examples:
            return []
        want = features(state)
        norm = self._norm(want)
        scored = []
        for i, have in enumerate(self._features):
            example = self.examples[i]
            if exclude_source is not None and example.source == exclude_source:
                continue
            dot = sum(
                min(c, have[k]) * self._idf.get(k, 1.0) ** 2 for k, c in want.items() if k in have
            )
            scored.append((dot / (norm * self._norms[i]), -i, example))
        scored.sort(reverse=True)
        return [(s, e) for s, _, e in scored[:n]]

    @cached_property
    def frequencies(self) -> dict[str, float]:
        """How often each name leads an example, as shares."""
        counts = Counter(e.lead for e in self.examples if e.lead not in _NOT_LEADS)
        total = sum(counts.values()) or 1
        return {str(k): v / total for k, v in counts.items()}

    def lead_names(self, state: str, *, exclude_source: str | None = None) -> list[str]:
        """Leading tactic names for `state`, likeliest first (see the module docstring)."""
        votes: dict[str, float] = {}
        near = self.nearest(state, _NEIGHBOURS, exclude_source=exclude_source)
        for similarity, example in near:
            if example.lead not in _NOT_LEADS:
                lead = str(example.lead)
                votes[lead] = votes.get(lead, 0.0) + similarity**2
        total = sum(votes.values())
        mixed: dict[str, float] = {}
        for name, share in self.frequencies.items():
            mixed[name] = _FREQUENCY_MIX * share
        for name, vote in votes.items():
            mixed[name] = mixed.get(name, 0.0) + (1 - _FREQUENCY_MIX) * vote / total
        return sorted(mixed, key=lambda name: (-mixed[name], name))


def read_examples(path: Path) -> list[Example]:
    """Examples from a JSONL file: steps (`goals_before` or `state_before`, and `tactic`),
    segments (`state` and `target`), or the built-in bank's rows (`state` and `tactic`)."""
    out = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SegpilotError(f"cannot read the examples file {path}: {err}") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise SegpilotError(f"{path}:{number}: not JSON") from None
        example = _example(row, str(path))
        if example is not None:
            out.append(example)
    return out


def _example(row: object, path: str) -> Example | None:
    if not isinstance(row, dict):
        return None
    answer = row.get("target") if isinstance(row.get("target"), str) else row.get("tactic")
    before = row.get("goals_before")
    state: object = row.get("state") or row.get("state_before")
    if isinstance(before, list) and before and all(isinstance(g, str) for g in before):
        state = "\n\n".join(before)
    if not isinstance(state, str) or not state.strip() or not isinstance(answer, str):
        return None
    return Example(state, answer.strip("\n"), str(row.get("source") or row.get("file") or path))


def builtin_bank() -> ExampleBank:
    data = resources.files("segpilot.model").joinpath("data/examples.jsonl")
    with resources.as_file(data) as path:
        return ExampleBank(read_examples(path), BUILTIN_NAME)


def load_bank(paths: Sequence[str]) -> ExampleBank:
    """The user's files as one bank, or the built-in one when none are given."""
    if not paths:
        return builtin_bank()
    found: list[Example] = []
    for p in paths:
        found.extend(read_examples(Path(p).expanduser()))
    if not found:
        raise SegpilotError(
            f"no usable examples in {', '.join(paths)}",
            fix="give steps or segments files (rows with goals and a tactic)",
        )
    return ExampleBank(found, ", ".join(paths))
