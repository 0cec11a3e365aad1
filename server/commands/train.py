"""`segpilot train`: LoRA-fine-tune the model on a segments file (see segpilot.training)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segpilot import config
from segpilot.engine.settings import Settings, TrainingSettings, load_settings
from segpilot.errors import SegpilotError

DESCRIPTION = """\
LoRA-fine-tune a causal language model on proof segments (what `segpilot data segments`
writes): the prompt is the goal state in the [model] preset's format, built by the same
code as at inference, and only the segment's tactic block carries loss.

Base: the default GGUF (de-quantised by transformers once, then kept in Hugging Face form in
the cache), another GGUF file, or a Hugging Face model folder (--base). CPU by default; the
GPU when torch sees one (--device). Batches hold examples of similar length up to
--batch-tokens tokens. A checkpoint is written every [training] checkpoint_every steps, at
each epoch's end and on Ctrl-C; --resume continues from the newest. The run is seeded and
deterministic. Validation loss after each epoch (on --valid, else on [training]
valid_share of the declarations, held out by --group-by).

ADAPTER_DIR gets peft's adapter files (adapter_config.json, adapter_model.safetensors), a
model card (README.md), the loss curve (loss.png), segpilot-training.json and checkpoints/.
`segpilot export ADAPTER_DIR -o adapter.gguf` makes it a llama.cpp adapter.

Several GPUs: accelerate launch -m segpilot train DATA.jsonl -o ADAPTER_DIR --device cuda
(or torchrun: each process takes its share of every batch; the gradients are summed,
so a step is the one a single process would take on the whole batch)."""

EPILOG = """\
examples:
  segpilot train segments.jsonl --output my-adapter
  segpilot train train.jsonl --valid valid.jsonl -o my-adapter --epochs 2 --lr 5e-4
  segpilot train segments.jsonl -o my-adapter --resume          # after Ctrl-C
  segpilot train segments.jsonl -o quick --max-steps 20 --rank 4
  segpilot train segments.jsonl -o big --base ./Qwen2.5-0.5B --device cuda --batch-tokens 8192"""

# Flag -> (setting, type, metavar)
FLAGS: dict[str, tuple[str, Any, str]] = {
    "--epochs": ("epochs", int, "N"),
    "--max-steps": ("max_steps", int, "N"),
    "--lr": ("lr", float, "LR"),
    "--rank": ("rank", int, "R"),
    "--batch-tokens": ("batch_tokens", int, "N"),
    "--seed": ("seed", int, "N"),
    "--device": ("device", str, "DEVICE"),
    "--base": ("base", str, "MODEL"),
}


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """The [training] flags train, finetune and watch share; help from the settings."""
    for flag, (name, kind, metavar) in FLAGS.items():
        parser.add_argument(
            flag, dest=name, type=kind, metavar=metavar, help=config.help_of(TrainingSettings, name)
        )


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name, _, _ in FLAGS.values()}


def project_run(args: argparse.Namespace) -> tuple[Path, Settings, Path]:
    """What finetune and watch start from: the Lean project (checked), the settings from
    the [training] and Lean flags, and the work folder (default PROJECT/.segpilot/finetune)."""
    from segpilot.training.trace import require_project

    project = require_project(args.project).resolve()
    if args.workers < 1:
        raise SegpilotError(f"--workers must be at least 1, not {args.workers}")
    settings = load_settings(
        overrides={
            "training": training_overrides(args),
            "lean": {"repl_command": args.repl_command, "check": args.check},
        }
    )
    return project, settings, args.workdir or project / ".segpilot" / "finetune"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="LoRA-fine-tune the model on a segments file",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("data", metavar="DATA.jsonl", type=Path, help="segments to train on")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="ADAPTER_DIR", help="adapter folder"
    )
    parser.add_argument("--valid", type=Path, metavar="VALID.jsonl", help="validation segments")
    parser.add_argument(
        "--group-by",
        default="file,theorem",
        metavar="FIELDS",
        help="fields naming a row's declaration, for the held-out share (default: file,theorem)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in ADAPTER_DIR"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_training_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.training.adapter import train

    if not args.data.is_file():
        raise SegpilotError(f"{args.data}: no such file")
    if args.output.exists() and not args.output.is_dir():
        raise SegpilotError(f"{args.output}: exists and is not a folder")
    settings = load_settings(overrides={"training": training_overrides(args)})
    group_by = tuple(f.strip() for f in args.group_by.split(",") if f.strip())
    result = train(
        args.data,
        args.output,
        settings,
        valid=args.valid,
        group_by=group_by,
        resume=args.resume,
        log=_say,
        progress_bar=not args.quiet,
    )
    first = "-" if result.first_loss is None else f"{result.first_loss:.3f}"
    last = "-" if result.last_loss is None else f"{result.last_loss:.3f}"
    valid = "-" if result.valid_loss is None else f"{result.valid_loss:.3f}"
    _say(
        f"{result.steps} steps in {result.seconds:.0f} s ({result.tokens_per_s:,.0f} tokens/s); "
        f"loss {first} -> {last}, validation {valid}"
    )
    _say(f"adapter in {args.output} (model card README.md, curve loss.png)")
    _say(f"next: segpilot export {args.output} --output {args.output}.gguf")
    return 0


def _say(text: str) -> None:
    print(f"segpilot: {text}", file=sys.stderr)
