"""What proof runs report: a summary table, and the cumulative solved-vs-time plot (the
paper's Figure 6: theorems solved by time t, on a log(1 + t) axis)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from segpilot.engine.jobs import JobResult
from segpilot.errors import SegpilotError
from segpilot.textfiles import printable

_TICKS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1800, 3600)


@dataclass(frozen=True)
class Curve:
    """One line of the plot: the seconds each solved theorem took, over `runs` runs of
    `total` theorems each."""

    solved_s: tuple[float, ...]
    total: int
    runs: int = 1


def curve(results: Sequence[JobResult], total: int, runs: int = 1) -> Curve:
    return Curve(tuple(sorted(r.seconds for r in results if r.status == "proved")), total, runs)


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(header))
    ]
    lines = []
    for row in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            ).rstrip()
        )
    return "\n".join(lines)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def results_table(results: Sequence[JobResult]) -> str:
    """One row per theorem and a total: what `segpilot prove` prints at the end."""
    rows: list[list[object]] = [
        [r.theorem, r.status, f"{r.seconds:.1f}", r.expansions, r.lean_calls, r.tokens]
        for r in results
    ]
    proved = sum(r.status == "proved" for r in results)
    rows.append(
        [
            f"total: {proved}/{len(results)} proved",
            "",
            f"{sum(r.seconds for r in results):.1f}",
            sum(r.expansions for r in results),
            sum(r.lean_calls for r in results),
            sum(r.tokens for r in results),
        ]
    )
    return text_table(["theorem", "status", "seconds", "expansions", "lean calls", "tokens"], rows)


def plot_solved(curves: Mapping[str, Curve], path: Path, title: str) -> None:
    """The cumulative share of theorems solved by time t, one line per curve, x on a
    log(1 + t) scale, written as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError as err:  # pragma: no cover - a dependency of segpilot
        raise SegpilotError(f"plotting needs matplotlib: {err}") from None
    figure, axes = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    longest = max((max(c.solved_s, default=0.0) for c in curves.values()), default=0.0)
    end = max(longest * 1.1, 1.0)
    for label, line in curves.items():
        times = np.array([0.0, *line.solved_s, end])
        solved = np.array([0, *range(1, len(line.solved_s) + 1), len(line.solved_s)])
        share = 100.0 * solved / max(line.total * line.runs, 1)
        axes.step(times, share, where="post", label=f"{label} ({share[-1]:.0f}%)")
    axes.set_xscale("function", functions=(np.log1p, np.expm1))
    axes.set_xlim(0, end)
    axes.set_xticks([t for t in _TICKS if t <= end])
    axes.set_xticklabels([f"{t:g}" for t in _TICKS if t <= end])
    axes.set_xlabel("seconds per theorem (log(1 + t) scale)")
    axes.set_ylabel("theorems solved (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    try:
        figure.savefig(path, format="png")
    except OSError as err:
        raise SegpilotError(f"cannot write {printable(path)}: {err.strerror or err}") from None
    finally:
        plt.close(figure)
