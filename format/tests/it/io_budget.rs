//! What a lookup costs in object-store requests, and what bad objects do.

use std::sync::Arc;

use object_store::{ObjectStoreExt, PutPayload};
use parquet::file::metadata::ParquetMetaDataReader;
use skein_format::Error;
use skein_format::block::{EncodeOptions, WriteOptions};
use skein_format::layout::{block_object, names};
use skein_format::{BlockMeta, BlockReader, BlockWriter, Store, TenantId, TraceId};
use skein_storage::blocklist::read_meta;
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::counting::CountingStore;
use skein_testkit::synth::TraceGenerator;

const T0: u64 = 1_750_000_000_000_000_000;

async fn block_with_row_groups(store: Store) -> (BlockMeta, Vec<TraceId>) {
    block_with(store, 2_000).await
}

async fn block_with(store: Store, row_group_rows: usize) -> (BlockMeta, Vec<TraceId>) {
    let spans = TraceGenerator::new(3, T0, 10_000_000).spans(20_000);
    let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id().unwrap()).collect();
    ids.sort();
    ids.dedup();
    let opts = WriteOptions {
        encode: EncodeOptions {
            row_group_rows,
            ..Default::default()
        },
        ..Default::default()
    };
    let meta = BlockWriter::new(store)
        .write_with(&TenantId::new("io").unwrap(), spans, opts)
        .await
        .unwrap();
    (meta, ids)
}

#[tokio::test]
async fn missing_trace_costs_one_bloom_read_and_no_data_read() {
    let counting = CountingStore::new(StorageConfig::Memory {}.open().unwrap());
    let (meta, ids) = block_with_row_groups(counting.clone()).await;
    assert!(
        meta.row_groups.len() >= 8,
        "{} row groups",
        meta.row_groups.len()
    );
    let reader = BlockReader::open(counting.clone(), meta.clone());

    // IDs between two present ones: inside the block's trace-ID range, so only the bloom
    // filter can rule them out.
    let mut misses = 0;
    for w in ids.windows(2).take(200) {
        let mut probe = w[0];
        probe.0[15] ^= 1;
        if ids.binary_search(&probe).is_ok() || probe <= w[0] && probe >= w[1] {
            continue;
        }
        counting.reset();
        let found = reader.find_trace(&probe).await.unwrap();
        assert!(found.is_empty());
        let c = counting.snapshot();
        let reads = counting.reads();
        if reads.iter().any(|r| r.path.ends_with(names::DATA)) {
            continue; // a bloom false positive (about 0.1%): allowed to read data
        }
        if c.gets == 0 {
            continue; // between two row groups: ruled out by the meta alone
        }
        assert_eq!(c.gets, 1, "{reads:?}");
        assert_eq!(c.get_bytes, 32);
        assert!(reads[0].path.ends_with(names::BLOOM));
        assert_eq!((c.lists, c.heads, c.puts), (0, 0, 0));
        misses += 1;
    }
    assert!(misses > 150, "{misses} clean misses");

    // Outside the block's trace-ID range: no request at all.
    counting.reset();
    assert!(
        reader
            .find_trace(&TraceId([0xFF; 16]))
            .await
            .unwrap()
            .is_empty()
            || ids.last() == Some(&TraceId([0xFF; 16]))
    );
    assert_eq!(counting.snapshot().gets, 0);
}

#[tokio::test]
async fn present_trace_reads_bloom_footer_and_its_row_group_only() {
    let counting = CountingStore::new(StorageConfig::Memory {}.open().unwrap());
    let (meta, ids) = block_with_row_groups(counting.clone()).await;
    let data_path = block_object(&meta.tenant, meta.block_id, names::DATA);
    let data = counting
        .get(&data_path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let footer = ParquetMetaDataReader::new()
        .parse_and_finish(&data)
        .unwrap();
    let reader = BlockReader::open(counting.clone(), meta.clone());

    for (n, id) in [ids[ids.len() / 3], ids[ids.len() / 2], ids[ids.len() - 1]]
        .iter()
        .enumerate()
    {
        counting.reset();
        let spans = reader.find_trace(id).await.unwrap();
        assert!(!spans.is_empty());
        let rg = meta
            .row_groups
            .iter()
            .position(|rg| rg.may_contain(id))
            .unwrap();
        let rg_range = footer
            .row_group(rg)
            .columns()
            .iter()
            .map(|c| {
                let (start, len) = c.byte_range();
                start..start + len
            })
            .reduce(|a, b| a.start.min(b.start)..a.end.max(b.end))
            .unwrap();
        let reads = counting.reads();
        let data_reads: Vec<_> = reads
            .iter()
            .filter(|r| r.path.ends_with(names::DATA))
            .collect();
        let footer_reads = data_reads
            .iter()
            .filter(|r| r.range.as_ref().is_some_and(|x| x.end == meta.data_size))
            .count();
        // The footer is read once per reader, then cached.
        assert_eq!(footer_reads, usize::from(n == 0), "{reads:?}");
        for r in data_reads
            .iter()
            .filter(|r| r.range.as_ref().is_some_and(|x| x.end != meta.data_size))
        {
            let range = r.range.clone().unwrap();
            assert!(
                range.start >= rg_range.start && range.end <= rg_range.end,
                "read {range:?} outside row group {rg} at {rg_range:?}"
            );
        }
        let bytes: u64 = data_reads
            .iter()
            .filter(|r| r.range.as_ref().is_some_and(|x| x.end != meta.data_size))
            .map(|r| r.bytes)
            .sum();
        let rg_bytes = rg_range.end - rg_range.start;
        assert!(
            bytes <= rg_bytes,
            "read {bytes} bytes of a {rg_bytes}-byte row group"
        );
        eprintln!(
            "trace of {} spans: {bytes} bytes read of a {rg_bytes}-byte row group",
            spans.len()
        );
        assert_eq!(
            reads
                .iter()
                .filter(|r| r.path.ends_with(names::BLOOM))
                .count(),
            1
        );
    }
}

#[tokio::test]
async fn page_index_limits_reads_within_a_row_group() {
    let counting = CountingStore::new(StorageConfig::Memory {}.open().unwrap());
    let (meta, ids) = block_with(counting.clone(), 1_000_000).await;
    assert_eq!(meta.row_groups.len(), 1);
    let reader = BlockReader::open(counting.clone(), meta.clone());
    reader.find_trace(&ids[0]).await.unwrap(); // caches the footer
    counting.reset();
    let spans = reader.find_trace(&ids[ids.len() / 2]).await.unwrap();
    assert!(!spans.is_empty());
    let read: u64 = counting
        .reads()
        .iter()
        .filter(|r| r.path.ends_with(names::DATA))
        .map(|r| r.bytes)
        .sum();
    eprintln!(
        "trace of {} spans: {read} bytes read of a {}-byte file",
        spans.len(),
        meta.data_size
    );
    // Dictionary pages of each column chunk are always read; data pages only where the
    // trace lies.
    assert!(
        read < meta.data_size / 2,
        "read {read} of {} bytes",
        meta.data_size
    );
}

async fn corrupt_and_expect_error(object: &str, bytes: Vec<u8>) -> Error {
    let store = StorageConfig::Memory {}.open().unwrap();
    let spans = TraceGenerator::new(5, T0, 10_000_000).spans(500);
    let id = spans[0].trace_id().unwrap();
    let meta = BlockWriter::new(store.clone())
        .write(&TenantId::new("bad").unwrap(), spans)
        .await
        .unwrap();
    let path = block_object(&meta.tenant, meta.block_id, object);
    let original = store.get(&path).await.unwrap().bytes().await.unwrap();
    let replacement = if bytes.is_empty() {
        original[..original.len() / 2].to_vec()
    } else {
        bytes
    };
    store
        .put(&path, PutPayload::from(replacement))
        .await
        .unwrap();
    let reader = BlockReader::open(store.clone(), meta.clone());
    match object {
        names::META => match read_meta(&store, &meta.tenant, meta.block_id).await {
            Err(skein_storage::Error::Format(e)) => e,
            other => panic!("expected a format error, got {other:?}"),
        },
        _ => {
            let err = reader.find_trace(&id).await.unwrap_err();
            if object == names::DATA {
                assert!(reader.read_all().await.is_err());
            }
            err
        }
    }
}

#[tokio::test]
async fn truncated_or_garbage_objects_give_typed_errors() {
    for (object, bytes) in [
        (names::DATA, vec![]),
        (names::DATA, b"PAR1 this is not parquet PAR1".to_vec()),
        (names::DATA, vec![0u8; 300_000]),
        (names::BLOOM, vec![]),
        (names::BLOOM, b"garbage".to_vec()),
        (names::META, vec![]),
        (
            names::META,
            b"{\"format_version\": 1, \"block_id\": 7}".to_vec(),
        ),
    ] {
        let err = corrupt_and_expect_error(object, bytes.clone()).await;
        assert!(
            matches!(
                err,
                Error::Corrupt { .. } | Error::Parquet(_) | Error::ObjectStore(_)
            ),
            "{object} ({} bytes): unexpected {err:?}",
            bytes.len()
        );
    }
}

#[tokio::test]
async fn a_block_with_an_unreadable_meta_is_skipped_not_fatal() {
    let store = StorageConfig::Memory {}.open().unwrap();
    let tenant = TenantId::new("skip").unwrap();
    let writer = BlockWriter::new(store.clone());
    let good = writer
        .write(&tenant, TraceGenerator::new(1, T0, 1).spans(50))
        .await
        .unwrap();
    let bad = writer
        .write(&tenant, TraceGenerator::new(2, T0, 1).spans(50))
        .await
        .unwrap();
    store
        .put(
            &block_object(&tenant, bad.block_id, names::META),
            PutPayload::from_static(b"{oops"),
        )
        .await
        .unwrap();
    let list = BlockList::new(store, std::time::Duration::from_secs(1));
    let blocks = list.blocks(&tenant).await.unwrap();
    assert_eq!(
        blocks.iter().map(|m| m.block_id).collect::<Vec<_>>(),
        vec![good.block_id]
    );
}

#[test]
fn counting_store_is_an_object_store() {
    let _: Arc<dyn object_store::ObjectStore> =
        CountingStore::new(StorageConfig::Memory {}.open().unwrap());
}
