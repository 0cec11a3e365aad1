"""Where segpilot keeps its state. `SEGPILOT_HOME` moves all of it (tests use this)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The segpilot folder: `SEGPILOT_HOME`, else `$XDG_DATA_HOME/segpilot`, else
    `~/.local/share/segpilot`."""
    if env := os.environ.get("SEGPILOT_HOME"):
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "segpilot"


def config_file() -> Path:
    """The user's config file: `SEGPILOT_CONFIG`, else `config.toml` in the home folder."""
    if env := os.environ.get("SEGPILOT_CONFIG"):
        return Path(env).expanduser()
    return home() / "config.toml"


def cache_dir() -> Path:
    return home() / "cache"


def log_dir() -> Path:
    return home() / "logs"
