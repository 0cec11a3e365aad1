"""The REPL wire types against real REPL transcripts (upstream's CI-checked test files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FIXTURES

from segpilot.lean.errors import InvalidRequestError, ReplProtocolError
from segpilot.lean.protocol import (
    Command,
    CommandResponse,
    FileCommand,
    PickleEnvironment,
    PickleProofState,
    ProofStep,
    ProofStepResponse,
    ReplError,
    UnpickleEnvironment,
    UnpickleProofState,
    parse_request,
    parse_response,
    reply_type,
    validate_request,
)

CORE = FIXTURES / "lean-repl-transcripts" / "core"


def read_requests(text: str) -> list[dict[str, Any]]:
    """Commands as the REPL reads them: lines up to a blank line, joined without newlines
    (so a raw line break inside a JSON string disappears, as in `invalid_line_break`)."""
    chunks: list[str] = []
    lines: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line.strip():
            lines.append(line)
        elif lines:
            chunks.append("".join(lines))
            lines = []
    return [json.loads(c) for c in chunks if not c.startswith(("#", "--"))]


def read_replies(text: str) -> list[Any]:
    """Every JSON value in a stream, however it is laid out."""
    decoder, values, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i == len(text):
            return values
        value, i = decoder.raw_decode(text, i)
        values.append(value)


def transcripts(folder: Path) -> list[tuple[str, list[dict[str, Any]], list[Any]]]:
    """(name, requests, replies) for each `.in` that has an `.expected.out`."""
    found = []
    for expected in sorted(folder.glob("*.expected.out")):
        name = expected.name.removesuffix(".expected.out")
        requests = read_requests((folder / f"{name}.in").read_text(encoding="utf-8"))
        found.append((name, requests, read_replies(expected.read_text(encoding="utf-8"))))
    return found


def transcript_problems(name: str, requests: list[dict], replies: list[Any]) -> list[str]:
    """Everything about one transcript that our types get wrong (empty when all is well)."""
    if len(requests) != len(replies):
        return [f"{name}: {len(requests)} requests but {len(replies)} replies"]
    problems = []
    for request, raw in zip(requests, replies, strict=True):
        reply = parse_response(raw)
        expected = (ReplError, reply_type(parse_request(request)))
        if not isinstance(reply, expected):
            problems.append(f"{name}: {request} got a {type(reply).__name__}")
        elif isinstance(reply, ProofStepResponse):
            if (reply.proof_state, len(reply.goals)) != (raw["proofState"], len(raw["goals"])):
                problems.append(f"{name}: proof state or goal count differs for {raw}")
        elif isinstance(reply, CommandResponse):
            states = [s.proof_state for s in reply.sorries]
            if reply.env != raw["env"] or states != [
                s["proofState"] for s in raw.get("sorries", [])
            ]:
                problems.append(f"{name}: env or sorry proof states differ for {raw}")
    return problems


CORE_TRANSCRIPTS = transcripts(CORE)
ALL_REQUESTS = [r for _, requests, _ in CORE_TRANSCRIPTS for r in requests]
ALL_REPLIES = [r for _, _, replies in CORE_TRANSCRIPTS for r in replies]


def test_every_core_transcript_is_read() -> None:
    # 57 `.in` upstream, two without an `.expected.out` (README: Gaps).
    assert len(CORE_TRANSCRIPTS) == 55
    assert len(ALL_REPLIES) == len(ALL_REQUESTS) > 150


@pytest.mark.parametrize(
    ("name", "requests", "replies"), CORE_TRANSCRIPTS, ids=[t[0] for t in CORE_TRANSCRIPTS]
)
def test_transcript_replies_parse_with_ids_and_goal_counts(name, requests, replies) -> None:
    assert transcript_problems(name, requests, replies) == []


def test_shared_transcripts_parse_with_ids_and_goal_counts(shared_data: Path) -> None:
    found = transcripts(shared_data / "lean-repl-transcripts" / "core")
    assert len(found) >= len(CORE_TRANSCRIPTS)
    problems = [p for t in found for p in transcript_problems(*t)]
    assert problems == []


def test_repl_numbers_sorry_states_before_the_step_state() -> None:
    # The supervisor numbers stable ids the same way: sorries first, then the new state.
    seen = 0
    for _, _, replies in CORE_TRANSCRIPTS:
        for raw in replies:
            reply = parse_response(raw)
            if isinstance(reply, ProofStepResponse) and reply.sorries:
                ids = [s.proof_state for s in reply.sorries]
                assert ids == list(range(ids[0], ids[0] + len(ids)))
                assert reply.proof_state == ids[-1] + 1
                seen += 1
    assert seen >= 5


def _reply(name: str, index: int) -> Any:
    replies = next(r for n, _, r in CORE_TRANSCRIPTS if n == name)
    return parse_response(replies[index])


@pytest.mark.parametrize(
    ("name", "index", "complete"),
    [
        ("proof_branching", 4, True),  # "Completed", no goals
        ("proof_branching", 1, False),  # open goals remain
        ("invalid_tactic", 1, False),  # an error beside an empty goal list
        ("tactic_mode_sorry", 1, False),  # closed by `sorry`
        ("by_cases", 3, False),  # `all_goals sorry`
        ("name_generator", 2, False),  # contains metavariables
        ("app_type_mismatch", 4, False),  # "Error: kernel type check failed"
        ("trace_simp", 6, True),  # completed with traces
    ],
)
def test_is_complete_only_for_a_clean_completed_proof(name, index, complete) -> None:
    assert _reply(name, index).is_complete is complete


ERROR = {"severity": "error", "pos": {"line": 0, "column": 0}, "endPos": None, "data": "x"}


@pytest.mark.parametrize(
    "extra",
    [
        {"messages": [ERROR]},
        {"sorries": [{"proofState": 3, "goal": "⊢ False"}]},
        {"goals": ["⊢ p"]},
    ],
    ids=["error message", "sorry", "open goal"],
)
def test_completed_status_is_not_enough(extra) -> None:
    reply = parse_response({"proofStatus": "Completed", "proofState": 4, "goals": [], **extra})
    assert not reply.is_complete


def test_goal_state_parses_every_real_goal_list() -> None:
    for raw in ALL_REPLIES:
        reply = parse_response(raw)
        if isinstance(reply, ProofStepResponse):
            assert reply.goal_state.n_goals == reply.n_goals == len(raw["goals"])
            assert reply.goal_state.texts() == list(reply.goals)


def test_errors_and_refusals_are_values() -> None:
    assert _reply("have_by_sorry", 0).has_errors
    assert not _reply("proof_branching", 0).has_errors
    assert _reply("unknown_proof_state", 1) == ReplError("Unknown proof state.")
    assert _reply("unknown_tactic", 1).message.startswith("Lean error:\n")


def test_reply_fields_are_typed() -> None:
    reply = _reply("have_by_sorry", 2)
    assert reply.sorries[0].goal == "x : Int\n⊢ x = 1"
    assert reply.sorries[0].pos is None
    message = _reply("proof_branching", 0).messages[0]
    assert (message.severity, message.pos.line, message.end_pos.column) == ("warning", 1, 19)
    info = _reply("all_tactics", 0).tactics[1]
    assert (info.tactic, info.goals, info.proof_state) == ("exact t", "t : Nat\n⊢ Nat", 1)
    assert _reply("infotree", 0).infotree[0]["kind"] == "TacticInfo"
    assert _reply("trace_simp", 5).traces == ("37",)


def test_unknown_reply_fields_are_kept_in_extra() -> None:
    raw = {"proofStatus": "Completed", "proofState": 4, "goals": [], "elapsedMs": 12}
    reply = parse_response(raw)
    assert reply.is_complete
    assert reply.extra == {"elapsedMs": 12}
    sorry = {"goal": "⊢ Nat", "proofState": 0, "pos": {"line": 1, "column": 2, "file": "a"}}
    parsed = parse_response({"env": 0, "sorries": [sorry]})
    assert parsed.sorries[0].pos.extra == {"file": "a"}


@pytest.mark.parametrize(
    "raw",
    [
        {"goals": []},  # no discriminating key
        {"env": "0"},
        {"env": True},
        {"env": 0, "messages": {"severity": "error"}},
        {"env": 0, "sorries": [{"proofState": 0}]},  # a sorry without its goal
        {"proofState": 1, "goals": ["⊢ p", 3]},
        {"message": None},
        ["env", 0],
    ],
)
def test_replies_matching_no_shape_raise(raw) -> None:
    with pytest.raises(ReplProtocolError):
        parse_response(raw)


def test_every_real_request_validates_and_round_trips() -> None:
    for obj in ALL_REQUESTS:
        validate_request(obj)
        assert parse_request(obj).to_json() == obj


@pytest.mark.parametrize(
    ("request_", "obj"),
    [
        (
            Command("def f := 1", env=0, all_tactics=True),
            {"cmd": "def f := 1", "env": 0, "allTactics": True},
        ),
        (
            Command("x", root_goals=True, infotree="full"),
            {"cmd": "x", "rootGoals": True, "infotree": "full"},
        ),
        (FileCommand("A.lean"), {"path": "A.lean"}),
        (
            ProofStep("(\n  intro h\n  exact h)", 3),
            {"tactic": "(\n  intro h\n  exact h)", "proofState": 3},
        ),
        (PickleEnvironment("e.olean", 0), {"pickleTo": "e.olean", "env": 0}),
        (UnpickleEnvironment("e.olean"), {"unpickleEnvFrom": "e.olean"}),
        (PickleProofState("p.olean", 2), {"pickleTo": "p.olean", "proofState": 2}),
        (UnpickleProofState("p.olean", env=1), {"unpickleProofStateFrom": "p.olean", "env": 1}),
    ],
)
def test_requests_serialise_in_camel_case(request_, obj) -> None:
    assert request_.to_json() == obj
    assert parse_request(obj) == request_


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"tactic": "rfl"},  # no proof state
        {"tactic": "rfl", "proofState": "0"},
        {"tactic": "rfl", "proofState": -1},
        {"tactic": "rfl", "proofState": True},
        {"tactic": "rfl", "proofState": 1.0},
        {"cmd": 42},
        {"cmd": "def f := 1", "env": None, "allTactics": "yes"},
        {"cmd": "x", "infotree": "everything"},
        {"cmd": "x", "proofstate": 0},  # a misspelt key the REPL would ignore
        {"cmd": "x", "tactic": "rfl", "proofState": 0},  # two kinds at once
        {"pickleTo": "a.olean"},  # neither env nor proof state
        {"unpickleEnvFrom": "a.olean", "env": 0},
        {"cmd": "theorem t : True := by\ud800 trivial"},  # a lone surrogate is not UTF-8
        ["cmd", "x"],
    ],
)
def test_malformed_requests_are_rejected_before_sending(obj) -> None:
    with pytest.raises(InvalidRequestError):
        validate_request(obj)
