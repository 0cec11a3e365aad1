"""The one settings loader: every layer's settings come through `build`.

Each layer declares its settings once, as a frozen dataclass whose fields carry their help
(`metadata["help"]`) and bounds (`"min"`, `"max"`); choices come from `Literal` types.
Precedence, lowest first: the dataclass defaults < the config file (one TOML table per
layer, e.g. `[lean]`, `[model]`) < environment variables (`SEGPILOT_<TABLE>_<KEY>`, e.g.
`SEGPILOT_MODEL_K=8`) < explicit overrides (command-line flags, LSP settings). Every source
is validated the same way: unknown keys name the valid ones, an integer setting given `2.7`
is an error, a choice outside the type's choices is an error. Nothing else reads the file.
"""

from __future__ import annotations

import dataclasses
import math
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

DEFAULT = "default"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def load_file(path: Path | None = None) -> dict[str, Any]:
    """Read the config file (default: `paths.config_file()`); a missing file is empty."""
    path = path or paths.config_file()
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise SegpilotError(f"{path}: the config file is a directory") from None
    except OSError as err:
        raise SegpilotError(f"{path}: cannot read the config file ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
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
    return build_traced(cls, section, file, overrides, environ)[0]


def build_traced(
    cls: type[T],
    section: str,
    file: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    origin: str = "override",
) -> tuple[T, dict[str, str]]:
    """`build`, and where each field's value came from (`default`, `file`,
    `env SEGPILOT_...` or `origin` for the overrides)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    sources = dict.fromkeys(fields, DEFAULT)

    def put(name: str, raw: Any, where: str, source: str, *, text: bool = False) -> None:
        values[name] = coerce(hints[name], raw, where, text=text)
        sources[name] = source

    names = list(fields)
    table = (file or {}).get(section, {})
    if not isinstance(table, Mapping):
        raise SegpilotError(f"[{section}] in the config file must be a table")
    _reject_unknown(table, names, f"{section} setting in the config file's [{section}]")
    for key, raw in table.items():
        put(key, raw, f"[{section}] {key}", "file")
    environ = os.environ if environ is None else environ
    prefix = f"SEGPILOT_{section.upper()}_"
    for key in sorted(environ):
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            _reject_unknown({name: None}, names, f"{section} setting from {key}")
            put(name, environ[key], key, f"env {key}", text=True)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _reject_unknown(given, names, f"{section} setting")
    for key, raw in given.items():
        put(key, raw, f"{section}.{key}", origin)
    try:
        return cls(**values), sources
    except (TypeError, ValueError) as err:
        raise SegpilotError(f"invalid {section} settings: {err}") from err


def check_declared(settings: Any) -> None:
    """Raise ValueError for a field outside the `min`/`max` its metadata declares, or not one
    of its `Literal` choices (None means unset and is not checked)."""
    hints = typing.get_type_hints(type(settings))
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if value is None:
            continue
        low, high = field.metadata.get("min"), field.metadata.get("max")
        if low is not None and value < low:
            raise ValueError(f"{field.name} must be at least {low}, got {value!r}")
        if high is not None and value > high:
            raise ValueError(f"{field.name} must be at most {high}, got {value!r}")
        choices = literal_choices(hints[field.name])
        if choices and value not in choices:
            raise ValueError(f"{field.name} must be one of {', '.join(choices)}, got {value!r}")


def literal_choices(hint: Any) -> tuple[Any, ...]:
    """The values a `Literal[...]` type allows (also inside `X | None`); () for other types."""
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            if found := literal_choices(arg):
                return found
    return ()


def _reject_unknown(table: Mapping[str, Any], names: list[str], where: str) -> None:
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise SegpilotError(
            f"unknown {where}: {', '.join(unknown)}", fix=f"valid keys: {', '.join(names)}"
        )


def coerce(hint: Any, value: Any, where: str, *, text: bool = False) -> Any:
    """`value` as the field's type, or a `SegpilotError` naming `where`. With `text` (an
    environment variable) the value is a string to parse; otherwise (TOML, JSON, flags) it
    must already have the type: `k = "8"` or `k = 2.7` is an error, `k = 8.0` is 8."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (text and value.strip().lower() in ("", "none")):
            return None
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return coerce(inner[0] if len(inner) == 1 else Any, value, where, text=text)
    if (
        isinstance(value, str)
        and not text
        and hint not in (str, Path)
        and origin is not typing.Literal
    ):
        expected = _describe(hint)
        raise SegpilotError(f"{where}: expected {expected}, got {value!r}")
    try:
        return _coerce_plain(hint, origin, value)
    except (TypeError, ValueError) as err:
        expected = _describe(hint)
        raise SegpilotError(f"{where}: expected {expected}, got {value!r}") from err


def _coerce_plain(hint: Any, origin: Any, value: Any) -> Any:
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueError(value)
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise TypeError(value)
    if hint is int:
        if isinstance(value, str):
            return int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(value)
        return value
    if hint is float:
        number = float(value.strip()) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise TypeError(value)
        if not math.isfinite(number):
            raise ValueError(value)
        return float(number)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if hint is Path:
        if not isinstance(value, (str, Path)):
            raise TypeError(value)
        return Path(value).expanduser()
    if origin in (list, tuple):
        items = shlex.split(value) if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise TypeError(value)
        return origin(items)
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise TypeError(value)
        return value
    return value


def _describe(hint: Any) -> str:
    choices = literal_choices(hint)
    if choices:
        return "one of " + ", ".join(str(c) for c in choices)
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return "a list of strings (shell words in an environment variable)"
    if origin in (Mapping, dict) or hint is Mapping:
        return "a table"
    names = {bool: "bool (true or false)", int: "int (a whole number)", float: "float"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def default_of(field: dataclasses.Field[Any]) -> Any:
    """A field's default value (calling its factory)."""
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
