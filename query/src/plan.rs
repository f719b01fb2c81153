//! A search as every executor runs it: a TraceQL query, the time window and what it applies
//! to, and the limit ([`Search`]); when a whole trace matches ([`Search::decide`]); and the
//! one condition every executor prunes with ([`Search::candidate_condition`]).
//!
//! Every path (tag indexes, block scans, the ingesters' recent data) first finds
//! **candidates**, traces with a span satisfying the candidate condition in the data it
//! holds, and then decides each candidate on the whole trace with the one evaluator of
//! `skein-traceql`. The candidate condition is one of the query's requirements (see
//! [`Query::requirements`]): a condition that some span of every matching trace satisfies. A
//! trace split across blocks and ingesters is therefore found by whichever holds that span,
//! and the answer is the brute-force answer whatever the split.
//!
//! A window restricts the spans a search looks at ([`WindowOn`]): the query is evaluated on
//! the trace's spans in the window. A satisfying span therefore lies in data overlapping the
//! window, and blocks outside it are never read.

use std::sync::Arc;

use skein_format::SpanRecord;
use skein_format::block::SpanParts;
use skein_traceql::{AttrScope, CompareOp, Field, Leaf, Query, SpanCondition, SpanSet, Value};

/// Which spans of a trace a search with a window looks at: the query is evaluated on the
/// trace's spans in the window (the trace as seen in the window), so that data outside the
/// window never decides an answer and every executor can leave it unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowOn {
    /// Tempo: spans that overlap the window.
    #[default]
    Trace,
    /// Jaeger: spans that start in the window.
    MatchedSpan,
}

/// A search.
#[derive(Debug, Clone)]
pub struct Search {
    /// What a matching trace yields.
    pub query: Arc<Query>,
    /// Inclusive window, ns since the epoch.
    pub window: Option<(u64, u64)>,
    /// What the window applies to.
    pub window_on: WindowOn,
    /// Most traces to return; 0 is no limit.
    pub limit: usize,
    /// Shortest trace (last span end minus first span start, ns) that matches, inclusive.
    pub min_trace_duration_nanos: Option<u64>,
    /// Longest trace that matches, inclusive.
    pub max_trace_duration_nanos: Option<u64>,
    /// Parts of every span to read besides what the query observes, for callers that look
    /// at more of the matched spans than the query (narrowed tag listings).
    pub also_read: SpanParts,
}

impl Search {
    /// A search for `query` with no window and no limit.
    pub fn new(query: Query) -> Self {
        Search {
            query: Arc::new(query),
            window: None,
            window_on: WindowOn::Trace,
            limit: 0,
            min_trace_duration_nanos: None,
            max_trace_duration_nanos: None,
            also_read: SpanParts::CORE,
        }
    }

    /// The parts of a span the query can observe: what executors must decode (the rest may
    /// stay empty, see [`SpanParts`]).
    pub fn span_parts(&self) -> SpanParts {
        let mut parts = self.also_read.clone();
        for f in self.query.fields() {
            match f {
                Field::Attribute { scope, key } => match scope {
                    Some(AttrScope::Span) => parts.span_attrs.add(key),
                    Some(AttrScope::Resource) => parts.resource.add(key),
                    Some(AttrScope::Event) => parts.events = true,
                    Some(AttrScope::Link) => parts.links = true,
                    Some(AttrScope::Instrumentation) => parts.scope = true,
                    None => {
                        parts.span_attrs.add(key);
                        parts.resource.add(key);
                    }
                },
                Field::EventName => parts.events = true,
                Field::StatusMessage => parts.extras = true,
                Field::LinkTraceId | Field::LinkSpanId => parts.links = true,
                Field::InstrumentationName | Field::InstrumentationVersion => parts.scope = true,
                _ => {}
            }
        }
        parts
    }

    /// True when the search looks at span `s` (always without a window).
    pub fn in_window(&self, s: &SpanRecord) -> bool {
        in_window(self.window, self.window_on, s)
    }

    /// The spansets `trace` (every span of one trace) yields, with span indices into `trace`,
    /// or `None` when it does not match.
    pub fn decide(&self, trace: &[SpanRecord]) -> Option<Vec<SpanSet>> {
        if self.min_trace_duration_nanos.is_some() || self.max_trace_duration_nanos.is_some() {
            let start = trace.iter().map(|s| s.span.start_time_unix_nano).min()?;
            let end = trace
                .iter()
                .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano))
                .max()?;
            let d = end - start;
            if self.min_trace_duration_nanos.is_some_and(|m| d < m)
                || self.max_trace_duration_nanos.is_some_and(|m| d > m)
            {
                return None;
            }
        }
        if self.window.is_none() || trace.iter().all(|s| self.in_window(s)) {
            let sets = self.query.evaluate(trace);
            return (!sets.is_empty()).then_some(sets);
        }
        let seen: Vec<usize> = (0..trace.len())
            .filter(|&i| self.in_window(&trace[i]))
            .collect();
        if seen.is_empty() {
            return None;
        }
        let part: Vec<SpanRecord> = seen.iter().map(|&i| trace[i].clone()).collect();
        let mut sets = self.query.evaluate(&part);
        for set in &mut sets {
            for i in &mut set.spans {
                *i = seen[*i];
            }
        }
        (!sets.is_empty()).then_some(sets)
    }

    /// The condition executors prune with: a span of every matching trace satisfies it.
    /// `None` when the query has no such condition (every trace is a candidate).
    pub fn candidate_condition(&self) -> Option<SpanCondition> {
        self.query
            .requirements()
            .all
            .into_iter()
            .max_by_key(selectivity)
    }

    /// The structural relations of the query's first stage that every matching trace meets
    /// (see [`skein_traceql::Relation`]): tag indexes prune structural queries with them.
    pub fn candidate_relations(&self) -> Vec<skein_traceql::Relation> {
        self.query.requirements().relations
    }

    /// [`candidate_condition`](Self::candidate_condition) as a TraceQL spanset filter,
    /// `{}` when there is none; what an ingester is asked for.
    pub fn candidate_filter(&self) -> String {
        match self.candidate_condition() {
            Some(c) => format!("{{ {} }}", condition_text(&c)),
            None => "{}".to_owned(),
        }
    }
}

/// True when a search with `window` applied `on` looks at span `s`.
pub fn in_window(window: Option<(u64, u64)>, on: WindowOn, s: &SpanRecord) -> bool {
    let Some((lo, hi)) = window else { return true };
    let (start, end) = (s.span.start_time_unix_nano, s.span.end_time_unix_nano);
    match on {
        WindowOn::Trace => start <= hi && end.max(start) >= lo,
        WindowOn::MatchedSpan => lo <= start && start <= hi,
    }
}

/// How well a condition prunes, roughly: equality on a name or an attribute value is best;
/// ranges and kinds prune little.
fn selectivity(c: &SpanCondition) -> u32 {
    match c {
        SpanCondition::Leaf(l) => match (&l.field, l.op) {
            (Field::Attribute { .. } | Field::Name, CompareOp::Eq) => 10,
            (_, CompareOp::Eq) => 4,
            (_, CompareOp::Regex) => 3,
            _ => 1,
        },
        SpanCondition::And(parts) => parts.iter().map(selectivity).sum(),
        SpanCondition::Or(parts) => parts.iter().map(selectivity).min().unwrap_or(0),
    }
}

/// A span condition as TraceQL text (the inside of a spanset filter).
pub fn condition_text(c: &SpanCondition) -> String {
    let join = |parts: &[SpanCondition], op: &str| {
        let texts: Vec<String> = parts
            .iter()
            .map(|p| format!("({})", condition_text(p)))
            .collect();
        match texts.is_empty() {
            true => "true".to_owned(),
            false => texts.join(op),
        }
    };
    match c {
        SpanCondition::And(parts) => join(parts, " && "),
        SpanCondition::Or(parts) if parts.is_empty() => "false".to_owned(),
        SpanCondition::Or(parts) => join(parts, " || "),
        SpanCondition::Leaf(l) => leaf_text(l).unwrap_or_else(|| "true".to_owned()),
    }
}

/// A leaf as TraceQL, `None` for a field this module cannot write (the caller then writes
/// `true`, which keeps the condition necessary: leaves only appear unnegated).
fn leaf_text(l: &Leaf) -> Option<String> {
    let op = l.op.symbol();
    Some(format!(
        "{} {op} {}",
        field_text(&l.field)?,
        value_text(&l.value)
    ))
}

fn field_text(f: &Field) -> Option<String> {
    Some(match f {
        Field::Attribute { scope, key } => skein_traceql::attribute(*scope, key),
        Field::Name => "name".to_owned(),
        Field::Status => "status".to_owned(),
        Field::StatusMessage => "statusMessage".to_owned(),
        Field::Kind => "kind".to_owned(),
        Field::Duration => "duration".to_owned(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// A value as a TraceQL literal.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => skein_traceql::string_literal(s),
        Value::Float(f) if f.is_finite() && f.fract() == 0.0 => format!("{f:.1}"),
        Value::Duration(ns) => format!("{ns}ns"),
        other => other.to_string(),
    }
}

/// The TraceQL reference of an attribute in any of the places a legacy tag search looks
/// (the span, its resource, its instrumentation scope, its events and links).
pub(crate) fn legacy_attribute_places(key: &str) -> Vec<String> {
    [
        AttrScope::Span,
        AttrScope::Resource,
        AttrScope::Instrumentation,
        AttrScope::Event,
        AttrScope::Link,
    ]
    .into_iter()
    .map(|s| skein_traceql::attribute(Some(s), key))
    .collect()
}
