//! Tag indexes of compacted blocks: downloaded once, unpacked on local disk under
//! `querier.index_cache_dir`, opened (memory-mapped) and kept open while they fit in
//! `querier.index_cache_max_bytes`; the least recently used are dropped first.
//!
//! Each process unpacks into a directory of its own (`q-<random>`), holding a lock on its
//! `lock` file while it runs, so several queriers (processes or containers) can share one
//! cache directory. At start, directories whose lock nobody holds any more are removed; a
//! process's own is removed when it stops.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use skein_format::layout::{block_object, names, read_block_object};
use skein_format::tagindex::{self, TagIndex};
use skein_format::{BlockId, BlockMeta, Store};
use tokio::sync::Mutex as AsyncMutex;

use crate::error::Result;

#[derive(Debug)]
struct Entry {
    index: Arc<TagIndex>,
    /// Where it is unpacked.
    path: PathBuf,
    bytes: u64,
    last_used: u64,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<BlockId, Entry>,
    bytes: u64,
    clock: u64,
}

/// The cache of opened tag indexes.
#[derive(Debug)]
pub struct TagIndexCache {
    store: Store,
    dir: PathBuf,
    /// This process's directory (removed on drop) and its held lock.
    _own: Option<(tempfile::TempDir, std::fs::File)>,
    max_bytes: u64,
    state: Mutex<State>,
    /// One download at a time per block.
    loading: Mutex<HashMap<BlockId, Arc<AsyncMutex<()>>>>,
    /// Blocks whose index is corrupt or of a layout this version does not read. A block never
    /// changes, so they are scanned from then on without downloading the index again.
    unreadable: Mutex<HashSet<BlockId>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TagIndexCache {
    /// A cache under `root`, holding at most `max_bytes` of unpacked indexes.
    pub fn new(store: Store, root: &Path, max_bytes: u64) -> Self {
        remove_stale(root);
        let own = std::fs::create_dir_all(root)
            .and_then(|()| tempfile::Builder::new().prefix("q-").tempdir_in(root))
            .and_then(|dir| {
                let lock = std::fs::File::create(dir.path().join("lock"))?;
                lock.try_lock().map_err(std::io::Error::other)?;
                Ok((dir, lock))
            });
        let (dir, own) = match own {
            Ok((dir, lock)) => (dir.path().to_path_buf(), Some((dir, lock))),
            Err(e) => {
                // Loads will fail and searches scan the blocks instead: slower, still right.
                tracing::warn!(dir = %root.display(), "cannot use the tag index cache directory: {e}");
                (root.join("unusable"), None)
            }
        };
        TagIndexCache {
            store,
            dir,
            _own: own,
            max_bytes,
            state: Mutex::new(State::default()),
            loading: Mutex::new(HashMap::new()),
            unreadable: Mutex::new(HashSet::new()),
        }
    }

    /// The opened tag index of `meta`'s block; `None` when the block has none, or when it
    /// cannot be read (logged: the caller falls back to scanning the block).
    pub(crate) async fn get(&self, meta: &BlockMeta) -> Option<Arc<TagIndex>> {
        meta.files.index_size?;
        if let Some(i) = self.cached(meta.block_id) {
            return Some(i);
        }
        if lock(&self.unreadable).contains(&meta.block_id) {
            return None;
        }
        let gate = Arc::clone(
            lock(&self.loading)
                .entry(meta.block_id)
                .or_insert_with(|| Arc::new(AsyncMutex::new(()))),
        );
        let _loading = gate.lock().await;
        if let Some(i) = self.cached(meta.block_id) {
            return Some(i);
        }
        let result = self.load(meta).await;
        lock(&self.loading).remove(&meta.block_id);
        match result {
            Ok(i) => Some(i),
            Err(e) => {
                // A corrupt index, or one of another layout, stays so: remember it. Anything
                // else (the store or the local disk failing) is tried again next time.
                let permanent = matches!(
                    e,
                    crate::error::Error::Format(
                        skein_format::Error::Corrupt { .. }
                            | skein_format::Error::IndexLayout { .. }
                    )
                );
                if permanent {
                    lock(&self.unreadable).insert(meta.block_id);
                }
                tracing::warn!(
                    block = %meta.block_id,
                    tenant = %meta.tenant,
                    permanent,
                    "cannot use the block's tag index, scanning the block instead: {e}"
                );
                None
            }
        }
    }

    fn cached(&self, id: BlockId) -> Option<Arc<TagIndex>> {
        let mut st = lock(&self.state);
        st.clock += 1;
        let now = st.clock;
        let e = st.open.get_mut(&id)?;
        e.last_used = now;
        Some(Arc::clone(&e.index))
    }

    async fn load(&self, meta: &BlockMeta) -> Result<Arc<TagIndex>> {
        let bundle =
            read_block_object(&self.store, &meta.tenant, meta.block_id, names::INDEX).await?;
        let path = block_object(&meta.tenant, meta.block_id, names::INDEX);
        let dir = self
            .dir
            .join(meta.tenant.as_str())
            .join(meta.block_id.to_string());
        let unpacked = dir.clone();
        let location = path.to_string();
        let size = bundle.len() as u64;
        let index = tokio::task::spawn_blocking(move || {
            let _ = std::fs::remove_dir_all(&dir);
            let opened = tagindex::unpack(&bundle, &dir, &location)
                .and_then(|()| TagIndex::open(&dir, &location));
            if opened.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            opened
        })
        .await
        .map_err(skein_format::Error::from)??;
        let index = Arc::new(index);
        let evicted = {
            let mut st = lock(&self.state);
            st.clock += 1;
            let now = st.clock;
            st.bytes += size;
            st.open.insert(
                meta.block_id,
                Entry {
                    index: Arc::clone(&index),
                    path: unpacked,
                    bytes: size,
                    last_used: now,
                },
            );
            let mut evicted = Vec::new();
            while st.bytes > self.max_bytes && st.open.len() > 1 {
                let Some((&oldest, _)) = st
                    .open
                    .iter()
                    .filter(|(id, _)| **id != meta.block_id)
                    .min_by_key(|(_, e)| e.last_used)
                else {
                    break;
                };
                if let Some(e) = st.open.remove(&oldest) {
                    st.bytes -= e.bytes;
                    evicted.push(e.path);
                }
            }
            evicted
        };
        for path in evicted {
            // Open handles keep their mapped files alive after the directory is removed.
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(index)
    }
}

/// Removes the cache directories whose owner no longer runs: nobody holds their lock.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if !e.file_name().to_string_lossy().starts_with("q-") {
            continue;
        }
        // A directory without a lock file is being created right now; leave it.
        let Ok(lock) = std::fs::File::open(e.path().join("lock")) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            drop(lock);
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        d.sort();
        d
    }

    #[test]
    fn caches_sharing_a_directory_keep_their_own_and_clean_up_only_the_abandoned() {
        let root = tempfile::tempdir().unwrap();
        let store = skein_storage::StorageConfig::Memory {}.open().unwrap();
        // A directory left by a process that crashed: its lock file is held by nobody.
        let abandoned = root.path().join("q-left-behind");
        std::fs::create_dir_all(&abandoned).unwrap();
        std::fs::write(abandoned.join("lock"), b"").unwrap();

        let a = TagIndexCache::new(store.clone(), root.path(), 1 << 20);
        assert!(!abandoned.exists(), "the abandoned directory is removed");
        let b = TagIndexCache::new(store.clone(), root.path(), 1 << 20);
        assert_ne!(a.dir, b.dir);
        assert_eq!(
            dirs(root.path()).len(),
            2,
            "a running cache's directory is kept"
        );

        drop(a);
        assert_eq!(dirs(root.path()), vec![b.dir.clone()]);
        drop(b);
        assert!(dirs(root.path()).is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_index_is_scanned_around_and_not_downloaded_again() {
        use object_store::ObjectStoreExt;
        use skein_format::block::WriteOptions;
        use skein_format::{BlockWriter, TenantId};
        use skein_testkit::counting::CountingStore;
        use skein_testkit::synth::TraceGenerator;

        let counting = CountingStore::new(Arc::new(object_store::memory::InMemory::new()));
        let store: Store = counting.clone();
        let tenant = TenantId::new("t").unwrap();
        let spans = TraceGenerator::new(5, 1_750_000_000_000_000_000, 1_000).spans(200);
        let opts = WriteOptions {
            tag_index: true,
            ..Default::default()
        };
        let meta = BlockWriter::new(store.clone())
            .write_with(&tenant, spans, opts)
            .await
            .unwrap();
        let root = tempfile::tempdir().unwrap();
        let cache = TagIndexCache::new(store.clone(), root.path(), 1 << 30);
        assert!(cache.get(&meta).await.is_some(), "a good index opens");

        // The same block with an index of another layout (a different magic).
        let path = block_object(&tenant, meta.block_id, names::INDEX);
        let mut bundle = store
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        bundle[7] = b'0';
        store.put(&path, bundle.into()).await.unwrap();
        let cache = TagIndexCache::new(store.clone(), root.path(), 1 << 30);
        counting.reset();
        assert!(cache.get(&meta).await.is_none());
        let first = counting.snapshot().gets;
        assert!(first > 0, "the index was fetched once");
        for _ in 0..3 {
            assert!(cache.get(&meta).await.is_none());
        }
        assert_eq!(counting.snapshot().gets, first, "and not again");
    }
}
