"""`segpilot prove PATH...`: fill the `sorry`s of Lean files by proof search, write the
proofs back, report.

The searches run as proof jobs on an executor (this process, worker processes, or Ray); the
writing happens here, after the final command-mode check (`segpilot.engine.proving`).
Ctrl-C stops the searches, writes what was found, and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from segpilot.commands.common import settings_from
from segpilot.commands.running import require_lean, run_jobs
from segpilot.commands.search_flags import (
    add_executor_flags,
    add_search_flags,
    executor_from,
    overrides,
)
from segpilot.engine import proving
from segpilot.engine.jobs import JobResult
from segpilot.engine.projects import Projects
from segpilot.engine.reports import curve, plot_solved, results_table
from segpilot.engine.settings import Settings
from segpilot.textfiles import open_output, printable

DESCRIPTION = """\
Fill the sorries of Lean files by proof search: every `sorry` that stands as a whole tactic
is searched (best-first over proof states, k candidates per expansion, goal-aware rollout
when the goal count moves) within the budget, each proof found is checked once more in command
mode, and the proofs are written back: only the sorry spans change, atomically, with a
backup (FILE.bak), and not at all when the file changed since it was read. Needs Lean (the
REPL in the file's Lake project)."""

EPILOG = """\
examples:
  segpilot prove lean_project/Demo.lean --dry-run --diff
  segpilot prove src/ --budget-s 120 --report proofs.json --plot solved.png
  segpilot prove Foo.lean --theorem add_comm' --no-rollout -k 8
  segpilot prove Foo.lean --budget-preset paper --executor processes --workers 4

The report (--report) is a JSON list, one object per theorem: theorem, status (proved,
failed: the search ended without a proof, budget: a budget ran out, error), seconds,
expansions, lean_calls, tokens, proof, path, line, column, message.
Exit status: 0 when every file could be handled, 1 when a write-back was refused or a
search failed with an error, 2 without Lean, 130 after Ctrl-C."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prove",
        help="fill sorries by proof search and write the proofs back",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="Lean files or folders")
    parser.add_argument("--theorem", metavar="NAME", help="only the sorries of this theorem")
    parser.add_argument(
        "--dry-run", action="store_true", help="search and check, but write nothing"
    )
    parser.add_argument("--diff", action="store_true", help="print the changes as a diff")
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="write the results as JSON (- for stdout)"
    )
    parser.add_argument(
        "--plot", type=Path, metavar="PNG", help="write the cumulative solved-vs-time plot"
    )
    parser.add_argument(
        "--project", type=Path, metavar="DIR", help="the Lake project (default: each file's)"
    )
    add_search_flags(parser)
    add_executor_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model, search_settings = overrides(args)
    settings = settings_from(args, model=model, search=search_settings)
    targets = proving.find_targets(args.paths, theorem=args.theorem, project=args.project)
    for target in targets:
        for note in target.notes:
            print(f"segpilot: skipped {note}", file=sys.stderr)
    holes = sum(len(t.holes) for t in targets)
    if not holes:
        where = f" of theorem {args.theorem}" if args.theorem else ""
        print(f"no sorry to search{where} in {len(targets)} file(s)", file=sys.stderr)
        return 0
    require_lean(settings, {t.project for t in targets if t.holes}, "proof search")
    jobs = proving.jobs_for(targets, settings)
    print(
        f"searching {holes} sorr{'y' if holes == 1 else 'ies'} in {len(targets)} file(s) "
        f"({settings.model.preset} preset, k = {settings.search.k}, "
        f"{settings.search.wall_s:g} s and {settings.search.expansions} expansions each, "
        f"rollout {'on' if settings.search.rollout else 'off'}, executor {args.executor})",
        file=sys.stderr,
    )
    executor = executor_from(args)
    try:
        results, cancelled = run_jobs(executor, jobs)
    finally:
        executor.close()
    order = {job.key: i for i, job in enumerate(jobs)}
    results.sort(key=lambda r: order[r.key])
    status = write_results(args, settings, targets, results)
    if cancelled:
        done = {r.key for r in results}
        print(
            f"segpilot: stopped by Ctrl-C: {len(results)} of {len(jobs)} searches finished "
            f"(their proofs written as above), {len(set(order) - done)} not searched",
            file=sys.stderr,
        )
        return 130
    return status


def write_results(
    args: argparse.Namespace,
    settings: Settings,
    targets: list[proving.Target],
    results: list[JobResult],
) -> int:
    """Final check, write-back, diff, table, report and plot. Returns the exit status."""
    projects = Projects()
    status = 0
    final: list[JobResult] = []
    try:
        for target in targets:
            mine = [r for r in results if r.path == str(target.path)]
            checked = proving.checked_results(projects, settings, target, mine)
            final.extend(checked)
            written = proving.write_back(target, checked, dry_run=args.dry_run, want_diff=args.diff)
            if written.diff:
                print(written.diff, end="")
            if written.error:
                print(f"segpilot: error: {written.error}", file=sys.stderr)
                status = 1
            elif written.proofs:
                verb = "would write" if args.dry_run else "wrote"
                kept = f" (backup: {printable(written.backup)})" if written.backup else ""
                print(
                    f"{verb} {written.proofs} proof(s) to {printable(target.path)}{kept}",
                    file=sys.stderr,
                )
    finally:
        for project in projects.by_root.values():
            if project.checker is not None:
                project.checker.close()
    if any(r.status == "error" for r in final):
        status = status or 1
    print(results_table(final))
    if args.report is not None:
        with open_output(args.report) as out:
            json.dump([r.report_row() for r in final], out, ensure_ascii=False, indent=2)
            out.write("\n")
    if args.plot is not None:
        plot_solved({settings.model.preset: curve(final, len(final))}, args.plot, "segpilot prove")
    return status
