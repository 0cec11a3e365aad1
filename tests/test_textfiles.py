"""`segpilot.textfiles` on the real file system: devices, FIFOs, links, full disks, snapshots.

Only the lowest system calls are ever faked (os.write / os.fsync raising ENOSPC), never the
module's own logic. Tests that touch /dev/null and /dev/full put them back (and fail) if a
regression replaced them with regular files.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import PYTHON

from segpilot import textfiles
from segpilot.errors import SegpilotError
from segpilot.textfiles import (
    FileSnapshot,
    backup_path,
    check_output,
    open_lines,
    open_output,
    printable,
    read_snapshot,
    read_text,
    replace_file,
    require_utf8,
    snapshot,
)

ROOT = os.geteuid() == 0


# --- helpers ----------------------------------------------------------------------------


def fail_syscall(monkeypatch, name: str, folder: Path, code: int = errno.ENOSPC) -> None:
    """Make os.<name>(fd, ...) raise OSError(code) for descriptors of files under `folder`."""
    real = getattr(os, name)
    under = os.path.realpath(folder) + os.sep

    def failing(fd, *args):
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            where = ""
        if where.startswith(under):
            raise OSError(code, os.strerror(code))
        return real(fd, *args)

    monkeypatch.setattr(os, name, failing)


def one_line(err: pytest.ExceptionInfo[SegpilotError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def unreadable_file(tmp_path: Path) -> Path:
    """A file this process may not read: a mode-000 file, or for root (who reads those) a
    write-only /proc setting, which the kernel refuses to read even to root."""
    if not ROOT:
        path = tmp_path / "secret.txt"
        path.write_text("x\n", encoding="utf-8")
        path.chmod(0)
        return path
    path = Path("/proc/sys/vm/drop_caches")
    try:
        path.open("rb").close()
    except PermissionError:
        return path
    except OSError:
        pass
    pytest.skip("no file here that root may not read")


def read_in_thread(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, got


def write(path: str | Path, text: str) -> None:
    with open_output(path) as out:
        out.write(text)


# --- text that is not UTF-8 -------------------------------------------------------------


def test_require_utf8_passes_text_and_names_what_is_not():
    assert require_utf8("theorem,file", "--group-by") == "theorem,file"
    argument = os.fsdecode(b"the\xffrem")  # how Python hands over a non-UTF-8 argument
    with pytest.raises(SegpilotError) as err:
        require_utf8(argument, "--group-by")
    assert one_line(err).startswith("--group-by 'the\\xffrem' is not UTF-8 text")


def test_printable_shows_bytes_and_lone_surrogates():
    assert printable(Path(os.fsdecode(b"a\xfe.lean"))) == "a\\xfe.lean"
    assert printable("x\ud800y") == "x\\ud800y"
    assert printable("⊢ p") == "⊢ p"


# --- reading ----------------------------------------------------------------------------


def test_read_text_is_exact(tmp_path):
    path = tmp_path / "a.lean"
    path.write_bytes(b"\xef\xbb\xbftheorem t : True := by\r\n  trivial\n")
    assert read_text(path) == "\ufefftheorem t : True := by\r\n  trivial\n"


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SegpilotError) as err:
        read_text(tmp_path / "nope.lean")
    assert one_line(err) == f"no such file: {tmp_path / 'nope.lean'}"
    with pytest.raises(SegpilotError) as err:
        read_text(tmp_path)
    assert one_line(err) == f"{tmp_path} is a directory, not a file"


def test_non_utf8_names_the_file_the_line_and_the_byte(tmp_path):
    path = tmp_path / "latin1.lean"
    path.write_bytes(b"-- ok\ntheorem caf\xe9 : True := trivial\n")
    with pytest.raises(SegpilotError) as err:
        read_text(path)
    message = one_line(err)
    assert message.startswith(f"{path} is not UTF-8 text: ")
    assert "(byte e9) at line 2, byte 12 of the line (offset 17 in the file)" in message
    assert "must be UTF-8" in message


def test_permission_denied(tmp_path):
    path = unreadable_file(tmp_path)
    with pytest.raises(SegpilotError) as err:
        read_text(path)
    assert one_line(err).startswith(f"cannot read {path}: permission denied")


def test_other_read_errors(tmp_path):
    # Reading a process's memory from address 0 fails with EIO: a real read error.
    with pytest.raises(SegpilotError) as err:
        read_text("/proc/self/mem")
    assert one_line(err) == "cannot read /proc/self/mem: Input/output error"
    with open_lines("/proc/self/mem") as lines, pytest.raises(SegpilotError) as err:
        list(lines)
    assert one_line(err) == "cannot read /proc/self/mem: Input/output error"


def test_a_file_too_large_to_read_whole(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(b"x" * 101)
    assert read_text(path, max_bytes=101) == "x" * 101
    with pytest.raises(SegpilotError) as err:
        read_text(path, max_bytes=100)
    assert one_line(err) == f"{path} is larger than 100 bytes, too large to read whole"


def test_open_lines_streams_bytes_and_knows_its_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\n')
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    with open_lines(link) as lines:
        assert lines.size == 11
        assert list(lines) == [b'{"a": 1}\n', b"\xff\n"]
        assert lines.is_same_file(path)
        assert not lines.is_same_file(tmp_path / "other.jsonl")
    with pytest.raises(SegpilotError, match="no such file"):
        open_lines(tmp_path / "nope").__enter__()


def test_open_lines_reads_a_fifo(tmp_path):
    fifo = tmp_path / "steps.fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as fh:
            fh.write(b"one\ntwo\n")

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    with open_lines(fifo) as lines:
        assert lines.size == 0
        assert list(lines) == [b"one\n", b"two\n"]
    thread.join(timeout=10)


# --- open_output: regular files -----------------------------------------------------------


def test_a_new_file_gets_the_default_mode_and_no_temporary_file_stays(tmp_path):
    out = tmp_path / "out.jsonl"
    write(out, "⊢ p\n")
    assert out.read_bytes() == "⊢ p\n".encode()
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert names(tmp_path) == ["out.jsonl"]


def test_a_replaced_file_keeps_its_mode(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n", encoding="utf-8")
    out.chmod(0o640)
    inode = out.stat().st_ino
    write(out, "new\n")
    assert out.read_text(encoding="utf-8") == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert out.stat().st_ino != inode  # replaced by a rename, not rewritten in place
    assert names(tmp_path) == ["out.jsonl"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt, SegpilotError])
def test_a_failing_block_leaves_the_original_untouched(tmp_path, error):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"previous\n")
    with pytest.raises(error), open_output(out) as stream:
        stream.write("x" * 300_000)  # more than the buffer: some of it reached the disk
        raise error("stop")
    assert out.read_bytes() == b"previous\n"
    assert names(tmp_path) == ["out.jsonl"]


@pytest.mark.parametrize("call", ["write", "fsync"])
@pytest.mark.parametrize("size", [10, 300_000])
def test_disk_full_while_writing_loses_nothing(tmp_path, monkeypatch, call, size):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"previous\n")
    fail_syscall(monkeypatch, call, tmp_path)
    with pytest.raises(SegpilotError) as err, open_output(out) as stream:
        stream.write("y" * size)
    assert one_line(err) == (
        f"cannot write {out}: No space left on device "
        f"(free some disk space and run again; {out} is unchanged)"
    )
    monkeypatch.undo()
    assert out.read_bytes() == b"previous\n"
    assert names(tmp_path) == ["out.jsonl"]


def test_quota_and_new_files(tmp_path, monkeypatch):
    out = tmp_path / "new.jsonl"
    fail_syscall(monkeypatch, "write", tmp_path, errno.EDQUOT)
    with pytest.raises(SegpilotError) as err:
        write(out, "z\n")
    assert "Disk quota exceeded" in one_line(err)
    assert f"{out} was not written" in one_line(err)
    monkeypatch.undo()
    assert names(tmp_path) == []


def test_a_read_only_file_is_refused_even_for_root(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"keep me\n")
    out.chmod(0o444)
    for attempt in (lambda: write(out, "new\n"), lambda: check_output(out)):
        with pytest.raises(SegpilotError) as err:
            attempt()
        assert one_line(err).startswith(f"{out} is read-only; not replacing it")
    assert out.read_bytes() == b"keep me\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o444
    assert names(tmp_path) == ["out.jsonl"]


def test_a_symlink_is_followed_and_kept(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "data" / "segments.jsonl"
    target.write_text("old\n", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "links" / "latest.jsonl"
    link.symlink_to(Path("..") / "data" / "segments.jsonl")
    write(link, "new\n")
    assert link.is_symlink()
    assert os.readlink(link) == os.path.join("..", "data", "segments.jsonl")
    assert target.read_text(encoding="utf-8") == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert names(tmp_path / "data") == ["segments.jsonl"]
    assert names(tmp_path / "links") == ["latest.jsonl"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "made.jsonl")
    write(link, "made\n")
    assert link.is_symlink()
    assert (tmp_path / "made.jsonl").read_text(encoding="utf-8") == "made\n"


def test_directories_missing_folders_and_sockets_are_refused(tmp_path):
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        cases = [
            (tmp_path, f"{tmp_path} is a directory; name a file to write"),
            (tmp_path / "no" / "o.jsonl", f"no folder {tmp_path / 'no'} to write o.jsonl in"),
            (sock_path, f"{sock_path} is a socket; segpilot can write to regular files"),
        ]
        for path, message in cases:
            for attempt in (check_output, lambda p: write(p, "x\n")):
                with pytest.raises(SegpilotError) as err:
                    attempt(path)
                assert one_line(err) == message
    finally:
        server.close()
    assert names(tmp_path) == ["s.sock"]


def test_text_that_is_not_utf8_is_a_one_line_error(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"previous\n")
    with pytest.raises(SegpilotError) as err:
        write(out, "ok\n" + os.fsdecode(b"\xff") + "\n")
    assert one_line(err) == f"cannot write {out}: the text holds \\xff, which is not UTF-8 text"
    assert out.read_bytes() == b"previous\n"
    assert names(tmp_path) == ["out.jsonl"]


# --- open_output: devices, FIFOs, stdout ------------------------------------------------------


def test_dev_null_is_written_in_place(system_devices):
    write("/dev/null", "discarded\n" * 10_000)
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_dev_full_is_a_one_line_disk_full_error(system_devices):
    with pytest.raises(SegpilotError) as err:
        write("/dev/full", "x\n")
    assert one_line(err).startswith("cannot write /dev/full: No space left on device")
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "segments.fifo"
    os.mkfifo(fifo)
    thread, got = read_in_thread(fifo)
    write(fifo, "row\n" * 50_000)
    thread.join(timeout=30)
    assert got == [b"row\n" * 50_000]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert names(tmp_path) == ["segments.fifo"]


def test_a_read_only_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ro.fifo"
    os.mkfifo(fifo, 0o444)
    os.chmod(fifo, 0o444)
    started = time.monotonic()
    with pytest.raises(SegpilotError) as err:
        write(fifo, "x\n")
    assert one_line(err) == f"{fifo} is read-only; not writing to it"
    assert time.monotonic() - started < 5
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_dash_is_stdout(capsys):
    print("before")
    write("-", "⊢ row\n")
    assert capsys.readouterr().out == "before\n⊢ row\n"


def test_dev_stdout_writes_through_the_descriptor_the_shell_opened(tmp_path, system_devices):
    log = tmp_path / "log.txt"
    log.write_text("earlier run\n", encoding="utf-8")
    code = "from segpilot.textfiles import open_output\nwith open_output('/dev/stdout') as f:\n"
    code += "    f.write('appended\\n')\n"
    with open(log, "a", encoding="utf-8") as appending:  # like `>> log.txt`
        subprocess.run([PYTHON, "-c", code], stdout=appending, check=True, timeout=60)
    assert log.read_text(encoding="utf-8") == "earlier run\nappended\n"
    piped = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert piped.stdout == "appended\n"


# --- snapshots and write-back -----------------------------------------------------------


@pytest.fixture
def lean_file(tmp_path) -> Path:
    path = tmp_path / "Proof.lean"
    path.write_text("theorem t : 1 + 1 = 2 := by\n  sorry\n", encoding="utf-8")
    path.chmod(0o640)
    return path


def test_write_back_replaces_the_file_and_keeps_a_backup(lean_file):
    text, snap = read_snapshot(lean_file)
    assert snap == snapshot(lean_file)
    assert snap.size == len(text.encode())
    written = replace_file(lean_file, text.replace("sorry", "norm_num"), expected=snap)
    assert written == backup_path(lean_file) == lean_file.with_name("Proof.lean.bak")
    assert lean_file.read_text(encoding="utf-8").endswith("  norm_num\n")
    assert written.read_text(encoding="utf-8") == text
    assert stat.S_IMODE(lean_file.stat().st_mode) == 0o640
    assert stat.S_IMODE(written.stat().st_mode) == 0o640
    assert names(lean_file.parent) == ["Proof.lean", "Proof.lean.bak"]


def test_write_back_refuses_a_file_changed_since_it_was_read(lean_file):
    _, snap = read_snapshot(lean_file)
    lean_file.write_text("theorem t : 1 + 1 = 2 := by\n  simp -- edited\n", encoding="utf-8")
    edited = lean_file.read_bytes()
    with pytest.raises(SegpilotError) as err:
        replace_file(lean_file, "overwritten\n", expected=snap)
    assert one_line(err).startswith(f"{lean_file} changed since it was read (")
    assert "not overwriting it" in one_line(err)
    assert lean_file.read_bytes() == edited
    assert names(lean_file.parent) == ["Proof.lean"]


def test_a_same_size_edit_is_a_change(lean_file):
    _, snap = read_snapshot(lean_file)
    lean_file.write_bytes(lean_file.read_bytes().replace(b"sorry", b"simp "))
    with pytest.raises(SegpilotError, match="same size, other content"):
        replace_file(lean_file, "x\n", expected=snap)


def test_a_touch_alone_is_not_a_change(lean_file):
    text, snap = read_snapshot(lean_file)
    os.utime(lean_file, ns=(snap.mtime_ns + 10**9, snap.mtime_ns + 10**9))
    replace_file(lean_file, text + "-- done\n", expected=snap)
    assert lean_file.read_text(encoding="utf-8").endswith("-- done\n")


def test_write_back_refuses_a_removed_file_and_creates_a_new_one(lean_file):
    _, snap = read_snapshot(lean_file)
    lean_file.unlink()
    with pytest.raises(SegpilotError, match="was removed since it was read"):
        replace_file(lean_file, "x\n", expected=snap)
    assert not lean_file.exists()
    assert replace_file(lean_file, "new\n", expected=None) is None
    assert lean_file.read_text(encoding="utf-8") == "new\n"
    assert names(lean_file.parent) == ["Proof.lean"]


def test_write_back_without_a_backup(lean_file):
    text, snap = read_snapshot(lean_file)
    assert replace_file(lean_file, text + "\n", expected=snap, backup=False) is None
    assert names(lean_file.parent) == ["Proof.lean"]


def test_write_back_only_to_regular_writable_files(tmp_path, lean_file, system_devices):
    fifo = tmp_path / "p.fifo"
    os.mkfifo(fifo)
    cases = [
        (fifo, f"{fifo} is a FIFO; segpilot can write back only to regular files"),
        ("/dev/null", "/dev/null is a character device; segpilot can write back only to regular"),
        ("-", "- (stdout) is not a file to write back to"),
    ]
    for path, message in cases:
        with pytest.raises(SegpilotError) as err:
            replace_file(path, "x\n", expected=None)
        assert one_line(err).startswith(message)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    _, snap = read_snapshot(lean_file)
    lean_file.chmod(0o444)
    before = lean_file.read_bytes()
    with pytest.raises(SegpilotError, match="is read-only; not replacing it"):
        replace_file(lean_file, "x\n", expected=snap)
    assert lean_file.read_bytes() == before
    assert names(tmp_path) == ["Proof.lean", "p.fifo"]
    with pytest.raises(SegpilotError, match="is a FIFO, not a regular file"):
        read_snapshot(fifo)


def test_write_back_through_a_symlink(tmp_path, lean_file):
    link = tmp_path / "Link.lean"
    link.symlink_to(lean_file.name)
    text, snap = read_snapshot(link)
    written = replace_file(link, text + "-- via link\n", expected=snap)
    assert link.is_symlink()
    assert written == lean_file.with_name("Proof.lean.bak")
    assert lean_file.read_text(encoding="utf-8") == text + "-- via link\n"


def test_a_planted_backup_link_is_replaced_not_followed(tmp_path, lean_file):
    elsewhere = tmp_path / "important.txt"
    elsewhere.write_bytes(b"do not touch\n")
    (tmp_path / "Proof.lean.bak").symlink_to(elsewhere)
    text, snap = read_snapshot(lean_file)
    replace_file(lean_file, "new\n", expected=snap)
    assert elsewhere.read_bytes() == b"do not touch\n"
    backup = tmp_path / "Proof.lean.bak"
    assert not backup.is_symlink()
    assert backup.read_text(encoding="utf-8") == text


def test_disk_full_during_write_back_leaves_the_file_as_it_was(tmp_path, lean_file, monkeypatch):
    text, snap = read_snapshot(lean_file)
    before = lean_file.read_bytes()
    fail_syscall(monkeypatch, "fsync", tmp_path)
    with pytest.raises(SegpilotError) as err:
        replace_file(lean_file, text + "more\n", expected=snap)
    assert "No space left on device" in one_line(err)
    monkeypatch.undo()
    assert lean_file.read_bytes() == before
    assert names(tmp_path) == ["Proof.lean"]


def test_read_snapshot_of_non_utf8_text(tmp_path):
    path = tmp_path / "Bad.lean"
    path.write_bytes(b"\x80\n")
    with pytest.raises(SegpilotError) as err:
        read_snapshot(path)
    assert one_line(err).startswith(f"{path} is not UTF-8 text: invalid start byte (byte 80)")
    assert isinstance(snapshot(path), FileSnapshot)


def test_every_public_name_says_why():
    for name in textfiles.__all__:
        member = getattr(textfiles, name)
        if callable(member):
            assert member.__doc__, name
