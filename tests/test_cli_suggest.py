"""`segpilot suggest`: end to end through the real command, and the file-position goal."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import FAKES, FIXTURES, PYTHON

from segpilot.commands.common import cursor_site
from segpilot.commands.suggest import read_state_arg
from segpilot.engine.service import Engine
from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError
from segpilot.lean.goals import parse_plain_goal, parse_state
from segpilot.lean.settings import LeanSettings
from segpilot.lean.source import proof_site

STATE = "x y : Nat\n⊢ x + y = y + x"
FAST = ["-k", "3", "--max-tokens", "12"]

DEMO = """\
import Init

/-- Addition commutes. -/
theorem add_comm' {α : Type} [inst : Add α] [Inhabited α] (x y : Nat)
    (h : x = y := by rfl) : x + y = y + x := by
  intro_nothing_yet
  rw [Nat.add_comm]

example (p q : Prop) (hp : p) (hq : q) : p ∧ q := by
  constructor -- split
  · exact hp
  · exact hq

def notAProof : Nat := 3
"""


def suggest(*args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run(
        [PYTHON, "-m", "segpilot", "suggest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_suggest_state_json_lists_ranked_unverified_candidates():
    done = suggest("--state", STATE.replace("\n", "\\n"), "--json", *FAST)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["goal"] == STATE
    assert result["goal_source"] == "state"
    assert result["verified"] is False
    assert result["preset"] == "segment"
    scores = [c["logprob"] for c in result["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert len(result["candidates"]) <= 3
    for c in result["candidates"]:
        assert c["text"] == "\n".join(c["tactics"]) and c["n_tokens"] >= 1
        assert c["checked"] is False and "sorry" not in c["text"].split()


def test_suggest_is_deterministic_for_a_seed():
    first = suggest("--state", STATE, "--json", "--seed", "11", *FAST)
    second = suggest("--state", STATE, "--json", "--seed", "11", *FAST)
    assert first.returncode == second.returncode == 0
    assert json.loads(first.stdout) == json.loads(second.stdout)


def test_suggest_text_output_shows_the_goal_and_says_it_is_unverified():
    done = suggest("--state", STATE, *FAST)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("goal (given):\n  x y : Nat\n  ⊢ x + y = y + x\n")
    assert "unverified" in done.stderr


def test_suggest_reads_the_state_from_stdin():
    done = subprocess.run(
        [PYTHON, "-m", "segpilot", "suggest", "--state", "-", "--json", *FAST],
        input=STATE + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["goal"] == STATE


def test_suggest_file_without_lean_says_so_and_uses_the_statement(tmp_path):
    demo = tmp_path / "Demo.lean"
    demo.write_text(DEMO, encoding="utf-8")
    done = suggest(
        "--file",
        str(demo),
        "--line",
        "11",
        "--col",
        "2",
        "--json",
        *FAST,
        path=str(Path(PYTHON).parent),
    )
    assert done.returncode == 0, done.stderr
    assert "candidates are unverified" in done.stderr and "no Lean found" in done.stderr
    result = json.loads(done.stdout)
    assert result["goal_source"] == "statement"
    assert result["goal"] == "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"


def test_suggest_file_asks_lean_for_the_goal_when_lake_is_installed(tmp_path):
    """A `lake` on PATH whose `serve` is the language-server double: the goal comes from it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    lake = bin_dir / "lake"
    lake.write_text(f'#!/bin/sh\nexec "{PYTHON}" "{FAKES / "fake_lake_serve.py"}"\n')
    lake.chmod(0o755)
    project = tmp_path / "project"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "scratch"\n', encoding="utf-8")
    source = project / "Scratch.lean"
    line = "  /- goal: plainGoal@27:3 -/"
    source.write_text(f"theorem t (n : Nat) : n = n := by\n{line}\n", encoding="utf-8")
    done = suggest(
        "--file",
        str(source),
        "--line",
        "2",
        "--col",
        "2",
        "--json",
        "--repl-command",
        str(tmp_path / "no-repl-here"),
        *FAST,
        path=f"{bin_dir}{os.pathsep}{Path(PYTHON).parent}",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["goal_source"] == "lake-serve"
    expected = json.loads(
        (FIXTURES / "lean-lsp-examples" / "lean4-tests-plainGoal.json").read_text()
    )
    pair = next(
        p for p in expected["pairs"] if p["params"]["position"] == {"line": 27, "character": 3}
    )
    assert result["goal"] == "\n\n".join(parse_plain_goal(pair["result"]).texts())


def test_config_file_settings_apply_and_flags_override(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[model]\nk = 2\nmax_tokens = 40\n", encoding="utf-8")
    env = {**os.environ, "SEGPILOT_CONFIG": str(config)}
    done = subprocess.run(
        [PYTHON, "-m", "segpilot", "suggest", "--state", STATE, "--json", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert 1 <= len(json.loads(done.stdout)["candidates"]) <= 2
    config.write_text("[model]\nkk = 2\n", encoding="utf-8")
    done = subprocess.run(
        [PYTHON, "-m", "segpilot", "suggest", "--state", STATE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1
    assert "unknown model setting in the config file's [model]: kk" in done.stderr


def test_unknown_preset_fails_with_the_valid_names():
    done = suggest("--state", STATE, "--preset", "gpt")
    assert done.returncode == 1
    assert "unknown preset 'gpt'" in done.stderr and "bfs-prover" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_ends_with_examples():
    done = suggest("--help")
    assert done.returncode == 0
    assert "examples:\n  segpilot suggest --state" in done.stdout


# -- the goal at a file position (in process) -------------------------------------------


def test_statement_binders_become_hypotheses():
    site = proof_site(DEMO, 6, 2)
    state, theorem, name, before = (
        site.statement_goal,
        site.theorem,
        site.name,
        site.proof_before,
    )
    assert name == "add_comm'"
    assert state == (
        "α : Type\ninst : Add α\ninst✝ : Inhabited α\nx y : Nat\nh : x = y\n⊢ x + y = y + x"
    )
    parse_state(state)  # prints the way Lean does
    assert theorem.startswith("theorem add_comm' {α : Type}") and theorem.endswith(":= by")
    assert before == "intro_nothing_yet"


def test_tactics_before_the_position_are_the_proof_so_far():
    before = proof_site(DEMO, 11, 2).proof_before
    assert before == "constructor\n· exact hp"  # the comment is gone


def test_client_goals_win_over_the_statement(tmp_path):
    demo = tmp_path / "Demo.lean"
    demo.write_text(DEMO, encoding="utf-8")
    text, site = cursor_site(demo, 11, 2)
    settings = Settings(lean=LeanSettings(check=False))
    engine = Engine(settings, policy_factory=lambda _s: None)  # type: ignore[arg-type,return-value]
    project = engine.project_for(demo)
    shown = ("case left\np q : Prop\nhp : p\nhq : q\n⊢ p",)
    goal = asyncio.run(engine.goal_at(project, demo.as_uri(), text, site, shown))
    assert (goal.source, goal.goals, goal.count) == ("client", shown, 1)
    assert site.theorem.startswith("example (p q : Prop)")


@pytest.mark.parametrize(
    ("line", "col", "message"),
    [
        (2, 0, "no theorem, lemma or example"),
        (4, 10, "not inside a tactic proof"),
        (99, 0, "outside the file"),
        (11, 99, "outside the line"),
    ],
)
def test_positions_outside_a_tactic_proof_are_explained(tmp_path, line, col, message):
    demo = tmp_path / "Demo.lean"
    demo.write_text(DEMO, encoding="utf-8")
    with pytest.raises(SegpilotError, match=message):
        cursor_site(demo, line, col)


def test_state_argument_decodes_line_breaks_and_rejects_empty():
    assert read_state_arg("x : Nat\\n⊢ x = x") == "x : Nat\n⊢ x = x"
    with pytest.raises(SegpilotError, match="empty"):
        read_state_arg("  ")
