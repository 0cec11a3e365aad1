#!/usr/bin/env python3
"""Build segpilot's built-in few-shot bank, `server/model/data/examples.jsonl`, from the real
Lean output in `tests/fixtures/trajectories/` (see that folder's README for provenance).

Rows: `state` (the goals before the tactic, joined by blank lines, as Lean prints them),
`tactic`, `n_goals_before`, `n_goals_after`, `source` (`owner/repo@commit:path`). Sources:

* Pantograph's saved `tactic_invocations` (goals before and after, as recorded);
* LeanInk's test expectations (Theorem Proving in Lean 4 examples, playground files and
  core's `Init/Data/Nat/Basic.lean`). LeanInk gives each tactic sentence the goals after it
  inside its focus, a `.` bullet the goal it focuses, and whitespace the goals at the start
  of its block, so the goals before a tactic are known only in three cases, the ones kept:
  it follows a bullet (the focused goal), it opens a block (the whitespace before it), or it
  follows a tactic at the same column that left goals open (that tactic's goals after).
  Anything else (a tactic after a closed focus, alternatives of `induction ... with`) is
  skipped.

The REPL transcripts are left out on purpose: `segpilot eval` measures on them, so the
shipped examples never include an evaluated row. Kept: whole tactics only (well-formed,
passing the safety filter, no `case ... =>` headers). Rerun after changing the fixtures:
    .venv/bin/python scripts/build_examples.py
"""

from __future__ import annotations

import json
from pathlib import Path

from segpilot.model import safety
from segpilot.model.lexicon import well_formed

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "trajectories"
OUTPUT = ROOT / "server" / "model" / "data" / "examples.jsonl"
BULLETS = {".", "·"}
OPENERS = {"by"}


def _indent(whitespace: str) -> int | None:
    return len(whitespace.rsplit("\n", 1)[1]) if "\n" in whitespace else None


def leanink_rows(path: Path) -> list[dict[str, object]]:
    by_file: dict[str, list[dict[str, object]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_file.setdefault(row["source"], []).append(row)
    out: list[dict[str, object]] = []
    for source, sentences in by_file.items():
        sentences.sort(key=lambda r: r["fragment_index"])
        prev: dict[str, object] | None = None  # the last non-whitespace sentence
        prev_column: int | None = None
        space: dict[str, object] | None = None  # the whitespace right before this sentence
        for row in sentences:
            if row["is_whitespace"]:
                space = row
                continue
            text = str(row["text"]).strip()
            column = _indent(str(space["text"])) if space else None
            before: list[str] | None = None
            if prev is not None and text not in BULLETS | OPENERS and "\n" not in text:
                prev_text = str(prev["text"]).strip()
                if prev_text in BULLETS:
                    before = list(prev["goals"])  # type: ignore[arg-type]
                elif prev_text in OPENERS and space is not None:
                    before = list(space["goals"])  # type: ignore[arg-type]
                elif column is not None and column == prev_column and prev["goals"]:
                    before = list(prev["goals"])  # type: ignore[arg-type]
            if before and not text.endswith("with"):
                out.append(
                    {
                        "state": "\n\n".join(before),
                        "tactic": text,
                        "n_goals_before": len(before),
                        "n_goals_after": None,
                        "source": source,
                    }
                )
            if text not in BULLETS:
                prev_column = column
            prev, space = row, None
    return out


def pantograph_rows(path: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.get("goals_before"):
            out.append(
                {
                    "state": "\n\n".join(row["goals_before"]),
                    "tactic": row["tactic"],
                    "n_goals_before": row["n_goals_before"],
                    "n_goals_after": row["n_goals_after"],
                    "source": row["source"].split(" ", 1)[0],
                }
            )
    return out


def main() -> None:
    rows = pantograph_rows(FIXTURES / "pantograph_doc_invocations.jsonl")
    rows += leanink_rows(FIXTURES / "leanink_sentences.jsonl")
    seen: set[tuple[str, str]] = set()
    unique = []
    for row in rows:
        key = (str(row["state"]), str(row["tactic"]))
        # Only whole, safe tactics: LeanInk cuts some sentences inside brackets (`rw [`).
        usable = well_formed(key[1]) and safety.check(key[1]).ok and "=>" not in key[1]
        if usable and key not in seen:
            seen.add(key)
            unique.append(row)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    with OUTPUT.open("w", encoding="utf-8") as out:
        for row in unique:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{OUTPUT.relative_to(ROOT)}: {len(unique)} examples")


if __name__ == "__main__":
    main()
