//! `skein bench-query`: the querier benchmark. It loads a generated dataset into an object
//! store (local disk, or an S3 bucket) and measures, in process and without HTTP, what the
//! read path costs: trace by ID (hits and misses, with and without a time hint), a Tempo
//! search mix, a tag-value listing, and the object-store requests each one makes, next to the
//! time of one raw GET of a whole block as the floor.
//!
//! The dataset is `skein_testkit::synth` traces spread over the last [`DATASET_SPAN`] (ending
//! when it was generated), cut into blocks that each cover an equal slice of time, as an
//! ingester cutting blocks on a steady load would. A manifest next to it records what was
//! generated, so a second run with the same `--spans`, `--blocks` and `--seed` reuses it.
//! Query windows are relative to the dataset's end, so a reused dataset answers the same way.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use skein_format::block::{EncodedBlock, WriteOptions, encode_block};
use skein_format::layout::{block_object, names};
use skein_format::{BlockMeta, BlockWriter, Store, TenantId, TraceId};
use skein_querier::lookup::TraceLookup;
use skein_query::search::{Semantics, TraceQuery};
use skein_storage::S3Config;
use skein_storage::blocklist::{delete_block, list_tenant};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::counting::{CountingStore, RequestCounts};
use skein_testkit::synth::{Rng, TraceGenerator};

/// How much time the dataset covers, ending when it was generated.
const DATASET_SPAN: Duration = Duration::from_secs(4 * 3600);
/// The "last hour" of the search goals, and the half-width of the trace-by-ID time hint.
const HOUR_NANOS: u64 = 3600 * 1_000_000_000;
/// Mean spans per synthetic trace (100,003 spans in 4,627 traces in docs/benchmarks.md), to
/// space trace starts so that a block fills its slice of time.
const SPANS_PER_TRACE: f64 = 21.6;
/// Trace IDs kept per block for hit queries (at least), and in total (about).
const MIN_SAMPLES_PER_BLOCK: usize = 4;
const SAMPLES_TOTAL: usize = 2_000;
/// Queries of one kind measured even when they take longer than `--kind-budget`.
const MIN_QUERIES: usize = 3;
const MANIFEST_VERSION: u32 = 1;
const TENANT: &str = "bench-query";

/// `skein bench-query` options.
#[derive(Debug, Clone, Args)]
pub struct BenchQueryArgs {
    /// Directory holding the dataset (under `blocks/`, local disk) and its manifest; with
    /// --s3-endpoint it holds only the manifest. A dataset generated with the same --spans,
    /// --blocks, --seed and store is reused.
    #[arg(long, value_name = "PATH")]
    pub dir: PathBuf,
    /// Spans in the dataset.
    #[arg(long, default_value_t = 10_000_000)]
    pub spans: u64,
    /// Blocks the spans are cut into.
    #[arg(long, default_value_t = 200)]
    pub blocks: usize,
    /// S3 endpoint URL: run against this bucket instead of local disk. Credentials come from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`; without them requests are anonymous.
    #[arg(long, value_name = "URL", requires = "s3_bucket")]
    pub s3_endpoint: Option<String>,
    /// S3 bucket (with --s3-endpoint).
    #[arg(long, value_name = "NAME", requires = "s3_endpoint")]
    pub s3_bucket: Option<String>,
    /// Queries measured per kind (fewer when --kind-budget runs out first).
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Time allowed per query kind; at least 3 queries run whatever it is.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub kind_budget: Duration,
    /// Seed of the generated data and of the queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads generating and encoding blocks; default: one per core.
    #[arg(long)]
    pub encoders: Option<usize>,
    /// Give every block a tag index, as compacted blocks have, and let the queries use it
    /// (unpacked under `<dir>/index-cache`). Compare with a run without it on the same seed.
    #[arg(long)]
    pub tag_index: bool,
}

/// A trace known to be in the dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KnownTrace {
    trace_id: String,
    start_unix_nano: u64,
    block: usize,
}

/// What was generated; written after the last block, so its presence means a whole dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    store: String,
    seed: u64,
    spans_requested: u64,
    blocks: usize,
    start_unix_nano: u64,
    end_unix_nano: u64,
    spans: u64,
    traces: u64,
    data_bytes: u64,
    generate_seconds: f64,
    services: BTreeSet<String>,
    routes: BTreeSet<String>,
    samples: Vec<KnownTrace>,
    /// Blocks carry tag indexes.
    #[serde(default)]
    tag_index: bool,
    /// Bytes of the tag indexes.
    #[serde(default)]
    index_bytes: u64,
}

impl Manifest {
    fn matches(&self, args: &BenchQueryArgs, store: &str) -> bool {
        self.version == MANIFEST_VERSION
            && self.store == store
            && self.seed == args.seed
            && self.spans_requested == args.spans
            && self.blocks == args.blocks
            && self.tag_index == args.tag_index
    }
}

/// Facts about one generated block.
struct BlockFacts {
    spans: u64,
    traces: u64,
    services: BTreeSet<String>,
    routes: BTreeSet<String>,
    samples: Vec<KnownTrace>,
}

/// Runs the benchmark and prints its report.
pub fn run(args: BenchQueryArgs) -> anyhow::Result<()> {
    if args.blocks == 0 || args.spans < args.blocks as u64 {
        bail!("--spans must be at least --blocks, and --blocks at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(bench(args))
}

async fn bench(args: BenchQueryArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let (config, store_name) = match (&args.s3_endpoint, &args.s3_bucket) {
        (Some(endpoint), Some(bucket)) => (
            StorageConfig::S3(S3Config {
                bucket: bucket.clone(),
                endpoint: endpoint.clone(),
                ..Default::default()
            }),
            format!("s3 {endpoint} bucket {bucket}"),
        ),
        _ => {
            let path = args.dir.join("blocks");
            let name = format!("local disk {}", path.display());
            (StorageConfig::Local { path }, name)
        }
    };
    let inner = config.open()?;
    let tenant = TenantId::new(TENANT)?;
    let manifest_path = args.dir.join("manifest.json");
    let manifest = match reusable(&manifest_path, &args, &store_name, &inner, &tenant).await? {
        Some(m) => {
            eprintln!(
                "reusing the dataset described by {}",
                manifest_path.display()
            );
            m
        }
        None => {
            let m = generate(&args, &store_name, &inner, &tenant).await?;
            std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m)?)
                .with_context(|| format!("cannot write {}", manifest_path.display()))?;
            m
        }
    };
    print_facts(&args, &manifest, &store_name);

    let counting = CountingStore::new(inner);
    let store: Store = counting.clone();
    // Sample 0 of every block is the warm-up's; hits look up the others.
    let hits = manifest
        .samples
        .iter()
        .enumerate()
        .filter(|(i, t)| *i > 0 && manifest.samples[i - 1].block == t.block)
        .map(|(_, t)| t.clone())
        .collect::<Vec<_>>();
    if hits.is_empty() {
        bail!("the dataset has too few traces to sample");
    }
    let ctx = Bench {
        tenant,
        hits,
        manifest,
        counting: Arc::clone(&counting),
    };

    // The block list, as a querier loads it at start.
    let blocks = Arc::new(BlockList::new(
        store.clone(),
        Duration::from_secs(24 * 3600),
    ));
    let (took, counts) = ctx.measure(blocks.refresh(&ctx.tenant)).await;
    let metas = took?;
    println!(
        "block list, first load: {} blocks in {:.1} ms, {} lists + {} GETs",
        metas.len(),
        ms(counts.0),
        counts.1.lists,
        counts.1.gets
    );
    floor(&ctx, &store, &metas).await?;

    println!();
    println!(
        "cold: the first query of each kind on a new TraceLookup (block list loaded, bloom \
         filters and Parquet footers not; the OS page cache is not dropped)"
    );
    println!(
        "{:<34} {:>9} {:>7} {:>10} {:>10}",
        "kind", "ms", "GETs", "get_ranges", "KiB read"
    );
    let mut rng = Rng::new(args.seed ^ 0x5eed);
    for kind in Kind::ALL {
        let lookup = Arc::new(new_lookup(&args, &store, &blocks));
        let q = ctx.query(kind, &lookup, &mut rng).await?;
        println!(
            "{:<34} {:>9.1} {:>7} {:>10} {:>10.0}",
            kind.label(),
            ms(q.elapsed),
            q.counts.gets,
            q.counts.get_ranges_calls,
            q.counts.get_bytes as f64 / 1024.0
        );
    }

    // Warm-up: a querier that has run for a while has every block's bloom filter and footer.
    let lookup = Arc::new(new_lookup(&args, &store, &blocks));
    let started = Instant::now();
    let mut warmed = 0;
    for block in 0..ctx.manifest.blocks {
        if let Some(t) = ctx.manifest.samples.iter().find(|t| t.block == block) {
            let spans = lookup
                .find(&ctx.tenant, &TraceId::from_hex(&t.trace_id)?, None)
                .await?;
            warmed += usize::from(!spans.is_empty());
        }
    }
    println!();
    println!(
        "warm-up: one trace by ID (no hint) in each of the {} blocks, {warmed} found, {:.1} s",
        ctx.manifest.blocks,
        started.elapsed().as_secs_f64()
    );
    println!();
    println!(
        "warm: up to {} queries per kind, one at a time, on the warmed TraceLookup (or as many \
         as {} allows, at least {MIN_QUERIES})",
        args.queries,
        humantime::format_duration(args.kind_budget)
    );
    println!(
        "{:<34} {:>5} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8}",
        "kind",
        "n",
        "p50 ms",
        "p99 ms",
        "mean ms",
        "max ms",
        "GETs/q",
        "g_r/q",
        "KiB/q",
        "found/q",
        "read/q"
    );
    for kind in Kind::ALL {
        let started = Instant::now();
        let mut runs = Vec::new();
        while runs.len() < args.queries
            && (runs.len() < MIN_QUERIES || started.elapsed() < args.kind_budget)
        {
            runs.push(ctx.query(kind, &lookup, &mut rng).await?);
        }
        let mut times: Vec<Duration> = runs.iter().map(|r| r.elapsed).collect();
        times.sort_unstable();
        let n = runs.len() as f64;
        let mean = |f: &dyn Fn(&Query) -> f64| runs.iter().map(f).sum::<f64>() / n;
        println!(
            "{:<34} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>7.1} {:>8.0} {:>7.1} {:>8.1}",
            kind.label(),
            runs.len(),
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.99)),
            mean(&|r| ms(r.elapsed)),
            ms(percentile(&times, 1.0)),
            mean(&|r| r.counts.gets as f64),
            mean(&|r| r.counts.get_ranges_calls as f64),
            mean(&|r| r.counts.get_bytes as f64 / 1024.0),
            mean(&|r| r.found as f64),
            mean(&|r| r.inspected as f64),
        );
        let wrong = runs.iter().filter(|r| !r.expected).count();
        if wrong > 0 {
            println!("  ^ {wrong} of {} answers were not as expected", runs.len());
        }
    }
    println!();
    println!(
        "GETs: object-store GETs as CountingStore counts them, one per range of a get_ranges \
         call (g_r: get_ranges calls; object_store's S3 client merges ranges less than 1 MiB \
         apart into one request); found: spans of the trace (by ID), traces (search), values \
         (tag listing); read: traces a search read whole"
    );
    Ok(())
}

/// A querier's lookup over the dataset, using tag indexes when the blocks have them.
fn new_lookup(args: &BenchQueryArgs, store: &Store, blocks: &Arc<BlockList>) -> TraceLookup {
    let lookup = TraceLookup::new(store.clone(), Arc::clone(blocks), vec![]);
    match args.tag_index {
        true => lookup.with_tag_indexes(skein_querier::tagcache::TagIndexCache::new(
            store.clone(),
            &args.dir.join("index-cache"),
            u64::MAX,
        )),
        false => lookup,
    }
}

/// The manifest at `path` when it describes the dataset these arguments ask for and the store
/// still holds all of its blocks; otherwise `None`, after deleting whatever the tenant has.
async fn reusable(
    path: &Path,
    args: &BenchQueryArgs,
    store_name: &str,
    store: &Store,
    tenant: &TenantId,
) -> anyhow::Result<Option<Manifest>> {
    let manifest: Option<Manifest> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let listing = list_tenant(store, tenant).await?;
    if let Some(m) = manifest
        && m.matches(args, store_name)
        && listing.live.len() == m.blocks
        && listing.tombstoned.is_empty()
        && listing.without_meta.is_empty()
    {
        return Ok(Some(m));
    }
    // Whatever is there is not the dataset asked for (or is incomplete): start over.
    let _ = std::fs::remove_file(path);
    let old: Vec<_> = [listing.live, listing.tombstoned, listing.without_meta].concat();
    if !old.is_empty() {
        eprintln!("deleting {} blocks of an earlier dataset", old.len());
    }
    for id in old {
        delete_block(store, tenant, id).await?;
    }
    Ok(None)
}

/// Generates and uploads the dataset: blocks are generated and encoded on `--encoders`
/// blocking threads and uploaded from the async side as they come.
async fn generate(
    args: &BenchQueryArgs,
    store_name: &str,
    store: &Store,
    tenant: &TenantId,
) -> anyhow::Result<Manifest> {
    let encoders = args
        .encoders
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let end = now_nanos();
    let start = end - DATASET_SPAN.as_nanos() as u64;
    let slice = DATASET_SPAN.as_nanos() as u64 / args.blocks as u64;
    let samples_per_block = MIN_SAMPLES_PER_BLOCK.max(SAMPLES_TOTAL.div_ceil(args.blocks));
    eprintln!(
        "generating {} spans in {} blocks over the last {} with {encoders} encoder threads \
         into {store_name}",
        args.spans,
        args.blocks,
        humantime::format_duration(DATASET_SPAN)
    );
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<(EncodedBlock, BlockFacts)>>(2);
    let mut workers = Vec::new();
    for _ in 0..encoders {
        let (next, tx, tenant) = (Arc::clone(&next), tx.clone(), tenant.clone());
        let (spans_total, blocks, seed) = (args.spans, args.blocks, args.seed);
        let tag_index = args.tag_index;
        workers.push(tokio::task::spawn_blocking(move || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= blocks {
                    return;
                }
                // Spans of block i: an equal share, the remainder spread over the first ones.
                let n = spans_total / blocks as u64
                    + u64::from((i as u64) < spans_total % blocks as u64);
                let interval = (slice as f64 * SPANS_PER_TRACE / n as f64) as u64;
                let mut generator = TraceGenerator::new(
                    seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                    start + i as u64 * slice,
                    interval.max(1),
                );
                let spans = generator.spans(n as usize);
                let facts = block_facts(&spans, i, samples_per_block);
                // With --tag-index, blocks as the compactor writes them.
                let opts = WriteOptions {
                    tag_index,
                    compaction_level: u32::from(tag_index),
                    ..WriteOptions::default()
                };
                let item = encode_block(&tenant, spans, &opts)
                    .map(|b| (b, facts))
                    .map_err(anyhow::Error::from);
                if tx.blocking_send(item).is_err() {
                    return; // the uploader gave up
                }
            }
        }));
    }
    drop(tx);
    let writer = BlockWriter::new(store.clone());
    let mut m = Manifest {
        version: MANIFEST_VERSION,
        store: store_name.to_owned(),
        seed: args.seed,
        spans_requested: args.spans,
        blocks: args.blocks,
        start_unix_nano: start,
        end_unix_nano: end,
        spans: 0,
        traces: 0,
        data_bytes: 0,
        generate_seconds: 0.0,
        services: BTreeSet::new(),
        routes: BTreeSet::new(),
        samples: Vec::new(),
        tag_index: args.tag_index,
        index_bytes: 0,
    };
    let mut done = 0;
    let every = (args.blocks / 20).max(1);
    while let Some(item) = rx.recv().await {
        let (block, facts) = item?;
        m.data_bytes += block.data.len() as u64;
        m.index_bytes += block.index.as_ref().map_or(0, |i| i.len() as u64);
        writer.upload(block).await?;
        m.spans += facts.spans;
        m.traces += facts.traces;
        m.services.extend(facts.services);
        m.routes.extend(facts.routes);
        m.samples.extend(facts.samples);
        done += 1;
        if done % every == 0 || done == args.blocks {
            eprintln!(
                "  {done}/{} blocks, {} spans, {:.1} s",
                args.blocks,
                m.spans,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for w in workers {
        w.await.context("an encoder thread failed")?;
    }
    if done != args.blocks {
        bail!("only {done} of {} blocks were generated", args.blocks);
    }
    m.samples.sort_by_key(|t| (t.block, t.start_unix_nano));
    m.generate_seconds = started.elapsed().as_secs_f64();
    Ok(m)
}

/// Counts, services, routes and evenly spaced sample traces of one block's spans.
fn block_facts(spans: &[skein_format::SpanRecord], block: usize, samples: usize) -> BlockFacts {
    let mut roots = Vec::new();
    let mut services = BTreeSet::new();
    let mut routes = BTreeSet::new();
    for s in spans {
        if !services.contains(s.service_name()) {
            services.insert(s.service_name().to_owned());
        }
        for kv in s.span.attributes.iter().filter(|kv| kv.key == "http.route") {
            let route = kv
                .value
                .as_ref()
                .map(skein_format::model::value_string)
                .unwrap_or_default();
            if !routes.contains(&route) {
                routes.insert(route);
            }
        }
        if s.is_root()
            && let Ok(id) = s.trace_id()
        {
            roots.push((id, s.span.start_time_unix_nano));
        }
    }
    let step = (roots.len() / samples.max(1)).max(1);
    BlockFacts {
        spans: spans.len() as u64,
        traces: roots.len() as u64,
        services,
        routes,
        samples: roots
            .iter()
            .step_by(step)
            .take(samples)
            .map(|(id, start)| KnownTrace {
                trace_id: id.to_hex(),
                start_unix_nano: *start,
                block,
            })
            .collect(),
    }
}

fn print_facts(args: &BenchQueryArgs, m: &Manifest, store_name: &str) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1_048_576.0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("skein bench-query");
    println!("machine: {cores} cores ({cpu}), {mem_gib:.1} GiB RAM");
    println!("store: {store_name}");
    let on_disk = match args.s3_endpoint {
        None => format!(
            ", {:.1} MiB on disk (all objects)",
            dir_bytes(&args.dir.join("blocks")) as f64 / 1_048_576.0
        ),
        Some(_) => String::new(),
    };
    println!(
        "dataset: {} spans in {} traces, {} blocks, data.parquet {:.1} MiB ({:.1} bytes/span){on_disk}",
        m.spans,
        m.traces,
        m.blocks,
        m.data_bytes as f64 / 1_048_576.0,
        m.data_bytes as f64 / m.spans.max(1) as f64
    );
    let end = UNIX_EPOCH + Duration::from_nanos(m.end_unix_nano);
    println!(
        "  covering {} ending {}, {:.0} spans per hour; generated in {:.1} s (seed {})",
        humantime::format_duration(Duration::from_nanos(m.end_unix_nano - m.start_unix_nano)),
        humantime::format_rfc3339_seconds(end),
        m.spans as f64 * HOUR_NANOS as f64 / (m.end_unix_nano - m.start_unix_nano) as f64,
        m.generate_seconds,
        m.seed
    );
    if m.tag_index {
        println!(
            "  tag indexes: {:.1} MiB, {:.1}% of data.parquet ({:.1} bytes/span); searches and \
             listings use them",
            m.index_bytes as f64 / 1_048_576.0,
            100.0 * m.index_bytes as f64 / m.data_bytes.max(1) as f64,
            m.index_bytes as f64 / m.spans.max(1) as f64
        );
    } else {
        println!("  no tag indexes: searches and listings scan the blocks");
    }
    println!("  \"last hour\" below means the last hour of the dataset, not of the clock");
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// The floor: one raw GET of the newest block's whole `data.parquet`, and of its bloom.
async fn floor(ctx: &Bench, store: &Store, metas: &[BlockMeta]) -> anyhow::Result<()> {
    let Some(meta) = metas.last() else {
        bail!("the store holds no block");
    };
    for (name, what) in [(names::DATA, "data.parquet"), (names::BLOOM, "bloom")] {
        let path = block_object(&ctx.tenant, meta.block_id, name);
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..5 {
            let started = Instant::now();
            size = store
                .get_opts(&path, Default::default())
                .await?
                .bytes()
                .await?
                .len();
            times.push(started.elapsed());
        }
        times.sort_unstable();
        println!(
            "floor: raw GET of one block's whole {what} ({size} bytes): p50 {:.2} ms, min {:.2} ms of 5",
            ms(percentile(&times, 0.5)),
            ms(times[0])
        );
    }
    Ok(())
}

/// What the benchmark measures.
#[derive(Debug, Clone, Copy)]
enum Kind {
    IdHit,
    IdHitHint,
    IdMiss,
    IdMissHint,
    SearchService,
    SearchServiceDuration,
    SearchServiceTag,
    SearchTag,
    TagValues,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::IdHit,
        Kind::IdHitHint,
        Kind::IdMiss,
        Kind::IdMissHint,
        Kind::SearchService,
        Kind::SearchServiceDuration,
        Kind::SearchServiceTag,
        Kind::SearchTag,
        Kind::TagValues,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::IdHit => "trace by ID, hit, no hint",
            Kind::IdHitHint => "trace by ID, hit, hint ±1 h",
            Kind::IdMiss => "trace by ID, miss, no hint",
            Kind::IdMissHint => "trace by ID, miss, hint ±1 h",
            Kind::SearchService => "search service, last 1 h",
            Kind::SearchServiceDuration => "search service + dur≥100ms, 1 h",
            Kind::SearchServiceTag => "search service + http.route, 1 h",
            Kind::SearchTag => "search http.route, last 1 h",
            Kind::TagValues => "tag values http.route, last 1 h",
        }
    }
}

/// One measured query.
struct Query {
    elapsed: Duration,
    counts: RequestCounts,
    /// Spans (trace by ID), traces (search) or values (tag listing) found.
    found: u64,
    /// Traces read whole by a search.
    inspected: u64,
    /// A hit found its trace, a miss found nothing, a search or listing found something.
    expected: bool,
}

/// The dataset and the request counter every query needs.
struct Bench {
    tenant: TenantId,
    /// Known traces for hit queries: the samples but the first of each block.
    hits: Vec<KnownTrace>,
    manifest: Manifest,
    counting: Arc<CountingStore>,
}

impl Bench {
    /// Runs `f`, returning its output, how long it took and the requests it made. Queries run
    /// one at a time, so the difference of two snapshots is exactly this query's requests.
    async fn measure<T>(&self, f: impl Future<Output = T>) -> (T, (Duration, RequestCounts)) {
        let before = self.counting.snapshot();
        let started = Instant::now();
        let out = f.await;
        let elapsed = started.elapsed();
        let after = self.counting.snapshot();
        let counts = RequestCounts {
            gets: after.gets - before.gets,
            get_ranges_calls: after.get_ranges_calls - before.get_ranges_calls,
            get_bytes: after.get_bytes - before.get_bytes,
            heads: after.heads - before.heads,
            lists: after.lists - before.lists,
            ..RequestCounts::default()
        };
        (out, (elapsed, counts))
    }

    fn last_hour(&self) -> (u64, u64) {
        let end = self.manifest.end_unix_nano;
        (end - HOUR_NANOS, end)
    }

    async fn query(
        &self,
        kind: Kind,
        lookup: &Arc<TraceLookup>,
        rng: &mut Rng,
    ) -> anyhow::Result<Query> {
        let m = &self.manifest;
        let pick = |rng: &mut Rng, set: &BTreeSet<String>| {
            set.iter()
                .nth(rng.below(set.len() as u64) as usize)
                .cloned()
                .unwrap_or_default()
        };
        let hint = |t: u64| Some((t.saturating_sub(HOUR_NANOS), t + HOUR_NANOS));
        let search = |service: Option<String>, tag: Option<String>, min: Option<u64>| {
            let (start, end) = self.last_hour();
            TraceQuery {
                start_unix_nano: Some(start),
                end_unix_nano: Some(end),
                service_name: service,
                tags: tag
                    .map(|r| ("http.route".to_owned(), r))
                    .into_iter()
                    .collect(),
                min_duration_nanos: min,
                semantics: Semantics::Trace,
                limit: 20,
                ..Default::default()
            }
        };
        match kind {
            Kind::IdHit | Kind::IdHitHint => {
                let t = &self.hits[rng.below(self.hits.len() as u64) as usize];
                let id = TraceId::from_hex(&t.trace_id)?;
                let window = match kind {
                    Kind::IdHitHint => hint(t.start_unix_nano),
                    _ => None,
                };
                let (spans, (elapsed, counts)) =
                    self.measure(lookup.find(&self.tenant, &id, window)).await;
                let n = spans?.len() as u64;
                Ok(Query::new(elapsed, counts, n, 0, n > 0))
            }
            Kind::IdMiss | Kind::IdMissHint => {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
                id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
                let at = m.start_unix_nano + rng.below(m.end_unix_nano - m.start_unix_nano);
                let window = match kind {
                    Kind::IdMissHint => hint(at),
                    _ => None,
                };
                let (spans, (elapsed, counts)) = self
                    .measure(lookup.find(&self.tenant, &TraceId(id), window))
                    .await;
                let n = spans?.len() as u64;
                Ok(Query::new(elapsed, counts, n, 0, n == 0))
            }
            Kind::SearchService
            | Kind::SearchServiceDuration
            | Kind::SearchServiceTag
            | Kind::SearchTag => {
                let service = pick(rng, &m.services);
                let route = pick(rng, &m.routes);
                let q = match kind {
                    Kind::SearchService => search(Some(service), None, None),
                    Kind::SearchServiceDuration => search(Some(service), None, Some(100_000_000)),
                    Kind::SearchServiceTag => search(Some(service), Some(route), None),
                    _ => search(None, Some(route), None),
                };
                let (result, (elapsed, counts)) =
                    self.measure(lookup.search(&self.tenant, &q)).await;
                let r = result?;
                let n = r.traces.len() as u64;
                Ok(Query::new(elapsed, counts, n, r.read_traces, n > 0))
            }
            Kind::TagValues => {
                let window = self.last_hour();
                let (values, (elapsed, counts)) = self
                    .measure(lookup.tag_values(&self.tenant, None, "http.route", window))
                    .await;
                let n = values?.len() as u64;
                Ok(Query::new(elapsed, counts, n, 0, n > 0))
            }
        }
    }
}

impl Query {
    fn new(
        elapsed: Duration,
        counts: RequestCounts,
        found: u64,
        inspected: u64,
        expected: bool,
    ) -> Self {
        Query {
            elapsed,
            counts,
            found,
            inspected,
            expected,
        }
    }
}

/// The `q`-quantile (0 < q ≤ 1) of sorted `times` by the nearest-rank method: the smallest
/// value with at least `q` of the values at or below it. Zero for no values.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(100));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(198));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(200));
        let three = [1, 2, 3].map(Duration::from_millis);
        assert_eq!(percentile(&three, 0.5), Duration::from_millis(2));
        assert_eq!(percentile(&three, 0.99), Duration::from_millis(3));
        assert_eq!(percentile(&three[..1], 0.01), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
