"""`segpilot prove` and `segpilot bench` as a user runs them: the real command, the default
model, Lean checking through the fake REPL's core-logic elaborator (`--elaborate`), real
files written back, reports, plots, Ctrl-C and `--resume`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAKES, FIXTURES, PYTHON
from fakes.graphs import write_graph

from segpilot.textfiles import backup_path

PNG = b"\x89PNG\r\n\x1a\n"
AND = "example (p q : Prop) (hp : p) (hq : q) : p ∧ q := by\n  sorry\n"
TRUE = "example : True := by\n  sorry\n"
SWAP = "example (p q : Prop) : p ∧ q → q ∧ p := by\n  sorry\n"


def repl_command(tmp_path: Path, *extra: str) -> str:
    graph = write_graph(tmp_path / "graph.json", [], [])
    command = [PYTHON, str(FAKES / "fake_repl.py"), str(graph), "--elaborate", *extra]
    return shlex.join([*command, "--unrecorded-tactics", "error"])


def segpilot(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segpilot", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        **options,  # type: ignore[arg-type]
    )


def test_prove_without_lean_says_so_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "A.lean"
    path.write_text(AND, encoding="utf-8")
    done = segpilot("prove", str(path), "--repl-command", "no-such-lean-repl --flag")
    assert done.returncode == 2, done.stderr
    assert "proof search needs Lean" in done.stderr and "elan" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1  # one line
    assert path.read_text(encoding="utf-8") == AND and not backup_path(path).exists()
    none = segpilot("bench", str(FIXTURES / "easy_core" / "easy_core.jsonl"), "--out",
                    str(tmp_path / "out"), "--repl-command", "no-such-lean-repl")  # fmt: skip
    assert none.returncode == 2 and "bench needs Lean" in none.stderr


def test_prove_with_no_sorry_says_so(tmp_path: Path) -> None:
    path = tmp_path / "Done.lean"
    path.write_text("example : True := by\n  trivial\n", encoding="utf-8")
    done = segpilot("prove", str(path))
    assert done.returncode == 0 and "no sorry to search in 1 file(s)" in done.stderr


@pytest.mark.slow
def test_prove_fills_a_folder_writes_back_and_reports(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "And.lean").write_text(AND, encoding="utf-8")
    (src / "Triv.lean").write_text(TRUE, encoding="utf-8")
    report, plot = tmp_path / "report.json", tmp_path / "solved.png"
    done = segpilot(
        "prove", str(src), "--repl-command", repl_command(tmp_path), "--expansions", "4",
        "--report", str(report), "--plot", str(plot), "--budget-s", "600",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(report.read_text(encoding="utf-8"))
    assert [(Path(r["path"]).name, r["status"], r["line"]) for r in rows] == [
        ("And.lean", "proved", 2),
        ("Triv.lean", "proved", 2),
    ]
    for row in rows:
        assert set(row) >= {"theorem", "status", "seconds", "expansions", "lean_calls",
                            "tokens", "proof"}  # fmt: skip
        assert row["proof"] and row["lean_calls"] >= 1 and row["tokens"] >= 1
        path = Path(row["path"])
        text = path.read_text(encoding="utf-8")
        proof = "\n".join("  " + line for line in row["proof"].split("\n"))
        first = AND if path.name == "And.lean" else TRUE
        assert text == first.replace("  sorry\n", proof + "\n")  # only the sorry span
        assert backup_path(path).read_text(encoding="utf-8") == first
    assert plot.read_bytes().startswith(PNG)
    assert "total: 2/2 proved" in done.stdout
    assert "wrote 1 proof(s) to" in done.stderr and "(backup:" in done.stderr


@pytest.mark.slow
def test_prove_dry_run_prints_the_diff_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "Triv.lean"
    path.write_text(TRUE, encoding="utf-8")
    done = segpilot(
        "prove", str(path), "--dry-run", "--diff", "--repl-command", repl_command(tmp_path),
        "--report", "-",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "-  sorry\n+  " in done.stdout and f"--- {path}\n+++ {path}\n" in done.stdout
    assert "would write 1 proof(s)" in done.stderr
    assert path.read_text(encoding="utf-8") == TRUE and not backup_path(path).exists()


@pytest.mark.slow
def test_ctrl_c_stops_the_searches_writes_what_was_found_and_says_so(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name, text in (("A1.lean", TRUE), ("A2.lean", SWAP), ("A3.lean", AND)):
        (src / name).write_text(text, encoding="utf-8")
    # Slow Lean (every reply after 0.5 s): each search takes seconds.
    command = repl_command(tmp_path, "--delay", "0.5")
    process = subprocess.Popen(
        [sys.executable, "-m", "segpilot", "prove", str(src), "--repl-command", command,
         "--budget-s", "600", "--report", str(tmp_path / "r.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's job is
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if any(f": {status} in " in line for status in ("proved", "failed", "budget")):
            break  # the first search has finished
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole job
    _, err = process.communicate(timeout=300)
    err = "".join(seen) + err
    assert process.returncode == 130, err
    assert "stopped by Ctrl-C" in err
    finished = int(err.split("stopped by Ctrl-C: ")[1].split(" of ")[0])
    assert 1 <= finished < 3
    rows = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert len(rows) == finished
    for row in rows:
        written = Path(row["path"]).read_text(encoding="utf-8")
        assert ("sorry" not in written) == (row["status"] == "proved")


def easy_suite(tmp_path: Path, n: int) -> Path:
    rows = (FIXTURES / "easy_core" / "easy_core.jsonl").read_text(encoding="utf-8").splitlines()
    wanted = ("tpil_Tactics_L1104_example", "tpil_Tactics_L1092_example")
    chosen = [r for r in rows if json.loads(r)["name"] in wanted][:n]
    suite = tmp_path / "suite.jsonl"
    suite.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    return suite


@pytest.mark.slow
def test_bench_runs_configurations_writes_results_summary_plot_and_resumes(
    tmp_path: Path,
) -> None:
    suite, out = easy_suite(tmp_path, 2), tmp_path / "out"
    common = ["--out", str(out), "--repl-command", repl_command(tmp_path), "--project",
              str(tmp_path), "--configs", "step,segment+rollout", "--expansions", "2", "-k", "2",
              "--budget-s", "600"]  # fmt: skip
    done = segpilot("bench", str(suite), *common)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text("utf-8").splitlines()]
    assert sorted((r["theorem"], r["config"], r["run"]) for r in rows) == sorted(
        (name, config, 0)
        for name in ("tpil_Tactics_L1104_example", "tpil_Tactics_L1092_example")
        for config in ("step", "segment+rollout")
    )
    assert all(r["status"] in ("proved", "failed", "budget") for r in rows)
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "| `step` |" in summary and "| `segment+rollout` |" in summary
    proved = {c: sum(r["status"] == "proved" for r in rows if r["config"] == c) for c in
              ("step", "segment+rollout")}  # fmt: skip
    for config, n in proved.items():
        line = next(x for x in summary.splitlines() if x.startswith(f"| `{config}` |"))
        assert line.split(" | ")[1].startswith(f"{100.0 * n / 2:.1f} ± 0.0")
    assert (out / "solved.png").read_bytes().startswith(PNG)

    again = segpilot("bench", str(suite), *common, "--resume")
    assert again.returncode == 0 and "0 of 4 jobs to run" in again.stderr
    lines = (out / "results.jsonl").read_text("utf-8").splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    third = segpilot("bench", str(suite), *common, "--resume")
    assert third.returncode == 0 and "1 of 4 jobs to run" in third.stderr
    assert len((out / "results.jsonl").read_text("utf-8").splitlines()) == 4

    clash = segpilot("bench", str(suite), *common)
    assert clash.returncode == 1 and "results.jsonl exists" in clash.stderr


def test_bench_configs_are_checked_before_anything_runs(tmp_path: Path) -> None:
    suite = easy_suite(tmp_path, 1)
    bad = segpilot("bench", str(suite), "--out", str(tmp_path / "o"), "--configs", "step+fast")
    assert bad.returncode == 1 and "expected PRESET, PRESET+rollout" in bad.stderr
    typo = segpilot(
        "bench", str(suite), "--out", str(tmp_path / "o"), "--configs",
        "segment:temperature=hot", "--repl-command", repl_command(tmp_path),
    )  # fmt: skip
    assert typo.returncode == 1 and "temperature" in typo.stderr


def test_budget_flags_and_the_paper_preset_reach_the_settings() -> None:
    import argparse

    from segpilot.commands.search_flags import add_executor_flags, add_search_flags, overrides

    parser = argparse.ArgumentParser()
    add_search_flags(parser)
    add_executor_flags(parser)
    paper = parser.parse_args(["--budget-preset", "paper", "--expansions", "50"])
    model, search = overrides(paper)
    assert model == {"temperature": 1.1}
    assert search == {"wall_s": 1800.0, "expansions": 50, "k": 4}  # the flag wins
    flags = parser.parse_args(
        ["--no-rollout", "--rollout-depth", "2", "--trigger", "change", "--lean-calls", "9",
         "--budget-s", "5", "-k", "3", "--preset", "step", "--seed", "4"]
    )  # fmt: skip
    model, search = overrides(flags)
    assert model == {"preset": "step", "seed": 4}
    assert search == {"rollout": False, "rollout_depth": 2, "trigger": "change",
                      "lean_calls": 9, "wall_s": 5.0, "k": 3}  # fmt: skip
    assert overrides(parser.parse_args([])) == ({}, {})
