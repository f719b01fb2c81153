//! Trace search over blocks and recent data, with true trace summaries.
//!
//! A block only knows its piece of a trace, so search works in two steps. First, candidates:
//! each block in the time window is scanned with the predicates that can be decided per span
//! pushed down (time range, and the service for span-level queries), and the ingesters are
//! asked too. Then, newest candidate first, the whole trace is read (every block that may hold
//! it, plus the ingesters) and the query is decided on it, until `limit` traces match. So the
//! summary (root, start, duration, span and error counts per service) is the true one even
//! when the trace is split across blocks.

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use skein_storage::query::{Semantics, TraceQuery, TraceSummary, span_has_tag};
use skein_storage::{BlockMeta, ScanFilter, SpanRecord, TenantId, TraceId};

use crate::error::Result;
use crate::lookup::TraceLookup;

/// What a search found.
#[derive(Debug, Default)]
pub struct SearchResult {
    /// Matching traces, newest first.
    pub traces: Vec<TraceSummary>,
    /// Traces looked at.
    pub inspected_traces: u64,
    /// Blocks scanned.
    pub inspected_blocks: u64,
}

/// Most candidates read in full for one search: bounds the cost of a query that matches
/// almost nothing.
const MAX_CANDIDATES: usize = 5_000;

fn candidate(query: &TraceQuery, s: &SpanRecord) -> bool {
    let start = s.span.start_time_unix_nano;
    let in_range = match query.semantics {
        // Jaeger: the matching span must start in the range.
        Semantics::Span => {
            query.start_unix_nano.is_none_or(|t| start >= t)
                && query.end_unix_nano.is_none_or(|t| start <= t)
        }
        // Tempo: the trace must overlap the range; decided on the whole trace later.
        Semantics::Trace => true,
    };
    in_range
        && query
            .service_name
            .as_deref()
            .is_none_or(|w| s.service_name() == w)
        && query.span_name.as_deref().is_none_or(|w| s.span.name == w)
        && query.tags.iter().all(|(k, v)| span_has_tag(s, k, v))
}

impl TraceLookup {
    async fn candidates_in(
        &self,
        meta: BlockMeta,
        query: &TraceQuery,
    ) -> Result<HashMap<TraceId, u64>> {
        let filter = ScanFilter {
            // Tempo's range is about the trace; a span of it may start before the range.
            start_unix_nano: match query.semantics {
                Semantics::Span => query.start_unix_nano,
                Semantics::Trace => None,
            },
            end_unix_nano: query.end_unix_nano,
            service_name: query.service_name.clone(),
            ..Default::default()
        };
        let parts: Vec<Vec<SpanRecord>> = self.reader_for(&meta).scan(filter).try_collect().await?;
        let mut out = HashMap::new();
        for s in parts.iter().flatten().filter(|s| candidate(query, s)) {
            if let Ok(id) = s.trace_id() {
                let start = out.entry(id).or_insert(u64::MAX);
                *start = (*start).min(s.span.start_time_unix_nano);
            }
        }
        Ok(out)
    }

    /// Runs `query` for `tenant`.
    ///
    /// Blocks are scanned as separate tasks, so the decoding of several blocks runs on every
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
        let scanned: Vec<BlockMeta> = blocks
            .iter()
            .filter(|m| m.overlaps(window.0, window.1))
            .cloned()
            .collect();
        let inspected_blocks = scanned.len() as u64;
        let per_block: Vec<HashMap<TraceId, u64>> = futures::stream::iter(scanned)
            .map(|meta| {
                let (this, query) = (Arc::clone(self), query.clone());
                async move {
                    tokio::spawn(async move { this.candidates_in(meta, &query).await })
                        .await
                        .map_err(skein_storage::Error::from)?
                }
            })
            .buffer_unordered(4)
            .try_collect()
            .await?;
        let mut candidates: HashMap<TraceId, u64> = HashMap::new();
        for m in per_block {
            for (id, start) in m {
                let e = candidates.entry(id).or_insert(u64::MAX);
                *e = (*e).min(start);
            }
        }
        for r in self.recent() {
            let unlimited = TraceQuery {
                limit: 0,
                ..query.clone()
            };
            for trace in r.search(tenant, &unlimited).await? {
                if let Some(s) = trace.first()
                    && let Ok(id) = s.trace_id()
                {
                    let start = trace
                        .iter()
                        .map(|s| s.span.start_time_unix_nano)
                        .min()
                        .unwrap_or(0);
                    let e = candidates.entry(id).or_insert(u64::MAX);
                    *e = (*e).min(start);
                }
            }
        }
        let mut ordered: Vec<(u64, TraceId)> = candidates
            .into_iter()
            .map(|(id, start)| (start, id))
            .collect();
        // Newest first; ties broken by ID so results are deterministic.
        ordered.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut result = SearchResult {
            inspected_blocks,
            ..Default::default()
        };
        for (_, id) in ordered.into_iter().take(MAX_CANDIDATES) {
            if query.limit > 0 && result.traces.len() >= query.limit {
                break;
            }
            result.inspected_traces += 1;
            let spans = self.find(tenant, &id, None).await?;
            if query.matches(&spans)
                && let Some(summary) = TraceSummary::from_spans(&spans)
            {
                result.traces.push(summary);
            }
        }
        // Whole traces can start earlier than the piece that made them candidates.
        result.traces.sort_by(|a, b| {
            b.start_unix_nano
                .cmp(&a.start_unix_nano)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        Ok(result)
    }
}

impl TraceLookup {
    /// Every (service, span name, span kind) of the tenant: from the blocks (reading three
    /// columns, not whole spans) and the ingesters.
    pub async fn operations(
        &self,
        tenant: &TenantId,
    ) -> Result<std::collections::BTreeSet<(String, String, i32)>> {
        use arrow::array::{Array, Int32Array, StringArray};
        use skein_storage::schema::col;

        let blocks = self.blocks().blocks(tenant).await?;
        let mut out = std::collections::BTreeSet::new();
        let per_block: Vec<Vec<arrow::record_batch::RecordBatch>> =
            futures::stream::iter(blocks.iter().cloned())
                .map(|meta| async move {
                    self.reader_for(&meta)
                        .read_columns(&[col::SERVICE_NAME, col::NAME, col::KIND])
                        .await
                })
                .buffer_unordered(4)
                .try_collect()
                .await?;
        for batch in per_block.iter().flatten() {
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
                out.insert((s.to_owned(), name.value(i).to_owned(), kind.value(i)));
            }
        }
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

/// Tag names by scope.
#[derive(Debug, Default)]
pub struct TagNames {
    /// Keys of span, event and link attributes.
    pub span: std::collections::BTreeSet<String>,
    /// Keys of resource attributes.
    pub resource: std::collections::BTreeSet<String>,
}

impl TraceLookup {
    /// Folds every span of the tenant in the window (blocks and ingesters) into
    /// accumulators: one per block, each block read in a task of its own so the decoding uses
    /// every core, and one for the ingesters' data. The caller merges them.
    async fn fold_spans<T, F>(
        self: &Arc<Self>,
        tenant: &TenantId,
        window: (u64, u64),
        init: fn() -> T,
        f: F,
    ) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(&mut T, &SpanRecord) + Clone + Send + Sync + 'static,
    {
        let blocks = self.blocks().blocks(tenant).await?;
        let in_window: Vec<BlockMeta> = blocks
            .iter()
            .filter(|m| m.overlaps(window.0, window.1))
            .cloned()
            .collect();
        let mut out: Vec<T> = futures::stream::iter(in_window)
            .map(|meta| {
                let (reader, f) = (self.reader_for(&meta), f.clone());
                async move {
                    tokio::spawn(async move {
                        let filter = ScanFilter {
                            start_unix_nano: Some(window.0),
                            end_unix_nano: Some(window.1),
                            ..Default::default()
                        };
                        let mut acc = init();
                        let mut stream = reader.scan(filter);
                        while let Some(part) = stream.try_next().await? {
                            part.iter().for_each(|s| f(&mut acc, s));
                        }
                        Ok::<T, skein_storage::Error>(acc)
                    })
                    .await
                    .map_err(skein_storage::Error::from)?
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
                trace.iter().for_each(|s| f(&mut acc, s));
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
                |names: &mut TagNames, s: &SpanRecord| {
                    names
                        .span
                        .extend(s.span.attributes.iter().map(|kv| kv.key.clone()));
                    for e in &s.span.events {
                        names
                            .span
                            .extend(e.attributes.iter().map(|kv| kv.key.clone()));
                    }
                    for l in &s.span.links {
                        names
                            .span
                            .extend(l.attributes.iter().map(|kv| kv.key.clone()));
                    }
                    names.resource.extend(
                        s.resource
                            .resource
                            .attributes
                            .iter()
                            .map(|kv| kv.key.clone()),
                    );
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
    ) -> Result<std::collections::BTreeSet<(&'static str, String)>> {
        use skein_storage::otlp::common::v1::{KeyValue, any_value::Value as V};
        type Values = std::collections::BTreeSet<(&'static str, String)>;
        fn typed(kv: &KeyValue) -> (&'static str, String) {
            let ty = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(V::IntValue(_)) => "int",
                Some(V::DoubleValue(_)) => "float",
                Some(V::BoolValue(_)) => "bool",
                _ => "string",
            };
            (
                ty,
                kv.value
                    .as_ref()
                    .map(skein_storage::query::value_string)
                    .unwrap_or_default(),
            )
        }
        let key = key.to_owned();
        let parts = self
            .fold_spans(
                tenant,
                window,
                Values::new,
                move |out: &mut Values, s: &SpanRecord| {
                    let matching = |attrs: &[KeyValue]| {
                        attrs
                            .iter()
                            .filter(|kv| kv.key == key)
                            .map(typed)
                            .collect::<Vec<_>>()
                    };
                    if scope != Some(TagScope::Resource) {
                        out.extend(matching(&s.span.attributes));
                        for e in &s.span.events {
                            out.extend(matching(&e.attributes));
                        }
                        for l in &s.span.links {
                            out.extend(matching(&l.attributes));
                        }
                    }
                    if scope != Some(TagScope::Span) {
                        out.extend(matching(&s.resource.resource.attributes));
                    }
                },
            )
            .await?;
        Ok(parts.into_iter().flatten().collect())
    }
}
