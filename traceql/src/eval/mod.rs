//! Evaluates a query on one whole trace. This is the reference semantics: every executor
//! (in-memory search, block scans, index pushdown) must agree with what these functions
//! return. Split into span-level expressions ([`filter`]), the trace tree and structural
//! relations ([`structural`]) and pipeline stages ([`pipeline`]).

pub(crate) mod filter;
pub(crate) mod pipeline;
pub(crate) mod structural;

use std::cell::OnceCell;

use skein_format::SpanRecord;

use crate::ast::Query;
use crate::value::Value;
use structural::Tree;

/// A set of spans of one trace that a query produced, with its spanset-level attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanSet {
    /// Indices into the `trace` slice given to [`Query::evaluate`], ordered by span start
    /// time then index, without duplicates.
    pub spans: Vec<usize>,
    /// Spanset-level attributes: `by()` keys as `("by(resource.service.name)", value)` and
    /// aggregate results as `("count()", Int)`, `("avg(duration)", …)`.
    pub attributes: Vec<(String, Value)>,
}

impl SpanSet {
    /// Sets `key` to `value`, replacing an attribute of the same key.
    pub(crate) fn set_attribute(&mut self, key: String, value: Value) {
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }
}

/// One trace with what evaluation derives from it, computed when first needed.
pub(crate) struct Trace<'a> {
    pub(crate) spans: &'a [SpanRecord],
    /// Span indices ordered by (start time, index): the order of every [`SpanSet`].
    pub(crate) by_start: Vec<usize>,
    /// Position of each span in `by_start`.
    pub(crate) rank: Vec<usize>,
    tree: OnceCell<Tree>,
    root: OnceCell<Option<usize>>,
    duration: OnceCell<u64>,
}

impl<'a> Trace<'a> {
    pub(crate) fn new(spans: &'a [SpanRecord]) -> Trace<'a> {
        let mut by_start: Vec<usize> = (0..spans.len()).collect();
        by_start.sort_by_key(|&i| (spans[i].span.start_time_unix_nano, i));
        let mut rank = vec![0; spans.len()];
        for (r, &i) in by_start.iter().enumerate() {
            rank[i] = r;
        }
        Trace {
            spans,
            by_start,
            rank,
            tree: OnceCell::new(),
            root: OnceCell::new(),
            duration: OnceCell::new(),
        }
    }

    pub(crate) fn tree(&self) -> &Tree {
        self.tree
            .get_or_init(|| Tree::build(self.spans, &self.rank))
    }

    /// The root: the earliest span without a parent ID.
    pub(crate) fn root(&self) -> Option<usize> {
        *self.root.get_or_init(|| {
            self.by_start
                .iter()
                .copied()
                .find(|&i| self.spans[i].span.parent_span_id.is_empty())
        })
    }

    /// Latest end minus earliest start.
    pub(crate) fn duration(&self) -> u64 {
        *self.duration.get_or_init(|| {
            let start = self.spans.iter().map(|s| s.span.start_time_unix_nano).min();
            let end = self.spans.iter().map(|s| s.span.end_time_unix_nano).max();
            match (start, end) {
                (Some(s), Some(e)) => e.saturating_sub(s),
                _ => 0,
            }
        })
    }

    /// Sorts span indices into spanset order and removes duplicates.
    pub(crate) fn normalize(&self, spans: &mut Vec<usize>) {
        spans.sort_unstable_by_key(|&i| self.rank[i]);
        spans.dedup();
    }
}

/// Runs `query` on one trace.
pub(crate) fn evaluate(query: &Query, spans: &[SpanRecord]) -> Vec<SpanSet> {
    if spans.is_empty() {
        return Vec::new();
    }
    let trace = Trace::new(spans);
    let all = SpanSet {
        spans: trace.by_start.clone(),
        attributes: Vec::new(),
    };
    pipeline::run(&query.pipeline, &trace, vec![all])
}

/// True when `query` yields at least one spanset on the trace.
pub(crate) fn matches(query: &Query, spans: &[SpanRecord]) -> bool {
    if spans.is_empty() {
        return false;
    }
    // The common case, one filter, needs no spanset bookkeeping.
    if let [crate::ast::Stage::Spanset(crate::ast::SpansetExpr::Filter(body))] =
        query.pipeline.stages.as_slice()
    {
        let Some(body) = body else {
            return true;
        };
        let trace = Trace::new(spans);
        return (0..spans.len()).any(|i| filter::matches(body, &trace, i));
    }
    !evaluate(query, spans).is_empty()
}

#[cfg(test)]
mod tests;
