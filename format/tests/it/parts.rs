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
