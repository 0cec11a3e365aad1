"""`segpilot eval`: score the policy's candidates on recorded steps or segments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from segpilot.commands.common import settings_from
from segpilot.errors import SegpilotError
from segpilot.model.settings import setting_help

DESCRIPTION = """\
Score the model's candidates on recorded proof steps: for each row of STEPS.jsonl (any file
`segpilot data segments` reads, or a segments file it wrote), k candidates for the recorded
goal state, compared with the recorded tactic (a step) or block (a segment). No Lean runs.

measures (overall, and per source file when there are several):
  well-formed     share of the k raw samples whose every tactic line starts with a tactic of
                  the lexicon (segpilot.model.lexicon) and whose brackets balance
  name@k          the recorded first tactic's name is some candidate's first tactic name
  first@k         some candidate's first line is the recorded first line (spaces normalised)
  segment@k       some candidate is the whole recorded block (spaces normalised)
  name@1, first@1 the same for the best-ranked candidate alone (what a user sees first)
  distinct/state  distinct accepted candidates per state
  s/state         seconds per state

--compare CONFIG ...: several configurations on the same rows in one run, side by side.
  A CONFIG is comma-separated KEY=VALUE pairs over the flags' settings, with KEY one of
  model, adapter, preset, k, temperature, top_p, seed, max_tokens, shots, lead, ranking,
  constrain;
  each starts from the settings the other flags give (config file < environment < flags <
  CONFIG)."""

EPILOG = """\
examples:
  segpilot eval steps.jsonl --limit 30 -k 8
  segpilot eval segments.jsonl --preset segment --seed 1 --json
  segpilot eval steps.jsonl --compare preset=step preset=segment --limit 30
  segpilot eval steps.jsonl --compare adapter=none adapter=mine.gguf --report eval.json
  segpilot eval steps.jsonl --compare "preset=segment,temperature=0.7" preset=segment"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score the model's candidates on recorded steps (well-formed, name@k, first@k)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("input", metavar="STEPS.jsonl", type=Path, help="steps or segments")
    parser.add_argument(
        "--model", dest="model_path", metavar="GGUF", help=setting_help("model_path")
    )
    parser.add_argument(
        "--adapter", dest="adapter_path", metavar="GGUF", help=setting_help("adapter_path")
    )
    parser.add_argument("--preset", help=setting_help("preset"))
    parser.add_argument("-k", dest="k", type=int, metavar="N", help=setting_help("k"))
    parser.add_argument("--seed", type=int, metavar="N", help=setting_help("seed"))
    parser.add_argument("--limit", type=int, metavar="N", help="score the first N rows only")
    parser.add_argument(
        "--compare", nargs="+", metavar="CONFIG", help="configurations to run side by side"
    )
    parser.add_argument("--json", action="store_true", help="print the reports as JSON")
    parser.add_argument("--report", metavar="FILE", help="also write the JSON reports to FILE")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot import textfiles
    from segpilot.engine import evaluate as ev
    from segpilot.model.policy import Policy

    if args.limit is not None and args.limit < 1:
        raise SegpilotError(f"--limit must be at least 1, not {args.limit}")
    if args.report:
        textfiles.check_output(args.report)
    with textfiles.open_lines(args.input) as lines:
        items, bad = ev.read_items(lines, str(args.input))
    for row in bad[:20]:
        print(f"{textfiles.printable(args.input)}: {row}", file=sys.stderr)
    items = items[: args.limit] if args.limit else items
    base: dict[str, Any] = {
        "model_path": args.model_path,
        "adapter_path": args.adapter_path,
        "preset": args.preset,
        "k": args.k,
        "seed": args.seed,
    }
    configs = [ev.parse_config(c) for c in args.compare] if args.compare else [("default", {})]
    reports = []
    for label, overrides in configs:
        model = {**base, **overrides}
        settings = settings_from(args, model).model
        with Policy(settings) as policy:
            reports.append(
                ev.evaluate(
                    items,
                    ev.policy_proposer(policy, settings.k),
                    config=label,
                    k=settings.k,
                    progress=_progress(label),
                )
            )
    result = [r.as_dict() for r in reports]
    if args.report:
        with textfiles.open_output(args.report) as out:
            out.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(ev.format_reports(reports))
    return 0


def _progress(label: str) -> Any:
    def bar(items: Any) -> Any:
        from tqdm import tqdm

        return tqdm(items, desc=label, unit="state", file=sys.stderr, leave=False)

    return bar
