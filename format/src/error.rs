//! The one error type of `skein-format`.
//!
//! Variants are named after what went wrong from the caller's point of view, so that the
//! HTTP and gRPC layers can map them to status codes in one table without looking inside.

/// Errors of reading and writing Skein's objects.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input from outside (an ID, a tenant name, a parameter) is not acceptable.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was being parsed, e.g. "trace id".
        what: &'static str,
        /// Why it was refused, in words a user can act on.
        reason: String,
    },
    /// The object or block does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// An object exists but its content cannot be decoded (truncated, corrupt, wrong version).
    #[error("corrupt {what} at {location}: {reason}")]
    Corrupt {
        /// Which kind of object, e.g. "meta.json".
        what: &'static str,
        /// The object path.
        location: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A tag index of another layout than the one this build reads. The block is scanned
    /// instead, and the compactor rebuilds the index.
    #[error("tag index at {location} has layout {found}; this build reads layout {expected}")]
    IndexLayout {
        /// The object path.
        location: String,
        /// The layout of the bundle.
        found: u32,
        /// The layout this build reads.
        expected: u32,
    },
    /// A conditional write found the object already present or changed.
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// The object store failed (network, permissions, disk).
    #[error("object store: {0}")]
    ObjectStore(#[source] object_store::Error),
    /// Encoding or decoding Parquet failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Building Arrow arrays failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    /// An [`Error::InvalidInput`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// An [`Error::Corrupt`].
    pub fn corrupt(
        what: &'static str,
        location: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> Self {
        Error::Corrupt {
            what,
            location: location.to_string(),
            reason: reason.to_string(),
        }
    }

    /// True when the error means "this thing does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Error::NotFound(path),
            object_store::Error::AlreadyExists { path, .. } => {
                Error::Precondition(format!("{path} already exists"))
            }
            object_store::Error::Precondition { path, .. } => {
                Error::Precondition(format!("{path} changed"))
            }
            other => Error::ObjectStore(other),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Task(e.to_string())
    }
}

/// Result alias of the format crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
