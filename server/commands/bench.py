"""`segpilot bench SUITE.jsonl`: a theorem suite under several policy configurations and
runs, one budget, on any executor; results, summary and plot in `--out`
(`segpilot.engine.bench`)."""

from __future__ import annotations

import argparse
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
from segpilot.engine import bench
from segpilot.errors import SegpilotError
from segpilot.lean.project import find_project
from segpilot.textfiles import printable

DESCRIPTION = """\
Run a theorem suite under several policy configurations with the same budget: each theorem
is stated with `sorry` as its proof and searched as `segpilot prove` searches, once per
configuration and run. Results go to --out as they finish (results.jsonl), then the
summary (summary.md: solved %, median seconds to solve, Lean calls, tokens and expansions
per solved theorem) and the plot (solved.png, cumulative solved vs time). Needs Lean, in a
Lake project that has what the suite imports (--project)."""

EPILOG = """\
configurations (--configs, comma-separated): PRESET[+rollout][:KEY=VALUE,...]
  step, step+rollout, segment, segment+rollout, whole-proof (the default five), any other
  preset (bfs-prover, internlm-stepprover, your own), with model settings after a colon:
  bfs-prover+rollout:model=BFS-Prover-V2-7B.Q4_K_M.gguf,temperature=1.1

examples:
  segpilot bench suite.jsonl --out runs/core --project lean_project --budget-s 60
  segpilot bench minif2f_test.jsonl --out runs/f2f --project ~/mathlib-proj \\
      --budget-preset paper --runs 5 --executor ray --address auto
  segpilot bench suite.jsonl --out runs/core --resume     # continue after Ctrl-C or a crash

Rows of the suite: name, header (or imports and context), formal_statement (or statement),
as in miniF2F's JSON Lines."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a theorem suite under several configurations (research harness)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", type=Path, metavar="SUITE.jsonl")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--configs",
        default=",".join(bench.DEFAULT_CONFIGS),
        metavar="LIST",
        help=f"comma-separated configurations (default: {','.join(bench.DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--runs", type=int, default=1, metavar="N", help="runs (seeds seed..seed+N-1)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="the first N theorems only")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out, skipping finished jobs"
    )
    parser.add_argument(
        "--project", type=Path, metavar="DIR", help="the Lake project (default: the current one)"
    )
    add_search_flags(parser, presets=False)
    add_executor_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.runs < 1:
        raise SegpilotError("--runs must be at least 1")
    configs = [bench.parse_config(c) for c in args.configs.split(",") if c.strip()]
    labels = [c.label for c in configs]
    if not configs or len(set(labels)) != len(labels):
        raise SegpilotError("--configs must name at least one configuration, each once")
    model, search_settings = overrides(args)
    settings = settings_from(args, model=model, search=search_settings)
    theorems = bench.read_suite(args.suite, args.limit)
    project = (args.project or find_project(Path.cwd()) or Path.cwd()).resolve()
    require_lean(settings, [project], "bench")
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = bench.ResultsFile(args.out / bench.RESULTS, resume=args.resume)
    seed = settings.model.seed
    jobs = bench.plan_jobs(theorems, configs, args.runs, seed, project, settings)
    todo = [j for j in jobs if j.key not in results_file.done]
    print(
        f"{len(theorems)} theorems x {len(configs)} configurations x {args.runs} run(s): "
        f"{len(todo)} of {len(jobs)} jobs to run ({settings.search.wall_s:g} s, "
        f"{settings.search.expansions} expansions, k = {settings.search.k} each; "
        f"executor {args.executor})",
        file=sys.stderr,
    )
    executor = executor_from(args)
    cancelled = False
    try:
        if todo:
            _, cancelled = run_jobs(executor, todo, on_result=results_file.append)
    finally:
        executor.close()
    known = {j.key for j in jobs}
    finished = [r for key, r in results_file.done.items() if key in known]
    about = (
        f"Suite `{args.suite.name}` ({len(theorems)} theorems), {args.runs} run(s) from seed "
        f"{seed}; per theorem {settings.search.wall_s:g} s, {settings.search.expansions} "
        f"expansions, {settings.search.lean_calls} Lean calls, k = {settings.search.k}, "
        f"rollout depth {settings.search.rollout_depth}, trigger {settings.search.trigger}; "
        f"{len(finished)} of {len(jobs)} jobs finished."
    )
    table = bench.write_reports(args.out, finished, labels, len(theorems), args.runs, about)
    print(table)
    print(
        f"results: {printable(args.out / bench.RESULTS)}, summary: "
        f"{printable(args.out / bench.SUMMARY)}, plot: {printable(args.out / bench.PLOT)}",
        file=sys.stderr,
    )
    if cancelled:
        print(
            f"segpilot: stopped by Ctrl-C: {len(finished)} of {len(jobs)} jobs finished; "
            "continue with --resume",
            file=sys.stderr,
        )
        return 130
    return 0
