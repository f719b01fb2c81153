//! Tag indexes of compacted blocks: downloaded once, unpacked on local disk under
//! `querier.index_cache_dir`, opened (memory-mapped) and kept open while they fit in
//! `querier.index_cache_max_bytes`; the least recently used are dropped first.
//!
//! Each process uses a directory of its own (`q-<pid>`), so several queriers can share one
//! cache directory; directories of processes that no longer run are removed at start.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use skein_storage::store::{block_object, names, read_block_object};
use skein_storage::tagindex::{self, TagIndex};
use skein_storage::{BlockId, BlockMeta, Store};
use tokio::sync::Mutex as AsyncMutex;

use crate::error::Result;

#[derive(Debug)]
struct Entry {
    index: Arc<TagIndex>,
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
    max_bytes: u64,
    state: Mutex<State>,
    /// One download at a time per block.
    loading: Mutex<HashMap<BlockId, Arc<AsyncMutex<()>>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TagIndexCache {
    /// A cache under `root`, holding at most `max_bytes` of unpacked indexes.
    pub fn new(store: Store, root: &Path, max_bytes: u64) -> Self {
        let dir = root.join(format!("q-{}", std::process::id()));
        remove_stale(root);
        let _ = std::fs::remove_dir_all(&dir);
        TagIndexCache {
            store,
            dir,
            max_bytes,
            state: Mutex::new(State::default()),
            loading: Mutex::new(HashMap::new()),
        }
    }

    /// The opened tag index of `meta`'s block; `None` when the block has none, or when it
    /// cannot be read (logged: the caller falls back to scanning the block).
    pub async fn get(&self, meta: &BlockMeta) -> Option<Arc<TagIndex>> {
        meta.files.index_size?;
        if let Some(i) = self.cached(meta.block_id) {
            return Some(i);
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
                tracing::warn!(
                    block = %meta.block_id,
                    tenant = %meta.tenant,
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
        .map_err(skein_storage::Error::from)??;
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
                    evicted.push(oldest);
                }
            }
            evicted
        };
        for id in evicted {
            // Open handles keep their mapped files alive after the directory is removed.
            self.remove_block_dir(id);
        }
        Ok(index)
    }

    fn remove_block_dir(&self, id: BlockId) {
        let Ok(tenants) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for t in tenants.flatten() {
            let _ = std::fs::remove_dir_all(t.path().join(id.to_string()));
        }
    }
}

/// Removes the cache directories of processes that no longer run.
fn remove_stale(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("q-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
