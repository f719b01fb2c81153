//! Checking what a client sent before anything is stored.
//!
//! Spans with unusable IDs are refused one by one (and counted, and reported through
//! `partial_success`) rather than failing the whole request: OTLP/JSON clients that send
//! snake_case keys produce empty IDs, and one bad span must not cost the good ones. Oversized
//! attribute values are truncated, and the span says so.

use skein_format::SpanRecord;
use skein_format::model::spans_from_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{AnyValue, KeyValue};
use skein_format::wire::valid_id;

/// Attribute added to a span whose attribute values were truncated: how many were.
pub const TRUNCATED_ATTRIBUTE: &str = "skein.truncated_attributes";

/// Why a span was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refusal {
    /// Trace ID missing, not 16 bytes, or all zero.
    InvalidTraceId,
    /// Span ID missing, not 8 bytes, or all zero.
    InvalidSpanId,
    /// The trace already holds `max_trace_bytes` in memory.
    TraceTooLarge,
    /// The tenant already holds `max_live_traces` traces.
    LiveTracesLimit,
    /// The spans are older than the tenant's retention.
    TooOld,
}

impl Refusal {
    /// The label used in metrics and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::InvalidTraceId => "invalid_trace_id",
            Refusal::InvalidSpanId => "invalid_span_id",
            Refusal::TraceTooLarge => "trace_too_large",
            Refusal::LiveTracesLimit => "live_traces_limit",
            Refusal::TooOld => "too_old",
        }
    }

    /// A sentence a person can act on.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::InvalidTraceId => {
                "trace id must be 16 bytes, not all zero (in OTLP/JSON: 32 hex characters in \"traceId\")"
            }
            Refusal::InvalidSpanId => {
                "span id must be 8 bytes, not all zero (in OTLP/JSON: 16 hex characters in \"spanId\")"
            }
            Refusal::TraceTooLarge => "the trace exceeds the tenant's max_trace_bytes",
            Refusal::LiveTracesLimit => "the tenant holds max_live_traces traces already",
            Refusal::TooOld => "the spans are older than the tenant's retention",
        }
    }
}

/// Refused spans, counted by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusals(pub Vec<(Refusal, u64)>);

impl Refusals {
    /// Counts one more refusal.
    pub fn add(&mut self, r: Refusal, n: u64) {
        if n == 0 {
            return;
        }
        match self.0.iter_mut().find(|(x, _)| *x == r) {
            Some((_, c)) => *c += n,
            None => self.0.push((r, n)),
        }
    }

    /// Total refused spans.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// The `partial_success` message: every reason with its count.
    pub fn message(&self) -> String {
        self.0
            .iter()
            .map(|(r, n)| format!("{n} span(s) refused: {}", r.explain()))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The outcome of validating one request.
#[derive(Debug, Default)]
pub struct Validated {
    /// Spans that may be stored.
    pub spans: Vec<SpanRecord>,
    /// Spans refused, by reason.
    pub refused: Refusals,
    /// Attribute values were truncated: the stored spans differ from the request.
    pub modified: bool,
}

/// Refuses the spans that ended before `oldest_end_unix_nano` (now minus the tenant's
/// retention): the next compaction cycle would delete them, so storing them would only
/// look like success.
pub fn refuse_too_old(v: &mut Validated, oldest_end_unix_nano: u64) {
    let before = v.spans.len();
    v.spans.retain(|s| {
        s.span.end_time_unix_nano.max(s.span.start_time_unix_nano) >= oldest_end_unix_nano
    });
    let n = (before - v.spans.len()) as u64;
    if n > 0 {
        v.refused.add(Refusal::TooOld, n);
        v.modified = true;
    }
}

/// Truncates long strings and byte strings in place (recursively); returns how many.
fn truncate_value(v: &mut AnyValue, max: usize) -> u64 {
    match v.value.as_mut() {
        Some(Value::StringValue(s)) if s.len() > max => {
            let mut cut = max;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            1
        }
        Some(Value::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(Value::ArrayValue(a)) => a.values.iter_mut().map(|v| truncate_value(v, max)).sum(),
        Some(Value::KvlistValue(kv)) => truncate_attrs(&mut kv.values, max),
        _ => 0,
    }
}

fn truncate_attrs(attrs: &mut [KeyValue], max: usize) -> u64 {
    attrs
        .iter_mut()
        .filter_map(|kv| kv.value.as_mut())
        .map(|v| truncate_value(v, max))
        .sum()
}

/// Validates a request: refuses spans with unusable IDs and truncates attribute values longer
/// than `max_attribute_value_bytes`.
pub fn validate(mut req: ExportTraceServiceRequest, max_attribute_value_bytes: u64) -> Validated {
    let max = usize::try_from(max_attribute_value_bytes).unwrap_or(usize::MAX);
    let mut out = Validated::default();
    for rs in &mut req.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            out.modified |= truncate_attrs(&mut r.attributes, max) > 0;
        }
        for ss in &mut rs.scope_spans {
            if let Some(sc) = ss.scope.as_mut() {
                out.modified |= truncate_attrs(&mut sc.attributes, max) > 0;
            }
            let before = ss.spans.len() as u64;
            ss.spans.retain(|s| {
                if !valid_id(&s.trace_id, 16) {
                    out.refused.add(Refusal::InvalidTraceId, 1);
                    false
                } else if !valid_id(&s.span_id, 8) {
                    out.refused.add(Refusal::InvalidSpanId, 1);
                    false
                } else {
                    true
                }
            });
            out.modified |= (ss.spans.len() as u64) < before;
            for s in &mut ss.spans {
                let mut n = truncate_attrs(&mut s.attributes, max);
                for e in &mut s.events {
                    n += truncate_attrs(&mut e.attributes, max);
                }
                for l in &mut s.links {
                    n += truncate_attrs(&mut l.attributes, max);
                }
                if n > 0 {
                    out.modified = true;
                    s.attributes.push(KeyValue {
                        key: TRUNCATED_ATTRIBUTE.into(),
                        value: Some(AnyValue {
                            value: Some(Value::IntValue(n as i64)),
                        }),
                        ..Default::default()
                    });
                }
            }
        }
    }
    out.spans = spans_from_otlp(req.resource_spans);
    out
}

#[cfg(test)]
mod tests {
    use skein_format::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

    use super::*;

    fn req(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(trace: Vec<u8>, id: Vec<u8>) -> Span {
        Span {
            trace_id: trace,
            span_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn spans_older_than_the_retention_are_refused_and_counted() {
        let at = |end: u64| Span {
            end_time_unix_nano: end,
            start_time_unix_nano: end.saturating_sub(5),
            ..span(vec![1; 16], vec![end as u8 + 1; 8])
        };
        let mut v = validate(req(vec![at(10), at(100), at(99), at(200)]), 100);
        refuse_too_old(&mut v, 100);
        assert_eq!(v.spans.len(), 2);
        assert_eq!(v.refused.0, vec![(Refusal::TooOld, 2)]);
        assert!(
            v.modified,
            "the request is re-encoded without the refused spans"
        );
        assert!(
            v.refused
                .message()
                .contains("older than the tenant's retention")
        );
    }

    #[test]
    fn bad_ids_are_refused_one_by_one() {
        let v = validate(
            req(vec![
                span(vec![1; 16], vec![1; 8]),
                span(vec![], vec![1; 8]),
                span(vec![0; 16], vec![1; 8]),
                span(vec![1; 16], vec![1; 7]),
                span(vec![1; 16], vec![0; 8]),
            ]),
            100,
        );
        assert_eq!(v.spans.len(), 1);
        assert_eq!(v.refused.total(), 4);
        assert_eq!(
            v.refused.0,
            vec![(Refusal::InvalidTraceId, 2), (Refusal::InvalidSpanId, 2)]
        );
        assert!(v.modified);
        assert!(
            v.refused
                .message()
                .contains("2 span(s) refused: trace id must be 16 bytes")
        );
    }

    #[test]
    fn long_values_are_truncated_on_char_boundaries_and_marked() {
        let mut s = span(vec![1; 16], vec![1; 8]);
        s.attributes.push(KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue("é".repeat(10))),
            }),
            ..Default::default()
        });
        let v = validate(req(vec![s]), 5);
        let attrs = &v.spans[0].span.attributes;
        match attrs[0].value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => assert_eq!(s, "éé"),
            other => panic!("{other:?}"),
        }
        assert_eq!(attrs[1].key, TRUNCATED_ATTRIBUTE);
        assert!(v.modified);
    }

    #[test]
    fn clean_requests_are_not_modified() {
        let v = validate(req(vec![span(vec![1; 16], vec![1; 8])]), 100);
        assert!(!v.modified);
        assert_eq!(v.refused.total(), 0);
    }
}
