//! The tag index answers exactly what a scan of the spans answers: hits per trace (earliest
//! matching start, duration match), summaries, keys and values, over random data and random
//! queries.

use std::collections::{BTreeMap, BTreeSet};

use skein_storage::SpanRecord;
use skein_storage::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use skein_storage::query::{TraceSummary, span_has_tag, value_string};
use skein_storage::synth::{Rng, TraceGenerator};
use skein_storage::tagindex::{self, IndexQuery, Scope, TagIndex, TraceHit};

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

/// What a scan finds for `q`: per trace ID, (earliest matching start, duration match).
fn scan(spans: &[SpanRecord], q: &IndexQuery) -> BTreeMap<[u8; 16], (u64, bool)> {
    let mut out: BTreeMap<[u8; 16], (u64, bool)> = BTreeMap::new();
    for s in spans {
        let start = s.span.start_time_unix_nano;
        let ok = q
            .service_name
            .as_deref()
            .is_none_or(|w| s.service_name() == w)
            && q.span_name.as_deref().is_none_or(|w| s.span.name == w)
            && q.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
            && q.span_start
                .is_none_or(|(lo, hi)| lo <= start && start <= hi);
        if !ok {
            continue;
        }
        let d = s.duration_nanos();
        let dur_ok = q.min_duration_nanos.is_none_or(|m| d >= m)
            && q.max_duration_nanos.is_none_or(|m| d <= m);
        let e = out
            .entry(s.trace_id().unwrap().0)
            .or_insert((u64::MAX, false));
        e.0 = e.0.min(start);
        e.1 |= dur_ok;
    }
    out
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

#[test]
fn index_answers_what_a_scan_answers() {
    for seed in 1..=3u64 {
        let spans = dataset(seed);
        let (_dir, index) = open(&spans);
        let traces = by_trace(&spans);
        assert_eq!(index.trace_count(), traces.len());

        // Summaries, in trace-ID order.
        for (i, (_, t)) in traces.iter().enumerate() {
            let want = TraceSummary::from_spans(t).unwrap();
            assert_eq!(
                index.summary(i as u32),
                Some(&want),
                "seed {seed} trace {i}"
            );
        }
        let ids: Vec<[u8; 16]> = traces.keys().copied().collect();

        let tags = all_tags(&spans);
        let services: Vec<String> = spans
            .iter()
            .map(|s| s.service_name().to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let names: Vec<String> = spans
            .iter()
            .map(|s| s.span.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
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
        let mut pick = |v: &[String]| v[rng.below(v.len() as u64) as usize].clone();
        let mut rng2 = Rng::new(seed * 77);
        let mut nonempty = 0;
        for round in 0..300 {
            let mut q = IndexQuery::default();
            if rng2.chance(0.5) {
                q.service_name = Some(pick(&services));
            }
            if rng2.chance(0.3) {
                q.span_name = Some(pick(&names));
            }
            for _ in 0..rng2.below(3) {
                let (k, v) = tags[rng2.below(tags.len() as u64) as usize].clone();
                q.tags.push((k, v));
            }
            if rng2.chance(0.1) {
                q.tags.push(("no.such.key".into(), "x".into()));
            }
            if rng2.chance(0.4) {
                let a = lo + rng2.below(hi - lo + 1);
                let b = lo + rng2.below(hi - lo + 1);
                q.span_start = Some((a.min(b), a.max(b)));
            }
            if rng2.chance(0.5) {
                q.min_duration_nanos = Some(rng2.below(50_000_000));
            }
            if rng2.chance(0.3) {
                q.max_duration_nanos = Some(rng2.below(200_000_000));
            }
            let want = scan(&spans, &q);
            let got: BTreeMap<[u8; 16], (u64, bool)> = index
                .search(&q)
                .unwrap()
                .into_iter()
                .map(|h: TraceHit| (ids[h.ordinal as usize], (h.first_match_start, h.span_match)))
                .collect();
            assert_eq!(got, want, "seed {seed} round {round}: {q:?}");
            nonempty += usize::from(!want.is_empty());
        }
        // The random queries must exercise matches, not only empty answers.
        assert!(
            nonempty > 100,
            "only {nonempty} of 300 queries matched anything"
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
            let got: BTreeSet<String> = index.keys(scope).map(str::to_owned).collect();
            assert_eq!(got, keys.remove(name).unwrap_or_default(), "{name} keys");
        }
        for ((scope, key), want) in values {
            let s = match scope {
                "span" => Scope::Span,
                "resource" => Scope::Resource,
                _ => Scope::Instrumentation,
            };
            assert_eq!(index.values(s, &key).unwrap(), want, "{scope} {key}");
        }
        assert!(index.values(Scope::Span, "no.such.key").unwrap().is_empty());
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
        assert!(
            matches!(e, skein_storage::Error::Corrupt { .. }),
            "case {i}: {e}"
        );
    }
}
