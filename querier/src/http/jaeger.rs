//! The Jaeger query API v1 (Jaeger UI up to 1.x, Grafana's Jaeger data source), served on the
//! Jaeger query port and under `/jaeger` on the API port.
//!
//! Responses use Jaeger's envelope `{data, total, limit, offset, errors}` and its trace model:
//! µs times, typed tags, a `processes` map, `references`. Search has Jaeger's semantics: a
//! trace matches when one span satisfies every filter (`skein_query::search::Semantics::Span`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use serde_json::{Value, json};
use skein_format::TraceId;
use skein_format::model::SpanRecord;
use skein_format::model::{is_error, value_string};
use skein_format::otlp::common::v1::{AnyValue, KeyValue, any_value};
use skein_format::otlp::trace::v1::span::SpanKind;
use skein_query::search::{Semantics, TraceQuery};

use super::error::{JaegerError, search_error};
use super::json;
use super::params::{MAX_LIMIT, go_duration, ignore_unknown, names, pairs, tenant};
use crate::engine::lookup::TraceLookup;

/// The Jaeger v1 routes.
pub(crate) fn router(lookup: Arc<TraceLookup>) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{trace_id}", get(trace_by_id))
        .route("/api/dependencies", get(dependencies))
        .with_state(lookup)
}

/// A failed query: the cause is logged, the answer says only that it failed.
fn internal(e: impl std::fmt::Display) -> JaegerError {
    tracing::error!(error = %e, "jaeger query failed");
    JaegerError::internal("the query could not be completed; see the querier's log")
}

/// An answer in Jaeger's envelope: `data`, the number of items in it, no errors.
fn envelope(data: Value, total: usize) -> Response {
    json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
}

/// Notes the parameters not in `known` (ignored: proxies and clients add their own).
fn check_known(pairs: &[(String, String)], known: &[&str]) -> Result<(), JaegerError> {
    ignore_unknown(names(pairs), known);
    Ok(())
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

pub(crate) fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        Ok(SpanKind::Internal) => "internal",
        _ => "",
    }
}

fn tag(key: &str, v: &KeyValue) -> Value {
    let value = v.value.as_ref().and_then(|a| a.value.as_ref());
    match value {
        Some(any_value::Value::BoolValue(b)) => json!({ "key": key, "type": "bool", "value": b }),
        Some(any_value::Value::IntValue(i)) => json!({ "key": key, "type": "int64", "value": i }),
        Some(any_value::Value::DoubleValue(d)) => {
            json!({ "key": key, "type": "float64", "value": d })
        }
        Some(any_value::Value::BytesValue(b)) => {
            json!({ "key": key, "type": "binary", "value": base64::engine::general_purpose::STANDARD.encode(b) })
        }
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            json!({ "key": key, "type": "string", "value": v.value.as_ref().map(json_text).unwrap_or_default() })
        }
        _ => {
            json!({ "key": key, "type": "string", "value": v.value.as_ref().map(value_string).unwrap_or_default() })
        }
    }
}

/// An attribute value as JSON text: what the OpenTelemetry→Jaeger translation makes of an
/// array or a kvlist, which Jaeger's typed tags cannot hold. Inside it, ints and doubles are
/// numbers (doubles written as JavaScript writes them: `1`, `2.5`, `1e+21`, `1e-7`), bytes
/// are base64 strings, an unset value is `null`, and a kvlist is an object with its keys
/// sorted, the last of a repeated key winning. Unlike the collector, which loses the whole
/// value over one, a NaN or infinite double is the string OTLP/JSON spells it with (`"NaN"`,
/// `"Infinity"`, `"-Infinity"`); and `<`, `>`, `&` are not escaped.
fn json_text(v: &AnyValue) -> String {
    let mut out = String::new();
    write_json(v.value.as_ref(), &mut out);
    out
}

fn write_json(v: Option<&any_value::Value>, out: &mut String) {
    use any_value::Value as V;
    match v {
        None => out.push_str("null"),
        Some(V::StringValue(s)) => write_json_str(s, out),
        Some(V::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(V::IntValue(i)) => out.push_str(&i.to_string()),
        Some(V::StringValueStrindex(i)) => out.push_str(&i.to_string()),
        Some(V::DoubleValue(d)) => write_json_double(*d, out),
        Some(V::BytesValue(b)) => {
            write_json_str(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Some(V::ArrayValue(a)) => {
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item.value.as_ref(), out);
            }
            out.push(']');
        }
        Some(V::KvlistValue(kv)) => {
            let entries: BTreeMap<&str, Option<&V>> = kv
                .values
                .iter()
                .map(|e| {
                    (
                        e.key.as_str(),
                        e.value.as_ref().and_then(|a| a.value.as_ref()),
                    )
                })
                .collect();
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A double as JavaScript (and Go's `encoding/json`) writes it: the shortest digits that read
/// back to it, in exponent form only below 1e-6 or from 1e21 up.
fn write_json_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if d != 0.0 && (d.abs() < 1e-6 || d.abs() >= 1e21) {
        let s = format!("{d:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => {
                out.push_str(m);
                out.push_str("e+");
                out.push_str(e);
            }
            _ => out.push_str(&s),
        }
    } else {
        out.push_str(&d.to_string());
    }
}

fn str_tag(key: &str, value: &str) -> Value {
    json!({ "key": key, "type": "string", "value": value })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One trace in Jaeger's model.
pub(crate) fn jaeger_trace(spans: &[SpanRecord]) -> Value {
    let mut processes: Vec<(String, Vec<Value>)> = Vec::new();
    let mut process_ids: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    let trace_id = spans
        .first()
        .map(|s| hex(&s.span.trace_id))
        .unwrap_or_default();
    for s in spans {
        let service = s.service_name().to_owned();
        let ptags: Vec<Value> = s
            .resource
            .resource
            .attributes
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(|kv| tag(&kv.key, kv))
            .collect();
        let pid = match processes
            .iter()
            .position(|(svc, t)| *svc == service && *t == ptags)
        {
            Some(i) => process_ids[i].clone(),
            None => {
                processes.push((service.clone(), ptags));
                process_ids.push(format!("p{}", processes.len()));
                process_ids[processes.len() - 1].clone()
            }
        };
        let mut tags: Vec<Value> = s
            .span
            .attributes
            .iter()
            .map(|kv| tag(&kv.key, kv))
            .collect();
        let kind = kind_name(s.span.kind);
        if !kind.is_empty() {
            tags.push(str_tag("span.kind", kind));
        }
        if !s.scope.scope.name.is_empty() {
            tags.push(str_tag("otel.scope.name", &s.scope.scope.name));
        }
        if !s.scope.scope.version.is_empty() {
            tags.push(str_tag("otel.scope.version", &s.scope.scope.version));
        }
        if let Some(st) = &s.span.status {
            match st.code {
                1 => tags.push(str_tag("otel.status_code", "OK")),
                2 => tags.push(str_tag("otel.status_code", "ERROR")),
                _ => {}
            }
            if !st.message.is_empty() {
                tags.push(str_tag("otel.status_description", &st.message));
            }
        }
        if is_error(s) && !s.span.attributes.iter().any(|kv| kv.key == "error") {
            tags.push(json!({ "key": "error", "type": "bool", "value": true }));
        }
        let mut references = Vec::new();
        if !s.span.parent_span_id.is_empty() {
            references.push(json!({ "refType": "CHILD_OF", "traceID": trace_id, "spanID": hex(&s.span.parent_span_id) }));
        }
        for l in &s.span.links {
            references.push(json!({ "refType": "FOLLOWS_FROM", "traceID": hex(&l.trace_id), "spanID": hex(&l.span_id) }));
        }
        let logs: Vec<Value> = s
            .span
            .events
            .iter()
            .map(|e| {
                let mut fields = vec![str_tag("event", &e.name)];
                fields.extend(e.attributes.iter().map(|kv| tag(&kv.key, kv)));
                json!({ "timestamp": e.time_unix_nano / 1000, "fields": fields })
            })
            .collect();
        let start = s.span.start_time_unix_nano;
        out.push(json!({
            "traceID": trace_id,
            "spanID": hex(&s.span.span_id),
            "operationName": s.span.name,
            "references": references,
            "startTime": start / 1000,
            "duration": s.span.end_time_unix_nano.saturating_sub(start) / 1000,
            "tags": tags,
            "logs": logs,
            "processID": pid,
            "warnings": null,
            "flags": s.span.flags & 0xff,
        }));
    }
    let processes: serde_json::Map<String, Value> = processes
        .into_iter()
        .zip(process_ids)
        .map(|((svc, tags), id)| (id, json!({ "serviceName": svc, "tags": tags })))
        .collect();
    json!({ "traceID": trace_id, "spans": out, "processes": processes, "warnings": null })
}

async fn trace_by_id(
    State(lookup): State<Arc<TraceLookup>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    let p = pairs(raw.as_deref());
    check_known(&p, &["start", "end", "raw", "prettyPrint"])?;
    let tenant = tenant(&headers)?;
    let id = TraceId::from_hex(&id).map_err(|e| JaegerError::bad_request(e.to_string()))?;
    let spans = lookup.find(&tenant, &id, None).await.map_err(internal)?;
    if spans.is_empty() {
        return Err(JaegerError::not_found("trace not found"));
    }
    Ok(envelope(json!([jaeger_trace(&spans)]), 1))
}

fn micros(name: &str, v: &str) -> Result<u64, JaegerError> {
    v.parse::<u64>().map_err(|_| {
        JaegerError::bad_request(format!(
            "{name}={v:?} is not a time in microseconds since the epoch"
        ))
    })
}

/// The search of `GET /api/traces`, with Jaeger's semantics.
fn jaeger_query(p: &[(String, String)]) -> Result<TraceQuery, JaegerError> {
    let mut q = TraceQuery {
        semantics: Semantics::Span,
        limit: 20,
        ..Default::default()
    };
    q.service_name = first(p, "service").map(str::to_owned);
    q.span_name = first(p, "operation").map(str::to_owned);
    if let Some(tags) = first(p, "tags") {
        let map: BTreeMap<String, Value> = serde_json::from_str(tags)
            .map_err(|e| JaegerError::bad_request(format!("tags must be a JSON object of key to value, like {{\"http.status_code\":\"500\"}}: {e}")))?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            q.tags.push((k, v));
        }
    }
    for (_, t) in p.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = t
            .split_once(':')
            .ok_or_else(|| JaegerError::bad_request(format!("tag={t:?} must be key:value")))?;
        q.tags.push((k.to_owned(), v.to_owned()));
    }
    let dur = |name: &str| -> Result<Option<u64>, JaegerError> {
        first(p, name)
            .map(|v| go_duration(v).map_err(|e| JaegerError::bad_request(format!("{name}: {e}"))))
            .transpose()
    };
    q.min_duration_nanos = dur("minDuration")?;
    q.max_duration_nanos = dur("maxDuration")?;
    if let (Some(a), Some(b)) = (q.min_duration_nanos, q.max_duration_nanos)
        && a > b
    {
        return Err(JaegerError::bad_request(
            "minDuration is greater than maxDuration",
        ));
    }
    let start = first(p, "start").map(|v| micros("start", v)).transpose()?;
    let end = first(p, "end").map(|v| micros("end", v)).transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(JaegerError::bad_request(format!(
            "start={s} is after end={e}"
        )));
    }
    q.start_unix_nano = start.map(|s| s.saturating_mul(1000));
    q.end_unix_nano = end.map(|e| e.saturating_mul(1000).saturating_add(999));
    if let Some(l) = first(p, "limit") {
        let limit: usize = l
            .parse()
            .map_err(|_| JaegerError::bad_request(format!("limit={l:?} is not a whole number")))?;
        if limit > MAX_LIMIT {
            return Err(JaegerError::bad_request(format!(
                "limit={limit} is out of range; use 0 to {}",
                MAX_LIMIT
            )));
        }
        // Jaeger treats 0 as "the default".
        q.limit = if limit == 0 { 20 } else { limit };
    }
    if let Some(lb) = first(p, "lookback")
        && lb != "custom"
        && q.start_unix_nano.is_none()
    {
        let d = go_duration(lb).map_err(|e| JaegerError::bad_request(format!("lookback: {e}")))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        q.start_unix_nano = Some(now.saturating_sub(d));
    }
    Ok(q)
}

async fn find_traces(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    let p = pairs(raw.as_deref());
    check_known(
        &p,
        &[
            "service",
            "operation",
            "tags",
            "tag",
            "start",
            "end",
            "lookback",
            "minDuration",
            "maxDuration",
            "limit",
            "traceID",
            "spanKind",
            "raw",
            "prettyPrint",
        ],
    )?;
    let tenant = tenant(&headers)?;
    let ids: Vec<&str> = p
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| v.as_str())
        .collect();
    if !ids.is_empty() {
        let mut traces = Vec::new();
        for id in ids {
            let id = TraceId::from_hex(id).map_err(|e| JaegerError::bad_request(e.to_string()))?;
            let spans = lookup.find(&tenant, &id, None).await.map_err(internal)?;
            if !spans.is_empty() {
                traces.push(jaeger_trace(&spans));
            }
        }
        if traces.is_empty() {
            return Err(JaegerError::not_found("trace not found"));
        }
        let n = traces.len();
        return Ok(envelope(Value::Array(traces), n));
    }
    let query = jaeger_query(&p)?;
    let found = lookup.search(&tenant, &query).await.map_err(search_error)?;
    let mut traces = Vec::with_capacity(found.traces.len());
    for t in &found.traces {
        let spans = lookup
            .find(&tenant, &t.trace_id, None)
            .await
            .map_err(internal)?;
        traces.push(jaeger_trace(&spans));
    }
    let n = traces.len();
    Ok(envelope(Value::Array(traces), n))
}

async fn services(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    check_known(&pairs(raw.as_deref()), &[])?;
    let tenant = tenant(&headers)?;
    let ops = lookup.operations(&tenant).await.map_err(internal)?;
    let services: BTreeSet<&str> = ops.iter().map(|(s, _, _)| s.as_str()).collect();
    let n = services.len();
    Ok(envelope(json!(services), n))
}

async fn service_operations(
    State(lookup): State<Arc<TraceLookup>>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    let tenant = tenant(&headers)?;
    let ops = lookup.operations(&tenant).await.map_err(internal)?;
    let names: BTreeSet<&str> = ops
        .iter()
        .filter(|(s, _, _)| *s == service)
        .map(|(_, n, _)| n.as_str())
        .collect();
    let n = names.len();
    Ok(envelope(json!(names), n))
}

async fn operations(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    let p = pairs(raw.as_deref());
    check_known(&p, &["service", "spanKind"])?;
    let tenant = tenant(&headers)?;
    let service =
        first(&p, "service").ok_or_else(|| JaegerError::bad_request("service is required"))?;
    let kind = first(&p, "spanKind");
    let ops = lookup.operations(&tenant).await.map_err(internal)?;
    let list: Vec<Value> = ops
        .iter()
        .filter(|(s, _, k)| s == service && kind.is_none_or(|want| kind_name(*k) == want))
        .map(|(_, name, k)| json!({ "name": name, "spanKind": kind_name(*k) }))
        .collect();
    let n = list.len();
    Ok(envelope(Value::Array(list), n))
}

/// `GET /api/dependencies?endTs=&lookback=` (ms): calls between services, counted from
/// parent/child spans of different services in the traces of the window.
async fn dependencies(
    State(lookup): State<Arc<TraceLookup>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, JaegerError> {
    let p = pairs(raw.as_deref());
    check_known(&p, &["endTs", "lookback"])?;
    let tenant = tenant(&headers)?;
    let ms = |name: &str| -> Result<Option<u64>, JaegerError> {
        first(&p, name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    JaegerError::bad_request(format!(
                        "{name}={v:?} is not a number of milliseconds"
                    ))
                })
            })
            .transpose()
    };
    let end_ms = ms("endTs")?.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    let lookback = ms("lookback")?.unwrap_or(86_400_000);
    let window = (
        end_ms.saturating_sub(lookback).saturating_mul(1_000_000),
        end_ms.saturating_mul(1_000_000),
    );
    let calls = lookup
        .service_calls(&tenant, window)
        .await
        .map_err(internal)?;
    let list: Vec<Value> = calls
        .into_iter()
        .map(|((parent, child), n)| json!({ "parent": parent, "child": child, "callCount": n }))
        .collect();
    let n = list.len();
    Ok(envelope(Value::Array(list), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skein_format::otlp::common::v1::{ArrayValue, KeyValueList};

    fn val(v: any_value::Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    fn kv(key: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(val(v)),
            ..Default::default()
        }
    }

    #[test]
    fn json_text_of_structured_values() {
        use any_value::Value as V;
        let list = |values: Vec<AnyValue>| val(V::ArrayValue(ArrayValue { values }));
        assert_eq!(
            json_text(&list(vec![
                val(V::StringValue("a\"b\\c\n\u{1}<&>é".into())),
                val(V::IntValue(-7)),
                val(V::BoolValue(false)),
                val(V::BytesValue(vec![1, 2, 255])),
                AnyValue { value: None },
                list(vec![]),
            ])),
            r#"["a\"b\\c\n\u0001<&>é",-7,false,"AQL/",null,[]]"#
        );
        let doubles = [
            (1.0, "1"),
            (2.5, "2.5"),
            (-0.0, "-0"),
            (0.1, "0.1"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (-1.5e300, "-1.5e+300"),
            (1e-6, "0.000001"),
            (1.5e-7, "1.5e-7"),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"Infinity\""),
            (f64::NEG_INFINITY, "\"-Infinity\""),
        ];
        for (d, want) in doubles {
            assert_eq!(
                json_text(&list(vec![val(V::DoubleValue(d))])),
                format!("[{want}]")
            );
        }
        let map = val(V::KvlistValue(KeyValueList {
            values: vec![
                kv("z", V::StringValue("first".into())),
                kv("a", V::IntValue(1)),
                kv(
                    "m",
                    V::KvlistValue(KeyValueList {
                        values: vec![kv("k", V::ArrayValue(ArrayValue { values: vec![] }))],
                    }),
                ),
                kv("z", V::StringValue("last".into())),
                KeyValue {
                    key: "unset".into(),
                    value: None,
                    ..Default::default()
                },
            ],
        }));
        assert_eq!(
            json_text(&map),
            r#"{"a":1,"m":{"k":[]},"unset":null,"z":"last"}"#
        );
        assert_eq!(
            tag("m", &kv("m", map.value.unwrap())),
            json!({ "key": "m", "type": "string", "value": r#"{"a":1,"m":{"k":[]},"unset":null,"z":"last"}"# })
        );
    }
}
