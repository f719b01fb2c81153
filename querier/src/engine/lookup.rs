//! Trace by ID: a funnel in which each step avoids I/O the next would make unnecessary: time
//! window → block list → trace-ID range of each row group (from the meta) → bloom filter
//! (cached in memory) → only the row groups, and pages, that can hold the trace → plus what
//! the ingesters hold → merged, exact duplicates removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use skein_format::block::{SpanParts, ValueFilterCache};
use skein_format::bloom::BloomFilter;
use skein_format::layout::{names, read_block_object};
use skein_format::rowindex::RowIndex;
use skein_format::tagindex::TagIndex;
use skein_format::{BlockId, BlockMeta, BlockReader, SpanRecord, Store, TenantId, TraceId};
use skein_query::recent::RecentData;
use skein_storage::BlockList;

use super::tagcache::TagIndexCache;
use crate::error::{Error, Result};

/// Bytes of bloom filters kept in memory; beyond it the cache starts over.
const BLOOM_CACHE_BYTES: usize = 64 << 20;
/// Encoded bytes of row indexes kept decoded in memory (several times that); beyond it the
/// cache starts over.
const ROW_INDEX_CACHE_BYTES: usize = 64 << 20;
/// Bytes of attribute value filters kept in memory; beyond it the cache starts over.
const VALUE_FILTER_CACHE_BYTES: usize = 64 << 20;
/// Blocks read at once for one lookup.
const CONCURRENCY: usize = 8;

/// Finds traces by ID over blocks and recent data.
#[derive(Debug)]
pub struct TraceLookup {
    store: Store,
    blocks: Arc<BlockList>,
    recent: Vec<Arc<dyn RecentData>>,
    blooms: Mutex<(usize, HashMap<BlockId, Arc<BloomFilter>>)>,
    readers: Mutex<HashMap<BlockId, BlockReader>>,
    /// Attribute value filters of row groups, read by needle searches.
    value_filters: ValueFilterCache,
    /// Row indexes of blocks without a tag index (the newest), with their total bytes.
    row_indexes: Mutex<(usize, HashMap<BlockId, Arc<RowIndex>>)>,
    tag_indexes: Option<Arc<TagIndexCache>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TraceLookup {
    /// A lookup over `store`'s blocks (through `blocks`) and the given ingesters.
    pub fn new(store: Store, blocks: Arc<BlockList>, recent: Vec<Arc<dyn RecentData>>) -> Self {
        TraceLookup {
            store,
            blocks,
            recent,
            blooms: Mutex::new((0, HashMap::new())),
            readers: Mutex::new(HashMap::new()),
            row_indexes: Mutex::new((0, HashMap::new())),
            value_filters: ValueFilterCache::new(VALUE_FILTER_CACHE_BYTES),
            tag_indexes: None,
        }
    }

    /// Uses the tag indexes of compacted blocks, through `cache`, for search and listings.
    pub fn with_tag_indexes(mut self, cache: TagIndexCache) -> Self {
        self.tag_indexes = Some(Arc::new(cache));
        self
    }

    /// The opened tag index of `meta`'s block, when it has one and it can be read.
    pub(crate) async fn tag_index(&self, meta: &BlockMeta) -> Option<Arc<TagIndex>> {
        self.tag_indexes.as_ref()?.get(meta).await
    }

    /// The spans of each trace of `ids` of `tenant` held anywhere but in `block` (anywhere
    /// without one): in the other blocks whose trace-ID ranges (from the metas) and cached bloom filters allow it, each
    /// such block read once for all of them, and in the ingesters. Also returns how many
    /// blocks were read. A trace that lies wholly in `block` is absent.
    ///
    /// Only `parts` of each span are read (the others stripped, also from the ingesters'
    /// whole spans, so that copies of one span from different places compare equal).
    pub(crate) async fn elsewhere(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
        block: Option<BlockId>,
        parts: SpanParts,
    ) -> Result<(HashMap<TraceId, Vec<SpanRecord>>, usize)> {
        let reads = self.other_blocks(tenant, ids, block).await?;
        let read = reads.len();
        let found: Vec<HashMap<TraceId, Vec<SpanRecord>>> = futures::stream::iter(reads)
            .map(|(meta, ids)| {
                let parts = parts.clone();
                async move { self.reader(&meta).find_traces_parts(&ids, parts).await }
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut out: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
        for part in found {
            for (id, spans) in part {
                out.entry(id).or_default().extend(spans);
            }
        }
        for r in &self.recent {
            for (id, mut spans) in r.find_traces(tenant, ids).await? {
                if !parts.is_all() {
                    spans.iter_mut().for_each(|s| parts.strip(s));
                }
                out.entry(id).or_default().extend(spans);
            }
        }
        Ok((out, read))
    }

    /// The blocks other than `block` that may hold traces of `ids` (by the metas' trace-ID
    /// ranges and the cached bloom filters), each with the IDs it may hold.
    async fn other_blocks(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
        block: Option<BlockId>,
    ) -> Result<Vec<(BlockMeta, Vec<TraceId>)>> {
        let blocks = self.blocks.blocks(tenant).await?;
        let mut out: Vec<(BlockMeta, Vec<TraceId>)> = Vec::new();
        for meta in blocks.iter().filter(|m| Some(m.block_id) != block) {
            let in_range: Vec<TraceId> = ids
                .iter()
                .filter(|id| meta.row_groups.iter().any(|rg| rg.may_contain(id)))
                .copied()
                .collect();
            if in_range.is_empty() {
                continue;
            }
            let bloom = self.bloom(meta).await?;
            let maybe: Vec<TraceId> = in_range
                .into_iter()
                .filter(|id| bloom.as_ref().is_none_or(|b| b.may_contain(id)))
                .collect();
            if !maybe.is_empty() {
                out.push((meta.clone(), maybe));
            }
        }
        Ok(out)
    }

    /// Of `ids`, the traces that may have spans anywhere but in `block`: in another block
    /// (as [`elsewhere`](Self::elsewhere) finds them, without reading any) or in an ingester.
    pub(crate) async fn maybe_elsewhere(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
        block: BlockId,
    ) -> Result<HashSet<TraceId>> {
        let mut out: HashSet<TraceId> = self
            .other_blocks(tenant, ids, Some(block))
            .await?
            .into_iter()
            .flat_map(|(_, ids)| ids)
            .collect();
        for r in &self.recent {
            out.extend(r.find_traces(tenant, ids).await?.into_keys());
        }
        Ok(out)
    }

    async fn bloom(&self, meta: &BlockMeta) -> Result<Option<Arc<BloomFilter>>> {
        if meta.files.bloom_blocks.is_none() {
            return Ok(None);
        }
        if let Some(b) = lock(&self.blooms).1.get(&meta.block_id) {
            return Ok(Some(Arc::clone(b)));
        }
        let bytes =
            read_block_object(&self.store, &meta.tenant, meta.block_id, names::BLOOM).await?;
        let bloom = Arc::new(BloomFilter::from_bytes(&bytes)?);
        let mut cache = lock(&self.blooms);
        if cache.0 + bytes.len() > BLOOM_CACHE_BYTES {
            cache.1.clear();
            cache.0 = 0;
        }
        cache.0 += bytes.len();
        cache.1.insert(meta.block_id, Arc::clone(&bloom));
        Ok(Some(bloom))
    }

    /// The row index of `meta`'s block, when it has one and it can be read (a block whose
    /// row index is missing or unreadable is scanned instead; the fault is logged).
    pub(crate) async fn row_index(&self, meta: &BlockMeta) -> Option<Arc<RowIndex>> {
        meta.files.row_index_size?;
        if let Some(r) = lock(&self.row_indexes).1.get(&meta.block_id) {
            return Some(Arc::clone(r));
        }
        let read = async {
            let bytes =
                read_block_object(&self.store, &meta.tenant, meta.block_id, names::ROWS).await?;
            let location = format!("{}/{}/{}", meta.tenant, meta.block_id, names::ROWS);
            let index = tokio::task::spawn_blocking(move || RowIndex::decode(&bytes, &location))
                .await
                .map_err(skein_format::Error::from)??;
            Ok::<_, Error>(index)
        };
        let index = match read.await {
            Ok(i) => Arc::new(i),
            Err(e) => {
                tracing::warn!(block = %meta.block_id, error = %e, "row index unreadable; the block is scanned");
                return None;
            }
        };
        let size = meta.files.row_index_size.unwrap_or(0) as usize;
        let mut cache = lock(&self.row_indexes);
        if cache.0 + size > ROW_INDEX_CACHE_BYTES {
            cache.1.clear();
            cache.0 = 0;
        }
        cache.0 += size;
        cache.1.insert(meta.block_id, Arc::clone(&index));
        Some(index)
    }

    /// The block list this lookup reads.
    pub(crate) fn blocks(&self) -> &BlockList {
        &self.blocks
    }

    /// The ingesters this lookup asks.
    pub(crate) fn recent(&self) -> &[Arc<dyn RecentData>] {
        &self.recent
    }

    /// A reader of `meta`'s block, sharing its cached footer with earlier readers.
    pub(crate) fn reader_for(&self, meta: &BlockMeta) -> BlockReader {
        self.reader(meta)
    }

    fn reader(&self, meta: &BlockMeta) -> BlockReader {
        let mut readers = lock(&self.readers);
        if readers.len() > 10_000 {
            readers.clear();
        }
        readers
            .entry(meta.block_id)
            .or_insert_with(|| {
                BlockReader::open(self.store.clone(), meta.clone())
                    .with_value_filter_cache(self.value_filters.clone())
            })
            .clone()
    }

    async fn in_block(&self, meta: &BlockMeta, id: &TraceId) -> Result<Vec<SpanRecord>> {
        if !meta.row_groups.iter().any(|rg| rg.may_contain(id)) {
            return Ok(Vec::new());
        }
        if let Some(bloom) = self.bloom(meta).await?
            && !bloom.may_contain(id)
        {
            return Ok(Vec::new());
        }
        Ok(self.reader(meta).find_trace_unchecked(id).await?)
    }

    /// Every span of trace `id` of `tenant`, from blocks overlapping `window` (ns, inclusive;
    /// all blocks without one) and from the ingesters.
    pub async fn find(
        &self,
        tenant: &TenantId,
        id: &TraceId,
        window: Option<(u64, u64)>,
    ) -> Result<Vec<SpanRecord>> {
        let blocks = self.blocks.blocks(tenant).await?;
        let candidates: Vec<BlockMeta> = blocks
            .iter()
            .filter(|m| window.is_none_or(|(start, end)| m.overlaps(start, end)))
            .cloned()
            .collect();
        let id = *id;
        let from_blocks: Vec<Vec<SpanRecord>> = futures::stream::iter(candidates)
            .map(|meta| async move { self.in_block(&meta, &id).await })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut parts = from_blocks;
        for r in &self.recent {
            parts.push(r.find_trace(tenant, &id).await?);
        }
        Ok(merge(parts))
    }
}

/// Joins pieces of a trace, keeping one copy of spans that are identical in every field
/// (resource and scope included). Distinct spans that share a span ID are all kept.
pub(crate) fn merge(parts: Vec<Vec<SpanRecord>>) -> Vec<SpanRecord> {
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut out = Vec::new();
    for s in parts.into_iter().flatten() {
        // The compactor drops copies by the same definition.
        if seen.insert(skein_format::dedupe::content_key(&s)) {
            out.push(s);
        }
    }
    out.sort_by_key(|s| s.span.start_time_unix_nano);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use skein_format::BlockWriter;
    use skein_storage::StorageConfig;
    use skein_testkit::synth::TraceGenerator;

    use super::*;

    #[tokio::test]
    async fn a_trace_split_over_blocks_comes_back_whole_and_once() {
        let store = StorageConfig::Memory {}.open().unwrap();
        let tenant = TenantId::new("t").unwrap();
        let trace = TraceGenerator::new(1, 1_750_000_000_000_000_000, 1).trace(30);
        let half = trace.len() / 2;
        let id = trace[0].trace_id().unwrap();
        let writer = BlockWriter::new(store.clone());
        // Three blocks: two halves and a duplicate of the first half (a replayed WAL).
        writer.write(&tenant, trace[..half].to_vec()).await.unwrap();
        writer.write(&tenant, trace[half..].to_vec()).await.unwrap();
        writer.write(&tenant, trace[..half].to_vec()).await.unwrap();
        let lookup = TraceLookup::new(
            store.clone(),
            Arc::new(BlockList::new(store, Duration::from_secs(60))),
            vec![],
        );
        let found = lookup.find(&tenant, &id, None).await.unwrap();
        assert_eq!(found.len(), trace.len());
        let missing = lookup.find(&tenant, &TraceId([7; 16]), None).await.unwrap();
        assert!(missing.is_empty());
        // A window that misses every block finds nothing, without reading them.
        assert!(
            lookup
                .find(&tenant, &id, Some((0, 1)))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn distinct_spans_sharing_an_id_are_kept() {
        let trace = TraceGenerator::new(2, 1_750_000_000_000_000_000, 1).trace(4);
        assert!(trace.len() >= 2);
        let mut twin = trace[1].clone();
        twin.span.name = "other".into();
        twin.span.span_id = trace[1].span.span_id.clone();
        let merged = merge(vec![trace.clone(), vec![twin, trace[1].clone()]]);
        assert_eq!(
            merged.len(),
            trace.len() + 1,
            "the twin is kept, the exact copy is not"
        );
    }
}
