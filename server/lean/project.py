"""Lake projects: where a Lean file's project root is (the REPL and `lake serve` run there)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

LAKEFILES = ("lakefile.toml", "lakefile.lean")


def find_project(start: Path) -> Path | None:
    """The Lake project (folder with a lakefile) containing `start`, if any."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in LAKEFILES):
            return folder
    return None


def command_found(command: list[str], root: Path, path: str | None = None) -> bool:
    """Whether the program of `command` exists: on PATH (or `path`), or as a path (relative
    ones are taken from `root`, where the command runs)."""
    program = command[0]
    if "/" in program:
        where = Path(program) if Path(program).is_absolute() else root / program
        return where.is_file() and os.access(where, os.X_OK)
    return shutil.which(program, path=path) is not None
