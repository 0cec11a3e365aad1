"""Code actions and the commands that change the document: insert a segment, prove a
theorem or a whole file by search. Edits go through `workspace/applyEdit` with the document
version they were computed for, so the editor refuses them if the text changed since."""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from segpilot.lean.positions import DocumentPositions, TextPosition
from segpilot.lsp.documents import DocumentSite, site_at, uri_path
from segpilot.lsp.guard import fail, guarded
from segpilot.search.fill import SORRY, Filled, Hole, holes_in
from segpilot.search.ranking import Checked

if TYPE_CHECKING:
    from segpilot.lsp.server import SegpilotServer

log = logging.getLogger(__name__)

INSERT_SEGMENT = "segpilot.insertSegment"
PROVE_THEOREM = "segpilot.proveTheorem"
PROVE_FILE = "segpilot.proveFile"
_SORRY_AHEAD = re.compile(r"sorry(?![\w'!?])")


def position_arg(args: tuple[Any, ...]) -> tuple[str, types.Position | None]:
    """(uri, position) from a command's arguments: `{uri, position?}` or `uri, position?`."""
    first = args[0] if args else None
    if isinstance(first, dict):
        uri, where = first.get("uri"), first.get("position")
    else:
        uri, where = first, args[1] if len(args) > 1 else None
    if not isinstance(uri, str):
        raise fail("the command needs a document uri")
    if where is None:
        return uri, None
    try:
        line, character = where["line"], where["character"]
        if isinstance(line, bool) or isinstance(character, bool):
            raise TypeError
        return uri, types.Position(int(line), int(character))
    except (KeyError, TypeError, ValueError, OverflowError):
        raise fail(f"not a position: {where!r}") from None


@dataclass(frozen=True)
class Placement:
    """Where a suggestion goes at a cursor: the text to insert and how much of the line
    after the typed text it replaces."""

    text: str
    replaced: int
    """Characters after the cursor it replaces (a `sorry` it closes)."""


def placement(found: DocumentSite, item: Checked) -> Placement:
    """A suggestion at the cursor, indented for its column. At a hole (`sorry` right after
    the cursor) a segment that closes the goals replaces the `sorry`; one that does not (or
    that Lean has not checked) goes before it, the `sorry` moved to a line of its own at
    the same column. Never glued to what follows."""
    site = found.site
    text = item.candidate.insert_text(site.column)
    line = found.positions.lines[site.line]  # split once per request, not per item
    rest = line[site.column + len(site.typed) :]
    if not _SORRY_AHEAD.match(rest):
        return Placement(text, 0)
    if item.outcome is not None and item.outcome.kind == "closed":
        return Placement(text, len(SORRY))
    return Placement(text + "\n" + " " * site.column, 0)


def replace_edit(
    uri: str, version: int | None, text: str, hole: Hole, replacement: str, length: int
) -> types.TextDocumentEdit:
    positions = DocumentPositions(text)
    start = positions.text_to_lsp(TextPosition(hole.line, hole.column))
    end = positions.text_to_lsp(TextPosition(hole.line, hole.column + length))
    return types.TextDocumentEdit(
        text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version),
        edits=[
            types.TextEdit(
                range=types.Range(
                    types.Position(start.line, start.character),
                    types.Position(end.line, end.character),
                ),
                new_text=replacement,
            )
        ],
    )


@asynccontextmanager
async def progress(
    ls: SegpilotServer, title: str
) -> AsyncIterator[tuple[Callable[[str, int | None], None], threading.Event]]:
    """Work-done progress the editor shows and may cancel; yields (report, cancelled)
    where `cancelled` is set when the user cancels."""
    cancelled = threading.Event()
    token = f"segpilot-{uuid.uuid4()}"
    capabilities = ls.client_capabilities.window
    enabled = bool(capabilities and capabilities.work_done_progress)
    if enabled:
        try:
            await ls.work_done_progress.create_async(token)
        except Exception as err:  # the client refused: work on without a progress bar
            log.warning("no progress bar: %s", err)
            enabled = False
    if enabled:
        ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=title, cancellable=True, percentage=0)
        )
        ls.work_done_progress.tokens[token].add_done_callback(lambda _f: cancelled.set())

    def report(message: str, percentage: int | None = None) -> None:
        if enabled:
            ls.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    try:
        yield report, cancelled
    finally:
        if enabled:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message="done"))
            ls.work_done_progress.tokens.pop(token, None)


async def apply(ls: SegpilotServer, label: str, edits: list[types.TextDocumentEdit]) -> bool:
    if not edits:
        return False
    reply = await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(
            edit=types.WorkspaceEdit(document_changes=edits), label=label
        )
    )
    if not reply.applied:
        log.warning("the editor refused the edit: %s", reply.failure_reason)
    return bool(reply.applied)


def describe(filled: Filled) -> dict[str, Any]:
    result = filled.result
    return {
        "line": filled.hole.line,
        "character": filled.hole.column,
        "proved": filled.proved,
        "proof": filled.replacement or None,
        "message": filled.message or None,
        "reason": result.reason if result else None,
        "expansions": result.expansions if result else 0,
        "leanCalls": result.lean_calls if result else 0,
        "seconds": round(result.elapsed_s, 2) if result else 0.0,
    }


async def prove(ls: SegpilotServer, uri: str, line: int | None, title: str) -> dict[str, Any]:
    """Search every hole of the theorem at `line` (or of the file when None), then apply
    the proofs found in one edit, if the document did not change meanwhile."""
    engine = ls.require_engine()
    document = ls.workspace.text_documents.get(unquote(uri))
    if document is None:
        raise fail(f"{uri} is not open")
    text, version = document.source, document.version
    project = engine.project_for(uri_path(uri))
    if not engine.checking(project):
        raise fail(f"proof search needs Lean: {engine.unchecked_reason(project)}")
    holes = holes_in(text, line)
    if not holes:
        return {"holes": 0, "proved": 0, "applied": False, "results": []}
    async with progress(ls, title) as (report, cancelled):

        def on_progress(index: int, total: int, done: int, most: int) -> None:
            share = (index + done / max(most, 1)) / total
            where = f"sorry {index + 1} of {total} (line {holes[index].line + 1})"
            report(f"{where}: {done} expansions", int(100 * share))

        try:
            results = await engine.fill_holes(
                project, text, holes, cancel=cancelled, on_progress=on_progress
            )
        except BaseException:
            cancelled.set()
            raise
    proved = [f for f in results if f.proved]
    current = ls.workspace.text_documents.get(unquote(uri))
    unchanged = current is not None and current.version == version
    edits = [
        replace_edit(uri, version, text, f.hole, f.replacement, len(SORRY))
        for f in reversed(proved)
    ]
    applied = unchanged and await apply(ls, f"segpilot: {len(proved)} proof(s)", edits)
    log.info("%s: %d of %d hole(s) proved, applied=%s", title, len(proved), len(holes), applied)
    return {
        "holes": len(holes),
        "proved": len(proved),
        "applied": applied,
        "changedMeanwhile": not unchanged,
        "cancelled": cancelled.is_set(),
        "results": [describe(f) for f in results],
    }


def register(server: SegpilotServer) -> None:
    """Add the code actions and the editing commands to `server`. (pygls resolves the
    handlers' type hints at run time, so they name the base class and use `server`.)"""

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
    )
    @guarded
    def code_action(
        ls: LanguageServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        uri, position = params.text_document.uri, params.range.start
        found = site_at(ls, uri, position)
        if found is None:
            return None
        where = {"uri": uri, "position": {"line": position.line, "character": position.character}}
        kind = types.CodeActionKind.RefactorRewrite
        actions = [
            types.CodeAction(
                title="segpilot: Insert segment",
                kind=kind,
                command=types.Command(
                    title="Insert segment", command=INSERT_SEGMENT, arguments=[where]
                ),
            )
        ]
        if holes_in(found.text, position.line):
            engine = server.require_engine()
            project = engine.project_for(uri_path(uri))
            why = engine.unchecked_reason(project)
            actions.append(
                types.CodeAction(
                    title="segpilot: Complete this proof (search)",
                    kind=kind,
                    command=types.Command(
                        title="Complete this proof", command=PROVE_THEOREM, arguments=[where]
                    ),
                    disabled=types.CodeActionDisabled(reason=f"needs Lean: {why}") if why else None,
                )
            )
        return actions

    @server.command(INSERT_SEGMENT)
    @guarded
    async def insert_segment(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        """Insert the best suggestion at the position (what Tab does with ghost text)."""
        engine = server.require_engine()
        uri, position = position_arg(args)
        if position is None:
            raise fail("insertSegment needs a position")
        found = site_at(ls, uri, position)
        if found is None:
            raise fail("the position is not inside a tactic proof")
        site = found.site
        project = engine.project_for(uri_path(uri))
        goal = await engine.goal_at(project, uri, found.text, site)
        proposal = await engine.suggestions(project, site, goal)
        best = next((i for i in proposal.items if i.candidate.text.startswith(site.typed)), None)
        if best is None:
            return {"inserted": False, "checked": proposal.checked, "reason": proposal.lean_error}
        place = placement(found, best)
        edit = replace_edit(
            uri,
            found.version,
            found.text,
            Hole(site.line, site.column),
            place.text,
            len(site.typed) + place.replaced,
        )
        applied = await apply(server, "segpilot: insert segment", [edit])
        return {"inserted": applied, "text": place.text, "checked": best.outcome is not None}

    @server.command(PROVE_THEOREM)
    @guarded
    async def prove_theorem(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        uri, position = position_arg(args)
        if position is None:
            raise fail("proveTheorem needs a position")
        return await prove(server, uri, position.line, "segpilot: proving the theorem")

    @server.command(PROVE_FILE)
    @guarded
    async def prove_file(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        uri, _position = position_arg(args)
        return await prove(server, uri, None, "segpilot: proving the file")
