//! `skein-bench block`: block write and trace lookup, on one block of one format version.
//!
//! Dataset: `--spans` (default 100,000) spans of `skein_testkit::synth::TraceGenerator` (seed
//! `--seed`, default 42; realistic multi-service traces, about 20 attributes per span), one
//! trace starting every 5 ms. The lookup block is generated the same way with seed
//! `--seed` + 1 and written to a local bucket in a temporary directory.
//!
//! Prints: the dataset (spans, traces, OTLP protobuf bytes per span); a table of the encoded
//! block (`data.parquet` bytes and bytes per span, bloom filter, row groups) and of encode
//! timings (`encode_block` on one core, `--rounds` times: spans per second); then a table of
//! trace-by-ID lookup timings on local disk, `--lookups` each: a hit with the reader's footer
//! cached, a hit on a new reader (footer read too), and a miss.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use prost::Message;
use skein_format::block::{WriteOptions, encode_block};
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::{BlockReader, BlockWriter, TenantId, TraceId};
use skein_storage::StorageConfig;
use skein_testkit::synth::TraceGenerator;

use crate::measure::{mean, ms, percentile};

/// The first trace's start.
const T0: u64 = 1_750_000_000_000_000_000;
/// Time between trace starts.
const INTERVAL_NANOS: u64 = 5_000_000;
/// Step between looked-up trace IDs (a prime, so that lookups spread over the block).
const STRIDE: usize = 7919;

/// `skein-bench block` options.
#[derive(Debug, Clone, Args)]
pub struct BlockArgs {
    /// Spans in the block.
    #[arg(long, default_value_t = 100_000)]
    pub spans: usize,
    /// Times the block is encoded for the encode timings.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// Lookups measured of each kind.
    #[arg(long, default_value_t = 500)]
    pub lookups: usize,
    /// Seed of the encoded block; the lookup block uses the next one.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Runs the benchmark and prints its report.
pub fn run(args: BlockArgs) -> anyhow::Result<()> {
    if args.spans == 0 || args.rounds == 0 || args.lookups == 0 {
        bail!("--spans, --rounds and --lookups must be at least 1");
    }
    let tenant = TenantId::new("bench")?;
    println!("skein-bench block");
    write(&args, &tenant)?;
    println!();
    lookup(&args, &tenant)
}

/// Bytes per span and encode throughput.
fn write(args: &BlockArgs, tenant: &TenantId) -> anyhow::Result<()> {
    let spans = TraceGenerator::new(args.seed, T0, INTERVAL_NANOS).spans(args.spans);
    let otlp_bytes = ExportTraceServiceRequest {
        resource_spans: spans_to_otlp(spans.clone()),
    }
    .encoded_len();
    let block = encode_block(tenant, spans.clone(), &WriteOptions::default())?;
    let n = block.meta.span_count as f64;
    println!(
        "dataset: {} spans in {} traces (seed {}); OTLP protobuf {:.1} bytes/span",
        block.meta.span_count,
        block.meta.trace_count,
        args.seed,
        otlp_bytes as f64 / n
    );
    println!();

    let mut times = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds {
        let input = spans.clone();
        let started = Instant::now();
        black_box(encode_block(tenant, input, &WriteOptions::default())?);
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let p50 = percentile(&times, 0.5);
    let rate = |d: Duration| n / d.as_secs_f64().max(1e-9);
    println!("{:<52} result", "measure");
    println!(
        "{:<52} {} bytes = {:.2} bytes/span ({} row groups)",
        "data.parquet",
        block.data.len(),
        block.data.len() as f64 / n,
        block.meta.row_groups.len()
    );
    println!(
        "{:<52} {} bytes ({:.1} bytes per trace)",
        "bloom filter",
        block.bloom.len(),
        block.bloom.len() as f64 / block.meta.trace_count.max(1) as f64
    );
    println!(
        "{:<52} {:.0} spans/s ({:.1} ms per block, p50 of {})",
        "encode, one core (sort, Arrow, Parquet, zstd, bloom)",
        rate(p50),
        ms(p50),
        args.rounds
    );
    println!(
        "{:<52} {:.0} spans/s ({:.1} ms min, {:.1} ms mean)",
        "  fastest round",
        rate(times[0]),
        ms(times[0]),
        ms(mean(&times))
    );
    Ok(())
}

/// Trace-by-ID lookups on local disk.
fn lookup(args: &BlockArgs, tenant: &TenantId) -> anyhow::Result<()> {
    let rt = crate::measure::runtime(Some(2))?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()?;
    let seed = args.seed.wrapping_add(1);
    let spans = TraceGenerator::new(seed, T0, INTERVAL_NANOS).spans(args.spans);
    let mut ids = spans
        .iter()
        .map(|s| s.trace_id())
        .collect::<Result<Vec<TraceId>, _>>()?;
    ids.sort();
    ids.dedup();
    let meta = rt.block_on(BlockWriter::new(store.clone()).write(tenant, spans))?;
    println!(
        "trace by ID, local disk: block of {} spans in {} traces (seed {seed}), {} bytes; {} \
         lookups each",
        meta.span_count, meta.trace_count, meta.data_size, args.lookups
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "kind", "p50 ms", "p99 ms", "mean ms", "max ms", "spans/q"
    );

    let warm = BlockReader::open(store.clone(), meta.clone());
    // The warm reader reads its footer once, here.
    rt.block_on(warm.find_trace(&ids[0]))?;
    let mut miss = TraceId([0x55; 16]);
    for kind in Lookup::ALL {
        let mut times = Vec::with_capacity(args.lookups);
        let mut found = 0usize;
        for k in 0..args.lookups {
            let id = ids[(k * STRIDE) % ids.len()];
            let started = Instant::now();
            let spans = match kind {
                Lookup::HitWarm => rt.block_on(warm.find_trace(&id))?,
                Lookup::HitCold => {
                    let reader = BlockReader::open(store.clone(), meta.clone());
                    rt.block_on(reader.find_trace(&id))?
                }
                Lookup::Miss => {
                    miss.0[0] = miss.0[0].wrapping_add(1);
                    rt.block_on(warm.find_trace(&miss))?
                }
            };
            times.push(started.elapsed());
            found += spans.len();
        }
        let mean_time = mean(&times);
        times.sort_unstable();
        println!(
            "{:<40} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>8.1}",
            kind.label(),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            ms(mean_time),
            ms(percentile(&times, 1.0)),
            found as f64 / args.lookups as f64
        );
        match kind {
            Lookup::Miss if found > 0 => {
                bail!("a lookup of a trace not in the block found spans")
            }
            Lookup::HitWarm | Lookup::HitCold if found == 0 => {
                bail!("lookups of traces in the block found nothing")
            }
            _ => {}
        }
    }
    Ok(())
}

/// What the lookup table measures.
#[derive(Debug, Clone, Copy)]
enum Lookup {
    HitWarm,
    HitCold,
    Miss,
}

impl Lookup {
    const ALL: [Lookup; 3] = [Lookup::HitWarm, Lookup::HitCold, Lookup::Miss];

    fn label(self) -> &'static str {
        match self {
            Lookup::HitWarm => "hit, footer cached",
            Lookup::HitCold => "hit, new reader (footer read too)",
            Lookup::Miss => "miss (trace not in the block)",
        }
    }
}
