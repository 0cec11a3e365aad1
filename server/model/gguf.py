"""Read a GGUF file's header (metadata and tensor types) without loading it.

llama.cpp answers a bad file with a NULL pointer and a log line; checking the header first lets
every error name the file and say what is wrong with it: not GGUF at all, truncated, an adapter
where a model was expected, or an adapter stored in f16 (4.5x slower to decode on CPU).
Layout (little-endian): magic `GGUF`, version u32, tensor count u64, metadata count u64, then
the key/value pairs, then one info record per tensor.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError

MAGIC = b"GGUF"
# ggml tensor types that matter here (ggml.h `enum ggml_type`).
GGML_TYPE_NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 8: "q8_0", 30: "bf16"}
HALF_TYPES = {1, 30}

_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GgufError(SegpilotError):
    """The file is not a usable GGUF file; the message names it."""


@dataclass(frozen=True)
class GgufInfo:
    """A GGUF header: scalar and string metadata (arrays are summarised by their length) and,
    when asked for, the ggml type of every tensor."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensor_types: dict[str, int] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else None

    @property
    def kind(self) -> str:
        """`model` or `adapter` (GGUF's `general.type`; files without it are models)."""
        value = self.metadata.get("general.type", "model")
        return value if isinstance(value, str) else "model"

    def half_precision_tensors(self) -> list[str]:
        return [name for name, t in self.tensor_types.items() if t in HALF_TYPES]


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise EOFError
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise EOFError
        raw = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS:
                self.pos += struct.calcsize(_SCALARS[item_type]) * count
            else:
                for _ in range(count):
                    self.value(item_type)
            if self.pos > len(self.buf):
                raise EOFError
            return ("array", count)
        raise ValueError(f"unknown metadata value type {vtype}")


def read_gguf(path: Path, *, tensors: bool = False) -> GgufInfo:
    """Read the header of `path`; `tensors=True` also reads each tensor's type."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) != MAGIC:
                raise GgufError(f"{path}: not a GGUF model file (no GGUF magic bytes)")
            fh.seek(0)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, tensors)
    except FileNotFoundError:
        raise GgufError(f"{path}: file not found") from None
    except (EOFError, ValueError, OverflowError) as err:
        raise GgufError(
            f"{path}: not a GGUF model file (corrupt or truncated header: {err})"
        ) from None


def _parse(path: Path, buf: mmap.mmap, tensors: bool) -> GgufInfo:
    r = _Reader(buf)
    r.pos = 4
    version = r.unpack("<I")
    if version not in (2, 3):
        raise GgufError(f"{path}: not a GGUF model file (unsupported GGUF version {version})")
    n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
    if n_kv > len(buf) or n_tensors > len(buf):
        raise GgufError(f"{path}: not a GGUF model file (implausible header counts)")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.unpack("<I"))
    tensor_types: dict[str, int] = {}
    if tensors:
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.unpack("<I")
            r.pos += 8 * n_dims
            tensor_types[name] = r.unpack("<I")
            r.unpack("<Q")
    return GgufInfo(path, version, metadata, tensor_types)


def check_model_file(path: Path) -> GgufInfo:
    """The header of a model file, or a GgufError naming the file."""
    info = read_gguf(path)
    if info.kind == "adapter":
        raise GgufError(
            f"{path}: this is a LoRA adapter, not a model", fix="pass it as the adapter instead"
        )
    if not info.architecture:
        raise GgufError(f"{path}: not a GGUF model file (no general.architecture)")
    return info


def check_adapter_file(path: Path, *, model_architecture: str | None, allow_half: bool) -> GgufInfo:
    """The header of a LoRA adapter file, checked against the model it will be applied to.

    Half-precision (f16/bf16) adapters are refused unless `allow_half`: on CPU they make
    decoding about 4.5x slower than f32 or q8_0 adapters of the same weights.
    """
    info = read_gguf(path, tensors=True)
    if info.kind != "adapter" or info.metadata.get("adapter.type") != "lora":
        raise GgufError(f"{path}: not a LoRA adapter (general.type is {info.kind!r})")
    if model_architecture and info.architecture != model_architecture:
        raise GgufError(
            f"{path}: adapter is for architecture {info.architecture!r} but the model is "
            f"{model_architecture!r}"
        )
    half = info.half_precision_tensors()
    if half and not allow_half:
        raise GgufError(
            f"{path}: f16 LoRA adapter ({len(half)} half-precision tensors); on CPU it decodes "
            "about 4.5x slower than f32 or q8_0",
            fix="re-export it with convert_lora_to_gguf.py --outtype f32 (or q8_0)",
        )
    return info
