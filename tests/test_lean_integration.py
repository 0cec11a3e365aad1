"""The real clients against real Lean in `lean_project/`.

These need elan/lake on PATH (they skip otherwise) and build the REPL on first use, which
takes minutes, so they are also `slow`.
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from conftest import ROOT

from segpilot.lean.goals import parse_state
from segpilot.lean.lsp_client import LeanServerClient
from segpilot.lean.protocol import Command, CommandResponse, ProofStep, ProofStepResponse
from segpilot.lean.repl import ReplClient, ReplSettings
from segpilot.search.check import as_one_tactic

pytestmark = [pytest.mark.lean, pytest.mark.slow]

PROJECT = ROOT / "lean_project"


@pytest.fixture(scope="module")
def repl():
    subprocess.run(["lake", "build", "repl"], cwd=PROJECT, check=True, timeout=3600)
    with ReplClient(ReplSettings(project_dir=PROJECT, timeout_s=600)) as client:
        yield client


def test_tracing_a_project_file_gives_every_tactic_with_its_goals(repl):
    text = (PROJECT / "SegpilotExamples" / "Logic.lean").read_text(encoding="utf-8")
    reply = repl.run(Command(text, all_tactics=True))
    assert isinstance(reply, CommandResponse)
    assert not reply.has_errors
    assert len(reply.tactics) >= 10
    for info in reply.tactics:
        assert parse_state(info.goals).n_goals >= 1


def test_a_segment_runs_as_one_tactic_and_closes_the_goal(repl):
    theorem = "theorem seg (p q : Prop) (hp : p) (hq : q) : p ∧ q := by sorry"
    opened = repl.run(Command(theorem))
    assert isinstance(opened, CommandResponse)
    state = opened.sorries[0].proof_state
    split = repl.run(ProofStep("constructor", state))
    assert isinstance(split, ProofStepResponse)
    assert split.n_goals == 2
    block = repl.run(ProofStep(as_one_tactic("constructor\nexact hp\nexact hq"), state))
    assert isinstance(block, ProofStepResponse)
    assert block.is_complete


def test_plain_goal_at_a_demo_sorry_is_the_theorem_goal():
    path = PROJECT / "Demo.lean"
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    line = next(i for i, s in enumerate(lines) if "add_comm_demo" in s) + 1
    character = lines[line].index("sorry")

    async def scenario():
        async with LeanServerClient(PROJECT) as client:
            await client.did_open(path.as_uri(), text)
            return await client.plain_goal(path.as_uri(), line, character)

    goal = asyncio.run(scenario())
    assert goal is not None
    assert goal.texts() == ["a b : Nat\n⊢ a + b = b + a"]


def test_prove_searches_every_sorry_of_the_demo_for_real(repl, tmp_path):
    """`segpilot prove` on lean_project/Demo.lean with real Lean and the default model
    (a dry run: the demo keeps its sorries). Which sorries get proved depends on the model;
    every proof reported must have passed Lean's final check."""
    import json
    import sys

    from segpilot.lean.source import sorries

    demo = PROJECT / "Demo.lean"
    before = demo.read_text(encoding="utf-8")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "segpilot", "prove", str(demo), "--dry-run", "--budget-s", "120",
         "--report", str(report)],
        capture_output=True, text=True, timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    rows = json.loads(report.read_text(encoding="utf-8"))
    assert len(rows) == len(sorries(before))
    assert all(r["status"] in ("proved", "failed", "budget", "error") for r in rows)
    assert all(r["proof"] for r in rows if r["status"] == "proved")
    assert demo.read_text(encoding="utf-8") == before
