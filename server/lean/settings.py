"""The `[lean]` settings: how segpilot runs Lean in a project, and how long it waits.

Declared once here and loaded through `segpilot.config` (the `[lean]` table,
`SEGPILOT_LEAN_*`, flags such as `--repl-command`, editor settings). The REPL process
settings (`segpilot.lean.repl.ReplSettings`) take their defaults from these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from segpilot import config


def _help(text: str, **bounds: float) -> dict[str, object]:
    return {"help": text, **bounds}


@dataclass(frozen=True)
class LeanSettings:
    """How to run Lean. Each field's metadata holds its help and bounds."""

    repl_command: list[str] = field(
        default_factory=lambda: ["lake", "exe", "repl"],
        metadata=_help(
            "command that runs the Lean REPL, started in the project root; the default needs "
            "the project to require leanprover-community/repl at the tag of its Lean version"
        ),
    )
    server_command: list[str] = field(
        default_factory=lambda: ["lake", "serve"],
        metadata=_help("command that runs Lean's language server, started in the project root"),
    )
    check: bool = field(
        default=True,
        metadata=_help("run each candidate in Lean before showing it (when Lean is found)"),
    )
    repl_timeout_s: float = field(
        default=60.0,
        metadata=_help(
            "seconds one REPL request may take before the REPL is restarted; the import "
            "block of a project is elaborated once, with elaboration_timeout_s",
            min=0.001,
        ),
    )
    server_request_timeout_s: float = field(
        default=30.0,
        metadata=_help(
            "seconds one request to the language server may take (it is then cancelled, "
            "the server keeps running)",
            min=0.001,
        ),
    )
    elaboration_timeout_s: float = field(
        default=600.0,
        metadata=_help(
            "seconds Lean may take to elaborate a file or an import block (Mathlib takes minutes)",
            min=0.001,
        ),
    )
    memory_limit_mb: int | None = field(
        default=16384,
        metadata=_help(
            "address-space cap of the REPL process in MiB (none: no cap); generous because "
            "Lean memory-maps .olean files",
            min=64,
        ),
    )
    rss_limit_mb: int | None = field(
        default=8192,
        metadata=_help("resident MiB past which the REPL is recycled (none: never)", min=1),
    )
    recycle_after: int | None = field(
        default=500,
        metadata=_help("requests after which the REPL is restarted (none: never)", min=1),
    )

    def __post_init__(self) -> None:
        for name in ("repl_command", "server_command"):
            value = getattr(self, name)
            if not value or not all(isinstance(a, str) and a for a in value):
                raise ValueError(f"{name} must be a non-empty list of strings, got {value!r}")
        config.check_declared(self)

    def resolved_repl_command(self, project: Path) -> list[str]:
        """The REPL command with a relative program path (`./repl`, `bin/repl`) taken from
        the project root, where the command runs."""
        program, *rest = self.repl_command
        if "/" in program and not Path(program).is_absolute():
            program = str((project / program).resolve())
        return [program, *rest]
