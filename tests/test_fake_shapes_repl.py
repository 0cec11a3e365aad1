"""The fake REPL says only what the real REPL says: recorded replies, real shapes, real layout."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, PYTHON
from fakes.graphs import (
    error_edge,
    plain_command,
    sorry_command,
    sorry_edge,
    tactic_edge,
)
from shapes import describe, prefix_family, shapes
from test_repl_protocol import CORE, CORE_TRANSCRIPTS, read_replies

from segpilot.lean.errors import ReplCrashedError
from segpilot.lean.repl import ReplClient, ReplSettings

GRAPH = FAKES / "repl_graph.json"
FAMILIES = {
    "proofStatus": prefix_family("Error:"),
    "message": prefix_family("Lean error:"),
    "severity": str,
}
THEOREM = "theorem complex_and (p q r : Prop) (h1 : p ∧ q) (h2 : q → r) : p ∧ r := by sorry"


def _load_fake() -> Any:
    spec = importlib.util.spec_from_file_location("fake_repl", FAKES / "fake_repl.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _state_goals(replies: list[Any]) -> dict[int, list[str]]:
    """The goals of every proof state a transcript's replies created."""
    goals: dict[int, list[str]] = {}
    for reply in replies:
        for sorry in reply.get("sorries", []):
            if sorry.get("proofState") is not None:
                goals[sorry["proofState"]] = [sorry["goal"]]
        for info in reply.get("tactics", []):
            if info.get("proofState") is not None:
                goals[info["proofState"]] = [] if info["goals"] == "no goals" else [info["goals"]]
        if "proofState" in reply and "goals" in reply:
            goals[reply["proofState"]] = reply["goals"]
    return goals


def test_fake_lays_replies_out_as_lean_does() -> None:
    render = _load_fake().render
    for expected in sorted(CORE.glob("*.expected.out")):
        text = expected.read_text(encoding="utf-8")
        rendered = "\n\n".join(render(reply) for reply in read_replies(text))
        assert rendered == text.rstrip("\n"), expected.name


def test_every_recorded_reply_comes_from_its_transcript() -> None:
    graph = json.loads(GRAPH.read_text(encoding="utf-8"))
    by_name = {name: (requests, replies) for name, requests, replies in CORE_TRANSCRIPTS}
    for entry in graph["commands"]:
        requests, replies = by_name[entry["source"]]
        pairs = [
            ({k: v for k, v in q.items() if k != "env"}, r)
            for q, r in zip(requests, replies, strict=True)
        ]
        assert (entry["request"], entry["reply"]) in pairs, entry["source"]
        commands = {q.get("cmd") for q in requests}
        assert set(entry["requires"]) <= commands, entry["source"]
    for edge in graph["tactics"]:
        requests, replies = by_name[edge["source"]]
        goals = _state_goals(replies)
        assert any(
            q.get("tactic") == edge["tactic"]
            and r == edge["reply"]
            and goals.get(q["proofState"]) == edge["goals"]
            for q, r in zip(requests, replies, strict=True)
        ), (edge["source"], edge["tactic"])
    assert len(graph["commands"]) > 50 and len(graph["tactics"]) > 40


def _session(tmp_path: Path) -> list[dict[str, Any]]:
    """Drive every reply path of the fake and collect the raw replies."""
    fake = str(FAKES / "fake_repl.py")
    settings = ReplSettings(command=[PYTHON, fake, str(GRAPH)], project_dir=tmp_path, timeout_s=10)
    out: list[dict[str, Any]] = []
    with ReplClient(settings) as repl:

        def send(obj: dict[str, Any]) -> dict[str, Any]:
            out.append(repl.run_json(obj))
            return out[-1]

        state = send({"cmd": THEOREM})["sorries"][0]["proofState"]
        split = send({"tactic": "apply And.intro", "proofState": state})["proofState"]
        send({"tactic": "(\n  exact h1.left\n  apply h2\n  exact h1.right)", "proofState": split})
        send({"tactic": "exact h1.left", "proofState": split})
        state = send({"cmd": "theorem foo (x : Int) : x = x := by sorry"})["sorries"][0][
            "proofState"
        ]
        send({"tactic": "have h : x = 1 := sorry", "proofState": state})
        state = send({"cmd": "def f : Nat := by sorry"})["sorries"][0]["proofState"]
        send({"tactic": "exat 42", "proofState": state})
        state = send({"cmd": "theorem my_theorem (x : Nat) : x = x := by sorry"})["sorries"][0][
            "proofState"
        ]
        send({"tactic": "exact my_fake_premise", "proofState": state})
        env = None
        for cmd in (
            "def f := 37",
            "@[simp] theorem f_def : f = 37 := by rfl",
            "set_option trace.Meta.Tactic.simp true",
        ):
            env = send({"cmd": cmd, **({} if env is None else {"env": env})})["env"]
        state = send({"cmd": "example : f = 37 := by sorry", "env": env})["sorries"][0][
            "proofState"
        ]
        send({"tactic": 'trace "37"', "proofState": state})
        send({"tactic": "simp", "proofState": state})
        send({"cmd": "def f : Nat := by have t := 37; exact t", "allTactics": True})
        send({"cmd": "def f (h : Int) : Nat := by constructor", "infotree": "substantive"})
        send({"path": "test/file2.lean", "allTactics": True})
        send(
            {
                "cmd": "example : 1=1 := by\n  skip\n  exact?\n\ntheorem bb : 1+1=2 := by rfl",
                "rootGoals": True,
            }
        )
        send({"pickleTo": "env.olean", "env": env})
        send({"unpickleEnvFrom": "env.olean"})
        send({"pickleTo": "state.olean", "proofState": state})
        send({"unpickleProofStateFrom": "state.olean", "env": env})
        send({"tactic": "rfl", "proofState": 999})
        send({"cmd": "def g := 1", "env": 999})
        send({"pickleTo": "x.olean", "env": 999})
        send({"pickleTo": "x.olean", "proofState": 999})
        send({"unpickleProofStateFrom": "state.olean", "env": 999})
    return out


def test_fake_reply_shapes_occur_in_real_transcripts(tmp_path: Path) -> None:
    produced = _session(tmp_path)
    covered = {tuple(sorted(reply)) for reply in produced}
    assert covered >= {
        ("message",),
        ("env",),
        ("env", "messages", "sorries"),
        ("env", "tactics"),
        ("env", "infotree", "messages"),
        ("goals", "proofState", "proofStatus"),
        ("goals", "proofState", "proofStatus", "sorries"),
        ("goals", "messages", "proofState", "proofStatus"),
        ("goals", "proofState", "proofStatus", "traces"),
    }
    real = shapes((r for _, _, replies in CORE_TRANSCRIPTS for r in replies), FAMILIES)
    invented = shapes(produced, FAMILIES) - real
    assert not invented, "\n\n".join(describe(s) for s in invented)


@pytest.mark.parametrize(
    ("fake_reply", "why"),
    [
        ({"proofStatus": "Done", "proofState": 1, "goals": []}, "a status Lean never sends"),
        ({"proofState": 1, "goals": []}, "no proofStatus"),
        ({"message": "Unknown goal."}, "an error text Lean never sends"),
        (
            {
                "env": 0,
                "messages": [
                    {
                        "severity": "fatal",
                        "pos": {"line": 1, "column": 0},
                        "endPos": None,
                        "data": "",
                    }
                ],
            },
            "a severity Lean never sends",
        ),
    ],
)
def test_invented_shapes_are_caught(fake_reply: dict[str, Any], why: str) -> None:
    real = shapes((r for _, _, replies in CORE_TRANSCRIPTS for r in replies), FAMILIES)
    assert shapes([fake_reply], FAMILIES) - real, why


def test_unrecorded_tactic_gets_lean_unknown_tactic_reply_when_asked(tmp_path: Path) -> None:
    # The REPL's reply to `exat 42`, a tactic Lean cannot parse.
    real = read_replies((CORE / "unknown_tactic.expected.out").read_text(encoding="utf-8"))[1]

    def run_unrecorded(*flags: str) -> dict[str, Any]:
        command = [PYTHON, str(FAKES / "fake_repl.py"), str(GRAPH), *flags]
        settings = ReplSettings(command=command, project_dir=tmp_path, timeout_s=10)
        with ReplClient(settings) as repl:
            state = repl.run_json({"cmd": THEOREM})["sorries"][0]["proofState"]
            return repl.run_json({"tactic": "frobnicate", "proofState": state})

    assert run_unrecorded("--unrecorded-tactics", "error") == real
    with pytest.raises(ReplCrashedError):
        run_unrecorded()  # by default a graph without the edge is a test-authoring mistake


def test_graph_builders_make_only_real_reply_shapes() -> None:
    goal, left = "p : Prop\nhp : p\n⊢ p ∧ p", "case left\np : Prop\nhp : p\n⊢ p"
    cmd = "theorem t (p : Prop) (hp : p) : p ∧ p := by\n  have h : p := sorry\n  sorry"
    built = [
        plain_command("def f := 37"),
        plain_command("example : 1 = 0 := rfl", errors=["type mismatch"]),
        sorry_command(cmd, left, goal),
        tactic_edge([goal], "constructor", [left, left]),
        tactic_edge([left], "exact hp", []),
        sorry_edge([goal], "sorry"),
        sorry_edge([goal, left], "exact sorry", [left]),
        error_edge([goal], "exact foo", "Unknown identifier `foo`"),
    ]
    real = shapes((r for _, _, replies in CORE_TRANSCRIPTS for r in replies), FAMILIES)
    invented = shapes([entry["reply"] for entry in built], FAMILIES) - real
    assert not invented, "\n\n".join(describe(s) for s in invented)
    assert built[2]["reply"]["sorries"][1]["pos"] == {"line": 3, "column": 2}
