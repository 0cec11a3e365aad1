"""The pygls server: LSP methods in, `Engine` calls, lsprotocol types out.

Handlers are thin: they parse and check the request, ask the engine, and convert. Every
handler is `guarded`: bad input gets an empty result or an LSP error with a log line, and
an unexpected failure is answered as RequestFailed and shown in `segpilot/status`, never
as an Internal Error; nothing a client sends may stop the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidRequest
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from segpilot import __version__
from segpilot.engine.goals import GoalAt
from segpilot.engine.service import Engine
from segpilot.engine.settings import Settings, editor_overrides, load_settings
from segpilot.errors import SegpilotError
from segpilot.lean.positions import LspPosition, utf16_length
from segpilot.lean.source import ProofSite
from segpilot.lsp import workspace_commands
from segpilot.lsp.documents import ClientGoals, DocumentSite, DocumentState, site_at, uri_path
from segpilot.lsp.guard import fail, guarded
from segpilot.lsp.watch import FileWatcher
from segpilot.lsp.workspace_commands import placement
from segpilot.search.check import LeanState
from segpilot.search.ranking import Checked
from segpilot.search.suggest import Proposal

log = logging.getLogger(__name__)

GOAL_STATE = "segpilot/goalState"
STATUS = "segpilot/status"
ACCEPTED = "segpilot.suggestionAccepted"
RELOAD_MODEL = "segpilot.reloadModel"
# An edit waits this long for the next keystroke before Lean is asked about it.
PROBE_DELAY_S = 0.3
_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600
_METHOD_NOT_FOUND = -32601
_INVALID_PARAMS = -32602
_INTERNAL_ERROR = -32603
_NOT_INITIALIZED = -32002


class SegpilotProtocol(LanguageServerProtocol):
    """pygls's protocol, answering requests it cannot read instead of dropping them, and
    keeping the goals a client may put in an inline-completion request's context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_goals: dict[Any, list[str]] = {}

    def structure_message(self, data: dict[str, Any]) -> Any:
        if "jsonrpc" not in data:  # an inner object: structured with its message
            return data
        msg_id, method = data.get("id"), data.get("method")
        bad_id = "id" in data and (
            isinstance(msg_id, bool) or not isinstance(msg_id, (str, int, type(None)))
        )
        if bad_id or ("method" in data and not isinstance(method, str)):
            self._invalid_request(None if bad_id else msg_id)
            raise JsonRpcInvalidRequest("id or method of the wrong type")
        if "method" in data and data.get("params") is None:
            data = {**data, "params": None}
        known = types.METHOD_TO_TYPES.get(str(data.get("method")))
        if "id" in data and known is not None and known[0].__name__.endswith("Notification"):
            self._invalid_request(data["id"])  # a notification's method, sent as a request
            raise JsonRpcInvalidRequest(f"{data['method']} is a notification, not a request")
        params = data.get("params")
        if data.get("method") == types.TEXT_DOCUMENT_INLINE_COMPLETION and isinstance(params, dict):
            context = params.get("context")
            goals = context.get("goals") if isinstance(context, dict) else None
            if isinstance(goals, list) and all(isinstance(g, str) for g in goals):
                self.request_goals[data.get("id")] = goals
        try:
            return super().structure_message(data)
        except JsonRpcException as err:
            if "id" in data and "method" in data:
                self._send_response(data["id"], None, self._unreadable(data, err))
            elif "method" not in data and "result" not in data and "error" not in data:
                self._invalid_request(data.get("id"))
            raise

    def _unreadable(self, data: dict[str, Any], err: JsonRpcException) -> types.ResponseError:
        """The answer to a request pygls could not read: its own error, except that a
        message it failed on is the client's mistake (an unknown method, or params of the
        wrong shape), never our Internal Error."""
        error = err.to_response_error()
        if error.code != _INTERNAL_ERROR:
            return error
        method = data.get("method")
        if method not in types.METHOD_TO_TYPES and not self.fm.features.get(str(method)):
            return types.ResponseError(_METHOD_NOT_FOUND, f"Method Not Found: {method}")
        return types.ResponseError(_INVALID_PARAMS, f"Invalid Params for {method}")

    def _execute_handler(self, msg_id: Any, handler: Any, callback: Any, *args: Any, **kw: Any):
        """pygls 2.1 files the future of every async notification handler (didChange,
        goalState, ...) under a fresh id and never removes it: about 1 KB per keystroke.
        Forget it once it is done (requests are already forgotten when answered)."""
        super()._execute_handler(msg_id, handler, callback, *args, **kw)
        future = self._request_futures.get(msg_id)
        if future is not None and callback == self._check_handler_result:
            future.add_done_callback(lambda _f: self._request_futures.pop(msg_id, None))

    def _invalid_request(self, msg_id: Any) -> None:
        self.send_error(msg_id, _INVALID_REQUEST, "Invalid Request")

    def send_error(self, msg_id: Any, code: int, message: str) -> None:
        """An error response written as it is: the id may be one pygls would refuse."""
        error = {"code": code, "message": message}
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})

    def handle_message(self, message: Any) -> None:
        version = getattr(message, "jsonrpc", None)
        if version != "2.0":  # valid JSON, but no JSON-RPC 2.0 message
            log.warning("not a JSON-RPC 2.0 message: answered with an invalid-request error")
            self._invalid_request(getattr(message, "id", None))
            return
        super().handle_message(message)


class SegpilotServer(LanguageServer):
    """The sidecar: a pygls language server over one `Engine`, keeping document state."""

    protocol: SegpilotProtocol

    def __init__(self, file_config: dict[str, Any] | None = None) -> None:
        super().__init__("segpilot", __version__, protocol_cls=SegpilotProtocol)
        self.file_config = file_config or {}
        self.engine: Engine | None = None
        self.docs: dict[str, DocumentState] = {}
        self.watcher: FileWatcher | None = None
        self.shutdown_requested = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.background: set[asyncio.Future[Any]] = set()

    def report_server_error(self, error: Exception, source: Any) -> None:
        if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError)):
            log.warning("unreadable message (%s): answered with a parse error", error)
            self.protocol.send_error(None, _PARSE_ERROR, f"Parse error: {error}")
            return
        log.error("%s: %s", getattr(source, "__name__", source), error)

    def spawn(self, coroutine: Any) -> asyncio.Future[Any]:
        """Run a coroutine in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def require_engine(self) -> Engine:
        if self.engine is None:
            raise fail("not initialized", _NOT_INITIALIZED)
        return self.engine

    def document(self, uri: str) -> DocumentState:
        return self.docs.setdefault(uri, DocumentState())

    def record_count(self, uri: str, count: int, before: int | None = None) -> bool:
        """Remember the goal count at the document's cursor; whether it moved from `before`
        (default: the count remembered so far) the way the prefetch trigger asks."""
        doc = self.document(uri)
        previous, doc.last_count = doc.last_count, count
        engine = self.require_engine()
        return engine.goals_moved(previous if before is None else before, count)

    def settings_from(self, raw: Any) -> Settings:
        overrides, unknown = editor_overrides(raw)
        if unknown:
            log.warning("ignoring unknown segpilot settings: %s", ", ".join(sorted(unknown)))
        return load_settings(self.file_config, overrides, origin="editor")

    def watch_model_files(self) -> None:
        if self.engine is None:
            return
        settings = self.engine.policy.settings
        paths: list[str | None] = []
        if self.engine.settings.lsp.hot_reload:
            backend = self.engine.policy.loaded
            model = backend.model_path if backend is not None else settings.model_path
            paths = [str(model) if model else None, settings.adapter_path]
        if self.watcher is None:
            self.watcher = FileWatcher(self.file_rewritten)
        self.watcher.watch(paths)

    def file_rewritten(self, path: Path) -> None:
        """Called by the watcher (on its thread) when the model or adapter file is new."""
        if self.loop is None or self.engine is None:
            return
        engine = self.engine

        async def reload() -> None:
            adapter = engine.policy.settings.adapter_path
            try:
                if adapter and Path(adapter).resolve() == path.resolve():
                    log.info("adapter %s rewritten: reloading it", path)
                    await engine.reload_adapter(adapter)
                else:
                    log.info("model %s rewritten: reloading it", path)
                    await engine.reload_model()
            except SegpilotError as err:
                engine.note_error(f"reload of {path} failed: {err}")
                self.window_show_message(
                    types.ShowMessageParams(types.MessageType.Error, f"segpilot: {err}")
                )

        asyncio.run_coroutine_threadsafe(reload(), self.loop)


def make_server(file_config: dict[str, Any] | None = None) -> SegpilotServer:
    """The server with every feature registered."""
    server = SegpilotServer(file_config)

    @server.feature(types.INITIALIZE)
    @guarded
    def initialize(ls: SegpilotServer, params: types.InitializeParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls.engine = Engine(ls.settings_from(params.initialization_options))
        folders = params.workspace_folders or []
        root = folders[0].uri if folders else params.root_uri
        ls.engine.projects.workspace_root = uri_path(root) if root else None
        log.info("initialized (workspace %s)", ls.engine.projects.workspace_root)

    @server.feature(types.INITIALIZED)
    @guarded
    def initialized(ls: SegpilotServer, _params: types.InitializedParams) -> None:
        engine = ls.require_engine()

        async def start() -> None:
            await engine.warm_up()
            ls.watch_model_files()

        ls.spawn(start())

    @server.feature(types.SHUTDOWN)
    @guarded
    async def shutdown(ls: SegpilotServer, _params: Any) -> None:
        ls.shutdown_requested = True
        if ls.watcher is not None:
            ls.watcher.close()
            ls.watcher = None
        for doc in ls.docs.values():
            doc.cancel_probe()
        if ls.engine is not None:
            await ls.engine.close()

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded
    def did_change(ls: SegpilotServer, params: types.DidChangeTextDocumentParams) -> None:
        engine = ls.engine
        if engine is None:
            return
        uri = params.text_document.uri
        engine.cancel_prefetch(uri)
        doc = ls.document(uri)
        doc.cancel_probe()
        last = params.content_changes[-1] if params.content_changes else None
        if (
            not isinstance(last, types.TextDocumentContentChangePartial)
            or doc.client_goals is not None
            or not engine.settings.lsp.prefetch
        ):
            return
        lines = last.text.split("\n")
        start = last.range.start
        character = (start.character if len(lines) == 1 else 0) + utf16_length(lines[-1])
        cursor = types.Position(start.line + len(lines) - 1, character)
        doc.probe = ls.spawn(probe(ls, engine, uri, params.text_document.version, cursor))

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded
    def did_close(ls: SegpilotServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.docs.pop(uri, None)
        if doc is not None:
            doc.cancel_probe()
        if ls.engine is not None:
            ls.engine.cancel_prefetch(uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @guarded
    async def did_change_configuration(
        ls: SegpilotServer, params: types.DidChangeConfigurationParams
    ) -> None:
        engine = ls.require_engine()
        try:
            settings = ls.settings_from(params.settings)
        except SegpilotError as err:
            log.error("settings refused, the previous ones stay: %s", err)
            ls.window_show_message(
                types.ShowMessageParams(types.MessageType.Error, f"segpilot: {err}")
            )
            return
        changed = await engine.apply_settings(settings)
        ls.watch_model_files()
        log.info("settings applied%s", f" (restarted: {', '.join(changed)})" if changed else "")

    @server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
    @guarded
    async def inline_completion(
        ls: SegpilotServer, params: types.InlineCompletionParams
    ) -> types.InlineCompletionList:
        started = time.monotonic()
        engine = ls.require_engine()
        goals = ls.protocol.request_goals.pop(ls.protocol.msg_id, None)
        empty = types.InlineCompletionList(items=[])
        found = site_at(ls, params.text_document.uri, params.position)
        if found is None:
            return empty
        site = found.site
        uri = params.text_document.uri
        project = engine.project_for(uri_path(uri))
        client = client_goals(ls, uri, found.version, params.position, site, goals)
        goal = await engine.goal_at(
            project, uri, found.text, site, client.goals if client is not None else None
        )
        ls.record_count(uri, goal.count)
        proposal = await engine.suggestions(project, site, goal)
        limit = engine.settings.lsp.max_items
        items = render(proposal, found, params.position, limit, uri, goal)
        engine.stats.last_latency_ms = (time.monotonic() - started) * 1000
        log.info(
            "inlineCompletion %s %d:%d goal=%s(%d) -> %d item(s)%s in %.0f ms",
            uri.rsplit("/", 1)[-1],
            params.position.line,
            params.position.character,
            goal.source,
            goal.count,
            len(items),
            "" if proposal.checked else " unchecked",
            engine.stats.last_latency_ms,
        )
        return types.InlineCompletionList(items=items)

    @server.feature(GOAL_STATE)
    @guarded
    async def goal_state(ls: SegpilotServer, params: Any) -> None:
        """`{uri, version, position, goals}` from the editor (the goals Lean shows at the
        cursor); a drop in their count starts a prefetch."""
        engine = ls.require_engine()
        try:
            uri = str(params.uri)
            position = types.Position(int(params.position.line), int(params.position.character))
            goals = tuple(str(g) for g in params.goals)
            version = getattr(params, "version", None)
        except (AttributeError, TypeError, ValueError) as err:
            log.warning("%s with unexpected params ignored: %s", GOAL_STATE, err)
            return
        doc = ls.document(uri)
        doc.client_goals = ClientGoals(version, position.line, position.character, goals)
        if not ls.record_count(uri, len(goals)):
            return
        found = site_at(ls, uri, position)
        if found is None:
            return
        project = engine.project_for(uri_path(uri))
        state, error = await engine.lean_state(project, found.site)
        engine.start_prefetch(uri, project, found.site, GoalAt(goals, "client", state, error))

    @server.feature(STATUS)
    @guarded
    def status(ls: SegpilotServer, _params: Any) -> dict[str, Any]:
        return ls.require_engine().status()

    @server.command(ACCEPTED)
    @guarded
    async def suggestion_accepted(ls: SegpilotServer, *args: Any) -> None:
        """The editor accepted an item; its goals after (known when Lean checked it) are
        where the user goes next, so they are prefetched at once."""
        engine = ls.require_engine()
        info = args[0] if args else None
        if not isinstance(info, dict):
            raise fail(f"{ACCEPTED} needs its argument object")
        uri, after = info.get("uri"), info.get("goalsAfter")
        if not isinstance(uri, str) or not (
            after is None or (isinstance(after, list) and all(isinstance(g, str) for g in after))
        ):
            raise fail(f"{ACCEPTED}: uri must be a string and goalsAfter a list")
        if after is None:
            return None
        before = info.get("goalsBefore")
        moved = ls.record_count(uri, len(after), before if isinstance(before, int) else None)
        if not after or not moved:
            return None
        position = workspace_commands.position_arg((info,))[1] or types.Position(0, 0)
        found = site_at(ls, uri, position)
        if found is None:
            return None
        project = engine.project_for(uri_path(uri))
        state = None
        if engine.checking(project) and isinstance(info.get("proofState"), int):
            env = info.get("env")
            state = LeanState(
                info["proofState"], tuple(after), env if isinstance(env, int) else None
            )
        engine.start_prefetch(uri, project, found.site, GoalAt(tuple(after), "client", state))
        return None

    workspace_commands.register(server)

    @server.command(RELOAD_MODEL)
    @guarded
    async def reload_model(ls: SegpilotServer, *_args: Any) -> dict[str, Any]:
        engine = ls.require_engine()
        try:
            await engine.reload_model()
        except SegpilotError as err:
            raise fail(str(err)) from None
        ls.watch_model_files()
        return engine.status()

    return server


async def probe(
    ls: SegpilotServer, engine: Engine, uri: str, version: int, cursor: types.Position
) -> None:
    """After an edit settles, ask Lean for the goals where the edit left the cursor; a drop
    in their count starts a prefetch (when the editor reports goals, this is not needed)."""
    await asyncio.sleep(PROBE_DELAY_S)
    found = site_at(ls, uri, cursor)
    if found is None or found.version != version:
        return
    project = engine.project_for(uri_path(uri))
    if not engine.checking(project):
        return
    state, _error = await engine.lean_state(project, found.site)
    if state is None:
        return
    if ls.record_count(uri, state.n_goals):
        engine.start_prefetch(uri, project, found.site, GoalAt(state.goals, "repl", state))


def client_goals(
    ls: SegpilotServer,
    uri: str,
    version: int | None,
    position: types.Position,
    site: ProofSite,
    in_request: list[str] | None,
) -> ClientGoals | None:
    """Goals the editor gave for this request: in its context, or in the last
    `segpilot/goalState` for this document version at this line."""
    if in_request is not None:
        return ClientGoals(version, position.line, position.character, tuple(in_request))
    known = ls.document(uri).client_goals
    if known is None or (known.version is not None and known.version != version):
        return None
    if known.line != position.line or (site.typed and known.character < site.column):
        return None
    return known


def render(
    proposal: Proposal,
    found: DocumentSite,
    position: types.Position,
    limit: int,
    uri: str,
    goal: GoalAt,
) -> list[types.InlineCompletionItem]:
    """Items for the editor: each suggestion indented for the cursor's column, replacing what
    is typed of it, with a command that tells whether Lean checked it."""
    site, start = found.site, found.start()
    items = []
    for item in proposal.items:
        block = item.candidate.text
        if site.typed and (not block.startswith(site.typed) or block == site.typed):
            continue
        place = placement(found, item)
        end = types.Position(position.line, position.character + place.replaced)
        items.append(
            types.InlineCompletionItem(
                insert_text=place.text,
                range=types.Range(types.Position(start.line, start.character), end),
                command=accept_command(item, proposal, uri, start, goal),
            )
        )
        if len(items) == limit:
            break
    return items


def accept_command(
    item: Checked, proposal: Proposal, uri: str, start: LspPosition, goal: GoalAt
) -> types.Command:
    outcome = item.outcome
    if outcome is None:
        title = "unchecked: Lean has not run it"
    elif outcome.kind == "closed":
        title = "checked: closes the goal"
    else:
        title = f"checked: {outcome.n_goals} goal(s) left"
    info: dict[str, Any] = {
        "uri": uri,
        "checked": outcome is not None,
        "outcome": outcome.kind if outcome is not None else None,
        "goalsBefore": goal.count,
        "goalsAfter": list(outcome.goals) if outcome is not None else None,
        "position": {"line": start.line, "character": start.character},
        "logprob": round(item.candidate.logprob, 4),
        "leanError": proposal.lean_error or None,
    }
    if outcome is not None and outcome.proof_state is not None and goal.state is not None:
        info["proofState"] = outcome.proof_state
        info["env"] = goal.state.env
    return types.Command(title=f"segpilot: {title}", command=ACCEPTED, arguments=[info])
