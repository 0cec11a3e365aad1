"""Temperature and top-p defaults by measurement: a sweep scored like `segpilot eval` on the
three real trajectory files, against the current defaults measured in the same run.

One process, one model load; every (temperature, top-p) pair gets the same rows (see
`_trajectories.py`: `--limit` rows of each file, evenly spread), k, seeds and token limit, and
the default settings otherwise (the default model unless `--model`, preset `segment` unless
`--preset`, 3 worked examples, `lead = goal`, tactic-shaped decoding). The baseline is
`--baseline T,P`, by default the pair the settings default to now. Measures are medians over
the seeds; the differences are in percentage points against the baseline, s/state as a
ratio. A pair is eligible when it keeps distinct/state >= 6 at k = 8. The presets of
`benchmarks/presets.toml` are available (`--preset chatml-segment`).

    .venv/bin/python benchmarks/sampling.py [--limit 8] [-k 8] [--seeds 0]
        [--temperatures 0.6,0.8,1.0,1.2] [--top-ps 0.9,0.95,1.0] [--preset segment]
        [--model GGUF] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import _trajectories as tr
from _report import machine, median, table, write_section

SHOWN = (
    ("well_formed", "well-formed"),
    ("name_at_k", "name@{k}"),
    ("first_at_k", "first@{k}"),
    ("segment_at_k", "segment@{k}"),
    ("name_at_1", "name@1"),
    ("first_at_1", "first@1"),
)
MIN_DISTINCT = 6.0


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=8, help="rows per file (default 8)")
    parser.add_argument("-k", type=int, default=8, help="candidates per state (default 8)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--temperatures", default="0.6,0.8,1.0,1.2")
    parser.add_argument("--top-ps", default="0.9,0.95,1.0")
    parser.add_argument("--preset", default="segment")
    parser.add_argument(
        "--baseline", metavar="T,P", help="the pair to compare with (default: the defaults now)"
    )
    parser.add_argument("--model", help="GGUF file (default: the default model)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per candidate")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per call at most")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()

    from segpilot.engine import evaluate as ev
    from segpilot.model.policy import Policy
    from segpilot.model.settings import ModelSettings

    seeds = [int(s) for s in args.seeds.split(",")]
    defaults = ModelSettings()
    baseline = (
        tuple(floats(args.baseline)) if args.baseline else (defaults.temperature, defaults.top_p)
    )
    pairs = [(t, p) for t in floats(args.temperatures) for p in floats(args.top_ps)]
    if baseline not in pairs:
        pairs.insert(0, baseline)
    base = {
        **tr.preset_tables(),
        "preset": args.preset,
        "model_path": args.model,
        "k": args.k,
        "max_tokens": args.max_tokens,
        "budget_s": args.budget,
        "cache_size": 0,
    }
    settings = ModelSettings.from_mapping({k: v for k, v in base.items() if v is not None})
    rows = tr.items(args.limit)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    backend = Policy(settings).backend
    # (pair, seed) -> (overall, by file)
    found: dict[tuple[float, float], list[tuple[dict[str, float], dict[str, Any]]]] = {}
    for temperature, top_p in pairs:
        for seed in seeds:
            policy = Policy(
                settings.updated(temperature=temperature, top_p=top_p, seed=seed), backend=backend
            )
            label = f"temperature={temperature},top_p={top_p}"
            reports = {
                name: ev.evaluate(items, ev.policy_proposer(policy, args.k), config=label, k=args.k)
                for name, items in rows.items()
            }
            overall = tr.combine(list(reports.values()))
            by_file = {name: tr.summaries(r) for name, r in reports.items()}
            found.setdefault((temperature, top_p), []).append((overall, by_file))
            print(f"{label} seed {seed}: {tr.dump(overall)}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    backend.close()

    def med(pair: tuple[float, float], key: str, file: str | None = None) -> float | None:
        values = [(o if file is None else f[file]).get(key) for o, f in found[pair]]
        present = [v for v in values if v is not None]
        return median(present) if present else None

    k = args.k
    shown = [(key, name.format(k=k)) for key, name in SHOWN if med(baseline, key) is not None]
    base_seconds = med(baseline, "seconds") or 1.0
    out_rows = []
    for pair in pairs:
        cells = []
        for key, _ in shown:
            value, ref = med(pair, key) or 0.0, med(baseline, key) or 0.0
            diff = "" if pair == baseline else f" ({(value - ref) * 100:+.1f})"
            cells.append(f"{value:.1%}{diff}")
        distinct, seconds = med(pair, "distinct") or 0.0, med(pair, "seconds") or 0.0
        name = f"{pair[0]:g} / {pair[1]:g}" + (" (baseline)" if pair == baseline else "")
        out_rows.append(
            [name, *cells, f"{distinct:.2f}", f"{seconds:.2f}", f"{seconds / base_seconds:.2f}"]
        )
    eligible = [p for p in pairs if (med(p, "distinct") or 0.0) >= MIN_DISTINCT]

    def quality(pair: tuple[float, float]) -> tuple[float, ...]:
        return tuple(med(pair, key) or 0.0 for key in ("name_at_k", "first_at_k", "well_formed"))

    best = max(eligible, key=quality) if eligible else None
    file_rows = [
        [
            f"{tr.SHORT[file]} ({len(rows[file])})",
            *(
                f"{med(p, 'name_at_k', file) or 0.0:.0%} / {med(p, 'first_at_k', file) or 0.0:.0%}"
                for p in pairs
            ),
        ]
        for file in tr.FILES
    ]
    _, source = tr.folder()
    n_states = sum(len(v) for v in rows.values())
    best_text = (
        f"Best eligible pair on these rows (name@{k}, then first@{k}, then well-formed): "
        f"temperature {best[0]:g}, top-p {best[1]:g}; one state is "
        f"{1 / n_states:.1%} of these rows, so differences of a few points are noise."
        if best
        else f"No pair kept distinct/state >= {MIN_DISTINCT:g}."
    )
    model_name = Path(args.model).name if args.model else "SmolLM2-135M-Instruct Q4_1"
    header = ["temperature / top-p", *(n for _, n in shown), "distinct/state", "s/state"]
    header.append("× baseline s/state")
    body = f"""## Sampling defaults by measurement (`benchmarks/sampling.py`)

Temperature and top-p swept on the same rows of the three files in `{source}`:
{", ".join(f"{tr.SHORT[f]} {len(rows[f])}" for f in tr.FILES)} rows ({args.limit} per file at most,
evenly spread), scored as `segpilot eval` scores. Default model unless named
(`{model_name}`), preset `{args.preset}`, k = {k}, seed(s) {args.seeds}, up to
{args.max_tokens} tokens per candidate, 3 worked examples, `lead = goal`, tactic-shaped
decoding; one model load for the whole sweep. Measures are medians over the seeds; in
brackets the difference from the baseline (temperature {baseline[0]:g}, top-p {baseline[1]:g})
in percentage points. {machine()}; 1-minute load average {load_before:.2f} before the run (the
cores are shared: s/state is noisy). Whole sweep: {elapsed:.0f} s.

{table(header, out_rows)}

{best_text}

name@{k} / first@{k} by file:

{table(["file (rows)", *(f"{t:g} / {p:g}" for t, p in pairs)], file_rows)}

Run: `.venv/bin/python benchmarks/sampling.py --limit {args.limit} -k {k} --seeds {args.seeds}
--temperatures {args.temperatures} --top-ps {args.top_ps} --preset {args.preset}
--baseline {baseline[0]:g},{baseline[1]:g}`
"""
    print(body)
    if not args.no_write:
        write_section("sampling", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
