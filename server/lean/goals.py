"""Goal states as Lean prints them, parsed into one typed form.

Every way Lean shows goals comes through here: the REPL's `goals` list, the language
server's `$/lean/plainGoal` result, and LeanDojo-style state strings (goals separated by
blank lines, `no goals` when done, an optional `N goals` header). A goal prints as an
optional `case tag` line, hypothesis lines (`x y : Nat`, `h : p := v`, or the anonymous
`: p`), then `⊢ target` (`| target` in conv mode). Long hypotheses and targets wrap onto
indented continuation lines; a hypothesis too long for one line starts with its names
alone (`this :`) and its type follows on lines indented by two spaces. `pretty()` gives the
text back exactly as Lean printed it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

NO_GOALS = "no goals"
_TARGET_MARKERS = ("⊢", "|")
_HEADER = re.compile(r"(?:(\d+) goals?|unsolved goals)\n")


class GoalParseError(ValueError):
    """The text is not a goal or goal state as Lean prints one."""


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """One hypothesis line: names sharing a type (none for an anonymous one), and a value
    for `let`-bound names. `wrapped` when Lean put the type on the lines below the names."""

    names: tuple[str, ...]
    type: str
    value: str | None = None
    wrapped: bool = False

    def pretty(self) -> str:
        head = " ".join(self.names)
        if self.wrapped:
            text = f"{head} :\n  {self.type}"
        else:
            text = f"{head} : {self.type}" if head else f": {self.type}"
        return text if self.value is None else f"{text} := {self.value}"


@dataclass(frozen=True, slots=True)
class Goal:
    """One goal: its case tag, hypotheses and target (`conv` when Lean shows `| target`)."""

    target: str
    hypotheses: tuple[Hypothesis, ...] = ()
    case: str | None = None
    conv: bool = False

    def pretty(self) -> str:
        lines = [f"case {self.case}"] if self.case is not None else []
        lines.extend(h.pretty() for h in self.hypotheses)
        lines.append(f"{'|' if self.conv else '⊢'} {self.target}")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class GoalState:
    """The open goals at one point of a proof; empty when the proof is done."""

    goals: tuple[Goal, ...] = ()

    @property
    def n_goals(self) -> int:
        return len(self.goals)

    @property
    def is_solved(self) -> bool:
        return not self.goals

    def texts(self) -> list[str]:
        """The goals as Lean prints each one (the REPL's `goals` list)."""
        return [g.pretty() for g in self.goals]

    def pretty(self) -> str:
        """LeanDojo-style state: goals separated by a blank line, `no goals` when done."""
        return "\n\n".join(self.texts()) if self.goals else NO_GOALS


def _split_hypothesis(line: str) -> Hypothesis:
    first, _, below = line.partition("\n")
    if first.endswith(" :") and below.startswith("  "):
        return Hypothesis(tuple(first[:-2].split(" ")), below[2:], wrapped=True)
    names: tuple[str, ...]
    if line.startswith(": "):
        names, rest = (), line[2:]
    else:
        head, sep, rest = line.partition(" : ")
        if not sep:
            raise GoalParseError(f"not a hypothesis line: {line!r}")
        names = tuple(head.split(" "))
    type_, sep, value = rest.partition(" := ")
    return Hypothesis(names, type_, value if sep else None)


def parse_goal(text: str) -> Goal:
    """Parse one goal as Lean prints it (`[case tag]`, hypotheses, `⊢ target`)."""
    lines = text.split("\n")
    case = None
    first = lines[0]
    if first.startswith("case ") and " : " not in first and not first.endswith(" :"):
        case = first[5:]
        lines = lines[1:]
    hyp_lines: list[str] = []
    for i, line in enumerate(lines):
        marker = line[:1]
        if marker in _TARGET_MARKERS and line[1:2] in (" ", ""):
            target = "\n".join([line[2:], *lines[i + 1 :]])
            hyps = tuple(_split_hypothesis(h) for h in hyp_lines)
            return Goal(target, hyps, case, conv=marker == "|")
        if hyp_lines and (line[:1].isspace() or not _starts_hypothesis(line)):
            # A wrapped hypothesis: Lean indents the continuation lines.
            hyp_lines[-1] += "\n" + line
        else:
            hyp_lines.append(line)
    raise GoalParseError(f"no target line (starting with ⊢) in goal: {text!r}")


def _starts_hypothesis(line: str) -> bool:
    return " : " in line or line.startswith(": ") or line.endswith(" :")


def parse_goals(goals: Iterable[str]) -> GoalState:
    """Parse a list of goal strings (the REPL's `goals`, plainGoal's `goals`)."""
    return GoalState(tuple(parse_goal(g) for g in goals))


def parse_state(text: str) -> GoalState:
    """Parse a LeanDojo-style state string.

    Goals are separated by blank lines; `no goals` (or an empty string) means done; an
    `N goals` or `unsolved goals` header line may come first. A header count that differs
    from the goals found is an error.
    """
    text = text.strip("\n")
    if text in ("", NO_GOALS):
        return GoalState()
    expected = None
    header = _HEADER.match(text)
    if header:
        expected = int(header.group(1)) if header.group(1) else None
        text = text[header.end() :]
    chunks: list[str] = []
    for chunk in text.split("\n\n"):
        # A chunk that continues an indented line, or has no target yet, belongs to the
        # goal before it.
        if chunks and (chunk[:1].isspace() or not _has_target(chunks[-1])):
            chunks[-1] += "\n\n" + chunk
        else:
            chunks.append(chunk)
    state = parse_goals(chunks)
    if expected is not None and expected != state.n_goals:
        raise GoalParseError(f"header says {expected} goals but {state.n_goals} were found")
    return state


def _has_target(chunk: str) -> bool:
    return any(line[:1] in _TARGET_MARKERS and line[1:2] in (" ", "") for line in chunk.split("\n"))


def parse_plain_goal(result: Mapping[str, Any] | None) -> GoalState | None:
    """Parse a `$/lean/plainGoal` result: `None` when Lean has no tactic goal there."""
    if result is None:
        return None
    goals = result.get("goals")
    if not isinstance(goals, list) or not all(isinstance(g, str) for g in goals):
        raise GoalParseError(f"plainGoal result has no list of goal strings: {result!r}")
    return parse_goals(goals)
