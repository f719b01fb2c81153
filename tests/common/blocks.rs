//! Helpers of the ingester's durability tests (crash, object storage outage):
//!
//! - [`SpanFactory`]: the OTLP requests the tests send. A request's content is a pure function
//!   of the run's seed and its [`RequestKey`] (sender thread, sequence number), and every span
//!   ID encodes its key, so a span read back from a block can be traced to the request that
//!   carried it and compared with what was sent without keeping every request in memory.
//! - [`Load`]: sender threads posting those requests over OTLP/HTTP protobuf and recording,
//!   per request, what the server answered ([`Outcome`]).
//! - [`read_tenant`]: every span of every block of a tenant, read with `skein-storage`.
//! - [`verify`]: the blocks checked against the answers.
//!
//! Part of `common`: `use common::blocks::...`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use skein_format::model::{canonical, spans_to_otlp};
use skein_format::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use skein_format::{BlockReader, SpanRecord, TenantId};
use skein_storage::StorageConfig;
use skein_storage::blocklist::{list_tenant, read_meta};

use super::otlp::hex;
use super::{Skein, tail};

pub use skein_testkit::rng::{Rng, seed};

/// One request: which sender thread sent it, and its number among that sender's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    pub sender: u16,
    pub seq: u32,
}

impl std::fmt::Display for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.sender, self.seq)
    }
}

/// Consecutive requests of one sender that share a trace, so traces span requests (and, with
/// a crash or a cut in between, blocks).
const REQUESTS_PER_TRACE: u32 = 3;

/// Builds the requests of a run.
#[derive(Debug, Clone)]
pub struct SpanFactory {
    seed: u64,
    /// Span start times are based here (the run's start), so no span looks too old.
    base_unix_nano: u64,
    /// Spans per request: `1..=max_spans`.
    max_spans: u16,
    /// Length of a filler string attribute per span, to make requests bigger.
    padding: usize,
}

impl SpanFactory {
    pub fn new(seed: u64, max_spans: u16, padding: usize) -> Self {
        let base_unix_nano = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .expect("clock after 1970");
        SpanFactory {
            seed,
            base_unix_nano,
            max_spans: max_spans.max(1),
            padding,
        }
    }

    fn rng(&self, key: RequestKey, idx: u16) -> Rng {
        Rng::new(
            self.seed ^ (u64::from(key.sender) << 48) ^ (u64::from(key.seq) << 16) ^ u64::from(idx),
        )
    }

    /// How many spans request `key` carries.
    pub fn span_count(&self, key: RequestKey) -> u16 {
        (self.rng(key, u16::MAX).next_u64() % u64::from(self.max_spans)) as u16 + 1
    }

    /// The span ID of span `idx` of request `key`: sender + 1, seq, idx (never all zero).
    pub fn span_id(key: RequestKey, idx: u16) -> [u8; 8] {
        let mut id = [0u8; 8];
        id[..2].copy_from_slice(&(key.sender + 1).to_be_bytes());
        id[2..6].copy_from_slice(&key.seq.to_be_bytes());
        id[6..].copy_from_slice(&idx.to_be_bytes());
        id
    }

    /// The request and span index a span ID was made for by [`SpanFactory::span_id`].
    pub fn parse_span_id(id: &[u8]) -> Option<(RequestKey, u16)> {
        let id: [u8; 8] = id.try_into().ok()?;
        let sender = u16::from_be_bytes([id[0], id[1]]).checked_sub(1)?;
        let seq = u32::from_be_bytes([id[2], id[3], id[4], id[5]]);
        let idx = u16::from_be_bytes([id[6], id[7]]);
        Some((RequestKey { sender, seq }, idx))
    }

    fn trace_id(&self, sender: u16, group: u32) -> Vec<u8> {
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(b"skn!");
        id.extend_from_slice(&(self.seed as u32).to_be_bytes());
        id.extend_from_slice(&u32::from(sender).to_be_bytes());
        id.extend_from_slice(&group.to_be_bytes());
        id
    }

    /// Request `key`, always the same for the same key and seed.
    pub fn request(&self, key: RequestKey) -> ExportTraceServiceRequest {
        let group = key.seq / REQUESTS_PER_TRACE;
        let trace_id = self.trace_id(key.sender, group);
        let n = self.span_count(key);
        let spans = (0..n).map(|idx| self.span(key, idx, &trace_id)).collect();
        let kv = |k: &str, v: Value| KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv(
                            "service.name",
                            Value::StringValue(format!("durability-{}", key.sender % 3)),
                        ),
                        kv("host.name", Value::StringValue("test-host".into())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "skein-durability-test".into(),
                        version: "1".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(&self, key: RequestKey, idx: u16, trace_id: &[u8]) -> Span {
        let mut rng = self.rng(key, idx);
        let kv = |k: &str, v: Value| KeyValue {
            key: k.to_owned(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let start = self.base_unix_nano
            + u64::from(key.seq) * 1_000_000
            + u64::from(idx) * 10_000
            + rng.range(0, 5_000);
        let end = start + rng.range(1_000, 50_000_000);
        let padding: String = (0..self.padding)
            .map(|i| char::from(b'a' + ((rng.next_u64() as usize + i) % 26) as u8))
            .collect();
        let mut attributes = vec![
            kv("test.sender", Value::IntValue(i64::from(key.sender))),
            kv("test.seq", Value::IntValue(i64::from(key.seq))),
            kv("test.idx", Value::IntValue(i64::from(idx))),
            kv(
                "http.route",
                Value::StringValue(format!("/api/{}", rng.range(0, 20))),
            ),
            kv(
                "test.ratio",
                Value::DoubleValue(rng.range(0, 1000) as f64 / 7.0),
            ),
            kv(
                "test.flag",
                Value::BoolValue(rng.next_u64().is_multiple_of(2)),
            ),
            kv(
                "test.bytes",
                Value::BytesValue(rng.next_u64().to_le_bytes().to_vec()),
            ),
            kv(
                "test.list",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(Value::IntValue(rng.range(0, 100) as i64)),
                        },
                        AnyValue {
                            value: Some(Value::StringValue("x".into())),
                        },
                    ],
                }),
            ),
        ];
        if !padding.is_empty() {
            attributes.push(kv("test.padding", Value::StringValue(padding)));
        }
        let error = rng.next_u64().is_multiple_of(5);
        Span {
            trace_id: trace_id.to_vec(),
            span_id: Self::span_id(key, idx).to_vec(),
            trace_state: if rng.next_u64().is_multiple_of(3) {
                "vendor=a1".into()
            } else {
                String::new()
            },
            parent_span_id: if idx == 0 {
                Vec::new()
            } else {
                Self::span_id(key, 0).to_vec()
            },
            flags: 0x101,
            name: format!("op-{}", rng.range(0, 8)),
            kind: (idx % 5 + 1) as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count: (rng.next_u64() % 2) as u32,
            events: vec![span::Event {
                time_unix_nano: start + 500,
                name: "checkpoint".into(),
                attributes: vec![kv("test.seq", Value::IntValue(i64::from(key.seq)))],
                dropped_attributes_count: 0,
            }],
            dropped_events_count: 0,
            links: if key.seq >= REQUESTS_PER_TRACE {
                vec![span::Link {
                    trace_id: self.trace_id(key.sender, key.seq / REQUESTS_PER_TRACE - 1),
                    span_id: Self::span_id(
                        RequestKey {
                            sender: key.sender,
                            seq: key.seq - REQUESTS_PER_TRACE,
                        },
                        0,
                    )
                    .to_vec(),
                    attributes: vec![kv("test.link", Value::BoolValue(true))],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            dropped_links_count: 0,
            status: Some(if error {
                Status {
                    code: 2,
                    message: format!("failure {}", rng.range(0, 100)),
                }
            } else {
                Status {
                    code: 1,
                    message: String::new(),
                }
            }),
        }
    }

    /// The spans of request `key` in canonical form (see [`canonical`]), by span ID.
    pub fn expected(&self, key: RequestKey) -> BTreeMap<[u8; 8], SpanRecord> {
        canonical(self.request(key).resource_spans)
            .into_iter()
            .map(|s| {
                let id: [u8; 8] = s.span.span_id.as_slice().try_into().expect("8-byte id");
                (id, s)
            })
            .collect()
    }
}

/// What the server answered to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 200 without rejected spans: every span is acknowledged as stored.
    Acked,
    /// 200 with `partial_success`: some spans were refused (the test loads never expect it).
    Partial { rejected: i64, message: String },
    /// An answer other than 200: refused.
    Refused {
        status: u16,
        retry_after: Option<String>,
    },
    /// No answer (connection refused or cut, timeout): stored or not, nobody knows.
    Unknown(String),
}

/// One request sent, with its answer.
#[derive(Debug, Clone)]
pub struct Sent {
    pub key: RequestKey,
    /// The load's phase (see [`Load::set_phase`]) when the request was sent.
    pub phase: u32,
    pub outcome: Outcome,
}

/// Sender threads posting [`SpanFactory`] requests until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU32>,
    sent: Arc<Mutex<Vec<Sent>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts one thread per sender ID, posting to `url` (OTLP/HTTP, protobuf) as `tenant`.
    /// A sender waits `pace` after each request, and `pause` more after one that was not
    /// acknowledged.
    pub fn start(
        url: &str,
        tenant: &str,
        factory: &SpanFactory,
        senders: std::ops::Range<u16>,
        pace: Duration,
        pause: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU32::new(0));
        let sent = Arc::new(Mutex::new(Vec::new()));
        let threads = senders
            .map(|sender| {
                let (stop, phase, sent) =
                    (Arc::clone(&stop), Arc::clone(&phase), Arc::clone(&sent));
                let (url, tenant, factory) = (url.to_owned(), tenant.to_owned(), factory.clone());
                std::thread::spawn(move || {
                    // A new client per load: pooled connections do not outlive a killed server.
                    let http = reqwest::blocking::Client::builder()
                        .timeout(Duration::from_secs(15))
                        .build()
                        .expect("build the http client");
                    let mut seq = 0u32;
                    while !stop.load(Ordering::Acquire) {
                        let key = RequestKey { sender, seq };
                        seq += 1;
                        let body = factory.request(key).encode_to_vec();
                        let at_phase = phase.load(Ordering::Acquire);
                        let outcome = post(&http, &url, &tenant, body);
                        let acked = outcome == Outcome::Acked;
                        lock(&sent).push(Sent {
                            key,
                            phase: at_phase,
                            outcome,
                        });
                        std::thread::sleep(if acked { pace } else { pace + pause });
                    }
                })
            })
            .collect();
        Load {
            stop,
            phase,
            sent,
            threads,
        }
    }

    /// Marks the requests sent from now on with `phase`.
    pub fn set_phase(&self, phase: u32) {
        self.phase.store(phase, Ordering::Release);
    }

    /// The answers so far.
    pub fn snapshot(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    /// Stops the senders (each finishes its current request) and returns every answer.
    pub fn stop(self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Release);
        for t in self.threads {
            t.join().expect("sender thread panicked");
        }
        std::mem::take(&mut *lock(&self.sent))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn post(http: &reqwest::blocking::Client, url: &str, tenant: &str, body: Vec<u8>) -> Outcome {
    let resp = match http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
    {
        Ok(r) => r,
        Err(e) => return Outcome::Unknown(e.to_string()),
    };
    let status = resp.status().as_u16();
    if status != 200 {
        return Outcome::Refused {
            status,
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };
    }
    // The status line is only sent once the spans are durable, so 200 is the acknowledgement
    // even if reading the body fails afterwards.
    let body = resp.bytes().unwrap_or_default();
    match ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|r| r.partial_success)
    {
        Some(p) if p.rejected_spans > 0 => Outcome::Partial {
            rejected: p.rejected_spans,
            message: p.error_message,
        },
        _ => Outcome::Acked,
    }
}

/// What a tenant's blocks hold.
#[derive(Debug, Default)]
pub struct TenantBlocks {
    /// Every span of every visible block.
    pub spans: Vec<SpanRecord>,
    /// Visible blocks (meta, no tombstone).
    pub blocks: usize,
    /// Block directories without a meta: uploads cut off before their meta was written.
    pub without_meta: usize,
    /// Retired blocks.
    pub tombstoned: usize,
}

/// Reads every span of every visible block of `tenant`, checking each block's span count
/// against its meta. Fails on any error: a block that cannot be read is a test failure.
pub fn read_tenant(storage: &StorageConfig, tenant: &str) -> TenantBlocks {
    let tenant = TenantId::new(tenant).expect("tenant id");
    let store = storage.open().expect("open the storage");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let listing = list_tenant(&store, &tenant).await.expect("list the tenant");
        let mut out = TenantBlocks {
            blocks: listing.live.len(),
            without_meta: listing.without_meta.len(),
            tombstoned: listing.tombstoned.len(),
            ..TenantBlocks::default()
        };
        for id in listing.live {
            let meta = read_meta(&store, &tenant, id)
                .await
                .unwrap_or_else(|e| panic!("block {id}: cannot read its meta: {e}"));
            let expected = meta.span_count;
            let spans = BlockReader::open(store.clone(), meta)
                .read_all()
                .await
                .unwrap_or_else(|e| panic!("block {id}: cannot read its spans: {e}"));
            assert_eq!(
                spans.len() as u64,
                expected,
                "block {id}: meta.json says {expected} spans, data.parquet holds {}",
                spans.len()
            );
            out.spans.extend(spans);
        }
        out
    })
}

/// WAL segment files that still hold records (longer than a segment header), with sizes.
pub fn wal_segments_with_records(wal_dir: &Path) -> Vec<(String, u64)> {
    use skein_format::wal::SEGMENT_HEADER_LEN;
    let mut out: Vec<(String, u64)> = std::fs::read_dir(wal_dir)
        .unwrap_or_else(|e| panic!("{}: {e}", wal_dir.display()))
        .map(|e| e.expect("wal dir entry"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        .map(|e| {
            let len = e.metadata().expect("wal segment metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .filter(|(_, len)| *len > SEGMENT_HEADER_LEN)
        .collect();
    out.sort();
    out
}

/// A counter or gauge from Prometheus text (summed over label sets); 0 when absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The outcome of checking blocks against the answers.
#[derive(Debug, Default)]
pub struct Report {
    pub requests: usize,
    pub acked_requests: usize,
    pub acked_spans: usize,
    pub unknown_requests: usize,
    pub refused_requests: usize,
    pub stored_spans: usize,
    pub distinct_spans: usize,
    /// Stored copies beyond the first of identical spans.
    pub exact_duplicates: usize,
    /// Spans of requests without an answer that were stored anyway (allowed).
    pub unknown_stored_spans: usize,
    /// Spans of refused requests that were stored anyway.
    pub refused_stored_spans: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests ({} acknowledged with {} spans, {} without answer, {} refused); \
             blocks hold {} spans, {} distinct, {} exact duplicates; stored without \
             acknowledgement: {} spans of unanswered requests, {} of refused ones",
            self.requests,
            self.acked_requests,
            self.acked_spans,
            self.unknown_requests,
            self.refused_requests,
            self.stored_spans,
            self.distinct_spans,
            self.exact_duplicates,
            self.unknown_stored_spans,
            self.refused_stored_spans,
        )
    }
}

/// Checks `stored` (every span of the tenant's blocks) against the answers in `sent`:
///
/// - every span of every acknowledged request is stored;
/// - every stored span was sent, and is identical to what was sent (in canonical form);
/// - so, after removing exact duplicates, each acknowledged span is stored exactly once.
///
/// Spans of unanswered or refused requests may be stored or not; they are counted. Returns
/// the counts, or a failure message naming a few of the spans at fault.
pub fn verify(
    factory: &SpanFactory,
    sent: &[Sent],
    stored: Vec<SpanRecord>,
) -> Result<Report, String> {
    let mut report = Report {
        requests: sent.len(),
        stored_spans: stored.len(),
        ..Report::default()
    };
    let mut problems: Vec<String> = Vec::new();
    let partial: Vec<&Sent> = sent
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Partial { .. }))
        .collect();
    if let Some(p) = partial.first() {
        problems.push(format!(
            "{} requests were only partly accepted (the load never sends anything to refuse), \
             e.g. request {}: {:?}",
            partial.len(),
            p.key,
            p.outcome
        ));
    }
    let outcomes: HashMap<RequestKey, &Outcome> =
        sent.iter().map(|s| (s.key, &s.outcome)).collect();
    assert_eq!(outcomes.len(), sent.len(), "a request key was sent twice");

    // Stored spans by span ID, in canonical form (the storage round trip may reorder
    // attributes, which carries no meaning).
    let mut by_id: BTreeMap<[u8; 8], Vec<SpanRecord>> = BTreeMap::new();
    let mut unsent: Vec<String> = Vec::new();
    for s in canonical(spans_to_otlp(stored)) {
        match <[u8; 8]>::try_from(s.span.span_id.as_slice()) {
            Ok(id)
                if SpanFactory::parse_span_id(&id).is_some_and(|(key, idx)| {
                    outcomes.contains_key(&key) && idx < factory.span_count(key)
                }) =>
            {
                by_id.entry(id).or_default().push(s);
            }
            _ => unsent.push(hex(&s.span.span_id)),
        }
    }
    report.distinct_spans = by_id.len();
    if !unsent.is_empty() {
        problems.push(format!(
            "{} stored spans were never sent, e.g. span IDs {}",
            unsent.len(),
            unsent[..unsent.len().min(5)].join(", ")
        ));
    }

    // Compare every stored copy with what its request carried.
    let keys: BTreeSet<RequestKey> = by_id
        .keys()
        .filter_map(|id| SpanFactory::parse_span_id(id).map(|(k, _)| k))
        .collect();
    let mut corrupted: Vec<String> = Vec::new();
    let mut corrupted_count = 0usize;
    for key in &keys {
        let expected = factory.expected(*key);
        for (id, want) in &expected {
            let Some(copies) = by_id.get(id) else {
                continue;
            };
            for got in copies {
                if got != want {
                    corrupted_count += 1;
                    if corrupted.len() < 3 {
                        corrupted.push(format!(
                            "span {} of request {key}: {}",
                            hex(id),
                            first_difference(want, got)
                        ));
                    }
                }
            }
            report.exact_duplicates += copies.len() - 1;
            match outcomes[key] {
                Outcome::Acked => {}
                Outcome::Unknown(_) => report.unknown_stored_spans += 1,
                _ => report.refused_stored_spans += 1,
            }
        }
    }
    if corrupted_count > 0 {
        problems.push(format!(
            "{corrupted_count} stored spans differ from what was sent: {}",
            corrupted.join("; ")
        ));
    }

    // Every acknowledged span must be stored.
    let mut missing: Vec<String> = Vec::new();
    let mut missing_count = 0usize;
    let mut missing_requests = 0usize;
    for s in sent {
        match s.outcome {
            Outcome::Acked => {}
            Outcome::Unknown(_) => {
                report.unknown_requests += 1;
                continue;
            }
            _ => {
                report.refused_requests += 1;
                continue;
            }
        }
        report.acked_requests += 1;
        let n = factory.span_count(s.key);
        report.acked_spans += usize::from(n);
        let absent: Vec<u16> = (0..n)
            .filter(|&idx| !by_id.contains_key(&SpanFactory::span_id(s.key, idx)))
            .collect();
        if !absent.is_empty() {
            missing_requests += 1;
            missing_count += absent.len();
            if missing.len() < 5 {
                missing.push(format!(
                    "request {} (phase {}) spans {:?} of {n}",
                    s.key, s.phase, absent
                ));
            }
        }
    }
    if missing_count > 0 {
        problems.push(format!(
            "{missing_count} acknowledged spans of {missing_requests} requests are not stored, e.g. {}",
            missing.join("; ")
        ));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(format!("{}\n({report})", problems.join("\n")))
    }
}

/// A short description of where two spans differ: the first differing stretch of their
/// debug text, not the whole spans.
fn first_difference(want: &SpanRecord, got: &SpanRecord) -> String {
    let (a, b): (Vec<char>, Vec<char>) = (
        format!("{want:?}").chars().collect(),
        format!("{got:?}").chars().collect(),
    );
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let cut = |s: &[char]| -> String {
        s[at.saturating_sub(40).min(s.len())..(at + 60).min(s.len())]
            .iter()
            .collect()
    };
    format!("sent …{}… stored …{}…", cut(&a), cut(&b))
}

/// Stops `skein` with SIGTERM and checks that it exited cleanly and left no records in the WAL
/// at `wal_dir` (a clean stop flushes everything).
pub fn stop_cleanly(skein: &mut Skein, wal_dir: &Path) {
    let status = skein
        .terminate(Duration::from_secs(40))
        .expect("skein did not exit within 40 s of SIGTERM");
    let log = skein.log();
    assert!(
        status.success(),
        "skein exited with {status} after SIGTERM; log tail:\n{}",
        tail(&log, 30)
    );
    let left = wal_segments_with_records(wal_dir);
    assert!(
        left.is_empty(),
        "after a clean stop the WAL still holds records in {left:?}; log tail:\n{}",
        tail(&log, 30)
    );
}
