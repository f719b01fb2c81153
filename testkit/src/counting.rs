//! An object store wrapper that counts requests, for tests and benchmarks.
//!
//! Skein's read path makes promises in requests, such as "looking up a missing trace costs one
//! bloom read per block and no data read". Tests keep those promises honest by wrapping the
//! store in a [`CountingStore`] and asserting on [`CountingStore::snapshot`] and
//! [`CountingStore::reads`]. As with `object_store`'s own wrappers (limits, throttling), the
//! behaviour is added by wrapping rather than by a flag on the store.
//!
//! Counts are of what callers ask this store to do, one per logical request, whether or not it
//! succeeds. The inner store may turn one of them into several network calls (paginated
//! lists, multipart parts, bulk deletes) or several into one (coalesced ranges); those calls
//! stay inside the inner store and are not seen here.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Request counts at one moment, from [`CountingStore::snapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestCounts {
    /// GET requests: one per `get_opts` call that is not a HEAD, plus one per range passed
    /// to `get_ranges`.
    pub gets: u64,
    /// Calls to `get_ranges`, whose ranges are also counted in `gets`.
    pub get_ranges_calls: u64,
    /// Bytes returned by GETs: the length of `GetResult::range` for `get_opts`, the length
    /// of each returned buffer for `get_ranges`.
    pub get_bytes: u64,
    /// HEAD requests (`get_opts` with `head` set, as `ObjectStoreExt::head` sends).
    pub heads: u64,
    /// PUTs: `put_opts` calls, and `put_multipart_opts` calls, one per upload however many
    /// parts it has.
    pub puts: u64,
    /// Calls to `list`, `list_with_offset` and `list_with_delimiter`.
    pub lists: u64,
    /// Paths passed to `delete_stream` (one per `ObjectStoreExt::delete`).
    pub deletes: u64,
    /// Calls to `copy_opts`.
    pub copies: u64,
    /// Calls to `rename_opts`, passed to the inner store as renames (some stores rename
    /// natively, others copy and delete; that is not visible here).
    pub renames: u64,
}

/// One GET, as recorded by [`CountingStore::reads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The object path.
    pub path: String,
    /// The byte range read, `None` for a whole-object GET. For a ranged GET that succeeded it
    /// is the range the store returned; for one that failed, the range asked for when it was
    /// bounded.
    pub range: Option<Range<u64>>,
    /// Bytes returned; zero when the request failed.
    pub bytes: u64,
}

/// Counters shared with the streams this store hands out, which must be `'static`.
#[derive(Debug, Default)]
struct Counters {
    gets: AtomicU64,
    get_ranges_calls: AtomicU64,
    get_bytes: AtomicU64,
    heads: AtomicU64,
    puts: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    copies: AtomicU64,
    renames: AtomicU64,
}

impl Counters {
    fn all(&self) -> [&AtomicU64; 9] {
        [
            &self.gets,
            &self.get_ranges_calls,
            &self.get_bytes,
            &self.heads,
            &self.puts,
            &self.lists,
            &self.deletes,
            &self.copies,
            &self.renames,
        ]
    }
}

/// Adds one to a counter. Relaxed ordering is enough: each counter is independent, and
/// tests read them after the requests they count have completed.
fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// An [`ObjectStore`] that forwards every call to an inner store and counts it.
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
    reads: Mutex<Vec<ReadRecord>>,
}

impl CountingStore {
    /// Wraps `inner`. The result is an `Arc` because stores are shared as
    /// `Arc<dyn ObjectStore>`, while the test keeps its own handle to read the counts.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(CountingStore {
            inner,
            counters: Arc::default(),
            reads: Mutex::default(),
        })
    }

    /// The counts so far. Each counter is read separately, so a snapshot taken while
    /// requests are in flight may mix before and after; take it when they are done.
    pub fn snapshot(&self) -> RequestCounts {
        let c = &self.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        RequestCounts {
            gets: get(&c.gets),
            get_ranges_calls: get(&c.get_ranges_calls),
            get_bytes: get(&c.get_bytes),
            heads: get(&c.heads),
            puts: get(&c.puts),
            lists: get(&c.lists),
            deletes: get(&c.deletes),
            copies: get(&c.copies),
            renames: get(&c.renames),
        }
    }

    /// Every GET so far, in the order they completed.
    pub fn reads(&self) -> Vec<ReadRecord> {
        self.log().clone()
    }

    /// Sets all counts to zero and forgets the reads, e.g. after a test's setup writes.
    pub fn reset(&self) {
        for counter in self.counters.all() {
            counter.store(0, Ordering::Relaxed);
        }
        self.log().clear();
    }

    /// The read log. A panic while it was held cannot leave it half-updated (each update is
    /// one push or clear), so a poisoned lock is still safe to use.
    fn log(&self) -> std::sync::MutexGuard<'_, Vec<ReadRecord>> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record_read(&self, path: &Path, range: Option<Range<u64>>, bytes: u64) {
        bump(&self.counters.get_bytes, bytes);
        self.log().push(ReadRecord {
            path: path.to_string(),
            range,
            bytes,
        });
    }
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingStore({})", self.inner)
    }
}

impl fmt::Debug for CountingStore {
    // The read log can be long; the counts say enough.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingStore")
            .field("inner", &self.inner)
            .field("counts", &self.snapshot())
            .finish()
    }
}

// Every method is forwarded explicitly, defaults included: a default would call back into
// this store and count one request twice, or bypass the count when a new object_store
// release adds a method.
#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl ObjectStore for CountingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        bump(&self.counters.puts, 1);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        bump(&self.counters.puts, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            bump(&self.counters.heads, 1);
            return self.inner.get_opts(location, options).await;
        }
        bump(&self.counters.gets, 1);
        let requested = options.range.clone();
        let result = self.inner.get_opts(location, options).await;
        let (range, bytes) = match (&result, requested) {
            (Ok(got), requested) => (
                requested.map(|_| got.range.clone()),
                got.range.end.saturating_sub(got.range.start),
            ),
            (Err(_), Some(GetRange::Bounded(asked))) => (Some(asked), 0),
            (Err(_), _) => (None, 0),
        };
        self.record_read(location, range, bytes);
        result
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        bump(&self.counters.get_ranges_calls, 1);
        bump(&self.counters.gets, ranges.len() as u64);
        let result = self.inner.get_ranges(location, ranges).await;
        match &result {
            Ok(buffers) => {
                for (range, buffer) in ranges.iter().zip(buffers) {
                    self.record_read(location, Some(range.clone()), buffer.len() as u64);
                }
            }
            Err(_) => {
                for range in ranges {
                    self.record_read(location, Some(range.clone()), 0);
                }
            }
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let counters = Arc::clone(&self.counters);
        // Count each path as the inner store takes it, so that a stream that is dropped
        // early counts only what was actually sent.
        let counted = locations
            .inspect(move |location| {
                if location.is_ok() {
                    bump(&counters.deletes, 1);
                }
            })
            .boxed();
        self.inner.delete_stream(counted)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.lists, 1);
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        bump(&self.counters.lists, 1);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        bump(&self.counters.lists, 1);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        bump(&self.counters.copies, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        bump(&self.counters.renames, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn read(path: &str, range: Option<Range<u64>>, bytes: u64) -> ReadRecord {
        ReadRecord {
            path: path.to_owned(),
            range,
            bytes,
        }
    }

    #[tokio::test]
    async fn counts_each_request_exactly() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        let a = Path::from("t/a");
        let b = Path::from("t/b");
        store
            .put(&a, Bytes::from_static(b"0123456789").into())
            .await
            .unwrap();
        store.get(&a).await.unwrap().bytes().await.unwrap();
        assert_eq!(&store.get_range(&a, 2..5).await.unwrap()[..], b"234");
        let parts = store.get_ranges(&a, &[0..2, 4..6, 8..10]).await.unwrap();
        assert_eq!(parts, [&b"01"[..], b"45", b"89"]);
        assert_eq!(store.head(&a).await.unwrap().size, 10);
        let listed: Vec<_> = store
            .list(Some(&Path::from("t")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let listed: Vec<_> = store
            .list_with_offset(None, &a)
            .try_collect()
            .await
            .unwrap();
        assert!(listed.is_empty());
        store.list_with_delimiter(None).await.unwrap();
        store.copy(&a, &b).await.unwrap();
        store.delete(&b).await.unwrap();

        assert_eq!(
            store.snapshot(),
            RequestCounts {
                gets: 5,
                get_ranges_calls: 1,
                get_bytes: 10 + 3 + 6,
                heads: 1,
                puts: 1,
                lists: 3,
                deletes: 1,
                copies: 1,
                renames: 0,
            }
        );
        assert_eq!(
            store.reads(),
            [
                read("t/a", None, 10),
                read("t/a", Some(2..5), 3),
                read("t/a", Some(0..2), 2),
                read("t/a", Some(4..6), 2),
                read("t/a", Some(8..10), 2),
            ]
        );

        store.reset();
        assert_eq!(store.snapshot(), RequestCounts::default());
        assert!(store.reads().is_empty());
    }

    #[tokio::test]
    async fn failed_gets_are_counted_without_bytes() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        let missing = Path::from("missing");
        assert!(store.get(&missing).await.is_err());
        assert!(store.get_range(&missing, 0..32).await.is_err());
        assert!(store.get_ranges(&missing, &[0..1, 5..6]).await.is_err());
        assert!(store.head(&missing).await.is_err());
        let counts = store.snapshot();
        assert_eq!(
            (
                counts.gets,
                counts.get_ranges_calls,
                counts.get_bytes,
                counts.heads
            ),
            (4, 1, 0, 1)
        );
        assert_eq!(
            store.reads(),
            [
                read("missing", None, 0),
                read("missing", Some(0..32), 0),
                read("missing", Some(0..1), 0),
                read("missing", Some(5..6), 0),
            ]
        );
    }

    #[tokio::test]
    async fn multipart_rename_and_bulk_delete() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        let mut upload = store.put_multipart(&Path::from("m")).await.unwrap();
        upload
            .put_part(Bytes::from_static(b"ab").into())
            .await
            .unwrap();
        upload
            .put_part(Bytes::from_static(b"cd").into())
            .await
            .unwrap();
        upload.complete().await.unwrap();
        store
            .rename(&Path::from("m"), &Path::from("n"))
            .await
            .unwrap();
        store
            .put(&Path::from("o"), Bytes::new().into())
            .await
            .unwrap();
        let paths = futures::stream::iter([Ok(Path::from("n")), Ok(Path::from("o"))]).boxed();
        let deleted: Vec<_> = store.delete_stream(paths).try_collect().await.unwrap();
        assert_eq!(deleted.len(), 2);

        let counts = store.snapshot();
        // The inner store's copy and delete inside the rename are not seen here.
        assert_eq!(
            (counts.puts, counts.renames, counts.copies, counts.deletes),
            (2, 1, 0, 2)
        );
    }

    #[test]
    fn display_names_the_inner_store() {
        let store = CountingStore::new(Arc::new(InMemory::new()));
        assert_eq!(store.to_string(), "CountingStore(InMemory)");
        assert!(format!("{store:?}").contains("gets: 0"));
    }
}
