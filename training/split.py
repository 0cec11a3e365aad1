"""Train/validation split by declaration: every row of a declaration lands on the same side,
so validation never sees a proof that training saw part of. Seeded, and streaming: the file
is read twice (once for the declarations, once to write), never held in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segpilot.errors import SegpilotError
from segpilot.textfiles import open_output
from segpilot.training.examples import group_key, object_rows, split_groups


@dataclass(frozen=True)
class SplitReport:
    train_rows: int
    valid_rows: int
    train_groups: int
    valid_groups: int


def split_file(
    source: Path, train: Path, valid: Path, *, share: float, seed: int, by: tuple[str, ...]
) -> SplitReport:
    """Write the rows of `source` to `train` and `valid`, about `share` of the declarations
    (rows with equal `by` fields) to `valid`."""
    if not 0 < share < 1:
        raise SegpilotError(f"--valid-share must be between 0 and 1, not {share}")
    groups: set[str] = set()
    for number, _, row in object_rows(source):
        missing = [f for f in by if f not in row]
        if missing:
            raise SegpilotError(
                f"{source}:{number}: no field {missing[0]!r} to split by",
                fix="name the fields that identify a declaration with --by",
            )
        groups.add(group_key(row, by))
    if len(groups) < 2:
        raise SegpilotError(
            f"{source}: {len(groups)} declaration(s); a split by declaration needs two or more"
        )
    held = split_groups(groups, share, seed)
    counts = [0, 0]
    with open_output(train) as t_out, open_output(valid) as v_out:
        for _, raw, row in object_rows(source):
            side = group_key(row, by) in held
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            (v_out if side else t_out).write(line.rstrip("\r\n") + "\n")
            counts[side] += 1
    return SplitReport(counts[0], counts[1], len(groups) - len(held), len(held))
