//! Search, tag and tag-value listings and operations give the same answers whether blocks
//! have a tag index or are scanned, over random data (traces split across blocks, errors,
//! overlapping block time ranges) and random queries of both semantics; and both agree with
//! a brute-force evaluation over every whole trace.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use skein_format::block::WriteOptions;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::KeyValue;
use skein_format::summary::TraceSummary;
use skein_format::{BlockMeta, BlockWriter, SpanRecord, TenantId};
use skein_querier::lookup::TraceLookup;
use skein_querier::search::TagScope;
use skein_querier::tagcache::TagIndexCache;
use skein_query::search::{Semantics, TraceQuery, span_has_tag};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::{Rng, TraceGenerator};

const T0: u64 = 1_760_000_000_000_000_000;

struct Dataset {
    /// Spans of each block.
    blocks: Vec<Vec<SpanRecord>>,
}

fn dataset(seed: u64) -> Dataset {
    let mut g = TraceGenerator::new(seed, T0, 40_000_000);
    let mut rng = Rng::new(seed ^ 0xabc);
    let n_blocks = 6;
    let mut blocks: Vec<Vec<SpanRecord>> = vec![Vec::new(); n_blocks];
    for t in 0..300usize {
        let trace = g.trace(2 + rng.below(25) as usize);
        // Blocks roughly follow time, overlapping; a fifth of the traces are split over two
        // or three blocks.
        let home = (t * n_blocks / 300).min(n_blocks - 1);
        let split = rng.chance(0.2);
        for s in trace {
            let b = if split {
                (home + rng.below(3) as usize).min(n_blocks - 1)
            } else {
                home
            };
            blocks[b].push(s);
        }
    }
    blocks.retain(|b| !b.is_empty());
    Dataset { blocks }
}

async fn lookup(data: &Dataset, indexed: bool, cache: &std::path::Path) -> Arc<TraceLookup> {
    let store = StorageConfig::Memory {}.open().unwrap();
    let tenant = TenantId::new("t").unwrap();
    let writer = BlockWriter::new(store.clone());
    for spans in &data.blocks {
        let opts = WriteOptions {
            tag_index: indexed,
            compaction_level: u32::from(indexed),
            ..Default::default()
        };
        let meta: BlockMeta = writer
            .write_with(&tenant, spans.clone(), opts)
            .await
            .unwrap();
        assert_eq!(meta.files.index_size.is_some(), indexed);
    }
    let blocks = Arc::new(BlockList::new(store.clone(), Duration::from_secs(60)));
    let mut l = TraceLookup::new(store.clone(), blocks, vec![]);
    if indexed {
        l = l.with_tag_indexes(TagIndexCache::new(store, cache, 1 << 30));
    }
    Arc::new(l)
}

/// Every whole trace, and which blocks hold a span of it.
fn whole_traces(data: &Dataset) -> BTreeMap<[u8; 16], (Vec<SpanRecord>, Vec<usize>)> {
    let mut m: BTreeMap<[u8; 16], (Vec<SpanRecord>, Vec<usize>)> = BTreeMap::new();
    for (b, spans) in data.blocks.iter().enumerate() {
        for s in spans {
            let e = m.entry(s.trace_id().unwrap().0).or_default();
            e.0.push(s.clone());
            e.1.push(b);
        }
    }
    m
}

fn block_range(spans: &[SpanRecord]) -> (u64, u64) {
    (
        spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap(),
        spans
            .iter()
            .map(|s| s.span.end_time_unix_nano)
            .max()
            .unwrap(),
    )
}

/// The answer by definition: matching traces that have a span satisfying the span-level
/// filters in a block overlapping the window, newest first, at most `limit`.
fn brute_force(data: &Dataset, q: &TraceQuery) -> Vec<TraceSummary> {
    let (lo, hi) = (
        q.start_unix_nano.unwrap_or(0),
        q.end_unix_nano.unwrap_or(u64::MAX),
    );
    let overlapping: Vec<bool> = data
        .blocks
        .iter()
        .map(|b| {
            let (s, e) = block_range(b);
            s <= hi && e >= lo
        })
        .collect();
    let mut out: Vec<TraceSummary> = Vec::new();
    for (spans, _) in whole_traces(data).values() {
        if !q.matches(spans) {
            continue;
        }
        // The span-level filters must hold on a span of a block in the window.
        let reachable = data.blocks.iter().enumerate().any(|(b, bs)| {
            overlapping[b]
                && bs.iter().any(|s| {
                    s.span.trace_id == spans[0].span.trace_id
                        && q.service_name
                            .as_deref()
                            .is_none_or(|w| s.service_name() == w)
                        && q.span_name.as_deref().is_none_or(|w| s.span.name == w)
                        && q.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
                })
        });
        if reachable {
            out.push(TraceSummary::from_spans(spans).unwrap());
        }
    }
    out.sort_by(|a, b| {
        b.start_unix_nano
            .cmp(&a.start_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    if q.limit > 0 {
        out.truncate(q.limit);
    }
    out
}

fn tags_of(data: &Dataset) -> Vec<(String, String)> {
    let mut set = BTreeSet::new();
    for s in data.blocks.iter().flatten() {
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
        for e in &s.span.events {
            add(&e.attributes);
        }
    }
    set.into_iter().collect()
}

fn random_query(rng: &mut Rng, data: &Dataset, tags: &[(String, String)]) -> TraceQuery {
    let spans: Vec<&SpanRecord> = data.blocks.iter().flatten().collect();
    let some = |rng: &mut Rng| spans[rng.below(spans.len() as u64) as usize];
    let (lo, hi) = (
        spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap(),
        spans
            .iter()
            .map(|s| s.span.end_time_unix_nano)
            .max()
            .unwrap(),
    );
    let mut q = TraceQuery {
        semantics: if rng.chance(0.5) {
            Semantics::Span
        } else {
            Semantics::Trace
        },
        limit: [0, 1, 5, 20, 50][rng.below(5) as usize],
        ..Default::default()
    };
    if rng.chance(0.6) {
        q.service_name = Some(some(rng).service_name().to_owned());
    }
    if rng.chance(0.25) {
        q.span_name = Some(some(rng).span.name.clone());
    }
    for _ in 0..rng.below(3) {
        q.tags
            .push(tags[rng.below(tags.len() as u64) as usize].clone());
    }
    if rng.chance(0.5) {
        let a = lo + rng.below(hi - lo);
        let b = lo + rng.below(hi - lo);
        q.start_unix_nano = Some(a.min(b));
        q.end_unix_nano = Some(a.max(b));
    }
    if rng.chance(0.4) {
        q.min_duration_nanos = Some(rng.below(80_000_000));
    }
    if rng.chance(0.2) {
        q.max_duration_nanos = Some(rng.below(300_000_000));
    }
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_and_scanned_blocks_answer_alike() {
    let cache = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("t").unwrap();
    for seed in [3u64, 11] {
        let data = dataset(seed);
        assert!(data.blocks.len() >= 5);
        let scanned = lookup(&data, false, cache.path()).await;
        let indexed = lookup(&data, true, cache.path()).await;
        let tags = tags_of(&data);
        let mut rng = Rng::new(seed * 31);
        let (mut nonempty, mut from_index) = (0, 0);
        for round in 0..120 {
            let q = random_query(&mut rng, &data, &tags);
            let a = scanned.search(&tenant, &q).await.unwrap();
            let b = indexed.search(&tenant, &q).await.unwrap();
            // The indexed copy really answers from its indexes (a broken index would quietly
            // fall back to scanning and give the same answers).
            assert_eq!(a.indexed_blocks, 0);
            from_index += b.indexed_blocks;
            let (a, b) = (a.traces, b.traces);
            let want = brute_force(&data, &q);
            assert_eq!(a, want, "scan, seed {seed} round {round}: {q:?}");
            assert_eq!(b, want, "index, seed {seed} round {round}: {q:?}");
            nonempty += usize::from(!want.is_empty());
        }
        assert!(
            nonempty > 40,
            "only {nonempty} of 120 queries matched anything"
        );
        assert!(
            from_index > 120,
            "only {from_index} blocks were answered from an index"
        );

        // Listings, over the whole range and over a window that cuts blocks.
        let all = (0, u64::MAX);
        let (lo, hi) = block_range(&data.blocks[2]);
        for window in [all, (lo, hi)] {
            let (na, nb) = (
                scanned.tag_names(&tenant, window).await.unwrap(),
                indexed.tag_names(&tenant, window).await.unwrap(),
            );
            assert_eq!(na.span, nb.span);
            assert_eq!(na.resource, nb.resource);
            assert!(!na.span.is_empty() && !na.resource.is_empty());
            // Every fourth key (each listing scans every block without an index).
            for key in na.span.iter().chain(na.resource.iter()).step_by(4) {
                for scope in [None, Some(TagScope::Span), Some(TagScope::Resource)] {
                    let va = scanned
                        .tag_values(&tenant, scope, key, window)
                        .await
                        .unwrap();
                    let vb = indexed
                        .tag_values(&tenant, scope, key, window)
                        .await
                        .unwrap();
                    assert_eq!(va, vb, "values of {key} in {scope:?}");
                }
            }
        }
        assert_eq!(
            scanned.operations(&tenant).await.unwrap(),
            indexed.operations(&tenant).await.unwrap()
        );
        for window in [all, (lo, hi)] {
            let calls = scanned.service_calls(&tenant, window).await.unwrap();
            assert!(!calls.is_empty());
            assert_eq!(calls, indexed.service_calls(&tenant, window).await.unwrap());
        }
    }
}
