//! Reading the tag index: [`TagIndex`] opens an unpacked bundle and answers searches
//! ([`IndexQuery`] → [`TraceHit`]s), tag-name and tag-value listings ([`Scope`]), summaries,
//! operations and service calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use tantivy::columnar::Column;
use tantivy::schema::{Field, IndexRecordOption, Term};
use tantivy::{DocSet, Index, IndexReader, TERMINATED};

use super::bundle::{TANTIVY_DIR, TRACES_ENTRY};
use super::fields::{Fields, bucket_range, duration_bucket, field, fields_of};
use super::table::{Holder, Table};
use super::terms::{TYPE_BYTES, key_prefix, term_bytes, type_name_of_byte};
use crate::error::{Error, Result};
use crate::summary::TraceSummary;

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

/// A block's tag index, opened from a directory written by [`unpack`](super::unpack).
pub struct TagIndex {
    pub(super) reader: IndexReader,
    pub(super) fields: Fields,
    pub(super) table: Table,
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
pub(super) struct Docs(Vec<u64>);

impl Docs {
    pub(super) fn empty(n: u32) -> Self {
        Docs(vec![0; (n as usize).div_ceil(64)])
    }

    pub(super) fn full(n: u32) -> Self {
        let mut all = Docs::empty(n);
        (0..n).for_each(|d| all.insert(d));
        all
    }

    pub(super) fn insert(&mut self, d: u32) {
        if let Some(w) = self.0.get_mut(d as usize / 64) {
            *w |= 1 << (d % 64);
        }
    }

    pub(super) fn and(&mut self, other: &Docs) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= b);
    }

    pub(super) fn or(&mut self, other: &Docs) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
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

    /// Adds the documents of `segment` holding `term` in `field` to `docs`.
    pub(super) fn postings(
        &self,
        segment: &tantivy::SegmentReader,
        field: Field,
        term: &Term,
        docs: &mut Docs,
    ) -> Result<()> {
        let inverted = segment.inverted_index(field).map_err(|e| self.corrupt(e))?;
        if let Some(mut p) = inverted
            .read_postings(term, IndexRecordOption::Basic)
            .map_err(|e| self.corrupt(e))?
        {
            let mut d = p.doc();
            while d != TERMINATED {
                docs.insert(d);
                d = p.advance();
            }
        }
        Ok(())
    }

    pub(super) fn corrupt(&self, e: impl std::fmt::Display) -> Error {
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
        let by_holder =
            |col: &Column<u64>, wanted: &[bool], docs: &mut Docs| with_holder(col, n, wanted, docs);
        let postings = |field: Field, term: Term, docs: &mut Docs| -> Result<()> {
            self.postings(segment, field, &term, docs)
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

/// Adds to `docs` the documents (of `n`) whose holder in `col` (a resource or scope
/// position) is `wanted`.
pub(super) fn with_holder(col: &Column<u64>, n: u32, wanted: &[bool], docs: &mut Docs) {
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
}

fn holder_keys(holders: &[Holder]) -> BTreeSet<String> {
    holders
        .iter()
        .flat_map(|h| h.attrs.iter().map(|(k, _, _)| k.clone()))
        .collect()
}
