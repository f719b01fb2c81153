//! The write path with a real client: the OpenTelemetry Python SDK and its OTLP exporters
//! (gRPC and HTTP/protobuf, plain and gzip) send a multi-service trace to the real binary,
//! and every field of every span reads back from the ingester's recent data exactly as the
//! SDK finished it.
//!
//! `tests/python/send_trace.py` creates the trace and prints a JSON description of each span
//! from the SDK's own `ReadableSpan` objects: that is the expected value. The test turns
//! what Skein returns into the same description and compares field by field.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::otlp::{attribute, hex, json_diff};
use common::{Options, Skein};
use serde_json::{Value, json};
use skein_format::SpanRecord;
use skein_format::model::spans_from_otlp;
use skein_format::otlp::common::v1::{AnyValue, KeyValue, any_value};
use skein_format::otlp::trace::v1::TracesData;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/send_trace.py");

/// The script gives up on an export after 10 s and flushes four providers; this bounds a
/// hung interpreter, not a slow one.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(90);

/// How long a successfully exported span may take to become readable.
const READ_DEADLINE: Duration = Duration::from_secs(10);

#[test]
fn python_sdk_over_grpc_reads_back_field_for_field() {
    sdk_round_trip("grpc");
}

#[test]
fn python_sdk_over_http_reads_back_field_for_field() {
    sdk_round_trip("http");
}

fn sdk_round_trip(protocol: &str) {
    let Some(python) = common::python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    let endpoint = match protocol {
        "grpc" => format!("http://{}", skein.ports.otlp_grpc),
        _ => skein.otlp_http_url(),
    };
    let mut sent_by_tenant = Vec::new();
    for compression in ["none", "gzip"] {
        let tenant = format!("sdk-{protocol}-{compression}");
        let sent = send_trace(&python, &skein, protocol, &endpoint, &tenant, compression);
        assert_script_covers_what_the_test_claims(&sent);
        assert_reads_back(&skein, &tenant, &sent);
        sent_by_tenant.push((tenant, sent));
    }
    let tenants: Vec<&str> = sent_by_tenant.iter().map(|(t, _)| t.as_str()).collect();
    for (tenant, sent) in &sent_by_tenant {
        for id in trace_ids(sent) {
            for other in tenants
                .iter()
                .copied()
                .filter(|t| t != tenant)
                .chain(["sdk-nobody", "single-tenant"])
            {
                assert!(
                    skein.recent_trace(other, &id).is_none(),
                    "trace {id} sent as tenant {tenant} is visible to tenant {other}"
                );
            }
        }
    }
}

/// Runs the script and returns the spans it printed (the `spans` array).
fn send_trace(
    python: &str,
    skein: &Skein,
    protocol: &str,
    endpoint: &str,
    tenant: &str,
    compression: &str,
) -> Vec<Value> {
    let mut cmd = Command::new(python);
    cmd.arg(SCRIPT)
        .args([protocol, endpoint, tenant, "--compression", compression])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The SDK reads OTEL_* variables (endpoint, headers, resource attributes, limits): a
    // developer's environment must not change what is sent.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(name);
        }
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} {SCRIPT}: {e}"));
    // Read both pipes while waiting, so a full pipe cannot stall the script.
    let mut stdout = child.stdout.take().expect("stdout pipe");
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the script") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().expect("stdout reader");
    let err = err.join().expect("stderr reader");
    let what = format!("send_trace.py {protocol} {endpoint} {tenant} --compression {compression}");
    match status {
        None => panic!(
            "{what} did not finish within {SCRIPT_DEADLINE:?}\nstderr:\n{err}\nskein log:\n{}",
            skein.log()
        ),
        Some(s) if !s.success() => {
            panic!(
                "{what} failed ({s})\nstderr:\n{err}\nskein log:\n{}",
                skein.log()
            )
        }
        Some(_) => {}
    }
    let printed: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{out}\nstderr:\n{err}"));
    match printed.get("spans").and_then(Value::as_array) {
        Some(spans) if !spans.is_empty() => spans.clone(),
        _ => panic!("{what} printed no spans:\n{out}"),
    }
}

fn trace_ids(spans: &[Value]) -> BTreeSet<String> {
    spans.iter().map(|s| text(s, "traceId")).collect()
}

fn text(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
        .to_owned()
}

fn resource_attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    attribute(&span["resource"]["attributes"], key)
}

/// The comparison is only as good as what was sent: make sure the script still produces
/// everything this test is meant to cover, so that a change to it cannot quietly weaken it.
fn assert_script_covers_what_the_test_claims(spans: &[Value]) {
    let service = |s: &Value| resource_attribute(s, "service.name").cloned();
    let by_id: BTreeMap<String, &Value> = spans.iter().map(|s| (text(s, "spanId"), s)).collect();
    let services: BTreeSet<String> = spans
        .iter()
        .filter_map(service)
        .map(|v| v.to_string())
        .collect();
    assert!(services.len() >= 3, "fewer than 3 services: {services:?}");
    let cross_service_parents = spans
        .iter()
        .filter(|s| {
            by_id
                .get(&text(s, "parentSpanId"))
                .is_some_and(|p| p["traceId"] == s["traceId"] && service(p) != service(s))
        })
        .count();
    assert!(
        cross_service_parents >= 2,
        "context was not propagated across services"
    );
    let kinds: BTreeSet<String> = spans.iter().map(|s| text(s, "kind")).collect();
    for kind in ["SERVER", "CLIENT", "INTERNAL"] {
        assert!(kinds.contains(kind), "no {kind} span: {kinds:?}");
    }
    let mut value_types = BTreeSet::new();
    for s in spans {
        for kv in s["attributes"].as_array().expect("attributes") {
            let (ty, v) = kv["value"]
                .as_object()
                .and_then(|o| o.iter().next())
                .expect("typed value");
            match v
                .as_array()
                .and_then(|a| a.first())
                .and_then(Value::as_object)
            {
                Some(first) if ty == "arrayValue" => {
                    let inner = first.keys().next().expect("typed element");
                    value_types.insert(format!("{ty} of {inner}"));
                }
                _ => {
                    value_types.insert(ty.clone());
                }
            }
        }
    }
    for ty in ["stringValue", "boolValue", "intValue", "doubleValue"] {
        assert!(
            value_types.contains(ty),
            "no {ty} attribute: {value_types:?}"
        );
        let list = format!("arrayValue of {ty}");
        assert!(
            value_types.contains(&list),
            "no {list} attribute: {value_types:?}"
        );
    }
    let has = |what: &str, f: &dyn Fn(&Value) -> bool| {
        assert!(spans.iter().any(f), "no span with {what}");
    };
    has("an exception event", &|s| {
        s["events"].as_array().is_some_and(|es| {
            es.iter().any(|e| {
                e["name"] == "exception"
                    && [
                        "exception.type",
                        "exception.message",
                        "exception.stacktrace",
                    ]
                    .iter()
                    .all(|k| {
                        e["attributes"]
                            .as_array()
                            .is_some_and(|a| a.iter().any(|kv| kv["key"] == *k))
                    })
            })
        })
    });
    has("an event with attributes", &|s| {
        s["events"].as_array().is_some_and(|es| {
            es.iter().any(|e| {
                e["name"] != "exception"
                    && e["attributes"].as_array().is_some_and(|a| !a.is_empty())
            })
        })
    });
    has("a link", &|s| {
        s["links"].as_array().is_some_and(|l| !l.is_empty())
    });
    has("an error status with a message", &|s| {
        s["status"]["code"] == "ERROR"
            && s["status"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
    });
    has("a trace state", &|s| {
        s["traceState"].as_str().is_some_and(|t| !t.is_empty())
    });
    has("dropped events and links", &|s| {
        s["droppedEventsCount"] != 0 || s["droppedLinksCount"] != 0
    });
    has("SDK resource attributes", &|s| {
        resource_attribute(s, "telemetry.sdk.language") == Some(&json!({"stringValue": "python"}))
    });
}

/// Reads every trace of `sent` back and compares each span, field by field.
fn assert_reads_back(skein: &Skein, tenant: &str, sent: &[Value]) {
    let mut expected: BTreeMap<(String, String), Value> = BTreeMap::new();
    for s in sent {
        expected.insert(
            (text(s, "traceId"), text(s, "spanId")),
            normalized(s.clone()),
        );
    }
    let mut actual: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for id in trace_ids(sent) {
        let want = sent.iter().filter(|s| s["traceId"] == id.as_str()).count();
        for rec in read_trace(skein, tenant, &id, want) {
            let d = normalized(describe(&rec));
            actual
                .entry((text(&d, "traceId"), text(&d, "spanId")))
                .or_default()
                .push(d);
        }
    }
    let name = |k: &(String, String)| {
        let span = expected
            .get(k)
            .or_else(|| actual.get(k).and_then(|v| v.first()));
        format!(
            "{:?} ({}/{})",
            span.map(|s| text(s, "name")).unwrap_or_default(),
            k.0,
            k.1
        )
    };
    let missing: Vec<String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .map(name)
        .collect();
    let extra: Vec<String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .map(name)
        .collect();
    let repeated: Vec<String> = actual
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| name(k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty() && repeated.is_empty(),
        "tenant {tenant}: spans missing: {missing:?}; unexpected: {extra:?}; read more than once: {repeated:?}"
    );
    let differing: Vec<&(String, String)> = expected
        .iter()
        .filter(|(k, v)| actual[*k][0] != **v)
        .map(|(k, _)| k)
        .collect();
    if let Some(first) = differing.first() {
        let mut lines = Vec::new();
        json_diff("", &expected[*first], &actual[*first][0], &mut lines);
        panic!(
            "tenant {tenant}: {} of {} spans differ from what the SDK sent: {:?}\n\
             first differing span {} (expected → read back):\n  {}",
            differing.len(),
            expected.len(),
            differing.iter().map(|k| name(k)).collect::<Vec<_>>(),
            name(first),
            lines.join("\n  ")
        );
    }
}

/// The spans of one trace from the ingester's recent data. The write was acknowledged, so
/// the trace should be there at once; the short wait only tolerates asynchronous indexing.
fn read_trace(skein: &Skein, tenant: &str, id: &str, want: usize) -> Vec<SpanRecord> {
    let deadline = Instant::now() + READ_DEADLINE;
    loop {
        let spans = match skein.recent_trace(tenant, id) {
            None => Vec::new(),
            Some(v) => {
                let data: TracesData = serde_json::from_value(v).unwrap_or_else(|e| {
                    panic!("the internal api returned invalid OTLP JSON for {id}: {e}")
                });
                spans_from_otlp(data.resource_spans)
            }
        };
        if spans.len() >= want || Instant::now() >= deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One span as the script describes it: see `tests/python/send_trace.py`.
fn describe(rec: &SpanRecord) -> Value {
    let s = &rec.span;
    let status = s.status.clone().unwrap_or_default();
    json!({
        "traceId": hex(&s.trace_id),
        "spanId": hex(&s.span_id),
        "parentSpanId": hex(&s.parent_span_id),
        "traceState": s.trace_state,
        "flags": s.flags,
        "name": s.name,
        "kind": kind_name(s.kind),
        "startTimeUnixNano": s.start_time_unix_nano,
        "endTimeUnixNano": s.end_time_unix_nano,
        "attributes": attributes(&s.attributes),
        "droppedAttributesCount": s.dropped_attributes_count,
        "events": s.events.iter().map(|e| json!({
            "name": e.name,
            "timeUnixNano": e.time_unix_nano,
            "attributes": attributes(&e.attributes),
            "droppedAttributesCount": e.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedEventsCount": s.dropped_events_count,
        "links": s.links.iter().map(|l| json!({
            "traceId": hex(&l.trace_id),
            "spanId": hex(&l.span_id),
            "traceState": l.trace_state,
            "flags": l.flags,
            "attributes": attributes(&l.attributes),
            "droppedAttributesCount": l.dropped_attributes_count,
        })).collect::<Vec<_>>(),
        "droppedLinksCount": s.dropped_links_count,
        "status": {"code": status_name(status.code), "message": status.message},
        "resource": {
            "attributes": attributes(&rec.resource.resource.attributes),
            "droppedAttributesCount": rec.resource.resource.dropped_attributes_count,
            "schemaUrl": rec.resource.schema_url,
        },
        "scope": {
            "name": rec.scope.scope.name,
            "version": rec.scope.scope.version,
            "attributes": attributes(&rec.scope.scope.attributes),
            "droppedAttributesCount": rec.scope.scope.dropped_attributes_count,
            "schemaUrl": rec.scope.schema_url,
        },
    })
}

fn kind_name(kind: i32) -> String {
    match kind {
        0 => "UNSPECIFIED".into(),
        1 => "INTERNAL".into(),
        2 => "SERVER".into(),
        3 => "CLIENT".into(),
        4 => "PRODUCER".into(),
        5 => "CONSUMER".into(),
        other => other.to_string(),
    }
}

fn status_name(code: i32) -> String {
    match code {
        0 => "UNSET".into(),
        1 => "OK".into(),
        2 => "ERROR".into(),
        other => other.to_string(),
    }
}

fn attributes(attrs: &[KeyValue]) -> Vec<Value> {
    attrs
        .iter()
        .map(|kv| json!({"key": kv.key, "value": typed(kv.value.as_ref())}))
        .collect()
}

/// An attribute value in the script's typed form; an absent value is `null`, which the
/// script never prints, so losing a value shows as a difference.
fn typed(value: Option<&AnyValue>) -> Value {
    use any_value::Value as V;
    let Some(value) = value else {
        return Value::Null;
    };
    match &value.value {
        None => json!({}),
        Some(V::StringValue(s)) => json!({"stringValue": s}),
        Some(V::BoolValue(b)) => json!({"boolValue": b}),
        Some(V::IntValue(i)) => json!({"intValue": i}),
        Some(V::DoubleValue(d)) => json!({"doubleValue": d}),
        Some(V::BytesValue(b)) => json!({"bytesValue": hex(b)}),
        Some(V::ArrayValue(a)) => {
            json!({"arrayValue": a.values.iter().map(|v| typed(Some(v))).collect::<Vec<_>>()})
        }
        Some(V::KvlistValue(kv)) => json!({"kvlistValue": attributes(&kv.values)}),
        Some(V::StringValueStrindex(i)) => json!({"stringValueStrindex": i}),
    }
}

/// Attribute lists are maps in OTLP: their order carries no meaning, so both sides are
/// sorted by key (a stable sort, so repeated keys keep their order). Values nested in
/// `kvlistValue` keep their order.
fn normalized(mut span: Value) -> Value {
    fn sort(attrs: &mut Value) {
        if let Some(a) = attrs.as_array_mut() {
            a.sort_by(|x, y| x["key"].as_str().cmp(&y["key"].as_str()));
        }
    }
    sort(&mut span["attributes"]);
    sort(&mut span["resource"]["attributes"]);
    sort(&mut span["scope"]["attributes"]);
    for list in ["events", "links"] {
        if let Some(items) = span[list].as_array_mut() {
            for item in items {
                sort(&mut item["attributes"]);
            }
        }
    }
    span
}
