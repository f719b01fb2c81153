//! The streaming k-way merge of blocks by trace ID, at the level of Arrow rows, with exact
//! duplicates dropped and the output cut into bounded blocks.
//!
//! Every input yields its row groups in file order, which is (trace ID, start time, span ID)
//! order, as Arrow batches. The merge takes one whole trace at a time, the smallest trace ID
//! any input holds next, and:
//!
//! - when one block holds all of it, with no two rows that may be copies of one span, and it
//!   fits in an output block, copies its rows unchanged ([`RowsWriter::push_rows`]): the
//!   trace-level columns, parent positions and time offsets are relative to the trace's own
//!   rows, so they stay right. This is nearly every trace: no span is decoded;
//! - otherwise (the trace is split over inputs, holds copies, comes from a block of an older
//!   schema, or must be split over outputs) decodes its rows into spans, drops exact copies
//!   ([`skein_format::dedupe::same_span`]; distinct spans sharing a span ID differ in content
//!   and are all kept) and encodes them again ([`RowsWriter::push_spans`]).
//!
//! Memory: one row group per input, the trace being merged, and the output block being
//! written (at most `max_spans` rows, plus their spans while its tag index is built).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::ops::Range;

use arrow::record_batch::RecordBatch;
use skein_format::block::{
    RowsWriter, TraceAssembler, has_current_schema, may_hold_copies, trace_runs,
};
use skein_format::dedupe::same_span;
use skein_format::{SpanRecord, TraceId};

use crate::error::{Error, Result};

/// Where an input's rows come from: its blocks' row groups in file order, each with the
/// ordinal of the block it belongs to (row positions and trace-level values are relative to
/// a block); `None` at the end.
pub trait BatchSource: Send {
    /// The next row group, or `None` when the input is exhausted.
    fn next_batch(&mut self) -> Result<Option<(u64, RecordBatch)>>;
}

impl<F> BatchSource for F
where
    F: FnMut() -> Result<Option<(u64, RecordBatch)>> + Send,
{
    fn next_batch(&mut self) -> Result<Option<(u64, RecordBatch)>> {
        self()
    }
}

/// The bounds of one output block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Most spans (hard: a bigger trace is split).
    pub max_spans: u64,
    /// Most traces.
    pub max_traces: u64,
    /// Target `data.parquet` size, estimated with the inputs' bytes per span.
    pub max_bytes: u64,
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeStats {
    /// Spans read from the inputs.
    pub spans_in: u64,
    /// Spans written to outputs.
    pub spans_out: u64,
    /// Exact duplicates dropped.
    pub duplicates: u64,
    /// Output blocks emitted.
    pub outputs: u64,
    /// Traces that had to be split over two or more output blocks.
    pub split_traces: u64,
    /// Traces whose rows were copied unchanged.
    pub traces_copied: u64,
    /// Traces decoded into spans and encoded again.
    pub traces_rebuilt: u64,
}

/// Rows of one trace held by one input: a range of one row group of one block.
struct Piece {
    input: usize,
    block: u64,
    batch: RecordBatch,
    /// The row group has the columns this build writes (it can be copied).
    current: bool,
    rows: Range<usize>,
}

struct Cursor {
    source: Box<dyn BatchSource>,
    block: u64,
    batch: Option<RecordBatch>,
    /// `batch` has the current schema, checked once per row group.
    current: bool,
    runs: Vec<(TraceId, Range<usize>)>,
    next: usize,
    last: Option<TraceId>,
    name: String,
}

impl Cursor {
    /// The trace ID of the next rows, loading row groups as needed; `None` at the end.
    fn head(&mut self) -> Result<Option<TraceId>> {
        while self.next >= self.runs.len() {
            let Some((block, batch)) = self.source.next_batch()? else {
                self.batch = None;
                return Ok(None);
            };
            let runs = trace_runs(&batch)?;
            // Sorted: increasing within a row group, and no smaller than what came before
            // (equal when a trace larger than a row group goes on in the next one).
            let mut last = self.last;
            for (i, (id, _)) in runs.iter().enumerate() {
                if last.is_some_and(|l| *id < l || (i > 0 && *id == l)) {
                    return Err(Error::Input(format!(
                        "{}: spans are not sorted by trace id ({id} after {})",
                        self.name,
                        last.unwrap_or_default()
                    )));
                }
                last = Some(*id);
            }
            self.block = block;
            self.current = has_current_schema(&batch);
            self.batch = Some(batch);
            self.runs = runs;
            self.next = 0;
        }
        Ok(Some(self.runs[self.next].0))
    }

    /// Takes every row of trace `id` this input holds next (the head).
    fn take(&mut self, input: usize, id: TraceId, pieces: &mut Vec<Piece>) -> Result<()> {
        while self.head()? == Some(id) {
            let rows = self.runs[self.next].1.clone();
            let batch = self.batch.clone().expect("a head has a batch");
            self.next += 1;
            self.last = Some(id);
            let at_end = self.next == self.runs.len() && rows.end == batch.num_rows();
            pieces.push(Piece {
                input,
                block: self.block,
                batch,
                current: self.current,
                rows,
            });
            // Only a trace that ends its row group can go on in the next one.
            if !at_end {
                break;
            }
        }
        Ok(())
    }
}

type Key = ([u8; 16], u64, [u8; 8]);

fn key(s: &SpanRecord) -> Key {
    let mut t = [0u8; 16];
    let mut sp = [0u8; 8];
    // IDs were checked when the block was written; a wrong length sorts as zeros.
    if s.span.trace_id.len() == 16 {
        t.copy_from_slice(&s.span.trace_id);
    }
    if s.span.span_id.len() == 8 {
        sp.copy_from_slice(&s.span.span_id);
    }
    (t, s.span.start_time_unix_nano, sp)
}

/// The spans of one trace's pieces, in key order, exact copies dropped (counted in `stats`).
/// Each piece's row group is let go once decoded.
fn rebuild(pieces: Vec<Piece>, stats: &mut MergeStats) -> Result<Vec<SpanRecord>> {
    let mut spans: Vec<SpanRecord> = Vec::new();
    // Pieces of one block are decoded together: parent positions count from the trace's
    // first row in that block.
    let mut assembler = TraceAssembler::new();
    let mut block: Option<(usize, u64)> = None;
    for p in pieces {
        if block.is_some_and(|b| b != (p.input, p.block)) {
            spans.extend(assembler.finish()?);
        }
        block = Some((p.input, p.block));
        spans.extend(assembler.push(&p.batch.slice(p.rows.start, p.rows.len()))?);
    }
    spans.extend(assembler.finish()?);
    spans.sort_by_key(key);
    let mut kept: Vec<SpanRecord> = Vec::with_capacity(spans.len());
    let mut run_begin = 0usize;
    for s in spans {
        if kept.last().is_none_or(|l| key(l) != key(&s)) {
            run_begin = kept.len();
        }
        if kept[run_begin..].iter().any(|k| same_span(k, &s)) {
            stats.duplicates += 1;
            continue;
        }
        kept.push(s);
    }
    Ok(kept)
}

/// Merges `sources` into output blocks: `new_output` makes the writer of each, and `emit`
/// gets it, full, in order.
///
/// `bytes_per_span` is the inputs' average `data.parquet` bytes per span, used to estimate
/// an output's size. `stop` is asked between traces; when it returns true the merge ends
/// with [`Error::Stopped`].
pub fn merge(
    sources: Vec<(String, Box<dyn BatchSource>)>,
    limits: OutputLimits,
    bytes_per_span: f64,
    stop: &dyn Fn() -> bool,
    new_output: &dyn Fn() -> Result<RowsWriter>,
    emit: &mut dyn FnMut(RowsWriter) -> Result<()>,
) -> Result<MergeStats> {
    let mut cursors: Vec<Cursor> = sources
        .into_iter()
        .map(|(name, source)| Cursor {
            source,
            block: 0,
            batch: None,
            current: false,
            runs: Vec::new(),
            next: 0,
            last: None,
            name,
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<(TraceId, usize)>> = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if let Some(id) = c.head()? {
            heap.push(Reverse((id, i)));
        }
    }

    let mut stats = MergeStats::default();
    let mut out: Option<RowsWriter> = None;
    let max_spans = limits.max_spans.max(1);
    let mut cut = |out: &mut Option<RowsWriter>, stats: &mut MergeStats| -> Result<()> {
        if let Some(w) = out.take().filter(|w| w.rows() > 0) {
            stats.outputs += 1;
            stats.spans_out += w.rows();
            emit(w)?;
        }
        Ok(())
    };
    let mut pieces: Vec<Piece> = Vec::new();
    while let Some(Reverse((id, first))) = heap.pop() {
        if stop() {
            return Err(Error::Stopped);
        }
        // Every input holding this trace next gives all its rows of it.
        let mut inputs = vec![first];
        while heap.peek().is_some_and(|Reverse((next, _))| *next == id) {
            let Some(Reverse((_, i))) = heap.pop() else {
                break;
            };
            inputs.push(i);
        }
        inputs.sort_unstable();
        pieces.clear();
        for &i in &inputs {
            cursors[i].take(i, id, &mut pieces)?;
            if let Some(next) = cursors[i].head()? {
                heap.push(Reverse((next, i)));
            }
        }
        let rows: u64 = pieces.iter().map(|p| p.rows.len() as u64).sum();
        stats.spans_in += rows;

        // An output that is full, or that this trace would overflow, is closed first: the
        // trace moves on whole to the next block.
        let room = |out: &Option<RowsWriter>, rows: u64| -> bool {
            let Some(w) = out else { return true };
            let est_bytes = w.rows() as f64 * bytes_per_span;
            w.rows() == 0
                || (w.rows() + rows <= max_spans
                    && w.traces() < limits.max_traces
                    && est_bytes < limits.max_bytes as f64)
        };
        let one_block = pieces
            .windows(2)
            .all(|w| (w[0].input, w[0].block) == (w[1].input, w[1].block));
        let refs: Vec<(&RecordBatch, Range<usize>)> =
            pieces.iter().map(|p| (&p.batch, p.rows.clone())).collect();
        if one_block
            && rows <= max_spans
            && pieces.iter().all(|p| p.current)
            && !may_hold_copies(&refs)?
        {
            if !room(&out, rows) {
                cut(&mut out, &mut stats)?;
            }
            let w = match &mut out {
                Some(w) => w,
                None => out.insert(new_output()?),
            };
            w.push_rows(&refs)?;
            stats.traces_copied += 1;
            continue;
        }

        drop(refs);
        let mut spans = rebuild(std::mem::take(&mut pieces), &mut stats)?;
        stats.traces_rebuilt += 1;
        if spans.len() as u64 > max_spans {
            stats.split_traces += 1;
        }
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(max_spans as usize));
            let part = std::mem::replace(&mut spans, rest);
            if !room(&out, part.len() as u64) {
                cut(&mut out, &mut stats)?;
            }
            let w = match &mut out {
                Some(w) => w,
                None => out.insert(new_output()?),
            };
            w.push_spans(part)?;
        }
    }
    cut(&mut out, &mut stats)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use skein_format::block::{EncodeOptions, spans_to_batch};
    use skein_testkit::synth::TraceGenerator;

    use super::*;

    fn sorted(mut v: Vec<SpanRecord>) -> Vec<SpanRecord> {
        v.sort_by_key(key);
        v
    }

    /// What a block round trip keeps (attribute order within a list is not kept).
    fn canon(v: &[SpanRecord]) -> Vec<SpanRecord> {
        skein_format::model::canonical(skein_format::model::spans_to_otlp(v.to_vec()))
    }

    /// An input of one block per chunk of spans, one row group each.
    fn source(chunks: Vec<Vec<SpanRecord>>) -> Box<dyn BatchSource> {
        let mut it = chunks.into_iter().enumerate();
        Box::new(move || match it.next() {
            Some((i, chunk)) => Ok(Some((i as u64, spans_to_batch(&chunk)?))),
            None => Ok(None),
        })
    }

    /// Runs a merge; returns its stats and each output's spans, read back from its rows.
    fn run(
        sources: Vec<(String, Box<dyn BatchSource>)>,
        limits: OutputLimits,
    ) -> Result<(MergeStats, Vec<Vec<SpanRecord>>)> {
        let mut outputs = Vec::new();
        let tenant = skein_format::TenantId::new("t").unwrap();
        let stats = merge(
            sources,
            limits,
            10.0,
            &|| false,
            &|| Ok(RowsWriter::new(&EncodeOptions::default(), false)?),
            &mut |w| {
                let block = w.finish_block(&tenant, &Default::default())?;
                let spans = skein_format::block::decode_spans(block.data)?;
                outputs.push(spans);
                Ok(())
            },
        )?;
        Ok((stats, outputs))
    }

    const BIG: OutputLimits = OutputLimits {
        max_spans: u64::MAX,
        max_traces: u64::MAX,
        max_bytes: u64::MAX,
    };

    #[test]
    fn merges_split_traces_drops_copies_keeps_same_id_spans() {
        let mut g = TraceGenerator::new(1, 1_750_000_000_000_000_000, 1_000);
        let a = g.trace(10);
        let b = g.trace(10);
        let c = g.trace(10);
        let mut twin = a[3].clone();
        twin.span.name = "another span with the same id".into();
        let left = [&a[..5], &b[..]].concat();
        let right = [&a[3..], &[twin.clone()][..], &c[..]].concat();
        let (stats, outputs) = run(
            vec![
                ("left".into(), source(vec![left])),
                ("right".into(), source(vec![right])),
            ],
            BIG,
        )
        .unwrap();
        assert_eq!(stats.duplicates, 2, "a[3] and a[4] were in both inputs");
        assert_eq!((stats.traces_copied, stats.traces_rebuilt), (2, 1));
        assert_eq!(outputs.len(), 1);
        let want = sorted([&a[..], &b[..], &c[..], &[twin][..]].concat());
        assert_eq!(canon(&outputs[0]), canon(&want));
    }

    #[test]
    fn copies_within_one_block_are_dropped() {
        let mut g = TraceGenerator::new(4, 1_750_000_000_000_000_000, 1_000);
        let a = g.trace(6);
        let with_copy = [&a[..], &a[2..3]].concat();
        let (stats, outputs) = run(vec![("in".into(), source(vec![with_copy]))], BIG).unwrap();
        assert_eq!((stats.duplicates, stats.traces_rebuilt), (1, 1));
        assert_eq!(canon(&outputs.concat()), canon(&a));
    }

    #[test]
    fn a_huge_trace_is_split_and_outputs_stay_bounded() {
        let mut g = TraceGenerator::new(2, 1_750_000_000_000_000_000, 1_000);
        let big = g.trace(500);
        let small: Vec<SpanRecord> = (0..20).flat_map(|_| g.trace(5)).collect();
        let all = sorted([&big[..], &small[..]].concat());
        let limits = OutputLimits {
            max_spans: 100,
            max_traces: 4,
            max_bytes: u64::MAX,
        };
        // Blocks of whole traces, as ingesters cut them.
        let mut chunks: Vec<Vec<SpanRecord>> = Vec::new();
        for trace in all.chunk_by(|a, b| a.span.trace_id == b.span.trace_id) {
            match chunks.last_mut() {
                Some(c) if c.len() < 37 => c.extend_from_slice(trace),
                _ => chunks.push(trace.to_vec()),
            }
        }
        let (stats, outputs) = run(vec![("in".into(), source(chunks))], limits).unwrap();
        assert_eq!(stats.split_traces, 1);
        for o in &outputs {
            assert!(o.len() <= 100);
            let mut ids: Vec<&[u8]> = o.iter().map(|s| &s.span.trace_id[..]).collect();
            ids.dedup();
            assert!(ids.len() <= 4, "{}", ids.len());
        }
        assert_eq!(canon(&outputs.concat()), canon(&all));
    }

    #[test]
    fn unsorted_input_is_an_error_and_stop_stops() {
        let mut g = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1_000);
        let v = sorted([g.trace(3), g.trace(3)].concat());
        // Two row groups, the second holding smaller trace IDs than the first.
        let split = v
            .iter()
            .position(|s| s.span.trace_id != v[0].span.trace_id)
            .unwrap();
        let (low, high) = (v[..split].to_vec(), v[split..].to_vec());
        let e = run(vec![("bad".into(), source(vec![high, low]))], BIG).unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
        let e = merge(
            vec![("in".into(), source(vec![v]))],
            BIG,
            1.0,
            &|| true,
            &|| Ok(RowsWriter::new(&EncodeOptions::default(), false)?),
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Stopped));
    }
}
