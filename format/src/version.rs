//! The format version: one number for every persisted artefact.
//!
//! A block's `meta.json` names the version its objects were written in, and every other
//! artefact carries it in its header: the bloom filter and WAL segments in a version byte, the
//! tenant index in its `version` field, the tag index in its magic. Readers dispatch on that
//! number; each version's code lives in its own module (`v1`, …) and keeps reading what it
//! wrote for as long as the version is listed in [`FormatVersion::READABLE`]. A change to any
//! artefact's bytes is a new version: a new module, new golden artefacts under
//! `tests/golden/`, and a new row in `docs/block-format.md`.
//!
//! The tag index is derived data: a block's index can always be rebuilt from its
//! `data.parquet`. An index whose layout is not the one its format version writes (bundles of
//! pre-release builds) is therefore not read: the querier scans such a block and the
//! compactor rebuilds its index ([`IndexLayout`]).

use std::fmt;

use crate::error::{Error, Result};

/// A version of the on-disk format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FormatVersion {
    /// Parquet schema v1, bloom `SKBF` 1, tag index bundle `SKTAGIX5`, WAL `SKWAL` 1, tenant
    /// index 1 (`docs/block-format.md`).
    V1,
}

impl FormatVersion {
    /// The version this build writes.
    pub const CURRENT: FormatVersion = FormatVersion::V1;

    /// Every version this build reads, oldest first.
    pub const READABLE: &'static [FormatVersion] = &[FormatVersion::V1];

    /// The number stored in the artefacts.
    pub fn number(self) -> u32 {
        match self {
            FormatVersion::V1 => 1,
        }
    }

    /// The version stored as `number`, or a [`Error::Corrupt`] naming `what` and `location`
    /// that says which versions this build reads.
    pub fn from_number(number: u32, what: &'static str, location: &str) -> Result<Self> {
        Self::READABLE
            .iter()
            .copied()
            .find(|v| v.number() == number)
            .ok_or_else(|| {
                Error::corrupt(
                    what,
                    location,
                    format!(
                        "format version {number} is not supported (this build reads version {})",
                        Self::CURRENT.number()
                    ),
                )
            })
    }

    /// The layout of the tag index bundle this version writes.
    pub fn index_layout(self) -> IndexLayout {
        match self {
            FormatVersion::V1 => IndexLayout(5),
        }
    }
}

impl fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.number())
    }
}

/// The layout of a tag index bundle: the digit of its magic `SKTAGIXn`.
///
/// Layouts 1 to 3 were written by pre-release builds into blocks of format version 1; only the
/// layout of [`FormatVersion::index_layout`] is read, an index of any other layout is rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndexLayout(pub u32);

impl IndexLayout {
    /// The layout the current version writes.
    pub fn current() -> Self {
        FormatVersion::CURRENT.index_layout()
    }

    /// The layout named by the first bytes of a bundle, `None` when they are not a tag index
    /// magic at all.
    pub fn of_bundle(header: &[u8]) -> Option<Self> {
        match header {
            [b'S', b'K', b'T', b'A', b'G', b'I', b'X', d, ..] if d.is_ascii_digit() => {
                Some(IndexLayout(u32::from(d - b'0')))
            }
            _ => None,
        }
    }

    /// The bundle magic of this layout.
    pub fn magic(self) -> [u8; 8] {
        let mut magic = *b"SKTAGIX0";
        // Layouts are single digits; the modulo keeps the cast lossless.
        magic[7] = b'0' + (self.0 % 10) as u8;
        magic
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_unknown_ones_are_refused() {
        for v in FormatVersion::READABLE {
            assert_eq!(
                FormatVersion::from_number(v.number(), "x", "y").unwrap(),
                *v
            );
        }
        let e = FormatVersion::from_number(99, "meta.json", "t/b/meta.json").unwrap_err();
        assert!(
            e.to_string().contains("format version 99 is not supported"),
            "{e}"
        );
    }

    #[test]
    fn index_layouts_are_read_from_the_magic() {
        let current = IndexLayout::current();
        assert_eq!(&current.magic(), b"SKTAGIX5");
        assert_eq!(IndexLayout::of_bundle(b"SKTAGIX5rest"), Some(current));
        assert_eq!(IndexLayout::of_bundle(b"SKTAGIX3"), Some(IndexLayout(3)));
        assert_eq!(IndexLayout::of_bundle(b"SKTAGIX"), None);
        assert_eq!(IndexLayout::of_bundle(b"PAR1...."), None);
    }
}
