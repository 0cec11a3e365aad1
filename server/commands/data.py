"""`segpilot data`: build training data from proof trajectories.

`segpilot data segments` cuts trajectories (JSONL, one tactic step per row) into segments
with one of the rules of `segpilot.segments` and writes one JSON object per segment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from segpilot import textfiles
from segpilot.errors import SegpilotError
from segpilot.segments import DEFAULT_MAX_TACTICS, OUTPUT_FIELDS, RULES

# Bad rows listed one by one on stderr; the rest are counted (all go to --bad-rows FILE).
SHOWN_BAD_ROWS = 20

SEGMENTS_DESCRIPTION = f"""\
Cut proof trajectories into segments: blocks of tactics that end where the rule says.
A training example is (goal state at the segment's start -> the segment's tactic block).

rules (a segment always ends at the trajectory's last step):
{chr(10).join(f"  {rule.name:<8}ends {rule.description}" for rule in RULES.values())}
  Every rule but `whole` also ends a segment at --max-tactics steps.

input: JSON Lines, one step per row, with `tactic` and the goals before and after it,
  either as lists (`goals_before`, `goals_after`: one string per goal) or as Lean's
  printed state strings (`state_before`, `state_after`: goals separated by a blank line,
  `no goals` when done). On each side the list wins when present; a row that also has the
  string must agree on the number of goals. State strings are parsed to count their goals;
  list items must be strings and are not parsed (their number is the count). Rows with
  equal --group-by values (any JSON values, types kept) form one trajectory, in file
  order; other fields are ignored. Blank lines are skipped.

output: one JSON object per segment, trajectories in order of first appearance: the
  group-by fields with their input values, then `start` and `end` (0-based step indices,
  inclusive), `n_goals_before`, `n_goals_after`, `tactics` (list), `state` (the goal state
  at the start: a list's goals joined by a blank line, or `no goals`; a state string
  exactly as given) and `target` (the tactics, one per line; multi-line tactics verbatim).
  A file is written atomically (a temporary file beside it, then renamed; it keeps the
  old file's mode) and is never the input file; a read-only file is refused; a device or
  a FIFO (/dev/null, a named pipe) is written in place.

bad rows (a line that is not UTF-8, or whose JSON strings escape a lone surrogate; not
  JSON or not an object; a missing group-by field; a missing or blank tactic; goals
  missing, null or unparseable) are reported on stderr with their line numbers and
  skipped; exit status 0. With --strict the first bad row fails the run (exit 1,
  "line N: <what>") and no output is written."""

SEGMENTS_EXAMPLES = """\
examples:
  segpilot data segments steps.jsonl --rule change --output segments.jsonl
  segpilot data segments steps.jsonl --rule close --max-tactics 4 --output close4.jsonl
  segpilot data segments traced.jsonl --rule whole --group-by file,theorem -o proofs.jsonl
  segpilot data segments steps.jsonl --rule step --strict --output - | head"""

DATA_EXAMPLES = """\
examples:
  segpilot data segments steps.jsonl --rule change --output segments.jsonl
  segpilot data split segments.jsonl --train train.jsonl --valid valid.jsonl
  segpilot data stats segments.jsonl --png segments.png
  segpilot data segments --help"""

SPLIT_EXAMPLES = """\
examples:
  segpilot data split segments.jsonl --train train.jsonl --valid valid.jsonl
  segpilot data split traj.jsonl --train t.jsonl --valid v.jsonl --valid-share 0.2 --seed 3
  segpilot data split segs.jsonl --train t.jsonl --valid v.jsonl --by source,transcript"""

STATS_EXAMPLES = """\
examples:
  segpilot data stats segments.jsonl
  segpilot data stats traj.jsonl --png steps.png"""


def register(subparsers: Any) -> None:
    data = subparsers.add_parser(
        "data",
        help="build training data from proof trajectories",
        description="Build training data from proof trajectories.",
        epilog=DATA_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data.set_defaults(func=lambda args: _usage(data))
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
    segments = commands.add_parser(
        "segments",
        help="cut trajectories into segments (change, close, step or whole)",
        description=SEGMENTS_DESCRIPTION,
        epilog=SEGMENTS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    segments.add_argument("input", metavar="INPUT.jsonl", type=Path, help="trajectory steps")
    segments.add_argument("--rule", required=True, choices=list(RULES), help="where segments end")
    segments.add_argument(
        "--group-by",
        default="theorem",
        metavar="FIELDS",
        help="comma-separated fields whose values identify a trajectory (default: theorem)",
    )
    segments.add_argument(
        "--max-tactics",
        type=_positive_int,
        default=DEFAULT_MAX_TACTICS,
        metavar="N",
        help=f"longest segment, except for --rule whole (default: {DEFAULT_MAX_TACTICS})",
    )
    segments.add_argument(
        "-o", "--output", required=True, metavar="OUT.jsonl", help="where to write; - for stdout"
    )
    segments.add_argument(
        "--strict", action="store_true", help="fail on the first bad row instead of skipping it"
    )
    segments.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="processes that cut a large input (64 MB or more) in parallel, writing what one "
        "writes (default: the cores free now, at most 8)",
    )
    segments.add_argument(
        "--bad-rows",
        type=Path,
        metavar="FILE",
        help='also write every bad row to FILE as JSONL ({"line": N, "reason": ...})',
    )
    segments.set_defaults(func=run_segments)
    split = commands.add_parser(
        "split",
        help="split rows into training and validation sets by declaration",
        description="Split a segments (or steps) file into training and validation files by "
        "declaration: all rows of a declaration (equal --by fields) go to the same side, so "
        "validation never holds part of a proof training saw. Seeded.",
        epilog=SPLIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    split.add_argument("input", metavar="INPUT.jsonl", type=Path, help="segments or steps")
    split.add_argument("--train", required=True, type=Path, metavar="OUT.jsonl")
    split.add_argument("--valid", required=True, type=Path, metavar="OUT.jsonl")
    split.add_argument(
        "--valid-share",
        type=float,
        default=0.1,
        metavar="S",
        help="share of the declarations held out (default 0.1)",
    )
    split.add_argument("--seed", type=int, default=0, metavar="N", help="seed (default 0)")
    split.add_argument(
        "--by",
        default="file,theorem",
        metavar="FIELDS",
        help="fields that identify a declaration (default: file,theorem)",
    )
    split.set_defaults(func=run_split)
    stats = commands.add_parser(
        "stats",
        help="segment lengths and goal-count moves, printed and as a PNG",
        description="Count what a segments file (or a steps file from segpilot trace) holds: "
        "tactics per segment, goal-count moves (goals after - goals before), rows that "
        "close every goal, target lengths. --png also draws the first two.",
        epilog=STATS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stats.add_argument("input", metavar="INPUT.jsonl", type=Path, help="segments or steps")
    stats.add_argument("--png", type=Path, metavar="FILE.png", help="also draw the counts")
    stats.add_argument(
        "--by",
        default="file,theorem",
        metavar="FIELDS",
        help="fields that identify a declaration, to count them (default: file,theorem)",
    )
    stats.set_defaults(func=run_stats)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _group_fields(text: str) -> list[str]:
    fields = [f.strip() for f in text.split(",")]
    if not all(fields):
        raise SegpilotError(f"--group-by {text!r} has an empty field name")
    if len(set(fields)) != len(fields):
        raise SegpilotError(f"--group-by {text!r} names a field twice")
    clash = [f for f in fields if f in OUTPUT_FIELDS]
    if clash:
        raise SegpilotError(
            f"--group-by field {clash[0]!r} would clash with the output field of that name",
            fix=f"output fields: {', '.join(OUTPUT_FIELDS)}",
        )
    return fields


def _default_workers() -> int:
    from segpilot.model.backend import free_cores

    return min(8, free_cores(os.cpu_count() or 1))


def _jsonl(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def run_segments(args: argparse.Namespace) -> int:
    from segpilot.training.segment_file import CutJob, cut_file

    group_by = _group_fields(textfiles.require_utf8(args.group_by, "--group-by"))
    job = CutJob(args.input, tuple(group_by), args.rule, args.max_tactics, args.strict)
    workers = args.workers or _default_workers()
    report = cut_file(job, str(args.output), bad_rows=args.bad_rows, workers=workers)
    bad = report.bad
    for item in bad[:SHOWN_BAD_ROWS]:
        print(f"segpilot: skipped {item}", file=sys.stderr)
    if args.bad_rows is not None:
        with textfiles.open_output(args.bad_rows) as out:
            out.write("".join(_jsonl({"line": b.line, "reason": b.reason}) for b in bad))
    if len(bad) > SHOWN_BAD_ROWS:
        listed = (
            f"listed in {textfiles.printable(args.bad_rows)}"
            if args.bad_rows
            else "--bad-rows FILE lists all"
        )
        print(
            f"segpilot: ... and {len(bad) - SHOWN_BAD_ROWS} more bad rows ({listed})",
            file=sys.stderr,
        )
    if bad and not report.steps:
        print(
            "segpilot: no usable rows: check --group-by and the row fields (tactic, "
            "goals_before/goals_after or state_before/state_after)",
            file=sys.stderr,
        )
    written = "stdout" if args.output == "-" else textfiles.printable(args.output)
    max_note = "" if args.rule == "whole" else f", at most {args.max_tactics} tactics"
    print(
        f"segpilot: {report.steps + len(bad)} rows read, {len(bad)} bad rows skipped, "
        f"{report.trajectories} trajectories, {report.segments} segments written to {written} "
        f"(rule {args.rule}{max_note})",
        file=sys.stderr,
    )
    return 0


def run_split(args: argparse.Namespace) -> int:
    from segpilot.training.split import split_file

    by = tuple(_group_fields(args.by))
    for target in (args.train, args.valid):
        if os.path.realpath(target) == os.path.realpath(args.input):
            raise SegpilotError(f"{textfiles.printable(target)} is the input file")
        textfiles.check_output(target)
    if os.path.realpath(args.train) == os.path.realpath(args.valid):
        raise SegpilotError("--train and --valid must be two files")
    report = split_file(
        args.input, args.train, args.valid, share=args.valid_share, seed=args.seed, by=by
    )
    print(
        f"segpilot: {report.train_rows} rows of {report.train_groups} declarations to "
        f"{textfiles.printable(args.train)}, {report.valid_rows} rows of "
        f"{report.valid_groups} declarations to {textfiles.printable(args.valid)}",
        file=sys.stderr,
    )
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from segpilot.training.stats import plot_stats, read_stats

    stats = read_stats(args.input, tuple(_group_fields(args.by)))
    print(stats.summary())
    if args.png:
        textfiles.check_output(args.png)
        plot_stats(stats, args.png, textfiles.printable(args.input))
        print(f"segpilot: drew {textfiles.printable(args.png)}", file=sys.stderr)
    return 0
