//! Turning span records into `data.parquet` bytes.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, BinaryBuilder, FixedSizeBinaryBuilder, Int32Builder, Int64Builder, ListArray,
    StringBuilder, StructArray, TimestampNanosecondBuilder, UInt32Builder,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{DataType, Field};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use foldhash::HashMap;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::attrs::AttrListBuilder;
use super::source::{EventRef, KvRef, LinkRef, SpanSource, ValueRef};
use crate::error::Result;
use crate::ids::{SpanId, TraceId};
use crate::meta::RowGroupMeta;
use crate::model::SpanRecord;
use crate::rowindex::RowIndexBuilder;
use crate::schema::{self, AttrScope, DEDICATED, DedicatedType, col, event_fields, link_fields};

/// Tuning of the Parquet encoding.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Target rows per row group. A row group is closed at the first trace boundary after
    /// this many rows, so a trace never straddles two row groups unless it alone is larger.
    pub row_group_rows: usize,
    /// zstd level (1–22).
    pub zstd_level: i32,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            row_group_rows: 32 * 1024,
            zstd_level: 3,
        }
    }
}

/// What the encoder learned about the spans while encoding them; it goes into `meta.json`.
#[derive(Debug, Clone, Default)]
pub struct EncodedStats {
    /// Distinct traces.
    pub trace_count: u64,
    /// Rows.
    pub span_count: u64,
    /// Earliest span start, ns since the epoch.
    pub min_start_unix_nano: u64,
    /// Latest span start.
    pub max_start_unix_nano: u64,
    /// Latest span end.
    pub max_end_unix_nano: u64,
    /// Trace-ID range and row count of each row group.
    pub row_groups: Vec<RowGroupMeta>,
    /// Every distinct trace ID, in order (for the bloom filter).
    pub trace_ids: Vec<TraceId>,
}

/// Encodes spans into a Parquet file. Sorts them by (trace ID, start time, span ID).
///
/// CPU-heavy: call it from a blocking thread, not from async code.
pub fn encode_spans(spans: Vec<SpanRecord>, opts: &EncodeOptions) -> Result<(Bytes, EncodedStats)> {
    encode_span_refs(spans.iter().collect(), opts, None)
}

/// Like [`encode_spans`], over borrowed spans: a caller that keeps its spans (an ingester
/// serving them until the block is written) does not need a copy.
pub(crate) fn encode_span_refs<S: SpanSource>(
    mut spans: Vec<&S>,
    opts: &EncodeOptions,
    mut rows: Option<&mut RowIndexBuilder>,
) -> Result<(Bytes, EncodedStats)> {
    for s in &spans {
        TraceId::from_bytes(s.trace_id_bytes())?;
        SpanId::from_bytes(s.span_id_bytes())?;
    }
    spans.sort_by(|a, b| {
        (
            a.trace_id_bytes(),
            a.start_time_unix_nano(),
            a.span_id_bytes(),
        )
            .cmp(&(
                b.trace_id_bytes(),
                b.start_time_unix_nano(),
                b.span_id_bytes(),
            ))
    });

    let props = writer_properties(opts);
    let mut writer = ArrowWriter::try_new(Vec::<u8>::new(), schema::schema(), Some(props))?;
    let mut stats = EncodedStats {
        min_start_unix_nano: u64::MAX,
        ..Default::default()
    };
    let mut batch = BatchBuilder::new();
    let mut rg_first: Option<TraceId> = None;
    let mut rg_last: TraceId;

    let mut i = 0;
    while i < spans.len() {
        let j = i + spans[i..]
            .iter()
            .position(|s| s.trace_id_bytes() != spans[i].trace_id_bytes())
            .unwrap_or(spans.len() - i);
        let trace = &spans[i..j];
        let id = TraceId::from_bytes(trace[0].trace_id_bytes())?;
        stats.trace_ids.push(id);
        stats.trace_count += 1;
        for s in trace {
            stats.min_start_unix_nano = stats.min_start_unix_nano.min(s.start_time_unix_nano());
            stats.max_start_unix_nano = stats.max_start_unix_nano.max(s.start_time_unix_nano());
            stats.max_end_unix_nano = stats.max_end_unix_nano.max(s.end_time_unix_nano());
        }
        batch.push_trace(trace)?;
        rg_first.get_or_insert(id);
        rg_last = id;
        i = j;
        // Close the row group at a trace boundary once it is big enough, and after the last
        // trace.
        if batch.rows >= opts.row_group_rows || i == spans.len() {
            flush_row_group(
                &mut writer,
                &mut batch,
                &mut stats,
                rows.as_deref_mut(),
                rg_first.take(),
                rg_last,
            )?;
        }
    }
    stats.span_count = spans.len() as u64;
    if spans.is_empty() {
        stats.min_start_unix_nano = 0;
    }
    let data = writer.into_inner()?;
    Ok((Bytes::from(data), stats))
}

fn flush_row_group(
    writer: &mut ArrowWriter<Vec<u8>>,
    batch: &mut BatchBuilder,
    stats: &mut EncodedStats,
    row_index: Option<&mut RowIndexBuilder>,
    first: Option<TraceId>,
    last: TraceId,
) -> Result<()> {
    let rows = batch.rows as u64;
    let rb = batch.finish()?;
    if let Some(b) = row_index {
        b.push(&rb)?;
    }
    writer.write(&rb)?;
    writer.flush()?;
    stats.row_groups.push(RowGroupMeta {
        min_trace_id: first.unwrap_or_default(),
        max_trace_id: last,
        rows,
    });
    Ok(())
}

pub(super) fn writer_properties(opts: &EncodeOptions) -> WriterProperties {
    let level = ZstdLevel::try_new(opts.zstd_level).unwrap_or_default();
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_dictionary_enabled(true)
        // Readers use the statistics of three columns only (below). Min/max of every string
        // column cost about a sixth of the encoding time for nothing. The offset index, which
        // guides a lookup to the pages of a trace, is written for every column regardless.
        .set_statistics_enabled(EnabledStatistics::None)
        .set_column_statistics_enabled(ColumnPath::from(col::TRACE_ID), EnabledStatistics::Page)
        .set_column_statistics_enabled(ColumnPath::from(col::TRACE_START), EnabledStatistics::Chunk)
        .set_column_statistics_enabled(
            ColumnPath::from(col::TRACE_DURATION),
            EnabledStatistics::Chunk,
        )
        // Small pages let a trace lookup, guided by the page index, read little more than the
        // trace's own rows.
        .set_data_page_row_count_limit(4 * 1024)
        .set_max_row_group_row_count(None)
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: 0,
            descending: false,
            nulls_first: false,
        }]))
        .set_created_by(format!("skein {}", env!("CARGO_PKG_VERSION")));
    // A Bloom filter of the generic span attribute values per row group lets a search for a
    // rare value (a request or user ID: keys the tag index gives no terms) skip the row groups
    // that cannot hold it. Sized for up to 64Ki values and folded down to what the row group
    // holds at a 1% false-positive rate.
    let values = ColumnPath::from(
        ATTR_VALUES_PATH
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
    );
    b = b
        .set_column_bloom_filter_enabled(values.clone(), true)
        .set_column_bloom_filter_fpp(values.clone(), 0.01)
        .set_column_bloom_filter_max_ndv(values, 64 * 1024);
    // Random IDs do not repeat within a trace: a dictionary only costs. Times are mostly
    // increasing within a trace: delta encoding suits them.
    b = b
        .set_column_dictionary_enabled(ColumnPath::from(col::SPAN_ID), false)
        .set_column_encoding(ColumnPath::from(col::SPAN_ID), Encoding::PLAIN);
    for c in [col::START_OFFSET, col::DURATION] {
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// The Parquet column of generic span attribute string values, which has a Bloom filter per
/// row group.
pub(super) const ATTR_VALUES_PATH: [&str; 4] =
    [col::ATTRS, "list", "item", crate::schema::attr::STR];

/// Dedicated column index by key, per scope.
static SPAN_DEDICATED: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| dedicated_index(AttrScope::Span));
static RESOURCE_DEDICATED: LazyLock<HashMap<&'static str, usize>> =
    LazyLock::new(|| dedicated_index(AttrScope::Resource));

fn dedicated_index(scope: AttrScope) -> HashMap<&'static str, usize> {
    DEDICATED
        .iter()
        .enumerate()
        .filter(|(_, d)| d.scope == scope)
        .map(|(i, d)| (d.key, i))
        .collect()
}

fn dedicated_fits(ty: DedicatedType, kv: &KvRef<'_>) -> bool {
    matches!(
        (ty, &kv.value),
        (DedicatedType::Str, ValueRef::Str(_)) | (DedicatedType::Int, ValueRef::Int(_))
    )
}

#[derive(Debug)]
enum DedicatedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

/// Column builders for one row group.
#[derive(Debug)]
pub(super) struct BatchBuilder {
    rows: usize,
    trace_id: FixedSizeBinaryBuilder,
    trace_start: TimestampNanosecondBuilder,
    trace_duration: Int64Builder,
    root_service: StringBuilder,
    root_name: StringBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent_index: Int32Builder,
    parent_span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: Int32Builder,
    start_offset: Int64Builder,
    duration: Int64Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    attrs: AttrListBuilder,
    dropped_attrs: UInt32Builder,
    events: EventsBuilder,
    dropped_events: UInt32Builder,
    links: LinksBuilder,
    dropped_links: UInt32Builder,
    resource_attrs: AttrListBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    resource_entity_refs: BinaryBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrListBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
    dedicated: Vec<DedicatedBuilder>,
    /// Per-row scratch: which attribute went to which dedicated column.
    slots: Vec<Option<usize>>,
}

impl BatchBuilder {
    pub(super) fn new() -> Self {
        BatchBuilder {
            rows: 0,
            trace_id: FixedSizeBinaryBuilder::new(16),
            trace_start: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            trace_duration: Int64Builder::new(),
            root_service: StringBuilder::new(),
            root_name: StringBuilder::new(),
            span_id: FixedSizeBinaryBuilder::new(8),
            parent_index: Int32Builder::new(),
            parent_span_id: BinaryBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            name: StringBuilder::new(),
            kind: Int32Builder::new(),
            start_offset: Int64Builder::new(),
            duration: Int64Builder::new(),
            status_code: Int32Builder::new(),
            status_message: StringBuilder::new(),
            attrs: AttrListBuilder::new(),
            dropped_attrs: UInt32Builder::new(),
            events: EventsBuilder::new(),
            dropped_events: UInt32Builder::new(),
            links: LinksBuilder::new(),
            dropped_links: UInt32Builder::new(),
            resource_attrs: AttrListBuilder::new(),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            resource_entity_refs: BinaryBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attrs: AttrListBuilder::new(),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
            dedicated: DEDICATED
                .iter()
                .map(|d| match d.ty {
                    DedicatedType::Str => DedicatedBuilder::Str(StringBuilder::new()),
                    DedicatedType::Int => DedicatedBuilder::Int(Int64Builder::new()),
                })
                .collect(),
            slots: vec![None; DEDICATED.len()],
        }
    }

    /// Appends every span of one trace (already sorted by start time).
    pub(super) fn push_trace<S: SpanSource>(&mut self, trace: &[&S]) -> Result<()> {
        let trace_start = trace
            .iter()
            .map(|s| s.start_time_unix_nano())
            .min()
            .unwrap_or(0);
        let trace_end = trace
            .iter()
            .map(|s| s.end_time_unix_nano())
            .max()
            .unwrap_or(0);
        let trace_duration = trace_end.saturating_sub(trace_start);
        // The earliest span without a parent is the root. A trace whose root has not arrived
        // (yet) has none; the querier fills the true root in across blocks.
        let root = trace.iter().find(|s| s.is_root());
        // Parent as a row position within the trace: it saves 8 random bytes per span. The
        // first row with the parent's span ID wins; any of them gives back the same ID.
        let mut position: HashMap<&[u8], i32> =
            HashMap::with_capacity_and_hasher(trace.len(), Default::default());
        for (i, s) in trace.iter().enumerate() {
            position.entry(s.span_id_bytes()).or_insert(i as i32);
        }
        let id = trace[0].trace_id_bytes();
        let mut kvs: Vec<KvRef<'_>> = Vec::new();
        let mut events: Vec<EventRef<'_>> = Vec::new();
        let mut links: Vec<LinkRef<'_>> = Vec::new();
        for s in trace {
            self.rows += 1;
            self.trace_id.append_value(id)?;
            self.trace_start.append_value(trace_start as i64);
            self.trace_duration.append_value(trace_duration as i64);
            self.root_service
                .append_option(root.map(|r| r.resource_service_name()));
            self.root_name.append_option(root.map(|r| r.name()));
            self.span_id.append_value(s.span_id_bytes())?;
            let parent = s.parent_span_id();
            match (parent.is_empty(), position.get(parent)) {
                (true, _) => {
                    self.parent_index.append_null();
                    self.parent_span_id.append_null();
                }
                (false, Some(p)) => {
                    self.parent_index.append_value(*p);
                    self.parent_span_id.append_null();
                }
                (false, None) => {
                    self.parent_index.append_null();
                    self.parent_span_id.append_value(parent);
                }
            }
            self.trace_state.append_value(s.trace_state());
            self.flags.append_value(s.flags());
            self.name.append_value(s.name());
            self.kind.append_value(s.kind());
            let (start, end) = (s.start_time_unix_nano(), s.end_time_unix_nano());
            // Wrapping arithmetic keeps any pair of u64 times exact, even malformed ones.
            self.start_offset
                .append_value(start.wrapping_sub(trace_start) as i64);
            self.duration.append_value(end.wrapping_sub(start) as i64);
            let (code, message) = s.status();
            self.status_code.append_value(code);
            self.status_message.append_value(message);
            let (dropped_attrs, dropped_events, dropped_links) = s.dropped_counts();
            self.dropped_attrs.append_value(dropped_attrs);
            self.dropped_events.append_value(dropped_events);
            self.dropped_links.append_value(dropped_links);
            events.clear();
            s.events(&mut events);
            self.events.push(start, &events);
            links.clear();
            s.links(&mut links);
            self.links.push(&links);

            kvs.clear();
            s.attributes(&mut kvs);
            self.push_attrs(AttrScope::Span, &kvs);
            kvs.clear();
            s.resource_attributes(&mut kvs);
            self.push_attrs(AttrScope::Resource, &kvs);
            self.resource_dropped
                .append_value(s.resource_dropped_attributes_count());
            self.resource_schema_url
                .append_value(s.resource_schema_url());
            self.resource_entity_refs
                .append_option(s.resource_entity_refs());
            self.scope_name.append_value(s.scope_name());
            self.scope_version.append_value(s.scope_version());
            kvs.clear();
            s.scope_attributes(&mut kvs);
            for kv in &kvs {
                self.scope_attrs.push(kv);
            }
            self.scope_attrs.finish_list();
            self.scope_dropped
                .append_value(s.scope_dropped_attributes_count());
            self.scope_schema_url.append_value(s.scope_schema_url());
        }
        Ok(())
    }

    /// Splits attributes between the dedicated columns of `scope` and the generic list.
    fn push_attrs(&mut self, scope: AttrScope, attrs: &[KvRef<'_>]) {
        let (index, list) = match scope {
            AttrScope::Span => (&*SPAN_DEDICATED, &mut self.attrs),
            AttrScope::Resource => (&*RESOURCE_DEDICATED, &mut self.resource_attrs),
        };
        for slot in self.slots.iter_mut() {
            *slot = None;
        }
        for (i, kv) in attrs.iter().enumerate() {
            match index.get(kv.key) {
                Some(&d) if self.slots[d].is_none() && dedicated_fits(DEDICATED[d].ty, kv) => {
                    self.slots[d] = Some(i);
                }
                _ => list.push(kv),
            }
        }
        list.finish_list();
        for (d, ded) in DEDICATED.iter().enumerate() {
            if ded.scope != scope {
                continue;
            }
            let value = self.slots[d].and_then(|i| attrs.get(i)).map(|kv| &kv.value);
            match (&mut self.dedicated[d], value) {
                (DedicatedBuilder::Str(b), Some(ValueRef::Str(s))) => b.append_value(s),
                (DedicatedBuilder::Int(b), Some(ValueRef::Int(v))) => b.append_value(*v),
                (DedicatedBuilder::Str(b), _) => b.append_null(),
                (DedicatedBuilder::Int(b), _) => b.append_null(),
            }
        }
    }

    pub(super) fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.trace_start.finish()),
            Arc::new(self.trace_duration.finish()),
            Arc::new(self.root_service.finish()),
            Arc::new(self.root_name.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent_index.finish()),
            Arc::new(self.parent_span_id.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.start_offset.finish()),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
            self.attrs.finish(),
            Arc::new(self.dropped_attrs.finish()),
            self.events.finish(),
            Arc::new(self.dropped_events.finish()),
            self.links.finish(),
            Arc::new(self.dropped_links.finish()),
            self.resource_attrs.finish(),
            Arc::new(self.resource_dropped.finish()),
            Arc::new(self.resource_schema_url.finish()),
            Arc::new(self.resource_entity_refs.finish()),
            Arc::new(self.scope_name.finish()),
            Arc::new(self.scope_version.finish()),
            self.scope_attrs.finish(),
            Arc::new(self.scope_dropped.finish()),
            Arc::new(self.scope_schema_url.finish()),
        ];
        for d in &mut self.dedicated {
            columns.push(match d {
                DedicatedBuilder::Str(b) => Arc::new(b.finish()),
                DedicatedBuilder::Int(b) => Arc::new(b.finish()),
            });
        }
        Ok(RecordBatch::try_new(schema::schema(), columns)?)
    }
}

fn list_array(
    fields: arrow::datatypes::Fields,
    columns: Vec<ArrayRef>,
    offsets: &mut Vec<i32>,
) -> ArrayRef {
    let values = StructArray::new(fields, columns, None);
    let offsets = std::mem::replace(offsets, vec![0]);
    Arc::new(ListArray::new(
        Arc::new(Field::new(
            "item",
            DataType::Struct(values.fields().clone()),
            false,
        )),
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    ))
}

#[derive(Debug)]
struct EventsBuilder {
    offsets: Vec<i32>,
    len: i32,
    time_offset: Int64Builder,
    name: StringBuilder,
    attrs: AttrListBuilder,
    dropped: UInt32Builder,
}

impl EventsBuilder {
    fn new() -> Self {
        EventsBuilder {
            offsets: vec![0],
            len: 0,
            time_offset: Int64Builder::new(),
            name: StringBuilder::new(),
            attrs: AttrListBuilder::new(),
            dropped: UInt32Builder::new(),
        }
    }

    fn push(&mut self, span_start: u64, events: &[EventRef<'_>]) {
        for e in events {
            self.time_offset
                .append_value(e.time_unix_nano.wrapping_sub(span_start) as i64);
            self.name.append_value(e.name);
            for kv in &e.attributes {
                self.attrs.push(kv);
            }
            self.attrs.finish_list();
            self.dropped.append_value(e.dropped_attributes_count);
        }
        self.len += events.len() as i32;
        self.offsets.push(self.len);
    }

    fn finish(&mut self) -> ArrayRef {
        self.len = 0;
        list_array(
            event_fields(),
            vec![
                Arc::new(self.time_offset.finish()),
                Arc::new(self.name.finish()),
                self.attrs.finish(),
                Arc::new(self.dropped.finish()),
            ],
            &mut self.offsets,
        )
    }
}

#[derive(Debug)]
struct LinksBuilder {
    offsets: Vec<i32>,
    len: i32,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attrs: AttrListBuilder,
    dropped: UInt32Builder,
}

impl LinksBuilder {
    fn new() -> Self {
        LinksBuilder {
            offsets: vec![0],
            len: 0,
            trace_id: BinaryBuilder::new(),
            span_id: BinaryBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            attrs: AttrListBuilder::new(),
            dropped: UInt32Builder::new(),
        }
    }

    fn push(&mut self, links: &[LinkRef<'_>]) {
        for l in links {
            self.trace_id.append_value(l.trace_id);
            self.span_id.append_value(l.span_id);
            self.trace_state.append_value(l.trace_state);
            self.flags.append_value(l.flags);
            for kv in &l.attributes {
                self.attrs.push(kv);
            }
            self.attrs.finish_list();
            self.dropped.append_value(l.dropped_attributes_count);
        }
        self.len += links.len() as i32;
        self.offsets.push(self.len);
    }

    fn finish(&mut self) -> ArrayRef {
        self.len = 0;
        list_array(
            link_fields(),
            vec![
                Arc::new(self.trace_id.finish()),
                Arc::new(self.span_id.finish()),
                Arc::new(self.trace_state.finish()),
                Arc::new(self.flags.finish()),
                self.attrs.finish(),
                Arc::new(self.dropped.finish()),
            ],
            &mut self.offsets,
        )
    }
}
