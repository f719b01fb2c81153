//! The one error type of `skein-query`.

/// Errors of answering a query.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading blocks or decoding an answer failed.
    #[error(transparent)]
    Format(#[from] skein_format::Error),
    /// Another process (an ingester) could not be asked, or did not answer usefully.
    #[error("{0}")]
    Unavailable(String),
}

/// Result alias of the query crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
