"""`segpilot suggest`: propose tactic blocks for a goal, through the engine the editor uses.

The goal comes from `--state`, or from a cursor in a Lean file. For a file, the engine finds
the goals there (the REPL, else `lake serve`, else the statement's approximation) and, when
Lean is there, runs every candidate in Lean and ranks them: closes every goal > fewer goals
left > model score. A `--state` is not tied to a file, so its candidates are never checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from segpilot.commands.common import add_lean_flags, cursor_site, run_engine, settings_from
from segpilot.errors import SegpilotError
from segpilot.model.settings import setting_help
from segpilot.textfiles import require_utf8

# Setting -> (flag, type); the help text comes from the setting itself.
SAMPLING_FLAGS = {
    "k": ("-k", int, "N"),
    "temperature": ("--temperature", float, "T"),
    "top_p": ("--top-p", float, "P"),
    "max_tokens": ("--max-tokens", int, "N"),
    "seed": ("--seed", int, "N"),
    "budget_s": ("--budget", float, "SECONDS"),
}

DESCRIPTION = """\
Propose the next proof segment for a goal with the local model. Candidates that could run
code or change Lean's environment, and any that use sorry or admit, are dropped.

With --file, the goals at LINE:COL come from Lean (`segpilot goals` shows them) and each
candidate is checked in Lean and ranked (closes every goal > fewer goals left > model
score). Without Lean, the goal is read from the enclosing theorem's statement (binders become
hypotheses) and the candidates are unverified, ranked by score (summed log-probability)."""

EPILOG = """\
examples:
  segpilot suggest --state "x y : Nat\\n⊢ x + y = y + x"
  segpilot suggest --state "p q : Prop\\nhp : p\\nhq : q\\n⊢ p ∧ q" -k 8 --json
  echo "n : Nat\\n⊢ n + 0 = n" | segpilot suggest --state -
  segpilot suggest --file Demo.lean --line 12 --col 2 --preset whole-proof
  segpilot suggest --state "..." --model prover.gguf --preset bfs-prover --adapter mine.gguf"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "suggest",
        help="propose tactic blocks for a goal (checked in Lean for a file cursor)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--state",
        metavar="TEXT",
        help='the goal state; "\\n" stands for a line break; - reads stdin',
    )
    where.add_argument(
        "--file", type=Path, metavar="F.lean", help="a Lean file (with --line/--col)"
    )
    parser.add_argument("--line", type=int, metavar="L", help="1-based line in --file")
    parser.add_argument(
        "--col", type=int, default=0, metavar="C", help="0-based column, as Lean prints positions"
    )
    parser.add_argument("--preset", help=setting_help("preset"))
    parser.add_argument(
        "--model", dest="model_path", metavar="GGUF", help=setting_help("model_path")
    )
    parser.add_argument(
        "--adapter", dest="adapter_path", metavar="GGUF", help=setting_help("adapter_path")
    )
    for name, (flag, kind, metavar) in SAMPLING_FLAGS.items():
        parser.add_argument(flag, dest=name, type=kind, metavar=metavar, help=setting_help(name))
    add_lean_flags(parser)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.engine.service import Engine
    from segpilot.model.settings import ModelSettings

    model = {
        "preset": args.preset,
        "model_path": args.model_path,
        "adapter_path": args.adapter_path,
        **{name: getattr(args, name) for name in SAMPLING_FLAGS},
    }
    settings = settings_from(args, model)
    state = None if args.file is not None else read_state_arg(args.state)
    site_text = None if args.file is None else cursor_site(args.file, args.line, args.col)

    def policy_factory(model_settings: ModelSettings) -> Any:
        from segpilot.model.policy import Policy

        # The command line's own budget, not the editor's per-request one.
        return Policy(model_settings.updated(budget_s=settings.model.budget_s))

    async def work() -> dict[str, Any]:
        engine = Engine(settings, policy_factory=policy_factory)
        try:
            if site_text is None:
                assert state is not None
                proposal = await engine.suggest_for_state(state)
                return _result(state, "state", proposal, settings.model.preset)
            path = args.file.resolve()
            text, site = site_text
            project = engine.project_for(path)
            goal = await engine.goal_at(project, path.as_uri(), text, site)
            proposal = await engine.suggestions(project, site, goal)
            return _result(goal.text, goal.source, proposal, settings.model.preset, goal.count)
        finally:
            await engine.close()

    result = run_engine(work())
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        _print_text(result)
    if not result["verified"]:
        why = f" ({result['lean_error']})" if result["lean_error"] else ""
        print(f"candidates are unverified: Lean has not checked them{why}", file=sys.stderr)
    return 0


def read_state_arg(value: str) -> str:
    """The goal state from --state: `-` reads stdin; a literal backslash-n is a line break."""
    if value == "-":
        try:
            text = sys.stdin.read()
        except UnicodeDecodeError:
            raise SegpilotError("the goal state on stdin is not UTF-8 text") from None
    else:
        text = require_utf8(value, "--state")
    text = text.replace("\\n", "\n").strip("\n")
    if not text.strip():
        raise SegpilotError("the goal state is empty")
    return text


def _result(goal: str, source: str, proposal: Any, preset: str, count: int = 1) -> dict[str, Any]:
    candidates = []
    for item in proposal.items:
        c, outcome = item.candidate, item.outcome
        candidates.append(
            {
                "text": c.text,
                "tactics": list(c.tactics),
                "logprob": round(c.logprob, 4),
                "n_tokens": c.n_tokens,
                "checked": outcome is not None,
                "outcome": outcome.kind if outcome is not None else None,
                "goals_after": list(outcome.goals) if outcome is not None else None,
            }
        )
    return {
        "goal": goal,
        "goal_source": source,
        "goal_count": count,
        "verified": proposal.checked,
        "lean_error": proposal.lean_error or None,
        "preset": preset,
        "candidates": candidates,
    }


def _print_text(result: dict[str, Any]) -> None:
    origin = {
        "state": "given",
        "repl": "from the Lean REPL",
        "lake-serve": "from lake serve",
        "statement": "from the statement",
    }
    print(f"goal ({origin.get(result['goal_source'], result['goal_source'])}):")
    print("  " + result["goal"].replace("\n", "\n  "))
    print()
    if not result["candidates"]:
        print("no candidates (the model's answers were empty, prose, unsafe or rejected by Lean)")
    for rank, c in enumerate(result["candidates"], 1):
        mark = ""
        if c["checked"]:
            left = c["goals_after"] or []
            mark = "  [closes the goal]" if c["outcome"] == "closed" else f"  [{len(left)} left]"
        body = c["text"].replace("\n", "\n" + " " * 14)
        print(f"{rank:>2}  {c['logprob']:>8.2f}  {body}{mark}")
