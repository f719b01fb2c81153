//! Leases: at most one compactor works on a tenant at a time.
//!
//! A lease is a chain of objects `__skein/compactor/leases/<tenant>/<epoch>.json`, each
//! saying who holds the tenant and until when. Only the highest epoch counts. Taking a free
//! or expired lease, renewing one's own and releasing it all create the *next* epoch's object
//! with a create-only put (`PutMode::Create`, an `If-None-Match: *` request on S3): when two
//! compactors race for the same epoch exactly one create succeeds. Create-only puts work on
//! every backend Skein supports (memory, local disk through a hard link, S3 servers with
//! conditional writes such as AWS, MinIO and SeaweedFS), while conditional *updates*
//! (`PutMode::Update`) do not work on local disk; hence a chain of new objects rather than
//! one object updated in place. Older epochs are deleted by the holder.
//!
//! Expiry is wall-clock time: compactors on hosts whose clocks differ by more than a small
//! fraction of `lease_ttl` can overlap. A holder that misses a renewal (a paused process)
//! stops before committing its current job.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use skein_format::layout::SYSTEM_PREFIX;
use skein_format::{Store, TenantId};

use crate::error::Result;

/// The content of one lease object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The compactor holding it (a random ID per process); empty once released.
    pub owner: String,
    /// Milliseconds since the epoch after which it is free.
    pub expires_at_unix_ms: u64,
}

fn lease_prefix(tenant: &TenantId) -> Path {
    Path::from(SYSTEM_PREFIX)
        .join("compactor")
        .join("leases")
        .join(tenant.as_str())
}

fn epoch_path(tenant: &TenantId, epoch: u64) -> Path {
    lease_prefix(tenant).join(format!("{epoch:020}.json"))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A held lease on one tenant.
#[derive(Debug)]
pub struct Lease {
    store: Store,
    tenant: TenantId,
    owner: String,
    ttl: Duration,
    epoch: u64,
}

/// The epochs present, sorted.
async fn epochs(store: &Store, tenant: &TenantId) -> Result<Vec<u64>> {
    let paths: Vec<Path> = store
        .list(Some(&lease_prefix(tenant)))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let mut out: Vec<u64> = paths
        .iter()
        .filter_map(|p| p.filename()?.strip_suffix(".json")?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Creates epoch `epoch`; false when another compactor created it first.
async fn create(store: &Store, tenant: &TenantId, epoch: u64, rec: &LeaseRecord) -> Result<bool> {
    let json = serde_json::to_vec(rec).unwrap_or_default();
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store
        .put_opts(&epoch_path(tenant, epoch), PutPayload::from(json), opts)
        .await
    {
        Ok(_) => Ok(true),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn delete_below(store: &Store, tenant: &TenantId, epoch: u64) {
    let Ok(list) = epochs(store, tenant).await else {
        return;
    };
    for e in list.into_iter().filter(|&e| e < epoch) {
        // Leftovers are harmless: only the highest epoch counts.
        let _ = store.delete(&epoch_path(tenant, e)).await;
    }
}

impl Lease {
    /// Takes the tenant's lease for `owner` if it is free, expired or already `owner`'s.
    /// `None` when another compactor holds it.
    pub async fn try_acquire(
        store: &Store,
        tenant: &TenantId,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>> {
        let list = epochs(store, tenant).await?;
        let next = match list.last() {
            None => 1,
            Some(&top) => {
                let bytes = match store.get(&epoch_path(tenant, top)).await {
                    Ok(r) => r.bytes().await?,
                    // Deleted by its holder after it wrote a newer one: busy.
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                // An unreadable record cannot prove it is held; treat it as expired.
                let rec: Option<LeaseRecord> = serde_json::from_slice(&bytes).ok();
                let free = rec
                    .as_ref()
                    .is_none_or(|r| r.owner == owner || r.expires_at_unix_ms <= now_ms());
                if !free {
                    return Ok(None);
                }
                top + 1
            }
        };
        let rec = LeaseRecord {
            owner: owner.to_owned(),
            expires_at_unix_ms: now_ms() + ttl.as_millis() as u64,
        };
        if !create(store, tenant, next, &rec).await? {
            return Ok(None);
        }
        delete_below(store, tenant, next).await;
        Ok(Some(Lease {
            store: store.clone(),
            tenant: tenant.clone(),
            owner: owner.to_owned(),
            ttl,
            epoch: next,
        }))
    }

    /// Extends the lease. False when it was lost (another compactor took it after it
    /// expired): the holder must stop working on the tenant.
    pub async fn renew(&mut self) -> Result<bool> {
        let rec = LeaseRecord {
            owner: self.owner.clone(),
            expires_at_unix_ms: now_ms() + self.ttl.as_millis() as u64,
        };
        if !create(&self.store, &self.tenant, self.epoch + 1, &rec).await? {
            return Ok(false);
        }
        self.epoch += 1;
        delete_below(&self.store, &self.tenant, self.epoch).await;
        Ok(true)
    }

    /// Gives the lease up so another compactor may take the tenant at once.
    pub async fn release(self) -> Result<()> {
        let rec = LeaseRecord {
            owner: String::new(),
            expires_at_unix_ms: 0,
        };
        if create(&self.store, &self.tenant, self.epoch + 1, &rec).await? {
            delete_below(&self.store, &self.tenant, self.epoch + 1).await;
        }
        Ok(())
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
}
