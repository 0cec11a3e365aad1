"""Trace a Lean project: one row per tactic of every proof, with the goals before and after.

Each file goes to the Lean REPL as one command with `allTactics`. Its `tactics` entries
give, for every tactic, a proof state holding all goals open before it (within the focus:
inside `·` or `case` only the focused goal). The goal lists come from those proof states,
never from the entry's `goals` text (real Lean joins the goals there with single newlines,
which cannot be split back): a `skip` on the state lists the goals before, and the
tactic's own source text run on the state lists the goals after.

A proof's trajectory is its outermost tactics, in source order: a tactic nested in another
(the `by` block of a `have`, the alternatives of `induction ... with`, a `calc` step) is
part of that tactic's text, not a step of its own. Declarations that use `sorry`, and
those where a tactic does not replay on its own state, are left out (and counted). A file
Lean reports an error in is left out whole and reported.

Rows (JSON Lines, each declaration's rows together, in order): `file` (relative to the
project), `theorem` (the declaration's name, `example@LINE` for an example; what
`segpilot data segments` groups by), `line`, `column`, `end_line`, `end_column` (the
REPL's positions: 1-based lines, 0-based columns in code points), `tactic` (the source
text, continuation lines dedented by its column), `goals_before`, `goals_after`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from segpilot.errors import SegpilotError
from segpilot.lean.errors import LeanProcessError
from segpilot.lean.lexer import LexError, code_only
from segpilot.lean.protocol import Command, ProofStep, ReplError, TacticInfo
from segpilot.lean.repl import ReplSettings
from segpilot.lean.settings import LeanSettings
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.textfiles import open_output, read_text
from segpilot.training.index import Entry, TraceIndex, index_path

SKIP = "skip"
SORRY_WARNING = re.compile(r"declaration uses [`']sorry[`']")
_DECL = re.compile(
    r"^(?:@\[[^\]]*\]\s*)*(?:(?:private|protected|noncomputable|nonrec|partial|unsafe)\s+)*"
    r"(theorem|lemma|example|def|instance|abbrev|opaque)\b\s*([^\s:({\[]*)"
)
_NAMESPACE = re.compile(r"^(namespace|section|end)\b\s*(\S*)")
IGNORED_DIRS = {".lake", "lake-packages", ".git", "build"}


@dataclass
class FileResult:
    """One file traced: its rows, or why it was skipped, and what was left out."""

    path: str
    sha256: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    with_sorry: int = 0
    not_replayed: int = 0


@dataclass
class Report:
    """What one `trace` run did."""

    traced: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    rows: int = 0
    declarations: int = 0
    with_sorry: int = 0
    not_replayed: int = 0
    changed_rows: list[dict[str, Any]] = field(default_factory=list)
    """The rows of the files traced in this run (what watch cuts into new segments)."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def glob_matcher(pattern: str | None) -> Callable[[str], bool]:
    """Whether a relative path (with `/`) matches a glob: `*` and `?` stay within a folder
    name, `**/` is any number of folders (`MyProj/**/*.lean`); None matches everything."""
    if not pattern:
        return lambda rel: True
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    regex = re.compile("".join(out))
    return lambda rel: regex.fullmatch(rel) is not None


def lean_files(project: Path, pattern: str | None = None) -> list[Path]:
    """The project's `.lean` files (outside `.lake` and other build folders), relative paths
    matching `pattern` (see `glob_matcher`) when given."""
    wanted = glob_matcher(pattern)
    found = []
    for path in sorted(project.rglob("*.lean")):
        rel = path.relative_to(project)
        if any(part in IGNORED_DIRS for part in rel.parts[:-1]):
            continue
        if wanted(rel.as_posix()):
            found.append(path)
    return found


@dataclass(frozen=True)
class Declaration:
    name: str
    line: int  # 1-based line of its header


def declarations(text: str) -> list[Declaration]:
    """The declarations that start at column 0, with namespace-qualified names."""
    try:
        code = code_only(text)
    except LexError:
        code = text
    out: list[Declaration] = []
    spaces: list[tuple[str, str]] = []  # (kind, name) of open namespaces and sections
    for number, line in enumerate(code.split("\n"), 1):
        if not line[:1].strip():
            continue
        ns = _NAMESPACE.match(line)
        if ns:
            kind, name = ns.groups()
            if kind == "end":
                if spaces:
                    spaces.pop()
            else:
                spaces.append((kind, name))
            continue
        m = _DECL.match(line)
        if not m:
            continue
        keyword, name = m.groups()
        if keyword == "example" or (keyword == "instance" and not name):
            out.append(Declaration(f"{keyword}@{number}", number))
            continue
        prefix = ".".join(n for k, n in spaces if k == "namespace" and n)
        out.append(Declaration(f"{prefix}.{name}" if prefix else name, number))
    return out


def _owner(decls: Sequence[Declaration], line: int) -> Declaration | None:
    owner = None
    for decl in decls:
        if decl.line <= line:
            owner = decl
        else:
            break
    return owner


def _offset(lines: list[str], line: int, column: int) -> int:
    return sum(len(x) + 1 for x in lines[: line - 1]) + column


def source_text(text: str, lines: list[str], entry: TacticInfo) -> str:
    """The tactic as written, continuation lines dedented by the tactic's column."""
    assert entry.pos is not None and entry.end_pos is not None
    start = _offset(lines, entry.pos.line, entry.pos.column)
    end = _offset(lines, entry.end_pos.line, entry.end_pos.column)
    first, *rest = text[start:end].split("\n")
    indent = entry.pos.column
    if all(not r.strip() or r[:indent].isspace() or indent == 0 for r in rest):
        rest = [r[indent:] if r.strip() else "" for r in rest]
    return "\n".join([first, *rest]).rstrip()


def outermost(entries: Sequence[TacticInfo]) -> list[TacticInfo]:
    """The entries no other entry contains, in source order."""

    def span(e: TacticInfo) -> tuple[tuple[int, int], tuple[int, int]]:
        assert e.pos is not None and e.end_pos is not None
        return (e.pos.line, e.pos.column), (e.end_pos.line, e.end_pos.column)

    placed = [e for e in entries if e.pos is not None and e.end_pos is not None]
    ordered = sorted(placed, key=lambda e: (span(e)[0], (-span(e)[1][0], -span(e)[1][1])))
    out: list[TacticInfo] = []
    reach: tuple[int, int] | None = None
    for e in ordered:
        start, end = span(e)
        if reach is not None and start < reach:
            continue  # inside the last outermost entry
        if out and span(out[-1]) == (start, end):
            continue
        out.append(e)
        reach = end
    return out


def trace_text(
    repl: SupervisedRepl,
    text: str,
    rel: str,
    *,
    timeout: float | None = None,
    step_timeout: float | None = None,
) -> FileResult:
    """Trace one file's text with a running REPL: the file within `timeout` seconds (its
    imports included), each replayed tactic within `step_timeout`."""
    result = FileResult(rel, sha256_text(text))
    reply = repl.run(Command(cmd=text, all_tactics=True), timeout=timeout)
    if isinstance(reply, ReplError):
        result.error = " ".join(reply.message.split())[:300]
        return result
    errors = [m for m in reply.messages if m.is_error]
    if errors:
        first = errors[0]
        where = f"{first.pos.line}:{first.pos.column}: " if first.pos else ""
        result.error = (where + " ".join(first.data.split()))[:300]
        return result
    lines = text.split("\n")
    decls = declarations(text)
    with_sorry: set[str] = set()
    for message in reply.messages:
        if message.pos is not None and SORRY_WARNING.search(message.data):
            owner = _owner(decls, message.pos.line)
            if owner:
                with_sorry.add(owner.name)
    by_decl: dict[str, list[TacticInfo]] = {}
    for entry in reply.tactics:
        if entry.pos is None or entry.proof_state is None:
            continue
        owner = _owner(decls, entry.pos.line)
        if owner is not None and owner.name not in with_sorry:
            by_decl.setdefault(owner.name, []).append(entry)
    result.with_sorry = len(with_sorry)
    for name, entries in by_decl.items():
        rows = _replay(repl, text, lines, name, rel, outermost(entries), step_timeout)
        if rows is None:
            result.not_replayed += 1
        else:
            result.rows.extend(rows)
    return result


def _replay(
    repl: SupervisedRepl,
    text: str,
    lines: list[str],
    name: str,
    rel: str,
    entries: Sequence[TacticInfo],
    timeout: float | None,
) -> list[dict[str, Any]] | None:
    """The rows of one declaration, or None when a tactic does not replay cleanly."""
    rows = []
    for entry in entries:
        assert entry.pos is not None and entry.end_pos is not None and entry.proof_state is not None
        tactic = source_text(text, lines, entry)
        if not tactic.strip():
            return None
        before = repl.run(ProofStep(SKIP, entry.proof_state), timeout=timeout)
        after = repl.run(ProofStep(tactic, entry.proof_state), timeout=timeout)
        if isinstance(before, ReplError) or isinstance(after, ReplError):
            return None
        if before.has_errors or after.has_errors or after.sorries:
            return None
        rows.append(
            {
                "file": rel,
                "theorem": name,
                "line": entry.pos.line,
                "column": entry.pos.column,
                "end_line": entry.end_pos.line,
                "end_column": entry.end_pos.column,
                "tactic": tactic,
                "goals_before": list(before.goals),
                "goals_after": list(after.goals),
            }
        )
    return rows


class _Workers:
    """One supervised REPL per worker thread, closed together."""

    def __init__(self, settings: ReplSettings) -> None:
        self.settings = settings
        self.local = threading.local()
        self.all: list[SupervisedRepl] = []
        self.lock = threading.Lock()

    def repl(self) -> SupervisedRepl:
        repl = getattr(self.local, "repl", None)
        if repl is None:
            repl = SupervisedRepl(self.settings)
            self.local.repl = repl
            with self.lock:
                self.all.append(repl)
        return repl

    def close(self) -> None:
        for repl in self.all:
            repl.close()


def trace_project(
    project: Path,
    output: Path,
    lean: LeanSettings,
    *,
    pattern: str | None = None,
    only: Iterable[Path] | None = None,
    workers: int = 1,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> Report:
    """Trace the project's changed files into `output` (rewritten whole, atomically, from
    the index beside it). `only`: trace just these files (watch passes the saved ones)."""
    project = project.resolve()
    files = lean_files(project, pattern) if only is None else [p.resolve() for p in only]
    report = Report()
    texts: dict[str, str] = {}
    for path in files:
        if not path.is_file():
            continue
        rel = str(path.relative_to(project))
        try:
            texts[rel] = read_text(path)
        except SegpilotError as err:  # not UTF-8, unreadable: that file alone is skipped
            report.failed[rel] = str(err)
    with TraceIndex(index_path(output)) as index:
        known = index.hashes()
        if only is None:
            report.removed = sorted(set(known) - set(texts) - set(report.failed))
            index.forget(report.removed)
        todo = [rel for rel, text in texts.items() if known.get(rel) != sha256_text(text)]
        report.unchanged = len(texts) - len(todo)
        if todo:
            # No recycling after N requests while tracing: a recycled REPL would elaborate
            # the whole file again to replay its proof states (the memory cap still holds).
            repl_settings = replace(ReplSettings.from_lean(lean, project), recycle_after=None)
            pool = _Workers(repl_settings)
            try:
                with ThreadPoolExecutor(max_workers=max(1, workers)) as executor:
                    futures = {
                        executor.submit(
                            lambda rel: trace_text(
                                pool.repl(),
                                texts[rel],
                                rel,
                                timeout=lean.elaboration_timeout_s,
                                step_timeout=lean.repl_timeout_s,
                            ),
                            rel,
                        ): rel
                        for rel in todo
                    }
                    done = as_completed(futures)
                    for future in progress(done, len(todo)) if progress else done:
                        rel = futures[future]
                        try:
                            result = future.result()
                        except LeanProcessError as err:
                            # No hash: a crash or a timeout is tried again next time.
                            result = FileResult(rel, "", error=str(err))
                        _record(index, result, report)
            finally:
                pool.close()
        with open_output(output) as out:
            import json

            for entry in index.entries():
                for row in entry.rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    report.rows += 1
                report.declarations += len({r["theorem"] for r in entry.rows})
    return report


def _record(index: TraceIndex, result: FileResult, report: Report) -> None:
    if result.error:
        report.failed[result.path] = result.error
        index.put(Entry(result.path, result.sha256, "failed", result.error, []))
        return
    index.put(Entry(result.path, result.sha256, "traced", "", result.rows))
    report.traced.append(result.path)
    report.with_sorry += result.with_sorry
    report.not_replayed += result.not_replayed
    report.changed_rows.extend(result.rows)


def require_project(project: Path) -> Path:
    if not project.is_dir():
        raise SegpilotError(f"{project}: no such project folder")
    return project
