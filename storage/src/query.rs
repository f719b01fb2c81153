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

use std::collections::BTreeMap;

use crate::ids::TraceId;
use crate::model::SpanRecord;
use crate::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use crate::otlp::trace::v1::{span::SpanKind, status::StatusCode};

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

/// The string form of an attribute value, as tags compare it.
pub fn value_string(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(Value::StringValueStrindex(i)) => i.to_string(),
        Some(Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(value_string).collect();
            format!("[{}]", items.join(","))
        }
        Some(Value::KvlistValue(kv)) => {
            let items: Vec<String> = kv
                .values
                .iter()
                .map(|e| {
                    format!(
                        "{}={}",
                        e.key,
                        e.value.as_ref().map(value_string).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
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

fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

/// A span is an error when its status is ERROR, or (data converted from older formats)
/// `otel.status_code` is `ERROR` or `error` is true.
pub fn is_error(s: &SpanRecord) -> bool {
    if s.span
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32)
    {
        return true;
    }
    match attr_str(&s.span.attributes, "otel.status_code") {
        Some(Value::StringValue(v)) if v.eq_ignore_ascii_case("error") => return true,
        _ => {}
    }
    matches!(
        attr_str(&s.span.attributes, "error"),
        Some(Value::BoolValue(true))
    ) || matches!(attr_str(&s.span.attributes, "error"), Some(Value::StringValue(v)) if v == "true")
}

/// The span kind, when it is a known value.
pub fn kind(s: &SpanRecord) -> Option<SpanKind> {
    SpanKind::try_from(s.span.kind).ok()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{ResourceInfo, ScopeInfo};
    use crate::otlp::resource::v1::Resource;
    use crate::otlp::trace::v1::{Span, Status, span::Event};

    fn kv(k: &str, v: Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(
        service: &str,
        name: &str,
        id: u8,
        parent: Option<u8>,
        start: u64,
        end: u64,
        attrs: Vec<KeyValue>,
    ) -> SpanRecord {
        SpanRecord {
            resource: Arc::new(ResourceInfo {
                resource: Resource {
                    attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                    ..Default::default()
                },
                schema_url: String::new(),
            }),
            scope: Arc::new(ScopeInfo::default()),
            span: Span {
                trace_id: vec![7; 16],
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                name: name.into(),
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                attributes: attrs,
                ..Default::default()
            },
        }
    }

    fn trace() -> Vec<SpanRecord> {
        let mut db = span(
            "api",
            "query",
            3,
            Some(1),
            150,
            160,
            vec![kv("db.system", Value::StringValue("pg".into()))],
        );
        db.span.events.push(Event {
            name: "retry".into(),
            attributes: vec![kv("attempt", Value::IntValue(2))],
            ..Default::default()
        });
        let mut err = span(
            "api",
            "GET /x",
            2,
            Some(1),
            110,
            190,
            vec![kv("http.status_code", Value::IntValue(500))],
        );
        err.span.status = Some(Status {
            code: 2,
            message: "boom".into(),
        });
        vec![span("web", "GET /", 1, None, 100, 300, vec![]), err, db]
    }

    #[test]
    fn summary() {
        let s = TraceSummary::from_spans(&trace()).unwrap();
        assert_eq!(
            (s.root_service_name.as_str(), s.root_span_name.as_str()),
            ("web", "GET /")
        );
        assert_eq!(
            (
                s.start_unix_nano,
                s.duration_nanos,
                s.span_count,
                s.error_count
            ),
            (100, 200, 3, 1)
        );
        assert_eq!(
            s.services["api"],
            ServiceStats {
                spans: 2,
                errors: 1
            }
        );
    }

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

    #[test]
    fn errors_from_status_and_legacy_attributes() {
        let mut s = span(
            "a",
            "x",
            1,
            None,
            0,
            1,
            vec![kv("error", Value::BoolValue(true))],
        );
        assert!(is_error(&s));
        s.span.attributes = vec![kv("otel.status_code", Value::StringValue("ERROR".into()))];
        assert!(is_error(&s));
        s.span.attributes = vec![];
        assert!(!is_error(&s));
    }

    #[test]
    fn value_strings() {
        assert_eq!(
            value_string(&AnyValue {
                value: Some(Value::DoubleValue(1.5))
            }),
            "1.5"
        );
        assert_eq!(
            value_string(&AnyValue {
                value: Some(Value::BoolValue(true))
            }),
            "true"
        );
    }
}
