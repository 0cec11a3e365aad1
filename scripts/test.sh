#!/usr/bin/env bash
# Set up (scripts/setup.sh), then run every check: ruff lint, ruff format, mypy, the whole
# pytest suite. Exits non-zero when any of them fails. Extra arguments go to pytest
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
  0) say "all checks passed" ;;
  5) say "FAILED: pytest collected no tests (exit 5)" >&2 ;;
  *) say "FAILED: pytest exited $status" >&2 ;;
esac
exit "$status"
