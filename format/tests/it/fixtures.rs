//! Real traces (`tests/fixtures/otlp-json/`, OTLP/JSON) survive a block round trip.

use std::path::PathBuf;

use skein_format::model::{canonical, spans_from_otlp, spans_to_otlp};
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{BlockReader, BlockWriter, TenantId};
use skein_storage::StorageConfig;

fn fixtures() -> Vec<(String, TracesData)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/otlp-json");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let data: TracesData =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                data,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() >= 10, "fixtures missing from {}", dir.display());
    out
}

#[tokio::test]
async fn every_fixture_round_trips_through_a_block() {
    let store = StorageConfig::Memory {}.open().unwrap();
    for (i, (name, data)) in fixtures().into_iter().enumerate() {
        // Several fixtures share a trace ID: one tenant each keeps them apart.
        let tenant = TenantId::new(&format!("fixture-{i}")).unwrap();
        let spans = spans_from_otlp(data.resource_spans.clone());
        assert!(!spans.is_empty(), "{name}");
        let meta = BlockWriter::new(store.clone())
            .write(&tenant, spans.clone())
            .await
            .unwrap();
        let reader = BlockReader::open(store.clone(), meta);
        let back = reader.read_all().await.unwrap();
        assert_eq!(
            canonical(spans_to_otlp(back)),
            canonical(data.resource_spans.clone()),
            "{name} changed in the round trip"
        );
        let id = spans[0].trace_id().unwrap();
        let trace = reader.find_trace(&id).await.unwrap();
        assert_eq!(
            trace.len(),
            spans.iter().filter(|s| s.trace_id().unwrap() == id).count(),
            "{name}"
        );
    }
}
