"""The policy: goal state in, ranked and filtered tactic-block candidates out.

Joins the prompt preset, the worked examples nearest to the goal (`examples`), the backend
(one batched call for all k candidates, each led by a different start when the `lead`
setting says so: a line the goal determines (`openings`), else a likely tactic name), the
clean-up, the safety filter, the ranking (mean log-probability per token unless `ranking`
says total), and a small LRU cache of finished proposals keyed by the prompt and every
setting that changes the output (the adapter included), so a repeated state costs nothing.

`propose_batch` says whether the call was interrupted (its wall-clock budget ran out, or
`cancel` was set, before all k candidates finished): an interrupted proposal is partial, so
neither this cache nor a caller's may keep it as the answer for its state. `propose` is the
same call returning the candidates only.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from segpilot.lru import Lru
from segpilot.model import safety
from segpilot.model.candidates import Candidate, rank
from segpilot.model.examples import ExampleBank, load_bank
from segpilot.model.generation import Generation, prompt_parts, tactic_grammar
from segpilot.model.lexicon import TACTICS, leading_tactic
from segpilot.model.openings import openings
from segpilot.model.presets import Preset, PromptText, get_preset, theorem_from_state
from segpilot.model.settings import ModelSettings

_INTERRUPTED = ("budget", "cancelled")
# Built from the lexicon, the one list of tactic names.
_TACTIC_GRAMMAR = tactic_grammar(TACTICS)


@dataclass(frozen=True)
class Proposed:
    """What one `Policy.propose_batch` call produced.

    `candidates`: the accepted ones, distinct, best first. `rejected`: those the safety filter
    refused (unsafe, or using sorry/admit), each with its `rejected_reason`, best first.
    `interrupted`: the call stopped before all k samples finished; `reason` says why
    ("budget": the wall-clock budget ran out; "cancelled": `cancel` was set), "" when complete.
    `cached`: answered from the policy's cache (only complete proposals are kept there).
    """

    candidates: tuple[Candidate, ...]
    rejected: tuple[Candidate, ...] = ()
    interrupted: bool = False
    reason: str = ""
    cached: bool = False
    tokens: int = 0
    """Tokens the model generated for it, every sample counted (kept or not)."""

    @property
    def complete(self) -> bool:
        """Not interrupted: a result that may be cached as the answer for its state."""
        return not self.interrupted


@dataclass(frozen=True)
class Request:
    """What one generation is asked: the prompt, and the starts of its first sequences."""

    prompt: PromptText
    prefixes: tuple[str, ...] = ()


class Backend(Protocol):
    """What the policy needs from a backend (`LlamaBackend`, or a scripted one in tests)."""

    adapter_key: Any

    def generate(
        self,
        prompt: str,
        k: int,
        *,
        stop: Sequence[str] = (),
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        budget_s: float | None = None,
        cancel: threading.Event | None = None,
        grammar: str | None = None,
        prefixes: Sequence[str] = (),
    ) -> Generation: ...

    def set_adapter(self, path: str | None, scale: float = 1.0) -> None: ...

    def close(self) -> None: ...


class Policy:
    """Proposes tactic blocks for goal states; the model loads on first use."""

    def __init__(self, settings: ModelSettings | None = None, backend: Backend | None = None):
        self.settings = settings or ModelSettings()
        self.preset: Preset = get_preset(self.settings.preset, self.settings.presets)
        self._backend = backend
        self._cache: Lru[tuple[Any, ...], Proposed] = Lru(self.settings.cache_size)
        self._load_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._bank: ExampleBank | None = None

    @property
    def backend(self) -> Backend:
        with self._load_lock:
            if self._backend is None:
                from segpilot.model.backend import LlamaBackend

                self._backend = LlamaBackend(self.settings)
            return self._backend

    @property
    def constrained(self) -> bool:
        """Whether generation is tactic-shaped: the `constrain` setting, where "auto" follows
        the preset (on for segment and step)."""
        mode = self.settings.constrain
        return mode == "on" or (mode == "auto" and self.preset.constrain)

    @property
    def grammar(self) -> str | None:
        """The GBNF grammar given to the backend: every line leads with a lexicon tactic;
        None when generation is not constrained."""
        return _TACTIC_GRAMMAR if self.constrained else None

    @property
    def examples(self) -> ExampleBank:
        """The worked examples (the user's files, else the built-in ones), read on first use."""
        with self._load_lock:
            if self._bank is None:
                self._bank = load_bank(self.settings.examples)
            return self._bank

    @property
    def loaded(self) -> Backend | None:
        """The backend once the model is loaded; None before (asking never loads it)."""
        return self._backend

    def plan(
        self,
        state: Any = "",
        *,
        theorem: str = "",
        name: str = "",
        proof_before: str = "",
        exclude_source: str | None = None,
        k: int | None = None,
    ) -> Request:
        """The prompt for `state` and, on a constrained preset unless `lead = "model"`, the
        starts of the k candidates (`_leads`), likeliest first.

        A whole-proof preset given only a state gets the state's first goal as an `example`
        (see `presets.theorem_from_state`). The state, the worked examples and the other
        fields are user text in the prompt: the backend reads no special tokens there.
        `exclude_source`: no worked example from that file (an evaluation's own rows)."""
        state_text = state if isinstance(state, str) else state.pretty()
        if "theorem" in self.preset.fields and not theorem and state_text:
            theorem = theorem_from_state(state_text)
        s = self.settings
        shots: list[tuple[str, str]] = []
        if "examples" in self.preset.fields and s.shots and state_text:
            near = self.examples.nearest(state_text, s.shots, exclude_source=exclude_source)
            # The nearest example goes last, right before the goal.
            shots = [(e.state, e.tactic) for _, e in reversed(near)]
        prompt = self.preset.build_prompt(
            state=state_text, theorem=theorem, name=name, proof_before=proof_before, examples=shots
        )
        prefixes: tuple[str, ...] = ()
        if s.lead != "model" and self.constrained and state_text:
            prefixes = self._leads(state_text, k or s.k, exclude_source)
        return Request(prompt, prefixes)

    def _leads(self, state: str, k: int, exclude_source: str | None) -> tuple[str, ...]:
        """The starts of the k candidates: with `lead = "goal"` the goal's openings first
        (whole lines; one that closes the goal also ends its candidate), then one tactic
        name per candidate from the worked examples, skipping names an opening leads with."""
        out: list[str] = []
        taken: set[str | None] = set()
        if self.settings.lead == "goal":
            for opening in openings(state)[:k]:
                out.append(opening.line + (self._end if opening.closes else "\n"))
                taken.add(leading_tactic(opening.line))
        names = self.examples.lead_names(state, exclude_source=exclude_source)
        out.extend(n for n in names if n not in taken)
        return tuple(out[:k])

    @property
    def _end(self) -> str:
        """What ends a candidate after its line: the preset's shortest all-newline stop."""
        ends = [x for x in self.preset.stop if x and not x.strip("\n")]
        return min(ends, key=len) if ends else "\n"

    def postprocess(self, generation: Generation) -> list[Candidate]:
        """Parse, clean, filter and rank the samples of one generation (rejected included,
        after the accepted ones). Every block passes the safety filter here, before anything
        else sees it: one that uses sorry or admit is rejected, with the reason."""
        out = []
        for sample in generation.samples:
            tactics = self.preset.parse(
                sample.text, truncated=sample.finish in ("length", *_INTERRUPTED)
            )
            if not tactics:
                continue
            text = "\n".join(tactics)
            verdict = safety.check(text)
            out.append(
                Candidate(
                    text,
                    tuple(tactics),
                    sample.logprob,
                    sample.n_tokens,
                    verdict.reason,
                    verdict.uses_sorry,
                )
            )
        return rank(out, per_token=self.settings.ranking == "per-token")

    def generate(
        self,
        request: Request,
        k: int,
        *,
        budget_s: float | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """One batched backend call for `request` with the settings' sampling, the preset's
        stop strings and the tactic-shaped grammar when it applies; raw samples, not yet
        cleaned or filtered (`postprocess` does that). `budget_s` replaces the settings'."""
        s = self.settings
        return self.backend.generate(
            request.prompt,
            k,
            stop=self.preset.stop,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            budget_s=s.budget_s if budget_s is None else budget_s,
            cancel=cancel,
            grammar=self.grammar,
            prefixes=request.prefixes,
        )

    def propose_batch(
        self,
        state: Any = "",
        k: int | None = None,
        *,
        theorem: str = "",
        name: str = "",
        proof_before: str = "",
        cancel: threading.Event | None = None,
        budget_s: float | None = None,
    ) -> Proposed:
        """Up to k distinct candidates for `state` (a goal-state string or anything with
        `.pretty()`) from one batched model call, the rejected ones apart, and whether the
        call was interrupted.

        `budget_s` replaces the settings' wall-clock budget for this call. A call cut short
        by the budget or `cancel` returns what it has (`interrupted`, with the `reason`) and
        is not cached; a complete one is, and a repeat returns it with `cached` set.
        """
        s = self.settings
        k = k or s.k
        request = self.plan(state, theorem=theorem, name=name, proof_before=proof_before, k=k)
        # The parts, not the text alone: user text spelling template text is another prompt.
        key = (
            prompt_parts(request.prompt),
            request.prefixes,
            k,
            s.temperature,
            s.top_p,
            s.max_tokens,
            s.seed,
            self.backend.adapter_key,
            self.constrained,
            s.ranking,
        )
        with self._cache_lock:
            found = self._cache.find(key)
            if found is not None:
                return replace(found, cached=True)
        generation = self.generate(request, k, budget_s=budget_s, cancel=cancel)
        ranked = self.postprocess(generation)
        reasons = {x.finish for x in generation.samples if x.finish in _INTERRUPTED}
        proposed = Proposed(
            tuple(c for c in ranked if c.accepted),
            tuple(c for c in ranked if not c.accepted),
            interrupted=bool(reasons),
            reason="cancelled" if "cancelled" in reasons else next(iter(reasons), ""),
            tokens=sum(x.n_tokens for x in generation.samples),
        )
        if s.cache_size and proposed.complete:
            with self._cache_lock:
                self._cache.size = s.cache_size  # the settings may have changed since
                self._cache.put(key, proposed)
        return proposed

    def propose(
        self,
        state: Any = "",
        k: int | None = None,
        *,
        theorem: str = "",
        name: str = "",
        proof_before: str = "",
        include_rejected: bool = False,
        cancel: threading.Event | None = None,
        budget_s: float | None = None,
    ) -> list[Candidate]:
        """`propose_batch`'s accepted candidates, best first, with their summed
        log-probabilities; the rejected ones (with their reasons) follow when
        `include_rejected`. Whether the call was interrupted is not said here: ask
        `propose_batch` where that matters (a result to cache, a prefetch).
        """
        proposed = self.propose_batch(
            state,
            k,
            theorem=theorem,
            name=name,
            proof_before=proof_before,
            cancel=cancel,
            budget_s=budget_s,
        )
        return [*proposed.candidates, *(proposed.rejected if include_rejected else ())]

    def set_adapter(self, path: str | None, scale: float = 1.0) -> None:
        """Swap the LoRA adapter without reloading the model; cached proposals are dropped."""
        self.backend.set_adapter(path, scale)
        self.forget()

    def forget(self) -> None:
        """Drop the cached proposals."""
        with self._cache_lock:
            self._cache.clear()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()

    def __enter__(self) -> Policy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
