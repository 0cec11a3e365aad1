"""The model card (README.md) written beside an adapter: base, data, rule, settings, metrics."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def model_card(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """Markdown for the adapter folder; `meta` and `metrics` are what `segpilot-training.json`
    holds."""
    base = meta["base"]
    data = meta["data"]
    settings = meta["settings"]
    lines = [
        "---",
        "library_name: peft",
        "tags: [lora, lean4, theorem-proving, segpilot]",
        "---",
        "",
        "# segpilot LoRA adapter",
        "",
        "A LoRA adapter trained by `segpilot train` on Lean 4 proof segments: goal state in, "
        "the next block of tactics out, in the prompt format of the "
        f"`{meta['preset']}` preset (built by the same code that builds prompts at inference).",
        "",
        "## Base",
        "",
        f"- {base['kind']} base: `{base['source']}` ({base['model_type']})",
        "",
        "## Data",
        "",
        f"- training file: `{data['train']}` ({data['train_rows']} segments, "
        f"{data['train_examples']} used; {data['too_long']} longer than max_length left out)",
        f"- validation: {data['valid']} ({data['valid_examples']} segments)",
        f"- segment rule: {data.get('rule') or 'as cut by segpilot data segments'}",
        f"- data fingerprint: `{data['fingerprint']}`",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=1, ensure_ascii=False),
        "```",
        "",
        "## Metrics",
        "",
        f"- steps: {metrics['steps']} ({metrics['epochs_done']:.2f} epochs)",
        f"- training loss: first batch {_fmt(metrics['first_loss'])}, "
        f"last 5 batches {_fmt(metrics['last_loss'])}",
        f"- validation loss (last epoch): {_fmt(metrics['valid_loss'])}",
        f"- trained tokens/s: {metrics['tokens_per_s']:.0f} on {metrics['device']}",
        f"- training time: {metrics['seconds']:.0f} s",
        "",
        "The loss curve is `loss.png`. For llama.cpp: "
        "`segpilot export THIS_FOLDER --output adapter.gguf`, then "
        "`segpilot suggest --adapter adapter.gguf ...`.",
        "",
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    return "\n".join(lines)
