//! The querier ↔ ingester contract: how a querier asks an ingester for the data it holds
//! that may not be in a visible block yet.
//!
//! In the all-in-one process the querier calls an ingester through this trait directly; in a
//! cluster it calls each ingester's internal HTTP API, whose paths and encodings are defined
//! here too, so both ends are built from one definition.

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{TenantId, TraceId};
use crate::model::SpanRecord;
use crate::query::TraceQuery;

/// Recent (live, cut but not yet visible) spans held by an ingester.
#[async_trait]
pub trait RecentData: Send + Sync + std::fmt::Debug {
    /// Every span of trace `id` that this ingester holds for `tenant`.
    async fn find_trace(&self, tenant: &TenantId, id: &TraceId) -> Result<Vec<SpanRecord>>;

    /// The traces (all spans this ingester holds of each) that match `query`, newest first,
    /// at most `query.limit` (0: no limit).
    async fn search(&self, tenant: &TenantId, query: &TraceQuery) -> Result<Vec<Vec<SpanRecord>>>;
}

/// Paths of the ingester's internal HTTP API (served on `ingester.internal_listen`).
pub mod paths {
    /// `GET`: one trace as an OTLP protobuf `TracesData` body (404 when absent). Tenant in
    /// `X-Scope-OrgID`.
    pub const TRACE_BY_ID: &str = "/internal/v1/traces/{trace_id}";
    /// Prometheus metrics of the process.
    pub const METRICS: &str = "/metrics";
    /// 200 once the ingester has replayed its WAL and accepts writes.
    pub const READY: &str = "/ready";
}

/// The header naming the tenant, as in Tempo, Mimir and Loki.
pub const TENANT_HEADER: &str = "X-Scope-OrgID";
