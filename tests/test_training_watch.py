"""`segpilot watch`'s logic against the fake REPL: a save re-traces that file alone, the
segments follow the trace, training starts once enough new segments came; and saves reach
it through watchdog, debounced into one batch."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path

from conftest import FAKES, PYTHON
from fakes.graphs import file_command, tactic_edge, write_graph
from test_training_trace import GOAL, LEFT, RIGHT, SWAP

from segpilot.engine.settings import load_settings
from segpilot.training.watch import Debounced, Watch

FAKE = FAKES / "fake_repl.py"
EXTRA = SWAP.replace("and_swap", "again")


def settings_for(graph_path: Path, retrain_after: int):
    return load_settings(
        file={},
        overrides={
            "lean": {"repl_command": [PYTHON, str(FAKE), str(graph_path)]},
            "training": {"retrain_after": retrain_after},
        },
    )


def make_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "Swap.lean").write_text(SWAP, encoding="utf-8")
    (root / "Other.lean").write_text("-- nothing to prove\n", encoding="utf-8")
    return root


def test_a_save_retraces_only_that_file_and_retrains_when_enough_came(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    swap_edges = [
        tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
        tactic_edge([LEFT], "exact hq", []),
        tactic_edge([RIGHT], "exact hp", []),
    ]
    base_graph = write_graph(
        tmp_path / "g0.json",
        [
            file_command(SWAP, [[GOAL], [LEFT], [RIGHT]]),
            file_command("-- nothing to prove\n", []),
        ],
        swap_edges,
    )
    trained: list[int] = []
    watch = Watch(
        project,
        tmp_path / "work",
        settings_for(base_graph, retrain_after=4),
        retrain=lambda: trained.append(1),
    )
    first = watch.start()
    assert sorted(first.traced) == ["Other.lean", "Swap.lean"]
    assert watch.pending == 3 and not trained  # constructor | exact hq | exact hp

    # The user adds a proof to Other.lean; this REPL knows only that file's new text, so
    # tracing anything else would fail the run.
    (project / "Other.lean").write_text(EXTRA, encoding="utf-8")
    only_new = write_graph(
        tmp_path / "g1.json", [file_command(EXTRA, [[GOAL], [LEFT], [RIGHT]])], swap_edges
    )
    watch.settings = settings_for(only_new, retrain_after=4)
    step = watch.saved([project / "Other.lean", project / "notes.txt"])
    assert step.files == ["Other.lean"]
    assert step.report.traced == ["Other.lean"] and not step.report.failed
    assert step.new_segments == 3 and step.retrained and trained == [1]
    assert watch.pending == 0
    segments = [json.loads(x) for x in watch.paths.segments.read_text().splitlines()]
    assert sorted({s["theorem"] for s in segments}) == ["again", "and_swap"]


def test_saves_arrive_through_watchdog_as_one_debounced_batch(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    batches: list[set[Path]] = []
    got = threading.Event()

    def handle(paths: set[Path]) -> None:
        batches.append(paths)
        got.set()

    watcher = Debounced(project, 0.3, handle)
    watcher.start()
    try:
        for text in ("-- a\n", "-- ab\n", "-- abc\n"):  # an editor's save: several writes
            (project / "Other.lean").write_text(text, encoding="utf-8")
        (project / "readme.md").write_text("not Lean\n", encoding="utf-8")
        assert got.wait(timeout=20), "no batch came"
    finally:
        watcher.stop()
    assert batches[0] == {project / "Other.lean"}


def test_watch_help_names_the_settings(capsys) -> None:
    from segpilot.cli import main

    try:
        main(["watch", "--help"])
    except SystemExit as done:
        assert done.code == 0
    out = capsys.readouterr().out
    assert "retrain_after" in out and "debounce_s" in out
    assert shlex.split("segpilot watch ~/my-lean-proj")[1] in out


def test_watch_command_retraces_a_saved_file_until_ctrl_c(tmp_path: Path) -> None:
    import os
    import queue
    import signal
    import subprocess

    project = make_project(tmp_path)
    edges = [
        tactic_edge([GOAL], "constructor", [LEFT, RIGHT]),
        tactic_edge([LEFT], "exact hq", []),
        tactic_edge([RIGHT], "exact hp", []),
    ]
    commands = [
        file_command(text, [[GOAL], [LEFT], [RIGHT]] if ":= by" in text else [])
        for text in (SWAP, EXTRA, "-- nothing to prove\n")
    ]
    graph_path = write_graph(tmp_path / "g.json", commands, edges)
    env = dict(os.environ, SEGPILOT_HOME=str(tmp_path / "home"))
    env |= {"SEGPILOT_TRAINING_DEBOUNCE_S": "0.2", "SEGPILOT_TRAINING_RETRAIN_AFTER": "1000"}
    repl = shlex.join([PYTHON, str(FAKE), str(graph_path)])
    argv = [PYTHON, "-m", "segpilot", "watch", str(project), "--workdir", str(tmp_path / "w")]
    proc = subprocess.Popen(
        [*argv, "--repl-command", repl], env=env, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()

    def wait_for(text: str) -> str:
        seen = []
        while True:
            line = lines.get(timeout=60)
            seen.append(line)
            if text in line:
                return line
            assert proc.poll() is None, "".join(seen)

    try:
        assert "2 files traced, 0 unchanged" in wait_for("files traced")
        wait_for("watching")
        (project / "Other.lean").write_text(EXTRA, encoding="utf-8")
        line = wait_for("traced Other.lean")
        assert "3 new segments" in line and "6 pending" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
