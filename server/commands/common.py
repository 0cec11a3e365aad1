"""What the commands that use the engine share: the Lean flags, building the settings and
the engine from flags, reading a cursor in a file, running the engine's coroutines."""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from segpilot import config
from segpilot.engine.settings import Settings, load_settings
from segpilot.errors import SegpilotError
from segpilot.lean.settings import LeanSettings
from segpilot.lean.source import ProofSite, proof_site
from segpilot.textfiles import read_text

T = TypeVar("T")


def add_lean_flags(parser: argparse.ArgumentParser) -> None:
    """`--repl-command` and `--no-check`, described by the `[lean]` settings."""
    parser.add_argument(
        "--repl-command",
        type=shlex.split,
        metavar="CMD",
        help=f"{config.help_of(LeanSettings, 'repl_command')} (shell words; [lean] "
        "repl_command, SEGPILOT_LEAN_REPL_COMMAND)",
    )
    parser.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        default=None,
        help="do not run Lean ([lean] check = false)",
    )


def settings_from(
    args: argparse.Namespace,
    model: Mapping[str, Any] | None = None,
    search: Mapping[str, Any] | None = None,
) -> Settings:
    """The effective settings: config file < environment < these flags."""
    lean = {
        "repl_command": getattr(args, "repl_command", None),
        "check": getattr(args, "check", None),
    }
    return load_settings(
        overrides={"model": dict(model or {}), "lean": lean, "search": dict(search or {})}
    )


def cursor_site(path: Path, line: int | None, column: int) -> tuple[str, ProofSite]:
    """The file's text and the proof site at a 1-based line and 0-based column."""
    if line is None:
        raise SegpilotError("--file needs --line", fix="e.g. --file F.lean --line 12 --col 2")
    text = read_text(path)
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        raise SegpilotError(f"{path}: line {line} is outside the file (1-{len(lines)})")
    if not 0 <= column <= len(lines[line - 1]):
        raise SegpilotError(
            f"{path}:{line}: column {column} is outside the line (0-{len(lines[line - 1])})"
        )
    return text, proof_site(text, line - 1, column)


def run_engine(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run an engine coroutine to its end (Ctrl-C ends it; the CLI says so)."""
    return asyncio.run(coroutine)
