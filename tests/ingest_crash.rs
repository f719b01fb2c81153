//! Crash safety of the write path, through the real binary: an acknowledged span survives a
//! `kill -9` at any instant, and is stored exactly once (after removing exact duplicates,
//! which the read path and compaction drop) once the ingester has replayed its WAL and
//! flushed.
//!
//! Sender threads keep OTLP/HTTP protobuf requests in flight while blocks are cut and flushed
//! twice a second or so; the process is killed, restarted (which replays the WAL), and the
//! load resumes, for several rounds. Half of the kills land at a random moment, the other half
//! in the middle of a flush: as soon as a new block directory appears without its meta. A
//! final clean stop (SIGTERM) flushes everything; then every block of the tenant is read
//! straight from the block directory and checked against what the server acknowledged. The
//! seed is printed; `SKEIN_TEST_SEED` repeats a run's random choices and span content (not
//! the thread scheduling).

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::blocks::{self, Load, Outcome, Rng, SpanFactory, read_tenant, verify};
use common::{Options, Skein, tail};
use skein_storage::StorageConfig;

const TENANT: &str = "crash-test";
const ROUNDS: u32 = 8;
const SENDERS: u16 = 3;

/// Waits (until `deadline`) for a block directory of the tenant that was not there before and
/// has no meta yet: an upload in progress. Returns its name.
fn upload_in_progress(
    tenant_dir: &Path,
    seen: &mut HashSet<String>,
    deadline: Instant,
) -> Option<String> {
    while Instant::now() < deadline {
        for entry in std::fs::read_dir(tenant_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if seen.contains(&name) {
                continue;
            }
            if !entry.path().join("meta.json").exists() && entry.path().is_dir() {
                return Some(name);
            }
            seen.insert(name);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// Blocks flushed according to a log, and the time those flushes took.
fn flushes(log: &str) -> (usize, u64) {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("block flushed"))
        .collect();
    let ms = lines
        .iter()
        .filter_map(|l| {
            l.split("elapsed_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    (lines.len(), ms)
}

#[test]
fn acknowledged_spans_survive_kill_9_at_random_moments_exactly_once() {
    let started = Instant::now();
    let seed = blocks::seed("ingest_crash");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let opts = Options {
        // Traces go idle quickly and head blocks are cut twice a second, so flushes (and WAL
        // segment deletions, with small segments) happen all the time and kills land in them.
        ingester: "trace_idle_period = \"200ms\"\nmax_block_duration = \"500ms\"\n\
                   cut_interval = \"100ms\"\nwal_segment_bytes = 262144\n"
            .into(),
        // Only the ingester: this test judges the blocks it writes, not a compactor's.
        target: Some("ingester".into()),
        ..Options::default()
    };
    let mut skein = Skein::start(dir.path(), &opts);
    let factory = SpanFactory::new(seed, 6, 64);
    let mut sent = Vec::new();
    let mut next_sender = 0u16;
    let tenant_dir = dir.path().join("blocks").join(TENANT);
    let mut hit = 0usize;

    for round in 0..=ROUNDS {
        let load = Load::start(
            &skein.otlp_http_url(),
            TENANT,
            &factory,
            next_sender..next_sender + SENDERS,
            Duration::ZERO,
            Duration::from_millis(20),
        );
        next_sender += SENDERS;
        let last = round == ROUNDS;
        // Odd rounds aim the kill at a flush (or kill after 4 s if no upload starts by then);
        // the others kill at a random moment.
        let aim = round % 2 == 1 && !last;
        let load_started = Instant::now();
        let random_at = load_started + rng.millis(300, 2000);
        let mut target = None;
        if aim {
            // Directories left without a meta by earlier kills stay so; only new ones count.
            let mut seen: HashSet<String> = std::fs::read_dir(&tenant_dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            target = upload_in_progress(
                &tenant_dir,
                &mut seen,
                load_started + Duration::from_secs(4),
            );
        }
        if target.is_none() {
            std::thread::sleep(random_at.saturating_duration_since(Instant::now()));
        }
        let load_ms = load_started.elapsed().as_millis();
        if !last {
            skein.kill9();
        }
        let got = load.stop();
        let (flushed, flush_ms) = flushes(&skein.log());
        let kill = match (&target, last) {
            (_, true) => "no kill".to_owned(),
            (None, false) if aim => "no upload started within 4 s; killed then".to_owned(),
            (None, false) => "killed at a random moment".to_owned(),
            (Some(block), false) => {
                let cut_off = !tenant_dir.join(block).join("meta.json").exists();
                hit += usize::from(cut_off);
                format!(
                    "killed while block {block} was being uploaded ({})",
                    if cut_off {
                        "its meta was never written"
                    } else {
                        "it completed just before"
                    }
                )
            }
        };
        let acked = got.iter().filter(|s| s.outcome == Outcome::Acked).count();
        let unknown = got
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Unknown(_)))
            .count();
        eprintln!(
            "round {round}: {load_ms} ms of load, {} requests ({acked} acknowledged, {unknown} \
             without answer), {flushed} blocks flushed by this process in {flush_ms} ms; {kill}",
            got.len(),
        );
        assert!(
            acked > 0,
            "round {round}: no request was acknowledged; log tail:\n{}",
            tail(&skein.log(), 30)
        );
        let refused: Vec<_> = got
            .iter()
            .filter(|s| !matches!(s.outcome, Outcome::Acked | Outcome::Unknown(_)))
            .take(3)
            .collect();
        assert!(
            refused.is_empty(),
            "round {round}: the server refused requests of a load within every limit: {refused:?}"
        );
        sent.extend(got);
        if !last {
            skein.restart();
        }
    }

    // A clean stop flushes everything and leaves the WAL empty.
    blocks::stop_cleanly(&mut skein, &dir.path().join("wal"));

    let stored = read_tenant(
        &StorageConfig::Local {
            path: dir.path().join("blocks"),
        },
        TENANT,
    );
    eprintln!(
        "blocks: {} visible, {} without meta (uploads cut off by a kill after data.parquet was \
         complete), {} retired; {hit} aimed kills cut an upload off",
        stored.blocks, stored.without_meta, stored.tombstoned
    );
    match verify(&factory, &sent, stored.spans) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("seed {seed}: {failure}"),
    }
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}
