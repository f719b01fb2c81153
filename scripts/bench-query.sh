#!/usr/bin/env bash
# Querier benchmark: builds skein-bench in release mode and runs `skein-bench query` on local
# disk with its defaults (10 million spans in 200 blocks over 4 hours), keeping the dataset
# under target/bench-query/local (target/bench-query/local-indexed with --tag-index, blocks with
# tag indexes as compacted blocks have) so that the next run reuses it instead of generating it
# again.
#
#   ./scripts/bench-query.sh [EXTRA `skein-bench query` FLAGS...]
#
# With SKEIN_BENCH_S3=1 it then starts a private SeaweedFS (scripts/s3-server.sh), runs a
# smaller benchmark against it (1 million spans in 20 blocks; override with SKEIN_BENCH_S3_SPANS
# and SKEIN_BENCH_S3_BLOCKS) and stops the server. SKEIN_BENCH_LOCAL=0 skips the local run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# One build of the server and the benchmarks, so both share one feature set and one
# compilation of the dependencies.
cargo build --release --quiet -p skein -p skein-bench
bin="$root/target/release/skein-bench"
out="$root/target/bench-query"
mkdir -p "$out"

# Blocks with tag indexes (--tag-index) are a dataset of their own, so both stay reusable.
suffix=
for arg in "$@"; do
  if [ "$arg" = --tag-index ]; then suffix=-indexed; fi
done

if [ "${SKEIN_BENCH_LOCAL:-1}" != 0 ]; then
  echo "== local disk: $bin query --dir $out/local$suffix $*"
  "$bin" query --dir "$out/local$suffix" "$@"
fi

if [ "${SKEIN_BENCH_S3:-0}" = 1 ]; then
  s3dir="$out/s3-server"
  bucket=skein-bench
  # A server left by an interrupted run is stopped first; its data is gone with it, and the
  # benchmark notices that the manifest no longer matches the bucket and generates again.
  "$root/scripts/s3-server.sh" stop "$s3dir"
  endpoint=$("$root/scripts/s3-server.sh" start "$s3dir" "$bucket")
  trap '"$root/scripts/s3-server.sh" stop "$s3dir"' EXIT
  spans=${SKEIN_BENCH_S3_SPANS:-1000000}
  blocks=${SKEIN_BENCH_S3_BLOCKS:-20}
  echo "== SeaweedFS S3 at $endpoint: $bin query --dir $out/s3$suffix --spans $spans --blocks $blocks $*"
  "$bin" query --dir "$out/s3$suffix" --s3-endpoint "$endpoint" --s3-bucket "$bucket" \
    --spans "$spans" --blocks "$blocks" "$@"
fi
