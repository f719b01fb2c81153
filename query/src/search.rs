//! The one model of "find traces like this", shared by the querier (over blocks) and the
//! ingesters (over recent data), so both sides agree on what matches.
//!
//! Two semantics, as the APIs that use them define them:
//!
//! - [`Semantics::Span`] (Jaeger): a trace matches when **one span** satisfies every filter;
//!   the duration bounds and the time range apply to that span.
//! - [`Semantics::Trace`] (Tempo): the tags (including service and span name) must hold on one
//!   span; the duration bounds apply to the **trace**, and the trace must overlap the time
//!   range.
//!
//! Tags compare the string form of a value and are looked up on the span's attributes, its
//! resource, its scope, its events and its links. Bounds are inclusive.

use skein_format::SpanRecord;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::KeyValue;
use skein_format::summary::TraceSummary;

/// Which span a filter has to hold on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semantics {
    /// Jaeger: one span satisfies every filter, durations are span durations.
    #[default]
    Span,
    /// Tempo: tags on one span, duration of the whole trace.
    Trace,
}

/// A trace search.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceQuery {
    /// Earliest time of interest, ns since the epoch (inclusive).
    pub start_unix_nano: Option<u64>,
    /// Latest time of interest (inclusive).
    pub end_unix_nano: Option<u64>,
    /// `service.name` of the span.
    pub service_name: Option<String>,
    /// Span name (Jaeger's "operation").
    pub span_name: Option<String>,
    /// Attribute key = string form of the value.
    pub tags: Vec<(String, String)>,
    /// Minimum duration, ns (span or trace, by `semantics`).
    pub min_duration_nanos: Option<u64>,
    /// Maximum duration, ns.
    pub max_duration_nanos: Option<u64>,
    /// Span- or trace-level matching.
    pub semantics: Semantics,
    /// Most traces to return.
    pub limit: usize,
}

fn attrs_have(attrs: &[KeyValue], key: &str, want: &str) -> bool {
    attrs
        .iter()
        .any(|kv| kv.key == key && kv.value.as_ref().is_some_and(|v| value_string(v) == want))
}

/// True when the span, its resource, scope, events or links carry `key` = `want`.
pub fn span_has_tag(s: &SpanRecord, key: &str, want: &str) -> bool {
    attrs_have(&s.span.attributes, key, want)
        || attrs_have(&s.resource.resource.attributes, key, want)
        || attrs_have(&s.scope.scope.attributes, key, want)
        || s.span
            .events
            .iter()
            .any(|e| attrs_have(&e.attributes, key, want))
        || s.span
            .links
            .iter()
            .any(|l| attrs_have(&l.attributes, key, want))
}

fn span_duration(s: &SpanRecord) -> u64 {
    s.duration_nanos()
}

impl TraceQuery {
    fn span_matches_tags(&self, s: &SpanRecord) -> bool {
        self.service_name
            .as_deref()
            .is_none_or(|w| s.service_name() == w)
            && self.span_name.as_deref().is_none_or(|w| s.span.name == w)
            && self.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
    }

    fn span_in_range(&self, s: &SpanRecord) -> bool {
        let start = s.span.start_time_unix_nano;
        self.start_unix_nano.is_none_or(|t| start >= t)
            && self.end_unix_nano.is_none_or(|t| start <= t)
    }

    fn duration_ok(&self, d: u64) -> bool {
        self.min_duration_nanos.is_none_or(|m| d >= m)
            && self.max_duration_nanos.is_none_or(|m| d <= m)
    }

    /// True when the trace (all its spans known so far) matches.
    pub fn matches(&self, trace: &[SpanRecord]) -> bool {
        match self.semantics {
            Semantics::Span => trace.iter().any(|s| {
                self.span_matches_tags(s)
                    && self.span_in_range(s)
                    && self.duration_ok(span_duration(s))
            }),
            Semantics::Trace => {
                let summary = TraceSummary::from_spans(trace);
                let Some(summary) = summary else { return false };
                let end = summary
                    .start_unix_nano
                    .saturating_add(summary.duration_nanos);
                self.duration_ok(summary.duration_nanos)
                    && self.start_unix_nano.is_none_or(|t| end >= t)
                    && self
                        .end_unix_nano
                        .is_none_or(|t| summary.start_unix_nano <= t)
                    && trace.iter().any(|s| self.span_matches_tags(s))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use skein_testkit::spans::small_trace as trace;

    use super::*;

    #[test]
    fn jaeger_semantics_is_one_span_for_all_filters() {
        let t = trace();
        let q = |f: &dyn Fn(&mut TraceQuery)| {
            let mut q = TraceQuery::default();
            f(&mut q);
            q.matches(&t)
        };
        assert!(q(&|q| q.service_name = Some("api".into())));
        assert!(q(&|q| q.tags = vec![
            ("db.system".into(), "pg".into()),
            ("attempt".into(), "2".into())
        ]));
        // Tags on different spans do not combine.
        assert!(!q(&|q| q.tags = vec![
            ("db.system".into(), "pg".into()),
            ("http.status_code".into(), "500".into())
        ]));
        // Resource attributes count as tags.
        assert!(q(&|q| q.tags = vec![("service.name".into(), "web".into())]));
        // Durations are the span's, inclusive.
        assert!(q(&|q| {
            q.service_name = Some("api".into());
            q.min_duration_nanos = Some(80);
            q.max_duration_nanos = Some(80)
        }));
        assert!(!q(&|q| {
            q.service_name = Some("api".into());
            q.min_duration_nanos = Some(81)
        }));
        assert!(!q(&|q| {
            q.span_name = Some("query".into());
            q.min_duration_nanos = Some(50)
        }));
        // The time range applies to the matching span's start.
        assert!(q(&|q| {
            q.span_name = Some("query".into());
            q.start_unix_nano = Some(150);
            q.end_unix_nano = Some(150)
        }));
        assert!(!q(&|q| {
            q.span_name = Some("query".into());
            q.start_unix_nano = Some(151)
        }));
    }

    #[test]
    fn tempo_semantics_uses_trace_duration() {
        let t = trace();
        let mut q = TraceQuery {
            semantics: Semantics::Trace,
            span_name: Some("query".into()),
            min_duration_nanos: Some(200),
            ..Default::default()
        };
        assert!(q.matches(&t), "the query span lasts 10 but the trace 200");
        q.min_duration_nanos = Some(201);
        assert!(!q.matches(&t));
        q.min_duration_nanos = None;
        q.start_unix_nano = Some(300);
        assert!(q.matches(&t), "the trace overlaps the range at its end");
        q.start_unix_nano = Some(301);
        assert!(!q.matches(&t));
    }
}
