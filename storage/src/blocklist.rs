//! The per-tenant block list: which blocks a tenant has and their metas.
//!
//! The object store is the truth. A block is visible when its `meta.json` exists and no
//! `tombstone.json` does. Finding them takes one listing of the tenant's prefix; reading a
//! meta per block would take one request each, so the compactor also writes a tenant index
//! object (`<tenant>/index.json.zst`) holding every meta in one zstd-compressed JSON
//! document. A refresh reads the index, lists the prefix, and fetches only the metas the
//! index and the cache do not already have (metas are immutable, so a cached one never goes
//! stale). Results are cached per tenant for a refresh interval, so queries do not list the
//! bucket.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload};
use skein_format::layout::{block_object, block_prefix, names, tenant_index, tenant_prefix};
use skein_format::tenant_index::TenantIndex;
use skein_format::tombstone::Tombstone;
use skein_format::{BlockId, BlockMeta, Store, TenantId};

use crate::error::{Error, Result};

/// Writes the tenant index object.
pub async fn write_tenant_index(
    store: &Store,
    tenant: &TenantId,
    blocks: Vec<BlockMeta>,
) -> Result<()> {
    let packed = TenantIndex::new(unix_secs(), blocks).encode()?;
    store
        .put(&tenant_index(tenant), PutPayload::from(packed))
        .await?;
    Ok(())
}

/// Reads the tenant index object; `None` when there is none.
pub async fn read_tenant_index(store: &Store, tenant: &TenantId) -> Result<Option<TenantIndex>> {
    let path = tenant_index(tenant);
    let bytes = match store.get(&path).await {
        Ok(r) => r.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(Some(TenantIndex::decode(&bytes, path.as_ref())?))
}

/// Reads one block's meta.
pub async fn read_meta(store: &Store, tenant: &TenantId, block: BlockId) -> Result<BlockMeta> {
    let path = block_object(tenant, block, names::META);
    let bytes = store.get(&path).await?.bytes().await?;
    let meta = BlockMeta::from_json(&bytes, path.as_ref())?;
    if meta.block_id != block || &meta.tenant != tenant {
        return Err(Error::corrupt(
            "meta.json",
            &path,
            "block id or tenant does not match its path",
        ));
    }
    Ok(meta)
}

/// Retires a block: it disappears from block lists at their next refresh. Its objects stay
/// until [`delete_block`], so queries already reading it finish.
pub async fn tombstone_block(
    store: &Store,
    tenant: &TenantId,
    block: BlockId,
    reason: &str,
) -> Result<()> {
    let t = Tombstone {
        created_at_unix_secs: unix_secs(),
        reason: reason.to_owned(),
    };
    store
        .put(
            &block_object(tenant, block, names::TOMBSTONE),
            PutPayload::from(t.encode()),
        )
        .await?;
    Ok(())
}

/// Deletes every object of a block: data and side files first, then the meta, the tombstone
/// last, so that a crash half way leaves an invisible block that the next cleanup finishes.
pub async fn delete_block(store: &Store, tenant: &TenantId, block: BlockId) -> Result<()> {
    let prefix = block_prefix(tenant, block);
    let objects: Vec<object_store::path::Path> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let rank = |p: &object_store::path::Path| match p.filename() {
        Some(names::TOMBSTONE) => 2,
        Some(names::META) => 1,
        _ => 0,
    };
    for stage in 0..=2 {
        for p in objects.iter().filter(|p| rank(p) == stage) {
            match store.delete(p).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// What one listing of a tenant's prefix found.
#[derive(Debug, Default, Clone)]
pub struct TenantListing {
    /// Blocks with a meta and no tombstone.
    pub live: Vec<BlockId>,
    /// Blocks with a tombstone, with its time.
    pub tombstoned: Vec<BlockId>,
    /// Block directories without a meta: being written, or left by a crash.
    pub without_meta: Vec<BlockId>,
}

/// Lists a tenant's prefix and sorts its blocks by state.
pub async fn list_tenant(store: &Store, tenant: &TenantId) -> Result<TenantListing> {
    let prefix = tenant_prefix(tenant);
    let mut seen: HashMap<BlockId, (bool, bool)> = HashMap::new();
    let mut stream = store.list(Some(&prefix));
    while let Some(obj) = stream.next().await {
        let obj = obj?;
        let mut parts = obj.location.prefix_match(&prefix).into_iter().flatten();
        let (Some(dir), Some(file)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(id) = BlockId::parse(dir.as_ref()) else {
            continue;
        };
        let entry = seen.entry(id).or_default();
        match file.as_ref() {
            names::META => entry.0 = true,
            names::TOMBSTONE => entry.1 = true,
            _ => {}
        }
    }
    let mut out = TenantListing::default();
    for (id, (meta, tomb)) in seen {
        match (meta, tomb) {
            (_, true) => out.tombstoned.push(id),
            (true, false) => out.live.push(id),
            (false, false) => out.without_meta.push(id),
        }
    }
    out.live.sort();
    out.tombstoned.sort();
    out.without_meta.sort();
    Ok(out)
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    blocks: Arc<Vec<BlockMeta>>,
}

/// Cached per-tenant lists of visible blocks.
#[derive(Debug)]
pub struct BlockList {
    store: Store,
    refresh_interval: Duration,
    tenants: Mutex<HashMap<TenantId, Cached>>,
    metas: Mutex<HashMap<BlockId, BlockMeta>>,
}

impl BlockList {
    /// A block list over `store` that refreshes a tenant's list when it is older than
    /// `refresh_interval`.
    pub fn new(store: Store, refresh_interval: Duration) -> Self {
        BlockList {
            store,
            refresh_interval,
            tenants: Mutex::new(HashMap::new()),
            metas: Mutex::new(HashMap::new()),
        }
    }

    /// The refresh interval.
    pub fn refresh_interval(&self) -> Duration {
        self.refresh_interval
    }

    /// The tenant's visible blocks, sorted by earliest span start; from the cache when fresh.
    pub async fn blocks(&self, tenant: &TenantId) -> Result<Arc<Vec<BlockMeta>>> {
        if let Some(c) = lock(&self.tenants).get(tenant)
            && c.at.elapsed() < self.refresh_interval
        {
            return Ok(Arc::clone(&c.blocks));
        }
        self.refresh(tenant).await
    }

    /// Reads the tenant's block list from the store now.
    pub async fn refresh(&self, tenant: &TenantId) -> Result<Arc<Vec<BlockMeta>>> {
        let started = Instant::now();
        // The index is an optimisation: a corrupt one is logged and ignored, never fatal.
        match read_tenant_index(&self.store, tenant).await {
            Ok(Some(index)) => {
                let mut metas = lock(&self.metas);
                for m in index.blocks {
                    if &m.tenant == tenant {
                        metas.entry(m.block_id).or_insert(m);
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%tenant, error = %e, "ignoring unreadable tenant index"),
        }
        let listing = list_tenant(&self.store, tenant).await?;
        let missing: Vec<BlockId> = {
            let metas = lock(&self.metas);
            listing
                .live
                .iter()
                .copied()
                .filter(|id| !metas.contains_key(id))
                .collect()
        };
        let fetched: Vec<Result<BlockMeta>> = futures::stream::iter(missing)
            .map(|id| read_meta(&self.store, tenant, id))
            .buffer_unordered(16)
            .collect()
            .await;
        {
            let mut metas = lock(&self.metas);
            for m in fetched {
                match m {
                    Ok(m) => {
                        metas.insert(m.block_id, m);
                    }
                    // Deleted between listing and reading: it is gone, which is fine.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => {
                        tracing::warn!(%tenant, error = %e, "skipping block with unreadable meta")
                    }
                }
            }
        }
        let live: HashSet<BlockId> = listing.live.iter().copied().collect();
        let mut blocks: Vec<BlockMeta> = {
            let metas = lock(&self.metas);
            listing
                .live
                .iter()
                .filter_map(|id| metas.get(id).cloned())
                .collect()
        };
        blocks.sort_by_key(|m| (m.min_start_unix_nano, m.block_id));
        // Forget metas of blocks that are gone, so the cache does not grow forever.
        lock(&self.metas).retain(|id, m| &m.tenant != tenant || live.contains(id));
        let blocks = Arc::new(blocks);
        lock(&self.tenants).insert(
            tenant.clone(),
            Cached {
                at: Instant::now(),
                blocks: Arc::clone(&blocks),
            },
        );
        tracing::debug!(%tenant, blocks = blocks.len(), elapsed_ms = started.elapsed().as_millis() as u64, "block list refreshed");
        Ok(blocks)
    }

    /// Drops the cached list of a tenant, so the next call refreshes.
    pub fn invalidate(&self, tenant: &TenantId) {
        lock(&self.tenants).remove(tenant);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
