//! Compaction benchmark: spans compacted per CPU-second, bytes per span before and after,
//! and the tag index's size as a fraction of the Parquet data.
//!
//! ```sh
//! cargo run --release -p skein-compactor --example bench_compact -- [SPANS] [BLOCKS] [full|lean]
//! ```
//!
//! It writes `BLOCKS` (default 16, one compaction job) ingester-like blocks holding `SPANS`
//! (default 2 000 000) synthetic spans (the generator of `skein_testkit::synth`: about 715
//! bytes of OTLP protobuf per span for the full workload, about 330 for the lean one) into a
//! local bucket under a temporary directory, each block a run of consecutive traces, then
//! runs compaction cycles until nothing is left to merge, and prints the figures recorded in
//! `docs/benchmarks.md`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use skein_compactor::{Compactor, CompactorConfig, overrides};
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::{BlockWriter, TenantId};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::TraceGenerator;
use tokio_util::sync::CancellationToken;

/// The allocator of the `skein` binary, so that the figures are those of a real compactor.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU time of this process (user + system), from `/proc/self/stat`, in seconds.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // Linux reports them in USER_HZ, 100 per second on every common configuration.
    ticks as f64 / 100.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let spans: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let blocks: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let lean = match args.next().as_deref() {
        None | Some("full") => false,
        Some("lean") => true,
        Some(other) => panic!("workload {other:?}: expected \"full\" or \"lean\""),
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()
    .expect("bucket");
    let tenant = TenantId::new("bench").expect("tenant");
    let start = 1_750_000_000_000_000_000u64;
    // All in one hour: one compaction window.
    let mut g = TraceGenerator::new(1, start, 3_600_000_000_000 / (spans as u64 / 20).max(1));
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
    let per_block = all.len().div_ceil(blocks);
    let writer = BlockWriter::new(store.clone());
    let mut data_before = 0u64;
    for chunk in all.chunks(per_block) {
        data_before += writer
            .write(&tenant, chunk.to_vec())
            .await
            .expect("write")
            .data_size;
    }
    let n = all.len();
    drop(all);

    let cfg = CompactorConfig {
        retention: Duration::from_secs(3650 * 86_400),
        ..Default::default()
    };
    let o = overrides(&cfg, store.clone());
    let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(start + 24 * 3_600_000_000_000);
    let c = Compactor::new(cfg, store.clone(), o).with_clock(Arc::new(move || now));
    let (cpu0, wall0) = (cpu_secs(), Instant::now());
    let mut jobs = 0;
    let mut inputs = 0;
    loop {
        let r = c.run_cycle(&CancellationToken::new()).await.expect("cycle");
        if r.jobs == 0 {
            break;
        }
        jobs += r.jobs;
        inputs += r.blocks_in;
    }
    let (cpu, wall) = (cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    let after = BlockList::new(store.clone(), Duration::ZERO)
        .refresh(&tenant)
        .await
        .expect("blocks");
    let data_after: u64 = after.iter().map(|m| m.data_size).sum();
    let index: u64 = after.iter().filter_map(|m| m.files.index_size).sum();
    let spans_after: u64 = after.iter().map(|m| m.span_count).sum();
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
    if let Some(big) = after.iter().max_by_key(|m| m.span_count) {
        let reader = skein_format::BlockReader::open(store.clone(), big.clone());
        let (c0, t0) = (cpu_secs(), Instant::now());
        let spans = reader.read_all().await.expect("read");
        let decode = (cpu_secs() - c0, t0.elapsed().as_secs_f64());
        let k = spans.len() as f64;
        let encode = |tag_index: bool, zstd_level: i32| {
            let opts = skein_format::block::WriteOptions {
                tag_index,
                encode: skein_format::block::EncodeOptions {
                    zstd_level,
                    ..Default::default()
                },
                ..Default::default()
            };
            let copy = spans.clone();
            let (c0, t0) = (cpu_secs(), Instant::now());
            let b = skein_format::block::encode_block(&tenant, copy, &opts).expect("encode");
            let bytes = b.data.len() as f64 / k;
            (cpu_secs() - c0, t0.elapsed().as_secs_f64(), bytes)
        };
        let plain = encode(false, 3);
        let indexed = encode(true, 3);
        let level9 = encode(false, 9);
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
        for (what, (cpu, wall, bytes)) in [
            ("encode, zstd 3, no index", plain),
            ("encode, zstd 3, tag index", indexed),
            ("encode, zstd 9, no index", level9),
        ] {
            println!(
                "  {what:<28} {cpu:.2} s ({wall:.2} s), {:.0} spans per CPU-second, {bytes:.1} bytes/span",
                k / cpu.max(0.01)
            );
        }
    }
}
