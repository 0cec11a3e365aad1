"""Shared by the benchmark scripts: summary statistics and the BENCHMARKS.md writer.

Each script owns one section of BENCHMARKS.md, fenced by HTML comments, and rewrites only
that section, so the scripts can run in any order.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"
_TITLE = (
    "# Benchmarks\n\nWritten by the scripts in `benchmarks/`; each section is rewritten by the "
    "script named in it. Medians over repeated runs; ratios are against a baseline measured in "
    "the same run.\n"
)


# The console script users run (the benchmarks run commands as users do).
SEGPILOT = str(Path(sys.executable).with_name("segpilot"))


@dataclass
class MeasuredRun:
    returncode: int
    seconds: float
    stderr: str
    peak_mb: float
    """Peak resident memory of the process and its children together, sampled every 50 ms
    (0 where Linux's /proc is missing)."""


def run_measured(argv: Sequence[str]) -> MeasuredRun:
    """Run a command to its end, timing it and sampling the memory of its process tree."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(list(argv), stderr=stderr)
        peak_kb = 0
        while process.poll() is None:
            peak_kb = max(peak_kb, sum(_rss_kb(pid) for pid in _process_tree(process.pid)))
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        stderr.seek(0)
        said = stderr.read().decode("utf-8", "replace")
    return MeasuredRun(process.returncode, seconds, said, peak_kb / 1024)


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (Linux /proc; just `pid` elsewhere)."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += _process_tree(int(child))
    return found


def _rss_kb(pid: int) -> int:
    """Resident memory of a live process in KiB (0 when gone or unknown)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def machine() -> str:
    """One line describing where the numbers were taken."""
    return (
        f"{os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d}"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(name: str, body: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the section called `name` in BENCHMARKS.md (append it if new)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _TITLE
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
