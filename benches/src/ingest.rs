//! `skein-bench ingest`: the load generator. It sends realistic multi-service traces to an
//! OTLP endpoint (a running `skein`, or any OTLP receiver) and reports what was accepted and
//! how fast, so ingest can be measured with one command on any machine.
//!
//! Dataset: 16 requests of `--batch` spans (default 1,000) from `skein_testkit::synth`
//! (about 20 attributes per span), generated and encoded once; each send copies a payload
//! and gives its traces fresh IDs by rewriting the trace-ID bytes in place, so the generator
//! costs little CPU next to the server it measures.
//!
//! Prints `key value` lines (`scripts/bench-ingest.sh` reads them): requests sent, failed
//! and throttled, spans accepted, seconds, spans per second, p50 and p99 export latency.
//! With `--decode-only` it sends nothing and prints how fast prost decodes the same payloads
//! on one core.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes};
use clap::{Args, ValueEnum};
use prost::Message;
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_testkit::synth::{Rng, TraceGenerator};

use crate::compact::Workload;
use crate::measure::now_nanos;

/// Wire protocol of the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProtobuf,
    /// OTLP/HTTP with JSON bodies.
    HttpJson,
}

/// `skein-bench ingest` options.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Protocol to send with.
    #[arg(long, value_enum, default_value = "grpc")]
    pub protocol: Protocol,
    /// Where to send: `http://HOST:4317` for gRPC, `http://HOST:4318/v1/traces` for HTTP.
    /// Default: the local standard port of the protocol.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Target spans per second over all connections; 0 sends as fast as the server accepts.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent requests in flight.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Number of tenants (`load-0` … `load-N`), requests spread over them.
    #[arg(long, default_value_t = 1)]
    pub tenants: usize,
    /// How long to send, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Spans per request (a collector's batch size).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The attributes the spans carry.
    #[arg(long, value_enum, default_value = "full")]
    pub workload: Workload,
    /// Stop after this many requests (over all connections), whatever `--duration` allows.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Only measure how fast this machine decodes the payloads with prost (one core), send
    /// nothing: the ceiling any OTLP receiver works under.
    #[arg(long)]
    pub decode_only: bool,
}

/// One pre-encoded request and where its trace IDs sit.
struct Payload {
    body: Vec<u8>,
    /// Byte offsets of every 16-byte trace ID (binary) or 32-character hex trace ID (JSON).
    id_offsets: Vec<usize>,
    spans: u64,
}

const POOL: usize = 16;

fn payloads(args: &IngestArgs) -> anyhow::Result<Vec<Payload>> {
    let mut generator = TraceGenerator::new(args.seed, now_nanos(), 1_000_000);
    if args.workload == Workload::Lean {
        generator = generator.lean();
    }
    let mut out = Vec::with_capacity(POOL);
    for _ in 0..POOL {
        let spans = generator.spans(args.batch);
        let n = spans.len() as u64;
        let ids: Vec<[u8; 16]> = {
            let mut v: Vec<[u8; 16]> = spans
                .iter()
                .filter_map(|s| s.trace_id().ok().map(|t| t.0))
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let req = ExportTraceServiceRequest {
            resource_spans: spans_to_otlp(spans),
        };
        let (body, patterns): (Vec<u8>, Vec<Vec<u8>>) = match args.protocol {
            Protocol::Grpc | Protocol::HttpProtobuf => (
                req.encode_to_vec(),
                ids.iter().map(|i| i.to_vec()).collect(),
            ),
            Protocol::HttpJson => (
                serde_json::to_vec(&req).context("encode json")?,
                ids.iter().map(|i| hex(i).into_bytes()).collect(),
            ),
        };
        let mut id_offsets = Vec::new();
        for p in &patterns {
            let mut from = 0;
            while let Some(pos) = find(&body[from..], p) {
                id_offsets.push(from + pos);
                from += pos + p.len();
            }
        }
        out.push(Payload {
            body,
            id_offsets,
            spans: n,
        });
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A copy of `p` whose traces have new IDs: every trace ID is XORed with one random mask,
/// which keeps the spans of a trace together and distinct traces distinct.
fn fresh(p: &Payload, rng: &mut Rng, json: bool) -> Bytes {
    let mut body = p.body.clone();
    let mask = [rng.next_u64().to_le_bytes(), rng.next_u64().to_le_bytes()].concat();
    for &off in &p.id_offsets {
        if json {
            for i in 0..16 {
                let hi = hex_val(body[off + 2 * i]);
                let lo = hex_val(body[off + 2 * i + 1]);
                let v = ((hi << 4) | lo) ^ mask[i];
                let h = hex(&[v]);
                body[off + 2 * i] = h.as_bytes()[0];
                body[off + 2 * i + 1] = h.as_bytes()[1];
            }
        } else {
            for i in 0..16 {
                body[off + i] ^= mask[i];
            }
        }
    }
    Bytes::from(body)
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Sends raw protobuf bytes over gRPC without decoding them again on the client.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct RawEncoder;

#[derive(Debug, Clone, Default)]
struct RawDecoder;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl tonic::codec::Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    spans: AtomicU64,
    failures: AtomicU64,
    throttled: AtomicU64,
}

/// Runs the load generator and prints its report.
pub fn run(args: IngestArgs) -> anyhow::Result<()> {
    let pool = payloads(&args)?;
    let spans_per_payload = pool.iter().map(|p| p.spans).sum::<u64>() as f64 / pool.len() as f64;
    let bytes_per_span = pool.iter().map(|p| p.body.len() as f64).sum::<f64>()
        / pool.iter().map(|p| p.spans as f64).sum::<f64>();
    if args.decode_only {
        let started = Instant::now();
        let (mut spans, mut rounds) = (0u64, 0u64);
        while started.elapsed() < args.duration.min(Duration::from_secs(10)) {
            for p in &pool {
                let req = ExportTraceServiceRequest::decode(p.body.as_slice()).context("decode")?;
                spans += req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .map(|s| s.spans.len() as u64)
                    .sum::<u64>();
                std::hint::black_box(req);
            }
            rounds += 1;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "decode_only protocol=protobuf batch={} bytes_per_span={bytes_per_span:.1} rounds={rounds}",
            args.batch
        );
        println!(
            "prost_decode_spans_per_second_one_core {:.0}",
            spans as f64 / secs
        );
        return Ok(());
    }
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| match args.protocol {
            Protocol::Grpc => "http://127.0.0.1:4317".into(),
            _ => "http://127.0.0.1:4318/v1/traces".into(),
        });
    let pool = Arc::new(pool);
    let counters = Arc::new(Counters::default());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
    let started = Instant::now();
    let deadline = started + args.duration;
    // Requests per second per worker, for a paced load.
    let per_worker_interval = (args.rate > 0).then(|| {
        let rps = args.rate as f64 / spans_per_payload;
        Duration::from_secs_f64(args.concurrency as f64 / rps.max(0.001))
    });
    let runtime = crate::measure::runtime(Some(2))?;
    runtime.block_on(async {
        let channel = match args.protocol {
            Protocol::Grpc => Some(
                tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .context("grpc endpoint")?
                    .connect()
                    .await
                    .with_context(|| format!("cannot connect to {endpoint}"))?,
            ),
            _ => None,
        };
        let mut tasks = Vec::new();
        for w in 0..args.concurrency {
            let (pool, counters, latencies, channel, endpoint) = (
                Arc::clone(&pool),
                Arc::clone(&counters),
                Arc::clone(&latencies),
                channel.clone(),
                endpoint.clone(),
            );
            let (protocol, tenants, seed) = (args.protocol, args.tenants.max(1), args.seed);
            let budget = args.requests;
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(seed.wrapping_add(1000 + w as u64));
                let mut lat = Vec::new();
                let mut next = Instant::now();
                // One client (connection pool) per worker; no timeout, as before.
                let http = reqwest::Client::new();
                let mut i = w;
                while Instant::now() < deadline {
                    if budget
                        .is_some_and(|b| counters.requests.fetch_add(1, Ordering::Relaxed) >= b)
                    {
                        break;
                    }
                    if let Some(iv) = per_worker_interval {
                        tokio::time::sleep_until(next.into()).await;
                        next += iv;
                    }
                    let p = &pool[i % pool.len()];
                    i += 1;
                    let tenant = format!("load-{}", rng.below(tenants as u64));
                    let body = fresh(p, &mut rng, protocol == Protocol::HttpJson);
                    let t0 = Instant::now();
                    let outcome = match &channel {
                        Some(ch) => {
                            let mut grpc = tonic::client::Grpc::new(ch.clone());
                            let mut req = tonic::Request::new(body);
                            if let Ok(v) = tenant.parse() {
                                req.metadata_mut().insert("x-scope-orgid", v);
                            }
                            let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                            );
                            match grpc.ready().await {
                                Err(_) => Err(false),
                                Ok(()) => match grpc.unary(req, path, RawCodec).await {
                                    Ok(_) => Ok(()),
                                    Err(s) => Err(matches!(
                                        s.code(),
                                        tonic::Code::ResourceExhausted | tonic::Code::Unavailable
                                    )),
                                },
                            }
                        }
                        None => {
                            let ct = if protocol == Protocol::HttpJson {
                                "application/json"
                            } else {
                                "application/x-protobuf"
                            };
                            match http
                                .post(&endpoint)
                                .header("Content-Type", ct)
                                .header("X-Scope-OrgID", &tenant)
                                .body(body)
                                .send()
                                .await
                            {
                                Ok(r) if r.status().as_u16() == 200 => Ok(()),
                                Ok(r) => Err(matches!(r.status().as_u16(), 429 | 503)),
                                Err(_) => Err(false),
                            }
                        }
                    };
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match (budget, &outcome) {
                        (None, _) => {
                            counters.requests.fetch_add(1, Ordering::Relaxed);
                        }
                        // A refused request is sent again: the budget counts accepted ones.
                        (Some(_), Err(_)) => {
                            counters.requests.fetch_sub(1, Ordering::Relaxed);
                        }
                        (Some(_), Ok(())) => {}
                    }
                    match outcome {
                        Ok(()) => {
                            counters.spans.fetch_add(p.spans, Ordering::Relaxed);
                        }
                        Err(true) => {
                            counters.throttled.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(false) => {
                            counters.failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                if let Ok(mut all) = latencies.lock() {
                    all.extend(lat);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_unstable();
    let pct = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let accepted = counters.spans.load(Ordering::Relaxed);
    println!(
        "ingest protocol={:?} batch={} concurrency={} tenants={} bytes_per_span={bytes_per_span:.1}",
        args.protocol, args.batch, args.concurrency, args.tenants
    );
    let sent = counters.requests.load(Ordering::Relaxed);
    let sent = args.requests.map_or(sent, |b| sent.min(b));
    println!("requests {sent}");
    println!(
        "failed_requests {}",
        counters.failures.load(Ordering::Relaxed)
    );
    println!(
        "throttled_requests {}",
        counters.throttled.load(Ordering::Relaxed)
    );
    println!("spans_accepted {accepted}");
    println!("seconds {secs:.2}");
    println!("spans_per_second {:.0}", accepted as f64 / secs);
    println!("export_latency_ms_p50 {:.2}", pct(0.50));
    println!("export_latency_ms_p99 {:.2}", pct(0.99));
    if accepted == 0 {
        bail!("no span was accepted; is skein listening on {endpoint}?");
    }
    Ok(())
}
