"""What one generation call returns: k samples and what they cost."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    """One generated continuation: its text (cut before any stop string), tokens, score
    (summed log-probability) and why it ended: eos, stop, length, budget or cancelled."""

    text: str
    n_tokens: int
    logprob: float
    finish: str


@dataclass(frozen=True)
class Generation:
    """The k samples of one call and what it cost: prompt and decode time, the CPU threads
    it ran on, and each decode step's batch size and time."""

    samples: tuple[Sample, ...]
    n_prompt_tokens: int
    n_prompt_reused: int
    prompt_s: float
    decode_s: float
    n_threads: int = 0
    steps: tuple[tuple[int, float], ...] = ()  # (live sequences, seconds) per llama_decode

    @property
    def n_generated(self) -> int:
        return sum(s.n_tokens for s in self.samples)
