//! The tag index of a block: a tantivy index of its spans plus a table of its traces,
//! resources and scopes, stored as one object (`index`) next to `data.parquet`.
//!
//! It answers search, tag-name and tag-value listings without reading the Parquet data, and
//! says so when it cannot (the caller then scans the block):
//!
//! - **one tantivy document per span**, added trace by trace in one segment, so document `d`
//!   belongs to the trace whose document range holds `d`. Indexed terms: the span's name
//!   (`name`) and its attributes (`span_attr`: span, event and link attributes) of keys with
//!   few distinct values in the block (at most [`MAX_INDEXED_VALUES`] or one per
//!   [`SPANS_PER_INDEXED_VALUE`] spans, each at most [`MAX_TERM_VALUE`] bytes). Keys with
//!   more (request IDs, full URLs) are listed in the table as not indexed: a query or a
//!   value listing on them scans the block. Fast fields: the span's resource and scope (their
//!   position in the table), its duration as a 10-bit logarithmic bucket (`dur`, 16 buckets
//!   per power of two), its start relative to its trace's start in the same buckets
//!   (`start`), and its kind and status code (`ks`, kind × 4 + code).
//! - **the table** (`traces.bin`, zstd): per trace, in document order, its ID and the summary
//!   of its spans in this block (start, duration, root, span, error and orphan counts per
//!   service); the distinct resources and scopes with their attributes; the attribute keys
//!   per scope (span keys marked indexed or not); the (service, span name, kind) triples; the
//!   calls between services (parent and child span within a trace of the block).
//!
//! An attribute term is the key's length (LEB128), the key, one type byte (`s` string, `i`
//! int, `f` double, `b` bool, `o` anything else) and the value's string form, as tags compare
//! it.
//!
//! Whatever the index cannot decide exactly (a span duration in the same bucket as a bound, a
//! span-level time range whose edge falls in a span's start bucket) it reports as undecided; the
//! caller reads that trace whole. So answers from the index are exact.
//!
//! The bundle is a small container: the magic `SKTAGIX4`, the number of entries (u32 LE),
//! each entry's name (u16 LE length + UTF-8) and size (u64 LE), then the entries' bytes in
//! that order. Entries are `traces.bin` and the tantivy index files under `tantivy/`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use foldhash::{HashMap, HashSet};
use tantivy::columnar::Column;
use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, Schema, TantivyDocument, Term, TextFieldIndexing,
    TextOptions,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::{DocSet, Index, IndexReader, IndexSettings, TERMINATED};

use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::model::SpanRecord;
use crate::model::value_string;
use crate::otlp::common::v1::{KeyValue, any_value::Value as V};
use crate::summary::{ServiceStats, TraceSummary};
use crate::version::IndexLayout;

/// Longest attribute value (bytes of its string form) of an indexed key.
pub const MAX_TERM_VALUE: usize = 256;
/// A span attribute key is indexed when it has at most this many distinct values in the
/// block...
pub const MAX_INDEXED_VALUES: usize = 1024;
/// ...or at most one distinct value per this many spans.
pub const SPANS_PER_INDEXED_VALUE: usize = 32;
const TRACES_ENTRY: &str = "traces.bin";
const TANTIVY_DIR: &str = "tantivy";
/// Indexing memory of one build; tantivy needs at least 15 MB.
const WRITER_MEMORY: usize = 64 << 20;

mod field {
    pub const NAME: &str = "name";
    pub const SPAN_ATTR: &str = "span_attr";
    pub const RES: &str = "res";
    pub const SCOPE: &str = "scope";
    pub const DUR: &str = "dur";
    pub const START: &str = "start";
    pub const KS: &str = "ks";
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    name: Field,
    span_attr: Field,
    res: Field,
    scope: Field,
    dur: Field,
    start: Field,
    ks: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let raw = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("raw")
            .set_fieldnorms(false)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        name: b.add_text_field(field::NAME, raw),
        span_attr: b.add_bytes_field(field::SPAN_ATTR, BytesOptions::default().set_indexed()),
        res: b.add_u64_field(field::RES, FAST),
        scope: b.add_u64_field(field::SCOPE, FAST),
        dur: b.add_u64_field(field::DUR, FAST),
        start: b.add_u64_field(field::START, FAST),
        ks: b.add_u64_field(field::KS, FAST),
    };
    (b.build(), fields)
}

fn fields_of(schema: &Schema) -> Result<Fields> {
    let get = |name: &str| {
        schema
            .get_field(name)
            .map_err(|e| Error::corrupt("tag index", "schema", e))
    };
    Ok(Fields {
        name: get(field::NAME)?,
        span_attr: get(field::SPAN_ATTR)?,
        res: get(field::RES)?,
        scope: get(field::SCOPE)?,
        dur: get(field::DUR)?,
        start: get(field::START)?,
        ks: get(field::KS)?,
    })
}

/// The duration bucket of `nanos`: 16 buckets per power of two, monotonic, integer-only so
/// that writer and reader agree on every platform.
pub fn duration_bucket(nanos: u64) -> u64 {
    if nanos < 16 {
        return nanos;
    }
    let bits = 64 - u64::from(nanos.leading_zeros()); // ≥ 5
    let mantissa = (nanos >> (bits - 5)) & 0xf; // the 4 bits after the leading one
    (bits - 4) * 16 + mantissa
}

/// The smallest and largest value of bucket `b` of [`duration_bucket`].
pub fn bucket_range(b: u64) -> (u64, u64) {
    if b < 16 {
        return (b, b);
    }
    let shift = (b / 16 + 4).saturating_sub(5).min(59);
    let lo = (16 + b % 16) << shift;
    (lo, lo.saturating_add((1u64 << shift) - 1))
}

/// Which attributes a tag listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Span attributes, with event and link attributes.
    Span,
    /// Resource attributes.
    Resource,
    /// Instrumentation scope attributes.
    Instrumentation,
}

/// The type name tag-value listings report for a value.
pub fn type_name(v: &KeyValue) -> &'static str {
    type_name_of_byte(type_byte(v))
}

fn type_byte(v: &KeyValue) -> u8 {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(_)) => b's',
        Some(V::IntValue(_)) => b'i',
        Some(V::DoubleValue(_)) => b'f',
        Some(V::BoolValue(_)) => b'b',
        _ => b'o',
    }
}

fn type_name_of_byte(b: u8) -> &'static str {
    match b {
        b'i' => "int",
        b'f' => "float",
        b'b' => "bool",
        _ => "string",
    }
}

const TYPE_BYTES: [u8; 5] = [b's', b'i', b'f', b'b', b'o'];

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The bytes every term of `key` starts with.
fn key_prefix(key: &str) -> Vec<u8> {
    let mut t = term_bytes(key, 0, "");
    t.pop(); // the type byte
    t
}

/// Writes the term of `key` = `value` of type `ty` into `buf` (cleared first).
fn write_term(buf: &mut Vec<u8>, key: &str, ty: u8, value: &str) {
    buf.clear();
    push_varint(buf, key.len() as u64);
    buf.extend_from_slice(key.as_bytes());
    buf.push(ty);
    buf.extend_from_slice(value.as_bytes());
}

fn term_bytes(key: &str, ty: u8, value: &str) -> Vec<u8> {
    let mut t = Vec::new();
    write_term(&mut t, key, ty, value);
    t
}

/// An attribute as (key, type byte, string form).
type Attr = (String, u8, String);

fn attr(kv: &KeyValue) -> Attr {
    (
        kv.key.clone(),
        type_byte(kv),
        kv.value.as_ref().map(value_string).unwrap_or_default(),
    )
}

/// An attribute's value as tags compare it, borrowed for string values (most of them).
fn value_str(kv: &KeyValue) -> Cow<'_, str> {
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

/// Builds the index bundle of a block's spans. The spans may come in any order; they are
/// grouped by trace. CPU-heavy: run it on a blocking thread.
pub fn build(spans: &[&SpanRecord]) -> Result<Vec<u8>> {
    let mut by_trace: BTreeMap<TraceId, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(s.trace_id()?).or_default().push(s);
    }

    // Which span attribute keys get terms: few, short distinct values.
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
    drop(values);

    let (schema, f) = schema();
    let tmp = tempfile::Builder::new()
        .prefix("skein-tagindex-")
        .tempdir()
        .map_err(|e| {
            Error::Task(format!(
                "cannot create a directory to build an index in: {e}"
            ))
        })?;
    let dir = tmp.path().join(TANTIVY_DIR);
    fs::create_dir(&dir).map_err(|e| Error::Task(e.to_string()))?;
    let mmap =
        tantivy::directory::MmapDirectory::open(&dir).map_err(|e| Error::Task(e.to_string()))?;
    // The document store holds no fields, only a position per document; zstd 19 finds the
    // pattern in them (1.0 byte per span, against 2.4 at level 3 or 9).
    let settings = IndexSettings {
        docstore_compression: Compressor::Zstd(ZstdCompressor {
            compression_level: Some(19),
        }),
        docstore_blocksize: 1 << 20,
        ..IndexSettings::default()
    };
    let mut writer = Index::builder()
        .schema(schema)
        .settings(settings)
        .single_segment_index_writer::<TantivyDocument>(mmap, WRITER_MEMORY)
        .map_err(tantivy_err)?;

    let mut table = TableBuilder {
        span_keys,
        ..TableBuilder::default()
    };
    // Traces go in the order of their root operation, so that traces of the same shape sit
    // together: their spans share names and attribute values, and the posting lists of those
    // terms come out dense, which compresses them several times better than trace-ID order.
    let mut traces: Vec<(TraceSummary, Vec<&SpanRecord>)> = by_trace
        .into_values()
        .filter_map(|trace| Some((TraceSummary::from_span_refs(&trace)?, trace)))
        .collect();
    traces.sort_by(|(a, _), (b, _)| {
        (
            &a.root_service_name,
            &a.root_span_name,
            a.start_unix_nano,
            a.trace_id,
        )
            .cmp(&(
                &b.root_service_name,
                &b.root_span_name,
                b.start_unix_nano,
                b.trace_id,
            ))
    });
    let mut term: Vec<u8> = Vec::new();
    for (summary, mut trace) in traces {
        // Within a trace too: spans of one service and name next to each other.
        trace.sort_by(|a, b| {
            (a.service_name(), &a.span.name, a.span.start_time_unix_nano).cmp(&(
                b.service_name(),
                &b.span.name,
                b.span.start_time_unix_nano,
            ))
        });
        for s in &trace {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.name, &s.span.name);
            let mut add = |attrs: &[KeyValue]| {
                for kv in attrs.iter().filter(|kv| indexed.contains(&kv.key)) {
                    write_term(&mut term, &kv.key, type_byte(kv), &value_str(kv));
                    doc.add_bytes(f.span_attr, &term);
                }
            };
            add(&s.span.attributes);
            for e in &s.span.events {
                add(&e.attributes);
            }
            for l in &s.span.links {
                add(&l.attributes);
            }
            let res = table.resource(s);
            let scope = table.scope(s);
            doc.add_u64(f.res, res);
            doc.add_u64(f.scope, scope);
            doc.add_u64(f.dur, duration_bucket(s.duration_nanos()));
            let offset = s
                .span
                .start_time_unix_nano
                .saturating_sub(summary.start_unix_nano);
            doc.add_u64(f.start, duration_bucket(offset));
            let code = s.span.status.as_ref().map_or(0, |st| st.code.clamp(0, 3));
            doc.add_u64(f.ks, (s.span.kind.max(0) as u64) * 4 + code as u64);
            writer.add_document(doc).map_err(tantivy_err)?;
            table.operations.insert((
                s.service_name().to_owned(),
                s.span.name.clone(),
                s.span.kind,
            ));
        }
        crate::summary::count_service_calls(&trace, &mut table.calls);
        table.traces.push(summary);
    }
    writer.finalize().map_err(tantivy_err)?;

    let mut entries: Vec<(String, Vec<u8>)> = vec![(TRACES_ENTRY.to_owned(), table.encode()?)];
    let mut files: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| Error::Task(e.to_string()))?
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::Task(e.to_string()))?;
    files.sort_by_key(|e| e.file_name());
    for e in files {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".lock") || !e.path().is_file() {
            continue;
        }
        let bytes = fs::read(e.path()).map_err(|e| Error::Task(e.to_string()))?;
        entries.push((format!("{TANTIVY_DIR}/{name}"), bytes));
    }
    Ok(write_bundle(&entries))
}

fn tantivy_err(e: tantivy::TantivyError) -> Error {
    Error::Task(format!("tag index: {e}"))
}

fn write_bundle(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let total: usize = entries.iter().map(|(n, b)| n.len() + b.len() + 10).sum();
    let mut out = Vec::with_capacity(total + 12);
    out.extend_from_slice(&IndexLayout::current().magic());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, bytes) in entries {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    for (_, bytes) in entries {
        out.extend_from_slice(bytes);
    }
    out
}

/// Splits a bundle into its entries (name, bytes).
fn read_bundle<'a>(bundle: &'a [u8], location: &str) -> Result<Vec<(String, &'a [u8])>> {
    let corrupt = |why: &str| Error::corrupt("tag index", location, why.to_owned());
    let mut r = Cursor {
        buf: bundle,
        pos: 0,
    };
    let magic = r.take(8).ok_or_else(|| corrupt("truncated"))?;
    match IndexLayout::of_bundle(magic) {
        Some(layout) if layout == IndexLayout::current() => {}
        Some(layout) => {
            return Err(Error::IndexLayout {
                location: location.to_owned(),
                found: layout.0,
                expected: IndexLayout::current().0,
            });
        }
        None => return Err(corrupt("not a tag index bundle")),
    }
    let n = u32::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
    let mut heads = Vec::new();
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
        let name = r
            .take(len as usize)
            .ok_or_else(|| corrupt("truncated"))
            .and_then(|b| std::str::from_utf8(b).map_err(|_| corrupt("entry name")))?;
        let size = u64::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
        let safe = name == TRACES_ENTRY
            || name.strip_prefix("tantivy/").is_some_and(|f| {
                !f.is_empty() && !f.contains('/') && !f.contains("..") && !f.starts_with('.')
                    || f == ".managed.json"
            });
        if !safe {
            return Err(corrupt("unexpected entry name"));
        }
        heads.push((name.to_owned(), size));
    }
    let mut out = Vec::new();
    for (name, size) in heads {
        let bytes = usize::try_from(size)
            .ok()
            .and_then(|s| r.take(s))
            .ok_or_else(|| corrupt("truncated"))?;
        out.push((name, bytes));
    }
    if r.pos != bundle.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(out)
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }
}

/// A resource or scope of the block: its service name (resources only) and attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
struct Holder {
    service: String,
    attrs: Vec<Attr>,
}

#[derive(Default)]
struct TableBuilder {
    traces: Vec<TraceSummary>,
    resources: Vec<Holder>,
    resource_ids: HashMap<Holder, u64>,
    /// Spans share their resource and scope through an `Arc`: one lookup per distinct one.
    resource_by_ptr: HashMap<*const crate::model::ResourceInfo, u64>,
    scope_by_ptr: HashMap<*const crate::model::ScopeInfo, u64>,
    scopes: Vec<Holder>,
    scope_ids: HashMap<Holder, u64>,
    span_keys: BTreeMap<String, bool>,
    operations: BTreeSet<(String, String, i32)>,
    calls: BTreeMap<(String, String), u64>,
}

#[derive(Default)]
struct Strings {
    ids: HashMap<String, u32>,
    list: Vec<String>,
}

impl Strings {
    fn id(&mut self, s: &str) -> u64 {
        if let Some(&i) = self.ids.get(s) {
            return u64::from(i);
        }
        let i = self.list.len() as u32;
        self.ids.insert(s.to_owned(), i);
        self.list.push(s.to_owned());
        u64::from(i)
    }
}

fn intern(list: &mut Vec<Holder>, ids: &mut HashMap<Holder, u64>, h: Holder) -> u64 {
    if let Some(&i) = ids.get(&h) {
        return i;
    }
    let i = list.len() as u64;
    list.push(h.clone());
    ids.insert(h, i);
    i
}

impl TableBuilder {
    fn resource(&mut self, s: &SpanRecord) -> u64 {
        let ptr = std::sync::Arc::as_ptr(&s.resource);
        if let Some(&i) = self.resource_by_ptr.get(&ptr) {
            return i;
        }
        let h = Holder {
            service: s.service_name().to_owned(),
            attrs: s.resource.resource.attributes.iter().map(attr).collect(),
        };
        let i = intern(&mut self.resources, &mut self.resource_ids, h);
        self.resource_by_ptr.insert(ptr, i);
        i
    }

    fn scope(&mut self, s: &SpanRecord) -> u64 {
        let ptr = std::sync::Arc::as_ptr(&s.scope);
        if let Some(&i) = self.scope_by_ptr.get(&ptr) {
            return i;
        }
        let h = Holder {
            service: String::new(),
            attrs: s.scope.scope.attributes.iter().map(attr).collect(),
        };
        let i = intern(&mut self.scopes, &mut self.scope_ids, h);
        self.scope_by_ptr.insert(ptr, i);
        i
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut strings = Strings::default();
        let mut body = Vec::new();
        push_varint(&mut body, self.traces.len() as u64);
        let base = self
            .traces
            .iter()
            .map(|t| t.start_unix_nano)
            .min()
            .unwrap_or(0);
        push_varint(&mut body, base);
        for t in &self.traces {
            body.extend_from_slice(&t.trace_id.0);
            push_varint(&mut body, t.start_unix_nano - base);
            push_varint(&mut body, t.duration_nanos);
            push_varint(&mut body, t.span_count);
            push_varint(&mut body, t.error_count);
            push_varint(&mut body, t.orphan_span_count);
            push_varint(&mut body, strings.id(&t.root_service_name));
            push_varint(&mut body, strings.id(&t.root_span_name));
            push_varint(&mut body, t.services.len() as u64);
            for (name, st) in &t.services {
                push_varint(&mut body, strings.id(name));
                push_varint(&mut body, st.spans);
                push_varint(&mut body, st.errors);
            }
        }
        for holders in [&self.resources, &self.scopes] {
            push_varint(&mut body, holders.len() as u64);
            for h in holders {
                push_varint(&mut body, strings.id(&h.service));
                push_varint(&mut body, h.attrs.len() as u64);
                for (k, ty, v) in &h.attrs {
                    push_varint(&mut body, strings.id(k));
                    body.push(*ty);
                    push_varint(&mut body, strings.id(v));
                }
            }
        }
        push_varint(&mut body, self.span_keys.len() as u64);
        for (key, indexed) in &self.span_keys {
            push_varint(&mut body, strings.id(key));
            body.push(u8::from(*indexed));
        }
        push_varint(&mut body, self.operations.len() as u64);
        for (svc, name, kind) in &self.operations {
            push_varint(&mut body, strings.id(svc));
            push_varint(&mut body, strings.id(name));
            push_varint(&mut body, u64::from(*kind as u32));
        }
        push_varint(&mut body, self.calls.len() as u64);
        for ((parent, child), n) in &self.calls {
            push_varint(&mut body, strings.id(parent));
            push_varint(&mut body, strings.id(child));
            push_varint(&mut body, *n);
        }
        let mut out = Vec::new();
        push_varint(&mut out, strings.list.len() as u64);
        for s in &strings.list {
            push_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        out.extend_from_slice(&body);
        zstd::encode_all(out.as_slice(), 3).map_err(|e| Error::Task(e.to_string()))
    }
}

/// The decoded table.
#[derive(Debug, Default)]
struct Table {
    traces: Vec<TraceSummary>,
    /// First document of each trace, plus the document count at the end.
    first_doc: Vec<u32>,
    resources: Vec<Holder>,
    scopes: Vec<Holder>,
    /// Span attribute keys, and whether each has terms.
    span_keys: BTreeMap<String, bool>,
    operations: BTreeSet<(String, String, i32)>,
    calls: BTreeMap<(String, String), u64>,
}

impl Table {
    fn decode(packed: &[u8], location: &str) -> Result<Table> {
        let raw = zstd::decode_all(packed).map_err(|e| Error::corrupt("tag index", location, e))?;
        Self::decode_raw(&raw).ok_or_else(|| {
            Error::corrupt(
                "tag index",
                location,
                "the trace table is truncated or corrupt",
            )
        })
    }

    fn decode_raw(raw: &[u8]) -> Option<Table> {
        let mut r = Cursor { buf: raw, pos: 0 };
        let n_strings = r.varint()?;
        let mut strings = Vec::new();
        for _ in 0..n_strings {
            let len = r.len()?;
            strings.push(std::str::from_utf8(r.take(len)?).ok()?.to_owned());
        }
        let s = |i: u64| strings.get(usize::try_from(i).ok()?).cloned();
        let mut t = Table::default();
        let n = r.varint()?;
        let base = r.varint()?;
        let mut doc = 0u32;
        for _ in 0..n {
            let trace_id = TraceId(r.array()?);
            let start_unix_nano = base.checked_add(r.varint()?)?;
            let duration_nanos = r.varint()?;
            let span_count = r.varint()?;
            let error_count = r.varint()?;
            let orphan_span_count = r.varint()?;
            let root_service_name = s(r.varint()?)?;
            let root_span_name = s(r.varint()?)?;
            let mut services = BTreeMap::new();
            for _ in 0..r.varint()? {
                let name = s(r.varint()?)?;
                let spans = r.varint()?;
                let errors = r.varint()?;
                services.insert(name, ServiceStats { spans, errors });
            }
            t.first_doc.push(doc);
            doc = doc.checked_add(u32::try_from(span_count).ok()?)?;
            t.traces.push(TraceSummary {
                trace_id,
                root_service_name,
                root_span_name,
                start_unix_nano,
                duration_nanos,
                span_count,
                error_count,
                orphan_span_count,
                services,
            });
        }
        t.first_doc.push(doc);
        for which in 0..2 {
            let mut holders = Vec::new();
            for _ in 0..r.varint()? {
                let service = s(r.varint()?)?;
                let mut attrs = Vec::new();
                for _ in 0..r.varint()? {
                    let k = s(r.varint()?)?;
                    let ty = r.byte()?;
                    let v = s(r.varint()?)?;
                    attrs.push((k, ty, v));
                }
                holders.push(Holder { service, attrs });
            }
            match which {
                0 => t.resources = holders,
                _ => t.scopes = holders,
            }
        }
        for _ in 0..r.varint()? {
            let key = s(r.varint()?)?;
            let indexed = r.byte()? != 0;
            t.span_keys.insert(key, indexed);
        }
        for _ in 0..r.varint()? {
            let svc = s(r.varint()?)?;
            let name = s(r.varint()?)?;
            let kind = u32::try_from(r.varint()?).ok()? as i32;
            t.operations.insert((svc, name, kind));
        }
        for _ in 0..r.varint()? {
            let parent = s(r.varint()?)?;
            let child = s(r.varint()?)?;
            t.calls.insert((parent, child), r.varint()?);
        }
        (r.pos == raw.len()).then_some(t)
    }
}

/// Writes a bundle's entries as files under `dir` (created). The directory can then be
/// opened with [`TagIndex::open`].
pub fn unpack(bundle: &[u8], dir: &Path, location: &str) -> Result<()> {
    let entries = read_bundle(bundle, location)?;
    let io = |e: std::io::Error| Error::Task(format!("cannot unpack tag index: {e}"));
    fs::create_dir_all(dir.join(TANTIVY_DIR)).map_err(io)?;
    for (name, bytes) in entries {
        fs::write(dir.join(name), bytes).map_err(io)?;
    }
    Ok(())
}

/// A block's tag index, opened from a directory written by [`unpack`].
pub struct TagIndex {
    reader: IndexReader,
    fields: Fields,
    table: Table,
    location: String,
}

impl std::fmt::Debug for TagIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagIndex")
            .field("location", &self.location)
            .field("traces", &self.table.traces.len())
            .finish()
    }
}

/// What a search asks of one block's index.
#[derive(Debug, Clone, Default)]
pub struct IndexQuery {
    /// The span's service name.
    pub service_name: Option<String>,
    /// The span's name.
    pub span_name: Option<String>,
    /// Attribute key = string form of the value, in any attribute location of the span.
    pub tags: Vec<(String, String)>,
    /// A matching span must start within this range (ns, inclusive), when set.
    pub span_start: Option<(u64, u64)>,
    /// Span duration bounds (ns, inclusive) for [`TraceHit::span_match`].
    pub min_duration_nanos: Option<u64>,
    /// See `min_duration_nanos`.
    pub max_duration_nanos: Option<u64>,
}

/// A trace of the block that may have a span matching an [`IndexQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHit {
    /// Position of the trace in the block's table.
    pub ordinal: u32,
    /// Whether a span satisfies the name, service and tags (and lies in `span_start`) and
    /// also the duration bounds: `Some(true)` or `Some(false)` when the index knows, `None`
    /// when only the spans can tell.
    pub span_match: Option<bool>,
    /// Whether a span satisfies the name, service and tags (and lies in `span_start`):
    /// `false` only when no span is known to lie in `span_start` but the edge of the range falls
    /// in a matching span's start bucket: the spans must tell.
    pub certain: bool,
}

/// A set of documents.
struct Docs(Vec<u64>);

impl Docs {
    fn empty(n: u32) -> Self {
        Docs(vec![0; (n as usize).div_ceil(64)])
    }

    fn insert(&mut self, d: u32) {
        if let Some(w) = self.0.get_mut(d as usize / 64) {
            *w |= 1 << (d % 64);
        }
    }

    fn and(&mut self, other: &Docs) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= b);
    }

    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

impl TagIndex {
    /// Opens an unpacked index. `location` names it in errors.
    pub fn open(dir: &Path, location: &str) -> Result<TagIndex> {
        let corrupt = |e: tantivy::TantivyError| Error::corrupt("tag index", location, e);
        let index = Index::open_in_dir(dir.join(TANTIVY_DIR)).map_err(corrupt)?;
        let fields = fields_of(&index.schema())?;
        let reader = index.reader().map_err(corrupt)?;
        let packed = fs::read(dir.join(TRACES_ENTRY))
            .map_err(|e| Error::corrupt("tag index", location, e))?;
        let table = Table::decode(&packed, location)?;
        let searcher = reader.searcher();
        let segments = searcher.segment_readers();
        let docs = segments.first().map_or(0, |s| s.max_doc());
        if segments.len() > 1 || docs != *table.first_doc.last().unwrap_or(&0) {
            return Err(Error::corrupt(
                "tag index",
                location,
                "the index and its table disagree",
            ));
        }
        Ok(TagIndex {
            reader,
            fields,
            table,
            location: location.to_owned(),
        })
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        Error::corrupt("tag index", &self.location, e)
    }

    /// Traces in the block.
    pub fn trace_count(&self) -> usize {
        self.table.traces.len()
    }

    /// The summary of trace `ordinal`'s spans in this block.
    pub fn summary(&self, ordinal: u32) -> Option<&TraceSummary> {
        self.table.traces.get(ordinal as usize)
    }

    /// Calls between services in the block: (parent's service, child's service) → count.
    pub fn service_calls(&self) -> &BTreeMap<(String, String), u64> {
        &self.table.calls
    }

    /// Every (service, span name, span kind) in the block.
    pub fn operations(&self) -> &BTreeSet<(String, String, i32)> {
        &self.table.operations
    }

    /// Attribute keys of `scope`.
    pub fn keys(&self, scope: Scope) -> BTreeSet<String> {
        match scope {
            Scope::Span => self.table.span_keys.keys().cloned().collect(),
            Scope::Resource => holder_keys(&self.table.resources),
            Scope::Instrumentation => holder_keys(&self.table.scopes),
        }
    }

    /// The values (type name, string form) of attribute `key` in `scope`; `None` when the
    /// key has too many distinct values to be indexed (scan the block instead).
    pub fn values(
        &self,
        scope: Scope,
        key: &str,
    ) -> Result<Option<BTreeSet<(&'static str, String)>>> {
        let holders = match scope {
            Scope::Span => return self.span_values(key),
            Scope::Resource => &self.table.resources,
            Scope::Instrumentation => &self.table.scopes,
        };
        Ok(Some(
            holders
                .iter()
                .flat_map(|h| &h.attrs)
                .filter(|(k, _, _)| k == key)
                .map(|(_, ty, v)| (type_name_of_byte(*ty), v.clone()))
                .collect(),
        ))
    }

    fn span_values(&self, key: &str) -> Result<Option<BTreeSet<(&'static str, String)>>> {
        match self.table.span_keys.get(key) {
            None => return Ok(Some(BTreeSet::new())),
            Some(false) => return Ok(None),
            Some(true) => {}
        }
        let prefix = key_prefix(key);
        let mut end = prefix.clone();
        end.push(0xff);
        let mut out = BTreeSet::new();
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted = segment
                .inverted_index(self.fields.span_attr)
                .map_err(|e| self.corrupt(e))?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(&prefix)
                .lt(&end)
                .into_stream()
                .map_err(|e| self.corrupt(e))?;
            while stream.advance() {
                if let Some((&ty, value)) = stream.key()[prefix.len()..].split_first() {
                    out.insert((
                        type_name_of_byte(ty),
                        String::from_utf8_lossy(value).into_owned(),
                    ));
                }
            }
        }
        Ok(Some(out))
    }

    /// The traces that may have a span matching `q`, with what the index knows of each;
    /// `None` when `q` names a span attribute key the index has no terms for (scan the block
    /// instead). Traces not returned have no matching span.
    pub fn search(&self, q: &IndexQuery) -> Result<Option<Vec<TraceHit>>> {
        if q.tags
            .iter()
            .any(|(k, _)| self.table.span_keys.get(k) == Some(&false))
        {
            return Ok(None);
        }
        let searcher = self.reader.searcher();
        let Some(segment) = searcher.segment_readers().first() else {
            return Ok(Some(Vec::new()));
        };
        let n = segment.max_doc();
        let ff = segment.fast_fields();
        let column =
            |name: &str| -> Result<Column<u64>> { ff.u64(name).map_err(|e| self.corrupt(e)) };
        let (res, scope) = (column(field::RES)?, column(field::SCOPE)?);
        let by_holder = |col: &Column<u64>, wanted: &[bool], docs: &mut Docs| {
            if !wanted.iter().any(|w| *w) {
                return;
            }
            for d in 0..n {
                if col
                    .first(d)
                    .and_then(|h| wanted.get(h as usize))
                    .copied()
                    .unwrap_or(false)
                {
                    docs.insert(d);
                }
            }
        };
        let postings = |field: Field, term: Term, docs: &mut Docs| -> Result<()> {
            let inverted = segment.inverted_index(field).map_err(|e| self.corrupt(e))?;
            if let Some(mut p) = inverted
                .read_postings(&term, IndexRecordOption::Basic)
                .map_err(|e| self.corrupt(e))?
            {
                let mut d = p.doc();
                while d != TERMINATED {
                    docs.insert(d);
                    d = p.advance();
                }
            }
            Ok(())
        };

        let mut conditions: Vec<Docs> = Vec::new();
        if let Some(svc) = &q.service_name {
            let wanted: Vec<bool> = self
                .table
                .resources
                .iter()
                .map(|h| &h.service == svc)
                .collect();
            let mut docs = Docs::empty(n);
            by_holder(&res, &wanted, &mut docs);
            conditions.push(docs);
        }
        if let Some(name) = &q.span_name {
            let mut docs = Docs::empty(n);
            postings(
                self.fields.name,
                Term::from_field_text(self.fields.name, name),
                &mut docs,
            )?;
            conditions.push(docs);
        }
        for (k, v) in &q.tags {
            let mut docs = Docs::empty(n);
            if self.table.span_keys.contains_key(k) {
                for ty in TYPE_BYTES {
                    let t = Term::from_field_bytes(self.fields.span_attr, &term_bytes(k, ty, v));
                    postings(self.fields.span_attr, t, &mut docs)?;
                }
            }
            let has = |h: &Holder| h.attrs.iter().any(|(hk, _, hv)| hk == k && hv == v);
            let wanted: Vec<bool> = self.table.resources.iter().map(has).collect();
            by_holder(&res, &wanted, &mut docs);
            let wanted: Vec<bool> = self.table.scopes.iter().map(has).collect();
            by_holder(&scope, &wanted, &mut docs);
            conditions.push(docs);
        }
        let mut matching = match conditions.pop() {
            Some(d) => d,
            None => {
                let mut all = Docs::empty(n);
                (0..n).for_each(|d| all.insert(d));
                all
            }
        };
        for c in &conditions {
            matching.and(c);
        }
        if matching.is_empty() {
            return Ok(Some(Vec::new()));
        }

        let dur = column(field::DUR)?;
        let start = column(field::START)?;
        let bucket = |b: Option<u64>| b.map(duration_bucket);
        let (min_b, max_b) = (bucket(q.min_duration_nanos), bucket(q.max_duration_nanos));
        // Some(true): surely within the bounds; Some(false): surely not; None: same bucket as
        // a bound, only the span can tell.
        let dur_ok = |b: u64| -> Option<bool> {
            let lo = match min_b {
                Some(m) if b < m => Some(false),
                Some(m) if b == m => None,
                _ => Some(true),
            };
            let hi = match max_b {
                Some(m) if b > m => Some(false),
                Some(m) if b == m => None,
                _ => Some(true),
            };
            match (lo, hi) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }
        };
        let t = &self.table;
        let mut hits: Vec<TraceHit> = Vec::new();
        let mut trace = 0usize;
        for d in matching.iter() {
            while t.first_doc.get(trace + 1).is_some_and(|&next| next <= d) {
                trace += 1;
            }
            let Some(summary) = t.traces.get(trace) else {
                return Err(self.corrupt(format!("document {d} belongs to no trace")));
            };
            // Where the span's start lies against the span-level range: inside, outside, or
            // unknown (the range's edge falls in the span's start bucket; the spans must tell).
            let certain = match q.span_start {
                None => true,
                Some((lo, hi)) => {
                    let (trace_start, trace_end) = (
                        summary.start_unix_nano,
                        summary
                            .start_unix_nano
                            .saturating_add(summary.duration_nanos),
                    );
                    if trace_start > hi || trace_end < lo {
                        continue;
                    }
                    let (a, b) = bucket_range(start.first(d).unwrap_or(0));
                    let (first, last) =
                        (trace_start.saturating_add(a), trace_start.saturating_add(b));
                    if first > hi || last < lo {
                        continue;
                    }
                    lo <= first && last <= hi
                }
            };
            let span = match certain {
                true => dur_ok(dur.first(d).unwrap_or(0)),
                false => None,
            };
            match hits.last_mut() {
                Some(h) if h.ordinal == trace as u32 => {
                    h.certain |= certain;
                    h.span_match = match (h.span_match, span) {
                        (Some(true), _) | (_, Some(true)) => Some(true),
                        (Some(false), Some(false)) => Some(false),
                        _ => None,
                    };
                }
                _ => hits.push(TraceHit {
                    ordinal: trace as u32,
                    span_match: span,
                    certain,
                }),
            }
        }
        Ok(Some(hits))
    }
}

fn holder_keys(holders: &[Holder]) -> BTreeSet<String> {
    holders
        .iter()
        .flat_map(|h| h.attrs.iter().map(|(k, _, _)| k.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ranges_hold_their_values_and_tile_the_line() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        for i in 0..100_000u64 {
            let v = match i % 3 {
                0 => i,
                1 => rng.random::<u64>() >> rng.random_range(0..64),
                _ => u64::MAX - i,
            };
            let b = duration_bucket(v);
            let (lo, hi) = bucket_range(b);
            assert!(lo <= v && v <= hi, "{v} in bucket {b} = {lo}..={hi}");
            assert_eq!(duration_bucket(lo), b);
            assert_eq!(duration_bucket(hi), b);
            if hi < u64::MAX {
                assert_eq!(duration_bucket(hi + 1), b + 1, "buckets are contiguous");
            }
        }
    }
}
