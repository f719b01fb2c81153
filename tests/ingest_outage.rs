//! An object storage outage, through the real binary and a real S3 server (SeaweedFS):
//!
//! 1. blocks reach the bucket while it is up;
//! 2. the server stops: writes are still acknowledged while the WAL has room (the spans stay
//!    in the WAL and in memory), then refused with a retryable 503 and `Retry-After` once the
//!    WAL reaches `wal_max_bytes`;
//! 3. the server comes back on the same port with the same data: flushes resume and the 503s
//!    stop;
//! 4. after a clean stop (SIGTERM flushes everything) every acknowledged span is in the bucket.
//!
//! The test runs its own SeaweedFS (`scripts/s3-server.sh`), taken down and brought back by
//! `tests/scripts/s3-outage.sh`, and stopped at the end whatever happens. It needs the
//! `weed` binary of the test command's venv, so it runs when the test command's S3 server is
//! configured (`SKEIN_TEST_S3_ENDPOINT`, as `./scripts/test.sh` does) and is skipped otherwise.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::blocks::{self, Load, Outcome, Sent, SpanFactory, metric, read_tenant, verify};
use common::{Options, Skein, tail};
use skein_storage::S3Config;
use skein_storage::StorageConfig;

const TENANT: &str = "outage-test";
const BUCKET: &str = "skein-outage";
const FLUSHED: &str = "skein_ingester_blocks_flushed_total";

/// Load phases, recorded with every request.
const HEALTHY: u32 = 0;
const OUTAGE: u32 = 1;
const RECOVERY: u32 = 2;

/// A private SeaweedFS, stopped (and its directory deleted) on drop.
struct SeaweedFs {
    dir: PathBuf,
    endpoint: String,
}

fn script(rel: &str, args: &[&str]) -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let out = Command::new(&path)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("{rel} {args:?} failed ({}):\n{stderr}", out.status));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl SeaweedFs {
    fn start(dir: &Path) -> SeaweedFs {
        let d = dir.to_str().expect("utf-8 temp dir");
        let endpoint =
            script("scripts/s3-server.sh", &["start", d, BUCKET]).unwrap_or_else(|e| panic!("{e}"));
        SeaweedFs {
            dir: dir.to_path_buf(),
            endpoint,
        }
    }

    fn arg(&self) -> &str {
        self.dir.to_str().expect("utf-8 temp dir")
    }

    /// Stops the server, keeping its data and ports for [`SeaweedFs::up`].
    fn down(&self) {
        script("tests/scripts/s3-outage.sh", &["down", self.arg()])
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts it again on the same port with the same data.
    fn up(&self) {
        let endpoint = script("tests/scripts/s3-outage.sh", &["up", self.arg()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(endpoint, self.endpoint, "the restarted server moved");
    }

    fn storage(&self) -> StorageConfig {
        StorageConfig::S3(S3Config {
            bucket: BUCKET.into(),
            endpoint: self.endpoint.clone(),
            ..S3Config::default()
        })
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        if let Err(e) = script("scripts/s3-server.sh", &["stop", self.arg()]) {
            eprintln!("{e}");
        }
    }
}

/// Polls `done` every 100 ms for at most `limit`; true once it holds.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Requests of `phase`: (acknowledged, refused with 503).
fn counts(sent: &[Sent], phase: u32) -> (usize, usize) {
    let of_phase = sent.iter().filter(|s| s.phase == phase);
    let acked = of_phase
        .clone()
        .filter(|s| s.outcome == Outcome::Acked)
        .count();
    let unavailable = of_phase
        .filter(|s| matches!(s.outcome, Outcome::Refused { status: 503, .. }))
        .count();
    (acked, unavailable)
}

#[test]
fn writes_are_kept_through_an_object_storage_outage_and_refused_when_the_wal_is_full() {
    if common::s3().is_none() {
        return;
    }
    let started = Instant::now();
    let seed = blocks::seed("ingest_outage");
    let dir = tempfile::tempdir().expect("temp dir");
    let s3 = SeaweedFs::start(&dir.path().join("s3"));
    let opts = Options {
        // A small WAL fills within seconds of load. Its segments must be much smaller: the
        // ingester deletes only sealed segments and seals the active one only when it reaches
        // wal_segment_bytes, so with the default 64 MiB a 2 MiB WAL, once full, would refuse
        // writes forever even with the bucket up. A short backoff retries soon after the
        // bucket is back.
        ingester: format!(
            "wal_max_bytes = {}\nwal_segment_bytes = {}\ntrace_idle_period = \"200ms\"\n\
             max_block_duration = \"500ms\"\ncut_interval = \"100ms\"\nflush_max_backoff = \"1s\"\n",
            2 << 20,
            128 << 10
        ),
        storage: Some(format!(
            "[storage]\nbackend = \"s3\"\nbucket = \"{BUCKET}\"\nendpoint = \"{}\"\n",
            s3.endpoint
        )),
        target: Some("ingester".into()),
        ..Options::default()
    };
    let mut skein = Skein::start(dir.path(), &opts);
    // About 1.5 KB per request at about 100 requests/s: the ingester keeps up easily while
    // the bucket is up (a debug build flushes some thousand spans a second), and the 2 MiB
    // WAL fills within seconds when it is down.
    let factory = SpanFactory::new(seed, 6, 300);
    let load = Load::start(
        &skein.otlp_http_url(),
        TENANT,
        &factory,
        0..3,
        Duration::from_millis(25),
        Duration::from_millis(25),
    );

    // 1. Healthy: blocks land in the bucket.
    let landed = wait_until(Duration::from_secs(30), || {
        metric(&skein.metrics(), FLUSHED) >= 2.0
    });
    assert!(
        landed,
        "no 2 blocks flushed within 30 s of load; log tail:\n{}",
        tail(&skein.log(), 30)
    );
    let in_bucket = read_tenant(&s3.storage(), TENANT).blocks;
    assert!(
        in_bucket > 0,
        "blocks were flushed but the bucket lists none"
    );
    let (acked, unavailable) = counts(&load.snapshot(), HEALTHY);
    eprintln!(
        "healthy: {in_bucket} blocks in the bucket after {:.1} s; {acked} requests acknowledged, \
         {unavailable} refused with 503",
        started.elapsed().as_secs_f64()
    );

    // 2. Outage: acknowledged while the WAL has room, then 503 with Retry-After.
    // The phase changes before the server is stopped: stopping it takes seconds, during which
    // requests keep being acknowledged into the WAL, and those acknowledgements belong to the
    // outage (otherwise a slow stop can fill the WAL before the phase even begins).
    let outage_started = Instant::now();
    load.set_phase(OUTAGE);
    s3.down();
    let flushed_before = metric(&skein.metrics(), FLUSHED);
    let full = wait_until(Duration::from_secs(30), || {
        let (acked, unavailable) = counts(&load.snapshot(), OUTAGE);
        // Some seconds of refusals, not just the first ones: they must last while it is down.
        acked > 0 && unavailable >= 20 && outage_started.elapsed() >= Duration::from_secs(6)
    });
    let sent = load.snapshot();
    let (acked, unavailable) = counts(&sent, OUTAGE);
    let metrics = skein.metrics();
    eprintln!(
        "outage: after {:.1} s, {acked} requests acknowledged and {unavailable} refused with 503; \
         wal {} bytes, {} failed upload attempts",
        outage_started.elapsed().as_secs_f64(),
        metric(&metrics, "skein_ingester_wal_bytes"),
        metric(&metrics, "skein_ingester_flush_failures_total"),
    );
    assert!(
        full,
        "within 30 s of the outage: {acked} requests acknowledged (want > 0, the WAL has room at \
         first) and {unavailable} refused with 503 (want >= 20, the WAL is capped at 2 MiB); \
         log tail:\n{}",
        tail(&skein.log(), 30)
    );
    let other: Vec<&Sent> = sent
        .iter()
        .filter(|s| s.phase == OUTAGE)
        .filter(|s| match &s.outcome {
            Outcome::Acked => false,
            Outcome::Refused {
                status: 503,
                retry_after,
            } => retry_after
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .is_none(),
            _ => true,
        })
        .collect();
    assert!(
        other.is_empty(),
        "during the outage {} requests got something other than 200 or 503 with a Retry-After \
         in seconds, e.g. {:?}",
        other.len(),
        &other[..other.len().min(3)]
    );
    assert_eq!(
        metric(&skein.metrics(), FLUSHED),
        flushed_before,
        "blocks were flushed while the bucket was down"
    );

    // 3. Recovery: same port, same data; flushes resume and the 503s stop.
    s3.up();
    let recovery_started = Instant::now();
    load.set_phase(RECOVERY);
    let recovered = wait_until(Duration::from_secs(60), || {
        let sent = load.snapshot();
        let recent: Vec<&Sent> = sent.iter().filter(|s| s.phase == RECOVERY).collect();
        metric(&skein.metrics(), FLUSHED) > flushed_before
            && recent.len() >= 20
            && recent[recent.len() - 20..]
                .iter()
                .all(|s| s.outcome == Outcome::Acked)
    });
    let sent = load.stop();
    let (acked, unavailable) = counts(&sent, RECOVERY);
    eprintln!(
        "recovery: after {:.1} s, {} blocks flushed since the outage began; {acked} requests \
         acknowledged, {unavailable} refused with 503",
        recovery_started.elapsed().as_secs_f64(),
        metric(&skein.metrics(), FLUSHED) - flushed_before,
    );
    assert!(
        recovered,
        "within 60 s of the bucket's return, flushes did not resume or requests were still \
         refused ({acked} acknowledged, {unavailable} refused with 503); log tail:\n{}",
        tail(&skein.log(), 30)
    );

    // 4. A clean stop flushes everything; every acknowledged span is in the bucket.
    blocks::stop_cleanly(&mut skein, &dir.path().join("wal"));
    let stored = read_tenant(&s3.storage(), TENANT);
    eprintln!(
        "bucket: {} blocks, {} without meta",
        stored.blocks, stored.without_meta
    );
    match verify(&factory, &sent, stored.spans) {
        Ok(report) => eprintln!("{report}"),
        Err(failure) => panic!("seed {seed}: {failure}"),
    }
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}
