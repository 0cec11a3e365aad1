"""Segment building end to end: `segpilot data segments` on >= 1,000,000 synthetic steps.

The synthetic proofs look like real ones: a few hypotheses with Unicode names and types,
case tags, tactics that branch (1 -> 2 goals), close goals or rewrite them, an occasional
multi-line tactic, and states chained as Lean chains them (the state after a step is the
state before the next). Half of the trajectories carry goal lists, half state strings.

Each repeat times the command, a fresh `segpilot` process (start-up, read -> count goals ->
build -> write), samples the memory of all its processes, and, as the baseline in the same
run, times just reading and JSON-decoding the same file.

    .venv/bin/python benchmarks/segments.py [--steps N] [--repeat R] [--rules change,step]
        [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from _report import SEGPILOT, machine, median, run_measured, table, write_section

NAMES = ["n", "m", "k", "a", "b", "x", "y", "xs", "ys", "f", "s", "t"]
TYPES = ["ℕ", "ℤ", "ℝ", "List α", "Finset ℕ", "α → β", "Set α"]
FACTS = [
    "0 < {0}",
    "{0} ≤ {1} + {2}",
    "{0} = {1} * {2} + 1",
    "∀ (i : ℕ), i < {0} → f i ≤ f {1}",
    "{0} ∣ {1} ^ 2 - {2}",
    "¬{0} = {1}",
    "{0} ∈ s ∧ {1} ∉ t",
]
BRANCHES = [
    ("cases h{0} with\n  | inl h => exact h\n  | inr h => simp [h]", "inl", "inr"),
    ("constructor", "left", "right"),
    ("induction {1} with\n  | zero => simp\n  | succ k ih => omega", "zero", "succ"),
    ("by_cases hc : {1} ≤ {2}", "pos", "neg"),
    ("refine ⟨?_, ?_⟩", "refine_1", "refine_2"),
]
REWRITES = [
    "rw [Nat.add_comm {1} {2}] at h{0}",
    "simp only [Finset.sum_range_succ, mul_comm] at h{0} ⊢",
    "intro h{0}",
    "have h{0} : {1} ≤ {2} := by omega",
    "norm_num at h{0}",
    "obtain ⟨w, hw⟩ := h{0}",
]
CLOSES = ["exact h{0}", "omega", "linarith [h{0}]", "simp [h{0}]", "positivity", "rfl"]


class Proof:
    """A random walk over goal states that reads like a tactic proof."""

    def __init__(self, rng: random.Random, number: int) -> None:
        self.rng = rng
        self.number = number
        self.fresh = 0
        hyps = [self._decl(v) for v in rng.sample(NAMES, rng.randint(2, 4))]
        hyps += [self._fact() for _ in range(rng.randint(1, 4))]
        self.goals = [(None, hyps, self._target())]

    def _decl(self, name: str) -> str:
        return f"{name} : {self.rng.choice(TYPES)}"

    def _term(self) -> str:
        return f"{self.rng.choice(NAMES)} + {self.rng.randint(0, 999)}"

    def _fact(self) -> str:
        self.fresh += 1
        fact = self.rng.choice(FACTS).format(self._term(), self._term(), self.rng.choice(NAMES))
        return f"h{self.fresh}{'✝' if self.rng.random() < 0.1 else ''} : {fact}"

    def _target(self) -> str:
        target = self.rng.choice(FACTS).format(self._term(), self._term(), self.number)
        if self.rng.random() < 0.05:
            # A long target wraps onto an indented continuation line, as Lean prints it.
            target += " ∧\n    " + self.rng.choice(FACTS).format(self._term(), self.number, "n")
        return target

    def _tactic(self, template: str) -> str:
        return template.format(self.fresh, self._term(), self.rng.choice(NAMES))

    def step(self, depth: int) -> str:
        """Apply one tactic to the first goal; return the tactic text."""
        rng, (case, hyps, _) = self.rng, self.goals[0]
        roll = rng.random()
        close_p = 0.1 + 0.015 * depth + 0.08 * (len(self.goals) - 1)
        if roll < close_p:
            self.goals.pop(0)
            return self._tactic(rng.choice(CLOSES))
        if roll < close_p + 0.15 and len(self.goals) < 6:
            template, left, right = rng.choice(BRANCHES)
            prefix = f"{case}." if case else ""
            self.goals[0:1] = [
                (prefix + tag, [*hyps, self._fact()], self._target()) for tag in (left, right)
            ]
            return self._tactic(template)
        self.goals[0] = (case, [*hyps, self._fact()][-9:], self._target())
        return self._tactic(rng.choice(REWRITES))

    def texts(self) -> list[str]:
        return [
            "\n".join(([f"case {case}"] if case else []) + hyps + [f"⊢ {target}"])
            for case, hyps, target in self.goals
        ]


def generate(path: Path, n_steps: int, seed: int) -> int:
    """Write at least `n_steps` synthetic steps to `path`; return the trajectories written."""
    rng = random.Random(seed)
    written = trajectories = 0
    with path.open("w", encoding="utf-8") as out:
        while written < n_steps:
            proof = Proof(rng, trajectories)
            as_lists = trajectories % 2 == 0
            before = proof.texts()
            depth = 0
            while proof.goals and depth < 60:
                tactic = proof.step(depth)
                after = proof.texts()
                row: dict[str, object] = {"theorem": f"Bench.thm_{trajectories}", "tactic": tactic}
                if as_lists:
                    row |= {"goals_before": before, "goals_after": after}
                else:
                    row |= {
                        "state_before": "\n\n".join(before) or "no goals",
                        "state_after": "\n\n".join(after) or "no goals",
                    }
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                before, depth = after, depth + 1
            written += depth
            trajectories += 1
    return trajectories


def time_baseline(path: Path) -> float:
    start = time.perf_counter()
    with path.open("rb") as f:
        for line in f:
            json.loads(line)
    return time.perf_counter() - start


def time_command(path: Path, rule: str, workers: int, output: Path) -> tuple[float, str, float]:
    """Seconds for one run of the command (a fresh `segpilot` process, start-up included),
    its stderr summary, and the peak memory of all its processes together in MB."""
    argv = ["data", "segments", str(path), "--rule", rule, "--output", str(output)]
    run = run_measured([SEGPILOT, *argv, "--workers", str(workers)])
    if run.returncode != 0:
        raise SystemExit(f"segpilot {' '.join(argv)} failed:\n{run.stderr}")
    return run.seconds, run.stderr.strip(), run.peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="synthetic steps (>= 1)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--rules", default="change,step", help="rules to time, comma-separated")
    parser.add_argument(
        "--workers", default="1,2", help="process counts to time (--workers), comma-separated"
    )
    parser.add_argument("--seed", type=int, default=20260801)
    args = parser.parse_args()
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    runs_of = [(rule, int(w)) for rule in args.rules.split(",") for w in args.workers.split(",")]

    with tempfile.TemporaryDirectory(prefix="segpilot-bench-") as tmp:
        data, output = Path(tmp) / "steps.jsonl", Path(tmp) / "segments.jsonl"
        start = time.perf_counter()
        n_trajectories = generate(data, args.steps, args.seed)
        n_steps = sum(1 for _ in data.open("rb"))
        size_mb = data.stat().st_size / 1e6
        print(
            f"generated {n_steps} steps, {n_trajectories} trajectories, {size_mb:.0f} MB "
            f"in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )

        baseline: list[float] = []
        runs: dict[tuple[str, int], list[float]] = {run: [] for run in runs_of}
        peaks: dict[tuple[str, int], float] = dict.fromkeys(runs_of, 0.0)
        summaries: dict[str, str] = {}
        for r in range(args.repeat):
            baseline.append(time_baseline(data))
            for rule, workers in runs_of:
                elapsed, summary, peak = time_command(data, rule, workers, output)
                summaries[rule] = summary.replace(str(output), "OUT.jsonl")
                runs[rule, workers].append(elapsed)
                peaks[rule, workers] = max(peaks[rule, workers], peak)
            print(
                f"repeat {r + 1}/{args.repeat}: baseline {baseline[-1]:.2f} s, "
                + ", ".join(f"{k[0]} x{k[1]} {v[-1]:.2f} s" for k, v in runs.items()),
                file=sys.stderr,
            )
        load = os.getloadavg()[0]

    base = median(baseline)
    rows = [
        ["read + json.loads only (baseline)", f"{base:.2f}", f"{n_steps / base:,.0f}", "1.00", ""]
    ]
    for (rule, workers), times in runs.items():
        t = median(times)
        what = f"`data segments --rule {rule} --workers {workers}`"
        shown = f"{peaks[rule, workers]:,.0f}" if peaks[rule, workers] else "not measured"
        rows.append([what, f"{t:.2f}", f"{n_steps / t:,.0f}", f"{t / base:.2f}", shown])
    body = "\n\n".join(
        [
            "## Segment building (`benchmarks/segments.py`)",
            f"{n_steps:,} synthetic steps in {n_trajectories:,} trajectories ({size_mb:.0f} MB of "
            "JSONL; half goal lists, half state strings), end to end: read, count goals (each "
            "distinct state string parsed once), build, write atomically. Median of "
            f"{args.repeat} runs; {machine()}; 1-minute load average {load:.1f} after the "
            "runs. Each run is a fresh `segpilot` process, start-up included; its "
            "peak memory is that of all its processes together (the command and its workers, "
            "sampled every 50 ms). The synthetic trajectories' rows are together, so each is "
            "cut and written as soon as the next begins; goal counts of state strings in "
            "Lean's plain shape come from `segments.count_goals`, without hypothesis objects. "
            "With several workers, each cuts a byte range of the file and the parent joins "
            "their parts (see `segpilot.training.segment_file`). Targets: at most 2x the "
            "baseline and 200 MB.",
            table(["what", "seconds", "steps/s", "× baseline", "peak memory (MB)"], rows),
            "The baseline's runs took " + ", ".join(f"{t:.2f}" for t in baseline) + " s; "
            "the ratios divide medians by its median.",
            "Last summaries:\n\n" + "\n".join(f"- `{s}`" for s in summaries.values()),
            f"Run: `.venv/bin/python benchmarks/segments.py --steps {args.steps} "
            f"--repeat {args.repeat} --rules {args.rules} --workers {args.workers}`",
        ]
    )
    write_section("segments", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
