"""Recovery around the plain REPL client: restart, recycle, and replay environments.

`SupervisedRepl` hands callers *stable* environment and proof-state ids. It records the
request that produced each one; when the REPL process is replaced (it crashed, hung, was
recycled after `recycle_after` requests or past `rss_limit_mb`), the new process knows
none of the old ids, so the first request that needs one replays the recorded requests
it depends on, on demand, and maps the stable id to the fresh id. Proof states that came
with a replayed reply (its sorries, its `all_tactics` states) are mapped by position.
Until the first replacement the stable ids are the REPL's own ids. Records live as long
as the supervisor (one small request per id), like the REPL's own tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, overload

import psutil

from segpilot.lean.errors import ReplCrashedError, ReplProtocolError, ReplReplayError
from segpilot.lean.protocol import (
    CommandResponse,
    EnvRequest,
    PickleEnvironment,
    ProofStateRequest,
    ProofStepResponse,
    ReplError,
    Request,
    Response,
)
from segpilot.lean.repl import AsyncReplMixin, ReplClient, ReplSettings

UNKNOWN = {"env": "Unknown environment.", "ps": "Unknown proof state."}
_ID_FIELDS = (("env", "env"), ("proof_state", "ps"))  # request attribute -> id kind


def process_tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


@dataclass
class _Origin:
    """How a stable id was made: the request (in stable ids) and what its reply held."""

    request: Request
    sorries: list[int | None]
    """Stable ids of the proof states that came with the reply's sorries."""
    tactics: list[int | None]
    """Stable ids of the proof states of the reply's `all_tactics` entries."""
    fingerprint: tuple[Any, ...]
    """What a replay must reproduce: goals, sorry goals, tactic count."""


def _fingerprint(reply: CommandResponse | ProofStepResponse) -> tuple[Any, ...]:
    goals = reply.goals if isinstance(reply, ProofStepResponse) else None
    tactics = len(reply.tactics) if isinstance(reply, CommandResponse) else 0
    return (goals, tuple(s.goal for s in reply.sorries), tactics)


class SupervisedRepl(AsyncReplMixin):
    """A `ReplClient` that survives its process: bounded restarts with backoff, recycling,
    and replay of the environments and proof states callers still hold."""

    def __init__(
        self,
        settings: ReplSettings | None = None,
        *,
        client: ReplClient | None = None,
        memory_probe: Callable[[int], float] = process_tree_rss_mb,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings or (client.settings if client else ReplSettings())
        self.client = client or ReplClient(self.settings)
        self._memory_probe = memory_probe
        self._sleep = sleep
        self._lock = threading.RLock()
        self._origins: dict[str, dict[int, _Origin | tuple[str, int]]] = {"env": {}, "ps": {}}
        """Per id kind: stable id -> its origin, or the (kind, id) of the reply it came with."""
        self._live: dict[tuple[str, int], int] = {}
        """(kind, stable id) -> id in the current process."""
        self._generation = 0
        self.recycles = 0
        """Planned restarts (request count or memory)."""

    @property
    def restarts(self) -> int:
        """Processes started after the first one, for any reason."""
        return max(0, self.client.generation - 1)

    def start(self) -> None:
        self.client.start()

    def close(self) -> None:
        self.client.close()

    def is_alive(self) -> bool:
        return self.client.is_alive()

    def __enter__(self) -> SupervisedRepl:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @overload
    def run(
        self, request: EnvRequest, *, timeout: float | None = None
    ) -> CommandResponse | ReplError: ...
    @overload
    def run(
        self, request: ProofStateRequest, *, timeout: float | None = None
    ) -> ProofStepResponse | ReplError: ...
    def run(self, request: Request, *, timeout: float | None = None) -> Response:
        """Run a request given in stable ids; the reply comes back in stable ids.

        A process that dies (or garbles) is restarted and the request retried, up to
        `max_restarts` times with doubling pauses. A timeout is raised at once (the request
        itself is the likely cause); the next request starts a fresh process.
        """
        with self._lock:
            failures = 0
            while True:
                try:
                    self._maybe_recycle()
                    return self._run_once(request, timeout)
                except (ReplCrashedError, ReplProtocolError):
                    failures += 1
                    if failures > self.settings.max_restarts:
                        raise
                    self._sleep(self.settings.restart_backoff_s * 2 ** (failures - 1))
                    self.client.restart()

    def _maybe_recycle(self) -> None:
        client, settings = self.client, self.settings
        if not client.is_alive() or client.pid is None:
            return
        worn = (
            settings.recycle_after is not None and client.requests_served >= settings.recycle_after
        )
        heavy = (
            settings.rss_limit_mb is not None
            and self._memory_probe(client.pid) > settings.rss_limit_mb
        )
        if worn or heavy:
            client.restart()
            self.recycles += 1

    def _run_once(self, request: Request, timeout: float | None) -> Response:
        self.client.start()
        if self.client.generation != self._generation:
            self._live.clear()
            self._generation = self.client.generation
        live_request = self._to_live(request)
        if isinstance(live_request, ReplError):
            return live_request
        reply = self.client.run(live_request, timeout=timeout)
        if self.client.generation != self._generation:
            raise ReplCrashedError("the Lean REPL was replaced while a request was in flight")
        if isinstance(reply, ReplError):
            return reply
        return self._record(request, reply)

    # stable ids -> ids of the current process (replaying what is missing)

    def _to_live(self, request: Request) -> Request | ReplError:
        changes = {}
        for attr, kind in _ID_FIELDS:
            stable = getattr(request, attr, None)
            if stable is not None:
                live = self._live_id(kind, stable)
                if live is None:
                    return ReplError(UNKNOWN[kind])
                changes[attr] = live
        return replace(request, **changes)

    def _live_id(self, kind: str, stable: int) -> int | None:
        key = (kind, stable)
        if key not in self._live:
            origin = self._origins[kind].get(stable)
            if origin is None:
                return None
            if isinstance(origin, _Origin):
                self._replay(kind, stable, origin)
            else:
                self._live_id(*origin)  # replaying the reply it came with binds it
            if key not in self._live:
                raise ReplReplayError(f"replay did not recreate {kind} {stable}")
        return self._live[key]

    def _replay(self, kind: str, stable: int, origin: _Origin) -> None:
        live_request = self._to_live(origin.request)
        reply = None if isinstance(live_request, ReplError) else self.client.run(live_request)
        if isinstance(reply, (CommandResponse, ProofStepResponse)) and (
            _fingerprint(reply) == origin.fingerprint
        ):
            self._bind(kind, stable, origin, reply)
            return
        raise ReplReplayError(
            f"replaying {origin.request!r} after a restart gave {reply!r}",
            request=origin.request.to_json(),
        )

    def _bind(
        self, kind: str, stable: int, origin: _Origin, reply: CommandResponse | ProofStepResponse
    ) -> None:
        live = reply.env if isinstance(reply, CommandResponse) else reply.proof_state
        self._live[(kind, stable)] = live
        infos = reply.tactics if isinstance(reply, CommandResponse) else ()
        for children, items in ((origin.sorries, reply.sorries), (origin.tactics, infos)):
            for child, item in zip(children, items, strict=True):
                if child is not None and item.proof_state is not None:
                    self._live[("ps", child)] = item.proof_state

    # fresh replies: new stable ids

    def _record(self, request: Request, reply: CommandResponse | ProofStepResponse) -> Response:
        if isinstance(request, PickleEnvironment):
            return replace(reply, env=request.env)  # the same environment, not a new one
        kind = "env" if isinstance(reply, CommandResponse) else "ps"
        infos = reply.tactics if isinstance(reply, CommandResponse) else ()
        states = self._origins["ps"]
        # Children are numbered before their owner, as the REPL numbers them.
        next_state = len(states)
        owner = len(self._origins[kind])
        n_children = sum(i.proof_state is not None for i in (*reply.sorries, *infos))
        if kind == "ps":
            owner += n_children

        def children(items: tuple[Any, ...]) -> list[int | None]:
            nonlocal next_state
            ids: list[int | None] = []
            for item in items:
                ids.append(None if item.proof_state is None else next_state)
                if item.proof_state is not None:
                    states[next_state] = (kind, owner)
                    next_state += 1
            return ids

        origin = _Origin(request, children(reply.sorries), children(infos), _fingerprint(reply))
        self._origins[kind][owner] = origin
        self._bind(kind, owner, origin, reply)
        sorries = tuple(
            replace(s, proof_state=c) for s, c in zip(reply.sorries, origin.sorries, strict=True)
        )
        if isinstance(reply, CommandResponse):
            tactics = tuple(
                replace(t, proof_state=c) for t, c in zip(infos, origin.tactics, strict=True)
            )
            return replace(reply, env=owner, sorries=sorries, tactics=tactics)
        return replace(reply, proof_state=owner, sorries=sorries)
