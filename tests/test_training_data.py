"""Training data without a model: the split by declaration, stats, length-bucketed batches and
the prompt/target pairs built by the inference preset."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from segpilot.cli import main as segpilot_main
from segpilot.model.presets import get_preset
from segpilot.training.examples import (
    Example,
    Row,
    end_of_block,
    length_batches,
    prompt_and_target,
    split_groups,
)


def write_segments(path: Path, n_decls: int = 40, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for d in range(n_decls):
        for s in range(rng.randint(1, 6)):
            before = rng.randint(1, 3)
            rows.append(
                {
                    "file": f"F{d % 3}.lean",
                    "theorem": f"thm{d}",
                    "start": s,
                    "end": s,
                    "n_goals_before": before,
                    "n_goals_after": max(0, before + rng.choice([-1, 0, 1])),
                    "tactics": ["simp"] * rng.randint(1, 4),
                    "state": f"⊢ goal {d}.{s}",
                    "target": "simp",
                }
            )
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return rows


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_split_never_puts_one_declaration_on_both_sides(tmp_path: Path, seed: int) -> None:
    rows = write_segments(tmp_path / "s.jsonl")
    t, v = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    argv = ["data", "split", str(tmp_path / "s.jsonl"), "--train", str(t), "--valid", str(v)]
    assert segpilot_main([*argv, "--seed", str(seed), "--valid-share", "0.25"]) == 0
    train, valid = read(t), read(v)
    key = lambda r: (r["file"], r["theorem"])  # noqa: E731
    assert {key(r) for r in train}.isdisjoint({key(r) for r in valid})
    assert sorted(map(json.dumps, train + valid)) == sorted(map(json.dumps, rows))
    assert len({key(r) for r in valid}) == 10  # a quarter of 40 declarations


def test_split_is_seeded(tmp_path: Path) -> None:
    write_segments(tmp_path / "s.jsonl")
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        t, v = tmp_path / f"{name}t.jsonl", tmp_path / f"{name}v.jsonl"
        argv = ["data", "split", str(tmp_path / "s.jsonl"), "--train", str(t), "--valid", str(v)]
        assert segpilot_main([*argv, "--seed", str(seed)]) == 0
        outs.append(v.read_text())
    assert outs[0] == outs[1] != outs[2]


def test_split_needs_the_declaration_fields(tmp_path: Path, capsys) -> None:
    write_segments(tmp_path / "s.jsonl")
    argv = ["data", "split", str(tmp_path / "s.jsonl"), "--train", str(tmp_path / "t")]
    assert segpilot_main([*argv, "--valid", str(tmp_path / "v"), "--by", "source"]) == 1
    err = capsys.readouterr().err
    assert "s.jsonl:1: no field 'source' to split by" in err


def test_stats_counts_lengths_and_moves_and_draws_them(tmp_path: Path, capsys) -> None:
    rows = write_segments(tmp_path / "s.jsonl", n_decls=5)
    png = tmp_path / "s.png"
    assert segpilot_main(["data", "stats", str(tmp_path / "s.jsonl"), "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{len(rows)} segments rows in 5 declarations")
    for move in {r["n_goals_after"] - r["n_goals_before"] for r in rows}:
        count = sum(r["n_goals_after"] - r["n_goals_before"] == move for r in rows)
        assert f"{move:+d}: {count}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _examples(lengths: list[int]) -> list[Example]:
    return [Example(tuple(range(n)), 1, str(i)) for i, n in enumerate(lengths)]


def test_length_batches_cover_every_example_once_within_the_token_budget() -> None:
    rng = random.Random(0)
    examples = _examples([rng.randint(10, 200) for _ in range(500)])
    batches = length_batches(examples, 1024, seed=5)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    for batch in batches:
        longest = max(len(examples[i]) for i in batch)
        assert longest * len(batch) <= 1024 or len(batch) == 1
    padded = sum(max(len(examples[i]) for i in b) * len(b) for b in batches)
    real = sum(len(e) for e in examples)
    assert padded / real < 1.1  # little compute goes to padding
    assert length_batches(examples, 1024, seed=5) == batches
    assert length_batches(examples, 1024, seed=6) != batches


def test_held_out_groups_are_a_seeded_share() -> None:
    groups = [f"g{i}" for i in range(50)]
    held = split_groups(groups, 0.2, seed=1)
    assert len(held) == 10 and held == split_groups(groups, 0.2, seed=1)
    assert split_groups(groups, 0.0, seed=1) == set()
    assert split_groups(["only"], 0.5, seed=1) == set()


def test_prompt_is_the_inference_presets_and_the_target_ends_the_block() -> None:
    preset = get_preset("segment")
    row = Row("p : Prop\nhp : p\n⊢ p", "exact hp", "g", 1)
    prompt, target = prompt_and_target(preset, row)
    assert prompt == preset.build_prompt(state=row.state)
    assert target == "exact hp" + end_of_block(preset) == "exact hp\n\n"
    assert get_preset("step").stop == ("\n",)
    assert end_of_block(get_preset("step")) == "\n"


def test_rows_of_a_jsonl_file_skip_blank_lines_and_name_the_bad_one(tmp_path: Path) -> None:
    from segpilot.errors import SegpilotError
    from segpilot.training.examples import object_rows

    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"b": 2}\n', encoding="utf-8")
    assert [(n, row) for n, _, row in object_rows(path)] == [(1, {"a": 1}), (3, {"b": 2})]
    for bad, why in (("[1]\n", "not a JSON object"), ("{oops\n", "not JSON")):
        path.write_text('{"a": 1}\n' + bad, encoding="utf-8")
        with pytest.raises(SegpilotError, match=f"rows.jsonl:2: {why}"):
            list(object_rows(path))
