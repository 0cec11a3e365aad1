"""Logs for the editor: `window/logMessage` instead of stderr.

Editors record whatever a server writes to stderr as errors, so once the server runs every
log line goes to the client as a `window/logMessage` of the matching type (the editor's
output panel), and to `--log-file` when one is given. Lines logged before the client is
connected, or from a thread once the loop has stopped, go to stderr, warnings and worse only.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING

from lsprotocol import types

if TYPE_CHECKING:
    from segpilot.lsp.server import SegpilotServer

_TYPES = (
    (logging.ERROR, types.MessageType.Error),
    (logging.WARNING, types.MessageType.Warning),
    (logging.INFO, types.MessageType.Info),
    (logging.NOTSET, types.MessageType.Log),
)


def message_type(level: int) -> types.MessageType:
    return next(kind for floor, kind in _TYPES if level >= floor)


class ClientLogHandler(logging.Handler):
    """Sends each record to the editor as `window/logMessage`."""

    def __init__(self, server: SegpilotServer) -> None:
        super().__init__()
        self.server = server
        self._fallback = logging.StreamHandler(sys.stderr)
        self._fallback.setLevel(logging.WARNING)

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        super().setFormatter(fmt)
        self._fallback.setFormatter(fmt)

    def emit(self, record: logging.LogRecord) -> None:
        loop = self.server.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            if record.levelno >= self._fallback.level:
                self._fallback.emit(record)
            return
        try:
            params = types.LogMessageParams(message_type(record.levelno), self.format(record))
        except Exception:  # a record that cannot be formatted
            self.handleError(record)
            return
        if threading.current_thread() is threading.main_thread():
            self.server.window_log_message(params)
        else:
            loop.call_soon_threadsafe(self.server.window_log_message, params)
