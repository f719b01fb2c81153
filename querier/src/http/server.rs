//! Binding and serving the querier's HTTP servers: the API server and the Jaeger server, over
//! one [`TraceLookup`] built here.

use std::net::SocketAddr;

use std::sync::Arc;

use axum::Router;
use prometheus_client::registry::Registry;
use skein_format::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use skein_query::recent::RecentData;
use skein_storage::BlockList;

use super::api::{self, BuildInfo};
use super::{admin, jaeger, jaeger_v3, partial, tempo, ui};
use crate::QuerierConfig;
use crate::engine::lookup::TraceLookup;
use crate::engine::tagcache::TagIndexCache;
use crate::error::{Error, Result};

/// Where the querier serves, from the process-wide `[server]` section.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The Tempo-compatible API and the web UI.
    pub http_listen: SocketAddr,
    /// The Jaeger-compatible query API.
    pub jaeger_listen: SocketAddr,
}

const HTTP_API: &str = "http api";
const JAEGER_API: &str = "jaeger api";

/// Runs the querier role until `shutdown` is cancelled.
///
/// Both sockets are bound before anything is served, so a taken port fails the start with an
/// error that names the address instead of leaving a half-started process. On shutdown the
/// servers stop accepting connections and finish the requests in flight.
///
/// `recent` are the ingesters whose not-yet-visible data queries merge in: the in-process one
/// in the all-in-one binary.
pub async fn run(
    config: QuerierConfig,
    listeners: Listeners,
    build_info: BuildInfo,
    store: Store,
    recent: Vec<Arc<dyn RecentData>>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> Result<()> {
    let http = bind(HTTP_API, listeners.http_listen).await?;
    let jaeger = bind(JAEGER_API, listeners.jaeger_listen).await?;
    tracing::info!(
        http_listen = %http.addr,
        jaeger_listen = %jaeger.addr,
        %store,
        "querier started"
    );
    let blocks = Arc::new(BlockList::new(store.clone(), config.block_list_refresh));
    let tag_indexes = TagIndexCache::new(
        store.clone(),
        &config.index_cache_dir,
        config.index_cache_max_bytes,
    );
    let admin_router = admin::router(store.clone(), config.admin_token.clone());
    let lookup = Arc::new(TraceLookup::new(store, blocks, recent).with_tag_indexes(tag_indexes));
    let http_router = tempo::router(Arc::clone(&lookup), config.tag_lookback)
        .nest(
            "/jaeger",
            jaeger::router(Arc::clone(&lookup)).merge(jaeger_v3::router(Arc::clone(&lookup))),
        )
        .merge(ui::router())
        .merge(admin_router)
        .merge(api::router(build_info, registry));
    let jaeger_router = jaeger::router(Arc::clone(&lookup))
        .merge(jaeger_v3::router(lookup))
        .merge(api::jaeger_router());
    // Responses that left out an unreachable ingester are marked partial (see `partial`).
    let mark_partial = axum::middleware::from_fn(partial::partial_responses);
    let http_router = http_router.layer(mark_partial.clone());
    let jaeger_router = jaeger_router.layer(mark_partial);
    tokio::try_join!(
        serve(http, http_router, shutdown.clone()),
        serve(jaeger, jaeger_router, shutdown),
    )?;
    tracing::info!("querier stopped");
    Ok(())
}

/// A bound socket and what it is for.
struct Bound {
    server: &'static str,
    /// The address actually bound; it differs from the configured one when the port is 0.
    addr: SocketAddr,
    listener: TcpListener,
}

async fn bind(server: &'static str, addr: SocketAddr) -> Result<Bound> {
    let bind_error = |source| Error::Bind {
        server,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(Bound {
        server,
        addr,
        listener,
    })
}

async fn serve(bound: Bound, router: Router, shutdown: CancellationToken) -> Result<()> {
    let Bound {
        server,
        addr,
        listener,
    } = bound;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|source| Error::Serve {
            server,
            addr,
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_fails_with_an_error_naming_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = taken.local_addr().expect("local addr");
        let Err(err) = bind(HTTP_API, addr).await else {
            panic!("binding {addr} twice should fail");
        };
        let message = err.to_string();
        assert!(
            message.contains(&addr.to_string()) && message.contains("http api"),
            "the error should name the server and the address: {message}"
        );
    }
}
