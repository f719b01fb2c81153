//! Bad input on the OTLP/HTTP and Zipkin receivers of the real binary: every case gets the
//! status the OTLP specification prescribes and a message a person can act on, and the
//! receiver keeps accepting well-formed requests afterwards (checked after every case).
//!
//! All cases run against one process. Each case runs on its own (a failing case does not hide
//! the others); the test fails at the end naming every case that failed.

use crate::common;

use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use common::otlp::{
    self, JSON, PROTOBUF, hex, metric, now_nanos, post, post_otlp, request, span_count, span_id,
    span_names, string_attr,
};
use common::{Options, Skein};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::{Value, json};

/// The default tenant's (and so the receiver's) body limit, after decompression; the
/// largest fixture must fit.
const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// A tenant whose own limit is below the default.
const SMALL_TENANT: &str = "small-requests";
const SMALL_TENANT_MAX_REQUEST_BYTES: usize = 2048;

fn limits() -> String {
    format!(
        "[ingester.limits.defaults]\nmax_request_bytes = {MAX_REQUEST_BYTES}\n\n\
         [ingester.limits.overrides.{SMALL_TENANT}]\nmax_request_bytes = {SMALL_TENANT_MAX_REQUEST_BYTES}\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Requests and replies.

/// A trace ID no other request of this test uses.
fn fresh_trace_id() -> Vec<u8> {
    otlp::fresh_trace_id([0xb4, 0xd1, 0x4e, 0x57], 0x11)
}

fn span(trace_id: &[u8], span_id: &[u8], name: &str) -> Span {
    let now = now_nanos();
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: now - 5_000_000,
        end_time_unix_nano: now,
        ..Default::default()
    }
}

/// An OTLP/JSON span as the specification writes it (hex IDs, integer enums).
fn json_span(trace_id: &str, span_id: &str, name: &str) -> Value {
    let now = now_nanos();
    json!({
        "traceId": trace_id,
        "spanId": span_id,
        "name": name,
        "kind": 2,
        "startTimeUnixNano": (now - 5_000_000).to_string(),
        "endTimeUnixNano": now.to_string(),
    })
}

fn json_request(service: &str, spans: Vec<Value>) -> Vec<u8> {
    json!({
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
            "scopeSpans": [{"spans": spans}],
        }]
    })
    .to_string()
    .into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

/// `rejectedSpans` of a JSON `partialSuccess`: an int64, so a string or a number.
fn rejected_spans(v: &Value) -> i64 {
    let r = &v["partialSuccess"]["rejectedSpans"];
    r.as_i64()
        .or_else(|| r.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("no partialSuccess.rejectedSpans in {v}"))
}

/// The receiver still takes a well-formed request and holds its span.
fn assert_still_accepts(skein: &Skein, after: &str) {
    let trace = fresh_trace_id();
    let body = request("healthy-check", vec![span(&trace, &span_id(1), "still-ok")]);
    let r = post_otlp(skein, &[("Content-Type", PROTOBUF)], &body.encode_to_vec());
    assert_eq!(
        r.status,
        200,
        "after {after}: a well-formed request was refused: {}",
        r.text()
    );
    let resp = ExportTraceServiceResponse::decode(r.body.as_slice())
        .unwrap_or_else(|e| panic!("after {after}: the 200 reply is not a response: {e}"));
    assert_eq!(
        resp.partial_success, None,
        "after {after}: full success must leave partial_success unset"
    );
    let held = skein.recent_trace("single-tenant", &hex(&trace));
    assert!(
        held.is_some_and(|t| span_count(&t) == 1),
        "after {after}: the accepted span is not held"
    );
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn truncated_protobuf(skein: &Skein) {
    let trace = fresh_trace_id();
    let full = request("truncated", vec![span(&trace, &span_id(1), "cut")]).encode_to_vec();
    let cut = &full[..full.len() / 2];
    let r = post_otlp(skein, &[("Content-Type", PROTOBUF)], cut);
    assert_eq!(r.status, 400, "truncated protobuf: {}", r.text());
    let (code, message) = r.protobuf_status();
    assert_eq!(code, 3, "INVALID_ARGUMENT expected; message {message:?}");
    assert!(
        message.contains("protobuf") && message.contains("ExportTraceServiceRequest"),
        "the message should say the protobuf body is not an export request: {message:?}"
    );
    assert!(
        skein.recent_trace("single-tenant", &hex(&trace)).is_none(),
        "nothing of a refused body may be stored"
    );
}

fn invalid_json(skein: &Skein) {
    // A syntax error at line 1, column 19, and a body cut short.
    for (body, what) in [
        (&b"{\"resourceSpans\":[}"[..], "invalid json"),
        (&b"{\"resourceSpans\":["[..], "truncated json"),
    ] {
        let r = post_otlp(skein, &[("Content-Type", JSON)], body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let (code, message) = r.json_status();
        assert_eq!(code, 3, "{what}: INVALID_ARGUMENT expected; {message:?}");
        assert!(
            message.contains(what) && message.contains("line 1 column "),
            "{what}: the message should say so and name the position: {message:?}"
        );
    }
    let r = post_otlp(skein, &[("Content-Type", JSON)], b"{\"resourceSpans\":[}");
    let (_, message) = r.json_status();
    assert!(
        message.contains("line 1 column 19"),
        "the position of the syntax error: {message:?}"
    );
}

fn wrong_content_type(skein: &Skein) {
    for ct in ["text/plain", "application/xml", "multipart/form-data"] {
        let r = post_otlp(skein, &[("Content-Type", ct)], b"{}");
        assert_eq!(r.status, 415, "content-type {ct}: {}", r.text());
        let (_, message) = r.json_status();
        assert!(
            message.contains(ct)
                && message.contains("application/x-protobuf")
                && message.contains("application/json"),
            "content-type {ct}: the message should name it and the supported types: {message:?}"
        );
    }
    // Parameters and case do not matter.
    let r = post_otlp(
        skein,
        &[("Content-Type", "Application/JSON; charset=utf-8")],
        b"{}",
    );
    assert_eq!(r.status, 200, "json with a charset: {}", r.text());
}

fn unsupported_content_encoding(skein: &Skein) {
    for enc in ["br", "compress", "snappy"] {
        let r = post_otlp(
            skein,
            &[("Content-Type", JSON), ("Content-Encoding", enc)],
            b"{}",
        );
        assert_eq!(r.status, 415, "content-encoding {enc}: {}", r.text());
        let (_, message) = r.json_status();
        assert!(
            message.contains(enc) && message.contains("gzip"),
            "content-encoding {enc}: the message should name it and what works: {message:?}"
        );
    }
    // Supported encodings work, and a body that is not what its encoding says is bad data.
    let trace = fresh_trace_id();
    let body = json_request(
        "gzipped",
        vec![json_span(&hex(&trace), &hex(&span_id(1)), "g")],
    );
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("Content-Encoding", "gzip")],
        &gzip(&body),
    );
    assert_eq!(r.status, 200, "a gzip body: {}", r.text());
    assert!(skein.recent_trace("single-tenant", &hex(&trace)).is_some());
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("Content-Encoding", "gzip")],
        &body,
    );
    assert_eq!(
        r.status,
        400,
        "a body labelled gzip that is not: {}",
        r.text()
    );
    let (_, message) = r.json_status();
    assert!(
        message.contains("decompress"),
        "the message should say decompression failed: {message:?}"
    );
}

/// A valid OTLP/JSON body of about `size` bytes (padded with whitespace, which JSON ignores).
fn padded_json(size: usize) -> Vec<u8> {
    let trace = fresh_trace_id();
    let mut body = json_request("big", vec![json_span(&hex(&trace), &hex(&span_id(1)), "x")]);
    let close = body.pop().expect("non-empty json");
    body.resize(size.saturating_sub(1).max(body.len()), b' ');
    body.push(close);
    body
}

fn body_over_the_receiver_limit(skein: &Skein) {
    let body = padded_json(MAX_REQUEST_BYTES + 4096);
    let r = post_otlp(skein, &[("Content-Type", JSON)], &body);
    assert_eq!(
        r.status,
        413,
        "a body over the receiver's limit: {}",
        r.text()
    );
    let (_, message) = r.json_status();
    assert!(
        message.contains(&MAX_REQUEST_BYTES.to_string()),
        "the message should name the limit of {MAX_REQUEST_BYTES}: {message:?}"
    );
    // The same for protobuf, with a protobuf status.
    let trace = fresh_trace_id();
    let mut s = span(&trace, &span_id(1), "big");
    s.attributes
        .push(string_attr("blob", &"x".repeat(MAX_REQUEST_BYTES)));
    let r = post_otlp(
        skein,
        &[("Content-Type", PROTOBUF)],
        &request("big", vec![s]).encode_to_vec(),
    );
    assert_eq!(
        r.status,
        413,
        "a protobuf body over the limit: {}",
        r.text()
    );
    let (_, message) = r.protobuf_status();
    assert!(message.contains("limit"), "{message:?}");
    assert!(skein.recent_trace("single-tenant", &hex(&trace)).is_none());
}

fn body_over_a_tenant_override(skein: &Skein) {
    // Under the receiver's limit (the largest of all tenants), over this tenant's own.
    let body = padded_json(SMALL_TENANT_MAX_REQUEST_BYTES + 1000);
    assert!(body.len() < MAX_REQUEST_BYTES);
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", SMALL_TENANT)],
        &body,
    );
    assert_eq!(
        r.status,
        413,
        "a body over the tenant's max_request_bytes: {}",
        r.text()
    );
    let (_, message) = r.json_status();
    assert!(
        message.contains("max_request_bytes")
            && message.contains(&SMALL_TENANT_MAX_REQUEST_BYTES.to_string()),
        "the message should name the tenant limit and its value: {message:?}"
    );
    // The same body is fine for a tenant on the defaults, and a small one for this tenant.
    let r = post_otlp(skein, &[("Content-Type", JSON)], &body);
    assert_eq!(r.status, 200, "default tenant: {}", r.text());
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", SMALL_TENANT)],
        &padded_json(SMALL_TENANT_MAX_REQUEST_BYTES / 2),
    );
    assert_eq!(
        r.status,
        200,
        "a small body for the small tenant: {}",
        r.text()
    );
    assert!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", SMALL_TENANT), ("reason", "request_too_large")]
        ) >= 1.0,
        "the refusal is counted under reason request_too_large"
    );
}

fn gzip_bomb(skein: &Skein) {
    // 32 MiB of JSON whitespace: about 32 KB of gzip, under the receiver's limit, and
    // 512 times the limit once inflated.
    let mut inflated = json_request("bomb", vec![]);
    let close = inflated.pop().expect("non-empty json");
    inflated.resize(32 << 20, b' ');
    inflated.push(close);
    let bomb = gzip(&inflated);
    drop(inflated);
    assert!(
        bomb.len() < MAX_REQUEST_BYTES,
        "the bomb should pass the compressed-size check: {} bytes",
        bomb.len()
    );
    for ct in [JSON, PROTOBUF] {
        let r = post_otlp(
            skein,
            &[("Content-Type", ct), ("Content-Encoding", "gzip")],
            &bomb,
        );
        assert_eq!(r.status, 413, "gzip bomb as {ct}: {}", r.text());
        let message = if ct == JSON {
            r.json_status().1
        } else {
            r.protobuf_status().1
        };
        assert!(
            message.contains("decompressed") && message.contains(&MAX_REQUEST_BYTES.to_string()),
            "the message should say the decompressed body is over the limit: {message:?}"
        );
    }
    // Several at once do not take the process down either.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let r = post_otlp(
                    skein,
                    &[("Content-Type", JSON), ("Content-Encoding", "gzip")],
                    &bomb,
                );
                assert_eq!(r.status, 413, "concurrent gzip bomb: {}", r.text());
            });
        }
    });
    common::client()
        .get(format!("http://{}/ready", skein.ports.internal))
        .timeout(Duration::from_secs(10))
        .send()
        .and_then(reqwest::blocking::Response::error_for_status)
        .expect("the ingester is still ready after the gzip bombs");
}

fn ids_all_invalid_protobuf(skein: &Skein) {
    let good = fresh_trace_id();
    let spans = vec![
        span(&good[..15], &span_id(1), "short-trace-id"),
        span(
            &[good.clone(), vec![1]].concat(),
            &span_id(2),
            "long-trace-id",
        ),
        span(&good, &span_id(3)[..7], "short-span-id"),
        span(&good, &[0; 8], "zero-span-id"),
    ];
    let r = post_otlp(
        skein,
        &[("Content-Type", PROTOBUF), ("X-Scope-OrgID", "bad-ids-pb")],
        &request("bad-ids", spans).encode_to_vec(),
    );
    assert_eq!(r.status, 400, "only invalid ids: {}", r.text());
    let (code, message) = r.protobuf_status();
    assert_eq!(code, 3, "INVALID_ARGUMENT expected: {message:?}");
    assert!(
        message.contains("2 span(s) refused: trace id must be 16 bytes")
            && message.contains("2 span(s) refused: span id must be 8 bytes"),
        "the message should count and explain both problems: {message:?}"
    );
    assert!(skein.recent_trace("bad-ids-pb", &hex(&good)).is_none());
    assert_eq!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", "bad-ids-pb"), ("reason", "invalid_trace_id")]
        ),
        2.0,
        "refusals by reason in /metrics"
    );
    assert_eq!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", "bad-ids-pb"), ("reason", "invalid_span_id")]
        ),
        2.0,
        "refusals by reason in /metrics"
    );
}

fn ids_partly_invalid_protobuf(skein: &Skein) {
    let good = fresh_trace_id();
    let spans = vec![
        span(&good, &span_id(1), "good-1"),
        span(&good[..12], &span_id(2), "bad-trace-id"),
        span(&good, &span_id(3), "good-2"),
        span(&good, &[span_id(4), vec![4]].concat(), "bad-span-id"),
        span(&[0; 16], &span_id(5), "zero-trace-id"),
    ];
    let r = post_otlp(
        skein,
        &[("Content-Type", PROTOBUF), ("X-Scope-OrgID", "partial-pb")],
        &request("partial", spans).encode_to_vec(),
    );
    assert_eq!(r.status, 200, "some valid spans: {}", r.text());
    assert!(r.content_type.starts_with(PROTOBUF), "{}", r.content_type);
    let resp = ExportTraceServiceResponse::decode(r.body.as_slice())
        .expect("an ExportTraceServiceResponse");
    let partial = resp
        .partial_success
        .expect("partial_success must be set when spans were refused");
    assert_eq!(partial.rejected_spans, 3, "{:?}", partial.error_message);
    assert!(
        partial.error_message.contains("trace id must be 16 bytes")
            && partial.error_message.contains("span id must be 8 bytes"),
        "the message should explain each reason: {:?}",
        partial.error_message
    );
    let held = skein
        .recent_trace("partial-pb", &hex(&good))
        .expect("the valid spans are stored");
    assert_eq!(span_names(&held), ["good-1", "good-2"]);
}

fn ids_invalid_json(skein: &Skein) {
    let good = hex(&fresh_trace_id());
    // Empty and all-zero IDs decode, and are refused span by span.
    let all_bad = json_request(
        "bad-ids",
        vec![
            json_span("", "0102030405060708", "empty-trace-id"),
            json_span(&"0".repeat(32), "0102030405060708", "zero-trace-id"),
            json_span(&good, "", "empty-span-id"),
        ],
    );
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "bad-ids-json")],
        &all_bad,
    );
    assert_eq!(r.status, 400, "only invalid ids: {}", r.text());
    let (code, message) = r.json_status();
    assert_eq!(code, 3);
    assert!(
        message.contains("2 span(s) refused: trace id must be 16 bytes")
            && message.contains("1 span(s) refused: span id must be 8 bytes"),
        "{message:?}"
    );

    let partial = json_request(
        "partial",
        vec![
            json_span(&good, "0102030405060708", "good"),
            json_span(&"0".repeat(32), "0102030405060709", "zero-trace-id"),
            json_span(&good, "0000000000000000", "zero-span-id"),
        ],
    );
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "bad-ids-json")],
        &partial,
    );
    assert_eq!(r.status, 200, "some valid spans: {}", r.text());
    assert!(r.content_type.starts_with(JSON), "{}", r.content_type);
    let v = r.json();
    assert_eq!(rejected_spans(&v), 2, "{v}");
    let msg = v["partialSuccess"]["errorMessage"].as_str().unwrap_or("");
    assert!(
        msg.contains("trace id must be 16 bytes") && msg.contains("span id must be 8 bytes"),
        "errorMessage should explain the refusals: {v}"
    );
    let held = skein
        .recent_trace("bad-ids-json", &good)
        .expect("the valid span is stored");
    assert_eq!(span_names(&held), ["good"]);

    // An ID of the wrong length in JSON is not an ID at all: the decoder refuses the body and
    // names the value's path (documented in ingester/src/otlp_json.rs).
    let malformed = json_request(
        "malformed",
        vec![
            json_span(&good, "0102030405060708", "good"),
            json_span(&good[..30], "0102030405060708", "short-trace-id"),
        ],
    );
    let r = post_otlp(skein, &[("Content-Type", JSON)], &malformed);
    assert_eq!(r.status, 400, "a 30-character trace id: {}", r.text());
    let (_, message) = r.json_status();
    assert!(
        message.contains("resourceSpans[0].scopeSpans[0].spans[1].traceId")
            && message.contains("32 hex characters"),
        "the message should name the span and the expected form: {message:?}"
    );
}

fn snake_case_keys(skein: &Skein) {
    let good = hex(&fresh_trace_id());
    let now = now_nanos().to_string();
    let snake = json!({
        "trace_id": good, "span_id": "0102030405060708", "name": "snake",
        "start_time_unix_nano": now, "end_time_unix_nano": now,
    });
    // Only snake_case spans: every span has empty IDs.
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "snake")],
        &json_request("snake", vec![snake.clone(), snake.clone()]),
    );
    assert_eq!(r.status, 400, "spans with snake_case id keys: {}", r.text());
    let (_, message) = r.json_status();
    assert!(
        message.contains("2 span(s) refused") && message.contains("\"traceId\""),
        "the message should point at the key to use: {message:?}"
    );
    // Mixed with a proper span: that one is kept.
    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "snake")],
        &json_request(
            "snake",
            vec![json_span(&good, "0102030405060708", "camel"), snake],
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(rejected_spans(&r.json()), 1, "{}", r.text());
    let held = skein
        .recent_trace("snake", &good)
        .expect("the camelCase span");
    assert_eq!(span_names(&held), ["camel"]);
    assert_eq!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", "snake"), ("reason", "invalid_trace_id")]
        ),
        3.0,
        "snake_case spans are counted as refused"
    );
}

/// Every path below `dir` (relative).
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            out.push(
                p.strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            );
            if p.is_dir() {
                todo.push(p);
            }
        }
    }
    out
}

/// Paths below `dir` named after one of the invalid tenants of [`invalid_tenant`].
fn stray_paths(dir: &Path) -> Vec<String> {
    // Whole components only: block IDs are hex, so substrings would match by chance.
    walk(dir)
        .into_iter()
        .filter(|p| {
            p.split('/').any(|c| {
                c == "etc" || c == "a" || c == ".." || c == "__reserved" || c.starts_with("ttt")
            })
        })
        .collect()
}

fn invalid_tenant(skein: &Skein) {
    let trace = fresh_trace_id();
    let pb = request("tenant", vec![span(&trace, &span_id(1), "t")]).encode_to_vec();
    let js = json_request(
        "tenant",
        vec![json_span(&hex(&trace), &hex(&span_id(1)), "t")],
    );
    for tenant in ["../etc", "a/b", "..", "__reserved", &"t".repeat(151)] {
        let r = post_otlp(
            skein,
            &[("Content-Type", JSON), ("X-Scope-OrgID", tenant)],
            &js,
        );
        assert_eq!(r.status, 400, "tenant {tenant:?}: {}", r.text());
        let (code, message) = r.json_status();
        assert_eq!(code, 3);
        assert!(
            message.contains("X-Scope-OrgID") && message.contains("tenant id"),
            "tenant {tenant:?}: the message should name the header and the problem: {message:?}"
        );
        let r = post_otlp(
            skein,
            &[("Content-Type", PROTOBUF), ("X-Scope-OrgID", tenant)],
            &pb,
        );
        assert_eq!(r.status, 400, "tenant {tenant:?} (protobuf): {}", r.text());
        let (code, message) = r.protobuf_status();
        assert_eq!(code, 3, "{message:?}");
    }
    let r = post(
        &format!("http://{}/api/v2/spans", skein.ports.otlp_http),
        &[("Content-Type", JSON), ("X-Scope-OrgID", "../etc")],
        b"[]",
    );
    assert_eq!(r.status, 400, "zipkin, tenant ../etc: {}", r.text());
    assert!(r.json_status().1.contains("tenant id"), "{}", r.text());

    let r = post_otlp(
        skein,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "../etc")],
        &js,
    );
    let (_, message) = r.json_status();
    assert!(
        message.contains("'/'") && message.contains("allowed are"),
        "the message should say which character is wrong and what is allowed: {message:?}"
    );
    // Nothing was created for it: not beside the data directories, not inside them.
    assert!(!skein.dir.join("etc").exists(), "{:?}", walk(&skein.dir));
    let stray = stray_paths(&skein.dir);
    assert!(
        stray.is_empty(),
        "paths created for invalid tenants: {stray:?}"
    );
}

fn protojson_variant(skein: &Skein) {
    // The same trace in the canonical protobuf JSON that Go tools write (base64 IDs, enum
    // names) and in OTLP/JSON proper: both are read, and they agree.
    let proto_json = common::fixture("otlp-protojson/trace-with-both-db-attributes.json");
    let otlp_json = common::fixture("otlp-json/trace-with-both-db-attributes.json");
    assert!(
        proto_json.contains("\"SPAN_KIND_SERVER\"") && proto_json.contains("\"STATUS_CODE_OK\""),
        "the fixture uses enum names"
    );
    let reference: Value = serde_json::from_str(&otlp_json).expect("fixture json");
    let id = reference["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
        .as_str()
        .expect("a trace id")
        .to_lowercase();
    for (tenant, body) in [("protojson", &proto_json), ("otlpjson", &otlp_json)] {
        let r = post_otlp(
            skein,
            &[("Content-Type", JSON), ("X-Scope-OrgID", tenant)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{tenant}: {}", r.text());
        assert_eq!(r.json(), json!({}), "{tenant}: full success answers {{}}");
    }
    let a = skein
        .recent_trace("protojson", &id)
        .expect("protojson trace");
    let b = skein
        .recent_trace("otlpjson", &id)
        .expect("otlp json trace");
    assert_eq!(span_count(&a), span_count(&reference));
    let kinds = |v: &Value| -> Vec<(String, i64, i64)> {
        let mut k: Vec<_> = v["resourceSpans"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rs| rs["scopeSpans"].as_array().into_iter().flatten())
            .flat_map(|ss| ss["spans"].as_array().into_iter().flatten())
            .map(|s| {
                (
                    s["spanId"].as_str().unwrap_or("").to_owned(),
                    s["kind"].as_i64().unwrap_or(-1),
                    s["status"]["code"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        kinds(&a),
        kinds(&b),
        "span ids, kinds and status codes read from enum names and base64 differ"
    );
}

fn empty_requests(skein: &Skein) {
    let r = post_otlp(skein, &[("Content-Type", JSON)], b"{}");
    assert_eq!(r.status, 200, "{{}}: {}", r.text());
    assert_eq!(
        r.json(),
        json!({}),
        "full success leaves partialSuccess unset"
    );
    let r = post_otlp(skein, &[("Content-Type", JSON)], b"{\"resourceSpans\":[]}");
    assert_eq!(r.status, 200, "no resource spans: {}", r.text());
    let r = post_otlp(skein, &[("Content-Type", PROTOBUF)], b"");
    assert_eq!(r.status, 200, "an empty protobuf request: {}", r.text());
    let resp = ExportTraceServiceResponse::decode(r.body.as_slice()).expect("a response");
    assert_eq!(resp.partial_success, None);
    // An empty JSON body is not a request, and the message says so.
    let r = post_otlp(skein, &[("Content-Type", JSON)], b"");
    assert_eq!(r.status, 400, "an empty json body: {}", r.text());
    assert!(r.json_status().1.contains("empty"), "{}", r.text());
}

fn zipkin(skein: &Skein) {
    let url = format!("http://{}/api/v2/spans", skein.ports.otlp_http);
    let trace = hex(&fresh_trace_id());
    let micros = now_nanos() / 1000;
    let body = json!([
        {
            "traceId": trace, "id": "00000000000000a1", "name": "get /checkout",
            "kind": "SERVER", "timestamp": micros - 3000, "duration": 2500,
            "localEndpoint": {"serviceName": "zipkin-frontend", "ipv4": "10.0.0.1"},
            "tags": {"http.method": "GET", "http.path": "/checkout"}
        },
        {
            "traceId": trace, "id": "00000000000000a2", "parentId": "00000000000000a1",
            "name": "select", "kind": "CLIENT", "timestamp": micros - 2000, "duration": 1000,
            "localEndpoint": {"serviceName": "zipkin-frontend"},
            "remoteEndpoint": {"serviceName": "postgres"}
        }
    ]);
    let r = post(
        &url,
        &[("Content-Type", JSON), ("X-Scope-OrgID", "zipkin")],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 202, "valid zipkin v2: {}", r.text());
    let held = skein
        .recent_trace("zipkin", &trace)
        .expect("the zipkin trace is held");
    assert_eq!(span_names(&held), ["get /checkout", "select"]);
    let services: Vec<&str> = held["resourceSpans"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|rs| {
            rs["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter(|a| a["key"] == "service.name")
        .filter_map(|a| a["value"]["stringValue"].as_str())
        .collect();
    assert_eq!(
        services,
        ["zipkin-frontend"],
        "service.name comes from localEndpoint"
    );

    for (bad, expect) in [
        (&b"[{\"traceId\": "[..], "truncated json"),
        (&b"{\"traceId\": \"00000000000000a1\"}"[..], "json array"),
        (
            &b"[{\"traceId\": \"00000000000000a1\", \"name\": \"no id\"}]"[..],
            "[0].id",
        ),
        (
            &b"[{\"traceId\": \"xyz\", \"id\": \"00000000000000a1\"}]"[..],
            "[0].traceId",
        ),
    ] {
        let r = post(&url, &[("Content-Type", JSON)], bad);
        assert_eq!(
            r.status,
            400,
            "malformed zipkin {:?}: {}",
            String::from_utf8_lossy(bad),
            r.text()
        );
        let (code, message) = r.json_status();
        assert_eq!(code, 3);
        assert!(
            message.contains("Zipkin") && message.contains(expect),
            "the message should say what is wrong ({expect:?}): {message:?}"
        );
    }
}

/// Once blocks are flushed, storage has a directory for each tenant that sent valid data and
/// nothing for the invalid ones.
fn storage_holds_only_valid_tenants(skein: &Skein) {
    let blocks = skein.dir.join("blocks");
    let tenants = || -> Vec<String> {
        let mut t: Vec<String> = std::fs::read_dir(&blocks)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        t.sort();
        t
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !tenants().iter().any(|t| t == "snake") {
        assert!(
            Instant::now() < deadline,
            "no block flushed for tenant snake within 30 s; storage holds {:?}",
            tenants()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stray = stray_paths(&skein.dir);
    assert!(
        stray.is_empty(),
        "paths created for invalid tenants: {stray:?}"
    );
    assert!(!skein.dir.join("etc").exists());
    let valid = [
        "single-tenant",
        SMALL_TENANT,
        "partial-pb",
        "bad-ids-json",
        "snake",
        "protojson",
        "otlpjson",
        "zipkin",
    ];
    let unexpected: Vec<String> = tenants()
        .into_iter()
        // `__skein` holds Skein's own objects (leases), never a tenant's.
        .filter(|t| !valid.contains(&t.as_str()) && !t.starts_with("__skein"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "storage holds tenants that never sent valid data: {unexpected:?}"
    );
}

#[test]
fn bad_input_gets_the_documented_status_and_the_receiver_keeps_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Blocks are cut within seconds, so that the tenants that sent valid data have
    // directories in storage by the end: the check that invalid tenants have none then means
    // something. Recent data keeps serving flushed traces (`complete_block_timeout`).
    let skein = Skein::start(
        dir.path(),
        &Options {
            ingester: "trace_idle_period = \"1s\"\nmax_block_duration = \"1s\"\n".to_owned(),
            // The protojson fixture is from 2022: a retention long enough to accept it.
            extra: format!("{}\n[compactor]\nretention = \"36500days\"\n", limits()),
            ..Options::default()
        },
    );
    type Case = fn(&Skein);
    let cases: &[(&str, Case)] = &[
        ("truncated protobuf", truncated_protobuf),
        ("invalid json", invalid_json),
        ("wrong content type", wrong_content_type),
        ("unsupported content-encoding", unsupported_content_encoding),
        ("body over the receiver limit", body_over_the_receiver_limit),
        ("body over a tenant override", body_over_a_tenant_override),
        ("gzip bomb", gzip_bomb),
        ("all ids invalid (protobuf)", ids_all_invalid_protobuf),
        ("some ids invalid (protobuf)", ids_partly_invalid_protobuf),
        ("invalid ids (json)", ids_invalid_json),
        ("snake_case keys", snake_case_keys),
        ("invalid tenant", invalid_tenant),
        ("protojson variant", protojson_variant),
        ("empty requests", empty_requests),
        ("zipkin", zipkin),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            case(&skein);
            assert_still_accepts(&skein, name);
        }));
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if catch_unwind(AssertUnwindSafe(|| {
        storage_holds_only_valid_tenants(&skein)
    }))
    .is_err()
    {
        failed.push("storage holds only valid tenants");
    }
    assert!(
        failed.is_empty(),
        "cases failed (see their panics above): {failed:?}\nskein log:\n{}",
        skein.log()
    );
}
