"""`segpilot finetune`: the whole loop for a newcomer, in one folder.

trace (the REPL over the project) -> segments (one rule) -> split by declaration -> train ->
export (GGUF LoRA) -> eval (the base model and the adapter side by side on the held-out
declarations, with `segpilot eval`'s own code and configurations `adapter=none` and
`adapter=FILE`). Each step's output stays in the work folder, named below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segpilot.engine import evaluate as ev
from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError
from segpilot.segments import BadRow, build_segments, read_trajectories
from segpilot.textfiles import open_lines, open_output
from segpilot.training.trace import Report as TraceReport
from segpilot.training.trace import trace_project

GROUP_BY = ("file", "theorem")


@dataclass
class Paths:
    """The files of one work folder."""

    root: Path

    @property
    def trace(self) -> Path:
        return self.root / "traj.jsonl"

    @property
    def segments(self) -> Path:
        return self.root / "segments.jsonl"

    @property
    def train(self) -> Path:
        return self.root / "train.jsonl"

    @property
    def valid(self) -> Path:
        return self.root / "valid.jsonl"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def gguf(self) -> Path:
        return self.root / "adapter.gguf"

    @property
    def eval_report(self) -> Path:
        return self.root / "eval.json"


@dataclass
class FinetuneReport:
    paths: Paths
    trace: TraceReport
    segments: int = 0
    train_rows: int = 0
    valid_rows: int = 0
    losses: tuple[float | None, float | None, float | None] = (None, None, None)
    eval_table: str = ""
    notes: list[str] = field(default_factory=list)


def cut_segments(trace: Path, out: Path, rule: str, max_tactics: int) -> int:
    """The trace's trajectories cut by `rule` into `out`; the number of segments."""
    n = 0
    with open_lines(trace) as lines, open_output(out) as sink:
        for item in read_trajectories(lines, list(GROUP_BY)):
            if isinstance(item, BadRow):
                continue  # the tracer writes no bad rows; a hand-edited file may
            fields = dict(zip(GROUP_BY, item.key, strict=True))
            for segment in build_segments(item.steps, rule, max_tactics):
                sink.write(json.dumps(fields | segment.as_dict(), ensure_ascii=False) + "\n")
                n += 1
    return n


def segments_of_rows(rows: Iterable[dict[str, Any]], rule: str, max_tactics: int) -> int:
    """How many segments some trace rows make (watch counts new data this way)."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    return sum(
        len(build_segments(item.steps, rule, max_tactics))
        for item in read_trajectories(lines, list(GROUP_BY))
        if not isinstance(item, BadRow)
    )


def compare(
    items: list[ev.Item],
    settings: Settings,
    adapter: Path,
    progress: Callable[[str], Any] | None = None,
) -> list[ev.Report]:
    """Base vs adapter on the same rows, with `segpilot eval --compare`'s configurations."""
    from segpilot.model.policy import Policy

    reports = []
    for text in ("adapter=none", f"adapter={adapter}"):
        label, overrides = ev.parse_config(text)
        model = settings.model.updated(**overrides)
        with Policy(model) as policy:
            reports.append(
                ev.evaluate(
                    items,
                    ev.policy_proposer(policy, model.k),
                    config="base" if overrides["adapter_path"] is None else "adapter",
                    k=model.k,
                    progress=progress(label) if progress else None,
                )
            )
    return reports


def finetune(
    project: Path,
    workdir: Path,
    settings: Settings,
    *,
    pattern: str | None = None,
    workers: int = 1,
    eval_limit: int | None = 50,
    log: Callable[[str], None] = lambda s: None,
    trace_progress: Any = None,
    eval_progress: Callable[[str], Any] | None = None,
    progress_bar: bool = True,
) -> FinetuneReport:
    from segpilot.training.adapter import train
    from segpilot.training.export import export_adapter
    from segpilot.training.split import split_file

    ts = settings.training
    paths = Paths(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log(f"1/6 tracing {project}")
    traced = trace_project(
        project,
        paths.trace,
        settings.lean,
        pattern=pattern,
        workers=workers,
        progress=trace_progress,
    )
    report = FinetuneReport(paths, traced)
    if not traced.rows:
        raise SegpilotError(
            f"{project}: no proof steps were traced"
            + (f" ({len(traced.failed)} files failed)" if traced.failed else ""),
            fix="check `segpilot doctor --project` and the files' errors above",
        )
    log(f"2/6 cutting {traced.rows} steps into segments (rule {ts.rule})")
    report.segments = cut_segments(paths.trace, paths.segments, ts.rule, ts.max_tactics)
    log("3/6 splitting by declaration")
    valid: Path | None = None
    try:
        if ts.valid_share <= 0:
            raise SegpilotError("[training] valid_share is 0")
        split = split_file(
            paths.segments,
            paths.train,
            paths.valid,
            share=ts.valid_share,
            seed=ts.seed,
            by=GROUP_BY,
        )
        report.train_rows, report.valid_rows = split.train_rows, split.valid_rows
        valid = paths.valid
    except SegpilotError as err:  # one declaration, or none asked for: nothing held out
        report.notes.append(f"no validation set ({err})")
        paths.train.write_bytes(paths.segments.read_bytes())
        report.train_rows = report.segments
    log(f"4/6 training on {report.train_rows} segments")
    result = train(
        paths.train,
        paths.adapter,
        settings,
        valid=valid,
        group_by=GROUP_BY,
        rule=ts.rule,
        log=log,
        progress_bar=progress_bar,
    )
    report.losses = (result.first_loss, result.last_loss, result.valid_loss)
    log(f"5/6 exporting {paths.gguf} ({ts.export_type})")
    export_adapter(paths.adapter, paths.gguf, ts.export_type)
    if valid is None:
        report.notes.append("no held-out declarations, so no evaluation")
        return report
    log("6/6 base model vs adapter on the held-out declarations")
    with open_lines(valid) as lines:
        items, _ = ev.read_items(lines, str(valid))
    items = items[:eval_limit] if eval_limit else items
    reports = compare(items, settings, paths.gguf, eval_progress)
    report.eval_table = ev.format_reports(reports)
    paths.eval_report.write_text(
        json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=1), encoding="utf-8"
    )
    return report
