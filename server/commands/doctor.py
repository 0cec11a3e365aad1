"""`segpilot doctor`: what is installed, what is missing, and the fix for each.

The checks live in `segpilot.environment`; this module only parses flags and prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segpilot.environment import Check

OPTIONAL_GROUPS = ("lean", "model", "training", "editor")

DESCRIPTION = """\
Check what segpilot needs on this machine: Python and segpilot's packages (core), Lean
(elan, lean, lake, the project's lean-toolchain, the REPL binary, whether its pin matches the
toolchain, and whether the configured REPL command, `[lean] repl_command`, starts in the
project and answers), the default model and llama-cpp-python, torch and the GPU, and Node.

Exit status: 0 when every check in a needed group is there, 1 otherwise. Only `core` is
needed by default; each --need adds a group. Lean is optional: without it segpilot still
runs, but its suggestions go unchecked. Warnings (the piece is there, but look at it) never
fail."""

EPILOG = """\
examples:
  segpilot doctor                          report on this machine and the nearest Lake project
  segpilot doctor --project ~/my-lean-proj check another project's toolchain and REPL
  segpilot doctor --need lean --need model fail (exit 1) unless Lean and the model are there
  segpilot doctor --json                   the same report as JSON, for scripts"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="what is installed, what is missing, and the fix",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--project",
        metavar="DIR",
        type=Path,
        help="the Lake project to check (default: the one containing the current directory, "
        "else this repository's lean_project/)",
    )
    parser.add_argument(
        "--need",
        metavar="GROUP",
        action="append",
        default=[],
        choices=(*OPTIONAL_GROUPS, "all"),
        help="also require this group: " + ", ".join(OPTIONAL_GROUPS) + ", or all (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot import environment
    from segpilot.errors import SegpilotError

    if args.project is not None:
        chosen = args.project.expanduser().resolve()
        if not chosen.is_dir():
            raise SegpilotError(f"{args.project}: no such directory", fix="pass a Lake project")
        project: Path | None = chosen
    else:
        project = environment.default_project(Path.cwd())
    needed = sorted(set(OPTIONAL_GROUPS if "all" in args.need else args.need))
    from segpilot.engine.settings import load_settings

    checks = environment.run_checks(project, lean_settings=load_settings().lean)
    failed = environment.failures(checks, needed)
    if args.json:
        report = {
            "project": str(project) if project else None,
            "needed": ["core", *needed],
            "ready": not failed,
            "checks": [check.to_dict() for check in checks],
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(checks, project, ["core", *needed], failed))
    return 1 if failed else 0


def render(
    checks: list[Check], project: Path | None, needed: list[str], failed: list[Check]
) -> str:
    """The report as a table: one line per check, and a `fix:` line under each problem."""
    name_width = max(len(c.name) for c in checks)
    group_width = max(len(c.group) for c in checks)
    lines = [f"segpilot doctor (project: {project or 'none found'})", ""]
    for check in checks:
        lines.append(
            f"  {check.status:<8} {check.name:<{name_width}}  {check.group:<{group_width}}  "
            f"{check.detail}"
        )
        if check.status != "ok" and check.fix:
            lines.append(f"  {'':<8} {'':<{name_width}}  {'':<{group_width}}  fix: {check.fix}")
    lines.append("")
    if failed:
        names = ", ".join(c.name for c in failed)
        lines.append(f"not ready: {names} missing (needed groups: {', '.join(needed)})")
    else:
        other = sum(c.status != "ok" for c in checks)
        extra = f"; {other} optional item(s) to look at" if other else ""
        lines.append(f"ready (needed groups: {', '.join(needed)}){extra}")
    return "\n".join(lines)
