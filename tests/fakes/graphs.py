"""Small graphs for the fake REPL, written by tests into their own folders.

Each builder makes one entry of `fake_repl.py`'s graph (`repl_graph.json` has the same
layout) whose reply has the shape of a real reply in the REPL transcripts
(tests/fixtures/lean-repl-transcripts/core; the transcript each shape comes from is named
at its builder). Ids inside replies are placeholders: the fake renumbers them.

A goal list (`Goals`) is a sequence of goal texts; a plain string is a one-goal list. A
tactic edge is keyed on the goal list and the exact tactic text; builders check with the
fake's parser model that the text is ONE tactic (`fake_repl.parse_tactic`), so a test
cannot record what Lean would refuse to parse.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import fake_repl

SOURCE = "test"
OPEN_GOALS = fake_repl.OPEN_GOALS
CONTAINS_SORRY = fake_repl.CONTAINS_SORRY
SORRY_WARNING = "declaration uses `sorry`"  # Lean 4.32+ quotes with backticks
Goals = str | Sequence[str]

_MODIFIERS = {"private", "protected", "noncomputable", "unsafe", "partial", "nonrec"}
_NAMED = {"theorem", "lemma", "def", "abbrev", "instance", "opaque", "axiom"}


def goal_list(goals: Goals) -> list[str]:
    """A goal list from a `Goals` argument: a plain string is one goal."""
    return [goals] if isinstance(goals, str) else list(goals)


def _pos(text: str, offset: int) -> dict[str, int]:
    """A REPL position: 1-based line, column in code points."""
    line, column = fake_repl.position(text, offset)
    return {"line": line, "column": column}


def _span(text: str, start: int, end: int) -> dict[str, Any]:
    return {"pos": _pos(text, start), "endPos": _pos(text, end)}


def _command(
    cmd: str, reply: dict[str, Any], requires: Sequence[str], all_tactics: bool = False
) -> dict[str, Any]:
    request: dict[str, Any] = {"cmd": cmd, **({"allTactics": True} if all_tactics else {})}
    return {"source": SOURCE, "request": request, "requires": list(requires), "reply": reply}


def _declaration_name(cmd: str) -> tuple[int, int]:
    """Where Lean puts `declaration uses sorry`: the declared name, or the `example`
    keyword (transcripts `proof_step`, `proof_branching2`, `by_cases`)."""
    skip = 0
    for m in re.finditer(r"@\[[^\]]*\]|\S+", cmd):
        word = m.group()
        if skip or word.startswith("@[") or word in _MODIFIERS or word == "set_option":
            skip = 3 if word == "set_option" else max(skip - 1, 0)  # `set_option o v in`
            continue
        if word in _NAMED:
            name = re.compile(r"\s+([^\s:({\[]+)").match(cmd, m.end())
            return name.span(1) if name else m.span()
        return m.span()
    return 0, len(cmd.split("\n")[0])


def _tactic_entry(cmd: str, node: fake_repl.Syn, goals: list[str]) -> dict[str, Any]:
    """An `allTactics` entry (transcripts `all_tactics`, `calc`): `goals` prints every goal
    before the tactic joined by one newline; the list itself is kept in `fake:goals`, which
    the fake strips. Lean pretty-prints `tactic`; this is the source text. `usedConstants`
    cannot be told but for a sorry, which always uses `sorryAx` (transcript `calc`)."""
    sorry = node.kind == "leaf" and node.name == "sorry"
    return {
        "usedConstants": ["sorryAx"] if sorry else [],
        "tactic": node.text,
        "proofState": 0,
        **_span(cmd, node.start, node.end),
        "goals": "\n".join(goals) if goals else "no goals",
        "fake:goals": goals,
    }


def sorry_command(
    cmd: str,
    *goals: Goals,
    requires: Sequence[str] = (),
    all_tactics: bool = False,
    goals_before: Mapping[str, Goals] | None = None,
) -> dict[str, Any]:
    """A command whose `sorry`s each get a proof state, with the warning Lean gives the
    declaration (transcripts `proof_branching`, `no_goal_sorry_2`).

    `goals`: one goal list per `sorry` of `cmd`, in source order: all goals open there. A
    sorry's own entry gets the MAIN goal only (InfoTree.lean `sorries` takes
    `goalsBefore.head!`); Lean lists tactic sorries before term sorries. With
    `all_tactics` (`"allTactics": true`), the reply also lists every substantive tactic
    of the `:= by` block: a sorry with its full goal list, any other tactic with its goals
    from `goals_before` (tactic text -> goals before it; a missing one is an error).
    """
    found = [m.span() for m in re.finditer(r"\bsorry\b", cmd)]
    if len(found) != len(goals):
        raise ValueError(f"{len(found)} sorries in {cmd!r} but {len(goals)} goal lists")
    lists = [goal_list(g) for g in goals]
    if any(not g for g in lists):
        raise ValueError("a sorry needs at least its main goal")
    try:
        walked = [(n, d) for tac in fake_repl.proof_tactics(cmd) for n, d in tac.walk()]
    except fake_repl.ParseError as err:
        if all_tactics:
            raise ValueError(f"the proof of {cmd!r} does not parse: {err.message}") from err
        walked = []  # then sorries stay in source order
    tactic_sorries = {n.start for n, _ in walked if n.kind == "leaf" and n.name == "sorry"}
    order = sorted(range(len(found)), key=lambda i: found[i][0] not in tactic_sorries)
    for i in order:
        if found[i][0] not in tactic_sorries and len(lists[i]) != 1:
            raise ValueError(f"the term sorry at {found[i][0]} has one goal, not {lists[i]}")
    sorries = [
        {"proofState": k, **_span(cmd, *found[i]), "goal": lists[i][0]} for k, i in enumerate(order)
    ]
    start, end = _declaration_name(cmd)
    warning = {"severity": "warning", **_span(cmd, start, end), "data": SORRY_WARNING}
    reply: dict[str, Any] = {"sorries": sorries, "messages": [warning], "env": 0}
    if all_tactics:
        at_sorry = {found[i][0]: lists[i] for i in range(len(found))}
        before = {k: goal_list(v) for k, v in (goals_before or {}).items()}
        entries = []
        for node, _depth in walked:
            if not node.substantive:
                continue
            if node.kind == "leaf" and node.name == "sorry":
                listed = at_sorry[node.start]
            elif node.text in before:
                listed = before[node.text]
            else:
                raise ValueError(f"goals_before needs the goals before {node.text!r}")
            entries.append(_tactic_entry(cmd, node, listed))
        if entries:
            reply["tactics"] = entries
    return _command(cmd, reply, requires, all_tactics)


def plain_command(
    cmd: str,
    *,
    requires: Sequence[str] = (),
    errors: Sequence[str] = (),
    all_tactics: bool = False,
) -> dict[str, Any]:
    """A command with no sorry: `{"env"}` (transcript `pickle_environment`), or with error
    messages over the whole text (transcript `app_type_mismatch`). With `all_tactics` the
    request asks for them; a command that does not parse lists none."""
    messages = [{"severity": "error", **_span(cmd, 0, len(cmd)), "data": e} for e in errors]
    reply = {**({"messages": messages} if messages else {}), "env": 0}
    return _command(cmd, reply, requires, all_tactics)


def _edge(goals: Goals, tactic: str, reply: dict[str, Any]) -> dict[str, Any]:
    try:
        fake_repl.parse_tactic(tactic)
    except fake_repl.ParseError as err:
        why = fake_repl.parse_error_text(tactic, err)
        raise ValueError(f"{tactic!r} is not one tactic to Lean's parser: {why}") from err
    return {"source": SOURCE, "goals": goal_list(goals), "tactic": tactic, "reply": reply}


def tactic_edge(goals: Goals, tactic: str, goals_after: Goals) -> dict[str, Any]:
    """`tactic` on `goals` leaves `goals_after`; "Completed" when none are left
    (transcript `proof_branching`)."""
    after = goal_list(goals_after)
    status = OPEN_GOALS if after else "Completed"
    return _edge(goals, tactic, {"proofStatus": status, "proofState": 0, "goals": after})


def sorry_edge(goals: Goals, tactic: str, goals_after: Goals = ()) -> dict[str, Any]:
    """`tactic` puts a sorry in place of the main goal and leaves `goals_after`
    (transcripts `tactic_mode_sorry`: none left; `have_by_sorry`: goals left)."""
    after = goal_list(goals_after)
    reply = {
        "sorries": [{"proofState": 0, "goal": goal_list(goals)[0]}],
        "proofStatus": OPEN_GOALS if after else CONTAINS_SORRY,
        "proofState": 1,
        "goals": after,
    }
    return _edge(goals, tactic, reply)


def error_edge(goals: Goals, tactic: str, error: str) -> dict[str, Any]:
    """`tactic` elaborates with an error message, and Lean admits the main goal (transcript
    `invalid_tactic`; the other goals stay open)."""
    after = goal_list(goals)[1:]
    reply = {
        "proofStatus": OPEN_GOALS if after else CONTAINS_SORRY,
        "proofState": 0,
        "messages": [
            {
                "severity": "error",
                "pos": dict(fake_repl.AT_ZERO),
                "endPos": dict(fake_repl.AT_ZERO),
                "data": error,
            }
        ],
        "goals": after,
    }
    return _edge(goals, tactic, reply)


def thrown_edge(goals: Goals, tactic: str, error: str) -> dict[str, Any]:
    """`tactic` throws: the REPL answers `Lean error:` and the error, and makes no proof
    state (transcripts `app_type_mismatch2`, `self_proof_check`)."""
    return _edge(goals, tactic, {"message": fake_repl.LEAN_ERROR + error})


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


def file_command(
    text: str, goals_before: Sequence[Goals], *, requires: Sequence[str] = ()
) -> dict[str, Any]:
    """A whole file of finished proofs sent with `allTactics` (as `segpilot trace` sends a
    file; transcript `all_tactics`): every substantive tactic of each declaration's `:= by`
    block (declarations start at column 0) gets an entry, positions counted in the whole
    text, with the goals before it from `goals_before`, one goal list per listed tactic in
    source order (inside `·` Lean lists only the focused goal). No sorries, no messages."""
    starts = [m.start() for m in re.finditer(r"^\S", text, re.MULTILINE)] + [len(text)]
    nodes = []
    for begin, end in itertools.pairwise(starts):
        chunk = text[begin:end]
        try:
            walked = [n for tac in fake_repl.proof_tactics(chunk) for n, _ in tac.walk()]
        except fake_repl.ParseError as err:
            raise ValueError(f"the proof in {chunk!r} does not parse: {err.message}") from err
        nodes += [(begin, n) for n in walked if n.substantive]
    if len(nodes) != len(goals_before):
        listed = [n.text for _, n in nodes]
        raise ValueError(f"{len(goals_before)} goal lists for {len(nodes)} tactics {listed}")
    entries = []
    for (begin, node), goals in zip(nodes, goals_before, strict=True):
        listed = goal_list(goals)
        entries.append(
            {
                "usedConstants": [],
                "tactic": node.text,
                "proofState": 0,
                **_span(text, begin + node.start, begin + node.end),
                "goals": "\n".join(listed) if listed else "no goals",
                "fake:goals": listed,
            }
        )
    reply: dict[str, Any] = {"env": 0, **({"tactics": entries} if entries else {})}
    return _command(text, reply, requires, all_tactics=True)
