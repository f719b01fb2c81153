//! The row index (`rows`): the index every block has from birth. An ingester writes it with
//! each block it cuts, built from the Arrow columns it encodes, so that a search finds the
//! candidate traces of the newest blocks without scanning them, before the compactor gives
//! them a tag index.
//!
//! For each indexed value — span name, kind and status, duration bucket, span attribute and
//! resource attribute (key, type, string form) — a roaring bitmap of the rows (spans, in
//! `data.parquet` order) holding it; and for each trace its ID, first row, earliest start and
//! latest end. An attribute key with too many distinct values in the block (or values too
//! long) gets no bitmaps: it is recorded as unindexed, and a condition on it selects every
//! row. Answers are a superset of the traces with a span satisfying a condition (scope
//! attributes, values in events and links and negative durations are not told apart); the
//! search reads every candidate whole and judges it, so a superset costs reads, never
//! answers.
//!
//! Encoding: the magic `SKROWIX1`, then one zstd frame holding varint-framed sections; see
//! `docs/block-format.md`.

use std::collections::{BTreeMap, BTreeSet};

use foldhash::HashMap;
use std::ops::Range;

use arrow::array::{
    Array, BooleanArray, FixedSizeBinaryArray, Float64Array, Int8Array, Int32Array, Int64Array,
    ListArray, StringArray, StructArray, TimestampNanosecondArray,
};
use arrow::record_batch::RecordBatch;
use roaring::RoaringBitmap;

use crate::block::rows::{corrupt, typed};
use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::model::value_string;
use crate::otlp::common::v1::{AnyValue, any_value::Value as V};
use crate::schema::{AttrScope, AttrType, DEDICATED, DedicatedType, attr, col};
use crate::tagindex::cursor::{Cursor, push_varint};
use crate::tagindex::{
    IndexCondition, MAX_INDEXED_VALUES, MAX_TERM_VALUE, SPANS_PER_INDEXED_VALUE,
};

/// The first bytes of a row index object.
pub const MAGIC: &[u8; 8] = b"SKROWIX1";

const NAME: u8 = 1;
const KIND_STATUS: u8 = 2;
const DURATION: u8 = 3;
const SPAN_ATTR: u8 = 4;
const RESOURCE_ATTR: u8 = 5;
/// The one resource attribute indexed.
const SERVICE: &str = "service.name";

/// The duration bucket of a span: 0 for 0 ns, `b` for [2^(b-1), 2^b) ns, 65 for a span that
/// ends before it starts.
fn duration_bucket(d: i64) -> u8 {
    match d {
        ..0 => 65,
        0 => 0,
        d => (64 - (d as u64).leading_zeros()) as u8,
    }
}

fn bucket_range(b: u8) -> (u64, u64) {
    match b {
        0 => (0, 0),
        64 => (1 << 63, u64::MAX),
        b => (1 << (b - 1), (1 << b) - 1),
    }
}

/// One trace of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowTrace {
    /// Its ID.
    pub trace_id: TraceId,
    /// Its first row in `data.parquet`.
    pub first_row: u32,
    /// Its earliest span start here.
    pub start_unix_nano: u64,
    /// Its latest span end here.
    pub end_unix_nano: u64,
}

/// Where a value was seen: its row, and its trace's ordinal.
#[derive(Debug, Clone, Copy)]
struct Member {
    row: u32,
    trace: u32,
}

/// Whether the bitmaps of `key` of `field` hold rows (span name, kind and status, duration,
/// service: the fields searches combine within one span) rather than traces (attributes: a
/// trace's spans share most values, so a value costs one entry per trace instead of one per
/// span).
fn per_row(field: u8, key: &str) -> bool {
    matches!(field, NAME | KIND_STATUS | DURATION) || (field == RESOURCE_ATTR && key == SERVICE)
}

/// The terms of one (field, key) while building.
#[derive(Debug, Default)]
struct KeyTerms {
    /// Too many distinct values, a value too long or of a type the index does not hold.
    unindexed: bool,
    values: HashMap<Vec<u8>, RoaringBitmap>,
}

/// Builds a row index from the record batches of a block, in row order.
#[derive(Debug, Default)]
pub struct RowIndexBuilder {
    rows: u32,
    traces: Vec<RowTrace>,
    /// Per field (index = field byte), per key.
    fields: [HashMap<String, KeyTerms>; 6],
    /// Scratch for one term.
    term: Vec<u8>,
}

/// A value as the index holds it: its type byte and string form (written into a buffer), or
/// `None` for a type it does not hold.
enum ValueRef<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Double(f64),
    Other,
}

/// A generic attribute list.
struct AttrList<'a> {
    list: &'a ListArray,
    key: &'a StringArray,
    ty: &'a Int8Array,
    str: &'a StringArray,
    int: &'a Int64Array,
    double: &'a Float64Array,
    bool: &'a BooleanArray,
}

impl<'a> AttrList<'a> {
    fn new(batch: &'a RecordBatch, name: &str) -> Result<Self> {
        let list: &ListArray = typed(batch, name)?;
        let items = list
            .values()
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| corrupt(format!("{name} is not a list of structs")))?;
        fn field<'b, T: 'static>(s: &'b StructArray, n: &str) -> Result<&'b T> {
            s.column_by_name(n)
                .and_then(|c| c.as_any().downcast_ref::<T>())
                .ok_or_else(|| corrupt(format!("attribute field {n} missing or mistyped")))
        }
        Ok(AttrList {
            list,
            key: field(items, attr::KEY)?,
            ty: field(items, attr::TYPE)?,
            str: field(items, attr::STR)?,
            int: field(items, attr::INT)?,
            double: field(items, attr::DOUBLE)?,
            bool: field(items, attr::BOOL)?,
        })
    }

    /// The entries of `row`.
    fn entries(&self, row: usize) -> impl Iterator<Item = (&'a str, ValueRef<'a>)> + '_ {
        let offsets = self.list.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize).map(move |j| {
            let value = match AttrType::from_i8(self.ty.value(j)) {
                Some(AttrType::String) => ValueRef::Str(self.str.value(j)),
                Some(AttrType::Int) => ValueRef::Int(self.int.value(j)),
                Some(AttrType::Bool) => ValueRef::Bool(self.bool.value(j)),
                Some(AttrType::Double) => ValueRef::Double(self.double.value(j)),
                _ => ValueRef::Other,
            };
            (self.key.value(j), value)
        })
    }
}

impl RowIndexBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn key_terms(&mut self, field: u8, key: &str) -> &mut KeyTerms {
        let map = &mut self.fields[field as usize];
        if !map.contains_key(key) {
            map.insert(key.to_owned(), KeyTerms::default());
        }
        map.get_mut(key).expect("inserted above")
    }

    /// Adds `row` to the term of `key` = `value` of `field`.
    fn add(&mut self, field: u8, key: &str, value: ValueRef<'_>, at: Member) {
        use std::io::Write;
        let mut term = std::mem::take(&mut self.term);
        term.clear();
        match value {
            ValueRef::Str(v) => {
                term.push(b's');
                term.extend_from_slice(v.as_bytes());
            }
            ValueRef::Int(v) => {
                term.push(b'i');
                let _ = write!(term, "{v}");
            }
            ValueRef::Bool(v) => {
                term.push(b'b');
                let _ = write!(term, "{v}");
            }
            ValueRef::Double(v) => {
                term.push(b'f');
                term.extend_from_slice(
                    value_string(&AnyValue {
                        value: Some(V::DoubleValue(v)),
                    })
                    .as_bytes(),
                );
            }
            ValueRef::Other => {
                self.key_terms(field, key).unindexed = true;
                self.term = term;
                return;
            }
        }
        self.add_term(field, key, &term, at);
        self.term = term;
    }

    fn add_term(&mut self, field: u8, key: &str, term: &[u8], at: Member) {
        let row = match per_row(field, key) {
            true => at.row,
            false => at.trace,
        };
        let limit = self.limit();
        let k = self.key_terms(field, key);
        if k.unindexed {
            return;
        }
        if let Some(b) = k.values.get_mut(term) {
            b.insert(row);
            return;
        }
        if term.len() > MAX_TERM_VALUE + 1 || (field != NAME && k.values.len() >= limit) {
            // Values past the limit: the key is not indexed. Its bitmaps are dropped now, so
            // memory stays bounded by the limit.
            k.unindexed = true;
            k.values = HashMap::default();
            return;
        }
        let mut b = RoaringBitmap::new();
        b.insert(row);
        k.values.insert(term.to_vec(), b);
    }

    /// Distinct values a key may have and be indexed. Counted against the rows so far, so a
    /// key can only be given up on early, never kept beyond the final limit.
    fn limit(&self) -> usize {
        MAX_INDEXED_VALUES.max(self.rows as usize / SPANS_PER_INDEXED_VALUE)
    }

    /// Adds the rows of `batch` (a batch of the current `data.parquet` schema, whole traces
    /// in trace-ID order, following the rows added before).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let ids: &FixedSizeBinaryArray = typed(batch, col::TRACE_ID)?;
        let trace_start: &TimestampNanosecondArray = typed(batch, col::TRACE_START)?;
        let offsets: &Int64Array = typed(batch, col::START_OFFSET)?;
        let durations: &Int64Array = typed(batch, col::DURATION)?;
        let names: &StringArray = typed(batch, col::NAME)?;
        let kinds: &Int32Array = typed(batch, col::KIND)?;
        let codes: &Int32Array = typed(batch, col::STATUS_CODE)?;
        let attrs = AttrList::new(batch, col::ATTRS)?;
        let events: &ListArray = typed(batch, col::EVENTS)?;
        let links: &ListArray = typed(batch, col::LINKS)?;
        let event_attrs = nested_attrs(events)?;
        let link_attrs = nested_attrs(links)?;
        // Of the resource attributes only `service.name` is indexed: searches name the
        // service, and every other key would cost a lookup per span for values that rarely
        // narrow a search.
        let dedicated: Vec<(&'static str, u8, &dyn Array, DedicatedType)> = DEDICATED
            .iter()
            .filter(|d| d.scope == AttrScope::Span || d.key == SERVICE)
            .filter_map(|d| {
                let field = match d.scope {
                    AttrScope::Span => SPAN_ATTR,
                    AttrScope::Resource => RESOURCE_ATTR,
                };
                Some((d.key, field, batch.column_by_name(d.column)?.as_ref(), d.ty))
            })
            .collect();
        for i in 0..batch.num_rows() {
            let row = self.rows;
            self.rows = self
                .rows
                .checked_add(1)
                .ok_or_else(|| Error::invalid("block", "more than 2^32 rows"))?;
            let id = TraceId::from_bytes(ids.value(i))?;
            let start = (trace_start.value(i) as u64).wrapping_add(offsets.value(i) as u64);
            let end = start.wrapping_add(durations.value(i) as u64);
            match self.traces.last_mut() {
                Some(t) if t.trace_id == id => {
                    t.start_unix_nano = t.start_unix_nano.min(start);
                    t.end_unix_nano = t.end_unix_nano.max(end);
                }
                _ => self.traces.push(RowTrace {
                    trace_id: id,
                    first_row: row,
                    start_unix_nano: start,
                    end_unix_nano: end,
                }),
            }
            let at = Member {
                row,
                trace: (self.traces.len() - 1) as u32,
            };
            self.add_term(NAME, "", names.value(i).as_bytes(), at);
            let ks =
                u64::from(kinds.value(i).max(0) as u32) * 4 + codes.value(i).clamp(0, 3) as u64;
            self.add_term(KIND_STATUS, "", &ks.to_le_bytes(), at);
            self.add_term(DURATION, "", &[duration_bucket(durations.value(i))], at);
            for (key, field, column, ty) in &dedicated {
                if column.is_null(i) {
                    continue;
                }
                let value = match ty {
                    DedicatedType::Str => column
                        .as_any()
                        .downcast_ref::<StringArray>()
                        .map_or(ValueRef::Other, |a| ValueRef::Str(a.value(i))),
                    DedicatedType::Int => column
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .map_or(ValueRef::Other, |a| ValueRef::Int(a.value(i))),
                };
                self.add(*field, key, value, at);
            }
            for (k, v) in attrs.entries(i) {
                self.add(SPAN_ATTR, k, v, at);
            }
            // Event and link attributes count as the span's for a condition: their keys are
            // left unindexed rather than told apart.
            for (list, nested) in [(events, &event_attrs), (links, &link_attrs)] {
                let Some(nested) = nested else { continue };
                let o = list.value_offsets();
                for e in o[i] as usize..o[i + 1] as usize {
                    nested.for_each(e, |k, ()| self.key_terms(SPAN_ATTR, k).unindexed = true);
                }
            }
        }
        Ok(())
    }

    /// The encoded row index.
    pub fn finish(self) -> Result<Vec<u8>> {
        let mut unindexed: Vec<(u8, &str)> = Vec::new();
        let mut terms: Vec<(u8, &str, &[u8], &RoaringBitmap)> = Vec::new();
        for (field, map) in self.fields.iter().enumerate() {
            for (key, k) in map {
                if k.unindexed {
                    unindexed.push((field as u8, key));
                    continue;
                }
                terms.extend(
                    k.values
                        .iter()
                        .map(|(t, b)| (field as u8, key.as_str(), t.as_slice(), b)),
                );
            }
        }
        unindexed.sort_unstable();
        terms.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));

        let mut body = Vec::new();
        push_varint(&mut body, u64::from(self.rows));
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
            push_varint(&mut body, u64::from(t.first_row));
            push_varint(&mut body, t.start_unix_nano - base);
            push_varint(&mut body, t.end_unix_nano.wrapping_sub(t.start_unix_nano));
        }
        push_varint(&mut body, unindexed.len() as u64);
        for (field, key) in &unindexed {
            body.push(*field);
            push_bytes(&mut body, key.as_bytes());
        }
        push_varint(&mut body, terms.len() as u64);
        let mut bitmap = Vec::new();
        for (field, key, term, rows) in terms {
            body.push(field);
            push_bytes(&mut body, key.as_bytes());
            push_bytes(&mut body, term);
            bitmap.clear();
            rows.serialize_into(&mut bitmap)
                .map_err(|e| Error::Task(format!("row index: {e}")))?;
            push_bytes(&mut body, &bitmap);
        }
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(
            &zstd::bulk::compress(&body, 3).map_err(|e| Error::Task(format!("row index: {e}")))?,
        );
        Ok(out)
    }
}

fn nested_attrs(list: &ListArray) -> Result<Option<AttrListNested<'_>>> {
    let items = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| corrupt("a nested list is not a list of structs"))?;
    let Some(attrs) = items
        .column_by_name("attrs")
        .and_then(|c| c.as_any().downcast_ref::<ListArray>())
    else {
        return Ok(None);
    };
    let keys = attrs
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .and_then(|s| s.column_by_name(attr::KEY))
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| corrupt("nested attribute keys missing"))?;
    Ok(Some(AttrListNested { list: attrs, keys }))
}

/// The attribute keys of events or links.
struct AttrListNested<'a> {
    list: &'a ListArray,
    keys: &'a StringArray,
}

impl AttrListNested<'_> {
    fn for_each(&self, item: usize, mut f: impl FnMut(&str, ())) {
        let o = self.list.value_offsets();
        for j in o[item] as usize..o[item + 1] as usize {
            f(self.keys.value(j), ());
        }
    }
}

fn push_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    push_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// A length-prefixed byte string.
fn framed<'a>(c: &mut Cursor<'a>) -> Option<&'a [u8]> {
    let n = c.len()?;
    c.take(n)
}

/// Rows or traces that may satisfy a condition.
enum Set {
    Rows(RoaringBitmap),
    Traces(RoaringBitmap),
}

/// A decoded row index.
#[derive(Debug)]
pub struct RowIndex {
    rows: u32,
    traces: Vec<RowTrace>,
    unindexed: BTreeSet<(u8, String)>,
    /// Every term of each (field, key).
    terms: BTreeMap<(u8, String), BTreeMap<Vec<u8>, RoaringBitmap>>,
}

impl RowIndex {
    /// Decodes a row index object; `location` names it in errors.
    pub fn decode(bytes: &[u8], location: &str) -> Result<RowIndex> {
        let bad = |why: &str| Error::corrupt("row index", location.to_owned(), why.to_owned());
        let body = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a row index (magic)"))?;
        let body = zstd::stream::decode_all(body).map_err(|e| bad(&e.to_string()))?;
        Self::decode_body(&body).ok_or_else(|| bad("truncated or malformed"))
    }

    fn decode_body(body: &[u8]) -> Option<RowIndex> {
        let mut r = Cursor { buf: body, pos: 0 };
        let rows = u32::try_from(r.varint()?).ok()?;
        let n = usize::try_from(r.varint()?).ok()?;
        let base = r.varint()?;
        let mut traces = Vec::with_capacity(n.min(body.len() / 17));
        for _ in 0..n {
            let id: [u8; 16] = r.array()?;
            let first_row = u32::try_from(r.varint()?).ok()?;
            let start = base.checked_add(r.varint()?)?;
            let end = start.wrapping_add(r.varint()?);
            if first_row >= rows
                || traces
                    .last()
                    .is_some_and(|t: &RowTrace| t.first_row >= first_row)
            {
                return None;
            }
            traces.push(RowTrace {
                trace_id: TraceId(id),
                first_row,
                start_unix_nano: start,
                end_unix_nano: end,
            });
        }
        let mut unindexed = BTreeSet::new();
        for _ in 0..r.varint()? {
            let field = r.byte()?;
            let key = std::str::from_utf8(framed(&mut r)?).ok()?.to_owned();
            unindexed.insert((field, key));
        }
        let mut terms: BTreeMap<(u8, String), BTreeMap<Vec<u8>, RoaringBitmap>> = BTreeMap::new();
        for _ in 0..r.varint()? {
            let field = r.byte()?;
            let key = std::str::from_utf8(framed(&mut r)?).ok()?.to_owned();
            let term = framed(&mut r)?.to_vec();
            let bitmap = RoaringBitmap::deserialize_from(framed(&mut r)?).ok()?;
            let universe = match per_row(field, &key) {
                true => rows as usize,
                false => traces.len(),
            };
            if bitmap.max().is_some_and(|m| m as usize >= universe) {
                return None;
            }
            terms.entry((field, key)).or_default().insert(term, bitmap);
        }
        (r.pos == body.len()).then_some(RowIndex {
            rows,
            traces,
            unindexed,
            terms,
        })
    }

    /// The block's traces, in trace-ID order.
    pub fn traces(&self) -> &[RowTrace] {
        &self.traces
    }

    /// The rows of trace `ordinal`.
    pub fn rows_of(&self, ordinal: usize) -> Option<Range<u64>> {
        let first = self.traces.get(ordinal)?.first_row;
        let end = self
            .traces
            .get(ordinal + 1)
            .map_or(self.rows, |t| t.first_row);
        Some(u64::from(first)..u64::from(end))
    }

    /// Whether span attribute `key` has values here: `Some(true)` when they are indexed,
    /// `Some(false)` when spans have it but its values are not, `None` when no span has it.
    pub fn span_key_terms(&self, key: &str) -> Option<bool> {
        let k = (SPAN_ATTR, key.to_owned());
        if self.unindexed.contains(&k) {
            return Some(false);
        }
        self.terms.contains_key(&k).then_some(true)
    }

    fn all_traces(&self) -> Set {
        let mut b = RoaringBitmap::new();
        b.insert_range(0..self.traces.len() as u32);
        Set::Traces(b)
    }

    fn term(&self, field: u8, key: &str, term: &[u8]) -> Option<&RoaringBitmap> {
        self.terms.get(&(field, key.to_owned()))?.get(term)
    }

    /// The traces of the rows in `rows`.
    fn traces_of(&self, rows: &RoaringBitmap) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        let mut t = 0usize;
        for row in rows.iter() {
            while self
                .traces
                .get(t + 1)
                .is_some_and(|next| next.first_row <= row)
            {
                t += 1;
            }
            let _ = out.try_push(t as u32);
        }
        out
    }

    fn to_traces(&self, s: Set) -> RoaringBitmap {
        match s {
            Set::Rows(r) => self.traces_of(&r),
            Set::Traces(t) => t,
        }
    }

    /// The traces with a span that may satisfy `c` (a superset of those that have one).
    pub fn trace_set(&self, c: &IndexCondition) -> RoaringBitmap {
        let s = self.set(c);
        self.to_traces(s)
    }

    /// What any of `sets` holds: rows when they all are rows, else traces.
    fn union(&self, sets: impl Iterator<Item = Set>) -> Set {
        let (mut rows, mut traces) = (RoaringBitmap::new(), None::<RoaringBitmap>);
        for s in sets {
            match s {
                Set::Rows(r) => rows |= r,
                Set::Traces(t) => *traces.get_or_insert_default() |= t,
            }
        }
        match traces {
            None => Set::Rows(rows),
            Some(t) => Set::Traces(self.traces_of(&rows) | t),
        }
    }

    /// What may satisfy `c`: rows when every part of it is decided per row, else traces.
    fn set(&self, c: &IndexCondition) -> Set {
        match c {
            IndexCondition::All => self.all_traces(),
            IndexCondition::And(parts) => {
                // Row-level parts intersect per row (one span satisfies them all); the rest
                // per trace.
                let (mut rows, mut traces): (Option<RoaringBitmap>, Option<RoaringBitmap>) =
                    (None, None);
                for p in parts {
                    match self.set(p) {
                        Set::Rows(r) => match &mut rows {
                            Some(acc) => *acc &= r,
                            None => rows = Some(r),
                        },
                        Set::Traces(t) => match &mut traces {
                            Some(acc) => *acc &= t,
                            None => traces = Some(t),
                        },
                    }
                }
                match (rows, traces) {
                    (Some(r), None) => Set::Rows(r),
                    (None, Some(t)) => Set::Traces(t),
                    (Some(r), Some(t)) => Set::Traces(self.traces_of(&r) & t),
                    (None, None) => self.all_traces(),
                }
            }
            IndexCondition::Or(parts) => self.union(parts.iter().map(|p| self.set(p))),
            IndexCondition::Name(n) => Set::Rows(
                self.term(NAME, "", n.as_bytes())
                    .cloned()
                    .unwrap_or_default(),
            ),
            IndexCondition::Attr {
                key,
                values,
                span,
                resource,
                scope,
            } => {
                // Scope attributes are not indexed, of the resource attributes only
                // `service.name`.
                if *scope || (*resource && key != SERVICE) {
                    return self.all_traces();
                }
                let mut parts: Vec<Set> = Vec::new();
                for (on, field) in [(*span, SPAN_ATTR), (*resource, RESOURCE_ATTR)] {
                    if !on {
                        continue;
                    }
                    if self.unindexed.contains(&(field, key.clone())) {
                        return self.all_traces();
                    }
                    let mut acc = RoaringBitmap::new();
                    for (ty, v) in values {
                        let mut term = vec![ty.byte()];
                        term.extend_from_slice(v.as_bytes());
                        if let Some(b) = self.term(field, key, &term) {
                            acc |= b;
                        }
                    }
                    parts.push(match per_row(field, key) {
                        true => Set::Rows(acc),
                        false => Set::Traces(acc),
                    });
                }
                self.union(parts.into_iter())
            }
            IndexCondition::Kind(k) => {
                Set::Rows(self.kind_status(|ks| i64::from(*k).max(0) as u64 == ks / 4))
            }
            IndexCondition::StatusCode(code) => {
                Set::Rows(self.kind_status(|ks| i64::from((*code).clamp(0, 3)) as u64 == ks % 4))
            }
            IndexCondition::Duration { min, max } => {
                let (lo, hi) = (min.unwrap_or(0), max.unwrap_or(u64::MAX));
                let mut acc = RoaringBitmap::new();
                for (term, rows) in self
                    .terms
                    .get(&(DURATION, String::new()))
                    .into_iter()
                    .flatten()
                {
                    let Some(&b) = term.first() else { continue };
                    let (blo, bhi) = bucket_range(b);
                    if b == 65 || (blo <= hi && bhi >= lo) {
                        acc |= rows;
                    }
                }
                Set::Rows(acc)
            }
        }
    }

    fn kind_status(&self, keep: impl Fn(u64) -> bool) -> RoaringBitmap {
        let mut acc = RoaringBitmap::new();
        for (term, rows) in self
            .terms
            .get(&(KIND_STATUS, String::new()))
            .into_iter()
            .flatten()
        {
            let ks = u64::from_le_bytes(term.as_slice().try_into().unwrap_or_default());
            if keep(ks) {
                acc |= rows;
            }
        }
        acc
    }

    /// The ordinals of the traces with a span that may satisfy `c`, whose time range meets
    /// `window` (earliest start to latest end); `None` when the index cannot narrow `c` down
    /// (every trace may satisfy it: a scan of the block is cheaper than reading them all).
    pub fn traces_matching(
        &self,
        c: &IndexCondition,
        window: Option<(u64, u64)>,
    ) -> Option<Vec<usize>> {
        let set = self.trace_set(c);
        if *c != IndexCondition::All && set.len() == self.traces.len() as u64 && set.len() > 1 {
            return None;
        }
        Some(
            set.iter()
                .map(|t| t as usize)
                .filter(|&t| {
                    let trace = &self.traces[t];
                    window.is_none_or(|(lo, hi)| {
                        trace.start_unix_nano <= hi && trace.end_unix_nano >= lo
                    })
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::spans_to_batch;
    use crate::model::SpanRecord;

    /// 20 traces of 5 spans, made here (the test kit depends on this crate).
    fn spans() -> Vec<SpanRecord> {
        use crate::otlp::trace::v1::Span;
        let mut out = Vec::new();
        for t in 0..20u8 {
            for s in 0..5u8 {
                let span = Span {
                    trace_id: vec![t + 1; 16],
                    span_id: vec![s + 1; 8],
                    name: format!("op-{}", s % 3),
                    kind: i32::from(s % 2) + 2,
                    start_time_unix_nano: 1_000 + u64::from(t) * 100 + u64::from(s),
                    end_time_unix_nano: 1_000 + u64::from(t) * 100 + u64::from(s) * 1_000_000,
                    attributes: vec![crate::otlp::common::v1::KeyValue {
                        key: "route".into(),
                        value: Some(AnyValue {
                            value: Some(V::StringValue(format!("/r{}", t % 4))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                out.push(SpanRecord {
                    resource: Default::default(),
                    scope: Default::default(),
                    span,
                });
            }
        }
        out
    }

    fn attr(key: &str, v: &str) -> IndexCondition {
        IndexCondition::Attr {
            key: key.into(),
            values: vec![(crate::tagindex::AttrType::String, v.into())],
            span: true,
            resource: false,
            scope: false,
        }
    }

    #[test]
    fn answers_are_supersets_of_the_truth_and_bad_bytes_are_errors() {
        let spans = spans();
        let mut b = RowIndexBuilder::new();
        b.push(&spans_to_batch(&spans).unwrap()).unwrap();
        let bytes = b.finish().unwrap();
        let index = RowIndex::decode(&bytes, "test").unwrap();
        assert_eq!(index.traces().len(), 20);
        assert_eq!(index.rows_of(19), Some(95..100));
        let truth = |f: &dyn Fn(&SpanRecord) -> bool| -> Vec<usize> {
            let mut v: Vec<usize> = spans
                .iter()
                .filter(|s| f(s))
                .map(|s| usize::from(s.span.trace_id[0] - 1))
                .collect();
            v.dedup();
            v
        };
        // Exact here: route values are per trace, names and kinds per row.
        let c = IndexCondition::And(vec![
            attr("route", "/r1"),
            IndexCondition::Name("op-2".into()),
        ]);
        assert_eq!(
            index.traces_matching(&c, None),
            Some(truth(
                &|s| s.span.trace_id[0] % 4 == 2 && s.span.name == "op-2"
            ))
        );
        let c = IndexCondition::And(vec![
            IndexCondition::Kind(3),
            IndexCondition::Name("op-0".into()),
        ]);
        // op-0 spans are s = 0 and 3; kind 3 is s odd: only s = 3, in every trace.
        assert_eq!(
            index.traces_matching(&c, None),
            None,
            "every trace: no narrowing"
        );
        // Durations by power-of-two bucket: a superset ("None" is every trace).
        for min in [0, 1_500_000, 3_500_000, 4_500_000] {
            let c = IndexCondition::Duration {
                min: Some(min),
                max: None,
            };
            let got = index
                .traces_matching(&c, None)
                .unwrap_or_else(|| (0..20).collect());
            let want = truth(&|s| s.duration_nanos() >= min);
            assert!(want.iter().all(|t| got.contains(t)), "min {min}: {got:?}");
            if want.is_empty() {
                assert_eq!(got, Vec::<usize>::new(), "min {min}");
            }
        }
        assert_eq!(
            index.traces_matching(&attr("route", "/nope"), None),
            Some(vec![])
        );
        assert_eq!(
            index.traces_matching(&attr("missing", "x"), None),
            Some(vec![])
        );
        assert_eq!(index.span_key_terms("route"), Some(true));
        assert_eq!(
            index.traces_matching(&IndexCondition::All, Some((0, 1_050))),
            Some(vec![0])
        );

        for cut in [0, 4, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                RowIndex::decode(&bytes[..cut], "test").is_err(),
                "cut at {cut}"
            );
        }
    }
}
