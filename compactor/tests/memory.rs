//! The memory bound of compaction, measured: a trace of one million spans, held by ten input
//! blocks as an ingester would cut a long-lived trace, compacts with a peak resident set that
//! stays within a documented bound (see `docs/compaction.md`).
//!
//! Resident memory is read from `/proc/self/status`; the peak is reset (through
//! `/proc/self/clear_refs`) after the inputs are written, so it covers the compaction alone.
//! This binary holds this one test, so no other test's memory is counted.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use skein_compactor::{Compactor, CompactorConfig, overrides};
use skein_format::model::{ResourceInfo, ScopeInfo};
use skein_format::otlp::common::v1::any_value::Value;
use skein_format::otlp::common::v1::{AnyValue, KeyValue};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::Span;
use skein_format::{BlockWriter, SpanRecord, TenantId};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::Rng;
use tokio_util::sync::CancellationToken;

/// Spans of the huge trace; `SKEIN_TEST_HUGE_TRACE_SPANS` changes it.
fn huge_trace_spans() -> usize {
    std::env::var("SKEIN_TEST_HUGE_TRACE_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// `n` spans of trace `trace_id`, children of `root`, starting at `start`.
fn part(rng: &mut Rng, trace_id: [u8; 16], root: [u8; 8], start: u64, n: usize) -> Vec<SpanRecord> {
    let resource = Arc::new(ResourceInfo {
        resource: Resource {
            attributes: vec![
                s("service.name", "batch-worker"),
                s("host.name", "worker-7"),
            ],
            ..Default::default()
        },
        schema_url: String::new(),
    });
    let scope = Arc::new(ScopeInfo::default());
    (0..n)
        .map(|i| {
            let t = start + i as u64 * 1_000;
            SpanRecord {
                resource: Arc::clone(&resource),
                scope: Arc::clone(&scope),
                span: Span {
                    trace_id: trace_id.to_vec(),
                    span_id: rng.next_u64().to_le_bytes().to_vec(),
                    parent_span_id: root.to_vec(),
                    name: format!("process item {}", i % 50),
                    kind: 1,
                    start_time_unix_nano: t,
                    end_time_unix_nano: t + 900,
                    attributes: vec![
                        s("item.id", format!("{:08x}", rng.next_u64() as u32)),
                        s("queue", "ingest"),
                    ],
                    ..Default::default()
                },
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_span_trace_compacts_within_the_memory_bound() {
    let Some(_) = status_kib("VmHWM:") else {
        eprintln!("no /proc/self/status here: nothing to measure");
        return;
    };
    let total = huge_trace_spans();
    let inputs = 10;
    let dir = tempfile::tempdir().unwrap();
    let store = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()
    .unwrap();
    let tenant = TenantId::new("huge").unwrap();
    let start = 1_750_000_000_000_000_000u64;
    let mut rng = Rng::new(42);
    let trace_id = [7u8; 16];
    let root = [1u8; 8];
    let writer = BlockWriter::new(store.clone());
    let written = Instant::now();
    for i in 0..inputs {
        let n = total / inputs;
        let spans = part(&mut rng, trace_id, root, start + (i * n) as u64 * 1_000, n);
        writer.write(&tenant, spans).await.unwrap();
    }
    let write_secs = written.elapsed().as_secs_f64();

    // From here on, only the compaction counts.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status_kib("VmRSS:").unwrap_or(0);
    let cfg = CompactorConfig {
        max_block_spans: 200_000,
        retention: Duration::from_secs(3650 * 86_400),
        ..Default::default()
    };
    let o = overrides(&cfg, store.clone());
    let now = SystemTime::UNIX_EPOCH + Duration::from_nanos(start + 10 * 3_600_000_000_000);
    let c = Compactor::new(cfg, store.clone(), o).with_clock(Arc::new(move || now));
    let started = Instant::now();
    let r = c.run_cycle(&CancellationToken::new()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:").unwrap_or(0);

    assert_eq!(r.jobs, 1, "{r:?}");
    let blocks = BlockList::new(store.clone(), Duration::ZERO)
        .refresh(&tenant)
        .await
        .unwrap();
    let spans: u64 = blocks.iter().map(|m| m.span_count).sum();
    assert_eq!(spans as usize, total / inputs * inputs);
    assert!(blocks.iter().all(|m| m.span_count <= 200_000));
    assert!(blocks.len() >= total / 200_000);

    let peak_mib = peak.saturating_sub(base) / 1024;
    println!(
        "{total}-span trace in {inputs} blocks (written in {write_secs:.1} s): compacted into {} blocks in {secs:.1} s; \
         resident set before {} MiB, peak {} MiB (+{peak_mib} MiB){}",
        blocks.len(),
        base / 1024,
        peak / 1024,
        if reset {
            ""
        } else {
            "; the peak could not be reset, so it includes writing the inputs"
        }
    );
    // The documented bound (docs/compaction.md): one decoded row group per input (here the
    // whole trace, as it is the only trace of each input) plus one output block.
    let bound_mib = 2 * 1024 * total as u64 / 1_000_000;
    assert!(
        peak_mib <= bound_mib,
        "compaction took {peak_mib} MiB over its start, more than the documented {bound_mib} MiB"
    );
}
