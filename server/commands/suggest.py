"""`segpilot suggest`: propose tactic blocks for a goal state, ranked by the model's score.

The goal comes from `--state`, or from a position in a Lean file. For a file, `resolve_goal`
asks a goal source (the Lean language server, plugged in by the caller) and, when there is
none, falls back to an approximation read from the source text: the enclosing declaration's
binders become hypotheses and its type the target, i.e. the goal at the start of the proof,
whatever tactics come before the position. Candidates printed here are never checked by Lean.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segpilot.errors import SegpilotError
from segpilot.lean.goals import GoalState
from segpilot.lean.source import proof_site
from segpilot.model.settings import setting_help

if TYPE_CHECKING:
    from segpilot.model.candidates import Candidate

# (file, 1-based line, 0-based column) -> the goal Lean reports there, or None.
GoalSource = Callable[[Path, int, int], "GoalState | None"]

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
Propose the next proof segment for a goal with the local model, ranked by score (summed
log-probability). Candidates that could run code or change Lean's environment are dropped.
Nothing here is checked by Lean: `segpilot prove` and the editor integration do that.

With --file, the goal at LINE:COL comes from Lean when it is connected; otherwise it is read
from the enclosing theorem's statement (binders become hypotheses): the goal at the start of
the proof, an approximation once tactics have run."""

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
        help="propose tactic blocks for a goal state (unverified)",
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
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--show-rejected",
        action="store_true",
        help="also list candidates the safety filter dropped",
    )
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class GoalAt:
    """The goal to propose for, and where it came from: `state` (given), `lean` (reported by
    Lean) or `statement` (approximated from the declaration's text)."""

    state: str
    source: str
    theorem: str = ""
    name: str = ""
    proof_before: str = ""


def run(args: argparse.Namespace) -> int:
    from segpilot.model.policy import Policy
    from segpilot.model.settings import ModelSettings

    if args.file is not None:
        if args.line is None:
            raise SegpilotError("--file needs --line", fix="e.g. --file F.lean --line 12 --col 2")
        goal = resolve_goal(args.file, args.line, args.col, goal_source=lean_goal_source())
    else:
        goal = GoalAt(read_state_arg(args.state), "state")
    from segpilot.config import load_file

    settings = ModelSettings.from_mapping(load_file().get("model", {})).updated(
        preset=args.preset,
        model_path=args.model_path,
        adapter_path=args.adapter_path,
        **{name: getattr(args, name) for name in SAMPLING_FLAGS},
    )
    with Policy(settings) as policy:
        candidates = policy.propose(
            goal.state,
            theorem=goal.theorem,
            name=goal.name,
            proof_before=goal.proof_before,
            include_rejected=True,
        )
    accepted = [c for c in candidates if c.accepted]
    rejected = [c for c in candidates if not c.accepted]
    if args.json:
        print(json.dumps(_as_json(goal, settings.preset, accepted, rejected), ensure_ascii=False))
    else:
        _print_text(goal, accepted, rejected if args.show_rejected else [], len(rejected))
    return 0


def lean_goal_source() -> GoalSource | None:
    """Ask Lean's language server (`lake serve` in the file's project) when Lean is installed.

    Without Lean, or when Lean fails, this says so on stderr and `resolve_goal` falls back to
    the statement-based approximation."""
    if not shutil.which("lake"):
        print("segpilot: no Lean found: candidates are unverified", file=sys.stderr)
        return None

    def ask(path: Path, line: int, col: int) -> GoalState | None:
        from segpilot.environment import find_project
        from segpilot.lean.errors import LeanProcessError
        from segpilot.lean.lsp_client import goal_in_file

        project = find_project(path.parent)
        if project is None:
            print(f"segpilot: {path} is in no Lake project: goal not asked", file=sys.stderr)
            return None
        try:
            return goal_in_file(path, line, col, project_dir=project)
        except LeanProcessError as err:
            print(f"segpilot: Lean failed, goal approximated: {err}", file=sys.stderr)
            return None

    return ask


def read_state_arg(value: str) -> str:
    """The goal state from --state: `-` reads stdin; a literal backslash-n is a line break."""
    text = sys.stdin.read() if value == "-" else value
    text = text.replace("\\n", "\n").strip("\n")
    if not text.strip():
        raise SegpilotError("the goal state is empty")
    return text


def resolve_goal(path: Path, line: int, col: int, goal_source: GoalSource | None = None) -> GoalAt:
    """The goal at `line`:`col` of `path`: from `goal_source` when it answers, else read from
    the enclosing declaration's statement."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SegpilotError(f"{path}: cannot read the file ({err.strerror})") from None
    site = proof_site(text, line - 1, col)
    found = (site.theorem, site.name, site.proof_before)
    if goal_source is not None:
        state = goal_source(path, line, col)
        if state is not None:
            return GoalAt(state.pretty(), "lean", *found)
    return GoalAt(site.statement_goal, "statement", *found)


def _as_json(goal: GoalAt, preset: str, accepted: list[Candidate], rejected: list[Candidate]):
    return {
        "goal": goal.state,
        "goal_source": goal.source,
        "verified": False,
        "preset": preset,
        "candidates": [
            {
                "text": c.text,
                "tactics": list(c.tactics),
                "logprob": round(c.logprob, 4),
                "n_tokens": c.n_tokens,
                "uses_sorry": c.uses_sorry,
            }
            for c in accepted
        ],
        "rejected": [{"text": c.text, "reason": c.rejected_reason} for c in rejected],
    }


def _print_text(
    goal: GoalAt, accepted: list[Candidate], shown_rejected: list[Candidate], n_rejected: int
) -> None:
    origin = {"state": "given", "lean": "from Lean", "statement": "from the statement"}
    print(f"goal ({origin[goal.source]}):")
    print("  " + goal.state.replace("\n", "\n  "))
    print()
    if not accepted:
        print("no candidates (the model's answers were empty, prose, or unsafe)")
    for rank, c in enumerate(accepted, 1):
        mark = "  (uses sorry: not a proof)" if c.uses_sorry else ""
        body = c.text.replace("\n", "\n" + " " * 14)
        print(f"{rank:>2}  {c.logprob:>8.2f}  {body}{mark}")
    for c in shown_rejected:
        print(f"rejected: {c.text.splitlines()[0]!r}: {c.rejected_reason}")
    if n_rejected and not shown_rejected:
        print(f"({n_rejected} rejected by the safety filter; --show-rejected lists them)")
    print("candidates are unverified: Lean has not checked them", file=sys.stderr)
