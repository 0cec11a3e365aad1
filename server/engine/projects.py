"""Lean per project: the REPL checker and the client of Lean's language server, started on
demand in the project's root, supervised, restarted after a failure, closed together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from segpilot.lean.errors import LeanProcessError
from segpilot.lean.goals import GoalState
from segpilot.lean.lsp_client import LeanServerClient
from segpilot.lean.positions import TextPosition
from segpilot.lean.project import command_found, find_project
from segpilot.lean.repl import ReplSettings
from segpilot.lean.settings import LeanSettings
from segpilot.lean.supervisor import SupervisedRepl
from segpilot.search.check import LeanChecker

log = logging.getLogger(__name__)


@dataclass
class LeanProject:
    """A Lake project (or a folder) and the Lean processes serving it."""

    root: Path
    checker: LeanChecker | None = None
    lean_server: LeanServerClient | None = None
    errors: list[str] = field(default_factory=list)
    answered: bool = False
    """Whether its REPL has answered once."""
    start_error: str = ""
    """Why the REPL command could not be started here ("" if it could, or was not tried):
    Lean counts as found only where its command starts and answers."""

    def repl_found(self, lean: LeanSettings) -> bool:
        return not self.start_error and command_found(lean.repl_command, self.root)

    def server_found(self, lean: LeanSettings) -> bool:
        return command_found(lean.server_command, self.root)

    def get_checker(self, lean: LeanSettings) -> LeanChecker | None:
        """The project's REPL checker (started on first use), or None when checking is off
        or the REPL command is not there."""
        if not (lean.check and self.repl_found(lean)):
            return None
        if self.checker is None:
            repl = SupervisedRepl(ReplSettings.from_lean(lean, self.root))
            self.checker = LeanChecker(repl, elaboration_timeout_s=lean.elaboration_timeout_s)
        return self.checker

    async def server_goal(
        self, lean: LeanSettings, uri: str, text: str, where: TextPosition
    ) -> GoalState | None:
        """The goals `lake serve` shows at `where` of the document; None when it shows none
        or is not there. A failure of the server is logged and the server restarted next
        time."""
        if not self.server_found(lean):
            return None
        try:
            if self.lean_server is None:
                client = LeanServerClient(
                    self.root,
                    lean.server_command,
                    request_timeout=lean.server_request_timeout_s,
                    elaboration_timeout=lean.elaboration_timeout_s,
                )
                await client.start()
                self.lean_server = client
            client = self.lean_server
            known = client.documents.get(uri)
            if known is None:
                await client.did_open(uri, text)
            elif known.text != text:
                await client.did_change(uri, text)
            return await client.goal_at(uri, where)
        except LeanProcessError as err:
            self.errors.append(f"lake serve failed in {self.root}: {err}")
            log.error("%s", self.errors[-1])
            if self.lean_server is not None and not self.lean_server.running:
                await self.close_server()
            return None

    async def close_server(self) -> None:
        if self.lean_server is not None:
            with contextlib.suppress(Exception):
                await self.lean_server.shutdown()
            self.lean_server = None

    async def close(self) -> None:
        """Stop its Lean processes; the next use starts them afresh (new settings)."""
        if self.checker is not None:
            await asyncio.to_thread(self.checker.close)
            self.checker = None
        self.start_error = ""
        self.answered = False
        await self.close_server()


class Projects:
    """The projects met so far, by root."""

    def __init__(self) -> None:
        self.workspace_root: Path | None = None
        self.by_root: dict[Path, LeanProject] = {}

    def for_path(self, path: Path | None) -> LeanProject:
        """The project of a file (its Lake project, else the workspace, else its folder)."""
        start = path.parent if path is not None else self.workspace_root or Path.cwd()
        root = find_project(start) or self.workspace_root or start.resolve()
        return self.at_root(root)

    def at_root(self, root: Path) -> LeanProject:
        """The project whose root is `root` (a proof job names it)."""
        root = root.resolve()
        return self.by_root.setdefault(root, LeanProject(root))

    async def close(self) -> None:
        for project in self.by_root.values():
            await project.close()
        self.by_root.clear()
