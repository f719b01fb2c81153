//! Span builders for tests: small hand-made spans and traces whose every field a test can
//! see at a glance.

use std::sync::Arc;

use skein_format::SpanRecord;
use skein_format::model::{ResourceInfo, ScopeInfo};
use skein_format::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::{Span, Status, span::Event};

/// An attribute.
pub fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// A span of trace `07…07` with span ID `id` repeated, its parent's likewise, a resource with
/// `service.name` and no scope.
pub fn span(
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

/// Three spans of two services: `web` `GET /` (root, 100–300), `api` `GET /x` (an error with
/// `http.status_code` 500, 110–190) and `api` `query` (`db.system` = `pg`, an event with
/// `attempt` = 2, 150–160).
pub fn small_trace() -> Vec<SpanRecord> {
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
