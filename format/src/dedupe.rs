//! What "the same span" means when copies of a span meet.
//!
//! Clients resend on doubt and an ingester replays its WAL after a crash, so exact copies of
//! a span reach storage; instrumentation bugs also produce distinct spans that share a span
//! ID. Readers and the compactor drop the first kind and keep the second. Two records are
//! copies when everything about them is equal: the span message and the resource and scope
//! it was sent with (attributes, dropped counts and schema URLs included).

use prost::Message;

use crate::model::SpanRecord;

/// The bytes that identify a span's content: equal for exact copies, different for any two
/// spans that differ in any field, including their resource and scope.
pub fn content_key(s: &SpanRecord) -> Vec<u8> {
    // Each part is length-prefixed so that no two different tuples of parts encode alike.
    let mut key = Vec::with_capacity(256);
    let mut part = |bytes: &[u8]| {
        key.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        key.extend_from_slice(bytes);
    };
    part(&s.span.encode_to_vec());
    part(&s.resource.resource.encode_to_vec());
    part(s.resource.schema_url.as_bytes());
    part(&s.scope.scope.encode_to_vec());
    part(s.scope.schema_url.as_bytes());
    key
}

/// True when `a` and `b` are copies of one span (see [`content_key`]).
pub fn same_span(a: &SpanRecord, b: &SpanRecord) -> bool {
    // Comparing the decoded values is cheaper than encoding both and means the same: the
    // protobuf encoding of equal messages is equal and of different messages differs.
    a.span == b.span
        && (std::sync::Arc::ptr_eq(&a.resource, &b.resource) || a.resource == b.resource)
        && (std::sync::Arc::ptr_eq(&a.scope, &b.scope) || a.scope == b.scope)
}
