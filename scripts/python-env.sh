#!/usr/bin/env bash
# Creates .venv/ with the Python tools the tests need (scripts/requirements-test.txt), and
# does nothing when it is already up to date. Prints the venv's python on success.
#
#   scripts/python-env.sh            # idempotent; safe to run before every test run
#
# Reinstalling is decided by a stamp file holding the requirements file's checksum and the
# Python version, so changing a pinned version (or the interpreter) reinstalls, and nothing
# else does. PYTHON selects the interpreter that creates the venv (default: python3).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
requirements="$root/scripts/requirements-test.txt"
stamp="$venv/.requirements-test.stamp"
python=${PYTHON:-python3}

log() { printf '%s\n' "$*" >&2; }

if ! command -v "$python" >/dev/null 2>&1; then
  log "error: $python not found; install Python 3.10 or newer (Debian: apt-get install python3 python3-venv)"
  exit 1
fi

# A venv whose interpreter is gone (Python upgraded or removed) is rebuilt from scratch.
if [ -d "$venv" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  log "python venv at $venv is broken; recreating it"
  rm -rf "$venv"
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating python venv at $venv"
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    # Debian splits venv support (ensurepip) into a package of its own.
    rm -rf "$venv"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
      log "installing python${version}-venv with apt-get"
      apt-get update -qq >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${version}-venv" >&2 \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
      "$python" -m venv "$venv"
    else
      log "error: '$python -m venv' failed; install venv support (Debian: apt-get install python3-venv)"
      exit 1
    fi
  fi
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$venv/bin/python" -V 2>&1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  log "installing $(grep -cv '^\s*\(#\|$\)' "$requirements") python packages from scripts/requirements-test.txt"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements" >&2
  printf '%s\n' "$want" >"$stamp"
else
  log "python packages are up to date (scripts/requirements-test.txt unchanged)"
fi

printf '%s\n' "$venv/bin/python"
