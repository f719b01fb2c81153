//! The compactor's error type.

/// Errors of the compactor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing object storage, or a block, failed.
    #[error(transparent)]
    Storage(#[from] skein_storage::Error),
    /// Reading, decoding or writing a block failed.
    #[error(transparent)]
    Format(#[from] skein_format::Error),
    /// An input block breaks an invariant the merge relies on.
    #[error("bad input block: {0}")]
    Input(String),
    /// The job was stopped (shutdown, or the tenant's lease was lost) before it committed.
    #[error("stopped before the job committed")]
    Stopped,
    /// A document of the compactor's own (journal, lease) cannot be read.
    #[error("corrupt {what} at {location}: {reason}")]
    Corrupt {
        /// Which kind of document.
        what: &'static str,
        /// Its path.
        location: String,
        /// What is wrong.
        reason: String,
    },
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        Error::Format(e.into())
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Format(e.into())
    }
}

/// Result alias for the compactor.
pub type Result<T, E = Error> = std::result::Result<T, E>;
