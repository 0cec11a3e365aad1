"""The fake REPL says only what the real REPL says: recorded replies, real shapes, real layout,
and every upstream transcript replayed through it byte for byte."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import FAKES, PYTHON
from fakes import fake_repl
from fakes.graphs import (
    error_edge,
    plain_command,
    sorry_command,
    sorry_edge,
    tactic_edge,
    thrown_edge,
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
# Replies the REPL source gives that no upstream transcript shows: Main.lean
# `pickleProofSnapshot` answers an unknown id with a capital S; a tactic that logs an error
# while other goals stay open (JSON.lean `ProofStepResponse` prints `messages` whenever
# there are some; Main.lean `getProofStatus` says open goals whenever goals remain); a
# proof state with several root goals (an `allTactics` entry after `constructor`) closed,
# with or without a sorry on the way (`getProofStatus`: "Not verified: more than one
# initial goal" before it looks at the proof).
_AT = {"line": 0, "column": 0}
SOURCE_ONLY = [
    {"message": "Unknown proof State."},
    {
        "proofStatus": "Incomplete: open goals remain",
        "proofState": 1,
        "messages": [{"severity": "error", "pos": _AT, "endPos": _AT, "data": "..."}],
        "goals": ["⊢ q"],
    },
    {"proofStatus": "Not verified: more than one initial goal", "proofState": 1, "goals": []},
    {
        "proofStatus": "Not verified: more than one initial goal",
        "proofState": 1,
        "messages": [{"severity": "error", "pos": _AT, "endPos": _AT, "data": "..."}],
        "goals": [],
    },
    {
        "sorries": [{"proofState": 2, "goal": "⊢ q"}],
        "proofStatus": "Not verified: more than one initial goal",
        "proofState": 1,
        "goals": [],
    },
]


def _real_shapes() -> set[Any]:
    replies = [r for _, _, replies in CORE_TRANSCRIPTS for r in replies]
    return shapes([*replies, *SOURCE_ONLY], FAMILIES)


def _load_fake() -> Any:
    return fake_repl


def _state_goals(replies: list[Any]) -> dict[int, list[str]]:
    """The goals of every proof state a transcript's replies created."""
    goals: dict[int, list[str]] = {}
    for reply in replies:
        for sorry in reply.get("sorries", []):
            if sorry.get("proofState") is not None:
                goals[sorry["proofState"]] = [sorry["goal"]]
        for info in reply.get("tactics", []):
            if info.get("proofState") is not None:
                goals[info["proofState"]] = fake_repl.entry_goals(info)
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
        assert (entry["request"], fake_repl.public(entry["reply"])) in pairs, entry["source"]
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
    invented = shapes(produced, FAMILIES) - _real_shapes()
    assert not invented, "\n\n".join(describe(s) for s in invented)


def test_block_and_focus_replies_have_real_shapes(tmp_path: Path) -> None:
    """The replies the fake composes (blocks, `·`, `case`, `allTactics` + `skip`, error mode)
    only take shapes real replies take."""
    from test_fake_repl_strict import BODY, Fake, _graph

    fake = Fake(_graph(tmp_path / "graph.json"), tmp_path, "--unrecorded-tactics", "error")
    produced: list[dict[str, Any]] = []

    def send(request: dict[str, Any]) -> dict[str, Any]:
        reply = fake.send(request)
        assert reply is not None, request
        produced.append(reply)
        return reply

    try:
        entries = send({"cmd": BODY + "constructor\n  sorry", "allTactics": True})["tactics"]
        state = send({"tactic": "skip", "proofState": entries[-1]["proofState"]})["proofState"]
        for tactic in (
            "(\n  exact hp\n  exact hq)",
            "· exact hq",
            "· skip",
            "case right => exact hq",
            "all_goals exact hq",
            "(\n  sorry\n  exact hq)",
            "constructor\nexact hp",
            "exact foo",
            "(\n  apply hq\n  exact hp)",
            "(\n  exact hp\n    exact hq)",
        ):
            send({"tactic": tactic, "proofState": state})
    finally:
        fake.close()
    invented = shapes(produced, FAMILIES) - _real_shapes()
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
    assert shapes([fake_reply], FAMILIES) - _real_shapes(), why


def test_unknown_word_gets_lean_unknown_tactic_reply_in_either_mode(tmp_path: Path) -> None:
    # The REPL's reply to `exat 42`: a word that is no tactic (Tactic.lean `unknown`).
    real = read_replies((CORE / "unknown_tactic.expected.out").read_text(encoding="utf-8"))[1]

    def run(tactic: str, *flags: str) -> dict[str, Any]:
        command = [PYTHON, str(FAKES / "fake_repl.py"), str(GRAPH), *flags]
        settings = ReplSettings(command=command, project_dir=tmp_path, timeout_s=10)
        with ReplClient(settings) as repl:
            state = repl.run_json({"cmd": THEOREM})["sorries"][0]["proofState"]
            return repl.run_json({"tactic": tactic, "proofState": state})

    for flags in ((), ("--unrecorded-tactics", "error")):
        assert run("frobnicate", *flags) == real
        assert run("exat 42", *flags) == real
    # a tactic that parses but has no recording: Lean's elaboration-error shape when asked
    reply = run("exact h1.right", "--unrecorded-tactics", "error")
    assert reply["proofStatus"] == "Incomplete: contains sorry" and reply["goals"] == []
    assert [m["severity"] for m in reply["messages"]] == ["error"]
    with pytest.raises(ReplCrashedError):
        run("exact h1.right")  # by default a graph without the edge is a test-authoring mistake


def test_graph_builders_make_only_real_reply_shapes() -> None:
    goal, left = "p : Prop\nhp : p\n⊢ p ∧ p", "case left\np : Prop\nhp : p\n⊢ p"
    right = "case right\np : Prop\nhp : p\n⊢ p"
    cmd = "theorem t (p : Prop) (hp : p) : p ∧ p := by\n  have h : p := sorry\n  sorry"
    split = "theorem t (p : Prop) (hp : p) : p ∧ p := by\n  constructor\n  sorry"
    built = [
        plain_command("def f := 37"),
        plain_command("example : 1 = 0 := rfl", errors=["type mismatch"]),
        sorry_command(cmd, "p : Prop\nhp : p\n⊢ p", goal),
        sorry_command(split, [left, right], all_tactics=True, goals_before={"constructor": goal}),
        sorry_command("example : True := by\n  sorry", "⊢ True", all_tactics=True),
        tactic_edge([goal], "constructor", [left, right]),
        tactic_edge([left], "exact hp", []),
        sorry_edge([goal], "sorry"),
        sorry_edge([goal, left], "exact sorry", [left]),
        error_edge([goal], "exact foo", "Unknown identifier `foo`"),
        error_edge([left, right], "exact foo", "Unknown identifier `foo`"),
        thrown_edge([goal], "exact?", "`exact?` could not close the goal."),
    ]
    invented = shapes([fake_repl.public(e["reply"]) for e in built], FAMILIES) - _real_shapes()
    assert not invented, "\n\n".join(describe(s) for s in invented)
    # tactic sorries first, then term sorries (InfoTree.lean `sorries`)
    assert [s["pos"] for s in built[2]["reply"]["sorries"]] == [
        {"line": 3, "column": 2},
        {"line": 2, "column": 16},
    ]
    # the name of a theorem, the keyword of an example (transcripts `proof_step`, `by_cases`)
    assert built[2]["reply"]["messages"][0]["pos"] == {"line": 1, "column": 8}
    assert built[4]["reply"]["messages"][0]["pos"] == {"line": 1, "column": 0}
    entries = built[3]["reply"]["tactics"]
    assert [(t["tactic"], t["goals"]) for t in entries] == [
        ("constructor", goal),
        ("sorry", left + "\n" + right),
    ]


def test_fake_replays_every_transcript_byte_for_byte(tmp_path: Path) -> None:
    """Each upstream `.in`, fed to the fake as upstream's test.sh feeds it to the REPL (in
    C-locale order, in one folder, so pickles of one test are there for the next), gives its
    `.expected.out` exactly: stdout and stderr together."""
    (tmp_path / "test").mkdir()
    names = sorted(
        (p.name.removesuffix(".expected.out") for p in CORE.glob("*.expected.out")),
        key=lambda name: name.encode(),
    )
    differ = []
    for name in names:
        done = subprocess.run(
            [PYTHON, str(FAKES / "fake_repl.py"), str(GRAPH)],
            input=(CORE / f"{name}.in").read_text(encoding="utf-8"),
            capture_output=True,
            text=True,
            encoding="utf-8",
            cwd=tmp_path,
            timeout=60,
        )
        expected = (CORE / f"{name}.expected.out").read_text(encoding="utf-8")
        if (done.returncode, done.stdout + done.stderr) != (0, expected):
            differ.append(f"{name}: exit {done.returncode}\n{done.stderr[-400:]}")
    assert len(names) == 55
    assert not differ, "\n".join(differ)


def test_recorded_tactics_parse_as_lean_parsed_them() -> None:
    """The parser model agrees with every recorded tactic: those Lean refused to parse give
    exactly Lean's error text, and all others parse as one tactic."""
    graph = json.loads(GRAPH.read_text(encoding="utf-8"))
    for edge in graph["tactics"]:
        text, reply = edge["tactic"], edge["reply"]
        refused = reply.get("message", "").startswith("Lean error:\n<input>:")
        try:
            fake_repl.parse_tactic(text)
        except fake_repl.ParseError as err:
            assert refused and fake_repl.parse_error_text(text, err) == reply["message"], text
        else:
            assert not refused, text


def test_recorded_tactics_entries_say_their_goal_lists() -> None:
    graph = json.loads(GRAPH.read_text(encoding="utf-8"))
    infos = [i for c in graph["commands"] for i in c["reply"].get("tactics", [])]
    assert infos
    for info in infos:
        goals = fake_repl.entry_goals(info)
        assert ("\n".join(goals) if goals else "no goals") == info["goals"]
