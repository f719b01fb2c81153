//! The `[compactor]` section of the configuration.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the compactor role, and the retention every role applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactorConfig {
    /// Pause between two compaction cycles. A cycle repairs what a crash left, applies
    /// retention, compacts, deletes retired blocks whose grace period is over and writes each
    /// tenant's index. Default `30s`; tests use a short interval to compact "now".
    #[serde(with = "humantime_serde")]
    pub cycle_interval: Duration,
    /// Blocks are grouped by the time window their earliest span falls in; only blocks of
    /// one window are merged. Default `1h`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Windows that ended less than this long ago are "recent": there, only blocks of the
    /// same compaction level are merged, so fresh small blocks do not rewrite a big block
    /// again and again. Default `2h`.
    #[serde(with = "humantime_serde")]
    pub recent_period: Duration,
    /// Most inputs of one compaction job: blocks in a recent window, sorted runs (each read
    /// as one stream) in an old one. The merge holds one decoded row group per input.
    /// Default `16`.
    pub max_input_blocks: usize,
    /// Target size of an output `data.parquet`, estimated from the inputs' bytes per span.
    /// Default `268435456` (256 MiB).
    pub max_block_bytes: u64,
    /// Most spans in one output block. This bounds the compactor's memory: one output block's
    /// spans are held while it is encoded. A trace with more spans is split over several
    /// blocks (readers merge a trace across blocks). Default `500000`.
    pub max_block_spans: u64,
    /// Most traces in one output block. Default `200000`.
    pub max_block_traces: u64,
    /// zstd level of compacted blocks (1–22). Compacted blocks live long, so they get a
    /// higher level than the ingesters' 3: about 6% fewer bytes for about 10% more compactor
    /// CPU (docs/benchmarks.md). Default `9`.
    pub zstd_level: i32,
    /// How long a retired (tombstoned) block is kept before its objects are deleted. Must be
    /// longer than the queriers' `block_list_refresh` (30 s) plus the longest query, so that
    /// no query still reading a retired block finds its objects gone. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub delete_grace: Duration,
    /// A block directory without `meta.json` whose newest object is older than this was left
    /// by a writer that crashed, and is deleted. Must be longer than an ingester may take to
    /// upload one block (with retries). Default `1h`.
    #[serde(with = "humantime_serde")]
    pub orphan_age: Duration,
    /// Default retention: blocks whose newest span ended longer ago than this are retired,
    /// and ingesters refuse spans that old. Per-tenant overrides change it. Default `14days`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// A JSON file of per-tenant overrides (`{"tenants": {"team-a": {"retention": "1d"}}}`),
    /// re-read every `overrides_refresh` while running. Empty: none. Values set through the
    /// admin API win over the file.
    pub overrides_file: String,
    /// How often the overrides file and the stored overrides are re-read. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub overrides_refresh: Duration,
    /// How long a compactor's claim on a tenant (its lease) lasts without renewal. A
    /// compactor that dies frees its tenants after this long. Default `2m`.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        CompactorConfig {
            cycle_interval: Duration::from_secs(30),
            window: Duration::from_secs(3600),
            recent_period: Duration::from_secs(2 * 3600),
            max_input_blocks: 16,
            max_block_bytes: 256 * 1024 * 1024,
            max_block_spans: 500_000,
            max_block_traces: 200_000,
            zstd_level: 9,
            delete_grace: Duration::from_secs(300),
            orphan_age: Duration::from_secs(3600),
            retention: Duration::from_secs(14 * 86_400),
            overrides_file: String::new(),
            overrides_refresh: Duration::from_secs(10),
            lease_ttl: Duration::from_secs(120),
        }
    }
}

impl CompactorConfig {
    /// The overrides file, when one is configured.
    pub fn overrides_path(&self) -> Option<PathBuf> {
        (!self.overrides_file.is_empty()).then(|| PathBuf::from(&self.overrides_file))
    }

    /// The output limits of a compaction job.
    pub fn limits(&self) -> crate::merge::OutputLimits {
        crate::merge::OutputLimits {
            max_spans: self.max_block_spans.max(1),
            max_traces: self.max_block_traces.max(1),
            max_bytes: self.max_block_bytes.max(1),
        }
    }
}
