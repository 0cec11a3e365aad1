#!/usr/bin/env python3
"""A stand-in for the Lean REPL (leanprover-community/repl) over stdin/stdout.

It speaks the REPL's wire protocol and answers from a graph of recorded real replies
(`repl_graph.json` beside this file, built from the upstream REPL test transcripts):
commands map to their recorded replies, and (goal state, tactic) edges to the reply
Lean gave. Environment and proof-state ids are numbered the way the REPL numbers them,
unknown ids get the REPL's own error replies, replies are printed the way Lean's JSON
printer lays them out, and malformed JSON ends the process as it ends the REPL.

A tactic block of several lines with no recording of its own runs as the recorded edges
of its lines in turn (the REPL runs a block as one step: one new proof state).

Usage: fake_repl.py [GRAPH] [--delay SECONDS] [--unrecorded-tactics {fatal,error}]
(GRAPH defaults to $FAKE_REPL_GRAPH, then repl_graph.json beside this file.) A tactic with
no recording ends the process by default, which catches mistakes in a test's graph; with
`--unrecorded-tactics error` it gets the reply Lean gives an unknown tactic instead, as a
search over model output needs. Fault switches for tests are leading lines of a
`cmd` or `tactic` text:
  fake:crash        exit without replying         fake:hang     never reply
  fake:garbage      print a non-JSON reply        fake:sleep S  wait S seconds, then go on
  fake:alloc MB     hold MB more memory, then go on (`INTERNAL PANIC: out of memory` and
                    exit, as Lean does, when the memory cap is hit)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_GRAPH = Path(__file__).with_name("repl_graph.json")
FAULT_PREFIX = "fake:"
SORRY_STATUS = "Incomplete: open goals remain"
# The REPL's reply to a tactic Lean cannot parse (transcript `unknown_tactic`).
UNKNOWN_TACTIC = {"message": "Lean error:\n<input>:1:1: unknown tactic"}
LINE_WIDTH = 80  # Lean's `Json.pretty` default
_HELD: list[bytearray] = []  # memory held by `fake:alloc`


# --- Lean's JSON layout: Wadler-style groups; keys in descending order ----------------------


def _doc(value: Any) -> Any:
    """A layout document: str (text), None (a line), ("nest", n, [docs]), ("group", [docs])."""
    if isinstance(value, dict):
        items = [
            ("group", [json.dumps(k, ensure_ascii=False) + ":", None, _doc(value[k])])
            for k in sorted(value, reverse=True)
        ]
        return _bracket("{", items, "}")
    if isinstance(value, list):
        return _bracket("[", [_doc(v) for v in value], "]")
    return json.dumps(value, ensure_ascii=False)


def _bracket(left: str, items: list[Any], right: str) -> Any:
    body: list[Any] = [left]
    for i, item in enumerate(items):
        body.extend([",", None, item] if i else [item])
    body.append(right)
    return ("group", [("nest", len(left), body)])


def _fits(width: int, items: list[tuple[int, bool, Any]]) -> bool:
    """Whether the items fit in `width` up to the first line break in break mode."""
    stack = list(items)
    while stack:
        if width < 0:
            return False
        indent, flat, doc = stack.pop()
        if isinstance(doc, str):
            width -= len(doc)
        elif doc is None:
            if not flat:
                return True
            width -= 1
        elif doc[0] == "nest":
            stack.extend((indent + doc[1], flat, d) for d in reversed(doc[2]))
        else:
            stack.extend((indent, flat, d) for d in reversed(doc[1]))
    return width >= 0


def render(value: Any) -> str:
    out: list[str] = []
    column = 0
    stack: list[tuple[int, bool, Any]] = [(0, False, _doc(value))]
    while stack:
        indent, flat, doc = stack.pop()
        if isinstance(doc, str):
            out.append(doc)
            column += len(doc)
        elif doc is None:
            out.append(" " if flat else "\n" + " " * indent)
            column = column + 1 if flat else indent
        elif doc[0] == "nest":
            stack.extend((indent + doc[1], flat, d) for d in reversed(doc[2]))
        else:
            flat = flat or _fits(LINE_WIDTH - column, [*stack, (indent, True, doc)])
            stack.extend((indent, flat, d) for d in reversed(doc[1]))
    return "".join(out)


# --- the REPL state machine ----------------------------------------------------------------


class Fatal(Exception):
    """Ends the process with a message on stderr, as an uncaught exception ends the REPL."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _options(request: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in request.items() if k != "env" and v is not None and v is not False}


def _state_text(goals: list[str]) -> str:
    return "\n\n".join(goals)


class FakeRepl:
    def __init__(self, graph: dict[str, Any], unrecorded_tactics: str = "fatal") -> None:
        self.unrecorded_tactics = unrecorded_tactics
        self.commands: list[dict[str, Any]] = graph["commands"]
        self.edges = {(_state_text(e["goals"]), e["tactic"]): e["reply"] for e in graph["tactics"]}
        self.envs: list[tuple[str, ...]] = []  # env id -> the commands it holds
        self.states: list[dict[str, Any]] = []  # proof state id -> goals and status

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        ids = [request.get(k) for k in ("env", "proofState") if request.get(k) is not None]
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise Fatal("uncaught exception: Could not parse as a valid JSON command")
        for key, handler in (
            ("cmd", self.command),
            ("path", self.command),
            ("tactic", self.tactic),
            ("unpickleEnvFrom", self.unpickle_env),
            ("unpickleProofStateFrom", self.unpickle_state),
        ):
            if key in request:
                return handler(request)
        if "pickleTo" in request and "proofState" in request:
            return self.pickle_state(request)
        if "pickleTo" in request and "env" in request:
            return self.pickle_env(request)
        raise Fatal("uncaught exception: Could not parse as a valid JSON command")

    def _new_state(self, goals: list[str], status: str | None) -> int:
        self.states.append({"goals": goals, "status": status})
        return len(self.states) - 1

    def _renumber_sorries(self, reply: dict[str, Any]) -> None:
        for sorry in reply.get("sorries", []):
            if sorry.get("proofState") is not None:
                sorry["proofState"] = self._new_state([sorry["goal"]], SORRY_STATUS)

    def _env(self, request: dict[str, Any]) -> tuple[str, ...] | None:
        env = request.get("env")
        if env is None:
            return ()
        return self.envs[env] if 0 <= env < len(self.envs) else None

    def command(self, request: dict[str, Any]) -> dict[str, Any]:
        lineage = self._env(request)
        if lineage is None:
            return {"message": "Unknown environment."}
        text = request.get("cmd", request.get("path"))
        wanted = {**_options(request), **({"cmd": text} if "cmd" in request else {})}
        matches = [
            c
            for c in self.commands
            if _options(c["request"]) == wanted and set(c["requires"]) <= set(lineage)
        ]
        if not matches:
            raise Fatal(f"fake_repl: no recorded reply for {wanted!r} after {list(lineage)}", 3)
        reply = copy.deepcopy(max(matches, key=lambda c: len(c["requires"]))["reply"])
        self._renumber_sorries(reply)
        for info in reply.get("tactics", []):
            if info.get("proofState") is not None:
                goals = [] if info["goals"] == "no goals" else [info["goals"]]
                info["proofState"] = self._new_state(goals, SORRY_STATUS)
        self.envs.append((*lineage, text))
        reply["env"] = len(self.envs) - 1
        return reply

    def _step(self, goals: list[str], tactic: str) -> dict[str, Any]:
        reply = self.edges.get((_state_text(goals), tactic))
        if reply is not None:
            return copy.deepcopy(reply)
        lines = [ln.strip() for ln in tactic.strip("()\n").split("\n") if ln.strip()]
        if len(lines) < 2:
            if self.unrecorded_tactics == "error":
                return copy.deepcopy(UNKNOWN_TACTIC)
            raise Fatal(f"fake_repl: no recorded reply for tactic {tactic!r} on {goals!r}", 3)
        merged: dict[str, Any] = {}
        for line in lines:
            step = self._step(goals, line)
            if "message" in step:
                return step
            for key in ("sorries", "messages", "traces"):
                if step.get(key):
                    merged.setdefault(key, []).extend(step[key])
            merged.update(proofStatus=step["proofStatus"], goals=step["goals"])
            goals = step["goals"]
        return merged

    def tactic(self, request: dict[str, Any]) -> dict[str, Any]:
        state_id = request["proofState"]
        if not 0 <= state_id < len(self.states):
            return {"message": "Unknown proof state."}
        reply = self._step(self.states[state_id]["goals"], request["tactic"])
        if "message" in reply:
            return reply
        self._renumber_sorries(reply)
        reply["proofState"] = self._new_state(reply["goals"], reply.get("proofStatus"))
        return reply

    def pickle_env(self, request: dict[str, Any]) -> dict[str, Any]:
        lineage = self._env(request)
        if lineage is None:
            return {"message": "Unknown environment."}
        Path(request["pickleTo"]).write_text(json.dumps({"env": list(lineage)}))
        return {"env": request["env"]}

    def unpickle_env(self, request: dict[str, Any]) -> dict[str, Any]:
        self.envs.append(tuple(_read_pickle(request["unpickleEnvFrom"])["env"]))
        return {"env": len(self.envs) - 1}

    def _state_reply(self, state: dict[str, Any]) -> dict[str, Any]:
        new = self._new_state(list(state["goals"]), state["status"])
        return {"proofStatus": state["status"], "proofState": new, "goals": list(state["goals"])}

    def pickle_state(self, request: dict[str, Any]) -> dict[str, Any]:
        state_id = request["proofState"]
        if not 0 <= state_id < len(self.states):
            return {"message": "Unknown proof state."}
        state = self.states[state_id]
        Path(request["pickleTo"]).write_text(json.dumps({"state": state}))
        return self._state_reply(state)

    def unpickle_state(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._env(request) is None:
            return {"message": "Unknown environment."}
        return self._state_reply(_read_pickle(request["unpickleProofStateFrom"])["state"])


def _read_pickle(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except OSError as err:
        raise Fatal(f"uncaught exception: {err}") from err


def _apply_faults(text: str, out: Any) -> tuple[str, bool]:
    """Act on leading `fake:` lines; returns the rest, and whether the request is answered."""
    lines = text.split("\n")
    while lines and lines[0].startswith(FAULT_PREFIX):
        word, _, arg = lines.pop(0)[len(FAULT_PREFIX) :].partition(" ")
        if word == "crash":
            raise Fatal("fake_repl: crashing as asked")
        if word == "hang":
            while True:
                time.sleep(60)
        if word == "garbage":
            out.write("this is not JSON {\n\n")
            out.flush()
            return "", True
        if word == "sleep":
            time.sleep(float(arg))
        elif word == "alloc":
            try:
                _HELD.append(bytearray(b"\x01") * (int(arg) << 20))
            except MemoryError as err:
                raise Fatal("INTERNAL PANIC: out of memory") from err
    return "\n".join(lines), False


def read_queries(stream: Any):
    """Queries as the REPL reads them: lines up to a blank line, joined without newlines."""
    lines: list[str] = []
    for line in stream:
        if line.strip():
            lines.append(line.rstrip("\n"))
        elif lines:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def serve(repl: FakeRepl, stdin: Any, stdout: Any, delay: float) -> None:
    for query in read_queries(stdin):
        if query.startswith(("#", "--")):
            continue
        try:
            request = json.loads(query)
        except json.JSONDecodeError as err:
            raise Fatal(f"uncaught exception: Could not parse JSON:\n{err}") from err
        if not isinstance(request, dict):
            raise Fatal("uncaught exception: Could not parse as a valid JSON command")
        for key in ("cmd", "tactic"):
            if isinstance(request.get(key), str):
                request[key], answered = _apply_faults(request[key], stdout)
                if answered:
                    break
        else:
            time.sleep(delay)
            stdout.write(render(repl.handle(request)) + "\n\n")
            stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("graph", nargs="?", default=os.environ.get("FAKE_REPL_GRAPH"))
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument(
        "--unrecorded-tactics",
        choices=("fatal", "error"),
        default="fatal",
        help="a tactic with no recording ends the process (fatal) or gets Lean's error reply",
    )
    args = parser.parse_args(argv)
    graph = json.loads(Path(args.graph or DEFAULT_GRAPH).read_text(encoding="utf-8"))
    try:
        with (
            open(sys.stdin.fileno(), encoding="utf-8", closefd=False) as stdin,
            open(sys.stdout.fileno(), "w", encoding="utf-8", closefd=False) as stdout,
        ):
            serve(FakeRepl(graph, args.unrecorded_tactics), stdin, stdout, args.delay)
    except Fatal as err:
        sys.stderr.write(f"{err}\n")
        sys.stderr.flush()
        os._exit(err.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
