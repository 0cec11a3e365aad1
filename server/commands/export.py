"""`segpilot export`: an adapter folder from `segpilot train` -> a GGUF file for llama.cpp."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segpilot import config
from segpilot.engine.settings import TrainingSettings, load_settings
from segpilot.errors import SegpilotError

DESCRIPTION = """\
Write the adapter as a GGUF LoRA adapter for llama.cpp (f32 or q8_0; f16 adapters decode
about 4.5x slower on CPU and are never written), with the `gguf` package. Load it with
`segpilot suggest --adapter FILE`, the [model] adapter_path setting, or the editor's
adapterPath (the sidecar reloads it when the file is rewritten).

--merge writes the base GGUF with the update merged into the tensors the adapter touches
instead (q8_0 by default, or f16/f32; the other tensors are copied unchanged). Q4_0 and
Q4_1 are refused: a LoRA update is far smaller than a 4-bit step and rounding erases it."""

EPILOG = """\
examples:
  segpilot export my-adapter --output my-adapter.gguf
  segpilot export my-adapter -o my-adapter-q8.gguf --type q8_0
  segpilot export my-adapter -o merged-q8_0.gguf --merge
  segpilot suggest --state "p q : Prop\\nhp : p\\nhq : q\\n⊢ p ∧ q" --adapter my-adapter.gguf"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained adapter as a GGUF LoRA adapter (or a merged model) for llama.cpp",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("adapter", metavar="ADAPTER_DIR", type=Path, help="from segpilot train")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.gguf")
    parser.add_argument(
        "--type",
        dest="outtype",
        metavar="TYPE",
        help=f"{config.help_of(TrainingSettings, 'export_type')}: f32 or q8_0; with --merge "
        "q8_0 (default), f16 or f32",
    )
    parser.add_argument("--merge", action="store_true", help="write a merged model instead")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.training.export import export_adapter, export_merged

    if not args.adapter.is_dir():
        raise SegpilotError(f"{args.adapter}: no such adapter folder")
    if args.output.is_dir():
        raise SegpilotError(f"{args.output}: is a folder; give a file name ending in .gguf")
    if args.merge:
        done = export_merged(args.adapter, args.output, args.outtype or "q8_0")
        what = "merged model"
    else:
        outtype = args.outtype or load_settings().training.export_type
        done = export_adapter(args.adapter, args.output, outtype)
        what = "LoRA adapter"
    types = ", ".join(f"{n} {k.lower()}" for k, n in sorted(done["types"].items()))
    print(
        f"segpilot: wrote the {what} {args.output} ({done['bytes'] / 1e6:.1f} MB; "
        f"{done['tensors']} tensors: {types})",
        file=sys.stderr,
    )
    return 0
