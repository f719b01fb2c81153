//! TraceQL search over blocks and recent data, with true trace summaries and the spansets
//! each matching trace yields.
//!
//! Results are the `limit` matching traces that started last (ties by trace ID), each with
//! the summary of the whole trace even when it is split across blocks and ingesters.
//!
//! Every executor follows `skein_query::plan`: it finds **candidates**, traces with a span
//! satisfying the search's candidate condition in the data it holds, and each candidate is
//! then **decided** on the whole trace by the one TraceQL evaluator. Compacted blocks find
//! their candidates with their tag index ([`pushdown`](super::pushdown)), without reading
//! Parquet; other blocks are scanned; ingesters answer for their recent data. A candidate's
//! pieces are read from its block and from the other blocks (by meta ranges and bloom
//! filters) and ingesters that may hold it, many candidates in one pass, decoding only the
//! parts of a span the query observes (`Search::span_parts`).
//!
//! Blocks are visited newest first (by their latest span start). A trace starts no later
//! than any of its spans, so once `limit` traces are decided that all started after the
//! next block's latest span start, no trace that block (or any older one) could add would
//! make the cut, and the search stops. The same bound skips candidates one by one. While the
//! blocks so far leave the answer short, the next blocks' candidates are decided several
//! blocks at once.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use skein_format::summary::TraceSummary;
use skein_format::tagindex::{IndexCondition, IndexRelation};
use skein_format::{BlockMeta, ScanFilter, SpanRecord, TenantId, TraceId};
use skein_query::Search;
use skein_query::recent::Candidates;
use skein_query::search::TraceQuery;
use skein_traceql::{Query, SpanSet};

use super::lookup::{TraceLookup, merge};
use super::pushdown::{index_condition, index_relation, needles};
use crate::error::{Error, Result};

/// A matching trace: every span of it, and the spansets the query yields on it.
#[derive(Debug, Clone)]
pub struct TraceMatch {
    /// The whole trace, by start time, with the parts of each span the query reads
    /// (`Search::span_parts`; the others empty).
    pub spans: Vec<SpanRecord>,
    /// Spansets; their span indices point into `spans`.
    pub spansets: Vec<SpanSet>,
}

/// What a search found.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// Matching traces, newest first.
    pub traces: Vec<TraceSummary>,
    /// For each of `traces`, in the same order: its spans and spansets.
    pub matched: Vec<TraceMatch>,
    /// Candidate traces decided.
    pub inspected_traces: u64,
    /// Spans of the traces read whole to decide them.
    pub inspected_spans: u64,
    /// Of those, traces read whole (the others were decided from a tag index).
    pub read_traces: u64,
    /// Of the blocks searched, those answered from their tag index.
    pub indexed_blocks: u64,
    /// Of the blocks searched, those answered from their row index (blocks not compacted yet).
    pub row_indexed_blocks: u64,
    /// Blocks searched.
    pub inspected_blocks: u64,
    /// Blocks overlapping the search's window.
    pub total_blocks: u64,
    /// Bytes of the blocks overlapping the window (their data objects).
    pub total_block_bytes: u64,
    /// True when the search stopped at its budget of trace reads before the end.
    pub truncated: bool,
}

/// Most traces read in full for one search: bounds the cost of a query that matches almost
/// nothing.
const MAX_FULL_READS: usize = 5_000;
/// Blocks searched at once.
const BLOCK_CONCURRENCY: usize = 4;

/// What found a block's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answered {
    TagIndex,
    RowIndex,
    Scan,
}

/// A trace of one block with a span satisfying the candidate condition.
struct Candidate {
    id: TraceId,
    /// An upper bound of the trace's start: the earliest start of its spans seen here.
    start_bound: u64,
    /// Found by scanning the block: every span of the trace in the block.
    local: Option<Vec<SpanRecord>>,
    /// Found with the block's tag index: the trace's rows in the block's data.
    rows: Option<Range<u64>>,
}

/// The traces decided so far that make the cut: at most `limit`, newest first.
struct TopTraces {
    limit: usize,
    traces: Vec<(TraceSummary, TraceMatch)>,
}

impl TopTraces {
    fn order(a: &TraceSummary, b: &TraceSummary) -> std::cmp::Ordering {
        b.start_unix_nano
            .cmp(&a.start_unix_nano)
            .then(a.trace_id.cmp(&b.trace_id))
    }

    fn push(&mut self, t: TraceSummary, m: TraceMatch) {
        let at = self
            .traces
            .partition_point(|(x, _)| Self::order(x, &t) == std::cmp::Ordering::Less);
        self.traces.insert(at, (t, m));
        self.traces.truncate(self.limit);
    }

    /// True when a trace that started at or before `bound` cannot make the cut.
    fn excludes(&self, bound: u64) -> bool {
        self.traces.len() >= self.limit
            && self
                .traces
                .last()
                .is_some_and(|(last, _)| last.start_unix_nano > bound)
    }
}

/// The pieces of a search every block task needs.
struct Plan {
    search: Search,
    /// The candidate condition as a spanset filter, for scans.
    filter: Query,
    /// The candidate condition in the index's terms.
    index: IndexCondition,
    /// The query's structural relations in the index's terms.
    relations: Vec<IndexRelation>,
    /// Generic span attribute values a candidate span holds (see [`needles`]).
    needles: Vec<(String, String)>,
}

impl Plan {
    fn new(search: &Search) -> Result<Plan> {
        let filter = skein_traceql::parse(&search.candidate_filter()).map_err(|e| {
            Error::Query(skein_query::Error::Unavailable(format!(
                "the candidate filter of {} does not parse: {e}",
                search.query
            )))
        })?;
        let condition = search.candidate_condition();
        let index = condition
            .as_ref()
            .map_or(IndexCondition::All, index_condition);
        let needles = condition.as_ref().map(needles).unwrap_or_default();
        let relations = search
            .candidate_relations()
            .iter()
            .filter_map(index_relation)
            .collect();
        Ok(Plan {
            search: search.clone(),
            filter,
            index,
            relations,
            needles,
        })
    }

    /// The earliest start of a span of `spans` (a trace's spans in one block) that the search
    /// looks at and that satisfies the candidate condition; `None` when there is none.
    fn is_candidate(&self, spans: &[SpanRecord]) -> Option<u64> {
        self.filter
            .evaluate(spans)
            .iter()
            .flat_map(|set| set.spans.iter().filter_map(|&i| spans.get(i)))
            .filter(|s| self.search.in_window(s))
            .map(|s| s.span.start_time_unix_nano)
            .min()
    }
}

impl TraceLookup {
    /// The candidates of one block, from its tag index when it has one, else from its row
    /// index, else from a scan. Also says which answered.
    async fn candidates_in(
        &self,
        meta: BlockMeta,
        plan: &Plan,
    ) -> Result<(Vec<Candidate>, Answered)> {
        let index = self.tag_index(&meta).await;
        // A value of a key the index has no terms for (a request or user ID) makes every trace
        // of the block a candidate there: a scan whose row groups the Parquet Bloom filters
        // rule out finds the few that hold it for less.
        let index = index.filter(|index| {
            !plan
                .needles
                .iter()
                .any(|(key, _)| index.span_key_terms(key) == Some(false))
        });
        if let Some(index) = index {
            let (condition, window) = (plan.index.clone(), plan.search.window);
            let relations = plan.relations.clone();
            let searched = Arc::clone(&index);
            let (mut ordinals, excluded) = tokio::task::spawn_blocking(move || {
                let all = searched.traces_matching(&condition, window)?;
                let related = searched.traces_related(&all, &relations, window)?;
                let excluded: Vec<u32> = match related.len() == all.len() {
                    true => Vec::new(),
                    false => {
                        let kept: HashSet<u32> = related.iter().copied().collect();
                        all.into_iter().filter(|o| !kept.contains(o)).collect()
                    }
                };
                Ok::<_, skein_format::Error>((related, excluded))
            })
            .await
            .map_err(skein_format::Error::from)??;
            // The relations judged the traces on this block's spans; one with spans anywhere
            // else is decided whole after all.
            if !excluded.is_empty() {
                let ids: Vec<TraceId> = excluded
                    .iter()
                    .filter_map(|&o| Some(index.summary(o)?.trace_id))
                    .collect();
                let elsewhere = self
                    .maybe_elsewhere(&meta.tenant, &ids, meta.block_id)
                    .await?;
                ordinals.extend(excluded.into_iter().filter(|&o| {
                    index
                        .summary(o)
                        .is_some_and(|s| elsewhere.contains(&s.trace_id))
                }));
            }
            let candidates = ordinals
                .into_iter()
                .filter_map(|o| {
                    let summary = index.summary(o)?;
                    Some(Candidate {
                        id: summary.trace_id,
                        start_bound: summary.start_unix_nano,
                        local: None,
                        rows: index.rows(o),
                    })
                })
                .collect();
            return Ok((candidates, Answered::TagIndex));
        }
        // A block without a tag index (as an ingester writes it) has a row index.
        if let Some(rows) = self.row_index(&meta).await
            && !plan
                .needles
                .iter()
                .any(|(key, _)| rows.span_key_terms(key) == Some(false))
            && let Some(ordinals) = rows.traces_matching(&plan.index, plan.search.window)
        {
            let candidates = ordinals
                .into_iter()
                .filter_map(|o| {
                    let t = rows.traces().get(o)?;
                    Some(Candidate {
                        id: t.trace_id,
                        start_bound: t.start_unix_nano,
                        local: None,
                        rows: rows.rows_of(o),
                    })
                })
                .collect();
            return Ok((candidates, Answered::RowIndex));
        }
        // Whole traces of this block, so that a trace no other block holds is decided from
        // what was read here. Only Jaeger's window (on the matched span's start) prunes spans.
        let span_window = (plan.search.window_on == skein_query::WindowOn::MatchedSpan)
            .then_some(plan.search.window)
            .flatten();
        let filter = ScanFilter {
            start_unix_nano: span_window.map(|w| w.0),
            end_unix_nano: span_window.map(|w| w.1),
            whole_traces: true,
            parts: plan.search.span_parts(),
            attr_values: plan.needles.iter().map(|(_, v)| v.clone()).collect(),
            ..Default::default()
        };
        // Row groups skipped may hold other spans of a trace found here (one larger than a
        // row group): such candidates are read whole again.
        let pruned = !plan.needles.is_empty();
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
                let start_bound = plan.is_candidate(&spans)?;
                Some(Candidate {
                    id,
                    start_bound,
                    local: (!pruned).then_some(spans),
                    rows: None,
                })
            })
            .collect();
        Ok((candidates, Answered::Scan))
    }

    /// Decides candidates of `block` on their whole traces, read together: their spans in
    /// this block in one pass (those a scan did not read already), and their pieces elsewhere.
    async fn decide(
        &self,
        tenant: &TenantId,
        search: &Search,
        chunk: Vec<Candidate>,
        block: &BlockMeta,
    ) -> Result<Vec<(TraceSummary, TraceMatch)>> {
        let ids: Vec<TraceId> = chunk.iter().map(|c| c.id).collect();
        let unread: Vec<TraceId> = chunk
            .iter()
            .filter(|c| c.local.is_none() && c.rows.is_none())
            .map(|c| c.id)
            .collect();
        let at: Vec<(TraceId, Range<u64>)> = chunk
            .iter()
            .filter(|c| c.local.is_none())
            .filter_map(|c| Some((c.id, c.rows.clone()?)))
            .collect();
        let parts = search.span_parts();
        let here = async {
            let reader = self.reader_for(block);
            let mut found = match unread.is_empty() {
                true => HashMap::new(),
                false => reader.find_traces_parts(&unread, parts.clone()).await?,
            };
            if !at.is_empty() {
                found.extend(reader.find_traces_at(&at, parts.clone()).await?);
            }
            Ok::<_, skein_format::Error>(found)
        };
        let (elsewhere, here) = futures::join!(
            self.elsewhere(tenant, &ids, Some(block.block_id), parts.clone()),
            here
        );
        let ((mut elsewhere, _), mut here) = (elsewhere?, here?);
        let mut out = Vec::new();
        for c in chunk {
            let local = match c.local {
                // A scan read whole spans: stripped like the pieces read in part.
                Some(mut spans) if !parts.is_all() => {
                    spans.iter_mut().for_each(|s| parts.strip(s));
                    spans
                }
                Some(spans) => spans,
                None => here.remove(&c.id).unwrap_or_default(),
            };
            let pieces = elsewhere.remove(&c.id).unwrap_or_default();
            // Copies a crash-replayed WAL left are dropped as a lookup by ID would.
            if let Some(found) = judge(search, merge(vec![local, pieces])) {
                out.push(found);
            }
        }
        Ok(out)
    }

    /// Runs the legacy search `query` (Jaeger's and Tempo's tag searches) as TraceQL.
    pub async fn search(
        self: &Arc<Self>,
        tenant: &TenantId,
        query: &TraceQuery,
    ) -> Result<SearchResult> {
        let search = query
            .to_search()
            .map_err(|e| Error::BadQuery(e.to_string()))?;
        self.search_traceql(tenant, &search).await
    }

    /// Runs `search` for `tenant`.
    ///
    /// Blocks are searched as separate tasks, so the decoding of several blocks runs on every
    /// core of the runtime rather than inside the one task of the request.
    pub async fn search_traceql(
        self: &Arc<Self>,
        tenant: &TenantId,
        search: &Search,
    ) -> Result<SearchResult> {
        let plan = Arc::new(Plan::new(search)?);
        let blocks = self.blocks().blocks(tenant).await?;
        let window = search.window.unwrap_or((0, u64::MAX));
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
            limit: if search.limit == 0 {
                usize::MAX
            } else {
                search.limit
            },
            traces: Vec::new(),
        };
        let mut result = SearchResult {
            total_blocks: searched.len() as u64,
            total_block_bytes: searched.iter().map(|m| m.data_size).sum(),
            ..Default::default()
        };
        let mut budget = Budget::default();
        // Candidates decided together: enough to fill the answer in one round when the
        // candidate condition is exact, few enough not to read far past the cut.
        let chunk_size = search.limit.clamp(16, 256);

        // The ingesters' data first: it is the newest. Their candidates are completed with the
        // blocks' pieces (any block) in chunks, newest first.
        let ask = Candidates::for_search(search);
        let mut recent: Vec<(u64, TraceId)> = Vec::new();
        for r in self.recent() {
            for trace in r.search(tenant, &ask).await? {
                let Some(id) = trace.first().and_then(|s| s.trace_id().ok()) else {
                    continue;
                };
                let start = trace.iter().map(|s| s.span.start_time_unix_nano).min();
                recent.push((start.unwrap_or(0), id));
            }
        }
        recent.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut pending = recent.into_iter().peekable();
        loop {
            let mut ids = Vec::new();
            while ids.len() < chunk_size {
                let Some(&(start, id)) = pending.peek() else {
                    break;
                };
                if top.excludes(start) {
                    break;
                }
                pending.next();
                if !budget.decided.insert(id) {
                    continue;
                }
                if budget.full_reads >= MAX_FULL_READS {
                    result.truncated = true;
                    break;
                }
                budget.full_reads += 1;
                ids.push(id);
            }
            if ids.is_empty() {
                break;
            }
            result.inspected_traces += ids.len() as u64;
            let (mut pieces, _) = self
                .elsewhere(tenant, &ids, None, search.span_parts())
                .await?;
            for id in ids {
                let spans = merge(vec![pieces.remove(&id).unwrap_or_default()]);
                result.inspected_spans += spans.len() as u64;
                if let Some((summary, m)) = judge(search, spans) {
                    top.push(summary, m);
                }
            }
        }

        let order: Vec<BlockMeta> = searched.clone();
        let mut per_block = futures::stream::iter(searched)
            .map(|meta| {
                let (this, plan) = (Arc::clone(self), Arc::clone(&plan));
                async move {
                    tokio::spawn(async move { this.candidates_in(meta, &plan).await })
                        .await
                        .map_err(skein_format::Error::from)?
                }
            })
            .buffered(BLOCK_CONCURRENCY);
        // Blocks are decided in waves: one block while the answer fills up from it, several
        // blocks with candidates at once (their reads in parallel) when the blocks so far left
        // it short, as a query with few matches per block does.
        let mut i = 0;
        let mut width = 1;
        let mut exhausted = false;
        while !exhausted {
            let mut wave: Vec<(usize, Vec<Candidate>, Pending)> = Vec::new();
            while wave
                .iter()
                .filter(|(_, chunk, _)| !chunk.is_empty())
                .count()
                < width
            {
                let Some((mut candidates, indexed)) = per_block.try_next().await? else {
                    exhausted = true;
                    break;
                };
                let at = i;
                i += 1;
                result.inspected_blocks += 1;
                result.indexed_blocks += u64::from(indexed == Answered::TagIndex);
                result.row_indexed_blocks += u64::from(indexed == Answered::RowIndex);
                candidates.sort_by(|a, b| b.start_bound.cmp(&a.start_bound).then(a.id.cmp(&b.id)));
                let mut pending = candidates.into_iter().peekable();
                let chunk = next_chunk(&mut pending, &top, &mut budget, &mut result, chunk_size);
                wave.push((at, chunk, pending));
                if order
                    .get(i)
                    .is_none_or(|next| top.excludes(next.max_start_unix_nano))
                {
                    exhausted = true;
                    break;
                }
            }
            let decided = futures::future::try_join_all(
                wave.iter_mut()
                    .filter(|(_, chunk, _)| !chunk.is_empty())
                    .map(|(at, chunk, _)| {
                        self.decide(tenant, search, std::mem::take(chunk), &order[*at])
                    }),
            )
            .await?;
            for (summary, m) in decided.into_iter().flatten() {
                result.inspected_spans += m.spans.len() as u64;
                top.push(summary, m);
            }
            // What the first chunks left of each block, in block order: rare (a block with more
            // candidates than a chunk that can still make the cut).
            for (at, _, mut pending) in wave {
                loop {
                    let chunk =
                        next_chunk(&mut pending, &top, &mut budget, &mut result, chunk_size);
                    if chunk.is_empty() {
                        break;
                    }
                    for (summary, m) in self.decide(tenant, search, chunk, &order[at]).await? {
                        result.inspected_spans += m.spans.len() as u64;
                        top.push(summary, m);
                    }
                }
            }
            if order
                .get(i)
                .is_none_or(|next| top.excludes(next.max_start_unix_nano))
            {
                break;
            }
            width = if top.traces.len() < top.limit {
                BLOCK_CONCURRENCY
            } else {
                1
            };
        }
        for (summary, m) in top.traces {
            result.traces.push(summary);
            result.matched.push(m);
        }
        result.read_traces = budget.full_reads as u64;
        Ok(result)
    }
}

/// The traces of one search already decided (or being decided), and how many were read whole.
#[derive(Default)]
struct Budget {
    decided: HashSet<TraceId>,
    full_reads: usize,
}

/// A block's candidates not decided yet, newest first.
type Pending = std::iter::Peekable<std::vec::IntoIter<Candidate>>;

/// The next candidates of a block that can still make the cut and were not decided yet, at
/// most `size`: decided together. Empty when none is left (or the budget is spent).
fn next_chunk(
    pending: &mut Pending,
    top: &TopTraces,
    budget: &mut Budget,
    result: &mut SearchResult,
    size: usize,
) -> Vec<Candidate> {
    let mut chunk = Vec::new();
    while chunk.len() < size {
        let Some(c) = pending.peek() else { break };
        if top.excludes(c.start_bound) {
            // Older candidates of this block cannot make it either.
            pending.for_each(drop);
            break;
        }
        let Some(c) = pending.next() else { break };
        if !budget.decided.insert(c.id) {
            continue;
        }
        if budget.full_reads >= MAX_FULL_READS {
            result.truncated = true;
            pending.for_each(drop);
            break;
        }
        budget.full_reads += 1;
        chunk.push(c);
    }
    result.inspected_traces += chunk.len() as u64;
    chunk
}

/// The verdict on a whole trace: its summary and match when `search` matches it.
fn judge(search: &Search, spans: Vec<SpanRecord>) -> Option<(TraceSummary, TraceMatch)> {
    let spansets = search.decide(&spans)?;
    let summary = TraceSummary::from_spans(&spans)?;
    Some((summary, TraceMatch { spans, spansets }))
}
