//! Pruning with the tag index: which traces of the block have a span that may satisfy a
//! condition ([`IndexCondition`]): how a search finds a block's candidates.
//!
//! The answer is a **superset**: every trace with a span satisfying the condition is returned,
//! and perhaps others (a duration in the same bucket as a bound, event and link attributes
//! mixed with span attributes, keys with too many values to have terms). The caller decides
//! each returned trace on its spans, so the index only has to never miss one.

use tantivy::columnar::Column;
use tantivy::schema::Term;

use super::fields::{duration_bucket, field};
use super::query::{Docs, TagIndex, with_holder};
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
        let docs = cx.docs(c)?;
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

    /// Documents whose holder (resource or scope, by the column `col`) is `wanted`.
    fn by_holder(&self, col: &str, wanted: &[bool], docs: &mut Docs) -> Result<()> {
        if wanted.iter().any(|w| *w) {
            with_holder(&self.column(col)?, self.n, wanted, docs);
        }
        Ok(())
    }

    fn by_value(&self, col: &str, keep: impl Fn(u64) -> bool) -> Result<Docs> {
        let col = self.column(col)?;
        let mut docs = Docs::empty(self.n);
        for d in 0..self.n {
            if col.first(d).is_some_and(&keep) {
                docs.insert(d);
            }
        }
        Ok(docs)
    }

    fn docs(&self, c: &IndexCondition) -> Result<Docs> {
        let fields = &self.index.fields;
        Ok(match c {
            IndexCondition::All => Docs::full(self.n),
            IndexCondition::And(parts) => {
                let mut acc = Docs::full(self.n);
                for p in parts {
                    acc.and(&self.docs(p)?);
                    if acc.is_empty() {
                        break;
                    }
                }
                acc
            }
            IndexCondition::Or(parts) => {
                let mut acc = Docs::empty(self.n);
                for p in parts {
                    acc.or(&self.docs(p)?);
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
                docs
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
                    return Ok(Docs::full(self.n));
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
                let has = |h: &Holder| {
                    h.attrs.iter().any(|(hk, hty, hv)| {
                        hk == key && values.iter().any(|(ty, v)| ty.byte() == *hty && v == hv)
                    })
                };
                if *resource {
                    let wanted: Vec<bool> = t.resources.iter().map(has).collect();
                    self.by_holder(field::RES, &wanted, &mut docs)?;
                }
                if *scope {
                    let wanted: Vec<bool> = t.scopes.iter().map(has).collect();
                    self.by_holder(field::SCOPE, &wanted, &mut docs)?;
                }
                docs
            }
            IndexCondition::Kind(k) => {
                let k = *k;
                self.by_value(field::KS, |ks| i64::try_from(ks / 4).ok() == Some(k.into()))?
            }
            IndexCondition::StatusCode(code) => {
                let code = *code;
                self.by_value(field::KS, |ks| {
                    i64::try_from(ks % 4).ok() == Some(code.into())
                })?
            }
            IndexCondition::Duration { min, max } => {
                // Buckets hold ranges of durations: a span in the bucket of a bound may lie on
                // either side of it, so it is kept.
                let lo = min.map(duration_bucket).unwrap_or(0);
                let hi = max.map(duration_bucket).unwrap_or(u64::MAX);
                self.by_value(field::DUR, |b| lo <= b && b <= hi)?
            }
        })
    }
}
