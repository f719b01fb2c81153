//! Search, tag and tag-value listings and operations give the same answers whether blocks
//! have a tag index or are scanned, over random data (traces split across blocks, errors,
//! overlapping block time ranges) and random queries (legacy searches of both semantics, and
//! random TraceQL with structural operators and pipelines); and both agree with a brute-force
//! evaluation over every whole trace. The legacy searches' TraceQL translation keeps their
//! meaning.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use skein_format::block::WriteOptions;
use skein_format::model::value_string;
use skein_format::otlp::common::v1::KeyValue;
use skein_format::summary::TraceSummary;
use skein_format::{BlockMeta, BlockWriter, SpanRecord, TenantId};
use skein_querier::listings::TagScope;
use skein_querier::lookup::TraceLookup;
use skein_querier::tagcache::TagIndexCache;
use skein_query::Search;
use skein_query::search::{Semantics, TraceQuery};
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

/// How the blocks of a lookup are searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Scanned: blocks as an ingester writes them, their row indexes removed.
    Scan,
    /// Blocks as an ingester writes them, with their row indexes.
    Rows,
    /// Blocks as the compactor writes them, with tag indexes.
    Tags,
}

async fn lookup(data: &Dataset, mode: Mode, cache: &std::path::Path) -> Arc<TraceLookup> {
    let store = StorageConfig::Memory {}.open().unwrap();
    let tenant = TenantId::new("t").unwrap();
    let writer = BlockWriter::new(store.clone());
    let indexed = mode == Mode::Tags;
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
        assert_eq!(meta.files.row_index_size.is_some(), !indexed);
        if mode == Mode::Scan {
            // A row index that has gone missing: the block is scanned.
            let path = skein_format::layout::block_object(
                &tenant,
                meta.block_id,
                skein_format::layout::names::ROWS,
            );
            object_store::ObjectStoreExt::delete(&*store, &path)
                .await
                .unwrap();
        }
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

/// The answer by definition: the traces on whose spans (in the window) the query yields a
/// spanset, newest first, at most `limit`.
fn brute_force(data: &Dataset, search: &Search) -> Vec<TraceSummary> {
    let mut out: Vec<TraceSummary> = Vec::new();
    for (spans, _) in whole_traces(data).values() {
        let mut spans = spans.clone();
        spans.sort_by_key(|s| s.span.start_time_unix_nano);
        if search.decide(&spans).is_some() {
            out.push(TraceSummary::from_spans(&spans).unwrap());
        }
    }
    out.sort_by(|a, b| {
        b.start_unix_nano
            .cmp(&a.start_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    if search.limit > 0 {
        out.truncate(search.limit);
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
        let scanned = lookup(&data, Mode::Scan, cache.path()).await;
        let rowed = lookup(&data, Mode::Rows, cache.path()).await;
        let indexed = lookup(&data, Mode::Tags, cache.path()).await;
        let tags = tags_of(&data);
        let mut from_rows = 0;
        let mut rng = Rng::new(seed * 31);
        let (mut nonempty, mut from_index) = (0, 0);
        for round in 0..200 {
            let (search, what) = if round % 2 == 0 {
                let q = random_query(&mut rng, &data, &tags);
                (q.to_search().unwrap(), format!("{q:?} as {}", q.traceql()))
            } else {
                let text = skein_testkit::traceql::random_query(&mut rng);
                let mut search = Search::new(skein_traceql::parse(&text).unwrap());
                search.limit = [0, 1, 5, 20][rng.below(4) as usize];
                if rng.chance(0.3) {
                    let (lo, hi) =
                        block_range(&data.blocks[rng.below(data.blocks.len() as u64) as usize]);
                    search.window = Some((lo, hi));
                }
                (search, text)
            };
            let a = scanned.search_traceql(&tenant, &search).await.unwrap();
            let b = indexed.search_traceql(&tenant, &search).await.unwrap();
            let r = rowed.search_traceql(&tenant, &search).await.unwrap();
            // The indexed copies really answer from their indexes (a broken index would
            // quietly fall back to scanning and give the same answers).
            assert_eq!(a.indexed_blocks + a.row_indexed_blocks, 0);
            from_index += b.indexed_blocks;
            from_rows += r.row_indexed_blocks;
            let (a, b, r) = (a.traces, b.traces, r.traces);
            let want = brute_force(&data, &search);
            assert_eq!(a, want, "scan, seed {seed} round {round}: {what}");
            assert_eq!(b, want, "index, seed {seed} round {round}: {what}");
            assert_eq!(r, want, "row index, seed {seed} round {round}: {what}");
            nonempty += usize::from(!want.is_empty());
        }
        assert!(
            nonempty > 60,
            "only {nonempty} of 200 queries matched anything"
        );
        assert!(
            from_index > 200,
            "only {from_index} blocks were answered from an index"
        );
        assert!(
            from_rows > 200,
            "only {from_rows} blocks were answered from a row index"
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

/// Needles: values of a key the index gives no terms (here: values too long for a term, as
/// request or session IDs are too many). Such blocks are scanned with their value Bloom
/// filters, whether or not they have an index, and find exactly the traces holding the value
/// without reading every trace of the block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needles_of_keys_without_terms_are_found_through_the_value_filters() {
    let cache = tempfile::tempdir().unwrap();
    let tenant = TenantId::new("t").unwrap();
    let mut data = dataset(7);
    let mut tokens = Vec::new();
    for (i, s) in data.blocks.iter_mut().flatten().enumerate().step_by(9) {
        let token = format!("{i:08}-{}", "x".repeat(300));
        s.span.attributes.push(KeyValue {
            key: "app.token".into(),
            value: Some(skein_format::otlp::common::v1::AnyValue {
                value: Some(
                    skein_format::otlp::common::v1::any_value::Value::StringValue(token.clone()),
                ),
            }),
            ..Default::default()
        });
        tokens.push(token);
    }
    let scanned = lookup(&data, Mode::Scan, cache.path()).await;
    let rowed = lookup(&data, Mode::Rows, cache.path()).await;
    let indexed = lookup(&data, Mode::Tags, cache.path()).await;
    let mut rng = Rng::new(7);
    for _ in 0..12 {
        let token = &tokens[rng.below(tokens.len() as u64) as usize];
        let text = format!("{{span.app.token=\"{token}\"}}");
        let search = Search::new(skein_traceql::parse(&text).unwrap());
        let want = brute_force(&data, &search);
        assert_eq!(want.len(), 1, "{text}");
        let a = scanned.search_traceql(&tenant, &search).await.unwrap();
        let b = indexed.search_traceql(&tenant, &search).await.unwrap();
        let c = rowed.search_traceql(&tenant, &search).await.unwrap();
        assert_eq!(a.traces, want, "scan: {text}");
        assert_eq!(b.traces, want, "index: {text}");
        assert_eq!(c.traces, want, "row index: {text}");
        for r in [&a, &b, &c] {
            assert!(
                !r.truncated && r.read_traces <= 3,
                "{} traces read to find one",
                r.read_traces
            );
        }
    }
    // With another condition on an indexed field, in one span.
    let token = &tokens[0];
    let text = format!("{{span.app.token=\"{token}\" && duration>=0}}");
    let search = Search::new(skein_traceql::parse(&text).unwrap());
    let b = indexed.search_traceql(&tenant, &search).await.unwrap();
    assert_eq!(b.traces, brute_force(&data, &search));
}

/// The TraceQL translation of a legacy search means what the legacy search meant, on whole
/// traces (the window aside: a legacy Tempo search's window is on the whole trace, a
/// translated one on the spans it looks at, which agree for traces wholly inside or outside).
#[test]
fn legacy_searches_mean_the_same_as_traceql() {
    for seed in [5u64, 17] {
        let data = dataset(seed);
        let tags = tags_of(&data);
        let traces = whole_traces(&data);
        let mut rng = Rng::new(seed);
        let mut matched = 0;
        for round in 0..300 {
            let mut q = random_query(&mut rng, &data, &tags);
            if q.semantics == Semantics::Trace {
                (q.start_unix_nano, q.end_unix_nano) = (None, None);
            }
            let search = q.to_search().unwrap();
            for (spans, _) in traces.values() {
                let legacy = q.matches(spans);
                assert_eq!(
                    search.decide(spans).is_some(),
                    legacy,
                    "seed {seed} round {round}: {q:?} as {}",
                    q.traceql()
                );
                matched += usize::from(legacy);
            }
        }
        assert!(matched > 100, "only {matched} matches");
    }
}
