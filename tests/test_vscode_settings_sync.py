"""The VS Code extension's settings (vscode-extension/package.json) are generated from the
sidecar's declared editor settings by scripts/gen_vscode_settings.py; these tests fail when
the two drift apart, and check that what the extension may send is what the sidecar reads."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from segpilot.engine.settings import EDITOR_KEYS, editor_overrides, load_settings

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gen_vscode_settings.py"
PACKAGE_JSON = ROOT / "vscode-extension" / "package.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_vscode_settings", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def properties() -> dict[str, Any]:
    manifest = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    return manifest["contributes"]["configuration"]["properties"]


def test_package_json_is_the_generated_one() -> None:
    gen = generator()
    current = PACKAGE_JSON.read_text(encoding="utf-8")
    assert gen.render(gen.updated(json.loads(current))) == current, (
        "vscode-extension/package.json drifted from the sidecar's settings: "
        "run .venv/bin/python scripts/gen_vscode_settings.py"
    )


def test_every_editor_key_is_a_setting_and_nothing_else_is() -> None:
    props = properties()
    sidecar = {k.removeprefix("segpilot.") for k in props if not k.startswith("segpilot.server.")}
    assert sidecar == set(EDITOR_KEYS)
    own = {k for k in props if k.startswith("segpilot.server.")}
    assert own == {"segpilot.server.command", "segpilot.server.pythonPath"}


def test_declared_defaults_are_what_the_sidecar_has_when_sent() -> None:
    """Sending every manifest default gives the sidecar's own defaults: types, lists and
    nulls in package.json are ones it reads as intended."""
    sent = {k.removeprefix("segpilot."): v["default"] for k, v in properties().items()}
    sent = {k: v for k, v in sent.items() if not k.startswith("server.")}
    overrides, unknown = editor_overrides(sent)
    assert unknown == []
    with_defaults = load_settings({}, overrides, environ={}, origin="editor")
    plain = load_settings({}, {}, environ={})
    assert with_defaults == plain


def test_choices_and_bounds_reach_the_manifest() -> None:
    props = properties()
    choices = ["auto", "client", "repl", "lake-serve", "statement"]
    assert props["segpilot.goalSource"]["enum"] == choices
    assert props["segpilot.maxItems"]["type"] == "integer"
    assert props["segpilot.maxItems"]["minimum"] == 1
    assert props["segpilot.modelPath"]["type"] == ["string", "null"]
    assert props["segpilot.replCommand"] == {
        **props["segpilot.replCommand"],
        "type": "array",
        "items": {"type": "string"},
        "default": ["lake", "exe", "repl"],
    }


@pytest.mark.parametrize(
    "drift",
    [
        lambda p: p["segpilot.k"].update(default=5),
        lambda p: p.pop("segpilot.rolloutDepth"),
        lambda p: p.update({"segpilot.notASetting": {"type": "string", "default": ""}}),
    ],
    ids=["changed default", "missing key", "extra key"],
)
def test_the_check_fails_on_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drift) -> None:
    gen = generator()
    copy = tmp_path / "package.json"
    shutil.copy(PACKAGE_JSON, copy)
    monkeypatch.setattr(gen, "PACKAGE_JSON", copy)
    assert gen.main(["--check"]) == 0
    manifest = json.loads(copy.read_text(encoding="utf-8"))
    drift(manifest["contributes"]["configuration"]["properties"])
    copy.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0  # regenerating repairs it
    assert gen.main(["--check"]) == 0
