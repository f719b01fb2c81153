#!/usr/bin/env bash
# Ingest benchmark: runs skein (the ingester role: local disk, WAL with fsync, blocks flushing;
# compaction is measured by bench-compact.sh) and `skein-bench ingest` (the load generator) on
# this machine, and prints spans/s accepted,
# server CPU-seconds per million spans (during the load, and until every accepted span is in a
# block in storage), p99 export latency and peak RSS, next to how fast prost alone decodes the
# same payloads.
#
#   ./scripts/bench-ingest.sh [SECONDS] [PROTOCOL] [CONCURRENCY] [BATCH] [full|lean] [REQUESTS]
#
# Defaults: 30 s, grpc, 8 requests in flight, 1000 spans per request, the full workload, as
# many requests as the time allows. With REQUESTS, the load stops after that many accepted
# requests (or after SECONDS). The write-path workload of docs/benchmarks.md:
#
#   ./scripts/bench-ingest.sh 900 http-protobuf 8 2484 lean 1000
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-30}
protocol=${2:-grpc}
concurrency=${3:-8}
batch=${4:-1000}
workload=${5:-full}
requests=${6:-}

# The server is the shipped binary, the load generator the benchmark binary; one build of
# both (as the other bench scripts do), so the dependencies are compiled once.
cargo build --release --quiet -p skein -p skein-bench
bin="$root/target/release/skein"
bench="$root/target/release/skein-bench"
work=$(mktemp -d "${TMPDIR:-/tmp}/skein-bench.XXXXXX")
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
http=$(port); jaeger=$(port); grpc=$(port); otlp_http=$(port); internal=$(port)
cat > "$work/skein.toml" <<TOML
[server]
http_listen = "127.0.0.1:$http"
jaeger_listen = "127.0.0.1:$jaeger"
log_level = "warn"

[ingester]
otlp_grpc_listen = "127.0.0.1:$grpc"
otlp_http_listen = "127.0.0.1:$otlp_http"
internal_listen = "127.0.0.1:$internal"
wal_dir = "$work/wal"
max_block_bytes = ${SKEIN_BENCH_MAX_BLOCK_BYTES:-33554432}
max_unflushed_bytes = ${SKEIN_BENCH_MAX_UNFLUSHED_BYTES:-134217728}

[ingester.limits.defaults]
ingestion_rate_bytes = 10000000000
ingestion_burst_bytes = 20000000000
max_live_traces = 10000000

[storage]
backend = "local"
path = "$work/blocks"
TOML

"$bin" --config "$work/skein.toml" --target ingester > "$work/skein.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 1 200); do
  curl -fs "http://127.0.0.1:$internal/ready" >/dev/null 2>&1 && break
  sleep 0.05
done

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== prost decode ceiling (same payloads, one core)"
"$bench" ingest --decode-only --batch "$batch" --workload "$workload" --duration 10s

ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{print ($14+$15)/t}' "/proc/$pid/stat"; }
before=$(cpu)
echo "== load: $protocol, $concurrency in flight, $batch spans per request, $workload workload, ${requests:-as many requests as} ${seconds} s allow${requests:+ at most}"
endpoint="http://127.0.0.1:$grpc"
[ "$protocol" != grpc ] && endpoint="http://127.0.0.1:$otlp_http/v1/traces"
"$bench" ingest --protocol "$protocol" --endpoint "$endpoint" --concurrency "$concurrency" \
  --batch "$batch" --workload "$workload" --duration "${seconds}s" \
  ${requests:+--requests "$requests"} | tee "$work/ingest.txt"
after=$(cpu)
spans=$(awk '/^spans_accepted/ {print $2}' "$work/ingest.txt")
metric() { curl -fs "http://127.0.0.1:$internal/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# Until every accepted span is in a block in storage (blocks are cut within a minute).
flushed_spans=0
for _ in $(seq 1 360); do
  flushed_spans=$(metric skein_ingester_spans_flushed_total)
  [ "${flushed_spans%.*}" -ge "$spans" ] && break
  sleep 0.5
done
flushed_at=$(cpu)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
flushed=$(metric skein_ingester_blocks_flushed_total)
echo "== server"
awk -v b="$before" -v a="$after" -v fa="$flushed_at" -v s="$spans" -v fs="$flushed_spans" \
  -v r="$rss" -v f="$flushed" 'BEGIN {
  cpu = a - b
  printf "server_cpu_seconds %.2f\n", cpu
  printf "spans_per_server_cpu_second %.0f\n", (cpu > 0 ? s / cpu : 0)
  printf "server_cpu_seconds_per_million_spans %.2f\n", (s > 0 ? cpu * 1e6 / s : 0)
  printf "spans_flushed %d\n", fs
  printf "server_cpu_seconds_until_flushed %.2f\n", fa - b
  printf "spans_per_server_cpu_second_until_flushed %.0f\n", (fa > b ? s / (fa - b) : 0)
  printf "peak_rss_mib %.0f\n", r / 1024
  printf "blocks_flushed %d\n", f
}'
