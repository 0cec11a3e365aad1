"""Notice when the model or adapter files are rewritten, so the sidecar can reload them.

Training writes a new adapter (sometimes a new model) while the sidecar serves the old
one. A write arrives as a burst of file-system events, or as one rename when it is done
atomically (`x.gguf.tmp` then `os.replace` to `x.gguf`). `FileWatcher` turns each burst
into one `on_change(path)` call, made only once the file has kept the same size and mtime
for `settle_s`, so a half-written file is never handed over. Events reach it on watchdog's
thread; the settling happens on one timer thread per path, and `on_change` runs on that
timer thread, one call at a time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from watchdog.events import (
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

logger = logging.getLogger(__name__)

# Attribute changes (chmod, touch) and opens/closes, such as the sidecar's own reads of
# the model, are left out here, so inotify is not even asked for them.
_EVENTS: list[type[FileSystemEvent]] = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent]

_Signature = tuple[int, int]
"""A file's size and mtime (ns): equal across the settle time means the write is done."""


def _signature(path: Path) -> _Signature | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


class _Handler(FileSystemEventHandler):
    """Passes the path each counted event leaves written on to the watcher."""

    def __init__(self, notify: Callable[[Path], None]) -> None:
        self._notify = notify

    def on_created(self, event: FileSystemEvent) -> None:
        self._notify(Path(os.fsdecode(event.src_path)))

    def on_modified(self, event: FileSystemEvent) -> None:
        self._notify(Path(os.fsdecode(event.src_path)))

    def on_moved(self, event: FileSystemMovedEvent) -> None:
        self._notify(Path(os.fsdecode(event.dest_path)))


class FileWatcher:
    """Watches a set of files and calls `on_change(path)` once per finished write.

    Deleting a file calls nothing. Calls never overlap, and an exception from
    `on_change` is logged without stopping the watcher. After `close()` returns no call
    starts, and one that was running has finished.
    """

    def __init__(self, on_change: Callable[[Path], None], *, settle_s: float = 0.5) -> None:
        if settle_s < 0:
            raise ValueError(f"settle_s must be >= 0, got {settle_s}")
        self._on_change = on_change
        self._settle_s = settle_s
        self._observer: BaseObserver = Observer()
        self._handler = _Handler(self._on_event)
        self._scheduled: dict[Path, ObservedWatch] = {}
        self._watched: frozenset[Path] = frozenset()
        self._pending: dict[Path, tuple[threading.Timer, _Signature | None]] = {}
        """Per path in mid-write: its timer, and its signature when the timer started."""
        self._closed = False
        # Lock order: `_watch_lock`, then the observer's own lock. `_lock` is never held
        # while calling the observer, because the observer holds its lock while it calls
        # `_on_event`, which takes `_lock`.
        self._watch_lock = threading.Lock()
        self._lock = threading.Lock()
        # Re-entrant so that `on_change` may itself call `close()`.
        self._call_lock = threading.RLock()

    @property
    def watched(self) -> frozenset[Path]:
        """The resolved paths being watched (a path whose directory is missing is not)."""
        return self._watched

    def watch(self, paths: Iterable[Path | str | None]) -> None:
        """Replace the watched set; `None` entries are ignored.

        A file that does not exist yet is watched all the same: creating it counts as a
        write. A file whose directory does not exist is skipped with a warning.
        """
        wanted = frozenset(Path(p).expanduser().resolve() for p in paths if p is not None)
        with self._watch_lock:
            if self._closed:
                raise RuntimeError("this FileWatcher is closed")
            if not self._observer.is_alive():
                self._observer.start()
            directories = {path.parent for path in wanted}
            for directory in self._scheduled.keys() - directories:
                self._observer.unschedule(self._scheduled.pop(directory))
            for directory in sorted(directories - self._scheduled.keys()):
                self._schedule(directory, sorted(p for p in wanted if p.parent == directory))
            watched = frozenset(path for path in wanted if path.parent in self._scheduled)
            with self._lock:
                self._watched = watched
                dropped = [self._pending.pop(p) for p in self._pending.keys() - watched]
        for timer, _ in dropped:
            timer.cancel()

    def _schedule(self, directory: Path, files: list[Path]) -> None:
        names = ", ".join(str(f) for f in files)
        if not directory.is_dir():
            logger.warning("not watching %s: directory %s does not exist", names, directory)
            return
        try:
            self._scheduled[directory] = self._observer.schedule(
                self._handler, str(directory), recursive=False, event_filter=_EVENTS
            )
        except OSError as error:
            logger.warning("not watching %s: cannot watch %s: %s", names, directory, error)

    def close(self) -> None:
        """Stop watching and wait for a call in progress; idempotent."""
        with self._watch_lock:
            with self._lock:
                if self._closed:
                    return
                self._closed = True
                self._watched = frozenset()
                pending = list(self._pending.values())
                self._pending.clear()
            for timer, _ in pending:
                timer.cancel()
            if self._observer.is_alive():
                self._observer.stop()
                self._observer.join()
            self._scheduled.clear()
        with self._call_lock:
            pass

    def __enter__(self) -> FileWatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _on_event(self, path: Path) -> None:
        """On watchdog's thread: (re)start the path's settle timer; never blocks."""
        signature = _signature(path)
        with self._lock:
            if not self._closed and path in self._watched:
                self._restart_timer(path, signature)

    def _restart_timer(self, path: Path, signature: _Signature | None) -> None:
        """Called with `_lock` held."""
        previous = self._pending.get(path)
        if previous is not None:
            previous[0].cancel()
        timer = threading.Timer(self._settle_s, self._settle, args=(path,))
        timer.daemon = True
        self._pending[path] = (timer, signature)
        timer.start()

    def _settle(self, path: Path) -> None:
        """On the path's timer thread: hand the file over if it kept still, else wait on."""
        signature = _signature(path)
        with self._lock:
            entry = self._pending.get(path)
            if entry is None or entry[0] is not threading.current_thread():
                return  # superseded by a later event, dropped, or closed
            if signature is None:  # deleted or renamed away meanwhile
                del self._pending[path]
                return
            if signature != entry[1]:
                self._restart_timer(path, signature)
                return
            del self._pending[path]
        with self._call_lock:
            if self._closed or path not in self._watched:
                return
            try:
                self._on_change(path)
            except Exception:
                logger.exception("on_change(%s) failed", path)
