"""Offline proof completion (`segpilot.engine.proving`, the jobs and the local executor) on
the fake REPL over real pipes, with a scripted policy: holes, write-back, the final check,
a REPL crash mid-search, and a file that changes underneath."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import FAKES, PYTHON
from fakes.graphs import plain_command, sorry_command, write_graph
from test_search_check import (
    BODY,
    DECLARATION,
    GOAL,
    HEADER,
    LEFT,
    MISMATCH,
    RIGHT,
    and_swap_graph,
)

from segpilot.engine import proving
from segpilot.engine.executors import LocalExecutor
from segpilot.engine.jobs import JobResult, JobRunner, ProofJob
from segpilot.engine.projects import Projects
from segpilot.engine.settings import Settings, load_settings
from segpilot.model.candidates import Candidate
from segpilot.model.policy import Proposed
from segpilot.model.settings import ModelSettings
from segpilot.textfiles import backup_path

TWO = f"{LEFT}\n\n{RIGHT}"
THREE_STEPS = {
    GOAL: [("exact hp", -0.5), ("constructor", -1.0)],
    TWO: [("exact hp", -0.2), ("exact hq", -0.3)],
    RIGHT: [("exact hp", -0.1)],
}
PROOF = "constructor\n  exact hq\n  exact hp"
FILE = HEADER + "-- a comment that mentions sorry\n" + BODY + "sorry\n"


class Scripted:
    """A policy proposing scripted blocks by goal text (what `JobRunner` needs of one)."""

    def __init__(
        self, script: Mapping[str, Sequence[tuple[str, float]]], on_propose: Any = None
    ) -> None:
        self.script = script
        self.settings = ModelSettings()
        self.loaded = None
        self.on_propose = on_propose
        self.asked: list[str] = []

    def propose_batch(
        self, state: Any, k: int, *, cancel: threading.Event | None = None
    ) -> Proposed:
        text = state if isinstance(state, str) else state.pretty()
        self.asked.append(text)
        if self.on_propose is not None:
            self.on_propose(text)
        blocks = self.script.get(text, [])[:k]
        return Proposed(
            tuple(Candidate(b, tuple(b.split("\n")), lp) for b, lp in blocks),
            tokens=sum(len(b.split()) for b, _ in blocks),
        )

    def forget(self) -> None:
        self.forgotten = getattr(self, "forgotten", 0) + 1

    def close(self) -> None:
        pass


def graph_for(tmp_path: Path, final_errors: Sequence[str] = ()) -> Path:
    header = HEADER + "-- a comment that mentions sorry\n"
    commands = [
        plain_command(header),
        sorry_command(BODY + "sorry", GOAL, requires=[header]),
        plain_command(DECLARATION + "\n", requires=[header], errors=list(final_errors)),
    ]
    base = and_swap_graph(tmp_path / "base.json")
    import json

    data = json.loads(base.read_text(encoding="utf-8"))
    extra = json.loads(write_graph(tmp_path / "extra.json", commands, []).read_text("utf-8"))
    data["commands"] = extra["commands"] + data["commands"]
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def settings_for(graph: Path, **search: Any) -> Settings:
    command = [PYTHON, str(FAKES / "fake_repl.py"), str(graph), "--unrecorded-tactics", "error"]
    return load_settings(
        {},
        {"lean": {"repl_command": command}, "search": {"rollout": False, **search}},
        environ={},
    )


def prove_file(
    path: Path, settings: Settings, policy: Scripted
) -> tuple[proving.Target, list[JobResult]]:
    (target,) = proving.find_targets([path], project=path.parent)
    jobs = proving.jobs_for([target], settings)
    executor = LocalExecutor(JobRunner(policy_factory=lambda *a, **k: policy))
    try:
        results = list(executor.run(jobs, threading.Event()))
    finally:
        executor.close()
    projects = Projects()
    try:
        return target, proving.checked_results(projects, settings, target, results)
    finally:
        for project in projects.by_root.values():
            if project.checker is not None:
                project.checker.close()


@pytest.fixture
def lean_file(tmp_path: Path) -> Path:
    path = tmp_path / "Swap.lean"
    path.write_text(FILE, encoding="utf-8")
    return path


def test_a_proof_found_replaces_only_the_sorry_span_with_a_backup(
    tmp_path: Path, lean_file: Path
) -> None:
    settings = settings_for(graph_for(tmp_path))
    policy = Scripted(THREE_STEPS)
    target, results = prove_file(lean_file, settings, policy)
    assert target.holes == [(3, 2, "and_swap")]  # the sorry in the comment is no hole
    (result,) = results
    assert (result.status, result.proof, result.replacement) == (
        "proved",
        "constructor\nexact hq\nexact hp",
        PROOF,
    )
    assert (result.expansions, result.lean_calls) == (3, 5)
    assert result.tokens == sum(len(b.split()) for bs in THREE_STEPS.values() for b, _ in bs)
    written = proving.write_back(target, results, dry_run=False, want_diff=True)
    assert written.error == "" and written.proofs == 1
    assert lean_file.read_text(encoding="utf-8") == FILE.replace("  sorry\n", f"  {PROOF}\n")
    assert backup_path(lean_file).read_text(encoding="utf-8") == FILE
    assert written.diff.count("\n-") == 1 and "-  sorry" in written.diff
    assert "+  constructor\n+  exact hq\n+  exact hp" in written.diff
    assert written.diff.startswith(f"--- {lean_file}\n+++ {lean_file}\n")


def test_dry_run_writes_nothing(tmp_path: Path, lean_file: Path) -> None:
    target, results = prove_file(
        lean_file, settings_for(graph_for(tmp_path)), Scripted(THREE_STEPS)
    )
    written = proving.write_back(target, results, dry_run=True, want_diff=False)
    assert written.proofs == 1 and PROOF in written.new_text
    assert lean_file.read_text(encoding="utf-8") == FILE
    assert not backup_path(lean_file).exists()


def test_a_proof_lean_refuses_in_command_mode_is_not_written(
    tmp_path: Path, lean_file: Path
) -> None:
    # Tactic mode accepts all three steps; the whole declaration in command mode does not.
    settings = settings_for(graph_for(tmp_path, final_errors=[MISMATCH]))
    target, results = prove_file(lean_file, settings, Scripted(THREE_STEPS))
    (result,) = results
    assert result.status == "failed" and result.replacement == ""
    assert "failed the final check" in result.message and "type mismatch" in result.message
    written = proving.write_back(target, results, dry_run=False, want_diff=False)
    assert written.proofs == 0 and lean_file.read_text(encoding="utf-8") == FILE


def test_the_whole_file_check_drops_a_proof_lean_refuses_there(
    tmp_path: Path, lean_file: Path
) -> None:
    # A result claiming a proof that Lean refuses in the final text (the search's own check
    # would have caught it; this is the last line of defence before writing).
    graph = graph_for(tmp_path, final_errors=[MISMATCH])
    settings = settings_for(graph)
    (target,) = proving.find_targets([lean_file], project=tmp_path)
    claimed = JobResult(
        f"{lean_file}:4:2", "and_swap", "proved", 1.0, proof="x", replacement=PROOF,
        path=str(lean_file), line=3, column=2,
    )  # fmt: skip
    projects = Projects()
    try:
        (checked,) = proving.checked_results(projects, settings, target, [claimed])
    finally:
        projects.by_root[tmp_path.resolve()].checker.close()  # type: ignore[union-attr]
    assert checked.status == "error" and "type mismatch" in checked.message


def test_a_file_changed_underneath_is_left_as_it_is(tmp_path: Path, lean_file: Path) -> None:
    target, results = prove_file(
        lean_file, settings_for(graph_for(tmp_path)), Scripted(THREE_STEPS)
    )
    edited = FILE + "\n-- typed while the search ran\n"
    lean_file.write_text(edited, encoding="utf-8")
    written = proving.write_back(target, results, dry_run=False, want_diff=False)
    assert "changed since it was read" in written.error
    assert lean_file.read_text(encoding="utf-8") == edited
    assert not backup_path(lean_file).exists()


def test_a_repl_crash_mid_search_gives_the_same_proof(tmp_path: Path, lean_file: Path) -> None:
    settings = settings_for(graph_for(tmp_path))
    _, calm = prove_file(lean_file, settings, Scripted(THREE_STEPS))

    killed: list[int] = []

    def kill_the_repl(goal: str) -> None:
        # Once the search is two moves in, the REPL process (our own child) dies.
        if goal == TWO and not killed:
            for child in psutil.Process().children(recursive=True):
                if any("fake_repl.py" in part for part in child.cmdline()):
                    killed.append(child.pid)
                    os.kill(child.pid, signal.SIGKILL)
                    child.wait(10)

    _, stormy = prove_file(lean_file, settings, Scripted(THREE_STEPS, kill_the_repl))
    assert len(killed) == 1
    (a,), (b,) = calm, stormy
    assert (
        (b.status, b.proof, b.expansions)
        == (a.status, a.proof, a.expansions)
        == (
            "proved",
            "constructor\nexact hq\nexact hp",
            3,
        )
    )


def test_holes_of_one_theorem_and_term_sorries_are_told_apart(tmp_path: Path) -> None:
    text = (
        "theorem a (p : Prop) (hp : p) : p := by\n  sorry\n\n"
        "theorem b : 1 = 1 := by\n  exact (sorry : 1 = 1)\n\n"
        "theorem c (p : Prop) (hp : p) : p ∧ p := by\n  constructor\n  · sorry\n  · sorry\n"
    )
    path = tmp_path / "Many.lean"
    path.write_text(text, encoding="utf-8")
    (every,) = proving.find_targets([path], project=tmp_path)
    assert [(line, name) for line, _, name in every.holes] == [(1, "a"), (8, "c"), (9, "c")]
    assert len(every.notes) == 1 and "sorry inside" in every.notes[0]
    (only,) = proving.find_targets([path], theorem="c", project=tmp_path)
    assert [h[1:] for h in only.holes] == [(4, "c"), (4, "c")]


def test_folders_are_searched_for_lean_files_but_not_build_folders(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / ".lake" / "packages").mkdir(parents=True)
    for name in ("src/A.lean", "B.lean", ".lake/packages/C.lean", "notes.txt"):
        (tmp_path / name).write_text("theorem t : True := by\n  sorry\n", encoding="utf-8")
    found = proving.lean_files([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["B.lean", "src/A.lean"]


def test_filled_text_refuses_a_text_that_is_not_the_one_searched() -> None:
    result = JobResult("k", "t", "proved", 0.0, replacement="rfl", line=0, column=0)
    assert proving.filled_text("sorry", [result]) == "rfl"
    with pytest.raises(Exception, match="no sorry at offset 0"):
        proving.filled_text("other", [result])


def test_jobs_are_plain_data_that_survive_json(tmp_path: Path, lean_file: Path) -> None:
    import json

    settings = settings_for(graph_for(tmp_path), expansions=7)
    (target,) = proving.find_targets([lean_file], project=tmp_path)
    (job,) = proving.jobs_for([target], settings)
    again = ProofJob.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job
    assert load_settings({}, again.settings, environ={}).search.expansions == 7
    result = JobResult("k", "t", "budget", 2.5, expansions=7, path="p", line=3)
    assert JobResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert result.report_row()["line"] == 4  # 1-based in reports


def test_the_write_back_survives_sigkill_at_random_moments(tmp_path: Path) -> None:
    """A process writing proofs back over and over is SIGKILLed at random moments: the file
    is always one whole version or the other, never half of one."""
    import random

    path = tmp_path / "Big.lean"
    versions = [
        ("theorem t : True := by\n  sorry\n" + "-- padding line\n" * 20000),
        ("theorem t : True := by\n  trivial\n" + "-- padding line\n" * 20000),
    ]
    path.write_text(versions[0], encoding="utf-8")
    # What `proving.write_back` does once the text is made: `replace_file` with the
    # snapshot taken when the file was read, and a backup.
    for i, version in enumerate(versions):
        (tmp_path / f"v{i}").write_text(version, encoding="utf-8")
    writer = f"""
from pathlib import Path
from segpilot.textfiles import read_snapshot, replace_file
path, folder = Path({str(path)!r}), Path({str(tmp_path)!r})
versions = [(folder / "v0").read_text("utf-8"), (folder / "v1").read_text("utf-8")]
print("ready", flush=True)
while True:
    text, snapshot = read_snapshot(path)
    replace_file(path, versions[text == versions[0]], expected=snapshot)
"""
    rng = random.Random(7)
    for _ in range(25):
        process = subprocess.Popen(
            [sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        threading.Event().wait(rng.uniform(0.0, 0.3))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert path.read_text(encoding="utf-8") in versions
        backup = backup_path(path)
        if backup.exists():
            assert backup.read_text(encoding="utf-8") in versions


def test_a_runner_keeps_one_loaded_model_for_jobs_that_only_sample_differently() -> None:
    made: list[Any] = []

    class Loaded:
        def __init__(self) -> None:
            self.closed = False

    class Made:
        def __init__(self, settings: ModelSettings, backend: Any = None) -> None:
            self.settings, self.loaded = settings, backend or Loaded()
            made.append(self)

        def close(self) -> None:
            self.loaded.closed = True

    runner = JobRunner(policy_factory=Made)
    first = runner.policy_for(ModelSettings(seed=0))
    assert runner.policy_for(ModelSettings(seed=0)) is first
    for seed in range(1, 12):  # more than the runner keeps
        assert runner.policy_for(ModelSettings(seed=seed)).loaded is first.loaded
    assert not first.loaded.closed  # the kept policies still use it
    other = runner.policy_for(ModelSettings(model_path="other.gguf"))
    assert other.loaded is not first.loaded
    for seed in range(12, 24):  # pushes `other` out: nothing else uses its model
        runner.policy_for(ModelSettings(seed=seed))
    assert other.loaded.closed and not first.loaded.closed


@pytest.mark.parametrize(
    ("budget", "reason"),
    [({"expansions": 1}, "budget: expansions"), ({"lean_calls": 2}, "budget: lean calls")],
)
def test_a_search_a_budget_stops_is_reported_as_budget(
    tmp_path: Path, lean_file: Path, budget: dict[str, int], reason: str
) -> None:
    _, (result,) = prove_file(
        lean_file, settings_for(graph_for(tmp_path), **budget), Scripted(THREE_STEPS)
    )
    assert (result.status, result.proof, result.replacement) == ("budget", "", "")
    assert result.message == f"no proof found ({reason})"
    assert result.report_row()["status"] == "budget"


def test_a_search_that_runs_dry_is_reported_as_failed(tmp_path: Path, lean_file: Path) -> None:
    dead_end = {GOAL: [("exact hp", -0.5), ("frobnicate", -1.0)]}
    _, (result,) = prove_file(lean_file, settings_for(graph_for(tmp_path)), Scripted(dead_end))
    assert (result.status, result.message) == ("failed", "no proof found (exhausted)")


def test_a_job_costs_the_same_whatever_the_worker_ran_before(
    tmp_path: Path, lean_file: Path
) -> None:
    # Two configurations of a bench run, say, on one worker: the second must not be
    # credited with Lean results or proposals the first paid for.
    settings = settings_for(graph_for(tmp_path))
    (target,) = proving.find_targets([lean_file], project=tmp_path)
    (job,) = proving.jobs_for([target], settings)
    policy = Scripted(THREE_STEPS)
    runner = JobRunner(policy_factory=lambda *a, **k: policy)
    try:
        first, second = runner.run(job), runner.run(job)
    finally:
        runner.close()
    assert first is not None and second is not None
    assert (
        (second.lean_calls, second.tokens, second.expansions)
        == (
            first.lean_calls,
            first.tokens,
            first.expansions,
        )
        == (5, 9, 3)
    )
    assert policy.forgotten == 2
