"""One settings path for every layer: defaults < file < SEGPILOT_<TABLE>_<KEY> < flags/editor,
the same validation everywhere, and `segpilot config` saying where each value came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from segpilot.engine.settings import EDITOR_KEYS, TABLES, editor_overrides, load_settings
from segpilot.errors import SegpilotError
from segpilot.lean.repl import ReplSettings
from segpilot.lean.settings import LeanSettings


def test_environment_reaches_the_model_and_every_other_table():
    env = {
        "SEGPILOT_MODEL_K": "8",
        "SEGPILOT_LEAN_REPL_COMMAND": "lake env '.lake/my repl'",
        "SEGPILOT_SEARCH_TRIGGER": "decrease",
        "SEGPILOT_LSP_MAX_ITEMS": "5",
    }
    settings = load_settings({}, environ=env)
    assert settings.model.k == 8
    assert settings.lean.repl_command == ["lake", "env", ".lake/my repl"]
    assert settings.search.trigger == "decrease"
    assert settings.lsp.max_items == 5
    assert settings.sources["model.k"] == "env SEGPILOT_MODEL_K"
    assert settings.sources["model.temperature"] == "default"


def test_precedence_file_env_flag_with_sources():
    file = {"model": {"k": 2, "temperature": 0.5}, "lean": {"repl_command": ["my-repl"]}}
    env = {"SEGPILOT_MODEL_K": "6"}
    settings = load_settings(file, {"model": {"k": 9, "seed": None}}, env, origin="flag")
    assert (settings.model.k, settings.model.temperature) == (9, 0.5)
    assert settings.lean.repl_command == ["my-repl"]
    assert settings.sources["model.k"] == "flag"
    assert settings.sources["model.temperature"] == "file"
    assert settings.sources["lean.repl_command"] == "file"
    assert settings.sources["model.seed"] == "default"


@pytest.mark.parametrize(
    ("file", "needle"),
    [
        ({"lsp": {"max_items": 2.7}}, "max_items: expected int"),
        ({"model": {"k": 2.7}}, "k: expected int"),
        ({"model": {"k": "8"}}, "k: expected int"),
        ({"model": {"k": True}}, "k: expected int"),
        ({"search": {"trigger": "sometimes"}}, "one of decrease, change"),
        ({"lsp": {"goal_source": "oracle"}}, "one of auto, client"),
        ({"lean": {"repl_command": "lake exe repl"}}, "list of strings"),
        ({"lean": {"repl_command": []}}, "non-empty"),
        ({"lsp": {"max_items": 0}}, "at least 1"),
        ({"model": {"k": 33}}, "at most 32"),
        ({"model": {"tempreature": 1}}, "tempreature"),
        ({"modle": {"k": 1}}, "unknown table"),
    ],
)
def test_every_table_is_validated_the_same_way(file, needle):
    with pytest.raises(SegpilotError, match=needle):
        load_settings(file, environ={})


def test_a_whole_number_given_as_a_float_is_that_number():
    assert load_settings({"model": {"k": 8.0}}, environ={}).model.k == 8


def test_bad_environment_value_names_the_variable():
    with pytest.raises(SegpilotError, match="SEGPILOT_LSP_MAX_ITEMS"):
        load_settings({}, environ={"SEGPILOT_LSP_MAX_ITEMS": "2.7"})
    with pytest.raises(SegpilotError, match="SEGPILOT_LEAN_NOPE"):
        load_settings({}, environ={"SEGPILOT_LEAN_NOPE": "1"})


def test_defaults_are_declared_once():
    lean = LeanSettings()
    repl = ReplSettings()
    assert repl.command == lean.repl_command
    assert (repl.timeout_s, repl.memory_limit_mb, repl.recycle_after) == (
        lean.repl_timeout_s,
        lean.memory_limit_mb,
        lean.recycle_after,
    )


def test_editor_keys_map_to_one_table_each_and_tables_work_too():
    assert len(EDITOR_KEYS) == len(set(EDITOR_KEYS))
    for table, name in EDITOR_KEYS.values():
        assert table in TABLES
        assert name in TABLES[table].__dataclass_fields__
    raw = {
        "segpilot": {
            "maxItems": 2,
            "replCommand": ["python3", "repl.py"],
            "k": 6,
            "proveBudgetS": 30,
            "model": {"maxTokens": 20},
            "fancyNewThing": 1,
        }
    }
    overrides, unknown = editor_overrides(raw)
    assert unknown == ["fancyNewThing"]
    settings = load_settings({}, overrides, environ={}, origin="editor")
    assert settings.lsp.max_items == 2
    assert settings.lean.repl_command == ["python3", "repl.py"]
    assert (settings.model.k, settings.model.max_tokens) == (6, 20)
    assert settings.search.wall_s == 30.0
    assert settings.sources["lsp.max_items"] == "editor"


def test_segpilot_config_prints_every_setting_with_its_source(tmp_path):
    (tmp_path / "config.toml").write_text('[lean]\nrepl_command = ["my", "repl"]\n')
    env = {**os.environ, "SEGPILOT_HOME": str(tmp_path), "SEGPILOT_MODEL_K": "8"}
    env.pop("SEGPILOT_CONFIG", None)
    run = [sys.executable, "-m", "segpilot", "config"]
    text = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    assert "model.k" in text and "= 8  # env SEGPILOT_MODEL_K" in text
    assert '= ["my", "repl"]  # file' in text
    data = json.loads(
        subprocess.run([*run, "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    rows = data["settings"]
    assert rows["model.k"] == {"value": 8, "source": "env SEGPILOT_MODEL_K"}
    assert rows["lsp.max_items"] == {"value": 3, "source": "default"}
    assert set(rows) == {f"{t}.{f}" for t, cls in TABLES.items() for f in cls.__dataclass_fields__}


def test_segpilot_config_refuses_a_bad_file_in_one_line(tmp_path):
    (tmp_path / "config.toml").write_text("[model]\nk = 2.7\n")
    env = {**os.environ, "SEGPILOT_HOME": str(tmp_path)}
    env.pop("SEGPILOT_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "segpilot", "config"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "k: expected int" in done.stderr
