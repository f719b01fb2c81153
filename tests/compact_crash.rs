//! `kill -9` of the compactor at random points, over several rounds with new blocks arriving
//! between them: at every kill no span is lost; once a run finishes, no span is stored twice
//! and nothing is left behind (no journal, no retired block, no directory without meta).

use crate::common;
use crate::compact_support;

use std::time::{Duration, Instant};

use common::blocks::{Rng, seed};
use common::{Options, Ready, Skein};
use compact_support::*;

const TENANTS: [&str; 2] = ["crash-a", "crash-b"];
const ROUNDS: usize = 6;

#[test]
fn kill_9_at_random_points_loses_and_duplicates_nothing_and_leaves_no_orphan() {
    let seed = seed("kill_9_at_random_points");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let bucket = dir.path().join("blocks");
    let mut expected: Vec<Traces> = TENANTS
        .iter()
        .enumerate()
        .map(|(i, t)| {
            write_dataset(
                &bucket,
                t,
                seed + i as u64,
                300,
                12,
                Duration::from_secs(3 * 3600),
            )
        })
        .collect();
    // One job takes a whole window (so every copy meets its original), and its output is
    // cut into several blocks, so that kills land between outputs too.
    let opts = Options {
        storage: Some(storage_section(&bucket)),
        target: Some("compactor".into()),
        ready: Ready::Running,
        extra:
            "[compactor]\ncycle_interval = \"100ms\"\nlease_ttl = \"3s\"\ndelete_grace = \"1s\"\n\
                max_block_spans = 4000\nmax_input_blocks = 200\n"
                .into(),
        ..Options::default()
    };
    let mut skein = Skein::start(dir.path(), &opts);
    let mut interrupted = 0;
    // Journals the last kill left: the restarted compactor settles them; the kill points
    // below wait for a job of the new process.
    let mut stale: Vec<std::path::PathBuf> = Vec::new();
    for round in 0..ROUNDS {
        if round > 0 {
            // New blocks arrive, as ingesters write them, while the compactor is down; the
            // restarted one repairs what the kill left and has work again.
            for (i, (t, want)) in TENANTS.iter().zip(expected.iter_mut()).enumerate() {
                let more = write_dataset(
                    &bucket,
                    t,
                    seed ^ ((round as u64) << 20) ^ i as u64,
                    200,
                    4,
                    Duration::from_secs(3 * 3600),
                );
                want.extend(more);
            }
            skein.restart();
        }
        // The kill point: any moment (starting up, waiting for the dead process's lease,
        // repairing, merging, deleting), some moment of a job, or between a job's outputs.
        let point = match round % 3 {
            0 => {
                std::thread::sleep(rng.millis(20, 1500));
                "any moment"
            }
            1 => {
                wait_for(&bucket, &stale, |_| true);
                std::thread::sleep(rng.millis(0, 300));
                "during a job"
            }
            _ => {
                wait_for(&bucket, &stale, |j| journal_outputs(j) > 0);
                "once a job has listed an output"
            }
        };
        skein.kill9();
        let open_jobs = journals(&bucket);
        if open_jobs.iter().any(|j| !stale.contains(j)) {
            interrupted += 1;
        }
        println!(
            "round {round}: killed {point}; {} job(s) open",
            open_jobs.len()
        );
        for (t, want) in TENANTS.iter().zip(&expected) {
            let (_, got) = stored(&bucket, t);
            if let Some(d) = difference(&distinct(got), want) {
                panic!("seed {seed}, round {round}, tenant {t}: right after the kill: {d}");
            }
        }
        stale = open_jobs;
    }
    skein.restart();

    // The last run finishes its work: no journal, nothing retired or half-written left.
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled = loop {
        let clean = journals(&bucket).is_empty()
            && TENANTS.iter().all(|t| {
                let (listing, got) = stored(&bucket, t);
                listing.tombstoned.is_empty()
                    && listing.without_meta.is_empty()
                    && got.values().all(|v| {
                        v.windows(2).all(|w| {
                            skein_format::dedupe::content_key(&w[0])
                                != skein_format::dedupe::content_key(&w[1])
                        })
                    })
            });
        if clean || Instant::now() > deadline {
            break clean;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    skein.kill9();
    if !settled {
        for t in TENANTS {
            let (listing, got) = stored(&bucket, t);
            let copies: usize = got
                .values()
                .map(|v| {
                    v.windows(2)
                        .filter(|w| {
                            skein_format::dedupe::content_key(&w[0])
                                == skein_format::dedupe::content_key(&w[1])
                        })
                        .count()
                })
                .sum();
            eprintln!(
                "{t}: {} live, {} retired, {} without meta, {copies} copies, {} journals",
                listing.live.len(),
                listing.tombstoned.len(),
                listing.without_meta.len(),
                journals(&bucket).len()
            );
        }
    }
    assert!(
        settled,
        "seed {seed}: the compactor did not settle within 120 s:\n{}",
        common::tail(&skein.log(), 40)
    );
    for (t, want) in TENANTS.iter().zip(&expected) {
        let (listing, got) = stored(&bucket, t);
        if let Some(d) = difference(&got, want) {
            panic!("seed {seed}, tenant {t}: after the last run: {d}");
        }
        assert!(listing.without_meta.is_empty() && listing.tombstoned.is_empty());
        assert!(
            listing.live.len() < 12 + 4 * ROUNDS,
            "{} blocks",
            listing.live.len()
        );
    }
    println!("seed {seed}: {interrupted} of {ROUNDS} kills interrupted a compaction job");
    assert!(
        interrupted >= ROUNDS / 3,
        "seed {seed}: no kill landed during a compaction job; the test proved nothing"
    );
}

/// Waits (at most 20 s: the restarted compactor first waits out the killed one's lease)
/// until a journal that is not `stale` satisfies `done`.
fn wait_for(
    bucket: &std::path::Path,
    stale: &[std::path::PathBuf],
    done: impl Fn(&std::path::Path) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if journals(bucket)
            .iter()
            .any(|j| !stale.contains(j) && done(j))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How many outputs a journal lists (0 when it cannot be read: being rewritten).
fn journal_outputs(path: &std::path::Path) -> usize {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["outputs"].as_array().map(Vec::len))
        .unwrap_or(0)
}
