//! The one error type of the crate, so that every caller (the HTTP API, the querier, the
//! CLI) can point a user at the exact place in the query text that went wrong.

/// Why a query was rejected. Lines and columns are 1-based; columns count characters.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The text is not valid TraceQL.
    #[error("parse error at line {line}, col {column}: {message}")]
    Parse {
        /// Line of the offending token.
        line: usize,
        /// Column of the offending token.
        column: usize,
        /// What is wrong, lowercase, without a final period.
        message: String,
    },
    /// Valid TraceQL that Skein does not implement (metrics functions, hints, …).
    #[error("unsupported at line {line}, col {column}: {construct} is not supported")]
    Unsupported {
        /// Line where the construct starts.
        line: usize,
        /// Column where the construct starts.
        column: usize,
        /// The construct, as the user would name it (for example `rate()`).
        construct: String,
    },
}

impl Error {
    /// The line of the error, 1-based.
    pub fn line(&self) -> usize {
        match self {
            Error::Parse { line, .. } | Error::Unsupported { line, .. } => *line,
        }
    }

    /// The column of the error, 1-based, counted in characters.
    pub fn column(&self) -> usize {
        match self {
            Error::Parse { column, .. } | Error::Unsupported { column, .. } => *column,
        }
    }

    pub(crate) fn parse(pos: Pos, message: impl Into<String>) -> Self {
        Error::Parse {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(pos: Pos, construct: impl Into<String>) -> Self {
        Error::Unsupported {
            line: pos.line,
            column: pos.column,
            construct: construct.into(),
        }
    }
}

/// A position in the query text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = Error::parse(Pos { line: 2, column: 5 }, "unexpected '}'");
        assert_eq!(
            e.to_string(),
            "parse error at line 2, col 5: unexpected '}'"
        );
        assert_eq!((e.line(), e.column()), (2, 5));
        let u = Error::unsupported(Pos::START, "rate()");
        assert_eq!(
            u.to_string(),
            "unsupported at line 1, col 1: rate() is not supported"
        );
    }
}
