//! OTLP helpers shared by the end-to-end tests: IDs and timestamps, protobuf requests,
//! posting to the OTLP/HTTP receiver and decoding its replies, reading OTLP/JSON documents
//! back, and a readable diff of two JSON values.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;

use super::Skein;

pub const PROTOBUF: &str = "application/x-protobuf";
pub const JSON: &str = "application/json";

// ---------------------------------------------------------------------------------------------
// IDs, timestamps, attributes, requests.

/// A trace ID no other request of this test binary uses: the test's 4-byte `prefix`, 8 bytes
/// of `fill`, then a counter.
pub fn fresh_trace_id(prefix: [u8; 4], fill: u8) -> Vec<u8> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = prefix.to_vec();
    id.extend_from_slice(&[fill; 8]);
    id.extend_from_slice(&n.to_be_bytes());
    id
}

pub fn span_id(n: u8) -> Vec<u8> {
    vec![0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, n]
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now_nanos() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    u64::try_from(since.as_nanos()).expect("nanoseconds fit in u64")
}

pub fn value(v: any_value::Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

pub fn attr(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: value(v),
        ..Default::default()
    }
}

pub fn string_attr(key: &str, v: &str) -> KeyValue {
    attr(key, any_value::Value::StringValue(v.to_owned()))
}

/// A span of `kind` that ends now and lasted `duration_nanos`, with a `pad` attribute of `pad`
/// bytes, to give requests a size.
pub fn padded_span(
    trace_id: &[u8],
    span_id: &[u8],
    name: &str,
    pad: usize,
    kind: i32,
    duration_nanos: u64,
) -> Span {
    let now = now_nanos();
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: name.to_owned(),
        kind,
        start_time_unix_nano: now - duration_nanos,
        end_time_unix_nano: now,
        attributes: vec![string_attr("pad", &"p".repeat(pad))],
        ..Default::default()
    }
}

/// One resource (`service.name` = `service`) with one scope holding `spans`.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string_attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// ---------------------------------------------------------------------------------------------
// Posting and replies.

/// What the receiver answered.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the reply is not json ({e}): {:?}", self.text()))
    }

    /// A JSON `google.rpc.Status` body: (code, message).
    pub fn json_status(&self) -> (i64, String) {
        assert!(
            self.content_type.starts_with(JSON),
            "an error to a json request must be json, got content-type {:?}",
            self.content_type
        );
        let v = self.json();
        let code = v["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no integer \"code\" in the status body {v}"));
        let message = v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"message\" in the status body {v}"))
            .to_owned();
        (code, message)
    }

    /// A protobuf `google.rpc.Status` body: (code, message).
    pub fn protobuf_status(&self) -> (i32, String) {
        assert!(
            self.content_type.starts_with(PROTOBUF),
            "an error to a protobuf request must be protobuf, got content-type {:?}",
            self.content_type
        );
        let s = tonic_types::Status::decode(self.body.as_slice()).unwrap_or_else(|e| {
            panic!(
                "the body is not a google.rpc.Status protobuf ({e}): {:?}",
                self.text()
            )
        });
        (s.code, s.message)
    }

    /// The `ExportTraceServiceResponse` of a 200: (rejected spans, message).
    pub fn partial(&self) -> (i64, String) {
        assert_eq!(self.status, 200, "{}", self.text());
        let r = ExportTraceServiceResponse::decode(self.body.as_slice())
            .unwrap_or_else(|e| panic!("a 200 reply that is not a response ({e})"));
        r.partial_success
            .map(|p| (p.rejected_spans, p.error_message))
            .unwrap_or_default()
    }

    /// The `google.rpc.Status` of an error: (code, message), whatever the content type.
    pub fn status(&self) -> (i32, String) {
        let s = tonic_types::Status::decode(self.body.as_slice()).unwrap_or_else(|e| {
            panic!("an error body that is not a status ({e}): {}", self.text())
        });
        (s.code, s.message)
    }
}

/// Posts `body` and returns the reply whatever its status (bounded by a 30 s timeout).
pub fn post(url: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut req = super::client().post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .timeout(Duration::from_secs(30))
        .body(body.to_vec())
        .send()
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap_or("<not text>").to_owned());
    let body = resp
        .bytes()
        .unwrap_or_else(|e| panic!("reading the reply of POST {url}: {e}"))
        .to_vec();
    Reply {
        status,
        content_type,
        retry_after,
        body,
    }
}

/// Posts `body` to the OTLP/HTTP receiver of `skein`.
pub fn post_otlp(skein: &Skein, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    post(&skein.otlp_http_url(), headers, body)
}

/// Posts a protobuf request for `tenant` to the OTLP/HTTP receiver of `skein`.
pub fn post_protobuf(skein: &Skein, tenant: &str, body: &[u8]) -> Reply {
    post_otlp(
        skein,
        &[("Content-Type", PROTOBUF), ("X-Scope-OrgID", tenant)],
        body,
    )
}

/// The value of a counter, summed over the series that carry `labels`; 0 when absent.
pub fn metric(skein: &Skein, name: &str, labels: &[(&str, &str)]) -> f64 {
    skein
        .metrics()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap_or(0.0))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// OTLP/JSON documents.

/// The spans of an OTLP/JSON document.
pub fn spans(doc: &Value) -> Vec<&Value> {
    doc["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
        .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
        .collect()
}

/// Number of spans in an OTLP/JSON document.
pub fn span_count(doc: &Value) -> usize {
    spans(doc).len()
}

/// Names of the spans in an OTLP/JSON document, sorted.
pub fn span_names(doc: &Value) -> Vec<String> {
    let mut names: Vec<String> = spans(doc)
        .iter()
        .map(|s| s["name"].as_str().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

/// An attribute's value (`{"stringValue": ...}` and so on) from a JSON attribute list.
pub fn attribute<'a>(attrs: &'a Value, key: &str) -> Option<&'a Value> {
    attrs
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

// ---------------------------------------------------------------------------------------------
// JSON differences.

/// At most this many differences are shown per differing span (lines of [`json_diff`]).
pub const MAX_DIFF_LINES: usize = 25;

/// Collects up to `MAX_DIFF_LINES` differences between two JSON values, one per line.
pub fn json_diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    if out.len() >= MAX_DIFF_LINES || expected == actual {
        return;
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys().filter(|k| !e.contains_key(*k))) {
                let (ev, av) = (
                    e.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                );
                json_diff(&format!("{path}.{key}"), ev, av, out);
            }
        }
        (Value::Array(e), Value::Array(a)) if is_attribute_list(e) && is_attribute_list(a) => {
            // Match attributes by key, so one missing attribute is one line, not a shift.
            let by_key = |list: &[Value]| -> BTreeMap<String, Vec<Value>> {
                let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
                for kv in list {
                    // A string: `is_attribute_list` checked.
                    let key = kv["key"].as_str().unwrap_or_default().to_owned();
                    m.entry(key).or_default().push(kv["value"].clone());
                }
                m
            };
            let (e, a) = (by_key(e), by_key(a));
            for key in e.keys().chain(a.keys().filter(|k| !e.contains_key(*k))) {
                let wrap = |m: &BTreeMap<String, Vec<Value>>| match m.get(key) {
                    None => Value::Null,
                    Some(v) if v.len() == 1 => v[0].clone(),
                    Some(v) => Value::Array(v.clone()),
                };
                json_diff(&format!("{path}[{key:?}]"), &wrap(&e), &wrap(&a), out);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                out.push(format!("{path}: {} items → {} items", e.len(), a.len()));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                json_diff(&format!("{path}[{i}]"), ev, av, out);
            }
        }
        _ => out.push(format!("{path}: {} → {}", short(expected), short(actual))),
    }
}

fn is_attribute_list(list: &[Value]) -> bool {
    !list.is_empty()
        && list
            .iter()
            .all(|kv| kv["key"].is_string() && kv.get("value").is_some())
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}
