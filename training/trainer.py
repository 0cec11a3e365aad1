"""LoRA fine-tuning with peft on a causal LM through transformers, in a plain torch loop.

What the loop guarantees:

- loss on the target block only (`examples.IGNORE` on the prompt and on padding);
- batches of similar length (`examples.length_batches`), so little compute goes to padding;
- seeded and deterministic: the LoRA initialisation, the data order of every epoch and the
  dropout all follow `seed`; a resumed run continues the same sequence of batches;
- a checkpoint every `checkpoint_every` steps, at the end of each epoch and on Ctrl-C
  (the adapter, the optimiser, the RNG state and the history; the last two are kept);
  `resume=True` continues from the newest;
- validation loss after each epoch; a loss-curve PNG, the adapter in peft's standard
  format and a model card (README.md) in the output folder.

Several GPUs: run the command under `torchrun` or `accelerate launch` (WORLD_SIZE > 1);
each process takes every n-th example of each batch and the gradients are summed so that a
step is the one a single process would take (`segpilot.training.ranks`).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segpilot.engine.settings import TrainingSettings
from segpilot.errors import SegpilotError
from segpilot.training.examples import IGNORE, Example, length_batches
from segpilot.training.ranks import join_ranks

CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2
THREADS_EVERY = 20
STATE_FILE = "segpilot-training.json"
MIN_SHARED_PREFIX = 8
"""Tokens: a shorter common prefix is not worth the second pass through the model."""


class TrainingInterrupted(SegpilotError):
    """Ctrl-C during training: the checkpoint is saved, the run can resume."""

    exit_code = 130


@dataclass
class History:
    """What the run measured, step by step and epoch by epoch."""

    steps: list[tuple[int, float, int]] = field(default_factory=list)
    """(step, training loss, tokens in the batch)."""
    valid: list[tuple[int, int, float]] = field(default_factory=list)
    """(epoch, step, validation loss)."""
    seconds: float = 0.0
    tokens: int = 0


@dataclass
class Progress:
    """Where a run is: the next step and where it lies in the epoch plan."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # index of the next batch within the epoch


@dataclass
class Result:
    """A finished (or stopped) run."""

    output: Path
    steps: int
    epochs_done: float
    first_loss: float | None
    last_loss: float | None
    valid_loss: float | None
    tokens_per_s: float
    seconds: float
    history: History


def pad_batch(examples: Sequence[Example], pad_id: int, device: str) -> dict[str, Any]:
    """input_ids / attention_mask / labels tensors, padded on the right to the longest, and
    `shared_prefix`, the number of leading tokens `batch_loss` may compute once for all."""
    import torch

    longest = max(len(e) for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        gap = longest - len(e)
        ids.append(list(e.ids) + [pad_id] * gap)
        mask.append([1] * len(e) + [0] * gap)
        labels.append(e.labels + [IGNORE] * gap)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
        "shared_prefix": shared_prefix(examples),
    }


def shared_prefix(examples: Sequence[Example]) -> int:
    """How many leading tokens every example of the batch has in common, up to (not
    including) the last prompt token of the shortest prompt, whose hidden state predicts a
    target token; 0 when sharing would not pay (one example, or under `MIN_SHARED_PREFIX`).

    The preset's fixed first line is the same in every prompt: about a third of the tokens
    of a 0-shot training example (SmolLM2, the segment preset)."""
    if len(examples) < 2:
        return 0
    limit = min(e.n_prompt for e in examples) - 1
    first = examples[0].ids
    n = 0
    while n < limit and all(e.ids[n] == first[n] for e in examples):
        n += 1
    return n if n >= MIN_SHARED_PREFIX else 0


def batch_loss(model: Any, batch: dict[str, Any], *, reduction: str = "mean") -> Any:
    """Cross-entropy of the next-token predictions on the labelled (target) tokens.

    Two savings over the plain computation (`full_batch_loss`, kept for models where the
    split into body and head is not known), neither of which changes the result:

    - the output layer (a 49,152 x 576 matrix for SmolLM2) runs on the target positions
      only: most tokens are prompt, which carries no loss;
    - the batch's `shared_prefix` runs once, as a single sequence, and the rest of every
      example attends to its keys and values (repeated over the batch, so gradients from
      every example flow back into it). Attention is causal, so the prefix's states do not
      depend on what follows; with LoRA dropout on, the prefix shares one dropout mask.
    """
    import torch.nn.functional as F

    parts = _body_and_head(model)
    if parts is None:
        return full_batch_loss(model, batch, reduction=reduction)
    body, head = parts
    ids, mask = batch["input_ids"], batch["attention_mask"]
    prefix = batch.get("shared_prefix", 0)
    if prefix:
        from transformers import DynamicCache

        cache = DynamicCache(config=body.config)
        given = {_cache_argument(body): cache}
        body(input_ids=ids[:1, :prefix], use_cache=True, **given)
        cache.batch_repeat_interleave(ids.shape[0])
        hidden = body(input_ids=ids[:, prefix:], attention_mask=mask, use_cache=True, **given)[0]
    else:
        hidden = body(input_ids=ids, attention_mask=mask)[0]
    labels = batch["labels"][:, prefix + 1 :]
    keep = labels != IGNORE
    logits = head(hidden[:, :-1, :][keep]).float()
    return F.cross_entropy(logits, labels[keep], reduction=reduction)


def _cache_argument(body: Any) -> str:
    """The decoder's keyword for a key/value cache: transformers 5 renames `past_key_values`
    to `cache` (the old name warns, then goes)."""
    import inspect

    return "cache" if "cache" in inspect.signature(body.forward).parameters else "past_key_values"


def full_batch_loss(model: Any, batch: dict[str, Any], *, reduction: str = "mean") -> Any:
    """`batch_loss` with the logits of every position (the textbook way)."""
    import torch.nn.functional as F

    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    logits = out.logits[:, :-1, :].float()
    labels = batch["labels"][:, 1:]
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction=reduction,
    )


def _body_and_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, output layer) of a (peft-wrapped) causal LM whose logits are the output
    layer applied to the decoder's last hidden state, or None."""
    inner = model
    if hasattr(inner, "get_base_model"):
        inner = inner.get_base_model()
    config = getattr(inner, "config", None)
    if config is None or getattr(config, "final_logit_softcapping", None) is not None:
        return None
    if getattr(config, "model_type", "") not in ("llama", "mistral", "qwen2", "qwen3"):
        return None
    try:
        body, head = inner.get_decoder(), inner.get_output_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    if body is None or head is None:
        return None
    return body, head


def validation_loss(
    model: Any, examples: Sequence[Example], batch_tokens: int, pad_id: int, device: str
) -> float | None:
    """Mean loss per target token over `examples` (None when there are none)."""
    import torch

    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in length_batches(examples, batch_tokens, seed=0):
            items = [examples[i] for i in batch]
            total += float(batch_loss(model, pad_batch(items, pad_id, device), reduction="sum"))
            count += sum(len(e) - e.n_prompt for e in items)
    model.train(was_training)
    return total / max(count, 1)


def epoch_plan(
    examples: Sequence[Example], settings: TrainingSettings, epoch: int
) -> list[list[int]]:
    """The batches of one epoch: seeded by the run's seed and the epoch number."""
    return length_batches(examples, settings.batch_tokens, settings.seed * 1_000_003 + epoch)


def total_steps(n_batches: int, settings: TrainingSettings) -> int:
    steps = n_batches * settings.epochs
    return min(steps, settings.max_steps) if settings.max_steps else steps


def lora_model(model: Any, settings: TrainingSettings) -> Any:
    """The base wrapped with fresh LoRA weights (their initialisation follows the seed)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from segpilot.training.lora_dropout import use_mask_dropout

    torch.manual_seed(settings.seed)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [m for m in settings.target_modules if m not in names]
    if missing:
        raise SegpilotError(
            f"the base model has no layer named {', '.join(missing)}",
            fix="set [training] target_modules to layers it has, e.g. q_proj, v_proj",
        )
    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():
        # peft asks the model `is_gradient_checkpointing`, which transformers 5 deprecates
        # with a FutureWarning on every run: nothing a user of segpilot can act on.
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        wrapped = get_peft_model(model, config)
    use_mask_dropout(wrapped)
    return wrapped


def _checkpoint_dirs(output: Path) -> list[Path]:
    root = output / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.name.startswith("step-") and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(output: Path) -> Path | None:
    found = _checkpoint_dirs(output)
    return found[-1] if found else None


def save_checkpoint(
    output: Path,
    model: Any,
    optimizer: Any,
    progress: Progress,
    history: History,
    meta: dict[str, Any],
) -> Path:
    """Write a checkpoint (to a temporary folder, then renamed) and drop all but the newest
    `KEEP_CHECKPOINTS`."""
    import torch

    root = output / CHECKPOINTS
    final = root / f"step-{progress.step:07d}"
    tmp = root / f".tmp-step-{progress.step:07d}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save_pretrained(tmp / "adapter")
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate(),
            },
            tmp / "optimizer.pt",
        )
        state = {"progress": asdict(progress), "history": asdict(history), "meta": meta}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except (OSError, RuntimeError) as err:  # torch reports a full disk as RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)
        raise SegpilotError(f"cannot write the checkpoint in {root}: {err}") from None
    for old in _checkpoint_dirs(output)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path, model: Any, optimizer: Any
) -> tuple[Progress, History, dict[str, Any]]:
    """Restore the adapter weights, optimiser and RNG state of a checkpoint."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        state = json.loads((path / "state.json").read_text(encoding="utf-8"))
        weights = load_file(str(path / "adapter" / "adapter_model.safetensors"))
        saved = torch.load(path / "optimizer.pt", weights_only=False)
    except (OSError, ValueError, RuntimeError) as err:
        raise SegpilotError(f"{path}: cannot read this checkpoint ({err})") from None
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(saved["optimizer"])
    torch.set_rng_state(saved["torch_rng"])
    random.setstate(saved["python_rng"])
    h = state["history"]
    history = History(
        [tuple(x) for x in h["steps"]],
        [tuple(x) for x in h["valid"]],
        h["seconds"],
        h["tokens"],
    )
    return Progress(**state["progress"]), history, state["meta"]


def load_adapter_weights(model: Any, adapter_dir: Path) -> None:
    """Start from an earlier adapter's weights (segpilot watch retrains this way)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    try:
        set_peft_model_state_dict(model, load_file(str(adapter_dir / "adapter_model.safetensors")))
    except (OSError, RuntimeError) as err:
        raise SegpilotError(f"{adapter_dir}: cannot start from this adapter ({err})") from None


def run_training(
    model: Any,
    train: Sequence[Example],
    valid: Sequence[Example],
    settings: TrainingSettings,
    output: Path,
    *,
    pad_id: int,
    device: str,
    meta: dict[str, Any],
    resume: bool = False,
    progress_bar: bool = True,
    log: Callable[[str], None] = lambda s: None,
    stop_after: int | None = None,
    auto_threads: bool = False,
) -> Result:
    """Train `model` (already wrapped by `lora_model`) and save the adapter in `output`.

    `stop_after`: steps to run in this call at most (tests and benchmarks stop early with a
    checkpoint, as Ctrl-C does, without raising). `auto_threads`: every `THREADS_EVERY`
    steps, train on the cores no other program is running on (see `_use_free_cores`)."""
    import torch

    if not train:
        raise SegpilotError("no training examples", fix="check the data file and max_length")
    output.mkdir(parents=True, exist_ok=True)
    ranks = join_ranks(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    progress, history = Progress(), History()
    if resume:
        found = latest_checkpoint(output)
        if found is None:
            raise SegpilotError(
                f"{output}: no checkpoint to resume from", fix="run without --resume"
            )
        progress, history, old_meta = load_checkpoint(found, model, optimizer)
        if old_meta.get("data") != meta.get("data"):
            log("the data changed since the checkpoint; the batches from here follow the new data")
        log(f"resuming from {found.name} (epoch {progress.epoch + 1}, step {progress.step})")
    else:
        # A fresh run: the checkpoints of an earlier run in this folder are not its own.
        if ranks.main:
            shutil.rmtree(output / CHECKPOINTS, ignore_errors=True)
        random.seed(settings.seed)
        torch.manual_seed(settings.seed)
    plan = epoch_plan(train, settings, progress.epoch)
    steps_total = total_steps(len(plan), settings)
    model.train()
    bar = None
    if progress_bar and ranks.main:
        from tqdm import tqdm

        bar = tqdm(
            total=steps_total,
            initial=progress.step,
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
        )
    ran = 0
    started = time.perf_counter()
    run_tokens = 0

    def checkpoint(wait: bool = True) -> Path | None:
        saved = None
        if ranks.main:
            saved = save_checkpoint(output, model, optimizer, progress, history, meta)
        if wait:
            ranks.wait()
        return saved

    try:
        while progress.step < steps_total:
            if progress.batch >= len(plan):  # the epoch is done
                _end_epoch(model, valid, settings, pad_id, device, progress, history, log)
                progress.epoch += 1
                progress.batch = 0
                checkpoint()
                plan = epoch_plan(train, settings, progress.epoch)
                continue
            if stop_after is not None and ran >= stop_after:
                break
            items = [train[i] for i in ranks.share(plan[progress.batch])]
            if auto_threads and ran % THREADS_EVERY == 0:
                _use_free_cores()
            t0 = time.perf_counter()
            targets, tokens_f = ranks.sum(
                [sum(len(e) - e.n_prompt for e in items), sum(len(e) for e in items)], device
            )
            optimizer.zero_grad(set_to_none=True)
            value = 0.0
            if items:  # mean over the batch's target tokens on every process together
                loss = batch_loss(model, pad_batch(items, pad_id, device), reduction="sum")
                loss = loss / max(targets, 1.0)
                loss.backward()
                value = float(loss.detach())
            value = ranks.sum_gradients(params, value)
            if not math.isfinite(value):
                raise SegpilotError(
                    f"the training loss became {value} at step {progress.step}",
                    fix="lower [training] lr",
                )
            optimizer.step()
            tokens = int(tokens_f)
            history.steps.append((progress.step, value, tokens))
            history.tokens += tokens
            history.seconds += time.perf_counter() - t0
            run_tokens += tokens
            progress.step += 1
            progress.batch += 1
            ran += 1
            if bar is not None:
                rate = run_tokens / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(f"loss {value:.3f}, {rate:,.0f} tok/s", refresh=False)
                bar.update(1)
            if progress.step % settings.checkpoint_every == 0:
                checkpoint()
        measured = bool(history.valid) and history.valid[-1][1] == progress.step
        if progress.step >= steps_total and not measured:
            # The last epoch (or the part of it max_steps allowed) gets its validation loss.
            _end_epoch(model, valid, settings, pad_id, device, progress, history, log)
            if progress.batch >= len(plan):
                progress.epoch += 1
                progress.batch = 0
        checkpoint()
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        saved = checkpoint(wait=False)
        raise TrainingInterrupted(
            f"interrupted at step {progress.step}; checkpoint saved in {saved}",
            fix="continue with --resume",
        ) from None
    finally:
        if bar is not None:
            bar.close()
    finished = progress.step >= steps_total
    if finished and ranks.main:
        try:
            model.save_pretrained(output)
        except (OSError, RuntimeError) as err:
            raise SegpilotError(f"cannot write the adapter in {output}: {err}") from None
    losses = [loss for _, loss, _ in history.steps]
    return Result(
        output=output,
        steps=progress.step,
        epochs_done=progress.epoch + (progress.batch / max(len(plan), 1)),
        first_loss=losses[0] if losses else None,
        last_loss=_tail_mean(losses),
        valid_loss=history.valid[-1][2] if history.valid else None,
        tokens_per_s=history.tokens / history.seconds if history.seconds else 0.0,
        seconds=history.seconds,
        history=history,
    )


def _use_free_cores() -> None:
    """Set torch's threads to the cores other programs leave free. Measured here: with one
    of two cores busy elsewhere, a LoRA step on two threads took 21 s and on one 4 s (the
    threads wait for each other at every operation, as llama.cpp's do)."""
    import torch

    from segpilot.model.backend import free_cores

    torch.set_num_threads(free_cores(os.cpu_count() or 1))


def _tail_mean(values: Sequence[float], n: int = 5) -> float | None:
    tail = list(values[-n:])
    return sum(tail) / len(tail) if tail else None


def _end_epoch(
    model: Any,
    valid: Sequence[Example],
    settings: TrainingSettings,
    pad_id: int,
    device: str,
    progress: Progress,
    history: History,
    log: Callable[[str], None],
) -> None:
    loss = validation_loss(model, valid, settings.batch_tokens, pad_id, device)
    if loss is not None:
        history.valid.append((progress.epoch + 1, progress.step, loss))
        log(f"epoch {progress.epoch + 1}: validation loss {loss:.4f}")


def plot_losses(history: History, path: Path) -> None:
    """The loss curve: training loss per step (and its running mean), validation per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if history.steps:
        xs = [s for s, _, _ in history.steps]
        ys = [loss for _, loss, _ in history.steps]
        ax.plot(xs, ys, color="#9ab", linewidth=0.8, label="training loss (batch)")
        window = max(1, len(ys) // 20)
        smooth = [
            sum(ys[max(0, i - window + 1) : i + 1]) / len(ys[max(0, i - window + 1) : i + 1])
            for i in range(len(ys))
        ]
        ax.plot(xs, smooth, color="#136", linewidth=1.6, label=f"running mean ({window})")
    if history.valid:
        ax.plot(
            [s for _, s, _ in history.valid],
            [loss for _, _, loss in history.valid],
            "o-",
            color="#c42",
            label="validation loss (epoch end)",
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss per target token")
    ax.set_title("segpilot train")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
