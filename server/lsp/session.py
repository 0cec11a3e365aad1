"""What the sidecar knows and runs between requests: the model, Lean per project, the
goal at each document's cursor, the suggestion cache and the background prefetch jobs.

Everything here runs on the server's event loop; blocking work goes to worker threads
(`asyncio.to_thread`), and every model call inside them to the single llama.cpp thread.
A suggestion list is cached by (project, the text above the declaration, goal text): the
same goal in the same context gets the same checked answer. A job computing a list is
registered under that key while it runs, so a request for a goal being prefetched waits for
the prefetch instead of starting the work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import shutil
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segpilot.environment import find_project
from segpilot.lean.errors import LeanProcessError
from segpilot.lean.lsp_client import LeanServerClient
from segpilot.lean.positions import TextPosition
from segpilot.lean.repl import ReplSettings
from segpilot.lean.source import ProofSite
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.lsp.settings import LspSettings
from segpilot.model.policy import Policy
from segpilot.model.settings import ModelSettings
from segpilot.search.check import LeanChecker, LeanState, ProofContext
from segpilot.search.suggest import Prompt, Proposal, propose_checked, rollout

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]


@dataclass(frozen=True)
class ClientGoals:
    """Goals the editor reported (`segpilot/goalState`) for a document version and position."""

    version: int | None
    line: int
    character: int
    goals: tuple[str, ...]


@dataclass(frozen=True)
class GoalAt:
    """The goal at a cursor, where it came from, and the REPL state to check against."""

    text: str
    n_goals: int
    source: str
    """`client`, `repl`, `lake-serve` or `statement` (approximated from the text)."""
    state: LeanState | None = None
    lean_error: str = ""


@dataclass
class Job:
    """Work computing the suggestions for one cache key, and the flag that stops it."""

    task: asyncio.Future[Proposal]
    cancel: threading.Event
    background: bool

    def stop(self) -> None:
        self.cancel.set()


@dataclass
class DocumentState:
    """Per document: the goal count last seen at its cursor, and its background job."""

    last_count: int | None = None
    client_goals: ClientGoals | None = None
    job: Job | None = None
    probe: asyncio.Future[Any] | None = None


@dataclass
class Project:
    """A Lake project (or a folder) and the Lean processes serving it, started on demand."""

    root: Path
    checker: LeanChecker | None = None
    lean_server: LeanServerClient | None = None
    lean_error: str = ""


@dataclass
class Stats:
    requests: int = 0
    cache_hits: int = 0
    prefetch_hits: int = 0
    joined: int = 0
    prefetches: int = 0
    prefetches_cancelled: int = 0
    last_latency_ms: float | None = None
    last_model_s: float | None = None
    reloads: int = 0
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=10))
    """The latest errors, for `segpilot/status`."""


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def goal_text(goals: Sequence[str]) -> str:
    return "\n\n".join(goals)


class Session:
    """The sidecar's state; the LSP handlers are thin wrappers around its methods."""

    def __init__(
        self,
        settings: LspSettings,
        model_base: ModelSettings,
        *,
        policy_factory: Callable[[ModelSettings], Policy] = Policy,
    ) -> None:
        self.settings = settings
        self.model_base = model_base
        self._policy_factory = policy_factory
        self.policy = policy_factory(settings.model_settings(self._model_base()))
        self.projects: dict[Path, Project] = {}
        self.documents: dict[str, DocumentState] = {}
        self.cache: OrderedDict[CacheKey, Proposal] = OrderedDict()
        self.running: dict[CacheKey, Job] = {}
        self.prefetched: set[CacheKey] = set()
        self.stats = Stats()
        self.workspace_root: Path | None = None

    def _model_base(self) -> ModelSettings:
        return self.model_base.updated(budget_s=self.settings.request_budget_s)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def lean_found(self) -> bool:
        return shutil.which(self.settings.repl_command[0]) is not None

    @property
    def lean_server_found(self) -> bool:
        return shutil.which(self.settings.lean_server_command[0]) is not None

    async def warm_up(self) -> None:
        """Load the model now, so the first request does not pay for it."""
        policy = self.policy
        try:
            await asyncio.to_thread(lambda: policy.backend)
        except Exception as err:  # the error is shown again on the first request
            self.note_error(f"model failed to load: {err}")

    def note_error(self, message: str) -> None:
        log.error("%s", message)
        self.stats.errors.append(message)

    async def close(self) -> None:
        for state in self.documents.values():
            self._cancel_job(state)
        for project in self.projects.values():
            await self._close_project(project)
        self.projects.clear()
        await asyncio.to_thread(self.policy.close)

    async def _close_project(self, project: Project) -> None:
        if project.checker is not None:
            await asyncio.to_thread(project.checker.close)
            project.checker = None
        if project.lean_server is not None:
            with contextlib.suppress(Exception):
                await project.lean_server.shutdown()
            project.lean_server = None

    async def apply_settings(self, settings: LspSettings) -> list[str]:
        """Switch to new settings; returns what had to be restarted."""
        old, self.settings = self.settings, settings
        changed: list[str] = []
        if old.model_settings(self.model_base) != settings.model_settings(self.model_base):
            await self.reload_model()
            changed.append("model")
        if (old.repl_command, old.lean_server_command, old.lean_timeout_s, old.checking) != (
            settings.repl_command,
            settings.lean_server_command,
            settings.lean_timeout_s,
            settings.checking,
        ):
            for project in self.projects.values():
                await self._close_project(project)
            changed.append("lean")
        self.cache.clear()
        return changed

    async def reload_model(self) -> None:
        """Load the model afresh from the current settings and swap it in once loaded;
        requests already running finish on the old one."""
        fresh = self._policy_factory(self.settings.model_settings(self._model_base()))
        await asyncio.to_thread(lambda: fresh.backend)
        old, self.policy = self.policy, fresh
        self.cache.clear()
        self.stats.reloads += 1
        await asyncio.to_thread(old.close)

    async def reload_adapter(self, path: str | None) -> None:
        """Swap the LoRA adapter in place (queued behind the model call in progress)."""
        scale = self.policy.settings.adapter_scale
        await asyncio.to_thread(self.policy.set_adapter, path, scale)
        self.cache.clear()
        self.stats.reloads += 1

    # -- projects and goals --------------------------------------------------------------

    def project_for(self, path: Path | None) -> Project:
        start = path.parent if path is not None else self.workspace_root or Path.cwd()
        root = find_project(start) or self.workspace_root or start
        return self.projects.setdefault(root, Project(root))

    def checker(self, project: Project) -> LeanChecker | None:
        if not (self.settings.checking and self.lean_found):
            return None
        if project.checker is None:
            repl = SupervisedRepl(
                ReplSettings(
                    command=list(self.settings.repl_command),
                    project_dir=project.root,
                    timeout_s=self.settings.lean_timeout_s,
                )
            )
            project.checker = LeanChecker(repl)
        return project.checker

    async def lean_state(self, project: Project, site: ProofSite) -> tuple[LeanState | None, str]:
        checker = self.checker(project)
        if checker is None:
            return None, ""
        try:
            state = await asyncio.to_thread(checker.state_at, ProofContext(site.header, site.body))
        except LeanProcessError as err:
            self.note_error(f"Lean REPL failed in {project.root}: {err}")
            return None, str(err)
        return state, ""

    async def lean_server_goal(
        self, project: Project, uri: str, text: str, site: ProofSite
    ) -> tuple[str, int] | None:
        if not self.lean_server_found:
            return None
        try:
            if project.lean_server is None:
                client = LeanServerClient(
                    project.root,
                    self.settings.lean_server_command,
                    request_timeout=self.settings.lean_timeout_s,
                    elaboration_timeout=self.settings.lean_timeout_s,
                )
                await client.start()
                project.lean_server = client
            client = project.lean_server
            known = client.documents.get(uri)
            if known is None:
                await client.did_open(uri, text)
            elif known.text != text:
                await client.did_change(uri, text)
            goals = await client.goal_at(uri, TextPosition(site.line, site.column))
        except LeanProcessError as err:
            self.note_error(f"lake serve failed in {project.root}: {err}")
            if project.lean_server is not None:
                with contextlib.suppress(Exception):
                    await project.lean_server.shutdown()
            project.lean_server = None
            return None
        if goals is None:
            return None
        return goals.pretty(), goals.n_goals

    async def goal_at(
        self,
        project: Project,
        uri: str,
        text: str,
        site: ProofSite,
        client: ClientGoals | None,
    ) -> GoalAt:
        """The goal at the site, from the first source that answers (see `goal_source`)."""
        source = self.settings.goal_source
        state, error = None, ""
        if source in ("auto", "client", "repl"):
            state, error = await self.lean_state(project, site)
        if client is not None and source in ("auto", "client"):
            return GoalAt(goal_text(client.goals), len(client.goals), "client", state, error)
        if state is not None and source in ("auto", "repl"):
            return GoalAt(state.key(), state.n_goals, "repl", state, error)
        if source == "lake-serve" or (source == "auto" and self.checker(project) is None):
            found = await self.lean_server_goal(project, uri, text, site)
            if found is not None:
                return GoalAt(found[0], found[1], "lake-serve", None, error)
        return GoalAt(site.statement_goal, 1, "statement", None, error)

    # -- suggestions ---------------------------------------------------------------------

    def cache_key(self, project: Project, site: ProofSite, goal: str, source: str) -> CacheKey:
        # An approximated goal is the same all through a proof: the tactics so far tell
        # the suggestions apart there.
        extra = site.proof_before if source == "statement" else ""
        return (str(project.root), _digest(site.header), _digest(goal + "\0" + extra))

    def cached(self, key: CacheKey) -> Proposal | None:
        found = self.cache.get(key)
        if found is not None:
            self.cache.move_to_end(key)
        return found

    def remember(self, key: CacheKey, proposal: Proposal, *, prefetched: bool = False) -> None:
        if not proposal.complete or not self.settings.cache_size:
            return
        self.cache[key] = proposal
        if prefetched:
            self.prefetched.add(key)
        while len(self.cache) > self.settings.cache_size:
            old, _ = self.cache.popitem(last=False)
            self.prefetched.discard(old)

    def _propose(
        self,
        project: Project,
        goal: str,
        state: LeanState | None,
        prompt: Prompt,
        cancel: threading.Event,
    ) -> Proposal:
        checker = project.checker if state is not None else None
        return propose_checked(
            self.policy,
            goal,
            prompt,
            k=self.policy.settings.k,
            checker=checker,
            state=state,
            cancel=cancel,
            check_budget_s=self.settings.check_budget_s,
        )

    async def suggestions(self, project: Project, site: ProofSite, goal: GoalAt) -> Proposal:
        """The ranked suggestions for a request: from the cache, from a job already
        computing them (a prefetch, or the request of the previous keystroke on the same
        line), or computed now, in which case other jobs give way."""
        key = self.cache_key(project, site, goal.text, goal.source)
        found = self.cached(key)
        if found is not None:
            self.stats.cache_hits += 1
            if key in self.prefetched:
                self.stats.prefetch_hits += 1
            return found
        job = self.running.get(key)
        if job is not None and not job.task.done():
            self.stats.joined += 1
            if job.background:
                self.stats.prefetch_hits += 1
            return await asyncio.shield(job.task)
        for other in self.running.values():
            other.stop()
        prompt = Prompt(site.theorem, site.name, site.proof_before)
        cancel = threading.Event()
        task = asyncio.ensure_future(
            asyncio.to_thread(self._propose, project, goal.text, goal.state, prompt, cancel)
        )
        self._register(key, Job(task, cancel, background=False))
        proposal = await asyncio.shield(task)
        if goal.lean_error and not proposal.lean_error:
            proposal = replace(proposal, lean_error=goal.lean_error)
        self.stats.last_model_s = proposal.model_s
        self.remember(key, proposal)
        return proposal

    def _register(self, key: CacheKey, job: Job) -> None:
        self.running[key] = job

        def done(_task: asyncio.Future[Proposal]) -> None:
            if self.running.get(key) is job:
                del self.running[key]

        job.task.add_done_callback(done)
        job.task.add_done_callback(_log_job_failure)

    # -- prefetch --------------------------------------------------------------------------

    def document(self, uri: str) -> DocumentState:
        return self.documents.setdefault(uri, DocumentState())

    def record_count(self, uri: str, count: int, before: int | None = None) -> bool:
        """Remember the goal count at the document's cursor; whether it moved from `before`
        (default: the count remembered so far) the way the prefetch trigger asks."""
        doc = self.document(uri)
        previous, doc.last_count = doc.last_count, count
        before = previous if before is None else before
        if before is None:
            return False
        if self.settings.prefetch_trigger == "change":
            return count != before
        return count < before

    def _cancel_job(self, state: DocumentState) -> None:
        if state.job is not None and not state.job.task.done():
            state.job.stop()
            self.stats.prefetches_cancelled += 1
        state.job = None

    def document_changed(self, uri: str) -> None:
        """An edit makes the document's background work stale."""
        doc = self.document(uri)
        self._cancel_job(doc)
        if doc.probe is not None:
            doc.probe.cancel()
            doc.probe = None

    def document_closed(self, uri: str) -> None:
        state = self.documents.pop(uri, None)
        if state is not None:
            self._cancel_job(state)
            if state.probe is not None:
                state.probe.cancel()

    def start_prefetch(
        self, uri: str, project: Project, site: ProofSite, goal: GoalAt
    ) -> asyncio.Future[Proposal] | None:
        """Prepare the suggestions for `goal` (and, following the best checked one, the
        states after it) in the background; replaces the document's previous job."""
        if not self.settings.prefetch or goal.n_goals == 0:
            return None
        doc = self.document(uri)
        self._cancel_job(doc)
        key = self.cache_key(project, site, goal.text, goal.source)
        if key in self.cache or key in self.running:
            return None
        prompt = Prompt(site.theorem, site.name, site.proof_before)
        cancel = threading.Event()

        def step(state: LeanState) -> Proposal | None:
            if cancel.is_set():
                return None
            return self._propose(project, state.key(), state, prompt, cancel)

        def work() -> list[Proposal]:
            timer = threading.Timer(self.settings.prefetch_budget_s, cancel.set)
            timer.daemon = True
            timer.start()
            try:
                first = self._propose(project, goal.text, goal.state, prompt, cancel)
                return rollout(first, goal.state, step, self.settings.rollout_depth)
            finally:
                timer.cancel()

        async def run() -> Proposal:
            proposals = await asyncio.to_thread(work)
            for proposal in proposals:
                later = self.cache_key(project, site, proposal.goal, goal.source)
                self.remember(later, proposal, prefetched=True)
            return proposals[0]

        job = Job(asyncio.ensure_future(run()), cancel, background=True)
        self._register(key, job)
        doc.job = job
        self.stats.prefetches += 1
        log.info("prefetch for %s: %d goal(s) from %s", uri, goal.n_goals, goal.source)
        return job.task

    def status(self) -> dict[str, Any]:
        policy = self.policy
        backend = policy.loaded
        checkers = [p.checker for p in self.projects.values() if p.checker is not None]
        return {
            "model": str(backend.model_path) if backend is not None else policy.settings.model_path,
            "modelLoaded": backend is not None,
            "adapter": policy.settings.adapter_path,
            "preset": policy.settings.preset,
            "lean": {
                "found": self.lean_found,
                "replCommand": list(self.settings.repl_command),
                "checking": self.settings.checking and self.lean_found,
                "projects": [str(p) for p in self.projects],
            },
            "caches": {
                "suggestions": len(self.cache),
                "running": len(self.running),
                **{
                    f"lean{name.title()}": sum(c.stats().get(name, 0) for c in checkers)
                    for name in ("envs", "states", "outcomes")
                },
            },
            "stats": {
                "requests": self.stats.requests,
                "cacheHits": self.stats.cache_hits,
                "prefetchHits": self.stats.prefetch_hits,
                "joined": self.stats.joined,
                "prefetches": self.stats.prefetches,
                "prefetchesCancelled": self.stats.prefetches_cancelled,
                "reloads": self.stats.reloads,
                "lastLatencyMs": self.stats.last_latency_ms,
                "lastModelS": self.stats.last_model_s,
            },
            "errors": list(self.stats.errors),
        }


def _log_job_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    err = task.exception()
    if err is not None:
        log.error("background job failed: %s", err, exc_info=err)
