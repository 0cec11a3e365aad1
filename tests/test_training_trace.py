"""`segpilot trace` against the fake REPL over real pipes: allTactics replies in the real
format, goal lists read from proof states, incremental re-tracing, failed files skipped,
and an output `segpilot data segments` reads."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from conftest import FAKES, PYTHON
from fakes.graphs import file_command, plain_command, sorry_command, tactic_edge, write_graph

from segpilot.cli import main as segpilot_main
from segpilot.training.index import TraceIndex, index_path

FAKE = FAKES / "fake_repl.py"
SWAP = (
    "theorem and_swap (p q : Prop) (hp : p) (hq : q) : q ∧ p := by\n"
    "  constructor\n"
    "  · exact hq\n"
    "  · exact hp\n"
)
HAVE = (
    "namespace Demo\n\n"
    "theorem keep (p q : Prop) (hp : p) (hq : q) : q := by\n"
    "  have h : q := by exact hq\n"
    "  exact h\n\n"
    "end Demo\n"
)
GOAL = "p q : Prop\nhp : p\nhq : q\n⊢ q ∧ p"
LEFT = "case left\np q : Prop\nhp : p\nhq : q\n⊢ q"
RIGHT = "case right\np q : Prop\nhp : p\nhq : q\n⊢ p"
KEEP = "p q : Prop\nhp : p\nhq : q\n⊢ q"
KEEP_H = "p q : Prop\nhp : p\nhq : q\nh : q\n⊢ q"
SORRY_FILE = "theorem later (p : Prop) (hp : p) : p := by\n  sorry\n"
BAD_FILE = "theorem broken : 1 = 2 := by\n  rfl\n"
BAD_ERROR = "The rfl tactic failed."


def graph(tmp_path: Path, swap: str = SWAP) -> Path:
    commands = [
        # Inside `·` Lean lists the focused goal only.
        file_command(swap, [[GOAL], [LEFT], [RIGHT]]),
        file_command(HAVE, [[KEEP], [KEEP], [KEEP_H]]),
        sorry_command(SORRY_FILE, "p : Prop\nhp : p\n⊢ p", all_tactics=True),
        plain_command(BAD_FILE, errors=[BAD_ERROR], all_tactics=True),
    ]
    edges = [
        tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
        tactic_edge([LEFT], "exact hq", []),
        tactic_edge([RIGHT], "exact hp", []),
        tactic_edge([KEEP], "have h : q := by exact hq", [KEEP_H]),
        tactic_edge([KEEP_H], "exact h", []),
    ]
    return write_graph(tmp_path / "graph.json", commands, edges)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "Proj").mkdir(parents=True)
    (root / ".lake" / "packages").mkdir(parents=True)
    (root / "Proj" / "Swap.lean").write_text(SWAP, encoding="utf-8")
    (root / "Proj" / "Keep.lean").write_text(HAVE, encoding="utf-8")
    (root / "Proj" / "Later.lean").write_text(SORRY_FILE, encoding="utf-8")
    (root / "Broken.lean").write_text(BAD_FILE, encoding="utf-8")
    (root / ".lake" / "packages" / "Dep.lean").write_text("-- not ours\n", encoding="utf-8")
    return root


def trace(project: Path, out: Path, graph_path: Path, *extra: str) -> int:
    repl = shlex.join([PYTHON, str(FAKE), str(graph_path)])
    return segpilot_main(["trace", str(project), "-o", str(out), "--repl-command", repl, *extra])


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_carry_goal_lists_from_proof_states(project: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    got = rows(out)
    swap = [r for r in got if r["theorem"] == "and_swap"]
    assert [r["tactic"] for r in swap] == ["constructor", "exact hq", "exact hp"]
    # Two goals after `constructor`: a list of two, as the proof state holds them (the
    # entry's text joins them with single newlines, which cannot be split back).
    assert swap[0]["goals_before"] == [GOAL]
    assert swap[0]["goals_after"] == [LEFT, RIGHT]
    assert swap[1]["goals_before"] == [LEFT] and swap[1]["goals_after"] == []
    assert swap[0]["file"] == "Proj/Swap.lean"
    assert (swap[0]["line"], swap[0]["column"], swap[1]["line"], swap[1]["column"]) == (2, 2, 3, 4)


def test_nested_tactics_stay_inside_their_tactic(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    keep = [r for r in rows(out) if r["theorem"] == "Demo.keep"]
    assert [r["tactic"] for r in keep] == ["have h : q := by exact hq", "exact h"]
    assert keep[0]["goals_after"] == [KEEP_H]


def test_failed_files_are_reported_and_skipped_sorry_proofs_left_out(
    project: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    err = capsys.readouterr().err
    assert f"skipped Broken.lean: 1:0: {BAD_ERROR}" in err
    assert "3 files traced, 0 unchanged, 1 failed" in err
    assert "1 declarations using sorry" in err
    assert {r["file"] for r in rows(out)} == {"Proj/Swap.lean", "Proj/Keep.lean"}
    assert all(".lake" not in r["file"] for r in rows(out))


def test_data_segments_reads_the_trace(project: Path, tmp_path: Path, capsys) -> None:
    out, segs = tmp_path / "traj.jsonl", tmp_path / "segments.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    argv = ["data", "segments", str(out), "--rule", "change", "--group-by", "file,theorem"]
    assert segpilot_main([*argv, "-o", str(segs)]) == 0
    assert "5 rows read, 0 bad rows skipped, 2 trajectories" in capsys.readouterr().err
    by_target = {s["target"]: s for s in rows(segs)}
    assert by_target["constructor"]["n_goals_after"] == 2
    assert by_target["have h : q := by exact hq\nexact h"]["state"] == KEEP


def test_unchanged_files_are_not_traced_again(project: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    first = out.read_text()
    capsys.readouterr()
    # A REPL that knows nothing: any file sent to it would fail.
    empty = write_graph(tmp_path / "empty.json", [])
    assert trace(project, out, empty) == 0
    assert "0 files traced, 4 unchanged, 0 failed" in capsys.readouterr().err
    assert out.read_text() == first
    with TraceIndex(index_path(out)) as index:
        assert {e.path: e.status for e in index.entries()}["Broken.lean"] == "failed"


def test_a_changed_file_alone_is_traced_again(project: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    renamed = SWAP.replace("and_swap", "and_swap'")
    (project / "Proj" / "Swap.lean").write_text(renamed, encoding="utf-8")
    # This REPL knows only the new text: tracing anything else would fail.
    only_new = write_graph(
        tmp_path / "new.json",
        [file_command(renamed, [[GOAL], [LEFT], [RIGHT]])],
        [
            tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
            tactic_edge([LEFT], "exact hq", []),
            tactic_edge([RIGHT], "exact hp", []),
        ],
    )
    capsys.readouterr()
    assert trace(project, out, only_new) == 0
    assert "1 files traced, 3 unchanged, 0 failed" in capsys.readouterr().err
    names = {r["theorem"] for r in rows(out)}
    assert names == {"and_swap'", "Demo.keep"}


def test_files_glob_and_workers(project: Path, tmp_path: Path, capsys) -> None:
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    g = graph(tmp_path)
    assert trace(project, one, g, "--files", "Proj/*.lean") == 0
    assert "3 files traced, 0 unchanged, 0 failed" in capsys.readouterr().err
    assert trace(project, two, g, "--files", "Proj/*.lean", "--workers", "2") == 0
    assert one.read_text() == two.read_text()


def test_missing_project_is_one_line(tmp_path: Path, capsys) -> None:
    assert trace(tmp_path / "nope", tmp_path / "t.jsonl", tmp_path / "g.json") == 1
    assert (
        capsys.readouterr().err.strip()
        == f"segpilot: error: {tmp_path / 'nope'}: no such project folder"
    )


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("Proj/**/*.lean", "Proj/A.lean", True),
        ("Proj/**/*.lean", "Proj/x/y/B.lean", True),
        ("Proj/**/*.lean", "Other/A.lean", False),
        ("*.lean", "A.lean", True),
        ("*.lean", "Proj/A.lean", False),
        ("**/*.lean", "Proj/A.lean", True),
        ("Proj/?.lean", "Proj/A.lean", True),
        (None, "anything.lean", True),
    ],
)
def test_files_glob(pattern, path: str, matches: bool) -> None:
    from segpilot.training.trace import glob_matcher

    assert glob_matcher(pattern)(path) is matches


def test_a_file_that_is_not_utf8_is_reported_and_the_rest_traced(
    project: Path, tmp_path: Path, capsys
) -> None:
    (project / "Proj" / "Latin1.lean").write_bytes("-- caf\xe9\n".encode("latin-1"))
    out = tmp_path / "traj.jsonl"
    assert trace(project, out, graph(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "skipped Proj/Latin1.lean:" in err
    assert {r["theorem"] for r in rows(out)} == {"and_swap", "Demo.keep"}
