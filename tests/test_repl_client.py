"""The REPL client and its supervisor, against the fake REPL over real pipes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import fields
from pathlib import Path

import psutil
import pytest
from conftest import FAKES, PYTHON

from segpilot.lean.errors import (
    InvalidRequestError,
    ReplCrashedError,
    ReplOutOfMemoryError,
    ReplProtocolError,
    ReplReplayError,
    ReplStartError,
    ReplTimeoutError,
)
from segpilot.lean.protocol import (
    Command,
    CommandResponse,
    PickleEnvironment,
    PickleProofState,
    ProofStep,
    ProofStepResponse,
    ReplError,
    UnpickleEnvironment,
    UnpickleProofState,
)
from segpilot.lean.repl import ReplClient, ReplSettings
from segpilot.lean.supervisor import SupervisedRepl, process_tree_rss_mb

FAKE = FAKES / "fake_repl.py"
GRAPH = FAKES / "repl_graph.json"
# proof_branching: 1 goal -> `apply And.intro` 2 -> `exact h1.left` 1 -> `apply h2` 1 -> 0
THEOREM = "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by sorry"
STEPS = ["apply And.intro", "exact h1.left", "apply h2", "exact h1.right"]


def fake_settings(tmp_path: Path, *args: str, graph: Path = GRAPH, **overrides) -> ReplSettings:
    values = {"timeout_s": 10.0, "memory_limit_mb": None, **overrides}
    return ReplSettings(
        command=[PYTHON, str(FAKE), str(graph), *args], project_dir=tmp_path, **values
    )


@pytest.fixture
def client(tmp_path: Path):
    with ReplClient(fake_settings(tmp_path)) as repl:
        yield repl


def kill_from_outside(pid: int, alive) -> None:
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive() and time.monotonic() < deadline:
        time.sleep(0.01)


# --- the plain client -----------------------------------------------------------------------


def test_command_reply_carries_env_and_sorry_proof_state(client: ReplClient) -> None:
    reply = client.run(Command(THEOREM))
    assert isinstance(reply, CommandResponse)
    assert reply.env == 0
    assert [s.proof_state for s in reply.sorries] == [0]
    assert reply.sorries[0].goal == "p q r : Prop\nh1 : p ∧ q\nh2 : q → r\n⊢ p ∧ r"
    assert not reply.has_errors


def test_tactic_steps_follow_the_goal_count(client: ReplClient) -> None:
    state = client.run(Command(THEOREM)).sorries[0].proof_state
    counts = []
    for tactic in STEPS:
        reply = client.run(ProofStep(tactic, state))
        assert isinstance(reply, ProofStepResponse)
        counts.append(reply.n_goals)
        state = reply.proof_state
    assert counts == [2, 1, 1, 0]
    assert reply.is_complete


def test_multi_line_tactic_block_runs_as_one_step(client: ReplClient) -> None:
    client.run(Command(THEOREM))
    split = client.run(ProofStep("apply And.intro", 0))
    block = "(\n  exact h1.left\n  apply h2\n  exact h1.right)"
    reply = client.run(ProofStep(block, split.proof_state))
    assert reply.is_complete
    assert reply.proof_state == split.proof_state + 1  # one new state for the whole block


def test_command_on_an_environment_and_all_tactics(client: ReplClient) -> None:
    base = client.run(Command("def f := 42"))
    on_top = client.run(Command("example : f = 42 := by rfl", env=base.env))
    assert (base.env, on_top.env, on_top.messages) == (0, 1, ())
    traced = client.run(
        Command("example (P : Prop) (hp : P) : P := by\n  exact hp\n", all_tactics=True)
    )
    info = traced.tactics[0]
    assert (info.tactic, info.goals) == ("exact hp", "P : Prop\nhp : P\n⊢ P")
    assert client.run(ProofStep("exact hp", info.proof_state)).is_complete


def test_pickling_round_trip(client: ReplClient, tmp_path: Path) -> None:
    env = client.run(Command("def f := 42")).env
    assert client.run(PickleEnvironment("env.olean", env)).env == env
    loaded = client.run(UnpickleEnvironment("env.olean"))
    assert loaded.env == env + 1
    assert not client.run(Command("example : f = 42 := by rfl", env=loaded.env)).has_errors
    sorry = client.run(Command(THEOREM)).sorries[0].proof_state
    split = client.run(ProofStep("apply And.intro", sorry))
    saved = client.run(PickleProofState(str(tmp_path / "state.olean"), split.proof_state))
    restored = client.run(UnpickleProofState(str(tmp_path / "state.olean"), env=loaded.env))
    assert saved.goals == restored.goals == split.goals
    assert client.run(ProofStep("exact h1.left", restored.proof_state)).n_goals == 1


def test_unknown_ids_and_lean_errors_are_values(client: ReplClient) -> None:
    client.run(Command("def f : Nat := by sorry"))
    assert client.run(ProofStep("exact 42", 7)) == ReplError("Unknown proof state.")
    assert client.run(Command("def g := 1", env=5)) == ReplError("Unknown environment.")
    refused = client.run(ProofStep("exat 42", 0))
    assert isinstance(refused, ReplError) and refused.message.startswith("Lean error:")
    assert client.is_alive() and client.generation == 1


def test_invalid_request_is_refused_before_it_reaches_the_repl(client: ReplClient) -> None:
    pid = client.pid
    with pytest.raises(InvalidRequestError):
        client.run_json({"tactic": "rfl", "proofState": -1})
    assert client.pid == pid and client.is_alive()
    assert client.run(Command("def f := 42")).env == 0  # nothing was sent before


def test_crash_mid_request_reports_stderr_and_request(client: ReplClient) -> None:
    client.run(Command(THEOREM))
    with pytest.raises(ReplCrashedError) as caught:
        client.run(ProofStep("fake:crash", 0))
    assert caught.value.request == {"tactic": "fake:crash", "proofState": 0}
    assert "crashing as asked" in caught.value.stderr_tail
    assert caught.value.returncode == 1
    # The next call starts a fresh REPL, which knows nothing of the old ids.
    assert client.run(ProofStep("apply And.intro", 0)) == ReplError("Unknown proof state.")
    assert client.generation == 2


def test_repl_killed_after_timeout(client: ReplClient) -> None:
    client.run(Command(THEOREM))
    pid = client.pid
    started = time.monotonic()
    with pytest.raises(ReplTimeoutError) as caught:
        client.run(ProofStep("fake:hang", 0), timeout=0.5)
    assert time.monotonic() - started < 5
    assert caught.value.timeout_s == 0.5
    assert not psutil.pid_exists(pid)
    assert client.run(Command("def f := 42")).env == 0  # restarted on next use
    assert client.pid != pid


def test_slow_reply_within_timeout_succeeds_and_past_it_fails(client: ReplClient) -> None:
    client.run(Command(THEOREM))
    reply = client.run(ProofStep("fake:sleep 0.3\napply And.intro", 0), timeout=5)
    assert reply.n_goals == 2
    with pytest.raises(ReplTimeoutError):
        client.run(ProofStep("fake:sleep 3\napply And.intro", 0), timeout=0.3)


def test_garbage_reply_raises_and_restarts_on_next_use(client: ReplClient) -> None:
    client.run(Command(THEOREM))
    pid = client.pid
    with pytest.raises(ReplProtocolError) as caught:
        client.run(ProofStep("fake:garbage", 0))
    assert "not JSON" in str(caught.value)
    assert not client.is_alive()
    assert client.run(Command(THEOREM)).env == 0
    assert client.pid != pid


def test_memory_cap_kills_the_repl(tmp_path: Path) -> None:
    with ReplClient(fake_settings(tmp_path, memory_limit_mb=128)) as repl:
        assert repl.run(Command("fake:alloc 8\ndef f := 42")).env == 0  # fits under the cap
        with pytest.raises(ReplOutOfMemoryError) as caught:
            repl.run(Command("fake:alloc 256\ndef f := 42"))
    assert "out of memory" in str(caught.value)
    with ReplClient(fake_settings(tmp_path)) as repl:  # no cap: the same request succeeds
        assert repl.run(Command("fake:alloc 256\ndef f := 42")).env == 0


def test_start_error_names_the_command(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-repl")
    with pytest.raises(ReplStartError) as caught:
        ReplClient(ReplSettings(command=[missing])).start()
    assert missing in str(caught.value) and "elan" in str(caught.value)


def test_repl_that_exits_at_once_reports_its_stderr(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('error: unknown executable repl\\n'); sys.exit(2)"
    repl = ReplClient(ReplSettings(command=[PYTHON, "-c", script], timeout_s=10))
    with repl, pytest.raises(ReplCrashedError) as caught:
        repl.run(Command("def f := 1"))
    assert caught.value.returncode == 2
    assert "unknown executable repl" in str(caught.value)


def test_close_ends_the_process(tmp_path: Path) -> None:
    repl = ReplClient(fake_settings(tmp_path))
    with repl:
        pid = repl.pid
        assert repl.is_alive()
    assert not repl.is_alive() and not psutil.pid_exists(pid)


def test_concurrent_async_calls_are_serialised_and_all_answered(tmp_path: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main():
        async with ReplClient(fake_settings(tmp_path, "--delay", "0.05")) as repl:
            tick = asyncio.create_task(ticker())
            await repl.arun(Command(THEOREM))
            steps = [repl.arun(ProofStep("apply And.intro", 0)) for _ in range(5)]
            commands = [repl.arun(Command("def f := 42")) for _ in range(3)]
            replies = await asyncio.gather(*steps, *commands)
            tick.cancel()
            return replies

    replies = asyncio.run(main())
    # Mixed kinds: a reply handed to the wrong caller would raise a protocol error.
    assert sorted(r.proof_state for r in replies[:5]) == [1, 2, 3, 4, 5]
    assert all(r.n_goals == 2 for r in replies[:5])
    assert sorted(r.env for r in replies[5:]) == [1, 2, 3]
    assert ticks >= 5  # the event loop kept running while Lean worked


def test_a_call_waits_for_the_call_in_flight(client: ReplClient) -> None:
    # The second call must not share the pipe with the hung one: it waits, and runs on the
    # fresh REPL started after the hung one was killed.
    async def main():
        hung = asyncio.create_task(client.arun(ProofStep("fake:hang", 0), timeout=0.5))
        await asyncio.sleep(0.1)
        other = await client.arun(Command("def f := 42"))
        with pytest.raises(ReplTimeoutError):
            await hung
        return other

    assert asyncio.run(main()).env == 0
    assert client.generation == 2


def test_every_setting_has_help_and_bounds_are_checked() -> None:
    assert all(f.metadata.get("help") for f in fields(ReplSettings))
    with pytest.raises(ValueError, match="timeout_s"):
        ReplSettings(timeout_s=0)
    with pytest.raises(ValueError, match="command"):
        ReplSettings(command=[])
    assert ReplSettings(project_dir="lean_project").project_dir == Path("lean_project")


# --- the supervisor -------------------------------------------------------------------------


def supervised(tmp_path: Path, *args: str, sleeps: list | None = None, **overrides):
    settings = fake_settings(tmp_path, *args, **overrides)
    sleep = sleeps.append if sleeps is not None else time.sleep
    return SupervisedRepl(settings, sleep=sleep)


def test_supervisor_replays_environment_and_states_after_a_crash(tmp_path: Path) -> None:
    with supervised(tmp_path) as repl:
        env = repl.run(Command(THEOREM))
        assert (env.env, env.sorries[0].proof_state) == (0, 0)
        assert repl.run(ProofStep("apply And.intro", 0)).proof_state == 1
        assert repl.run(ProofStep("apply And.intro", 0)).proof_state == 2
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        # Needs state 2: replays the command and the step that made state 2 (not state 1).
        left = repl.run(ProofStep("exact h1.left", 2))
        assert (left.proof_state, left.n_goals) == (3, 1)  # the new REPL numbered it 2
        assert repl.restarts == 1
        assert repl.run(ProofStep("apply h2", 3)).goals == (
            "case right\np q r : Prop\nh1 : p ∧ q\nh2 : q → r\n⊢ q",
        )
        # A state that came with the replayed command's sorries is mapped too.
        assert repl.run(ProofStep("apply And.intro", 0)).n_goals == 2


def test_supervisor_replays_a_sorry_made_by_a_tactic(tmp_path: Path) -> None:
    with supervised(tmp_path) as repl:
        repl.run(Command("theorem foo (x : Int) : x = x := by sorry"))
        step = repl.run(ProofStep("have h : x = 1 := sorry", 0))
        # Numbered as the REPL numbers them: the sorry's state first, then the step's.
        assert ([s.proof_state for s in step.sorries], step.proof_state) == ([1], 2)
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        reply = repl.run(ProofStep("have h : x = 1 := by sorry", 1))
        assert reply.goals == ("x : Int\nh : x = 1\n⊢ x = 1",)
        assert reply.proof_state == 4  # stable ids go on from before the crash


def test_supervisor_restarts_with_backoff_then_gives_up(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with supervised(tmp_path, sleeps=sleeps, max_restarts=2, restart_backoff_s=0.25) as repl:
        repl.run(Command(THEOREM))
        with pytest.raises(ReplCrashedError):
            repl.run(ProofStep("fake:crash", 0))
        assert sleeps == [0.25, 0.5]
        assert repl.restarts == 2
        assert repl.run(ProofStep("apply And.intro", 0)).n_goals == 2  # replayed after all


def test_supervisor_raises_a_timeout_at_once_and_recovers(tmp_path: Path) -> None:
    sleeps: list[float] = []
    with supervised(tmp_path, sleeps=sleeps) as repl:
        repl.run(Command(THEOREM))
        with pytest.raises(ReplTimeoutError):
            repl.run(ProofStep("fake:hang", 0), timeout=0.5)
        assert sleeps == []  # a hang is not retried: the request is the likely cause
        assert repl.run(ProofStep("apply And.intro", 0)).n_goals == 2
        assert repl.restarts == 1


def test_supervisor_recycles_after_n_requests(tmp_path: Path) -> None:
    with supervised(tmp_path, recycle_after=3) as repl:
        repl.run(Command(THEOREM))
        repl.run(ProofStep("apply And.intro", 0))
        repl.run(ProofStep("exact h1.left", 1))
        pid = repl.client.pid
        reply = repl.run(ProofStep("apply h2", 2))
        assert (reply.proof_state, reply.n_goals) == (3, 1)
        assert repl.recycles == 1 and repl.client.pid != pid


def test_supervisor_recycles_when_memory_passes_the_limit(tmp_path: Path) -> None:
    readings = iter([100.0, 900.0, 100.0])
    probed: list[int] = []

    def probe(pid: int) -> float:
        probed.append(pid)
        return next(readings)

    settings = fake_settings(tmp_path, rss_limit_mb=512)
    with SupervisedRepl(settings, memory_probe=probe) as repl:
        first_pid = repl.client.pid
        repl.run(Command(THEOREM))
        assert repl.recycles == 0
        assert repl.run(ProofStep("apply And.intro", 0)).n_goals == 2
        assert repl.recycles == 1
        assert probed == [first_pid, first_pid]
        assert repl.client.pid != first_pid


def test_supervisor_answers_unknown_stable_ids_itself(tmp_path: Path) -> None:
    with supervised(tmp_path) as repl:
        repl.run(Command(THEOREM))
        served = repl.client.requests_served
        assert repl.run(ProofStep("rfl", 9)) == ReplError("Unknown proof state.")
        assert repl.run(Command("def f := 1", env=4)) == ReplError("Unknown environment.")
        assert repl.client.requests_served == served


def test_supervisor_replays_an_unpickled_environment(tmp_path: Path) -> None:
    with supervised(tmp_path) as repl:
        env = repl.run(Command("def f := 42")).env
        assert repl.run(PickleEnvironment("env.olean", env)).env == env
        loaded = repl.run(UnpickleEnvironment("env.olean")).env
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        reply = repl.run(Command("example : f = 42 := by rfl", env=loaded))
        assert (reply.env, reply.has_errors) == (2, False)


def test_supervisor_refuses_a_replay_that_differs(tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text(GRAPH.read_text(encoding="utf-8"), encoding="utf-8")
    with supervised(tmp_path, graph=graph) as repl:
        repl.run(Command(THEOREM))
        repl.run(ProofStep("apply And.intro", 0))
        data = json.loads(graph.read_text(encoding="utf-8"))
        edge = next(e for e in data["tactics"] if e["tactic"] == "apply And.intro")
        edge["reply"]["goals"] = edge["reply"]["goals"][:1]  # Lean now answers differently
        graph.write_text(json.dumps(data), encoding="utf-8")
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        with pytest.raises(ReplReplayError):
            repl.run(ProofStep("exact h1.left", 1))


def test_supervisor_async_calls_are_answered(tmp_path: Path) -> None:
    async def main():
        async with supervised(tmp_path) as repl:
            await repl.arun(Command(THEOREM))
            return await asyncio.gather(*(repl.arun(ProofStep(STEPS[0], 0)) for _ in range(4)))

    assert sorted(r.proof_state for r in asyncio.run(main())) == [1, 2, 3, 4]


def test_process_tree_rss_follows_the_repl_memory(client: ReplClient) -> None:
    client.run(Command("def f := 42"))
    before = process_tree_rss_mb(client.pid)
    client.run(Command("fake:alloc 64\ndef f := 42"))
    assert process_tree_rss_mb(client.pid) >= before + 60
    assert process_tree_rss_mb(2**22 + 12345) == 0.0  # no such process


# --- the supervisor's records stay bounded ----------------------------------------------------


def bounded(tmp_path: Path, *, envs: int, states: int, **overrides) -> SupervisedRepl:
    settings = fake_settings(tmp_path, **overrides)
    return SupervisedRepl(settings, max_environments=envs, max_proof_states=states)


def test_supervisor_records_stay_bounded_over_thousands_of_requests(tmp_path: Path) -> None:
    with bounded(tmp_path, envs=16, states=8, recycle_after=250, rss_limit_mb=None) as repl:
        base = repl.run(Command("def f := 42")).env
        first_theorem = first_step = None
        peak = {"env": 0, "ps": 0, "live": 0}
        for _ in range(1000):  # 3000 requests, 12 recycles
            assert not repl.run(Command("example : f = 42 := by rfl", env=base)).has_errors
            theorem = repl.run(Command(THEOREM))
            step = repl.run(ProofStep(STEPS[0], theorem.sorries[0].proof_state))
            assert step.n_goals == 2
            first_theorem = first_theorem or theorem
            first_step = first_step or step
            peak = {k: max(v, repl.record_counts()[k]) for k, v in peak.items()}
        assert repl.recycles == 12
        assert peak == {"env": 16, "ps": 8, "live": 24}
        # After a crash, what was used lately is replayed, and only what it needs.
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        assert not repl.run(Command("example : f = 42 := by rfl", env=base)).has_errors
        assert repl.client.requests_served == 2  # `def f := 42` again, then the request
        assert repl.run(ProofStep(STEPS[1], step.proof_state)).n_goals == 1
        assert repl.client.requests_served == 5  # the theorem and its first step, then this
        # What was not used for thousands of requests is forgotten, as the REPL would say.
        assert repl.run(ProofStep(STEPS[1], first_step.proof_state)) == ReplError(
            "Unknown proof state."
        )
        assert repl.run(Command("def g := 1", env=first_theorem.env)) == ReplError(
            "Unknown environment."
        )
        assert repl.record_counts()["env"] <= 16 and repl.record_counts()["ps"] <= 8


def test_supervisor_keeps_the_lineage_of_a_state_in_use(tmp_path: Path) -> None:
    with bounded(tmp_path, envs=2, states=4) as repl:
        theorem = repl.run(Command(THEOREM))
        split = repl.run(ProofStep(STEPS[0], theorem.sorries[0].proof_state))
        left = repl.run(ProofStep(STEPS[1], split.proof_state))
        others, tails = [], []
        for _ in range(5):  # unrelated environments, and new states on top of `left`
            others.append(repl.run(Command("def f := 42")).env)
            tails.append(repl.run(ProofStep(STEPS[2], left.proof_state)))
        assert repl.record_counts() == {"env": 2, "ps": 4, "live": 6}
        kill_from_outside(repl.client.pid, repl.client.is_alive)
        # The newest state replays through its whole lineage: theorem, split, left, tail.
        assert repl.run(ProofStep(STEPS[3], tails[-1].proof_state)).is_complete
        assert repl.client.requests_served == 5
        assert repl.run(ProofStep(STEPS[3], tails[0].proof_state)) == ReplError(
            "Unknown proof state."
        )
        assert repl.run(Command("def g := 1", env=others[0])) == ReplError("Unknown environment.")
        assert not repl.run(Command("example : f = 42 := by rfl", env=others[-1])).has_errors


def test_supervisor_forgets_an_environment_with_the_states_built_on_it(tmp_path: Path) -> None:
    with bounded(tmp_path, envs=1, states=8) as repl:
        theorem = repl.run(Command(THEOREM))
        split = repl.run(ProofStep(STEPS[0], theorem.sorries[0].proof_state))
        assert repl.record_counts() == {"env": 1, "ps": 2, "live": 3}
        repl.run(Command("def f := 42"))  # the theorem's environment is the least recent
        assert repl.record_counts() == {"env": 1, "ps": 0, "live": 1}
        served = repl.client.requests_served
        assert repl.run(ProofStep(STEPS[1], split.proof_state)) == ReplError("Unknown proof state.")
        assert repl.client.requests_served == served  # answered without asking the REPL


def test_supervisor_recycle_rebuilds_only_the_ids_asked_for(tmp_path: Path) -> None:
    with bounded(tmp_path, envs=8, states=8, recycle_after=4) as repl:
        base = repl.run(Command("def f := 42")).env
        theorem = repl.run(Command(THEOREM))
        split = repl.run(ProofStep(STEPS[0], theorem.sorries[0].proof_state))
        left = repl.run(ProofStep(STEPS[1], split.proof_state))
        assert repl.record_counts() == {"env": 2, "ps": 3, "live": 5}
        on_base = repl.run(Command("example : f = 42 := by rfl", env=base))  # recycles first
        assert repl.recycles == 1 and not on_base.has_errors
        # The new process was given `base` again and nothing else: the theorem's records
        # wait until someone asks for them.
        assert repl.record_counts() == {"env": 3, "ps": 3, "live": 2}
        assert repl.client.requests_served == 2
        assert repl.run(ProofStep(STEPS[2], left.proof_state)).n_goals == 1
        assert repl.record_counts()["live"] == 2 + 4 + 1  # theorem, its sorry, split, left
