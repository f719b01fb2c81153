//! How span attributes become index terms: which keys get terms (few, short distinct values
//! in the block), the term bytes of a key and value, the type byte and type names, and an
//! attribute as the table stores it.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use foldhash::{HashMap, HashSet};

use super::cursor::push_varint;
use crate::model::SpanRecord;
use crate::model::value_string;
use crate::otlp::common::v1::{KeyValue, any_value::Value as V};

/// Longest attribute value (bytes of its string form) of an indexed key.
pub const MAX_TERM_VALUE: usize = 256;
/// A span attribute key is indexed when it has at most this many distinct values in the
/// block...
pub const MAX_INDEXED_VALUES: usize = 1024;
/// ...or at most one distinct value per this many spans.
pub const SPANS_PER_INDEXED_VALUE: usize = 32;

/// The type name tag-value listings report for a value.
pub fn type_name(v: &KeyValue) -> &'static str {
    type_name_of_byte(type_byte(v))
}

pub(super) fn type_byte(v: &KeyValue) -> u8 {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(_)) => b's',
        Some(V::IntValue(_)) => b'i',
        Some(V::DoubleValue(_)) => b'f',
        Some(V::BoolValue(_)) => b'b',
        _ => b'o',
    }
}

pub(super) fn type_name_of_byte(b: u8) -> &'static str {
    match b {
        b'i' => "int",
        b'f' => "float",
        b'b' => "bool",
        _ => "string",
    }
}

/// The bytes every term of `key` starts with.
pub(super) fn key_prefix(key: &str) -> Vec<u8> {
    let mut t = term_bytes(key, 0, "");
    t.pop(); // the type byte
    t
}

/// Writes the term of `key` = `value` of type `ty` into `buf` (cleared first).
pub(super) fn write_term(buf: &mut Vec<u8>, key: &str, ty: u8, value: &str) {
    buf.clear();
    push_varint(buf, key.len() as u64);
    buf.extend_from_slice(key.as_bytes());
    buf.push(ty);
    buf.extend_from_slice(value.as_bytes());
}

pub(super) fn term_bytes(key: &str, ty: u8, value: &str) -> Vec<u8> {
    let mut t = Vec::new();
    write_term(&mut t, key, ty, value);
    t
}

/// An attribute as (key, type byte, string form).
pub(super) type Attr = (String, u8, String);

pub(super) fn attr(kv: &KeyValue) -> Attr {
    (
        kv.key.clone(),
        type_byte(kv),
        kv.value.as_ref().map(value_string).unwrap_or_default(),
    )
}

/// An attribute's value as tags compare it, borrowed for string values (most of them).
pub(super) fn value_str(kv: &KeyValue) -> Cow<'_, str> {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(v)) => Cow::Borrowed(v),
        _ => Cow::Owned(kv.value.as_ref().map(value_string).unwrap_or_default()),
    }
}

/// The length and a hash of an attribute's type and string form.
fn value_hash(kv: &KeyValue) -> (usize, u64) {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5ce1_7a61).build_hasher();
    type_byte(kv).hash(&mut h);
    let v = value_str(kv);
    v.hash(&mut h);
    (v.len(), h.finish())
}

/// Which span attribute keys get terms: few, short distinct values. Returns the keys that
/// do, and every span attribute key of `spans` with whether it does (the table's span keys).
pub(super) fn indexed_keys(spans: &[&SpanRecord]) -> (HashSet<String>, BTreeMap<String, bool>) {
    let limit = MAX_INDEXED_VALUES.max(spans.len() / SPANS_PER_INDEXED_VALUE);
    // Distinct values are counted by hash (a collision can only undercount, which at worst
    // gives a key terms it could have done without).
    let mut values: HashMap<&str, HashSet<u64>> = HashMap::default();
    let mut too_long: BTreeSet<&str> = BTreeSet::new();
    for s in spans {
        let lists = std::iter::once(&s.span.attributes)
            .chain(s.span.events.iter().map(|e| &e.attributes))
            .chain(s.span.links.iter().map(|l| &l.attributes));
        for kv in lists.flatten() {
            let set = values.entry(kv.key.as_str()).or_default();
            if set.len() > limit {
                continue;
            }
            let (len, hash) = value_hash(kv);
            if len > MAX_TERM_VALUE {
                too_long.insert(kv.key.as_str());
            }
            set.insert(hash);
        }
    }
    let indexed: HashSet<String> = values
        .iter()
        .filter(|(k, v)| v.len() <= limit && !too_long.contains(*k))
        .map(|(k, _)| (*k).to_owned())
        .collect();
    let span_keys: BTreeMap<String, bool> = values
        .keys()
        .map(|k| ((*k).to_owned(), indexed.contains(*k)))
        .collect();
    (indexed, span_keys)
}
