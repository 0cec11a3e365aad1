"""`data segments` on several processes writes what one process writes, byte for byte, and
reports the same bad rows with the same line numbers, wherever the byte ranges fall.

The inputs are small, so the size under which one process cuts alone is lowered here; the
workers are real processes (spawned), each cutting its own byte range of the file.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest

from segpilot.cli import main
from segpilot.errors import SegpilotError
from segpilot.segments import Step, Trajectory, build_segments
from segpilot.training import segment_file
from segpilot.training.segment_file import CutJob, CutReport, SegmentWriter, cut_file


@pytest.fixture(autouse=True)
def small_inputs_in_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segment_file, "PARALLEL_MIN_BYTES", 0)


def _goals(n: int, rng: random.Random) -> list[str]:
    return [f"x{rng.randint(0, 9)} : ℕ\n⊢ x{i} ≤ {rng.randint(0, 99)}" for i in range(n)]


def _state(goals: list[str]) -> str:
    return "\n\n".join(goals) if goals else "no goals"


def _rows(rng: random.Random, trajectories: int, *, scatter: bool = False) -> list[bytes]:
    """Lines of a steps file: trajectories of 1-12 steps (one of 150), goal lists or state
    strings, keys of several JSON types, and now and then a bad or a blank line."""
    lines: list[bytes] = []
    keys: list[object] = []
    for t in range(trajectories):
        key: object = rng.choice([f"thm{t}", t, [f"f{t}", t], {"n": t}, f"∀ {t}"])
        keys.append(key)
        n = 150 if t == trajectories // 2 else rng.randint(1, 12)
        goals = rng.randint(1, 3)
        for i in range(n):
            after = max(0, goals + rng.choice([-1, 0, 0, 1])) if i < n - 1 else 0
            row: dict[str, object] = {"theorem": key, "tactic": f"tac{i} ⟨_, _⟩"}
            before_goals, after_goals = _goals(goals, rng), _goals(after, rng)
            if rng.random() < 0.5:
                row |= {"goals_before": before_goals, "goals_after": after_goals}
            else:
                row |= {"state_before": _state(before_goals), "state_after": _state(after_goals)}
            lines.append(json.dumps(row, ensure_ascii=rng.random() < 0.3).encode())
            goals = after or 1
            roll = rng.random()
            if roll < 0.02:
                lines.append(b'{"theorem": "x", "tactic": ')  # not JSON
            elif roll < 0.03:
                lines.append(b'{"theorem": "x", "tactic": "\xff"}')  # not UTF-8
            elif roll < 0.04:
                lines.append(b'{"theorem": "x", "tactic": "\\udc80", "goals_before": []}')
            elif roll < 0.05:
                lines.append(b"")  # a blank line
            elif roll < 0.06:
                lines.append('\ufeff{"theorem": "x"}'.encode())  # a BOM inside the file
    if scatter:
        again = {"theorem": keys[1], "tactic": "late", "goals_before": [], "goals_after": []}
        lines.insert(len(lines) * 3 // 4, json.dumps(again).encode())
    return lines


def _write(path: Path, lines: list[bytes], *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + b"\n")
    return path


def _cut(source: Path, out: Path, workers: int, **job: object) -> tuple[bytes, CutReport]:
    settings: dict[str, object] = {"rule": "change", "max_tactics": 4, "strict": False} | job
    report = cut_file(
        CutJob(source, ("theorem",), **settings),  # type: ignore[arg-type]
        str(out),
        workers=workers,
    )
    return out.read_bytes(), report


@pytest.mark.parametrize("seed", range(4))
def test_every_split_of_the_file_writes_what_one_process_writes(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    source = _write(tmp_path / "steps.jsonl", _rows(rng, 60), bom=seed % 2 == 0)
    alone, alone_report = _cut(source, tmp_path / "one.jsonl", 1)
    assert alone_report.segments > 60 and alone_report.bad
    for workers in (2, 3, 7):
        written, report = _cut(source, tmp_path / f"{workers}.jsonl", workers)
        assert report.workers == workers
        assert written == alone
        assert report.bad == alone_report.bad
        assert (report.steps, report.trajectories, report.segments) == (
            alone_report.steps,
            alone_report.trajectories,
            alone_report.segments,
        )


def test_a_trajectory_longer_than_a_range_is_cut_whole(tmp_path: Path) -> None:
    rng = random.Random(7)
    lines = _rows(rng, 3)
    lines += [
        json.dumps(
            {
                "theorem": "long",
                "tactic": f"t{i}",
                "goals_before": ["⊢ p"] * (1 + i % 3),
                "goals_after": ["⊢ p"] * (1 + (i + 1) % 3),
            }
        ).encode()
        for i in range(400)
    ]
    lines += _rows(rng, 3)
    source = _write(tmp_path / "steps.jsonl", lines)
    for rule in ("change", "whole", "step"):
        alone, _ = _cut(source, tmp_path / "one.jsonl", 1, rule=rule)
        written, report = _cut(source, tmp_path / "six.jsonl", 6, rule=rule)
        assert written == alone
        assert report.workers == 6


def test_rows_of_a_trajectory_apart_read_again_as_one_process_does(tmp_path: Path) -> None:
    source = _write(tmp_path / "steps.jsonl", _rows(random.Random(3), 40, scatter=True))
    alone, alone_report = _cut(source, tmp_path / "one.jsonl", 1)
    written, report = _cut(source, tmp_path / "three.jsonl", 3)
    assert written == alone
    assert report.bad == alone_report.bad
    assert report.workers == 1  # the ranges' keys overlapped: one process read it again
    first = json.loads(alone.splitlines()[0])
    late = [json.loads(line) for line in alone.splitlines() if b'"late"' in line]
    assert late and late[0]["theorem"] != first["theorem"]


def test_strict_names_the_first_bad_line_of_the_file(tmp_path: Path) -> None:
    lines = _rows(random.Random(11), 50)
    source = _write(tmp_path / "steps.jsonl", lines)
    with pytest.raises(SegpilotError) as alone:
        _cut(source, tmp_path / "one.jsonl", 1, strict=True)
    with pytest.raises(SegpilotError) as parallel:
        _cut(source, tmp_path / "four.jsonl", 4, strict=True)
    assert str(parallel.value) == str(alone.value)
    assert str(alone.value).startswith("line ")
    assert not (tmp_path / "four.jsonl").exists()


def test_the_command_takes_workers_and_reports_as_one_process(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path / "steps.jsonl", _rows(random.Random(5), 30))
    outputs = []
    for workers in ("1", "3"):
        out = tmp_path / f"out{workers}.jsonl"
        argv = ["data", "segments", str(source), "--rule", "close", "-o", str(out)]
        assert main([*argv, "--workers", workers]) == 0
        outputs.append((out.read_bytes(), capsys.readouterr().err.replace(out.name, "OUT")))
    assert outputs[0] == outputs[1]
    assert "segments written to" in outputs[0][1]


def test_each_line_is_json_dumps_of_the_group_and_the_segment(tmp_path: Path) -> None:
    """The hand-written encoding is byte for byte `json.dumps(..., ensure_ascii=False)` of
    the group-by fields and `Segment.as_dict()`, awkward strings included."""
    odd = ['say "hi"', "back\\slash", "tab\there", "bell\x07", "∀ x, x ≤ 𝔽", "\u2028 \x7f", ""]
    steps = [
        Step(f"{text} {i}", before, after, f"h : {text}\n⊢ p {i}")
        for i, (text, before, after) in enumerate(
            zip(odd, [1, 2, 2, 1, 3, 2, 1], [2, 2, 1, 3, 2, 1, 0], strict=True)
        )
    ]
    trajectory = Trajectory(('thm "q" ∀', 3), steps)
    for rule in ("step", "change", "whole"):
        job = CutJob(tmp_path / "unused", ("theorem", "n"), rule, 3, False)
        out = io.StringIO()
        written = SegmentWriter(job).write(out, trajectory)
        expected = [
            json.dumps({"theorem": 'thm "q" ∀', "n": 3} | s.as_dict(), ensure_ascii=False)
            for s in build_segments(steps, rule, 3)
        ]
        assert written == len(expected) > 0
        assert out.getvalue() == "".join(line + "\n" for line in expected)
