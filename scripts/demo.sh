#!/usr/bin/env bash
# Set up (scripts/setup.sh), then the main job: check the machine with `segpilot doctor`,
# cut real Lean proof trajectories into segments with `segpilot data segments`, and let the
# default model propose segments with `segpilot suggest`.
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
line="$(grep -n 'theorem and_swap_demo' "$demo" | cut -d: -f1)"
line=$((line + 1))
say "segpilot suggest --file $demo --line $line --col 2  (the default model proposes segments for a sorry)"
segpilot suggest --file "$demo" --line "$line" --col 2 -k 4
say "segpilot suggest --state  (a goal given directly, as JSON)"
segpilot suggest --state 'p q : Prop\nhp : p\nhq : q\n⊢ p ∧ q' -k 4 --json
