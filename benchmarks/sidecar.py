"""The LSP sidecar driven over stdio: latency, Lean calls by kind, and memory over keystrokes.

Latency (part `latency`): a scripted editing session with the default model.

`segpilot serve` runs as an editor runs it (a subprocess spoken to over stdio with pygls's
LanguageClient). There is no Lean here, so the goals come from the editor, as the VS Code
extension sends them from the official Lean extension (`segpilot/goalState`), and suggestions
are unchecked (checking is off). The proofs are real multi-step ones from
tests/fixtures/trajectories/repl_transcript_steps.jsonl (goal lists before and after each
tactic, chained by proof state), each a `theorem` whose proof lines are the recorded tactics.

Per proof: open the document with the proof's first line empty; at each cursor position in
the proof, tell the sidecar the goals there, ask for an inline completion, then type the
recorded tactic and a new indented line and send the goals after it. When the goal count
drops the sidecar starts a prefetch; the script then waits a think time (until
`segpilot/status` shows no running job, capped) before the next request, which the prefetch
answers. Each request is classified from the status counters before and after it (prefetch
hits, cache hits), not from its time. The acceptance command (`segpilot.suggestionAccepted`
with an item's arguments) is sent once per session. Resident memory is the server process's
(psutil RSS, sampled every 0.1 s).

Baseline in the same run: the model alone, loaded in this process with the sidecar's model
settings (k = 4, default max_tokens and seed, the sidecar's request budget; proposal cache
off), timing `Policy.propose` on the same goals with the same prompt parts, in the order the
sidecar met them, after each session has stopped (so the two never share the cores); each
goal is run --alone-passes times and its fastest time counts, a baseline that errs against
the sidecar. CPU use of the server, of this process and of every other program is recorded
around each timing, so that a slow one can be told apart from a busy machine.

Lean calls (part `lean`): one scripted session with checking on, Lean being the fake REPL
(tests/fakes/fake_repl.py, run as a program, answering from a graph this script writes in
the fake's documented format, for exactly the texts the session sends). The user types the
same proofs as declarations one below another under one `import` block, and edits the
header above the cursor during the session (adds `open` lines, changes an earlier `def`,
adds a `def`); the goals come from the REPL, as in an editor without the Lean extension.
"After" is `lean.calls` from `segpilot/status` at the end. "Before" is the old keying (one
environment per whole header text, its imports elaborated again on every miss), derived
from the same session: the REPL's traffic is logged (`tee` around the fake), and each
state query's whole header is rebuilt from the environments it ran in.

Memory (part `memory`): --keystrokes inline-completion requests on a fresh server with a
cheap configuration (checking off, k 1, 4 tokens, a suggestion cache of 64 goals so that it
fills and evicts): proofs typed a character at a time, each keystroke an edit, the editor's
goals for it (`segpilot/goalState`), a request at the new cursor and two with the cursor moved
(one to the left, then back), so most requests are answered by the suggestion cache and the
first of each line runs the model (or joins a prefetch); every fifth keystroke also asks at a
cursor outside the proof. The server's RSS is taken (psutil) after 100 requests, after the
last and in between, each time once no job runs; target: less than 20 MB apart.

    .venv/bin/python benchmarks/sidecar.py [--runs 3] [--quick] [--think 5] [--alone-passes 2]
        [--parts latency,lean,memory] [--keystrokes 10000]
        [--log-level debug --log PATH] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import tempfile
import textwrap
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _report import machine, median, p95, table, write_section
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from segpilot.engine.service import Engine
from segpilot.engine.settings import LspSettings, Settings
from segpilot.lean.source import NotInProof, proof_site, split_imports
from segpilot.lsp.server import PROBE_DELAY_S
from segpilot.model.policy import Policy
from segpilot.model.presets import theorem_from_state
from segpilot.model.settings import ModelSettings

ROOT = Path(__file__).resolve().parents[1]
STEPS_FILE = ROOT / "tests" / "fixtures" / "trajectories" / "repl_transcript_steps.jsonl"
# Run as a program only: benchmarks do not import from tests/.
FAKE_REPL = ROOT / "tests" / "fakes" / "fake_repl.py"
INDENT = "  "
ACCEPTED = "segpilot.suggestionAccepted"
# Only editor setting changed from the defaults: no Lean checks, so a machine with Lean on
# PATH measures the same thing as one without.
OPTIONS = {"checking": False}
# Other programs' cores below which a timing counts as taken on a quiet machine.
QUIET = 0.25
WARM_UP = ("warm_up", "theorem warm_up (n : Nat) : n + 0 = n := by", ["n : Nat\n⊢ n + 0 = n"])

EPILOG = """\
examples:
  .venv/bin/python benchmarks/sidecar.py                   3 latency sessions, the Lean
                                                            session, 10,000 keystroke requests;
                                                            writes BENCHMARKS.md
  .venv/bin/python benchmarks/sidecar.py --quick           each part small, print only
  .venv/bin/python benchmarks/sidecar.py --runs 5 --think 8
  .venv/bin/python benchmarks/sidecar.py --quick --log-level debug --log /tmp/sidecar.log
                                                            where a slow request's time goes
  .venv/bin/python benchmarks/sidecar.py --parts lean      only the Lean calls, print only
  .venv/bin/python benchmarks/sidecar.py --parts memory --keystrokes 2000

BENCHMARKS.md is written only when every part ran (and neither --quick nor --no-write)."""
PARTS = ("latency", "lean", "memory")


# -- the proofs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    tactic: str
    before: tuple[str, ...]
    after: tuple[str, ...]


@dataclass(frozen=True)
class Proof:
    name: str
    theorem: str
    steps: tuple[Step, ...]

    def cursors(self) -> list[tuple[tuple[str, ...], Step | None]]:
        """(goals at the cursor, the tactic typed there) for every cursor position that has
        goals: before each step, and after the last one when goals remain."""
        out: list[tuple[tuple[str, ...], Step | None]] = [(s.before, s) for s in self.steps]
        if self.steps[-1].after:
            out.append((self.steps[-1].after, None))
        return out

    def prefetches(self) -> int:
        """Drops of the goal count to a non-zero count: where the sidecar prefetches."""
        return sum(0 < len(s.after) < len(s.before) for s in self.steps)


def load_proofs(path: Path = STEPS_FILE) -> list[Proof]:
    """The longest chain of recorded steps from each transcript's first proof state (both goal
    lists known, no Lean error, one-line tactics), kept when its goal count drops to a
    non-zero count at least once; one proof per distinct starting goal."""
    edges: dict[str, dict[int, list[tuple[int, Step]]]] = defaultdict(lambda: defaultdict(list))
    for line in path.open(encoding="utf-8"):
        row = json.loads(line)
        before, after = row.get("goals_before"), row.get("goals_after")
        if before is None or after is None or not before or "\n" in row["tactic"]:
            continue
        if str(row.get("proofStatus") or "").startswith("Error"):
            continue
        if row.get("proofState_before") is None or row.get("proofState_after") is None:
            continue
        step = Step(row["tactic"], tuple(before), tuple(after))
        edges[row["transcript"]][row["proofState_before"]].append((row["proofState_after"], step))

    def longest(graph: dict[int, list[tuple[int, Step]]], state: int, seen: frozenset[int]):
        best: list[Step] = []
        for nxt, step in graph.get(state, []):
            if nxt in seen:
                continue
            chain = [step] if not step.after else [step, *longest(graph, nxt, seen | {nxt})]
            if len(chain) > len(best):
                best = chain
        return best

    proofs, starts = [], set()
    for transcript, graph in edges.items():
        chain = longest(graph, 0, frozenset({0}))
        if len(chain) < 2 or chain[0].before in starts:
            continue
        name = transcript.rsplit("/", 1)[-1].replace("-", "_")
        theorem = theorem_from_state("\n\n".join(chain[0].before))
        proof = Proof(name, theorem.replace("example", f"theorem {name}", 1), tuple(chain))
        if proof.prefetches():
            starts.add(chain[0].before)
            proofs.append(proof)
    return proofs


@dataclass(frozen=True)
class Edit:
    """One incremental change: the range start-end (line, character) replaced by `text`."""

    start: tuple[int, int]
    end: tuple[int, int]
    text: str

    def apply(self, text: str) -> str:
        lines = text.split("\n")
        if any(ord(c) > 0xFFFF for c in self.text):
            raise ValueError("the scripted texts are BMP-only (LSP characters = code points)")
        (l1, c1), (l2, c2) = self.start, self.end
        merged = lines[l1][:c1] + self.text + lines[l2][c2:]
        return "\n".join([*lines[:l1], merged, *lines[l2 + 1 :]])

    def cursor(self) -> tuple[int, int]:
        """Where the change leaves the cursor (as the sidecar's didChange computes it)."""
        lines = self.text.split("\n")
        line, character = self.start
        return line + len(lines) - 1, (character if len(lines) == 1 else 0) + len(lines[-1])


# -- the client (after tests/lsp_harness.py) ---------------------------------------------------


class Sidecar:
    """A running `segpilot serve`, the client talking to it, its log and its peak RSS."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        assert client._server is not None
        self.server = psutil.Process(client._server.pid)
        self.stderr: list[str] = []
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}
        self.peak_rss = 0
        self.rss_samples: list[int] = []
        self.ready_s = 0.0

    @property
    def process(self) -> asyncio.subprocess.Process:
        assert self.client._server is not None
        return self.client._server

    async def drain(self) -> None:
        stream = self.process.stderr
        assert stream is not None
        while line := await stream.readline():
            self.stderr.append(line.decode("utf-8", "replace"))

    async def sample_rss(self, every: float = 0.1) -> None:
        proc = self.server
        with contextlib.suppress(psutil.Error):
            while True:
                rss = proc.memory_info().rss
                self.rss_samples.append(rss)
                self.peak_rss = max(self.peak_rss, rss)
                await asyncio.sleep(every)

    async def request(self, method: str, params: Any, timeout: float = 120.0) -> Any:
        return await asyncio.wait_for(
            self.client.protocol.send_request_async(method, params), timeout
        )

    async def status(self) -> dict[str, Any]:
        return as_dict(await self.request("segpilot/status", {}))

    def open(self, uri: str, text: str) -> None:
        self.versions[uri], self.texts[uri] = 1, text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(types.TextDocumentItem(uri, "lean4", 1, text))
        )

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
        )

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        """Type `text` at (line, character): an incremental didChange, as editors send it."""
        self.edit(uri, Edit((line, character), (line, character), text))

    def edit(self, uri: str, change: Edit) -> None:
        """Replace a range (an incremental didChange); the texts are BMP-only, so LSP
        characters are code points."""
        self.versions[uri] += 1
        self.texts[uri] = change.apply(self.texts[uri])
        start, end = types.Position(*change.start), types.Position(*change.end)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(self.versions[uri], uri),
                [
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start, end), text=change.text
                    )
                ],
            )
        )

    def goal_state(self, uri: str, line: int, character: int, goals: tuple[str, ...]) -> None:
        self.client.protocol.notify(
            "segpilot/goalState",
            {
                "uri": uri,
                "version": self.versions.get(uri),
                "position": {"line": line, "character": character},
                "goals": list(goals),
            },
        )

    async def inline(self, uri: str, line: int, character: int) -> types.InlineCompletionList:
        params = types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
            ),
            text_document=types.TextDocumentIdentifier(uri),
            position=types.Position(line, character),
        )
        return await asyncio.wait_for(
            self.client.text_document_inline_completion_async(params), 120
        )

    async def execute(self, command: str, arguments: list[Any]) -> Any:
        params = types.ExecuteCommandParams(command=command, arguments=arguments)
        return await asyncio.wait_for(self.client.workspace_execute_command_async(params), 60)

    async def wait_idle(self, cap: float) -> tuple[float, bool]:
        """Wait until no job runs (the user's think time), at most `cap` seconds; returns the
        seconds waited and whether the jobs finished."""
        start = time.perf_counter()
        while True:
            if (await self.status())["caches"]["running"] == 0:
                return time.perf_counter() - start, True
            if time.perf_counter() - start >= cap:
                return time.perf_counter() - start, False
            await asyncio.sleep(0.05)

    async def settle(self, cap: float) -> None:
        """Wait for what an edit starts to end: the goal probe after it (`PROBE_DELAY_S`
        later), its REPL requests and any prefetch, i.e. until no job runs and the Lean call
        counts stay the same for two polls; at most `cap` seconds after the probe delay."""
        await asyncio.sleep(PROBE_DELAY_S + 0.05)
        start, last, same = time.perf_counter(), None, 0
        while time.perf_counter() - start < cap:
            status = await self.status()
            now = (status["caches"]["running"], status["lean"]["calls"])
            same = same + 1 if now == last and now[0] == 0 else 0
            if same >= 2:
                return
            last = now
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        await self.request("shutdown", None, timeout=30)
        self.client.protocol.notify("exit", None)
        await asyncio.wait_for(self.process.wait(), 30)


def as_dict(value: Any) -> Any:
    """A custom request's result as plain JSON values, whatever pygls built from it."""
    if isinstance(value, dict):
        return {k: as_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return [as_dict(v) for v in value]
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) for k, v in value._asdict().items()}
    if hasattr(value, "__dict__") and not isinstance(value, (str, int, float, bool)):
        return {k: as_dict(v) for k, v in vars(value).items()}
    return value


@contextlib.asynccontextmanager
async def sidecar(workspace: Path, log_level: str, options: dict[str, Any] | None = None):
    """Start `segpilot serve` with the default settings (no config file, no SEGPILOT_LSP_*
    variables) and the editor `options` (default `OPTIONS`), initialize it and wait for its
    model; stop it at the end."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SEGPILOT_LSP_", "SEGPILOT_MODEL_"))
    }
    env |= {"SEGPILOT_CONFIG": str(workspace / "no-config.toml"), "SEGPILOT_HOME": str(workspace)}
    client = LanguageClient("segpilot-bench", "0")
    started = time.perf_counter()
    await client.start_io(
        sys.executable, "-m", "segpilot", "serve", "--log-level", log_level, env=env
    )
    car = Sidecar(client)
    background = [asyncio.ensure_future(car.drain()), asyncio.ensure_future(car.sample_rss())]
    try:
        await asyncio.wait_for(
            client.initialize_async(
                types.InitializeParams(
                    capabilities=types.ClientCapabilities(),
                    root_uri=workspace.as_uri(),
                    initialization_options=OPTIONS if options is None else options,
                )
            ),
            120,
        )
        client.initialized(types.InitializedParams())
        deadline = time.perf_counter() + 120
        while not (await car.status())["modelLoaded"]:
            if time.perf_counter() > deadline:
                raise RuntimeError("the sidecar did not load its model in 120 s")
            await asyncio.sleep(0.05)
        car.ready_s = time.perf_counter() - started
        yield car
        await car.stop()
    finally:
        if car.process.returncode is None:
            car.process.kill()
            await car.process.wait()
        await client.stop()
        background[1].cancel()
        await asyncio.gather(*background, return_exceptions=True)


# -- one session -------------------------------------------------------------------------------


class Cpu:
    """Cores used from creation on (CPU seconds per wall second): by the server, by this
    process, by every other program on the machine, and stolen by the hypervisor. Tells a
    slow request caused by the cores' other users from one slow by itself (clock ticks are
    10 ms: meaningful over windows of 0.1 s and more)."""

    def __init__(self, server: psutil.Process | None) -> None:
        self.server, self.me = server, psutil.Process()
        self.start = self._read()

    def _read(self) -> tuple[float, ...]:
        t = psutil.cpu_times()
        me = self.me.cpu_times()
        server = self.server.cpu_times() if self.server is not None else None
        busy = t.user + t.nice + t.system + t.irq + t.softirq
        return (
            time.perf_counter(),
            busy,
            server.user + server.system if server is not None else 0.0,
            me.user + me.system,
            t.steal,
        )

    def cores(self) -> dict[str, float]:
        wall, busy, server, me, steal = (
            a - b for a, b in zip(self._read(), self.start, strict=True)
        )
        wall = max(wall, 1e-9)
        other = max(0.0, busy - server - me)
        return {
            "server": server / wall,
            "me": me / wall,
            "other": other / wall,
            "steal": steal / wall,
        }


@dataclass
class Request:
    """One inline-completion request and what it cost."""

    proof: str
    index: int
    kind: str
    rtt_ms: float
    server_ms: float | None
    model_s: float | None
    items: list[str]
    goals: tuple[str, ...]
    text: str
    line: int
    character: int
    think_s: float | None = None
    cores: dict[str, float] | None = None
    """Cores used while it ran (a miss), or while the prefetch before it ran (a hit)."""
    alone_s: float | None = None
    alone_all: list[tuple[float, float]] = field(default_factory=list)
    """Every time of the model alone on this goal, with the other programs' cores then."""
    alone_cores: dict[str, float] | None = None
    same: bool | None = None


@dataclass
class Run:
    requests: list[Request] = field(default_factory=list)
    prefetches: int = 0
    cancelled: int = 0
    peak_rss: int = 0
    rss_ready: int = 0
    ready_s: float = 0.0
    cold_ms: float = 0.0
    accept_ms: float | None = None
    accept_prefetches: int = 0
    log: str = ""
    errors: list[str] = field(default_factory=list)
    expected_hits: int = 0
    think_capped: int = 0


INLINE = "inline_completion"  # the handler's name in `stats.requests`


def inline_requests(stats: dict[str, Any]) -> int:
    """Inline-completion requests served, from `stats.requests` (by handler name)."""
    requests = stats["requests"]
    return requests.get(INLINE, 0) if isinstance(requests, dict) else requests


def classify(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A request's kind from the status counters around it (inline-completion requests grew
    by one)."""
    grew = {k: after[k] - before[k] for k in ("prefetchHits", "cacheHits", "joined")}
    grew["requests"] = inline_requests(after) - inline_requests(before)
    if grew["requests"] != 1:
        return "unclear"
    if grew["prefetchHits"]:
        return "prefetch joined" if grew["joined"] else "prefetch hit"
    if grew["cacheHits"]:
        return "cache hit"
    if grew["joined"]:
        return "joined"
    return "miss"


async def ask(
    car: Sidecar, proof: str, index: int, uri: str, goals: tuple[str, ...], line: int
) -> tuple[Request, types.InlineCompletionList]:
    before = (await car.status())["stats"]
    cpu = Cpu(car.server)
    start = time.perf_counter()
    answer = await car.inline(uri, line, len(INDENT))
    rtt_ms = (time.perf_counter() - start) * 1000
    cores = cpu.cores()
    stats = (await car.status())["stats"]
    kind = classify(before, stats)
    return Request(
        proof,
        index,
        kind,
        rtt_ms,
        stats["lastLatencyMs"],
        stats["lastModelS"] if kind == "miss" else None,
        [item.insert_text for item in answer.items],
        goals,
        car.texts[uri],
        line,
        len(INDENT),
        cores=cores,
    ), answer


async def session(proofs: list[Proof], workspace: Path, think: float, log_level: str) -> Run:
    run = Run()
    async with sidecar(workspace, log_level) as car:
        run.ready_s = car.ready_s
        _name, theorem, goals = WARM_UP
        uri = (workspace / "WarmUp.lean").as_uri()
        car.open(uri, f"{theorem}\n{INDENT}\n")
        car.goal_state(uri, 1, len(INDENT), tuple(goals))
        start = time.perf_counter()
        await car.inline(uri, 1, len(INDENT))
        run.cold_ms = (time.perf_counter() - start) * 1000
        run.rss_ready = car.server.memory_info().rss
        car.close(uri)
        start_stats = (await car.status())["stats"]

        for proof in proofs:
            uri = (workspace / f"{proof.name}.lean").as_uri()
            car.open(uri, f"{proof.theorem}\n{INDENT}\n")
            line, sent, prefetching = 1, None, False
            think_cpu: Cpu | None = None
            run.expected_hits += proof.prefetches()
            for index, (goals, step) in enumerate(proof.cursors()):
                if goals != sent:
                    car.goal_state(uri, line, len(INDENT), goals)
                    sent = goals
                waited = cores = None
                if prefetching:
                    waited, idle = await car.wait_idle(think)
                    cores = think_cpu.cores() if think_cpu else None
                    run.think_capped += not idle
                request, answer = await ask(car, proof.name, index, uri, goals, line)
                if prefetching:
                    request.think_s, request.cores = waited, cores
                run.requests.append(request)
                if run.accept_ms is None and answer.items and answer.items[0].command:
                    prefetches = (await car.status())["stats"]["prefetches"]
                    start = time.perf_counter()
                    await car.execute(ACCEPTED, list(answer.items[0].command.arguments or []))
                    run.accept_ms = (time.perf_counter() - start) * 1000
                    run.accept_prefetches = (await car.status())["stats"]["prefetches"] - prefetches
                if step is None:
                    break
                car.insert(uri, line, len(INDENT), f"{step.tactic}\n{INDENT}")
                line += 1
                car.goal_state(uri, line, len(INDENT), step.after)
                think_cpu = Cpu(car.server)
                sent = step.after
                prefetching = 0 < len(step.after) < len(step.before)
            await car.wait_idle(think)  # a job left running would slow the next proof
            car.close(uri)
        status = await car.status()
        run.prefetches = status["stats"]["prefetches"] - start_stats["prefetches"]
        run.cancelled = status["stats"]["prefetchesCancelled"] - start_stats["prefetchesCancelled"]
        run.errors = list(status["errors"])
    run.peak_rss = car.peak_rss
    run.log = "".join(car.stderr)
    return run


# -- Lean calls: a session with checking on, against the fake REPL -----------------------------

LEAN_IMPORTS = "import Lean\n"
LEAN_PREAMBLE = LEAN_IMPORTS + "\ndef double (n : Nat) : Nat := n + n\n\n"
GRAPH_SOURCE = "benchmarks/sidecar.py"
SORRY_WARNING = "declaration uses `sorry`"  # Lean 4.32+ quotes with backticks
OPEN_GOALS = "Incomplete: open goals remain"
OLD_HEADER_CACHE = 16  # the old whole-header environment cache's size (HEADER_CACHE_SIZE)
CALL_KINDS = ("imports", "header", "state", "goals", "check", "verify")


@dataclass(frozen=True)
class Ask:
    """An inline-completion request at (line, character): cursor `index` of `proof`."""

    line: int
    character: int
    proof: str
    index: int


HEADER_EDITS = (
    "an `open` line below the imports",
    "the earlier `def`'s body changed",
    "another `open` line",
    "a new `def` right above the declaration",
)


def header_edit_kind(which: int) -> str:
    return HEADER_EDITS[which] if which < len(HEADER_EDITS) else "a comment above it"


def header_edit(which: int, lines: list[str]) -> Edit:
    """The `which`-th edit of the header above the cursor (one per declaration typed)."""

    def find(prefix: str) -> int:
        return max(i for i, line in enumerate(lines) if line.startswith(prefix))

    if which == 0:  # an `open` line below the imports
        return Edit((1, 0), (1, 0), "open Nat\n")
    if which == 1:  # an earlier definition changed
        at = find("def double")
        column = lines[at].index("n + n")
        return Edit((at, column), (at, column + len("n + n")), "2 * n")
    if which == 2:  # another `open` line
        at = find("open Nat") + 1
        return Edit((at, 0), (at, 0), "open Function\n")
    if which == 3:  # a new definition right above the declaration being written
        at = find("theorem ")
        return Edit((at, 0), (at, 0), "def triple (n : Nat) : Nat := 3 * n\n\n")
    at = find("theorem ")  # later ones: a comment above the declaration
    return Edit((at, 0), (at, 0), f"-- step {which}\n")


def lean_script(proofs: list[Proof]) -> tuple[str, list[Edit | Ask]]:
    """The opening text and the session: the proofs typed one below another under one
    `import` block (a new declaration appended after each finished one), a request at every
    cursor, and one edit of the header above the cursor per declaration, after which the
    same cursor is asked again."""
    text = LEAN_PREAMBLE + proofs[0].theorem + "\n" + INDENT
    doc, actions = text, []
    line = doc.count("\n")

    def do(change: Edit) -> None:
        nonlocal doc
        actions.append(change)
        doc = change.apply(doc)

    for which, proof in enumerate(proofs):
        if which:
            lines = doc.split("\n")
            end = (len(lines) - 1, len(lines[-1]))
            do(Edit(end, end, "\n\n" + proof.theorem + "\n" + INDENT))
            line = actions[-1].cursor()[0]
        cursors = proof.cursors()
        edit_at = min(1, len(cursors) - 1)
        for index, (_goals, step) in enumerate(cursors):
            actions.append(Ask(line, len(INDENT), proof.name, index))
            if index == edit_at:
                change = header_edit(which, doc.split("\n"))
                do(change)
                line += change.text.count("\n") - (change.end[0] - change.start[0])
                actions.append(Ask(line, len(INDENT), proof.name, index))
            if step is None:
                break
            last = index == len(proof.steps) - 1 and not step.after
            at = (line, len(INDENT))
            do(Edit(at, at, step.tactic + ("" if last else "\n" + INDENT)))
            line = actions[-1].cursor()[0]
    return text, actions


def lean_contexts(text: str, actions: list[Edit | Ask]) -> list[tuple[str, str]]:
    """(header, body) of every proof site the sidecar will ask Lean about: each request's,
    and where each edit leaves the cursor (the sidecar's goal probe after an edit)."""
    doc, out = text, []
    for action in actions:
        if isinstance(action, Edit):
            doc = action.apply(doc)
            where = action.cursor()
        else:
            where = (action.line, action.character)
        try:
            site = proof_site(doc, *where)
        except NotInProof:
            continue
        out.append((site.header, site.body))
    return out


def _pos(line: int, column: int) -> dict[str, int]:
    return {"line": line, "column": column}


def _tactic_entry(tactic: str, line: int, goals: list[str]) -> dict[str, Any]:
    """An `allTactics` entry of a proof line at column 2 (1-based `line`): `goals` prints
    every goal before it joined by one newline, the list itself in `fake:goals`."""
    return {
        "usedConstants": [],
        "tactic": tactic,
        "proofState": 0,
        "pos": _pos(line, len(INDENT)),
        "endPos": _pos(line, len(INDENT) + len(tactic)),
        "goals": "\n".join(goals) if goals else "no goals",
        "fake:goals": goals,
    }


def _recorded(cmd: str, reply: dict[str, Any], requires: list[str], **options: Any) -> dict:
    return {
        "source": GRAPH_SOURCE,
        "request": {"cmd": cmd, **options},
        "requires": requires,
        "reply": reply,
    }


def _state_command(proof: Proof, index: int, body: str, requires: list[str]) -> dict[str, Any]:
    """`body + sorry` with allTactics, as the REPL answers it: the sorry's proof state with
    the main goal, the declaration's `sorry` warning, and a `tactics` entry per proof line,
    the sorry's holding every goal open at the cursor."""
    goals = list(proof.cursors()[index][0])
    entries = [_tactic_entry(s.tactic, n + 2, list(s.before)) for n, s in enumerate(proof.steps)]
    at = index + 2
    name = proof.theorem.index(proof.name)
    reply = {
        "sorries": [{"proofState": 0, "pos": _pos(at, 2), "endPos": _pos(at, 7), "goal": goals[0]}],
        "messages": [
            {
                "severity": "warning",
                "pos": _pos(1, name),
                "endPos": _pos(1, name + len(proof.name)),
                "data": SORRY_WARNING,
            }
        ],
        "tactics": [*entries[:index], _tactic_entry("sorry", at, goals)],
        "env": 0,
    }
    return _recorded(body + "sorry", reply, requires, allTactics=True)


def lean_graph(proofs: list[Proof], contexts: list[tuple[str, str]]) -> dict[str, Any]:
    """A graph for the fake REPL (its documented format) holding exactly what the session
    asks: each import block and rest of a header (plain `{"env"}` replies), each state
    query at a cursor, and the recorded steps of the proofs as tactic edges."""
    at_body: dict[str, tuple[Proof, int]] = {}
    for proof in proofs:
        for index in range(len(proof.cursors())):
            lines = "".join(f"{INDENT}{s.tactic}\n" for s in proof.steps[:index])
            at_body[f"{proof.theorem}\n{lines}{INDENT}"] = (proof, index)
    commands: dict[tuple[str, ...], dict[str, Any]] = {}

    def add(entry: dict[str, Any]) -> None:
        key = (json.dumps(entry["request"], sort_keys=True), *entry["requires"])
        commands.setdefault(key, entry)

    for header, body in contexts:
        imports, rest = split_imports(header)
        requires: list[str] = []
        if imports.strip():
            add(_recorded(imports, {"env": 0}, []))
            requires.append(imports)
        if rest.strip():
            add(_recorded(rest, {"env": 0}, list(requires)))
            requires.append(rest)
        if body not in at_body:
            raise RuntimeError(f"the script asks for a state the graph cannot give: {body!r}")
        add(_state_command(*at_body[body], body, requires))
    edges = {
        (s.before, s.tactic): {
            "source": GRAPH_SOURCE,
            "goals": list(s.before),
            "tactic": s.tactic,
            "reply": {
                "proofStatus": OPEN_GOALS if s.after else "Completed",
                "proofState": 0,
                "goals": list(s.after),
            },
        }
        for p in proofs
        for s in p.steps
    }
    return {
        "about": "The Lean-calls session of benchmarks/sidecar.py (goals from real transcripts).",
        "commands": list(commands.values()),
        "tactics": list(edges.values()),
    }


def tapped_repl(graph: Path, sent: Path, answered: Path) -> list[str]:
    """The fake REPL on `graph`, with what goes in and what comes out copied to files."""
    script = 'tee -a "$1" | "$3" "$4" "$5" --unrecorded-tactics error | tee -a "$2"'
    files = [str(sent), str(answered)]
    return ["sh", "-c", script, "repl-tap", *files, sys.executable, str(FAKE_REPL), str(graph)]


def wire_messages(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a REPL log: each followed by a blank line."""
    if not path.exists():
        return []
    chunks = re.split(r"\n[ \t\r]*\n", path.read_text(encoding="utf-8"))
    return [json.loads(c) for c in chunks if c.strip()]


def replay_old_keying(
    sent: list[dict[str, Any]], answered: list[dict[str, Any]]
) -> tuple[Counter[str], Counter[str], dict[str, int]]:
    """From the REPL's traffic: (its requests by kind, what the old keying would have sent,
    facts). Each state query's whole header is rebuilt from the environments it ran in
    (import block + rest); the old checker elaborated a whole header (imports and rest in
    one command) once per distinct text in an LRU of `OLD_HEADER_CACHE`, and queried a state
    once per (header, body), reading the goal from the sorry (no `skip`). Candidate checks
    were keyed as now (environment, goals, block): the same count."""
    if len(sent) != len(answered):
        raise RuntimeError(f"{len(sent)} REPL requests but {len(answered)} replies")
    parts: dict[int, tuple[str, str]] = {}  # env -> (import block, rest)
    ours: set[int] = set()  # proof states of the sorry entries of state queries
    wire: Counter[str] = Counter()
    old: Counter[str] = Counter()
    envs: OrderedDict[str, None] = OrderedDict()
    states: set[tuple[str, str]] = set()
    headers: set[str] = set()
    for query, reply in zip(sent, answered, strict=True):
        env = query.get("env")
        if "tactic" in query:
            goals = query["tactic"] == "skip" and query.get("proofState") in ours
            wire["goals" if goals else "check"] += 1
        elif "cmd" not in query:
            wire["other"] += 1
        elif query.get("allTactics"):
            wire["state"] += 1
            ours.update(
                t["proofState"]
                for t in reply.get("tactics", [])
                if t.get("tactic", "").strip() == "sorry" and t.get("proofState") is not None
            )
            imports, rest = parts.get(env, ("", "")) if env is not None else ("", "")
            header = imports + rest
            if header.strip():
                headers.add(header)
                if header in envs:
                    envs.move_to_end(header)
                else:
                    old["imports"] += bool(imports.strip())
                    old["header"] += bool(rest.strip())
                    envs[header] = None
                    if len(envs) > OLD_HEADER_CACHE:
                        envs.popitem(last=False)
            if (header, query["cmd"]) not in states:
                states.add((header, query["cmd"]))
                old["state"] += 1
        elif env is None and split_imports(query["cmd"])[0].strip():
            wire["imports"] += 1
            if "env" in reply:
                parts[reply["env"]] = (query["cmd"], "")
        elif env is None or (env in parts and not parts[env][1]):
            wire["header"] += 1
            if "env" in reply:
                parts[reply["env"]] = (parts[env][0] if env is not None else "", query["cmd"])
        else:
            wire["verify"] += 1
    old["check"], old["verify"] = wire["check"], wire["verify"]
    return wire, old, {"headers": len(headers), "contexts": len(states)}


@dataclass
class LeanRun:
    calls: dict[str, int] = field(default_factory=dict)
    """`lean.calls` from `segpilot/status` at the end (the sidecar's own count)."""
    wire: Counter[str] = field(default_factory=Counter)
    before: Counter[str] = field(default_factory=Counter)
    facts: dict[str, int] = field(default_factory=dict)
    asks: list[tuple[str, float]] = field(default_factory=list)
    edits: int = 0
    header_edits: int = 0
    declarations: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    log: str = ""


async def lean_session(
    proofs: list[Proof], workspace: Path, think: float, log_level: str
) -> LeanRun:
    # A proof left unfinished goes last: no declaration below has it in its header.
    proofs = sorted(proofs, key=lambda p: bool(p.steps[-1].after))
    text, actions = lean_script(proofs)
    graph = workspace / "repl-graph.json"
    graph.write_text(
        json.dumps(lean_graph(proofs, lean_contexts(text, actions)), ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    sent, answered = workspace / "repl-sent.log", workspace / "repl-answered.log"
    options = {"replCommand": tapped_repl(graph, sent, answered)}
    run = LeanRun(declarations=len(proofs), header_edits=len(proofs))
    start = time.perf_counter()
    async with sidecar(workspace, log_level, options) as car:
        uri = (workspace / "Session.lean").as_uri()
        car.open(uri, text)
        for action in actions:
            if isinstance(action, Edit):
                car.edit(uri, action)
                run.edits += 1
                await car.settle(think)
                continue
            before = (await car.status())["stats"]
            began = time.perf_counter()
            await car.inline(uri, action.line, action.character)
            rtt_ms = (time.perf_counter() - began) * 1000
            kind = classify(before, (await car.status())["stats"])
            run.asks.append((kind, rtt_ms))
            await car.settle(think)
        run.status = await car.status()
    run.seconds = time.perf_counter() - start
    run.log = "".join(car.stderr)
    lean = run.status["lean"]
    run.calls = dict(lean["calls"])
    run.errors = list(run.status["errors"]) + [e for p in lean["projects"] for e in p["errors"]]
    if not lean["checking"] or not run.calls:
        raise SystemExit(f"the Lean session made no Lean calls (status: {lean}):\n{run.log}")
    run.wire, run.before, run.facts = replay_old_keying(
        wire_messages(sent), wire_messages(answered)
    )
    return run


# -- memory: many keystroke requests on one server ---------------------------------------------

# Checking off, one candidate of at most 4 tokens: the model runs on the first keystroke of
# a line (or in a prefetch) in a few hundred ms. A cache of 64 goals, not 512, so that the
# suggestion cache fills and evicts several times during the run.
CHEAP = {"checking": False, "k": 1, "maxTokens": 4, "cacheSize": 64}
TYPING_HEADER = "import Lean\n\n"
TYPING_LINES = 6  # proof lines per theorem; then the theorem is replaced by the next one
MOVES = (-1, 0)  # after each keystroke: the cursor one to the left, and back (a request each)
OUTSIDE_EVERY = 5  # every fifth keystroke also asks at a cursor outside the proof
RSS_TARGET_MB = 20.0


def typing_theorem(i: int) -> str:
    return f"theorem typing_{i} (n : Nat) (h : n = {i}) : n + 0 = {i} := by"


def typing_goals(i: int, j: int) -> tuple[str, ...]:
    """The editor's goals on line `j` of theorem `i`, new texts on every line: two on the
    first half of the lines, one on the rest (the count drops once per theorem, and the
    sidecar prefetches)."""
    hyps = f"n : Nat\nh : n = {i}\nstep : {j} = {j}\n"
    if j >= TYPING_LINES // 2:
        return (f"{hyps}⊢ n + 0 = {i}",)
    return (f"case left\n{hyps}⊢ n + 0 = {i}", f"case right\n{hyps}⊢ {i} = n")


@dataclass
class MemoryRun:
    rss: dict[int, int] = field(default_factory=dict)
    """Server RSS after that many requests (each taken once no job ran)."""
    rtt_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    keystrokes: int = 0
    lines: int = 0
    theorems: int = 0
    keys: int = 0
    """Distinct goal lists asked about (each a suggestion-cache key)."""
    peak_rss: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log: str = ""


def rss_marks(total: int) -> list[int]:
    return sorted({m for m in (100, 1000, total // 4, total // 2, 3 * total // 4, total) if m > 0})


async def memory_session(
    proofs: list[Proof], workspace: Path, total: int, think: float, log_level: str
) -> MemoryRun:
    """`total` inline-completion requests while a proof is typed a character at a time:
    per keystroke an edit, the goals for the new version, a request at the new cursor and
    one at each of `MOVES`; every `OUTSIDE_EVERY` keystrokes one on the `import` line."""
    tactics = [s.tactic for p in proofs for s in p.steps]
    marks = set(rss_marks(total))
    run = MemoryRun()
    start = time.perf_counter()
    async with sidecar(workspace, log_level, dict(CHEAP)) as car:
        uri = (workspace / "Typing.lean").as_uri()
        theorem_line = TYPING_HEADER.count("\n")
        car.open(uri, TYPING_HEADER + typing_theorem(0) + "\n" + INDENT)
        done = 0

        async def ask(line: int, character: int, kind: str) -> bool:
            nonlocal done
            began = time.perf_counter()
            await car.inline(uri, line, character)
            run.rtt_ms[kind].append((time.perf_counter() - began) * 1000)
            done += 1
            if done in marks:
                await car.wait_idle(think)
                run.rss[done] = car.server.memory_info().rss
            return done < total

        async def keystroke(line: int, column: int, char: str, goals: tuple[str, ...]) -> bool:
            car.insert(uri, line, column, char)
            car.goal_state(uri, line, column + 1, goals)
            run.keystrokes += 1
            if not await ask(line, column + 1, "keystroke"):
                return False
            for move in MOVES:
                if not await ask(line, column + 1 + move, "cursor move"):
                    return False
            if run.keystrokes % OUTSIDE_EVERY == 0:
                return await ask(0, len("import"), "outside a proof")
            return True

        theorem, line, more = 0, theorem_line + 1, True
        while more:
            tactic = tactics[run.lines % len(tactics)]
            goals = typing_goals(theorem, run.lines % TYPING_LINES)
            run.keys += 1
            for k, char in enumerate(tactic):
                more = await keystroke(line, len(INDENT) + k, char, goals)
                if not more:
                    break
            run.lines += 1
            if not more:
                break
            if run.lines % TYPING_LINES == 0:  # the next theorem replaces this one
                theorem += 1
                lines = car.texts[uri].split("\n")
                end = (len(lines) - 1, len(lines[-1]))
                car.edit(uri, Edit((theorem_line, 0), end, typing_theorem(theorem) + "\n" + INDENT))
                line = theorem_line + 1
            else:
                car.insert(uri, line, len(INDENT) + len(tactic), "\n" + INDENT)
                line += 1
        run.theorems = theorem + 1
        run.status = await car.status()
    run.seconds = time.perf_counter() - start
    run.peak_rss = car.peak_rss
    run.log = "".join(car.stderr)
    return run


# -- the model alone ---------------------------------------------------------------------------


def model_settings() -> ModelSettings:
    """The sidecar's model settings (see `Engine._model_settings`), proposal cache off."""
    return Engine._model_settings(Settings()).updated(cache_size=0)


def time_alone(policy: Policy, requests: list[Request], passes: int) -> None:
    """Time `propose` on each request's goal with the prompt parts the sidecar used, in the
    order the sidecar met them (the warm-up first, untimed), `passes` times over; keep each
    goal's fastest time (a baseline that errs against the sidecar), the cores in use then,
    and whether its suggestions equal the sidecar's."""
    name, theorem, goals = WARM_UP
    for _ in range(passes):
        policy.propose("\n\n".join(goals), policy.settings.k, theorem=theorem, name=name)
        for request in requests:
            site = proof_site(request.text, request.line, request.character)
            cpu = Cpu(None)
            start = time.perf_counter()
            found = policy.propose(
                "\n\n".join(request.goals),
                policy.settings.k,
                theorem=site.theorem,
                name=site.name,
                proof_before=site.proof_before,
            )
            seconds, cores = time.perf_counter() - start, cpu.cores()
            request.alone_all.append((seconds, cores["other"]))
            if request.alone_s is None or seconds < request.alone_s:
                request.alone_s, request.alone_cores = seconds, cores
                mine = [c.insert_text(site.column) for c in found][: LspSettings().max_items]
                request.same = mine == request.items


# -- report ------------------------------------------------------------------------------------


def ms(values: list[float]) -> str:
    return f"{median(values):.0f} / {p95(values):.0f}" if values else "-"


def misses(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.kind == "miss" and r.alone_s]


def ratio(requests: list[Request]) -> float:
    found = misses(requests)
    if not found:
        return float("nan")
    return median([r.rtt_ms / 1000 for r in found]) / median([r.alone_s for r in found])


def report(runs: list[Run], proofs: list[Proof], args: argparse.Namespace, extra: dict) -> str:
    requests = [r for run in runs for r in run.requests]
    by_kind: dict[str, list[Request]] = defaultdict(list)
    for r in requests:
        by_kind[r.kind].append(r)
    hits = [r for r in requests if r.kind.startswith("prefetch")]
    miss = misses(requests)
    if not miss:
        raise SystemExit("no cache miss was measured: nothing to compare with the model alone")
    pooled = ratio(requests)
    quiet = [r for r in miss if r.cores and r.alone_cores]
    quiet = [r for r in quiet if max(r.cores["other"], r.alone_cores["other"]) < QUIET]
    quiet_ratio = ratio(quiet)
    paired = median([r.rtt_ms / 1000 / r.alone_s for r in miss])
    prefetches = sum(run.prefetches for run in runs)
    expected = sum(run.expected_hits for run in runs)
    ready = [r.rtt_ms for r in hits if r.kind == "prefetch hit"]
    joined = [r.rtt_ms for r in hits if r.kind == "prefetch joined"]
    hit_ok = bool(ready) and p95(ready) <= 50
    rows = []
    for kind in ("miss", "prefetch hit", "prefetch joined", "cache hit", "joined", "unclear"):
        found = by_kind.get(kind)
        if not found:
            continue
        rows.append(
            [
                kind,
                len(found),
                f"{median([r.rtt_ms for r in found]):.1f}",
                f"{p95([r.rtt_ms for r in found]):.1f}",
                f"{median([r.server_ms for r in found if r.server_ms is not None]):.1f}",
                f"{median([r.alone_s * 1000 for r in found if r.alone_s]):.0f}",
            ]
        )
    header = [
        "request",
        "n",
        "median ms",
        "p95 ms",
        "median ms in server",
        "median ms model alone, same goals",
    ]
    run_rows = [
        [
            i + 1,
            sum(r.kind == "miss" for r in run.requests),
            f"{sum(r.kind.startswith('prefetch') for r in run.requests)}"
            f" ({sum(r.kind == 'prefetch joined' for r in run.requests)})",
            f"{median([r.rtt_ms for r in misses(run.requests)]):.0f}",
            f"{ratio(run.requests):.2f}",
            ms([r.rtt_ms for r in run.requests if r.kind == "prefetch hit"]),
            f"{median([r.cores['other'] for r in misses(run.requests) if r.cores]):.2f}",
            f"{run.peak_rss / 2**20:.0f}",
            f"{run.ready_s:.1f}",
            f"{run.cold_ms:.0f}",
        ]
        for i, run in enumerate(runs)
    ]
    run_header = [
        "run",
        "misses",
        "prefetch hits (joined)",
        "median miss ms",
        "miss / model alone",
        "finished-prefetch hit ms median / p95",
        "other programs' cores in misses",
        "peak RSS MB",
        "start to model loaded s",
        "warm-up request ms",
    ]
    server_model = [r.model_s * 1000 for r in miss if r.model_s]
    in_server = [r.server_ms - r.model_s * 1000 for r in miss if r.model_s and r.server_ms]
    wire = [r.rtt_ms - r.server_ms for r in miss if r.server_ms is not None]
    slow = [(i, r) for i, run in enumerate(runs) for r in misses(run.requests)]
    slow = [(i, r) for i, r in slow if r.rtt_ms / 1000 > 1.2 * r.alone_s]
    slow.sort(key=lambda x: x[1].alone_s / x[1].rtt_ms)
    slow_text = "".join(
        f"; run {i + 1} `{r.proof}`[{r.index}]: {r.rtt_ms:.0f} ms = "
        f"{(r.model_s or 0) * 1000:.0f} in `propose` + "
        f"{(r.server_ms or 0) - (r.model_s or 0) * 1000:.0f} in the handler + "
        f"{r.rtt_ms - (r.server_ms or 0):.0f} on the wire, alone "
        f"{r.alone_s * 1000:.0f} ms; cores during it: server "
        f"{(r.cores or {}).get('server', 0):.2f}, other programs "
        f"{(r.cores or {}).get('other', 0):.2f}"
        for i, r in slow[:5]
    ) + (f"; {len(slow) - 5} more" if len(slow) > 5 else "")
    alone = [r.alone_s * 1000 for r in miss]
    same = sum(bool(r.same) for r in miss)
    accept = [run.accept_ms for run in runs if run.accept_ms is not None]
    thinks = [r.think_s for r in requests if r.think_s is not None]
    capped = sum(run.think_capped for run in runs)
    errors = sorted({e for run in runs for e in run.errors})

    def load(found: list[Request]) -> str:
        measured = [r.cores for r in found if r.cores]
        if not measured:
            return "not measured"
        return ", ".join(
            f"{what} {median([c[key] for c in measured]):.2f}"
            for what, key in (("server", "server"), ("other programs", "other"), ("steal", "steal"))
        )

    steps = sum(len(p.steps) for p in proofs)
    proof_list = ", ".join(f"`{p.name}` ({len(p.steps)})" for p in proofs)
    counts = "; ".join(
        f"`{p.name}` "
        + "→".join(str(n) for n in [len(p.steps[0].before)] + [len(s.after) for s in p.steps])
        for p in proofs
    )
    return reflow(f"""
`segpilot serve` over stdio, driven like an editor with pygls's LanguageClient; default model
(SmolLM2-135M-Instruct Q4_1), k = 4, default settings except `checking: false` (no Lean here,
so suggestions are unchecked and goals come from the editor through `segpilot/goalState`).
{len(proofs)} real proofs from `tests/fixtures/trajectories/repl_transcript_steps.jsonl`,
{steps} recorded tactics: {proof_list}; goal counts {counts}. At each cursor in a proof: goals,
an inline-completion request, then the recorded tactic typed and the goals after it; after a
drop in the goal count the sidecar prefetches and the script waits until `segpilot/status`
shows no running job (capped at {args.think:g} s) before the next request. Kinds come from the
status counters around each request. Fresh server per run, {len(runs)} run(s), after one
warm-up request on another document (its time is in the last column below). The baseline is
the model alone in the benchmark process (same model settings, the sidecar's 8 s budget, no
proposal cache) on the same goals and prompts, timed after each session stopped, each goal
{args.alone_passes} time(s) in the sidecar's order, the fastest counting (so the baseline errs
against the sidecar). {machine()};
1-minute load average {extra["load"]:.2f} before the run.

{table(header, rows)}

{table(run_header, run_rows)}

- **Prefetch hit, prefetch finished: {ms(ready)} ms median / p95** (target ≤ 50 ms, on the
  p95: {"met" if hit_ok else "NOT met"}); {len(ready)} such hits. Requests that joined a
  prefetch still running (the think time reached its {args.think:g} s cap {capped} time(s)):
  {len(joined)}{f", {ms(joined)} ms median / p95" if joined else ""}. Median think time
  (prefetch start to no running job): {median(thinks) if thinks else 0:.2f} s.
- **Miss: {median([r.rtt_ms for r in miss]):.0f} ms median, {pooled:.2f}× the model alone**
  on the same goals ({median(alone):.0f} ms; target ≤ 1.2×:
  {"met" if pooled <= 1.2 else "NOT met"}); per request, the median of miss / alone is
  {paired:.2f}. On the {len(quiet)} misses timed while other programs used under {QUIET} cores
  (during the miss and during its model-alone time): {quiet_ratio:.2f}×
  ({"met" if quiet_ratio <= 1.2 else "NOT met"}). Where a miss's time goes (medians):
  {median(server_model):.0f} ms in `propose`
  (the model call inside the server), {median(in_server):.1f} ms more in the handler (goal,
  proof site, cache, rendering), {median(wire):.1f} ms on the wire (JSON-RPC over the pipes,
  client included). The sidecar and the model alone gave the same top items in {same} of
  {len(miss)} misses (same seed and prompt). Misses slower than 1.2× their own goal's
  model-alone time: {len(slow)} of {len(miss)}{slow_text}.
- **Prefetch hit rate: {len(hits)} of {prefetches} prefetches started were used**
  ({expected} drops in the goal count to a non-zero count, so {expected} expected);
  {len(hits)} of {len(requests)} requests ({len(hits) / len(requests):.0%}) were answered by a
  prefetch. Prefetches cancelled: {sum(run.cancelled for run in runs)}.
- Accepting an item (`{ACCEPTED}` with its arguments, once per run): {ms(accept)} ms median /
  p95 round trip, {sum(run.accept_prefetches for run in runs)} prefetch(es) started by it (an
  unchecked item carries no goals after, so acceptance starts none; the goals the editor sends
  after the edit do).
- Cores in use (CPU s per wall s, medians; 2 cores in all): during a miss {load(miss)};
  while a prefetch ran {load(hits)}. The model decodes on as many threads as cores were free
  when its call began, so a program that takes a core in the middle of a call slows it a lot.
  Other programs during the model-alone times kept:
  {median([r.alone_cores["other"] for r in miss if r.alone_cores]):.2f} cores (median).
- Memory: server RSS peak {median([run.peak_rss / 2**20 for run in runs]):.0f} MB (median over
  runs; {median([run.rss_ready / 2**20 for run in runs]):.0f} MB after the warm-up request).
  Server errors reported in status: {len(errors)}{": " + "; ".join(errors) if errors else ""}.
  Whole benchmark: {extra["elapsed"]:.0f} s.
""")


HEADING = "## LSP sidecar in an editing session (`benchmarks/sidecar.py`)"


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces a run with these options."""
    cmd = "benchmarks/sidecar.py" + (" --quick" if args.quick else f" --runs {args.runs}")
    if args.proofs is not None and not args.quick:
        cmd += f" --proofs {args.proofs}"
    if args.think != 5.0:
        cmd += f" --think {args.think}"
    if args.alone_passes != 2 and not args.quick:
        cmd += f" --alone-passes {args.alone_passes}"
    if tuple(args.parts) != PARTS:
        cmd += f" --parts {','.join(args.parts)}"
    if args.keystrokes != (1000 if args.quick else 10000):
        cmd += f" --keystrokes {args.keystrokes}"
    return f".venv/bin/python {cmd}"


def _ratio(after: int, before: int) -> str:
    return f"{after / before:.2f}" if before else "–"


def lean_report(run: LeanRun, proofs: list[Proof]) -> str:
    after, before = Counter(run.calls), run.before
    rows = [
        ["`imports`: the import block elaborated", before["imports"], after["imports"]],
        [
            "`header`: the rest of the header elaborated (before: inside each whole header)",
            before["header"],
            after["header"],
        ],
        [
            "header commands sent (before: one whole header; after: `imports` + `header`)",
            before["imports"],
            after["imports"] + after["header"],
        ],
        ["`state`: declaration up to the cursor + `sorry`", before["state"], after["state"]],
        ["`goals`: a `skip` listing every goal there", 0, after["goals"]],
        ["`check`: one candidate block", before["check"], after["check"]],
    ]
    if after["verify"] or before["verify"]:
        rows.append(["`verify`: a command-mode re-check", before["verify"], after["verify"]])
    others = sorted(set(after) - set(CALL_KINDS))
    rows += [[f"`{kind}`", "–", after[kind]] for kind in others]
    total_before = before["imports"] + before["state"] + before["check"] + before["verify"]
    rows.append(["all REPL requests", total_before, sum(after.values())])
    table_rows = [[what, b, a, _ratio(a, b) if isinstance(b, int) else "–"] for what, b, a in rows]
    kinds = _count(kind for kind, _ in run.asks)
    asks = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    agree = all(run.wire[k] == after[k] for k in CALL_KINDS) and not run.wire["other"]
    errors = run.errors
    names = ", ".join(f"`{p.name}`" for p in sorted(proofs, key=lambda p: bool(p.steps[-1].after)))
    edit_kinds = "; ".join(header_edit_kind(i) for i in range(run.header_edits))
    header = [
        "REPL requests in the session",
        "before (old keying, derived)",
        "after (measured)",
        "after / before",
    ]
    if run.facts["headers"] <= OLD_HEADER_CACHE:
        evicted = f"at most the cache's {OLD_HEADER_CACHE}, so none was evicted"
    else:
        evicted = f"MORE than the cache's {OLD_HEADER_CACHE}: the old count is a lower bound"
    agreed = "yes" if agree else f"NO (wire: {dict(run.wire)})"
    listed = ": " + "; ".join(errors) if errors else ""
    return reflow(f"""### Lean calls per scripted session (checking on, fake REPL)

One session on a fresh server with checking on (default settings otherwise; k = 4), Lean being
`tests/fakes/fake_repl.py` run as the REPL command on a graph this script writes for exactly the
texts the session sends (goals from the real transcripts, the recorded steps as tactic edges;
unrecorded candidates get Lean's error reply). {run.declarations} declarations ({names}) typed
one below another under one `import Lean` block, after a `def`; while each is written the
header above the cursor is edited once ({run.header_edits} edits: {edit_kinds}), and the
same cursor is asked again. The goals come from the REPL (no `segpilot/goalState`), so every
edit is followed by the sidecar's goal probe. {len(run.asks)} inline-completion requests
({asks}), {run.edits} edits, the script waiting after each until no job ran and the call
counts stood still.

{table(header, table_rows)}

- **After** is `lean.calls` from `segpilot/status` at the end of the session.
  **Before** is derived from the same session, not run: the REPL's traffic was logged (`tee` on
  both pipes of the fake) and replayed through the old keying, which held one environment per
  whole header text (an LRU of {OLD_HEADER_CACHE}) and elaborated imports and rest together on
  every miss: each state query's whole header was rebuilt from the environments it ran in
  (import block + rest), so the old `imports` count is the number of distinct header texts the
  session sent, {run.facts["headers"]} ({evicted}). The old code
  queried a state once per (header, body) ({run.facts["contexts"]} distinct here) and read the
  goal from the sorry's reply, with no `skip`; candidate checks were keyed as now (environment,
  goals, block), so that row is the measured count in both columns.
- The logged traffic agrees with `lean.calls` by kind: {agreed}. Server errors:
  {len(errors)}{listed}. Session: {run.seconds:.0f} s.
""")


def memory_report(run: MemoryRun, total: int) -> str:
    first, last = run.rss[min(run.rss)], run.rss[max(run.rss)]
    grew = (last - first) / 2**20
    stats, caches = run.status["stats"], run.status["caches"]
    outside = len(run.rtt_ms["outside a proof"])
    served = inline_requests(stats)
    model = served - outside - stats["cacheHits"] - stats["joined"]
    rows = [
        [
            f"{first / 2**20:.1f} MB",
            f"{last / 2**20:.1f} MB",
            f"{grew:+.1f} MB",
            f"< {RSS_TARGET_MB:.0f} MB",
            "pass" if grew < RSS_TARGET_MB else "FAIL",
        ]
    ]
    header = [
        f"server RSS after {min(run.rss):,} requests",
        f"after {max(run.rss):,} requests",
        "difference",
        "target",
        "result",
    ]
    per_request = (last - first) / 1024 / max(1, max(run.rss) - min(run.rss))
    per_keystroke = per_request * max(run.rss) / max(1, run.keystrokes)
    marks = ", ".join(f"{n:,}: {rss / 2**20:.1f}" for n, rss in sorted(run.rss.items()))
    latency = "; ".join(
        f"{kind} {len(found):,}, {ms(found)} ms" for kind, found in run.rtt_ms.items() if found
    )
    errors = list(run.status["errors"])
    options = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in CHEAP.items())
    asks_per_key = max(run.rss) / max(1, run.keystrokes)
    listed = ": " + "; ".join(errors) if errors else ""
    return reflow(f"""### Server memory over {total:,} keystroke requests

A fresh server with {options} (other settings default). A proof is typed a character at a
time: each keystroke is an edit, the editor's goals for the new version (`segpilot/goalState`,
new goal texts on every line, the count dropping once per theorem so that the sidecar
prefetches) and an inline-completion request at the new cursor, then one with the cursor moved
one to the left and one back at the end; every {OUTSIDE_EVERY}th keystroke also asks at a cursor
on the `import` line, outside any proof. {TYPING_LINES} lines per theorem, then the next theorem
replaces it (the document stays small): {run.keystrokes:,} keystrokes, {run.lines} lines,
{run.theorems} theorems, {run.keys} distinct goal lists. RSS of the server process (psutil),
each sample taken once no job ran.

{table(header, rows)}

- RSS (MB) after each number of requests: {marks}; peak {run.peak_rss / 2**20:.1f} (sampled every
  0.1 s). Growth from the first sample to the last: {per_request:.2f} KB per request,
  {per_keystroke:.2f} KB per keystroke (one edit and one goals notification, {asks_per_key:.1f}
  requests).
- The requests: {served:,} inline completions, {stats["cacheHits"]:,} answered by the suggestion
  cache ({stats["prefetchHits"]:,} of them prefetched), {stats["joined"]} joined a job running for
  the same goals, {model} ran the model, {outside} outside a proof (no proof site, empty
  answer); {stats["prefetches"]} prefetches ({stats["prefetchesCancelled"]} cancelled). Suggestion
  cache at the end: {caches["suggestions"]} entries (its size: {CHEAP["cacheSize"]}). Round
  trips, median / p95 (one run): {latency}. Server errors: {len(errors)}{listed}. Session:
  {run.seconds:.0f} s.
""")


def reflow(text: str, width: int = 96) -> str:
    """Paragraphs and list items re-wrapped to `width` (tables, headings left alone)."""
    out = []
    for block in text.strip().split("\n\n"):
        if block.startswith(("|", "#")):
            out.append(block)
            continue
        items = re.split(r"\n(?=- )", block)
        out.append(
            "\n".join(
                textwrap.fill(
                    " ".join(item.split()),
                    width,
                    subsequent_indent="  " if item.startswith("- ") else "",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
                for item in items
            )
        )
    return "\n\n".join(out) + "\n"


# -- main --------------------------------------------------------------------------------------


def _parts(text: str) -> tuple[str, ...]:
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(found) - set(PARTS))
    if unknown or not found:
        raise argparse.ArgumentTypeError(f"parts are {', '.join(PARTS)}; got {text!r}")
    return tuple(part for part in PARTS if part in found)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="latency sessions, each on a fresh server (default 3)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 latency run on 2 proofs, the Lean session on 2 proofs, 1,000 keystroke "
        "requests; print only (a fast check)",
    )
    parser.add_argument(
        "--proofs", type=int, help="use the first N proofs, in both sessions (default: all)"
    )
    parser.add_argument(
        "--think", type=float, default=5.0, help="most seconds to wait for a prefetch (default 5)"
    )
    parser.add_argument(
        "--parts",
        type=_parts,
        default=PARTS,
        metavar="LIST",
        help="what to measure, comma-separated: latency (the editing session against the model "
        "alone), lean (Lean calls by kind, before vs after), memory (RSS over --keystrokes "
        "requests); default all",
    )
    parser.add_argument(
        "--keystrokes",
        type=int,
        help="inline-completion requests in the memory part (default 10000, quick 1000; "
        "at least 101)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="the server's log level (default info)",
    )
    parser.add_argument(
        "--alone-passes",
        type=int,
        default=2,
        help="times the model alone runs each goal; the fastest counts (default 2, quick 1)",
    )
    parser.add_argument("--log", type=Path, metavar="PATH", help="write the server logs here")
    parser.add_argument("--no-write", action="store_true", help="print, do not touch BENCHMARKS.md")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.proofs, args.alone_passes = 1, args.proofs or 2, 1
    if args.keystrokes is None:
        args.keystrokes = 1000 if args.quick else 10000
    if args.keystrokes <= 100:
        parser.error("--keystrokes must be more than 100 (RSS is compared with the 100th)")

    proofs = load_proofs()[: args.proofs]
    if not proofs:
        print(f"no usable proofs in {STEPS_FILE}", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    start = time.perf_counter()
    logs = []
    sections = [HEADING + "\n"]

    runs: list[Run] = []
    if "latency" in args.parts:
        policy = Policy(model_settings())
        name, theorem, goals = WARM_UP
        policy.propose("\n\n".join(goals), policy.settings.k, theorem=theorem, name=name)
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="segpilot-bench-") as folder:
                run = asyncio.run(session(proofs, Path(folder), args.think, args.log_level))
            time_alone(policy, run.requests, args.alone_passes)
            runs.append(run)
            logs.append(f"===== latency run {i + 1} =====\n{run.log}")
            print_run(i, run)
        policy.close()

    lean_run = None
    if "lean" in args.parts:
        with tempfile.TemporaryDirectory(prefix="segpilot-bench-") as folder:
            lean_run = asyncio.run(lean_session(proofs, Path(folder), args.think, args.log_level))
        logs.append(f"===== Lean session =====\n{lean_run.log}")
        print(
            f"Lean session: calls {lean_run.calls}; before {dict(lean_run.before)}; "
            f"wire {dict(lean_run.wire)}; {lean_run.facts}; {lean_run.seconds:.0f} s",
            flush=True,
        )

    memory_run = None
    if "memory" in args.parts:
        with tempfile.TemporaryDirectory(prefix="segpilot-bench-") as folder:
            memory_run = asyncio.run(
                memory_session(proofs, Path(folder), args.keystrokes, args.think, args.log_level)
            )
        logs.append(f"===== memory session =====\n{memory_run.log}")
        marks = ", ".join(f"{n}: {r / 2**20:.1f} MB" for n, r in sorted(memory_run.rss.items()))
        print(f"memory session: RSS {marks}; {memory_run.seconds:.0f} s", flush=True)

    if args.log is not None:
        args.log.write_text("\n".join(logs), encoding="utf-8")
    extra = {"load": load, "elapsed": time.perf_counter() - start}
    if runs:
        sections.append(report(runs, proofs, args, extra))
    if lean_run is not None:
        sections.append(lean_report(lean_run, proofs))
    if memory_run is not None:
        sections.append(memory_report(memory_run, args.keystrokes))
    if not runs:
        sections.append(f"{machine()}. Whole benchmark: {extra['elapsed']:.0f} s.\n")
    sections.append(f"Run: `{command_line(args)}`\n")
    body = "\n".join(sections)
    print(body)
    if not (args.no_write or args.quick) and tuple(args.parts) == PARTS:
        write_section("sidecar", body)
    return 0


def print_run(i: int, run: Run) -> None:
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(_count(r.kind for r in run.requests).items()))
    print(
        f"run {i + 1}: {kinds}; miss/alone {ratio(run.requests):.2f}; "
        f"peak RSS {run.peak_rss / 2**20:.0f} MB",
        flush=True,
    )
    for r in run.requests:
        print(
            f"  {r.proof}[{r.index}] {r.kind:15} {r.rtt_ms:7.1f} ms"
            + (f"  server {r.server_ms:.0f} ms" if r.server_ms is not None else "")
            + (f"  propose {r.model_s * 1000:.0f} ms" if r.model_s else "")
            + "  alone "
            + " ".join(f"{a * 1000:.0f} ms (other {o:.2f})" for a, o in r.alone_all)
            + (f"  think {r.think_s:.2f} s" if r.think_s is not None else "")
            + ("" if r.same is not False or r.kind != "miss" else "  (items differ)")
            + (
                "  cores: server {server:.2f} other {other:.2f} me {me:.2f}"
                " steal {steal:.2f}".format(**r.cores)
                if r.cores
                else ""
            )
        )


def _count(values) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)


if __name__ == "__main__":
    sys.exit(main())
