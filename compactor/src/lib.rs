//! # skein-compactor
//!
//! The background work of Skein. This crate will own everything that rewrites or retires
//! blocks after the ingesters have written them:
//!
//! - **Compaction**: per tenant and time window, merge small blocks into larger ones (k-way
//!   merge by trace ID, split traces combined, exact duplicate spans dropped), then write the
//!   new block with its trace-ID bloom filter and its tantivy tag index, `meta.json` last.
//! - **Retiring inputs safely**: tombstone first, delete only after a grace period long enough
//!   for every querier to have stopped reading them, so that a crash at any step loses nothing
//!   and shows no duplicate.
//! - **Retention**: a global default with per-tenant overrides, changeable while running;
//!   blocks whose newest span is older than the tenant's retention are retired the same way.
//! - **Tenant index**: the per-tenant block list queriers read instead of listing the bucket.
//! - **Sharing work**: several compactors split tenants between them with an object-store
//!   lease (conditional put), never two on one tenant.
//!
//! All formats it reads and writes are defined in `skein-storage`. None of the above is
//! implemented yet: [`run`] only reports that the role started and waits for shutdown.

use serde::{Deserialize, Serialize};
use skein_storage::Store;
use tokio_util::sync::CancellationToken;

/// The `[compactor]` section of the configuration.
///
/// It has no settings yet; compaction windows, retention and the lease come with the
/// compactor itself. The section is accepted (and unknown keys in it rejected) so that
/// configuration files can already name it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactorConfig {}

/// Runs the compactor role until `shutdown` is cancelled.
///
/// For now it compacts nothing: it logs that it started and idles.
pub async fn run(_config: CompactorConfig, store: Store, shutdown: CancellationToken) {
    tracing::warn!("compaction and retention are not implemented yet: the compactor does nothing");
    tracing::info!(%store, "compactor started");
    shutdown.cancelled().await;
    tracing::info!("compactor stopped");
}
