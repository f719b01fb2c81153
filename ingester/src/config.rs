//! The `[ingester]` section of the configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the ingester role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngesterConfig {
    /// Address of the OTLP gRPC receiver. Default `0.0.0.0:4317`, the OTLP standard port.
    pub otlp_grpc_listen: SocketAddr,
    /// Address of the OTLP HTTP receiver (`POST /v1/traces`, and Zipkin's
    /// `POST /api/v2/spans`). Default `0.0.0.0:4318`, the OTLP standard port.
    pub otlp_http_listen: SocketAddr,
    /// Address of the internal API queriers use to read recent data, plus `/metrics` and
    /// `/ready`. Default `127.0.0.1:3201`: only the all-in-one process's own querier needs it,
    /// and it calls in-process; a cluster binds it to an address the queriers can reach.
    pub internal_listen: SocketAddr,
    /// Directory of the write-ahead log. It must be on a local disk that survives restarts.
    /// Default `./data/wal`.
    pub wal_dir: PathBuf,
    /// The WAL's size cap. When reached, writes are refused with a retryable error (HTTP 503,
    /// gRPC UNAVAILABLE) until blocks are flushed. Default 1 GiB.
    pub wal_max_bytes: u64,
    /// Size at which the WAL starts a new segment. Default 64 MiB.
    pub wal_segment_bytes: u64,
    /// A trace with no new span for this long is moved to the head block. Default `5s`.
    #[serde(with = "humantime_serde")]
    pub trace_idle_period: Duration,
    /// A trace is moved to the head block at this age even if spans still arrive (later spans
    /// start a new piece of it; the querier joins the pieces). Default `30s`.
    #[serde(with = "humantime_serde")]
    pub max_trace_age: Duration,
    /// The head block is cut into a block when it holds this many bytes (request bytes).
    /// Default 32 MiB: writing a block decodes it in memory, so its size sets the memory peak
    /// of a flush, and it must stay well below `max_unflushed_bytes`.
    pub max_block_bytes: u64,
    /// … or when its oldest span arrived this long ago. Default `1m`.
    #[serde(with = "humantime_serde")]
    pub max_block_duration: Duration,
    /// After a block is written, the ingester keeps serving its spans to queriers for this
    /// long, so that no trace disappears while queriers refresh their block lists. Must exceed
    /// the queriers' block-list refresh interval. Default `2m`.
    #[serde(with = "humantime_serde")]
    pub complete_block_timeout: Duration,
    /// How often live traces are checked for cutting. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub cut_interval: Duration,
    /// Most request bytes held in memory and not yet written to object storage, over all
    /// tenants. Above it, writes get a retryable refusal (HTTP 503, gRPC UNAVAILABLE) until
    /// the flusher catches up: memory stays bounded when spans arrive faster than blocks can
    /// be written. Default 128 MiB.
    pub max_unflushed_bytes: u64,
    /// Longest wait between two attempts to upload a block while object storage fails.
    /// Default `30s`.
    #[serde(with = "humantime_serde")]
    pub flush_max_backoff: Duration,
    /// Per-tenant limits: defaults and overrides.
    pub limits: LimitsConfig,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        IngesterConfig {
            otlp_grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            otlp_http_listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
            internal_listen: SocketAddr::from(([127, 0, 0, 1], 3201)),
            wal_dir: PathBuf::from("./data/wal"),
            wal_max_bytes: 1 << 30,
            wal_segment_bytes: 64 << 20,
            trace_idle_period: Duration::from_secs(5),
            max_trace_age: Duration::from_secs(30),
            max_block_bytes: 32 << 20,
            max_block_duration: Duration::from_secs(60),
            complete_block_timeout: Duration::from_secs(120),
            cut_interval: Duration::from_secs(1),
            max_unflushed_bytes: 128 << 20,
            flush_max_backoff: Duration::from_secs(30),
            limits: LimitsConfig::default(),
        }
    }
}

/// Limits of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimits {
    /// Sustained ingestion rate, bytes of request body per second. Default 20 MB/s.
    pub ingestion_rate_bytes: u64,
    /// Burst allowance above the rate, bytes. Default 40 MB.
    pub ingestion_burst_bytes: u64,
    /// Largest request body, after decompression. Default 64 MiB (the size the OTLP
    /// specification recommends accepting).
    pub max_request_bytes: u64,
    /// Most bytes one trace may hold in memory; further spans of it are refused. Default 20 MB.
    pub max_trace_bytes: u64,
    /// Longest attribute value (strings and bytes); longer values are truncated and the span
    /// gets the attribute `skein.truncated_attributes` with the number truncated. Default 4096.
    pub max_attribute_value_bytes: u64,
    /// Most traces held live; spans of further new traces are refused. Default 200,000.
    pub max_live_traces: u64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            ingestion_rate_bytes: 20_000_000,
            ingestion_burst_bytes: 40_000_000,
            max_request_bytes: 64 << 20,
            max_trace_bytes: 20_000_000,
            max_attribute_value_bytes: 4096,
            max_live_traces: 200_000,
        }
    }
}

/// Some limits of one tenant; unset ones come from the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimitsOverride {
    /// See [`TenantLimits::ingestion_rate_bytes`].
    pub ingestion_rate_bytes: Option<u64>,
    /// See [`TenantLimits::ingestion_burst_bytes`].
    pub ingestion_burst_bytes: Option<u64>,
    /// See [`TenantLimits::max_request_bytes`].
    pub max_request_bytes: Option<u64>,
    /// See [`TenantLimits::max_trace_bytes`].
    pub max_trace_bytes: Option<u64>,
    /// See [`TenantLimits::max_attribute_value_bytes`].
    pub max_attribute_value_bytes: Option<u64>,
    /// See [`TenantLimits::max_live_traces`].
    pub max_live_traces: Option<u64>,
}

/// `[ingester.limits]`: defaults for every tenant, and overrides by tenant ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits of tenants without an override.
    pub defaults: TenantLimits,
    /// Per-tenant overrides, e.g. `[ingester.limits.overrides.team-a]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub overrides: BTreeMap<String, TenantLimitsOverride>,
}

impl LimitsConfig {
    /// The effective limits of a tenant.
    pub fn for_tenant(&self, tenant: &str) -> TenantLimits {
        let d = self.defaults;
        match self.overrides.get(tenant) {
            None => d,
            Some(o) => TenantLimits {
                ingestion_rate_bytes: o.ingestion_rate_bytes.unwrap_or(d.ingestion_rate_bytes),
                ingestion_burst_bytes: o.ingestion_burst_bytes.unwrap_or(d.ingestion_burst_bytes),
                max_request_bytes: o.max_request_bytes.unwrap_or(d.max_request_bytes),
                max_trace_bytes: o.max_trace_bytes.unwrap_or(d.max_trace_bytes),
                max_attribute_value_bytes: o
                    .max_attribute_value_bytes
                    .unwrap_or(d.max_attribute_value_bytes),
                max_live_traces: o.max_live_traces.unwrap_or(d.max_live_traces),
            },
        }
    }

    /// The largest request body any tenant may send: receivers refuse bodies above it before
    /// they know the tenant's own limit.
    pub fn max_request_bytes_any(&self) -> u64 {
        self.overrides
            .values()
            .filter_map(|o| o.max_request_bytes)
            .chain([self.defaults.max_request_bytes])
            .max()
            .unwrap_or(self.defaults.max_request_bytes)
    }
}
