//! Where a tenant's objects live in the bucket: the object names of a block and the paths
//! built from them.
//!
//! Everything Skein keeps lives in one object store. Paths are built here and only from
//! validated identifiers, so a tenant can never address another tenant's objects.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

use crate::ids::{BlockId, TenantId};

/// Shared handle to the object store.
pub type Store = Arc<dyn ObjectStore>;

/// Object names inside a block's directory.
pub mod names {
    /// Spans, sorted by trace ID.
    pub const DATA: &str = "data.parquet";
    /// Trace-ID bloom filter.
    pub const BLOOM: &str = "bloom";
    /// Tag index bundle, written by the compactor.
    pub const INDEX: &str = "index";
    /// The row index of a block without a tag index.
    pub const ROWS: &str = "rows";
    /// Block meta; written last, its presence makes the block visible.
    pub const META: &str = "meta.json";
    /// Marker that retires a block; written by the compactor and retention.
    pub const TOMBSTONE: &str = "tombstone.json";
    /// Per-tenant block-list index object, at the tenant's root.
    pub const TENANT_INDEX: &str = "index.json.zst";
}

/// Prefix of Skein's own objects (leases, overrides). Tenant IDs may not start with `__`, so
/// this can never collide with a tenant.
pub const SYSTEM_PREFIX: &str = "__skein";

/// The prefix holding everything of one tenant.
pub fn tenant_prefix(tenant: &TenantId) -> Path {
    Path::from(tenant.as_str())
}

/// The prefix holding one block.
pub fn block_prefix(tenant: &TenantId, block: BlockId) -> Path {
    tenant_prefix(tenant).join(block.to_string())
}

/// One object of a block, by name (see [`names`]).
pub fn block_object(tenant: &TenantId, block: BlockId, name: &str) -> Path {
    block_prefix(tenant, block).join(name)
}

/// The tenant's block-list index object.
pub fn tenant_index(tenant: &TenantId) -> Path {
    tenant_prefix(tenant).join(names::TENANT_INDEX)
}

/// The whole content of one object of a block.
pub async fn read_block_object(
    store: &Store,
    tenant: &TenantId,
    block: BlockId,
    name: &str,
) -> crate::Result<bytes::Bytes> {
    use object_store::ObjectStoreExt;
    let path = block_object(tenant, block, name);
    Ok(store.get(&path).await?.bytes().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_from_validated_ids() {
        let t = TenantId::new("team-a").unwrap();
        let b = BlockId::new();
        assert_eq!(
            block_object(&t, b, names::META).as_ref(),
            format!("team-a/{b}/meta.json")
        );
    }
}
