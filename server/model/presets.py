"""Prompt presets: how to ask a given kind of model for tactics, and how to read its answer.

A preset is data: a prompt template, stop strings, and the name of a parser. The table below
holds the built-in ones; a config file can add more as tables with the same fields
(`preset_from_mapping` validates them). Training builds its examples with the same
`Preset.build_prompt`, so serving and training cannot drift apart.

Template fields: `{state}` (the goal state as Lean prints it), `{theorem}` (the statement,
ending in `:= by`), `{name}` (the declaration's name), `{proof_before}` (the tactics so far),
`{examples}` (worked examples for this goal, each written with the preset's `example`
template, whose fields are `{state}` and `{tactic}`; see `segpilot.model.examples`).
`build_prompt` returns a `PromptText`: the template's own text (role markers, instructions, the
the literal parts of the `example` template) is template text, and the field values are user
text, in which the backend never reads special tokens: a goal holding `<|im_end|>` cannot end
its turn. Examples (real goals and tactics, possibly the user's own) come in through fields,
never pasted into a template.

Parsers (raw model text -> top-level tactics, after `candidates.clean_block`):
- `block`: the text is a tactic block (the first fenced code block, if the model wrote one);
- `tactic`: the text is one tactic (which may span lines);
- `code-block`: the first Lean code block holds a whole proof: the statement up to `:= by` is
  dropped and the rest split into tactics; when the prompt itself opened the fence, the text
  up to the closing fence is the code.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any

from segpilot.errors import SegpilotError
from segpilot.lean.goals import parse_state
from segpilot.model.candidates import clean_block, split_tactics
from segpilot.model.generation import PromptPart, PromptText, encode_utf8

FIELDS = frozenset({"state", "theorem", "name", "proof_before", "examples"})
_FIELD_NAMES = {
    "state": "the goal state",
    "theorem": "the theorem",
    "name": "the declaration name",
    "proof_before": "the proof so far",
    "tactic": "an example's tactic",
}
EXAMPLE_FIELDS = frozenset({"state", "tactic"})

_INACCESSIBLE = re.compile(r"([^\s()\[\]{}:,]+?)✝[⁰¹²³⁴⁵⁶⁷⁸⁹]*")
_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9]*[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
_DECLARATION = re.compile(r"^(?:theorem|lemma|example)\b.*?:=\s*by\b", re.DOTALL | re.MULTILINE)


def _fenced_or_whole(raw: str) -> str:
    found = _FENCE.search(raw)
    return found.group(1) if found else raw


def _parse_block(raw: str, truncated: bool) -> list[str]:
    return split_tactics(clean_block(_fenced_or_whole(raw), truncated=truncated))


def _parse_tactic(raw: str, truncated: bool) -> list[str]:
    block = clean_block(_fenced_or_whole(raw), truncated=truncated)
    return [block] if block else []


def _parse_code_block(raw: str, truncated: bool) -> list[str]:
    if "</think>" in raw:  # a reasoning model's thoughts come first
        raw = raw.rsplit("</think>", 1)[1]
    found = _FENCE.search(raw)
    if found:
        code, closed = found.group(1), found.group(0).endswith("```")
    else:  # the prompt opened the block
        code, closed = raw.split("```", 1)[0], "```" in raw
    header = _DECLARATION.search(code)
    if header:
        body = code[header.end() :]
        # The proof ends where the next declaration (an unindented line) begins.
        body = re.split(r"\n(?=\S)", body, maxsplit=1)[0]
    else:
        body = code
    return split_tactics(clean_block(body, truncated=truncated and not closed))


def _fill(template: str, values: Mapping[str, str]) -> Iterator[tuple[str, str | None, str]]:
    """(literal text, field name or None, formatted value) for each piece of `template`; the
    `examples` field's value is left to the caller."""
    formatter = string.Formatter()
    for literal, field, spec, conversion in formatter.parse(template):
        if field is None or field == "examples":
            yield literal, field, ""
            continue
        value = formatter.convert_field(values[field], conversion)
        yield literal, field, formatter.format_field(value, spec or "")


PARSERS: Mapping[str, Callable[[str, bool], list[str]]] = MappingProxyType(
    {"block": _parse_block, "tactic": _parse_tactic, "code-block": _parse_code_block}
)


@dataclass(frozen=True)
class Preset:
    """How to prompt one kind of model and read its answers."""

    name: str
    description: str
    template: str
    stop: tuple[str, ...] = ()
    parser: str = "block"
    strip_before: str | None = None  # the model echoes its prompt: keep what follows this
    # Its answers are tactic blocks, one tactic per line: the `constrain = "auto"` setting
    # turns tactic-shaped decoding on for it.
    constrain: bool = False
    # One worked example, for the template's `{examples}` field: uses {state} and {tactic}.
    example: str = ""

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    def build_prompt(
        self,
        *,
        state: str = "",
        theorem: str = "",
        name: str = "",
        proof_before: str = "",
        examples: Sequence[tuple[str, str]] = (),
    ) -> PromptText:
        """The template filled in: the str `template.format(...)` gives, with the field
        values marked as user text (see `PromptText`). `examples` are (state, tactic) pairs
        for the `{examples}` field; a preset without it ignores them."""
        values = {"state": state, "theorem": theorem, "name": name, "proof_before": proof_before}
        for field, value in values.items():
            encode_utf8(value, _FIELD_NAMES[field])
        missing = sorted(f for f in self.fields & {"state", "theorem"} if not values[f])
        if missing:
            raise SegpilotError(
                f"preset {self.name!r} needs the {' and '.join(missing)}",
                fix="give a goal state" if "state" in missing else "give a file position",
            )
        parts: list[PromptPart] = []
        for literal, slot, value in _fill(self.template, values):
            if literal:
                parts.append(PromptPart(literal, True))
            if slot == "examples":
                for example_state, tactic in examples if self.example else ():
                    encode_utf8(example_state, _FIELD_NAMES["state"])
                    encode_utf8(tactic, _FIELD_NAMES["tactic"])
                    shot = {"state": example_state, "tactic": tactic}
                    for text, inner, inner_value in _fill(self.example, shot):
                        if text:
                            parts.append(PromptPart(text, True))
                        if inner is not None:
                            parts.append(PromptPart(inner_value, False))
            elif slot is not None:
                parts.append(PromptPart(value, False))
        return PromptText(parts)

    def parse(self, raw: str, *, truncated: bool = False) -> list[str]:
        """Raw model text -> the top-level tactics of one candidate (empty if none)."""
        if self.strip_before and self.strip_before in raw:
            raw = raw.rsplit(self.strip_before, 1)[1]
        return PARSERS[self.parser](raw, truncated)


# segpilot's own format is a plain few-shot completion, no chat markers: on the real
# trajectories it beat SmolLM2's ChatML template on every overall measure and ran faster
# (1.4x and 2.7x in two runs; BENCHMARKS.md, "Default model by measurement"; the ChatML
# presets it replaced are in
# benchmarks/presets.toml). The first line is the same in every prompt, so the prompt cache
# evaluates it once per model load; the worked examples for the goal at hand follow (the
# untuned SmolLM2 answers with prose without them), then the goal.
_PLAIN_EXAMPLE = "Goal:\n{{state}}\n{label}:\n{{tactic}}\n\n"
_PLAIN_STOP = ("\n\n", "\nGoal:")


def _plain(instruction: str, label: str) -> str:
    return f"Lean 4 tactic proofs. {instruction}\n\n{{examples}}Goal:\n{{state}}\n{label}:\n"


BUILTIN: Mapping[str, Preset] = MappingProxyType(
    {
        p.name: p
        for p in (
            Preset(
                "segment",
                "segpilot's own format (a plain few-shot completion): goal state in, the next "
                "proof segment out, one tactic per line",
                _plain(
                    "After each goal state come the tactics that prove it or make the next "
                    "step, one per line.",
                    "Tactics",
                ),
                stop=_PLAIN_STOP,
                parser="block",
                constrain=True,
                example=_PLAIN_EXAMPLE.format(label="Tactics"),
            ),
            Preset(
                "step",
                "the step-level baseline in the same format: goal state in, one tactic out",
                _plain("After each goal state comes the next tactic, on one line.", "Tactic"),
                stop=("\n",),
                parser="tactic",
                constrain=True,
                example=_PLAIN_EXAMPLE.format(label="Tactic"),
            ),
            Preset(
                "bfs-prover",
                "BFS-Prover-V2 (ByteDance-Seed): `{state}:::` in, one tactic out",
                "{state}:::",
                parser="tactic",
                strip_before=":::",
            ),
            Preset(
                "internlm-stepprover",
                "InternLM2.5-StepProver: its NAME / PROOF_BEFORE / STATE_BEFORE / TACTIC "
                "fields in InternLM2's chat format, one tactic out",
                "<|im_start|>user\n---\nNAME: {name}\n\n---\nPROOF_BEFORE: {proof_before}\n\n"
                "---\nSTATE_BEFORE: {state}\n\n---\nTACTIC: <|im_end|>\n<|im_start|>assistant\n",
                stop=("<|im_end|>", "<|im_start|>"),
                parser="tactic",
            ),
            Preset(
                "whole-proof",
                "whole-proof models (DeepSeek-Prover style prompt; Kimina and Goedel answers "
                "parse too): theorem in, the first Lean code block out, split into tactics",
                "Complete the following Lean 4 code:\n\n```lean4\n{theorem}",
                stop=("\n```",),
                parser="code-block",
            ),
        )
    }
)


def preset_from_mapping(name: str, data: Mapping[str, Any]) -> Preset:
    """Validate a preset given as a config-file table (the fields of `Preset`)."""
    allowed = {f.name for f in fields(Preset)} - {"name"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SegpilotError(
            f"preset {name!r}: unknown field(s) {', '.join(unknown)}",
            fix=f"fields: {', '.join(sorted(allowed))}",
        )
    template = data.get("template")
    if not isinstance(template, str) or not template:
        raise SegpilotError(f"preset {name!r}: `template` must be a non-empty string")
    stop = data.get("stop", ())
    if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
        raise SegpilotError(f"preset {name!r}: `stop` must be a list of non-empty strings")
    parser = data.get("parser", "block")
    if parser not in PARSERS:
        raise SegpilotError(
            f"preset {name!r}: unknown parser {parser!r}", fix=f"parsers: {', '.join(PARSERS)}"
        )
    strip_before = data.get("strip_before")
    if strip_before is not None and not isinstance(strip_before, str):
        raise SegpilotError(f"preset {name!r}: `strip_before` must be a string")
    constrain = data.get("constrain", False)
    if not isinstance(constrain, bool):
        raise SegpilotError(f"preset {name!r}: `constrain` must be true or false")
    example = data.get("example", "")
    if not isinstance(example, str):
        raise SegpilotError(f"preset {name!r}: `example` must be a string")
    preset = Preset(
        name,
        str(data.get("description", "")),
        template,
        tuple(stop),
        parser,
        strip_before or None,
        constrain,
        example,
    )
    used = _fields_of(name, "template", template)
    if used - FIELDS or not used & {"state", "theorem"}:
        raise SegpilotError(
            f"preset {name!r}: the template must use {{state}} or {{theorem}} and only "
            f"{', '.join('{' + f + '}' for f in sorted(FIELDS))}"
        )
    if example and not _fields_of(name, "example", example) <= EXAMPLE_FIELDS:
        raise SegpilotError(f"preset {name!r}: the example may use only {{state}} and {{tactic}}")
    return preset


def _fields_of(name: str, what: str, template: str) -> set[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise SegpilotError(f"preset {name!r}: bad {what}: {err}") from None
    return {f for _, f, _, _ in parsed if f is not None}


def get_preset(name: str, extra: Mapping[str, Mapping[str, Any]] | None = None) -> Preset:
    """The preset called `name`, built in or from `extra` (config-file tables)."""
    if extra and name in extra:
        return preset_from_mapping(name, extra[name])
    if name in BUILTIN:
        return BUILTIN[name]
    valid = sorted({*BUILTIN, *(extra or {})})
    raise SegpilotError(f"unknown preset {name!r}", fix=f"valid presets: {', '.join(valid)}")


def theorem_from_state(state: str) -> str:
    """An `example` stating the first goal of `state`, its hypotheses as binders: the theorem a
    whole-proof model is given when only a goal state is known. Inaccessible names (`n✝`,
    `h✝¹`) get fresh accessible ones; `let` values are dropped, so such a statement can be
    weaker than the goal."""
    goals = parse_state(state).goals
    if not goals:
        raise SegpilotError("the goal state has no goals: nothing to prove")
    goal = goals[0]
    fresh: dict[str, str] = {}

    def accessible(text: str) -> str:
        def rename(m: re.Match[str]) -> str:
            return fresh.setdefault(m.group(0), f"{m.group(1)}_{len(fresh) + 1}")

        return " ".join(_INACCESSIBLE.sub(rename, text).split())

    binders = [
        f"({accessible(' '.join(h.names)) or '_'} : {accessible(h.type)})" for h in goal.hypotheses
    ]
    return " ".join(["example", *binders, ":", accessible(goal.target), ":= by"])
