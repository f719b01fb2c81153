//! Reading part of each span gives exactly what reading whole spans and stripping the other
//! parts gives, for every combination of parts, so that pieces of a trace read in part and
//! whole still merge (identical copies compare equal).

use skein_format::block::{EncodeOptions, Keys, SpanParts, WriteOptions};
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::trace::v1::span::Link;
use skein_format::{BlockReader, BlockWriter, TenantId, TraceId};
use skein_storage::StorageConfig;
use skein_testkit::spans::kv;
use skein_testkit::synth::TraceGenerator;

#[tokio::test]
async fn a_partial_read_is_a_stripped_whole_read() {
    let store = StorageConfig::Memory {}.open().unwrap();
    let mut spans = TraceGenerator::new(5, 1_750_000_000_000_000_000, 5_000_000).spans(3_000);
    // Links and odd resource values the generator does not make.
    for (i, s) in spans.iter_mut().enumerate().step_by(7) {
        s.span.links.push(Link {
            trace_id: vec![7; 16],
            span_id: vec![i as u8; 8],
            attributes: vec![kv("link.kind", Value::StringValue("follows".into()))],
            ..Default::default()
        });
    }
    let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id().unwrap()).collect();
    ids.sort();
    ids.dedup();
    let opts = WriteOptions {
        encode: EncodeOptions {
            row_group_rows: 500,
            ..Default::default()
        },
        ..Default::default()
    };
    let meta = BlockWriter::new(store.clone())
        .write_with(&TenantId::new("parts").unwrap(), spans, opts)
        .await
        .unwrap();
    let reader = BlockReader::open(store, meta);
    let wanted: Vec<TraceId> = ids.iter().step_by(3).copied().collect();
    let whole = reader.find_traces_unchecked(&wanted).await.unwrap();
    assert_eq!(whole.len(), wanted.len());
    let keys = |n: u8| match n % 3 {
        0 => Keys::None,
        // A dedicated column, a generic attribute and an absent one.
        1 => Keys::Only(
            [
                "http.route",
                "host.name",
                "thread.id",
                "process.pid",
                "nothing",
            ]
            .map(str::to_owned)
            .into(),
        ),
        _ => Keys::All,
    };
    for bits in 0..144u8 {
        let parts = SpanParts {
            span_attrs: keys(bits),
            events: bits & 4 != 0,
            links: bits & 8 != 0,
            resource: keys(bits / 3),
            scope: bits & 16 != 0,
            extras: bits & 32 != 0,
        };
        let partial = reader
            .find_traces_parts(&wanted, parts.clone())
            .await
            .unwrap();
        assert_eq!(partial.len(), whole.len(), "{parts:?}");
        for (id, spans) in &whole {
            let mut want = spans.clone();
            want.iter_mut().for_each(|s| parts.strip(s));
            let got = &partial[id];
            assert_eq!(got.len(), want.len(), "{parts:?}");
            for (a, b) in got.iter().zip(&want) {
                assert_eq!(a, b, "{parts:?}");
            }
        }
    }
}

/// The tag index knows each trace's rows in the data; reading by those rows gives what
/// reading by ID gives, and rows that do not hold their trace fall back to reading by ID.
#[tokio::test]
async fn reading_at_the_index_rows_is_reading_by_id() {
    use object_store::ObjectStoreExt;
    use skein_format::layout::{block_object, names};
    use skein_format::tagindex::{self, TagIndex};

    let store = StorageConfig::Memory {}.open().unwrap();
    let spans = TraceGenerator::new(9, 1_750_000_000_000_000_000, 5_000_000).spans(4_000);
    let tenant = TenantId::new("rows").unwrap();
    let opts = WriteOptions {
        encode: EncodeOptions {
            row_group_rows: 700,
            ..Default::default()
        },
        tag_index: true,
        ..Default::default()
    };
    let meta = BlockWriter::new(store.clone())
        .write_with(&tenant, spans, opts)
        .await
        .unwrap();
    assert!(
        meta.row_groups.len() > 3,
        "{} row groups",
        meta.row_groups.len()
    );
    let bundle = store
        .get(&block_object(&tenant, meta.block_id, names::INDEX))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    tagindex::unpack(&bundle, dir.path(), "test").unwrap();
    let index = TagIndex::open(dir.path(), "test").unwrap();
    let reader = BlockReader::open(store, meta);
    let parts = SpanParts {
        span_attrs: Keys::None,
        resource: Keys::None,
        ..Default::default()
    };

    // The rows the index names hold exactly their trace.
    let batches = reader.read_columns(&["trace_id"]).await.unwrap();
    let mut column: Vec<[u8; 16]> = Vec::new();
    for b in &batches {
        let ids = b
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::FixedSizeBinaryArray>()
            .unwrap();
        column.extend(
            ids.iter()
                .map(|v| <[u8; 16]>::try_from(v.unwrap()).unwrap()),
        );
    }
    let mut covered = 0;
    for o in 0..index.trace_count() as u32 {
        let (id, rows) = (index.summary(o).unwrap().trace_id, index.rows(o).unwrap());
        let held = &column[rows.start as usize..rows.end as usize];
        assert!(
            !held.is_empty() && held.iter().all(|r| *r == id.0),
            "trace {o}"
        );
        covered += held.len();
    }
    assert_eq!(covered, column.len());

    // Every third trace of the index (they sit in every row group), and every trace.
    for step in [3, 1] {
        let at: Vec<(TraceId, std::ops::Range<u64>)> = (0..index.trace_count() as u32)
            .step_by(step)
            .map(|o| (index.summary(o).unwrap().trace_id, index.rows(o).unwrap()))
            .collect();
        let ids: Vec<TraceId> = at.iter().map(|(id, _)| *id).collect();
        let by_id = reader.find_traces_parts(&ids, parts.clone()).await.unwrap();
        assert_eq!(by_id.len(), at.len());
        let by_rows = reader.find_traces_at(&at, parts.clone()).await.unwrap();
        assert_eq!(by_rows, by_id, "step {step}");
    }

    // Rows of another trace, rows past the end, empty rows: still the right traces.
    let o = |i: u32| (index.summary(i).unwrap().trace_id, index.rows(i).unwrap());
    let (a, b) = (o(0), o(1));
    let wrong = vec![(a.0, b.1.clone()), (b.0, a.1.clone())];
    let past = vec![(a.0, 1_000_000..1_000_005)];
    let empty = vec![(a.0, a.1.start..a.1.start)];
    for at in [wrong, past, empty] {
        let ids: Vec<TraceId> = at.iter().map(|(id, _)| *id).collect();
        let by_id = reader.find_traces_parts(&ids, parts.clone()).await.unwrap();
        let by_rows = reader.find_traces_at(&at, parts.clone()).await.unwrap();
        assert_eq!(by_rows, by_id, "{at:?}");
    }
}
