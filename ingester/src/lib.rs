//! # skein-ingester
//!
//! The write path of Skein. This crate owns everything between an OTLP client and a block
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
//! Queriers read recent data through [`Ingester`]'s [`RecentData`](skein_query::recent::RecentData)
//! implementation: in-process in the all-in-one binary, over the internal HTTP API
//! ([`internal`]) in a cluster.

#![warn(missing_docs, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod config;
pub mod grpc;
pub mod http;
pub mod ingester;
pub mod internal;
mod json;
pub mod live;
pub mod metrics;
pub mod otlp_json;
pub mod validate;
pub mod wal;
pub mod zipkin;

pub use config::{IngesterConfig, LimitsConfig, TenantLimits};
pub use ingester::{Ingester, PushError, PushOk};

/// Errors that stop the ingester role.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening address could not be bound.
    #[error("cannot listen for the {what} on {addr}: {source}")]
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The write-ahead log could not be opened.
    #[error("cannot open the write-ahead log: {0}")]
    Wal(#[from] wal::WalError),
    /// A server failed while running.
    #[error("the {what} failed: {message}")]
    Serve {
        /// Which server.
        what: &'static str,
        /// What happened.
        message: String,
    },
}

/// How long shutdown may spend flushing what the ingester holds before it leaves the rest to
/// the WAL (replayed at the next start). The process gives all roles 25 s.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// Runs the receivers, the internal API and the background cutting and flushing of an open
/// ingester until `shutdown`; then stops the receivers, flushes what it holds and returns.
/// The internal API's `/metrics` exposes `registry`.
pub async fn serve(
    ingester: Arc<Ingester>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let c = ingester.config().clone();
    let grpc_listener = bind("otlp grpc receiver", c.otlp_grpc_listen).await?;
    let http_listener = bind("otlp http receiver", c.otlp_http_listen).await?;
    let internal_listener = bind("ingester internal api", c.internal_listen).await?;
    tracing::info!(
        otlp_grpc = %grpc_listener.local_addr().map_err(|source| Error::Bind { what: "otlp grpc receiver", addr: c.otlp_grpc_listen, source })?,
        otlp_http = %http_listener.local_addr().map_err(|source| Error::Bind { what: "otlp http receiver", addr: c.otlp_http_listen, source })?,
        internal = %internal_listener.local_addr().map_err(|source| Error::Bind { what: "ingester internal api", addr: c.internal_listen, source })?,
        wal_dir = %c.wal_dir.display(),
        "ingester started"
    );

    // The background loop outlives the receivers: it flushes what they accepted.
    let background_stop = CancellationToken::new();
    let background =
        tokio::spawn(Arc::clone(&ingester).run_background(background_stop.clone(), DRAIN_TIMEOUT));

    let grpc = {
        let shutdown = shutdown.clone();
        let incoming = tonic::transport::server::TcpIncoming::from(grpc_listener);
        let svc = grpc::service(Arc::clone(&ingester));
        async move {
            tonic::transport::Server::builder()
                .layer(tower::util::MapResponseLayer::new(
                    grpc::out_of_range_is_resource_exhausted,
                ))
                .add_service(svc)
                .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                .await
                .map_err(|e| Error::Serve {
                    what: "otlp grpc receiver",
                    message: e.to_string(),
                })
        }
    };
    let http = {
        let shutdown = shutdown.clone();
        let app = http::router(Arc::clone(&ingester));
        async move {
            axum::serve(http_listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .map_err(|e| Error::Serve {
                    what: "otlp http receiver",
                    message: e.to_string(),
                })
        }
    };
    let internal = {
        let shutdown = shutdown.clone();
        let app = internal::router(Arc::clone(&ingester), registry);
        async move {
            axum::serve(internal_listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .map_err(|e| Error::Serve {
                    what: "ingester internal api",
                    message: e.to_string(),
                })
        }
    };
    let served = tokio::try_join!(grpc, http, internal);
    ingester.stop_accepting();
    background_stop.cancel();
    if let Err(e) = background.await {
        tracing::error!(error = %e, "ingester background task failed");
    }
    served?;
    tracing::info!("ingester stopped");
    Ok(())
}
