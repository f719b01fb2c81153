//! Requirements are conservative: whenever a query yields a spanset on a trace, every
//! requirement is satisfied by some span of that trace. Checked on random traces and random
//! queries, with a leaf evaluator written independently of the crate's.

mod strategies;

use std::sync::Arc;

use proptest::prelude::*;
use skein_format::SpanRecord;
use skein_format::model::ResourceInfo;
use skein_format::otlp::common::v1::any_value::Value as V;
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::Status as OtlpStatus;
use skein_format::otlp::trace::v1::span::Event;
use skein_testkit::spans::{kv, span};
use skein_traceql::{AttrScope, CompareOp, Field, Kind, Leaf, Query, SpanCondition, Status, Value};

fn vocabulary() -> strategies::Vocabulary {
    strategies::Vocabulary {
        attributes: vec![
            (Some(AttrScope::Span), "x".into()),
            (None, "x".into()),
            (Some(AttrScope::Span), "s".into()),
            (Some(AttrScope::Resource), "service.name".into()),
            (None, "service.name".into()),
            (Some(AttrScope::Event), "e".into()),
        ],
        strings: vec!["a".into(), "b".into(), "s1".into(), "s2".into()],
        patterns: vec!["a|b", "s.*", ".*", "b"],
        wild: false,
        pairs: vec![
            (Field::Name, strings(&["a", "b", "c"])),
            (
                Field::Duration,
                vec![Value::Duration(50), Value::Int(100), Value::Float(150.0)],
            ),
            (
                Field::Status,
                vec![Value::Status(Status::Error), Value::Status(Status::Unset)],
            ),
            (
                Field::Kind,
                vec![Value::Kind(Kind::Server), Value::Kind(Kind::Unspecified)],
            ),
            (
                attr(Some(AttrScope::Span), "x"),
                vec![Value::Int(0), Value::Int(2), Value::Float(1.5)],
            ),
            (attr(None, "x"), vec![Value::Int(1), Value::Int(3)]),
            (attr(Some(AttrScope::Span), "s"), strings(&["a", "b"])),
            (
                attr(Some(AttrScope::Resource), "service.name"),
                strings(&["s1", "s2"]),
            ),
            (attr(None, "service.name"), strings(&["s1"])),
            (
                attr(Some(AttrScope::Event), "e"),
                vec![Value::Int(0), Value::Int(1)],
            ),
            (Field::EventName, strings(&["ev"])),
        ],
        depth: 2,
    }
}

fn strings(xs: &[&str]) -> Vec<Value> {
    xs.iter().map(|s| Value::String((*s).into())).collect()
}

fn attr(scope: Option<AttrScope>, key: &str) -> Field {
    Field::Attribute {
        scope,
        key: key.into(),
    }
}

#[derive(Clone, Debug)]
struct SpanSpec {
    name: &'static str,
    parent: Option<usize>,
    start: u64,
    len: u64,
    status: i32,
    kind: i32,
    x: Option<i64>,
    s: Option<&'static str>,
    service: &'static str,
    event: Option<i64>,
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        proptest::sample::select(vec!["a", "b", "c"]),
        proptest::option::of(0usize..10),
        0u64..200,
        0u64..200,
        0i32..3,
        0i32..6,
        proptest::option::of(-2i64..5),
        proptest::option::of(proptest::sample::select(vec!["a", "b"])),
        proptest::sample::select(vec!["s1", "s2"]),
        proptest::option::of(0i64..3),
    )
        .prop_map(
            |(name, parent, start, len, status, kind, x, s, service, event)| SpanSpec {
                name,
                parent,
                start,
                len,
                status,
                kind,
                x,
                s,
                service,
                event,
            },
        )
}

/// Span `i` has ID `i + 1`; a parent index beyond the trace names a missing span.
fn build(specs: &[SpanSpec]) -> Vec<SpanRecord> {
    specs
        .iter()
        .enumerate()
        .map(|(i, sp)| {
            let mut attrs = Vec::new();
            if let Some(x) = sp.x {
                attrs.push(kv("x", V::IntValue(x)));
            }
            if let Some(s) = sp.s {
                attrs.push(kv("s", V::StringValue(s.into())));
            }
            let id = u8::try_from(i + 1).expect("small trace");
            let parent = sp.parent.map(|p| u8::try_from(p + 1).expect("small trace"));
            let mut rec = span(
                sp.service,
                sp.name,
                id,
                parent,
                sp.start,
                sp.start + sp.len,
                attrs,
            );
            rec.resource = Arc::new(ResourceInfo {
                resource: Resource {
                    attributes: vec![kv("service.name", V::StringValue(sp.service.into()))],
                    ..Default::default()
                },
                schema_url: String::new(),
            });
            rec.span.kind = sp.kind;
            if sp.status != 0 {
                rec.span.status = Some(OtlpStatus {
                    code: sp.status,
                    message: String::new(),
                });
            }
            if let Some(e) = sp.event {
                rec.span.events.push(Event {
                    name: "ev".into(),
                    attributes: vec![kv("e", V::IntValue(e))],
                    ..Default::default()
                });
            }
            rec
        })
        .collect()
}

// ---- an independent leaf evaluator, for the fields the generator uses ----

fn attr_values(s: &SpanRecord, scope: Option<AttrScope>, key: &str) -> Vec<Value> {
    let conv = |kvs: &[skein_format::otlp::common::v1::KeyValue]| -> Option<Value> {
        let kv = kvs.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            V::StringValue(x) => Some(Value::String(x.clone())),
            V::IntValue(x) => Some(Value::Int(*x)),
            V::BoolValue(x) => Some(Value::Bool(*x)),
            V::DoubleValue(x) => Some(Value::Float(*x)),
            _ => None,
        }
    };
    match scope {
        Some(AttrScope::Span) => conv(&s.span.attributes).into_iter().collect(),
        Some(AttrScope::Resource) => conv(&s.resource.resource.attributes).into_iter().collect(),
        Some(AttrScope::Event) => s
            .span
            .events
            .iter()
            .filter_map(|e| conv(&e.attributes))
            .collect(),
        None => conv(&s.span.attributes)
            .or_else(|| conv(&s.resource.resource.attributes))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Duration(d) => Some(*d as f64),
        _ => None,
    }
}

fn leaf_holds_on(actual: &Value, op: CompareOp, want: &Value) -> bool {
    use std::cmp::Ordering::*;
    let ord = match (actual, want) {
        (Value::String(a), Value::String(b)) => {
            if matches!(op, CompareOp::Regex | CompareOp::NotRegex) {
                let re = regex::Regex::new(&format!("^(?:{b})$")).expect("pattern");
                return re.is_match(a) == (op == CompareOp::Regex);
            }
            Some(a.cmp(b))
        }
        (Value::Status(a), Value::Status(b)) => Some(if a == b { Equal } else { Less })
            .filter(|_| matches!(op, CompareOp::Eq | CompareOp::Ne)),
        (Value::Kind(a), Value::Kind(b)) => Some(if a == b { Equal } else { Less })
            .filter(|_| matches!(op, CompareOp::Eq | CompareOp::Ne)),
        (Value::Bool(a), Value::Bool(b)) => Some(if a == b { Equal } else { Less })
            .filter(|_| matches!(op, CompareOp::Eq | CompareOp::Ne)),
        (a, b) => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
    };
    let Some(o) = ord else { return false };
    match op {
        CompareOp::Eq => o == Equal,
        CompareOp::Ne => o != Equal,
        CompareOp::Lt => o == Less,
        CompareOp::Le => o != Greater,
        CompareOp::Gt => o == Greater,
        CompareOp::Ge => o != Less,
        CompareOp::Regex | CompareOp::NotRegex => false,
    }
}

fn leaf_holds(s: &SpanRecord, leaf: &Leaf) -> bool {
    let status = match s.span.status.as_ref().map_or(0, |st| st.code) {
        1 => Status::Ok,
        2 => Status::Error,
        _ => Status::Unset,
    };
    let kind = match s.span.kind {
        1 => Kind::Internal,
        2 => Kind::Server,
        3 => Kind::Client,
        4 => Kind::Producer,
        5 => Kind::Consumer,
        _ => Kind::Unspecified,
    };
    let actual: Vec<Value> = match &leaf.field {
        Field::Name => vec![Value::String(s.span.name.clone())],
        Field::Status => vec![Value::Status(status)],
        Field::Kind => vec![Value::Kind(kind)],
        Field::Duration => vec![Value::Duration(s.duration_nanos())],
        Field::StatusMessage => vec![Value::String(
            s.span
                .status
                .as_ref()
                .map(|st| st.message.clone())
                .unwrap_or_default(),
        )],
        Field::InstrumentationName => vec![Value::String(s.scope.scope.name.clone())],
        Field::EventName => s
            .span
            .events
            .iter()
            .map(|e| Value::String(e.name.clone()))
            .collect(),
        Field::SpanId => vec![Value::String(
            s.span.span_id.iter().map(|b| format!("{b:02x}")).collect(),
        )],
        Field::Attribute { scope, key } => attr_values(s, *scope, key),
        other => panic!("requirement on unexpected field {other:?}"),
    };
    actual
        .iter()
        .any(|a| leaf_holds_on(a, leaf.op, &leaf.value))
}

fn cond_holds(s: &SpanRecord, c: &SpanCondition) -> bool {
    match c {
        SpanCondition::And(xs) => xs.iter().all(|x| cond_holds(s, x)),
        SpanCondition::Or(xs) => xs.iter().any(|x| cond_holds(s, x)),
        SpanCondition::Leaf(l) => leaf_holds(s, l),
    }
}

fn leaves<'a>(c: &'a SpanCondition, out: &mut Vec<&'a Leaf>) {
    match c {
        SpanCondition::And(xs) | SpanCondition::Or(xs) => xs.iter().for_each(|x| leaves(x, out)),
        SpanCondition::Leaf(l) => out.push(l),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn requirements_hold_on_matching_traces(
        specs in proptest::collection::vec(span_spec(), 1..8),
        pipeline in vocabulary().pipeline(),
    ) {
        let trace = build(&specs);
        let query = Query { pipeline };
        let reqs = query.requirements();
        // Leaf::matches agrees with the independent evaluator.
        for c in &reqs.all {
            let mut ls = Vec::new();
            leaves(c, &mut ls);
            for l in ls {
                for s in &trace {
                    prop_assert_eq!(l.matches(s), leaf_holds(s, l), "{:?} on {:?}", l, s.span.name);
                }
            }
        }
        if !query.evaluate(&trace).is_empty() {
            for c in &reqs.all {
                prop_assert!(
                    trace.iter().any(|s| cond_holds(s, c)),
                    "{} matched but no span satisfies {:?}", query, c
                );
            }
        }
    }

    #[test]
    fn matches_agrees_with_evaluate(
        specs in proptest::collection::vec(span_spec(), 1..8),
        pipeline in vocabulary().pipeline(),
    ) {
        let trace = build(&specs);
        let query = Query { pipeline };
        prop_assert_eq!(query.matches(&trace), !query.evaluate(&trace).is_empty());
    }
}

#[test]
fn generated_queries_often_match_and_prune() {
    // Guards the property above against vacuity: enough random queries match and carry
    // requirements.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut matched, mut with_reqs) = (0, 0);
    for _ in 0..300 {
        let specs = proptest::collection::vec(span_spec(), 1..8)
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let pipeline = vocabulary()
            .pipeline()
            .new_tree(&mut runner)
            .expect("tree")
            .current();
        let query = Query { pipeline };
        let trace = build(&specs);
        if !query.evaluate(&trace).is_empty() {
            matched += 1;
            if !query.requirements().all.is_empty() {
                with_reqs += 1;
            }
        }
    }
    assert!(matched > 30, "only {matched} of 300 random queries matched");
    assert!(
        with_reqs > 10,
        "only {with_reqs} of {matched} matching queries had requirements"
    );
}
