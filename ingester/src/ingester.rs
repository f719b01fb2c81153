//! The ingester itself: accepting spans, cutting blocks, flushing them, serving recent data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::{Received, Refused, Tenant, metrics};
use async_trait::async_trait;
use bytes::{BufMut, Bytes, BytesMut};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use prost::Message;
use skein_format::block::{WriteOptions, encode_block};
use skein_format::layout::{block_object, names};
use skein_format::model::{spans_from_otlp, spans_to_otlp};
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::wire::scan_export_request;
use skein_format::{BlockReader, BlockWriter, ScanFilter, SpanRecord, Store, TenantId, TraceId};
use skein_query::recent::Candidates;
use skein_query::recent::RecentData;
use tokio::sync::{RwLock, RwLockReadGuard, mpsc};
use tokio_util::sync::CancellationToken;

use crate::config::{IngesterConfig, TenantLimits};
use crate::live::{Chunk, ChunkMap, SegmentCounts, TenantState, decode, encode_in_place};
use crate::validate::{Refusal, Refusals, Validated, validate};
use crate::wal::{Wal, WalError, WalOptions};

/// Why a push was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Nothing usable in the request (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    InvalidData(String),
    /// The tenant is over its ingestion rate (HTTP 429, gRPC RESOURCE_EXHAUSTED + RetryInfo).
    #[error("{message}")]
    RateLimited {
        /// What happened, for the client.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The ingester cannot keep more now: WAL full, starting or stopping (HTTP 503, gRPC
    /// UNAVAILABLE).
    #[error("{message}")]
    Unavailable {
        /// What happened, for the client.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// The request body is larger than the tenant may send (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
}

/// A push that was (at least partly) accepted.
#[derive(Debug, Default)]
pub struct PushOk {
    /// Spans stored.
    pub accepted: u64,
    /// Spans refused, by reason; reported as `partial_success`.
    pub refused: Refusals,
}

/// A block cut from a tenant's head, waiting to be written.
#[derive(Debug)]
struct FlushJob {
    tenant: TenantId,
    seq: u64,
    traces: Arc<ChunkMap>,
    segments: SegmentCounts,
    bytes: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One ingester: shared by its receivers, its background tasks and (in-process) queriers.
#[derive(Debug)]
pub struct Ingester {
    config: IngesterConfig,
    store: Store,
    wal: Wal,
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantState>>>>,
    /// Unflushed spans per WAL segment.
    segment_refs: Mutex<SegmentCounts>,
    /// Appends hold it shared from WAL append until their spans are counted in
    /// `segment_refs`; WAL cleanup holds it exclusively, so it never deletes a segment whose
    /// spans are acknowledged but not yet counted.
    wal_gate: RwLock<()>,
    flush_tx: mpsc::UnboundedSender<FlushJob>,
    flush_rx: Mutex<Option<mpsc::UnboundedReceiver<FlushJob>>>,
    next_seq: AtomicU64,
    /// Request bytes accepted and not yet in a written block.
    unflushed_bytes: AtomicU64,
    accepting: AtomicBool,
    /// Per-tenant retention; spans older than it are refused. Unset: no age limit.
    overrides: std::sync::OnceLock<Arc<skein_storage::overrides::Overrides>>,
}

const WAL_FORMAT: u8 = 1;

/// WAL record: format byte, tenant length byte, tenant, protobuf `ExportTraceServiceRequest`.
fn wal_record(tenant: &TenantId, request: &[u8]) -> Bytes {
    let t = tenant.as_str().as_bytes();
    let mut b = BytesMut::with_capacity(2 + t.len() + request.len());
    b.put_u8(WAL_FORMAT);
    b.put_u8(t.len() as u8); // tenant IDs are at most 150 bytes
    b.put_slice(t);
    b.put_slice(request);
    b.freeze()
}

/// Splits a WAL record into its tenant, its decoded request and the request's bytes.
fn parse_wal_record(payload: &Bytes) -> Option<(TenantId, ExportTraceServiceRequest, Bytes)> {
    let (&format, rest) = payload.split_first()?;
    if format != WAL_FORMAT {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let tenant = std::str::from_utf8(rest.get(..len as usize)?).ok()?;
    let tenant = TenantId::new(tenant).ok()?;
    let body = payload.slice(2 + len as usize..);
    let req = ExportTraceServiceRequest::decode(body.as_ref()).ok()?;
    Some((tenant, req, body))
}

/// How many spans of each trace `spans` holds.
fn counts_by_trace<'a>(spans: impl IntoIterator<Item = &'a SpanRecord>) -> HashMap<TraceId, u64> {
    let mut counts = HashMap::new();
    for s in spans {
        if let Ok(id) = s.trace_id() {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

/// Live limits: for each span, by its trace ID in request order, the refusal the limits give
/// it (a trace already holding `max_trace_bytes`, or a new trace beyond `max_live_traces`),
/// or `None` when it may be held. Checked against `st` before the WAL append, applied (the
/// spans held) after it: concurrent requests can overshoot a little, never by more than one
/// request each.
fn limit_decisions(
    st: &TenantState,
    ids: impl IntoIterator<Item = TraceId>,
    limits: &TenantLimits,
    bytes_per_span: u64,
) -> Vec<Option<Refusal>> {
    let mut added: HashMap<TraceId, u64> = HashMap::new();
    let mut new_traces = 0u64;
    ids.into_iter()
        .map(|id| {
            let existing = st.live_trace_bytes(&id);
            let pending = added.get(&id).copied();
            if existing.is_none()
                && pending.is_none()
                && st.live.len() as u64 + new_traces >= limits.max_live_traces
            {
                return Some(Refusal::LiveTracesLimit);
            }
            if existing.unwrap_or(0) + pending.unwrap_or(0) + bytes_per_span
                > limits.max_trace_bytes
            {
                return Some(Refusal::TraceTooLarge);
            }
            if pending.is_none() && existing.is_none() {
                new_traces += 1;
            }
            *added.entry(id).or_default() += bytes_per_span;
            None
        })
        .collect()
}

/// Applies [`limit_decisions`] to `v`: refused spans leave it, counted in `v.refused` (and
/// `v` is marked modified).
fn apply_limits(st: &TenantState, v: &mut Validated, limits: &TenantLimits, bytes_per_span: u64) {
    let spans: Vec<SpanRecord> = std::mem::take(&mut v.spans)
        .into_iter()
        .filter(|s| s.trace_id().is_ok())
        .collect();
    let ids = spans.iter().filter_map(|s| s.trace_id().ok());
    let decisions = limit_decisions(st, ids, limits, bytes_per_span);
    let mut kept = Vec::with_capacity(spans.len());
    for (s, refusal) in spans.into_iter().zip(decisions) {
        match refusal {
            Some(r) => {
                v.refused.add(r, 1);
                v.modified = true;
            }
            None => kept.push(s),
        }
    }
    v.spans = kept;
}

/// The answer to a request none of whose spans can be stored: invalid data when every span
/// was refused for a malformed trace or span ID, otherwise a success that reports the
/// refusals.
fn nothing_accepted(refused: Refusals) -> Result<PushOk, PushError> {
    if refused.total() > 0
        && refused
            .0
            .iter()
            .all(|(r, _)| matches!(r, Refusal::InvalidTraceId | Refusal::InvalidSpanId))
    {
        return Err(PushError::InvalidData(refused.message()));
    }
    Ok(PushOk {
        accepted: 0,
        refused,
    })
}

/// Counts an accepted request's stored spans and its body bytes in the received metrics.
fn count_received(tenant: &TenantId, protocol: &'static str, accepted: u64, body_len: usize) {
    let received = Received {
        tenant: tenant.to_string(),
        protocol,
    };
    let m = metrics();
    m.spans_received.get_or_create(&received).inc_by(accepted);
    m.bytes_received
        .get_or_create(&received)
        .inc_by(body_len as u64);
}

/// The protobuf request to store for the accepted spans: the client's own bytes when it sent
/// protobuf and nothing was refused or changed, otherwise the accepted spans re-encoded.
fn encode_accepted(v: &Validated, raw: Option<Bytes>) -> Bytes {
    match raw {
        Some(raw) if !v.modified => raw,
        _ => Bytes::from(
            ExportTraceServiceRequest {
                resource_spans: spans_to_otlp(v.spans.iter().cloned()),
            }
            .encode_to_vec(),
        ),
    }
}

impl Ingester {
    /// Opens the WAL, replays it into memory, and returns an ingester ready to accept spans.
    pub async fn open(config: IngesterConfig, store: Store) -> Result<Arc<Self>, WalError> {
        let opts = WalOptions {
            segment_size: config.wal_segment_bytes,
            max_total_size: config.wal_max_bytes,
            ..WalOptions::default()
        };
        let (wal, replayed) = Wal::open(config.wal_dir.clone(), opts).await?;
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let ingester = Arc::new(Ingester {
            config,
            store,
            wal,
            tenants: Mutex::new(HashMap::new()),
            segment_refs: Mutex::new(SegmentCounts::new()),
            wal_gate: RwLock::new(()),
            flush_tx,
            flush_rx: Mutex::new(Some(flush_rx)),
            next_seq: AtomicU64::new(0),
            unflushed_bytes: AtomicU64::new(0),
            accepting: AtomicBool::new(true),
            overrides: std::sync::OnceLock::new(),
        });
        let now = Instant::now();
        let (mut records, mut spans) = (0u64, 0u64);
        for r in replayed {
            let Some((tenant, req, body)) = parse_wal_record(&r.payload) else {
                tracing::warn!(segment = r.segment, "skipping an unreadable wal record");
                continue;
            };
            let bytes = r.payload.len() as u64;
            let counts = counts_by_trace(&spans_from_otlp(req.resource_spans));
            let n: u64 = counts.values().sum();
            if n == 0 {
                continue;
            }
            *lock(&ingester.segment_refs).entry(r.segment).or_default() += n;
            let chunk = Arc::new(Chunk { bytes: body });
            lock(&ingester.tenant(&tenant)).insert(&chunk, &counts, bytes / n, r.segment, now);
            ingester
                .unflushed_bytes
                .fetch_add(bytes / n * n, Ordering::Relaxed);
            records += 1;
            spans += n;
        }
        if records > 0 {
            tracing::info!(records, spans, "replayed the write-ahead log");
        }
        Ok(ingester)
    }

    /// The ingester's configuration.
    pub fn config(&self) -> &IngesterConfig {
        &self.config
    }

    fn tenant(&self, tenant: &TenantId) -> Arc<Mutex<TenantState>> {
        let mut tenants = lock(&self.tenants);
        if let Some(t) = tenants.get(tenant) {
            return Arc::clone(t);
        }
        let burst = self
            .config
            .limits
            .for_tenant(tenant.as_str())
            .ingestion_burst_bytes;
        let t = Arc::new(Mutex::new(TenantState::new(burst, Instant::now())));
        tenants.insert(tenant.clone(), Arc::clone(&t));
        t
    }

    fn tenants(&self) -> Vec<(TenantId, Arc<Mutex<TenantState>>)> {
        lock(&self.tenants)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Applies `overrides`' retention from now on: spans that ended longer ago than their
    /// tenant's retention are refused (reason `too_old`). Set once; later calls are ignored.
    pub fn set_overrides(&self, overrides: Arc<skein_storage::overrides::Overrides>) {
        let _ = self.overrides.set(overrides);
    }

    fn refuse(&self, tenant: &TenantId, reason: &str, n: u64) {
        metrics()
            .refused
            .get_or_create(&Refused {
                tenant: tenant.to_string(),
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }

    /// Accepts a request: validates it, applies the tenant's limits, makes the accepted spans
    /// durable in the WAL, and only then holds them and answers.
    ///
    /// `body_len` is the decompressed request size; `raw` is the request's protobuf encoding
    /// when the client sent protobuf, stored as is when nothing had to be refused or changed.
    pub async fn push(
        &self,
        tenant: &TenantId,
        request: ExportTraceServiceRequest,
        body_len: usize,
        raw: Option<Bytes>,
        protocol: &'static str,
    ) -> Result<PushOk, PushError> {
        let limits = self.config.limits.for_tenant(tenant.as_str());
        let sent: u64 = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len() as u64)
            .sum();
        let state = self.admit(tenant, sent, body_len, &limits)?;
        self.push_admitted(tenant, &state, request, body_len, raw, protocol, &limits)
            .await
    }

    /// Accepts an OTLP protobuf request as `push` does. A request with nothing to refuse or
    /// change (usable IDs, no value to truncate, within retention and the live limits: the
    /// usual case) is checked on its bytes ([`scan_export_request`]) and stored as it came,
    /// without being decoded; any other is decoded and takes `push`'s path. A body that is
    /// not a valid request is [`PushError::InvalidData`].
    pub async fn push_protobuf(
        &self,
        tenant: &TenantId,
        body: Bytes,
        protocol: &'static str,
    ) -> Result<PushOk, PushError> {
        let limits = self.config.limits.for_tenant(tenant.as_str());
        let max = usize::try_from(limits.max_attribute_value_bytes).unwrap_or(usize::MAX);
        let decode = |body: &Bytes| {
            ExportTraceServiceRequest::decode(body.as_ref()).map_err(|e| {
                PushError::InvalidData(format!(
                    "the body is not a valid OTLP ExportTraceServiceRequest protobuf: {e}"
                ))
            })
        };
        let Some(facts) = scan_export_request(&body, max) else {
            let request = decode(&body)?;
            return self
                .push(tenant, request, body.len(), Some(body), protocol)
                .await;
        };
        let body_len = body.len();
        let state = self.admit(tenant, facts.len() as u64, body_len, &limits)?;
        let bytes_per_span = body_len as u64 / (facts.len() as u64).max(1);
        let within_retention = self
            .oldest_allowed(tenant)
            .is_none_or(|oldest| facts.iter().all(|f| f.latest_unix_nano >= oldest));
        let unchanged = !facts.is_empty()
            && within_retention
            && limit_decisions(
                &lock(&state),
                facts.iter().map(|f| f.trace_id),
                &limits,
                bytes_per_span,
            )
            .iter()
            .all(Option::is_none);
        if !unchanged {
            let request = decode(&body)?;
            return self
                .push_admitted(
                    tenant,
                    &state,
                    request,
                    body_len,
                    Some(body),
                    protocol,
                    &limits,
                )
                .await;
        }
        let accepted = facts.len() as u64;
        let (segment, gate) = self.append(tenant, &body, accepted).await?;
        let mut counts: HashMap<TraceId, u64> = HashMap::new();
        for f in &facts {
            *counts.entry(f.trace_id).or_default() += 1;
        }
        self.hold(&state, segment, body, &counts, accepted, bytes_per_span);
        drop(gate);
        count_received(tenant, protocol, accepted, body_len);
        Ok(PushOk {
            accepted,
            refused: Refusals::default(),
        })
    }

    /// `push` after [`admit`](Self::admit): validation, limits, the WAL, holding the spans.
    #[allow(clippy::too_many_arguments)]
    async fn push_admitted(
        &self,
        tenant: &TenantId,
        state: &Arc<Mutex<TenantState>>,
        request: ExportTraceServiceRequest,
        body_len: usize,
        raw: Option<Bytes>,
        protocol: &'static str,
        limits: &TenantLimits,
    ) -> Result<PushOk, PushError> {
        let mut v = self.validate(tenant, request, limits);
        let total = v.spans.len() as u64 + v.refused.total();
        let bytes_per_span = body_len as u64 / total.max(1);
        apply_limits(&lock(state), &mut v, limits, bytes_per_span);
        for (r, n) in &v.refused.0 {
            self.refuse(tenant, r.as_str(), *n);
        }
        if v.spans.is_empty() {
            return nothing_accepted(v.refused);
        }

        let encoded = encode_accepted(&v, raw);
        let accepted = v.spans.len() as u64;
        let (segment, gate) = self.append(tenant, &encoded, accepted).await?;
        let counts = counts_by_trace(&v.spans);
        v.spans = Vec::new();
        self.hold(state, segment, encoded, &counts, accepted, bytes_per_span);
        drop(gate);
        count_received(tenant, protocol, accepted, body_len);
        Ok(PushOk {
            accepted,
            refused: v.refused,
        })
    }

    /// The checks a request passes before its spans are looked at: the ingester is
    /// accepting, the body is within the tenant's `max_request_bytes`, the ingester is not
    /// holding too much unflushed data, and the body fits the tenant's burst and rate. Every
    /// span of a request refused here is counted as refused. Returns the tenant's state.
    fn admit(
        &self,
        tenant: &TenantId,
        sent: u64,
        body_len: usize,
        limits: &TenantLimits,
    ) -> Result<Arc<Mutex<TenantState>>, PushError> {
        if !self.accepting.load(Ordering::Acquire) {
            return Err(PushError::Unavailable {
                message: "the ingester is shutting down".into(),
                retry_after: Duration::from_secs(5),
            });
        }
        if body_len as u64 > limits.max_request_bytes {
            self.refuse(tenant, "request_too_large", sent);
            return Err(PushError::TooLarge(format!(
                "request of {body_len} bytes exceeds the tenant's max_request_bytes of {}",
                limits.max_request_bytes
            )));
        }
        let unflushed = self.unflushed_bytes.load(Ordering::Relaxed);
        if unflushed > self.config.max_unflushed_bytes {
            self.refuse(tenant, "backpressure", sent);
            return Err(PushError::Unavailable {
                message: format!(
                    "the ingester holds {unflushed} bytes not yet written to object storage (max_unflushed_bytes {}); retry shortly",
                    self.config.max_unflushed_bytes
                ),
                retry_after: Duration::from_secs(2),
            });
        }
        if body_len as u64 > limits.ingestion_burst_bytes {
            // It could never pass the rate limit: a final answer, not "retry later".
            self.refuse(tenant, "request_too_large", sent);
            return Err(PushError::TooLarge(format!(
                "request of {body_len} bytes exceeds the tenant's ingestion_burst_bytes of {}; send smaller batches",
                limits.ingestion_burst_bytes
            )));
        }
        let state = self.tenant(tenant);
        {
            let mut st = lock(&state);
            if let Err(retry_after) = st.bucket.take(
                body_len as u64,
                limits.ingestion_rate_bytes,
                limits.ingestion_burst_bytes,
                Instant::now(),
            ) {
                drop(st);
                self.refuse(tenant, "rate_limited", sent);
                return Err(PushError::RateLimited {
                    message: format!(
                        "tenant {tenant} is over its ingestion rate of {} bytes/s (burst {} bytes); retry later",
                        limits.ingestion_rate_bytes, limits.ingestion_burst_bytes
                    ),
                    retry_after,
                });
            }
        }
        Ok(state)
    }

    /// Splits the request into spans that may be stored and spans refused for their content
    /// (IDs, attribute sizes, and, when overrides are set, an end older than the tenant's
    /// retention).
    fn validate(
        &self,
        tenant: &TenantId,
        request: ExportTraceServiceRequest,
        limits: &TenantLimits,
    ) -> Validated {
        let mut v = validate(request, limits.max_attribute_value_bytes);
        if let Some(oldest) = self.oldest_allowed(tenant) {
            crate::validate::refuse_too_old(&mut v, oldest);
        }
        v
    }

    /// When overrides are set: the earliest end a span of `tenant` may have (now minus the
    /// tenant's retention).
    fn oldest_allowed(&self, tenant: &TenantId) -> Option<u64> {
        let o = self.overrides.get()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Some(now.saturating_sub(o.retention(tenant).as_nanos() as u64))
    }

    /// Makes the encoded request durable in the WAL; returns the segment holding it, and the
    /// WAL gate held shared until the caller has counted the spans (see `wal_gate`). A WAL
    /// error refuses the request's `accepted` spans as retryable.
    async fn append(
        &self,
        tenant: &TenantId,
        encoded: &[u8],
        accepted: u64,
    ) -> Result<(u64, RwLockReadGuard<'_, ()>), PushError> {
        let record = wal_record(tenant, encoded);
        let gate = self.wal_gate.read().await;
        match self.wal.append(record).await {
            Ok(segment) => Ok((segment, gate)),
            Err(e) => {
                drop(gate);
                self.refuse(
                    tenant,
                    if matches!(e, WalError::Full { .. }) {
                        "wal_full"
                    } else {
                        "wal_error"
                    },
                    accepted,
                );
                tracing::warn!(%tenant, error = %e, "write refused by the write-ahead log");
                Err(PushError::Unavailable {
                    message: format!("the ingester cannot store more data now ({e})"),
                    retry_after: Duration::from_secs(5),
                })
            }
        }
    }

    /// Holds spans made durable in WAL `segment`: counts them against the segment and the
    /// unflushed bytes, and adds `encoded` to the tenant's live traces.
    fn hold(
        &self,
        state: &Mutex<TenantState>,
        segment: u64,
        encoded: Bytes,
        counts: &HashMap<TraceId, u64>,
        accepted: u64,
        bytes_per_span: u64,
    ) {
        *lock(&self.segment_refs).entry(segment).or_default() += accepted;
        self.unflushed_bytes
            .fetch_add(bytes_per_span * accepted, Ordering::Relaxed);
        let chunk = Arc::new(Chunk { bytes: encoded });
        lock(state).insert(&chunk, counts, bytes_per_span, segment, Instant::now());
    }

    /// Moves idle traces to head blocks and cuts head blocks that are due (everything with
    /// `force`), queueing them for upload.
    pub fn cut(&self, force: bool) {
        let now = Instant::now();
        let c = &self.config;
        for (tenant, state) in self.tenants() {
            let mut st = lock(&state);
            st.cut_traces(
                c.trace_idle_period,
                c.max_trace_age,
                c.max_block_bytes,
                now,
                force,
            );
            let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
            if let Some((traces, segments, bytes)) =
                st.cut_head(c.max_block_bytes, c.max_block_duration, now, force, seq)
            {
                let _ = self.flush_tx.send(FlushJob {
                    tenant: tenant.clone(),
                    seq,
                    traces,
                    segments,
                    bytes,
                });
            }
            st.expire_cut(c.complete_block_timeout, now);
            metrics()
                .live_traces
                .get_or_create(&Tenant {
                    tenant: tenant.to_string(),
                })
                .set(st.live.len() as i64);
        }
        let stats = self.wal.stats();
        let m = metrics();
        m.wal_bytes
            .set(i64::try_from(self.wal.total_size()).unwrap_or(i64::MAX));
        m.wal_fsyncs
            .inc_by(stats.fsyncs.saturating_sub(m.wal_fsyncs.get()));
        m.wal_fsync_seconds
            .set(stats.last_fsync_micros as f64 / 1e6);
    }

    /// Spans waiting in the flush queue or not yet cut, for shutdown and tests.
    pub fn unflushed_spans(&self) -> u64 {
        lock(&self.segment_refs).values().sum()
    }

    /// Writes one block, retrying with backoff until it is durable or `shutdown` fires.
    async fn flush(&self, job: FlushJob, shutdown: &CancellationToken) -> bool {
        let started = Instant::now();
        // Seal the WAL segment that holds these spans, so it can be deleted once they (and
        // whatever else it holds) are written; otherwise a quiet ingester would keep appending
        // to one segment that never becomes deletable.
        if let Err(e) = self.wal.rotate().await {
            tracing::warn!(error = %e, "cannot seal the active wal segment");
        }
        let tenant = job.tenant.clone();
        let traces = Arc::clone(&job.traces);
        // Decoding the held chunks and encoding the block both happen off the async runtime.
        let encoded = match tokio::task::spawn_blocking(move || {
            let opts = WriteOptions::default();
            if let Some(done) = encode_in_place(&tenant, &traces, &opts) {
                return done;
            }
            let spans: Vec<SpanRecord> = decode(&traces).into_values().flatten().collect();
            let n = spans.len() as u64;
            encode_block(&tenant, spans, &opts).map(|b| (b, n))
        })
        .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                // Encoding only fails on spans the receivers refuse; nothing to retry.
                tracing::error!(tenant = %job.tenant, error = %e, "cannot encode a block; its spans stay in the wal");
                return false;
            }
            Err(e) => {
                tracing::error!(error = %e, "block encoding task failed");
                return false;
            }
        };
        let (encoded, n) = encoded;
        let writer = BlockWriter::new(self.store.clone());
        let mut backoff = Duration::from_millis(200);
        let meta = loop {
            match writer.upload(encoded.clone()).await {
                Ok(meta) => break meta,
                Err(e) => {
                    metrics().flush_failures.inc();
                    tracing::warn!(tenant = %job.tenant, error = %e, retry_in_ms = backoff.as_millis() as u64, "block upload failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.cancelled() => return false,
                    }
                    backoff = (backoff * 2).min(self.config.flush_max_backoff);
                }
            }
        };
        {
            let state = self.tenant(&job.tenant);
            let mut st = lock(&state);
            if let Some(b) = st.cut.iter_mut().find(|b| b.seq == job.seq) {
                // From now on the spans are read back from the block: memory stays bounded by
                // what is not yet written.
                b.traces = None;
                b.flushed = Some((Instant::now(), meta.clone()));
            }
        }
        {
            let mut refs = lock(&self.segment_refs);
            for (seg, k) in &job.segments {
                if let Some(c) = refs.get_mut(seg) {
                    *c = c.saturating_sub(*k);
                }
            }
        }
        self.unflushed_bytes.fetch_sub(
            job.bytes.min(self.unflushed_bytes.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let m = metrics();
        m.blocks_flushed.inc();
        m.spans_flushed.inc_by(n);
        m.flush_seconds.observe(started.elapsed().as_secs_f64());
        tracing::info!(tenant = %job.tenant, block = %meta.block_id, spans = n, elapsed_ms = started.elapsed().as_millis() as u64, "block flushed");
        self.collect_wal().await;
        true
    }

    /// Deletes sealed WAL segments none of whose spans is still unflushed.
    async fn collect_wal(&self) {
        let _gate = self.wal_gate.write().await;
        let active = self.wal.active_segment();
        let removable: Vec<u64> = {
            let mut refs = lock(&self.segment_refs);
            let done: Vec<u64> = self
                .wal
                .segments()
                .into_iter()
                .map(|(s, _)| s)
                .filter(|s| *s != active && refs.get(s).copied().unwrap_or(0) == 0)
                .collect();
            for s in &done {
                refs.remove(s);
            }
            done
        };
        if !removable.is_empty()
            && let Err(e) = self.wal.remove_segments(&removable).await
        {
            tracing::warn!(error = %e, "cannot remove flushed wal segments");
        }
    }

    /// Runs the cut loop and the flusher until `shutdown`; then stops accepting, cuts and
    /// flushes everything (bounded by `drain_timeout`), and leaves the WAL empty when all of
    /// it is durable in object storage.
    pub async fn run_background(
        self: Arc<Self>,
        shutdown: CancellationToken,
        drain_timeout: Duration,
    ) {
        let Some(mut rx) = lock(&self.flush_rx).take() else {
            return;
        };
        let flusher = {
            let this = Arc::clone(&self);
            let stop = CancellationToken::new();
            let stop2 = stop.clone();
            let handle = tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    this.flush(job, &stop2).await;
                }
            });
            (handle, stop)
        };
        let mut tick = tokio::time::interval(self.config.cut_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.cut(false),
                () = shutdown.cancelled() => break,
            }
        }
        // Shutdown: nothing new comes in; everything held goes to object storage.
        self.accepting.store(false, Ordering::Release);
        self.cut(true);
        let (handle, stop) = flusher;
        let deadline = Instant::now() + drain_timeout;
        while self.unflushed_spans() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        handle.abort();
        let left = self.unflushed_spans();
        if left == 0 {
            if let Ok(sealed) = self.wal.rotate().await {
                let _ = self.wal.remove_segments(&[sealed]).await;
            }
            self.collect_wal().await;
            tracing::info!("all data flushed; the write-ahead log is empty");
        } else {
            tracing::warn!(
                spans = left,
                "stopping with unflushed spans; they stay in the write-ahead log and are replayed at start"
            );
        }
    }

    /// Stops accepting writes (for shutdown of the receivers first).
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Release);
    }
}

impl Ingester {
    /// The result of reading one of this ingester's flushed blocks, or nothing when the read
    /// failed because the block is gone: a compactor replaced it and deleted it after the
    /// grace period. Its spans are then in the replacing block, which every querier sees by
    /// then (the grace period outlasts the block-list refresh), so answering without them
    /// loses nothing. Any other failure is returned.
    async fn unless_retired<T: Default>(
        &self,
        meta: &skein_format::BlockMeta,
        read: skein_format::Result<T>,
    ) -> skein_format::Result<T> {
        let Err(e) = read else { return read };
        if e.is_not_found() {
            tracing::debug!(block = %meta.block_id, "a flushed block was retired; its spans are in the block that replaced it");
            return Ok(T::default());
        }
        // Parquet wraps the store's errors: ask the store whether the objects are gone.
        for name in [names::DATA, names::BLOOM] {
            let path = block_object(&meta.tenant, meta.block_id, name);
            if let Err(object_store::Error::NotFound { .. }) = self.store.head(&path).await {
                tracing::debug!(block = %meta.block_id, "a flushed block was retired; its spans are in the block that replaced it");
                return Ok(T::default());
            }
        }
        Err(e)
    }
}

#[async_trait]
impl RecentData for Ingester {
    async fn find_trace(
        &self,
        tenant: &TenantId,
        id: &TraceId,
    ) -> skein_query::Result<Vec<SpanRecord>> {
        let mut found = self.find_traces(tenant, std::slice::from_ref(id)).await?;
        Ok(found.remove(id).unwrap_or_default())
    }

    async fn find_traces(
        &self,
        tenant: &TenantId,
        ids: &[TraceId],
    ) -> skein_query::Result<std::collections::HashMap<TraceId, Vec<SpanRecord>>> {
        let state = lock(&self.tenants).get(tenant).cloned();
        let Some(state) = state else {
            return Ok(Default::default());
        };
        let (chunks, flushed) = {
            let st = lock(&state);
            let mut chunks = crate::live::ChunkMap::new();
            for id in ids {
                chunks.extend(st.trace_chunks(id));
            }
            (chunks, st.flushed_blocks())
        };
        // Decoded outside the lock, on a blocking thread: receivers keep going meanwhile.
        let mut found = tokio::task::spawn_blocking(move || decode(&chunks))
            .await
            .map_err(skein_format::Error::from)?;
        for meta in flushed {
            let reader = BlockReader::open(self.store.clone(), meta.clone());
            let mut wanted = Vec::new();
            for id in ids {
                let in_range = meta.row_groups.iter().any(|rg| rg.may_contain(id));
                if in_range
                    && self
                        .unless_retired(&meta, reader.bloom_may_contain(id).await)
                        .await?
                {
                    wanted.push(*id);
                }
            }
            if wanted.is_empty() {
                continue;
            }
            let read = reader.find_traces_unchecked(&wanted).await;
            for (id, spans) in self.unless_retired(&meta, read).await? {
                found.entry(id).or_default().extend(spans);
            }
        }
        found.retain(|_, spans| !spans.is_empty());
        Ok(found)
    }

    async fn search(
        &self,
        tenant: &TenantId,
        request: &Candidates,
    ) -> skein_query::Result<Vec<Vec<SpanRecord>>> {
        let filter = request
            .parse_filter()
            .map_err(|e| skein_query::Error::Unavailable(format!("bad search filter: {e}")))?;
        let state = lock(&self.tenants).get(tenant).cloned();
        let Some(state) = state else {
            return Ok(Vec::new());
        };
        let (chunks, flushed) = {
            let st = lock(&state);
            (st.all_chunks(), st.flushed_blocks())
        };
        // Every held chunk: decoded on a blocking thread, not a runtime worker.
        let mut traces = tokio::task::spawn_blocking(move || decode(&chunks))
            .await
            .map_err(skein_format::Error::from)?;
        // Block scans can select by span start only: Tempo's window (overlap) reads all.
        let by_start = request.window().filter(|_| request.by_start);
        let window = ScanFilter {
            start_unix_nano: by_start.map(|w| w.0),
            end_unix_nano: by_start.map(|w| w.1),
            whole_traces: true,
            ..Default::default()
        };
        for meta in flushed {
            let read = BlockReader::open(self.store.clone(), meta.clone())
                .scan(window.clone())
                .try_collect::<Vec<Vec<SpanRecord>>>()
                .await;
            let parts = self.unless_retired(&meta, read).await?;
            for s in parts.into_iter().flatten() {
                if let Ok(id) = s.trace_id() {
                    traces.entry(id).or_default().push(s);
                }
            }
        }
        // Judged on a blocking thread: a filter may hold regular expressions over many spans.
        let request = request.clone();
        let selected =
            tokio::task::spawn_blocking(move || request.select(&filter, traces.into_values()))
                .await
                .map_err(skein_format::Error::from)?;
        Ok(selected)
    }
}
