"""The engine: what every front end calls. The `segpilot` commands run it with
`asyncio.run`, the LSP sidecar on its event loop.

Blocking work goes to worker threads (`asyncio.to_thread`), and every model call inside
them to the process's single llama.cpp thread. A suggestion list is cached by (project,
the text above the declaration, goal text): the same goals in the same context get the
same checked answer. A job computing a list is registered under that key while it runs,
so a request for goals being prefetched waits for the prefetch instead of starting the
work again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segpilot.engine.goals import GoalAt
from segpilot.engine.projects import LeanProject, Projects
from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError
from segpilot.lean.errors import LeanProcessError, ReplCrashedError, ReplStartError
from segpilot.lean.positions import TextPosition
from segpilot.lean.project import command_found
from segpilot.lean.source import ProofSite
from segpilot.lru import Lru
from segpilot.model.policy import Policy
from segpilot.model.settings import ModelSettings
from segpilot.search.check import LeanState, ProofContext
from segpilot.search.fill import Filled, Hole, fill
from segpilot.search.ranking import Checked
from segpilot.search.rollout import rollout, triggers
from segpilot.search.suggest import Prompt, Proposal, best_move, propose_checked

log = logging.getLogger(__name__)

CacheKey = tuple[str, str, str]
ProgressFn = Callable[[int, int, int, float], None]
"""`(hole index, holes, expansions done, expansion budget)` -> None."""


@dataclass
class Job:
    """Work computing the suggestions for one cache key, and the flag that stops it."""

    task: asyncio.Future[Proposal]
    cancel: threading.Event
    background: bool

    def stop(self) -> None:
        self.cancel.set()


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    """Messages handled, by handler name (`inline_completion`, `code_action`, ...)."""
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


class Engine:
    """Settings, the model, Lean per project, goals, suggestions and their prefetch."""

    def __init__(
        self,
        settings: Settings,
        *,
        policy_factory: Callable[[ModelSettings], Policy] = Policy,
    ) -> None:
        self.settings = settings
        self._policy_factory = policy_factory
        self.policy = policy_factory(self._model_settings(settings))
        self.projects = Projects()
        self.cache: Lru[CacheKey, Proposal] = Lru(settings.lsp.cache_size)
        self.prefetched: set[CacheKey] = set()
        self.running: dict[CacheKey, Job] = {}
        self.prefetch_jobs: dict[str, Job] = {}
        self.stats = Stats()

    @staticmethod
    def _model_settings(settings: Settings) -> ModelSettings:
        """Editor requests are bounded by the sidecar's request budget."""
        return settings.model.updated(budget_s=settings.lsp.request_budget_s)

    # -- lifecycle ----------------------------------------------------------------------

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
        for owner in list(self.prefetch_jobs):
            self.cancel_prefetch(owner)
        await self.projects.close()
        await asyncio.to_thread(self.policy.close)

    async def apply_settings(self, settings: Settings) -> list[str]:
        """Switch to new settings; returns what had to be restarted."""
        old, self.settings = self.settings, settings
        changed: list[str] = []
        if self._model_settings(old) != self._model_settings(settings):
            await self.reload_model()
            changed.append("model")
        if old.lean != settings.lean:
            for project in self.projects.by_root.values():
                await project.close()
            changed.append("lean")
        self.cache = Lru(settings.lsp.cache_size)
        self.prefetched.clear()
        return changed

    async def reload_model(self) -> None:
        """Load the model afresh from the current settings and swap it in once loaded;
        requests already running finish on the old one."""
        fresh = self._policy_factory(self._model_settings(self.settings))
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

    def project_for(self, path: Path | None) -> LeanProject:
        return self.projects.for_path(path)

    def checking(self, project: LeanProject) -> bool:
        """Whether candidates in `project` are run in Lean (checking on, REPL there)."""
        return project.get_checker(self.settings.lean) is not None

    def unchecked_reason(self, project: LeanProject) -> str:
        """Why `project` has no checking ("" when it has)."""
        lean = self.settings.lean
        if not lean.check:
            return "checking is off ([lean] check = false)"
        if project.start_error:
            return f"the REPL command does not start: {project.start_error}"
        if not project.repl_found(lean):
            return f"no Lean found (the REPL command `{' '.join(lean.repl_command)}` is missing)"
        return ""

    async def lean_state(
        self, project: LeanProject, site: ProofSite
    ) -> tuple[LeanState | None, str]:
        """The REPL's proof state at the site, with every goal open there (None without
        Lean, outside a tactic block, or when Lean failed, with the reason)."""
        checker = project.get_checker(self.settings.lean)
        if checker is None:
            return None, ""
        try:
            state = await asyncio.to_thread(checker.state_at, ProofContext(site.header, site.body))
        except LeanProcessError as err:
            if isinstance(err, (ReplStartError, ReplCrashedError)) and not project.answered:
                # It never answered: the command is not a working REPL here.
                self.note_error(f"Lean REPL does not start in {project.root}: {err}")
                project.start_error = str(err)
            else:
                self.note_error(f"Lean REPL failed in {project.root}: {err}")
            return None, str(err)
        project.answered = True
        return state, ""

    async def goal_at(
        self,
        project: LeanProject,
        uri: str,
        text: str,
        site: ProofSite,
        client: Sequence[str] | None = None,
    ) -> GoalAt:
        """The goals at the site, from the first source that answers: the editor's
        (`client`), the REPL, `lake serve` (when no REPL), else the statement. The
        `[lsp] goal_source` setting can pin one."""
        source = self.settings.lsp.goal_source
        state, error = None, ""
        if source in ("auto", "client", "repl"):
            state, error = await self.lean_state(project, site)
        if client is not None and source in ("auto", "client"):
            return GoalAt(tuple(client), "client", state, error)
        if state is not None and source in ("auto", "repl"):
            return GoalAt(state.goals, "repl", state, error)
        if source == "lake-serve" or (source == "auto" and not self.checking(project)):
            where = TextPosition(site.line, site.column)
            shown = await project.server_goal(self.settings.lean, uri, text, where)
            if shown is not None:
                return GoalAt(tuple(shown.texts()), "lake-serve", None, error)
        return GoalAt((site.statement_goal,), "statement", None, error)

    # -- suggestions ---------------------------------------------------------------------

    def cache_key(
        self, project: LeanProject, site: ProofSite, goal_text: str, source: str
    ) -> CacheKey:
        # An approximated goal is the same all through a proof: the tactics so far tell
        # the suggestions apart there.
        extra = site.proof_before if source == "statement" else ""
        return (str(project.root), _digest(site.header), _digest(goal_text + "\0" + extra))

    def cached(self, key: CacheKey) -> Proposal | None:
        return self.cache.find(key)

    def remember(self, key: CacheKey, proposal: Proposal, *, prefetched: bool = False) -> None:
        """Cache a proposal that finished (one cut short by a budget or a cancel is not)."""
        if not proposal.complete or not self.cache.size:
            return
        for dropped, _ in self.cache.put(key, proposal):
            self.prefetched.discard(dropped)
        if prefetched:
            self.prefetched.add(key)

    def _propose(
        self,
        project: LeanProject | None,
        goal: str,
        state: LeanState | None,
        prompt: Prompt,
        cancel: threading.Event,
    ) -> Proposal:
        """One suggestion round; checked when there is a project's checker and a state."""
        checker = project.checker if project is not None and state is not None else None
        return propose_checked(
            self.policy,
            goal,
            prompt,
            k=self.policy.settings.k,
            checker=checker,
            state=state,
            cancel=cancel,
            check_budget_s=self.settings.lsp.check_budget_s,
        )

    async def suggestions(self, project: LeanProject, site: ProofSite, goal: GoalAt) -> Proposal:
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
        if not proposal.checked and not proposal.lean_error:
            proposal = replace(proposal, lean_error=self.unchecked_reason(project))
        self.stats.last_model_s = proposal.model_s
        self.remember(key, proposal)
        return proposal

    async def suggest_for_state(self, goal_text: str) -> Proposal:
        """Suggestions for a goal given as text, not tied to a file: never checked."""
        return await asyncio.to_thread(
            self._propose, None, goal_text, None, Prompt(), threading.Event()
        )

    def _register(self, key: CacheKey, job: Job) -> None:
        self.running[key] = job

        def done(_task: asyncio.Future[Proposal]) -> None:
            if self.running.get(key) is job:
                del self.running[key]

        job.task.add_done_callback(done)
        job.task.add_done_callback(_log_job_failure)

    # -- prefetch ------------------------------------------------------------------------

    def goals_moved(self, before: int | None, after: int) -> bool:
        """Whether a goal-count move starts a prefetch: the search's rollout trigger."""
        return before is not None and triggers(self.settings.search.trigger, before, after)

    def cancel_prefetch(self, owner: str) -> None:
        job = self.prefetch_jobs.pop(owner, None)
        if job is not None and not job.task.done():
            job.stop()
            self.stats.prefetches_cancelled += 1

    def start_prefetch(
        self, owner: str, project: LeanProject, site: ProofSite, goal: GoalAt
    ) -> asyncio.Future[Proposal] | None:
        """Prepare the suggestions for `goal` in the background, and the states after it:
        the goal-aware rollout (`segpilot.search.rollout`) from the cursor's state, caching
        the suggestions of every state it reaches. One job per `owner` (a document)."""
        if not self.settings.lsp.prefetch or goal.count == 0:
            return None
        self.cancel_prefetch(owner)
        key = self.cache_key(project, site, goal.text, goal.source)
        if key in self.cache or key in self.running:
            return None
        prompt = Prompt(site.theorem, site.name, site.proof_before)
        cancel = threading.Event()
        found: list[tuple[CacheKey, Proposal]] = []
        at_state: dict[int, Proposal] = {}

        def propose(text: str, state: LeanState | None, key: CacheKey) -> Proposal:
            proposal = self._propose(project, text, state, prompt, cancel)
            found.append((key, proposal))
            if state is not None:
                at_state[state.proof_state] = proposal
            return proposal

        def prepared(state: LeanState) -> Proposal | None:
            """The suggestions at `state`: known, cached, or proposed now."""
            known = at_state.get(state.proof_state)
            if known is None and not cancel.is_set():
                later = self.cache_key(project, site, state.key(), goal.source)
                known = self.cached(later) or propose(state.key(), state, later)
            return known

        def move(state: LeanState) -> Checked | None:
            known = prepared(state)
            return None if known is None else best_move(known)

        def visit(reached: LeanState, _move: Checked) -> bool:
            # Every state the rollout reaches gets its suggestions: the last one too, where
            # the goal count changed and the user goes next.
            return prepared(reached) is not None

        def work() -> Proposal:
            timer = threading.Timer(self.settings.lsp.prefetch_budget_s, cancel.set)
            timer.daemon = True
            timer.start()
            try:
                first = propose(goal.text, goal.state, key)
                if goal.state is not None:
                    rollout(goal.state, move, self.settings.search.rollout_depth, visit=visit)
                return first
            finally:
                timer.cancel()

        async def run() -> Proposal:
            first = await asyncio.to_thread(work)
            for later, proposal in found:
                self.remember(later, proposal, prefetched=True)
            return first

        job = Job(asyncio.ensure_future(run()), cancel, background=True)
        self._register(key, job)
        self.prefetch_jobs[owner] = job
        self.stats.prefetches += 1
        log.info("prefetch for %s: %d goal(s) from %s", owner, goal.count, goal.source)
        return job.task

    # -- proof search --------------------------------------------------------------------

    async def fill_holes(
        self,
        project: LeanProject,
        text: str,
        holes: Sequence[Hole],
        *,
        cancel: threading.Event,
        on_progress: ProgressFn | None = None,
    ) -> list[Filled]:
        """Search a proof for each hole of `text` in turn (best-first with goal-aware
        rollout, `[search]` budget per hole), each re-checked in command mode."""
        checker = project.get_checker(self.settings.lean)
        if checker is None:
            raise LeanProcessError(
                f"proof search needs Lean: {self.unchecked_reason(project)}",
                fix="see `segpilot doctor`",
            )
        budget = self.settings.search
        results: list[Filled] = []
        for index, hole in enumerate(holes):
            if cancel.is_set():
                break

            def progress(done: int, most: int, _s: float, index: int = index) -> None:
                if on_progress is not None:
                    on_progress(index, len(holes), done, most)

            progress(0, budget.expansions, 0.0)
            try:
                filled = await asyncio.to_thread(
                    fill,
                    self.policy,
                    checker,
                    text,
                    hole,
                    budget,
                    cancel=cancel,
                    on_progress=progress,
                )
            except LeanProcessError as err:
                self.note_error(f"proof search: Lean failed: {err}")
                filled = Filled(hole, None, message=f"Lean failed: {err}")
            results.append(filled)
        return results

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        policy = self.policy
        backend = policy.loaded
        lean = self.settings.lean
        projects = list(self.projects.by_root.values())
        checkers = [p.checker for p in projects if p.checker is not None]
        sizes = [c.stats() for c in checkers]
        calls: Counter[str] = Counter()
        for checker in checkers:
            calls.update(checker.calls)
        here = self.projects.workspace_root or Path.cwd()
        found = command_found(lean.repl_command, here) or any(p.repl_found(lean) for p in projects)
        return {
            "model": str(backend.model_path) if backend is not None else policy.settings.model_path,
            "modelLoaded": backend is not None,
            "adapter": policy.settings.adapter_path,
            "preset": policy.settings.preset,
            "lean": {
                "found": found,
                "replCommand": list(lean.repl_command),
                "checking": lean.check and found,
                "projects": [
                    {
                        "root": str(p.root),
                        "found": p.repl_found(lean),
                        "checking": p.checker is not None and p.repl_found(lean),
                        "errors": list(p.errors[-5:]),
                    }
                    for p in projects
                ],
                "calls": dict(sorted(calls.items())),
            },
            "caches": {
                "suggestions": len(self.cache),
                "running": len(self.running),
                **{
                    f"lean{name.title()}": sum(size.get(name, 0) for size in sizes)
                    for name in ("envs", "states", "outcomes")
                },
            },
            "stats": {
                "requests": dict(sorted(self.stats.requests.items())),
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
        # Known failures (a missing model, Lean down) are one line; others get a traceback.
        known = isinstance(err, SegpilotError)
        log.error("suggestion job failed: %s", err, exc_info=None if known else err)
