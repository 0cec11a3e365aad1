"""Settings for every layer, merged in one place.

Precedence, lowest first: the dataclass defaults < the config file (one TOML table per
layer, e.g. `[lean]`, `[model]`) < environment variables (`SEGPILOT_<SECTION>_<FIELD>`,
e.g. `SEGPILOT_MODEL_K=8`) < explicit overrides (command-line flags, LSP settings).
Nothing else reads a config file. Unknown keys are errors that name the key and list the
valid ones, so a typo never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from segpilot import paths
from segpilot.errors import SegpilotError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")


def load_file(path: Path | None = None) -> dict[str, Any]:
    """Read the config file (default: `paths.config_file()`); a missing file is empty."""
    path = path or paths.config_file()
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as err:
        raise SegpilotError(f"{path}: not valid TOML: {err}", fix="fix or remove the file") from err


def help_of(cls: type, name: str) -> str:
    """The one-sentence help a settings field carries in its metadata."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    return str(field.metadata.get("help", ""))


def build(
    cls: type[T],
    section: str,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> T:
    """Build the settings dataclass `cls` for `section` from the sources, in precedence order."""
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    table = dict((file or {}).get(section, {}))
    _reject_unknown(table, names, f"[{section}] in the config file")
    values: dict[str, Any] = {k: _coerce(hints[k], v, f"{section}.{k}") for k, v in table.items()}
    environ = os.environ if environ is None else environ
    prefix = f"SEGPILOT_{section.upper()}_"
    for key, raw in environ.items():
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            _reject_unknown({name: raw}, names, f"environment variable {key}")
            values[name] = _coerce(hints[name], raw, key)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _reject_unknown(given, names, f"{section} settings")
    values.update({k: _coerce(hints[k], v, f"{section}.{k}") for k, v in given.items()})
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise SegpilotError(f"invalid {section} settings: {err}") from err


def check_minimums(settings: Any) -> None:
    """Raise ValueError for a field below the `min` its metadata declares (None is unset)."""
    for field in dataclasses.fields(settings):
        low = field.metadata.get("min")
        value = getattr(settings, field.name)
        if low is not None and value is not None and value < low:
            raise ValueError(f"{field.name} must be at least {low}, got {value!r}")


def _reject_unknown(table: Mapping[str, Any], names: list[str], where: str) -> None:
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise SegpilotError(
            f"unknown {where}: {', '.join(unknown)}", fix=f"valid keys: {', '.join(names)}"
        )


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Turn a TOML or environment value into the field's type (strings come from the env)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("", "none")):
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, where) if len(inner) == 1 else value
    try:
        if hint is bool and isinstance(value, str):
            if value.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if hint in (int, float) and not isinstance(value, bool):
            return hint(value)
        if hint is Path:
            return Path(value).expanduser()
        if origin in (list, tuple) and isinstance(value, str):
            return origin(shlex.split(value))
        if origin in (list, tuple):
            return origin(value)
    except (TypeError, ValueError) as err:
        raise SegpilotError(f"{where}: cannot use {value!r} as {hint}") from err
    return value
