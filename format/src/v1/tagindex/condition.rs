//! Pruning with the tag index: which traces of the block have a span that may satisfy a
//! condition ([`IndexCondition`]): how a search finds a block's candidates.
//!
//! The answer is a **superset**: every trace with a span satisfying the condition is returned,
//! and perhaps others (a duration in the same bucket as a bound, event and link attributes
//! mixed with span attributes, keys with too many values to have terms). The caller decides
//! each returned trace on its spans, so the index only has to never miss one.

use std::ops::RangeInclusive;

use tantivy::columnar::{Cardinality, Column};
use tantivy::schema::Term;

use super::fields::{duration_bucket, field};
use super::query::{Docs, TagIndex};
use super::table::Holder;
use super::terms::term_bytes;
use crate::error::Result;

/// The type of an attribute value, as terms record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A string.
    String,
    /// A 64-bit integer.
    Int,
    /// A double.
    Float,
    /// A boolean.
    Bool,
}

impl AttrType {
    fn byte(self) -> u8 {
        match self {
            AttrType::String => b's',
            AttrType::Int => b'i',
            AttrType::Float => b'f',
            AttrType::Bool => b'b',
        }
    }
}

/// What one span must satisfy. Leaves the caller cannot express are [`IndexCondition::All`].
#[derive(Debug, Clone, PartialEq)]
pub enum IndexCondition {
    /// Any span.
    All,
    /// Every condition.
    And(Vec<IndexCondition>),
    /// At least one condition.
    Or(Vec<IndexCondition>),
    /// The span's name is this.
    Name(String),
    /// Attribute `key` has one of `values` (type and string form, as
    /// [`value_string`](crate::model::value_string) writes it) in one of the locations.
    Attr {
        /// The attribute key.
        key: String,
        /// Accepted (type, string form) pairs.
        values: Vec<(AttrType, String)>,
        /// On the span, its events or its links.
        span: bool,
        /// On the span's resource.
        resource: bool,
        /// On the span's instrumentation scope.
        scope: bool,
    },
    /// The span's kind (OTLP number).
    Kind(i32),
    /// The span's status code (OTLP number).
    StatusCode(i32),
    /// The span's duration lies in this range (ns, inclusive).
    Duration {
        /// Lower bound.
        min: Option<u64>,
        /// Upper bound.
        max: Option<u64>,
    },
}

impl TagIndex {
    /// The ordinals of the traces (in table order) that have a span which may satisfy `c`
    /// and that overlap `window` (ns, inclusive) when given.
    pub fn traces_matching(
        &self,
        c: &IndexCondition,
        window: Option<(u64, u64)>,
    ) -> Result<Vec<u32>> {
        let searcher = self.reader.searcher();
        let Some(segment) = searcher.segment_readers().first() else {
            return Ok(Vec::new());
        };
        let n = segment.max_doc();
        let cx = Cx {
            index: self,
            segment,
            n,
        };
        let docs = cx.docs(c, None)?;
        let t = &self.table;
        let mut out: Vec<u32> = Vec::new();
        let mut trace = 0usize;
        for d in docs.iter() {
            while t.first_doc.get(trace + 1).is_some_and(|&next| next <= d) {
                trace += 1;
            }
            if out.last() == Some(&(trace as u32)) {
                continue;
            }
            let Some(summary) = t.traces.get(trace) else {
                return Err(self.corrupt(format!("document {d} belongs to no trace")));
            };
            if let Some((lo, hi)) = window {
                let end = summary
                    .start_unix_nano
                    .saturating_add(summary.duration_nanos);
                if summary.start_unix_nano > hi || end < lo {
                    continue;
                }
            }
            out.push(trace as u32);
        }
        Ok(out)
    }
}

/// One evaluation of a condition over one segment.
struct Cx<'a> {
    index: &'a TagIndex,
    segment: &'a tantivy::SegmentReader,
    n: u32,
}

/// Fewer documents than one in this many of the segment are checked one by one; more, and a
/// fast-field column is scanned whole (its values unpacked in bulk).
const SPARSE: u32 = 16;

impl Cx<'_> {
    fn column(&self, name: &str) -> Result<Column<u64>> {
        self.segment
            .fast_fields()
            .u64(name)
            .map_err(|e| self.index.corrupt(e))
    }

    fn postings(&self, field: tantivy::schema::Field, term: &Term, docs: &mut Docs) -> Result<()> {
        self.index.postings(self.segment, field, term, docs)
    }

    /// The documents of `within` (every document when `None`) whose value in the fast field
    /// `col` lies in one of `ranges` (inclusive).
    fn in_ranges(
        &self,
        col: &str,
        ranges: &[RangeInclusive<u64>],
        within: Option<&Docs>,
    ) -> Result<Docs> {
        let col = self.column(col)?;
        let mut docs = Docs::empty(self.n);
        if ranges.is_empty() {
            return Ok(docs);
        }
        let hit = |v: u64| ranges.iter().any(|r| r.contains(&v));
        let full = col.get_cardinality() == Cardinality::Full;
        match within {
            // Every document has one value, at its own position: the codec finds the
            // positions of a value range in bulk.
            Some(w) if full && w.len() * SPARSE >= self.n => {
                self.bulk(&col, ranges, &mut docs);
                docs.and(w);
            }
            None if full => self.bulk(&col, ranges, &mut docs),
            Some(w) => {
                for d in w.iter() {
                    if col.first(d).is_some_and(hit) {
                        docs.insert(d);
                    }
                }
            }
            None => {
                for d in 0..self.n {
                    if col.first(d).is_some_and(hit) {
                        docs.insert(d);
                    }
                }
            }
        }
        Ok(docs)
    }

    fn bulk(&self, col: &Column<u64>, ranges: &[RangeInclusive<u64>], docs: &mut Docs) {
        let mut hits = Vec::new();
        let (min, max) = (col.values.min_value(), col.values.max_value());
        for r in ranges {
            // Clipped to the column's values: the codec shifts a range by the smallest value
            // with a saturating subtraction, so a range wholly below it would select that value.
            let (lo, hi) = ((*r.start()).max(min), (*r.end()).min(max));
            if lo > hi {
                continue;
            }
            hits.clear();
            col.values
                .get_row_ids_for_value_range(lo..=hi, 0..self.n, &mut hits);
            hits.iter().for_each(|&d| docs.insert(d));
        }
    }

    /// The documents of `within` whose holder (resource or scope, by the column `col`) is
    /// `wanted`.
    fn by_holder(&self, col: &str, wanted: &[bool], within: Option<&Docs>) -> Result<Docs> {
        // Runs of wanted holder positions, as value ranges.
        let mut ranges: Vec<RangeInclusive<u64>> = Vec::new();
        for (i, _) in wanted.iter().enumerate().filter(|(_, w)| **w) {
            let i = i as u64;
            match ranges.last_mut() {
                Some(r) if *r.end() + 1 == i => *r = *r.start()..=i,
                _ => ranges.push(i..=i),
            }
        }
        self.in_ranges(col, &ranges, within)
    }

    /// The documents of `within` (every document when `None`) that may satisfy `c`.
    fn docs(&self, c: &IndexCondition, within: Option<&Docs>) -> Result<Docs> {
        let fields = &self.index.fields;
        let restrict = |mut docs: Docs| {
            if let Some(w) = within {
                docs.and(w);
            }
            docs
        };
        Ok(match c {
            IndexCondition::All => match within {
                Some(w) => w.clone(),
                None => Docs::full(self.n),
            },
            IndexCondition::And(parts) => {
                // Posting lists first (cheap, usually selective); the fast-field conditions
                // then check only the documents left.
                let mut ordered: Vec<&IndexCondition> = parts.iter().collect();
                ordered.sort_by_key(|p| !p.uses_postings());
                let mut acc: Option<Docs> = within.cloned();
                for p in ordered {
                    let docs = self.docs(p, acc.as_ref())?;
                    let empty = docs.is_empty();
                    acc = Some(docs);
                    if empty {
                        break;
                    }
                }
                acc.unwrap_or_else(|| Docs::full(self.n))
            }
            IndexCondition::Or(parts) => {
                let mut acc = Docs::empty(self.n);
                for p in parts {
                    acc.or(&self.docs(p, within)?);
                }
                acc
            }
            IndexCondition::Name(name) => {
                let mut docs = Docs::empty(self.n);
                self.postings(
                    fields.name,
                    &Term::from_field_text(fields.name, name),
                    &mut docs,
                )?;
                restrict(docs)
            }
            IndexCondition::Attr {
                key,
                values,
                span,
                resource,
                scope,
            } => {
                let t = &self.index.table;
                if *span && t.span_keys.get(key) == Some(&false) {
                    // The key has no terms in this block: any span may have it.
                    return Ok(restrict(Docs::full(self.n)));
                }
                let mut docs = Docs::empty(self.n);
                if *span && t.span_keys.contains_key(key) {
                    for (ty, v) in values {
                        let term = Term::from_field_bytes(
                            fields.span_attr,
                            &term_bytes(key, ty.byte(), v),
                        );
                        self.postings(fields.span_attr, &term, &mut docs)?;
                    }
                }
                let mut docs = restrict(docs);
                let has = |h: &Holder| {
                    h.attrs.iter().any(|(hk, hty, hv)| {
                        hk == key && values.iter().any(|(ty, v)| ty.byte() == *hty && v == hv)
                    })
                };
                if *resource {
                    let wanted: Vec<bool> = t.resources.iter().map(has).collect();
                    docs.or(&self.by_holder(field::RES, &wanted, within)?);
                }
                if *scope {
                    let wanted: Vec<bool> = t.scopes.iter().map(has).collect();
                    docs.or(&self.by_holder(field::SCOPE, &wanted, within)?);
                }
                docs
            }
            IndexCondition::Kind(k) => match u64::try_from(*k) {
                Ok(k) => self.in_ranges(field::KS, &[k * 4..=k * 4 + 3], within)?,
                Err(_) => Docs::empty(self.n),
            },
            IndexCondition::StatusCode(code) => match u64::try_from(*code) {
                // `ks` is kind × 4 + code: one value per kind.
                Ok(code) if code < 4 => {
                    let max = self.column(field::KS)?.max_value();
                    let ranges: Vec<RangeInclusive<u64>> =
                        (0..=max / 4).map(|k| k * 4 + code..=k * 4 + code).collect();
                    self.in_ranges(field::KS, &ranges, within)?
                }
                _ => Docs::empty(self.n),
            },
            IndexCondition::Duration { min, max } => {
                // Buckets hold ranges of durations: a span in the bucket of a bound may lie on
                // either side of it, so it is kept.
                let lo = min.map(duration_bucket).unwrap_or(0);
                let hi = max.map(duration_bucket).unwrap_or(u64::MAX);
                match lo <= hi {
                    true => self.in_ranges(field::DUR, &[lo..=hi], within)?,
                    false => Docs::empty(self.n),
                }
            }
        })
    }
}

impl IndexCondition {
    /// True when the condition is decided on posting lists alone (no fast-field column).
    fn uses_postings(&self) -> bool {
        match self {
            IndexCondition::Name(_) => true,
            IndexCondition::Attr {
                resource, scope, ..
            } => !resource && !scope,
            IndexCondition::And(parts) | IndexCondition::Or(parts) => {
                parts.iter().all(|p| p.uses_postings())
            }
            _ => false,
        }
    }
}
