"""What a segments (or steps) file holds: segment lengths and goal-count moves, as text and
as a PNG."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError
from segpilot.training.examples import group_key, object_rows


@dataclass
class Stats:
    """Counts over one file. A segments row has `tactics`, `n_goals_before/after`; a steps row
    (what `segpilot trace` writes) has `tactic` and goal lists: one tactic per row."""

    kind: str = ""
    rows: int = 0
    lengths: Counter[int] = field(default_factory=Counter)
    """Tactics per segment (1 for a step)."""
    moves: Counter[int] = field(default_factory=Counter)
    """n_goals_after - n_goals_before."""
    closes: int = 0
    """Rows that end with no goals left."""
    target_chars: list[int] = field(default_factory=list)
    groups: set[str] = field(default_factory=set)

    def summary(self) -> str:
        n = self.rows or 1
        total = sum(k * v for k, v in self.lengths.items())
        chars = sorted(self.target_chars)
        lines = [
            f"{self.rows} {self.kind} rows in {len(self.groups)} declarations; {total} tactics",
            f"tactics per {self.kind[:-1] or 'row'}: mean {total / n:.2f}, "
            + ", ".join(f"{k}: {v}" for k, v in sorted(self.lengths.items())),
            "goal-count moves (after - before): "
            + ", ".join(f"{k:+d}: {v}" for k, v in sorted(self.moves.items())),
            f"rows ending with no goals: {self.closes} ({100 * self.closes / n:.1f} %)",
        ]
        if chars:
            lines.append(
                f"target characters: median {chars[len(chars) // 2]}, "
                f"90th percentile {chars[min(len(chars) - 1, int(0.9 * len(chars)))]}, "
                f"longest {chars[-1]}"
            )
        return "\n".join(lines)


def _count(row: dict[str, Any], side: str) -> int | None:
    value = row.get(f"n_goals_{side}")
    if isinstance(value, int):
        return value
    goals = row.get(f"goals_{side}")
    return len(goals) if isinstance(goals, list) else None


def read_stats(path: Path, by: tuple[str, ...] = ("file", "theorem")) -> Stats:
    stats = Stats()
    for number, _, row in object_rows(path):
        if isinstance(row.get("tactics"), list):
            kind, n, target = "segments", len(row["tactics"]), row.get("target", "")
        elif isinstance(row.get("tactic"), str):
            kind, n, target = "steps", 1, row["tactic"]
        else:
            raise SegpilotError(f"{path}:{number}: neither a segment nor a step row")
        if stats.kind and kind != stats.kind:
            raise SegpilotError(f"{path}:{number}: a {kind[:-1]} row among {stats.kind}")
        stats.kind = kind
        stats.rows += 1
        stats.lengths[n] += 1
        stats.target_chars.append(len(target) if isinstance(target, str) else 0)
        before, after = _count(row, "before"), _count(row, "after")
        if before is not None and after is not None:
            stats.moves[after - before] += 1
            stats.closes += after == 0
        stats.groups.add(group_key(row, by))
    if not stats.rows:
        raise SegpilotError(f"{path}: no rows")
    return stats


def plot_stats(stats: Stats, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    xs = sorted(stats.lengths)
    left.bar(xs, [stats.lengths[x] for x in xs], color="#369")
    left.set_xlabel("tactics per segment")
    left.set_ylabel("rows")
    left.set_xticks(xs)
    moves = sorted(stats.moves)
    right.bar([f"{m:+d}" for m in moves], [stats.moves[m] for m in moves], color="#c63")
    right.set_xlabel("goal-count move (after - before)")
    right.set_ylabel("rows")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
