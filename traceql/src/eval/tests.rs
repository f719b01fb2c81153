//! Evaluation tests, one group per language construct, on a small hand-built trace whose
//! spans arrive out of order and include an orphan.

use std::sync::Arc;

use skein_format::SpanRecord;
use skein_format::model::ScopeInfo;
use skein_format::otlp::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, any_value::Value as V,
};
use skein_format::otlp::trace::v1::Status as OtlpStatus;
use skein_format::otlp::trace::v1::span::{Event, Link};
use skein_testkit::spans::{kv, span};

use crate::{Query, SpanSet, Value, parse};

/// ```text
/// 1 web "GET /" server 100–300
/// └ 2 api "GET /x" server 110–190, error "boom", http.status_code 500, service.name "shadow"
///   ├ 4 api "cache" 120–130, tags ["a","b"], a link to trace 0a…
///   └ 3 api "query" client 150–160, db.system "pg", event "retry" {attempt 2}
/// 5 db "orphan" 50–60 (parent 9 is missing)
/// ```
/// Stored in the order 3, 5, 1, 4, 2 (indices 0..5).
fn trace() -> Vec<SpanRecord> {
    let mut root = span("web", "GET /", 1, None, 100, 300, vec![]);
    root.span.kind = 2;
    let mut x = span(
        "api",
        "GET /x",
        2,
        Some(1),
        110,
        190,
        vec![
            kv("http.status_code", V::IntValue(500)),
            kv("service.name", V::StringValue("shadow".into())),
        ],
    );
    x.span.kind = 2;
    x.span.status = Some(OtlpStatus {
        code: 2,
        message: "boom".into(),
    });
    let mut query = span(
        "api",
        "query",
        3,
        Some(2),
        150,
        160,
        vec![kv("db.system", V::StringValue("pg".into()))],
    );
    query.span.kind = 3;
    query.span.events.push(Event {
        name: "retry".into(),
        attributes: vec![kv("attempt", V::IntValue(2))],
        ..Default::default()
    });
    query.scope = Arc::new(ScopeInfo {
        scope: InstrumentationScope {
            name: "lib".into(),
            version: "1.2".into(),
            ..Default::default()
        },
        schema_url: String::new(),
    });
    let tags = V::ArrayValue(ArrayValue {
        values: ["a", "b"]
            .iter()
            .map(|s| AnyValue {
                value: Some(V::StringValue((*s).into())),
            })
            .collect(),
    });
    let mut cache = span("api", "cache", 4, Some(2), 120, 130, vec![kv("tags", tags)]);
    cache.span.links.push(Link {
        trace_id: vec![10; 16],
        span_id: vec![11; 8],
        attributes: vec![kv("ref", V::StringValue("follows".into()))],
        ..Default::default()
    });
    let orphan = span("db", "orphan", 5, Some(9), 50, 60, vec![]);
    vec![query, orphan, root, cache, x]
}

// Indices in `trace()`.
const QUERY: usize = 0;
const ORPHAN: usize = 1;
const ROOT: usize = 2;
const CACHE: usize = 3;
const X: usize = 4;

fn q(src: &str) -> Query {
    parse(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

/// The spans of all spansets, one list per spanset.
fn run(src: &str) -> Vec<Vec<usize>> {
    let t = trace();
    let query = q(src);
    let sets = query.evaluate(&t);
    assert_eq!(
        query.matches(&t),
        !sets.is_empty(),
        "matches() disagrees on {src}"
    );
    sets.into_iter().map(|s| s.spans).collect()
}

/// The spans of a query that yields at most one spanset.
fn spans(src: &str) -> Vec<usize> {
    let mut sets = run(src);
    assert!(sets.len() <= 1, "{src}: {sets:?}");
    sets.pop().unwrap_or_default()
}

#[test]
fn spansets_are_ordered_by_start_time() {
    assert_eq!(spans("{ }"), vec![ORPHAN, ROOT, X, CACHE, QUERY]);
    assert_eq!(spans("{ true }"), spans("{ }"));
    assert_eq!(spans("{ false }"), Vec::<usize>::new());
}

#[test]
fn attributes_and_scopes() {
    assert_eq!(spans(r#"{ span.db.system = "pg" }"#), vec![QUERY]);
    assert_eq!(
        spans(r#"{ resource.service.name = "api" }"#),
        vec![X, CACHE, QUERY]
    );
    // Unscoped: the span attribute wins over the resource attribute.
    assert_eq!(spans(r#"{ .service.name = "shadow" }"#), vec![X]);
    assert_eq!(spans(r#"{ .service.name = "api" }"#), vec![CACHE, QUERY]);
    assert_eq!(
        spans(r#"{ span.service.name = "api" }"#),
        Vec::<usize>::new()
    );
    assert_eq!(spans("{ event.attempt = 2 }"), vec![QUERY]);
    assert_eq!(spans("{ event.attempt > 2 }"), Vec::<usize>::new());
    assert_eq!(spans(r#"{ link.ref = "follows" }"#), vec![CACHE]);
    assert_eq!(
        spans(r#"{ instrumentation:name = "lib" && instrumentation:version = "1.2" }"#),
        vec![QUERY]
    );
    assert_eq!(spans(r#"{ span."db.system" = "pg" }"#), vec![QUERY]);
}

#[test]
fn nil_and_type_mismatch() {
    assert_eq!(spans("{ span.http.status_code != 200 }"), vec![X]);
    assert_eq!(
        spans("{ span.http.status_code = nil }"),
        vec![ORPHAN, ROOT, CACHE, QUERY]
    );
    assert_eq!(spans("{ span.http.status_code != nil }"), vec![X]);
    assert_eq!(
        spans(r#"{ span.http.status_code = "500" }"#),
        Vec::<usize>::new()
    );
    assert_eq!(
        spans(r#"{ span.http.status_code != "500" }"#),
        Vec::<usize>::new()
    );
    assert_eq!(spans("{ span.http.status_code = 500.0 }"), vec![X]);
    assert_eq!(
        spans("{ !(span.http.status_code = 500) }"),
        vec![ORPHAN, ROOT, CACHE, QUERY]
    );
    assert_eq!(
        spans("{ event.attempt = nil }"),
        vec![ORPHAN, ROOT, X, CACHE]
    );
}

#[test]
fn regexes_are_anchored() {
    assert_eq!(spans(r#"{ name =~ "GET" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ name =~ "GET.*" }"#), vec![ROOT, X]);
    assert_eq!(spans(r#"{ name !~ "GET.*" }"#), vec![ORPHAN, CACHE, QUERY]);
    assert_eq!(spans(r#"{ span.tags =~ "b|c" }"#), vec![CACHE]);
    assert_eq!(spans(r#"{ span.tags !~ "b|c" }"#), Vec::<usize>::new());
    assert_eq!(spans(r#"{ span.missing !~ ".*" }"#), Vec::<usize>::new());
}

#[test]
fn arrays_match_elements() {
    assert_eq!(spans(r#"{ span.tags = "b" }"#), vec![CACHE]);
    assert_eq!(spans(r#"{ span.tags != "c" }"#), vec![CACHE]);
    assert_eq!(spans(r#"{ span.tags != "a" }"#), Vec::<usize>::new());
}

#[test]
fn intrinsics() {
    assert_eq!(spans(r#"{ name = "query" }"#), vec![QUERY]);
    assert_eq!(spans(r#"{ span:name = "query" }"#), vec![QUERY]);
    assert_eq!(spans("{ status = error }"), vec![X]);
    assert_eq!(
        spans("{ status = unset }"),
        vec![ORPHAN, ROOT, CACHE, QUERY]
    );
    assert_eq!(spans(r#"{ statusMessage = "boom" }"#), vec![X]);
    assert_eq!(spans("{ kind = server }"), vec![ROOT, X]);
    assert_eq!(spans("{ span:kind = client }"), vec![QUERY]);
    assert_eq!(spans("{ kind = unspecified }"), vec![ORPHAN, CACHE]);
    assert_eq!(spans("{ duration >= 80ns }"), vec![ROOT, X]);
    // A bare integer compares with a duration in nanoseconds.
    assert_eq!(spans("{ duration >= 80 }"), vec![ROOT, X]);
    assert_eq!(
        spans("{ span:duration = 10ns }"),
        vec![ORPHAN, CACHE, QUERY]
    );
    assert_eq!(spans("{ traceDuration = 250ns }").len(), 5);
    assert_eq!(spans("{ trace:duration > 250ns }").len(), 0);
    assert_eq!(
        spans(r#"{ rootName = "GET /" && trace:rootService = "web" }"#).len(),
        5
    );
    assert_eq!(spans(r#"{ span:id = "0202020202020202" }"#), vec![X]);
    assert_eq!(
        spans(r#"{ span:parentID = "0202020202020202" }"#),
        vec![CACHE, QUERY]
    );
    assert_eq!(spans("{ span:parentID = nil }"), vec![ROOT]);
    assert_eq!(
        spans(r#"{ trace:id = "07070707070707070707070707070707" }"#).len(),
        5
    );
    // IDs compare case-insensitively.
    assert_eq!(
        spans(r#"{ link:traceID = "0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A" }"#),
        vec![CACHE]
    );
    assert_eq!(
        spans(r#"{ link:spanID = "0b0b0b0b0b0b0b0b" }"#),
        vec![CACHE]
    );
    assert_eq!(spans(r#"{ event:name = "retry" }"#), vec![QUERY]);
    assert_eq!(spans("{ span:childCount = 2 }"), vec![X]);
    assert_eq!(spans("{ span:childCount = 0 }"), vec![ORPHAN, CACHE, QUERY]);
    // Nested sets: children in start order, so "cache" (120) comes before "query" (150).
    assert_eq!(spans("{ nestedSetParent = -1 }"), vec![ROOT]);
    assert_eq!(
        spans("{ nestedSetLeft = 3 && nestedSetRight = 4 && nestedSetParent = 2 }"),
        vec![CACHE]
    );
    assert_eq!(
        spans("{ nestedSetLeft = 1 && nestedSetRight = 8 }"),
        vec![ROOT]
    );
    assert_eq!(spans("{ nestedSetLeft = nil }"), vec![ORPHAN]);
}

#[test]
fn root_is_the_earliest_span_without_parent() {
    let mut t = trace();
    t.push(span("late", "second root", 6, None, 400, 500, vec![]));
    let sets = q(r#"{ rootName = "GET /" }"#).evaluate(&t);
    assert_eq!(sets[0].spans.len(), 6);
    let without_root: Vec<SpanRecord> = trace()
        .into_iter()
        .filter(|s| s.span.name != "GET /")
        .collect();
    assert!(
        !q("{ rootName = nil && rootServiceName = nil }")
            .evaluate(&without_root)
            .is_empty()
    );
}

#[test]
fn arithmetic() {
    assert_eq!(spans("{ span.http.status_code - 400 = 100 }"), vec![X]);
    assert_eq!(spans("{ span.http.status_code / 100 = 5 }"), vec![X]);
    assert_eq!(spans("{ span.http.status_code % 7 = 3 }"), vec![X]);
    assert_eq!(
        spans("{ 2 ^ 3 ^ 2 = 512 && span.http.status_code > 0 }"),
        vec![X]
    );
    assert_eq!(spans("{ duration > 2 * 50ns }"), vec![ROOT]);
    assert_eq!(spans("{ duration * 2 = 160ns }"), vec![X]);
    assert_eq!(spans("{ -duration < -100 }"), vec![ROOT]);
    assert_eq!(spans("{ span.http.status_code * 1.5 = 750 }"), vec![X]);
    assert_eq!(
        spans("{ span.http.status_code / 0 = 1 }"),
        Vec::<usize>::new()
    );
}

#[test]
fn logical_spanset_operators() {
    assert_eq!(
        spans(r#"{ name = "GET /" } && { name = "query" }"#),
        vec![ROOT, QUERY]
    );
    assert_eq!(
        spans(r#"{ name = "nope" } && { name = "query" }"#),
        Vec::<usize>::new()
    );
    assert_eq!(
        spans(r#"{ name = "nope" } || { name = "query" }"#),
        vec![QUERY]
    );
    assert_eq!(
        spans(r#"{ name = "cache" } || { name = "query" }"#),
        vec![CACHE, QUERY]
    );
}

#[test]
fn structural_operators() {
    assert_eq!(spans(r#"{ name = "GET /" } >> { }"#), vec![X, CACHE, QUERY]);
    assert_eq!(spans(r#"{ name = "GET /" } > { }"#), vec![X]);
    assert_eq!(spans(r#"{ name = "query" } ~ { }"#), vec![CACHE]);
    assert_eq!(spans("{ } ~ { }"), vec![CACHE, QUERY]);
    assert_eq!(spans(r#"{ name = "query" } << { }"#), vec![ROOT, X]);
    assert_eq!(spans(r#"{ name = "query" } < { }"#), vec![X]);
    assert_eq!(spans("{ } !< { }"), vec![ORPHAN, CACHE, QUERY]);
    assert_eq!(
        spans(r#"{ name = "GET /x" } !>> { }"#),
        vec![ORPHAN, ROOT, X]
    );
    assert_eq!(
        spans(r#"{ name = "GET /x" } !> { }"#),
        vec![ORPHAN, ROOT, X]
    );
    assert_eq!(
        spans(r#"{ name = "query" } !~ { }"#),
        vec![ORPHAN, ROOT, X, QUERY]
    );
    assert_eq!(
        spans(r#"{ name = "query" } !<< { }"#),
        vec![ORPHAN, CACHE, QUERY]
    );
    assert_eq!(
        spans(r#"{ name = "nope" } !>> { name = "query" }"#),
        vec![QUERY]
    );
    assert_eq!(
        spans(r#"{ name = "GET /" } &> { name = "GET /x" }"#),
        vec![ROOT, X]
    );
    assert_eq!(
        spans(r#"{ name = "GET /" } &>> { kind = client }"#),
        vec![ROOT, QUERY]
    );
    assert_eq!(spans(r#"{ name = "query" } &<< { }"#), vec![ROOT, X, QUERY]);
    assert_eq!(spans(r#"{ name = "query" } &< { }"#), vec![X, QUERY]);
    assert_eq!(
        spans(r#"{ name = "query" } &~ { name = "cache" }"#),
        vec![CACHE, QUERY]
    );
    assert_eq!(spans(r#"{ name = "orphan" } >> { }"#), Vec::<usize>::new());
    // Chains associate to the left: ({A} >> {B}) >> {C}.
    assert_eq!(
        spans(r#"{ name = "GET /" } > { name = "GET /x" } > { name = "query" }"#),
        vec![QUERY]
    );
}

#[test]
fn structure_does_not_depend_on_arrival_order() {
    let t = trace();
    for src in [
        "{ } >> { }",
        "{ } !< { }",
        "{ } &~ { }",
        "{ nestedSetLeft > 2 }",
        "{ } | by(resource.service.name)",
    ] {
        let query = q(src);
        let forward = query.evaluate(&t);
        let reversed: Vec<SpanRecord> = t.iter().rev().cloned().collect();
        let backward = query.evaluate(&reversed);
        let n = t.len();
        let mapped: Vec<SpanSet> = backward
            .into_iter()
            .map(|mut s| {
                for i in &mut s.spans {
                    *i = n - 1 - *i;
                }
                s
            })
            .collect();
        assert_eq!(forward, mapped, "{src}");
    }
}

#[test]
fn aggregates() {
    let t = trace();
    let sets = q("{ } | count() > 4").evaluate(&t);
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0].attributes, vec![("count()".into(), Value::Int(5))]);
    assert!(q("{ } | count() > 5").evaluate(&t).is_empty());
    let sets = q("{ } | avg(duration) > 50ns").evaluate(&t);
    assert_eq!(
        sets[0].attributes,
        vec![("avg(duration)".into(), Value::Duration(62))]
    );
    let sets = q("{ } | sum(span.http.status_code) = 500").evaluate(&t);
    assert_eq!(
        sets[0].attributes,
        vec![("sum(span.http.status_code)".into(), Value::Int(500))]
    );
    let sets = q("{ } | max(duration) = 200ns | min(duration) = 10").evaluate(&t);
    assert_eq!(
        sets[0].attributes,
        vec![
            ("max(duration)".into(), Value::Duration(200)),
            ("min(duration)".into(), Value::Duration(10))
        ]
    );
    let sets = q("{ } | avg(span.http.status_code) = 500").evaluate(&t);
    assert_eq!(sets[0].attributes[0].1, Value::Float(500.0));
    // No span has the value: the spanset is dropped.
    assert!(q("{ } | avg(span.nope) >= 0").evaluate(&t).is_empty());
}

#[test]
fn by_and_coalesce() {
    type Attributes = Vec<(String, Value)>;
    let t = trace();
    let sets = q("{ } | by(resource.service.name)").evaluate(&t);
    let got: Vec<(Vec<usize>, Attributes)> =
        sets.into_iter().map(|s| (s.spans, s.attributes)).collect();
    let key = "by(resource.service.name)".to_string();
    assert_eq!(
        got,
        vec![
            (
                vec![ORPHAN],
                vec![(key.clone(), Value::String("db".into()))]
            ),
            (vec![ROOT], vec![(key.clone(), Value::String("web".into()))]),
            (
                vec![X, CACHE, QUERY],
                vec![(key.clone(), Value::String("api".into()))]
            ),
        ]
    );
    assert_eq!(
        run("{ } | by(resource.service.name) | count() > 1"),
        vec![vec![X, CACHE, QUERY]]
    );
    let sets = q("{ } | by(span.db.system)").evaluate(&t);
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].attributes[0].1, Value::Nil);
    assert_eq!(
        run("{ } | by(resource.service.name) | coalesce()"),
        vec![vec![ORPHAN, ROOT, X, CACHE, QUERY]]
    );
    let sets = q("{ } | by(resource.service.name) | coalesce()").evaluate(&t);
    assert!(sets[0].attributes.is_empty());
    assert_eq!(
        spans(r#"({ } | by(resource.service.name) | count() > 2) && { name = "GET /" }"#),
        vec![ROOT, X, CACHE, QUERY]
    );
    assert_eq!(
        run("{ status = error } | by(resource.service.name) | count() > 1"),
        Vec::<Vec<usize>>::new()
    );
}

#[test]
fn pipeline_filters_apply_per_spanset() {
    assert_eq!(
        run(r#"{ } | by(resource.service.name) | { name != "cache" }"#),
        vec![vec![ORPHAN], vec![ROOT], vec![X, QUERY]]
    );
    assert_eq!(
        run(r#"{ } | by(resource.service.name) | { name = "GET /x" } > { }"#),
        vec![vec![CACHE, QUERY]]
    );
}

#[test]
fn select_and_shown_attributes() {
    let t = trace();
    assert_eq!(
        spans(r#"{ name = "query" } | select(span.db.system, duration)"#),
        vec![QUERY]
    );
    let query = q(r#"{ name = "query" } | select(span.db.system, duration, span.absent)"#);
    assert_eq!(
        query.shown_attributes(&t[QUERY]),
        vec![("db.system".into(), Value::String("pg".into()))]
    );
    let query = q(
        r#"{ span.http.status_code = 500 && resource.service.name = "api" && .service.name != nil }"#,
    );
    assert_eq!(
        query.shown_attributes(&t[X]),
        vec![
            ("http.status_code".into(), Value::Int(500)),
            ("service.name".into(), Value::String("api".into())),
            ("service.name".into(), Value::String("shadow".into())),
        ]
    );
    let query = q("{ event.attempt > 0 } | by(span.tags)");
    assert_eq!(
        query.shown_attributes(&t[QUERY]),
        vec![("attempt".into(), Value::Int(2))]
    );
    assert_eq!(
        query.shown_attributes(&t[CACHE]),
        vec![("tags".into(), Value::String("[a,b]".into()))]
    );
}

#[test]
fn match_all() {
    assert!(q("{ }").is_match_all());
    assert!(q("{ true }").is_match_all());
    assert!(!q("{ true } | count() > 0").is_match_all());
    assert!(!q("{ .a = 1 }").is_match_all());
    assert!(q("{ }").matches(&trace()));
    assert!(!q("{ }").matches(&[]));
    assert!(q("{ }").evaluate(&[]).is_empty());
}

#[test]
fn deep_traces_evaluate_in_linear_passes() {
    // A chain of 20 000 spans: recursion or pairwise work would show here.
    let n: u32 = 20_000;
    let spans: Vec<SpanRecord> = (0..n)
        .map(|i| {
            let mut s = span("svc", "op", 0, None, u64::from(i), u64::from(i) + 1, vec![]);
            s.span.span_id = (u64::from(i) + 1).to_be_bytes().to_vec();
            if i > 0 {
                s.span.parent_span_id = u64::from(i).to_be_bytes().to_vec();
            }
            s
        })
        .collect();
    let started = std::time::Instant::now();
    for src in [
        "{ } >> { } >> { }",
        "{ } &>> { }",
        "{ } !< { }",
        "{ } &<< { }",
        "{ nestedSetLeft > 0 } | count() > 1",
    ] {
        assert!(q(src).matches(&spans), "{src}");
    }
    assert_eq!(q("{ } !< { }").evaluate(&spans)[0].spans, vec![19_999]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
