//! Golden artefacts: one of every persisted thing — a block (data, bloom, tag index, meta),
//! a write-ahead log segment, a tenant index and a tenant's overrides object — for every
//! format version this build reads, committed under `tests/golden/<version>/` and read back
//! by today's code. What the readers see is compared with the expected JSON committed next
//! to the artefacts, and with the fixture traces the artefacts were written from.
//!
//! The artefacts of a version are written once, by the build that introduced it:
//!
//! ```text
//! SKEIN_GOLDEN_WRITE=1 cargo test --test it golden::write_current_version -- --ignored
//! ```
//!
//! which refuses to overwrite a version directory that exists. `docs/block-format.md` lists
//! the versions and their headers; [`the_format_document_matches_the_goldens`] holds the two
//! together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::{ObjectStoreExt, PutPayload};
use serde_json::{Value, json};
use skein_format::block::{WriteOptions, encode_block};
use skein_format::bloom::BloomFilter;
use skein_format::layout::{block_object, names};
use skein_format::model::{canonical, spans_from_otlp, spans_to_otlp};
use skein_format::otlp::trace::v1::TracesData;
use skein_format::tagindex::{Scope, TagIndex};
use skein_format::tenant_index::TenantIndex;
use skein_format::{BlockMeta, BlockReader, FormatVersion, IndexLayout, SpanRecord, Store};
use skein_format::{TenantId, TraceId};
use skein_ingester::{Ingester, IngesterConfig};
use skein_query::recent::RecentData;
use skein_storage::StorageConfig;
use skein_storage::overrides::TenantOverrides;

/// The tenant every golden artefact belongs to.
const TENANT: &str = "golden";

/// The fixtures (under `tests/fixtures/otlp-json/`) the artefacts hold.
const INPUTS: [&str; 2] = [
    "trace-with-virtual-nodes.json",
    "trace-with-expired-edges.json",
];

/// Names of the artefacts inside a version directory.
const BLOCK_DIR: &str = "block";
const WAL_DIR: &str = "wal";
const TENANT_INDEX: &str = "tenant-index.json.zst";
const OVERRIDES: &str = "overrides.json";
const EXPECTED: &str = "expected.json";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn version_dir(v: FormatVersion) -> PathBuf {
    root().join("tests/golden").join(v.to_string())
}

fn tenant() -> TenantId {
    TenantId::new(TENANT).expect("tenant")
}

/// The fixture requests, as OTLP/JSON bodies.
fn input_bodies() -> Vec<Vec<u8>> {
    INPUTS
        .iter()
        .map(|name| {
            let path = root().join("tests/fixtures/otlp-json").join(name);
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// The fixture spans, canonical (as every reader returns them).
fn input_spans() -> Vec<SpanRecord> {
    let mut spans = Vec::new();
    for body in input_bodies() {
        let request = skein_ingester::otlp_json::decode_export_request(&body).expect("fixture");
        spans.extend(spans_from_otlp(request.resource_spans));
    }
    canonical(spans_to_otlp(spans))
}

/// Spans as an OTLP/JSON document, canonical order: what the expected files hold.
fn spans_json(spans: Vec<SpanRecord>) -> Value {
    let data = TracesData {
        resource_spans: spans_to_otlp(canonical(spans_to_otlp(spans))),
    };
    serde_json::to_value(&data).expect("OTLP/JSON")
}

fn trace_ids(spans: &[SpanRecord]) -> Vec<TraceId> {
    let mut ids: Vec<TraceId> = spans.iter().filter_map(|s| s.trace_id().ok()).collect();
    ids.sort();
    ids.dedup();
    ids
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A bucket on local disk holding the golden block where the layout puts it.
async fn bucket_with_block(dir: &Path, golden: &Path) -> (Store, BlockMeta) {
    let store: Store = Arc::new(LocalFileSystem::new_with_prefix(dir).expect("local store"));
    let block = golden.join(BLOCK_DIR);
    let meta = BlockMeta::from_json(&read(&block.join(names::META)), "golden meta.json")
        .expect("the golden meta reads");
    for name in [names::DATA, names::BLOOM, names::INDEX, names::META] {
        let path = block_object(&meta.tenant, meta.block_id, name);
        store
            .put(&path, PutPayload::from(read(&block.join(name))))
            .await
            .expect("put");
    }
    (store, meta)
}

/// What the tag index of a block answers, as JSON.
fn index_json(bundle: &[u8], dir: &Path) -> Value {
    let unpacked = dir.join("index");
    skein_format::tagindex::unpack(bundle, &unpacked, "golden index").expect("unpack");
    let index = TagIndex::open(&unpacked, "golden index").expect("open");
    let summaries: Vec<Value> = (0..index.trace_count() as u32)
        .filter_map(|ordinal| index.summary(ordinal))
        .map(|s| {
            json!({
                "trace_id": s.trace_id.to_string(),
                "root_service_name": s.root_service_name,
                "root_span_name": s.root_span_name,
                "start_unix_nano": s.start_unix_nano,
                "duration_nanos": s.duration_nanos,
                "span_count": s.span_count,
                "error_count": s.error_count,
                "orphan_span_count": s.orphan_span_count,
                "services": s.services.keys().collect::<Vec<_>>(),
            })
        })
        .collect();
    let calls: Vec<Value> = index
        .service_calls()
        .iter()
        .map(|((from, to), n)| json!([from, to, n]))
        .collect();
    json!({
        "trace_count": index.trace_count(),
        "span_keys": index.keys(Scope::Span),
        "resource_keys": index.keys(Scope::Resource),
        "operations": index.operations(),
        "service_calls": calls,
        "summaries": summaries,
    })
}

/// Everything the readers of today see in a version directory.
async fn read_version(golden: &Path) -> Value {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bucket = tmp.path().join("bucket");
    std::fs::create_dir_all(&bucket).expect("bucket dir");

    // The block: data, bloom and tag index.
    let (store, meta) = bucket_with_block(&bucket, golden).await;
    let spans = BlockReader::open(store.clone(), meta.clone())
        .read_all()
        .await
        .expect("the golden block reads");
    let ids = trace_ids(&spans);
    let bloom = BloomFilter::from_bytes(&read(&golden.join(BLOCK_DIR).join(names::BLOOM)))
        .expect("the golden bloom filter reads");
    assert_eq!(Some(bloom.num_blocks()), meta.files.bloom_blocks);
    for id in &ids {
        assert!(bloom.may_contain(id), "the bloom filter holds {id}");
    }
    let bundle = read(&golden.join(BLOCK_DIR).join(names::INDEX));
    let index = match IndexLayout::of_bundle(&bundle) {
        Some(layout) if layout == IndexLayout::current() => index_json(&bundle, tmp.path()),
        // An index of an older layout is rebuilt by the compactor, not read.
        other => json!({ "layout": other.map(|l| l.0) }),
    };

    // The write-ahead log, replayed by an ingester.
    let wal_dir = tmp.path().join("wal");
    std::fs::create_dir_all(&wal_dir).expect("wal dir");
    for entry in std::fs::read_dir(golden.join(WAL_DIR)).expect("golden wal dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), wal_dir.join(entry.file_name())).expect("copy segment");
    }
    let ingester = Ingester::open(
        IngesterConfig {
            wal_dir,
            ..Default::default()
        },
        StorageConfig::Memory {}.open().expect("memory store"),
    )
    .await
    .expect("the golden WAL replays");
    let mut wal = BTreeMap::new();
    for id in &ids {
        let spans = ingester.find_trace(&tenant(), id).await.expect("find");
        wal.insert(id.to_string(), spans_json(spans));
    }
    drop(ingester);

    // The tenant index and the overrides object.
    let bytes = read(&golden.join(TENANT_INDEX));
    let index_doc = TenantIndex::decode(&bytes, "golden tenant index").expect("tenant index");
    assert_eq!(index_doc.blocks, vec![meta.clone()]);
    let overrides =
        TenantOverrides::from_json(&read(&golden.join(OVERRIDES))).expect("overrides object");

    json!({
        "meta": serde_json::from_slice::<Value>(&meta.to_json()).expect("meta JSON"),
        "block": spans_json(spans),
        "index": index,
        "wal": wal,
        "tenant_index": serde_json::to_value(&index_doc).expect("tenant index JSON"),
        "overrides": overrides.to_value(),
    })
}

#[tokio::test]
async fn every_readable_version_reads_back_as_committed() {
    let input = spans_json(input_spans());
    for &v in FormatVersion::READABLE {
        let golden = version_dir(v);
        assert!(
            golden.is_dir(),
            "format {v} is readable but has no golden artefacts in {}",
            golden.display()
        );
        let got = read_version(&golden).await;
        let expected: Value =
            serde_json::from_slice(&read(&golden.join(EXPECTED))).expect("expected.json is JSON");
        let mut diff = Vec::new();
        crate::common::otlp::json_diff("", &expected, &got, &mut diff);
        assert!(
            diff.is_empty(),
            "format {v}: what today's readers see differs from {}:\n{}",
            golden.join(EXPECTED).display(),
            diff.join("\n")
        );
        // And it is what was written: the fixtures, through the block and through the WAL.
        assert_eq!(
            got["block"], input,
            "format {v}: the block holds the fixtures"
        );
        let mut from_wal = Vec::new();
        for trace in got["wal"].as_object().expect("wal traces").values() {
            let data: TracesData = serde_json::from_value(trace.clone()).expect("OTLP/JSON");
            from_wal.extend(spans_from_otlp(data.resource_spans));
        }
        assert_eq!(
            spans_json(from_wal),
            input,
            "format {v}: the WAL holds the fixtures"
        );
        assert_eq!(got["overrides"], json!({ "retention": "14d" }));
    }
}

/// The version table of `docs/block-format.md`: one row per version with the headers of
/// its artefacts.
#[derive(Debug)]
struct DocRow {
    version: String,
    meta_version: u32,
    bloom: String,
    index: String,
    wal: String,
    tenant_index: u32,
}

fn doc_rows() -> Vec<DocRow> {
    let doc = std::fs::read_to_string(root().join("docs/block-format.md")).expect("doc");
    let table = doc
        .split("<!-- format-versions -->")
        .nth(1)
        .expect("docs/block-format.md has a <!-- format-versions --> table");
    table
        .lines()
        .filter(|l| {
            l.strip_prefix("| v")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(|l| {
            let cells: Vec<String> = l
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .collect();
            assert_eq!(cells.len(), 7, "row {l:?}");
            DocRow {
                version: cells[0].clone(),
                meta_version: cells[1].parse().expect("meta.json format_version"),
                bloom: cells[2].clone(),
                index: cells[3].clone(),
                wal: cells[4].clone(),
                tenant_index: cells[5].parse().expect("tenant index version"),
            }
        })
        .collect()
}

/// `SKBF 1` → the bytes `SKBF\x01`.
fn magic_and_version(cell: &str) -> Vec<u8> {
    let (magic, version) = cell.split_once(' ').expect("magic and version");
    let mut bytes = magic.as_bytes().to_vec();
    bytes.push(version.parse().expect("a version byte"));
    bytes
}

#[test]
fn the_format_document_matches_the_goldens() {
    let rows = doc_rows();
    let documented: Vec<&str> = rows.iter().map(|r| r.version.as_str()).collect();
    let readable: Vec<String> = FormatVersion::READABLE
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(
        documented, readable,
        "docs/block-format.md lists the readable versions"
    );
    let mut committed: Vec<String> = std::fs::read_dir(root().join("tests/golden"))
        .expect("tests/golden")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    assert_eq!(
        committed, readable,
        "tests/golden holds the readable versions"
    );

    for (row, v) in rows.iter().zip(FormatVersion::READABLE) {
        let golden = version_dir(*v);
        let meta = BlockMeta::from_json(&read(&golden.join(BLOCK_DIR).join(names::META)), "meta")
            .expect("meta");
        assert_eq!(meta.format_version, row.meta_version, "{row:?}");
        assert_eq!(meta.format_version, v.number(), "{row:?}");
        let bloom = read(&golden.join(BLOCK_DIR).join(names::BLOOM));
        assert!(bloom.starts_with(&magic_and_version(&row.bloom)), "{row:?}");
        let index = read(&golden.join(BLOCK_DIR).join(names::INDEX));
        assert!(index.starts_with(row.index.as_bytes()), "{row:?}");
        assert_eq!(
            IndexLayout::of_bundle(&index),
            Some(v.index_layout()),
            "{row:?}"
        );
        let segment = std::fs::read_dir(golden.join(WAL_DIR))
            .expect("wal dir")
            .next()
            .expect("a segment")
            .expect("entry")
            .path();
        assert!(
            read(&segment).starts_with(&magic_and_version(&row.wal)),
            "{row:?}"
        );
        let tenant_index =
            TenantIndex::decode(&read(&golden.join(TENANT_INDEX)), "tenant index").expect("read");
        assert_eq!(tenant_index.version, row.tenant_index, "{row:?}");
    }
}

/// The valid part of a WAL segment: its header and whole records, without the zeroed space
/// a writer may have reserved after them.
fn trim_segment(bytes: &[u8]) -> &[u8] {
    let scan = skein_format::wal::scan_records(bytes);
    let end = scan
        .records
        .last()
        .map_or(skein_format::wal::SEGMENT_HEADER_LEN as usize, |r| r.end);
    &bytes[..end]
}

/// Writes the golden artefacts of the current version (see the module doc). Not a test:
/// ignored unless asked for, and then only with `SKEIN_GOLDEN_WRITE` set.
#[tokio::test]
#[ignore = "writes the goldens of a new format version; see the module doc"]
async fn write_current_version() {
    assert!(
        std::env::var_os("SKEIN_GOLDEN_WRITE").is_some(),
        "set SKEIN_GOLDEN_WRITE=1 to write the goldens of a new format version"
    );
    let v = FormatVersion::CURRENT;
    let golden = version_dir(v);
    assert!(
        !golden.exists(),
        "{} exists: goldens of a released version never change",
        golden.display()
    );
    let t = tenant();

    // A compacted block with its tag index.
    let block = encode_block(
        &t,
        input_spans(),
        &WriteOptions {
            tag_index: true,
            compaction_level: 1,
            ..Default::default()
        },
    )
    .expect("encode");
    let dir = golden.join(BLOCK_DIR);
    std::fs::create_dir_all(&dir).expect("block dir");
    let index = block.index.clone().expect("index");
    for (name, bytes) in [
        (names::DATA, block.data.to_vec()),
        (names::BLOOM, block.bloom.to_vec()),
        (names::INDEX, index.to_vec()),
        (names::META, block.meta.to_json()),
    ] {
        std::fs::write(dir.join(name), bytes).expect("write");
    }

    // The write-ahead log of an ingester that accepted the fixtures.
    let tmp = tempfile::tempdir().expect("tempdir");
    let ingester = Ingester::open(
        IngesterConfig {
            wal_dir: tmp.path().join("wal"),
            ..Default::default()
        },
        StorageConfig::Memory {}.open().expect("memory"),
    )
    .await
    .expect("open");
    for body in input_bodies() {
        let request = skein_ingester::otlp_json::decode_export_request(&body).expect("fixture");
        ingester
            .push(&t, request, body.len(), None, "http")
            .await
            .expect("push");
    }
    drop(ingester);
    std::fs::create_dir_all(golden.join(WAL_DIR)).expect("wal dir");
    for entry in std::fs::read_dir(tmp.path().join("wal")).expect("wal") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".wal") {
            let bytes = read(&entry.path());
            std::fs::write(golden.join(WAL_DIR).join(&name), trim_segment(&bytes)).expect("wal");
        }
    }

    // The tenant index listing the block, and an overrides object.
    let doc = TenantIndex::new(block.meta.created_at_unix_secs, vec![block.meta.clone()]);
    std::fs::write(golden.join(TENANT_INDEX), doc.encode().expect("encode")).expect("write");
    let overrides = TenantOverrides {
        retention: Some(std::time::Duration::from_secs(14 * 86_400)),
    };
    std::fs::write(
        golden.join(OVERRIDES),
        serde_json::to_vec_pretty(&overrides.to_value()).expect("json"),
    )
    .expect("write");

    // What today's readers see: the expected document.
    let expected = read_version(&golden).await;
    std::fs::write(
        golden.join(EXPECTED),
        serde_json::to_vec_pretty(&expected).expect("json"),
    )
    .expect("write");
}
