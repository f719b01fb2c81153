//! `kill -9` of the compactor at random points, over several rounds with new blocks arriving
//! between them: at every kill no span is lost; once a run finishes, no span is stored twice
//! and nothing is left behind (no journal, no retired block, no directory without meta).

mod common;
mod compact_support;

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
    for round in 0..ROUNDS {
        if round > 0 {
            // New blocks arrive while the compactor runs, as ingesters write them: the
            // compactor has work again at its next cycle.
            for (i, (t, want)) in TENANTS.iter().zip(expected.iter_mut()).enumerate() {
                let more = write_dataset_with(
                    &bucket,
                    t,
                    seed ^ ((round as u64) << 20) ^ i as u64,
                    200,
                    4,
                    Duration::from_secs(3 * 3600),
                    false,
                );
                want.extend(more);
            }
        }
        if round % 2 == 0 {
            // Any moment.
            std::thread::sleep(rng.millis(20, 1500));
        } else {
            // Some moment of a job: once its journal appears (at most 5 s of waiting).
            let deadline = Instant::now() + Duration::from_secs(5);
            while journals(&bucket).is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(rng.millis(0, 200));
        }
        skein.kill9();
        if !journals(&bucket).is_empty() {
            interrupted += 1;
        }
        for (t, want) in TENANTS.iter().zip(&expected) {
            let (_, got) = stored(&bucket, t);
            if let Some(d) = difference(&distinct(got), want) {
                panic!("seed {seed}, round {round}, tenant {t}: right after the kill: {d}");
            }
        }
        skein.restart();
    }

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
                            skein_storage::dedupe::content_key(&w[0])
                                != skein_storage::dedupe::content_key(&w[1])
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
                            skein_storage::dedupe::content_key(&w[0])
                                == skein_storage::dedupe::content_key(&w[1])
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
        interrupted > 0,
        "seed {seed}: no kill landed during a compaction job; the test proved nothing"
    );
}
