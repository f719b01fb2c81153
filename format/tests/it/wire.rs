//! A block encoded from requests' protobuf bytes (`encode_block_wire`, what an ingester
//! writes) holds exactly what a block encoded from the decoded spans holds.

use std::sync::Arc;

use prost::Message;
use skein_format::block::{WriteOptions, encode_block, encode_block_wire};
use skein_format::model::{ResourceInfo, ScopeInfo, SpanRecord, spans_from_otlp, spans_to_otlp};
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::otlp::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::Status;
use skein_format::otlp::trace::v1::span::{Event, Link};
use skein_format::wire::read_export_request;
use skein_format::{BlockReader, BlockWriter, TenantId};
use skein_storage::StorageConfig;
use skein_testkit::synth::TraceGenerator;

fn kv(key: &str, value: Option<Value>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.map(|v| AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// Spans with every kind of value and field the generator does not make.
fn odd_spans() -> Vec<SpanRecord> {
    let mut g = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1_000_000);
    let mut spans = g.spans(400);
    let odd_resource = Arc::new(ResourceInfo {
        resource: Resource {
            attributes: vec![
                kv("service.name", Some(Value::IntValue(7))),
                kv("service.name", Some(Value::StringValue("second".into()))),
                kv("host", None),
            ],
            dropped_attributes_count: 3,
            entity_refs: vec![EntityRef {
                schema_url: "s".into(),
                r#type: "service".into(),
                id_keys: vec!["service.name".into()],
                description_keys: vec![],
            }],
        },
        schema_url: "https://example.com/r".into(),
    });
    let odd_scope = Arc::new(ScopeInfo {
        scope: InstrumentationScope {
            name: "lib".into(),
            version: "9".into(),
            attributes: vec![kv("scope.flag", Some(Value::BoolValue(true)))],
            dropped_attributes_count: 1,
        },
        schema_url: "https://example.com/s".into(),
    });
    for (i, s) in spans.iter_mut().enumerate() {
        match i % 6 {
            0 => {
                s.span.attributes.push(kv(
                    "list",
                    Some(Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(Value::StringValue("a".into())),
                            },
                            AnyValue { value: None },
                        ],
                    })),
                ));
                s.span.attributes.push(kv(
                    "map",
                    Some(Value::KvlistValue(KeyValueList {
                        values: vec![kv("inner", Some(Value::DoubleValue(1.5)))],
                    })),
                ));
            }
            1 => {
                s.span
                    .attributes
                    .push(kv("raw", Some(Value::BytesValue(vec![0, 1, 2]))));
                s.span.attributes.push(kv("absent", None));
                s.span.attributes.push(KeyValue {
                    key: "empty".into(),
                    value: Some(AnyValue { value: None }),
                    ..Default::default()
                });
                s.span
                    .attributes
                    .push(kv("idx", Some(Value::StringValueStrindex(4))));
            }
            2 => {
                s.span.events.push(Event {
                    time_unix_nano: s.span.start_time_unix_nano + 5,
                    name: "ev".into(),
                    attributes: vec![kv("n", Some(Value::IntValue(-9)))],
                    dropped_attributes_count: 2,
                });
                s.span.links.push(Link {
                    trace_id: vec![9; 16],
                    span_id: vec![8; 8],
                    trace_state: "k=v".into(),
                    attributes: vec![kv("l", Some(Value::StringValue("x".into())))],
                    dropped_attributes_count: 1,
                    flags: 0x301,
                });
                s.span.dropped_attributes_count = 4;
                s.span.dropped_events_count = 5;
                s.span.dropped_links_count = 6;
                s.span.flags = 0x101;
                s.span.trace_state = "a=b".into();
            }
            3 => {
                s.resource = Arc::clone(&odd_resource);
                s.scope = Arc::clone(&odd_scope);
                s.span.status = Some(Status {
                    message: "bad".into(),
                    code: 2,
                });
            }
            _ => {}
        }
    }
    spans
}

#[tokio::test]
async fn a_block_from_protobuf_bytes_is_the_block_from_decoded_spans() {
    let store = StorageConfig::Memory {}.open().unwrap();
    let tenant = TenantId::new("wire").unwrap();
    for spans in [
        TraceGenerator::new(11, 1_750_000_000_000_000_000, 1_000_000).spans(3_000),
        TraceGenerator::new(12, 1_750_000_000_000_000_000, 1_000_000)
            .lean()
            .spans(3_000),
        odd_spans(),
    ] {
        // As an ingester holds them: several requests.
        let bodies: Vec<Vec<u8>> = spans
            .chunks(700)
            .map(|c| {
                ExportTraceServiceRequest {
                    resource_spans: spans_to_otlp(c.to_vec()),
                }
                .encode_to_vec()
            })
            .collect();
        let decoded: Vec<SpanRecord> = bodies
            .iter()
            .flat_map(|b| {
                spans_from_otlp(
                    ExportTraceServiceRequest::decode(b.as_slice())
                        .unwrap()
                        .resource_spans,
                )
            })
            .collect();
        let views: Vec<_> = bodies
            .iter()
            .map(|b| read_export_request(b).expect("a canonical request reads in place"))
            .collect();
        let refs: Vec<_> = views.iter().flatten().collect();
        assert_eq!(refs.len(), decoded.len());

        let opts = WriteOptions::default();
        let a = encode_block(&tenant, decoded, &opts).unwrap();
        let b = encode_block_wire(&tenant, refs, &opts).unwrap();
        assert_eq!(a.meta.span_count, b.meta.span_count);
        assert_eq!(a.meta.row_groups, b.meta.row_groups);
        assert_eq!(a.bloom, b.bloom);
        let writer = BlockWriter::new(store.clone());
        let (ma, mb) = (
            writer.upload(a).await.unwrap(),
            writer.upload(b).await.unwrap(),
        );
        let ra = BlockReader::open(store.clone(), ma)
            .read_all()
            .await
            .unwrap();
        let rb = BlockReader::open(store.clone(), mb)
            .read_all()
            .await
            .unwrap();
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(x, y);
        }
    }
}

#[test]
fn requests_prost_would_merge_are_declined() {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let spans = TraceGenerator::new(1, 1_750_000_000_000_000_000, 1_000_000).spans(3);
    let rs = spans_to_otlp(spans).remove(0);
    // One ResourceSpans whose `resource` is given twice (an empty one after it): prost merges
    // the two, which reading in place does not follow.
    let mut inner = rs.encode_to_vec();
    inner.extend_from_slice(&[0x0a, 0x00]);
    let mut body = Vec::new();
    encode_key(1, WireType::LengthDelimited, &mut body);
    encode_varint(inner.len() as u64, &mut body);
    body.extend_from_slice(&inner);
    assert!(ExportTraceServiceRequest::decode(body.as_slice()).is_ok());
    assert!(read_export_request(&body).is_none());
    // Without the second one it reads.
    let plain = ExportTraceServiceRequest {
        resource_spans: vec![rs],
    }
    .encode_to_vec();
    let expected: usize = ExportTraceServiceRequest::decode(plain.as_slice())
        .unwrap()
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    assert_eq!(read_export_request(&plain).map(|v| v.len()), Some(expected));
}
