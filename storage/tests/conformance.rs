//! The storage conformance suite: every backend must pass it. It runs against memory and
//! local disk in every `cargo test`, and against a real S3 server (SeaweedFS) when
//! `SKEIN_TEST_S3_ENDPOINT` and `SKEIN_TEST_S3_BUCKET` are set, as the full test command
//! does. With `SKEIN_TEST_REQUIRE_EXTERNAL=1` a missing S3 server fails the run instead of
//! skipping it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use skein_format::layout::block_prefix;
use skein_format::model::{canonical, spans_to_otlp};
use skein_format::{BlockReader, BlockWriter, ScanFilter, SpanRecord, Store, TenantId, TraceId};
use skein_storage::S3Config;
use skein_storage::blocklist::{
    delete_block, list_tenant, read_tenant_index, tombstone_block, write_tenant_index,
};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::TraceGenerator;

const T0: u64 = 1_750_000_000_000_000_000;

fn unique_tenant(name: &str) -> TenantId {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    TenantId::new(&format!("{name}-{n:x}")).unwrap()
}

fn by_trace(spans: &[SpanRecord]) -> BTreeMap<TraceId, Vec<SpanRecord>> {
    let mut m: BTreeMap<TraceId, Vec<SpanRecord>> = BTreeMap::new();
    for s in spans {
        m.entry(s.trace_id().unwrap()).or_default().push(s.clone());
    }
    m
}

fn same(a: Vec<SpanRecord>, b: Vec<SpanRecord>) -> bool {
    canonical(spans_to_otlp(a)) == canonical(spans_to_otlp(b))
}

async fn object_count(store: &Store, prefix: &object_store::path::Path) -> usize {
    store
        .list(Some(prefix))
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .len()
}

/// write block → list → read trace by ID → read all → scan → tenant index → tombstone → delete.
async fn conformance(store: Store) {
    let tenant = unique_tenant("conf");
    let other = unique_tenant("other");
    let mut generator = TraceGenerator::new(11, T0, 50_000_000);
    let spans = generator.spans(3_000);
    let other_spans = generator.spans(100);
    let writer = BlockWriter::new(store.clone());

    // Write.
    let meta = writer
        .write(&tenant, spans.clone())
        .await
        .expect("write block");
    assert_eq!(meta.span_count as usize, spans.len());
    assert_eq!(meta.trace_count as usize, by_trace(&spans).len());
    assert_eq!(meta.tenant, tenant);
    writer
        .write(&other, other_spans)
        .await
        .expect("write other tenant's block");

    // An orphan directory (a block whose upload died before its meta) stays invisible.
    let orphan = skein_format::BlockId::new();
    store
        .put(
            &skein_format::layout::block_object(&tenant, orphan, "data.parquet"),
            object_store::PutPayload::from_static(b"half"),
        )
        .await
        .unwrap();

    // List.
    let list = BlockList::new(store.clone(), Duration::from_secs(60));
    let blocks = list.blocks(&tenant).await.expect("list blocks");
    assert_eq!(
        blocks.len(),
        1,
        "one visible block, the orphan and the other tenant's excluded"
    );
    assert_eq!(blocks[0], meta);
    let listing = list_tenant(&store, &tenant).await.unwrap();
    assert_eq!(listing.without_meta, vec![orphan]);

    // Trace by ID, for every trace.
    let reader = BlockReader::open(store.clone(), blocks[0].clone());
    let traces = by_trace(&spans);
    for (id, expected) in &traces {
        let got = reader.find_trace(id).await.expect("find trace");
        assert!(same(got, expected.clone()), "trace {id} differs");
    }
    let missing = TraceId([0xAB; 16]);
    assert!(reader.find_trace(&missing).await.unwrap().is_empty());

    // Read all.
    let all = reader.read_all().await.expect("read all");
    assert!(same(all, spans.clone()));

    // Scan with predicates pushed down.
    let filter = ScanFilter {
        service_name: Some("payment".into()),
        min_duration_nanos: Some(5_000_000),
        ..Default::default()
    };
    let mut got: Vec<SpanRecord> = reader
        .scan(filter.clone())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    let mut want: Vec<SpanRecord> = spans
        .iter()
        .filter(|s| filter.matches(s))
        .cloned()
        .collect();
    assert!(!want.is_empty(), "the filter should match something");
    assert!(same(std::mem::take(&mut got), std::mem::take(&mut want)));
    let window = ScanFilter {
        start_unix_nano: Some(T0 + 2_000_000_000),
        end_unix_nano: Some(T0 + 4_000_000_000),
        whole_traces: true,
        ..Default::default()
    };
    let got: Vec<SpanRecord> = reader
        .scan(window.clone())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .concat();
    let want: Vec<SpanRecord> = traces
        .values()
        .filter(|t| t.iter().any(|s| window.matches(s)))
        .flatten()
        .cloned()
        .collect();
    assert!(!want.is_empty() && want.len() < spans.len());
    assert!(same(got, want));

    // The tenant index gives the same list.
    write_tenant_index(&store, &tenant, blocks.to_vec())
        .await
        .unwrap();
    assert_eq!(
        read_tenant_index(&store, &tenant)
            .await
            .unwrap()
            .unwrap()
            .blocks,
        blocks.to_vec()
    );
    let fresh = BlockList::new(store.clone(), Duration::from_secs(60));
    assert_eq!(fresh.blocks(&tenant).await.unwrap(), blocks);

    // Tombstone: gone from the list, objects still there for in-flight queries.
    tombstone_block(&store, &tenant, meta.block_id, "compacted")
        .await
        .unwrap();
    assert!(list.refresh(&tenant).await.unwrap().is_empty());
    assert_eq!(
        list_tenant(&store, &tenant).await.unwrap().tombstoned,
        vec![meta.block_id]
    );
    assert!(
        !reader
            .find_trace(traces.keys().next().unwrap())
            .await
            .unwrap()
            .is_empty()
    );

    // Delete: nothing left of the block; the other tenant untouched.
    delete_block(&store, &tenant, meta.block_id).await.unwrap();
    delete_block(&store, &tenant, orphan).await.unwrap();
    assert_eq!(
        object_count(&store, &block_prefix(&tenant, meta.block_id)).await,
        0
    );
    assert_eq!(
        object_count(&store, &block_prefix(&tenant, orphan)).await,
        0
    );
    assert!(list.refresh(&tenant).await.unwrap().is_empty());
    assert_eq!(list.blocks(&other).await.unwrap().len(), 1);
}

#[tokio::test]
async fn conformance_memory() {
    conformance(StorageConfig::Memory {}.open().unwrap()).await;
}

#[tokio::test]
async fn conformance_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = StorageConfig::Local {
        path: dir.path().join("data"),
    }
    .open()
    .unwrap();
    conformance(store).await;
}

#[tokio::test]
async fn conformance_s3() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("SKEIN_TEST_S3_ENDPOINT"),
        std::env::var("SKEIN_TEST_S3_BUCKET"),
    ) else {
        assert!(
            std::env::var("SKEIN_TEST_REQUIRE_EXTERNAL").is_err(),
            "SKEIN_TEST_REQUIRE_EXTERNAL is set but SKEIN_TEST_S3_ENDPOINT/SKEIN_TEST_S3_BUCKET are not"
        );
        eprintln!("skipping: no S3 server configured (run ./scripts/test.sh for the full suite)");
        return;
    };
    let store = StorageConfig::S3(S3Config {
        bucket,
        endpoint,
        ..Default::default()
    })
    .open()
    .unwrap();
    conformance(store).await;
}
