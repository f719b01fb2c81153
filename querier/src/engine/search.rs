//! Trace search over blocks and recent data, with true trace summaries.
//!
//! Results are the `limit` matching traces that started last (ties by trace ID), each with
//! the summary of the whole trace even when it is split across blocks and ingesters.
//!
//! A block only knows its piece of a trace, so search finds **candidates** per block (traces
//! with a span satisfying the span-level filters) and then **decides** each candidate on the
//! whole trace. Compacted blocks answer the first step from their tag index, without reading
//! Parquet; other blocks are scanned with the filters pushed down. A candidate that the
//! index found and that no other block (by meta ranges and bloom filters) or ingester holds
//! is decided from the index's trace table alone; any other is read whole.
//!
//! Blocks are visited newest first (by their latest span start). A trace starts no later
//! than any of its spans, so once `limit` traces are decided that all started after the
//! next block's latest span start, no trace that block (or any older one) could add would
//! make the cut, and the search stops. The same bound skips candidates one by one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use skein_format::summary::TraceSummary;
use skein_format::tagindex::{IndexQuery, Scope, TagIndex, TraceHit};
use skein_format::{BlockMeta, ScanFilter, SpanRecord, TenantId, TraceId};
use skein_query::search::{Semantics, TraceQuery, span_has_tag};

use super::lookup::{TraceLookup, merge};
use crate::error::Result;

/// What a search found.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// Matching traces, newest first.
    pub traces: Vec<TraceSummary>,
    /// Candidate traces decided.
    pub inspected_traces: u64,
    /// Of those, traces read whole (the others were decided from a tag index).
    pub read_traces: u64,
    /// Of the blocks searched, those answered from their tag index.
    pub indexed_blocks: u64,
    /// Blocks searched.
    pub inspected_blocks: u64,
}

/// Most traces read in full for one search: bounds the cost of a query that matches almost
/// nothing.
const MAX_FULL_READS: usize = 5_000;
/// Blocks searched at once.
const BLOCK_CONCURRENCY: usize = 4;

fn candidate(query: &TraceQuery, s: &SpanRecord) -> bool {
    query
        .service_name
        .as_deref()
        .is_none_or(|w| s.service_name() == w)
        && query.span_name.as_deref().is_none_or(|w| s.span.name == w)
        && query.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
        && span_window(query).is_none_or(|(lo, hi)| {
            let start = s.span.start_time_unix_nano;
            lo <= start && start <= hi
        })
}

/// The range a matching span must start in: Jaeger's span-level semantics only (Tempo's
/// range is about the whole trace, decided later).
fn span_window(query: &TraceQuery) -> Option<(u64, u64)> {
    match query.semantics {
        Semantics::Span if query.start_unix_nano.is_some() || query.end_unix_nano.is_some() => {
            Some((
                query.start_unix_nano.unwrap_or(0),
                query.end_unix_nano.unwrap_or(u64::MAX),
            ))
        }
        _ => None,
    }
}

/// A trace of one block with a span satisfying the span-level filters.
struct Candidate {
    id: TraceId,
    /// An upper bound of the trace's start: the earliest start of its spans seen here.
    start_bound: u64,
    /// Found by the block's tag index: the index and what it knows of the trace.
    indexed: Option<(Arc<TagIndex>, TraceHit)>,
    /// Found by scanning the block: every span of the trace in the block.
    local: Option<Vec<SpanRecord>>,
}

/// The traces decided so far that make the cut: at most `limit`, newest first.
struct TopTraces {
    limit: usize,
    traces: Vec<TraceSummary>,
}

impl TopTraces {
    fn order(a: &TraceSummary, b: &TraceSummary) -> std::cmp::Ordering {
        b.start_unix_nano
            .cmp(&a.start_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    }

    fn push(&mut self, t: TraceSummary) {
        let at = self
            .traces
            .partition_point(|x| Self::order(x, &t) == std::cmp::Ordering::Less);
        self.traces.insert(at, t);
        self.traces.truncate(self.limit);
    }

    /// True when a trace that started at or before `bound` cannot make the cut.
    fn excludes(&self, bound: u64) -> bool {
        self.traces.len() >= self.limit
            && self
                .traces
                .last()
                .is_some_and(|last| last.start_unix_nano > bound)
    }
}

impl TraceLookup {
    /// The candidates of one block, from its tag index when it has one and it can answer.
    /// Also says whether the index answered.
    async fn candidates_in(
        &self,
        meta: BlockMeta,
        query: &TraceQuery,
    ) -> Result<(Vec<Candidate>, bool)> {
        if let Some(index) = self.tag_index(&meta).await {
            let span_level = query.semantics == Semantics::Span;
            let q = IndexQuery {
                service_name: query.service_name.clone(),
                span_name: query.span_name.clone(),
                tags: query.tags.clone(),
                span_start: span_window(query),
                min_duration_nanos: query.min_duration_nanos.filter(|_| span_level),
                max_duration_nanos: query.max_duration_nanos.filter(|_| span_level),
            };
            let searched = Arc::clone(&index);
            let hits = tokio::task::spawn_blocking(move || searched.search(&q))
                .await
                .map_err(skein_format::Error::from)??;
            if let Some(hits) = hits {
                let candidates = hits
                    .into_iter()
                    .filter_map(|h| {
                        let summary = index.summary(h.ordinal)?;
                        Some(Candidate {
                            id: summary.trace_id,
                            start_bound: summary.start_unix_nano,
                            indexed: Some((Arc::clone(&index), h)),
                            local: None,
                        })
                    })
                    .collect();
                return Ok((candidates, true));
            }
        }
        // Whole traces of this block that have a matching span, so that a trace no other
        // block holds is decided from what was read here.
        let filter = ScanFilter {
            start_unix_nano: span_window(query).map(|w| w.0),
            end_unix_nano: span_window(query).map(|w| w.1),
            service_name: query.service_name.clone(),
            whole_traces: true,
            ..Default::default()
        };
        let parts: Vec<Vec<SpanRecord>> = self.reader_for(&meta).scan(filter).try_collect().await?;
        let mut traces: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
        for s in parts.into_iter().flatten() {
            if let Ok(id) = s.trace_id() {
                traces.entry(id).or_default().push(s);
            }
        }
        let candidates = traces
            .into_iter()
            .filter_map(|(id, spans)| {
                let start_bound = spans
                    .iter()
                    .filter(|s| candidate(query, s))
                    .map(|s| s.span.start_time_unix_nano)
                    .min()?;
                Some(Candidate {
                    id,
                    start_bound,
                    indexed: None,
                    local: Some(spans),
                })
            })
            .collect();
        Ok((candidates, false))
    }

    /// Decides a candidate: its summary when the whole trace matches `query`.
    async fn decide(
        &self,
        tenant: &TenantId,
        query: &TraceQuery,
        c: Candidate,
        block: &BlockMeta,
        full_reads: &mut usize,
    ) -> Result<Option<TraceSummary>> {
        let decide_on = |spans: Vec<SpanRecord>| match query.matches(&spans) {
            true => TraceSummary::from_spans(&spans),
            false => None,
        };
        // What the index alone says, when it knows.
        let verdict = c
            .indexed
            .as_ref()
            .and_then(|(index, hit)| match query.semantics {
                Semantics::Span if hit.certain => hit.span_match,
                Semantics::Span => None,
                Semantics::Trace => index
                    .summary(hit.ordinal)
                    .map(|summary| trace_level_match(query, summary)),
            });
        if verdict.is_none() && c.local.is_none() {
            *full_reads += 1;
            return Ok(decide_on(self.find(tenant, &c.id, None).await?));
        }
        let (pieces, read) = self.elsewhere(tenant, &c.id, block.block_id).await?;
        *full_reads += usize::from(read > 0);
        if let (Some(matches), Some((index, hit)), true) = (verdict, &c.indexed, pieces.is_empty())
        {
            return Ok(matches
                .then(|| index.summary(hit.ordinal).cloned())
                .flatten());
        }
        // The trace's spans in this block (read by the scan, or now) and those held elsewhere
        // make the whole trace; copies a crash-replayed WAL left are dropped as a lookup by ID
        // would.
        let here = match c.local {
            Some(spans) => spans,
            None => self.reader_for(block).find_trace_unchecked(&c.id).await?,
        };
        Ok(decide_on(merge(vec![here, pieces])))
    }

    /// Runs `query` for `tenant`.
    ///
    /// Blocks are searched as separate tasks, so the decoding of several blocks runs on every
    /// core of the runtime rather than inside the one task of the request.
    pub async fn search(
        self: &Arc<Self>,
        tenant: &TenantId,
        query: &TraceQuery,
    ) -> Result<SearchResult> {
        let blocks = self.blocks().blocks(tenant).await?;
        let window = (
            query.start_unix_nano.unwrap_or(0),
            query.end_unix_nano.unwrap_or(u64::MAX),
        );
        let mut searched: Vec<BlockMeta> = blocks
            .iter()
            .filter(|m| m.overlaps(window.0, window.1))
            .cloned()
            .collect();
        searched.sort_by(|a, b| {
            b.max_start_unix_nano
                .cmp(&a.max_start_unix_nano)
                .then(a.block_id.cmp(&b.block_id))
        });
        let mut top = TopTraces {
            limit: if query.limit == 0 {
                usize::MAX
            } else {
                query.limit
            },
            traces: Vec::new(),
        };
        let mut result = SearchResult::default();
        let mut decided: HashSet<TraceId> = HashSet::new();
        let mut full_reads = 0;

        // The ingesters' data first: it is the newest.
        for r in self.recent() {
            let unlimited = TraceQuery {
                limit: 0,
                ..query.clone()
            };
            for trace in r.search(tenant, &unlimited).await? {
                let Some(id) = trace.first().and_then(|s| s.trace_id().ok()) else {
                    continue;
                };
                if !decided.insert(id) || full_reads >= MAX_FULL_READS {
                    continue;
                }
                result.inspected_traces += 1;
                full_reads += 1;
                let spans = self.find(tenant, &id, None).await?;
                if query.matches(&spans)
                    && let Some(summary) = TraceSummary::from_spans(&spans)
                {
                    top.push(summary);
                }
            }
        }

        let order: Vec<BlockMeta> = searched.clone();
        let mut per_block = futures::stream::iter(searched)
            .map(|meta| {
                let (this, query) = (Arc::clone(self), query.clone());
                async move {
                    tokio::spawn(async move { this.candidates_in(meta, &query).await })
                        .await
                        .map_err(skein_format::Error::from)?
                }
            })
            .buffered(BLOCK_CONCURRENCY);
        let mut i = 0;
        while let Some((mut candidates, indexed)) = per_block.try_next().await? {
            let block = &order[i];
            i += 1;
            result.inspected_blocks += 1;
            result.indexed_blocks += u64::from(indexed);
            candidates.sort_by(|a, b| b.start_bound.cmp(&a.start_bound).then(a.id.cmp(&b.id)));
            for c in candidates {
                if top.excludes(c.start_bound) {
                    break;
                }
                if full_reads >= MAX_FULL_READS || !decided.insert(c.id) {
                    continue;
                }
                result.inspected_traces += 1;
                if let Some(summary) = self
                    .decide(tenant, query, c, block, &mut full_reads)
                    .await?
                {
                    top.push(summary);
                }
            }
            if order
                .get(i)
                .is_none_or(|next| top.excludes(next.max_start_unix_nano))
            {
                break;
            }
        }
        result.traces = top.traces;
        result.read_traces = full_reads as u64;
        Ok(result)
    }
}

/// Tempo's trace-level conditions, on a whole trace's summary: duration bounds and overlap
/// with the time range (the span-level part was decided by the candidate).
fn trace_level_match(query: &TraceQuery, summary: &TraceSummary) -> bool {
    let end = summary
        .start_unix_nano
        .saturating_add(summary.duration_nanos);
    query
        .min_duration_nanos
        .is_none_or(|m| summary.duration_nanos >= m)
        && query
            .max_duration_nanos
            .is_none_or(|m| summary.duration_nanos <= m)
        && query.start_unix_nano.is_none_or(|t| end >= t)
        && query
            .end_unix_nano
            .is_none_or(|t| summary.start_unix_nano <= t)
}

impl TraceLookup {
    /// Every (service, span name, span kind) of the tenant: from the blocks (their tag index,
    /// or three columns of their Parquet data) and the ingesters.
    pub async fn operations(
        &self,
        tenant: &TenantId,
    ) -> Result<std::collections::BTreeSet<(String, String, i32)>> {
        use arrow::array::{Array, Int32Array, StringArray};
        use skein_format::schema::col;

        let blocks = self.blocks().blocks(tenant).await?;
        let mut out = std::collections::BTreeSet::new();
        let per_block: Vec<Vec<(String, String, i32)>> =
            futures::stream::iter(blocks.iter().cloned())
                .map(|meta| async move {
                    if let Some(index) = self.tag_index(&meta).await {
                        return Ok(index.operations().iter().cloned().collect());
                    }
                    let batches = self
                        .reader_for(&meta)
                        .read_columns(&[col::SERVICE_NAME, col::NAME, col::KIND])
                        .await?;
                    let mut ops = Vec::new();
                    for batch in &batches {
                        let svc = batch
                            .column_by_name(col::SERVICE_NAME)
                            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
                        let name = batch
                            .column_by_name(col::NAME)
                            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
                        let kind = batch
                            .column_by_name(col::KIND)
                            .and_then(|c| c.as_any().downcast_ref::<Int32Array>());
                        let (Some(svc), Some(name), Some(kind)) = (svc, name, kind) else {
                            continue;
                        };
                        for i in 0..batch.num_rows() {
                            let s = if svc.is_valid(i) { svc.value(i) } else { "" };
                            ops.push((s.to_owned(), name.value(i).to_owned(), kind.value(i)));
                        }
                    }
                    Ok::<_, crate::error::Error>(ops)
                })
                .buffer_unordered(4)
                .try_collect()
                .await?;
        out.extend(per_block.into_iter().flatten());
        let everything = TraceQuery {
            limit: 0,
            ..Default::default()
        };
        for r in self.recent() {
            for trace in r.search(tenant, &everything).await? {
                for s in &trace {
                    out.insert((
                        s.service_name().to_owned(),
                        s.span.name.clone(),
                        s.span.kind,
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Which attributes a tag listing covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScope {
    /// Span attributes (and event and link attributes).
    Span,
    /// Resource attributes.
    Resource,
}

impl TagScope {
    fn index_scope(self) -> Scope {
        match self {
            TagScope::Span => Scope::Span,
            TagScope::Resource => Scope::Resource,
        }
    }
}

/// Tag names by scope.
#[derive(Debug, Default)]
pub struct TagNames {
    /// Keys of span, event and link attributes.
    pub span: std::collections::BTreeSet<String>,
    /// Keys of resource attributes.
    pub resource: std::collections::BTreeSet<String>,
}

type Values = std::collections::BTreeSet<(&'static str, String)>;

impl TraceLookup {
    /// Folds the tenant's data in the window into accumulators: one per block overlapping
    /// the window (all its spans: listings are block-granular, as in Tempo), read from its
    /// tag index with `from_index` or by decoding it with `f`, each block in a task of its
    /// own; and one for the ingesters' spans that start in the window. The caller merges them.
    async fn fold_spans<T, I, F>(
        self: &Arc<Self>,
        tenant: &TenantId,
        window: (u64, u64),
        init: fn() -> T,
        from_index: I,
        f: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        I: Fn(&TagIndex) -> skein_format::Result<Option<T>> + Clone + Send + Sync + 'static,
        F: Fn(&mut T, &[&SpanRecord]) + Clone + Send + Sync + 'static,
    {
        let blocks = self.blocks().blocks(tenant).await?;
        let in_window: Vec<BlockMeta> = blocks
            .iter()
            .filter(|m| m.overlaps(window.0, window.1))
            .cloned()
            .collect();
        let mut out: Vec<T> = futures::stream::iter(in_window)
            .map(|meta| {
                let (this, f, from_index) = (Arc::clone(self), f.clone(), from_index.clone());
                async move {
                    tokio::spawn(async move {
                        if let Some(index) = this.tag_index(&meta).await {
                            let answer = tokio::task::spawn_blocking(move || from_index(&index))
                                .await
                                .map_err(skein_format::Error::from)??;
                            if let Some(answer) = answer {
                                return Ok(answer);
                            }
                        }
                        // Parts are row groups, which end at trace boundaries and hold their
                        // traces' spans together (sorted by trace ID).
                        let mut acc = init();
                        let mut stream = this.reader_for(&meta).scan(ScanFilter::default());
                        while let Some(part) = stream.try_next().await? {
                            for trace in part.chunk_by(|a, b| a.span.trace_id == b.span.trace_id) {
                                f(&mut acc, &trace.iter().collect::<Vec<_>>());
                            }
                        }
                        Ok::<T, skein_format::Error>(acc)
                    })
                    .await
                    .map_err(skein_format::Error::from)?
                    .map_err(crate::error::Error::from)
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let everything = TraceQuery {
            start_unix_nano: Some(window.0),
            end_unix_nano: Some(window.1),
            limit: 0,
            ..Default::default()
        };
        let mut acc = init();
        for r in self.recent() {
            for trace in r.search(tenant, &everything).await? {
                let in_window: Vec<&SpanRecord> = trace
                    .iter()
                    .filter(|s| {
                        let t = s.span.start_time_unix_nano;
                        window.0 <= t && t <= window.1
                    })
                    .collect();
                f(&mut acc, &in_window);
            }
        }
        out.push(acc);
        Ok(out)
    }

    /// Attribute keys in use, by scope.
    pub async fn tag_names(
        self: &Arc<Self>,
        tenant: &TenantId,
        window: (u64, u64),
    ) -> Result<TagNames> {
        let parts = self
            .fold_spans(
                tenant,
                window,
                TagNames::default,
                |index: &TagIndex| {
                    Ok(Some(TagNames {
                        span: index.keys(Scope::Span),
                        resource: index.keys(Scope::Resource),
                    }))
                },
                |names: &mut TagNames, trace: &[&SpanRecord]| {
                    for s in trace {
                        let span_lists = std::iter::once(&s.span.attributes)
                            .chain(s.span.events.iter().map(|e| &e.attributes))
                            .chain(s.span.links.iter().map(|l| &l.attributes));
                        names
                            .span
                            .extend(span_lists.flatten().map(|kv| kv.key.clone()));
                        let resource = &s.resource.resource.attributes;
                        names
                            .resource
                            .extend(resource.iter().map(|kv| kv.key.clone()));
                    }
                },
            )
            .await?;
        let mut names = TagNames::default();
        for p in parts {
            names.span.extend(p.span);
            names.resource.extend(p.resource);
        }
        Ok(names)
    }

    /// The values (type name, string form) of attribute `key` in `scope` (both when `None`).
    pub async fn tag_values(
        self: &Arc<Self>,
        tenant: &TenantId,
        scope: Option<TagScope>,
        key: &str,
        window: (u64, u64),
    ) -> Result<Values> {
        use skein_format::otlp::common::v1::KeyValue;
        fn typed(kv: &KeyValue) -> (&'static str, String) {
            (
                skein_format::tagindex::type_name(kv),
                kv.value
                    .as_ref()
                    .map(skein_format::model::value_string)
                    .unwrap_or_default(),
            )
        }
        let scopes: Vec<Scope> = match scope {
            Some(s) => vec![s.index_scope()],
            None => vec![Scope::Span, Scope::Resource],
        };
        let (key, index_key) = (key.to_owned(), key.to_owned());
        let parts = self
            .fold_spans(
                tenant,
                window,
                Values::new,
                move |index: &TagIndex| {
                    let mut out = Values::new();
                    for s in &scopes {
                        match index.values(*s, &index_key)? {
                            Some(values) => out.extend(values),
                            // Too many distinct values to be indexed: scan the block.
                            None => return Ok(None),
                        }
                    }
                    Ok(Some(out))
                },
                move |out: &mut Values, trace: &[&SpanRecord]| {
                    for s in trace {
                        let mut lists: Vec<&Vec<KeyValue>> = Vec::new();
                        if scope != Some(TagScope::Resource) {
                            lists.push(&s.span.attributes);
                            lists.extend(s.span.events.iter().map(|e| &e.attributes));
                            lists.extend(s.span.links.iter().map(|l| &l.attributes));
                        }
                        if scope != Some(TagScope::Span) {
                            lists.push(&s.resource.resource.attributes);
                        }
                        let matching = lists.into_iter().flatten().filter(|kv| kv.key == key);
                        out.extend(matching.map(typed));
                    }
                },
            )
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }

    /// Calls between services in the window, as Jaeger's dependency graph counts them:
    /// (parent's service, child's service) → number of child spans whose parent span belongs
    /// to another service. Block-granular like the listings: every block overlapping the
    /// window counts whole, from its tag index or by scanning it, and the ingesters' spans
    /// that start in the window. A parent and child in different blocks are not counted
    /// (compaction brings a trace's spans into one block).
    pub async fn service_calls(
        self: &Arc<Self>,
        tenant: &TenantId,
        window: (u64, u64),
    ) -> Result<std::collections::BTreeMap<(String, String), u64>> {
        type Calls = std::collections::BTreeMap<(String, String), u64>;
        let parts = self
            .fold_spans(
                tenant,
                window,
                Calls::new,
                |index: &TagIndex| Ok(Some(index.service_calls().clone())),
                |calls: &mut Calls, trace: &[&SpanRecord]| {
                    skein_format::summary::count_service_calls(trace, calls);
                },
            )
            .await?;
        let mut calls = Calls::new();
        for (edge, n) in parts.into_iter().flatten() {
            *calls.entry(edge).or_default() += n;
        }
        Ok(calls)
    }
}
