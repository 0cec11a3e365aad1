"""Proof jobs as plain data, and the worker that runs them.

One job is one theorem's search: the file text the `sorry` is in, where the `sorry` is, the
Lake project the REPL runs in, and every setting (all tables, as JSON values), so any
executor (this process, a worker process, a Ray actor on another machine) can run it and
give back the same `JobResult` for the same seed. A `JobRunner` is what a worker keeps
between jobs: one loaded model, shared by every job whose model settings differ only in how
they sample, and one supervised REPL per project.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from segpilot.engine.projects import Projects
from segpilot.engine.settings import Settings, load_settings
from segpilot.errors import SegpilotError
from segpilot.lean.errors import LeanProcessError
from segpilot.lru import Lru
from segpilot.model.candidates import Candidate
from segpilot.model.policy import Policy
from segpilot.model.settings import ModelSettings
from segpilot.search.fill import Hole, fill

Status = Literal["proved", "failed", "budget", "error"]
STATUSES: tuple[Status, ...] = ("proved", "failed", "budget", "error")
POLICIES_KEPT = 8
# The model settings that choose what is loaded; the others only shape one call.
_LOADED = ("model_path", "adapter_path", "adapter_scale", "n_ctx", "n_threads", "n_gpu_layers")


def settings_tables(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every table's effective values as JSON values (what a job carries)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {
        name: {f.name: plain(getattr(settings.table(name), f.name)) for f in dataclasses.fields(t)}
        for name, t in (
            ("model", type(settings.model)),
            ("lean", type(settings.lean)),
            ("search", type(settings.search)),
        )
    }


@dataclass(frozen=True)
class ProofJob:
    """One theorem to prove: the `sorry` at (`line`, `column`) (0-based) of `text`."""

    key: str
    """Unique in a run: results are matched to jobs (and `--resume` skips them) by it."""
    theorem: str
    project: str
    """The folder the REPL runs in (a Lake project root)."""
    path: str
    """The file the text comes from (a suite's name for a theorem that has none)."""
    text: str
    line: int
    column: int
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: str = ""
    run: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProofJob:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class JobResult:
    """How one job ended. `proof` is the tactic block found (flush left); `replacement`
    the text that replaces the `sorry` (indented for its column); both "" unless proved."""

    key: str
    theorem: str
    status: Status
    seconds: float
    expansions: int = 0
    lean_calls: int = 0
    tokens: int = 0
    proof: str = ""
    replacement: str = ""
    message: str = ""
    config: str = ""
    run: int = 0
    path: str = ""
    line: int = 0
    column: int = 0
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        found = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        if found.get("status") not in STATUSES:
            raise SegpilotError(f"not a job result: status {found.get('status')!r}")
        return cls(**found)

    def report_row(self) -> dict[str, Any]:
        """The row `--report` writes: what a script reading it needs."""
        return {
            "theorem": self.theorem,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "expansions": self.expansions,
            "lean_calls": self.lean_calls,
            "tokens": self.tokens,
            "proof": self.proof,
            "path": self.path,
            "line": self.line + 1,
            "column": self.column,
            "message": self.message,
        }


def failed(job: ProofJob, message: str, seconds: float = 0.0, attempts: int = 1) -> JobResult:
    """The result of a job that could not run to an answer."""
    return JobResult(
        job.key,
        job.theorem,
        "error",
        seconds,
        message=message,
        config=job.config,
        run=job.run,
        path=job.path,
        line=job.line,
        column=job.column,
        attempts=attempts,
    )


def _status(reason: str) -> Status:
    if reason == "proved":
        return "proved"
    if reason.startswith("budget"):
        return "budget"
    return "failed"


class _Metered:
    """The policy, counting the tokens the model generated for the search (every sample,
    those that parse to nothing or are refused included; a cached answer costs none)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tokens = 0

    def propose(
        self, state: Any, k: int, *, cancel: threading.Event | None = None
    ) -> list[Candidate]:
        proposed = self.policy.propose_batch(state, k, cancel=cancel)
        self.tokens += 0 if proposed.cached else proposed.tokens
        return list(proposed.candidates)


class JobRunner:
    """Runs jobs one at a time: what one worker holds between them."""

    def __init__(self, policy_factory: Callable[..., Policy] = Policy) -> None:
        self._policy_factory = policy_factory
        # Jobs of one bench configuration and run share one policy (its proposal cache);
        # a few are kept, and a model is freed once no kept policy uses it.
        self._policies: Lru[str, Policy] = Lru(POLICIES_KEPT)
        self.projects = Projects()

    def policy_for(self, model: ModelSettings) -> Policy:
        """A policy with these settings, on the loaded model when it is the same one."""
        key = repr(model)
        found = self._policies.find(key)
        if found is not None:
            return found
        same_model = next(
            (
                p.loaded
                for p in self._policies.values()
                if all(getattr(p.settings, n) == getattr(model, n) for n in _LOADED)
                and p.loaded is not None
            ),
            None,
        )
        policy = (
            self._policy_factory(model, backend=same_model)
            if same_model is not None
            else self._policy_factory(model)
        )
        for _, dropped in self._policies.put(key, policy):
            if all(p.loaded is not dropped.loaded for p in self._policies.values()):
                dropped.close()
        return policy

    def run(
        self,
        job: ProofJob,
        cancel: threading.Event | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> JobResult | None:
        """The job's result; None when `cancel` stopped it before it ended.
        `on_progress(expansions, expansion budget)` hears each expansion."""
        start = time.monotonic()
        try:
            settings = load_settings({}, job.settings, environ={})
            policy = self.policy_for(settings.model)
            project = self.projects.at_root(Path(job.project))
            checker = project.get_checker(settings.lean)
            if checker is None:
                raise LeanProcessError(
                    f"no Lean REPL in {job.project} (`{' '.join(settings.lean.repl_command)}`)",
                    fix="see `segpilot doctor`",
                )
            # A job starts from nothing remembered but the loaded model and the elaborated
            # environments: its cost must not depend on the jobs this worker ran before
            # (bench compares configurations by it, and executors spread jobs differently).
            policy.forget()
            checker.forget_results()
            metered = _Metered(policy)
            filled = fill(
                metered,
                checker,
                job.text,
                Hole(job.line, job.column),
                settings.search,
                cancel=cancel,
                on_progress=None
                if on_progress is None
                else lambda n, most, _s: on_progress(n, most),
            )
        except (SegpilotError, OSError) as err:
            return failed(job, str(err), time.monotonic() - start)
        search = filled.result
        if search is not None and search.reason == "cancelled":
            return None
        if search is None:
            status: Status = "error"
        elif filled.proved:
            status = "proved"
        else:
            status = "failed" if search.proof is not None else _status(search.reason)
        return JobResult(
            job.key,
            job.theorem,
            status,
            time.monotonic() - start,
            expansions=search.expansions if search else 0,
            lean_calls=search.lean_calls if search else 0,
            tokens=metered.tokens,
            proof=search.proof_text() if filled.proved and search else "",
            replacement=filled.replacement,
            message=filled.message,
            config=job.config,
            run=job.run,
            path=job.path,
            line=job.line,
            column=job.column,
        )

    def close(self) -> None:
        for project in self.projects.by_root.values():
            if project.checker is not None:
                project.checker.close()
                project.checker = None
        for policy in self._policies.values():
            policy.close()
        self._policies.clear()
