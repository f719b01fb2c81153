//! What an ingester holds in memory for one tenant: live traces still receiving spans, the
//! head block they are cut into, and cut blocks until queriers can see them in storage.
//!
//! Spans are held as the protobuf bytes they were logged in ([`Chunk`]: an
//! `ExportTraceServiceRequest` of accepted spans, exactly the WAL record's payload), shared by
//! every trace they hold spans of. Decoded spans take several times their wire size (every
//! attribute an owned string); chunks keep memory at about the wire size, and are decoded
//! only to write a block or to answer a query.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost::Message;
use skein_format::model::spans_from_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::{BlockMeta, SpanRecord, TraceId};

/// Accepted spans of one request, as protobuf `ExportTraceServiceRequest` bytes.
#[derive(Debug)]
pub struct Chunk {
    /// The encoded request.
    pub bytes: Bytes,
}

/// Shared handle to a chunk.
pub type ChunkRef = Arc<Chunk>;

/// For each trace, the chunks holding its spans (each once, in arrival order).
pub type ChunkMap = HashMap<TraceId, Vec<ChunkRef>>;

/// Decoded spans grouped by trace.
pub type TraceMap = HashMap<TraceId, Vec<SpanRecord>>;

/// Decodes the spans of `map`: each chunk once, keeping the spans of the traces that list it.
/// (A chunk listed by a trace in this map holds that trace's spans for this piece of it; the
/// same chunk never belongs to two pieces of one trace.)
pub fn decode(map: &ChunkMap) -> TraceMap {
    let mut by_chunk: HashMap<*const Chunk, (ChunkRef, HashSet<TraceId>)> = HashMap::new();
    for (id, chunks) in map {
        for c in chunks {
            by_chunk
                .entry(Arc::as_ptr(c))
                .or_insert_with(|| (Arc::clone(c), HashSet::new()))
                .1
                .insert(*id);
        }
    }
    let mut out: TraceMap = HashMap::with_capacity(map.len());
    for (chunk, wanted) in by_chunk.into_values() {
        // Chunks were encoded by this process (or replayed after a checksum check), so they
        // decode; a failure would be a bug, logged rather than fatal.
        let req = match ExportTraceServiceRequest::decode(chunk.bytes.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "undecodable chunk of held spans");
                continue;
            }
        };
        for s in spans_from_otlp(req.resource_spans) {
            if let Ok(id) = s.trace_id()
                && wanted.contains(&id)
            {
                out.entry(id).or_default().push(s);
            }
        }
    }
    out
}

/// Encodes the block holding the spans of `map` straight from its chunks' protobuf bytes,
/// reading each chunk once in place and never decoding a span into owned messages; returns
/// the block and its span count. `None` when a chunk does not read in place (see
/// `skein_format::wire::read_export_request`): the caller then decodes with [`decode`].
pub fn encode_in_place(
    tenant: &skein_format::TenantId,
    map: &ChunkMap,
    opts: &skein_format::block::WriteOptions,
) -> Option<skein_format::Result<(skein_format::block::EncodedBlock, u64)>> {
    let mut by_chunk: HashMap<*const Chunk, (&ChunkRef, HashSet<TraceId>)> = HashMap::new();
    for (id, chunks) in map {
        for c in chunks {
            by_chunk
                .entry(Arc::as_ptr(c))
                .or_insert_with(|| (c, HashSet::new()))
                .1
                .insert(*id);
        }
    }
    let mut spans = Vec::new();
    for (chunk, wanted) in by_chunk.values() {
        let read = skein_format::wire::read_export_request(chunk.bytes.as_ref())?;
        spans
            .extend(read.into_iter().filter(|s| {
                TraceId::from_bytes(s.trace_id()).is_ok_and(|id| wanted.contains(&id))
            }));
    }
    let n = spans.len() as u64;
    Some(
        skein_format::block::encode_block_wire(tenant, spans.iter().collect(), opts)
            .map(|b| (b, n)),
    )
}

/// Merges chunk lists per trace.
fn merge_into(into: &mut ChunkMap, from: &ChunkMap) {
    for (id, chunks) in from {
        into.entry(*id).or_default().extend(chunks.iter().cloned());
    }
}

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
    /// The chunks holding its spans so far.
    pub chunks: Vec<ChunkRef>,
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
    pub traces: Option<Arc<ChunkMap>>,
    /// WAL segments its spans came from.
    pub segments: SegmentCounts,
    /// When the block became durable in object storage, and its meta.
    pub flushed: Option<(Instant, BlockMeta)>,
}

/// The head block: traces cut from live, waiting to become a block.
#[derive(Debug, Default)]
pub struct Head {
    /// Spans by trace.
    pub traces: ChunkMap,
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

    /// Adds the spans of `chunk`, durable in WAL segment `segment`; `counts` says how many
    /// spans of each trace it holds.
    pub fn insert(
        &mut self,
        chunk: &ChunkRef,
        counts: &HashMap<TraceId, u64>,
        bytes_per_span: u64,
        segment: u64,
        now: Instant,
    ) {
        for (id, n) in counts {
            let t = self.live.entry(*id).or_insert_with(|| LiveTrace {
                chunks: Vec::new(),
                bytes: 0,
                first: now,
                last: now,
                segments: SegmentCounts::new(),
            });
            if !t.chunks.last().is_some_and(|c| Arc::ptr_eq(c, chunk)) {
                t.chunks.push(Arc::clone(chunk));
            }
            t.bytes += bytes_per_span * n;
            t.last = now;
            *t.segments.entry(segment).or_default() += n;
        }
    }

    /// Moves idle or old traces (all with `force`) into the head block, oldest first, until
    /// it holds `max_block_bytes` (unless `force`): the rest stay live until the head has
    /// been cut, so that a block holds about `max_block_bytes` however much arrived at once,
    /// and writing it needs memory in proportion.
    pub fn cut_traces(
        &mut self,
        idle: Duration,
        max_age: Duration,
        max_block_bytes: u64,
        now: Instant,
        force: bool,
    ) {
        let mut due: Vec<(Instant, TraceId)> = self
            .live
            .iter()
            .filter(|(_, t)| {
                force
                    || now.saturating_duration_since(t.last) >= idle
                    || now.saturating_duration_since(t.first) >= max_age
            })
            .map(|(id, t)| (t.first, *id))
            .collect();
        due.sort_unstable();
        for (_, id) in due {
            if !force && self.head.bytes >= max_block_bytes {
                break;
            }
            if let Some(t) = self.live.remove(&id) {
                self.head.traces.entry(id).or_default().extend(t.chunks);
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
    ) -> Option<(Arc<ChunkMap>, SegmentCounts, u64)> {
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

    /// The chunks holding spans of trace `id` (decode them with [`decode`]).
    pub fn trace_chunks(&self, id: &TraceId) -> ChunkMap {
        let mut chunks = Vec::new();
        if let Some(t) = self.live.get(id) {
            chunks.extend(t.chunks.iter().cloned());
        }
        if let Some(t) = self.head.traces.get(id) {
            chunks.extend(t.iter().cloned());
        }
        for b in self.cut.iter().filter_map(|b| b.traces.as_ref()) {
            if let Some(t) = b.get(id) {
                chunks.extend(t.iter().cloned());
            }
        }
        let mut out = ChunkMap::new();
        if !chunks.is_empty() {
            out.insert(*id, chunks);
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

    /// The chunks of every trace held here, pieces joined.
    pub fn all_chunks(&self) -> ChunkMap {
        let mut out = ChunkMap::new();
        for (id, t) in &self.live {
            out.entry(*id).or_default().extend(t.chunks.iter().cloned());
        }
        merge_into(&mut out, &self.head.traces);
        for b in self.cut.iter().filter_map(|b| b.traces.as_ref()) {
            merge_into(&mut out, b);
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
