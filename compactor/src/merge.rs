//! The streaming k-way merge of blocks by trace ID, with exact duplicates dropped and the
//! output cut into bounded blocks.
//!
//! Every input yields its spans in file order, which is (trace ID, start time, span ID)
//! order. The merge keeps one decoded chunk (a row group) per input and emits spans in the
//! same order, so the spans of a trace split over several inputs come out together. Exact
//! copies of a span share that sort key, so they meet within a run of equal keys, where they
//! are compared in full ([`skein_format::dedupe::same_span`]); distinct spans sharing a span
//! ID differ in content and are all kept.
//!
//! Memory: one chunk per input plus at most `max_spans` buffered output spans.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use skein_format::dedupe::same_span;
use skein_format::{SpanRecord, TraceId};

use crate::error::{Error, Result};

/// Where an input's spans come from: successive chunks in file order; `None` at the end.
pub trait SpanSource: Send {
    /// The next chunk of spans (possibly empty), or `None` when the input is exhausted.
    fn next_chunk(&mut self) -> Result<Option<Vec<SpanRecord>>>;
}

impl<F> SpanSource for F
where
    F: FnMut() -> Result<Option<Vec<SpanRecord>>> + Send,
{
    fn next_chunk(&mut self) -> Result<Option<Vec<SpanRecord>>> {
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

struct Cursor {
    source: Box<dyn SpanSource>,
    chunk: std::vec::IntoIter<SpanRecord>,
    head: Option<SpanRecord>,
    last_trace: Option<[u8; 16]>,
    name: String,
}

impl Cursor {
    /// Moves to the next span; false at the end.
    fn advance(&mut self) -> Result<bool> {
        loop {
            if let Some(s) = self.chunk.next() {
                let k = key(&s);
                if self.last_trace.is_some_and(|last| k.0 < last) {
                    return Err(Error::Input(format!(
                        "{}: spans are not sorted by trace id ({} after {})",
                        self.name,
                        TraceId(k.0),
                        TraceId(self.last_trace.unwrap_or_default())
                    )));
                }
                self.last_trace = Some(k.0);
                self.head = Some(s);
                return Ok(true);
            }
            match self.source.next_chunk()? {
                Some(mut chunk) => {
                    // A chunk holds whole traces (a row group closes at a trace boundary),
                    // but not necessarily in key order within a trace: sort, so that copies
                    // of a span meet in one run of equal keys.
                    chunk.sort_by_key(key);
                    self.chunk = chunk.into_iter();
                }
                None => {
                    self.head = None;
                    return Ok(false);
                }
            }
        }
    }
}

/// Merges `sources` and hands each finished output block's spans to `emit`, in order.
///
/// `bytes_per_span` is the inputs' average `data.parquet` bytes per span, used to estimate
/// an output's size. `stop` is asked between spans of different traces; when it returns
/// true the merge ends with [`Error::Stopped`].
pub fn merge(
    sources: Vec<(String, Box<dyn SpanSource>)>,
    limits: OutputLimits,
    bytes_per_span: f64,
    stop: &dyn Fn() -> bool,
    emit: &mut dyn FnMut(Vec<SpanRecord>) -> Result<()>,
) -> Result<MergeStats> {
    let mut cursors: Vec<Cursor> = sources
        .into_iter()
        .map(|(name, source)| Cursor {
            source,
            chunk: Vec::new().into_iter(),
            head: None,
            last_trace: None,
            name,
        })
        .collect();
    let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::new();
    for (i, c) in cursors.iter_mut().enumerate() {
        if c.advance()?
            && let Some(h) = &c.head
        {
            heap.push(Reverse((key(h), i)));
        }
    }

    let mut stats = MergeStats::default();
    let mut out: Vec<SpanRecord> = Vec::new();
    let mut out_traces: u64 = 0;
    // The spans already emitted with the current key: those at the end of `out`, plus copies
    // carried over when a cut fell inside the run.
    let mut run_key: Option<Key> = None;
    let mut run_in_out = 0usize;
    let mut run_carry: Vec<SpanRecord> = Vec::new();
    let mut current_trace: Option<[u8; 16]> = None;
    // The current trace already went into an earlier output block.
    let mut trace_was_cut = false;
    // Where the current trace begins in `out`.
    let mut trace_begin = 0usize;

    let cut = |out: &mut Vec<SpanRecord>,
               out_traces: &mut u64,
               stats: &mut MergeStats,
               emit: &mut dyn FnMut(Vec<SpanRecord>) -> Result<()>|
     -> Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        stats.outputs += 1;
        stats.spans_out += out.len() as u64;
        *out_traces = 0;
        emit(std::mem::take(out))
    };

    while let Some(Reverse((k, i))) = heap.pop() {
        let cursor = &mut cursors[i];
        let Some(span) = cursor.head.take() else {
            continue;
        };
        if cursor.advance()?
            && let Some(h) = &cursor.head
        {
            heap.push(Reverse((key(h), i)));
        }
        stats.spans_in += 1;

        if current_trace != Some(k.0) {
            // A trace boundary: the place to cut an output that is full, and to stop.
            if stop() {
                return Err(Error::Stopped);
            }
            let est_bytes = out.len() as f64 * bytes_per_span;
            if out.len() as u64 >= limits.max_spans
                || out_traces >= limits.max_traces
                || est_bytes >= limits.max_bytes as f64
            {
                cut(&mut out, &mut out_traces, &mut stats, emit)?;
            }
            current_trace = Some(k.0);
            trace_was_cut = false;
            trace_begin = out.len();
            out_traces += 1;
        }
        if run_key != Some(k) {
            run_key = Some(k);
            run_in_out = 0;
            run_carry.clear();
        }
        let tail = &out[out.len() - run_in_out..];
        if tail
            .iter()
            .chain(run_carry.iter())
            .any(|s| same_span(s, &span))
        {
            stats.duplicates += 1;
            continue;
        }
        if out.len() as u64 >= limits.max_spans {
            if trace_begin > 0 {
                // The block filled up inside a trace that began after others: close the
                // block before that trace, which moves on whole to the next block.
                let rest = out.split_off(trace_begin);
                cut(&mut out, &mut out_traces, &mut stats, emit)?;
                out = rest;
                out_traces = 1;
                trace_begin = 0;
            }
            if out.len() as u64 >= limits.max_spans {
                // One trace alone fills the block: split it.
                run_carry.extend(out[out.len() - run_in_out..].iter().cloned());
                run_in_out = 0;
                cut(&mut out, &mut out_traces, &mut stats, emit)?;
                out_traces = 1;
                if !trace_was_cut {
                    stats.split_traces += 1;
                    trace_was_cut = true;
                }
            }
        }
        out.push(span);
        run_in_out += 1;
    }
    cut(&mut out, &mut out_traces, &mut stats, emit)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use skein_testkit::synth::TraceGenerator;

    use super::*;

    fn sorted(mut v: Vec<SpanRecord>) -> Vec<SpanRecord> {
        v.sort_by_key(key);
        v
    }

    fn source(chunks: Vec<Vec<SpanRecord>>) -> Box<dyn SpanSource> {
        let mut it = chunks.into_iter();
        Box::new(move || Ok(it.next()))
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
        let mut twin = a[3].clone();
        twin.span.name = "another span with the same id".into();
        let left = sorted([&a[..5], &b[..]].concat());
        let right = sorted([&a[3..], &[twin.clone()][..]].concat());
        let mut outputs = Vec::new();
        let stats = merge(
            vec![
                ("left".into(), source(vec![left])),
                ("right".into(), source(vec![right.clone()])),
            ],
            BIG,
            10.0,
            &|| false,
            &mut |o| {
                outputs.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(stats.duplicates, 2, "a[3] and a[4] were in both inputs");
        assert_eq!(outputs.len(), 1);
        let want = sorted([&a[..], &b[..], &[twin][..]].concat());
        assert_eq!(outputs[0], want);
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
        let mut outputs: Vec<Vec<SpanRecord>> = Vec::new();
        let chunks: Vec<Vec<SpanRecord>> = all.chunks(37).map(|c| c.to_vec()).collect();
        let stats = merge(
            vec![("in".into(), source(chunks))],
            limits,
            10.0,
            &|| false,
            &mut |o| {
                outputs.push(o);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(stats.split_traces, 1);
        for o in &outputs {
            assert!(o.len() <= 100);
            let mut ids: Vec<&[u8]> = o.iter().map(|s| &s.span.trace_id[..]).collect();
            ids.dedup();
            assert!(ids.len() <= 4, "{}", ids.len());
        }
        assert_eq!(outputs.concat(), all);
    }

    #[test]
    fn unsorted_input_is_an_error_and_stop_stops() {
        let mut g = TraceGenerator::new(3, 1_750_000_000_000_000_000, 1_000);
        let v = sorted([g.trace(3), g.trace(3)].concat());
        // Two chunks, the second holding smaller trace IDs than the first.
        let split = v
            .iter()
            .position(|s| s.span.trace_id != v[0].span.trace_id)
            .unwrap();
        let (low, high) = (v[..split].to_vec(), v[split..].to_vec());
        let e = merge(
            vec![("bad".into(), source(vec![high, low]))],
            BIG,
            1.0,
            &|| false,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not sorted"), "{e}");
        let e = merge(
            vec![("in".into(), source(vec![v]))],
            BIG,
            1.0,
            &|| true,
            &mut |_| Ok(()),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Stopped));
    }
}
