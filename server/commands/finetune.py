"""`segpilot finetune`: trace -> segments -> split -> train -> export -> eval, in one command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segpilot.commands.common import add_lean_flags
from segpilot.commands.train import add_training_flags, project_run

DESCRIPTION = """\
Fine-tune the model on your own proofs, end to end: trace the project with the Lean REPL
(`segpilot trace`), cut the steps into segments ([training] rule, default change), split
them by declaration, train a LoRA adapter (`segpilot train`), export it for llama.cpp
(`segpilot export`) and compare the base model with the adapter on the held-out
declarations (`segpilot eval --compare adapter=none adapter=FILE`). A short report ends
the run: where the adapter is and how to use it.

Everything goes to the work folder (default PROJECT/.segpilot/finetune): traj.jsonl (and
its index), segments.jsonl, train.jsonl, valid.jsonl, adapter/ (peft files, model card,
loss curve, checkpoints), adapter.gguf and eval.json. A second run traces only the files
that changed."""

EPILOG = """\
examples:
  segpilot finetune ~/my-lean-proj
  segpilot finetune . --files 'MyProj/**/*.lean' --epochs 2 --workers 2
  segpilot finetune . --workdir runs/ft --max-steps 200 --eval-limit 20"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="trace, cut, split, train, export and evaluate in one go",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("project", metavar="PROJECT", type=Path, help="your Lean project")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="where everything goes")
    parser.add_argument("--files", metavar="GLOB", help="only files matching (relative paths)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="REPLs tracing")
    parser.add_argument(
        "--eval-limit",
        type=int,
        default=50,
        metavar="N",
        help="held-out segments to evaluate at most (default 50; 0 for all)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_training_flags(parser)
    add_lean_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.training.finetune import finetune

    project, settings, workdir = project_run(args)
    report = finetune(
        project,
        workdir,
        settings,
        pattern=args.files,
        workers=args.workers,
        eval_limit=args.eval_limit or None,
        log=_say,
        trace_progress=None if args.quiet else _files_bar,
        eval_progress=None if args.quiet else _eval_bar,
        progress_bar=not args.quiet,
    )
    print_report(report)
    return 0


def print_report(report: Any) -> None:
    p, t = report.paths, report.trace
    first, last, valid = (("-" if x is None else f"{x:.3f}") for x in report.losses)
    lines = [
        "",
        "segpilot finetune: done",
        f"  traced     {len(t.traced)} files ({t.unchanged} unchanged, {len(t.failed)} failed): "
        f"{t.rows} steps -> {p.trace}",
        f"  segments   {report.segments} -> {p.segments}",
        f"  split      {report.train_rows} training / {report.valid_rows} validation segments",
        f"  training   loss {first} -> {last}, validation {valid}",
        f"  model card {p.adapter / 'README.md'}",
        f"  adapter    {p.gguf}",
    ]
    lines += [f"  note       {n}" for n in report.notes]
    if report.eval_table:
        lines += ["", report.eval_table, f"(also in {p.eval_report})"]
    lines += [
        "",
        "use it:",
        f"  segpilot suggest --state '...' --adapter {p.gguf}",
        f'  or in config.toml: [model] adapter_path = "{p.gguf}" (the editor\'s adapterPath);',
        "  a running sidecar reloads the adapter when this file is rewritten",
    ]
    print("\n".join(lines))


def _say(text: str) -> None:
    print(f"segpilot: {text}", file=sys.stderr)


def _files_bar(items: Any, total: int) -> Any:
    from tqdm import tqdm

    return tqdm(items, total=total, desc="tracing", unit="file", file=sys.stderr, leave=False)


def _eval_bar(label: str) -> Any:
    def bar(items: Any) -> Any:
        from tqdm import tqdm

        return tqdm(items, desc=label, unit="state", file=sys.stderr, leave=False)

    return bar
