"""Checked ghost text at the cursor right after `by`: how often a user gets at least one
suggestion Lean accepts, before and after the goal-shaped openings, in one run.

The theorems are the easy core-Lean ones of `tests/fixtures/easy_core` (real Theorem
Proving in Lean 4 statements: implication, ∧, ∨, ↔, `rfl`, `trivial`). No Lean toolchain is
needed: the engine checks through the fake REPL's core-logic elaborator
(`tests/fakes/fake_repl.py --elaborate`), which answers as Lean does inside that fragment and
rejects what it does not model, so the rates are lower bounds of what real Lean would
accept. Each configuration runs the engine's own suggestion round (default model, `k`
candidates, segment preset, Lean checking on) once per seed; the table gives the median over
seeds of the share of cursors with a checked suggestion, and of the model and check seconds
per cursor. Configurations: `lead = "model"` (the model picks every token: the grammar
alone), `lead = "examples"` (a different likely tactic name per candidate), `lead = "goal"`
(the default: the goal's openings first).

    .venv/bin/python benchmarks/checked.py [--seeds 3] [-k 4] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from _report import machine, median, table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.graphs import write_graph  # noqa: E402

from segpilot.engine.service import Engine  # noqa: E402
from segpilot.engine.settings import editor_overrides, load_settings  # noqa: E402
from segpilot.lean.source import proof_site  # noqa: E402

EASY = ROOT / "tests" / "fixtures" / "easy_core" / "easy_core.jsonl"
FAKE = ROOT / "tests" / "fakes" / "fake_repl.py"
LEADS = ("model", "examples", "goal")
CHECKED = ("closed", "progress")


async def one_run(statements: list[str], lead: str, seed: int, k: int) -> tuple[int, float, float]:
    """(cursors with a checked suggestion, model seconds, check seconds) for one config."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        graph = write_graph(work / "graph.json", [], [])
        options = {
            "replCommand": [
                *(sys.executable, str(FAKE), str(graph)),
                *("--elaborate", "--unrecorded-tactics", "error"),
            ],
            "lsp": {"request_budget_s": 600, "check_budget_s": 600, "prefetch": False},
            "model": {"lead": lead, "seed": seed, "k": k, "budget_s": 600},
        }
        overrides, unknown = editor_overrides(options)
        assert not unknown, unknown
        engine = Engine(load_settings({}, overrides, environ={}))
        engine.projects.workspace_root = work
        project = engine.project_for(work / "Easy.lean")
        hits, model_s, check_s = 0, 0.0, 0.0
        try:
            for statement in statements:
                text = statement + " := by\n  \n"
                site = proof_site(text, statement.count("\n") + 1, 2)
                goal = await engine.goal_at(project, "file:///Easy.lean", text, site)
                proposal = await engine.suggestions(project, site, goal)
                if not proposal.checked:
                    raise SystemExit(f"Lean did not check: {proposal.lean_error}")
                model_s += proposal.model_s
                check_s += proposal.check_s
                items = proposal.items
                hits += any(i.outcome is not None and i.outcome.kind in CHECKED for i in items)
        finally:
            await engine.close()
        return hits, model_s, check_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="runs per configuration")
    parser.add_argument("-k", type=int, default=4, help="candidates per suggestion round")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    rows = [json.loads(line) for line in EASY.read_text(encoding="utf-8").splitlines() if line]
    statements = [r["statement"] for r in rows]
    n = len(statements)
    results: dict[str, list[tuple[int, float, float]]] = {lead: [] for lead in LEADS}
    started = time.perf_counter()
    for seed in range(args.seeds):
        for lead in LEADS:
            found = asyncio.run(one_run(statements, lead, seed, args.k))
            results[lead].append(found)
            print(f"seed {seed} lead={lead}: {found[0]}/{n}", file=sys.stderr)
    base = median([h for h, _, _ in results["model"]]) or 1
    out = []
    for lead in LEADS:
        runs = results[lead]
        hits = median([h for h, _, _ in runs])
        out.append(
            (
                f'`lead = "{lead}"`',
                f"{hits:g} / {n} ({100 * hits / n:.0f} %)",
                f"{hits / base:.2f}×",
                f"{median([m for _, m, _ in runs]) / n:.2f}",
                f"{median([c for _, _, c in runs]) / n:.3f}",
            )
        )
    body = "\n\n".join(
        [
            "## Checked suggestions after `by` (`benchmarks/checked.py`)",
            f"{machine()}; {n} easy core-Lean theorems (`tests/fixtures/easy_core`), the "
            f"default model, segment preset, k = {args.k}, Lean checking through the fake "
            f"REPL's core-logic elaborator; medians over {args.seeds} seeds "
            f"({time.perf_counter() - started:.0f} s in all).",
            table(
                [
                    "configuration",
                    "cursors with a checked suggestion",
                    "vs lead = model",
                    "model s/cursor",
                    "check s/cursor",
                ],
                out,
            ),
            "A checked suggestion closes the goal or changes it with no error. The fake "
            "rejects what it does not model (`simp`, `rw`, `obtain`, `rcases`, ...), so these "
            "are lower bounds of what real Lean accepts. Run: "
            "`.venv/bin/python benchmarks/checked.py`.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("checked", body)


if __name__ == "__main__":
    main()
