"""Proof search by configuration, and the executors' cost, in one run.

1. The five policy configurations of `segpilot bench` (step, step+rollout, segment,
   segment+rollout, whole-proof) on a suite, with the same budget: solved, Lean calls,
   tokens and expansions per solved theorem. `--suite deep` (the default):
   `tests/fixtures/deep_core`, 25 propositional theorems whose reference proofs take 2-10
   tactics, most of them branching (∧, ∨, ↔ split the goal, so the open-goal count rises
   and falls several times);
   `--suite easy`: `tests/fixtures/easy_core`, the 25 real TPiL statements, most of which
   close in one or two blocks. No Lean toolchain is needed: Lean is the fake REPL's
   core-logic elaborator (`tests/fakes/fake_repl.py --elaborate`), which answers as Lean
   does inside its fragment and refuses what it does not model, so a tactic outside the
   fragment counts as an error (real Lean would accept some of them). The target: rollout
   at most 0.8x the Lean calls per solved theorem, solving at least as many.
2. Scaling: the same jobs on the `processes` executor with 1 and with 2 workers (wall time).
3. Ray: the overhead per job against in-process, on jobs that need one model call and one
   Lean check each (`example : True := by sorry`), Ray started on loopback in this process
   (its start-up reported apart).

Every configuration runs `--repeat` times (seeds seed..seed+R-1); medians over repeats.

    .venv/bin/python benchmarks/search.py [--suite deep|easy] [--limit 25] [--repeat 1]
        [--expansions 8] [-k 4] [--skip-scaling] [--skip-ray] [--no-write]

The deep suite writes the section "search" of BENCHMARKS.md, the easy one "search-easy".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from _report import machine, median, table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fakes.graphs import write_graph  # noqa: E402

from segpilot.engine import bench  # noqa: E402
from segpilot.engine.executors import LocalExecutor, ProcessExecutor, RayExecutor  # noqa: E402
from segpilot.engine.jobs import JobResult, ProofJob  # noqa: E402
from segpilot.engine.settings import Settings, load_settings  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
SUITES = {
    "deep": (
        FIXTURES / "deep_core" / "deep_core.jsonl",
        "deep core-logic theorems (`tests/fixtures/deep_core`: propositional statements whose "
        "reference proofs take 2-10 tactics, most of them splitting the goal with ∧ ∨ ↔, so "
        "the open-goal count rises and falls several times)",
        "search",
    ),
    "easy": (
        FIXTURES / "easy_core" / "easy_core.jsonl",
        "easy core-Lean theorems (`tests/fixtures/easy_core`: real TPiL statements, "
        "∧ ∨ ↔ → ∃ ¬, most of which close in one or two blocks)",
        "search-easy",
    ),
}
FAKE = ROOT / "tests" / "fakes" / "fake_repl.py"
HEADER = [
    "configuration",
    "solved",
    "Lean calls / solved",
    "tokens / solved",
    "expansions / solved",
    "median s per theorem",
]


def settings(folder: Path, expansions: int, k: int) -> Settings:
    graph = write_graph(folder / "graph.json", [], [])
    command = [
        sys.executable,
        str(FAKE),
        str(graph),
        "--elaborate",
        "--unrecorded-tactics",
        "error",
    ]
    return load_settings(
        {},
        {
            "lean": {"repl_command": command},
            "search": {"wall_s": 600.0, "expansions": expansions, "k": k},
            "model": {"budget_s": 600.0},
        },
        environ={},
    )


def run(executor: object, jobs: list[ProofJob]) -> tuple[list[JobResult], float]:
    start = time.perf_counter()
    results = list(executor.run(jobs, threading.Event()))  # type: ignore[attr-defined]
    return results, time.perf_counter() - start


def per_solved(results: list[JobResult], field: str) -> float | None:
    solved = [r for r in results if r.status == "proved"]
    return sum(getattr(r, field) for r in solved) / len(solved) if solved else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), default="deep")
    parser.add_argument("--limit", type=int, default=25, help="theorems (default all 25)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--expansions", type=int, default=8)
    parser.add_argument("-k", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="segpilot-bench-search-"))
    base = settings(folder, args.expansions, args.k)
    suite, described, section = SUITES[args.suite]
    theorems = bench.read_suite(suite, args.limit)
    configs = [bench.parse_config(c) for c in bench.DEFAULT_CONFIGS]
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    local = LocalExecutor()
    by_config: dict[str, list[list[JobResult]]] = {}
    for repeat in range(args.repeat):
        for config in configs:
            jobs = bench.plan_jobs(theorems, [config], 1, args.seed + repeat, folder, base)
            results, wall = run(local, jobs)
            by_config.setdefault(config.label, []).append(results)
            solved = sum(r.status == "proved" for r in results)
            print(
                f"{config.label} run {repeat}: {solved}/{len(jobs)} in {wall:.0f} s",
                file=sys.stderr,
            )

    def med(label: str, field: str) -> float | None:
        values = [v for rs in by_config[label] if (v := per_solved(rs, field)) is not None]
        return median(values) if values else None

    def solved(label: str) -> float:
        return median([sum(r.status == "proved" for r in rs) for rs in by_config[label]])

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    rows = [
        [
            f"`{label}`",
            f"{solved(label):g}/{len(theorems)}",
            fmt(med(label, "lean_calls")),
            fmt(med(label, "tokens")),
            fmt(med(label, "expansions")),
            fmt(median([median([r.seconds for r in rs]) for rs in by_config[label]])),
        ]
        for label in by_config
    ]
    ratios = []
    for policy in ("step", "segment"):
        off, on = med(policy, "lean_calls"), med(f"{policy}+rollout", "lean_calls")
        ratio = f"{on / off:.2f}" if on is not None and off else "n/a"
        ratios.append(
            f"{policy}: rollout {ratio}x the Lean calls per solved theorem, solving "
            f"{solved(policy + '+rollout'):g} against {solved(policy):g}"
        )

    scaling = ""
    if not args.skip_scaling:
        jobs = bench.plan_jobs(theorems, [configs[3]], 1, args.seed, folder, base)
        walls = {}
        for workers in (1, 2):
            executor = ProcessExecutor(workers)
            _, walls[workers] = run(executor, jobs)
        scaling = (
            f"Scaling (`segment+rollout`, the same {len(jobs)} jobs on the `processes` executor): "
            f"1 worker {walls[1]:.0f} s, 2 workers {walls[2]:.0f} s, speed-up "
            f"{walls[1] / walls[2]:.2f}x on {os.cpu_count()} cores (each worker loads its own "
            "model and starts its own REPL; the two share the cores with the elaborating fake)."
        )

    ray_text = ""
    if not args.skip_ray:
        tiny = bench.Theorem("trivial", "example : True := by\n  sorry\n", 1, 2)
        jobs = bench.plan_jobs(
            [bench.Theorem(f"t{i}", tiny.text, 1, 2) for i in range(12)],
            [configs[2]],
            1,
            args.seed,
            folder,
            base,
        )
        fresh = LocalExecutor()
        run(fresh, jobs[:1])  # model loaded, REPL started
        _, local_wall = run(fresh, jobs)
        start = time.perf_counter()
        ray = RayExecutor(1)
        ray_start = time.perf_counter() - start
        run(ray, jobs[:1])  # the actor's model and REPL
        _, ray_wall = run(ray, jobs)
        ray.close()
        fresh.close()
        per_local, per_ray = local_wall / len(jobs), ray_wall / len(jobs)
        ray_text = (
            f"Ray (1 actor, started here on loopback in {ray_start:.1f} s): "
            f"{per_ray * 1000:.0f} ms per job against {per_local * 1000:.0f} ms in-process "
            f"({len(jobs)} one-step jobs, "
            f"each actor warmed up first), overhead {1000 * (per_ray - per_local):.0f} ms per job "
            "(a new actor per run also loads the model: about a second)."
        )
    local.close()
    elapsed = time.perf_counter() - started

    extra = "".join(f"{part}\n\n" for part in (scaling, ray_text) if part)
    body = f"""## Proof search by configuration, {args.suite} suite (`benchmarks/search.py`)

{len(theorems)} {described}, each searched once per configuration and run with the same
budget: {args.expansions} expansions, k = {args.k}, no wall-clock
limit; the default model; Lean = the fake REPL's core-logic elaborator, which answers as Lean
does inside its fragment and counts every tactic outside it as an error, so solved counts are
lower bounds of what real Lean would give. {args.repeat} run(s) from seed {args.seed}; medians
over runs. {machine()}; 1-minute load average {load_before:.2f} before the run. Whole
benchmark: {elapsed:.0f} s.

{table(HEADER, rows)}

Goal-aware rollout (target: at most 0.8x the Lean calls per solved theorem, at an equal or
higher solved count), as `[search]` sets it: trigger `{base.search.trigger}`, H =
{base.search.rollout_depth}; each move is the policy's favourite block that Lean accepts, and
the rollout goes on through moves that meet the trigger:

{chr(10).join(f"- {r}" for r in ratios)}

{extra}Run: `.venv/bin/python benchmarks/search.py --suite {args.suite} --limit {args.limit}
--repeat {args.repeat} --expansions {args.expansions} -k {args.k}`
"""
    print(body)
    if not args.no_write:
        write_section(section, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
