"""Executors run the same proof jobs to the same results: in this process, in worker
processes, and on a Ray started here on loopback; a worker that dies costs its job one more
try. The jobs are real: the default model proposing, Lean checking through the fake REPL's
core-logic elaborator (`fake_repl.py --elaborate`), easy theorems of `fixtures/easy_core`."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import FAKES, FIXTURES, PYTHON
from fakes.graphs import write_graph

from segpilot.engine import bench
from segpilot.engine.executors import LocalExecutor, ProcessExecutor, RayExecutor, make_executor
from segpilot.engine.jobs import JobResult, ProofJob
from segpilot.engine.settings import Settings, load_settings
from segpilot.errors import SegpilotError

SUITE = FIXTURES / "easy_core" / "easy_core.jsonl"
# Short statements the default model proves (or fails) within a few expansions.
NAMES = ("tpil_Tactics_L1104_example", "tpil_Tactics_L692_example", "tpil_Tactics_L1126_example")


def elaborating_settings(tmp_path: Path, **search: object) -> Settings:
    graph = write_graph(tmp_path / "graph.json", [], [])
    command = [PYTHON, str(FAKES / "fake_repl.py"), str(graph), "--elaborate"]
    return load_settings(
        {},
        {
            "lean": {"repl_command": [*command, "--unrecorded-tactics", "error"]},
            # Quality and agreement are measured, not speed: no wall clock may cut a search.
            "search": {"wall_s": 600.0, "expansions": 2, "k": 4, **search},
            "model": {"budget_s": 600.0},
        },
        environ={},
    )


def easy_jobs(tmp_path: Path, names: tuple[str, ...] = NAMES) -> list[ProofJob]:
    theorems = [t for t in bench.read_suite(SUITE) if t.name in names]
    assert len(theorems) == len(names)
    config = bench.parse_config("segment+rollout")
    return bench.plan_jobs(theorems, [config], 1, 0, tmp_path, elaborating_settings(tmp_path))


def outcome(results: list[JobResult]) -> list[tuple[object, ...]]:
    return sorted(
        (r.key, r.status, r.proof, r.expansions, r.lean_calls, r.tokens, r.message) for r in results
    )


def run(executor: object, jobs: list[ProofJob]) -> list[JobResult]:
    try:
        return list(executor.run(jobs, threading.Event()))  # type: ignore[attr-defined]
    finally:
        executor.close()  # type: ignore[attr-defined]


@pytest.mark.slow
def test_local_processes_and_ray_executors_agree(tmp_path: Path) -> None:
    jobs = easy_jobs(tmp_path)
    local = run(LocalExecutor(), jobs)
    assert len(local) == len(jobs)
    assert any(r.status == "proved" for r in local), [r.message for r in local]
    assert all(r.status in ("proved", "failed", "budget") for r in local)
    processes = run(ProcessExecutor(2), jobs)
    ray = run(RayExecutor(2), jobs)
    assert outcome(processes) == outcome(local)
    assert outcome(ray) == outcome(local)


def _workers() -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process().children()
        if any("multiprocessing" in part for part in p.cmdline())
    ]


def _has_repl(worker: psutil.Process) -> bool:
    try:
        return any(any("fake_repl.py" in part for part in c.cmdline()) for c in worker.children())
    except psutil.Error:
        return False


@pytest.mark.slow
def test_a_killed_worker_s_job_runs_again_on_a_fresh_worker(tmp_path: Path) -> None:
    (job,) = easy_jobs(tmp_path, NAMES[:1])
    found: list[JobResult] = []
    executor = ProcessExecutor(1)
    thread = threading.Thread(target=lambda: found.extend(run(executor, [job])))
    thread.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline:
        # Busy: its REPL (started by the job) is there.
        victim = next((w for w in _workers() if _has_repl(w)), None)
        time.sleep(0.05)
    assert victim is not None, "the worker never started its job"
    victim.kill()  # our own child process
    thread.join(300)
    (result,) = found
    assert result.attempts == 2 and result.status in ("proved", "failed", "budget")
    assert result.key == job.key


def test_a_worker_over_its_memory_cap_is_stopped_and_its_job_tried_once_more(
    tmp_path: Path,
) -> None:
    (job,) = easy_jobs(tmp_path, NAMES[:1])
    (result,) = run(ProcessExecutor(1, memory_mb=1.0), [job])
    assert result.status == "error" and result.attempts == 2
    assert "over its memory cap of 1 MB, twice" in result.message
    assert result.key == job.key and result.theorem == job.theorem


def test_unknown_executor_and_bad_worker_counts_are_one_line_errors() -> None:
    with pytest.raises(SegpilotError, match="unknown executor 'spark'"):
        make_executor("spark")
    with pytest.raises(SegpilotError, match="--workers must be at least 1"):
        make_executor("processes", 0)


def test_cancelled_jobs_give_no_result(tmp_path: Path) -> None:
    jobs = easy_jobs(tmp_path)
    cancel = threading.Event()
    cancel.set()
    assert list(LocalExecutor().run(jobs, cancel)) == []
    assert list(ProcessExecutor(2).run(jobs, cancel)) == []


def test_jobs_cross_process_boundaries_as_json(tmp_path: Path) -> None:
    (job,) = easy_jobs(tmp_path, NAMES[:1])
    assert ProofJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job


@pytest.mark.slow
def test_a_killed_ray_actor_s_job_runs_again_on_a_fresh_actor(tmp_path: Path) -> None:
    (job,) = easy_jobs(tmp_path, NAMES[:1])
    found: list[JobResult] = []
    executor = RayExecutor(1)
    thread = threading.Thread(target=lambda: found.extend(run(executor, [job])))
    thread.start()
    deadline = time.monotonic() + 180
    victim = None
    while victim is None and time.monotonic() < deadline:
        # Ray titles an actor's process by the method it runs; this Ray was started here.
        for process in psutil.process_iter(["cmdline"]):
            if any("_RayWorker.run" in part for part in process.info["cmdline"] or ()):
                victim = process
                break
        time.sleep(0.05)
    assert victim is not None, "the actor never started its job"
    victim.kill()
    thread.join(300)
    (result,) = found
    assert result.attempts == 2 and result.status in ("proved", "failed", "budget")
