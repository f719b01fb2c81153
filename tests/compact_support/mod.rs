//! Helpers of the compaction end-to-end tests: blocks written straight into a local bucket,
//! and what the bucket holds afterwards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skein_format::dedupe::content_key;
use skein_format::model::{canonical, spans_to_otlp};
use skein_format::{BlockReader, BlockWriter, SpanRecord, TenantId};
use skein_storage::blocklist::{TenantListing, list_tenant};
use skein_storage::{BlockList, StorageConfig};
use skein_testkit::synth::{Rng, TraceGenerator};

/// Each trace's spans (canonical form), keyed by trace ID in hex.
pub type Traces = BTreeMap<String, Vec<SpanRecord>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn local(path: &Path) -> StorageConfig {
    StorageConfig::Local {
        path: path.to_path_buf(),
    }
}

pub fn storage_section(path: &Path) -> String {
    format!(
        "[storage]\nbackend = \"local\"\npath = \"{}\"\n",
        path.display()
    )
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Canonical form, copies removed, grouped by trace.
pub fn by_trace(spans: Vec<SpanRecord>, keep_copies: bool) -> Traces {
    let mut out: Traces = BTreeMap::new();
    for s in canonical(spans_to_otlp(spans)) {
        out.entry(hex(&s.span.trace_id)).or_default().push(s);
    }
    for v in out.values_mut() {
        v.sort_by_cached_key(content_key);
        if !keep_copies {
            v.dedup_by(|a, b| content_key(a) == content_key(b));
        }
    }
    out
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `blocks` blocks of `traces` traces (started `ago` before now) for `tenant` into the
/// bucket at `path`: most traces split over several blocks, about one span in ten stored
/// twice (in the next block), one in twenty with a distinct twin sharing its span ID. Returns
/// the distinct spans.
pub fn write_dataset(
    path: &Path,
    tenant: &str,
    seed: u64,
    traces: usize,
    blocks: usize,
    ago: Duration,
) -> Traces {
    let tenant = TenantId::new(tenant).expect("tenant");
    let mut g = TraceGenerator::new(seed, now_ns() - ago.as_nanos() as u64, 50_000_000);
    let mut rng = Rng::new(seed ^ 0xc0ffee);
    let mut parts: Vec<Vec<SpanRecord>> = vec![Vec::new(); blocks];
    let mut all = Vec::new();
    for _ in 0..traces {
        for s in g.trace(5 + rng.below(40) as usize) {
            let b = rng.below(blocks as u64) as usize;
            if rng.chance(0.1) {
                parts[(b + 1) % blocks].push(s.clone());
            }
            if rng.chance(0.05) {
                let mut twin = s.clone();
                twin.span.name.push_str(" (twin)");
                parts[rng.below(blocks as u64) as usize].push(twin.clone());
                all.push(twin);
            }
            parts[b].push(s.clone());
            all.push(s);
        }
    }
    let store = local(path).open().expect("open the bucket");
    runtime().block_on(async {
        let w = BlockWriter::new(store);
        for p in parts.into_iter().filter(|p| !p.is_empty()) {
            w.write(&tenant, p).await.expect("write a block");
        }
    });
    by_trace(all, false)
}

/// What a tenant's prefix holds: its listing and every span of its visible blocks (copies
/// kept).
pub fn stored(path: &Path, tenant: &str) -> (TenantListing, Traces) {
    let tenant = TenantId::new(tenant).expect("tenant");
    let store = local(path).open().expect("open the bucket");
    runtime().block_on(async {
        let listing = list_tenant(&store, &tenant).await.expect("list");
        let metas = BlockList::new(store.clone(), Duration::ZERO)
            .refresh(&tenant)
            .await
            .expect("block list");
        let mut spans = Vec::new();
        for m in metas.iter() {
            spans.extend(
                BlockReader::open(store.clone(), m.clone())
                    .read_all()
                    .await
                    .expect("read a block"),
            );
        }
        (listing, by_trace(spans, true))
    })
}

/// Traces with copies removed.
pub fn distinct(mut t: Traces) -> Traces {
    for v in t.values_mut() {
        v.dedup_by(|a, b| content_key(a) == content_key(b));
    }
    t
}

pub fn span_count(t: &Traces) -> usize {
    t.values().map(Vec::len).sum()
}

/// A short description of how `got` differs from `want`, or `None` when equal.
pub fn difference(got: &Traces, want: &Traces) -> Option<String> {
    if got == want {
        return None;
    }
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let differing: Vec<&String> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, _)| k)
        .collect();
    Some(format!(
        "{} spans in {} traces, want {} in {}; {missing} traces missing; {} differ (e.g. {:?})",
        span_count(got),
        got.len(),
        span_count(want),
        want.len(),
        differing.len(),
        differing.first()
    ))
}

/// Unfinished compaction jobs (journals) in the bucket.
pub fn journals(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![path.join("__skein/compactor/jobs")];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
