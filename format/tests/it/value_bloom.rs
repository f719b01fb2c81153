//! A scan for generic span attribute values skips the row groups whose Bloom filter rules a
//! value out, never the one holding it, and reads only the traces with a span holding them.

use futures::TryStreamExt;
use object_store::memory::InMemory;
use skein_format::block::{EncodeOptions, ValueFilterCache, WriteOptions};
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::{BlockReader, BlockWriter, ScanFilter, SpanRecord, TenantId};
use skein_testkit::counting::CountingStore;
use skein_testkit::spans::kv;
use skein_testkit::synth::TraceGenerator;
use std::sync::Arc;

#[tokio::test]
async fn a_scan_for_a_rare_value_reads_only_the_row_group_holding_it() {
    let counting = CountingStore::new(Arc::new(InMemory::new()));
    let store: skein_format::Store = Arc::new(counting.clone());
    let mut spans = TraceGenerator::new(9, 1_750_000_000_000_000_000, 5_000_000).spans(6_000);
    let needle = "req-7f3a9c1e5b";
    spans[4_321]
        .span
        .attributes
        .push(kv("app.request.id", Value::StringValue(needle.into())));
    let trace = spans[4_321].trace_id().unwrap();
    let opts = WriteOptions {
        encode: EncodeOptions {
            row_group_rows: 500,
            ..Default::default()
        },
        ..Default::default()
    };
    let meta = BlockWriter::new(store.clone())
        .write_with(&TenantId::new("bloom").unwrap(), spans, opts)
        .await
        .unwrap();
    assert!(
        meta.row_groups.len() >= 10,
        "{} row groups",
        meta.row_groups.len()
    );
    let reader = BlockReader::open(store.clone(), meta.clone());
    let scan = |values: Vec<String>| {
        let reader = reader.clone();
        async move {
            let parts: Vec<Vec<SpanRecord>> = reader
                .scan(ScanFilter {
                    whole_traces: true,
                    attr_values: values,
                    ..Default::default()
                })
                .try_collect()
                .await
                .unwrap();
            parts
        }
    };

    let all = scan(Vec::new()).await;
    assert_eq!(all.len(), meta.row_groups.len());
    let found = scan(vec![needle.to_owned()]).await;
    // Row groups the filter rules out are not read at all; in the others only the traces
    // with a span holding the value are.
    let read: Vec<&Vec<SpanRecord>> = found.iter().filter(|p| !p.is_empty()).collect();
    assert_eq!(
        read.len(),
        1,
        "{} of {} row groups gave spans",
        read.len(),
        all.len()
    );
    let want: Vec<&SpanRecord> = all
        .iter()
        .flatten()
        .filter(|s| s.trace_id().unwrap() == trace)
        .collect();
    let got: Vec<&SpanRecord> = read.into_iter().flatten().collect();
    assert_eq!(
        got, want,
        "the whole trace holding the value, and nothing else"
    );
    // A span must hold every value given.
    let none = scan(vec![needle.to_owned(), "no-such-value-anywhere".to_owned()]).await;
    assert_eq!(none.iter().flatten().count(), 0);

    // What the filters save: a value every row group holds (a thread name) makes the scan read
    // the value column of every row group; the rare one, of one row group.
    let read = |values: Vec<String>| {
        let (counting, scan) = (counting.clone(), &scan);
        async move {
            let before = counting.snapshot().get_bytes;
            let spans = scan(values).await.into_iter().flatten().count();
            (spans, counting.snapshot().get_bytes - before)
        }
    };
    let (common_spans, common_bytes) = read(vec!["worker-3".to_owned()]).await;
    let (_, rare_bytes) = read(vec![needle.to_owned()]).await;
    assert!(common_spans > 0, "no span has thread name worker-3");
    assert!(
        rare_bytes * 4 < common_bytes,
        "the rare value read {rare_bytes} bytes, a common one {common_bytes}"
    );

    // With a filter cache, the second search for a value reads no filter again.
    let cached = BlockReader::open(store.clone(), meta.clone())
        .with_value_filter_cache(ValueFilterCache::new(1 << 20));
    let mut reads = Vec::new();
    for _ in 0..2 {
        let before = counting.snapshot().gets;
        let spans: Vec<Vec<SpanRecord>> = cached
            .scan(ScanFilter {
                whole_traces: true,
                attr_values: vec!["absent-everywhere".to_owned()],
                ..Default::default()
            })
            .try_collect()
            .await
            .unwrap();
        assert_eq!(spans.iter().flatten().count(), 0);
        reads.push(counting.snapshot().gets - before);
    }
    assert!(reads[0] >= meta.row_groups.len() as u64, "{reads:?}");
    assert!(
        reads[1] < reads[0] / 2,
        "the filters were read again: {reads:?}"
    );
}
