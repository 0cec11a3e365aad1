"""The small SQLite index beside a trace output: per file, the content hash it was traced at,
how it went, and its rows, so an unchanged file is never traced again and the output can be
rewritten whole from the index after a partial re-trace."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    rows TEXT NOT NULL DEFAULT '[]',
    traced_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Entry:
    path: str
    sha256: str
    status: str
    """`traced` or `failed` (Lean reported an error: the file is skipped)."""
    message: str
    rows: list[dict[str, Any]]


def index_path(output: Path) -> Path:
    """The index beside an output file: `traj.jsonl` -> `traj.jsonl.index.sqlite`."""
    return output.with_name(output.name + ".index.sqlite")


class TraceIndex:
    """Open (or create) the index of one trace output; use from one thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(str(path))
            self.db.execute(SCHEMA)
        except sqlite3.DatabaseError as err:
            raise SegpilotError(
                f"{path}: the trace index is unreadable ({err})", fix="delete it to trace afresh"
            ) from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TraceIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, sha256 FROM files"))

    def put(self, entry: Entry) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (
                    entry.path,
                    entry.sha256,
                    entry.status,
                    entry.message,
                    json.dumps(entry.rows, ensure_ascii=False),
                    time.time(),
                ),
            )

    def forget(self, paths: list[str]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths])

    def entries(self) -> Iterator[Entry]:
        """Every file, in path order."""
        for path, sha, status, message, rows in self.db.execute(
            "SELECT path, sha256, status, message, rows FROM files ORDER BY path"
        ):
            yield Entry(path, sha, status, message, json.loads(rows))
