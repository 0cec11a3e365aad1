"""The research harness behind `segpilot bench`: a theorem suite under several policy
configurations and runs, with the same budget, as proof jobs on any executor.

A suite row names a theorem and states it: `name`, a `header` (imports, opens; or
`imports`, a list of module names, and `context`, the text before the statement) and a
`formal_statement` ending in `:= by` (or `statement`, without it), as the rows of
`shared/data/minif2f` and `shared/data/core-benchmark`. Each (theorem, configuration, run)
is one job on the text `header + statement + "\\n  sorry"`; run r uses seed `seed + r`.

Results are appended to `results.jsonl` as jobs finish (one JSON object a line, flushed),
so a run stopped by a crash or Ctrl-C is continued with `resume`, without redoing the
(theorem, config, run) jobs already there. `summary.md` and `solved.png` are written from
all the results at the end.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segpilot.engine import evaluate
from segpilot.engine.jobs import JobResult, ProofJob, settings_tables
from segpilot.engine.reports import Curve, curve, plot_solved, text_table
from segpilot.engine.settings import Settings, load_settings
from segpilot.errors import SegpilotError
from segpilot.textfiles import open_lines, printable

# The paper's five policies (DESIGN.md, "Research"): step- and segment-level, each with and
# without goal-aware rollout, and whole proofs.
DEFAULT_CONFIGS = ("step", "step+rollout", "segment", "segment+rollout", "whole-proof")
RESULTS, SUMMARY, PLOT = "results.jsonl", "summary.md", "solved.png"


@dataclass(frozen=True)
class Theorem:
    name: str
    text: str
    line: int
    column: int


@dataclass(frozen=True)
class BenchConfig:
    """A policy configuration: `PRESET[+rollout][:KEY=VALUE,...]`, the KEY=VALUE pairs
    being model settings as `segpilot eval --compare` takes them (model=, temperature=...)."""

    label: str
    model: Mapping[str, Any] = field(default_factory=dict)
    rollout: bool = False


def parse_config(text: str) -> BenchConfig:
    name, _, extra = text.strip().partition(":")
    preset, plus, what = name.partition("+")
    if not preset or (plus and what != "rollout"):
        raise SegpilotError(
            f"--configs {text!r}: expected PRESET, PRESET+rollout or "
            "PRESET[+rollout]:KEY=VALUE,...",
            fix="e.g. --configs step,segment+rollout,bfs-prover:model=prover.gguf",
        )
    model: dict[str, Any] = {"preset": preset}
    if extra:
        model.update(evaluate.parse_config(extra)[1])
    return BenchConfig(text.strip(), model, bool(plus))


def read_suite(path: Path, limit: int | None = None) -> list[Theorem]:
    """The suite's theorems, each as a file text with one `sorry` to fill."""
    out = []
    with open_lines(path) as lines:
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
                out.append(_theorem(row))
            except (ValueError, KeyError, TypeError) as err:
                raise SegpilotError(
                    f"{printable(path)}:{number}: not a suite row ({err})",
                    fix="rows need name, header or imports, and formal_statement or statement",
                ) from None
            if limit and len(out) >= limit:
                break
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        raise SegpilotError(f"{printable(path)}: theorem names repeat; each must be unique")
    return out


def _theorem(row: Mapping[str, Any]) -> Theorem:
    name = str(row["name"])
    if "header" in row:
        header = str(row["header"])
    else:
        imports = "".join(f"import {m}\n" for m in row.get("imports", []))
        context = str(row.get("context", ""))
        header = imports + ("\n" if imports else "") + (context + "\n\n" if context else "")
    if "formal_statement" in row:
        statement = str(row["formal_statement"]).rstrip()
    else:
        statement = str(row["statement"]).rstrip() + " := by"
    if not statement.endswith("by"):
        raise ValueError("the statement must end in `:= by`")
    text = header + statement + "\n  sorry\n"
    return Theorem(name, text, text.count("\n") - 1, 2)


def plan_jobs(
    theorems: Sequence[Theorem],
    configs: Sequence[BenchConfig],
    runs: int,
    seed: int,
    project: Path,
    settings: Settings,
) -> list[ProofJob]:
    """Every (theorem, config, run) job, runs outermost, so a partial run is balanced."""
    tables = {}
    for config in configs:
        overrides = {
            "model": dict(config.model),
            "search": {"rollout": config.rollout},
        }
        base = settings_tables(settings)
        merged = {k: {**base[k], **overrides.get(k, {})} for k in base}
        load_settings({}, merged, environ={})  # a bad value is an error now, not per job
        tables[config.label] = merged
    jobs = []
    for run in range(runs):
        for config in configs:
            for theorem in theorems:
                job_settings = json.loads(json.dumps(tables[config.label]))
                job_settings["model"]["seed"] = seed + run
                jobs.append(
                    ProofJob(
                        key=job_key(theorem.name, config.label, run),
                        theorem=theorem.name,
                        project=str(project),
                        path=f"{theorem.name}.lean",
                        text=theorem.text,
                        line=theorem.line,
                        column=theorem.column,
                        settings=job_settings,
                        config=config.label,
                        run=run,
                    )
                )
    return jobs


def job_key(theorem: str, config: str, run: int) -> str:
    return json.dumps([theorem, config, run], ensure_ascii=False)


class ResultsFile:
    """`results.jsonl`: read back for `resume`, appended to as jobs finish."""

    def __init__(self, path: Path, *, resume: bool) -> None:
        self.path = path
        self.done: dict[str, JobResult] = {}
        if path.exists() and not resume:
            raise SegpilotError(
                f"{printable(path)} exists: a bench run is there",
                fix="continue it with --resume, or choose another --out",
            )
        if path.exists():
            self.done = {r.key: r for r in read_results(path)}

    def append(self, result: JobResult) -> None:
        row = {
            **result.report_row(),
            "key": result.key,
            "config": result.config,
            "run": result.run,
            "attempts": result.attempts,
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.done[result.key] = result


def read_results(path: Path) -> list[JobResult]:
    """The rows of a `results.jsonl`; a torn last line (a crash mid-write) is skipped."""
    out = []
    with open_lines(path) as lines:
        for raw in lines:
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            out.append(JobResult.from_dict({**row, "line": int(row.get("line", 1)) - 1}))
    return out


def summary(
    results: Iterable[JobResult], configs: Sequence[str], theorems: int, runs: int
) -> tuple[list[str], list[list[str]], dict[str, Curve]]:
    """The summary's header and rows (one per configuration), and the plot's curves."""
    by_config: dict[str, list[JobResult]] = {c: [] for c in configs}
    for r in results:
        by_config.setdefault(r.config, []).append(r)
    rows, curves = [], {}
    for label, mine in by_config.items():
        per_run = [
            100.0 * sum(r.status == "proved" for r in mine if r.run == run) / max(theorems, 1)
            for run in range(runs)
        ]
        solved = [r for r in mine if r.status == "proved"]
        spread = statistics.stdev(per_run) if len(per_run) > 1 else 0.0

        def per_solved(values: list[int], solved: list[JobResult] = solved) -> str:
            return f"{sum(values) / len(solved):.1f}" if solved else "n/a"

        rows.append(
            [
                label,
                f"{statistics.mean(per_run):.1f} ± {spread:.1f}",
                f"{statistics.median(r.seconds for r in solved):.1f}" if solved else "n/a",
                per_solved([r.lean_calls for r in solved]),
                per_solved([r.tokens for r in solved]),
                per_solved([r.expansions for r in solved]),
                str(sum(r.status == "budget" for r in mine)),
                str(sum(r.status == "error" for r in mine)),
                str(len(mine)),
            ]
        )
        curves[label] = curve(mine, theorems, runs)
    header = [
        "configuration",
        "solved % (mean ± sd over runs)",
        "median s to solve",
        "Lean calls / solved",
        "tokens / solved",
        "expansions / solved",
        "budget",
        "errors",
        "jobs",
    ]
    return header, rows, curves


def write_reports(
    out: Path,
    results: Iterable[JobResult],
    configs: Sequence[str],
    theorems: int,
    runs: int,
    about: str,
) -> str:
    """Write `summary.md` and `solved.png`; returns the summary table as plain text."""
    header, rows, curves = summary(list(results), configs, theorems, runs)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([f"`{row[0]}`", *row[1:]]) + " |" for row in rows]
    markdown = "\n".join(lines)
    (out / SUMMARY).write_text(
        f"# segpilot bench\n\n{about}\n\n{markdown}\n\n![solved vs time]({PLOT})\n",
        encoding="utf-8",
    )
    plot_solved(curves, out / PLOT, f"{theorems} theorems, {runs} run(s)")
    return text_table(header, rows)
