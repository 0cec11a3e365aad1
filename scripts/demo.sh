#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: check the machine with `segpilot doctor`,
# cut real Lean proof trajectories into segments with `segpilot data segments`, and fill the
# sorries of lean_project/Demo.lean with `segpilot prove --dry-run` (the default model;
# without Lean, prove says so and the demo shows the goals and suggestions at each sorry).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '\nsegpilot demo: %s\n' "$*"; }

bash scripts/setup.sh
segpilot() { .venv/bin/python -m segpilot "$@"; }

say "segpilot doctor  (what is here, what is missing, and the fix)"
status=0
segpilot doctor || status=$?
if [[ $status -ne 0 ]]; then
  say "segpilot doctor exited $status: something needed is missing (see above); going on"
fi

out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
steps=tests/fixtures/trajectories/repl_transcript_steps.jsonl
out="$out_dir/segments.jsonl"

say "segpilot data segments $steps --group-by transcript --rule change"
segpilot data segments "$steps" --group-by transcript --rule change --output "$out"
say "$(wc -l < "$out" | tr -d ' ') segments from $(wc -l < "$steps" | tr -d ' ') real Lean REPL steps; the three longest:"
.venv/bin/python - "$out" <<'PY'
import json, sys

with open(sys.argv[1], encoding="utf-8") as fh:
    segments = [json.loads(line) for line in fh]
segments.sort(key=lambda s: len(s.get("tactics", [])), reverse=True)
for segment in segments[:3]:
    print(json.dumps(segment, indent=2, ensure_ascii=False))
PY

demo=lean_project/Demo.lean
say "segpilot prove $demo --dry-run --diff  (proof search for every sorry of the demo; nothing written)"
status=0
segpilot prove "$demo" --dry-run --diff --budget-s 120 || status=$?
if [[ $status -eq 2 ]]; then
  say "no Lean here, so nothing can be proved or checked (the line above says how to install it)."
  say "What segpilot does without Lean: the goal at each of the demo's sorries (read from the statement) and the default model's suggestions for it"
  .venv/bin/python -c 'import sys; from segpilot.lean.source import sorries
for line, col in sorries(open(sys.argv[1], encoding="utf-8").read()): print(line + 1, col)' "$demo" |
  while read -r line col; do
    say "segpilot suggest --file $demo --line $line --col $col"
    segpilot suggest --file "$demo" --line "$line" --col "$col" -k 4
  done
elif [[ $status -ne 0 ]]; then
  say "segpilot prove exited $status"
  exit "$status"
fi
say "segpilot suggest --state  (a goal given directly, as JSON)"
segpilot suggest --state 'p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q' -k 4 --json
