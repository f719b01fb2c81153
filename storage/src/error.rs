//! The one error type of `skein-storage`.
//!
//! Reading and writing objects fails the way the format's reads and writes fail, so those
//! errors are carried as they are ([`Error::Format`]); the storage layer adds only what is its
//! own: a configuration it cannot open.

/// Errors of object-store access, block lists, overrides and leases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The storage configuration is unusable.
    #[error("storage configuration: {0}")]
    Config(String),
    /// Reading or writing an object failed, or its content is not acceptable.
    #[error(transparent)]
    Format(#[from] skein_format::Error),
}

impl Error {
    /// An invalid input (see [`skein_format::Error::InvalidInput`]).
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Format(skein_format::Error::invalid(what, reason))
    }

    /// A corrupt object (see [`skein_format::Error::Corrupt`]).
    pub fn corrupt(
        what: &'static str,
        location: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> Self {
        Error::Format(skein_format::Error::corrupt(what, location, reason))
    }

    /// True when the error means "this thing does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Format(e) if e.is_not_found())
    }

    /// The format error inside, if this is one.
    pub fn as_format(&self) -> Option<&skein_format::Error> {
        match self {
            Error::Format(e) => Some(e),
            Error::Config(_) => None,
        }
    }
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

/// Result alias of the storage layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;
