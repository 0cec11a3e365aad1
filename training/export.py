"""Adapter folder -> GGUF for llama.cpp, written with the `gguf` package from PyPI.

Two outputs:

- a GGUF LoRA adapter (the default): llama.cpp's adapter layout (`general.type = adapter`,
  `adapter.type = lora`, `adapter.lora.alpha`, tensors `blk.N.<layer>.weight.lora_a/_b`),
  in f32 or q8_0 (f16 adapters decode about 4.5x slower on CPU, so they are never written).
  q8_0 needs rows of 32 values: `lora_b` (rows of `rank` values) stays f32.
- `merge=True`: the base GGUF with the LoRA update added to the tensors it touches, those
  written in q8_0 (or f16/f32); every other tensor is copied unchanged. Q4_0/Q4_1 are
  refused: the update is about 40x smaller than a Q4 step and rounding erases it.

llama.cpp stores the query and key projections of llama-family models with the rows of each
head reordered (its converter undoes the rotary layout Hugging Face uses, and transformers
redoes it when it loads a GGUF), so the `lora_b` of `q_proj`/`k_proj` gets the same reorder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError
from segpilot.training.adapter import read_record

# Hugging Face model_type -> (GGUF architecture, q/k rows reordered per head)
ARCHITECTURES: dict[str, tuple[str, bool]] = {
    "llama": ("llama", True),
    "mistral": ("llama", True),
    "qwen2": ("qwen2", False),
}
LAYERS = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_KEY = re.compile(r"(?:.*\.)?layers\.(\d+)\.(\w+\.\w+)\.lora_([AB])(?:\.default)?\.weight$")
ADAPTER_TYPES = ("f32", "q8_0")
MERGE_TYPES = ("q8_0", "f16", "f32")
REFUSED = ("q4_0", "q4_1")


def reorder_heads(rows: Any, n_head: int) -> Any:
    """Rows of a q/k projection (or its `lora_b`) in llama.cpp's order: within each head,
    the two interleaved halves of the rotary layout become contiguous."""
    size = rows.shape[0] // n_head // 2
    return rows.reshape(n_head, 2, size, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


class LoraWeights:
    """An adapter folder's LoRA matrices, by GGUF tensor name: (A, B), B already reordered."""

    def __init__(self, adapter_dir: Path) -> None:
        import numpy as np
        from safetensors.numpy import load_file

        record = read_record(adapter_dir)
        self.base = record["base"]
        try:
            config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
            tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
        except FileNotFoundError as err:
            raise SegpilotError(
                f"{adapter_dir}: the adapter is not finished ({Path(err.filename or '').name} "
                "is missing)",
                fix="finish training (segpilot train ... --resume)",
            ) from None
        except (OSError, ValueError) as err:
            raise SegpilotError(f"{adapter_dir}: cannot read the adapter ({err})") from None
        model_type = self.base.get("model_type", "")
        if model_type not in ARCHITECTURES:
            raise SegpilotError(
                f"{adapter_dir}: export knows {', '.join(ARCHITECTURES)} models, not {model_type!r}"
            )
        self.arch, reorder = ARCHITECTURES[model_type]
        self.rank = int(config["r"])
        self.alpha = float(config.get("lora_alpha", self.rank))
        pairs: dict[str, dict[str, Any]] = {}
        for key, value in tensors.items():
            m = _KEY.match(key)
            if not m or m.group(2) not in LAYERS:
                raise SegpilotError(f"{adapter_dir}: no GGUF name for the LoRA tensor {key}")
            name = f"blk.{m.group(1)}.{LAYERS[m.group(2)]}.weight"
            pairs.setdefault(name, {})[m.group(3)] = np.asarray(value, dtype=np.float32)
        self.pairs: dict[str, tuple[Any, Any]] = {}
        for name, ab in sorted(pairs.items(), key=lambda kv: _natural(kv[0])):
            if set(ab) != {"A", "B"}:
                raise SegpilotError(f"{adapter_dir}: {name} lacks its lora_A or lora_B")
            b = ab["B"]
            if reorder and name.endswith(("attn_q.weight", "attn_k.weight")):
                heads = self.base["n_head"] if "attn_q" in name else self.base["n_head_kv"]
                b = reorder_heads(b, heads)
            self.pairs[name] = (ab["A"], b)
        if not self.pairs:
            raise SegpilotError(f"{adapter_dir}: the adapter holds no LoRA tensors")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self, name: str) -> Any:
        """The update B @ A * alpha / rank of one weight, in GGUF row order."""
        a, b = self.pairs[name]
        return (b @ a) * self.scale


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _qtype(name: str) -> Any:
    from gguf import GGMLQuantizationType

    return {
        "f32": GGMLQuantizationType.F32,
        "f16": GGMLQuantizationType.F16,
        "q8_0": GGMLQuantizationType.Q8_0,
    }[name]


def _raw(qtype: Any) -> Any:
    """`raw_dtype` for the writer: None where the numpy dtype says it (f32, f16), else the
    block type of the bytes given."""
    from gguf import GGMLQuantizationType

    return None if qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) else qtype


def _write_atomically(output: Path, write: Callable[[Path], None]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, output)
    except OSError as err:
        raise SegpilotError(f"cannot write {output}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def export_adapter(adapter_dir: Path, output: Path, outtype: str = "f32") -> dict[str, Any]:
    """Write the GGUF LoRA adapter; return what was written (tensors, types, bytes)."""
    if outtype not in ADAPTER_TYPES:
        raise SegpilotError(
            f"adapter type {outtype!r} is not written",
            fix="f32 or q8_0 (f16 adapters decode about 4.5x slower on CPU)",
        )
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import quantize

    lora = LoraWeights(adapter_dir)
    types: dict[str, int] = {}

    def write(path: Path) -> None:
        writer = GGUFWriter(str(path), lora.arch)
        writer.add_string("general.type", "adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", lora.alpha)
        writer.add_string("general.name", f"segpilot LoRA for {Path(lora.base['source']).name}")
        for name, (a, b) in lora.pairs.items():
            for suffix, array in (("lora_a", a), ("lora_b", b)):
                qtype = _qtype(outtype)
                if qtype != GGMLQuantizationType.F32 and array.shape[-1] % 32:
                    qtype = GGMLQuantizationType.F32
                writer.add_tensor(f"{name}.{suffix}", quantize(array, qtype), raw_dtype=_raw(qtype))
                types[qtype.name] = types.get(qtype.name, 0) + 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    _write_atomically(output, write)
    return {"tensors": 2 * len(lora.pairs), "types": types, "bytes": output.stat().st_size}


def export_merged(adapter_dir: Path, output: Path, outtype: str = "q8_0") -> dict[str, Any]:
    """Write the base GGUF with the update merged into the tensors the adapter touches."""
    low = outtype.lower()
    if low in REFUSED:
        raise SegpilotError(
            f"--type {outtype} would erase the fine-tune: the LoRA update is far smaller than "
            "a 4-bit quantisation step",
            fix=f"use one of {', '.join(MERGE_TYPES)}",
        )
    if low not in MERGE_TYPES:
        raise SegpilotError(f"--type {outtype}: not a merge type", fix=", ".join(MERGE_TYPES))
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize, quantize

    lora = LoraWeights(adapter_dir)
    if lora.base.get("kind") != "gguf":
        raise SegpilotError(
            "--merge needs a GGUF base; this adapter was trained on a Hugging Face folder",
            fix="export the adapter alone (without --merge)",
        )
    source = Path(lora.base["source"])
    try:
        reader = GGUFReader(str(source))
    except (OSError, ValueError) as err:
        raise SegpilotError(f"{source}: cannot read the base GGUF ({err})") from None
    qtype = _qtype(low)
    merged: list[str] = []

    def write(path: Path) -> None:
        arch = str(reader.fields["general.architecture"].contents())
        writer = GGUFWriter(str(path), arch)
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name == "general.architecture":
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind == GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
        for tensor in reader.tensors:
            if tensor.name in lora.pairs:
                shape = tuple(int(d) for d in reversed(tensor.shape))
                weights = dequantize(tensor.data, tensor.tensor_type).reshape(shape)
                weights = (weights + lora.delta(tensor.name)).astype(np.float32)
                data = quantize(weights, qtype)
                writer.add_tensor(tensor.name, data, raw_dtype=_raw(qtype))
                merged.append(tensor.name)
            else:
                writer.add_tensor(tensor.name, tensor.data, raw_dtype=_raw(tensor.tensor_type))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    _write_atomically(output, write)
    missing = sorted(set(lora.pairs) - set(merged))
    if missing:
        output.unlink(missing_ok=True)
        raise SegpilotError(f"{source}: the base has no tensor {missing[0]} the adapter updates")
    return {
        "tensors": len(merged),
        "types": {qtype.name: len(merged)},
        "bytes": output.stat().st_size,
    }
