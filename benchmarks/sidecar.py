"""The LSP sidecar's latency in a scripted editing session, over stdio, with the default model.

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

    .venv/bin/python benchmarks/sidecar.py [--runs 3] [--quick] [--think 5] [--alone-passes 2]
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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from _report import machine, median, p95, table, write_section
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from segpilot.lean.source import proof_site
from segpilot.lsp.settings import LspSettings
from segpilot.model.policy import Policy
from segpilot.model.presets import theorem_from_state
from segpilot.model.settings import ModelSettings

ROOT = Path(__file__).resolve().parents[1]
STEPS_FILE = ROOT / "tests" / "fixtures" / "trajectories" / "repl_transcript_steps.jsonl"
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
  .venv/bin/python benchmarks/sidecar.py                   3 sessions, writes BENCHMARKS.md
  .venv/bin/python benchmarks/sidecar.py --quick           1 session, 2 proofs, print only
  .venv/bin/python benchmarks/sidecar.py --runs 5 --think 8
  .venv/bin/python benchmarks/sidecar.py --quick --log-level debug --log /tmp/sidecar.log
                                                            where a slow request's time goes"""


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
        self.versions[uri] += 1
        lines = self.texts[uri].split("\n")
        lines[line] = lines[line][:character] + text + lines[line][character:]
        self.texts[uri] = "\n".join(lines)
        at = types.Position(line, character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(self.versions[uri], uri),
                [types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)],
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
async def sidecar(workspace: Path, log_level: str):
    """Start `segpilot serve` with the default settings (no config file, no SEGPILOT_LSP_*
    variables), initialize it and wait for its model; stop it at the end."""
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
                    initialization_options=OPTIONS,
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


def classify(before: dict[str, Any], after: dict[str, Any]) -> str:
    """A request's kind from the status counters around it (`requests` grew by one)."""
    grew = {k: after[k] - before[k] for k in ("requests", "prefetchHits", "cacheHits", "joined")}
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


# -- the model alone ---------------------------------------------------------------------------


def model_settings() -> ModelSettings:
    """The sidecar's model settings (see `Session._model_base`), proposal cache off."""
    lsp = LspSettings()
    base = ModelSettings().updated(budget_s=lsp.request_budget_s)
    return lsp.model_settings(base).updated(cache_size=0)


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
    cmd = "benchmarks/sidecar.py" + (" --quick" if args.quick else f" --runs {args.runs}")
    if args.proofs is not None and not args.quick:
        cmd += f" --proofs {args.proofs}"
    if args.think != 5.0:
        cmd += f" --think {args.think}"
    if args.alone_passes != 2 and not args.quick:
        cmd += f" --alone-passes {args.alone_passes}"
    return reflow(f"""## LSP sidecar in an editing session (`benchmarks/sidecar.py`)

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

Run: `.venv/bin/python {cmd}`
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3, help="sessions, each on a fresh server")
    parser.add_argument(
        "--quick", action="store_true", help="1 run on 2 proofs, print only (a fast check)"
    )
    parser.add_argument("--proofs", type=int, help="use the first N proofs (default: all)")
    parser.add_argument(
        "--think", type=float, default=5.0, help="most seconds to wait for a prefetch (default 5)"
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

    proofs = load_proofs()[: args.proofs]
    if not proofs:
        print(f"no usable proofs in {STEPS_FILE}", file=sys.stderr)
        return 1
    load = os.getloadavg()[0]
    start = time.perf_counter()
    policy = Policy(model_settings())
    name, theorem, goals = WARM_UP
    policy.propose("\n\n".join(goals), policy.settings.k, theorem=theorem, name=name)

    runs: list[Run] = []
    logs = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="segpilot-bench-") as folder:
            run = asyncio.run(session(proofs, Path(folder), args.think, args.log_level))
        time_alone(policy, run.requests, args.alone_passes)
        runs.append(run)
        logs.append(f"===== run {i + 1} =====\n{run.log}")
        kinds = ", ".join(
            f"{k} {n}" for k, n in sorted(_count(r.kind for r in run.requests).items())
        )
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
    policy.close()
    if args.log is not None:
        args.log.write_text("\n".join(logs), encoding="utf-8")

    body = report(runs, proofs, args, {"load": load, "elapsed": time.perf_counter() - start})
    print(body)
    if not (args.no_write or args.quick):
        write_section("sidecar", body)
    return 0


def _count(values) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)


if __name__ == "__main__":
    sys.exit(main())
