#!/usr/bin/env bash
# Installs what the web UI's checks need, and does nothing when it is already there:
#
# - Debian's `chromium` (with apt-get, only when /usr/bin/chromium is missing; needs root),
#   the browser the browser tests drive;
# - the npm dev dependencies of ui/ (`typescript` for the type-check, `playwright-core` to
#   drive Chromium) with `npm ci` from ui/package-lock.json, only when the lock changed.
#
#   scripts/ui-env.sh      # idempotent; prints KEY=VALUE lines for the tests
#
# Output (stdout), for `eval` or `export`:
#   SKEIN_TEST_CHROMIUM=/usr/bin/chromium
#   SKEIN_TEST_NODE_MODULES=<root>/ui/node_modules
# Progress goes to stderr. The UI itself needs none of this: it is plain JavaScript modules
# embedded in the binary by `cargo build`.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ui="$root/ui"
lock="$ui/package-lock.json"
modules="$ui/node_modules"
stamp="$modules/.package-lock.stamp"
chromium=${SKEIN_CHROMIUM:-/usr/bin/chromium}

log() { printf '%s\n' "$*" >&2; }

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    log "error: $chromium not found; install it (Debian: apt-get install chromium) or set SKEIN_CHROMIUM"
    exit 1
  fi
fi
log "$("$chromium" --version 2>/dev/null || echo "chromium at $chromium")"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing nodejs and npm with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
  else
    log "error: node or npm not found; install Node.js 20 or newer with npm"
    exit 1
  fi
fi
log "node $(node --version)"

want="$(sha256sum "$lock" | cut -d' ' -f1) $(node --version)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing the ui dev dependencies (npm ci in ui/)"
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error >&2)
  printf '%s\n' "$want" >"$stamp"
else
  log "ui dev dependencies are up to date (ui/package-lock.json unchanged)"
fi

printf 'SKEIN_TEST_CHROMIUM=%s\n' "$chromium"
printf 'SKEIN_TEST_NODE_MODULES=%s\n' "$modules"
