#!/usr/bin/env bash
# Takes a SeaweedFS server started by scripts/s3-server.sh down and brings it back on the same
# ports with the same data, so that a test can watch what Skein does while object storage is
# unavailable and after it returns.
#
#   tests/scripts/s3-outage.sh down DIR   stop the server of DIR (SIGTERM, then SIGKILL after
#                                         15 s), keeping DIR and the command line it ran with
#   tests/scripts/s3-outage.sh up DIR     start it again with that command line (same ports,
#                                         same data); prints the endpoint once the bucket answers
#
# scripts/s3-server.sh cannot do this by itself: its `stop` deletes DIR, and its `start` picks
# new ports, so the endpoint a running Skein was configured with would change. After `up`,
# `scripts/s3-server.sh stop DIR` stops the server and deletes DIR as usual.
# Linux only: the command line is read from /proc.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
startup_timeout=${S3_SERVER_STARTUP_TIMEOUT:-60}

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_python() {
  if [ -x "$root/.venv/bin/python" ]; then
    printf '%s\n' "$root/.venv/bin/python"
  else
    command -v python3 || die "python3 not found"
  fi
}

# The same readiness probe as scripts/s3-server.sh: a listing answers 200 (anonymous) or 403
# (an identity is required), either of which proves the server is up and the bucket exists.
bucket_answers() {
  "$(find_python)" - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "?list-type=2&max-keys=1", timeout=2)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 403 else 1)
except Exception:
    sys.exit(1)
PY
}

alive() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

down() {
  local dir=$1 pid
  alive "$dir" || die "no server is running for $dir"
  pid=$(cat "$dir/pid")
  # NUL-separated, exactly as the kernel holds it, so no argument can be split or joined.
  cp "/proc/$pid/cmdline" "$dir/cmdline"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "seaweedfs (pid $pid) ignored SIGTERM for 15 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$dir/pid"
  log "seaweedfs (pid $pid) is down; its data and command line stay in $dir"
}

up() {
  local dir=$1
  alive "$dir" && die "a server is already running for $dir (pid $(cat "$dir/pid"))"
  [ -s "$dir/cmdline" ] || die "$dir/cmdline is missing: take the server down with '$0 down $dir' first"
  [ -s "$dir/endpoint" ] || die "$dir/endpoint is missing: was the server started by scripts/s3-server.sh?"
  local -a args
  mapfile -d '' -t args <"$dir/cmdline"
  local endpoint bucket="" a
  endpoint=$(cat "$dir/endpoint")
  for a in "${args[@]}"; do
    case "$a" in -bucket=*) bucket=${a#-bucket=} ;; esac
  done
  [ -n "$bucket" ] || die "no -bucket= in $dir/cmdline"
  # Unix sockets left behind by an unclean stop would make the bind fail.
  rm -f "$dir/s3.sock" "$dir/filer.sock"
  log "restarting seaweedfs: $endpoint, bucket $bucket, state in $dir"
  "${args[@]}" </dev/null >>"$dir/weed.log" 2>&1 &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + startup_timeout))
  while alive "$dir" && [ $SECONDS -lt $deadline ]; do
    if bucket_answers "$endpoint/$bucket"; then
      log "seaweedfs is up again (pid $(cat "$dir/pid"))"
      printf '%s\n' "$endpoint"
      return 0
    fi
    sleep 0.2
  done
  alive "$dir" || { rm -f "$dir/pid"; log "--- $dir/weed.log (last 30 lines) ---"; tail -n 30 "$dir/weed.log" >&2 || true; die "seaweedfs exited while restarting (a port may have been taken meanwhile)"; }
  die "seaweedfs did not serve bucket $bucket within $startup_timeout s after the restart; see $dir/weed.log"
}

case "${1:-}" in
  down) [ $# -eq 2 ] || die "usage: $0 down DIR"; down "$2" ;;
  up) [ $# -eq 2 ] || die "usage: $0 up DIR"; up "$2" ;;
  *) die "usage: $0 down DIR | up DIR" ;;
esac
