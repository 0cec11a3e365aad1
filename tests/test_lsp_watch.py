"""The reload watcher, on real files with a real watchdog observer.

Nothing here depends on how fast the machine is: each test waits (with a generous
timeout) for the call it expects, and a test that expects *no* call first lets a watched
probe file be written and handed over, which needs the events before it processed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from segpilot.lsp.watch import FileWatcher

SETTLE_S = 0.2
TIMEOUT_S = 10.0


class Calls:
    """An `on_change` that records each path and the bytes the file held at that moment."""

    def __init__(self, *, fail_first: bool = False) -> None:
        self.paths: list[Path] = []
        self.contents: list[bytes] = []
        self._fail_first = fail_first
        self._changed = threading.Condition()

    def __call__(self, path: Path) -> None:
        with self._changed:
            self.paths.append(path)
            self.contents.append(path.read_bytes())
            self._changed.notify_all()
        if self._fail_first and len(self.paths) == 1:
            raise RuntimeError("reload failed")

    def wait_for(self, path: Path, *, times: int = 1) -> list[Path]:
        """Wait until `path` was handed over `times` times; return all calls so far."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: self.paths.count(path) >= times, TIMEOUT_S)
            assert arrived, f"no call for {path} within {TIMEOUT_S}s; calls: {self.paths}"
            return list(self.paths)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path.resolve()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def watcher(calls: Calls) -> Iterator[FileWatcher]:
    with FileWatcher(calls, settle_s=SETTLE_S) as watcher:
        yield watcher


def probe(folder: Path, watcher: FileWatcher, calls: Calls) -> list[Path]:
    """Add a probe file to the watched set, write it, and return the calls up to its own."""
    path = folder / "probe.gguf"
    watcher.watch([*watcher.watched, path])
    path.write_bytes(b"probe")
    return calls.wait_for(path)


def test_rewrite_in_place_calls_once(folder: Path, watcher: FileWatcher, calls: Calls) -> None:
    adapter = folder / "adapter.gguf"
    adapter.write_bytes(b"old")
    watcher.watch([adapter])
    adapter.write_bytes(b"new adapter")
    calls.wait_for(adapter)
    assert probe(folder, watcher, calls) == [adapter, folder / "probe.gguf"]
    assert calls.contents[0] == b"new adapter"


def test_atomic_replace_calls_once(folder: Path, watcher: FileWatcher, calls: Calls) -> None:
    adapter = folder / "adapter.gguf"
    adapter.write_bytes(b"old")
    watcher.watch([adapter])
    temporary = folder / "adapter.gguf.tmp"
    temporary.write_bytes(b"new adapter")
    os.replace(temporary, adapter)
    calls.wait_for(adapter)
    assert probe(folder, watcher, calls) == [adapter, folder / "probe.gguf"]
    assert calls.contents[0] == b"new adapter"


def test_burst_of_writes_calls_once_with_the_finished_file(folder: Path) -> None:
    calls = Calls()
    adapter = folder / "adapter.gguf"
    # The writes span more than the settle time, so a timer that did not restart on each
    # event would hand over a half-written file; the pauses stay far below it.
    with FileWatcher(calls, settle_s=1.0) as watcher:
        watcher.watch([adapter])
        with adapter.open("wb") as stream:
            for chunk in range(30):
                stream.write(b"%d," % chunk)
                stream.flush()
                time.sleep(0.05)
        finished = adapter.read_bytes()
        calls.wait_for(adapter)
        assert probe(folder, watcher, calls) == [adapter, folder / "probe.gguf"]
    assert calls.contents[0] == finished


def test_other_files_in_the_directory_are_ignored(
    folder: Path, watcher: FileWatcher, calls: Calls
) -> None:
    watcher.watch([folder / "adapter.gguf"])
    (folder / "notes.txt").write_text("not watched")
    assert probe(folder, watcher, calls) == [folder / "probe.gguf"]


def test_file_created_after_watch_calls_once(
    folder: Path, watcher: FileWatcher, calls: Calls
) -> None:
    adapter = folder / "adapter.gguf"
    watcher.watch([adapter])
    assert watcher.watched == {adapter}
    adapter.write_bytes(b"first adapter")
    calls.wait_for(adapter)
    assert probe(folder, watcher, calls) == [adapter, folder / "probe.gguf"]


def test_delete_does_not_call(folder: Path, watcher: FileWatcher, calls: Calls) -> None:
    adapter = folder / "adapter.gguf"
    adapter.write_bytes(b"adapter")
    watcher.watch([adapter])
    adapter.unlink()
    assert probe(folder, watcher, calls) == [folder / "probe.gguf"]


def test_watch_replaces_the_set_and_resolves_paths(
    folder: Path, watcher: FileWatcher, calls: Calls
) -> None:
    old, new = folder / "old.gguf", folder / "new.gguf"
    (folder / "sub").mkdir()
    watcher.watch([old, None])
    watcher.watch([str(folder / "sub" / ".." / "new.gguf"), None])
    assert watcher.watched == {new}
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    assert calls.wait_for(new) == [new]
    assert probe(folder, watcher, calls) == [new, folder / "probe.gguf"]


def test_failing_callback_is_logged_and_later_writes_still_call(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Calls(fail_first=True)
    adapter = folder / "adapter.gguf"
    with FileWatcher(calls, settle_s=SETTLE_S) as watcher:
        watcher.watch([adapter])
        adapter.write_bytes(b"first")
        calls.wait_for(adapter)
        adapter.write_bytes(b"second")
        calls.wait_for(adapter, times=2)
    assert calls.contents == [b"first", b"second"]
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert str(adapter) in failures[0].getMessage()


def test_close_stops_calls(folder: Path, calls: Calls) -> None:
    adapter = folder / "adapter.gguf"
    watcher = FileWatcher(calls, settle_s=SETTLE_S)
    watcher.watch([adapter])
    adapter.write_bytes(b"first")
    calls.wait_for(adapter)
    adapter.write_bytes(b"written just before close")  # its settle timer is cancelled
    watcher.close()
    watcher.close()
    # A second watcher on the same file is the probe: once it has seen the next write,
    # the closed one would have seen it too.
    witness = Calls()
    with FileWatcher(witness, settle_s=SETTLE_S) as other:
        other.watch([adapter])
        adapter.write_bytes(b"after close")
        witness.wait_for(adapter)
    assert calls.paths == [adapter]
    with pytest.raises(RuntimeError, match="closed"):
        watcher.watch([adapter])


def test_callback_may_close_the_watcher(folder: Path) -> None:
    adapter = folder / "adapter.gguf"
    closed = threading.Event()

    def close_on_change(_path: Path) -> None:
        watcher.close()
        closed.set()

    watcher = FileWatcher(close_on_change, settle_s=SETTLE_S)
    watcher.watch([adapter])
    adapter.write_bytes(b"adapter")
    assert closed.wait(TIMEOUT_S)
    assert watcher.watched == frozenset()


def test_missing_directory_is_skipped_with_a_warning(
    folder: Path, watcher: FileWatcher, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    missing = folder / "no-such-dir" / "adapter.gguf"
    model = folder / "model.gguf"
    with caplog.at_level(logging.WARNING, logger="segpilot.lsp.watch"):
        watcher.watch([missing, model])
    assert watcher.watched == {model}
    assert any(
        r.levelno == logging.WARNING and str(missing) in r.getMessage() for r in caplog.records
    )
    model.write_bytes(b"model")
    assert calls.wait_for(model) == [model]


def test_negative_settle_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="settle_s"):
        FileWatcher(lambda _path: None, settle_s=-1)
