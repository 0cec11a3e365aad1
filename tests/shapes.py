"""The shape of a JSON value, to check that a protocol double only says what Lean says.

A shape is the value's structure without its data: an object is its sorted keys with the
shape of each value, a list is the set of its elements' shapes, and a leaf is its JSON
type (`str`, `int`, `float`, `bool`, `null`). Fields named in `families` keep a label of
their value instead (say `proofStatus` → `"Completed"`, or `"Error:"` for the `Error: ...`
family), so a double cannot invent a status that real Lean never sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

Shape = Any  # nested tuples, frozensets and strings: hashable, comparable
Families = Mapping[str, Callable[[Any], str]]


def shape(value: Any, families: Families | None = None) -> Shape:
    """The hashable shape of a JSON value (see the module docstring)."""
    families = families or {}
    if isinstance(value, Mapping):
        return (
            "object",
            tuple(
                (key, ("family", families[key](v)) if key in families else shape(v, families))
                for key, v in sorted(value.items())
            ),
        )
    if isinstance(value, list):
        return ("list", frozenset(shape(v, families) for v in value))
    if value is None:
        return "null"
    return type(value).__name__  # bool before int: type() tells them apart


def shapes(values: Iterable[Any], families: Families | None = None) -> set[Shape]:
    return {shape(v, families) for v in values}


def prefix_family(*prefixes: str) -> Callable[[Any], str]:
    """A family function: the first prefix the value starts with, else the value itself."""

    def family(value: Any) -> str:
        text = str(value)
        return next((p for p in prefixes if text.startswith(p)), text)

    return family


def describe(s: Shape, indent: int = 0) -> str:
    """A shape as readable text, for assertion messages."""
    pad = "  " * indent
    if isinstance(s, str):
        return pad + s
    kind, body = s
    if kind == "family":
        return f"{pad}{body!r}"
    if kind == "list":
        inner = "\n".join(describe(e, indent + 1) for e in sorted(body, key=repr))
        return f"{pad}list of:\n{inner}" if body else f"{pad}empty list"
    lines = [f"{pad}object:"]
    for key, value in body:
        lines.append(f"{pad}  {key}:")
        lines.append(describe(value, indent + 2))
    return "\n".join(lines)
