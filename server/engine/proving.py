"""Offline proof completion: every `sorry` of some files searched as a proof job, and the
proofs found written back.

The `sorry`s are tactic holes (`sorry` as a whole tactic; a `sorry` inside a term is
reported and left alone). Each becomes a `ProofJob` (best-first search with goal-aware
rollout, each proof re-checked in command mode with its declaration). Before a file is
written, every declaration that gets a proof is checked once more in command mode with the
final text above it: Lean must report no error, and the `sorry`s it still finds there must
be the holes left open (none where a proof was claimed). Write-back replaces only the
`sorry` spans, indented for their column, through `textfiles.replace_file` (atomic, a
backup, refused when the file changed since it was read).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from segpilot.engine.jobs import JobResult, ProofJob, settings_tables
from segpilot.engine.projects import Projects
from segpilot.engine.settings import Settings
from segpilot.errors import SegpilotError
from segpilot.lean.errors import LeanProcessError
from segpilot.lean.project import find_project
from segpilot.lean.source import (
    NotInProof,
    declaration_span,
    line_offset,
    proof_site,
    sorries,
)
from segpilot.search.check import LeanChecker
from segpilot.search.fill import SORRY
from segpilot.textfiles import FileSnapshot, printable, read_snapshot, replace_file

SKIPPED_FOLDERS = frozenset({".lake", ".git", "build", "lake-packages"})


@dataclass
class Target:
    """One file to complete: its text as read, and its tactic holes."""

    path: Path
    text: str
    snapshot: FileSnapshot
    project: Path
    holes: list[tuple[int, int, str]] = field(default_factory=list)
    """(line, column, theorem) of each tactic `sorry`, 0-based."""
    notes: list[str] = field(default_factory=list)
    """Holes left alone, and why."""


@dataclass
class Written:
    """What write-back did with one file."""

    path: Path
    proofs: int
    new_text: str
    backup: Path | None = None
    diff: str = ""
    error: str = ""


def lean_files(paths: Sequence[str | Path]) -> list[Path]:
    """The `.lean` files named, or found below the folders named (build folders skipped)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(
                p
                for p in sorted(path.rglob("*.lean"))
                if not SKIPPED_FOLDERS & set(p.relative_to(path).parts[:-1])
            )
        elif path.exists():
            out.append(path)
        else:
            raise SegpilotError(f"{printable(path)}: no such file or folder")
    return out


def find_targets(
    paths: Sequence[str | Path], *, theorem: str | None = None, project: Path | None = None
) -> list[Target]:
    """The files and their tactic holes (only those of `theorem` when it is given)."""
    targets = []
    for path in lean_files(paths):
        text, snap = read_snapshot(path)
        root = project or find_project(path.resolve().parent) or path.resolve().parent
        target = Target(path, text, snap, root)
        for line, column in sorries(text):
            try:
                site = proof_site(text, line, column)
            except NotInProof as err:
                target.notes.append(f"{printable(path)}:{line + 1}:{column}: {err}")
                continue
            if theorem is not None and site.name != theorem:
                continue
            if site.typed:
                target.notes.append(
                    f"{printable(path)}:{line + 1}:{column}: a sorry inside `{site.typed}`: "
                    "only whole-tactic holes are searched"
                )
                continue
            target.holes.append((line, column, site.name or f"line {line + 1}"))
        targets.append(target)
    return targets


def jobs_for(targets: Iterable[Target], settings: Settings) -> list[ProofJob]:
    """One job per hole, carrying every setting."""
    tables = settings_tables(settings)
    return [
        ProofJob(
            key=f"{target.path}:{line + 1}:{column}",
            theorem=name,
            project=str(target.project),
            path=str(target.path),
            text=target.text,
            line=line,
            column=column,
            settings=tables,
        )
        for target in targets
        for line, column, name in target.holes
    ]


def _offset(text: str, line: int, column: int) -> int:
    return line_offset(text.split("\n"), line, column)


def filled_text(text: str, results: Iterable[JobResult]) -> str:
    """`text` with the `sorry` of every proved result replaced by its proof."""
    spans = sorted(
        ((_offset(text, r.line, r.column), r.replacement) for r in results if r.replacement),
        reverse=True,
    )
    for start, replacement in spans:
        if text[start : start + len(SORRY)] != SORRY:
            raise SegpilotError(f"no sorry at offset {start}: the text is not the one searched")
        text = text[:start] + replacement + text[start + len(SORRY) :]
    return text


def final_check(checker: LeanChecker, text: str, results: Sequence[JobResult]) -> list[JobResult]:
    """Each declaration that gets a proof, checked in command mode within the final text
    (every proof in place, so the text above it is what will be written). A declaration
    Lean refuses loses its proofs: their results become `error`, saying why. Returns the
    results, those refused changed."""
    proved = [r for r in results if r.status == "proved" and r.replacement]
    final = filled_text(text, proved)
    placed = sorted(((_offset(text, r.line, r.column), r) for r in proved), key=lambda p: p[0])

    def moved(offset: int) -> int:
        """Where an offset of `text` is in `final`."""
        return offset + _growth(r for at, r in placed if at < offset)

    by_declaration: dict[tuple[int, int], list[JobResult]] = {}
    for result in proved:
        by_declaration.setdefault(declaration_span(text, result.line), []).append(result)
    refused: dict[str, str] = {}
    for (start, end), members in by_declaration.items():
        header = final[: moved(start)]
        declaration = final[moved(start) : moved(end) if end < len(text) else len(final)]
        why = checker.final_check(header, declaration, sorries(declaration))
        for r in members if why else ():
            refused[r.key] = why
    return [
        replace(r, status="error", message=f"the proof failed the final check: {refused[r.key]}")
        if r.key in refused
        else r
        for r in results
    ]


def _growth(results: Iterable[JobResult]) -> int:
    return sum(len(r.replacement) - len(SORRY) for r in results)


def write_back(
    target: Target, results: Sequence[JobResult], *, dry_run: bool, want_diff: bool
) -> Written:
    """Write the proved results into the file (nothing when `dry_run`)."""
    proved = [r for r in results if r.status == "proved" and r.replacement]
    new_text = filled_text(target.text, proved)
    diff = ""
    if want_diff and proved:
        name = str(target.path)  # as given: `patch -p0` applies it where it was made
        diff = "".join(
            difflib.unified_diff(
                target.text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                name,
                name,
            )
        )
    written = Written(target.path, len(proved), new_text, diff=diff)
    if dry_run or not proved:
        return written
    try:
        written.backup = replace_file(target.path, new_text, expected=target.snapshot)
    except SegpilotError as err:
        written.error = str(err)
    return written


def checked_results(
    projects: Projects, settings: Settings, target: Target, results: Sequence[JobResult]
) -> list[JobResult]:
    """The file's results after the final check (the project's REPL in this process)."""
    if not any(r.status == "proved" for r in results):
        return list(results)
    checker = projects.at_root(target.project).get_checker(settings.lean)
    if checker is None:
        raise LeanProcessError(f"no Lean REPL in {target.project} for the final check")
    return final_check(checker, target.text, results)
