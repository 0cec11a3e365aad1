"""A steps file -> a segments file (`segpilot data segments`), on one process or several.

One process reads the rows in order and writes each trajectory's segments as soon as the
next trajectory starts (`read_trajectories(streaming=True)`); when the rows of a trajectory
turn out not to be together, it reads the input again with every trajectory in memory.

Several processes (`workers` > 1 and a regular input file of `PARALLEL_MIN_BYTES` or more)
write what one process writes, byte for byte. The file is cut into byte ranges at line
starts, one per process, and:

- a process reads its own lines, then goes on past its range's end for the rows of the
  trajectory still open there (up to the first row of another trajectory), so the
  trajectory in progress at a cut is completed by the range it started in;
- the first trajectory of a range may be the rest of that one: a process returns it (its
  "head") unwritten, and the parent writes it only when its key differs from the key of
  the trajectory the ranges before completed last;
- bad rows belong to the range their line is in, numbered from its first line; the
  parent shifts them by the lines of the ranges before;
- a key held by two ranges (other than that continuation) means the rows of a trajectory
  are not together: the parent then does what one process does in that case.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from segpilot import textfiles
from segpilot.errors import SegpilotError
from segpilot.segments import (
    BadRow,
    NotContiguous,
    Trajectory,
    build_segments,
    read_trajectories,
    trajectory_key,
)

# Inputs at least this large get a progress bar when stderr is a terminal.
PROGRESS_MIN_BYTES = 8 << 20
# Smaller inputs are cut on one process: starting others costs more than they save.
PARALLEL_MIN_BYTES = 64 << 20
# What JSONEncoder(ensure_ascii=False) writes for a str, without its per-call set-up (for a
# list it builds a whole encoder each time).
_encode_string = json.encoder.encode_basestring
# Workers add to the shared byte count (the progress bar) once per this many bytes read.
_PROGRESS_STEP = 4 << 20


@dataclass(frozen=True)
class CutJob:
    """What to cut and how (picklable: it goes to every worker)."""

    input: Path
    group_by: tuple[str, ...]
    rule: str
    max_tactics: int
    strict: bool


@dataclass
class CutReport:
    bad: list[BadRow] = field(default_factory=list)
    steps: int = 0
    trajectories: int = 0
    segments: int = 0
    workers: int = 1

    def add(self, trajectory: Trajectory, segments: int) -> None:
        self.steps += len(trajectory.steps)
        self.trajectories += 1
        self.segments += segments


class SegmentWriter:
    """Writes the segments of one trajectory as JSON lines: the group-by fields with their
    input values, then `segments.OUTPUT_FIELDS` in order (`Segment.as_dict`, written by
    hand: `json.dumps` builds an encoder per call, and the group-by part is the same for
    every segment of a trajectory)."""

    def __init__(self, job: CutJob) -> None:
        self._job = job
        self._encode = json.JSONEncoder(ensure_ascii=False).encode

    def write(self, out: IO[str], trajectory: Trajectory) -> int:
        """Write the trajectory's segments to `out`; how many there were."""
        string = _encode_string
        head = self._encode(dict(zip(self._job.group_by, trajectory.key, strict=True)))[:-1]
        segments = build_segments(trajectory.steps, self._job.rule, self._job.max_tactics)
        out.write(
            "".join(
                f'{head}, "start": {s.start}, "end": {s.end}, "n_goals_before": '
                f'{s.n_goals_before}, "n_goals_after": {s.n_goals_after}, "tactics": '
                f'[{", ".join(map(string, s.tactics))}], "state": {string(s.state)}, '
                f'"target": {string(s.target)}}}\n'
                for s in segments
            )
        )
        return len(segments)


def cut_file(
    job: CutJob, output: str, *, bad_rows: Path | None = None, workers: int = 1
) -> CutReport:
    """Cut `job.input` into `output` (`-` is stdout); see the module docstring."""
    # Streaming keeps memory to the longest trajectory; it needs a regular output file
    # (a second pass replaces it whole when the input's trajectories turn out scattered).
    streaming = output != "-" and (not os.path.exists(output) or os.path.isfile(output))
    with textfiles.open_lines(job.input) as lines:  # opened once: it may be a FIFO
        _check_paths(lines, output, bad_rows)
        if streaming and workers > 1 and lines.size >= PARALLEL_MIN_BYTES:
            report = _cut_in_ranges(job, output, lines.size, workers)
            if report is not None:
                return report
            streaming = False
        try:
            return _cut_serially(job, lines, output, streaming)
        except NotContiguous:
            pass
    with textfiles.open_lines(job.input) as lines:
        return _cut_serially(job, lines, output, False)


def _check_paths(source: textfiles.InputLines, output: str, bad_rows: Path | None) -> None:
    """Refuse, before any work, outputs that would overwrite the input or cannot be written."""
    if bad_rows is not None and (
        str(bad_rows) in ("-", output)
        or (output != "-" and os.path.realpath(bad_rows) == os.path.realpath(output))
    ):
        raise SegpilotError("--bad-rows needs a file of its own, not the output")
    targets: list[str | Path] = [output] if output != "-" else []
    targets += [bad_rows] if bad_rows is not None else []
    for target in targets:
        if source.is_same_file(target):
            raise SegpilotError(
                f"{textfiles.printable(target)} is the input file; refusing to overwrite it"
            )
        textfiles.check_output(target)


def _strict_failure(bad: BadRow) -> SegpilotError:
    return SegpilotError(str(bad), fix="without --strict, bad rows are skipped")


def _cut_serially(
    job: CutJob, lines: textfiles.InputLines, output: str, streaming: bool
) -> CutReport:
    """One pass on this process: read, cut, write."""
    report = CutReport()
    writer = SegmentWriter(job)
    checked = _LoneSurrogates(_progress(lines, lines.size))
    with textfiles.open_output(output) as out:
        found = read_trajectories(checked, job.group_by, streaming=streaming)
        for item in checked.in_order(found):
            if isinstance(item, BadRow):
                if job.strict:
                    raise _strict_failure(item)
                report.bad.append(item)
                continue
            report.add(item, writer.write(out, item))
    return report


def _progress(lines: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The lines, drawing a progress bar (by bytes) on stderr for large inputs on a terminal."""
    if size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield from lines
        return
    from tqdm import tqdm

    with tqdm(total=size, unit="B", unit_scale=True, desc="reading", file=sys.stderr) as bar:
        for line in lines:
            bar.update(len(line))
            yield line


# A JSON escape of a lone surrogate (\ud800-\udfff); valid pairs are checked and pass.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _LoneSurrogates:
    """Lines whose JSON strings hold a lone surrogate (`"\\udcff"`) become bad rows here.

    Such JSON parses, but no UTF-8 text can hold the string, so the segment could not be
    written out. The line itself goes on as a blank line, which the reader skips while
    counting it, so line numbers stay right. `pending` collects the bad rows; `in_order`
    merges them with the reader's: the reader yields a bad row only after reading its line,
    so every pending row is from an earlier line.
    """

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = lines
        self.pending: list[BadRow] = []

    def __iter__(self) -> Iterator[bytes]:
        for number, line in enumerate(self._lines, 1):
            if b"\\u" in line and _SURROGATE_ESCAPE.search(line):
                surrogate = _lone_surrogate(line)
                if surrogate is not None:
                    self.pending.append(
                        BadRow(number, f"not UTF-8 text (a JSON string holds {surrogate})")
                    )
                    yield b""
                    continue
            yield line

    def in_order(self, items: Iterable[Trajectory | BadRow]) -> Iterator[Trajectory | BadRow]:
        for item in items:
            if self.pending:
                yield from self.pending
                self.pending.clear()
            yield item
        yield from self.pending
        self.pending.clear()


def _lone_surrogate(line: bytes) -> str | None:
    """The first lone surrogate (printed as `\\uXXXX`) in the row's strings, if any."""
    try:
        todo = [json.loads(line.decode("utf-8-sig"))]
    except ValueError:
        return None  # not UTF-8 or not JSON: the reader reports it
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            todo.extend(value)
            todo.extend(value.values())
        elif isinstance(value, list):
            todo.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                return f"\\u{ord(value[err.start]):04x}"
    return None


# --- Several processes ------------------------------------------------------------------


@dataclass
class _RangeResult:
    """What a worker found in its range (its other trajectories are in its part file)."""

    lines: int = 0
    head: Trajectory | None = None
    last_key: tuple[Any, ...] | None = None
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    report: CutReport = field(default_factory=CutReport)
    scattered: bool = False
    error: str | None = None


def _cut_in_ranges(job: CutJob, output: str, size: int, workers: int) -> CutReport | None:
    """Cut on `workers` processes; None when the rows of a trajectory are not together."""
    starts = [size * i // workers for i in range(workers)]
    ranges = list(zip(starts, [*starts[1:], size], strict=True))
    context = multiprocessing.get_context("spawn")
    done_bytes = context.Value("q", 0)
    folder = os.path.dirname(os.path.abspath(output))
    try:
        holder = tempfile.TemporaryDirectory(prefix=".segpilot-parts-", dir=folder)
    except OSError as err:
        raise SegpilotError(
            f"cannot write in {textfiles.printable(folder)}: {err.strerror}"
        ) from None
    with holder as parts:
        pool = context.Pool(len(ranges), initializer=_worker_init, initargs=(done_bytes,))
        try:
            pending = [
                pool.apply_async(
                    _cut_range, (job, start, end, i == 0, os.path.join(parts, f"{i}.jsonl"))
                )
                for i, (start, end) in enumerate(ranges)
            ]
            results = _wait_with_progress(pending, done_bytes, size)
            pool.close()
        finally:
            pool.terminate()  # Ctrl-C or an error: the workers stop now, not at their end
            pool.join()
        for result in results:
            if result.error is not None:
                raise SegpilotError(result.error)
        return _merge(job, output, results, parts)


def _wait_with_progress(pending: list[Any], done_bytes: Any, size: int) -> list[_RangeResult]:
    bar = None
    if size >= PROGRESS_MIN_BYTES and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc="reading", file=sys.stderr)
    try:
        while not all(p.ready() for p in pending):
            time.sleep(0.2)
            if bar is not None:
                bar.update(done_bytes.value - bar.n)
        if bar is not None:
            bar.update(size - bar.n)
        return [p.get() for p in pending]
    finally:
        if bar is not None:
            bar.close()


def _merge(job: CutJob, output: str, results: list[_RangeResult], parts: str) -> CutReport | None:
    """Check that no trajectory spans two ranges but by continuation; write the output."""
    seen: set[tuple[Any, ...]] = set()
    open_key: tuple[Any, ...] | None = None
    offset = 0
    report = CutReport(workers=len(results))
    heads: list[Trajectory | None] = []
    for result in results:
        if result.scattered:
            return None
        keys = result.keys
        head = result.head
        if head is not None and trajectory_key(head.key) == open_key:
            keys = keys - {open_key}
            head = None  # the previous ranges completed this trajectory
        if not seen.isdisjoint(keys):
            return None
        seen |= keys
        if result.last_key is not None:
            open_key = result.last_key
        report.bad += [BadRow(b.line + offset, b.reason) for b in result.report.bad]
        offset += result.lines
        heads.append(head)
    if job.strict and report.bad:
        raise _strict_failure(report.bad[0])
    writer = SegmentWriter(job)
    with textfiles.open_output(output) as out:
        for i, (head, result) in enumerate(zip(heads, results, strict=True)):
            if head is not None:
                report.add(head, writer.write(out, head))
            out.flush()
            with open(os.path.join(parts, f"{i}.jsonl"), "rb") as part:
                shutil.copyfileobj(part, out.buffer, 1 << 20)
            report.steps += result.report.steps
            report.trajectories += result.report.trajectories
            report.segments += result.report.segments
    return report


_done_bytes: Any = None


def _worker_init(done_bytes: Any) -> None:
    """Ctrl-C is the parent's to handle (it stops the workers); the byte count is shared."""
    global _done_bytes
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _done_bytes = done_bytes


def _cut_range(job: CutJob, start: int, end: int, first: bool, part: str) -> _RangeResult:
    """A worker: cut the lines that start in [start, end), writing to `part`."""
    result = _RangeResult()
    try:
        with open(job.input, "rb") as fh, open(part, "w", encoding="utf-8", newline="") as out:
            _cut_open_range(job, fh, start, end, first, out, result)
    except OSError as err:  # reading the input, or writing the part beside the output
        result.error = f"while cutting {textfiles.printable(job.input)}: {err.strerror or err}"
    except NotContiguous:
        result.scattered = True
    return result


def _cut_open_range(
    job: CutJob,
    fh: IO[bytes],
    start: int,
    end: int,
    first: bool,
    out: IO[str],
    result: _RangeResult,
) -> None:
    if start > 0:
        fh.seek(start - 1)
        fh.readline()  # the rest of the line holding byte start - 1: that line is not ours
    own = _OwnLines(fh, end)
    checked = _LoneSurrogates(own)
    writer = SegmentWriter(job)
    found = read_trajectories(checked, job.group_by, streaming=True, at_start=first)
    last: Trajectory | None = None
    for item in checked.in_order(found):
        if isinstance(item, BadRow):
            result.report.bad.append(item)
            if job.strict:
                return
            continue
        if last is not None:
            _finish(writer, out, last, result)
        last = item
    result.lines = own.count
    if last is None:
        return
    _complete(job, fh, last)  # the rows of the last trajectory past the range's end
    key = trajectory_key(last.key)
    result.last_key = key
    if result.head is None:
        result.head = last
        result.keys.add(key)
    else:
        _finish(writer, out, last, result)


def _finish(
    writer: SegmentWriter, out: IO[str], trajectory: Trajectory, result: _RangeResult
) -> None:
    """A trajectory of this range is complete: the first is the head, the rest are written."""
    result.keys.add(trajectory_key(trajectory.key))
    if result.head is None:
        result.head = trajectory
    else:
        result.report.add(trajectory, writer.write(out, trajectory))


def _complete(job: CutJob, fh: IO[bytes], last: Trajectory) -> None:
    """Append to `last` the steps of the rows after the range that belong to it."""
    key = trajectory_key(last.key)
    found = read_trajectories(_LoneSurrogates(fh), job.group_by, streaming=True, at_start=False)
    for item in found:
        if isinstance(item, BadRow):
            continue  # the next range's to report
        if trajectory_key(item.key) == key:
            last.steps.extend(item.steps)
        return


class _OwnLines:
    """The lines of an open file that start before `end`, counted, the shared byte count
    kept up to date."""

    def __init__(self, fh: IO[bytes], end: int) -> None:
        self._fh = fh
        self._end = end
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        readline, end = self._fh.readline, self._end
        position = reported = self._fh.tell()
        while position < end:
            line = readline()
            if not line:
                break
            self.count += 1
            yield line
            position += len(line)
            if position - reported >= _PROGRESS_STEP:
                _add_progress(position - reported)
                reported = position
        _add_progress(position - reported)


def _add_progress(n: int) -> None:
    if _done_bytes is not None and n > 0:
        with _done_bytes.get_lock():
            _done_bytes.value += n
