//! Reading a block: one trace by ID, or every span with simple predicates pushed down.

use std::collections::{HashMap, HashSet};

use super::parts::{SpanParts, complete};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, FixedSizeBinaryArray, Int64Array, ListArray, StringArray, StructArray,
    TimestampNanosecondArray,
};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection,
    RowSelectionPolicy,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::bloom_filter::Sbbf;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use tokio::sync::OnceCell;

use super::decode::TraceAssembler;
use super::encode::ATTR_VALUES_PATH;
use crate::bloom;
use crate::error::{Error, Result};
use crate::ids::TraceId;
use crate::layout::{Store, block_object, names};
use crate::meta::BlockMeta;
use crate::model::SpanRecord;
use crate::schema::col;

/// Bytes read from the end of `data.parquet` in the first request: enough for the footer and
/// the page index of typical blocks, so that opening a block costs one request.
const FOOTER_PREFETCH: usize = 256 * 1024;

/// Which rows of a row group a trace read decodes.
enum Select {
    /// Those of the traces with these IDs (the trace-ID column is read to find them).
    Ids(Arc<HashSet<[u8; 16]>>),
    /// These rows.
    Rows(RowSelection),
}

/// Span-level predicates for [`BlockReader::scan`]. A span matches when every predicate that
/// is set holds; bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanFilter {
    /// Span start ≥ this (ns since the epoch).
    pub start_unix_nano: Option<u64>,
    /// Span start ≤ this.
    pub end_unix_nano: Option<u64>,
    /// The span's `service.name`.
    pub service_name: Option<String>,
    /// Span duration ≥ this (ns).
    pub min_duration_nanos: Option<u64>,
    /// Span duration ≤ this (ns).
    pub max_duration_nanos: Option<u64>,
    /// Return every span of a trace that has a matching span, not only the matching spans.
    pub whole_traces: bool,
    /// The parts of each span to decode (default: all); see [`SpanParts`].
    pub parts: SpanParts,
    /// Strings that a matching span holds as generic span attribute values (not in a
    /// dedicated column): row groups whose Bloom filter rules one out are skipped. Spans are
    /// not checked against them; the caller judges what the scan returns.
    pub attr_values: Vec<String>,
}

impl ScanFilter {
    fn is_empty(&self) -> bool {
        self.start_unix_nano.is_none()
            && self.end_unix_nano.is_none()
            && self.service_name.is_none()
            && self.min_duration_nanos.is_none()
            && self.max_duration_nanos.is_none()
            && self.attr_values.is_empty()
    }

    /// True when a decoded span satisfies the filter.
    pub fn matches(&self, s: &SpanRecord) -> bool {
        let start = s.span.start_time_unix_nano;
        let duration = s.span.end_time_unix_nano.wrapping_sub(start) as i64;
        self.matches_values(start, duration, Some(s.service_name()))
    }

    fn matches_values(&self, start: u64, duration: i64, service: Option<&str>) -> bool {
        self.start_unix_nano.is_none_or(|t| start >= t)
            && self.end_unix_nano.is_none_or(|t| start <= t)
            && self
                .min_duration_nanos
                .is_none_or(|d| duration >= 0 && duration as u64 >= d)
            && self
                .max_duration_nanos
                .is_none_or(|d| duration >= 0 && duration as u64 <= d)
            && self
                .service_name
                .as_deref()
                .is_none_or(|want| service.unwrap_or("") == want)
    }
}

/// Reads one block. Cheap to clone; clones share the cached Parquet footer.
#[derive(Debug, Clone)]
pub struct BlockReader {
    store: Store,
    meta: Arc<BlockMeta>,
    footer: Arc<OnceCell<Arc<ParquetMetaData>>>,
    value_filters: Option<ValueFilterCache>,
}

/// Cached filters by (block, row group); `None` for a row group without one.
type FilterMap = HashMap<(crate::ids::BlockId, usize), Option<Arc<Sbbf>>>;

/// The Bloom filters of attribute values that scans read (see [`ScanFilter::attr_values`]),
/// kept across readers up to a budget of bytes; beyond it the cache starts over. Cheap to
/// clone; clones share the cache.
#[derive(Debug, Clone, Default)]
pub struct ValueFilterCache {
    inner: Arc<std::sync::Mutex<(usize, FilterMap)>>,
    budget: usize,
}

impl ValueFilterCache {
    /// A cache of at most `budget` bytes of filters.
    pub fn new(budget: usize) -> Self {
        ValueFilterCache {
            inner: Default::default(),
            budget,
        }
    }

    fn get(&self, key: &(crate::ids::BlockId, usize)) -> Option<Option<Arc<Sbbf>>> {
        let map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        map.1.get(key).cloned()
    }

    fn put(&self, key: (crate::ids::BlockId, usize), filter: Option<Arc<Sbbf>>, bytes: usize) {
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if map.0 + bytes > self.budget {
            map.1.clear();
            map.0 = 0;
        }
        map.0 += bytes;
        map.1.insert(key, filter);
    }
}

impl BlockReader {
    /// A reader for the block described by `meta`. Does no I/O until asked.
    pub fn open(store: Store, meta: BlockMeta) -> Self {
        BlockReader {
            store,
            meta: Arc::new(meta),
            footer: Arc::new(OnceCell::new()),
            value_filters: None,
        }
    }

    /// Keeps the attribute value filters this reader reads in `cache`.
    pub fn with_value_filter_cache(mut self, cache: ValueFilterCache) -> Self {
        self.value_filters = Some(cache);
        self
    }

    /// The block's meta.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    fn data_path(&self) -> Path {
        block_object(&self.meta.tenant, self.meta.block_id, names::DATA)
    }

    /// Asks the block's bloom filter whether it may hold `id`: one ranged read of 32 bytes.
    /// Blocks without a bloom filter answer "maybe".
    pub async fn bloom_may_contain(&self, id: &TraceId) -> Result<bool> {
        match self.meta.files.bloom_blocks {
            Some(n) => {
                let path = block_object(&self.meta.tenant, self.meta.block_id, names::BLOOM);
                bloom::may_contain_remote(self.store.as_ref(), &path, n, id).await
            }
            None => Ok(true),
        }
    }

    /// The spans of trace `id` in this block (empty when it has none). Reads the bloom
    /// filter, then only the row groups whose trace-ID range holds `id`.
    pub async fn find_trace(&self, id: &TraceId) -> Result<Vec<SpanRecord>> {
        if !self.meta.row_groups.iter().any(|rg| rg.may_contain(id)) {
            return Ok(Vec::new());
        }
        if !self.bloom_may_contain(id).await? {
            return Ok(Vec::new());
        }
        self.find_trace_unchecked(id).await
    }

    /// Like [`find_trace`](Self::find_trace) but skipping the bloom filter, for callers that
    /// consulted a cached copy already.
    pub async fn find_trace_unchecked(&self, id: &TraceId) -> Result<Vec<SpanRecord>> {
        let mut found = self.find_traces_unchecked(std::slice::from_ref(id)).await?;
        Ok(found.remove(id).unwrap_or_default())
    }

    /// Every span of each trace of `ids` in the block, in one pass over each row group that
    /// may hold any of them (no bloom filter consulted), the row groups read concurrently on
    /// the runtime's threads. Traces the block lacks are absent.
    pub async fn find_traces_unchecked(
        &self,
        ids: &[TraceId],
    ) -> Result<HashMap<TraceId, Vec<SpanRecord>>> {
        self.find_traces_parts(ids, SpanParts::ALL).await
    }

    /// Like [`find_traces_unchecked`](Self::find_traces_unchecked), decoding only `parts` of
    /// each span (the others empty, as [`SpanParts::strip`] leaves them).
    pub async fn find_traces_parts(
        &self,
        ids: &[TraceId],
        parts: SpanParts,
    ) -> Result<HashMap<TraceId, Vec<SpanRecord>>> {
        let row_groups: Vec<usize> = self
            .meta
            .row_groups
            .iter()
            .enumerate()
            .filter(|(_, rg)| ids.iter().any(|id| rg.may_contain(id)))
            .map(|(i, _)| i)
            .collect();
        let mut out: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
        if row_groups.is_empty() {
            return Ok(out);
        }
        let footer = self.footer().await?;
        let want: Arc<HashSet<[u8; 16]>> = Arc::new(ids.iter().map(|id| id.0).collect());
        let reads = row_groups.into_iter().map(|rg| {
            let (this, footer, want) = (self.clone(), Arc::clone(&footer), Arc::clone(&want));
            let parts = parts.clone();
            let select = Select::Ids(want);
            tokio::spawn(async move { this.traces_in_row_group(footer, rg, select, parts).await })
        });
        for read in futures::future::join_all(reads).await {
            for s in read.map_err(Error::from)?? {
                if let Ok(id) = s.trace_id() {
                    out.entry(id).or_default().push(s);
                }
            }
        }
        Ok(out)
    }

    /// Like [`find_traces_parts`](Self::find_traces_parts), for traces whose rows in the
    /// data are known (the block's tag index records them): only those rows are decoded, and
    /// the trace-ID column is not read to find them. Each trace comes with its row range; a
    /// range that turns out not to hold exactly its trace (an index that disagrees with the
    /// data) makes the read fall back to finding the traces by ID.
    pub async fn find_traces_at(
        &self,
        traces: &[(TraceId, Range<u64>)],
        parts: SpanParts,
    ) -> Result<HashMap<TraceId, Vec<SpanRecord>>> {
        let mut out: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
        if traces.is_empty() {
            return Ok(out);
        }
        let footer = self.footer().await?;
        // Each row group's ranges, relative to its first row.
        let mut per_group: Vec<Vec<Range<usize>>> = vec![Vec::new(); footer.num_row_groups()];
        let mut first = 0u64;
        let mut fits = true;
        for (rg, ranges) in per_group.iter_mut().enumerate() {
            let rows = u64::try_from(footer.row_group(rg).num_rows()).unwrap_or(0);
            for (_, r) in traces {
                if r.start < first + rows && r.end > first {
                    fits &= r.start >= first && r.end <= first + rows;
                    ranges.push((r.start - first) as usize..(r.end - first) as usize);
                }
            }
            first += rows;
        }
        if !fits || traces.iter().any(|(_, r)| r.end > first || r.is_empty()) {
            return self.find_traces_by_id(traces, parts).await;
        }
        let reads = per_group
            .into_iter()
            .enumerate()
            .filter(|(_, ranges)| !ranges.is_empty())
            .map(|(rg, mut ranges)| {
                ranges.sort_by_key(|r| r.start);
                let rows = usize::try_from(footer.row_group(rg).num_rows()).unwrap_or(0);
                let select = Select::Rows(RowSelection::from_consecutive_ranges(
                    ranges.into_iter(),
                    rows,
                ));
                let (this, footer, parts) = (self.clone(), Arc::clone(&footer), parts.clone());
                tokio::spawn(
                    async move { this.traces_in_row_group(footer, rg, select, parts).await },
                )
            });
        for read in futures::future::join_all(reads).await {
            for s in read.map_err(Error::from)?? {
                if let Ok(id) = s.trace_id() {
                    out.entry(id).or_default().push(s);
                }
            }
        }
        let exact = out.len() == traces.len()
            && traces.iter().all(|(id, r)| {
                out.get(id)
                    .is_some_and(|spans| spans.len() as u64 == r.end - r.start)
            });
        match exact {
            true => Ok(out),
            false => self.find_traces_by_id(traces, parts).await,
        }
    }

    async fn find_traces_by_id(
        &self,
        traces: &[(TraceId, Range<u64>)],
        parts: SpanParts,
    ) -> Result<HashMap<TraceId, Vec<SpanRecord>>> {
        let ids: Vec<TraceId> = traces.iter().map(|(id, _)| *id).collect();
        self.find_traces_parts(&ids, parts).await
    }

    /// The spans of row group `rg` that `select` chooses.
    async fn traces_in_row_group(
        &self,
        footer: Arc<ParquetMetaData>,
        rg: usize,
        select: Select,
        parts: SpanParts,
    ) -> Result<Vec<SpanRecord>> {
        let schema = footer.file_metadata().schema_descr_ptr();
        let schema = schema.as_ref();
        let builder = self
            .builder(Arc::clone(&footer))
            .await?
            .with_row_groups(vec![rg]);
        let mut builder = match select {
            Select::Rows(rows) => builder.with_row_selection(rows),
            Select::Ids(want) => {
                let trace_id_leaf = leaf_index(schema, col::TRACE_ID)?;
                // The filter reads only the trace_id column; the page index then lets the
                // reader fetch just the pages of the other columns that hold the selected
                // rows.
                let predicate = ArrowPredicateFn::new(
                    ProjectionMask::leaves(schema, [trace_id_leaf]),
                    move |batch: RecordBatch| {
                        let ids = batch
                            .column(0)
                            .as_any()
                            .downcast_ref::<FixedSizeBinaryArray>()
                            .ok_or_else(|| {
                                arrow::error::ArrowError::SchemaError(
                                    "trace_id is not binary(16)".into(),
                                )
                            })?;
                        Ok(BooleanArray::from_iter(ids.iter().map(|v| {
                            Some(
                                v.and_then(|v| <[u8; 16]>::try_from(v).ok())
                                    .is_some_and(|v| want.contains(&v)),
                            )
                        })))
                    },
                );
                builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]))
            }
        };
        let full = Arc::clone(builder.schema());
        let fields = schema.root_schema().get_fields();
        let roots: Vec<usize> = (0..fields.len())
            .filter(|&i| parts.reads(fields[i].name()))
            .collect();
        builder = builder.with_projection(ProjectionMask::roots(schema, roots));
        let mut stream = builder.build()?;
        let mut assembler = TraceAssembler::new();
        let mut spans = Vec::new();
        while let Some(batch) = stream.try_next().await? {
            let batch = match parts.is_all() {
                true => batch,
                false => complete(&batch, &full)?,
            };
            spans.extend(assembler.push(&batch)?);
        }
        spans.extend(assembler.finish()?);
        if !parts.is_all() {
            spans.iter_mut().for_each(|s| parts.strip(s));
        }
        Ok(spans)
    }

    /// Every span of the block that matches `filter`, one item per row group.
    ///
    /// Row groups are ruled out by their statistics of trace start and duration. With span
    /// predicates set, a first pass reads only the few columns they need; the second reads
    /// the traces holding a match in full (parents are stored as positions within the trace)
    /// and keeps the matching spans, or whole traces with [`ScanFilter::whole_traces`].
    pub fn scan(&self, filter: ScanFilter) -> BoxStream<'static, Result<Vec<SpanRecord>>> {
        let this = self.clone();
        let filter = Arc::new(filter);
        futures::stream::once(async move {
            let footer = this.footer().await?;
            let row_groups: Vec<usize> = (0..footer.num_row_groups())
                .filter(|&rg| row_group_may_match(&footer, rg, &filter))
                .collect();
            Ok::<_, Error>(futures::stream::iter(row_groups).then(move |rg| {
                let (this, footer, filter) =
                    (this.clone(), Arc::clone(&footer), Arc::clone(&filter));
                async move { this.scan_row_group(footer, rg, &filter).await }
            }))
        })
        .try_flatten()
        .boxed()
    }

    /// The given top-level columns of every row, as Arrow batches: for listings (services,
    /// operations, tag values) that need a few columns, not whole spans. Columns the block
    /// lacks are left out of the batches.
    pub async fn read_columns(&self, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let footer = self.footer().await?;
        let schema = footer.file_metadata().schema_descr_ptr();
        let roots: Vec<usize> = (0..schema.root_schema().get_fields().len())
            .filter(|&i| columns.contains(&schema.root_schema().get_fields()[i].name()))
            .collect();
        let stream = self
            .builder(footer)
            .await?
            .with_projection(ProjectionMask::roots(&schema, roots))
            .build()?;
        Ok(stream.try_collect().await?)
    }

    /// Every row group of the block as one Arrow batch of every column, in file order: the
    /// rows as stored, not turned into spans (the compactor copies them).
    pub fn row_group_batches(&self) -> BoxStream<'static, Result<RecordBatch>> {
        let this = self.clone();
        futures::stream::once(async move {
            let footer = this.footer().await?;
            Ok::<_, Error>(
                futures::stream::iter(0..footer.num_row_groups()).then(move |rg| {
                    let (this, footer) = (this.clone(), Arc::clone(&footer));
                    async move {
                        let rows = usize::try_from(footer.row_group(rg).num_rows()).unwrap_or(0);
                        let builder = this.builder(footer).await?;
                        let schema = Arc::clone(builder.schema());
                        let batches: Vec<RecordBatch> = builder
                            .with_row_groups(vec![rg])
                            .with_batch_size(rows.max(1))
                            .build()?
                            .try_collect()
                            .await?;
                        match batches.len() {
                            1 => Ok(batches.into_iter().next().expect("one batch")),
                            _ => Ok(arrow::compute::concat_batches(&schema, &batches)?),
                        }
                    }
                }),
            )
        })
        .try_flatten()
        .boxed()
    }

    /// Every span of the block.
    pub async fn read_all(&self) -> Result<Vec<SpanRecord>> {
        let parts: Vec<Vec<SpanRecord>> = self.scan(ScanFilter::default()).try_collect().await?;
        Ok(parts.into_iter().flatten().collect())
    }

    async fn scan_row_group(
        &self,
        footer: Arc<ParquetMetaData>,
        rg: usize,
        filter: &ScanFilter,
    ) -> Result<Vec<SpanRecord>> {
        let mut builder = self.builder(Arc::clone(&footer)).await?;
        if !filter.attr_values.is_empty() {
            let schema = footer.file_metadata().schema_descr_ptr();
            let path = ATTR_VALUES_PATH.join(".");
            if let Ok(leaf) = leaf_index(&schema, &path) {
                let key = (self.meta.block_id, rg);
                let cached = self.value_filters.as_ref().and_then(|c| c.get(&key));
                let bloom = match cached {
                    Some(b) => b,
                    None => {
                        let b = builder
                            .get_row_group_column_bloom_filter(rg, leaf)
                            .await?
                            .map(Arc::new);
                        if let Some(c) = &self.value_filters {
                            let bytes = footer
                                .row_group(rg)
                                .column(leaf)
                                .bloom_filter_length()
                                .unwrap_or(0)
                                .max(0) as usize;
                            c.put(key, b.clone(), bytes + 64);
                        }
                        b
                    }
                };
                if bloom.is_some_and(|b| filter.attr_values.iter().any(|v| !b.check(v.as_str()))) {
                    return Ok(Vec::new());
                }
            }
        }
        builder = builder.with_row_groups(vec![rg]);
        if !filter.is_empty() {
            let Some(selection) = self.first_pass(Arc::clone(&footer), rg, filter).await? else {
                return Ok(Vec::new());
            };
            builder = builder.with_row_selection(selection);
        }
        let parts = &filter.parts;
        let full = Arc::clone(builder.schema());
        if !parts.is_all() {
            let schema = footer.file_metadata().schema_descr_ptr();
            let fields = schema.root_schema().get_fields();
            let roots: Vec<usize> = (0..fields.len())
                .filter(|&i| parts.reads(fields[i].name()))
                .collect();
            builder = builder.with_projection(ProjectionMask::roots(&schema, roots));
        }
        let mut stream = builder.build()?;
        let mut assembler = TraceAssembler::new();
        let mut spans = Vec::new();
        while let Some(batch) = stream.try_next().await? {
            let batch = match parts.is_all() {
                true => batch,
                false => complete(&batch, &full)?,
            };
            spans.extend(assembler.push(&batch)?);
        }
        spans.extend(assembler.finish()?);
        if !parts.is_all() {
            spans.iter_mut().for_each(|s| parts.strip(s));
        }
        if !filter.is_empty() && !filter.whole_traces {
            spans.retain(|s| filter.matches(s));
        }
        Ok(spans)
    }

    /// Reads the predicate columns of one row group and returns the rows of every trace with
    /// a matching span, or `None` when nothing matches.
    async fn first_pass(
        &self,
        footer: Arc<ParquetMetaData>,
        rg: usize,
        filter: &ScanFilter,
    ) -> Result<Option<RowSelection>> {
        let schema = footer.file_metadata().schema_descr_ptr();
        let mut leaves = vec![
            leaf_index(&schema, col::TRACE_ID)?,
            leaf_index(&schema, col::TRACE_START)?,
            leaf_index(&schema, col::START_OFFSET)?,
            leaf_index(&schema, col::DURATION)?,
        ];
        if filter.service_name.is_some() {
            leaves.push(leaf_index(&schema, col::SERVICE_NAME)?);
        }
        // Blocks written before the column existed in this form have nothing to check.
        let values_leaf = match filter.attr_values.is_empty() {
            true => None,
            false => leaf_index(&schema, &ATTR_VALUES_PATH.join(".")).ok(),
        };
        leaves.extend(values_leaf);
        let total_rows = usize::try_from(footer.row_group(rg).num_rows()).unwrap_or(0);
        let mut stream = self
            .builder(footer)
            .await?
            .with_row_groups(vec![rg])
            .with_projection(ProjectionMask::leaves(&schema, leaves))
            .build()?;
        // Row ranges of traces, and whether each has a match.
        let mut traces: Vec<(Range<usize>, bool)> = Vec::new();
        let mut row = 0usize;
        let mut last_id: Option<[u8; 16]> = None;
        while let Some(batch) = stream.try_next().await? {
            let ids: &FixedSizeBinaryArray = typed(&batch, col::TRACE_ID)?;
            let trace_start: &TimestampNanosecondArray = typed(&batch, col::TRACE_START)?;
            let offsets: &Int64Array = typed(&batch, col::START_OFFSET)?;
            let durations: &Int64Array = typed(&batch, col::DURATION)?;
            let services: Option<&StringArray> = match filter.service_name {
                Some(_) => Some(typed(&batch, col::SERVICE_NAME)?),
                None => None,
            };
            let values = match values_leaf {
                Some(_) => Some(attr_strings(&batch)?),
                None => None,
            };
            for i in 0..batch.num_rows() {
                let id = ids.value(i);
                if last_id.as_ref().is_none_or(|l| l[..] != *id) {
                    let mut key = [0u8; 16];
                    key.copy_from_slice(id);
                    last_id = Some(key);
                    traces.push((row..row, false));
                }
                let start = (trace_start.value(i) as u64).wrapping_add(offsets.value(i) as u64);
                let service = services.and_then(|s| s.is_valid(i).then(|| s.value(i)));
                let hit = filter.matches_values(start, durations.value(i), service)
                    && values.as_ref().is_none_or(|(list, strings)| {
                        let range =
                            list.value_offsets()[i] as usize..list.value_offsets()[i + 1] as usize;
                        filter.attr_values.iter().all(|want| {
                            range
                                .clone()
                                .any(|j| strings.is_valid(j) && strings.value(j) == want)
                        })
                    });
                if let Some(t) = traces.last_mut() {
                    t.0.end = row + 1;
                    t.1 |= hit;
                }
                row += 1;
            }
        }
        let ranges: Vec<Range<usize>> = traces.into_iter().filter(|t| t.1).map(|t| t.0).collect();
        if ranges.is_empty() {
            return Ok(None);
        }
        Ok(Some(RowSelection::from_consecutive_ranges(
            ranges.into_iter(),
            total_rows,
        )))
    }

    async fn builder(
        &self,
        footer: Arc<ParquetMetaData>,
    ) -> Result<ParquetRecordBatchStreamBuilder<ObjectReader>> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::try_new(footer, options)?;
        // Selectors (not a bitmask) let the reader skip the pages holding no selected row.
        Ok(
            ParquetRecordBatchStreamBuilder::new_with_metadata(self.object_reader(), metadata)
                .with_row_selection_policy(RowSelectionPolicy::Selectors),
        )
    }

    fn object_reader(&self) -> ObjectReader {
        ObjectReader {
            store: Arc::clone(&self.store),
            path: self.data_path(),
            size: self.meta.data_size,
        }
    }

    /// The Parquet footer (with page index), read once and cached.
    async fn footer(&self) -> Result<Arc<ParquetMetaData>> {
        let footer = self
            .footer
            .get_or_try_init(|| async {
                let mut reader = self.object_reader();
                let metadata = ParquetMetaDataReader::new()
                    .with_page_index_policy(PageIndexPolicy::Optional)
                    .with_prefetch_hint(Some(FOOTER_PREFETCH))
                    .load_and_finish(&mut reader, self.meta.data_size)
                    .await
                    .map_err(|e| match e {
                        parquet::errors::ParquetError::External(inner) => match inner
                            .downcast::<Error>()
                        {
                            Ok(e) => *e,
                            Err(other) => Error::corrupt("data.parquet", self.data_path(), other),
                        },
                        other => Error::corrupt("data.parquet", self.data_path(), other),
                    })?;
                Ok::<_, Error>(Arc::new(metadata))
            })
            .await?;
        Ok(Arc::clone(footer))
    }
}

fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| Error::corrupt("data.parquet", name, "column missing or mistyped"))
}

/// The generic span attribute list of a batch projected to its string values: the list (for
/// each row's range) and the strings.
fn attr_strings(batch: &RecordBatch) -> Result<(&ListArray, &StringArray)> {
    let bad = || Error::corrupt("data.parquet", col::ATTRS, "unexpected type");
    let list: &ListArray = typed(batch, col::ATTRS)?;
    let items = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(bad)?;
    let strings = items
        .column_by_name(crate::schema::attr::STR)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(bad)?;
    Ok((list, strings))
}

fn leaf_index(schema: &parquet::schema::types::SchemaDescriptor, name: &str) -> Result<usize> {
    schema
        .columns()
        .iter()
        .position(|c| c.path().string() == name)
        .ok_or_else(|| Error::corrupt("data.parquet", name, "column missing"))
}

/// Uses row-group statistics of `trace_start` and `trace_duration_nano` to rule a row group
/// out of a time range: every span of a trace starts within [trace start, trace start +
/// trace duration].
fn row_group_may_match(footer: &ParquetMetaData, rg: usize, filter: &ScanFilter) -> bool {
    let schema = footer.file_metadata().schema_descr();
    let rg_meta = footer.row_group(rg);
    let stat = |name: &str| -> Option<(i64, i64)> {
        let idx = leaf_index(schema, name).ok()?;
        match rg_meta.column(idx).statistics()? {
            Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
            _ => None,
        }
    };
    let (Some((min_start, max_start)), Some((_, max_duration))) =
        (stat(col::TRACE_START), stat(col::TRACE_DURATION))
    else {
        return true;
    };
    let (min_start, latest) = (
        min_start as u64,
        (max_start as u64).saturating_add(max_duration.max(0) as u64),
    );
    filter.end_unix_nano.is_none_or(|end| min_start <= end)
        && filter.start_unix_nano.is_none_or(|start| latest >= start)
}

/// `AsyncFileReader` over an object store, with the file size known from the block meta so
/// that no HEAD request is needed.
struct ObjectReader {
    store: Store,
    path: Path,
    size: u64,
}

fn to_parquet_err(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(Error::from(e)))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(to_parquet_err)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(to_parquet_err)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .with_prefetch_hint(Some(FOOTER_PREFETCH))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}
