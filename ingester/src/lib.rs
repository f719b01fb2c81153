//! # skein-ingester
//!
//! The write path of Skein. This crate will own everything between an OTLP client and a block
//! in object storage:
//!
//! 1. **Receivers**: OTLP gRPC (`TraceService/Export`, default `:4317`) and OTLP HTTP
//!    (`POST /v1/traces`, protobuf and JSON, gzip, default `:4318`), with the tenant taken from
//!    `X-Scope-OrgID` (`single-tenant` when absent).
//! 2. **Limits**: per-tenant request size, rate, attribute size and trace size, rejected with
//!    the status codes the OTLP specification prescribes (`partial_success` when only some spans
//!    are refused; never a silent half-accept).
//! 3. **Write-ahead log**: every accepted request is appended and made durable (group commit:
//!    one fsync covers many concurrent requests) *before* it is acknowledged, so an
//!    acknowledged span survives a `kill -9` at any instant.
//! 4. **Live traces**: spans held in memory per tenant, grouped by trace, cut to the head block
//!    when a trace goes idle or lives too long; the head block is cut by size or age.
//! 5. **Flush**: immutable blocks written to object storage with the format defined in
//!    `skein-storage` (data, bloom, meta last) with retries; WAL segments are deleted only once
//!    the block covering them is durable.
//! 6. **Serving recent data** to queriers until the flushed blocks are visible to them.
//!
//! None of that is implemented yet: [`run`] only reports that the role started and waits for
//! shutdown, and the OTLP ports are not bound. The settings below already have their final
//! names so that configuration files written today keep working.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use skein_storage::Store;
use tokio_util::sync::CancellationToken;

/// The `[ingester]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngesterConfig {
    /// Address of the OTLP gRPC receiver. Default `0.0.0.0:4317`, the OTLP standard port.
    pub otlp_grpc_listen: SocketAddr,
    /// Address of the OTLP HTTP receiver (`POST /v1/traces`). Default `0.0.0.0:4318`, the OTLP
    /// standard port.
    pub otlp_http_listen: SocketAddr,
    /// Directory of the write-ahead log. It must be on a local disk that survives restarts.
    /// Default `./data/wal`.
    pub wal_dir: PathBuf,
}

impl Default for IngesterConfig {
    fn default() -> Self {
        IngesterConfig {
            otlp_grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            otlp_http_listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
            wal_dir: PathBuf::from("./data/wal"),
        }
    }
}

/// Runs the ingester role until `shutdown` is cancelled.
///
/// For now the role receives nothing: it logs where it will listen and idles, so that the
/// process layout (roles, shutdown, configuration) can be exercised before the write path
/// exists.
pub async fn run(config: IngesterConfig, store: Store, shutdown: CancellationToken) {
    tracing::warn!(
        otlp_grpc_listen = %config.otlp_grpc_listen,
        otlp_http_listen = %config.otlp_http_listen,
        wal_dir = %config.wal_dir.display(),
        "otlp receiving is not implemented yet: the ingester binds no port and accepts no spans"
    );
    tracing::info!(%store, "ingester started");
    shutdown.cancelled().await;
    tracing::info!("ingester stopped");
}
