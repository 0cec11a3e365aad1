"""`segpilot data segments` as a user runs it: a subprocess on the real trajectory files."""

from __future__ import annotations

import errno
import json
import os
import select
import stat
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import FIXTURES, PYTHON

from segpilot.cli import main

TRAJECTORIES = FIXTURES / "trajectories"
REPL_STEPS = TRAJECTORIES / "repl_transcript_steps.jsonl"
PANTOGRAPH_STEPS = TRAJECTORIES / "pantograph_doc_invocations.jsonl"


def segpilot(*args: object, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "segpilot", *map(str, args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
        **kwargs,
    )


def segments(*args: object) -> subprocess.CompletedProcess[str]:
    return segpilot("data", "segments", *args)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def step(theorem: object, tactic: str, before: int, after: int) -> dict:
    return {
        "theorem": theorem,
        "tactic": tactic,
        "goals_before": [f"h : p\n⊢ g{i}" for i in range(before)],
        "goals_after": [f"h : p\n⊢ g{i}" for i in range(after)],
    }


def write_rows(path: Path, rows: list[object]) -> Path:
    text = "".join(
        (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_pantograph_close_segments_are_written_exactly(tmp_path):
    out = tmp_path / "segments.jsonl"
    result = segments(PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "--output", out)
    assert result.returncode == 0, result.stderr
    case_inr = "case inr\np q : Prop\nh✝ : q\n⊢ q ∨ p"
    assert jsonl(out) == [
        {
            "unit": 0,
            "start": 0,
            "end": 0,
            "n_goals_before": 1,
            "n_goals_after": 0,
            "tactics": ["aesop"],
            "state": "α : Sort ?u.7\n⊢ α → α",
            "target": "aesop",
        },
        {
            "unit": 1,
            "start": 0,
            "end": 3,
            "n_goals_before": 1,
            "n_goals_after": 0,
            "tactics": ["intro p q h", "cases h", "apply Or.inr", "assumption"],
            "state": "⊢ ∀ (p q : Prop), p ∨ q → q ∨ p",
            "target": "intro p q h\ncases h\napply Or.inr\nassumption",
        },
        {
            "unit": 1,
            "start": 4,
            "end": 5,
            "n_goals_before": 1,
            "n_goals_after": 0,
            "tactics": ["apply Or.inl", "assumption"],
            "state": case_inr,
            "target": "apply Or.inl\nassumption",
        },
    ]
    assert "7 rows read, 0 bad rows skipped, 2 trajectories, 3 segments written" in result.stderr


def test_repl_transcripts_report_null_goal_rows_and_keep_the_rest(tmp_path):
    out = tmp_path / "segments.jsonl"
    result = segments(REPL_STEPS, "--rule", "change", "--group-by", "transcript", "-o", out)
    assert result.returncode == 0, result.stderr
    rows = jsonl(REPL_STEPS)
    null_lines = [
        n for n, r in enumerate(rows, 1) if r["goals_before"] is None or r["goals_after"] is None
    ]
    for n in null_lines:
        assert f"line {n}: goals_" in result.stderr
    written = jsonl(out)
    good_transcripts = list(
        dict.fromkeys(r["transcript"] for n, r in enumerate(rows, 1) if n not in null_lines)
    )
    assert list(dict.fromkeys(r["transcript"] for r in written)) == good_transcripts
    assert (
        f"{len(rows)} rows read, {len(null_lines)} bad rows skipped, "
        f"{len(good_transcripts)} trajectories, {len(written)} segments written to {out} "
        "(rule change, at most 8 tactics)"
    ) in result.stderr
    branching = [r for r in written if r["transcript"] == "core/proof_branching"]
    assert [(r["start"], r["end"]) for r in branching] == [(0, 0), (1, 1), (2, 3)]
    assert branching[2]["tactics"] == ["apply h2", "exact h1.right"]
    assert branching[1]["state"] == (
        "case left\np q r : Prop\nh1 : p ∧ q\nh2 : q → r\n⊢ p\n\n"
        "case right\np q r : Prop\nh1 : p ∧ q\nh2 : q → r\n⊢ r"
    )
    assert list(branching[0]) == [
        "transcript",
        "start",
        "end",
        "n_goals_before",
        "n_goals_after",
        "tactics",
        "state",
        "target",
    ]


@pytest.mark.parametrize("rule", ["change", "close", "step", "whole"])
def test_output_dash_writes_the_same_rows_to_stdout(tmp_path, rule):
    out = tmp_path / "segments.jsonl"
    to_file = segments(REPL_STEPS, "--rule", rule, "--group-by", "transcript", "-o", out)
    to_stdout = segments(REPL_STEPS, "--rule", rule, "--group-by", "transcript", "-o", "-")
    assert to_file.returncode == to_stdout.returncode == 0
    assert to_stdout.stdout == out.read_text(encoding="utf-8")
    assert "segments written to stdout" in to_stdout.stderr


def test_state_strings_and_several_group_by_fields(tmp_path):
    rows = [
        {"file": "A.lean", "theorem": 7, "tactic": "constructor",
         "state_before": "⊢ p ∧ q", "state_after": "case left\n⊢ p\n\ncase right\n⊢ q"},
        {"file": "B.lean", "theorem": 7, "tactic": "rfl",
         "state_before": "⊢ 1 = 1", "state_after": "no goals"},
        {"file": "A.lean", "theorem": 7, "tactic": "exact hp",
         "state_before": "2 goals\ncase left\n⊢ p\n\ncase right\n⊢ q",
         "state_after": "case right\n⊢ q"},
    ]  # fmt: skip
    source = write_rows(tmp_path / "steps.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = segments(source, "--rule", "step", "--group-by", "file,theorem", "-o", out)
    assert result.returncode == 0, result.stderr
    written = jsonl(out)
    assert [(r["file"], r["theorem"], r["start"]) for r in written] == [
        ("A.lean", 7, 0),
        ("A.lean", 7, 1),
        ("B.lean", 7, 0),
    ]
    assert written[1]["state"] == "2 goals\ncase left\n⊢ p\n\ncase right\n⊢ q"
    assert [(r["n_goals_before"], r["n_goals_after"]) for r in written] == [(1, 2), (2, 1), (1, 0)]


def test_max_tactics_caps_segments_except_whole(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", f"t{i}", 1, 1) for i in range(5)])
    out = tmp_path / "out.jsonl"
    assert segments(source, "--rule", "close", "--max-tactics", "2", "-o", out).returncode == 0
    assert [r["tactics"] for r in jsonl(out)] == [["t0", "t1"], ["t2", "t3"], ["t4"]]
    assert segments(source, "--rule", "whole", "--max-tactics", "2", "-o", out).returncode == 0
    assert [r["target"] for r in jsonl(out)] == ["t0\nt1\nt2\nt3\nt4"]


def test_strict_fails_on_the_first_bad_row_and_leaves_the_target_alone(tmp_path):
    out = tmp_path / "segments.jsonl"
    out.write_text("previous contents\n", encoding="utf-8")
    result = segments(
        REPL_STEPS, "--rule", "change", "--group-by", "transcript", "--strict", "-o", out
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "segpilot: error: line 9: goals_after is null (without --strict, bad rows are skipped)"
    ]
    assert out.read_text(encoding="utf-8") == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments.jsonl"]


def test_strict_writes_nothing_to_stdout(tmp_path):
    result = segments(
        REPL_STEPS, "--rule", "change", "--group-by", "transcript", "--strict", "-o", "-"
    )
    assert result.returncode == 1
    assert result.stdout == ""


def test_strict_passes_a_clean_file(tmp_path):
    out = tmp_path / "segments.jsonl"
    result = segments(
        PANTOGRAPH_STEPS, "--rule", "step", "--group-by", "unit", "--strict", "-o", out
    )
    assert result.returncode == 0, result.stderr
    assert len(jsonl(out)) == 7


def test_successful_run_replaces_the_target_and_leaves_no_temporary_file(tmp_path):
    out = tmp_path / "segments.jsonl"
    out.write_text("stale\n", encoding="utf-8")
    result = segments(PANTOGRAPH_STEPS, "--rule", "whole", "--group-by", "unit", "-o", out)
    assert result.returncode == 0
    assert [r["unit"] for r in jsonl(out)] == [0, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments.jsonl"]
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_output_may_not_be_the_input(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
    before = source.read_bytes()
    result = segments(source, "--rule", "change", "-o", source)
    assert result.returncode == 1
    assert "is the input file" in result.stderr
    assert source.read_bytes() == before


def test_bad_rows_of_every_kind_are_listed_with_line_numbers(tmp_path):
    source = tmp_path / "steps.jsonl"
    lines = [
        json.dumps(step("t", "intro h", 1, 1)).encode(),
        b"",
        b"this is not json",
        json.dumps({"tactic": "rfl", "goals_before": [], "goals_after": []}).encode(),
        b'{"theorem": "t", "tactic": "\xff\xfe", "goals_before": [], "goals_after": []}',
        json.dumps(step("t", "exact h", 1, 0)).encode(),
    ]
    source.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out.jsonl"
    result = segments(source, "--rule", "whole", "-o", out)
    assert result.returncode == 0
    assert "segpilot: skipped line 3: not JSON" in result.stderr
    assert "segpilot: skipped line 4: missing group-by field 'theorem'" in result.stderr
    assert "segpilot: skipped line 5: not UTF-8 text" in result.stderr
    assert "5 rows read, 3 bad rows skipped, 1 trajectories, 1 segments" in result.stderr
    assert jsonl(out)[0]["tactics"] == ["intro h", "exact h"]


def test_many_bad_rows_are_counted_and_all_go_to_the_bad_rows_file(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)] + ["{"] * 25)
    report = tmp_path / "bad.jsonl"
    result = segments(
        source, "--rule", "change", "-o", tmp_path / "out.jsonl", "--bad-rows", report
    )
    assert result.returncode == 0
    assert result.stderr.count("segpilot: skipped line") == 20
    assert f"... and 5 more bad rows (listed in {report})" in result.stderr
    assert [r["line"] for r in jsonl(report)] == list(range(2, 27))
    assert all(r["reason"].startswith("not JSON") for r in jsonl(report))


def test_a_file_of_only_bad_rows_says_what_to_check(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
    result = segments(source, "--rule", "change", "--group-by", "name", "-o", tmp_path / "o.jsonl")
    assert result.returncode == 0
    assert "line 1: missing group-by field 'name'" in result.stderr
    assert "no usable rows: check --group-by" in result.stderr
    assert (tmp_path / "o.jsonl").read_text(encoding="utf-8") == ""


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--rule", "greedy"], 2, "invalid choice: 'greedy'"),
        (["--rule", "change", "--max-tactics", "0"], 2, "must be at least 1"),
        (["--rule", "change", "--group-by", "theorem,start"], 1, "'start' would clash"),
        (["--rule", "change", "--group-by", "a,,b"], 1, "empty field name"),
        (["--rule", "change", "--group-by", "a,a"], 1, "names a field twice"),
        (["--rule", "change", "--bad-rows", "-"], 1, "--bad-rows needs a file of its own"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, args, code, message):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
    result = segments(source, *args, "-o", tmp_path / "out.jsonl")
    assert result.returncode == code
    assert message in result.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_input_and_missing_output_folder_are_one_line_errors(tmp_path):
    missing = segments(tmp_path / "nope.jsonl", "--rule", "change", "-o", tmp_path / "o.jsonl")
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"segpilot: error: no such file: {tmp_path / 'nope.jsonl'}"
    no_folder = segments(PANTOGRAPH_STEPS, "--rule", "change", "-o", tmp_path / "x" / "o.jsonl")
    assert no_folder.returncode == 1
    assert "no folder" in no_folder.stderr


def test_help_explains_the_rules_and_ends_with_examples():
    result = segpilot("data", "segments", "--help")
    assert result.returncode == 0
    for rule in ("change", "close", "step", "whole"):
        assert f"\n  {rule} " in result.stdout
    assert "\nexamples:\n  segpilot data segments " in result.stdout
    assert segpilot("data", "--help").stdout.count("examples:") == 1


def test_data_without_a_command_shows_its_help():
    result = segpilot("data")
    assert result.returncode == 2
    assert "segments" in result.stderr


def test_progress_bar_on_a_terminal_for_large_input(tmp_path):
    pty = pytest.importorskip("pty", reason="needs POSIX pseudo-terminals")
    fcntl, termios = pytest.importorskip("fcntl"), pytest.importorskip("termios")
    # Rows padded to make the file large; the padding field is ignored by the reader.
    rows = [step("t", f"t{i}", 1, 1) | {"padding": "x" * 100_000} for i in range(90)]
    source = write_rows(tmp_path / "steps.jsonl", rows)
    controller, terminal = pty.openpty()
    # A fresh pseudo-terminal is 0 columns wide; give it a real terminal's size.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        process = subprocess.Popen(
            [PYTHON, "-m", "segpilot", "data", "segments", str(source), "--rule", "change", "-o",
             str(tmp_path / "out.jsonl")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )  # fmt: skip
        os.close(terminal)
        shown = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(controller, 4096)
                except OSError:  # the terminal closes when the process exits
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
        assert process.wait(timeout=60) == 0
    finally:
        os.close(controller)
    text = shown.decode("utf-8", "replace")
    assert "reading: 100%" in text
    assert "90 rows read" in text


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path):
    rows = [step("t", f"t{i}", 1, 1) | {"padding": "x" * 100_000} for i in range(90)]
    source = write_rows(tmp_path / "steps.jsonl", rows)
    result = segments(source, "--rule", "change", "-o", tmp_path / "out.jsonl")
    assert result.returncode == 0
    assert "reading" not in result.stderr


# --- where the output goes: devices, FIFOs, links, read-only and full disks ------------------


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def many_steps(tmp_path: Path, n: int = 300) -> Path:
    return write_rows(tmp_path / "steps.jsonl", [step("t", f"t{i}", 1, 1) for i in range(n)])


def test_dev_null_as_output_stays_a_device(system_devices):
    result = segments(PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "-o", "/dev/null")
    assert result.returncode == 0, result.stderr
    assert "3 segments written to /dev/null" in result.stderr
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_a_fifo_as_output_is_written_in_place(tmp_path):
    expected = tmp_path / "file.jsonl"
    assert segments(PANTOGRAPH_STEPS, "--rule", "step", "--group-by", "unit", "-o", expected)
    fifo = tmp_path / "segments.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as fh:
            got.append(fh.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    result = segments(PANTOGRAPH_STEPS, "--rule", "step", "--group-by", "unit", "-o", fifo)
    reader.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert got == [expected.read_bytes()]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dev_full_as_output_is_a_one_line_error(system_devices):
    result = segments(PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "-o", "/dev/full")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "segpilot: error: cannot write /dev/full: No space left on device "
        "(free some disk space and run again)"
    ]
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_dev_stdout_as_output(system_devices):
    result = segments(
        PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "-o", "/dev/stdout"
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_disk_full_while_writing_keeps_the_old_output(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out" / "segments.jsonl"
    out.parent.mkdir()
    out.write_bytes(b"previous contents\n")
    real_write = os.write

    def full_disk(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out.parent.resolve())):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk)
    code = main(["data", "segments", str(many_steps(tmp_path)), "--rule", "step", "-o", str(out)])
    monkeypatch.undo()
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"segpilot: error: cannot write {out}: No space left on device "
        f"(free some disk space and run again; {out} is unchanged)"
    ]
    assert out.read_bytes() == b"previous contents\n"
    assert names(out.parent) == ["segments.jsonl"]


def test_a_file_size_limit_is_a_one_line_error_and_keeps_the_old_output(tmp_path):
    out = tmp_path / "out" / "segments.jsonl"
    out.parent.mkdir()
    out.write_bytes(b"previous contents\n")
    source = many_steps(tmp_path)
    # `ulimit -f 4` for this run only; SIGXFSZ ignored, so writing past it fails with EFBIG.
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from segpilot.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", script, "data", "segments", str(source), "--rule", "step", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"segpilot: error: cannot write {out}: File too large (the file system or the "
        f"shell's file-size limit (ulimit -f) caps its size; {out} is unchanged)"
    ]
    assert out.read_bytes() == b"previous contents\n"
    assert names(out.parent) == ["segments.jsonl"]


def test_a_read_only_output_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "segments.jsonl"
    out.write_bytes(b"keep me\n")
    out.chmod(0o444)
    result = segments(PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "-o", out)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"segpilot: error: {out} is read-only; not replacing it "
        f"(make it writable (chmod u+w {out}) or choose another file)"
    ]
    assert out.read_bytes() == b"keep me\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o444
    assert names(tmp_path) == ["segments.jsonl"]


def test_a_read_only_bad_rows_file_is_refused_before_any_output(tmp_path):
    report = tmp_path / "bad.jsonl"
    report.write_bytes(b"old report\n")
    report.chmod(0o444)
    out = tmp_path / "segments.jsonl"
    result = segments(REPL_STEPS, "--rule", "change", "--group-by", "transcript", "-o", out,
                      "--bad-rows", report)  # fmt: skip
    assert result.returncode == 1
    assert f"{report} is read-only" in result.stderr
    assert not out.exists()
    assert report.read_bytes() == b"old report\n"


def test_a_symlinked_output_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "2024.jsonl"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(target)
    result = segments(PANTOGRAPH_STEPS, "--rule", "close", "--group-by", "unit", "-o", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert [r["unit"] for r in jsonl(target)] == [0, 1, 1]
    assert names(tmp_path / "runs") == ["2024.jsonl"]


def test_a_symlink_to_the_input_is_the_input(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
    link = tmp_path / "out.jsonl"
    link.symlink_to(source)
    before = source.read_bytes()
    result = segments(source, "--rule", "change", "-o", link)
    assert result.returncode == 1
    assert "is the input file" in result.stderr
    assert source.read_bytes() == before


# --- what the input is: directories, unreadable files, FIFOs, text that is not UTF-8 ---------


def test_a_directory_as_input_says_so(tmp_path):
    result = segments(tmp_path, "--rule", "change", "-o", tmp_path / "o.jsonl")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"segpilot: error: {tmp_path} is a directory, not a file"]
    assert names(tmp_path) == []


def test_an_unreadable_input_is_a_one_line_error(tmp_path):
    if os.geteuid() != 0:
        source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
        source.chmod(0)
    else:  # root reads mode-000 files; the kernel refuses it this write-only setting
        source = Path("/proc/sys/vm/drop_caches")
        try:
            source.open("rb").close()
            pytest.skip("no file here that root may not read")
        except PermissionError:
            pass
    result = segments(source, "--rule", "change", "-o", tmp_path / "o.jsonl")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"segpilot: error: cannot read {source}: permission denied (check its permissions)"
    ]
    assert not (tmp_path / "o.jsonl").exists()


def test_a_read_error_midway_is_a_one_line_error_and_writes_nothing(tmp_path):
    # Reading a process's own memory from address 0 fails with EIO: a real read error.
    out = tmp_path / "o.jsonl"
    result = segments("/proc/self/mem", "--rule", "change", "-o", out)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "segpilot: error: cannot read /proc/self/mem: Input/output error"
    ]
    assert names(tmp_path) == []


def test_a_fifo_as_input(tmp_path):
    fifo = tmp_path / "steps.fifo"
    os.mkfifo(fifo)
    rows = PANTOGRAPH_STEPS.read_bytes()

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(rows)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "o.jsonl"
    result = segments(fifo, "--rule", "close", "--group-by", "unit", "-o", out)
    writer.join(timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(jsonl(out)) == 3


def test_lone_surrogate_escapes_are_bad_rows_not_a_traceback(tmp_path):
    source = tmp_path / "steps.jsonl"
    good = json.dumps(step("t", "rfl", 1, 0))
    source.write_text(
        "\n".join([
            good,
            '{"theorem": "u", "tactic": "simp \\udcff", "goals_before": ["g"], "goals_after": []}',
            json.dumps(step("v", "exact \U0001d7d9", 1, 0)),  # an astral char, escaped as a pair
            "{",
        ]) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "o.jsonl"
    result = segments(source, "--rule", "change", "-o", out)
    assert result.returncode == 0, result.stderr
    shown = result.stderr.splitlines()
    assert shown[0] == "segpilot: skipped line 2: not UTF-8 text (a JSON string holds \\udcff)"
    assert shown[1].startswith("segpilot: skipped line 4: not JSON")
    assert "4 rows read, 2 bad rows skipped, 2 trajectories" in result.stderr
    assert [r["theorem"] for r in jsonl(out)] == ["t", "v"]
    strict = segments(source, "--rule", "change", "--strict", "-o", out)
    assert strict.returncode == 1
    assert strict.stderr.splitlines() == [
        "segpilot: error: line 2: not UTF-8 text (a JSON string holds \\udcff) "
        "(without --strict, bad rows are skipped)"
    ]


def test_a_group_by_argument_that_is_not_utf8(tmp_path):
    source = write_rows(tmp_path / "steps.jsonl", [step("t", "rfl", 1, 0)])
    result = segments(source, "--rule", "change", "--group-by", os.fsdecode(b"th\xe9orem"),
                      "-o", tmp_path / "o.jsonl")  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "segpilot: error: --group-by 'th\\xe9orem' is not UTF-8 text "
        "(\\xe9 at character 3) (give it as UTF-8)"
    ]


def test_an_input_name_that_is_not_utf8_is_shown_by_its_bytes(tmp_path):
    missing = tmp_path / os.fsdecode(b"\xff.jsonl")
    result = segments(missing, "--rule", "change", "-o", tmp_path / "o.jsonl")
    assert result.returncode == 1
    assert result.stderr.strip() == f"segpilot: error: no such file: {tmp_path}/\\xff.jsonl"
