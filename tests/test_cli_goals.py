"""`segpilot goals`: the goals at a cursor, through the engine path the sidecar uses, with the
fake REPL (configured as an explicit REPL command) and without Lean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import FAKES, PYTHON
from fakes.graphs import sorry_command, write_graph

HEAD = "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n  constructor\n  "
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ q"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ p"


def goals(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "segpilot", "goals", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def project_with(tmp_path: Path, text: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "lakefile.toml").write_text('name = "scratch"\n', encoding="utf-8")
    source = project / "Swap.lean"
    source.write_text(text, encoding="utf-8")
    return source


def test_after_constructor_both_goals_come_from_the_configured_repl(tmp_path):
    graph = write_graph(
        tmp_path / "g.json",
        [
            sorry_command(
                HEAD + "sorry", [LEFT, RIGHT], all_tactics=True, goals_before={"constructor": GOAL}
            )
        ],
    )
    source = project_with(tmp_path, HEAD + "\n")
    repl = f"{PYTHON} {FAKES / 'fake_repl.py'} {graph}"
    done = goals(
        str(source), "--line", "3", "--col", "2", "--json", env={"SEGPILOT_LEAN_REPL_COMMAND": repl}
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"source": "repl", "count": 2, "goals": [LEFT, RIGHT]}
    text = goals(str(source), "--line", "3", "--col", "2", "--repl-command", repl)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("2 goal(s), from repl:\n")
    assert "  case right\n" in text.stdout


def test_without_lean_the_goal_is_read_from_the_statement(tmp_path):
    source = project_with(tmp_path, HEAD + "\n")
    done = goals(
        str(source), "--line", "3", "--col", "2", "--json", "--repl-command", "no-such-repl"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"source": "statement", "count": 1, "goals": [GOAL]}


def test_a_cursor_outside_a_proof_or_the_file_is_one_line(tmp_path):
    source = project_with(tmp_path, HEAD + "\n")
    for line, col in (("1", "3"), ("40", "0")):
        done = goals(str(source), "--line", line, "--col", col, "--repl-command", "no-such-repl")
        assert done.returncode == 1
        assert done.stderr.startswith("segpilot: error: ") and done.stderr.count("\n") == 1
    missing = goals(str(tmp_path / "Nope.lean"), "--line", "1")
    assert missing.returncode == 1 and "Nope.lean" in missing.stderr
