"""Shared by the quality benchmarks (`models.py`, `sampling.py`): the rows they score, taken
from the three real trajectory files, and the presets file they add to the settings.

The files are `../shared/data/trajectories/*.jsonl` (the copies in tests/fixtures/trajectories
when the shared data is absent):

* `repl_transcript_steps.jsonl`: the rows with goals, as `segpilot eval` reads them;
* `pantograph_doc_invocations.jsonl`: likewise; each row's source is cut at its first space
  (`owner/repo@commit:doc/frontend.ipynb`), which is how the built-in examples bank records
  it, so these rows' own steps stay out of their worked examples. (`segpilot eval` on the
  file as it is keeps the whole source text, which matches no bank entry: there each row is
  shown itself as a worked example.)
* `leanink_sentences.jsonl`: LeanInk sentences are no steps; the (goals before, tactic) pairs
  are the ones `scripts/build_examples.py` derives (its `leanink_rows`), with the bank's own
  filter (well-formed, safe, no `=>`: LeanInk cuts some sentences inside brackets). The
  bank leaves a row's own LeanInk file out of its worked examples by the same source.

`--limit N` keeps N rows of each file, evenly spread over it (the LeanInk rows come file by
file, so the first N would all be from one test file); the same N gives the same rows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from segpilot.engine import evaluate as ev
from segpilot.model import safety
from segpilot.model.lexicon import well_formed

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "trajectories"
FIXTURES = ROOT / "tests" / "fixtures" / "trajectories"
PRESETS_FILE = Path(__file__).resolve().with_name("presets.toml")
FILES = ("repl_transcript_steps", "leanink_sentences", "pantograph_doc_invocations")
SHORT = {
    "repl_transcript_steps": "REPL",
    "leanink_sentences": "LeanInk",
    "pantograph_doc_invocations": "Pantograph",
}


def folder() -> tuple[Path, str]:
    """The trajectories folder and how to name it in a report (relative, no machine path)."""
    if SHARED.is_dir():
        return SHARED, "shared/data/trajectories"
    return FIXTURES, "tests/fixtures/trajectories"


def _leanink(path: Path) -> list[ev.Item]:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from build_examples import leanink_rows
    finally:
        sys.path.pop(0)
    out = []
    for number, row in enumerate(leanink_rows(path), 1):
        tactic, state, source = str(row["tactic"]), str(row["state"]), str(row["source"])
        if well_formed(tactic) and safety.check(tactic).ok and "=>" not in tactic:
            out.append(ev.Item(state, tactic, source, number))
    return out


def _steps(path: Path) -> list[ev.Item]:
    with path.open(encoding="utf-8") as lines:
        items, _ = ev.read_items(lines, path.name)
    return [ev.Item(i.state, i.target, i.source.split(" ", 1)[0], i.line) for i in items]


def spread(rows: list[Any], limit: int | None) -> list[Any]:
    """`limit` rows evenly spread over `rows` (all of them when there are no more)."""
    if not limit or len(rows) <= limit:
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


def items(limit: int | None) -> dict[str, list[ev.Item]]:
    """The rows to score, by file (names without `.jsonl`), in the order of FILES."""
    where, _ = folder()
    out = {}
    for name in FILES:
        path = where / f"{name}.jsonl"
        rows = _leanink(path) if name == "leanink_sentences" else _steps(path)
        out[name] = spread(rows, limit)
    return out


def preset_tables() -> dict[str, Any]:
    """The `[model]` table of presets.toml (its `presets`)."""
    with PRESETS_FILE.open("rb") as fh:
        return dict(tomllib.load(fh).get("model", {}))


def summaries(report: Any) -> dict[str, float]:
    """A report's overall measures (whatever `segpilot eval` measures now)."""
    return dict(report.as_dict()["overall"])


def combine(reports: list[Any]) -> dict[str, float]:
    """The overall measures of several files' reports taken together (sums, then shares)."""
    total = ev.Scores()
    for report in reports:
        total.add(report.overall)
    return dict(total.summary())


def dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True)
