//! Helpers shared by the compactor's tests: datasets with split traces and duplicates, a
//! reader of everything a tenant's visible blocks hold, and a store that "crashes".

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use skein_format::dedupe::content_key;
use skein_format::model::{canonical, spans_to_otlp};
use skein_format::{BlockMeta, BlockReader, BlockWriter, SpanRecord, Store, TenantId};
use skein_storage::BlockList;
use skein_testkit::synth::{Rng, TraceGenerator};

pub const HOUR_NS: u64 = 3_600_000_000_000;
/// 2025-06-15T12:00:00Z.
pub const BASE_NS: u64 = 1_750_000_000_000_000_000 - (1_750_000_000_000_000_000 % HOUR_NS);

pub fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

pub fn at(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// A dataset: the spans of each block to write, and the distinct spans it holds.
pub struct Dataset {
    pub blocks: Vec<Vec<SpanRecord>>,
    /// Exact copies among `blocks` (spans written twice).
    pub copies: usize,
    /// Spans that share a span ID with another span of their trace but differ.
    pub twins: usize,
}

/// `traces` traces starting at `start_ns`, 2 s apart, their spans spread over `blocks`
/// blocks so that most traces are split; about one span in ten is also written to a second
/// block (an exact copy), and one span in twenty gets a distinct twin with the same span ID.
pub fn dataset(seed: u64, start_ns: u64, traces: usize, blocks: usize) -> Dataset {
    let mut g = TraceGenerator::new(seed, start_ns, 2_000_000_000);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut out: Vec<Vec<SpanRecord>> = vec![Vec::new(); blocks];
    let (mut copies, mut twins) = (0, 0);
    for _ in 0..traces {
        let trace = g.trace(5 + rng.below(30) as usize);
        for s in trace {
            let b = rng.below(blocks as u64) as usize;
            if rng.chance(0.1) {
                let other = (b + 1 + rng.below(blocks as u64 - 1) as usize) % blocks;
                out[other].push(s.clone());
                copies += 1;
            }
            if rng.chance(0.05) {
                let mut twin = s.clone();
                twin.span.name.push_str(" (twin)");
                out[rng.below(blocks as u64) as usize].push(twin);
                twins += 1;
            }
            out[b].push(s);
        }
    }
    out.retain(|b| !b.is_empty());
    Dataset {
        blocks: out,
        copies,
        twins,
    }
}

pub async fn write_blocks(
    store: &Store,
    tenant: &TenantId,
    blocks: &[Vec<SpanRecord>],
) -> Vec<BlockMeta> {
    let w = BlockWriter::new(store.clone());
    let mut metas = Vec::new();
    for b in blocks {
        metas.push(w.write(tenant, b.clone()).await.unwrap());
    }
    metas
}

/// The visible blocks of a tenant, read from the store now.
pub async fn visible(store: &Store, tenant: &TenantId) -> Vec<BlockMeta> {
    BlockList::new(store.clone(), Duration::ZERO)
        .refresh(tenant)
        .await
        .unwrap()
        .as_ref()
        .clone()
}

/// Every span of the tenant's visible blocks, canonicalized, keyed by trace: each trace's
/// spans as sorted content keys, copies included (so a duplicate shows).
pub async fn contents(store: &Store, tenant: &TenantId) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    let mut out: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    for m in visible(store, tenant).await {
        let spans = BlockReader::open(store.clone(), m)
            .read_all()
            .await
            .unwrap();
        for s in canonical(spans_to_otlp(spans)) {
            out.entry(s.span.trace_id.clone())
                .or_default()
                .push(content_key(&s));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Like [`contents`] with copies removed: what a correct compaction must leave.
pub fn distinct(mut c: BTreeMap<Vec<u8>, Vec<Vec<u8>>>) -> BTreeMap<Vec<u8>, Vec<Vec<u8>>> {
    for v in c.values_mut() {
        v.dedup();
    }
    c
}

pub fn span_total(c: &BTreeMap<Vec<u8>, Vec<Vec<u8>>>) -> usize {
    c.values().map(Vec::len).sum()
}

/// Every object path under `prefix`.
pub async fn objects(store: &Store, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(Some(&Path::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    v.sort();
    v
}

/// A store that works for `budget` writes (puts and deletes), then fails every request, as
/// if the process had died at that point. Reads before that succeed.
#[derive(Debug)]
pub struct CrashingStore {
    inner: Store,
    budget: AtomicI64,
}

impl CrashingStore {
    pub fn new(inner: Store, budget: i64) -> Arc<Self> {
        Arc::new(CrashingStore {
            inner,
            budget: AtomicI64::new(budget),
        })
    }

    pub fn crashed(&self) -> bool {
        self.budget.load(Ordering::SeqCst) < 0
    }

    fn write(&self) -> object_store::Result<()> {
        if self.budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
            return Err(self.dead());
        }
        Ok(())
    }

    fn read(&self) -> object_store::Result<()> {
        if self.crashed() {
            return Err(self.dead());
        }
        Ok(())
    }

    fn dead(&self) -> object_store::Error {
        self.budget.store(-1, Ordering::SeqCst);
        object_store::Error::Generic {
            store: "crashing",
            source: "the process died".into(),
        }
    }
}

impl std::fmt::Display for CrashingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CrashingStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CrashingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.write()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.write()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.read()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.read()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.write().is_err() {
            return futures::stream::once(async {
                Err(object_store::Error::Generic {
                    store: "crashing",
                    source: "the process died".into(),
                })
            })
            .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if self.read().is_err() {
            return futures::stream::once(async {
                Err(object_store::Error::Generic {
                    store: "crashing",
                    source: "the process died".into(),
                })
            })
            .boxed();
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.read()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.write()?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.write()?;
        self.inner.rename_opts(from, to, options).await
    }
}

impl CrashingStore {
    /// Writes left before the "crash".
    pub fn budget_left(&self) -> i64 {
        self.budget.load(Ordering::SeqCst)
    }
}

/// Panics with a short summary (not the spans) when two contents differ.
pub fn assert_same(
    got: &BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    want: &BTreeMap<Vec<u8>, Vec<Vec<u8>>>,
    what: &str,
) {
    if got == want {
        return;
    }
    let missing_traces = want.keys().filter(|k| !got.contains_key(*k)).count();
    let extra_traces = got.keys().filter(|k| !want.contains_key(*k)).count();
    let differing = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .count();
    panic!(
        "{what}: {} spans in {} traces, want {} spans in {} traces; {missing_traces} traces missing, {extra_traces} unexpected, {differing} differ",
        span_total(got),
        got.len(),
        span_total(want),
        want.len()
    );
}
