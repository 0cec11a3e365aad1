"""Recovery around the plain REPL client: restart, recycle, and replay environments.

`SupervisedRepl` hands callers *stable* environment and proof-state ids. It records the
request that produced each one; when the REPL process is replaced (it crashed, hung, was
recycled after `recycle_after` requests or past `rss_limit_mb`), the new process knows
none of the old ids, so the first request that needs one replays the recorded requests
it depends on, on demand, and maps the stable id to the fresh id. Proof states that came
with a replayed reply (its sorries, its `all_tactics` states) are mapped by position.
Until the first replacement the stable ids are the REPL's own ids.

The records are bounded. A record holds a whole request (a file header, a proof body),
and an editor session or a proof search makes thousands, most of them never used again;
kept forever they would grow without end although recycling exists to bound memory. So
the supervisor keeps the `max_environments` environments and `max_proof_states` proof
states used most recently, each with its *lineage* (the records its replay needs: the
environment a command ran on, the state a tactic ran on, the reply a sorry came with).
Using an id also refreshes its lineage, so an ancestor is always at least as recent as
anything built on it, and forgetting the least recent environment forgets only records
no more recent than it. A forgotten id gets the REPL's own "Unknown environment." /
"Unknown proof state." reply. When the process is replaced (crash, timeout or recycle)
the map from stable to live ids is cleared and rebuilt, by replay, only for the ids that
are asked for again; the records themselves stay within their bounds.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
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
# Above LeanChecker's caches (segpilot.search.check: 16 headers, 4096 states, 4096
# outcomes), so that the ids it caches stay replayable.
DEFAULT_MAX_ENVIRONMENTS = 8192
DEFAULT_MAX_PROOF_STATES = 16384

_Key = tuple[str, int]  # (id kind, stable id)


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
    fingerprint: bytes
    """A digest of what a replay must reproduce: goals, sorry goals, tactic count."""


def _fingerprint(reply: CommandResponse | ProofStepResponse) -> bytes:
    """A digest, not the goals themselves: records are many and goals can be long."""
    goals = list(reply.goals) if isinstance(reply, ProofStepResponse) else None
    tactics = len(reply.tactics) if isinstance(reply, CommandResponse) else 0
    data = json.dumps([goals, [s.goal for s in reply.sorries], tactics], ensure_ascii=False)
    return hashlib.blake2b(data.encode("utf-8"), digest_size=16).digest()


def _request_ids(request: Request) -> Iterator[_Key]:
    """The stable ids a request refers to."""
    for attr, kind in _ID_FIELDS:
        stable = getattr(request, attr, None)
        if stable is not None:
            yield kind, stable


class SupervisedRepl(AsyncReplMixin):
    """A `ReplClient` that survives its process: bounded restarts with backoff, recycling,
    and replay of the environments and proof states callers still hold.

    `max_environments` and `max_proof_states` bound the records kept for replay (least
    recently used forgotten first, lineage kept with what needs it; see the module
    docstring). A proof state whose own lineage is longer than `max_proof_states` cannot
    be kept and is unknown from the next request on."""

    def __init__(
        self,
        settings: ReplSettings | None = None,
        *,
        client: ReplClient | None = None,
        memory_probe: Callable[[int], float] = process_tree_rss_mb,
        sleep: Callable[[float], None] = time.sleep,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        max_proof_states: int = DEFAULT_MAX_PROOF_STATES,
    ) -> None:
        if max_environments < 1 or max_proof_states < 1:
            raise ValueError("max_environments and max_proof_states must be at least 1")
        self.settings = settings or (client.settings if client else ReplSettings())
        self.client = client or ReplClient(self.settings)
        self._memory_probe = memory_probe
        self._sleep = sleep
        self._lock = threading.RLock()
        self._limits = {"env": max_environments, "ps": max_proof_states}
        self._origins: dict[str, dict[int, _Origin | _Key]] = {"env": {}, "ps": {}}
        """Per id kind: stable id -> its origin, or the (kind, id) of the reply it came with."""
        self._recency: dict[str, collections.OrderedDict[int, None]] = {
            "env": collections.OrderedDict(),
            "ps": collections.OrderedDict(),
        }
        """Per id kind: the stable ids kept, least recently used first."""
        self._dependents: dict[_Key, set[_Key]] = {}
        """Record -> the kept records whose replay needs it."""
        self._next = {"env": 0, "ps": 0}
        """The next stable id of each kind (numbered as the REPL numbers its own)."""
        self._live: dict[_Key, int] = {}
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

    def record_counts(self) -> dict[str, int]:
        """How many environments and proof states are kept for replay, and how many of
        them the current process holds (`live`)."""
        with self._lock:
            return {
                "env": len(self._origins["env"]),
                "ps": len(self._origins["ps"]),
                "live": len(self._live),
            }

    @overload
    def run(
        self, request: EnvRequest, *, timeout: float | None = None
    ) -> CommandResponse | ReplError: ...
    @overload
    def run(  # type: ignore[overload-cannot-match]  # mypy sees the request unions overlap
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
            self._live.clear()  # a new process: rebuilt by replay, id by id, on demand
            self._generation = self.client.generation
        for key in _request_ids(request):
            self._touch(key)
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
        if live is None:  # a reply without an id names nothing to replay
            return
        self._live[(kind, stable)] = live
        infos = reply.tactics if isinstance(reply, CommandResponse) else ()
        for children, items in ((origin.sorries, reply.sorries), (origin.tactics, infos)):
            for child, item in zip(children, items, strict=True):
                if child is None or child not in self._origins["ps"]:
                    continue
                if item.proof_state is not None:
                    self._live[("ps", child)] = item.proof_state

    # fresh replies: new stable ids

    def _record(self, request: Request, reply: CommandResponse | ProofStepResponse) -> Response:
        if isinstance(request, PickleEnvironment):
            return replace(reply, env=request.env)  # the same environment, not a new one
        kind = "env" if isinstance(reply, CommandResponse) else "ps"
        infos = reply.tactics if isinstance(reply, CommandResponse) else ()
        # Children are numbered before their owner, as the REPL numbers them.
        n_children = sum(i.proof_state is not None for i in (*reply.sorries, *infos))
        next_state = self._next["ps"]
        self._next["ps"] += n_children
        owner = self._next[kind]
        self._next[kind] += 1
        child_keys: list[_Key] = []

        def children(items: tuple[Any, ...]) -> list[int | None]:
            nonlocal next_state
            ids: list[int | None] = []
            for item in items:
                ids.append(None if item.proof_state is None else next_state)
                if item.proof_state is not None:
                    self._origins["ps"][next_state] = (kind, owner)
                    child_keys.append(("ps", next_state))
                    next_state += 1
            return ids

        origin = _Origin(request, children(reply.sorries), children(infos), _fingerprint(reply))
        self._origins[kind][owner] = origin
        owner_key = (kind, owner)
        for parent in _request_ids(request):
            self._dependents.setdefault(parent, set()).add(owner_key)
        if child_keys:
            self._dependents[owner_key] = set(child_keys)
        for child in child_keys:  # least recent first: each child, then what it needs
            self._recency["ps"][child[1]] = None
        self._touch(owner_key)
        self._bind(kind, owner, origin, reply)
        self._forget_least_recent()
        sorries = tuple(
            replace(s, proof_state=c) for s, c in zip(reply.sorries, origin.sorries, strict=True)
        )
        if isinstance(reply, CommandResponse):
            tactics = tuple(
                replace(t, proof_state=c) for t, c in zip(infos, origin.tactics, strict=True)
            )
            return replace(reply, env=owner, sorries=sorries, tactics=tactics)
        return replace(reply, proof_state=owner, sorries=sorries)

    # bounded records: least recently used first, lineage with what needs it

    def _parents(self, key: _Key) -> list[_Key]:
        """The records `key`'s replay needs directly."""
        origin = self._origins[key[0]].get(key[1])
        if origin is None:
            return []
        if isinstance(origin, _Origin):
            return list(_request_ids(origin.request))
        return [origin]

    def _touch(self, key: _Key) -> None:
        """Mark `key` and its whole lineage used, the lineage after it (more recent)."""
        pending = [key]
        while pending:
            kind, stable = current = pending.pop()
            recency = self._recency[kind]
            if stable in self._origins[kind]:
                recency[stable] = None
                recency.move_to_end(stable)
                pending.extend(self._parents(current))

    def _forget_least_recent(self) -> None:
        """Forget the least recently used records until both kinds are within bounds. An
        environment goes with the records built on it; none was used after it."""
        for kind in ("env", "ps"):
            recency = self._recency[kind]
            while len(self._origins[kind]) > self._limits[kind]:
                self._forget((kind, next(iter(recency))))

    def _forget(self, key: _Key) -> None:
        pending = [key]
        while pending:
            current = pending.pop()
            kind, stable = current
            if stable not in self._origins[kind]:
                continue
            parents = self._parents(current)
            del self._origins[kind][stable]
            self._recency[kind].pop(stable, None)
            self._live.pop(current, None)
            pending.extend(self._dependents.pop(current, ()))
            for parent in parents:
                dependents = self._dependents.get(parent)
                if dependents is not None:
                    dependents.discard(current)
                    if not dependents:
                        del self._dependents[parent]
