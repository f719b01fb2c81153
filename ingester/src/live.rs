//! What an ingester holds in memory for one tenant: live traces still receiving spans, the
//! head block they are cut into, and cut blocks until queriers can see them in storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skein_storage::{BlockMeta, SpanRecord, TraceId};

/// Spans grouped by trace.
pub type TraceMap = HashMap<TraceId, Vec<SpanRecord>>;

/// Spans of each WAL segment that a piece of data holds, so a segment can be deleted once
/// nothing that came from it is unflushed.
pub type SegmentCounts = BTreeMap<u64, u64>;

pub(crate) fn add_counts(into: &mut SegmentCounts, from: &SegmentCounts) {
    for (s, n) in from {
        *into.entry(*s).or_default() += n;
    }
}

/// A trace still receiving spans.
#[derive(Debug)]
pub struct LiveTrace {
    /// Its spans so far.
    pub spans: Vec<SpanRecord>,
    /// Approximate bytes (request bytes per span).
    pub bytes: u64,
    /// When its first span arrived.
    pub first: Instant,
    /// When its latest span arrived.
    pub last: Instant,
    /// WAL segments its spans came from.
    pub segments: SegmentCounts,
}

/// A cut block: held in memory until it is written, then remembered (not its spans: they
/// are read back from object storage) until queriers see it.
#[derive(Debug)]
pub struct CutBlock {
    /// Identifies the block in the flush queue.
    pub seq: u64,
    /// Its spans, until the block is written.
    pub traces: Option<Arc<TraceMap>>,
    /// WAL segments its spans came from.
    pub segments: SegmentCounts,
    /// When the block became durable in object storage, and its meta.
    pub flushed: Option<(Instant, BlockMeta)>,
}

/// The head block: traces cut from live, waiting to become a block.
#[derive(Debug, Default)]
pub struct Head {
    /// Spans by trace.
    pub traces: TraceMap,
    /// Approximate bytes.
    pub bytes: u64,
    /// When the first trace entered it.
    pub started: Option<Instant>,
    /// WAL segments its spans came from.
    pub segments: SegmentCounts,
}

/// Token bucket for the ingestion rate limit.
#[derive(Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u64, now: Instant) -> Self {
        TokenBucket {
            tokens: burst as f64,
            last: now,
        }
    }

    /// Takes `n` tokens if available; otherwise says how long until they would be.
    pub fn take(&mut self, n: u64, rate: u64, burst: u64, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f64).min(burst as f64);
        let need = n as f64;
        if need <= self.tokens {
            self.tokens -= need;
            Ok(())
        } else {
            let missing = need - self.tokens;
            Err(Duration::from_secs_f64(
                (missing / rate.max(1) as f64).clamp(1.0, 60.0),
            ))
        }
    }
}

/// Everything held for one tenant.
#[derive(Debug)]
pub struct TenantState {
    /// Traces still receiving spans.
    pub live: HashMap<TraceId, LiveTrace>,
    /// The head block.
    pub head: Head,
    /// Cut blocks not yet visible to every querier.
    pub cut: Vec<CutBlock>,
    /// Rate limiter.
    pub bucket: TokenBucket,
}

impl TenantState {
    pub(crate) fn new(burst: u64, now: Instant) -> Self {
        TenantState {
            live: HashMap::new(),
            head: Head::default(),
            cut: Vec::new(),
            bucket: TokenBucket::new(burst, now),
        }
    }

    /// Adds spans that are durable in WAL segment `segment`.
    pub fn insert(
        &mut self,
        spans: Vec<SpanRecord>,
        bytes_per_span: u64,
        segment: u64,
        now: Instant,
    ) {
        for s in spans {
            let Ok(id) = s.trace_id() else { continue };
            let t = self.live.entry(id).or_insert_with(|| LiveTrace {
                spans: Vec::new(),
                bytes: 0,
                first: now,
                last: now,
                segments: SegmentCounts::new(),
            });
            t.spans.push(s);
            t.bytes += bytes_per_span;
            t.last = now;
            *t.segments.entry(segment).or_default() += 1;
        }
    }

    /// Moves idle or old traces (all with `force`) into the head block.
    pub fn cut_traces(&mut self, idle: Duration, max_age: Duration, now: Instant, force: bool) {
        let due: Vec<TraceId> = self
            .live
            .iter()
            .filter(|(_, t)| {
                force
                    || now.saturating_duration_since(t.last) >= idle
                    || now.saturating_duration_since(t.first) >= max_age
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(t) = self.live.remove(&id) {
                self.head.traces.entry(id).or_default().extend(t.spans);
                self.head.bytes += t.bytes;
                add_counts(&mut self.head.segments, &t.segments);
                self.head.started.get_or_insert(now);
            }
        }
    }

    /// Cuts the head block when it is big or old enough (or with `force`): returns it.
    pub fn cut_head(
        &mut self,
        max_bytes: u64,
        max_age: Duration,
        now: Instant,
        force: bool,
        seq: u64,
    ) -> Option<(Arc<TraceMap>, SegmentCounts, u64)> {
        let started = self.head.started?;
        if !(force
            || self.head.bytes >= max_bytes
            || now.saturating_duration_since(started) >= max_age)
        {
            return None;
        }
        let head = std::mem::take(&mut self.head);
        let traces = Arc::new(head.traces);
        self.cut.push(CutBlock {
            seq,
            traces: Some(Arc::clone(&traces)),
            segments: head.segments.clone(),
            flushed: None,
        });
        let bytes = head.bytes;
        Some((traces, head.segments, bytes))
    }

    /// Forgets cut blocks flushed longer than `keep` ago.
    pub fn expire_cut(&mut self, keep: Duration, now: Instant) {
        self.cut.retain(|b| {
            b.flushed
                .as_ref()
                .is_none_or(|(at, _)| now.saturating_duration_since(*at) < keep)
        });
    }

    /// Every span of trace `id` held here.
    pub fn trace(&self, id: &TraceId) -> Vec<SpanRecord> {
        let mut out = Vec::new();
        if let Some(t) = self.live.get(id) {
            out.extend(t.spans.iter().cloned());
        }
        if let Some(t) = self.head.traces.get(id) {
            out.extend(t.iter().cloned());
        }
        for b in &self.cut {
            if let Some(t) = b.traces.as_ref().and_then(|t| t.get(id)) {
                out.extend(t.iter().cloned());
            }
        }
        out
    }

    /// Written blocks whose spans are no longer in memory.
    pub fn flushed_blocks(&self) -> Vec<BlockMeta> {
        self.cut
            .iter()
            .filter_map(|b| b.flushed.as_ref().map(|(_, m)| m.clone()))
            .collect()
    }

    /// Every trace held here, pieces joined.
    pub fn all_traces(&self) -> TraceMap {
        let mut out: TraceMap = HashMap::new();
        for (id, t) in &self.live {
            out.entry(*id).or_default().extend(t.spans.iter().cloned());
        }
        for (id, t) in &self.head.traces {
            out.entry(*id).or_default().extend(t.iter().cloned());
        }
        for b in self.cut.iter().filter_map(|b| b.traces.as_ref()) {
            for (id, t) in b.iter() {
                out.entry(*id).or_default().extend(t.iter().cloned());
            }
        }
        out
    }

    /// Live traces, for the limit check.
    pub fn live_trace_bytes(&self, id: &TraceId) -> Option<u64> {
        self.live.get(id).map(|t| t.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100, t0);
        assert!(b.take(100, 10, 100, t0).is_ok());
        assert!(b.take(1, 10, 100, t0).is_err());
        assert!(b.take(10, 10, 100, t0 + Duration::from_secs(1)).is_ok());
        // A request larger than the burst can never pass.
        assert!(
            b.take(1000, 10, 100, t0 + Duration::from_secs(100))
                .is_err()
        );
    }
}
