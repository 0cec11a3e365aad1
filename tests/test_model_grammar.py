"""Tactic-shaped decoding: the lexicon grammar, read by llama.cpp's grammar sampler on the real
default model, and the batched sampler constrained by it."""

from __future__ import annotations

import llama_cpp as L
import pytest

from segpilot.errors import SegpilotError
from segpilot.model import lexicon
from segpilot.model.backend import LlamaBackend, on_llama_thread
from segpilot.model.generation import tactic_grammar
from segpilot.model.policy import Policy
from segpilot.model.presets import get_preset
from segpilot.model.settings import ModelSettings

GRAMMAR = tactic_grammar(lexicon.TACTICS)
STATES = (
    "x y : Nat\n⊢ x + y = y + x",
    "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q",
    "a b : Nat\nh : a = b\n⊢ b = a",
    "p : Prop\n⊢ p → p",
)


@pytest.fixture(scope="module")
def backend():
    with LlamaBackend(ModelSettings(max_tokens=16, temperature=1.0, top_p=0.95)) as b:
        yield b


def lexicon_led(text: str) -> bool:
    """Every non-blank line starts with a lexicon tactic."""
    lines = [line for line in text.split("\n") if line.strip()]
    return bool(lines) and all(lexicon.is_tactic_line(line) for line in lines)


def grammar_takes(backend: LlamaBackend, text: str, grammar: str = GRAMMAR) -> bool:
    """Whether the grammar sampler lets the model write `text` token by token."""

    def run() -> bool:
        sampler = L.llama_sampler_clone(backend._grammar(grammar))
        try:
            for token in backend._tokenize_literal(text):
                if not backend._grammar_allows(sampler, token):
                    return False
                L.llama_sampler_accept(sampler, token)
            return True
        finally:
            L.llama_sampler_free(sampler)

    return on_llama_thread(run)


def test_grammar_names_every_lexicon_tactic_once():
    for name in lexicon.TACTICS - {"case", "case'", "next"}:
        assert GRAMMAR.count(f'"{name}"') == 1, name


@pytest.mark.parametrize(
    "text",
    [
        "intro h\nexact h.symm",
        "constructor\n· exact hp\n· exact hq",
        "simp? at h",
        "rw [Nat.add_comm]",
        "rfl",
        "  omega",
        "case left => exact hp",
        "next =>",
        "(simp)",
        "simp\n\n",
    ],
)
def test_grammar_takes_tactic_lines_the_lexicon_reads_as_tactics(backend, text):
    assert grammar_takes(backend, text)
    assert all(lexicon.is_tactic_line(line) for line in text.split("\n") if line.strip())


@pytest.mark.parametrize(
    "text",
    ["introduction", "The goal is", "rw! [h]", "intro h\nthen done", "sorry", "#eval 1", "\n\nx"],
)
def test_grammar_refuses_lines_that_do_not_lead_with_a_lexicon_tactic(backend, text):
    assert not grammar_takes(backend, text)


def test_a_grammar_llama_cpp_cannot_parse_is_a_clear_error(backend):
    prompt = get_preset("segment").build_prompt(state=STATES[0])
    with pytest.raises(SegpilotError, match="could not parse the grammar"):
        backend.generate(prompt, 2, grammar="root ::= (")
    assert backend.generate(prompt, 1, max_tokens=2).samples  # the backend still works


def test_constrained_k_candidates_lead_every_line_with_a_lexicon_tactic(backend):
    preset = get_preset("segment")
    generation = backend.generate(
        preset.build_prompt(state=STATES[1]), 8, stop=preset.stop, grammar=GRAMMAR
    )
    assert len(generation.samples) == 8
    for sample in generation.samples:
        text = sample.text
        if sample.finish == "length":  # cut at max_tokens: the last line may be a name's start
            text = text.rsplit("\n", 1)[0] if "\n" in text else ""
        assert not text or lexicon_led(text), sample.text
        assert sample.logprob < 0 and sample.n_tokens > 0


def test_constrained_generation_is_deterministic_and_unconstrained_is_unchanged(backend):
    preset = get_preset("segment")
    prompt = preset.build_prompt(state=STATES[0])
    texts = [
        [s.text for s in backend.generate(prompt, 4, stop=preset.stop, grammar=g).samples]
        for g in (GRAMMAR, GRAMMAR, None)
    ]
    assert texts[0] == texts[1]
    free = [s.text for s in backend.generate(prompt, 4, stop=preset.stop).samples]
    assert texts[2] == free  # grammar=None is the unconstrained path exactly


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["segment", "step"])
def test_policy_candidates_are_tactic_shaped_on_real_states(backend, preset):
    policy = Policy(ModelSettings(preset=preset, k=8, max_tokens=32), backend=backend)
    assert policy.constrained
    free = Policy(
        ModelSettings(preset=preset, k=8, max_tokens=32, constrain="off"), backend=backend
    )
    for state in STATES:
        proposed = policy.propose_batch(state)
        candidates = [*proposed.candidates, *proposed.rejected]
        assert candidates
        for candidate in candidates:
            assert all(lexicon.is_tactic_line(t.split("\n")[0]) for t in candidate.tactics)
        assert free.propose_batch(state).complete  # the unconstrained path still answers
