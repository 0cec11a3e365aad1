"""Write the sidecar's editor settings into vscode-extension/package.json.

The settings the sidecar takes from an editor are declared once, in Python
(`segpilot.engine.settings.EDITOR_KEYS` and the fields' help, bounds and types). This script
turns them into the extension's `contributes.configuration` properties `segpilot.<key>`;
the extension's own settings (`segpilot.server.*`) are kept as they are.
tests/test_vscode_settings_sync.py fails when package.json has drifted from the Python side.

    .venv/bin/python scripts/gen_vscode_settings.py           # rewrite package.json
    .venv/bin/python scripts/gen_vscode_settings.py --check   # exit 1 if it would change
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from segpilot import config
from segpilot.engine.settings import EDITOR_KEYS, TABLES

PACKAGE_JSON = Path(__file__).resolve().parent.parent / "vscode-extension" / "package.json"
EXTENSION_OWN = "segpilot.server."


def schema_type(hint: Any) -> dict[str, Any]:
    """The JSON-schema type of a settings field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        found = schema_type(inner[0])
        kind = found["type"]
        return {**found, "type": [*(kind if isinstance(kind, list) else [kind]), "null"]}
    choices = config.literal_choices(hint)
    if choices:
        return {"type": "string", "enum": list(choices)}
    if origin in (list, tuple):
        return {"type": "array", "items": {"type": "string"}}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string", Path: "string"}
    if hint in simple:
        return {"type": simple[hint]}
    raise TypeError(f"no JSON-schema type for {hint!r}")


def sidecar_properties() -> dict[str, dict[str, Any]]:
    """`segpilot.<editor key>` -> its VS Code configuration property, in EDITOR_KEYS order."""
    out: dict[str, dict[str, Any]] = {}
    for key, (table, name) in EDITOR_KEYS.items():
        cls = TABLES[table]
        field = next(f for f in dataclasses.fields(cls) if f.name == name)
        hint = typing.get_type_hints(cls)[name]
        prop = schema_type(hint)
        default = config.default_of(field)
        prop["default"] = list(default) if isinstance(default, tuple) else default
        for bound, word in (("min", "minimum"), ("max", "maximum")):
            if field.metadata.get(bound) is not None:
                prop[word] = field.metadata[bound]
        prop["markdownDescription"] = (
            f"{field.metadata['help'][:1].upper()}{field.metadata['help'][1:]}. "
            f"Sidecar setting `[{table}] {name}`; unset here, the sidecar's config file or "
            f"`SEGPILOT_{table.upper()}_{name.upper()}` decides."
        )
        out[f"segpilot.{key}"] = prop
    return out


def updated(manifest: dict[str, Any]) -> dict[str, Any]:
    configuration = manifest.setdefault("contributes", {}).setdefault("configuration", {})
    configuration.setdefault("title", "segpilot")
    old = configuration.get("properties", {})
    own = {k: v for k, v in old.items() if k.startswith(EXTENSION_OWN)}
    configuration["properties"] = {**own, **sidecar_properties()}
    return manifest


def render(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if package.json drifted")
    args = parser.parse_args(argv)
    current = PACKAGE_JSON.read_text(encoding="utf-8")
    wanted = render(updated(json.loads(current)))
    if args.check:
        if current != wanted:
            print(f"{PACKAGE_JSON.name} is out of date: run scripts/gen_vscode_settings.py")
            return 1
        return 0
    if current != wanted:
        PACKAGE_JSON.write_text(wanted, encoding="utf-8")
        print(f"updated {PACKAGE_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
