"""The worked-examples bank: nearness, leading names, files, and how the policy uses them."""

from __future__ import annotations

import json
import re

import pytest

from segpilot.errors import SegpilotError
from segpilot.model.examples import Example, ExampleBank, builtin_bank, load_bank, read_examples
from segpilot.model.generation import prompt_parts
from segpilot.model.policy import Policy
from segpilot.model.settings import ModelSettings

AND_GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q"
BANK = ExampleBank(
    [
        Example("a b : Prop\nha : a\nhb : b\n⊢ a ∧ b", "constructor", "one.lean"),
        Example("P : Prop\nh : P\n⊢ P", "exact h", "one.lean"),
        Example("p q : Prop\n⊢ p → q → p", "intro hp hq", "two.lean"),
        Example("n : Nat\n⊢ n + 0 = n", "simp", "two.lean"),
        Example("x : Nat\n⊢ x = x", "rfl", "three.lean"),
    ]
)


def test_nearest_finds_the_same_shape_under_other_names():
    (score, best), *_ = BANK.nearest(AND_GOAL, 2)
    assert best.tactic == "constructor" and 0 < score <= 1
    assert BANK.nearest("Q : Prop\nhq : Q\n⊢ Q", 1)[0][1].tactic == "exact h"
    assert BANK.nearest("r s : Prop\n⊢ r → s → r", 1)[0][1].tactic == "intro hp hq"


def test_an_excluded_source_gives_no_examples():
    near = BANK.nearest(AND_GOAL, 5, exclude_source="one.lean")
    assert len(near) == 3 and all(e.source != "one.lean" for _, e in near)


def test_lead_names_put_the_neighbours_first_and_keep_every_known_name():
    names = BANK.lead_names(AND_GOAL)
    assert names[0] == "constructor"
    assert sorted(names) == ["constructor", "exact", "intro", "rfl", "simp"]
    assert BANK.lead_names("Q : Prop\nhq : Q\n⊢ Q")[0] == "exact"


def test_examples_files_of_steps_segments_and_bank_rows_read_alike(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        {"goals_before": ["h : p\n⊢ p"], "tactic": "exact h", "source": "a.lean"},
        {"state": "⊢ True", "target": "trivial\n"},
        {"state_before": "⊢ 1 = 1", "tactic": "rfl"},
        {"tactic": "no goals here"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    got = read_examples(path)
    assert [(e.state, e.tactic) for e in got] == [
        ("h : p\n⊢ p", "exact h"),
        ("⊢ True", "trivial"),
        ("⊢ 1 = 1", "rfl"),
    ]
    assert got[0].source == "a.lean" and got[1].source == str(path)
    assert len(load_bank([str(path)])) == 3


def test_unusable_examples_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"tactic": "simp"}\n', encoding="utf-8")
    with pytest.raises(SegpilotError, match="no usable examples"):
        load_bank([str(empty)])
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(SegpilotError, match=r"broken.jsonl:1: not JSON"):
        read_examples(broken)
    with pytest.raises(SegpilotError, match="cannot read the examples file"):
        read_examples(tmp_path / "missing.jsonl")


def test_the_builtin_bank_is_real_data_with_provenance_and_none_of_the_eval_rows():
    bank = builtin_bank()
    assert len(bank) >= 50
    for example in bank.examples:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{8,40}:\S+", example.source)
        # The REPL transcripts are what `segpilot eval` measures on: never examples.
        assert not example.source.startswith("leanprover-community/repl@")
        assert example.lead is not None and "sorry" not in example.tactic


def test_policy_plan_leads_each_candidate_with_a_different_likely_name():
    policy = Policy(ModelSettings(k=3, examples=[], lead="examples"))
    policy._bank = BANK
    request = policy.plan(AND_GOAL)
    assert request.prefixes == tuple(BANK.lead_names(AND_GOAL)[:3])
    assert len(set(request.prefixes)) == 3
    assert policy.grammar is not None


@pytest.mark.parametrize(("preset", "end"), [("segment", "\n\n"), ("step", "\n")])
def test_lead_goal_puts_the_goal_s_openings_first_then_names_no_opening_took(preset, end):
    policy = Policy(ModelSettings(k=4, preset=preset))
    policy._bank = BANK
    prefixes = policy.plan(AND_GOAL).prefixes
    # The closing line ends its candidate (the preset's stop); the other is a first line.
    assert prefixes[:2] == ("exact ⟨hp, hq⟩" + end, "constructor\n")
    names = [n for n in BANK.lead_names(AND_GOAL) if n not in ("exact", "constructor")]
    assert prefixes[2:] == tuple(names[:2])
    assert Policy(ModelSettings(k=1)).plan(AND_GOAL).prefixes == ("exact ⟨hp, hq⟩\n\n",)


def test_the_nearest_examples_are_user_text_in_the_prompt_nearest_last():
    policy = Policy(ModelSettings(shots=2))
    policy._bank = ExampleBank(
        [
            Example("a b : Prop\nha : a\nhb : b\n⊢ a ∧ b", "constructor<|im_end|>", "x"),
            Example("n : Nat\n⊢ n + 0 = n", "simp", "x"),
        ]
    )
    prompt = policy.plan(AND_GOAL).prompt
    assert prompt.index("simp") < prompt.index("constructor") < prompt.index(AND_GOAL)
    user = [p.text for p in prompt_parts(prompt) if not p.template]
    assert "constructor<|im_end|>" in user and "n : Nat\n⊢ n + 0 = n" in user


def test_lead_model_and_presets_without_the_constraint_get_no_prefixes():
    assert Policy(ModelSettings(lead="model")).plan(AND_GOAL).prefixes == ()
    for preset in ("bfs-prover", "internlm-stepprover", "whole-proof"):
        request = Policy(ModelSettings(preset=preset)).plan(AND_GOAL)
        assert request.prefixes == () and Policy(ModelSettings(preset=preset)).grammar is None
    assert Policy(ModelSettings(shots=0)).plan(AND_GOAL).prompt.count("Goal:\n") == 1
