#!/usr/bin/env python3
"""Re-derive tests/fixtures/easy_core/easy_core.jsonl from the core benchmark.

A row is kept when it needs nothing before it (`self_contained`, no `imports`), its
statement, as `STATEMENT := by sorry`, lies in the fragment that the fake REPL's elaborator
models (tests/fakes/core_logic.py `parse_declaration`), it is easy logic (no `*`; `+` only
in a statement without variables, as `2 + 3 = 5`), and no earlier row has the same
statement (up to whitespace): one row per statement. Rows keep their provenance fields.

Usage: scripts/select_easy_core.py [CORE_BENCHMARK_JSONL] [--check]
(default: ../shared/data/core-benchmark/core_benchmark.jsonl beside the checkout; with
`--check`, compare with the committed file instead of writing it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes import core_logic  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "core-benchmark" / "core_benchmark.jsonl"
OUT = ROOT / "tests" / "fixtures" / "easy_core" / "easy_core.jsonl"
KEEP = ("name", "source", "statement", "proof", "tactics", "proof_checked_with")


def easy(statement: str) -> bool:
    decl = core_logic.parse_declaration(statement + " := by sorry")
    if decl is None or "*" in statement:
        return False
    return "+" not in statement or (
        decl.goal.startswith("⊢") and not any(c.isalpha() for c in decl.goal)
    )


def select(rows: list[dict]) -> list[dict]:
    chosen, seen = [], set()
    for row in rows:
        key = " ".join(row["statement"].split())
        if not row.get("self_contained") or row.get("imports") or key in seen:
            continue
        if not easy(row["statement"]):
            continue
        seen.add(key)
        chosen.append({k: row[k] for k in KEEP})
    return chosen


def render(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--check"]
    source = Path(args[0]) if args else DEFAULT
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    text = render(select(rows))
    if "--check" in argv:
        same = OUT.read_text(encoding="utf-8") == text
        print("up to date" if same else "differs")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"{text.count(chr(10))} rows -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
