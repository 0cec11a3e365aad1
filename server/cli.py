"""The `segpilot` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from segpilot import __version__
from segpilot.errors import SegpilotError

EPILOG = """examples:
  segpilot doctor                       what is installed, what is missing, and the fix
  segpilot data segments steps.jsonl --rule change --output segments.jsonl
  segpilot goals Demo.lean --line 16 --col 2 --json   the goals at a cursor
  segpilot suggest --state "x y : Nat\\n⊢ x + y = y + x" -k 4
  segpilot eval steps.jsonl --compare preset=step preset=segment --limit 30
  segpilot prove Demo.lean --dry-run --diff   fill sorries by proof search
  segpilot bench suite.jsonl --out runs/x     a theorem suite under several policies
  segpilot trace ~/my-proj -o traj.jsonl    every tactic step of your proofs, for training
  segpilot train segments.jsonl -o my-adapter   LoRA-fine-tune the model on your segments
  segpilot export my-adapter -o my-adapter.gguf the adapter for llama.cpp (--adapter)
  segpilot finetune ~/my-proj               trace, train, export and evaluate in one go
  segpilot watch ~/my-proj                  keep the data current and retrain as you write
  segpilot config                       every effective setting and where it came from
  segpilot serve                        the LSP sidecar on stdio (editors start it)

Set SEGPILOT_DEBUG=1 to see full tracebacks."""


def make_parser() -> argparse.ArgumentParser:
    # The commands are imported here, not with this module: the worker processes that
    # `data segments` spawns import the `segpilot` script, hence this module, and need none
    # of them (they would cost each worker a second and 25 MB).
    from segpilot.commands import (
        bench,
        config,
        data,
        doctor,
        eval,
        export,
        finetune,
        goals,
        prove,
        serve,
        suggest,
        trace,
        train,
        watch,
    )

    parser = argparse.ArgumentParser(
        prog="segpilot",
        description="Lean 4 proof companion: checked multi-tactic segment suggestions "
        "from a local model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"segpilot {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (
        doctor,
        config,
        data,
        goals,
        suggest,
        eval,
        prove,
        bench,
        trace,
        train,
        export,
        finetune,
        watch,
        serve,
    ):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SegpilotError as err:
        if os.environ.get("SEGPILOT_DEBUG"):
            raise
        print(f"segpilot: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("segpilot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
