//! What a search result shows about a trace ([`TraceSummary`]), and the calls between
//! services a trace records. Both are computed from spans by the querier and the ingesters
//! and stored in a block's tag index, so they are defined with the format.

use std::collections::BTreeMap;

use crate::ids::TraceId;
use crate::model::{SpanRecord, is_error};

/// Adds the calls between services of one trace's `spans` to `calls`: one per span whose
/// parent is among `spans` and belongs to another service, keyed (parent's service, span's
/// service). This is what Jaeger's dependency graph counts.
pub fn count_service_calls(spans: &[&SpanRecord], calls: &mut BTreeMap<(String, String), u64>) {
    let services: foldhash::HashMap<&[u8], &str> = spans
        .iter()
        .map(|s| (s.span.span_id.as_slice(), s.service_name()))
        .collect();
    for s in spans {
        if s.is_root() {
            continue;
        }
        if let Some(&parent) = services.get(s.span.parent_span_id.as_slice()) {
            let child = s.service_name();
            if parent != child {
                *calls
                    .entry((parent.to_owned(), child.to_owned()))
                    .or_default() += 1;
            }
        }
    }
}

/// Span and error counts of one service within a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceStats {
    /// Spans of the service.
    pub spans: u64,
    /// Of those, errors.
    pub errors: u64,
}

/// What a search result shows about a trace, computed from all of its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// The trace.
    pub trace_id: TraceId,
    /// Service of the root span; empty when no root span has arrived.
    pub root_service_name: String,
    /// Name of the root span; empty when no root span has arrived.
    pub root_span_name: String,
    /// Earliest span start, ns since the epoch.
    pub start_unix_nano: u64,
    /// Latest span end minus earliest start.
    pub duration_nanos: u64,
    /// Spans.
    pub span_count: u64,
    /// Spans that are errors ([`is_error`]).
    pub error_count: u64,
    /// Spans naming a parent that is not among the trace's spans (broken propagation, or
    /// spans not yet arrived).
    pub orphan_span_count: u64,
    /// Per service.
    pub services: BTreeMap<String, ServiceStats>,
}

impl TraceSummary {
    /// Summarises the spans of one trace; `None` for no spans or a malformed trace ID.
    pub fn from_spans(spans: &[SpanRecord]) -> Option<Self> {
        Self::from_span_refs(&spans.iter().collect::<Vec<_>>())
    }

    /// Like [`from_spans`](Self::from_spans), over borrowed spans.
    pub fn from_span_refs(spans: &[&SpanRecord]) -> Option<Self> {
        let first = spans.first()?;
        let trace_id = first.trace_id().ok()?;
        let start = spans.iter().map(|s| s.span.start_time_unix_nano).min()?;
        let end = spans.iter().map(|s| s.span.end_time_unix_nano).max()?;
        // The root is the earliest span without a parent.
        let root = spans
            .iter()
            .filter(|s| s.is_root())
            .min_by_key(|s| s.span.start_time_unix_nano);
        let span_ids: foldhash::HashSet<&[u8]> =
            spans.iter().map(|s| s.span.span_id.as_slice()).collect();
        let orphans = spans
            .iter()
            .filter(|s| !s.is_root() && !span_ids.contains(s.span.parent_span_id.as_slice()))
            .count() as u64;
        let mut services: BTreeMap<String, ServiceStats> = BTreeMap::new();
        let mut errors = 0;
        for s in spans {
            let e = is_error(s);
            errors += u64::from(e);
            let st = services.entry(s.service_name().to_owned()).or_default();
            st.spans += 1;
            st.errors += u64::from(e);
        }
        Some(TraceSummary {
            trace_id,
            root_service_name: root
                .map(|r| r.service_name().to_owned())
                .unwrap_or_default(),
            root_span_name: root.map(|r| r.span.name.clone()).unwrap_or_default(),
            start_unix_nano: start,
            duration_nanos: end.saturating_sub(start),
            span_count: spans.len() as u64,
            error_count: errors,
            orphan_span_count: orphans,
            services,
        })
    }
}
