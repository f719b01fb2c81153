//! Block write and trace lookup.
//!
//! `cargo bench -p skein-storage --bench block` prints, besides Criterion's timings, the
//! bytes per span on disk for the synthetic workload (100,000 spans of realistic
//! multi-service traces, about 20 attributes each; see `skein_testkit::synth`).

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use skein_format::block::{WriteOptions, encode_block};
use skein_format::model::spans_to_otlp;
use skein_format::otlp::collector::trace::v1::ExportTraceServiceRequest;
use skein_format::{BlockReader, BlockWriter, TenantId, TraceId};
use skein_storage::StorageConfig;
use skein_testkit::synth::TraceGenerator;

const SPANS: usize = 100_000;
const T0: u64 = 1_750_000_000_000_000_000;

fn write(c: &mut Criterion) {
    let spans = TraceGenerator::new(42, T0, 5_000_000).spans(SPANS);
    let tenant = TenantId::new("bench").unwrap();
    let otlp_bytes = ExportTraceServiceRequest {
        resource_spans: spans_to_otlp(spans.clone()),
    }
    .encoded_len();
    let block = encode_block(&tenant, spans.clone(), &WriteOptions::default()).unwrap();
    let n = block.meta.span_count as f64;
    eprintln!(
        "dataset: {} spans in {} traces; OTLP protobuf {:.1} bytes/span; data.parquet {} bytes = {:.2} bytes/span; bloom {} bytes; {} row groups",
        block.meta.span_count,
        block.meta.trace_count,
        otlp_bytes as f64 / n,
        block.data.len(),
        block.data.len() as f64 / n,
        block.bloom.len(),
        block.meta.row_groups.len(),
    );

    let mut g = c.benchmark_group("block_write");
    g.sample_size(10);
    g.throughput(Throughput::Elements(spans.len() as u64));
    g.bench_function(BenchmarkId::new("encode", SPANS), |b| {
        b.iter_batched(
            || spans.clone(),
            |s| black_box(encode_block(&tenant, s, &WriteOptions::default()).unwrap()),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()
    .unwrap();
    let spans = TraceGenerator::new(43, T0, 5_000_000).spans(SPANS);
    let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id().unwrap()).collect();
    ids.sort();
    ids.dedup();
    let tenant = TenantId::new("bench").unwrap();
    let meta = rt
        .block_on(BlockWriter::new(store.clone()).write(&tenant, spans))
        .unwrap();

    let mut g = c.benchmark_group("trace_lookup_local_disk");
    let reader = BlockReader::open(store.clone(), meta.clone());
    let mut i = 0;
    g.bench_function("hit_warm_footer", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            black_box(rt.block_on(reader.find_trace(&ids[i])).unwrap())
        })
    });
    g.bench_function("hit_cold_footer", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            let reader = BlockReader::open(store.clone(), meta.clone());
            black_box(rt.block_on(reader.find_trace(&ids[i])).unwrap())
        })
    });
    let mut miss = TraceId([0x55; 16]);
    g.bench_function("miss", |b| {
        b.iter(|| {
            miss.0[0] = miss.0[0].wrapping_add(1);
            black_box(rt.block_on(reader.find_trace(&miss)).unwrap())
        })
    });
    g.finish();

    // One summary line for docs/benchmarks.md: plain wall-clock figures over many lookups.
    let start = Instant::now();
    let rounds = 500;
    for k in 0..rounds {
        let reader = BlockReader::open(store.clone(), meta.clone());
        black_box(
            rt.block_on(reader.find_trace(&ids[(k * 7919) % ids.len()]))
                .unwrap(),
        );
    }
    eprintln!(
        "cold-footer lookup mean over {rounds}: {:.2} ms",
        start.elapsed().as_secs_f64() * 1000.0 / rounds as f64
    );
}

criterion_group!(benches, write, lookup);
criterion_main!(benches);
