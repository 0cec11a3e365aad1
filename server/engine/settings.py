"""Every layer's settings in one object, loaded by the one loader (`segpilot.config`).

Tables: `[model]` (`segpilot.model.settings`), `[lean]` (`segpilot.lean.settings`),
`[search]` (`segpilot.search.budget`) and `[lsp]` (the sidecar's own, below). Precedence,
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
        metadata=_help("prepare the next suggestion in the background when the goals shrink"),
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


TABLES: dict[str, type] = {
    "model": ModelSettings,
    "lean": LeanSettings,
    "search": SearchBudget,
    "lsp": LspSettings,
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
