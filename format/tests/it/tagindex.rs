//! The tag index answers exactly what a scan of the spans answers: hits per trace (earliest
//! matching start, duration match), summaries, keys and values, over random data and random
//! queries.

use std::collections::{BTreeMap, BTreeSet};

use skein_format::SpanRecord;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{AnyValue, KeyValue};
use skein_format::summary::TraceSummary;
use skein_format::tagindex::{self, IndexQuery, Scope, TagIndex, TraceHit};
use skein_query::search::span_has_tag;
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

/// What a scan finds for `q`, per trace ID: (a span matches the terms anywhere, a span
/// matches the terms within the start range, a span matches everything).
fn scan(spans: &[SpanRecord], q: &IndexQuery) -> BTreeMap<[u8; 16], (bool, bool, bool)> {
    let mut out: BTreeMap<[u8; 16], (bool, bool, bool)> = BTreeMap::new();
    for s in spans {
        let start = s.span.start_time_unix_nano;
        let terms = q
            .service_name
            .as_deref()
            .is_none_or(|w| s.service_name() == w)
            && q.span_name.as_deref().is_none_or(|w| s.span.name == w)
            && q.tags.iter().all(|(k, v)| span_has_tag(s, k, v));
        if !terms {
            continue;
        }
        let in_range = q
            .span_start
            .is_none_or(|(lo, hi)| lo <= start && start <= hi);
        let d = s.duration_nanos();
        let dur_ok = q.min_duration_nanos.is_none_or(|m| d >= m)
            && q.max_duration_nanos.is_none_or(|m| d <= m);
        let e = out.entry(s.trace_id().unwrap().0).or_default();
        e.0 = true;
        e.1 |= in_range;
        e.2 |= in_range && dur_ok;
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

        // Tags grouped by key, so that queries pick keys evenly (most distinct pairs belong to a
        // few keys with a value per span).
        let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in all_tags(&spans) {
            tags.entry(k).or_default().push(v);
        }
        let tags: Vec<(String, Vec<String>)> = tags.into_iter().collect();
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
        let (mut nonempty, mut unanswered, mut decided, mut undecided) = (0, 0, 0, 0);
        // Hits of queries with a start range: decided by the spans' start buckets, or left
        // to the spans (a range edge in a span's bucket).
        let (mut in_range_known, mut straddling) = (0, 0);
        for round in 0..300 {
            let mut q = IndexQuery::default();
            if rng2.chance(0.5) {
                q.service_name = Some(pick(&services));
            }
            if rng2.chance(0.3) {
                q.span_name = Some(pick(&names));
            }
            for _ in 0..rng2.below(3) {
                let (k, vs) = &tags[rng2.below(tags.len() as u64) as usize];
                let v = vs[rng2.below(vs.len() as u64) as usize].clone();
                q.tags.push((k.clone(), v));
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
            let Some(hits) = index.search(&q).unwrap() else {
                // Only a span attribute key without terms makes the index decline.
                unanswered += 1;
                continue;
            };
            let hit_ids: BTreeMap<[u8; 16], TraceHit> = hits
                .into_iter()
                .map(|h: TraceHit| (ids[h.ordinal as usize], h))
                .collect();
            for (id, (_, in_range, full)) in &want {
                if *in_range {
                    assert!(
                        hit_ids.contains_key(id),
                        "seed {seed} round {round}: missed {id:02x?} for {q:?}"
                    );
                }
                let _ = full;
            }
            for (id, h) in &hit_ids {
                let (any, in_range, full) = want.get(id).copied().unwrap_or_default();
                assert!(any, "seed {seed} round {round}: false hit for {q:?}");
                if h.certain {
                    assert!(
                        in_range,
                        "seed {seed} round {round}: certain hit out of range, {q:?}"
                    );
                    in_range_known += usize::from(q.span_start.is_some());
                    if let Some(m) = h.span_match {
                        assert_eq!(m, full, "seed {seed} round {round}: {q:?}");
                    } else {
                        undecided += 1;
                    }
                    decided += 1;
                } else {
                    // An edge of the range falls in a matching span's start bucket: only the
                    // spans can tell.
                    assert!(q.span_start.is_some(), "uncertain without a range: {q:?}");
                    straddling += 1;
                }
            }
            nonempty += usize::from(!want.is_empty());
        }
        // The random queries must exercise matches, not only empty answers, and durations
        // must rarely fall in a bound's bucket.
        assert!(
            nonempty > 100,
            "only {nonempty} of 300 queries matched anything"
        );
        assert!(unanswered < 100, "{unanswered} of 300 queries unanswered");
        assert!(
            undecided * 10 < decided,
            "{undecided} of {decided} hits left undecided"
        );
        // The spans' start times decide most traces that straddle a range edge.
        assert!(
            straddling * 5 < in_range_known,
            "{straddling} hits left to the spans against {in_range_known} decided in a range"
        );
        println!("range hits: {in_range_known} decided, {straddling} left to the spans");

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
