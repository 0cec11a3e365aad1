"""Errors shown to users: one line that says what went wrong and how to fix it."""

from __future__ import annotations


class SegpilotError(Exception):
    """A known failure. The CLI prints it as one line and exits non-zero (no traceback)."""

    exit_code = 1

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        super().__init__(message)
        self.fix = fix

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} ({self.fix})" if self.fix else base
