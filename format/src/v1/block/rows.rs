//! Writing `data.parquet` from rows of other blocks, copied as Arrow data: the compactor's
//! output. A trace held whole by one input is copied row for row (its trace-level columns,
//! parent positions and time offsets are relative to the trace's own rows, so they stay
//! right); a trace that has to be rebuilt (split over inputs, holding copies, or split over
//! outputs) comes in as spans and is encoded like an ingester's.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{Array, FixedSizeBinaryArray, Int64Array, TimestampNanosecondArray};
use arrow::compute::interleave_record_batch;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;

use super::decode::TraceAssembler;
use super::encode::{BatchBuilder, EncodeOptions, EncodedStats, writer_properties};
use super::writer::{EncodedBlock, WriteOptions, finish_block};
use crate::error::{Error, Result};
use crate::ids::{TenantId, TraceId};
use crate::meta::RowGroupMeta;
use crate::model::SpanRecord;
use crate::schema::{self, col};

pub(crate) fn corrupt(reason: impl std::fmt::Display) -> Error {
    Error::corrupt("data.parquet", "record batch", reason)
}

pub(crate) fn typed<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| corrupt(format!("column {name} missing or mistyped")))
}

/// Whether `batch` has exactly the columns this build writes (older blocks may lack columns
/// added to the format since; their rows are rebuilt as spans instead of copied).
pub fn has_current_schema(batch: &RecordBatch) -> bool {
    batch.schema().fields() == schema::schema().fields()
}

/// The row ranges of the traces of a batch sorted by trace ID, in order.
pub fn trace_runs(batch: &RecordBatch) -> Result<Vec<(TraceId, Range<usize>)>> {
    let ids: &FixedSizeBinaryArray = typed(batch, col::TRACE_ID)?;
    let mut runs: Vec<(TraceId, Range<usize>)> = Vec::new();
    for row in 0..ids.len() {
        let id = ids.value(row);
        match runs.last_mut() {
            Some((last, r)) if last.0[..] == *id => r.end = row + 1,
            _ => runs.push((TraceId::from_bytes(id)?, row..row + 1)),
        }
    }
    Ok(runs)
}

/// Whether two consecutive rows of one trace, given as [`RowsWriter::push_rows`] takes it
/// (sorted by start time and span ID, as blocks store them), may be copies of one span: the
/// same span ID and start. Such a trace goes through the span-level merge, which compares
/// them in full.
pub fn may_hold_copies(pieces: &[(&RecordBatch, Range<usize>)]) -> Result<bool> {
    let mut previous: Option<([u8; 8], i64)> = None;
    for (batch, rows) in pieces {
        let span_ids: &FixedSizeBinaryArray = typed(batch, col::SPAN_ID)?;
        let offsets: &Int64Array = typed(batch, col::START_OFFSET)?;
        for row in rows.clone() {
            let mut id = [0u8; 8];
            if span_ids.value_length() == 8 {
                id.copy_from_slice(span_ids.value(row));
            }
            let key = (id, offsets.value(row));
            if previous == Some(key) {
                return Ok(true);
            }
            previous = Some(key);
        }
    }
    Ok(false)
}

/// Spans as one batch of the current schema, as a block stores them: sorted by trace ID,
/// start time and span ID, trace-level columns and parent positions per trace. For tests
/// and tools that need rows without a file.
pub fn spans_to_batch(spans: &[SpanRecord]) -> Result<RecordBatch> {
    let mut refs: Vec<&SpanRecord> = spans.iter().collect();
    refs.sort_by(|a, b| {
        (
            &a.span.trace_id,
            a.span.start_time_unix_nano,
            &a.span.span_id,
        )
            .cmp(&(
                &b.span.trace_id,
                b.span.start_time_unix_nano,
                &b.span.span_id,
            ))
    });
    let mut b = BatchBuilder::new();
    for trace in refs.chunk_by(|a, b| a.span.trace_id == b.span.trace_id) {
        TraceId::from_bytes(&trace[0].span.trace_id)?;
        b.push_trace(trace)?;
    }
    b.finish()
}

/// Every span of a `data.parquet` held in memory, in file order. For tests and tools; the
/// querier and compactor read blocks from the object store with [`BlockReader`](super::BlockReader).
pub fn decode_spans(data: Bytes) -> Result<Vec<SpanRecord>> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data)?.build()?;
    let mut assembler = TraceAssembler::new();
    let mut spans = Vec::new();
    for batch in reader {
        spans.extend(assembler.push(&batch?)?);
    }
    spans.extend(assembler.finish()?);
    Ok(spans)
}

/// Builds one `data.parquet` from whole traces, in trace-ID order.
pub struct RowsWriter {
    writer: ArrowWriter<Vec<u8>>,
    row_group_rows: usize,
    /// The batches rows of the current row group come from, and which rows, in order.
    sources: Vec<RecordBatch>,
    take: Vec<(usize, usize)>,
    stats: EncodedStats,
    rg_first: Option<TraceId>,
    rg_last: TraceId,
    last: Option<TraceId>,
    /// With a tag index to build: the spans written, read back from the rows.
    indexed: Option<(TraceAssembler, Vec<SpanRecord>)>,
}

impl RowsWriter {
    /// A writer with `opts`' row groups and compression; `tag_index` also builds the
    /// block's tag index (from the rows written, read back as spans).
    pub fn new(opts: &EncodeOptions, tag_index: bool) -> Result<Self> {
        let writer = ArrowWriter::try_new(
            Vec::<u8>::new(),
            schema::schema(),
            Some(writer_properties(opts)),
        )?;
        Ok(RowsWriter {
            writer,
            row_group_rows: opts.row_group_rows,
            sources: Vec::new(),
            take: Vec::new(),
            stats: EncodedStats {
                min_start_unix_nano: u64::MAX,
                ..Default::default()
            },
            rg_first: None,
            rg_last: TraceId::default(),
            last: None,
            indexed: tag_index.then(|| (TraceAssembler::new(), Vec::new())),
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.stats.span_count
    }

    /// Traces written so far.
    pub fn traces(&self) -> u64 {
        self.stats.trace_count
    }

    /// Appends one whole trace as one block stored it: its rows, in order, from batches of
    /// the current schema ([`has_current_schema`]) — usually one range of one batch; more
    /// when the trace was larger than a row group. Copied unchanged.
    pub fn push_rows(&mut self, pieces: &[(&RecordBatch, Range<usize>)]) -> Result<()> {
        let mut id: Option<TraceId> = None;
        let (mut rows, mut min_start, mut max_start, mut max_end) = (0usize, u64::MAX, 0u64, 0u64);
        for (batch, range) in pieces {
            let ids: &FixedSizeBinaryArray = typed(batch, col::TRACE_ID)?;
            let trace_start: &TimestampNanosecondArray = typed(batch, col::TRACE_START)?;
            let offsets: &Int64Array = typed(batch, col::START_OFFSET)?;
            let durations: &Int64Array = typed(batch, col::DURATION)?;
            for row in range.clone() {
                let row_id = TraceId::from_bytes(ids.value(row))?;
                if *id.get_or_insert(row_id) != row_id {
                    return Err(Error::invalid("block", "rows of two traces given as one"));
                }
                let start = (trace_start.value(row) as u64).wrapping_add(offsets.value(row) as u64);
                let end = start.wrapping_add(durations.value(row) as u64);
                min_start = min_start.min(start);
                max_start = max_start.max(start);
                max_end = max_end.max(end);
            }
            rows += range.len();
        }
        let Some(id) = id else {
            return Ok(());
        };
        self.begin_trace(id, rows, min_start, max_start, max_end)?;
        for (batch, range) in pieces {
            let source = match self.sources.iter().position(|s| same_batch(s, batch)) {
                Some(i) => i,
                None => {
                    self.sources.push((*batch).clone());
                    self.sources.len() - 1
                }
            };
            self.take.extend(range.clone().map(|r| (source, r)));
        }
        self.end_trace()
    }

    /// Appends the spans of one trace (or of the part of one that goes into this block),
    /// sorted by start time and span ID, encoded as an ingester encodes them.
    pub fn push_spans(&mut self, spans: Vec<SpanRecord>) -> Result<()> {
        let Some(first) = spans.first() else {
            return Ok(());
        };
        let id = first.trace_id()?;
        let (mut min_start, mut max_start, mut max_end) = (u64::MAX, 0u64, 0u64);
        for s in &spans {
            if s.trace_id()? != id {
                return Err(Error::invalid("block", "spans of two traces given as one"));
            }
            crate::ids::SpanId::from_bytes(&s.span.span_id)?;
            min_start = min_start.min(s.span.start_time_unix_nano);
            max_start = max_start.max(s.span.start_time_unix_nano);
            max_end = max_end.max(s.span.end_time_unix_nano);
        }
        self.begin_trace(id, spans.len(), min_start, max_start, max_end)?;
        let refs: Vec<&SpanRecord> = spans.iter().collect();
        let mut b = BatchBuilder::new();
        b.push_trace(&refs)?;
        self.sources.push(b.finish()?);
        let source = self.sources.len() - 1;
        self.take.extend((0..refs.len()).map(|r| (source, r)));
        drop(refs);
        drop(spans);
        self.end_trace()
    }

    fn begin_trace(
        &mut self,
        id: TraceId,
        rows: usize,
        min_start: u64,
        max_start: u64,
        max_end: u64,
    ) -> Result<()> {
        if self.last.is_some_and(|last| last > id) {
            return Err(Error::invalid(
                "block",
                format!(
                    "traces must come in trace-ID order ({id} after {:?})",
                    self.last
                ),
            ));
        }
        // A trace split over blocks comes in parts; within one block it is one trace.
        if self.last != Some(id) {
            self.stats.trace_ids.push(id);
            self.stats.trace_count += 1;
        }
        self.last = Some(id);
        self.stats.span_count += rows as u64;
        self.stats.min_start_unix_nano = self.stats.min_start_unix_nano.min(min_start);
        self.stats.max_start_unix_nano = self.stats.max_start_unix_nano.max(max_start);
        self.stats.max_end_unix_nano = self.stats.max_end_unix_nano.max(max_end);
        self.rg_first.get_or_insert(id);
        self.rg_last = id;
        Ok(())
    }

    /// Closes the row group at this trace boundary once it is big enough.
    fn end_trace(&mut self) -> Result<()> {
        if self.take.len() >= self.row_group_rows {
            self.flush_row_group()?;
        }
        Ok(())
    }

    fn flush_row_group(&mut self) -> Result<()> {
        if self.take.is_empty() {
            return Ok(());
        }
        let sources: Vec<&RecordBatch> = self.sources.iter().collect();
        let batch = interleave_record_batch(&sources, &self.take)?;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        if let Some((assembler, spans)) = &mut self.indexed {
            spans.extend(assembler.push(&batch)?);
        }
        self.stats.row_groups.push(RowGroupMeta {
            min_trace_id: self.rg_first.take().unwrap_or_default(),
            max_trace_id: self.rg_last,
            rows: self.take.len() as u64,
        });
        self.sources.clear();
        self.take.clear();
        Ok(())
    }

    /// The finished block: `data.parquet`, its bloom filter and meta, and the tag index when
    /// the writer was made with one. `opts.encode` is not used (the writer's own options
    /// were); `opts.tag_index` must match.
    pub fn finish_block(mut self, tenant: &TenantId, opts: &WriteOptions) -> Result<EncodedBlock> {
        self.flush_row_group()?;
        if self.stats.span_count == 0 {
            self.stats.min_start_unix_nano = 0;
        }
        if opts.tag_index != self.indexed.is_some() {
            return Err(Error::invalid(
                "block",
                "the tag index must be asked for when the rows writer is made",
            ));
        }
        let index = match self.indexed.take() {
            Some((mut assembler, mut spans)) => {
                spans.extend(assembler.finish()?);
                let refs: Vec<&SpanRecord> = spans.iter().collect();
                Some(Bytes::from(crate::tagindex::build(&refs)?))
            }
            None => None,
        };
        let data = Bytes::from(self.writer.into_inner()?);
        finish_block(tenant, data, self.stats, opts, index)
    }
}

/// Whether two batches are the same data (their columns are the same arrays).
fn same_batch(a: &RecordBatch, b: &RecordBatch) -> bool {
    a.num_columns() == b.num_columns()
        && a.num_rows() == b.num_rows()
        && a.columns()
            .iter()
            .zip(b.columns())
            .all(|(x, y)| std::ptr::addr_eq(Arc::as_ptr(x), Arc::as_ptr(y)))
}
