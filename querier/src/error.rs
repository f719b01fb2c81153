//! The error type of `skein-querier`: what stops the querier role or fails a query in the
//! engine. The HTTP APIs answer errors with their own types, one per API family.

use std::net::SocketAddr;

/// Errors that stop the querier role.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A listening socket could not be opened, typically because the port is taken.
    #[error("cannot listen on {addr} for the {server}: {source}")]
    Bind {
        /// Which server, e.g. "http api".
        server: &'static str,
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A server stopped with an I/O error while serving.
    #[error("the {server} on {addr} failed: {source}")]
    Serve {
        /// Which server, e.g. "http api".
        server: &'static str,
        /// The address it was serving on.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Reading object storage failed.
    #[error(transparent)]
    Storage(#[from] skein_storage::Error),
    /// Reading or decoding a block failed.
    #[error(transparent)]
    Format(#[from] skein_format::Error),
    /// Asking an ingester failed.
    #[error(transparent)]
    Query(#[from] skein_query::Error),
    /// The query is not valid (a legacy search too large for TraceQL): the user's to fix.
    #[error("{0}")]
    BadQuery(String),
}

/// Result alias for the querier.
pub type Result<T, E = Error> = std::result::Result<T, E>;
