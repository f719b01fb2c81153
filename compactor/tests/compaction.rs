//! Compaction at the library level: merge correctness, bounded outputs, retention with a
//! fake clock, repair after a crash at every write, and two compactors on one bucket.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use skein_compactor::cleanup::scan_tenant;
use skein_compactor::{Compactor, CompactorConfig, CycleReport, overrides};
use skein_format::{BlockReader, Store, TenantId};
use skein_storage::StorageConfig;
use skein_storage::blocklist::read_tenant_index;
use skein_storage::lease::Lease;
use skein_storage::overrides::{TenantOverrides, write_tenant_overrides};
use skein_testkit::synth::TraceGenerator;
use tokio_util::sync::CancellationToken;

fn memory() -> Store {
    StorageConfig::Memory {}.open().unwrap()
}

fn config() -> CompactorConfig {
    CompactorConfig {
        lease_ttl: Duration::ZERO,
        // The test data is from 2025; keep it unless a test is about retention.
        retention: Duration::from_secs(3650 * 86_400),
        ..Default::default()
    }
}

fn compactor(store: &Store, cfg: CompactorConfig, now: SystemTime) -> Compactor {
    let o = overrides(&cfg, store.clone());
    Compactor::new(cfg, store.clone(), o).with_clock(Arc::new(move || now))
}

async fn cycle(c: &Compactor) -> CycleReport {
    c.run_cycle(&CancellationToken::new()).await.unwrap()
}

/// A clock far enough after the real "now" that every tombstone's grace period is over.
fn after_grace() -> SystemTime {
    SystemTime::now() + Duration::from_secs(24 * 3600)
}

#[tokio::test]
async fn small_blocks_merge_into_one_with_copies_gone_and_twins_kept() {
    let store = memory();
    let t = tenant("team-a");
    let data = dataset(1, BASE_NS, 60, 8);
    assert!(data.copies > 0 && data.twins > 0);
    let inputs = write_blocks(&store, &t, &data.blocks).await;
    let before = contents(&store, &t).await;
    let expected = distinct(before.clone());
    assert!(
        span_total(&before) > span_total(&expected),
        "the dataset has copies"
    );

    let c = compactor(&store, config(), at(BASE_NS + 10 * HOUR_NS));
    let r = cycle(&c).await;
    assert_eq!(r.jobs, 1, "{r:?}");
    assert_eq!(r.blocks_in, inputs.len() as u64);
    assert_eq!(
        r.duplicates as usize,
        span_total(&before) - span_total(&expected)
    );

    // Every trace reads back exactly: nothing lost, no copy left, twins kept.
    assert_same(&contents(&store, &t).await, &expected, "after compaction");
    let blocks = visible(&store, &t).await;
    assert_eq!(blocks.len(), 1);
    let out = &blocks[0];
    assert_eq!(out.compaction_level, 1);
    let mut replaced = out.replaces.clone();
    replaced.sort();
    let mut ids: Vec<_> = inputs.iter().map(|m| m.block_id).collect();
    ids.sort();
    assert_eq!(replaced, ids);
    assert!(out.files.bloom_blocks.is_some());
    assert!(
        out.files.index_size.is_some(),
        "compacted blocks carry a tag index"
    );
    assert_eq!(out.span_count as usize, span_total(&expected));

    // The tenant index lists exactly the visible blocks.
    let index = read_tenant_index(&store, &t).await.unwrap().unwrap();
    assert_eq!(index.blocks, blocks);
    // Inputs are retired, not yet deleted: the grace period has not passed.
    let dirs = scan_tenant(&store, &t).await.unwrap();
    assert_eq!(dirs.values().filter(|s| s.tombstone).count(), inputs.len());
    assert!(objects(&store, "__skein/compactor/jobs").await.is_empty());

    // A later cycle, after the grace period, deletes them; nothing else changes.
    let later = compactor(&store, config(), after_grace());
    let r = cycle(&later).await;
    assert_eq!((r.jobs, r.deleted), (0, inputs.len() as u64), "{r:?}");
    let dirs = scan_tenant(&store, &t).await.unwrap();
    assert_eq!(dirs.len(), 1);
    assert_same(&contents(&store, &t).await, &expected, "after compaction");
}

#[tokio::test]
async fn outputs_are_bounded_and_a_huge_trace_is_split_over_blocks() {
    let store = memory();
    let t = tenant("bounded");
    let mut parts = dataset(2, BASE_NS, 120, 60).blocks;
    // One trace of ~400 spans, spread over ten blocks.
    let big = TraceGenerator::new(9, BASE_NS + 1_000, 1).trace(400);
    assert!(big.len() >= 300);
    for (i, chunk) in big.chunks(big.len().div_ceil(10)).enumerate() {
        parts[i].extend_from_slice(chunk);
    }
    write_blocks(&store, &t, &parts).await;
    let expected = distinct(contents(&store, &t).await);
    let cfg = CompactorConfig {
        max_block_spans: 300,
        max_block_traces: 60,
        // One job per window: copies are dropped among the blocks merged together.
        max_input_blocks: 100,
        ..config()
    };
    let c = compactor(&store, cfg, at(BASE_NS + 10 * HOUR_NS));
    let mut jobs = 0;
    for _ in 0..10 {
        let r = cycle(&c).await;
        jobs += r.jobs;
        if r.jobs == 0 {
            break;
        }
    }
    assert!(jobs > 0);
    let blocks = visible(&store, &t).await;
    assert!(blocks.len() < parts.len(), "{} blocks", blocks.len());
    for b in &blocks {
        assert!(b.span_count <= 300, "{} spans", b.span_count);
        assert!(b.trace_count <= 60, "{} traces", b.trace_count);
    }
    let big_id = big[0].trace_id().unwrap();
    let holding_big = blocks
        .iter()
        .filter(|b| b.row_groups.iter().any(|rg| rg.may_contain(&big_id)))
        .count();
    assert!(holding_big >= 2, "the big trace spans several blocks");
    assert_same(&contents(&store, &t).await, &expected, "after compaction");
    // Settled: another cycle finds nothing to merge.
    assert_eq!(cycle(&c).await.jobs, 0);
}

/// Runs cycles until one has no job (at most `limit`); returns the jobs run.
async fn settle(c: &Compactor, limit: usize) -> u64 {
    let mut jobs = 0;
    for _ in 0..limit {
        let r = cycle(c).await;
        if r.jobs == 0 {
            return jobs;
        }
        jobs += r.jobs;
    }
    panic!("no settling after {limit} cycles");
}

#[tokio::test]
async fn copies_left_in_full_blocks_are_dropped_once_the_window_turns_old() {
    let store = memory();
    let t = tenant("late-dedupe");
    let data = dataset(4, BASE_NS, 150, 12);
    write_blocks(&store, &t, &data.blocks).await;
    let expected = distinct(contents(&store, &t).await);
    let cfg = CompactorConfig {
        max_block_spans: 600,
        max_input_blocks: 3,
        ..config()
    };
    // While the window is recent, jobs of three blocks write full outputs that are not
    // merged again: copies that went to different jobs stay.
    let recent = compactor(&store, cfg.clone(), at(BASE_NS + HOUR_NS / 2));
    assert!(settle(&recent, 20).await > 0);
    let copies = span_total(&contents(&store, &t).await) - span_total(&expected);
    assert!(copies > 0, "the recent-window merges left copies");

    // Once the window is old it becomes one sorted run: no copy left, every trace whole in
    // one block, and nothing more to do.
    let old = compactor(&store, cfg, at(BASE_NS + 10 * HOUR_NS));
    assert!(settle(&old, 20).await > 0);
    assert_same(
        &contents(&store, &t).await,
        &expected,
        "after the old-window merge",
    );
    let mut holders: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for m in visible(&store, &t).await {
        let spans = BlockReader::open(store.clone(), m)
            .read_all()
            .await
            .unwrap();
        let mut ids: Vec<Vec<u8>> = spans.into_iter().map(|s| s.span.trace_id).collect();
        ids.dedup();
        for id in ids {
            *holders.entry(id).or_default() += 1;
        }
    }
    assert_eq!(holders.len(), expected.len());
    assert!(holders.values().all(|&n| n == 1), "a trace in two blocks");
    assert_eq!(cycle(&old).await.jobs, 0);
}

#[tokio::test]
async fn retention_per_tenant_with_a_fake_clock_and_changes_without_restart() {
    let store = memory();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("overrides.json");
    std::fs::write(
        &file,
        r#"{"tenants": {"short": {"retention": "1d"}, "long": {"retention": "7d"}}}"#,
    )
    .unwrap();
    let now = BASE_NS + 30 * 24 * HOUR_NS;
    let (short, long, other) = (tenant("short"), tenant("long"), tenant("other"));
    for t in [&short, &long, &other] {
        let old = dataset(3, now - 3 * 24 * HOUR_NS, 5, 1).blocks;
        let fresh = dataset(4, now - HOUR_NS, 5, 1).blocks;
        write_blocks(&store, t, &[old[0].clone(), fresh[0].clone()]).await;
    }
    let cfg = CompactorConfig {
        overrides_file: file.display().to_string(),
        retention: Duration::from_secs(14 * 86_400),
        ..config()
    };
    let c = compactor(&store, cfg, at(now));
    let r = cycle(&c).await;
    assert_eq!(r.expired, 1, "{r:?}");
    assert_eq!(visible(&store, &short).await.len(), 1);
    assert!(visible(&store, &short).await[0].min_start_unix_nano >= now - HOUR_NS);
    assert_eq!(visible(&store, &long).await.len(), 2);
    assert_eq!(visible(&store, &other).await.len(), 2, "14 days by default");

    // The file changes: the same compactor applies it at its next cycle.
    std::fs::write(&file, r#"{"tenants": {"long": {"retention": "2d"}}}"#).unwrap();
    let r = cycle(&c).await;
    assert_eq!(r.expired, 1, "{r:?}");
    assert_eq!(visible(&store, &long).await.len(), 1);
    // A stored override (what the admin API writes) applies too, and wins over the file.
    write_tenant_overrides(
        &store,
        &other,
        &TenantOverrides {
            retention: Some(Duration::from_secs(2 * 86_400)),
        },
    )
    .await
    .unwrap();
    let r = cycle(&c).await;
    assert_eq!(r.expired, 1, "{r:?}");
    assert_eq!(visible(&store, &other).await.len(), 1);
}

#[tokio::test]
async fn a_crash_at_any_write_is_repaired_by_the_next_cycle() {
    let t = tenant("crashy");
    let data = dataset(5, BASE_NS, 20, 4);
    let now = at(BASE_NS + 10 * HOUR_NS);
    // How many writes a whole cycle takes.
    let total = {
        let store = memory();
        write_blocks(&store, &t, &data.blocks).await;
        let crashing = CrashingStore::new(store.clone(), i64::MAX / 2);
        let s: Store = crashing.clone();
        cycle(&compactor(&s, config(), now)).await;
        i64::MAX / 2 - crashing_budget_left(&crashing)
    };
    assert!(total > 10, "{total} writes");
    for budget in 0..=total {
        let store = memory();
        write_blocks(&store, &t, &data.blocks).await;
        let expected = distinct(contents(&store, &t).await);
        let crashing = CrashingStore::new(store.clone(), budget);
        let s: Store = crashing.clone();
        let _ = compactor(&s, config(), now)
            .run_cycle(&CancellationToken::new())
            .await;
        // Right after the crash: nothing is lost (copies may be visible for a moment).
        assert_same(
            &distinct(contents(&store, &t).await),
            &expected,
            &format!("crash after {budget} writes lost data"),
        );
        // The next cycles repair, finish the work and delete what is retired.
        let healthy = compactor(&store, config(), now);
        cycle(&healthy).await;
        cycle(&compactor(&store, config(), after_grace())).await;
        assert_same(
            &contents(&store, &t).await,
            &expected,
            &format!("crash after {budget} writes: data differs after repair"),
        );
        assert_eq!(visible(&store, &t).await.len(), 1, "crash after {budget}");
        let dirs = scan_tenant(&store, &t).await.unwrap();
        assert!(
            dirs.values().all(|s| s.meta && !s.tombstone),
            "crash after {budget}: leftovers {dirs:?}"
        );
        assert!(objects(&store, "__skein/compactor/jobs").await.is_empty());
    }
}

fn crashing_budget_left(c: &CrashingStore) -> i64 {
    c.budget_left()
}

#[tokio::test]
async fn orphans_and_replaced_inputs_without_a_journal_are_cleaned_up() {
    let store = memory();
    let t = tenant("leftovers");
    let data = dataset(6, BASE_NS, 10, 2);
    let metas = write_blocks(&store, &t, &data.blocks).await;
    let expected = distinct(contents(&store, &t).await);
    // A block that names both inputs as replaced (as after a crash between its meta and the
    // tombstones, with the journal gone) …
    let all: Vec<_> = data.blocks.concat();
    let opts = skein_format::block::WriteOptions {
        compaction_level: 1,
        replaces: metas.iter().map(|m| m.block_id).collect(),
        ..Default::default()
    };
    skein_format::BlockWriter::new(store.clone())
        .write_with(&t, all, opts)
        .await
        .unwrap();
    // … and a directory without meta, as a crashed writer leaves.
    let orphan = skein_format::BlockId::new();
    object_store::ObjectStoreExt::put(
        store.as_ref(),
        &skein_format::layout::block_object(&t, orphan, "data.parquet"),
        object_store::PutPayload::from_static(b"half"),
    )
    .await
    .unwrap();
    let cfg = CompactorConfig {
        orphan_age: Duration::ZERO,
        ..config()
    };
    let r = cycle(&compactor(&store, cfg.clone(), after_grace())).await;
    assert_eq!((r.repaired, r.orphans), (2, 1), "{r:?}");
    assert_eq!(visible(&store, &t).await.len(), 1);
    cycle(&compactor(&store, cfg, after_grace())).await;
    assert_eq!(scan_tenant(&store, &t).await.unwrap().len(), 1);
    // The hand-made block holds the copies too; no span is lost.
    assert_same(
        &distinct(contents(&store, &t).await),
        &expected,
        "after cleanup",
    );
}

#[tokio::test]
async fn a_lease_is_held_by_one_compactor_and_taken_over_when_expired() {
    for (name, store, _dir) in stores() {
        let t = TenantId::new(&format!("lease-{}", uuid_suffix())).unwrap();
        let ttl = Duration::from_secs(60);
        let a = Lease::try_acquire(&store, &t, "a", ttl).await.unwrap();
        assert!(a.is_some(), "{name}");
        assert!(
            Lease::try_acquire(&store, &t, "b", ttl)
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        a.unwrap().release().await.unwrap();
        let mut b = Lease::try_acquire(&store, &t, "b", Duration::ZERO)
            .await
            .unwrap()
            .expect(name);
        // b's lease expired at once: a takes it over, and b learns it lost the tenant.
        let a = Lease::try_acquire(&store, &t, "a", ttl).await.unwrap();
        assert!(a.is_some(), "{name}");
        assert!(!b.renew().await.unwrap(), "{name}");

        // Racing for a free tenant: exactly one wins (a create-only put).
        let t = TenantId::new(&format!("race-{}", uuid_suffix())).unwrap();
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let (store, t) = (store.clone(), t.clone());
                tokio::spawn(async move {
                    Lease::try_acquire(&store, &t, &format!("racer-{i}"), ttl)
                        .await
                        .unwrap()
                        .is_some()
                })
            })
            .collect();
        let mut winners = 0;
        for r in racers {
            winners += usize::from(r.await.unwrap());
        }
        assert_eq!(winners, 1, "{name}");
    }
}

#[tokio::test]
async fn two_compactors_on_one_bucket_do_each_tenant_once() {
    for (name, store, dir) in stores() {
        let run = uuid_suffix();
        let tenants: Vec<TenantId> = (0..4)
            .map(|i| TenantId::new(&format!("t{i}-{run}")).unwrap())
            .collect();
        let mut expected = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            write_blocks(&store, t, &dataset(10 + i as u64, BASE_NS, 15, 5).blocks).await;
            expected.push(distinct(contents(&store, t).await));
        }
        // The second compactor has its own handle on the bucket, as another process would.
        let other: Store = match &dir {
            Some(d) => StorageConfig::Local {
                path: d.path().to_path_buf(),
            }
            .open()
            .unwrap(),
            None => store.clone(),
        };
        let cfg = CompactorConfig {
            lease_ttl: Duration::from_secs(60),
            ..config()
        };
        let now = at(BASE_NS + 10 * HOUR_NS);
        let (a, b) = (
            compactor(&store, cfg.clone(), now),
            compactor(&other, cfg, now),
        );
        let mut jobs = 0;
        for _ in 0..3 {
            let (ra, rb) = tokio::join!(cycle(&a), cycle(&b));
            jobs += ra.jobs + rb.jobs;
        }
        assert_eq!(
            jobs,
            tenants.len() as u64,
            "{name}: each tenant compacted once"
        );
        for (t, want) in tenants.iter().zip(&expected) {
            assert_same(&contents(&store, t).await, want, name);
            assert_eq!(visible(&store, t).await.len(), 1, "{name}");
        }
    }
}

fn uuid_suffix() -> String {
    format!(
        "{:x}",
        SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 0xffff_ffff
    )
}

/// Memory, local disk and, when `SKEIN_TEST_S3_ENDPOINT` is set, S3.
fn stores() -> Vec<(&'static str, Store, Option<tempfile::TempDir>)> {
    let mut v = vec![("memory", memory(), None)];
    let dir = tempfile::tempdir().unwrap();
    let local = StorageConfig::Local {
        path: dir.path().to_path_buf(),
    }
    .open()
    .unwrap();
    v.push(("local", local, Some(dir)));
    if let (Ok(endpoint), bucket) = (
        std::env::var("SKEIN_TEST_S3_ENDPOINT"),
        std::env::var("SKEIN_TEST_S3_BUCKET").unwrap_or_else(|_| "skein-test".into()),
    ) {
        let s3 = StorageConfig::S3(skein_storage::S3Config {
            bucket,
            endpoint,
            ..Default::default()
        })
        .open()
        .unwrap();
        v.push(("s3", s3, None));
    }
    v
}

/// Writes `spans` as one block whose tag index claims layout 3 (a pre-release layout): the
/// bundle's magic is rewritten, and the meta records `layout` (or nothing, as metas written
/// before the layout was recorded).
async fn write_block_with_index_layout(
    store: &Store,
    t: &TenantId,
    spans: Vec<skein_format::SpanRecord>,
    magic: &[u8; 8],
    layout: Option<u32>,
) -> skein_format::BlockMeta {
    use skein_format::block::{WriteOptions, encode_block};
    let mut block = encode_block(
        t,
        spans,
        &WriteOptions {
            tag_index: true,
            ..Default::default()
        },
    )
    .unwrap();
    let mut index = block.index.take().unwrap().to_vec();
    index[..8].copy_from_slice(magic);
    block.index = Some(index.into());
    block.meta.files.index_layout = layout;
    skein_format::BlockWriter::new(store.clone())
        .upload(block)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_block_whose_index_has_another_layout_is_rewritten_with_a_current_one() {
    for (case, magic, layout) in [
        ("layout recorded in the meta", b"SKTAGIX3", Some(3)),
        ("layout read from the bundle", b"SKTAGIX3", None),
        ("the layout before parent links", b"SKTAGIX4", Some(4)),
    ] {
        let store = memory();
        let t = tenant("reindex");
        let mut g = TraceGenerator::new(7, BASE_NS, 1_000_000_000);
        let spans: Vec<_> = (0..20).flat_map(|_| g.trace(6)).collect();
        let old = write_block_with_index_layout(&store, &t, spans, magic, layout).await;
        let before = contents(&store, &t).await;

        // An old window with one block: no merge is planned, only the rewrite.
        let c = compactor(&store, config(), at(BASE_NS + 30 * 24 * HOUR_NS));
        let r = cycle(&c).await;
        assert_eq!(
            (r.jobs, r.blocks_in, r.blocks_out),
            (1, 1, 1),
            "{case}: {r:?}"
        );
        let blocks = visible(&store, &t).await;
        assert_eq!(blocks.len(), 1, "{case}");
        let new = &blocks[0];
        assert_eq!(new.replaces, vec![old.block_id], "{case}");
        assert_eq!(new.index_is_current(), Some(true), "{case}");
        let index = skein_format::layout::read_block_object(
            &store,
            &t,
            new.block_id,
            skein_format::layout::names::INDEX,
        )
        .await
        .unwrap();
        assert_eq!(
            skein_format::IndexLayout::of_bundle(&index),
            Some(skein_format::IndexLayout::current()),
            "{case}"
        );
        assert_same(&contents(&store, &t).await, &before, case);

        // Settled: the next cycle leaves the block alone.
        assert_eq!(cycle(&c).await.jobs, 0, "{case}");
    }

    // A current index whose meta does not record its layout is read once and left alone.
    let store = memory();
    let t = tenant("current");
    let mut g = TraceGenerator::new(8, BASE_NS, 1_000_000_000);
    let spans: Vec<_> = (0..5).flat_map(|_| g.trace(4)).collect();
    let magic = skein_format::IndexLayout::current().magic();
    write_block_with_index_layout(&store, &t, spans, &magic, None).await;
    let c = compactor(&store, config(), at(BASE_NS + 30 * 24 * HOUR_NS));
    assert_eq!(cycle(&c).await.jobs, 0);
}
