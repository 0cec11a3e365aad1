"""`data segments` on large inputs: goals counted without building hypothesis objects where
the count is all that is needed, and trajectories streamed when their rows are together."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import FIXTURES

from segpilot.cli import main as segpilot_main
from segpilot.lean.goals import GoalParseError, parse_state
from segpilot.segments import NotContiguous, Trajectory, count_goals, read_trajectories

CASES = [
    "",
    "no goals",
    "⊢ True",
    "x y : Nat\n⊢ x + y = y + x",
    "case left\np q : Prop\nhp : p\n⊢ q\n\ncase right\np q : Prop\nhp : p\n⊢ p",
    "h : a = b\n  ∧ c\n⊢ b = a",
    "this :\n  a very long type\n⊢ x",
    "2 goals\n⊢ p\n\n⊢ q",
    "unsolved goals\n⊢ p",
    "x : Nat\n| x + 0",
    "hp : p\nnot a hypothesis\n⊢ p",
    "not a hypothesis\n⊢ p",
    "x : Nat",
    "⊢ p\n\n  continued\n\n⊢ q",
    "⊢\n\n⊢ q",
    "h : p := v\n⊢ q",
    ": p\n⊢ q",
]


def real_states() -> list[str]:
    states = []
    for path in sorted((FIXTURES / "trajectories").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            for key in ("goals_before", "goals_after"):
                if isinstance(row.get(key), list):
                    states.append("\n\n".join(row[key]) or "no goals")
            for key in ("state_before", "state_after", "printed_before", "printed_after"):
                if isinstance(row.get(key), str):
                    states.append(row[key])
    return states


def _slow(text: str) -> int | None:
    try:
        return parse_state(text).n_goals
    except GoalParseError:
        return None


@pytest.mark.parametrize("text", CASES)
def test_fast_count_agrees_with_the_parser_or_leaves_it_to_the_parser(text: str) -> None:
    fast = count_goals(text)
    assert fast is None or fast == _slow(text)


def test_fast_count_agrees_on_real_states_and_their_mutations() -> None:
    states = real_states()
    assert len(states) > 50
    counted = sum(count_goals(s) is not None for s in states)
    assert counted > len(states) // 2, "the fast path covers the usual shape"
    rng = random.Random(0)
    for state in states:
        assert count_goals(state) in (None, _slow(state))
        for _ in range(20):
            cut = list(state)
            for _ in range(rng.randint(1, 3)):
                if cut:
                    at = rng.randrange(len(cut))
                    op = rng.random()
                    if op < 0.4:
                        del cut[at]
                    elif op < 0.7:
                        cut.insert(at, rng.choice(["\n", "\n\n", " ", ":", "⊢", "|", " : "]))
                    else:
                        cut[at] = rng.choice(["\n", " ", "⊢", "x"])
            text = "".join(cut)
            fast = count_goals(text)
            assert fast is None or fast == _slow(text), text


def rows(n_traj: int, steps: int) -> list[str]:
    out = []
    for t in range(n_traj):
        for s in range(steps):
            goals = [f"⊢ g{t}.{s}"] * (1 + s % 2)
            after = [f"⊢ g{t}.{s + 1}"] * (1 + (s + 1) % 2) if s + 1 < steps else []
            out.append(
                json.dumps(
                    {
                        "theorem": f"t{t}",
                        "tactic": "simp",
                        "goals_before": goals,
                        "goals_after": after,
                    }
                )
            )
    return out


def test_streaming_yields_each_trajectory_before_reading_on() -> None:
    lines = rows(50, 4)
    read = 0

    def counting():
        nonlocal read
        for line in lines:
            read += 1
            yield line

    seen = []
    for item in read_trajectories(counting(), ["theorem"], streaming=True):
        assert isinstance(item, Trajectory)
        seen.append(read)
    assert seen[0] <= 5, "the first trajectory came out after its own rows (and one more)"
    assert len(seen) == 50
    grouped = list(read_trajectories(lines, ["theorem"]))
    streamed = list(read_trajectories(lines, ["theorem"], streaming=True))
    assert streamed == grouped


def test_streaming_refuses_scattered_rows() -> None:
    lines = rows(2, 2)
    scattered = [lines[0], lines[2], lines[1], lines[3]]
    with pytest.raises(NotContiguous):
        list(read_trajectories(scattered, ["theorem"], streaming=True))


def test_scattered_input_still_comes_out_as_before(tmp_path: Path, capsys) -> None:
    lines = rows(5, 3)
    random.Random(1).shuffle(lines)
    src = tmp_path / "s.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert segpilot_main(["data", "segments", str(src), "--rule", "step", "-o", str(out)]) == 0
    capsys.readouterr()
    assert segpilot_main(["data", "segments", str(src), "--rule", "step", "-o", "-"]) == 0
    assert out.read_text() == capsys.readouterr().out


def test_rows_are_written_exactly_as_json_dumps_writes_them(tmp_path: Path) -> None:
    from segpilot.segments import build_segments

    values = [('t"1\n', 7), (["a", 1], {"k": None}), (True, 1.5), ("ℕ ⊢ ✝", "😀")]
    lines = []
    for i, (a, b) in enumerate(values):
        for s in range(3):
            goals = ['x : ℕ\n⊢ "q"\\ ' + str(s)]
            after = goals if s < 2 else []
            lines.append(
                json.dumps(
                    {
                        "a": a,
                        "b": b,
                        "tactic": f"simp [h{i}]\n  <;> rfl",
                        "goals_before": goals,
                        "goals_after": after,
                    },
                    ensure_ascii=False,
                )
            )
    src, out = tmp_path / "s.jsonl", tmp_path / "o.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert (
        segpilot_main(
            ["data", "segments", str(src), "--rule", "step", "--group-by", "a,b", "-o", str(out)]
        )
        == 0
    )
    expected = []
    for item in read_trajectories(lines, ["a", "b"]):
        fields = {"a": item.key[0], "b": item.key[1]}
        expected += [
            json.dumps(fields | s.as_dict(), ensure_ascii=False)
            for s in build_segments(item.steps, "step")
        ]
    assert out.read_text(encoding="utf-8").splitlines() == expected
