//! Property test: random OTLP traces → block → read back → equal to the input.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use skein_format::model::{canonical, spans_from_otlp, spans_to_otlp};
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use skein_format::{BlockReader, BlockWriter, TenantId, TraceId};
use skein_storage::StorageConfig;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z._]{0,12}",
        1 => Just(String::new()),
        1 => "\\PC{0,20}",                       // any unicode
        1 => Just("ünïcødé 🚀 日本語".to_string()),
        1 => (1000usize..20000).prop_map(|n| "x".repeat(n)), // huge values
    ]
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    let leaf = prop_oneof![
        text().prop_map(Value::StringValue),
        any::<bool>().prop_map(Value::BoolValue),
        any::<i64>().prop_map(Value::IntValue),
        // NaN never equals itself; the storage keeps its bits, but the comparison can't.
        any::<f64>()
            .prop_filter("not NaN", |f| !f.is_nan())
            .prop_map(Value::DoubleValue),
        vec(any::<u8>(), 0..40).prop_map(Value::BytesValue),
    ]
    .prop_map(|v| AnyValue { value: Some(v) });
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values }))
            }),
            vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList {
                    values: kvs
                        .into_iter()
                        .map(|(key, v)| KeyValue {
                            key,
                            value: Some(v),
                            ..Default::default()
                        })
                        .collect()
                }))
            }),
        ]
    })
}

fn key_value() -> impl Strategy<Value = KeyValue> {
    let key = prop_oneof![
        4 => "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
        // Keys with dedicated columns, with right and wrong value types.
        1 => prop::sample::select(vec![
            "http.method", "http.status_code", "http.response.status_code", "db.system",
            "service.name", "service.version", "url.full", "rpc.method", "error.type",
        ]).prop_map(str::to_owned),
        1 => text(),
    ];
    let value = prop_oneof![
        8 => any_value().prop_map(Some),
        1 => Just(Some(AnyValue { value: None })),
        1 => Just(None),
    ];
    (key, value).prop_map(|(key, value)| KeyValue {
        key,
        value,
        ..Default::default()
    })
}

fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    vec(key_value(), 0..8)
}

fn resource() -> impl Strategy<Value = (Resource, String)> {
    (
        attrs(),
        any::<u32>(),
        "[a-z]{1,6}",
        vec("[a-z]{1,4}", 0..3),
        prop::bool::weighted(0.2),
        text(),
    )
        .prop_map(
            |(mut attributes, dropped, service, keys, with_refs, schema_url)| {
                attributes.push(KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service)),
                    }),
                    ..Default::default()
                });
                let entity_refs = if with_refs {
                    vec![EntityRef {
                        schema_url: "https://example.com".into(),
                        r#type: "service".into(),
                        id_keys: keys.clone(),
                        description_keys: keys,
                    }]
                } else {
                    vec![]
                };
                (
                    Resource {
                        attributes,
                        dropped_attributes_count: dropped,
                        entity_refs,
                    },
                    schema_url,
                )
            },
        )
}

fn scope() -> impl Strategy<Value = (InstrumentationScope, String)> {
    (text(), text(), attrs(), any::<u32>(), text()).prop_map(
        |(name, version, attributes, dropped, url)| {
            (
                InstrumentationScope {
                    name,
                    version,
                    attributes,
                    dropped_attributes_count: dropped,
                },
                url,
            )
        },
    )
}

fn event() -> impl Strategy<Value = span::Event> {
    (any::<u64>(), text(), attrs(), any::<u32>()).prop_map(|(t, name, attributes, dropped)| {
        span::Event {
            time_unix_nano: t,
            name,
            attributes,
            dropped_attributes_count: dropped,
        }
    })
}

fn link() -> impl Strategy<Value = span::Link> {
    (
        vec(any::<u8>(), 16),
        vec(any::<u8>(), 8),
        text(),
        attrs(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped, flags)| span::Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count: dropped,
                flags,
            },
        )
}

/// Spans of a few traces; parents point at other spans of the trace, at spans that are not
/// there, or nowhere.
fn spans(trace_ids: Vec<[u8; 16]>) -> impl Strategy<Value = Vec<Span>> {
    let n = trace_ids.len();
    vec(
        (
            0..n,
            any::<[u8; 8]>(),
            prop_oneof![
                Just(None),
                any::<[u8; 8]>().prop_map(Some),
                (0usize..64).prop_map(|i| Some([i as u8; 8]))
            ],
            (text(), any::<u32>(), text(), -1i32..7),
            (any::<u64>(), any::<u64>()),
            attrs(),
            vec(event(), 0..3),
            vec(link(), 0..2),
            (any::<u32>(), any::<u32>(), any::<u32>()),
            prop_oneof![
                Just(None),
                (0i32..3, text()).prop_map(|(code, message)| Some(Status { message, code }))
            ],
        ),
        1..30,
    )
    .prop_map(move |raw| {
        raw.into_iter()
            .enumerate()
            .map(
                |(
                    i,
                    (
                        t,
                        sid,
                        parent,
                        (trace_state, flags, name, kind),
                        (start, end),
                        attributes,
                        events,
                        links,
                        dropped,
                        status,
                    ),
                )| {
                    // Reuse small span IDs sometimes, so parents resolve and IDs collide.
                    let span_id = if i % 3 == 0 { [i as u8 % 64; 8] } else { sid };
                    Span {
                        trace_id: trace_ids[t].to_vec(),
                        span_id: span_id.to_vec(),
                        trace_state,
                        parent_span_id: parent.map(|p| p.to_vec()).unwrap_or_default(),
                        flags,
                        name,
                        kind,
                        start_time_unix_nano: start,
                        end_time_unix_nano: end,
                        attributes,
                        dropped_attributes_count: dropped.0,
                        events,
                        dropped_events_count: dropped.1,
                        links,
                        dropped_links_count: dropped.2,
                        status,
                    }
                },
            )
            .collect()
    })
}

fn otlp_batch() -> impl Strategy<Value = Vec<ResourceSpans>> {
    vec(any::<[u8; 16]>(), 1..5)
        .prop_flat_map(|ids| (vec((resource(), vec(scope(), 1..3)), 1..4), spans(ids)))
        .prop_map(|(resources, spans)| {
            // Deal the spans out over the resources and scopes.
            let slots: Vec<(usize, usize)> = resources
                .iter()
                .enumerate()
                .flat_map(|(r, (_, scopes))| (0..scopes.len()).map(move |s| (r, s)))
                .collect();
            let mut out: Vec<ResourceSpans> = resources
                .into_iter()
                .map(|((resource, url), scopes)| ResourceSpans {
                    resource: Some(resource),
                    schema_url: url,
                    scope_spans: scopes
                        .into_iter()
                        .map(|(scope, url)| ScopeSpans {
                            scope: Some(scope),
                            spans: vec![],
                            schema_url: url,
                        })
                        .collect(),
                })
                .collect();
            for (i, s) in spans.into_iter().enumerate() {
                let (r, sc) = slots[i % slots.len()];
                out[r].scope_spans[sc].spans.push(s);
            }
            out
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn otlp_block_otlp_is_lossless(input in otlp_batch()) {
        let rt = runtime();
        let store = StorageConfig::Memory {}.open().unwrap();
        let tenant = TenantId::new("prop").unwrap();
        let spans = spans_from_otlp(input.clone());
        let meta = rt.block_on(BlockWriter::new(store.clone()).write(&tenant, spans)).unwrap();
        let reader = BlockReader::open(store, meta.clone());

        // Everything, through the full scan.
        let all = rt.block_on(reader.read_all()).unwrap();
        prop_assert_eq!(canonical(spans_to_otlp(all)), canonical(input.clone()));

        // Every trace, through the lookup by ID.
        let mut ids: Vec<Vec<u8>> = input.iter()
            .flat_map(|rs| rs.scope_spans.iter().flat_map(|ss| ss.spans.iter().map(|s| s.trace_id.clone())))
            .collect();
        ids.sort();
        ids.dedup();
        prop_assert_eq!(meta.trace_count as usize, ids.len());
        for id in ids {
            let tid = TraceId::from_bytes(&id).unwrap();
            let found = rt.block_on(reader.find_trace(&tid)).unwrap();
            let expected: Vec<ResourceSpans> = input.iter().map(|rs| ResourceSpans {
                scope_spans: rs.scope_spans.iter().map(|ss| ScopeSpans {
                    spans: ss.spans.iter().filter(|s| s.trace_id == id).cloned().collect(),
                    ..ss.clone()
                }).collect(),
                ..rs.clone()
            }).collect();
            prop_assert_eq!(canonical(spans_to_otlp(found)), canonical(expected));
        }
    }
}

#[test]
fn records_from_one_block_share_resources() {
    let rt = runtime();
    let store = StorageConfig::Memory {}.open().unwrap();
    let tenant = TenantId::new("t").unwrap();
    let input = vec![ResourceSpans {
        resource: Some(Resource::default()),
        scope_spans: vec![ScopeSpans {
            scope: None,
            spans: (0..10u8)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: vec![i + 1; 8],
                    ..Default::default()
                })
                .collect(),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }];
    let meta = rt
        .block_on(BlockWriter::new(store.clone()).write(&tenant, spans_from_otlp(input)))
        .unwrap();
    let all = rt
        .block_on(BlockReader::open(store, meta).read_all())
        .unwrap();
    assert_eq!(all.len(), 10);
    assert!(
        all.windows(2)
            .all(|w| Arc::ptr_eq(&w[0].resource, &w[1].resource))
    );
}
