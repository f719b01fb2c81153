//! Every fixture in `tests/fixtures/` goes through the real binary's OTLP/HTTP receiver and
//! reads back from the ingester's recent data without loss: as OTLP/JSON, as the protobuf
//! JSON variant Go tools write, and as OTLP protobuf (plain and gzip).
//!
//! "Without loss" is `skein_format::model::canonical` equality: it ignores only grouping,
//! span order and attribute order, so every field of every span, event, link, resource and
//! scope must come back as sent.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::otlp::{hex, json_diff, now_nanos};
use common::{Options, Skein};
use prost::Message;
use serde_json::Value;
use skein_format::SpanRecord;
use skein_format::model::canonical;
use skein_format::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use skein_format::otlp::common::v1::any_value;
use skein_format::otlp::trace::v1::{ResourceSpans, TracesData};

const TIMESTAMP_KEYS: [&str; 3] = ["startTimeUnixNano", "endTimeUnixNano", "timeUnixNano"];

/// Where a shifted fixture's latest timestamp lands: a minute before now.
const ENDS_AGO: Duration = Duration::from_secs(60);

/// The fixture sent as protobuf: it has attribute values of every type.
const PROTOBUF_FIXTURE: &str = "vulture-trace.json";

#[test]
fn every_otlp_json_fixture_is_accepted_and_reads_back_losslessly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    let mut failures = Vec::new();
    for (name, fixture) in otlp_json_fixtures() {
        // Twelve files share one trace ID: each gets a tenant of its own.
        let tenant = format!("fixture-{}", stem(&name));
        let body = serde_json::to_vec(&fixture.shifted).expect("encode json");
        if let Err(e) = post_json(&skein, &tenant, body) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        if let Err(e) = compare(&skein, &tenant, &fixture) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_protojson_fixture_reads_back_like_its_otlp_json_twin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    let twins = otlp_json_fixtures();
    let files = fixture_files("otlp-protojson");
    let names = |files: &[PathBuf]| -> Vec<String> { files.iter().map(|p| file_name(p)).collect() };
    assert_eq!(
        names(&files),
        twins.keys().cloned().collect::<Vec<_>>(),
        "otlp-protojson/ and otlp-json/ hold the same files"
    );
    let mut failures = Vec::new();
    for path in files {
        let name = file_name(&path);
        let twin = &twins[&name];
        let mut protojson = read_json(&path);
        // The twin's offset, so both read back with the same timestamps.
        assert_eq!(
            latest_timestamp(&protojson),
            twin.latest,
            "{name}: the protojson file has the twin's timestamps"
        );
        shift_timestamps(&mut protojson, twin.offset);
        let tenant = format!("protojson-{}", stem(&name));
        let body = serde_json::to_vec(&protojson).expect("encode json");
        if let Err(e) = post_json(&skein, &tenant, body) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        if let Err(e) = compare(&skein, &tenant, twin) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_fixture_sent_as_protobuf_plain_and_gzip_reads_back_losslessly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    let fixtures = otlp_json_fixtures();
    let fixture = &fixtures[PROTOBUF_FIXTURE];
    let request = ExportTraceServiceRequest {
        resource_spans: fixture.decoded.clone(),
    };
    let plain = request.encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).expect("gzip");
    let gzipped = gz.finish().expect("gzip");
    for (tenant, encoding, body) in [
        ("protobuf-identity", None, plain),
        ("protobuf-gzip", Some("gzip"), gzipped),
    ] {
        let mut req = common::client()
            .post(skein.otlp_http_url())
            .header("Content-Type", "application/x-protobuf")
            .header("X-Scope-OrgID", tenant);
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        let resp = req.body(body).send().expect("export");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp.bytes().expect("response body");
        assert_eq!(status, 200, "{tenant}: {}", String::from_utf8_lossy(&bytes));
        assert_eq!(
            content_type, "application/x-protobuf",
            "{tenant}: the response uses the request's content type"
        );
        let response = ExportTraceServiceResponse::decode(&bytes[..]).unwrap_or_else(|e| {
            panic!("{tenant}: the response is no ExportTraceServiceResponse: {e}")
        });
        assert_eq!(
            response.partial_success, None,
            "{tenant}: full success leaves partial_success unset"
        );
        if let Err(e) = compare(&skein, tenant, fixture) {
            panic!("{PROTOBUF_FIXTURE} as {tenant}: {e}");
        }
    }
}

/// Doubles in OTLP/JSON must be read exactly: `-1.5e-300` is one value, and it is not
/// `-1.4999999999999998e-300`. serde_json's default number parser is fast but may be off by
/// one unit in the last place; its `float_roundtrip` feature makes it exact.
#[test]
fn otlp_json_doubles_read_back_bit_for_bit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &Options::default());
    // Decimal texts as a client writes them; std's `f64::from_str` is the exact reference.
    let texts = [
        "-1.5e-300",
        "0.1",
        "3.141592653589793",
        "2.2250738585072014e-308",
        "5e-324",
        "1.7976931348623157e308",
        "9007199254740993",
        "0.30000000000000004",
        "123456789.12345679",
        "1e23",
        "8.41e21",
        "2.409919865102884e-181",
    ];
    let attrs: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(r#"{{"key":"d{i:02}","value":{{"doubleValue":{t}}}}},{{"key":"s{i:02}","value":{{"doubleValue":"{t}"}}}}"#)
        })
        .collect();
    let now = now_nanos();
    let body = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"doubles","startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{}]}}]}}]}}]}}"#,
        now - 2_000_000_000,
        now - 1_000_000_000,
        attrs.join(",")
    );
    post_json(&skein, "doubles", body.into_bytes()).unwrap_or_else(|e| panic!("{e}"));
    // Protobuf from the internal API: no JSON parser between the store and the comparison.
    let url = format!(
        "http://{}/internal/v1/traces/5b8efff798038103d269b633813fc60c",
        skein.ports.internal
    );
    let bytes = common::client()
        .get(&url)
        .header("X-Scope-OrgID", "doubles")
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .expect("read the trace")
        .bytes()
        .expect("body");
    let data = TracesData::decode(&bytes[..]).expect("protobuf TracesData");
    let span = &data.resource_spans[0].scope_spans[0].spans[0];
    let mut wrong = Vec::new();
    for kv in &span.attributes {
        let i: usize = kv.key[1..].parse().expect("index");
        let want: f64 = texts[i].parse().expect("a valid double");
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::DoubleValue(got)) if got.to_bits() == want.to_bits() => {}
            other => wrong.push(format!("{} = {}: read back {other:?}", kv.key, texts[i])),
        }
    }
    assert_eq!(
        span.attributes.len(),
        texts.len() * 2,
        "every attribute came back"
    );
    assert!(wrong.is_empty(), "doubles changed:\n{}", wrong.join("\n"));
}

/// One `otlp-json/` file: shifted to end a minute ago, and decoded.
struct Fixture {
    /// The file with every timestamp moved by `offset`.
    shifted: Value,
    /// `shifted` decoded by opentelemetry-proto's serde (the specification's encoding).
    decoded: Vec<ResourceSpans>,
    /// Trace IDs in the file, lowercase hex.
    trace_ids: BTreeSet<String>,
    /// The latest timestamp in the original file.
    latest: u64,
    /// Nanoseconds added to every timestamp.
    offset: i128,
}

/// Every `otlp-json/` fixture by file name.
fn otlp_json_fixtures() -> BTreeMap<String, Fixture> {
    let now = i128::from(now_nanos());
    fixture_files("otlp-json")
        .into_iter()
        .map(|path| {
            let name = file_name(&path);
            let mut shifted = read_json(&path);
            let latest = latest_timestamp(&shifted);
            let offset = now - ENDS_AGO.as_nanos() as i128 - i128::from(latest);
            shift_timestamps(&mut shifted, offset);
            let data: TracesData = serde_json::from_value(shifted.clone())
                .unwrap_or_else(|e| panic!("{name}: not OTLP/JSON: {e}"));
            let trace_ids: BTreeSet<String> = data
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .map(|span| hex(&span.trace_id))
                .collect();
            assert!(!trace_ids.is_empty(), "{name} has no spans");
            let fixture = Fixture {
                shifted,
                decoded: data.resource_spans,
                trace_ids,
                latest,
                offset,
            };
            (name, fixture)
        })
        .collect()
}

fn fixture_files(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

fn stem(name: &str) -> &str {
    name.strip_suffix(".json").unwrap_or(name)
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A timestamp as the file writes it: a decimal string (proto3 JSON for 64-bit integers) or
/// a number.
fn timestamp(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|e| panic!("timestamp {s:?}: {e}")),
        other => other
            .as_u64()
            .unwrap_or_else(|| panic!("timestamp {other} is not an unsigned integer")),
    }
}

/// Visits every timestamp field, wherever it is nested.
fn for_each_timestamp(v: &mut Value, f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if TIMESTAMP_KEYS.contains(&key.as_str()) {
                    f(value);
                } else {
                    for_each_timestamp(value, f);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| for_each_timestamp(item, f)),
        _ => {}
    }
}

fn latest_timestamp(v: &Value) -> u64 {
    let mut latest = 0;
    for_each_timestamp(&mut v.clone(), &mut |t| latest = latest.max(timestamp(t)));
    assert!(latest > 0, "no timestamps in the fixture");
    latest
}

/// Moves every timestamp by `offset`, keeping strings strings and numbers numbers.
fn shift_timestamps(v: &mut Value, offset: i128) {
    for_each_timestamp(v, &mut |t| {
        let moved = u64::try_from(i128::from(timestamp(t)) + offset)
            .expect("shifted timestamp fits in u64");
        *t = match t {
            Value::String(_) => Value::String(moved.to_string()),
            _ => Value::from(moved),
        };
    });
}

/// Sends an OTLP/JSON body and expects full success: 200 with no `partialSuccess`.
fn post_json(skein: &Skein, tenant: &str, body: Vec<u8>) -> Result<(), String> {
    let resp = common::client()
        .post(skein.otlp_http_url())
        .header("Content-Type", "application/json")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .map_err(|e| format!("export failed: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.text().map_err(|e| format!("response body: {e}"))?;
    if status != 200 {
        return Err(format!("export answered {status}: {text}"));
    }
    let answer: Value =
        serde_json::from_str(&text).map_err(|e| format!("response {text:?} is not JSON: {e}"))?;
    match answer.get("partialSuccess") {
        None => Ok(()),
        Some(p) => Err(format!("export answered partialSuccess {p}")),
    }
}

/// Reads every trace of `fixture` back as `tenant` and compares canonically.
fn compare(skein: &Skein, tenant: &str, fixture: &Fixture) -> Result<(), String> {
    let mut read = Vec::new();
    for id in &fixture.trace_ids {
        let trace = skein
            .recent_trace(tenant, id)
            .ok_or_else(|| format!("trace {id} not found as tenant {tenant}"))?;
        let data: TracesData = serde_json::from_value(trace)
            .map_err(|e| format!("the internal api returned invalid OTLP JSON for {id}: {e}"))?;
        read.extend(data.resource_spans);
    }
    let expected = canonical(fixture.decoded.clone());
    let actual = canonical(read);
    if expected == actual {
        return Ok(());
    }
    Err(describe_difference(&expected, &actual))
}

/// Which spans are missing or extra, and the fields of the first differing span.
fn describe_difference(expected: &[SpanRecord], actual: &[SpanRecord]) -> String {
    let ids = |spans: &[SpanRecord]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for s in spans {
            *m.entry(span_label(s)).or_insert(0) += 1;
        }
        m
    };
    let (want, got) = (ids(expected), ids(actual));
    let missing: Vec<&String> = want
        .iter()
        .filter(|(k, n)| got.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|(k, n)| want.get(*k) < Some(n))
        .map(|(k, _)| k)
        .collect();
    let mut out = format!("sent {} spans, read back {}", expected.len(), actual.len());
    if !missing.is_empty() || !extra.is_empty() {
        out += &format!("; missing: {missing:?}; unexpected: {extra:?}");
        return out;
    }
    let differing: Vec<usize> = (0..expected.len())
        .filter(|&i| expected[i] != actual[i])
        .collect();
    let first = differing[0];
    let mut lines = Vec::new();
    json_diff(
        "",
        &record_json(&expected[first]),
        &record_json(&actual[first]),
        &mut lines,
    );
    out += &format!(
        "; {} spans differ; first: {} (sent → read back):\n  {}",
        differing.len(),
        span_label(&expected[first]),
        lines.join("\n  ")
    );
    out
}

fn span_label(s: &SpanRecord) -> String {
    format!(
        "{:?} {}/{}",
        s.span.name,
        hex(&s.span.trace_id),
        hex(&s.span.span_id)
    )
}

fn record_json(s: &SpanRecord) -> Value {
    serde_json::json!({
        "span": serde_json::to_value(&s.span).expect("span json"),
        "resource": serde_json::to_value(&s.resource.resource).expect("resource json"),
        "resourceSchemaUrl": s.resource.schema_url,
        "scope": serde_json::to_value(&s.scope.scope).expect("scope json"),
        "scopeSchemaUrl": s.scope.schema_url,
    })
}
