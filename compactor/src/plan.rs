//! Choosing what to compact: blocks grouped by time window; recent windows merge blocks of
//! one level that are not full, old windows are brought to one sorted run.

use std::collections::BTreeMap;
use std::time::Duration;

use skein_format::{BlockId, BlockMeta, TraceId};

use crate::merge::OutputLimits;

/// How blocks are grouped into jobs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Width of a time window.
    pub window: Duration,
    /// Windows that ended less than this long before `now` merge only blocks of one level.
    pub recent_period: Duration,
    /// Most inputs per job: blocks in a recent window, sorted runs in an old one.
    pub max_input_blocks: usize,
    /// Output bounds; a block near them is "full" and not compacted again.
    pub limits: OutputLimits,
}

/// A block is full when it reaches 90% of any output bound.
fn is_full(m: &BlockMeta, l: &OutputLimits) -> bool {
    m.span_count.saturating_mul(10) >= l.max_spans.saturating_mul(9)
        || m.trace_count.saturating_mul(10) >= l.max_traces.saturating_mul(9)
        || m.data_size.saturating_mul(10) >= l.max_bytes.saturating_mul(9)
}

/// How many output blocks merging `blocks` would give at least.
fn min_outputs(blocks: &[&BlockMeta], l: &OutputLimits) -> u64 {
    let spans: u64 = blocks.iter().map(|m| m.span_count).sum();
    let traces: u64 = blocks.iter().map(|m| m.trace_count).sum();
    let bytes: u64 = blocks.iter().map(|m| m.data_size).sum();
    spans
        .div_ceil(l.max_spans)
        .max(traces.div_ceil(l.max_traces))
        .max(bytes.div_ceil(l.max_bytes))
        .max(1)
}

/// The smallest and largest trace ID in a block, from its row groups.
fn trace_range(m: &BlockMeta) -> Option<(TraceId, TraceId)> {
    let min = m.row_groups.iter().map(|g| g.min_trace_id).min()?;
    let max = m.row_groups.iter().map(|g| g.max_trace_id).max()?;
    Some((min, max))
}

/// Splits `blocks` into sorted runs: sequences of blocks whose trace-ID ranges follow one
/// another, so that one reader can read a run block after block in trace-ID order.
///
/// The outputs of one job (blocks with the same non-empty `replaces`) form a run: the merge
/// cuts its output in trace-ID order. Two of them share at most one trace ID, that of a
/// trace too big for one block, split at the cut. Every other block is a run of its own, as
/// is any block whose range does not fit its job's sequence. Each run is sorted by trace ID.
pub fn runs(blocks: &[BlockMeta]) -> Vec<Vec<BlockMeta>> {
    let mut by_job: Vec<(Vec<BlockId>, Vec<BlockMeta>)> = Vec::new();
    let mut out: Vec<Vec<BlockMeta>> = Vec::new();
    for m in blocks {
        if m.replaces.is_empty() || trace_range(m).is_none() {
            out.push(vec![m.clone()]);
            continue;
        }
        let mut key = m.replaces.clone();
        key.sort();
        match by_job.iter_mut().find(|(k, _)| *k == key) {
            Some((_, run)) => run.push(m.clone()),
            None => by_job.push((key, vec![m.clone()])),
        }
    }
    for (_, mut run) in by_job {
        // By range, then end: a block holding only a split trace precedes the block that
        // starts with that trace's last piece and goes on.
        run.sort_by_key(trace_range);
        let mut current: Vec<BlockMeta> = Vec::new();
        for m in run {
            let fits = current.last().is_none_or(|last: &BlockMeta| {
                matches!((trace_range(last), trace_range(&m)), (Some(a), Some(b)) if a.1 <= b.0)
            });
            if !fits {
                // Not the sequence a job writes: read these blocks side by side instead.
                out.push(vec![m]);
                continue;
            }
            current.push(m);
        }
        out.push(current);
    }
    out
}

/// True when some trace ID may be held by blocks of two different runs.
fn runs_overlap(runs: &[Vec<BlockMeta>]) -> bool {
    let mut ranges: Vec<(TraceId, TraceId, usize)> = runs
        .iter()
        .enumerate()
        .flat_map(|(i, run)| {
            run.iter()
                .filter_map(move |m| trace_range(m).map(|(a, b)| (a, b, i)))
        })
        .collect();
    ranges.sort();
    // Sorted by start, a range overlaps an earlier one of another run exactly when it starts
    // at or before the largest end seen so far among the other runs.
    let mut reach: Vec<(TraceId, usize)> = Vec::new();
    for (start, end, run) in ranges {
        if reach.iter().any(|&(e, r)| r != run && start <= e) {
            return true;
        }
        match reach.iter_mut().find(|(_, r)| *r == run) {
            Some(slot) => slot.0 = slot.0.max(end),
            None => reach.push((end, run)),
        }
    }
    false
}

/// The jobs to run now, each a list of at least two blocks of one window.
///
/// - In a recent window (one that ended less than `recent_period` ago and may still
///   receive blocks), blocks of one compaction level that are not full are merged, in
///   groups of at most `max_input_blocks`. Groups whose merge would not reduce the number of
///   blocks are left alone, so that the compactor settles instead of rewriting full blocks
///   forever.
/// - An old window is brought to a single sorted run: while blocks of different runs
///   ([`runs`]) may hold the same trace, up to `max_input_blocks` runs (the smallest first)
///   are merged, full blocks included. Each merge joins the pieces of split traces and drops
///   every copy among those runs, so once a window is one run it holds no span twice and
///   the compactor leaves it alone.
pub fn plan(blocks: &[BlockMeta], now_unix_nano: u64, o: &PlanOptions) -> Vec<Vec<BlockMeta>> {
    let window = o.window.as_nanos().max(1) as u64;
    let recent_from = now_unix_nano.saturating_sub(o.recent_period.as_nanos() as u64);
    // (window, level or None for old windows) → blocks
    let mut groups: BTreeMap<(u64, Option<u32>), Vec<&BlockMeta>> = BTreeMap::new();
    for m in blocks {
        let w = m.min_start_unix_nano / window;
        let window_end = (w + 1).saturating_mul(window);
        let level = (window_end > recent_from).then_some(m.compaction_level);
        groups.entry((w, level)).or_default().push(m);
    }
    let fan_in = o.max_input_blocks.max(2);
    let mut jobs = Vec::new();
    for ((_, level), mut group) in groups {
        group.sort_by_key(|m| (m.min_start_unix_nano, m.block_id));
        if level.is_none() {
            let owned: Vec<BlockMeta> = group.iter().map(|m| (*m).clone()).collect();
            let mut runs = runs(&owned);
            if runs.len() < 2 || !runs_overlap(&runs) {
                continue;
            }
            runs.sort_by_key(|r| (r.iter().map(|m| m.span_count).sum::<u64>(), r.len()));
            jobs.push(runs.into_iter().take(fan_in).flatten().collect());
            continue;
        }
        group.retain(|m| !is_full(m, &o.limits));
        for chunk in group.chunks(fan_in) {
            if chunk.len() < 2 || min_outputs(chunk, &o.limits) >= chunk.len() as u64 {
                continue;
            }
            jobs.push(chunk.iter().map(|m| (*m).clone()).collect());
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use skein_format::meta::{BlockFiles, RowGroupMeta};
    use skein_format::{BlockId, TenantId};

    use super::*;

    const HOUR: u64 = 3_600_000_000_000;
    const NOW: u64 = 100 * HOUR;

    fn id(first_byte: u8) -> TraceId {
        let mut b = [0u8; 16];
        b[0] = first_byte;
        TraceId(b)
    }

    /// A block of the window starting at `start_hours`, holding trace IDs whose first byte
    /// lies in `lo..=hi`.
    fn block(start_hours: u64, level: u32, spans: u64, lo: u8, hi: u8) -> BlockMeta {
        BlockMeta {
            format_version: 1,
            block_id: BlockId::new(),
            tenant: TenantId::new("t").unwrap(),
            min_start_unix_nano: start_hours * HOUR + 1,
            max_start_unix_nano: start_hours * HOUR + 2,
            max_end_unix_nano: start_hours * HOUR + 3,
            trace_count: spans / 10,
            span_count: spans,
            data_size: spans * 20,
            row_groups: vec![RowGroupMeta {
                min_trace_id: id(lo),
                max_trace_id: id(hi),
                rows: spans,
            }],
            compaction_level: level,
            replaces: vec![],
            files: BlockFiles::default(),
            created_at_unix_secs: 0,
        }
    }

    /// The outputs of one job: blocks over consecutive slices of the trace-ID space.
    fn job_output(start_hours: u64, level: u32, spans: u64, cuts: &[(u8, u8)]) -> Vec<BlockMeta> {
        let replaces = vec![BlockId::new(), BlockId::new()];
        cuts.iter()
            .map(|&(lo, hi)| BlockMeta {
                replaces: replaces.clone(),
                ..block(start_hours, level, spans, lo, hi)
            })
            .collect()
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            window: Duration::from_secs(3600),
            recent_period: Duration::from_secs(2 * 3600),
            max_input_blocks: 3,
            limits: OutputLimits {
                max_spans: 1000,
                max_traces: 1000,
                max_bytes: 1 << 40,
            },
        }
    }

    fn ids(blocks: &[BlockMeta]) -> Vec<BlockId> {
        let mut v: Vec<BlockId> = blocks.iter().map(|m| m.block_id).collect();
        v.sort();
        v
    }

    #[test]
    fn recent_windows_merge_blocks_of_one_level_that_are_not_full() {
        let blocks = vec![
            block(99, 0, 10, 0, 255),
            block(99, 1, 10, 0, 255),
            block(99, 0, 10, 0, 255),
            block(99, 0, 950, 0, 255),
            block(98, 0, 10, 0, 255),
        ];
        let jobs = plan(&blocks, NOW, &opts());
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(ids(&jobs[0]), ids(&[blocks[0].clone(), blocks[2].clone()]));
        // Full blocks, and merges that would not reduce the number of blocks, are skipped.
        let full = vec![block(99, 0, 950, 0, 255), block(99, 0, 950, 0, 255)];
        assert!(plan(&full, NOW, &opts()).is_empty());
        let big = vec![block(99, 0, 600, 0, 255), block(99, 0, 600, 0, 255)];
        assert!(plan(&big, NOW, &opts()).is_empty());
        let fit = vec![block(99, 0, 400, 0, 255), block(99, 0, 500, 0, 255)];
        assert_eq!(plan(&fit, NOW, &opts()).len(), 1);
    }

    #[test]
    fn an_old_window_is_merged_into_one_run_full_blocks_included() {
        // Two jobs' outputs over the whole ID space, all full, and a late ingester block.
        let mut blocks = job_output(10, 1, 950, &[(0, 99), (100, 199), (200, 255)]);
        let second = job_output(10, 1, 950, &[(0, 127), (128, 255)]);
        blocks.extend(second.clone());
        let late = block(10, 0, 5, 17, 30);
        blocks.push(late.clone());
        blocks.push(block(11, 0, 5, 0, 255)); // alone in its window
        let jobs = plan(&blocks, NOW, &opts());
        assert_eq!(jobs.len(), 1, "{jobs:?}");
        assert_eq!(ids(&jobs[0]), ids(&blocks[..6]), "every run of window 10");

        // The fan-in caps runs, not blocks: the smallest runs go first.
        let o = PlanOptions {
            max_input_blocks: 2,
            ..opts()
        };
        let jobs = plan(&blocks, NOW, &o);
        let mut want = second;
        want.push(late);
        assert_eq!(ids(&jobs[0]), ids(&want));
    }

    #[test]
    fn an_old_window_that_is_one_run_is_left_alone() {
        // One job's outputs, the last one small: nothing to gain.
        let blocks = job_output(10, 2, 950, &[(0, 99), (99, 199), (200, 255)]);
        assert!(plan(&blocks, NOW, &opts()).is_empty());
        // Runs that hold disjoint traces do not need each other either.
        let blocks = vec![block(10, 0, 10, 0, 9), block(10, 0, 10, 10, 19)];
        assert!(plan(&blocks, NOW, &opts()).is_empty());
        // But a block touching another run's range may share its trace.
        let blocks = vec![block(10, 0, 10, 0, 9), block(10, 0, 10, 9, 19)];
        assert_eq!(plan(&blocks, NOW, &opts()).len(), 1);
    }

    #[test]
    fn runs_follow_jobs_and_their_trace_order() {
        let out = job_output(10, 1, 100, &[(200, 255), (0, 99), (100, 199)]);
        let single = block(10, 0, 10, 0, 255);
        let mut all = out.clone();
        all.push(single.clone());
        let r = runs(&all);
        assert_eq!(r.len(), 2);
        let job = r.iter().find(|r| r.len() == 3).unwrap();
        let firsts: Vec<u8> = job.iter().map(|m| trace_range(m).unwrap().0.0[0]).collect();
        assert_eq!(firsts, vec![0, 100, 200], "sorted by trace ID");
        assert!(r.contains(&vec![single]));
        // Blocks claiming one job but overlapping are not read as one sequence.
        let odd = job_output(10, 1, 100, &[(0, 120), (100, 199)]);
        assert_eq!(runs(&odd).len(), 2);
        // A trace split over three blocks: the middle one holds only that trace.
        let split = job_output(10, 1, 100, &[(50, 90), (50, 50), (0, 50)]);
        assert_eq!(runs(&split).len(), 1, "one sequence");
    }
}
