"""`segpilot eval`: its measures on a tiny hand-made file with known answers."""

from __future__ import annotations

import json

import pytest

from segpilot.engine import evaluate as ev

ROWS = [
    {"source": "a", "tactic": "intro h\nexact h", "goals_before": ["⊢ p → p"], "goals_after": []},
    {"source": "a", "tactic": "simp", "goals_before": ["⊢ x = x"], "goals_after": []},
    {"source": "b", "state": "⊢ q", "target": "exact hq", "tactics": ["exact hq"]},
]
SCRIPT = {
    "⊢ p → p": (["intro h\nexact h", "intro x", "the proof"], ["intro x", "intro h\nexact h"]),
    "⊢ x = x": (["simp [h", "rfl"], ["rfl"]),
    "⊢ q": (["exact  hq", "ice"], ["exact  hq"]),
}


def _items(tmp_path):
    path = tmp_path / "steps.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    items, bad = ev.read_items(path.read_bytes().splitlines(), str(path))
    assert bad == [] and len(items) == 3
    return items


def _scripted(state, source):
    return SCRIPT[state]


def test_metrics_on_known_answers(tmp_path):
    ticks = iter(range(100))
    report = ev.evaluate(_items(tmp_path), _scripted, k=3, clock=lambda: float(next(ticks)))
    overall = report.as_dict()["overall"]
    assert overall["states"] == 3
    assert overall["well_formed"] == pytest.approx(4 / 7)  # 2 + 1 + 1 of 7 samples
    assert overall["name_at_k"] == pytest.approx(2 / 3)  # intro, exact; not simp
    assert overall["first_at_k"] == pytest.approx(2 / 3)
    assert overall["segment_at_k"] == pytest.approx(2 / 3)
    # The best-ranked alone: `intro x` has the right name, not the right line.
    assert overall["name_at_1"] == pytest.approx(2 / 3)
    assert overall["first_at_1"] == pytest.approx(1 / 3)
    assert overall["distinct"] == pytest.approx(4 / 3)
    assert overall["seconds"] == pytest.approx(1.0)
    by = report.as_dict()["by_source"]
    assert by["a"]["states"] == 2 and by["a"]["name_at_k"] == 0.5
    assert by["b"]["segment_at_k"] == 1.0


def test_compare_prints_one_column_per_configuration(tmp_path):
    items = _items(tmp_path)
    reports = [ev.evaluate(items, _scripted, config=name, k=3) for name in ("preset=step", "x=y")]
    text = ev.format_reports(reports)
    header = next(line for line in text.split("\n") if "preset=step" in line)
    assert header.split() == ["preset=step", "x=y"]
    assert "name@k" in text and "66.7%" in text


def test_compare_syntax():
    assert ev.parse_config("adapter=a.gguf,preset=step") == (
        "adapter=a.gguf,preset=step",
        {"adapter_path": "a.gguf", "preset": "step"},
    )
    assert ev.parse_config("ranking=total,lead=goal")[1] == {"ranking": "total", "lead": "goal"}
    with pytest.raises(Exception, match="KEY=VALUE"):
        ev.parse_config("colour=blue")


@pytest.mark.slow
def test_real_model_run(shared_data, capsys):
    from segpilot.cli import main

    steps = shared_data / "trajectories" / "repl_transcript_steps.jsonl"
    assert main(["eval", str(steps), "--limit", "2", "-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result[0]["overall"]["states"] == 2
