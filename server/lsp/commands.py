"""Code actions and the commands that change the document: insert a segment, prove a
theorem or a whole file by search. Edits go through `workspace/applyEdit` with the document
version they were computed for, so the editor refuses them if the text changed since."""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, cast

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer

from segpilot.lean.errors import LeanProcessError
from segpilot.lean.positions import DocumentPositions, TextPosition
from segpilot.lsp.documents import site_at, uri_path
from segpilot.search.fill import Filled, Hole, fill, holes_in
from segpilot.search.prove import SearchBudget

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from segpilot.lsp.server import SegpilotServer

log = logging.getLogger(__name__)

INSERT_SEGMENT = "segpilot.insertSegment"
PROVE_THEOREM = "segpilot.proveTheorem"
PROVE_FILE = "segpilot.proveFile"
_REQUEST_FAILED = -32803


def fail(message: str, code: int = _REQUEST_FAILED) -> JsonRpcException:
    """The error a request answers with (default: RequestFailed)."""
    return JsonRpcException.from_error(
        types.ResponseError(code=code, message=f"segpilot: {message}")
    )


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
        return uri, types.Position(int(where["line"]), int(where["character"]))
    except (KeyError, TypeError, ValueError):
        raise fail(f"not a position: {where!r}") from None


@asynccontextmanager
async def progress(ls: SegpilotServer, title: str) -> AsyncIterator[tuple[Callable, Any]]:
    """Work-done progress the editor shows and may cancel; yields (report, cancelled)
    where `cancelled` is a threading.Event set when the user cancels."""
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
    session = ls.require_session()
    document = ls.workspace.text_documents.get(uri)
    if document is None:
        raise fail(f"{uri} is not open")
    text, version = document.source, document.version
    project = session.project_for(uri_path(uri))
    checker = session.checker(project)
    if checker is None:
        why = "checking is off" if not session.settings.checking else "no Lean found"
        raise fail(f"proof search needs Lean ({why}); see `segpilot doctor`")
    holes = holes_in(text, line)
    if not holes:
        return {"holes": 0, "proved": 0, "applied": False, "results": []}
    budget = SearchBudget(
        wall_s=session.settings.prove_budget_s,
        expansions=session.settings.prove_expansions,
        k=session.policy.settings.k,
        rollout_depth=max(1, session.settings.rollout_depth),
        trigger=session.settings.prefetch_trigger,  # type: ignore[arg-type]
    )
    results: list[Filled] = []
    async with progress(ls, title) as (report, cancelled):
        for index, hole in enumerate(holes):
            if cancelled.is_set():
                break
            report(f"sorry {index + 1} of {len(holes)} (line {hole.line + 1})")

            def on_progress(done: int, most: int, _s: float, index: int = index) -> None:
                share = (index + done / max(most, 1)) / len(holes)
                report(f"sorry {index + 1} of {len(holes)}: {done} expansions", int(100 * share))

            try:
                filled = await asyncio.to_thread(
                    fill,
                    session.policy,
                    checker,
                    text,
                    hole,
                    budget,
                    cancel=cancelled,
                    on_progress=on_progress,
                )
            except asyncio.CancelledError:
                cancelled.set()
                raise
            except LeanProcessError as err:
                session.note_error(f"proof search: Lean failed: {err}")
                filled = Filled(hole, None, message=f"Lean failed: {err}")
            results.append(filled)
    proved = [f for f in results if f.proved]
    current = ls.workspace.text_documents.get(uri)
    unchanged = current is not None and current.version == version
    edits = [
        replace_edit(uri, version, text, f.hole, f.replacement, len("sorry"))
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
    """Add the code actions and the editing commands to `server`."""

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite]),
    )
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
                command=types.Command("Insert segment", INSERT_SEGMENT, [where]),
            )
        ]
        if holes_in(found.text, position.line):
            actions.append(
                types.CodeAction(
                    title="segpilot: Complete this proof (search)",
                    kind=kind,
                    command=types.Command("Complete this proof", PROVE_THEOREM, [where]),
                )
            )
        return actions

    @server.command(INSERT_SEGMENT)
    async def insert_segment(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        """Insert the best suggestion at the position (what Tab does with ghost text)."""
        session = cast("SegpilotServer", ls).require_session()
        uri, position = position_arg(args)
        if position is None:
            raise fail("insertSegment needs a position")
        found = site_at(ls, uri, position)
        if found is None:
            raise fail("the position is not inside a tactic proof")
        text, version, site, _positions = found
        project = session.project_for(uri_path(uri))
        goal = await session.goal_at(project, uri, text, site, None)
        proposal = await session.suggestions(project, site, goal)
        best = next((i for i in proposal.items if i.candidate.text.startswith(site.typed)), None)
        if best is None:
            return {"inserted": False, "checked": proposal.checked}
        hole = Hole(site.line, site.column)
        insert = best.candidate.insert_text(site.column)
        edit = replace_edit(uri, version, text, hole, insert, len(site.typed))
        applied = await apply(cast("SegpilotServer", ls), "segpilot: insert segment", [edit])
        return {"inserted": applied, "text": insert, "checked": best.outcome is not None}

    @server.command(PROVE_THEOREM)
    async def prove_theorem(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        uri, position = position_arg(args)
        if position is None:
            raise fail("proveTheorem needs a position")
        return await prove(
            cast("SegpilotServer", ls), uri, position.line, "segpilot: proving the theorem"
        )

    @server.command(PROVE_FILE)
    async def prove_file(ls: LanguageServer, *args: Any) -> dict[str, Any]:
        uri, _position = position_arg(args)
        return await prove(cast("SegpilotServer", ls), uri, None, "segpilot: proving the file")
