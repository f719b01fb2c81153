//! Tidying a tenant's prefix: deleting retired blocks after their grace period and the
//! directories that crashed writers left without a meta.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use skein_format::layout::{block_object, names, tenant_prefix};
use skein_format::tombstone::Tombstone;
use skein_format::{BlockId, Store, TenantId};
use skein_storage::blocklist::delete_block;

use crate::error::Result;

/// What one listing of a tenant's prefix says about one block directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockState {
    /// `meta.json` exists.
    pub meta: bool,
    /// `tombstone.json` exists.
    pub tombstone: bool,
    /// Newest modification time of its objects, seconds since the epoch.
    pub newest_unix_secs: i64,
}

/// Lists a tenant's block directories with their state.
pub async fn scan_tenant(
    store: &Store,
    tenant: &TenantId,
) -> Result<BTreeMap<BlockId, BlockState>> {
    let prefix = tenant_prefix(tenant);
    let objects: Vec<object_store::ObjectMeta> = store.list(Some(&prefix)).try_collect().await?;
    let mut out: BTreeMap<BlockId, BlockState> = BTreeMap::new();
    for o in objects {
        let mut parts = o.location.prefix_match(&prefix).into_iter().flatten();
        let (Some(dir), Some(file)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(id) = BlockId::parse(dir.as_ref()) else {
            continue;
        };
        let s = out.entry(id).or_default();
        match file.as_ref() {
            names::META => s.meta = true,
            names::TOMBSTONE => s.tombstone = true,
            _ => {}
        }
        s.newest_unix_secs = s.newest_unix_secs.max(o.last_modified.timestamp());
    }
    Ok(out)
}

/// Deletes retired blocks whose tombstone is older than `grace`, and block directories
/// without meta or tombstone whose newest object is older than `orphan_age`. Returns
/// (retired blocks deleted, orphans deleted).
pub async fn delete_expired(
    store: &Store,
    tenant: &TenantId,
    blocks: &BTreeMap<BlockId, BlockState>,
    now_unix_secs: i64,
    grace: Duration,
    orphan_age: Duration,
) -> Result<(u64, u64)> {
    let (mut retired, mut orphans) = (0, 0);
    for (&id, s) in blocks {
        if s.tombstone {
            let path = block_object(tenant, id, names::TOMBSTONE);
            let since = match store.get(&path).await {
                Ok(r) => match serde_json::from_slice::<Tombstone>(&r.bytes().await?) {
                    Ok(t) => t.created_at_unix_secs as i64,
                    // An unreadable tombstone still retires the block; date it by its object.
                    Err(_) => s.newest_unix_secs,
                },
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if now_unix_secs.saturating_sub(since) >= grace.as_secs() as i64 {
                delete_block(store, tenant, id).await?;
                retired += 1;
            }
        } else if !s.meta
            && now_unix_secs.saturating_sub(s.newest_unix_secs) >= orphan_age.as_secs() as i64
        {
            delete_block(store, tenant, id).await?;
            orphans += 1;
        }
    }
    Ok((retired, orphans))
}
