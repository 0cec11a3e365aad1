"""`segpilot eval`: how good the policy's candidates are on recorded proof steps or segments.

For each row (a trajectory step, as `segpilot data segments` reads them, or a segment it
wrote), the policy proposes k candidates for the recorded goal state; they are scored
against the recorded tactic (a step) or block (a segment):

* well-formed: share of the k raw samples whose every tactic line leads with a lexicon
  tactic and whose brackets balance (`segpilot.model.lexicon.well_formed`);
* name@k: the recorded first tactic's name is the first tactic name of some candidate;
* first@k: some candidate's first line equals the recorded first line (whitespace-normalised);
* segment@k: some candidate equals the whole recorded block (whitespace-normalised);
* name@1, first@1: the same for the best-ranked candidate alone (what a user sees first);
* distinct: accepted candidates per state after de-duplication; seconds per state.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
import time
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from segpilot import config
from segpilot.errors import SegpilotError
from segpilot.lean.lexer import LexError, strip_comments
from segpilot.model.lexicon import leading_tactic, well_formed
from segpilot.model.settings import ModelSettings
from segpilot.segments import BadRow, read_trajectories

METRICS = (
    "well_formed",
    "name_at_k",
    "first_at_k",
    "segment_at_k",
    "name_at_1",
    "first_at_1",
    "distinct",
    "seconds",
)
METRIC_LABELS = {
    "well_formed": "well-formed",
    "name_at_k": "name@k",
    "first_at_k": "first@k",
    "segment_at_k": "segment@k",
    "name_at_1": "name@1",
    "first_at_1": "first@1",
    "distinct": "distinct/state",
    "seconds": "s/state",
}


@dataclass(frozen=True)
class Item:
    """One row to score: the goal state, the recorded block, and where it came from."""

    state: str
    target: str
    source: str
    line: int


@dataclass
class Scores:
    """Sums over states; `summary` turns them into shares and means."""

    states: int = 0
    samples: int = 0
    well_formed: int = 0
    name: int = 0
    first: int = 0
    segment: int = 0
    name_top: int = 0
    first_top: int = 0
    distinct: int = 0
    seconds: float = 0.0

    def add(self, other: Scores) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float | int]:
        n = self.states or 1
        return {
            "states": self.states,
            "well_formed": self.well_formed / (self.samples or 1),
            "name_at_k": self.name / n,
            "first_at_k": self.first / n,
            "segment_at_k": self.segment / n,
            "name_at_1": self.name_top / n,
            "first_at_1": self.first_top / n,
            "distinct": self.distinct / n,
            "seconds": self.seconds / n,
        }


@dataclass
class Report:
    """One configuration's scores, overall and per source file."""

    config: str
    k: int
    overall: Scores = field(default_factory=Scores)
    by_source: dict[str, Scores] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "k": self.k,
            "overall": self.overall.summary(),
            "by_source": {s: v.summary() for s, v in sorted(self.by_source.items())},
        }


def normalise_line(line: str) -> str:
    return " ".join(line.split())


def _lines(block: str) -> list[str]:
    with contextlib.suppress(LexError):
        block = strip_comments(block)
    return [line.rstrip() for line in textwrap.dedent(block).split("\n") if line.strip()]


def first_name(block: str) -> str | None:
    lines = _lines(block)
    return leading_tactic(lines[0]) if lines else None


def score_state(
    target: str, samples: Sequence[str], candidates: Sequence[str], seconds: float
) -> Scores:
    """Score one state: the raw samples (for well-formed) and the policy's distinct
    candidates (for the @k measures) against the recorded block."""
    want = _lines(target)
    want_first = normalise_line(want[0]) if want else ""
    want_name = leading_tactic(want[0]) if want else None
    want_block = [normalise_line(x) for x in want]
    got = [_lines(c) for c in candidates]
    top = got[0] if got and got[0] else None
    return Scores(
        states=1,
        samples=len(samples),
        well_formed=sum(well_formed("\n".join(_lines(s))) for s in samples),
        name=int(
            want_name is not None and any(g and leading_tactic(g[0]) == want_name for g in got)
        ),
        first=int(bool(want_first) and any(g and normalise_line(g[0]) == want_first for g in got)),
        segment=int(
            bool(want_block) and any([normalise_line(x) for x in g] == want_block for g in got)
        ),
        name_top=int(
            want_name is not None and top is not None and leading_tactic(top[0]) == want_name
        ),
        first_top=int(
            bool(want_first) and top is not None and normalise_line(top[0]) == want_first
        ),
        distinct=len(candidates),
        seconds=seconds,
    )


def read_items(lines: Iterable[bytes | str], path: str) -> tuple[list[Item], list[BadRow]]:
    """The rows of a steps file (what `data segments` reads) or a segments file (what it
    writes: `state` and `target`). A step row goes through the segments reader itself."""
    items: list[Item] = []
    bad: list[BadRow] = []
    for number, raw in enumerate(lines, 1):
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            bad.append(BadRow(number, "not a JSON object"))
            continue
        source = str(row.get("source") or row.get("file") or path)
        if isinstance(row.get("target"), str) and isinstance(row.get("state"), str):
            items.append(Item(row["state"], row["target"], source, number))
            continue
        for found in read_trajectories([raw], ["tactic"]):
            if isinstance(found, BadRow):
                bad.append(BadRow(number, found.reason))
            else:
                step = found.steps[0]
                items.append(Item(step.state_before, step.tactic, source, number))
    return items, bad


# (goal state, source of its row) -> (raw samples, candidates); the source keeps that file's
# own steps out of the worked examples.
Propose = Callable[[str, str], tuple[list[str], list[str]]]


def policy_proposer(policy: Any, k: int) -> Propose:
    """A proposer over a `segpilot.model.policy.Policy`: its prompt, backend and
    post-processing (clean-up, safety filter, ranking), returning (raw samples, candidates)."""

    def propose(state: str, source: str) -> tuple[list[str], list[str]]:
        # The same call as a suggestion's: tactic-shaped decoding and leading names included.
        generation = policy.generate(policy.plan(state, exclude_source=source, k=k), k)
        ranked = policy.postprocess(generation)
        return [x.text for x in generation.samples], [c.text for c in ranked if c.accepted]

    return propose


def evaluate(
    items: Sequence[Item],
    propose: Propose,
    *,
    config: str = "default",
    k: int,
    progress: Callable[[Iterable[Item]], Iterator[Item]] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Report:
    """Score every item with one configuration's proposer."""
    if not items:
        raise SegpilotError("no rows to evaluate")
    report = Report(config, k)
    for item in progress(items) if progress else items:
        start = clock()
        samples, candidates = propose(item.state, item.source)
        scores = score_state(item.target, samples, candidates, clock() - start)
        report.overall.add(scores)
        report.by_source.setdefault(item.source, Scores()).add(scores)
    return report


def format_reports(reports: Sequence[Report]) -> str:
    """The reports side by side: one column per configuration, overall then per source."""
    names = [r.config for r in reports]
    width = max(14, *(len(n) for n in names))
    lines = []

    def table(title: str, summaries: list[dict[str, float | int] | None]) -> None:
        states = next((s["states"] for s in summaries if s), 0)
        lines.append(f"{title} ({states} states, k = {reports[0].k})")
        lines.append(f"  {'':<16}" + "".join(f"{n:>{width + 2}}" for n in names))
        for metric in METRICS:
            cells = []
            for s in summaries:
                if s is None:
                    cells.append("-")
                elif metric in ("distinct", "seconds"):
                    cells.append(f"{s[metric]:.2f}")
                else:
                    cells.append(f"{100 * s[metric]:.1f}%")
            lines.append(
                f"  {METRIC_LABELS[metric]:<16}" + "".join(f"{c:>{width + 2}}" for c in cells)
            )

    table("overall", [r.overall.summary() for r in reports])
    sources = sorted({s for r in reports for s in r.by_source})
    if len(sources) > 1:
        for source in sources:
            lines.append("")
            table(
                source,
                [r.by_source[source].summary() if source in r.by_source else None for r in reports],
            )
    return "\n".join(lines)


def parse_config(text: str) -> tuple[str, dict[str, Any]]:
    """`--compare` syntax: comma-separated KEY=VALUE pairs, e.g. `preset=step` or
    `adapter=mine.gguf,preset=segment`; KEY is one of model, adapter, preset, k,
    temperature, top_p, seed, max_tokens, shots, lead, ranking, constrain. Returns the label and the
    model-setting overrides, each value parsed as its setting's type (as the environment's
    are)."""
    keys = {
        "model": "model_path",
        "adapter": "adapter_path",
        "preset": "preset",
        "k": "k",
        "temperature": "temperature",
        "top_p": "top_p",
        "seed": "seed",
        "max_tokens": "max_tokens",
        "shots": "shots",
        "lead": "lead",
        "ranking": "ranking",
        "constrain": "constrain",
    }
    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in keys:
            raise SegpilotError(
                f"--compare {text!r}: {part!r} is not KEY=VALUE with KEY one of " + ", ".join(keys),
                fix="e.g. --compare preset=step preset=segment",
            )
        name = keys[key.strip()]
        hint = typing.get_type_hints(ModelSettings)[name]
        out[name] = config.coerce(hint, value.strip(), f"--compare {key.strip()}", text=True)
    if not out:
        raise SegpilotError(f"--compare {text!r} names no setting")
    return text, out
