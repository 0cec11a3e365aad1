"""Failures of the Lean processes: one hierarchy, so callers catch one base.

Expected outcomes are values (a rejected tactic is a `ReplError` reply); these exceptions
mean the machinery broke: the process would not start, died, hung or spoke garbage. Each
carries the request in flight and the tail of the process's stderr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segpilot.errors import SegpilotError


class LeanProcessError(SegpilotError):
    """A Lean subprocess failed (base of every process failure)."""

    def __init__(
        self,
        message: str,
        *,
        request: Mapping[str, Any] | None = None,
        stderr_tail: str = "",
        fix: str | None = None,
    ) -> None:
        last = next((ln for ln in reversed(stderr_tail.splitlines()) if ln.strip()), "")
        super().__init__(f"{message}; stderr: {last}" if last else message, fix=fix)
        self.request = request
        self.stderr_tail = stderr_tail


class ReplStartError(LeanProcessError):
    """The REPL command could not be started (not found, not executable, bad directory)."""


class ReplCrashedError(LeanProcessError):
    """The REPL process ended (or closed its output) before answering."""

    def __init__(self, message: str, *, returncode: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.returncode = returncode


class ReplOutOfMemoryError(ReplCrashedError):
    """The REPL died for lack of memory (Lean's `INTERNAL PANIC: out of memory`)."""


class ReplTimeoutError(LeanProcessError):
    """The REPL did not answer in time; the process was killed."""

    def __init__(self, message: str, *, timeout_s: float, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout_s = timeout_s


class ReplProtocolError(LeanProcessError, ValueError):
    """A reply that is not JSON, or JSON matching no reply shape of the REPL protocol."""


class ReplReplayError(LeanProcessError):
    """Replaying recorded commands after a restart gave different results than before."""


class InvalidRequestError(ValueError):
    """A request the REPL would not accept; it was not sent (malformed JSON ends the REPL)."""
