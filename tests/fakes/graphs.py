"""Small graphs for the fake REPL, written by tests into their own folders.

Each builder makes one entry of `fake_repl.py`'s graph (`repl_graph.json` has the same
layout) whose reply has the shape of a real reply in the REPL transcripts
(tests/fixtures/lean-repl-transcripts/core; the transcript each shape comes from is named
at its builder). Ids inside replies are placeholders: the fake renumbers them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SOURCE = "test"
OPEN_GOALS = "Incomplete: open goals remain"
SORRY_WARNING = "declaration uses `sorry`"


def _pos(text: str, offset: int) -> dict[str, int]:
    """A REPL position: 1-based line, column in code points."""
    line = text.count("\n", 0, offset) + 1
    return {"line": line, "column": offset - (text.rfind("\n", 0, offset) + 1)}


def _span(text: str, start: int, end: int) -> dict[str, Any]:
    return {"pos": _pos(text, start), "endPos": _pos(text, end)}


def _command(cmd: str, reply: dict[str, Any], requires: Sequence[str]) -> dict[str, Any]:
    return {"source": SOURCE, "request": {"cmd": cmd}, "requires": list(requires), "reply": reply}


def sorry_command(cmd: str, *goals: str, requires: Sequence[str] = ()) -> dict[str, Any]:
    """A command whose `sorry`s (in order, one per goal) each get a proof state, and the
    warning Lean gives the declaration (transcript `proof_branching`)."""
    found = [m.span() for m in re.finditer(r"\bsorry\b", cmd)]
    if len(found) != len(goals):
        raise ValueError(f"{len(found)} sorries in {cmd!r} but {len(goals)} goals")
    sorries = [
        {"proofState": i, **_span(cmd, start, end), "goal": goal}
        for i, ((start, end), goal) in enumerate(zip(found, goals, strict=True))
    ]
    name = re.match(r"\s*\S+\s+(\S+)", cmd)
    start, end = name.span(1) if name else (0, len(cmd.split("\n")[0]))
    warning = {"severity": "warning", **_span(cmd, start, end), "data": SORRY_WARNING}
    return _command(cmd, {"sorries": sorries, "messages": [warning], "env": 0}, requires)


def plain_command(
    cmd: str, *, requires: Sequence[str] = (), errors: Sequence[str] = ()
) -> dict[str, Any]:
    """A command with no sorry: `{"env"}` (transcript `pickle_environment`), or with error
    messages over the whole text (transcript `app_type_mismatch`)."""
    messages = [{"severity": "error", **_span(cmd, 0, len(cmd)), "data": e} for e in errors]
    return _command(cmd, {**({"messages": messages} if messages else {}), "env": 0}, requires)


def _edge(goals: Sequence[str], tactic: str, reply: dict[str, Any]) -> dict[str, Any]:
    return {"source": SOURCE, "goals": list(goals), "tactic": tactic, "reply": reply}


def tactic_edge(goals: Sequence[str], tactic: str, goals_after: Sequence[str]) -> dict[str, Any]:
    """`tactic` on `goals` leaves `goals_after`; "Completed" when none are left
    (transcript `proof_branching`)."""
    status = OPEN_GOALS if goals_after else "Completed"
    return _edge(
        goals, tactic, {"proofStatus": status, "proofState": 0, "goals": list(goals_after)}
    )


def sorry_edge(
    goals: Sequence[str], tactic: str, goals_after: Sequence[str] = ()
) -> dict[str, Any]:
    """`tactic` puts a sorry in place of the first goal and leaves `goals_after`
    (transcripts `tactic_mode_sorry`: none left; `have_by_sorry`: goals left)."""
    reply = {
        "sorries": [{"proofState": 0, "goal": goals[0]}],
        "proofStatus": OPEN_GOALS if goals_after else "Incomplete: contains sorry",
        "proofState": 1,
        "goals": list(goals_after),
    }
    return _edge(goals, tactic, reply)


def error_edge(goals: Sequence[str], tactic: str, error: str) -> dict[str, Any]:
    """`tactic` elaborates with an error message (transcript `invalid_tactic`)."""
    at = {"line": 0, "column": 0}
    reply = {
        "proofStatus": "Incomplete: contains sorry",
        "proofState": 0,
        "messages": [{"severity": "error", "pos": at, "endPos": at, "data": error}],
        "goals": [],
    }
    return _edge(goals, tactic, reply)


def write_graph(
    path: Path, commands: Sequence[dict[str, Any]], tactics: Sequence[dict[str, Any]] = ()
) -> Path:
    """Write a graph for `fake_repl.py` and return its path."""
    graph = {
        "about": "A test's own graph, built by tests/fakes/graphs.py.",
        "commands": list(commands),
        "tactics": list(tactics),
    }
    path.write_text(json.dumps(graph, ensure_ascii=False, indent=1), encoding="utf-8")
    return path
