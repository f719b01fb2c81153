//! What the block encoder reads of a span ([`SpanSource`]), so that it can encode decoded
//! spans ([`SpanRecord`]) and spans still in their protobuf bytes (`wire::WireSpan`) alike.

use std::borrow::Cow;

use prost::Message;

use crate::model::SpanRecord;
use crate::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use crate::otlp::resource::v1::Resource;

/// An attribute value, borrowed; arrays and key-value lists as their encoded `AnyValue`
/// (what the generic attribute lists store).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ValueRef<'a> {
    /// `KeyValue.value` absent.
    Absent,
    /// An `AnyValue` with no value.
    Empty,
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(&'a [u8]),
    Array(Cow<'a, [u8]>),
    KvList(Cow<'a, [u8]>),
    StrIndex(i32),
}

/// An attribute, borrowed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KvRef<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: ValueRef<'a>,
}

/// An event, borrowed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRef<'a> {
    pub(crate) time_unix_nano: u64,
    pub(crate) name: &'a str,
    pub(crate) attributes: Vec<KvRef<'a>>,
    pub(crate) dropped_attributes_count: u32,
}

/// A link, borrowed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LinkRef<'a> {
    pub(crate) trace_id: &'a [u8],
    pub(crate) span_id: &'a [u8],
    pub(crate) trace_state: &'a str,
    pub(crate) flags: u32,
    pub(crate) attributes: Vec<KvRef<'a>>,
    pub(crate) dropped_attributes_count: u32,
}

/// A span as the block encoder reads it.
pub(crate) trait SpanSource {
    fn trace_id_bytes(&self) -> &[u8];
    fn span_id_bytes(&self) -> &[u8];
    fn parent_span_id(&self) -> &[u8];
    fn trace_state(&self) -> &str;
    fn flags(&self) -> u32;
    fn name(&self) -> &str;
    fn kind(&self) -> i32;
    fn start_time_unix_nano(&self) -> u64;
    fn end_time_unix_nano(&self) -> u64;
    /// Status code and message (0 and "" without a status).
    fn status(&self) -> (i32, &str);
    fn dropped_counts(&self) -> (u32, u32, u32);
    /// Appends the span's attributes to `out`.
    fn attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>);
    fn events<'s>(&'s self, out: &mut Vec<EventRef<'s>>);
    fn links<'s>(&'s self, out: &mut Vec<LinkRef<'s>>);
    /// The `service.name` of the span's resource when it is a string, else `""`.
    fn resource_service_name(&self) -> &str;
    fn resource_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>);
    fn resource_dropped_attributes_count(&self) -> u32;
    fn resource_schema_url(&self) -> &str;
    /// The resource's entity references, as a `Resource` holding only them, encoded; `None`
    /// when it has none.
    fn resource_entity_refs(&self) -> Option<Cow<'_, [u8]>>;
    fn scope_name(&self) -> &str;
    fn scope_version(&self) -> &str;
    fn scope_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>);
    fn scope_dropped_attributes_count(&self) -> u32;
    fn scope_schema_url(&self) -> &str;

    fn is_root(&self) -> bool {
        self.parent_span_id().is_empty()
    }
}

pub(crate) fn kv_ref(kv: &KeyValue) -> KvRef<'_> {
    KvRef {
        key: &kv.key,
        value: match kv.value.as_ref() {
            None => ValueRef::Absent,
            Some(AnyValue { value: None }) => ValueRef::Empty,
            Some(av @ AnyValue { value: Some(v) }) => match v {
                Value::StringValue(s) => ValueRef::Str(s),
                Value::BoolValue(b) => ValueRef::Bool(*b),
                Value::IntValue(i) => ValueRef::Int(*i),
                Value::DoubleValue(d) => ValueRef::Double(*d),
                Value::BytesValue(b) => ValueRef::Bytes(b),
                Value::ArrayValue(_) => ValueRef::Array(Cow::Owned(av.encode_to_vec())),
                Value::KvlistValue(_) => ValueRef::KvList(Cow::Owned(av.encode_to_vec())),
                Value::StringValueStrindex(i) => ValueRef::StrIndex(*i),
            },
        },
    }
}

impl SpanSource for SpanRecord {
    fn trace_id_bytes(&self) -> &[u8] {
        &self.span.trace_id
    }
    fn span_id_bytes(&self) -> &[u8] {
        &self.span.span_id
    }
    fn parent_span_id(&self) -> &[u8] {
        &self.span.parent_span_id
    }
    fn trace_state(&self) -> &str {
        &self.span.trace_state
    }
    fn flags(&self) -> u32 {
        self.span.flags
    }
    fn name(&self) -> &str {
        &self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn start_time_unix_nano(&self) -> u64 {
        self.span.start_time_unix_nano
    }
    fn end_time_unix_nano(&self) -> u64 {
        self.span.end_time_unix_nano
    }
    fn status(&self) -> (i32, &str) {
        self.span
            .status
            .as_ref()
            .map_or((0, ""), |s| (s.code, s.message.as_str()))
    }
    fn dropped_counts(&self) -> (u32, u32, u32) {
        (
            self.span.dropped_attributes_count,
            self.span.dropped_events_count,
            self.span.dropped_links_count,
        )
    }
    fn attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        out.extend(self.span.attributes.iter().map(kv_ref));
    }
    fn events<'s>(&'s self, out: &mut Vec<EventRef<'s>>) {
        out.extend(self.span.events.iter().map(|e| EventRef {
            time_unix_nano: e.time_unix_nano,
            name: &e.name,
            attributes: e.attributes.iter().map(kv_ref).collect(),
            dropped_attributes_count: e.dropped_attributes_count,
        }));
    }
    fn links<'s>(&'s self, out: &mut Vec<LinkRef<'s>>) {
        out.extend(self.span.links.iter().map(|l| LinkRef {
            trace_id: &l.trace_id,
            span_id: &l.span_id,
            trace_state: &l.trace_state,
            flags: l.flags,
            attributes: l.attributes.iter().map(kv_ref).collect(),
            dropped_attributes_count: l.dropped_attributes_count,
        }));
    }
    fn resource_service_name(&self) -> &str {
        self.service_name()
    }
    fn resource_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        out.extend(self.resource.resource.attributes.iter().map(kv_ref));
    }
    fn resource_dropped_attributes_count(&self) -> u32 {
        self.resource.resource.dropped_attributes_count
    }
    fn resource_schema_url(&self) -> &str {
        &self.resource.schema_url
    }
    fn resource_entity_refs(&self) -> Option<Cow<'_, [u8]>> {
        let refs = &self.resource.resource.entity_refs;
        (!refs.is_empty()).then(|| {
            Cow::Owned(
                Resource {
                    entity_refs: refs.clone(),
                    ..Default::default()
                }
                .encode_to_vec(),
            )
        })
    }
    fn scope_name(&self) -> &str {
        &self.scope.scope.name
    }
    fn scope_version(&self) -> &str {
        &self.scope.scope.version
    }
    fn scope_attributes<'s>(&'s self, out: &mut Vec<KvRef<'s>>) {
        out.extend(self.scope.scope.attributes.iter().map(kv_ref));
    }
    fn scope_dropped_attributes_count(&self) -> u32 {
        self.scope.scope.dropped_attributes_count
    }
    fn scope_schema_url(&self) -> &str {
        &self.scope.schema_url
    }
}
