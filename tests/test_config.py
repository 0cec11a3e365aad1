"""Settings precedence: defaults < config file < environment < overrides; loud unknowns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from segpilot import config, paths
from segpilot.errors import SegpilotError


@dataclass(frozen=True)
class DemoSettings:
    k: int = field(default=4, metadata={"help": "Candidates per request."})
    temperature: float = 1.0
    check: bool = True
    command: list[str] = field(default_factory=lambda: ["lake", "serve"])
    model_path: Path | None = None


def test_defaults_when_nothing_is_given():
    assert config.build(DemoSettings, "demo", environ={}) == DemoSettings()


def test_file_then_env_then_overrides_win_in_order():
    file = {"demo": {"k": 2, "temperature": 0.5, "check": False}}
    env = {"SEGPILOT_DEMO_K": "6", "SEGPILOT_DEMO_TEMPERATURE": "0.7"}
    built = config.build(DemoSettings, "demo", file, overrides={"k": 8}, environ=env)
    assert built.k == 8
    assert built.temperature == 0.7
    assert built.check is False


def test_none_override_keeps_lower_layer():
    built = config.build(DemoSettings, "demo", {"demo": {"k": 3}}, {"k": None}, environ={})
    assert built.k == 3


def test_environment_strings_are_coerced_to_field_types():
    env = {
        "SEGPILOT_DEMO_CHECK": "off",
        "SEGPILOT_DEMO_COMMAND": "lake env 'my repl'",
        "SEGPILOT_DEMO_MODEL_PATH": "~/m.gguf",
    }
    built = config.build(DemoSettings, "demo", environ=env)
    assert built.check is False
    assert built.command == ["lake", "env", "my repl"]
    assert built.model_path == Path("~/m.gguf").expanduser()


@pytest.mark.parametrize(
    ("file", "env", "needle"),
    [
        ({"demo": {"kk": 1}}, {}, "kk"),
        ({}, {"SEGPILOT_DEMO_TEMPRATURE": "1"}, "temprature"),
    ],
)
def test_unknown_keys_are_named_with_the_valid_ones(file, env, needle):
    with pytest.raises(SegpilotError) as err:
        config.build(DemoSettings, "demo", file, environ=env)
    assert needle in str(err.value)
    assert "valid keys: k, temperature" in str(err.value)


def test_bad_value_names_where_it_came_from():
    with pytest.raises(SegpilotError, match="SEGPILOT_DEMO_K"):
        config.build(DemoSettings, "demo", environ={"SEGPILOT_DEMO_K": "many"})


def test_config_file_is_read_from_segpilot_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGPILOT_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text("[demo]\nk = 5\n", encoding="utf-8")
    assert paths.config_file() == tmp_path / "config.toml"
    assert config.build(DemoSettings, "demo", config.load_file(), environ={}).k == 5


def test_missing_file_is_empty_and_broken_file_is_a_clear_error(tmp_path):
    assert config.load_file(tmp_path / "absent.toml") == {}
    broken = tmp_path / "broken.toml"
    broken.write_text("[demo\nk=", encoding="utf-8")
    with pytest.raises(SegpilotError, match=r"broken\.toml: not valid TOML"):
        config.load_file(broken)


def test_help_comes_from_field_metadata():
    assert config.help_of(DemoSettings, "k") == "Candidates per request."
