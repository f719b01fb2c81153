//! # skein-storage
//!
//! Access to the object store every Skein role shares, built on the objects `skein-format`
//! defines:
//!
//! - opening the store from configuration ([`StorageConfig`]): local disk, S3-compatible,
//!   memory; listing its tenants ([`store::list_tenants`]);
//! - the per-tenant block list ([`BlockList`]): metas, the tenant index, tombstones and
//!   deleting retired blocks ([`blocklist`]);
//! - per-tenant overrides, stored in the bucket and in an operator's file ([`overrides`]);
//! - leases, so that one compactor at a time works on a tenant ([`lease`]).
//!
//! ```no_run
//! # async fn example() -> skein_storage::Result<()> {
//! use std::time::Duration;
//!
//! use skein_format::TenantId;
//! use skein_storage::{BlockList, StorageConfig};
//!
//! let store = StorageConfig::Memory {}.open()?;
//! let blocks = BlockList::new(store, Duration::from_secs(30));
//! let metas = blocks.blocks(&TenantId::new("team-a")?).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

pub mod blocklist;
pub mod error;
pub mod lease;
pub mod overrides;
pub mod store;

pub use blocklist::BlockList;
pub use error::{Error, Result};
pub use store::{S3Config, StorageConfig};
