"""The Lean REPL's JSON protocol (leanprover-community/repl) as frozen, typed values.

Requests are built in Python (snake_case) and sent as JSON (camelCase) by `to_json()`;
`validate_request` checks a request dict before it is sent, because malformed JSON ends
the REPL process. Replies are parsed once, here, by `parse_response`: a `CommandResponse`,
a `ProofStepResponse`, or a `ReplError` ("Lean said no" is a value, not an exception).
Unknown reply fields are kept in each value's `extra`, so a newer REPL does not break us.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from segpilot.lean.errors import InvalidRequestError, ReplProtocolError
from segpilot.lean.goals import GoalState, parse_goals

COMPLETED = "Completed"
INFOTREE_MODES = ("full", "tactics", "original", "substantive")

# --- requests ----------------------------------------------------------------------------

# (wire key, attribute, kind, required); kinds: "str", "nat", "bool", "infotree".
_Wire = tuple[tuple[str, str, str, bool], ...]
_OPTIONS: _Wire = (
    ("env", "env", "nat", False),
    ("allTactics", "all_tactics", "bool", False),
    ("rootGoals", "root_goals", "bool", False),
    ("infotree", "infotree", "infotree", False),
)


class _Request:
    """Shared JSON conversion for requests, driven by each class's `WIRE` table."""

    __slots__ = ()
    WIRE: ClassVar[_Wire]

    def to_json(self) -> dict[str, Any]:
        """The request as the REPL reads it; unset options are left out."""
        out: dict[str, Any] = {}
        for key, attr, _kind, required in self.WIRE:
            value = getattr(self, attr)
            if required or (value is not None and value is not False):
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Command(_Request):
    """Elaborate Lean commands (command mode)."""

    WIRE: ClassVar[_Wire] = (("cmd", "cmd", "str", True), *_OPTIONS)
    cmd: str
    """Lean source: one or more commands (`theorem ...`, `def ...`, `import ...`)."""
    env: int | None = None
    """Environment to run on top of; `None` starts a fresh one (only then is `import` allowed)."""
    all_tactics: bool = False
    """Also report every tactic with its goals and a proof state to continue from."""
    root_goals: bool = False
    """Also report a proof state for each declaration's initial goal (as a sorry)."""
    infotree: str | None = None
    """Dump Lean's info tree: one of `INFOTREE_MODES`."""


@dataclass(frozen=True, slots=True)
class FileCommand(_Request):
    """Elaborate a whole Lean file (file mode); the reply is a `CommandResponse`."""

    WIRE: ClassVar[_Wire] = (("path", "path", "str", True), *_OPTIONS)
    path: str
    """File to read, relative to the REPL's working directory or absolute."""
    env: int | None = None
    """Environment to run on top of; `None` starts a fresh one."""
    all_tactics: bool = False
    """Also report every tactic with its goals and a proof state."""
    root_goals: bool = False
    """Also report a proof state for each declaration's initial goal."""
    infotree: str | None = None
    """Dump Lean's info tree: one of `INFOTREE_MODES`."""


@dataclass(frozen=True, slots=True)
class ProofStep(_Request):
    """Run a tactic (or a multi-line tactic block, run as one step) on a proof state."""

    WIRE: ClassVar[_Wire] = (
        ("tactic", "tactic", "str", True),
        ("proofState", "proof_state", "nat", True),
    )
    tactic: str
    """The tactic text; a block such as `"(\\n  intro h\\n  exact h)"` runs as one step."""
    proof_state: int
    """The proof state to run it on (from a sorry, an earlier step, or `all_tactics`)."""


@dataclass(frozen=True, slots=True)
class PickleEnvironment(_Request):
    """Save an environment to an `.olean` file; the reply names the same `env`."""

    WIRE: ClassVar[_Wire] = (("pickleTo", "path", "str", True), ("env", "env", "nat", True))
    path: str
    """File to write."""
    env: int
    """Environment to save."""


@dataclass(frozen=True, slots=True)
class UnpickleEnvironment(_Request):
    """Load an environment saved by `PickleEnvironment`; the reply names a new `env`."""

    WIRE: ClassVar[_Wire] = (("unpickleEnvFrom", "path", "str", True),)
    path: str
    """File to read."""


@dataclass(frozen=True, slots=True)
class PickleProofState(_Request):
    """Save a proof state; the reply is a `ProofStepResponse` with a new proof state."""

    WIRE: ClassVar[_Wire] = (
        ("pickleTo", "path", "str", True),
        ("proofState", "proof_state", "nat", True),
    )
    path: str
    """File to write."""
    proof_state: int
    """Proof state to save."""


@dataclass(frozen=True, slots=True)
class UnpickleProofState(_Request):
    """Load a proof state saved by `PickleProofState`, optionally into an environment."""

    WIRE: ClassVar[_Wire] = (
        ("unpickleProofStateFrom", "path", "str", True),
        ("env", "env", "nat", False),
    )
    path: str
    """File to read."""
    env: int | None = None
    """Environment to load it into; `None` uses the one it was saved with."""


EnvRequest = Command | FileCommand | PickleEnvironment | UnpickleEnvironment
ProofStateRequest = ProofStep | PickleProofState | UnpickleProofState
Request = EnvRequest | ProofStateRequest

# The key that tells the request kinds apart; `pickleTo` is split by its second key.
_REQUEST_KINDS: tuple[tuple[str, type[_Request]], ...] = (
    ("cmd", Command),
    ("path", FileCommand),
    ("tactic", ProofStep),
    ("unpickleEnvFrom", UnpickleEnvironment),
    ("unpickleProofStateFrom", UnpickleProofState),
)


def _request_class(obj: Mapping[str, Any]) -> type[_Request]:
    found = [cls for key, cls in _REQUEST_KINDS if key in obj]
    if "pickleTo" in obj:
        found.append(PickleProofState if "proofState" in obj else PickleEnvironment)
    if len(found) != 1:
        kinds = ", ".join(cls.__name__ for cls in found) or "none"
        raise InvalidRequestError(f"a request must be exactly one kind (found: {kinds}): {obj!r}")
    return found[0]


def _check_value(key: str, kind: str, value: Any) -> None:
    ok = {
        "str": isinstance(value, str),
        "nat": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
        "bool": isinstance(value, bool),
        "infotree": value in INFOTREE_MODES,
    }[kind]
    if not ok:
        raise InvalidRequestError(f"{key!r} must be a {kind}, got {value!r}")
    if kind == "str":
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise InvalidRequestError(f"{key!r} is not valid UTF-8 text ({err.reason})") from err


def parse_request(obj: Mapping[str, Any]) -> Request:
    """Read a request dict (camelCase) into its typed form, or raise `InvalidRequestError`.

    Unknown keys are refused: the REPL would silently ignore them, so a misspelt option
    (`"proofstate"`) would run something other than what was meant.
    """
    if not isinstance(obj, Mapping):
        raise InvalidRequestError(f"a request is a JSON object, got {type(obj).__name__}")
    cls = _request_class(obj)
    known = {key for key, *_ in cls.WIRE}
    unknown = sorted(set(obj) - known)
    if unknown:
        raise InvalidRequestError(f"unknown keys {unknown} for {cls.__name__}: {obj!r}")
    kwargs: dict[str, Any] = {}
    for key, attr, kind, required in cls.WIRE:
        if key not in obj or (obj[key] is None and not required):
            if required:
                raise InvalidRequestError(f"{cls.__name__} needs {key!r}: {obj!r}")
            continue
        _check_value(key, kind, obj[key])
        kwargs[attr] = obj[key]
    return cls(**kwargs)  # type: ignore[return-value]


def validate_request(obj: Mapping[str, Any]) -> None:
    """Raise `InvalidRequestError` unless the REPL accepts `obj` as it will be sent."""
    parse_request(obj)
    try:
        json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise InvalidRequestError(f"not JSON-serialisable as UTF-8: {err}") from err


# --- replies -----------------------------------------------------------------------------

_MISSING = object()
_Parse = Callable[[Any, str], Any]


def _scalar(kind: type, *, optional: bool = False) -> _Parse:
    def parse(value: Any, where: str) -> Any:
        if value is _MISSING or value is None:
            if optional:
                return None
            raise ReplProtocolError(f"{where} is missing")
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ReplProtocolError(f"{where} is not a {kind.__name__}: {value!r}")
        return value

    return parse


def _items(parse_item: _Parse) -> _Parse:
    """A list (absent or null: empty, as the REPL leaves empty lists out) as a tuple."""

    def parse(value: Any, where: str) -> tuple[Any, ...]:
        if value is _MISSING or value is None:
            return ()
        if not isinstance(value, list):
            raise ReplProtocolError(f"{where} is not a list: {value!r}")
        return tuple(parse_item(v, f"{where}[{i}]") for i, v in enumerate(value))

    return parse


def _optional(parse_item: _Parse) -> _Parse:
    return lambda value, where: None if value in (_MISSING, None) else parse_item(value, where)


def _raw(value: Any, where: str) -> Any:
    return None if value is _MISSING else value


_INT, _STR = _scalar(int), _scalar(str)
_OPT_INT, _OPT_STR = _scalar(int, optional=True), _scalar(str, optional=True)


class _Reply:
    """Shared JSON parsing for replies, driven by each class's `WIRE` table."""

    __slots__ = ()
    WIRE: ClassVar[tuple[tuple[str, str, _Parse], ...]]  # (wire key, attribute, parser)

    @classmethod
    def from_json(cls, value: Any, where: str = "reply") -> Any:
        """Parse a JSON object, or raise `ReplProtocolError` naming the bad field."""
        if not isinstance(value, Mapping):
            raise ReplProtocolError(f"{where} is not a JSON object: {value!r}")
        kwargs = {
            attr: parse(value.get(key, _MISSING), f"{where}.{key}") for key, attr, parse in cls.WIRE
        }
        known = {key for key, *_ in cls.WIRE}
        extra = {k: v for k, v in value.items() if k not in known}
        return cls(**kwargs, extra=extra)  # type: ignore[call-arg]  # every reply class has it


@dataclass(frozen=True, slots=True)
class Pos(_Reply):
    """A source position."""

    WIRE: ClassVar = (("line", "line", _INT), ("column", "column", _INT))
    line: int
    """Line, 1-based (0 in tactic-mode messages, which have no source)."""
    column: int
    """Column, 0-based, in Unicode code points."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""


_POS = _optional(Pos.from_json)


@dataclass(frozen=True, slots=True)
class Message(_Reply):
    """A message Lean reported while elaborating."""

    WIRE: ClassVar = (
        ("severity", "severity", _STR),
        ("pos", "pos", _POS),
        ("endPos", "end_pos", _POS),
        ("data", "data", _STR),
    )
    severity: str
    """`"trace"`, `"info"`, `"warning"` or `"error"`."""
    pos: Pos | None
    """Where it starts."""
    end_pos: Pos | None
    """Where it ends; `None` when Lean gave no end."""
    data: str
    """The message text as Lean prints it."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


@dataclass(frozen=True, slots=True)
class Sorry(_Reply):
    """A `sorry` in the input: its goal, and a proof state to continue from."""

    WIRE: ClassVar = (
        ("goal", "goal", _STR),
        ("proofState", "proof_state", _OPT_INT),
        ("pos", "pos", _POS),
        ("endPos", "end_pos", _POS),
    )
    goal: str
    """The goal at the sorry, as Lean prints it."""
    proof_state: int | None
    """Proof state to run tactics on; `None` when Lean could not make one."""
    pos: Pos | None = None
    """Where the sorry is (absent for sorries made in tactic mode)."""
    end_pos: Pos | None = None
    """Where it ends."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""


@dataclass(frozen=True, slots=True)
class TacticInfo(_Reply):
    """One tactic of the input, reported with `all_tactics`."""

    WIRE: ClassVar = (
        ("tactic", "tactic", _STR),
        ("goals", "goals", _STR),
        ("pos", "pos", _POS),
        ("endPos", "end_pos", _POS),
        ("proofState", "proof_state", _OPT_INT),
        ("usedConstants", "used_constants", _items(_STR)),
    )
    tactic: str
    """The tactic's source text."""
    goals: str
    """The goals before it, as one state string (`no goals` when there are none)."""
    pos: Pos | None
    """Where the tactic starts."""
    end_pos: Pos | None
    """Where it ends."""
    proof_state: int | None = None
    """Proof state before the tactic, to run other tactics on."""
    used_constants: tuple[str, ...] = ()
    """Constants the tactic's result mentions."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""


_MESSAGES = _items(Message.from_json)
_SORRIES = _items(Sorry.from_json)


@dataclass(frozen=True, slots=True)
class CommandResponse(_Reply):
    """The reply to a command, a file, or an environment (un)pickle."""

    WIRE: ClassVar = (
        ("env", "env", _INT),
        ("messages", "messages", _MESSAGES),
        ("sorries", "sorries", _SORRIES),
        ("tactics", "tactics", _items(TacticInfo.from_json)),
        ("infotree", "infotree", _raw),
    )
    env: int
    """The environment now holding the command's declarations."""
    messages: tuple[Message, ...] = ()
    """Messages Lean reported (errors included: an error here is not an exception)."""
    sorries: tuple[Sorry, ...] = ()
    """Sorries in the input, each with a proof state."""
    tactics: tuple[TacticInfo, ...] = ()
    """Every tactic, when `all_tactics` was asked for."""
    infotree: Any = None
    """Lean's info tree as raw JSON, when `infotree` was asked for."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""

    @property
    def has_errors(self) -> bool:
        return any(m.is_error for m in self.messages)


@dataclass(frozen=True, slots=True)
class ProofStepResponse(_Reply):
    """The reply to a tactic, or to a proof state (un)pickle."""

    WIRE: ClassVar = (
        ("proofState", "proof_state", _INT),
        ("goals", "goals", _items(_STR)),
        ("proofStatus", "proof_status", _OPT_STR),
        ("messages", "messages", _MESSAGES),
        ("sorries", "sorries", _SORRIES),
        ("traces", "traces", _items(_STR)),
    )
    proof_state: int
    """The new proof state, to continue from."""
    goals: tuple[str, ...]
    """The open goals after the step, as Lean prints each one."""
    proof_status: str | None = None
    """`"Completed"`, `"Incomplete: open goals remain"`, `"Incomplete: contains sorry"`,
    `"Incomplete: contains metavariable(s)"`, `"Error: ..."`; `None` from old REPLs."""
    messages: tuple[Message, ...] = ()
    """Messages Lean reported during the step."""
    sorries: tuple[Sorry, ...] = ()
    """Sorries the tactic introduced, each with a proof state."""
    traces: tuple[str, ...] = ()
    """Trace output of the step (`trace`, `set_option trace.*`)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""

    @property
    def has_errors(self) -> bool:
        return any(m.is_error for m in self.messages)

    @property
    def n_goals(self) -> int:
        return len(self.goals)

    @property
    def goal_state(self) -> GoalState:
        """The goals parsed (raises `GoalParseError` on text that is not a goal)."""
        return parse_goals(self.goals)

    @property
    def is_complete(self) -> bool:
        """Proved for real: Lean says `Completed`, no goal, no error and no sorry.

        Tactic mode has accepted wrong proofs before, and a failed tactic can come back
        with an error beside an empty goal list, so the status alone is not trusted.
        """
        return (
            self.proof_status == COMPLETED
            and not self.goals
            and not self.has_errors
            and not self.sorries
        )


@dataclass(frozen=True, slots=True)
class ReplError(_Reply):
    """The REPL refused the request (`Unknown proof state.`, `Lean error:\\n...`)."""

    WIRE: ClassVar = (("message", "message", _STR),)
    message: str
    """What the REPL said."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Fields this version of segpilot does not know."""


Response = CommandResponse | ProofStepResponse | ReplError


def parse_response(obj: Mapping[str, Any]) -> Response:
    """Type one reply by its keys, or raise `ReplProtocolError` when it matches no shape."""
    if not isinstance(obj, Mapping):
        raise ReplProtocolError(f"a reply is a JSON object, got {obj!r}")
    if "proofState" in obj and "goals" in obj:
        return ProofStepResponse.from_json(obj)
    if "env" in obj:
        return CommandResponse.from_json(obj)
    if "message" in obj:
        return ReplError.from_json(obj)
    raise ReplProtocolError(f"reply matches no REPL reply shape: {obj!r}")


def reply_type(request: Request) -> type[CommandResponse] | type[ProofStepResponse]:
    """The reply kind a request gets when the REPL does not refuse it."""
    if isinstance(request, (ProofStep, PickleProofState, UnpickleProofState)):
        return ProofStepResponse
    return CommandResponse
