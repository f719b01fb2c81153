#!/usr/bin/env bash
# Compaction benchmark: builds skein-bench in release mode and runs `skein-bench compact`,
# which writes ingester-like blocks of synthetic spans to a local bucket in a temporary
# directory, compacts them, and prints spans compacted per CPU-second, Parquet bytes per span
# before and after, the tag index's share, and where the CPU time goes.
#
#   ./scripts/bench-compact.sh [SPANS] [BLOCKS] [full|lean]
#
# Defaults: 2,000,000 spans of the full workload in 16 blocks (one compaction job). Figures: docs/benchmarks.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# One build of the server and the benchmarks, so both share one feature set and one
# compilation of the dependencies.
cargo build --release --quiet -p skein -p skein-bench
exec "$root/target/release/skein-bench" compact \
  --spans "${1:-2000000}" --blocks "${2:-16}" --workload "${3:-full}"
