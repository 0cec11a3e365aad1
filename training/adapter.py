"""`segpilot train` end to end: segments file -> examples -> LoRA run -> adapter folder.

The adapter folder holds peft's standard files (`adapter_config.json`,
`adapter_model.safetensors`), the model card (`README.md`), the loss curve (`loss.png`),
`segpilot-training.json` (base, data, settings, metrics, history: what `segpilot export`
reads) and `checkpoints/`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError
from segpilot.model.examples import load_bank
from segpilot.model.presets import get_preset
from segpilot.training import examples as ex
from segpilot.training.base import load_base, pick_device
from segpilot.training.card import model_card
from segpilot.training.ranks import current_ranks, local_device
from segpilot.training.trainer import (
    STATE_FILE,
    Result,
    load_adapter_weights,
    lora_model,
    plot_losses,
    run_training,
)


def fingerprint(*paths: Path | None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if path is None:
            continue
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def train(
    data: Path,
    output: Path,
    settings: Settings,
    *,
    valid: Path | None = None,
    group_by: tuple[str, ...] = ("file", "theorem"),
    resume: bool = False,
    init_from: Path | None = None,
    rule: str | None = None,
    log: Callable[[str], None] = lambda s: None,
    progress_bar: bool = True,
    stop_after: int | None = None,
) -> Result:
    """Train a LoRA adapter on the segments in `data`; write it to `output`.

    Without `valid`, about `valid_share` of the declarations (by `group_by`) are held out.
    `init_from`: an earlier adapter folder whose weights the new run starts from."""
    import torch

    ts = settings.training
    rows = ex.read_rows(data, group_by)
    if valid is not None:
        train_rows, valid_rows = rows, ex.read_rows(valid, group_by)
        valid_name = str(valid)
    else:
        held = ex.split_groups((r.group for r in rows), ts.valid_share, ts.seed)
        train_rows = [r for r in rows if r.group not in held]
        valid_rows = [r for r in rows if r.group in held]
        valid_name = (
            f"{len(held)} declarations held out of {data.name} (valid_share {ts.valid_share})"
        )
    if not train_rows:
        raise SegpilotError(f"{data}: no segments to train on")
    preset = get_preset(settings.model.preset, settings.model.presets)
    bank = load_bank(settings.model.examples) if ts.shots else None
    device = local_device(pick_device(ts.device))
    if device == "cpu" and ts.threads:
        torch.set_num_threads(ts.threads)
    model, hf_tokenizer, info = load_base(
        ts.base, settings.model.model_path, ts.cache_dir, device=device, log=log
    )
    tokenizer = ex.Tokenizer(hf_tokenizer, info.add_bos)
    train_ex, too_long = ex.tokenize_rows(
        train_rows, preset, tokenizer, max_length=ts.max_length, bank=bank, shots=ts.shots
    )
    valid_ex, _ = ex.tokenize_rows(
        valid_rows, preset, tokenizer, max_length=ts.max_length, bank=bank, shots=ts.shots
    )
    log(
        f"{len(train_ex)} training and {len(valid_ex)} validation examples"
        + (f" ({too_long} longer than {ts.max_length} tokens left out)" if too_long else "")
        + f"; {sum(len(e) for e in train_ex):,} tokens per epoch on {device}"
    )
    model = lora_model(model, ts)
    if init_from is not None and not resume:
        load_adapter_weights(model, init_from)
    meta: dict[str, Any] = {
        "base": info.as_dict(),
        "preset": preset.name,
        "data": {
            "train": str(data),
            "valid": valid_name,
            "train_rows": len(train_rows),
            "train_examples": len(train_ex),
            "valid_examples": len(valid_ex),
            "too_long": too_long,
            "rule": rule,
            "fingerprint": fingerprint(data, valid),
        },
        "settings": asdict(ts),
    }
    result = run_training(
        model,
        train_ex,
        valid_ex,
        ts,
        output,
        pad_id=tokenizer.pad_id,
        device=device,
        meta=meta,
        resume=resume,
        progress_bar=progress_bar,
        log=log,
        stop_after=stop_after,
        auto_threads=device == "cpu" and not ts.threads,
    )
    metrics = {
        "steps": result.steps,
        "epochs_done": result.epochs_done,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss,
        "valid_loss": result.valid_loss,
        "tokens_per_s": result.tokens_per_s,
        "seconds": result.seconds,
        "device": device,
        "finished": result.steps >= 1 and (output / "adapter_config.json").is_file(),
    }
    record = {**meta, "metrics": metrics, "history": asdict(result.history)}
    if not current_ranks().main:
        return result  # rank 0 writes the run's files
    try:
        (output / STATE_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
        (output / "README.md").write_text(model_card(meta, metrics), encoding="utf-8")
        plot_losses(result.history, output / "loss.png")
    except OSError as err:
        raise SegpilotError(f"cannot write in {output}: {err.strerror or err}") from None
    return result


def read_record(adapter_dir: Path) -> dict[str, Any]:
    """What `train` recorded in an adapter folder (for export and reports)."""
    path = adapter_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise SegpilotError(
            f"{adapter_dir}: not an adapter folder written by segpilot train (no {STATE_FILE})"
        ) from None
    except (OSError, ValueError) as err:
        raise SegpilotError(f"{path}: cannot read it ({err})") from None
