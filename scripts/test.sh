#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run every check: ruff lint, ruff format, mypy, the whole
# pytest suite, then the VS Code extension's checks (scripts/test-editor.sh). Exits non-zero
# when any of them fails (pytest's status first). Extra arguments go to pytest
# (e.g. bash scripts/test.sh -m "not slow").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'segpilot test: %s\n' "$*"; }

bash scripts/setup.sh

say "ruff check"
.venv/bin/ruff check .
say "ruff format --check"
.venv/bin/ruff format --check .

say "mypy (server/ and training/)"
.venv/bin/mypy

say "pytest"
status=0
.venv/bin/python -m pytest "$@" || status=$?
case "$status" in
  0) say "pytest passed" ;;
  5) say "FAILED: pytest collected no tests (exit 5)" >&2 ;;
  *) say "FAILED: pytest exited $status" >&2 ;;
esac

# The VS Code extension: type-check, unit, protocol and end-to-end tests (its tools are
# installed and cached outside the repository by scripts/setup-editor.sh).
say "VS Code extension (scripts/test-editor.sh)"
editor=0
bash scripts/test-editor.sh || editor=$?
if ((editor != 0)); then
  say "FAILED: the VS Code extension's checks exited $editor" >&2
fi

if ((status == 0 && editor == 0)); then
  say "all checks passed"
elif ((status == 0)); then
  status=$editor
fi
exit "$status"
