//! The span model's semantics: trace summaries, what counts as an error, the string form of
//! values, and which spans are copies of each other.

use skein_format::dedupe::{content_key, same_span};
use skein_format::model::{is_error, value_string};
use skein_format::otlp::common::v1::{AnyValue, any_value::Value};
use skein_format::summary::{ServiceStats, TraceSummary};
use skein_testkit::spans::{kv, small_trace, span};
use skein_testkit::synth::TraceGenerator;

#[test]
fn summary() {
    let s = TraceSummary::from_spans(&small_trace()).unwrap();
    assert_eq!(
        (s.root_service_name.as_str(), s.root_span_name.as_str()),
        ("web", "GET /")
    );
    assert_eq!(
        (
            s.start_unix_nano,
            s.duration_nanos,
            s.span_count,
            s.error_count
        ),
        (100, 200, 3, 1)
    );
    assert_eq!(
        s.services["api"],
        ServiceStats {
            spans: 2,
            errors: 1
        }
    );
}

#[test]
fn errors_from_status_and_legacy_attributes() {
    let mut s = span(
        "a",
        "x",
        1,
        None,
        0,
        1,
        vec![kv("error", Value::BoolValue(true))],
    );
    assert!(is_error(&s));
    s.span.attributes = vec![kv("otel.status_code", Value::StringValue("ERROR".into()))];
    assert!(is_error(&s));
    s.span.attributes = vec![];
    assert!(!is_error(&s));
}

#[test]
fn value_strings() {
    assert_eq!(
        value_string(&AnyValue {
            value: Some(Value::DoubleValue(1.5))
        }),
        "1.5"
    );
    assert_eq!(
        value_string(&AnyValue {
            value: Some(Value::BoolValue(true))
        }),
        "true"
    );
}

#[test]
fn copies_match_and_different_spans_do_not() {
    let trace = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1).trace(6);
    let a = trace[1].clone();
    let copy = a.clone();
    assert!(same_span(&a, &copy));
    assert_eq!(content_key(&a), content_key(&copy));
    // Same span ID, another name: a distinct span.
    let mut other = a.clone();
    other.span.name.push('x');
    assert!(!same_span(&a, &other));
    assert_ne!(content_key(&a), content_key(&other));
    // Same span, another resource: distinct too.
    let mut moved = a.clone();
    let mut res = (*moved.resource).clone();
    res.schema_url.push('x');
    moved.resource = std::sync::Arc::new(res);
    assert!(!same_span(&a, &moved));
    assert_ne!(content_key(&a), content_key(&moved));
}
