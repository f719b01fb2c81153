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

use super::fields::{PARENT_AT, PARENT_NONE, bucket_range, duration_bucket, field};
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
    pub(crate) fn byte(self) -> u8 {
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

/// How the result spans of an [`IndexRelation`] relate to its left-hand spans, as TraceQL's
/// structural operators `>`, `>>`, `!>` and `!>>` relate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationOp {
    /// The span's parent is a left-hand span.
    Child,
    /// Some ancestor of the span is a left-hand span.
    Descendant,
    /// The span has no parent, or its parent is not a left-hand span.
    NotChild,
    /// No ancestor of the span is a left-hand span.
    NotDescendant,
}

/// "Some span of the trace satisfying `child` relates by `op` to the left-hand spans": a
/// structural condition a trace must meet, from a TraceQL query's structural operators.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexRelation {
    /// The relation.
    pub op: RelationOp,
    /// The left-hand spans. For [`RelationOp::Child`] and [`RelationOp::Descendant`], a
    /// condition every one of them satisfies; for the negated operators, a condition that
    /// exactly they satisfy (a span satisfying it is a left-hand span).
    pub parent: IndexCondition,
    /// A condition every result span satisfies.
    pub child: IndexCondition,
}

impl TagIndex {
    /// Of `ordinals` (in table order), the traces whose spans in this block may meet every
    /// relation, a superset as [`traces_matching`](Self::traces_matching) is. Only links
    /// within the block are followed: a span whose parent lies elsewhere (or that this
    /// block alone cannot link, see the `parent` fast field) may meet any relation. The
    /// negated operators rule out a span only for a parent (or ancestor) the index is sure
    /// about (see `sure`), and only in traces whose spans here all lie in `window`, since a
    /// search with a window evaluates the query on the spans in it alone.
    ///
    /// A caller must still make sure the trace is nowhere else: another copy of a span ID in
    /// another block could make the evaluator link a span differently.
    pub fn traces_related(
        &self,
        ordinals: &[u32],
        relations: &[IndexRelation],
        window: Option<(u64, u64)>,
    ) -> Result<Vec<u32>> {
        if relations.is_empty() || ordinals.is_empty() {
            return Ok(ordinals.to_vec());
        }
        self.with_cx(|cx| self.related(cx, ordinals, relations, window))
    }

    fn related(
        &self,
        cx: &Cx<'_>,
        ordinals: &[u32],
        relations: &[IndexRelation],
        window: Option<(u64, u64)>,
    ) -> Result<Vec<u32>> {
        let parent_of = cx.column(field::PARENT)?;
        let t = &self.table;
        let mut kept: Vec<u32> = ordinals.to_vec();
        for r in relations {
            let children = cx.docs(&r.child, None)?;
            let negated = matches!(r.op, RelationOp::NotChild | RelationOp::NotDescendant);
            let left = match negated {
                true => cx.sure(&r.parent, None)?,
                false => cx.docs(&r.parent, None)?,
            };
            kept.retain(|&o| {
                let (Some(&first), Some(&end), Some(summary)) = (
                    t.first_doc.get(o as usize),
                    t.first_doc.get(o as usize + 1),
                    t.traces.get(o as usize),
                ) else {
                    return true;
                };
                let inside = window.is_none_or(|(lo, hi)| {
                    summary.start_unix_nano >= lo
                        && summary
                            .start_unix_nano
                            .saturating_add(summary.duration_nanos)
                            <= hi
                });
                let is_left = |d: u32| (!negated || inside) && left.contains(d);
                // The parent of document `d`: `Err(true)` when unknown here, `Err(false)`
                // for a root.
                let parent = |d: u32| -> std::result::Result<u32, bool> {
                    match parent_of.first(d) {
                        Some(PARENT_NONE) => Err(false),
                        Some(p) if p >= PARENT_AT => u32::try_from(p - PARENT_AT)
                            .ok()
                            .and_then(|p| first.checked_add(p))
                            .filter(|&p| p < end)
                            .ok_or(true),
                        _ => Err(true),
                    }
                };
                // Up the ancestors of `d` to a left-hand one, or to the end of what the
                // block knows (a root, or a parent it cannot link; links of a cycle are
                // unknown, so every walk ends; the bound is a guard).
                let up = |d: u32| {
                    let mut cur = d;
                    for _ in first..end {
                        match parent(cur) {
                            Ok(p) if is_left(p) => return Up::Left,
                            Ok(p) => cur = p,
                            Err(true) => return Up::Unknown,
                            Err(false) => return Up::Root,
                        }
                    }
                    Up::Unknown
                };
                (first..end)
                    .filter(|&d| children.contains(d))
                    .any(|d| match r.op {
                        RelationOp::Child => parent(d).map_or_else(|unknown| unknown, is_left),
                        RelationOp::NotChild => parent(d).map_or(true, |p| !is_left(p)),
                        RelationOp::Descendant => up(d) != Up::Root,
                        RelationOp::NotDescendant => up(d) != Up::Left,
                    })
            });
            if kept.is_empty() {
                break;
            }
        }
        Ok(kept)
    }

    /// The ordinals of the traces (in table order) that have a span which may satisfy `c`
    /// and that overlap `window` (ns, inclusive) when given.
    pub fn traces_matching(
        &self,
        c: &IndexCondition,
        window: Option<(u64, u64)>,
    ) -> Result<Vec<u32>> {
        self.with_cx(|cx| self.matching(cx, c, window))
    }

    /// Runs `f` on the index's segment; nothing (no trace) when it has none.
    fn with_cx(&self, f: impl FnOnce(&Cx<'_>) -> Result<Vec<u32>>) -> Result<Vec<u32>> {
        let searcher = self.reader.searcher();
        let Some(segment) = searcher.segment_readers().first() else {
            return Ok(Vec::new());
        };
        let cx = Cx {
            index: self,
            segment,
            n: segment.max_doc(),
        };
        f(&cx)
    }

    fn matching(
        &self,
        cx: &Cx<'_>,
        c: &IndexCondition,
        window: Option<(u64, u64)>,
    ) -> Result<Vec<u32>> {
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

/// Where a walk up a span's ancestors ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Up {
    /// At a left-hand span.
    Left,
    /// At a root.
    Root,
    /// At a span whose parent the block cannot link.
    Unknown,
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
                self.all_of(ordered, within, Self::docs)?
            }
            IndexCondition::Or(parts) => self.any_of(parts, within, Self::docs)?,
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

impl Cx<'_> {
    /// The documents of `within` that `eval` gives for every one of `parts`, each part
    /// evaluated only on what the parts before it left.
    fn all_of<'c>(
        &self,
        parts: impl IntoIterator<Item = &'c IndexCondition>,
        within: Option<&Docs>,
        eval: impl Fn(&Self, &IndexCondition, Option<&Docs>) -> Result<Docs>,
    ) -> Result<Docs> {
        let mut acc: Option<Docs> = within.cloned();
        for p in parts {
            let docs = eval(self, p, acc.as_ref())?;
            let empty = docs.is_empty();
            acc = Some(docs);
            if empty {
                break;
            }
        }
        Ok(acc.unwrap_or_else(|| Docs::full(self.n)))
    }

    /// The documents of `within` that `eval` gives for some of `parts`.
    fn any_of(
        &self,
        parts: &[IndexCondition],
        within: Option<&Docs>,
        eval: impl Fn(&Self, &IndexCondition, Option<&Docs>) -> Result<Docs>,
    ) -> Result<Docs> {
        let mut acc = Docs::empty(self.n);
        for p in parts {
            acc.or(&eval(self, p, within)?);
        }
        Ok(acc)
    }

    /// The documents of `within` (every document when `None`) that surely satisfy `c`: a
    /// subset of its documents, exact where the index is (names, kinds, status codes,
    /// resource and scope attributes); span attributes (whose terms mix in event and link
    /// attributes) count for none, durations only in the buckets wholly inside the range.
    fn sure(&self, c: &IndexCondition, within: Option<&Docs>) -> Result<Docs> {
        Ok(match c {
            IndexCondition::All
            | IndexCondition::Name(_)
            | IndexCondition::Kind(_)
            | IndexCondition::StatusCode(_) => self.docs(c, within)?,
            IndexCondition::And(parts) => self.all_of(parts, within, Self::sure)?,
            IndexCondition::Or(parts) => self.any_of(parts, within, Self::sure)?,
            IndexCondition::Attr {
                key,
                values,
                resource,
                scope,
                ..
            } => self.docs(
                &IndexCondition::Attr {
                    key: key.clone(),
                    values: values.clone(),
                    span: false,
                    resource: *resource,
                    scope: *scope,
                },
                within,
            )?,
            IndexCondition::Duration { min, max } => {
                let lo = match min {
                    None => 0,
                    Some(m) => {
                        let b = duration_bucket(*m);
                        b + u64::from(bucket_range(b).0 < *m)
                    }
                };
                let hi = match max {
                    None => u64::MAX,
                    Some(m) => {
                        let b = duration_bucket(*m);
                        match bucket_range(b).1 > *m {
                            true => match b.checked_sub(1) {
                                Some(b) => b,
                                None => return Ok(Docs::empty(self.n)),
                            },
                            false => b,
                        }
                    }
                };
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
