//! The ingester's Prometheus metrics.
//!
//! Typed families, created once per process (`metrics()`) and added to the process's
//! registry by [`register`]; the binary exposes that registry on `/metrics`. In-process
//! ingesters (tests start several) share the same series, as they share one `/metrics`.

use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Latency buckets in seconds, 0.5 ms to 10 s.
const LATENCY_BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of the received counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Received {
    pub(crate) tenant: String,
    pub(crate) protocol: &'static str,
}

/// Labels of the refused-spans counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Refused {
    pub(crate) tenant: String,
    pub(crate) reason: String,
}

/// Labels of per-tenant gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Tenant {
    pub(crate) tenant: String,
}

/// Every ingester metric.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub(crate) spans_received: Family<Received, Counter>,
    pub(crate) bytes_received: Family<Received, Counter>,
    pub(crate) refused: Family<Refused, Counter>,
    pub(crate) wal_bytes: Gauge,
    pub(crate) wal_fsyncs: Counter,
    pub(crate) wal_fsync_seconds: Gauge<f64, AtomicU64>,
    pub(crate) live_traces: Family<Tenant, Gauge>,
    pub(crate) blocks_flushed: Counter,
    pub(crate) flush_failures: Counter,
    pub(crate) flush_seconds: Histogram,
    pub(crate) spans_flushed: Counter,
}

/// The process's ingester metrics.
pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
        spans_received: Family::default(),
        bytes_received: Family::default(),
        refused: Family::default(),
        wal_bytes: Gauge::default(),
        wal_fsyncs: Counter::default(),
        wal_fsync_seconds: Gauge::default(),
        live_traces: Family::default(),
        blocks_flushed: Counter::default(),
        flush_failures: Counter::default(),
        flush_seconds: Histogram::new(LATENCY_BUCKETS),
        spans_flushed: Counter::default(),
    });
    &METRICS
}

/// Adds the ingester's metrics to `registry` (once per registry). Counter names get their
/// `_total` suffix from the encoder.
pub fn register(registry: &mut Registry) {
    let m = metrics();
    let r = registry.sub_registry_with_prefix("skein_ingester");
    r.register(
        "spans_received",
        "Spans accepted, by tenant and protocol",
        m.spans_received.clone(),
    );
    r.register(
        "bytes_received",
        "Request bytes accepted, by tenant and protocol",
        m.bytes_received.clone(),
    );
    r.register(
        "spans_refused",
        "Spans refused, by tenant and reason",
        m.refused.clone(),
    );
    r.register(
        "wal_bytes",
        "Bytes in write-ahead log segments",
        m.wal_bytes.clone(),
    );
    r.register(
        "wal_fsyncs",
        "Write-ahead log fsyncs (group commits)",
        m.wal_fsyncs.clone(),
    );
    r.register(
        "wal_last_fsync_seconds",
        "Duration of the latest write-ahead log fsync",
        m.wal_fsync_seconds.clone(),
    );
    r.register(
        "live_traces",
        "Traces held in memory, by tenant",
        m.live_traces.clone(),
    );
    r.register(
        "blocks_flushed",
        "Blocks written to object storage",
        m.blocks_flushed.clone(),
    );
    r.register(
        "flush_failures",
        "Failed attempts to write a block",
        m.flush_failures.clone(),
    );
    r.register(
        "flush_duration_seconds",
        "Time to encode and upload a block",
        m.flush_seconds.clone(),
    );
    r.register(
        "spans_flushed",
        "Spans written in blocks",
        m.spans_flushed.clone(),
    );
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::prometheus_text::encode;

    use super::*;

    #[test]
    fn keeps_the_metric_names_and_escapes_labels() {
        let mut registry = Registry::default();
        register(&mut registry);
        metrics()
            .refused
            .get_or_create(&Refused {
                tenant: "a\"b".into(),
                reason: "too_old".into(),
            })
            .inc_by(3);
        metrics().flush_seconds.observe(20.0);
        // Families appear once they have a series.
        let received = Received {
            tenant: "t".into(),
            protocol: "grpc",
        };
        metrics().spans_received.get_or_create(&received).inc();
        metrics().bytes_received.get_or_create(&received).inc();
        metrics()
            .live_traces
            .get_or_create(&Tenant { tenant: "t".into() })
            .set(1);
        let mut text = String::new();
        encode(&mut text, &registry).expect("encode");
        for name in [
            "skein_ingester_spans_received_total",
            "skein_ingester_bytes_received_total",
            "skein_ingester_wal_bytes",
            "skein_ingester_wal_fsyncs_total",
            "skein_ingester_wal_last_fsync_seconds",
            "skein_ingester_live_traces",
            "skein_ingester_blocks_flushed_total",
            "skein_ingester_flush_failures_total",
            "skein_ingester_spans_flushed_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}: {text}");
        }
        assert!(
            text.contains(
                r#"skein_ingester_spans_refused_total{tenant="a\"b",reason="too_old"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"skein_ingester_flush_duration_seconds_bucket{le="+Inf"} "#),
            "{text}"
        );
    }
}
