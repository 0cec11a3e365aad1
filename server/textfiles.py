"""Reading and writing the user's files: one place for the rules, so every command keeps them.

The project's rule: bad input (not UTF-8, too large, unreadable; a full disk or Ctrl-C
while writing) gets a one-line `SegpilotError` and loses nothing. So:

- Reading (`read_text`, `open_lines`, `read_snapshot`) turns every `OSError` and
  undecodable byte into a one-line error that names the file (and, for bad bytes, where).
- Writing (`open_output`, `replace_file`) replaces only regular files, atomically: the new
  content goes to a temporary file in the target's folder, is flushed and fsynced, and is
  renamed over the target only when everything succeeded; on any failure the temporary
  file is removed and the target is as it was. The new file keeps the old one's mode.
- A device or a FIFO is written in place, never replaced (a rename would put a regular
  file where `/dev/null` was); a directory, a socket and a read-only file are refused.
  Read-only is decided from the mode bits, since root passes every permission check and a
  rename needs only the folder's permission, not the file's.
- Write-back (`replace_file`) also keeps a backup and refuses a file that changed since
  it was read (`FileSnapshot`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from segpilot.errors import SegpilotError

__all__ = [
    "BACKUP_SUFFIX",
    "MAX_READ_BYTES",
    "FileSnapshot",
    "InputLines",
    "backup_path",
    "check_output",
    "open_lines",
    "open_output",
    "printable",
    "read_snapshot",
    "read_text",
    "replace_file",
    "require_utf8",
    "snapshot",
]

# Whole-file reads (`read_text`, `read_snapshot`) stop here: Lean sources and settings are
# far smaller, and reading a multi-gigabyte file whole would exhaust memory, not fail.
MAX_READ_BYTES = 64 << 20
# `replace_file` keeps the old content in FILE + this, beside the real file.
BACKUP_SUFFIX = ".bak"

_CHUNK = 1 << 16
_WRITE_HINTS = {
    errno.ENOSPC: "free some disk space and run again",
    errno.EDQUOT: "free some space within your disk quota and run again",
    errno.EFBIG: "the file system or the shell's file-size limit (ulimit -f) caps its size",
}
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_OWN_FD_DIR = re.compile(r"/proc/(\d+)(?:/task/(\d+))?/fd")


# --- Text that may not be UTF-8 -------------------------------------------------------------


def printable(text: str | os.PathLike[str]) -> str:
    """`text` safe to print: surrogates shown as `\\xNN` (an undecodable byte in a file name or
    argument) or `\\uXXXX` (a lone surrogate from a JSON escape), not as an encoding error."""
    text = os.fspath(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_show_surrogate(c) if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def _show_surrogate(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def require_utf8(text: str, what: str) -> str:
    """`text` itself, or a one-line error saying that `what` (e.g. "--group-by") is not UTF-8.

    Python hands over arguments and file names holding non-UTF-8 bytes as surrogate
    escapes; left alone they fail much later (a traceback when written out as UTF-8), so
    check text where it comes in.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise SegpilotError(
            f"{what} '{printable(text)}' is not UTF-8 text "
            f"({printable(text[err.start])} at character {err.start + 1})",
            fix="give it as UTF-8",
        ) from None
    return text


def _decode(data: bytes, path: str | os.PathLike[str]) -> str:
    """`data` as UTF-8, exactly (no newline translation, a BOM kept), or a one-line error."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        bad = data[err.start : min(err.end, err.start + 4)].hex(" ")
        raise SegpilotError(
            f"{printable(path)} is not UTF-8 text: {err.reason} (byte {bad}) at line {line}, "
            f"byte {column} of the line (offset {err.start} in the file)",
            fix="the file must be UTF-8; convert it, e.g. with iconv",
        ) from None


# --- Reading ----------------------------------------------------------------------------


def _read_error(path: str | os.PathLike[str], err: OSError) -> SegpilotError:
    shown = printable(path)
    if isinstance(err, FileNotFoundError):
        return SegpilotError(f"no such file: {shown}")
    if isinstance(err, IsADirectoryError):
        return SegpilotError(f"{shown} is a directory, not a file")
    if isinstance(err, NotADirectoryError):
        return SegpilotError(f"no such file: {shown} (a part of the path is not a directory)")
    if isinstance(err, PermissionError):
        return SegpilotError(f"cannot read {shown}: permission denied", fix="check its permissions")
    return SegpilotError(f"cannot read {shown}: {err.strerror or err}")


def _open_input(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        return open(path, "rb")  # the caller closes it
    except OSError as err:
        raise _read_error(path, err) from None


def _read_all(fh: IO[bytes], path: str | os.PathLike[str], max_bytes: int | None) -> bytes:
    try:
        data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as err:
        raise _read_error(path, err) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise SegpilotError(
            f"{printable(path)} is larger than {_size(max_bytes)}, too large to read whole"
        )
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_text(path: str | os.PathLike[str], *, max_bytes: int | None = MAX_READ_BYTES) -> str:
    """The whole file as UTF-8 text, exactly as stored (CRLF and a BOM are kept).

    Every failure is a one-line `SegpilotError`: no such file, a directory, permission
    denied, any other read error, larger than `max_bytes`, or bytes that are not UTF-8
    (with the line and byte where).
    """
    with _open_input(path) as fh:
        data = _read_all(fh, path, max_bytes)
    return _decode(data, path)


class InputLines:
    """An open input's lines, as bytes, for streaming through files of any size.

    Read errors become one-line errors naming the file; decoding is left to the caller, so
    that one bad line need not fail the whole file. `size` is the byte size of a regular
    file (0 for a FIFO or a device, whose size is unknown).
    """

    def __init__(self, fh: IO[bytes], path: str | os.PathLike[str]) -> None:
        self._fh = fh
        self.path = path
        self.stat = os.fstat(fh.fileno())
        self.size = self.stat.st_size if stat.S_ISREG(self.stat.st_mode) else 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._fh
        except OSError as err:
            raise _read_error(self.path, err) from None

    def is_same_file(self, other: str | os.PathLike[str]) -> bool:
        """Whether `other` (symbolic links followed) is this very input."""
        try:
            st = os.stat(other)
        except (OSError, ValueError):
            return False
        return (st.st_dev, st.st_ino) == (self.stat.st_dev, self.stat.st_ino)


@contextlib.contextmanager
def open_lines(path: str | os.PathLike[str]) -> Iterator[InputLines]:
    """Open `path` for streaming its lines (`InputLines`); opening errors are one-liners."""
    with _open_input(path) as fh:
        yield InputLines(fh, path)


# --- Writing ----------------------------------------------------------------------------


def _write_error(name: str, err: OSError, note: str) -> SegpilotError:
    hint = _WRITE_HINTS.get(err.errno or 0)
    fix = "; ".join(part for part in (hint, note) if part)
    return SegpilotError(f"cannot write {name}: {err.strerror or err}", fix=fix or None)


class _Sink(io.RawIOBase):
    """The bottom of an output stream: an `OSError` (disk full, file too large, ...) becomes a
    one-line error naming the file. `BrokenPipeError` stays itself: the reader went away,
    which the CLI treats as no error of ours. After `discard()` writes go nowhere, so that
    closing a failed stream does not try (and fail) to write its buffer again."""

    def __init__(self, write: Callable[[memoryview], int | None], name: str, note: str) -> None:
        super().__init__()
        self._write = write
        self._name = name
        self._note = note
        self._discarding = False

    def writable(self) -> bool:
        return True

    def discard(self) -> None:
        self._discarding = True

    def write(self, data: memoryview) -> int:  # type: ignore[override]
        if self._discarding:
            return len(data)
        try:
            written = self._write(data)
        except BrokenPipeError:
            raise
        except OSError as err:
            self._discarding = True
            raise _write_error(self._name, err, self._note) from None
        return len(data) if written is None else written


class _TextOut(io.TextIOWrapper):
    """UTF-8 text out; a lone surrogate (text that no UTF-8 file can hold) is a one-liner."""

    def __init__(self, sink: _Sink, name: str) -> None:
        buffered = io.BufferedWriter(sink, _CHUNK)  # type: ignore[type-var]  # a raw sink is a stream
        super().__init__(buffered, encoding="utf-8", newline="")
        self._out_name = name

    def write(self, text: str) -> int:
        try:
            return super().write(text)
        except UnicodeEncodeError as err:
            raise SegpilotError(
                f"cannot write {self._out_name}: the text holds "
                f"{printable(err.object[err.start : err.end])}, which is not UTF-8 text"
            ) from None


@contextlib.contextmanager
def _stream(
    write: Callable[[memoryview], int | None], name: str, note: str = ""
) -> Iterator[_TextOut]:
    """A text stream over `write`, flushed when the block succeeds, discarded otherwise."""
    sink = _Sink(write, name, note)
    out = _TextOut(sink, name)
    try:
        yield out
        out.flush()
    finally:
        sink.discard()
        with contextlib.suppress(Exception):
            out.close()


@dataclass(frozen=True)
class _Target:
    """Where and how an output goes: `stdout`, an own `fd` (/dev/stdout), `inplace` (a
    device or FIFO), or `replace` (a regular file at `real`, existing when `st` is set)."""

    kind: str
    name: str
    real: str = ""
    fd: int = -1
    st: os.stat_result | None = None


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _is_read_only(st: os.stat_result, path: str) -> bool:
    """No write bit for the owner, or (not root) no write access: checked from `st_mode`,
    since root passes every permission check and a rename needs no write access at all."""
    if not st.st_mode & stat.S_IWUSR:
        return True
    return os.geteuid() != 0 and not os.access(path, os.W_OK)


def _own_fd(path: str) -> int | None:
    """The descriptor number when `path` names one of this process's own open descriptors
    (/dev/stdout, /dev/fd/N, /proc/self/fd/N): written through as the shell opened it."""
    current = os.path.abspath(path)
    for _ in range(40):  # links followed one at a time; a loop of links ends here
        folder, name = os.path.split(current)
        match = _OWN_FD_DIR.fullmatch(os.path.realpath(folder))
        if match and name.isdigit() and int(match.group(1)) == os.getpid():
            return int(name)
        try:
            current = os.path.normpath(os.path.join(folder, os.readlink(current)))
        except OSError:  # not a link (or unreadable): an ordinary path
            return None
    return None


def _plan(path: str | os.PathLike[str], *, regular_only: bool, follow: bool = True) -> _Target:
    """Check `path` as a place to write and say how; a one-line error when it is refused.

    `regular_only` (write-back) refuses stdout, devices and FIFOs too. Without `follow`
    a symbolic link itself is replaced, not its target (for backups, which must not land
    wherever a planted link points).
    """
    name = os.fspath(path)
    shown = printable(name)
    if name == "-":
        if regular_only:
            raise SegpilotError("- (stdout) is not a file to write back to")
        return _Target("stdout", "stdout")
    if follow and (fd := _own_fd(name)) is not None:
        if regular_only:
            raise SegpilotError(f"{shown} is an open descriptor, not a file to write back to")
        return _Target("fd", shown, fd=fd)
    try:
        st: os.stat_result | None = os.stat(name) if follow else os.lstat(name)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise SegpilotError(f"cannot write {shown}: a part of the path is not a folder") from None
    except OSError as err:
        raise SegpilotError(f"cannot write {shown}: {err.strerror or err}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise SegpilotError(f"{shown} is a directory; name a file to write")
        in_place = stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode)
        if in_place and not regular_only:
            if _is_read_only(st, name):
                raise SegpilotError(f"{shown} is read-only; not writing to it")
            return _Target("inplace", shown, real=name)
        if not (stat.S_ISLNK(mode) and not follow):
            what = "write back only to" if regular_only else "write to"
            raise SegpilotError(f"{shown} is {_kind(mode)}; segpilot can {what} regular files")
        st = None  # a link replaced as a link: like a new file, with the default mode
    real = os.path.realpath(name) if follow else os.path.abspath(name)
    if st is None:
        folder = os.path.dirname(real)
        if not os.path.isdir(folder):
            shown_folder = folder if os.path.islink(name) else os.path.dirname(name) or "."
            base = os.path.basename(name)
            raise SegpilotError(
                f"no folder {printable(shown_folder)} to write {printable(base)} in"
            )
    elif _is_read_only(st, real):
        raise SegpilotError(
            f"{shown} is read-only; not replacing it",
            fix=f"make it writable (chmod u+w {shown}) or choose another file",
        )
    return _Target("replace", shown, real=real, st=st)


def check_output(path: str | os.PathLike[str]) -> None:
    """Fail now, with the error `open_output` would give, if `path` cannot be written; for
    commands that should refuse before doing their (possibly long) work."""
    target = _plan(path, regular_only=False)
    if target.kind == "replace" and os.geteuid() != 0:
        folder = os.path.dirname(target.real)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SegpilotError(f"cannot write in {printable(folder)}: permission denied")


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic(
    target: _Target, *, mode: int | None = None, verify: Callable[[], None] | None = None
) -> Iterator[_TextOut]:
    """Write a temporary file beside `target.real`, then fsync and rename it over the target
    when the block succeeds (after `verify()`, which may refuse); otherwise remove it."""
    folder, base = os.path.split(target.real)
    shown = target.name
    existed = target.st is not None
    note = f"{shown} is unchanged" if existed else f"{shown} was not written"
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise SegpilotError(f"cannot write in {printable(folder)}: {err.strerror}") from None
    renamed = False
    try:
        if mode is None:
            mode = stat.S_IMODE(target.st.st_mode) if target.st else 0o666 & ~_umask()
        with contextlib.suppress(OSError):  # a file system without modes (vfat) keeps its own
            os.fchmod(fd, mode)
        if target.st is not None and os.geteuid() == 0:
            with contextlib.suppress(OSError):
                os.fchown(fd, target.st.st_uid, target.st.st_gid)
        with _stream(lambda data: os.write(fd, data), shown, note) as out:
            yield out
        try:
            os.fsync(fd)
        except OSError as err:
            raise _write_error(shown, err, note) from None
        closing, fd = fd, -1
        try:
            os.close(closing)
        except OSError as err:
            raise _write_error(shown, err, note) from None
        _still_replaceable(target)
        if verify is not None:
            verify()
        try:
            os.replace(tmp, target.real)
        except OSError as err:
            raise _write_error(shown, err, note) from None
        renamed = True
        _fsync_folder(folder)
    finally:
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        if not renamed:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _still_replaceable(target: _Target) -> None:
    """Refuse if, while we wrote, the target became something we must not replace."""
    try:
        st = os.lstat(target.real)
    except FileNotFoundError:
        return
    except OSError as err:
        raise SegpilotError(f"cannot write {target.name}: {err.strerror or err}") from None
    if stat.S_ISLNK(st.st_mode) and target.st is None:
        return  # a link being replaced as a link (a backup)
    if not stat.S_ISREG(st.st_mode):
        raise SegpilotError(
            f"{target.name} became {_kind(st.st_mode)} while segpilot wrote it; left it alone"
        )
    if _is_read_only(st, target.real):
        raise SegpilotError(
            f"{target.name} became read-only while segpilot wrote it; left it alone"
        )


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable; best effort (some file systems cannot)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def open_output(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A UTF-8 text stream for a generated file, written so that a failure loses nothing.

    - `-`: stdout. /dev/stdout, /dev/fd/N: that descriptor, as the shell opened it.
    - A character or block device or a FIFO: opened and written in place, never replaced.
    - A regular file (a symbolic link is followed: its target is replaced, the link kept):
      a temporary file beside it, flushed and fsynced, renamed over it only when the block
      exits without an error (else removed, the original untouched); it keeps the old
      file's mode (a new file gets 0o666 less the umask). Other hard links to the old
      file keep the old content.
    - Refused with a one-line error: a directory, a socket, a read-only file or device
      (no owner write bit: root ignores permissions, so the mode is checked), a missing
      folder. Write errors (ENOSPC, EFBIG, EDQUOT, ...) are one-liners naming the path.
    """
    target = _plan(path, regular_only=False)
    if target.kind == "replace":
        with _atomic(target) as out:
            yield out
    elif target.kind == "stdout":
        with _to_stdout() as out:
            yield out
    else:
        try:
            if target.kind == "fd":
                fd = os.dup(target.fd)
            else:
                flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
                fd = os.open(target.real, flags)
        except OSError as err:
            raise _write_error(target.name, err, "") from None
        try:
            with _stream(lambda data: os.write(fd, data), target.name) as out:
                yield out
        finally:
            os.close(fd)


@contextlib.contextmanager
def _to_stdout() -> Iterator[TextIO]:
    """stdout as UTF-8 whatever its own encoding, after what was printed to it before."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a replaced sys.stdout without bytes underneath
        yield sys.stdout
        sys.stdout.flush()
        return
    sys.stdout.flush()
    with _stream(buffer.write, "stdout") as out:
        yield out
    try:
        buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        raise _write_error("stdout", err, "") from None


# --- Write-back with a snapshot ---------------------------------------------------------


@dataclass(frozen=True)
class FileSnapshot:
    """A file as it was read, to tell at write-back whether it changed since.

    The content decides (`size` and `sha256`): a touch, or a save of identical bytes, is not
    a change, since replacing such a file loses nothing. `mtime_ns`, `inode` and `device`
    are checked once more just before the rename, to catch an edit made meanwhile.
    """

    size: int
    mtime_ns: int
    inode: int
    device: int
    sha256: str

    @classmethod
    def of(cls, data: bytes, st: os.stat_result) -> FileSnapshot:
        """The snapshot of `data`, read from the file whose `fstat` is `st`."""
        return cls(
            len(data), st.st_mtime_ns, st.st_ino, st.st_dev, hashlib.sha256(data).hexdigest()
        )

    def same_stat(self, st: os.stat_result) -> bool:
        """Whether `st` shows the file untouched since (same size, mtime, inode, device)."""
        return (self.size, self.mtime_ns, self.inode, self.device) == (
            st.st_size,
            st.st_mtime_ns,
            st.st_ino,
            st.st_dev,
        )


def _read_regular(
    path: str | os.PathLike[str], max_bytes: int | None
) -> tuple[bytes, FileSnapshot]:
    """The bytes of a regular file and their snapshot, from one open descriptor.

    Opened without blocking, so that a FIFO is refused instead of waiting for a writer.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise _read_error(path, err) from None
    with open(fd, "rb") as fh:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _read_error(path, IsADirectoryError(errno.EISDIR, "Is a directory"))
        if not stat.S_ISREG(st.st_mode):
            raise SegpilotError(
                f"{printable(path)} is {_kind(st.st_mode)}, not a regular file to write back to"
            )
        data = _read_all(fh, path, max_bytes)
    return data, FileSnapshot.of(data, st)


def snapshot(
    path: str | os.PathLike[str], *, max_bytes: int | None = MAX_READ_BYTES
) -> FileSnapshot:
    """The snapshot of a regular file as it is now (read errors are one-liners)."""
    return _read_regular(path, max_bytes)[1]


def read_snapshot(
    path: str | os.PathLike[str], *, max_bytes: int | None = MAX_READ_BYTES
) -> tuple[str, FileSnapshot]:
    """A regular file's UTF-8 text (as `read_text`) and the snapshot of exactly those bytes,
    for a later `replace_file(path, new_text, expected=snapshot)`."""
    data, snap = _read_regular(path, max_bytes)
    return _decode(data, path), snap


def backup_path(path: str | os.PathLike[str]) -> Path:
    """Where `replace_file` keeps the old content: FILE.bak beside the real file (symbolic
    links followed), so one generation of backup per file."""
    real = os.path.realpath(path)
    return Path(real + BACKUP_SUFFIX)


def replace_file(
    path: str | os.PathLike[str],
    text: str,
    *,
    expected: FileSnapshot | None,
    backup: bool = True,
) -> Path | None:
    """Write `text` (UTF-8, exactly) over the regular file `path`; return the backup's path.

    Refused with a one-line error, and nothing written, when: the file changed since
    `expected` was taken (or was removed); it is not a regular file (a device, a FIFO,
    stdout); it is read-only; or `text` is not UTF-8-encodable. `expected=None` means no
    comparison (a file segpilot creates). With `backup`, the old content is written first,
    atomically, to `backup_path(path)` (a link of that name is replaced, not followed),
    keeping the old mode; then the file is replaced as `open_output` replaces one. A
    symbolic link is followed: its target is replaced and the link kept.
    """
    shown = printable(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise SegpilotError(
            f"cannot write {shown}: the text holds {printable(text[err.start])}, "
            "which is not UTF-8 text"
        ) from None
    target = _plan(path, regular_only=True)
    current: FileSnapshot | None = None
    old = b""
    if target.st is not None:
        old, current = _read_regular(target.real, MAX_READ_BYTES)
        if expected is not None and (expected.size, expected.sha256) != (
            current.size,
            current.sha256,
        ):
            change = (
                f"{expected.size} -> {current.size} bytes"
                if expected.size != current.size
                else "same size, other content"
            )
            raise SegpilotError(
                f"{shown} changed since it was read ({change}); not overwriting it",
                fix="read it again and redo the change",
            )
    elif expected is not None:
        raise SegpilotError(f"{shown} was removed since it was read; not writing it")
    written: Path | None = None
    if backup and target.st is not None:
        written = Path(target.real + BACKUP_SUFFIX)
        spare = _plan(written, regular_only=True, follow=False)
        with _atomic(spare, mode=stat.S_IMODE(target.st.st_mode)) as out:
            out.buffer.write(old)

    def unchanged_meanwhile() -> None:
        if current is None:
            return
        try:
            st = os.stat(target.real)
        except OSError:
            st = None
        if st is None or not current.same_stat(st):
            raise SegpilotError(f"{shown} changed while segpilot wrote it; not overwriting it")

    with _atomic(target, verify=unchanged_meanwhile) as out:
        out.write(text)
    return written
