"""Trajectories -> segments: the one builder behind all four segment rules.

A trajectory is one proof's steps in order; a step is a tactic with the number of open
goals before and after it. A segment is a run of consecutive steps, and a training example
pairs the goal state at a segment's start with its tactic block. Where a segment ends is
decided by a rule, and the rules are a table (`RULES`), not branches of the builder:

- `change`: after a step whose goal count changes;
- `close`: after a step whose goal count drops;
- `step`: after every step (the step-level baseline);
- `whole`: only at the end (the whole-proof baseline).

Every rule but `whole` also ends a segment once it holds `max_tactics` steps, and every
rule ends one at the trajectory's last step.

Reading rows (`read_trajectories`), one JSON object per line:

- Goals come as lists (`goals_before` / `goals_after`, one string per goal, as the REPL and
  the language server give them) or as printed state strings (`state_before` /
  `state_after`, LeanDojo style: goals separated by a blank line, `no goals` when done).
  On each side the list wins when its key is present; a row that also carries the string is
  cross-checked, and different goal counts make it a bad row.
- A state string is counted by `parse_state`, so one that is not a goal state is a bad
  row; each distinct string is parsed once (the state after a step is usually the state
  before the next). A list's count is its length: its items must be strings and are not
  parsed, since the REPL and the language server already give one string per goal.
- `Step.state_before` (and so a segment's `state`): for a list, its goals joined by a blank
  line, `no goals` when empty (what `GoalState.pretty()` prints); for a string, the string
  exactly as given.
- Rows with equal values of the group-by fields form one trajectory, in file order; the
  groups come out in order of first appearance, each with the original JSON values of its
  fields. Values compare as JSON with their type, so `1`, `1.0`, `true` and `"1"` are four
  groups.
- Bad rows are values (`BadRow`), never dropped silently: a line that is not UTF-8, not
  JSON or not an object; a missing group-by field; a missing, non-string or blank
  `tactic`; goals missing, `null`, of the wrong type or unparseable. Blank lines are not
  rows and are skipped. Line numbers count every line of the input from 1.
"""

from __future__ import annotations

import json
import operator
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from segpilot.lean.goals import NO_GOALS, GoalParseError, parse_state

DEFAULT_MAX_TACTICS = 8
OUTPUT_FIELDS = (
    "start",
    "end",
    "n_goals_before",
    "n_goals_after",
    "tactics",
    "state",
    "target",
)


@dataclass(frozen=True)
class Rule:
    """Where a segment ends, besides at the trajectory's last step."""

    name: str
    ends_after: Callable[[int, int], bool]
    """Called with a step's goal counts (before, after): true ends the segment there."""
    capped: bool
    """Whether the segment also ends once it holds `max_tactics` steps."""
    description: str


def _always(before: int, after: int) -> bool:
    return True


def _never(before: int, after: int) -> bool:
    return False


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule("change", operator.ne, True, "after a step whose goal count changes"),
        Rule("close", operator.gt, True, "after a step whose goal count drops"),
        Rule("step", _always, True, "after every step (the step-level baseline)"),
        Rule("whole", _never, False, "only at the end (the whole-proof baseline)"),
    )
}


class Step(NamedTuple):
    """One tactic of a trajectory, with the goal counts around it and the state it starts from."""

    tactic: str
    n_goals_before: int
    n_goals_after: int
    state_before: str


class Segment(NamedTuple):
    """Consecutive steps `start`..`end` (0-based, inclusive) of one trajectory."""

    start: int
    end: int
    n_goals_before: int
    n_goals_after: int
    tactics: tuple[str, ...]
    state: str
    """The goal state at the start, as Lean prints it."""

    @property
    def target(self) -> str:
        """The tactic block as it would be inserted into a proof, one tactic per line."""
        return "\n".join(self.tactics)

    def as_dict(self) -> dict[str, Any]:
        """The segment's output fields (`OUTPUT_FIELDS`), in that order."""
        return {
            "start": self.start,
            "end": self.end,
            "n_goals_before": self.n_goals_before,
            "n_goals_after": self.n_goals_after,
            "tactics": list(self.tactics),
            "state": self.state,
            "target": self.target,
        }


class Trajectory(NamedTuple):
    """The steps of one group, with the group-by values (in the group-by order)."""

    key: tuple[Any, ...]
    steps: list[Step]


class BadRow(NamedTuple):
    """An input line that was skipped, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


def get_rule(rule: str | Rule) -> Rule:
    """The rule itself, or the one registered under that name."""
    if isinstance(rule, Rule):
        return rule
    try:
        return RULES[rule]
    except KeyError:
        raise ValueError(f"unknown segment rule {rule!r}; known: {', '.join(RULES)}") from None


def build_segments(
    steps: Sequence[Step], rule: str | Rule, max_tactics: int = DEFAULT_MAX_TACTICS
) -> list[Segment]:
    """Cut one trajectory into segments by `rule` (a `RULES` name or a `Rule`)."""
    chosen = get_rule(rule)
    if max_tactics < 1:
        raise ValueError(f"max_tactics must be at least 1, not {max_tactics}")
    limit = max_tactics if chosen.capped else sys.maxsize
    ends_after = chosen.ends_after
    last = len(steps) - 1
    segments: list[Segment] = []
    start = 0
    for i, step in enumerate(steps):
        if (
            i == last
            or i - start + 1 >= limit
            or ends_after(step.n_goals_before, step.n_goals_after)
        ):
            first = steps[start]
            tactics = tuple(s.tactic for s in steps[start : i + 1])
            segments.append(
                Segment(
                    start, i, first.n_goals_before, step.n_goals_after, tactics, first.state_before
                )
            )
            start = i + 1
    return segments


class _Bad(Exception):
    """A row that cannot be a step; the message is the reason."""


class _GoalCounter:
    """Counts the goals of one side of a row; parses each distinct state string once.

    The memo is cleared when it grows past `limit` entries, so memory stays bounded on
    any input while the repeats that matter (neighbouring steps) still hit.
    """

    def __init__(self, limit: int = 1 << 12) -> None:
        self._limit = limit
        self._states: dict[str, int] = {}

    def side(self, row: dict[str, Any], list_field: str, text_field: str) -> tuple[int, str]:
        """The goal count and state text of one side (before or after) of a row."""
        if list_field in row:
            n, text = self._goal_list(row[list_field], list_field)
            if text_field in row:
                n_text = self._state(row[text_field], text_field)
                if n_text != n:
                    raise _Bad(f"{list_field} has {n} goals but {text_field} has {n_text}")
            return n, text
        if text_field in row:
            text = row[text_field]
            return self._state(text, text_field), text
        raise _Bad(f"missing {list_field} (or {text_field})")

    @staticmethod
    def _goal_list(goals: Any, field: str) -> tuple[int, str]:
        if goals is None:
            raise _Bad(f"{field} is null")
        if not isinstance(goals, list):
            raise _Bad(f"{field} is not a list of goal strings")
        for i, goal in enumerate(goals):
            if not isinstance(goal, str):
                raise _Bad(f"{field}[{i}] is not a string")
        return len(goals), "\n\n".join(goals) if goals else NO_GOALS

    def _state(self, text: Any, field: str) -> int:
        if not isinstance(text, str):
            raise _Bad(f"{field} is not a string")
        n = self._states.get(text)
        if n is not None:
            return n
        n = count_goals(text)
        if n is None:
            try:
                n = parse_state(text).n_goals
            except GoalParseError as err:
                raise _Bad(f"{field}: {err}") from None
        if len(self._states) >= self._limit:
            self._states.clear()
        self._states[text] = n
        return n


_TARGET = "⊢ "
# Hypothesis lines in the plain shape: each has ` : ` (or is anonymous, `: p`); lines
# after the first may be indented continuations.
_HYPOTHESES = re.compile(
    r"(?:[^\n]* : [^\n]*|: [^\n]*)(?:\n(?:[^\S\n][^\n]*|[^\n]* : [^\n]*|: [^\n]*))*"
)
_ODD_TARGETS = ("\n| ", "\n⊢\n", "\n|\n")


def count_goals(text: str) -> int | None:
    """The number of goals in a state string, for the plain shape Lean prints most often,
    without building hypothesis objects (what `parse_state` does, at several times the
    cost); None for anything else (a header, conv goals, wrapped hypotheses, lines that
    continue without indentation, no target...), which `parse_state` then decides, errors
    included. Where it returns a number, `parse_state(text).n_goals` is that number."""
    text = text.strip("\n")
    if text in ("", NO_GOALS):
        return 0
    if text[:1].isdigit() or text.startswith("unsolved goals"):
        return None
    n = 0
    for chunk in text.split("\n\n"):
        if chunk[:1].isspace() or chunk[:1] == "|":
            return None
        if chunk.startswith(_TARGET):
            n += 1
            continue
        at = chunk.find("\n" + _TARGET)
        if at < 0:
            return None
        head = chunk[:at]
        if head.startswith("⊢") or any(odd in head + "\n" for odd in _ODD_TARGETS):
            return None
        if head.startswith("case "):
            first, _, rest = head.partition("\n")
            if " : " not in first and not first.endswith(" :"):
                head = rest
        if head and (head.endswith(" :") or " :\n" in head or not _HYPOTHESES.fullmatch(head)):
            return None
        n += 1
    return n


def trajectory_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """A hashable key that is equal exactly when the JSON values are equal, type included.

    Strings (the usual case) stand for themselves; other values are tagged with their type,
    so 1, 1.0, true and "1" stay apart, and lists or objects become hashable.
    """
    for value in values:
        if type(value) is not str:
            return tuple(
                v if type(v) is str else (type(v).__name__, json.dumps(v, sort_keys=True))
                for v in values
            )
    return values


def _one_line(reason: str, limit: int = 300) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


class NotContiguous(Exception):
    """A trajectory's rows are not together: `streaming` reading cannot cut this input."""


def read_trajectories(
    lines: Iterable[str | bytes],
    group_by: Sequence[str],
    *,
    streaming: bool = False,
    at_start: bool = True,
) -> Iterator[Trajectory | BadRow]:
    """Group JSONL rows into trajectories; yield each bad row, then every trajectory.

    A group is complete only at the end of the input, so every `BadRow` comes before the
    first `Trajectory`; a caller that stops at the first bad row has written nothing yet.

    `streaming`: the rows of each trajectory are together (a tracer writes them so), and
    each trajectory is yielded as soon as the next one starts, so memory is bounded by the
    longest trajectory, not the file; bad rows come as they are read. A row of a finished
    trajectory raises `NotContiguous` (the caller then reads the input again without it).

    `at_start`: the first line is the input's first, which may begin with a byte order mark
    (false for a reader that starts inside a file).
    """
    if streaming:
        yield from _stream_trajectories(lines, group_by, at_start)
        return
    groups: dict[tuple[Any, ...], Trajectory] = {}
    for item in _steps(lines, group_by, at_start):
        if isinstance(item, BadRow):
            yield item
            continue
        values, step = item
        key = trajectory_key(values)
        trajectory = groups.get(key)
        if trajectory is None:
            trajectory = groups[key] = Trajectory(values, [])
        trajectory.steps.append(step)
    yield from groups.values()


def _stream_trajectories(
    lines: Iterable[str | bytes], group_by: Sequence[str], at_start: bool
) -> Iterator[Trajectory | BadRow]:
    finished: set[tuple[Any, ...]] = set()
    key: tuple[Any, ...] = ()
    current: Trajectory | None = None
    for item in _steps(lines, group_by, at_start):
        if isinstance(item, BadRow):
            yield item
            continue
        values, step = item
        row_key = trajectory_key(values)
        if current is None or row_key != key:
            if current is not None:
                finished.add(key)
                yield current
            if row_key in finished:
                raise NotContiguous(f"the rows of {values!r} are not together")
            key, current = row_key, Trajectory(values, [])
        current.steps.append(step)
    if current is not None:
        yield current


def _steps(
    lines: Iterable[str | bytes], group_by: Sequence[str], at_start: bool = True
) -> Iterator[tuple[tuple[Any, ...], Step] | BadRow]:
    """Each row as (group-by values, step), or the `BadRow` it is."""
    if not group_by:
        raise ValueError("group_by needs at least one field")
    side = _GoalCounter().side
    loads = json.loads
    get_values = operator.itemgetter(*group_by)
    single = len(group_by) == 1
    for number, raw in enumerate(lines, 1):
        if not raw or raw.isspace():
            continue
        try:
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8-sig" if number == 1 and at_start else "utf-8")
                except UnicodeDecodeError as err:
                    raise _Bad(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
            try:
                row = loads(raw)
            except ValueError as err:
                raise _Bad(f"not JSON ({err})") from None
            if not isinstance(row, dict):
                raise _Bad("not a JSON object")
            try:
                values = (get_values(row),) if single else get_values(row)
            except KeyError as err:
                raise _Bad(f"missing group-by field {err}") from None
            tactic = row.get("tactic")
            if type(tactic) is not str:
                raise _Bad("missing tactic" if "tactic" not in row else "tactic is not a string")
            if not tactic or tactic.isspace():
                raise _Bad("tactic is blank")
            n_before, state_before = side(row, "goals_before", "state_before")
            n_after = side(row, "goals_after", "state_after")[0]
        except _Bad as bad:
            yield BadRow(number, _one_line(str(bad)))
            continue
        yield values, Step(tactic, n_before, n_after, state_before)
