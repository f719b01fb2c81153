//! Choosing what to compact: blocks grouped by time window, full blocks left alone.

use std::collections::BTreeMap;
use std::time::Duration;

use skein_storage::BlockMeta;

use crate::merge::OutputLimits;

/// How blocks are grouped into jobs.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Width of a time window.
    pub window: Duration,
    /// Windows that ended less than this long before `now` merge only blocks of one level.
    pub recent_period: Duration,
    /// Most inputs per job.
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

/// The jobs to run now: each a list of at least two blocks of one window, oldest first.
/// Groups whose merge would not reduce the number of blocks are left alone, so that the
/// compactor settles instead of rewriting full blocks forever.
pub fn plan(blocks: &[BlockMeta], now_unix_nano: u64, o: &PlanOptions) -> Vec<Vec<BlockMeta>> {
    let window = o.window.as_nanos().max(1) as u64;
    let recent_from = now_unix_nano.saturating_sub(o.recent_period.as_nanos() as u64);
    // (window, level or None for old windows) → blocks
    let mut groups: BTreeMap<(u64, Option<u32>), Vec<&BlockMeta>> = BTreeMap::new();
    for m in blocks {
        if is_full(m, &o.limits) {
            continue;
        }
        let w = m.min_start_unix_nano / window;
        let window_end = (w + 1).saturating_mul(window);
        let level = (window_end > recent_from).then_some(m.compaction_level);
        groups.entry((w, level)).or_default().push(m);
    }
    let mut jobs = Vec::new();
    for (_, mut group) in groups {
        group.sort_by_key(|m| (m.min_start_unix_nano, m.block_id));
        for chunk in group.chunks(o.max_input_blocks.max(2)) {
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
    use skein_storage::meta::BlockFiles;
    use skein_storage::{BlockId, TenantId};

    use super::*;

    const HOUR: u64 = 3_600_000_000_000;

    fn block(start_hours: u64, level: u32, spans: u64) -> BlockMeta {
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
            row_groups: vec![],
            compaction_level: level,
            replaces: vec![],
            files: BlockFiles::default(),
            created_at_unix_secs: 0,
        }
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

    #[test]
    fn groups_by_window_and_level_when_recent() {
        let now = 100 * HOUR;
        let blocks = vec![
            block(10, 0, 10),
            block(10, 1, 10),
            block(10, 0, 10),
            block(11, 0, 10),
            block(99, 0, 10),
            block(99, 1, 10),
            block(99, 0, 10),
        ];
        let jobs = plan(&blocks, now, &opts());
        let shapes: Vec<Vec<(u64, u32)>> = jobs
            .iter()
            .map(|j| {
                j.iter()
                    .map(|m| (m.min_start_unix_nano / HOUR, m.compaction_level))
                    .collect()
            })
            .collect();
        // Old window 10: every level together (3 blocks, the job cap); window 11 has one
        // block; recent window 99: the two level-0 blocks only.
        assert_eq!(shapes.len(), 2, "{shapes:?}");
        assert_eq!(shapes[0].len(), 3);
        assert!(shapes[0].iter().all(|(w, _)| *w == 10));
        assert_eq!(shapes[1], vec![(99, 0), (99, 0)]);
    }

    #[test]
    fn full_blocks_and_merges_that_gain_nothing_are_skipped() {
        let blocks = vec![block(10, 0, 950), block(10, 0, 950), block(10, 0, 10)];
        assert!(plan(&blocks, 100 * HOUR, &opts()).is_empty());
        let blocks = vec![block(10, 0, 600), block(10, 0, 600)];
        assert!(plan(&blocks, 100 * HOUR, &opts()).is_empty());
        let blocks = vec![block(10, 0, 400), block(10, 0, 500)];
        assert_eq!(plan(&blocks, 100 * HOUR, &opts()).len(), 1);
    }
}
