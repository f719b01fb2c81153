//! A written `data.parquet` is standard Parquet: pyarrow reads it.
//!
//! Needs `SKEIN_TEST_PYTHON` pointing at a Python with pyarrow (the full test command sets
//! it); skipped otherwise, unless `SKEIN_TEST_REQUIRE_EXTERNAL` is set.

use std::process::Command;

use skein_format::layout::{block_object, names};
use skein_format::{BlockWriter, TenantId};
use skein_storage::StorageConfig;
use skein_testkit::synth::TraceGenerator;

const SCRIPT: &str = r#"
import sys, json
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
meta = pq.ParquetFile(sys.argv[1]).metadata
ids = t.column("trace_id").to_pylist()
out = {
    "rows": t.num_rows,
    "row_groups": meta.num_row_groups,
    "trace_id_len": len(ids[0]),
    "sorted": ids == sorted(ids),
    "services": sorted(set(s for s in t.column("service_name").to_pylist() if s)),
    "first_attr_keys": [a["key"] for a in t.column("attrs")[0].as_py()],
    "compression": meta.row_group(0).column(0).compression,
}
print(json.dumps(out))
"#;

#[tokio::test]
async fn pyarrow_reads_a_block() {
    let Ok(python) = std::env::var("SKEIN_TEST_PYTHON") else {
        assert!(
            std::env::var("SKEIN_TEST_REQUIRE_EXTERNAL").is_err(),
            "SKEIN_TEST_REQUIRE_EXTERNAL is set but SKEIN_TEST_PYTHON is not"
        );
        eprintln!("skipping: SKEIN_TEST_PYTHON not set (run ./scripts/test.sh for the full suite)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()
    .unwrap();
    let spans = TraceGenerator::new(9, 1_750_000_000_000_000_000, 1_000_000).spans(5_000);
    let mut services: Vec<String> = spans.iter().map(|s| s.service_name().to_owned()).collect();
    services.sort();
    services.dedup();
    let first_keys_count = spans.len();
    let meta = BlockWriter::new(store)
        .write(&TenantId::new("py").unwrap(), spans)
        .await
        .unwrap();
    let path = dir
        .path()
        .join(block_object(&meta.tenant, meta.block_id, names::DATA).as_ref());
    let out = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], first_keys_count as u64);
    assert_eq!(v["row_groups"], meta.row_groups.len() as u64);
    assert_eq!(v["trace_id_len"], 16);
    assert_eq!(v["sorted"], true);
    assert_eq!(v["compression"], "ZSTD");
    assert_eq!(v["services"], serde_json::json!(services));
    assert!(!v["first_attr_keys"].as_array().unwrap().is_empty());
}
