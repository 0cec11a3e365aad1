"""`segpilot watch`: keep the training data current while you write proofs, and retrain.

A watchdog observer sees `.lean` files saved under the project; once no save has come for
`debounce_s`, the saved files (and only they) are traced again. The segments file is
rebuilt from the trace, so a changed proof replaces its old segments rather than adding
to them; the new segments of the saved files are counted, and once `retrain_after` have
come together the adapter is trained again, starting from the last adapter's weights, and
exported over the old GGUF file. A sidecar serving that file reloads it by itself (its
hot reload sees the file rewritten).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from segpilot.engine.settings import Settings
from segpilot.training.finetune import Paths, cut_segments, segments_of_rows
from segpilot.training.trace import IGNORED_DIRS, Report, glob_matcher, trace_project


@dataclass
class Step:
    """What one batch of saves led to."""

    files: list[str]
    report: Report
    new_segments: int
    pending: int
    retrained: bool


class Watch:
    """The work folder of one watched project, and what to do when files are saved."""

    def __init__(
        self,
        project: Path,
        workdir: Path,
        settings: Settings,
        *,
        pattern: str | None = None,
        workers: int = 1,
        log: Callable[[str], None] = lambda s: None,
        retrain: Callable[[], None] | None = None,
    ) -> None:
        self.project = project.resolve()
        self.paths = Paths(workdir)
        self.settings = settings
        self.pattern = pattern
        self.workers = workers
        self.log = log
        self.retrain = retrain or self._retrain
        self.pending = 0
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> Report:
        """Trace whatever changed since the last run (everything the first time)."""
        report = trace_project(
            self.project,
            self.paths.trace,
            self.settings.lean,
            pattern=self.pattern,
            workers=self.workers,
        )
        self._recut()
        self.pending += segments_of_rows(report.changed_rows, *self._rule())
        return report

    def saved(self, files: Iterable[Path]) -> Step:
        """Re-trace the saved files alone; retrain when enough new segments came."""
        chosen = sorted({f.resolve() for f in files if self._wanted(f)})
        report = trace_project(
            self.project, self.paths.trace, self.settings.lean, only=chosen, workers=self.workers
        )
        self._recut()
        new = segments_of_rows(report.changed_rows, *self._rule())
        self.pending += new
        retrained = False
        if self.pending >= self.settings.training.retrain_after:
            self.log(f"{self.pending} new segments: training again")
            self.retrain()
            self.pending = 0
            retrained = True
        names = [str(p.relative_to(self.project)) for p in chosen]
        return Step(names, report, new, self.pending, retrained)

    def _rule(self) -> tuple[str, int]:
        return self.settings.training.rule, self.settings.training.max_tactics

    def _recut(self) -> None:
        cut_segments(self.paths.trace, self.paths.segments, *self._rule())

    def _wanted(self, path: Path) -> bool:
        try:
            rel = path.resolve().relative_to(self.project)
        except ValueError:
            return False
        if path.suffix != ".lean" or any(p in IGNORED_DIRS for p in rel.parts[:-1]):
            return False
        return glob_matcher(self.pattern)(rel.as_posix())

    def _retrain(self) -> None:
        """Split, train from the last adapter (when there is one), export over the old GGUF."""
        from segpilot.errors import SegpilotError
        from segpilot.training.adapter import train
        from segpilot.training.export import export_adapter
        from segpilot.training.split import split_file

        ts = self.settings.training
        valid: Path | None = self.paths.valid
        try:
            if ts.valid_share <= 0:
                raise SegpilotError("[training] valid_share is 0")
            split_file(
                self.paths.segments,
                self.paths.train,
                self.paths.valid,
                share=ts.valid_share,
                seed=ts.seed,
                by=("file", "theorem"),
            )
        except SegpilotError:
            self.paths.train.write_bytes(self.paths.segments.read_bytes())
            valid = None
        last = self.paths.adapter
        init = last if (last / "adapter_model.safetensors").is_file() else None
        train(
            self.paths.train,
            self.paths.adapter,
            self.settings,
            valid=valid,
            init_from=init,
            rule=ts.rule,
            log=self.log,
            progress_bar=False,
        )
        export_adapter(self.paths.adapter, self.paths.gguf, ts.export_type)
        self.log(f"exported {self.paths.gguf}")


class _Saves(FileSystemEventHandler):
    def __init__(self, note: Callable[[Path], None]) -> None:
        self.note = note

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in ("created", "modified", "moved") or event.is_directory:
            return
        raw = getattr(event, "dest_path", "") or event.src_path
        path = Path(raw if isinstance(raw, str) else raw.decode())
        if path.suffix == ".lean":
            self.note(path)


class Debounced:
    """Collects saved `.lean` paths from watchdog and hands them over in batches, once no
    save has come for `debounce_s` (an editor's save is several events)."""

    def __init__(self, root: Path, debounce_s: float, handle: Callable[[set[Path]], None]):
        self.root = root
        self.debounce_s = debounce_s
        self.handle = handle
        self._paths: set[Path] = set()
        self._last = 0.0
        self._cond = threading.Condition()
        self._stop = False
        self._observer = Observer()
        self._thread = threading.Thread(target=self._loop, name="segpilot-watch", daemon=True)

    def _note(self, path: Path) -> None:
        with self._cond:
            self._paths.add(path)
            self._last = time.monotonic()
            self._cond.notify()

    def start(self) -> None:
        self._observer.schedule(_Saves(self._note), str(self.root), recursive=True)
        self._observer.start()
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._observer.stop()
        self._observer.join(timeout=5)
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._paths:
                    self._cond.wait()
                if self._stop:
                    return
                quiet = time.monotonic() - self._last
                if quiet < self.debounce_s:
                    self._cond.wait(self.debounce_s - quiet)
                    continue
                batch, self._paths = self._paths, set()
            self.handle(batch)
