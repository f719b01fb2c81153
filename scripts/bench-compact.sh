#!/usr/bin/env bash
# Compaction benchmark: writes ingester-like blocks of synthetic spans to a local bucket in a
# temporary directory, compacts them, and prints spans compacted per CPU-second, Parquet bytes
# per span before and after, the tag index's share, and where the CPU time goes.
#
#   ./scripts/bench-compact.sh [SPANS] [BLOCKS] [full|lean]
#
# Defaults: 2,000,000 spans of the full workload in 16 blocks (one compaction job). Figures: docs/benchmarks.md.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build --release --quiet -p skein-compactor --example bench_compact
exec "$root/target/release/examples/bench_compact" "$@"
