"""The base model to fine-tune: a GGUF file or a Hugging Face model folder.

A GGUF base (the default: SmolLM2-135M Q4_1) is de-quantised by transformers, which takes
tens of seconds; the result is kept in Hugging Face form in the cache folder, keyed on the
file's size and modification time, and later loads take about a second. Training on the
de-quantised weights trains against exactly the weights llama.cpp runs, so an adapter
exported for llama.cpp transfers.

torch and transformers are imported inside the functions: `segpilot --help` and every
command that does not train stay free of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from segpilot import paths
from segpilot.errors import SegpilotError
from segpilot.model.locate import resolve_model_path

INSTALL_FIX = "install the training extra: pip install 'segpilot[training]'"


def require_training_packages() -> None:
    """A one-line error when torch, transformers or peft is missing."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "peft") if importlib.util.find_spec(m) is None]
    if missing:
        raise SegpilotError(f"fine-tuning needs {', '.join(missing)}", fix=INSTALL_FIX)


@dataclass(frozen=True)
class BaseInfo:
    """Where the base came from and what an export needs to know about it."""

    kind: str
    """`gguf` or `hf`."""
    source: str
    """The GGUF file or the model folder, as resolved."""
    hf_dir: str
    """The folder transformers loads (the cache for a GGUF base)."""
    model_type: str
    n_head: int
    n_head_kv: int
    add_bos: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaseInfo:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def resolve_base(base: str | None, model_path: str | None) -> tuple[str, Path]:
    """(`gguf` or `hf`, path) of the base a setting names; unset is the model the policy
    runs ([model] model_path, else the default GGUF)."""
    if not base:
        return "gguf", resolve_model_path(model_path)
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SegpilotError(f"{path}: not a Hugging Face model folder (no config.json)")
        return "hf", path
    if path.is_file():
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise SegpilotError(f"{path}: neither a GGUF file nor a model folder")
        return "gguf", path
    raise SegpilotError(f"{path}: base model not found", fix="give a GGUF file or a model folder")


def cache_root(cache_dir: str | None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else paths.cache_dir() / "training"


def _gguf_key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def hf_folder(kind: str, path: Path, cache_dir: str | None, log: Any = None) -> Path:
    """The Hugging Face folder for the base: itself, or the cached de-quantised GGUF (made
    on first use, written to a temporary folder and renamed, so a crash leaves no half)."""
    if kind == "hf":
        return path
    target = cache_root(cache_dir) / f"base-{path.stem}-{_gguf_key(path)}"
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if log:
        log(f"de-quantising {path.name} for training (once; kept in {target.parent})")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".base-", dir=target.parent))
    try:
        with _quiet():
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
            model: Any = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
        # The GGUF origin must not follow the weights into a save (llama.cpp's converters
        # and later loads would treat them as quantised).
        with contextlib.suppress(AttributeError):
            del model.config.quantization_config
        model.hf_quantizer = None  # de-quantised already: plain fp32 weights to save
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "segpilot-base.json").write_text(
            json.dumps({"gguf": str(path), "add_bos": _gguf_add_bos(path)}), encoding="utf-8"
        )
        if target.exists():  # another process made it meanwhile
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _gguf_add_bos(path: Path) -> bool:
    """Whether llama.cpp puts BOS before a prompt for this model (`tokenizer.ggml.add_bos_token`;
    absent means no for the BPE models this loads)."""
    from segpilot.model.gguf import read_gguf

    value = read_gguf(path).metadata.get("tokenizer.ggml.add_bos_token")
    return bool(value) if isinstance(value, bool) else False


@contextlib.contextmanager
def _quiet() -> Any:
    """transformers' own progress bars and advice go nowhere (segpilot draws its own)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)
        hf_logging.enable_progress_bar()


def load_base(
    base: str | None,
    model_path: str | None,
    cache_dir: str | None,
    *,
    device: str = "cpu",
    log: Any = None,
) -> tuple[Any, Any, BaseInfo]:
    """(model, Hugging Face tokenizer, `BaseInfo`) for the base a setting names."""
    require_training_packages()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind, path = resolve_base(base, model_path)
    folder = hf_folder(kind, path, cache_dir, log)
    with _quiet():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        except (OSError, ValueError) as err:
            raise SegpilotError(f"{folder}: transformers cannot load this model: {err}") from None
    model.to(device)
    cfg = model.config
    marker = folder / "segpilot-base.json"
    add_bos = (
        bool(json.loads(marker.read_text(encoding="utf-8")).get("add_bos"))
        if marker.is_file()
        else bool(getattr(tokenizer, "add_bos_token", False))
    )
    info = BaseInfo(
        kind=kind,
        source=str(path),
        hf_dir=str(folder),
        model_type=str(getattr(cfg, "model_type", "")),
        n_head=int(getattr(cfg, "num_attention_heads", 0) or 0),
        n_head_kv=int(
            getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 0) or 0
        ),
        add_bos=add_bos,
    )
    return model, tokenizer, info


def pick_device(device: str) -> str:
    """The torch device for a `[training] device` value (auto: a GPU when torch sees one)."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SegpilotError("--device cuda: torch sees no CUDA GPU", fix="use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise SegpilotError("--device mps: torch sees no Apple GPU", fix="use --device cpu")
    return device
