"""Imports point down: lean <- model <- search <- engine <- lsp / commands <- cli.

Each module of `server/` and `training/` belongs to a layer; it may import its own layer and
the ones below, never one above (nor may `lsp` and `commands`, the two front ends, import
each other, except that `segpilot serve` starts the sidecar). Imports inside functions
count too: they are imports all the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# (import prefix, layer); the longest matching prefix decides.
LAYERS = {
    "segpilot.errors": 0,
    "segpilot.paths": 0,
    "segpilot.config": 0,
    "segpilot.lru": 0,
    "segpilot.textfiles": 0,
    "segpilot": 0,
    "segpilot.lean": 1,
    "segpilot.segments": 1,
    "segpilot.model": 2,
    "segpilot.search": 3,
    "segpilot.engine": 4,
    "segpilot.environment": 4,
    "segpilot.training": 4,
    "segpilot.lsp": 5,
    "segpilot.commands": 5,
    "segpilot.cli": 6,
    "segpilot.__main__": 7,
}
FRONT_ENDS = ("segpilot.lsp", "segpilot.commands")
# `segpilot serve` is the command that starts the LSP front end.
STARTS_LSP = "segpilot.commands.serve"


def layer_of(name: str) -> tuple[str, int]:
    best = max((p for p in LAYERS if name == p or name.startswith(p + ".")), key=len)
    return best, LAYERS[best]


def modules() -> list[tuple[str, Path]]:
    found = []
    for folder, package in (
        (ROOT / "server", "segpilot"),
        (ROOT / "training", "segpilot.training"),
    ):
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found.append((".".join([package, *parts]), path))
    return found


def imports(name: str, path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            out.extend(f"{base}.{a.name}" if base == "segpilot" else base for a in node.names)
    return [i for i in out if i == "segpilot" or i.startswith("segpilot.")]


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_imports_point_down(name: str, path: Path) -> None:
    own_prefix, own = layer_of(name)
    for target in imports(name, path):
        _prefix, layer = layer_of(target)
        assert layer <= own, f"{name} (layer {own}) imports {target} (layer {layer})"
        for front in FRONT_ENDS:
            if own_prefix == front and name != STARTS_LSP:
                other = next(f for f in FRONT_ENDS if f != front)
                assert not (target == other or target.startswith(other + ".")), (
                    f"{name} imports the other front end {target}"
                )


def test_the_layer_map_knows_every_package() -> None:
    packages = {n.rsplit(".", 1)[0] for n, p in modules() if p.name != "__init__.py"}
    for package in packages:
        assert layer_of(package)[0] != "segpilot" or package == "segpilot", package
