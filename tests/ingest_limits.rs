//! Per-tenant limits of the real binary over OTLP/HTTP: ingestion rate (429 with
//! `Retry-After`, other tenants unaffected), attribute value truncation, `max_trace_bytes` and
//! `max_live_traces` (refused spans reported as `partialSuccess`, other traces unaffected).
//!
//! The limits are set per tenant through `[ingester.limits.overrides.<tenant>]`, so that all
//! cases share one process; each case uses tenants of its own. Traces stay live for the whole
//! test (`trace_idle_period` of a minute), so that "live" means the same thing throughout.

use crate::common;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use common::otlp::{
    self, Reply, attr, attribute, hex, metric, post_protobuf, request, span_id, spans, string_attr,
    value,
};
use common::{Options, Skein};
use opentelemetry_proto::tonic::common::v1::{ArrayValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, span::Event};
use prost::Message as _;
use serde_json::Value;

const RATE_LIMITED: &str = "rate-limited";
const RATE_BYTES: u64 = 2000;
const BURST_BYTES: u64 = 8000;
const TRUNCATING: &str = "truncating";
const SMALL_TRACES: &str = "small-traces";
const MAX_TRACE_BYTES: u64 = 4000;
const FEW_TRACES: &str = "few-traces";

fn options() -> Options {
    Options {
        ingester: "trace_idle_period = \"60s\"\nmax_trace_age = \"120s\"\n".to_owned(),
        extra: format!(
            "[ingester.limits.overrides.{RATE_LIMITED}]\n\
             ingestion_rate_bytes = {RATE_BYTES}\ningestion_burst_bytes = {BURST_BYTES}\n\n\
             [ingester.limits.overrides.{TRUNCATING}]\nmax_attribute_value_bytes = 10\n\n\
             [ingester.limits.overrides.{SMALL_TRACES}]\nmax_trace_bytes = {MAX_TRACE_BYTES}\n\n\
             [ingester.limits.overrides.{FEW_TRACES}]\nmax_live_traces = 3\n"
        ),
        ..Options::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and replies.

/// A trace ID no other request of this test binary uses.
fn fresh_trace_id() -> Vec<u8> {
    otlp::fresh_trace_id([0x11, 0x1e, 0x17, 0x75], 0x22)
}

/// A span with a `pad` attribute of `pad` bytes, to give requests a size.
fn span(trace_id: &[u8], span_id: &[u8], name: &str, pad: usize) -> Span {
    otlp::padded_span(trace_id, span_id, name, pad, 1, 1_000_000)
}

/// How many spans of `trace` the ingester holds for `tenant`.
fn held(skein: &Skein, tenant: &str, trace: &[u8]) -> usize {
    skein
        .recent_trace(tenant, &hex(trace))
        .map_or(0, |t| spans(&t).len())
}

fn parse_retry_after(r: &Reply) -> u64 {
    let text = r
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("a 429 without Retry-After: {}", r.text()));
    text.parse()
        .unwrap_or_else(|_| panic!("Retry-After {text:?} is not a number of seconds"))
}

// ---------------------------------------------------------------------------------------------
// The cases.

fn rate_limit(skein: &Skein) {
    // Requests of about 1 KB: the burst lets several through at once, the rate then refills
    // two per second, and the limited tenant sends far faster than that.
    let make = |tenant: &str| {
        let trace = fresh_trace_id();
        let body = request(tenant, vec![span(&trace, &span_id(1), "r", 900)]).encode_to_vec();
        (trace, body)
    };
    let size = make(RATE_LIMITED).1.len() as u64;
    assert!(size * 4 < BURST_BYTES, "requests of {size} bytes");
    let fit_in_burst = (BURST_BYTES / size) as usize;

    let start = Barrier::new(2);
    let (limited, other) = std::thread::scope(|s| {
        let limited = s.spawn(|| {
            start.wait();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut sent = Vec::new();
            while Instant::now() < deadline && sent.len() < 200 {
                let (trace, body) = make(RATE_LIMITED);
                let r = post_protobuf(skein, RATE_LIMITED, &body);
                let refused = r.status == 429;
                sent.push((trace, r));
                if refused {
                    break;
                }
            }
            sent
        });
        let other = s.spawn(|| {
            start.wait();
            (0..fit_in_burst * 2)
                .map(|_| {
                    let (trace, body) = make("not-limited");
                    (trace, post_protobuf(skein, "not-limited", &body))
                })
                .collect::<Vec<_>>()
        });
        (
            limited.join().expect("limited sender"),
            other.join().expect("other sender"),
        )
    });

    let statuses: Vec<u16> = limited.iter().map(|(_, r)| r.status).collect();
    let (last_trace, refused) = limited.last().expect("at least one request");
    assert_eq!(
        refused.status, 429,
        "the limited tenant was never refused in 20 s of sending; statuses {statuses:?}"
    );
    assert!(
        statuses[..statuses.len() - 1].iter().all(|s| *s == 200) && statuses.len() > fit_in_burst,
        "the burst ({fit_in_burst} requests of {size} bytes) must pass before the first 429: {statuses:?}"
    );
    let retry_after = parse_retry_after(refused);
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After {retry_after} s"
    );
    let (code, message) = refused.status();
    assert_eq!(code, 8, "RESOURCE_EXHAUSTED expected: {message:?}");
    assert!(
        message.contains(RATE_LIMITED)
            && message.contains(&format!("{RATE_BYTES} bytes/s"))
            && message.contains("retry"),
        "the message should name the tenant, its rate, and say to retry: {message:?}"
    );
    assert_eq!(
        held(skein, RATE_LIMITED, last_trace),
        0,
        "a 429 stores nothing"
    );
    for (trace, _) in &limited[..limited.len() - 1] {
        assert_eq!(
            held(skein, RATE_LIMITED, trace),
            1,
            "an accepted request is held"
        );
    }

    let other_statuses: Vec<u16> = other.iter().map(|(_, r)| r.status).collect();
    assert!(
        other_statuses.iter().all(|s| *s == 200),
        "another tenant sending at the same time must be unaffected: {other_statuses:?}"
    );
    assert!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", RATE_LIMITED), ("reason", "rate_limited")]
        ) >= 1.0,
        "rate-limited requests are counted"
    );
    assert_eq!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", "not-limited")]
        ),
        0.0
    );

    // A client that waits as told gets in again.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut wait = retry_after;
    loop {
        std::thread::sleep(Duration::from_secs(wait));
        let (trace, body) = make(RATE_LIMITED);
        let r = post_protobuf(skein, RATE_LIMITED, &body);
        if r.status == 200 {
            assert_eq!(held(skein, RATE_LIMITED, &trace), 1);
            break;
        }
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "still refused 15 s after the first 429, waiting as Retry-After said"
        );
        wait = parse_retry_after(&r);
    }
}

fn attribute_truncation(skein: &Skein) {
    let trace = fresh_trace_id();
    let mut s = span(&trace, &span_id(1), "long-values", 0);
    s.attributes = vec![
        string_attr("short", "tiny"),
        string_attr("exact", "0123456789"),
        string_attr("ascii", "abcdefghijklmnop"),
        // 'é' is 2 bytes: byte 10 is in the middle of the fifth one.
        string_attr("utf8", &format!("a{}", "é".repeat(10))),
        // 4-byte characters: 10 bytes end in the middle of the third.
        string_attr("emoji", "🙂🙂🙂🙂"),
        attr(
            "bytes",
            any_value::Value::BytesValue(b"0123456789abcdefghij".to_vec()),
        ),
        attr(
            "array",
            any_value::Value::ArrayValue(ArrayValue {
                values: vec![
                    value(any_value::Value::StringValue("x".repeat(20))).expect("some"),
                    value(any_value::Value::StringValue("ok".into())).expect("some"),
                ],
            }),
        ),
    ];
    s.events = vec![Event {
        time_unix_nano: s.start_time_unix_nano,
        name: "exception".into(),
        attributes: vec![string_attr("exception.message", &"m".repeat(100))],
        ..Default::default()
    }];
    let untouched = fresh_trace_id();
    let short = span(&untouched, &span_id(2), "short-values", 10);
    let mut req = request(TRUNCATING, vec![s]);
    req.resource_spans[0]
        .resource
        .as_mut()
        .expect("resource")
        .attributes
        .push(string_attr("host.name", "a-host-name-longer-than-ten"));
    req.resource_spans[0].scope_spans[0].spans.push(short);

    let r = post_protobuf(skein, TRUNCATING, &req.encode_to_vec());
    assert_eq!(
        r.partial(),
        (0, String::new()),
        "truncation is not a refusal"
    );

    let doc = skein
        .recent_trace(TRUNCATING, &hex(&trace))
        .expect("the span is held");
    let got = spans(&doc);
    assert_eq!(got.len(), 1);
    let attrs = &got[0]["attributes"];
    let string = |key: &str| -> String {
        attribute(attrs, key)
            .and_then(|v| v["stringValue"].as_str())
            .unwrap_or_else(|| panic!("no string attribute {key:?} in {attrs}"))
            .to_owned()
    };
    assert_eq!(string("short"), "tiny");
    assert_eq!(
        string("exact"),
        "0123456789",
        "10 bytes is within the limit"
    );
    assert_eq!(string("ascii"), "abcdefghij");
    assert_eq!(
        string("utf8"),
        format!("a{}", "é".repeat(4)),
        "cut on the character boundary before byte 10"
    );
    assert_eq!(string("emoji"), "🙂🙂");
    assert_eq!(
        attribute(attrs, "bytes").map(|v| &v["bytesValue"]),
        Some(&Value::from("MDEyMzQ1Njc4OQ==")),
        "bytes cut to 10 (base64 of \"0123456789\"): {attrs}"
    );
    let array: Vec<&str> = attribute(attrs, "array")
        .and_then(|v| v["arrayValue"]["values"].as_array())
        .unwrap_or_else(|| panic!("no array attribute in {attrs}"))
        .iter()
        .filter_map(|v| v["stringValue"].as_str())
        .collect();
    assert_eq!(array, ["x".repeat(10).as_str(), "ok"]);
    let event = attribute(&got[0]["events"][0]["attributes"], "exception.message")
        .and_then(|v| v["stringValue"].as_str());
    assert_eq!(event, Some("m".repeat(10).as_str()), "event attributes too");
    let marker = attribute(attrs, "skein.truncated_attributes")
        .unwrap_or_else(|| panic!("no skein.truncated_attributes in {attrs}"));
    let count = marker["intValue"]
        .as_i64()
        .or_else(|| marker["intValue"].as_str().and_then(|s| s.parse().ok()));
    assert_eq!(
        count,
        Some(6),
        "ascii, utf8, emoji, bytes, one array element and the event attribute: {marker}"
    );
    let host = doc["resourceSpans"][0]["resource"]["attributes"].clone();
    assert_eq!(
        attribute(&host, "host.name").and_then(|v| v["stringValue"].as_str()),
        Some("a-host-nam"),
        "resource attributes are truncated too: {host}"
    );

    let doc = skein
        .recent_trace(TRUNCATING, &hex(&untouched))
        .expect("the other span is held");
    let attrs = &spans(&doc)[0]["attributes"];
    assert!(
        attribute(attrs, "skein.truncated_attributes").is_none(),
        "a span with short values is not marked: {attrs}"
    );
    assert_eq!(
        attribute(attrs, "pad").and_then(|v| v["stringValue"].as_str()),
        Some("pppppppppp")
    );
}

fn max_trace_bytes(skein: &Skein) {
    let big = fresh_trace_id();
    let small = fresh_trace_id();
    let spans_of = |trace: &[u8], from: u8, n: u8| -> Vec<Span> {
        (from..from + n)
            .map(|i| span(trace, &span_id(i), &format!("s{i}"), 500))
            .collect()
    };
    // About 600 bytes a span: the first request holds well under the 4000 of the limit.
    let first = request(SMALL_TRACES, spans_of(&big, 1, 4)).encode_to_vec();
    assert!((first.len() as u64) < MAX_TRACE_BYTES * 3 / 4);
    let r = post_protobuf(skein, SMALL_TRACES, &first);
    assert_eq!(r.partial(), (0, String::new()), "under max_trace_bytes");

    // Four more of the same trace take it over the limit; the other trace is unaffected.
    let mut more = spans_of(&big, 5, 4);
    more.push(span(&small, &span_id(1), "other", 500));
    let r = post_protobuf(
        skein,
        SMALL_TRACES,
        &request(SMALL_TRACES, more).encode_to_vec(),
    );
    let (rejected, message) = r.partial();
    assert!(
        (1..=4).contains(&rejected),
        "some spans of the trace over max_trace_bytes are refused, got {rejected}: {message:?}"
    );
    assert!(
        message.contains("max_trace_bytes") && message.contains(&format!("{rejected} span(s)")),
        "partial_success should give the count and the reason: {message:?}"
    );
    let kept = held(skein, SMALL_TRACES, &big);
    assert_eq!(
        kept as i64 + rejected,
        8,
        "every span of the big trace is either held or reported as refused"
    );
    assert_eq!(
        held(skein, SMALL_TRACES, &small),
        1,
        "the other trace passes"
    );

    // Within one request: a large trace is cut off at the limit, small ones pass.
    let huge = fresh_trace_id();
    let other = fresh_trace_id();
    let mut batch = spans_of(&huge, 1, 12);
    batch.push(span(&other, &span_id(1), "other", 500));
    let r = post_protobuf(
        skein,
        SMALL_TRACES,
        &request(SMALL_TRACES, batch).encode_to_vec(),
    );
    let (rejected, message) = r.partial();
    assert!(
        rejected >= 6,
        "12 spans of ~600 bytes against 4000: {message:?}"
    );
    assert_eq!(held(skein, SMALL_TRACES, &huge) as i64 + rejected, 12);
    assert_eq!(held(skein, SMALL_TRACES, &other), 1);
    assert!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", SMALL_TRACES), ("reason", "trace_too_large")]
        ) >= rejected as f64
    );
}

fn max_live_traces(skein: &Skein) {
    let traces: Vec<Vec<u8>> = (0..5).map(|_| fresh_trace_id()).collect();
    let batch = traces
        .iter()
        .map(|t| span(t, &span_id(1), "first", 10))
        .collect();
    let r = post_protobuf(
        skein,
        FEW_TRACES,
        &request(FEW_TRACES, batch).encode_to_vec(),
    );
    let (rejected, message) = r.partial();
    assert_eq!(
        rejected, 2,
        "5 new traces against max_live_traces = 3: {message:?}"
    );
    assert!(
        message.contains("max_live_traces"),
        "the message should name the limit: {message:?}"
    );
    let held_now: Vec<usize> = traces.iter().map(|t| held(skein, FEW_TRACES, t)).collect();
    assert_eq!(
        held_now,
        [1, 1, 1, 0, 0],
        "the first three traces of the request are kept"
    );

    // Live traces still take spans; new ones are still refused.
    let fresh = fresh_trace_id();
    let batch = vec![
        span(&traces[0], &span_id(2), "second", 10),
        span(&fresh, &span_id(1), "new", 10),
    ];
    let r = post_protobuf(
        skein,
        FEW_TRACES,
        &request(FEW_TRACES, batch).encode_to_vec(),
    );
    let (rejected, message) = r.partial();
    assert_eq!(rejected, 1, "{message:?}");
    assert_eq!(held(skein, FEW_TRACES, &traces[0]), 2);
    assert_eq!(held(skein, FEW_TRACES, &fresh), 0);

    // Only new traces: all refused, reported the same way (not as bad data).
    let batch = vec![span(&fresh_trace_id(), &span_id(1), "new", 10)];
    let r = post_protobuf(
        skein,
        FEW_TRACES,
        &request(FEW_TRACES, batch).encode_to_vec(),
    );
    assert_eq!(r.partial().0, 1, "{}", r.text());
    assert_eq!(
        metric(
            skein,
            "skein_ingester_spans_refused_total",
            &[("tenant", FEW_TRACES), ("reason", "live_traces_limit")]
        ),
        4.0
    );
    // Other tenants are not limited by this tenant's live traces.
    let other: Vec<Span> = (0..5)
        .map(|_| span(&fresh_trace_id(), &span_id(1), "x", 10))
        .collect();
    let r = post_protobuf(skein, "many-traces", &request("x", other).encode_to_vec());
    assert_eq!(r.partial(), (0, String::new()));
}

#[test]
fn per_tenant_limits_refuse_what_they_must_and_nothing_else() {
    let dir = tempfile::tempdir().expect("temp dir");
    let skein = Skein::start(dir.path(), &options());
    type Case = fn(&Skein);
    let cases: &[(&str, Case)] = &[
        ("attribute truncation", attribute_truncation),
        ("max_trace_bytes", max_trace_bytes),
        ("max_live_traces", max_live_traces),
        ("rate limit", rate_limit),
    ];
    let mut failed = Vec::new();
    for (name, case) in cases {
        if catch_unwind(AssertUnwindSafe(|| case(&skein))).is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "cases failed (see their panics above): {failed:?}\nskein log:\n{}",
        skein.log()
    );
}

// ---------------------------------------------------------------------------------------------
// Regression tests for refusals a client must be able to act on: each states the behaviour a
// client needs.

/// A tenant with rate 1000 B/s and burst 4000 B, sending requests of 2950 bytes: after the
/// first, 1050 tokens are left, so the second lacks 1900 bytes, 1.9 s of refill.
#[test]
fn retry_after_is_long_enough_for_the_refused_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        extra: "[ingester.limits.overrides.slow]\n\
                ingestion_rate_bytes = 1000\ningestion_burst_bytes = 4000\n"
            .to_owned(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let body = |pad: usize| {
        request("slow", vec![span(&fresh_trace_id(), &span_id(1), "s", pad)]).encode_to_vec()
    };
    // Pads a request to `n` bytes (length prefixes grow with the padding: adjust twice).
    let sized = |n: usize| {
        let mut pad = n - body(0).len();
        for _ in 0..2 {
            pad = (pad + n).saturating_sub(body(pad).len());
        }
        let b = body(pad);
        assert_eq!(b.len(), n, "padding the request");
        b
    };
    let r = post_protobuf(&skein, "slow", &sized(2950));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_protobuf(&skein, "slow", &sized(2950));
    assert_eq!(
        r.status,
        429,
        "the second request is over the burst: {}",
        r.text()
    );
    let wait = parse_retry_after(&r);
    std::thread::sleep(Duration::from_secs(wait));
    let again = post_protobuf(&skein, "slow", &sized(2950));
    assert_eq!(
        again.status,
        200,
        "retried after the advertised Retry-After: {wait} s, and was refused again \
         (Retry-After {:?}): {}",
        again.retry_after,
        again.status().1
    );
}

/// A request larger than the tenant's burst can never pass the token bucket, so "retry later"
/// is false: the answer must be final (413), not 429 with a Retry-After.
#[test]
fn a_request_larger_than_the_burst_is_refused_as_final() {
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        extra: "[ingester.limits.overrides.tiny-burst]\n\
                ingestion_rate_bytes = 1000000\ningestion_burst_bytes = 1000\n"
            .to_owned(),
        ..Options::default()
    };
    let skein = Skein::start(dir.path(), &opts);
    let body = request(
        "tiny-burst",
        vec![span(&fresh_trace_id(), &span_id(1), "s", 2000)],
    )
    .encode_to_vec();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let r = post_protobuf(&skein, "tiny-burst", &body);
        seen.push((r.status, r.retry_after.clone()));
        if r.status != 429 {
            break;
        }
        std::thread::sleep(Duration::from_secs(parse_retry_after(&r).min(5)));
    }
    assert_eq!(
        seen.last().map(|s| s.0),
        Some(413),
        "a {}-byte request against a burst of 1000 bytes, retried as told: {seen:?}",
        body.len()
    );
}
