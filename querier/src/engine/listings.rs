//! Listings over a tenant's data in a window: operations, tag names, tag values (narrowed by
//! a TraceQL query when given) and calls between services. Listings are block-granular, as in
//! Tempo: every block overlapping the window counts whole, answered from its tag index when
//! it can, else decoded; the ingesters' spans that start in the window count too.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use skein_format::tagindex::{Scope, TagIndex};
use skein_format::{BlockMeta, ScanFilter, SpanRecord, TenantId};
use skein_query::recent::Candidates;

use super::lookup::TraceLookup;
use crate::error::Result;

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
        let everything = Candidates::default();
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
        let everything = Candidates::in_window(window);
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
