"""`segpilot serve`: the LSP sidecar over stdio, for VS Code and any LSP editor."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

DESCRIPTION = """\
Run the segpilot language server on stdin/stdout. Editors start it themselves; it offers
inline completion (multi-tactic segments as ghost text, checked by Lean when Lean is found),
code actions, and the commands segpilot.proveTheorem, segpilot.proveFile and
segpilot.reloadModel. Settings come from the editor (initializationOptions and
workspace/didChangeConfiguration) over the config file's [lsp] and [model] tables.
Logs go to the editor as window/logMessage (its output panel) and to --log-file; stderr gets
only warnings and errors from before the editor is connected; stdout carries only the
protocol. Settings: `segpilot config` lists them all."""

EPILOG = """\
examples:
  segpilot serve                                 what an editor runs
  segpilot serve --log-file /tmp/segpilot.log --log-level debug
  nvim (0.10+): vim.lsp.start({ name = "segpilot", cmd = { "segpilot", "serve" } })"""

LEVELS = ("debug", "info", "warning", "error")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the LSP sidecar on stdio (editors start this)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--stdio", action="store_true", help="talk over stdin/stdout (the default and only way)"
    )
    parser.add_argument("--log-file", type=Path, metavar="PATH", help="also append logs here")
    parser.add_argument(
        "--log-level", choices=LEVELS, default="info", help="log detail (default: info)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from segpilot.config import load_file
    from segpilot.lsp.logs import ClientLogHandler
    from segpilot.lsp.server import make_server

    server = make_server(load_file())
    handlers: list[logging.Handler] = [ClientLogHandler(server)]
    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log_file, encoding="utf-8"))
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    # pygls logs every message body at info level.
    logging.getLogger("pygls").setLevel(logging.WARNING)
    server.start_io()
    return 0 if server.shutdown_requested else 1
