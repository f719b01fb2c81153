//! Reading the tag index: [`TagIndex`] opens an unpacked bundle and answers tag-name and
//! tag-value listings ([`Scope`]), summaries, operations and service calls; searches prune
//! with it through `condition`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use tantivy::schema::{Field, IndexRecordOption, Term};
use tantivy::{DocSet, Index, IndexReader, TERMINATED};

use super::bundle::{TANTIVY_DIR, TRACES_ENTRY};
use super::fields::{Fields, fields_of};
use super::table::{Holder, Table};
use super::terms::{key_prefix, type_name_of_byte};
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
    /// The first row in the block's data of each trace (by ordinal): the data holds the
    /// traces' spans in trace-ID order, as many rows per trace as its summary counts spans.
    first_row: Vec<u64>,
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

/// A set of documents.
#[derive(Clone)]
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

    pub(super) fn contains(&self, d: u32) -> bool {
        self.0
            .get(d as usize / 64)
            .is_some_and(|w| w & (1 << (d % 64)) != 0)
    }

    /// Documents in the set.
    pub(super) fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
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
        let first_row = first_rows(&table.traces);
        Ok(TagIndex {
            reader,
            fields,
            table,
            first_row,
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

    /// Whether span attribute `key` has terms in this index: `Some(true)` when it has (a
    /// condition on its value is answered exactly), `Some(false)` when spans have the key but
    /// its values were not indexed (too many distinct ones), `None` when no span has it.
    pub fn span_key_terms(&self, key: &str) -> Option<bool> {
        self.table.span_keys.get(key).copied()
    }

    /// The summary of trace `ordinal`'s spans in this block.
    pub fn summary(&self, ordinal: u32) -> Option<&TraceSummary> {
        self.table.traces.get(ordinal as usize)
    }

    /// The rows of trace `ordinal` in the block's data (`data.parquet`), for
    /// [`BlockReader::find_traces_at`](crate::block::BlockReader::find_traces_at).
    pub fn rows(&self, ordinal: u32) -> Option<std::ops::Range<u64>> {
        let first = *self.first_row.get(ordinal as usize)?;
        let spans = self.table.traces.get(ordinal as usize)?.span_count;
        Some(first..first.checked_add(spans)?)
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
}

/// The first row of each trace in data sorted by trace ID, from the traces' span counts.
fn first_rows(traces: &[TraceSummary]) -> Vec<u64> {
    let mut order: Vec<usize> = (0..traces.len()).collect();
    order.sort_unstable_by_key(|&i| traces[i].trace_id);
    let mut first = vec![0u64; traces.len()];
    let mut row = 0u64;
    for i in order {
        first[i] = row;
        row = row.saturating_add(traces[i].span_count);
    }
    first
}

fn holder_keys(holders: &[Holder]) -> BTreeSet<String> {
    holders
        .iter()
        .flat_map(|h| h.attrs.iter().map(|(k, _, _)| k.clone()))
        .collect()
}
