"""Training throughput: `segpilot train`'s loop against a plain loop, in the same run.

Both train LoRA (r = 8, q_proj and v_proj) on the default model (SmolLM2-135M, de-quantised)
on the CPU with the same threads, the same examples, the same loss and optimiser:

* plain: random order, batches of 4, padded to the longest of the 4, the logits of every
  position (what `model(input_ids, labels=...)` computes);
* segpilot: `segpilot.training.trainer`'s loop: length-bucketed batches of up to
  `batch_tokens` tokens (padding included, the [training] default), the prompt start that
  every example of a batch shares (the preset's first line) run once per batch, the output
  layer on the target positions only.

They run in alternating blocks of about the same number of tokens, so a change in the
machine's load hits both. Trained tokens/s counts the real tokens (padding excluded). The
data: 1,000 segments made by cycling the (goal, tactic) pairs of the shipped real
trajectories (the 142 rows `benchmarks/_trajectories.py` reads), since speed depends only
on their lengths. The time of 1,000 segments x 3 epochs is projected from the measured rate;
`--full` also runs `segpilot train` on them for real, start to end.

    .venv/bin/python benchmarks/train.py [--rounds 3] [--block-tokens 1500] [--full]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

from _report import SEGPILOT, machine, run_measured, table, write_section
from _trajectories import items

from segpilot.engine.settings import TrainingSettings, load_settings
from segpilot.model.backend import free_cores
from segpilot.model.presets import get_preset
from segpilot.training import examples as ex
from segpilot.training.base import load_base
from segpilot.training.trainer import (
    batch_loss,
    full_batch_loss,
    length_batches,
    lora_model,
    pad_batch,
    shared_prefix,
)


def rows(n: int) -> list[ex.Row]:
    real = [item for group in items(None).values() for item in group]
    return [
        ex.Row(real[i % len(real)].state, real[i % len(real)].target, str(i), i + 1)
        for i in range(n)
    ]


def fresh(model_factory, settings: TrainingSettings):
    import torch

    model = lora_model(model_factory(), settings)
    params = [p for p in model.parameters() if p.requires_grad]
    return model, torch.optim.AdamW(params, lr=settings.lr)


def run_block(model, optimizer, batches, examples, pad_id, loss_fn) -> tuple[int, float]:
    """Train on `batches`; (real tokens, seconds)."""
    tokens, start = 0, time.perf_counter()
    for batch in batches:
        items_ = [examples[i] for i in batch]
        loss = loss_fn(model, pad_batch(items_, pad_id, "cpu"))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        tokens += sum(len(e) for e in items_)
    return tokens, time.perf_counter() - start


def run_command(n: int) -> tuple[float, dict, float]:
    """`segpilot train` as a user runs it, on `n` of the benchmark's segments plus 50 for
    validation, 3 epochs: (minutes, the adapter's segpilot-training.json, peak MB)."""
    with tempfile.TemporaryDirectory(prefix="segpilot-train-") as tmp:
        data, valid, adapter = Path(tmp, "segments.jsonl"), Path(tmp, "valid.jsonl"), Path(tmp, "a")
        every = rows(n + 50)
        for path, part in ((data, every[:n]), (valid, every[n:])):
            path.write_text(
                "".join(
                    json.dumps({"theorem": r.group, "state": r.state, "target": r.target}) + "\n"
                    for r in part
                ),
                encoding="utf-8",
            )
        argv = [SEGPILOT, "train", str(data), "--valid", str(valid), "-o", str(adapter)]
        run = run_measured([*argv, "--epochs", "3", "--quiet"])
        if run.returncode != 0:
            raise SystemExit(f"segpilot train failed:\n{run.stderr}")
        print(run.stderr, end="", file=sys.stderr)
        record = json.loads((adapter / "segpilot-training.json").read_text(encoding="utf-8"))
    return run.seconds / 60, record, run.peak_mb


def take(
    batches: list[list[int]], examples, budget: int
) -> tuple[list[list[int]], list[list[int]]]:
    """The first batches holding about `budget` real tokens, and the rest."""
    got, n = [], 0
    while batches and n < budget:
        batch = batches.pop(0)
        got.append(batch)
        n += sum(len(examples[i]) for i in batch)
    return got, batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", type=int, default=1000, help="training segments")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per loop")
    parser.add_argument("--block-tokens", type=int, default=1500, help="real tokens per block")
    parser.add_argument("--full", action="store_true", help="also run 3 epochs for real")
    args = parser.parse_args()
    if min(args.segments, args.rounds, args.block_tokens) < 1:
        parser.error("--segments, --rounds and --block-tokens must be at least 1")
    import torch

    settings = load_settings()
    ts = settings.training
    threads = free_cores(os.cpu_count() or 1)
    torch.set_num_threads(threads)
    start = time.perf_counter()
    model0, tok, info = load_base(None, None, ts.cache_dir, log=print)
    print(f"base loaded in {time.perf_counter() - start:.1f} s; {threads} threads", file=sys.stderr)
    tokenizer = ex.Tokenizer(tok, info.add_bos)
    examples, too_long = ex.tokenize_rows(
        rows(args.segments), get_preset("segment"), tokenizer, max_length=ts.max_length
    )
    real_per_epoch = sum(len(e) for e in examples)
    pad = tokenizer.pad_id

    def factory():
        return load_base(None, None, ts.cache_dir)[0]

    rng = random.Random(0)
    order = list(range(len(examples)))
    rng.shuffle(order)
    plain_batches = [order[i : i + 4] for i in range(0, len(order), 4)]
    ours_batches = length_batches(examples, ts.batch_tokens, seed=0)
    shared = sum(shared_prefix([examples[i] for i in b]) for b in ours_batches) / len(ours_batches)
    padded = {
        "plain": sum(max(len(examples[i]) for i in b) * len(b) for b in plain_batches),
        "segpilot": sum(max(len(examples[i]) for i in b) * len(b) for b in ours_batches),
    }
    plain_model, plain_opt = fresh(factory, ts)
    ours_model, ours_opt = fresh(factory, ts)
    del model0
    # One warm-up batch each (allocations, first-call costs) outside the timing.
    run_block(plain_model, plain_opt, plain_batches[:1], examples, pad, full_batch_loss)
    run_block(ours_model, ours_opt, ours_batches[:1], examples, pad, batch_loss)
    todo = {"plain": plain_batches[1:], "segpilot": ours_batches[1:]}
    done = {"plain": [0, 0.0], "segpilot": [0, 0.0]}
    for r in range(args.rounds):
        for name, (model, opt, loss_fn) in (
            ("plain", (plain_model, plain_opt, full_batch_loss)),
            ("segpilot", (ours_model, ours_opt, batch_loss)),
        ):
            block, todo[name] = take(todo[name], examples, args.block_tokens)
            n, s = run_block(model, opt, block, examples, pad, loss_fn)
            done[name][0] += n
            done[name][1] += s
        print(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v[0] / v[1]:.0f} tok/s" for k, v in done.items()),
            file=sys.stderr,
        )
    rate = {k: v[0] / v[1] for k, v in done.items()}
    speedup = rate["segpilot"] / rate["plain"]
    projected = {k: 3 * real_per_epoch / rate[k] / 60 for k in rate}
    full_line = ""
    if args.full:
        del model, opt, plain_model, plain_opt, ours_model, ours_opt  # free for the command
        minutes, record, command_peak = run_command(args.segments)
        metrics = record["metrics"]
        full_line = (
            f"the command run end to end (`--full`: `segpilot train` on the {args.segments:,} "
            "segments with 50 more as --valid, --epochs 3; loading the base, validation each "
            "epoch, checkpoints and the saved adapter included): "
            f"**{minutes:.1f} min**, {metrics['steps']} steps, "
            f"{metrics['tokens_per_s']:.0f} trained tokens/s, peak memory {command_peak:,.0f} MB "
            "(a long run is faster than the short blocks above project: a loop's rate rises "
            "over its first few dozen steps)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    mean_len = real_per_epoch / len(examples)
    body = "\n\n".join(
        [
            "## Training throughput (`benchmarks/train.py`)",
            f"Default model (SmolLM2-135M, de-quantised fp32), LoRA r = {ts.rank} on "
            f"{', '.join(ts.target_modules)}, CPU, {threads} threads (the cores free when it "
            f"started); {len(examples)} segments ({too_long} too long), {mean_len:.0f} tokens "
            f"each on average ({real_per_epoch:,} real tokens per epoch), cycled from the 142 "
            "real (goal, tactic) pairs of the shipped trajectories. Both loops ran in "
            f"{args.rounds} alternating blocks of about {args.block_tokens:,} real tokens in "
            f"the same process; {machine()}; load average {os.getloadavg()[0]:.1f} at the end "
            "(other programs' share of the 2 cores).",
            table(
                [
                    "loop",
                    "batches",
                    "padding (share of computed tokens)",
                    "trained tokens/s",
                    f"{len(examples):,} x 3 epochs (projected)",
                ],
                [
                    [
                        "plain: random order, batch 4, padded to the longest, all logits",
                        "4 examples",
                        f"{1 - real_per_epoch / padded['plain']:.1%}",
                        f"{rate['plain']:.0f}",
                        f"{projected['plain']:.1f} min",
                    ],
                    [
                        f"segpilot train: length-bucketed <= {ts.batch_tokens} tokens, "
                        f"shared prefix once ({shared:.0f} tokens a batch, mean), "
                        "target logits only",
                        f"{len(examples) / len(ours_batches):.1f} examples (mean)",
                        f"{1 - real_per_epoch / padded['segpilot']:.1%}",
                        f"{rate['segpilot']:.0f}",
                        f"{projected['segpilot']:.1f} min",
                    ],
                ],
            ),
            f"Speed-up: **{speedup:.2f}x** (target >= 1.3x). {len(examples):,} segments x 3 "
            f"epochs with `segpilot train` (target for 1,000: <= 15 min): projected from the "
            f"measured rate, **{projected['segpilot']:.1f} min**"
            + (f"; {full_line}" if full_line else " (not run end to end; `--full` does)")
            + f". Peak memory of the benchmark process (two LoRA models): {peak:,.0f} MB.",
            f"Run: `.venv/bin/python benchmarks/train.py --segments {args.segments} --rounds "
            f"{args.rounds} --block-tokens {args.block_tokens}{' --full' if args.full else ''}`",
        ]
    )
    write_section("train", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
