//! The bundle, the single object a block's tag index is stored as: the magic (`SKTAGIX5`,
//! [`IndexLayout`]), the entry count, each entry's name and size, then the entries' bytes.
//! Writing it, checking and splitting it, and unpacking it into a directory.

use std::fs;
use std::path::Path;

use super::cursor::Cursor;
use crate::error::{Error, Result};
use crate::version::IndexLayout;

/// The entry holding the table.
pub(super) const TRACES_ENTRY: &str = "traces.bin";
/// The folder of the tantivy index files, in the bundle and once unpacked.
pub(super) const TANTIVY_DIR: &str = "tantivy";

pub(super) fn write_bundle(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let total: usize = entries.iter().map(|(n, b)| n.len() + b.len() + 10).sum();
    let mut out = Vec::with_capacity(total + 12);
    out.extend_from_slice(&IndexLayout::current().magic());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (name, bytes) in entries {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    for (_, bytes) in entries {
        out.extend_from_slice(bytes);
    }
    out
}

/// Splits a bundle into its entries (name, bytes).
fn read_bundle<'a>(bundle: &'a [u8], location: &str) -> Result<Vec<(String, &'a [u8])>> {
    let corrupt = |why: &str| Error::corrupt("tag index", location, why.to_owned());
    let mut r = Cursor {
        buf: bundle,
        pos: 0,
    };
    let magic = r.take(8).ok_or_else(|| corrupt("truncated"))?;
    match IndexLayout::of_bundle(magic) {
        Some(layout) if layout == IndexLayout::current() => {}
        Some(layout) => {
            return Err(Error::IndexLayout {
                location: location.to_owned(),
                found: layout.0,
                expected: IndexLayout::current().0,
            });
        }
        None => return Err(corrupt("not a tag index bundle")),
    }
    let n = u32::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
    let mut heads = Vec::new();
    for _ in 0..n {
        let len = u16::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
        let name = r
            .take(len as usize)
            .ok_or_else(|| corrupt("truncated"))
            .and_then(|b| std::str::from_utf8(b).map_err(|_| corrupt("entry name")))?;
        let size = u64::from_le_bytes(r.array().ok_or_else(|| corrupt("truncated"))?);
        let safe = name == TRACES_ENTRY
            || name.strip_prefix("tantivy/").is_some_and(|f| {
                !f.is_empty() && !f.contains('/') && !f.contains("..") && !f.starts_with('.')
                    || f == ".managed.json"
            });
        if !safe {
            return Err(corrupt("unexpected entry name"));
        }
        heads.push((name.to_owned(), size));
    }
    let mut out = Vec::new();
    for (name, size) in heads {
        let bytes = usize::try_from(size)
            .ok()
            .and_then(|s| r.take(s))
            .ok_or_else(|| corrupt("truncated"))?;
        out.push((name, bytes));
    }
    if r.pos != bundle.len() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(out)
}

/// Writes a bundle's entries as files under `dir` (created). The directory can then be
/// opened with [`TagIndex::open`](super::TagIndex::open).
pub fn unpack(bundle: &[u8], dir: &Path, location: &str) -> Result<()> {
    let entries = read_bundle(bundle, location)?;
    let io = |e: std::io::Error| Error::Task(format!("cannot unpack tag index: {e}"));
    fs::create_dir_all(dir.join(TANTIVY_DIR)).map_err(io)?;
    for (name, bytes) in entries {
        fs::write(dir.join(name), bytes).map_err(io)?;
    }
    Ok(())
}
