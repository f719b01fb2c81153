//! The querier's Prometheus metrics.
//!
//! Typed families, created once per process (`metrics()`) and added to the process's
//! registry by [`register`]; `/metrics` on the HTTP API exposes that registry.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of the per-ingester failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IngesterLabel {
    pub(crate) ingester: String,
}

/// Every querier metric.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) ingester_failures: Family<IngesterLabel, Counter>,
    pub(crate) partial_responses: Counter,
}

/// The process's querier metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);
    &METRICS
}

/// Adds the querier's metrics to `registry` (once per registry). Counter names get their
/// `_total` suffix from the encoder.
pub fn register(registry: &mut Registry) {
    let m = metrics();
    let r = registry.sub_registry_with_prefix("skein_querier");
    r.register(
        "ingester_failures",
        "Requests to an ingester that failed or timed out (the response was partial), by \
         ingester address",
        m.ingester_failures.clone(),
    );
    r.register(
        "partial_responses",
        "Query responses that left out at least one ingester",
        m.partial_responses.clone(),
    );
}
