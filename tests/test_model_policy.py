"""The policy on a scripted backend: parsing, filtering, ranking, and the proposal cache."""

from __future__ import annotations

import threading

import pytest

from segpilot.errors import SegpilotError
from segpilot.lean.goals import parse_state
from segpilot.model.generation import Generation, Sample
from segpilot.model.policy import Policy
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
        "top_p": 0.95,
        "max_tokens": 64,
        "seed": 7,
        "budget_s": 10.0,
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


def test_sorry_candidates_come_last_and_are_flagged():
    backend = ScriptedBackend([("sorry", -0.1, "eos"), ("omega", -3.0, "eos")])
    policy = Policy(ModelSettings(k=2), backend=backend)
    ranked = policy.propose(STATE)
    assert [c.text for c in ranked] == ["omega", "sorry"]
    assert ranked[1].uses_sorry and not ranked[0].uses_sorry


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
