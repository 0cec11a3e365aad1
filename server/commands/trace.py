"""`segpilot trace`: run the Lean REPL over a project's files and record every tactic step."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from segpilot.commands.common import add_lean_flags, settings_from
from segpilot.errors import SegpilotError

DESCRIPTION = """\
Trace a Lean project: each .lean file (outside .lake) goes to the Lean REPL with allTactics,
and every tactic of every finished proof becomes one row: file, theorem (the declaration),
line/column, tactic (its source text) and goals_before/goals_after (lists of goals as Lean
prints them, read from the REPL's proof states). The output is what `segpilot data
segments` reads (group by file,theorem).

Incremental: a small SQLite index beside the output (OUTPUT.index.sqlite) keeps each
file's content hash and rows, so unchanged files are not traced again; the output is
rewritten whole from it. Files Lean reports an error in are listed and skipped;
declarations that use sorry, and tactics nested inside other tactics (a `have`'s `by`
block), are not steps of their own. Needs Lean's REPL in the project (see `segpilot
doctor`); --repl-command names another."""

EPILOG = """\
examples:
  segpilot trace ~/my-lean-proj --output traj.jsonl
  segpilot trace . --files 'MyProj/**/*.lean' --workers 2 -o traj.jsonl
  segpilot data segments traj.jsonl --rule change --group-by file,theorem -o segments.jsonl"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="record every tactic step of a Lean project's proofs (goals before and after)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("project", metavar="PROJECT", type=Path, help="the Lean project folder")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="TRAJ.jsonl")
    parser.add_argument("--files", metavar="GLOB", help="only files matching (relative paths)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="REPL processes tracing files side by side (default 1; each holds its imports)",
    )
    add_lean_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.training.trace import require_project, trace_project

    project = require_project(args.project)
    if args.workers < 1:
        raise SegpilotError(f"--workers must be at least 1, not {args.workers}")
    if args.output.is_dir():
        raise SegpilotError(f"{args.output}: is a folder; give a .jsonl file")
    settings = settings_from(args)
    report = trace_project(
        project,
        args.output,
        settings.lean,
        pattern=args.files,
        workers=args.workers,
        progress=_bar,
    )
    print_report(report, args.output)
    return 0


def print_report(report: Any, output: Path) -> None:
    say = lambda text: print(f"segpilot: {text}", file=sys.stderr)  # noqa: E731
    for path, error in sorted(report.failed.items()):
        say(f"skipped {path}: {error}")
    left = []
    if report.with_sorry:
        left.append(f"{report.with_sorry} declarations using sorry")
    if report.not_replayed:
        left.append(f"{report.not_replayed} whose tactics did not replay")
    say(
        f"{len(report.traced)} files traced, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed"
        + (f", {len(report.removed)} removed" if report.removed else "")
        + ("; left out: " + ", ".join(left) if left else "")
    )
    say(f"{report.rows} steps of {report.declarations} declarations in {os.fspath(output)}")


def _bar(items: Any, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(items, total=total, desc="tracing", unit="file", file=sys.stderr, leave=False)
