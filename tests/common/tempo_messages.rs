//! The Tempo API's messages as a client reads them, written from Tempo's documented HTTP API
//! and `tempopb` message list, independently of the server's own definitions: every struct
//! refuses unknown fields, so an answer with a field the message does not define fails to
//! decode, as it does in Grafana's strict protobuf-JSON decoding.
//!
//! Protobuf JSON: names in camelCase, 64-bit integers as strings, fields at their zero value
//! may be left out (hence the defaults).

#![allow(dead_code)] // fields are read by assertions as each test needs them

use std::collections::BTreeMap;

use serde::Deserialize;

/// `SearchResponse`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchResponse {
    #[serde(default)]
    pub traces: Vec<TraceSearchMetadata>,
    #[serde(default)]
    pub metrics: Option<SearchMetrics>,
}

/// `TraceSearchMetadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(default)]
    pub root_service_name: String,
    #[serde(default)]
    pub root_trace_name: String,
    #[serde(default)]
    pub start_time_unix_nano: U64String,
    #[serde(default)]
    pub duration_ms: u32,
    #[serde(default)]
    pub span_set: Option<SpanSet>,
    #[serde(default)]
    pub span_sets: Vec<SpanSet>,
    #[serde(default)]
    pub service_stats: BTreeMap<String, ServiceStats>,
}

/// `ServiceStats`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceStats {
    #[serde(default)]
    pub span_count: u32,
    #[serde(default)]
    pub error_count: u32,
}

/// `SpanSet`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpanSet {
    #[serde(default)]
    pub spans: Vec<Span>,
    #[serde(default)]
    pub matched: u32,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
}

/// `Span` of a spanset.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub start_time_unix_nano: U64String,
    #[serde(default)]
    pub duration_nanos: U64String,
    #[serde(default)]
    pub attributes: Vec<KeyValue>,
}

/// OTLP `KeyValue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: Option<AnyValue>,
}

/// OTLP `AnyValue`: exactly one of its fields.
#[allow(clippy::enum_variant_names)] // the variants are the message's field names
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum AnyValue {
    StringValue(String),
    BoolValue(bool),
    IntValue(U64String),
    DoubleValue(f64),
}

/// A 64-bit integer, which protobuf JSON writes as a string (a number is accepted on read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct U64String(pub i128);

impl<'de> Deserialize<'de> for U64String {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map(U64String).map_err(serde::de::Error::custom),
            Either::N(n) => Ok(U64String(n.into())),
        }
    }
}

/// `SearchMetrics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchMetrics {
    #[serde(default)]
    pub inspected_traces: u32,
    #[serde(default)]
    pub inspected_bytes: U64String,
    #[serde(default)]
    pub total_blocks: u32,
    #[serde(default)]
    pub completed_jobs: u32,
    #[serde(default)]
    pub total_jobs: u32,
    #[serde(default)]
    pub total_block_bytes: U64String,
    #[serde(default)]
    pub inspected_spans: U64String,
}

/// `MetadataMetrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetadataMetrics {
    #[serde(default)]
    pub inspected_bytes: U64String,
    #[serde(default)]
    pub total_jobs: u32,
    #[serde(default)]
    pub completed_jobs: u32,
    #[serde(default)]
    pub total_blocks: u32,
    #[serde(default)]
    pub total_block_bytes: U64String,
}

/// `SearchTagsV2Response`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchTagsV2Response {
    #[serde(default)]
    pub scopes: Vec<SearchTagsV2Scope>,
    #[serde(default)]
    pub metrics: Option<MetadataMetrics>,
}

/// `SearchTagsV2Scope`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchTagsV2Scope {
    pub name: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// `SearchTagValuesV2Response`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SearchTagValuesV2Response {
    #[serde(default)]
    pub tag_values: Vec<TagValue>,
    #[serde(default)]
    pub metrics: Option<MetadataMetrics>,
}

/// `TagValue`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagValue {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// Tempo's build information (Prometheus's shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

/// `TraceByIDResponse` in protobuf: the trace (OTLP `TracesData` on the wire), the metrics,
/// and the status of a partial answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<opentelemetry_proto::tonic::trace::v1::TracesData>,
    #[prost(message, optional, tag = "2")]
    pub metrics: Option<TraceByIdMetrics>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `TraceByIDMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TraceByIdMetrics {
    #[prost(uint64, tag = "1")]
    pub inspected_bytes: u64,
}
