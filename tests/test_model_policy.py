"""The policy on a scripted backend: parsing, filtering, ranking, and the proposal cache."""

from __future__ import annotations

import os
import threading

import pytest

from segpilot.errors import SegpilotError
from segpilot.lean.goals import parse_state
from segpilot.model.generation import Generation, Sample
from segpilot.model.policy import Policy, Proposed
from segpilot.model.settings import ModelSettings

STATE = "x y : Nat\n⊢ x + y = y + x"


class ScriptedBackend:
    """Answers each generate call with the next scripted list of (text, logprob, finish)."""

    def __init__(self, *answers: list[tuple[str, float, str]]) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int, tuple[str, ...]]] = []
        self.adapter_key = None

    def generate(self, prompt, k, *, stop=(), cancel=None, **sampling):
        self.calls.append((prompt, k, tuple(stop)))
        self.sampling = sampling
        samples = tuple(Sample(t, 5, lp, f) for t, lp, f in self.answers.pop(0))
        return Generation(samples, 100, 0, 0.01, 0.1)

    def set_adapter(self, path, scale=1.0):
        self.adapter_key = (path, scale)

    def close(self):
        pass


def test_propose_ranks_accepted_candidates_and_records_rejections():
    backend = ScriptedBackend(
        [
            ("omega", -2.0, "eos"),
            ("simp\n#eval IO.println 1", -0.5, "eos"),
            ("rw [Nat.add_comm]", -1.0, "eos"),
            ("The goal is commutativity.", -0.1, "eos"),
            ("rw [Nat.add_comm]", -4.0, "eos"),
        ]
    )
    policy = Policy(ModelSettings(k=5), backend=backend)
    candidates = policy.propose(STATE, include_rejected=True)
    assert [(c.text, c.logprob) for c in candidates] == [
        ("rw [Nat.add_comm]", -1.0),
        ("omega", -2.0),
        ("simp\n#eval IO.println 1", -0.5),
    ]
    assert "#eval" in candidates[-1].rejected_reason
    prompt, k, stop = backend.calls[0]
    assert k == 5 and STATE in prompt and stop == policy.preset.stop
    assert [c.text for c in policy.propose(STATE)] == ["rw [Nat.add_comm]", "omega"]


def test_repeated_state_is_answered_from_the_cache():
    backend = ScriptedBackend([("omega", -1.0, "eos")], [("simp", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    first = policy.propose(STATE)
    assert policy.propose(STATE) == first
    assert len(backend.calls) == 1
    assert [c.text for c in policy.propose(STATE, k=2)] == ["simp"]  # k is part of the key
    assert len(backend.calls) == 2


def test_changing_a_sampling_setting_misses_the_cache_and_reaches_the_backend():
    backend = ScriptedBackend([("omega", -1.0, "eos")], [("simp", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    policy.propose(STATE)
    policy.settings = policy.settings.updated(seed=7, temperature=0.5)
    assert [c.text for c in policy.propose(STATE)] == ["simp"]
    assert backend.sampling == {
        "temperature": 0.5,
        "top_p": 1.0,
        "max_tokens": 64,
        "seed": 7,
        "budget_s": 10.0,
        "grammar": policy.grammar,  # the segment preset decodes tactic-shaped by default
        "prefixes": policy.plan(STATE, k=1).prefixes,  # led by the likeliest tactic name
    }


def test_swapping_the_adapter_empties_the_cache():
    backend = ScriptedBackend([("omega", -1.0, "eos")], [("simp", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    policy.propose(STATE)
    policy.set_adapter("tuned.gguf")
    assert [c.text for c in policy.propose(STATE)] == ["simp"]
    assert len(backend.calls) == 2


def test_interrupted_generation_is_not_cached():
    backend = ScriptedBackend([("omega\n", -1.0, "budget")], [("simp", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    assert [c.text for c in policy.propose(STATE, cancel=threading.Event())] == ["omega"]
    assert [c.text for c in policy.propose(STATE)] == ["simp"]


@pytest.mark.parametrize(
    ("finishes", "reason"),
    [
        (["eos", "budget", "budget"], "budget"),  # the time limit cut two of three short
        (["budget", "budget", "budget"], "budget"),  # ... or all of them
        (["stop", "cancelled", "eos"], "cancelled"),
    ],
)
def test_propose_batch_reports_an_interrupted_call_and_does_not_cache_it(finishes, reason):
    answers = [("omega\n", -1.0, f) for f in finishes]  # a finished line survives the cut
    backend = ScriptedBackend(answers, [("simp", -1.0, "eos")])
    policy = Policy(ModelSettings(k=3), backend=backend)
    proposed = policy.propose_batch(STATE)
    assert proposed.interrupted and not proposed.complete and proposed.reason == reason
    assert [c.text for c in proposed.candidates] == ["omega"] and not proposed.cached
    again = policy.propose_batch(STATE)  # asked the model again: nothing was cached
    assert len(backend.calls) == 2 and [c.text for c in again.candidates] == ["simp"]
    assert not again.interrupted and again.reason == "" and not again.cached


def test_propose_batch_marks_a_complete_call_and_its_cached_repeat():
    backend = ScriptedBackend([("omega", -1.0, "eos"), ("simp", -2.0, "length")])
    policy = Policy(ModelSettings(k=2), backend=backend)
    first = policy.propose_batch(STATE)
    # Both samples cost their tokens (5 each here), the one that did not survive too.
    assert first == Proposed(
        first.candidates, (), interrupted=False, reason="", cached=False, tokens=10
    )
    assert first.complete and [c.text for c in first.candidates] == ["omega"]
    again = policy.propose_batch(STATE)
    assert again.cached and again.candidates == first.candidates and not again.interrupted
    assert len(backend.calls) == 1


def test_a_budget_given_to_one_call_reaches_the_backend():
    backend = ScriptedBackend([("omega", -1.0, "eos")], [("omega", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1, cache_size=0), backend=backend)
    policy.propose_batch(STATE, budget_s=0.25)
    assert backend.sampling["budget_s"] == 0.25
    policy.propose(STATE)
    assert backend.sampling["budget_s"] == policy.settings.budget_s


def test_cache_evicts_the_least_recently_used_state():
    backend = ScriptedBackend(*([("omega", -1.0, "eos")] for _ in range(4)))
    policy = Policy(ModelSettings(k=1, cache_size=2), backend=backend)
    states = [f"n : Nat\n⊢ n + {i} = {i} + n" for i in range(3)]
    policy.propose(states[0])
    policy.propose(states[1])
    policy.propose(states[0])  # now the most recent
    policy.propose(states[2])  # evicts states[1]
    policy.propose(states[0])
    assert len(backend.calls) == 3
    policy.propose(states[1])
    assert len(backend.calls) == 4


def test_text_cut_by_the_token_limit_loses_its_unfinished_line():
    backend = ScriptedBackend([("intro h\nexact Nat.le_tr", -1.0, "length")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    [candidate] = policy.propose(STATE)
    assert candidate.tactics == ("intro h",)


def test_sorry_candidates_are_dropped_and_counted_as_rejected_with_the_reason():
    backend = ScriptedBackend(
        [
            ("sorry", -0.1, "eos"),
            ("omega", -3.0, "eos"),
            ("constructor\n· exact hp\n· admit", -0.2, "eos"),
            ("exact sorry_lemma x y", -4.0, "eos"),  # a name, not a sorry
        ]
    )
    policy = Policy(ModelSettings(k=4), backend=backend)
    proposed = policy.propose_batch(STATE)
    assert [c.text for c in proposed.candidates] == ["omega", "exact sorry_lemma x y"]
    assert [c.text for c in proposed.rejected] == ["sorry", "constructor\n· exact hp\n· admit"]
    assert all(c.uses_sorry and "admits the goal" in c.rejected_reason for c in proposed.rejected)
    assert [c.text for c in policy.propose(STATE)] == ["omega", "exact sorry_lemma x y"]
    everything = policy.propose(STATE, include_rejected=True)
    assert [c.accepted for c in everything] == [True, True, False, False]


def test_user_text_spelling_template_text_is_another_prompt_for_the_cache():
    # Same characters, but the `<|im_end|>` is the template's in one and the user's in the
    # other: they tokenize differently, so neither may answer for the other.
    table = {"template": "{name}<|im_end|>{state}"}
    settings = ModelSettings.from_mapping({"preset": "mine", "presets": {"mine": table}, "k": 1})
    backend = ScriptedBackend([("omega", -1.0, "eos")], [("simp", -1.0, "eos")])
    policy = Policy(settings, backend=backend)
    first = policy.propose("<|im_end|>b", name="a")
    second = policy.propose("b", name="a<|im_end|>")
    assert backend.calls[0][0] == backend.calls[1][0]  # the same text ...
    assert [c.text for c in first] == ["omega"] and [c.text for c in second] == ["simp"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"state": os.fsdecode(b"n : Nat\n\xff \xfe n = n")}, "the goal state .* byte 0xff"),
        ({"state": STATE, "proof_before": "intro h\ud800"}, "proof so far .* U\\+D800"),
        ({"state": STATE, "theorem": "theorem t\udc80 : True := by"}, "theorem .* 0x80"),
    ],
)
def test_text_that_is_not_utf8_is_a_one_line_error(fields, message):
    backend = ScriptedBackend([("omega", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    state = fields.pop("state")
    with pytest.raises(SegpilotError, match=f"{message} at line") as err:
        policy.propose(state, **fields)
    assert "\n" not in str(err.value) and "not valid UTF-8" in str(err.value)
    assert backend.calls == []


def test_goal_state_objects_are_accepted():
    backend = ScriptedBackend([("omega", -1.0, "eos")])
    policy = Policy(ModelSettings(k=1), backend=backend)
    policy.propose(parse_state(STATE))
    assert STATE in backend.calls[0][0]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"k": 33}, "k must be"),
        ({"top_p": 0}, "top_p"),
        ({"temperature": -1}, "temperature"),
        ({"budget_s": 0}, "budget_s"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_settings_are_rejected(setting, message):
    with pytest.raises(SegpilotError, match=message):
        ModelSettings(**setting)


def test_settings_from_a_table_name_unknown_keys_and_wrong_types():
    assert ModelSettings.from_mapping({"k": 8, "temperature": 1}).temperature == 1.0
    with pytest.raises(SegpilotError, match=r"unknown model setting.*tempreature"):
        ModelSettings.from_mapping({"tempreature": 1.0})
    with pytest.raises(SegpilotError, match="k: expected int"):
        ModelSettings.from_mapping({"k": "8"})
    with pytest.raises(SegpilotError, match="expected int"):
        ModelSettings.from_mapping({"k": True})


def test_constrained_policy_hands_the_lexicon_grammar_to_the_backend_and_keys_its_cache():
    answer = [("intro h", -1.0, "eos")]
    backend = ScriptedBackend(answer, answer, answer)
    policy = Policy(ModelSettings(k=1), backend=backend)  # segment preset: constrained
    assert policy.constrained
    policy.propose(STATE)
    assert backend.sampling["grammar"] == policy.grammar
    assert '"intro"' in policy.grammar and "root ::=" in policy.grammar
    policy.propose(STATE)  # cached
    assert len(backend.calls) == 1
    free = Policy(ModelSettings(k=1, constrain="off"), backend=backend)
    free.propose(STATE)
    assert backend.sampling["grammar"] is None


def test_constrain_setting_takes_only_its_choices():
    assert ModelSettings().constrain == "auto"
    assert ModelSettings.from_mapping({"constrain": "off"}).constrain == "off"
    with pytest.raises(SegpilotError, match="constrain"):
        ModelSettings.from_mapping({"constrain": "sometimes"})
