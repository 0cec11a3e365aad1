"""`segpilot watch`: re-trace saved proofs, keep the segments current, retrain and export."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segpilot.commands.common import add_lean_flags
from segpilot.commands.train import add_training_flags, project_run
from segpilot.errors import SegpilotError

DESCRIPTION = """\
Watch a Lean project while you write proofs. On start, the files that changed since the
last run are traced; then each save of a .lean file (after [training] debounce_s without
another save) traces that file again, alone, and rebuilds the segments. Once [training]
retrain_after new segments have come, the adapter is trained again from its last weights
and exported over the work folder's adapter.gguf; a sidecar serving that file
(`[model] adapter_path`) reloads it by itself. Ctrl-C stops.

The work folder is finetune's (default PROJECT/.segpilot/finetune), so `segpilot finetune`
once, then `segpilot watch`, is the intended order."""

EPILOG = """\
examples:
  segpilot watch ~/my-lean-proj
  segpilot watch . --files 'MyProj/**/*.lean' --epochs 1
  SEGPILOT_TRAINING_RETRAIN_AFTER=20 segpilot watch ."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="re-trace saved proofs and retrain the adapter as you write",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("project", metavar="PROJECT", type=Path, help="your Lean project")
    parser.add_argument("--workdir", type=Path, metavar="DIR", help="the work folder")
    parser.add_argument("--files", metavar="GLOB", help="only files matching (relative paths)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="REPLs tracing")
    add_training_flags(parser)
    add_lean_flags(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import threading

    from segpilot.training.watch import Debounced, Watch

    project, settings, workdir = project_run(args)
    watch = Watch(project, workdir, settings, pattern=args.files, workers=args.workers, log=_say)
    report = watch.start()
    _say(
        f"{len(report.traced)} files traced, {report.unchanged} unchanged; "
        f"{watch.pending} new segments of {settings.training.retrain_after} before training"
    )
    failures: list[BaseException] = []

    def handle(paths: set[Path]) -> None:
        try:
            step = watch.saved(paths)
        except SegpilotError as err:  # a bad save must not end the watch
            _say(f"error: {err}")
            return
        except BaseException as err:
            failures.append(err)
            stopped.set()
            return
        failed = [f"{p} ({e})" for p, e in step.report.failed.items()]
        _say(
            f"traced {', '.join(step.files) or 'nothing'}: {step.new_segments} new segments"
            + (f"; failed: {'; '.join(failed)}" if failed else "")
            + ("; adapter trained and exported" if step.retrained else f"; {step.pending} pending")
        )

    stopped = threading.Event()
    debounced = Debounced(project, settings.training.debounce_s, handle)
    debounced.start()
    _say(f"watching {project} (Ctrl-C stops)")
    try:
        stopped.wait()
    finally:
        debounced.stop()
    if failures:
        raise failures[0]
    return 0


def _say(text: Any) -> None:
    print(f"segpilot: {text}", file=sys.stderr)
