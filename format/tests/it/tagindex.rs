//! The tag index answers what a scan of the spans answers: summaries, keys and values
//! exactly, and for random conditions every trace with a satisfying span (names exactly),
//! over random data.

use std::collections::{BTreeMap, BTreeSet};

use skein_format::SpanRecord;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{AnyValue, KeyValue};
use skein_format::summary::TraceSummary;
use skein_format::tagindex::{
    self, AttrType, IndexCondition, IndexRelation, RelationOp, Scope, TagIndex,
};
use skein_testkit::synth::{Rng, TraceGenerator};

const T0: u64 = 1_700_000_000_000_000_000;

fn dataset(seed: u64) -> Vec<SpanRecord> {
    let mut g = TraceGenerator::new(seed, T0, 2_000_000);
    let mut rng = Rng::new(seed ^ 0x55);
    let mut spans = Vec::new();
    for i in 0..120 {
        let mut t = g.trace(1 + rng.below(40) as usize);
        // Values the generator does not make: long strings, arrays, a key with odd bytes.
        if i % 7 == 0 {
            t[0].span.attributes.push(KeyValue {
                key: "long".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("x".repeat(2000 + i))),
                }),
                ..Default::default()
            });
        }
        if i % 5 == 0 {
            let last = t.len() - 1;
            t[last].span.attributes.push(KeyValue {
                key: "odd\u{0}key".into(),
                value: Some(AnyValue {
                    value: Some(Value::IntValue(i as i64)),
                }),
                ..Default::default()
            });
        }
        spans.extend(t);
    }
    spans
}

fn open(spans: &[SpanRecord]) -> (tempfile::TempDir, TagIndex) {
    let refs: Vec<&SpanRecord> = spans.iter().collect();
    let bundle = tagindex::build(&refs).expect("build");
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("idx");
    tagindex::unpack(&bundle, &at, "test").expect("unpack");
    let index = TagIndex::open(&at, "test").expect("open");
    (dir, index)
}

fn by_trace(spans: &[SpanRecord]) -> BTreeMap<[u8; 16], Vec<SpanRecord>> {
    let mut m: BTreeMap<[u8; 16], Vec<SpanRecord>> = BTreeMap::new();
    for s in spans {
        m.entry(s.trace_id().unwrap().0)
            .or_default()
            .push(s.clone());
    }
    m
}

fn all_tags(spans: &[SpanRecord]) -> Vec<(String, String)> {
    let mut set = BTreeSet::new();
    for s in spans {
        let mut add = |attrs: &[KeyValue]| {
            for kv in attrs {
                set.insert((
                    kv.key.clone(),
                    kv.value.as_ref().map(value_string).unwrap_or_default(),
                ));
            }
        };
        add(&s.span.attributes);
        add(&s.resource.resource.attributes);
        add(&s.scope.scope.attributes);
        for e in &s.span.events {
            add(&e.attributes);
        }
        for l in &s.span.links {
            add(&l.attributes);
        }
    }
    set.into_iter().collect()
}

/// A random condition over the data's names, services and attribute values, `depth` levels
/// of and/or at most.
/// The tags (grouped by key, so that queries pick keys evenly: most distinct pairs belong to
/// a few keys with a value per span), services and span names of `spans`.
type Vocabulary = (Vec<(String, Vec<String>)>, Vec<String>, Vec<String>);

fn vocabulary(spans: &[SpanRecord]) -> Vocabulary {
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in all_tags(spans) {
        tags.entry(k).or_default().push(v);
    }
    let distinct = |f: &dyn Fn(&SpanRecord) -> String| -> Vec<String> {
        spans
            .iter()
            .map(f)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    (
        tags.into_iter().collect(),
        distinct(&|s| s.service_name().to_owned()),
        distinct(&|s| s.span.name.clone()),
    )
}

fn random_condition(
    rng: &mut Rng,
    tags: &[(String, Vec<String>)],
    services: &[String],
    names: &[String],
    depth: u32,
) -> IndexCondition {
    let pick = |rng: &mut Rng, v: &[String]| v[rng.below(v.len() as u64) as usize].clone();
    if depth > 0 && rng.chance(0.3) {
        let parts = (0..1 + rng.below(3))
            .map(|_| random_condition(rng, tags, services, names, depth - 1))
            .collect();
        return match rng.chance(0.5) {
            true => IndexCondition::And(parts),
            false => IndexCondition::Or(parts),
        };
    }
    match rng.below(7) {
        0 => IndexCondition::Name(pick(rng, names)),
        1 => IndexCondition::Attr {
            key: "service.name".into(),
            values: vec![(AttrType::String, pick(rng, services))],
            span: false,
            resource: true,
            scope: false,
        },
        2 | 3 => {
            let (k, vs) = &tags[rng.below(tags.len() as u64) as usize];
            let v = vs[rng.below(vs.len() as u64) as usize].clone();
            let ty = [
                AttrType::String,
                AttrType::Int,
                AttrType::Float,
                AttrType::Bool,
            ][rng.below(4) as usize];
            IndexCondition::Attr {
                key: if rng.chance(0.05) {
                    "no.such.key".into()
                } else {
                    k.clone()
                },
                values: vec![(ty, v)],
                span: rng.chance(0.7),
                resource: rng.chance(0.4),
                scope: rng.chance(0.2),
            }
        }
        4 => IndexCondition::Kind(rng.below(6) as i32),
        5 => IndexCondition::StatusCode(rng.below(3) as i32),
        _ => {
            let a = rng.below(60_000_000);
            let b = rng.below(200_000_000);
            IndexCondition::Duration {
                min: rng.chance(0.7).then_some(a.min(b)),
                max: rng.chance(0.5).then_some(a.max(b)),
            }
        }
    }
}

/// The type of an attribute value as the index records it, for the values it can hold.
fn attr_type(kv: &KeyValue) -> Option<AttrType> {
    match kv.value.as_ref()?.value.as_ref()? {
        Value::StringValue(_) => Some(AttrType::String),
        Value::IntValue(_) => Some(AttrType::Int),
        Value::DoubleValue(_) => Some(AttrType::Float),
        Value::BoolValue(_) => Some(AttrType::Bool),
        _ => None,
    }
}

/// Whether span `s` satisfies `c`, by definition.
fn holds(c: &IndexCondition, s: &SpanRecord) -> bool {
    let has = |attrs: &[KeyValue], key: &str, values: &[(AttrType, String)]| {
        attrs.iter().any(|kv| {
            kv.key == key
                && attr_type(kv).is_some_and(|ty| {
                    let v = kv.value.as_ref().map(value_string).unwrap_or_default();
                    values.iter().any(|(t, want)| *t == ty && *want == v)
                })
        })
    };
    match c {
        IndexCondition::All => true,
        IndexCondition::And(parts) => parts.iter().all(|p| holds(p, s)),
        IndexCondition::Or(parts) => parts.iter().any(|p| holds(p, s)),
        IndexCondition::Name(n) => s.span.name == *n,
        IndexCondition::Attr {
            key,
            values,
            span,
            resource,
            scope,
        } => {
            (*span
                && (has(&s.span.attributes, key, values)
                    || s.span
                        .events
                        .iter()
                        .any(|e| has(&e.attributes, key, values))
                    || s.span.links.iter().any(|l| has(&l.attributes, key, values))))
                || (*resource && has(&s.resource.resource.attributes, key, values))
                || (*scope && has(&s.scope.scope.attributes, key, values))
        }
        IndexCondition::Kind(k) => s.span.kind == *k,
        IndexCondition::StatusCode(code) => s.span.status.as_ref().map_or(0, |st| st.code) == *code,
        IndexCondition::Duration { min, max } => {
            let d = s.duration_nanos();
            min.is_none_or(|m| d >= m) && max.is_none_or(|m| d <= m)
        }
    }
}

/// Conditions the index decides exactly: names are terms of their own, kinds and status
/// codes fast-field values, and resource and scope attributes are looked up in the table.
fn exact(c: &IndexCondition) -> bool {
    match c {
        IndexCondition::Name(_) | IndexCondition::Kind(_) | IndexCondition::StatusCode(_) => true,
        IndexCondition::Attr { span, .. } => !span,
        IndexCondition::And(p) | IndexCondition::Or(p) => !p.is_empty() && p.iter().all(exact),
        _ => false,
    }
}

#[test]
fn index_answers_what_a_scan_answers() {
    for seed in 1..=3u64 {
        let spans = dataset(seed);
        let (_dir, index) = open(&spans);
        let traces = by_trace(&spans);
        assert_eq!(index.trace_count(), traces.len());

        // Every trace once, each with the summary of its spans (in the index's own order).
        let ids: Vec<[u8; 16]> = (0..index.trace_count() as u32)
            .map(|i| index.summary(i).unwrap().trace_id.0)
            .collect();
        assert_eq!(
            ids.iter().copied().collect::<BTreeSet<_>>(),
            traces.keys().copied().collect::<BTreeSet<_>>()
        );
        for (i, id) in ids.iter().enumerate() {
            let want = TraceSummary::from_spans(&traces[id]).unwrap();
            assert_eq!(
                index.summary(i as u32),
                Some(&want),
                "seed {seed} trace {i}"
            );
        }

        let (tags, services, names) = vocabulary(&spans);
        let (lo, hi) = (
            spans
                .iter()
                .map(|s| s.span.start_time_unix_nano)
                .min()
                .unwrap(),
            spans
                .iter()
                .map(|s| s.span.start_time_unix_nano)
                .max()
                .unwrap(),
        );
        let mut rng = Rng::new(seed * 1000);
        let mut exact_rounds = 0;
        let (mut wanted_total, mut hit_total) = (0usize, 0usize);
        for round in 0..300 {
            let c = random_condition(&mut rng, &tags, &services, &names, 2);
            let window = rng.chance(0.3).then(|| {
                let a = lo + rng.below(hi - lo + 1);
                let b = lo + rng.below(hi - lo + 1);
                (a.min(b), a.max(b))
            });
            let want: BTreeSet<[u8; 16]> = traces
                .iter()
                .filter(|(_, spans)| {
                    let summary = TraceSummary::from_spans(spans).unwrap();
                    let end = summary.start_unix_nano + summary.duration_nanos;
                    window.is_none_or(|(a, b)| summary.start_unix_nano <= b && end >= a)
                        && spans.iter().any(|s| holds(&c, s))
                })
                .map(|(id, _)| *id)
                .collect();
            let got: BTreeSet<[u8; 16]> = index
                .traces_matching(&c, window)
                .unwrap()
                .into_iter()
                .map(|o| ids[o as usize])
                .collect();
            // Never a miss: the index prunes only traces without a satisfying span.
            let missed: Vec<_> = want.difference(&got).collect();
            assert!(
                missed.is_empty(),
                "seed {seed} round {round}: missed {} traces for {c:?}",
                missed.len()
            );
            if exact(&c) {
                assert_eq!(got, want, "seed {seed} round {round}: {c:?}");
                exact_rounds += 1;
            }
            wanted_total += want.len();
            hit_total += got.len();
        }
        // The conditions must select, and the index must prune close to what they select.
        assert!(
            exact_rounds > 10,
            "only {exact_rounds} conditions the index decides exactly"
        );
        assert!(
            wanted_total > 1_000,
            "the conditions selected {wanted_total} traces"
        );
        assert!(
            hit_total < wanted_total * 3 / 2,
            "the index returned {hit_total} traces for {wanted_total} with a satisfying span"
        );

        // Keys and values by scope.
        let mut keys: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut values: BTreeMap<(&str, String), BTreeSet<(&'static str, String)>> =
            BTreeMap::new();
        for s in &spans {
            let mut add = |scope: &'static str, attrs: &[KeyValue]| {
                for kv in attrs {
                    keys.entry(scope).or_default().insert(kv.key.clone());
                    values.entry((scope, kv.key.clone())).or_default().insert((
                        tagindex::type_name(kv),
                        kv.value.as_ref().map(value_string).unwrap_or_default(),
                    ));
                }
            };
            add("span", &s.span.attributes);
            for e in &s.span.events {
                add("span", &e.attributes);
            }
            for l in &s.span.links {
                add("span", &l.attributes);
            }
            add("resource", &s.resource.resource.attributes);
            add("scope", &s.scope.scope.attributes);
        }
        for (name, scope) in [
            ("span", Scope::Span),
            ("resource", Scope::Resource),
            ("scope", Scope::Instrumentation),
        ] {
            assert_eq!(
                index.keys(scope),
                keys.remove(name).unwrap_or_default(),
                "{name} keys"
            );
        }
        let (mut listed, mut declined) = (0, 0);
        for ((scope, key), want) in values {
            let s = match scope {
                "span" => Scope::Span,
                "resource" => Scope::Resource,
                _ => Scope::Instrumentation,
            };
            match index.values(s, &key).unwrap() {
                Some(got) => {
                    assert_eq!(got, want, "{scope} {key}");
                    listed += 1;
                }
                None => {
                    assert_eq!(scope, "span", "only span keys can lack terms: {key}");
                    declined += 1;
                }
            }
        }
        assert!(
            listed > 10 && declined > 0,
            "{listed} listed, {declined} declined"
        );
        assert_eq!(
            index.values(Scope::Span, "no.such.key").unwrap(),
            Some(BTreeSet::new())
        );
    }
}

#[test]
fn corrupt_bundles_are_typed_errors() {
    let spans = dataset(9);
    let refs: Vec<&SpanRecord> = spans.iter().collect();
    let bundle = tagindex::build(&refs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (i, bad) in [
        Vec::new(),
        b"SKTAGIX9".to_vec(),
        bundle[..bundle.len() / 2].to_vec(),
        [bundle.as_slice(), b"x"].concat(),
    ]
    .iter()
    .enumerate()
    {
        let e = tagindex::unpack(bad, &dir.path().join(i.to_string()), "t/b/index").unwrap_err();
        if bad.starts_with(b"SKTAGIX9") {
            // Another layout's magic is not damage: the compactor re-indexes such blocks.
            assert!(
                matches!(e, skein_format::Error::IndexLayout { found: 9, .. }),
                "case {i}: {e}"
            );
        } else {
            assert!(
                matches!(e, skein_format::Error::Corrupt { .. }),
                "case {i}: {e}"
            );
        }
    }
}

/// Whether some choice of parents (several spans may share an ID; the evaluator picks one,
/// and cuts one link of a cycle) relates a span satisfying `child` to the spans satisfying
/// `parent` by `op`: the truth, widened where the evaluator's choice is not modelled.
fn may_relate(trace: &[SpanRecord], r: &IndexRelation) -> bool {
    let mut by_id: BTreeMap<&[u8], Vec<usize>> = BTreeMap::new();
    for (i, s) in trace.iter().enumerate() {
        by_id.entry(s.span.span_id.as_slice()).or_default().push(i);
    }
    let parents = |i: usize| -> Vec<usize> {
        match trace[i].span.parent_span_id.as_slice() {
            [] => Vec::new(),
            id => by_id
                .get(id)
                .into_iter()
                .flatten()
                .copied()
                .filter(|&p| p != i)
                .collect(),
        }
    };
    let left = |i: usize| holds(&r.parent, &trace[i]);
    (0..trace.len())
        .filter(|&i| holds(&r.child, &trace[i]))
        .any(|s| match r.op {
            RelationOp::Child => parents(s).into_iter().any(left),
            RelationOp::NotChild => {
                // On a cycle, the span may be the one that loses its parent.
                let (mut seen, mut stack) = (BTreeSet::new(), parents(s));
                let mut on_cycle = false;
                while let Some(p) = stack.pop() {
                    on_cycle |= p == s;
                    if seen.insert(p) {
                        stack.extend(parents(p));
                    }
                }
                let ps = parents(s);
                ps.is_empty() || on_cycle || ps.into_iter().any(|p| !left(p))
            }
            RelationOp::Descendant => {
                // Some ancestor on some path up.
                let (mut seen, mut stack) = (BTreeSet::new(), parents(s));
                while let Some(p) = stack.pop() {
                    if left(p) {
                        return true;
                    }
                    if seen.insert(p) {
                        stack.extend(parents(p));
                    }
                }
                false
            }
            RelationOp::NotDescendant => {
                // Some path up that ends (a root, a missing parent, a cycle the evaluator
                // cuts somewhere) before a left-hand span.
                let (mut seen, mut stack) = (BTreeSet::from([s]), vec![s]);
                while let Some(c) = stack.pop() {
                    let ps = parents(c);
                    if ps.is_empty() {
                        return true;
                    }
                    for p in ps.into_iter().filter(|&p| !left(p)) {
                        if !seen.insert(p) {
                            return true;
                        }
                        stack.push(p);
                    }
                }
                false
            }
        })
}

#[test]
fn relations_never_miss_and_prune() {
    let ops = [
        RelationOp::Child,
        RelationOp::Descendant,
        RelationOp::NotChild,
        RelationOp::NotDescendant,
    ];
    let (mut matched_total, mut kept_total, mut true_total) = (0usize, 0usize, 0usize);
    for seed in 1..=3u64 {
        let mut spans = dataset(seed);
        // Links the generator does not make: a shared span ID, a cycle, a missing parent.
        let mut traces: Vec<Vec<SpanRecord>> = by_trace(&spans).into_values().collect();
        for (i, t) in traces.iter_mut().enumerate().filter(|(_, t)| t.len() >= 3) {
            match i % 5 {
                0 => t[2].span.span_id = t[1].span.span_id.clone(),
                1 => {
                    t[1].span.parent_span_id = t[2].span.span_id.clone();
                    t[2].span.parent_span_id = t[1].span.span_id.clone();
                }
                2 => t[1].span.parent_span_id = vec![0xee; 8],
                _ => {}
            }
        }
        spans = traces.concat();
        let (_dir, index) = open(&spans);
        let traces = by_trace(&spans);
        let ids: Vec<[u8; 16]> = (0..index.trace_count() as u32)
            .map(|i| index.summary(i).unwrap().trace_id.0)
            .collect();
        let (tags, services, names) = vocabulary(&spans);
        let mut rng = Rng::new(seed * 77);
        for round in 0..300 {
            let r = IndexRelation {
                op: ops[rng.below(4) as usize],
                parent: random_condition(&mut rng, &tags, &services, &names, 1),
                child: random_condition(&mut rng, &tags, &services, &names, 1),
            };
            let all: Vec<u32> = (0..index.trace_count() as u32).collect();
            let got: BTreeSet<[u8; 16]> = index
                .traces_related(&all, std::slice::from_ref(&r), None)
                .unwrap()
                .into_iter()
                .map(|o| ids[o as usize])
                .collect();
            let want: BTreeSet<[u8; 16]> = traces
                .iter()
                .filter(|(_, t)| may_relate(t, &r))
                .map(|(id, _)| *id)
                .collect();
            let missed: Vec<_> = want.difference(&got).collect();
            assert!(
                missed.is_empty(),
                "seed {seed} round {round}: missed {} traces for {r:?}",
                missed.len()
            );
            let matched = index.traces_matching(&r.child, None).unwrap().len();
            assert!(
                got.len() <= matched,
                "only traces with a result span are kept"
            );
            matched_total += matched;
            kept_total += got.len();
            true_total += want.len();
        }
    }
    // The relations prune: far fewer traces kept than have a span of the right-hand side.
    assert!(
        kept_total < matched_total * 3 / 4 && true_total > 1_000,
        "kept {kept_total} of {matched_total} ({true_total} relate)"
    );
}
