//! OTLP/JSON documents built by hand and the JSON query APIs read back: what the Tempo and
//! Jaeger API tests share.

use serde_json::{Value, json};

use super::Skein;

/// One span in OTLP/JSON: `dur_ms` long from `start` (ns), status error or unset.
#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: i32,
    start: u64,
    dur_ms: u64,
    attrs: Value,
    error: bool,
) -> Value {
    json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": kind,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + dur_ms * 1_000_000).to_string(),
        "attributes": attrs,
        "status": { "code": if error { 2 } else { 0 } }
    })
}

/// An OTLP/JSON request: `spans` of one service (plus `resource_attrs`), one scope.
pub fn request(service: &str, resource_attrs: Value, scope: Value, spans: Vec<Value>) -> Value {
    let mut attrs = vec![json!({ "key": "service.name", "value": { "stringValue": service } })];
    attrs.extend(resource_attrs.as_array().cloned().unwrap_or_default());
    json!({ "resourceSpans": [{
        "resource": { "attributes": attrs },
        "scopeSpans": [{ "scope": scope, "spans": spans }]
    }]})
}

/// Posts an OTLP/JSON request to the receiver; it must be accepted whole.
pub fn send(skein: &Skein, body: &Value) {
    let resp = super::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .expect("export");
    assert_eq!(resp.status().as_u16(), 200);
}

/// `GET url`: the status and the JSON body (`null` when the body is not JSON).
pub fn get(url: &str) -> (u16, Value) {
    let resp = super::client()
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

/// The `traceID`s of the objects in `list`, in order.
pub fn trace_ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list of traces")
        .iter()
        .map(|t| t["traceID"].as_str().expect("a traceID").to_owned())
        .collect()
}

/// Percent-encodes a query parameter value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
