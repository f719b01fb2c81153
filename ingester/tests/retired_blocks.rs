//! An ingester keeps answering for the blocks it flushed until queriers see them. If a
//! compactor has meanwhile replaced and deleted such a block, the ingester answers without it
//! instead of failing the query.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use skein_format::TenantId;
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_ingester::{Ingester, IngesterConfig};
use skein_query::recent::Candidates;
use skein_query::recent::RecentData;
use skein_storage::StorageConfig;
use skein_storage::blocklist::{delete_block, list_tenant};
use skein_testkit::synth::TraceGenerator;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_flushed_block_is_left_out_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = IngesterConfig {
        wal_dir: dir.path().join("wal"),
        ..IngesterConfig::default()
    };
    let store = StorageConfig::Memory {}.open().unwrap();
    let ingester = Ingester::open(config, store.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let background = tokio::spawn(
        Arc::clone(&ingester).run_background(shutdown.clone(), Duration::from_secs(5)),
    );
    let tenant = TenantId::new("team-a").unwrap();
    let mut g = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1_000);
    let trace = g.trace(6);
    let id = trace[0].trace_id().unwrap();
    let request = ExportTraceServiceRequest {
        resource_spans: spans_to_otlp(trace.clone()),
    };
    let len = request.encoded_len();
    ingester
        .push(&tenant, request, len, None, "test")
        .await
        .unwrap();

    ingester.cut(true);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ingester.unflushed_spans() > 0 {
        assert!(Instant::now() < deadline, "the block was not flushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still answered, now from the flushed block.
    assert_eq!(
        ingester.find_trace(&tenant, &id).await.unwrap().len(),
        trace.len()
    );

    let blocks = list_tenant(&store, &tenant).await.unwrap().live;
    assert_eq!(blocks.len(), 1);
    delete_block(&store, &tenant, blocks[0]).await.unwrap();

    assert!(ingester.find_trace(&tenant, &id).await.unwrap().is_empty());
    let everything = Candidates::default();
    assert!(
        ingester
            .search(&tenant, &everything)
            .await
            .unwrap()
            .is_empty()
    );

    shutdown.cancel();
    background.await.unwrap();
}
