//! The span model: one [`SpanRecord`] per span, carrying the resource and instrumentation
//! scope it was sent with, and its lossless mapping from and to OTLP.
//!
//! OTLP nests spans under resources and scopes; storage and query work span by span. A
//! `SpanRecord` keeps the OTLP `Span` message as it came and shares its resource and scope
//! through `Arc`, so flattening costs no copies of the resource and regrouping for OTLP output
//! is a comparison of pointers in the common case.

use std::sync::Arc;

use crate::error::Result;
use crate::ids::{SpanId, TraceId};
use crate::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::SpanKind, status::StatusCode,
};

/// The resource a span was sent with, and the schema URL of its `ResourceSpans`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceInfo {
    /// Resource attributes and dropped count.
    pub resource: Resource,
    /// `ResourceSpans.schema_url`.
    pub schema_url: String,
}

/// The instrumentation scope a span was sent with, and the schema URL of its `ScopeSpans`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScopeInfo {
    /// Scope name, version, attributes and dropped count.
    pub scope: InstrumentationScope,
    /// `ScopeSpans.schema_url`.
    pub schema_url: String,
}

/// One span with its resource and scope.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecord {
    /// Shared with the other spans of the same `ResourceSpans`.
    pub resource: Arc<ResourceInfo>,
    /// Shared with the other spans of the same `ScopeSpans`.
    pub scope: Arc<ScopeInfo>,
    /// The span as OTLP defines it.
    pub span: Span,
}

/// Resource attribute holding the service name.
pub const SERVICE_NAME: &str = "service.name";

impl SpanRecord {
    /// The trace ID, or an error when the span's `trace_id` is not 16 bytes.
    pub fn trace_id(&self) -> Result<TraceId> {
        TraceId::from_bytes(&self.span.trace_id)
    }

    /// The span ID, or an error when the span's `span_id` is not 8 bytes.
    pub fn span_id(&self) -> Result<SpanId> {
        SpanId::from_bytes(&self.span.span_id)
    }

    /// The `service.name` resource attribute when it is a string, else `""`.
    pub fn service_name(&self) -> &str {
        service_name(&self.resource.resource)
    }

    /// Span duration in nanoseconds (zero when the end precedes the start).
    pub fn duration_nanos(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
    }

    /// True for a root span: it names no parent.
    pub fn is_root(&self) -> bool {
        self.span.parent_span_id.is_empty()
    }
}

/// The `service.name` of a resource when it is a string, else `""`.
pub fn service_name(resource: &Resource) -> &str {
    resource
        .attributes
        .iter()
        .find(|kv| kv.key == SERVICE_NAME)
        .and_then(|kv| string_value(kv))
        .unwrap_or("")
}

fn string_value(kv: &KeyValue) -> Option<&str> {
    use crate::otlp::common::v1::any_value::Value;
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

/// Flattens OTLP `ResourceSpans` into span records. Nothing is validated or dropped here;
/// receivers validate IDs before storing.
pub fn spans_from_otlp(resource_spans: Vec<ResourceSpans>) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for rs in resource_spans {
        let resource = Arc::new(ResourceInfo {
            resource: rs.resource.unwrap_or_default(),
            schema_url: rs.schema_url,
        });
        for ss in rs.scope_spans {
            let scope = Arc::new(ScopeInfo {
                scope: ss.scope.unwrap_or_default(),
                schema_url: ss.schema_url,
            });
            out.extend(ss.spans.into_iter().map(|span| SpanRecord {
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
                span,
            }));
        }
    }
    out
}

/// Groups span records back into OTLP `ResourceSpans`, one per distinct resource and, inside
/// it, one `ScopeSpans` per distinct scope, in order of first appearance.
pub fn spans_to_otlp(spans: impl IntoIterator<Item = SpanRecord>) -> Vec<ResourceSpans> {
    type ScopeGroup = (Arc<ScopeInfo>, Vec<Span>);
    let mut groups: Vec<(Arc<ResourceInfo>, Vec<ScopeGroup>)> = Vec::new();
    for rec in spans {
        // Records read from one block share `Arc`s, so pointer equality finds the group
        // almost always; value equality keeps it right for records from different sources.
        let gi = match groups
            .iter()
            .rposition(|(r, _)| Arc::ptr_eq(r, &rec.resource) || **r == *rec.resource)
        {
            Some(i) => i,
            None => {
                groups.push((Arc::clone(&rec.resource), Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[gi].1;
        let si = match scopes
            .iter()
            .rposition(|(s, _)| Arc::ptr_eq(s, &rec.scope) || **s == *rec.scope)
        {
            Some(i) => i,
            None => {
                scopes.push((Arc::clone(&rec.scope), Vec::new()));
                scopes.len() - 1
            }
        };
        scopes[si].1.push(rec.span);
    }
    groups
        .into_iter()
        .map(|(resource, scopes)| {
            let resource = Arc::unwrap_or_clone(resource);
            ResourceSpans {
                resource: Some(resource.resource),
                schema_url: resource.schema_url,
                scope_spans: scopes
                    .into_iter()
                    .map(|(scope, spans)| {
                        let scope = Arc::unwrap_or_clone(scope);
                        ScopeSpans {
                            scope: Some(scope.scope),
                            schema_url: scope.schema_url,
                            spans,
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A canonical form of OTLP data, for comparing what was sent with what was read back.
///
/// The storage round trip keeps every field, but not the parts of the encoding that carry no
/// meaning: how spans were grouped into requests and `ResourceSpans`, the order of spans, the
/// order of attributes within one attribute list (OTLP defines attributes as a map; even
/// duplicate keys, which the specification forbids, come back but maybe in another order), and the
/// difference between an absent and an empty `Status`, `Resource` or `InstrumentationScope`
/// message. This function removes exactly those differences and nothing else.
pub fn canonical(resource_spans: Vec<ResourceSpans>) -> Vec<SpanRecord> {
    let mut spans: Vec<SpanRecord> = spans_from_otlp(resource_spans)
        .into_iter()
        .map(|mut rec| {
            canonical_span(&mut rec.span);
            let mut resource = Arc::unwrap_or_clone(rec.resource);
            sort_attrs(&mut resource.resource.attributes);
            let mut scope = Arc::unwrap_or_clone(rec.scope);
            sort_attrs(&mut scope.scope.attributes);
            rec.resource = Arc::new(resource);
            rec.scope = Arc::new(scope);
            rec
        })
        .collect();
    spans.sort_by(|a, b| canonical_order(a).cmp(&canonical_order(b)));
    spans
}

fn canonical_order(r: &SpanRecord) -> impl Ord + '_ {
    (
        &r.span.trace_id,
        &r.span.span_id,
        r.span.start_time_unix_nano,
        r.span.end_time_unix_nano,
        &r.span.name,
        &r.span.parent_span_id,
        format!("{:?}", r.span),
    )
}

fn canonical_span(span: &mut Span) {
    if span.status.as_ref() == Some(&Status::default()) {
        span.status = None;
    }
    sort_attrs(&mut span.attributes);
    for e in &mut span.events {
        sort_attrs(&mut e.attributes);
    }
    for l in &mut span.links {
        sort_attrs(&mut l.attributes);
    }
}

fn sort_attrs(attrs: &mut [KeyValue]) {
    // Duplicate keys are invalid OTLP but occur; their relative order carries no meaning
    // either, so ties are broken by the encoded value.
    use prost::Message;
    attrs.sort_by_cached_key(|kv| (kv.key.clone(), kv.value.as_ref().map(|v| v.encode_to_vec())));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![id; 8],
            name: format!("op-{id}"),
            ..Default::default()
        }
    }

    fn rs(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: SERVICE_NAME.into(),
                    value: Some(crate::otlp::common::v1::AnyValue {
                        value: Some(crate::otlp::common::v1::any_value::Value::StringValue(
                            service.into(),
                        )),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }

    #[test]
    fn flatten_and_regroup() {
        let input = vec![rs("a", vec![span(1), span(2)]), rs("b", vec![span(3)])];
        let flat = spans_from_otlp(input.clone());
        assert_eq!(flat.len(), 3);
        assert_eq!(flat[0].service_name(), "a");
        assert!(Arc::ptr_eq(&flat[0].resource, &flat[1].resource));
        assert_eq!(spans_to_otlp(flat), input);
    }

    #[test]
    fn regroup_merges_equal_resources_from_different_requests() {
        let a = spans_from_otlp(vec![rs("a", vec![span(1)])]);
        let b = spans_from_otlp(vec![rs("a", vec![span(2)])]);
        let out = spans_to_otlp(a.into_iter().chain(b));
        assert_eq!(out, vec![rs("a", vec![span(1), span(2)])]);
    }
}
