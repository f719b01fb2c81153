//! The JSON messages of the Tempo search API, as Tempo's documented `tempopb` messages encode
//! them in protobuf JSON: camelCase names, 64-bit integers as strings, fields holding their
//! zero value left out. Grafana's Tempo data source decodes them strictly, so these structs
//! hold exactly the fields the messages define and nothing of Skein's own.

use serde::Serialize;
use skein_traceql::Value;

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_str(v: &str) -> bool {
    v.is_empty() || v == "0"
}

/// `SearchResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchResponse {
    pub(crate) traces: Vec<TraceSearchMetadata>,
    pub(crate) metrics: SearchMetrics,
}

/// `TraceSearchMetadata`: one trace of a search answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    pub(crate) trace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) root_service_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) root_trace_name: String,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) start_time_unix_nano: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) duration_ms: u32,
    /// The first of `span_sets` (kept for clients that read only it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) span_set: Option<SpanSet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) span_sets: Vec<SpanSet>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) service_stats: std::collections::BTreeMap<String, ServiceStats>,
}

/// `ServiceStats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceStats {
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) span_count: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) error_count: u32,
}

/// `SpanSet`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SpanSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) spans: Vec<Span>,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) matched: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) attributes: Vec<KeyValue>,
}

/// `Span` of a spanset.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Span {
    #[serde(rename = "spanID")]
    pub(crate) span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub(crate) name: String,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) start_time_unix_nano: String,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) duration_nanos: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) attributes: Vec<KeyValue>,
}

/// OTLP `KeyValue` in protobuf JSON.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct KeyValue {
    pub(crate) key: String,
    pub(crate) value: AnyValue,
}

/// OTLP `AnyValue` in protobuf JSON: one of the typed fields.
#[allow(clippy::enum_variant_names)] // the variants are the message's field names
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AnyValue {
    StringValue(String),
    BoolValue(bool),
    /// int64: a string in protobuf JSON.
    IntValue(String),
    DoubleValue(f64),
}

impl KeyValue {
    /// A TraceQL value as an attribute: durations as integer nanoseconds, status and kind as
    /// their names, nil as an empty string.
    pub(crate) fn new(key: impl Into<String>, v: &Value) -> KeyValue {
        let value = match v {
            Value::String(s) => AnyValue::StringValue(s.clone()),
            Value::Bool(b) => AnyValue::BoolValue(*b),
            Value::Int(i) => AnyValue::IntValue(i.to_string()),
            Value::Float(f) if f.is_finite() => AnyValue::DoubleValue(*f),
            Value::Duration(ns) => AnyValue::IntValue(ns.to_string()),
            Value::Nil => AnyValue::StringValue(String::new()),
            other => AnyValue::StringValue(other.to_string()),
        };
        KeyValue {
            key: key.into(),
            value,
        }
    }
}

/// `SearchMetrics`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchMetrics {
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) inspected_traces: u32,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) inspected_bytes: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) total_blocks: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) completed_jobs: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) total_jobs: u32,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) total_block_bytes: String,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) inspected_spans: String,
}

/// `MetadataMetrics`: what the tag listings report.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MetadataMetrics {
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) inspected_bytes: String,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) total_jobs: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) completed_jobs: u32,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub(crate) total_blocks: u32,
    #[serde(skip_serializing_if = "is_zero_str")]
    pub(crate) total_block_bytes: String,
}

/// `SearchTagsV2Response`.
#[derive(Debug, Serialize)]
pub(crate) struct SearchTagsV2Response {
    pub(crate) scopes: Vec<SearchTagsV2Scope>,
    pub(crate) metrics: MetadataMetrics,
}

/// `SearchTagsV2Scope`.
#[derive(Debug, Serialize)]
pub(crate) struct SearchTagsV2Scope {
    pub(crate) name: String,
    pub(crate) tags: Vec<String>,
}

/// `SearchTagValuesV2Response`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SearchTagValuesV2Response {
    pub(crate) tag_values: Vec<TagValue>,
    pub(crate) metrics: MetadataMetrics,
}

/// `TagValue`.
#[derive(Debug, Serialize)]
pub(crate) struct TagValue {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) value: String,
}
