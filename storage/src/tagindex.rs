//! The tag index of a block: a tantivy index of its spans plus a table of its traces, stored
//! as one object (`index`) next to `data.parquet`.
//!
//! It answers search, tag-name and tag-value listings without reading the Parquet data:
//!
//! - **one tantivy document per span**, added trace by trace, in one segment, so document
//!   `d` belongs to the trace whose span range holds `d`. Indexed terms: the span's service
//!   name (`svc`) and name (`name`), and every attribute as a term of its scope's field:
//!   `span_attr` (span, event and link attributes), `res_attr` (resource) and `scope_attr`
//!   (instrumentation scope). Fast fields: kind, status code, start relative to its trace's
//!   start within the block (`rel_start`, ns) and duration (`dur`, ns).
//! - **the trace table** (`traces.bin`, zstd): per trace, in document order, its ID and the
//!   summary of its spans in this block (start, duration, root, span and error counts per
//!   service); the attribute keys per scope; the (service, span name, kind) triples; the few
//!   attribute values too long to be index terms.
//!
//! An attribute term is the key's length (LEB128), the key, one type byte (`s` string, `i`
//! int, `f` double, `b` bool, `o` anything else) and the value's string form (as tags compare
//! it). Values longer than [`MAX_TERM_VALUE`] bytes are indexed by a 64-bit hash of the value
//! under type byte `h` and listed from the table.
//!
//! The bundle is a small container: the magic `SKTAGIX1`, the number of entries (u32 LE),
//! each entry's name (u16 LE length + UTF-8) and size (u64 LE), then the entries' bytes in
//! that order. Entries are `traces.bin` and the tantivy index files under `tantivy/`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::hash::Hasher;
use std::path::Path;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, STRING, Schema, TantivyDocument, Term,
};
use tantivy::{DocId, Index, IndexReader, Score, SegmentReader};

use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::model::SpanRecord;
use crate::otlp::common::v1::{KeyValue, any_value::Value as V};
use crate::query::{ServiceStats, TraceSummary, value_string};

/// Magic bytes that open an index bundle; the digit is the layout version.
pub const BUNDLE_MAGIC: &[u8; 8] = b"SKTAGIX1";
/// Longest attribute value (bytes of its string form) indexed as a term of its own.
pub const MAX_TERM_VALUE: usize = 1024;
const TRACES_ENTRY: &str = "traces.bin";
const TANTIVY_DIR: &str = "tantivy";
/// Indexing memory of one build; tantivy needs at least 15 MB.
const WRITER_MEMORY: usize = 64 << 20;

mod field {
    pub const SVC: &str = "svc";
    pub const NAME: &str = "name";
    pub const SPAN_ATTR: &str = "span_attr";
    pub const RES_ATTR: &str = "res_attr";
    pub const SCOPE_ATTR: &str = "scope_attr";
    pub const KIND: &str = "kind";
    pub const STATUS: &str = "status";
    pub const REL_START: &str = "rel_start";
    pub const DUR: &str = "dur";
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    svc: Field,
    name: Field,
    span_attr: Field,
    res_attr: Field,
    scope_attr: Field,
    kind: Field,
    status: Field,
    rel_start: Field,
    dur: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let bytes = BytesOptions::default().set_indexed();
    let fields = Fields {
        svc: b.add_text_field(field::SVC, STRING),
        name: b.add_text_field(field::NAME, STRING),
        span_attr: b.add_bytes_field(field::SPAN_ATTR, bytes.clone()),
        res_attr: b.add_bytes_field(field::RES_ATTR, bytes.clone()),
        scope_attr: b.add_bytes_field(field::SCOPE_ATTR, bytes),
        kind: b.add_u64_field(field::KIND, FAST),
        status: b.add_u64_field(field::STATUS, FAST),
        rel_start: b.add_u64_field(field::REL_START, FAST),
        dur: b.add_u64_field(field::DUR, FAST),
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
        svc: get(field::SVC)?,
        name: get(field::NAME)?,
        span_attr: get(field::SPAN_ATTR)?,
        res_attr: get(field::RES_ATTR)?,
        scope_attr: get(field::SCOPE_ATTR)?,
        kind: get(field::KIND)?,
        status: get(field::STATUS)?,
        rel_start: get(field::REL_START)?,
        dur: get(field::DUR)?,
    })
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

impl Scope {
    fn code(self) -> u8 {
        match self {
            Scope::Span => 0,
            Scope::Resource => 1,
            Scope::Instrumentation => 2,
        }
    }
}

/// The type name tag-value listings report for a value.
pub fn type_name(v: &KeyValue) -> &'static str {
    match v.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::IntValue(_)) => "int",
        Some(V::DoubleValue(_)) => "float",
        Some(V::BoolValue(_)) => "bool",
        _ => "string",
    }
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

fn key_prefix(key: &str) -> Vec<u8> {
    let mut t = Vec::with_capacity(key.len() + 3);
    push_varint(&mut t, key.len() as u64);
    t.extend_from_slice(key.as_bytes());
    t
}

fn value_hash(value: &str) -> u64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.write(value.as_bytes());
    h.finish()
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The index terms `key` = `value` (any type) may have been indexed under.
fn query_terms(key: &str, value: &str) -> Vec<Vec<u8>> {
    let prefix = key_prefix(key);
    if value.len() > MAX_TERM_VALUE {
        let mut t = prefix;
        t.push(b'h');
        t.extend_from_slice(&value_hash(value).to_le_bytes());
        return vec![t];
    }
    TYPE_BYTES
        .iter()
        .map(|&ty| {
            let mut t = prefix.clone();
            t.push(ty);
            t.extend_from_slice(value.as_bytes());
            t
        })
        .collect()
}

/// One attribute as its index term, or as a long value (term by hash, value kept aside).
fn attr_term(kv: &KeyValue) -> (Vec<u8>, Option<String>) {
    let value = kv.value.as_ref().map(value_string).unwrap_or_default();
    let mut t = key_prefix(&kv.key);
    if value.len() > MAX_TERM_VALUE {
        t.push(b'h');
        t.extend_from_slice(&value_hash(&value).to_le_bytes());
        return (t, Some(value));
    }
    t.push(type_byte(kv));
    t.extend_from_slice(value.as_bytes());
    (t, None)
}

/// Builds the index bundle of a block's spans. The spans may come in any order; they are
/// grouped by trace. CPU-heavy: run it on a blocking thread.
pub fn build(spans: &[&SpanRecord]) -> Result<Vec<u8>> {
    let mut by_trace: BTreeMap<TraceId, Vec<&SpanRecord>> = BTreeMap::new();
    for s in spans {
        by_trace.entry(s.trace_id()?).or_default().push(s);
    }
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
    let mut writer = Index::builder()
        .schema(schema)
        .single_segment_index_writer::<TantivyDocument>(mmap, WRITER_MEMORY)
        .map_err(tantivy_err)?;

    let mut table = TableBuilder::default();
    for (id, trace) in &by_trace {
        let owned: Vec<SpanRecord> = trace.iter().map(|s| (*s).clone()).collect();
        let Some(summary) = TraceSummary::from_spans(&owned) else {
            continue;
        };
        for s in trace {
            let mut doc = TantivyDocument::default();
            doc.add_text(f.svc, s.service_name());
            doc.add_text(f.name, &s.span.name);
            let mut add = |field: Field, scope: Scope, attrs: &[KeyValue]| {
                for kv in attrs {
                    let (term, long) = attr_term(kv);
                    doc.add_bytes(field, &term);
                    table.keys.insert((scope.code(), kv.key.clone()));
                    if let Some(v) = long {
                        table
                            .long_values
                            .insert((scope.code(), kv.key.clone(), type_byte(kv), v));
                    }
                }
            };
            add(f.span_attr, Scope::Span, &s.span.attributes);
            for e in &s.span.events {
                add(f.span_attr, Scope::Span, &e.attributes);
            }
            for l in &s.span.links {
                add(f.span_attr, Scope::Span, &l.attributes);
            }
            add(f.res_attr, Scope::Resource, &s.resource.resource.attributes);
            add(
                f.scope_attr,
                Scope::Instrumentation,
                &s.scope.scope.attributes,
            );
            doc.add_u64(f.kind, s.span.kind.max(0) as u64);
            doc.add_u64(
                f.status,
                s.span.status.as_ref().map_or(0, |st| st.code.max(0) as u64),
            );
            doc.add_u64(
                f.rel_start,
                s.span.start_time_unix_nano - summary.start_unix_nano,
            );
            doc.add_u64(f.dur, s.duration_nanos());
            writer.add_document(doc).map_err(tantivy_err)?;
            table.operations.insert((
                s.service_name().to_owned(),
                s.span.name.clone(),
                s.span.kind,
            ));
        }
        debug_assert_eq!(summary.trace_id, *id);
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
    out.extend_from_slice(BUNDLE_MAGIC);
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
    if r.take(8).ok_or_else(|| corrupt("truncated"))? != BUNDLE_MAGIC {
        return Err(corrupt("not a tag index bundle of this version"));
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
        if name.contains("..") || name.starts_with('/') {
            return Err(corrupt("entry name escapes the index directory"));
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

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.take(1)?.first()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }
}

#[derive(Default)]
struct TableBuilder {
    traces: Vec<TraceSummary>,
    keys: BTreeSet<(u8, String)>,
    operations: BTreeSet<(String, String, i32)>,
    long_values: BTreeSet<(u8, String, u8, String)>,
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

impl TableBuilder {
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
        push_varint(&mut body, self.keys.len() as u64);
        for (scope, key) in &self.keys {
            body.push(*scope);
            push_varint(&mut body, strings.id(key));
        }
        push_varint(&mut body, self.operations.len() as u64);
        for (svc, name, kind) in &self.operations {
            push_varint(&mut body, strings.id(svc));
            push_varint(&mut body, strings.id(name));
            push_varint(&mut body, u64::from(*kind as u32));
        }
        push_varint(&mut body, self.long_values.len() as u64);
        for (scope, key, ty, value) in &self.long_values {
            body.push(*scope);
            push_varint(&mut body, strings.id(key));
            body.push(*ty);
            push_varint(&mut body, strings.id(value));
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

/// The decoded trace table.
#[derive(Debug, Default)]
struct Table {
    traces: Vec<TraceSummary>,
    /// First document of each trace, plus the document count at the end.
    first_doc: Vec<u32>,
    keys: BTreeSet<(u8, String)>,
    operations: BTreeSet<(String, String, i32)>,
    long_values: BTreeSet<(u8, String, u8, String)>,
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
            let len = usize::try_from(r.varint()?).ok()?;
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
        for _ in 0..r.varint()? {
            let scope = *r.take(1)?.first()?;
            t.keys.insert((scope, s(r.varint()?)?));
        }
        for _ in 0..r.varint()? {
            let svc = s(r.varint()?)?;
            let name = s(r.varint()?)?;
            let kind = r.u32()? as i32;
            t.operations.insert((svc, name, kind));
        }
        for _ in 0..r.varint()? {
            let scope = *r.take(1)?.first()?;
            let key = s(r.varint()?)?;
            let ty = *r.take(1)?.first()?;
            let value = s(r.varint()?)?;
            t.long_values.insert((scope, key, ty, value));
        }
        (r.pos == raw.len()).then_some(t)
    }
}

/// Writes a bundle's entries as files under `dir` (which must not exist yet; it is created).
/// The directory can then be opened with [`TagIndex::open`].
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
    /// A candidate span must start within this range (ns, inclusive), when set.
    pub span_start: Option<(u64, u64)>,
    /// Span duration bounds (ns, inclusive) for [`TraceHit::span_match`].
    pub min_duration_nanos: Option<u64>,
    /// See `min_duration_nanos`.
    pub max_duration_nanos: Option<u64>,
}

/// A trace of the block with a span matching an [`IndexQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHit {
    /// Position of the trace in the block's table.
    pub ordinal: u32,
    /// Earliest start of its matching spans (ns since the epoch).
    pub first_match_start: u64,
    /// Some matching span also satisfies the duration bounds.
    pub span_match: bool,
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
        let docs: u64 = reader
            .searcher()
            .segment_readers()
            .iter()
            .map(|s| u64::from(s.max_doc()))
            .sum();
        if reader.searcher().segment_readers().len() > 1
            || docs != u64::from(*table.first_doc.last().unwrap_or(&0))
        {
            return Err(Error::corrupt(
                "tag index",
                location,
                "the index and its trace table disagree",
            ));
        }
        Ok(TagIndex {
            reader,
            fields,
            table,
            location: location.to_owned(),
        })
    }

    /// Traces in the block.
    pub fn trace_count(&self) -> usize {
        self.table.traces.len()
    }

    /// The summary of trace `ordinal`'s spans in this block.
    pub fn summary(&self, ordinal: u32) -> Option<&TraceSummary> {
        self.table.traces.get(ordinal as usize)
    }

    /// Every (service, span name, span kind) in the block.
    pub fn operations(&self) -> &BTreeSet<(String, String, i32)> {
        &self.table.operations
    }

    /// Attribute keys of `scope`.
    pub fn keys(&self, scope: Scope) -> impl Iterator<Item = &str> {
        let code = scope.code();
        self.table
            .keys
            .iter()
            .filter(move |(s, _)| *s == code)
            .map(|(_, k)| k.as_str())
    }

    /// The values (type name, string form) of attribute `key` in `scope`.
    pub fn values(&self, scope: Scope, key: &str) -> Result<BTreeSet<(&'static str, String)>> {
        let field = match scope {
            Scope::Span => self.fields.span_attr,
            Scope::Resource => self.fields.res_attr,
            Scope::Instrumentation => self.fields.scope_attr,
        };
        let prefix = key_prefix(key);
        let mut end = prefix.clone();
        end.push(0xff);
        let mut out = BTreeSet::new();
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted = segment.inverted_index(field).map_err(|e| self.corrupt(e))?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(&prefix)
                .lt(&end)
                .into_stream()
                .map_err(|e| self.corrupt(e))?;
            while stream.advance() {
                let Some((&ty, value)) = stream.key()[prefix.len()..].split_first() else {
                    continue;
                };
                if ty == b'h' {
                    continue; // long values come from the table
                }
                out.insert((
                    type_name_of_byte(ty),
                    String::from_utf8_lossy(value).into_owned(),
                ));
            }
        }
        let code = scope.code();
        for (s, k, ty, v) in &self.table.long_values {
            if *s == code && k == key {
                out.insert((type_name_of_byte(*ty), v.clone()));
            }
        }
        Ok(out)
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        Error::corrupt("tag index", &self.location, e)
    }

    /// The traces with a span matching `q`'s terms (and span start range).
    pub fn search(&self, q: &IndexQuery) -> Result<Vec<TraceHit>> {
        let f = self.fields;
        let term =
            |t: Term| -> Box<dyn Query> { Box::new(TermQuery::new(t, IndexRecordOption::Basic)) };
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(s) = &q.service_name {
            must.push((Occur::Must, term(Term::from_field_text(f.svc, s))));
        }
        if let Some(n) = &q.span_name {
            must.push((Occur::Must, term(Term::from_field_text(f.name, n))));
        }
        for (k, v) in &q.tags {
            let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for t in query_terms(k, v) {
                for field in [f.span_attr, f.res_attr, f.scope_attr] {
                    any.push((Occur::Should, term(Term::from_field_bytes(field, &t))));
                }
            }
            must.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        let query: Box<dyn Query> = if must.is_empty() {
            Box::new(AllQuery)
        } else {
            Box::new(BooleanQuery::new(must))
        };
        let collector = HitCollector { index: self, q };
        self.reader
            .searcher()
            .search(query.as_ref(), &collector)
            .map_err(|e| self.corrupt(e))
    }
}

struct HitCollector<'a> {
    index: &'a TagIndex,
    q: &'a IndexQuery,
}

struct HitSegment {
    /// (ordinal, first_match_start, span_match), per matching trace.
    hits: HashMap<u32, (u64, bool)>,
    starts: Vec<(u32, u32, u64)>,
    rel_start: tantivy::columnar::Column<u64>,
    dur: tantivy::columnar::Column<u64>,
    q: IndexQuery,
    error: Option<String>,
}

impl Collector for HitCollector<'_> {
    type Fruit = Vec<TraceHit>;
    type Child = HitSegment;

    fn for_segment(&self, _ord: u32, segment: &SegmentReader) -> tantivy::Result<HitSegment> {
        let ff = segment.fast_fields();
        // The trace of each document, with the trace's start, resolved per document below.
        let t = &self.index.table;
        let starts = t
            .traces
            .iter()
            .enumerate()
            .map(|(i, s)| (t.first_doc[i], t.first_doc[i + 1], s.start_unix_nano))
            .collect();
        Ok(HitSegment {
            hits: HashMap::new(),
            starts,
            rel_start: ff.u64(field::REL_START)?,
            dur: ff.u64(field::DUR)?,
            q: self.q.clone(),
            error: None,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<TraceHit>>) -> tantivy::Result<Vec<TraceHit>> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for HitSegment {
    type Fruit = Vec<TraceHit>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let i = self.starts.partition_point(|&(first, _, _)| first <= doc);
        let Some(&(_, end, trace_start)) = i.checked_sub(1).and_then(|i| self.starts.get(i)) else {
            self.error = Some(format!("document {doc} belongs to no trace"));
            return;
        };
        if doc >= end {
            self.error = Some(format!("document {doc} belongs to no trace"));
            return;
        }
        let (Some(rel), Some(dur)) = (self.rel_start.first(doc), self.dur.first(doc)) else {
            self.error = Some(format!("document {doc} lacks its times"));
            return;
        };
        let start = trace_start.saturating_add(rel);
        if let Some((lo, hi)) = self.q.span_start
            && !(lo <= start && start <= hi)
        {
            return;
        }
        let dur_ok = self.q.min_duration_nanos.is_none_or(|m| dur >= m)
            && self.q.max_duration_nanos.is_none_or(|m| dur <= m);
        let e = self.hits.entry((i - 1) as u32).or_insert((u64::MAX, false));
        e.0 = e.0.min(start);
        e.1 |= dur_ok;
    }

    fn harvest(self) -> Vec<TraceHit> {
        if let Some(e) = self.error {
            tracing::warn!("tag index: {e}");
        }
        let mut out: Vec<TraceHit> = self
            .hits
            .into_iter()
            .map(|(ordinal, (first_match_start, span_match))| TraceHit {
                ordinal,
                first_match_start,
                span_match,
            })
            .collect();
        out.sort_by_key(|h| h.ordinal);
        out
    }
}
