"""GGUF files written with numpy for tests: a minimal GGUF v3 writer, and LoRA adapters
for the default model (SmolLM2-135M) in llama.cpp's layout, with random low-rank deltas
on the query projections (no torch needed)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

LLAMA_DIM, LLAMA_LAYERS = 576, 30  # SmolLM2-135M


def write_gguf(path: Path, metadata: dict, tensors: list[tuple[str, np.ndarray]] = ()) -> Path:
    """A GGUF v3 file: metadata (str, float or uint32 values) and f32/f16 tensors."""

    def text(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, value in metadata.items():
        out += text(key)
        if isinstance(value, str):
            out += struct.pack("<I", 8) + text(value)
        elif isinstance(value, float):
            out += struct.pack("<If", 6, value)
        else:
            out += struct.pack("<II", 4, value)
    offset, blobs = 0, []
    for name, array in tensors:
        ggml_type = {np.float32: 0, np.float16: 1}[array.dtype.type]
        dims = b"".join(struct.pack("<Q", d) for d in reversed(array.shape))
        out += (
            text(name)
            + struct.pack("<I", array.ndim)
            + dims
            + struct.pack("<IQ", ggml_type, offset)
        )
        blob = array.tobytes() + b"\0" * (-array.nbytes % 32)
        blobs.append(blob)
        offset += len(blob)
    out += b"\0" * (-len(out) % 32)
    path.write_bytes(bytes(out) + b"".join(blobs))
    return path


def write_lora(path: Path, dtype=np.float32, architecture: str = "llama") -> Path:
    rng = np.random.default_rng(0)
    tensors = []
    for layer in range(LLAMA_LAYERS):
        a = rng.standard_normal((8, LLAMA_DIM)) * 0.5
        b = rng.standard_normal((LLAMA_DIM, 8)) * 0.5
        tensors += [
            (f"blk.{layer}.attn_q.weight.lora_a", a.astype(dtype)),
            (f"blk.{layer}.attn_q.weight.lora_b", b.astype(dtype)),
        ]
    metadata = {
        "general.architecture": architecture,
        "general.type": "adapter",
        "adapter.type": "lora",
        "adapter.lora.alpha": 8.0,
    }
    return write_gguf(path, metadata, tensors)
