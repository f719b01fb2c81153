//! `skein-bench compact`: the compaction benchmark.
//!
//! Dataset: `--spans` (default 2,000,000) synthetic spans of `skein_testkit::synth`
//! (`--workload full`: about 715 bytes of OTLP protobuf per span; `lean`: about 330), all
//! within one hour, written as `--blocks` (default 16, one compaction job) ingester-like
//! blocks into a local bucket under a temporary directory, each block a run of consecutive
//! traces. It then runs compaction cycles until nothing is left to merge.
//!
//! Prints: OTLP bytes per span, blocks before and after, Parquet bytes per span before and
//! after, the tag index's size and share of the Parquet bytes, compaction wall and CPU time
//! and spans per CPU-second; then, on the largest output block, the CPU time of decoding it
//! and of encoding it again three ways (zstd 3 and 9 without a tag index, zstd 3 with one).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use arrow::record_batch::RecordBatch;
use clap::{Args, ValueEnum};
use futures::TryStreamExt;
use prost::Message;
use skein_compactor::{Compactor, CompactorConfig, overrides};
use skein_format::block::{EncodeOptions, RowsWriter, WriteOptions, encode_block, trace_runs};
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::{BlockReader, BlockWriter, TenantId};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::TraceGenerator;
use tokio_util::sync::CancellationToken;

use crate::measure::cpu_secs;

/// The first span's start: all spans fall within the hour after it.
const START: u64 = 1_750_000_000_000_000_000;
const HOUR_NANOS: u64 = 3_600_000_000_000;

/// Which attributes the synthetic spans carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// 15 to 21 span attributes, many of them high-entropy (about 715 bytes of OTLP protobuf
    /// per span).
    Full,
    /// What OpenTelemetry's HTTP and database instrumentations record by default, 6 to 8
    /// attributes (`TraceGenerator::lean`, about 330 bytes per span).
    Lean,
}

/// `skein-bench compact` options.
#[derive(Debug, Clone, Args)]
pub struct CompactArgs {
    /// Spans in the dataset.
    #[arg(long, default_value_t = 2_000_000)]
    pub spans: usize,
    /// Ingester-like blocks the spans are written as before compaction.
    #[arg(long, default_value_t = 16)]
    pub blocks: usize,
    /// The attributes the spans carry.
    #[arg(long, value_enum, default_value = "full")]
    pub workload: Workload,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Runs the benchmark and prints its report.
pub fn run(args: CompactArgs) -> anyhow::Result<()> {
    if args.blocks == 0 || args.spans < args.blocks {
        bail!("--spans must be at least --blocks, and --blocks at least 1");
    }
    crate::measure::runtime(None)?.block_on(bench(args))
}

async fn bench(args: CompactArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()?;
    let tenant = TenantId::new("bench")?;
    let spans = args.spans;
    // All in one hour: one compaction window.
    let mut g = TraceGenerator::new(args.seed, START, HOUR_NANOS / (spans as u64 / 20).max(1));
    let lean = args.workload == Workload::Lean;
    if lean {
        g = g.lean();
    }
    let all = g.spans(spans);
    let otlp_bytes: usize = all
        .chunks(1000)
        .map(|c| {
            ExportTraceServiceRequest {
                resource_spans: spans_to_otlp(c.to_vec()),
            }
            .encoded_len()
        })
        .sum();
    // Consecutive traces per block; the last trace of a block is split with the next one in
    // a tenth of the blocks, as ingesters split long traces.
    let per_block = all.len().div_ceil(args.blocks);
    let writer = BlockWriter::new(store.clone());
    let mut data_before = 0u64;
    let mut blocks = 0;
    for chunk in all.chunks(per_block) {
        data_before += writer.write(&tenant, chunk.to_vec()).await?.data_size;
        blocks += 1;
    }
    let n = all.len();
    drop(all);

    let cfg = CompactorConfig {
        retention: Duration::from_secs(3650 * 86_400),
        ..Default::default()
    };
    let o = overrides(&cfg, store.clone());
    let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(START + 24 * HOUR_NANOS);
    let c = Compactor::new(cfg, store.clone(), o).with_clock(Arc::new(move || now));
    let (cpu0, wall0) = (cpu_secs(), Instant::now());
    let mut jobs = 0;
    let mut inputs = 0;
    loop {
        let r = c
            .run_cycle(&CancellationToken::new())
            .await
            .context("compaction cycle")?;
        if r.jobs == 0 {
            break;
        }
        jobs += r.jobs;
        inputs += r.blocks_in;
    }
    let (cpu, wall) = (cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    let after = BlockList::new(store.clone(), Duration::ZERO)
        .refresh(&tenant)
        .await?;
    let data_after: u64 = after.iter().map(|m| m.data_size).sum();
    let index: u64 = after.iter().filter_map(|m| m.files.index_size).sum();
    let spans_after: u64 = after.iter().map(|m| m.span_count).sum();
    println!("skein-bench compact");
    println!(
        "workload                       {}",
        if lean { "lean" } else { "full" }
    );
    println!("spans                          {n}");
    println!(
        "OTLP protobuf bytes per span   {:.1}",
        otlp_bytes as f64 / n as f64
    );
    println!(
        "blocks before -> after         {blocks} -> {} ({jobs} jobs, {inputs} inputs)",
        after.len()
    );
    println!("spans after                    {spans_after}");
    println!(
        "Parquet bytes/span before      {:.1}",
        data_before as f64 / n as f64
    );
    println!(
        "Parquet bytes/span after       {:.1}",
        data_after as f64 / n as f64
    );
    println!(
        "tag index bytes/span           {:.1} ({:.0}% of the Parquet bytes)",
        index as f64 / n as f64,
        100.0 * index as f64 / data_after.max(1) as f64
    );
    println!("compaction wall time           {wall:.1} s");
    println!("compaction CPU time            {cpu:.1} s");
    println!(
        "spans per CPU-second           {:.0}",
        n as f64 / cpu.max(0.01)
    );
    println!(
        "spans per wall-second          {:.0}",
        n as f64 / wall.max(0.01)
    );

    // Where the time goes, on the largest output block: decoding it, and encoding it again
    // without and with the tag index.
    let Some(big) = after.iter().max_by_key(|m| m.span_count) else {
        return Ok(());
    };
    let reader = BlockReader::open(store.clone(), big.clone());
    let (c0, t0) = (cpu_secs(), Instant::now());
    let spans = reader.read_all().await?;
    let decode = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
    let k = spans.len() as f64;
    let encode = |tag_index: bool, zstd_level: i32| -> anyhow::Result<(f64, f64, f64)> {
        let opts = WriteOptions {
            tag_index,
            encode: EncodeOptions {
                zstd_level,
                ..Default::default()
            },
            ..Default::default()
        };
        let copy = spans.clone();
        let (c0, t0) = (cpu_secs(), Instant::now());
        let b = encode_block(&tenant, copy, &opts)?;
        let bytes = b.data.len() as f64 / k;
        Ok((cpu_secs() - c0, t0.elapsed().as_secs_f64(), bytes))
    };
    // The Arrow-level floor: the row groups read as Arrow data and written again, rows
    // copied, no spans.
    let (c0, t0) = (cpu_secs(), Instant::now());
    let batches: Vec<RecordBatch> = reader.row_group_batches().try_collect().await?;
    let arrow_decode = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
    let (c0, t0) = (cpu_secs(), Instant::now());
    let mut rows = RowsWriter::new(
        &EncodeOptions {
            zstd_level: 9,
            ..Default::default()
        },
        false,
    )?;
    for b in &batches {
        for (_, r) in trace_runs(b)? {
            rows.push_rows(&[(b, r)])?;
        }
    }
    let block = rows.finish_block(&tenant, &WriteOptions::default())?;
    let arrow_encode = (
        cpu_secs() - c0,
        t0.elapsed().as_secs_f64(),
        block.data.len() as f64 / k,
    );
    drop(batches);
    let plain = encode(false, 3)?;
    let indexed = encode(true, 3)?;
    let level9 = encode(false, 9)?;
    println!(
        "one output block of {} spans, CPU-seconds (wall):",
        spans.len()
    );
    println!(
        "  {:<28} {:.2} s ({:.2} s), {:.0} spans per CPU-second",
        "decode",
        decode.0,
        decode.1,
        k / decode.0.max(0.01)
    );
    println!(
        "  {:<28} {:.2} s ({:.2} s), {:.0} spans per CPU-second",
        "read as Arrow rows",
        arrow_decode.0,
        arrow_decode.1,
        k / arrow_decode.0.max(0.01)
    );
    for (what, (cpu, wall, bytes)) in [
        ("copy Arrow rows, zstd 9", arrow_encode),
        ("encode, zstd 3, no index", plain),
        ("encode, zstd 3, tag index", indexed),
        ("encode, zstd 9, no index", level9),
    ] {
        println!(
            "  {what:<28} {cpu:.2} s ({wall:.2} s), {:.0} spans per CPU-second, {bytes:.1} bytes/span",
            k / cpu.max(0.01)
        );
    }
    Ok(())
}
