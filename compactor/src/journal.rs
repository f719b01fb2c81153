//! The job journal: what a compaction job is doing, so that a crash at any step can be
//! repaired.
//!
//! A job writes its journal before its first output, adds each output's block ID to it before
//! uploading that block, marks it complete once every output is written, then retires the
//! inputs and deletes the journal. So whenever a journal exists:
//!
//! - complete: every output is written; finishing means retiring the inputs;
//! - not complete: the job died part way; its outputs (each listed before it was written)
//!   are removed and the inputs stay, so nothing is lost and the job is simply redone.

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use skein_format::Store;
use skein_format::layout::{SYSTEM_PREFIX, block_object, names};
use skein_format::{BlockId, TenantId};

use crate::error::{Error, Result};

/// Version of the journal document.
pub const JOURNAL_VERSION: u32 = 1;

/// The journal of one compaction job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Document version.
    pub version: u32,
    /// The job.
    pub job_id: String,
    /// Its tenant.
    pub tenant: TenantId,
    /// Blocks being merged.
    pub inputs: Vec<BlockId>,
    /// Output blocks, each listed before it is written.
    pub outputs: Vec<BlockId>,
    /// Every output is written.
    pub complete: bool,
    /// When the job started, seconds since the epoch.
    pub created_at_unix_secs: u64,
}

/// Prefix of a tenant's journals.
pub fn journal_prefix(tenant: &TenantId) -> Path {
    Path::from(SYSTEM_PREFIX)
        .join("compactor")
        .join("jobs")
        .join(tenant.as_str())
}

impl Journal {
    /// A new journal for merging `inputs`.
    pub fn new(tenant: &TenantId, inputs: Vec<BlockId>, now_unix_secs: u64) -> Self {
        Journal {
            version: JOURNAL_VERSION,
            job_id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.clone(),
            inputs,
            outputs: Vec::new(),
            complete: false,
            created_at_unix_secs: now_unix_secs,
        }
    }

    /// Where it is stored.
    pub fn path(&self) -> Path {
        journal_prefix(&self.tenant).join(format!("{}.json", self.job_id))
    }

    /// Writes (or rewrites) it.
    pub async fn write(&self, store: &Store) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Corrupt {
            what: "journal",
            location: self.path().to_string(),
            reason: e.to_string(),
        })?;
        store.put(&self.path(), PutPayload::from(json)).await?;
        Ok(())
    }

    /// Deletes it: the job is over.
    pub async fn delete(&self, store: &Store) -> Result<()> {
        match store.delete(&self.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Every journal of a tenant.
pub async fn read_journals(store: &Store, tenant: &TenantId) -> Result<Vec<Journal>> {
    let paths: Vec<Path> = store
        .list(Some(&journal_prefix(tenant)))
        .map_ok(|m| m.location)
        .try_collect()
        .await?;
    let mut out = Vec::new();
    for path in paths {
        let bytes = match store.get(&path).await {
            Ok(r) => r.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let j: Journal = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            what: "journal",
            location: path.to_string(),
            reason: e.to_string(),
        })?;
        out.push(j);
    }
    Ok(out)
}

async fn exists(store: &Store, path: &Path) -> Result<bool> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// What finishing or undoing a journal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Inputs retired (complete jobs).
    pub inputs_retired: u64,
    /// Outputs retired or deleted (incomplete jobs).
    pub outputs_removed: u64,
}

/// Finishes a complete job, or undoes an incomplete one, then deletes the journal.
pub async fn settle(store: &Store, j: &Journal) -> Result<Settled> {
    let mut s = Settled::default();
    if j.complete {
        for &id in &j.inputs {
            let tenant = &j.tenant;
            // Already retired or deleted inputs keep their tombstone's time.
            if exists(store, &block_object(tenant, id, names::TOMBSTONE)).await?
                || !exists(store, &block_object(tenant, id, names::META)).await?
            {
                continue;
            }
            skein_storage::blocklist::tombstone_block(store, tenant, id, "compacted").await?;
            s.inputs_retired += 1;
        }
    } else {
        for &id in &j.outputs {
            let tenant = &j.tenant;
            if exists(store, &block_object(tenant, id, names::META)).await? {
                // Visible, maybe being read: retire it like any block.
                if !exists(store, &block_object(tenant, id, names::TOMBSTONE)).await? {
                    skein_storage::blocklist::tombstone_block(
                        store,
                        tenant,
                        id,
                        "compaction aborted",
                    )
                    .await?;
                }
            } else {
                // Never visible: nobody reads it.
                skein_storage::blocklist::delete_block(store, tenant, id).await?;
            }
            s.outputs_removed += 1;
        }
    }
    j.delete(store).await?;
    Ok(s)
}
