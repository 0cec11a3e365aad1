"""`segpilot goals`: the goals open at a cursor in a Lean file, through the same engine
path as the editor sidecar (the REPL, else `lake serve`, else the statement)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from segpilot.commands.common import add_lean_flags, cursor_site, run_engine, settings_from

DESCRIPTION = """\
Print the goals open at LINE:COL of a Lean file, how many there are, and where they came
from: `repl` (the Lean REPL in the file's project, every open goal), `lake-serve` (Lean's
language server, when no REPL is configured), or `statement` (no Lean: the goal at the
start of the proof, read from the theorem's statement)."""

EPILOG = """\
examples:
  segpilot goals lean_project/Demo.lean --line 16 --col 2
  segpilot goals Foo.lean --line 30 --col 4 --json
  segpilot goals Foo.lean --line 30 --col 4 --repl-command "lake env .lake/build/bin/repl"

--json prints {"source": ..., "count": N, "goals": ["<goal as Lean prints it>", ...]}."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "goals",
        help="the goals at a cursor in a Lean file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a .lean file")
    parser.add_argument("--line", type=int, required=True, metavar="L", help="1-based line")
    parser.add_argument(
        "--col", type=int, default=0, metavar="C", help="0-based column, as Lean prints positions"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_lean_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.engine.service import Engine

    settings = settings_from(args)
    text, site = cursor_site(args.file, args.line, args.col)

    async def ask() -> dict[str, object]:
        engine = Engine(settings)
        try:
            project = engine.project_for(args.file.resolve())
            goal = await engine.goal_at(project, args.file.resolve().as_uri(), text, site)
            return goal.to_json()
        finally:
            await engine.close()

    found = run_engine(ask())
    if args.json:
        print(json.dumps(found, ensure_ascii=False))
        return 0
    goals = found["goals"]
    assert isinstance(goals, list)
    print(f"{found['count']} goal(s), from {found['source']}:")
    for goal in goals:
        print()
        print("  " + str(goal).replace("\n", "\n  "))
    if found.get("leanError"):
        print(f"\nLean failed: {found['leanError']}")
    return 0
