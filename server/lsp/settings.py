"""Settings of the LSP sidecar, and how editor settings become them.

Precedence, lowest first: defaults < the config file's `[lsp]` table < `SEGPILOT_LSP_*`
environment variables < what the editor sends (`initializationOptions`, then each
`workspace/didChangeConfiguration`). The editor's object is validated whole: a change with a
bad value is refused as a whole and the previous settings stay. Keys may be camelCase
(`maxItems`, as VS Code settings are named) or snake_case, flat or under `segpilot`.
The model's own settings come from the config file's `[model]` table; the few an editor
may change (`model_path`, `adapter_path`, `preset`, `k`, `max_tokens`) override them here.
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
from segpilot.model.settings import ModelSettings

GoalSourceName = Literal["auto", "client", "repl", "lake-serve", "statement"]
_GOAL_SOURCES = ("auto", "client", "repl", "lake-serve", "statement")
_TRIGGERS = ("decrease", "change")


def _help(text: str, **bounds: Any) -> dict[str, Any]:
    return {"help": text, **bounds}


@dataclass(frozen=True)
class LspSettings:
    """What the sidecar does, and how much it may spend. Each field's help is its doc."""

    model_path: str | None = field(
        default=None, metadata=_help("GGUF model file; unset: the [model] setting, else SmolLM2")
    )
    adapter_path: str | None = field(
        default=None, metadata=_help("LoRA adapter (GGUF) applied on top of the model")
    )
    preset: str | None = field(default=None, metadata=_help("prompt preset of the model"))
    k: int | None = field(default=None, metadata=_help("candidates sampled per request", min=1))
    max_tokens: int | None = field(
        default=None, metadata=_help("tokens generated per candidate at most", min=1)
    )
    max_items: int = field(
        default=3, metadata=_help("suggestions shown at one cursor at most", min=1)
    )
    checking: bool = field(
        default=True,
        metadata=_help("run each candidate in Lean before showing it (when Lean is found)"),
    )
    goal_source: str = field(
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
    prefetch_trigger: str = field(
        default="decrease",
        metadata=_help("goal-count move that starts a prefetch: decrease or change"),
    )
    rollout_depth: int = field(
        default=2,
        metadata=_help(
            "states a prefetch prepares ahead, following the best checked suggestion", min=1
        ),
    )
    request_budget_s: float = field(
        default=8.0, metadata=_help("seconds the model may spend on one request", min=0.05)
    )
    prefetch_budget_s: float = field(
        default=20.0,
        metadata=_help("seconds one background prefetch may spend in all (CPU budget)", min=0.05),
    )
    check_budget_s: float = field(
        default=10.0, metadata=_help("seconds Lean may spend checking one request's candidates")
    )
    repl_command: list[str] = field(
        default_factory=lambda: ["lake", "exe", "repl"],
        metadata=_help("command that runs the Lean REPL in the project"),
    )
    lean_server_command: list[str] = field(
        default_factory=lambda: ["lake", "serve"],
        metadata=_help("command that runs Lean's language server in the project"),
    )
    lean_timeout_s: float = field(
        default=60.0, metadata=_help("seconds one Lean request may take", min=0.1)
    )
    cache_size: int = field(
        default=512, metadata=_help("goals whose suggestions are kept in memory", min=0)
    )
    hot_reload: bool = field(
        default=True, metadata=_help("reload the model or adapter when its file is rewritten")
    )
    prove_budget_s: float = field(
        default=120.0, metadata=_help("seconds a proof search may spend per theorem", min=1.0)
    )
    prove_expansions: int = field(
        default=200, metadata=_help("states a proof search may expand per theorem", min=1)
    )

    def __post_init__(self) -> None:
        if self.goal_source not in _GOAL_SOURCES:
            raise ValueError(f"goal_source must be one of {', '.join(_GOAL_SOURCES)}")
        if self.prefetch_trigger not in _TRIGGERS:
            raise ValueError(f"prefetch_trigger must be one of {', '.join(_TRIGGERS)}")
        config.check_minimums(self)
        for name in ("repl_command", "lean_server_command"):
            value = getattr(self, name)
            if not value or not all(isinstance(a, str) and a for a in value):
                raise ValueError(f"{name} must be a non-empty list of strings")

    def model_settings(self, base: ModelSettings) -> ModelSettings:
        """The [model] settings with the editor's overrides applied."""
        return base.updated(
            model_path=self.model_path,
            adapter_path=self.adapter_path,
            preset=self.preset,
            k=self.k,
            max_tokens=self.max_tokens,
        )


SETTING_NAMES = tuple(f.name for f in dataclasses.fields(LspSettings))


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def editor_options(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """The editor's settings object as snake_case keys, and the keys it has that we do not
    know (left out: a newer editor extension must not stop an older server)."""
    if isinstance(raw, Mapping) and isinstance(raw.get("segpilot"), Mapping):
        raw = raw["segpilot"]
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        raise SegpilotError(f"segpilot settings must be an object, got {type(raw).__name__}")
    known: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in raw.items():
        name = snake_case(str(key))
        if name in SETTING_NAMES:
            known[name] = value
        else:
            unknown.append(str(key))
    return known, unknown


def build_settings(
    options: Mapping[str, Any] | None = None,
    file: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> LspSettings:
    """Settings from the config file, the environment and the editor's (validated) options."""
    return config.build(LspSettings, "lsp", file, options, environ)


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def settings_table() -> str:
    """The Markdown table of the editor settings (the README holds a copy; a test keeps
    the copy in step)."""
    rows = ["| setting | default | what it does |", "|---|---|---|"]
    for f in dataclasses.fields(LspSettings):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        shown = "[model] value" if default is None else json.dumps(default, ensure_ascii=False)
        rows.append(f"| `{camel_case(f.name)}` | `{shown}` | {f.metadata['help']} |")
    return "\n".join(rows)
