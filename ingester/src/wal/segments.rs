//! The files of the WAL directory: segment file names (`NNNNNNNNNNNNNNNNNNNN.wal`) and their
//! numbers, listing the directory, creating a segment durably, the `LOCK` file that keeps a
//! second [`Wal`](super::Wal) out, and directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use skein_format::wal::segment_header;

use super::WalError;

const SEGMENT_SUFFIX: &str = ".wal";
const SEGMENT_NAME_DIGITS: usize = 20;
const LOCK_FILE_NAME: &str = "LOCK";

pub(super) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!(
        "{seq:0width$}{SEGMENT_SUFFIX}",
        width = SEGMENT_NAME_DIGITS
    ))
}

/// Parses `NNNNNNNNNNNNNNNNNNNN.wal`. `u64::MAX` is excluded so that a next number always exists.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&seq| seq < u64::MAX)
}

pub(super) fn next_segment(dir: &Path, seq: u64) -> Result<u64, WalError> {
    seq.checked_add(1)
        .filter(|&next| next < u64::MAX)
        .ok_or_else(|| WalError::io(dir, io::Error::other("wal segment numbers exhausted")))
}

/// What the log directory holds.
pub(super) struct Listing {
    /// Segment files, sorted by number.
    pub(super) segments: Vec<(u64, PathBuf)>,
    /// The highest number any entry is named with (a directory named like a segment included).
    pub(super) highest: Option<u64>,
}

pub(super) fn list_segments(dir: &Path) -> Result<Listing, WalError> {
    let mut found = Vec::new();
    let mut highest = None;
    for entry in fs::read_dir(dir).map_err(|e| WalError::io(dir, e))? {
        let entry = entry.map_err(|e| WalError::io(dir, e))?;
        let name = entry.file_name();
        let Some(seq) = name.to_str().and_then(parse_segment_name) else {
            if name != LOCK_FILE_NAME {
                tracing::debug!(file = ?name, "ignoring file in the wal directory");
            }
            continue;
        };
        highest = highest.max(Some(seq));
        let path = entry.path();
        // Follows symbolic links, so a linked segment is read like a plain one.
        let meta = fs::metadata(&path).map_err(|e| WalError::io(&path, e))?;
        if !meta.is_file() {
            tracing::warn!(
                path = %path.display(),
                "skipping wal segment name that is not a regular file"
            );
            continue;
        }
        found.push((seq, path));
    }
    found.sort_unstable_by_key(|&(seq, _)| seq);
    Ok(Listing {
        segments: found,
        highest,
    })
}

/// Creates the log directory; makes a newly created directory durable in its parent.
pub(super) fn create_dir(dir: &Path, fsync: bool) -> Result<(), WalError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| WalError::io(dir, e))?;
    if fsync {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        sync_dir(dir)?;
    }
    Ok(())
}

pub(super) fn lock_dir(dir: &Path) -> Result<File, WalError> {
    let path = dir.join(LOCK_FILE_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| WalError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(WalError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(WalError::io(&path, e)),
    }
}

/// Creates segment `seq` with its header and makes it durable, directory entry included.
pub(super) fn create_segment(dir: &Path, seq: u64, fsync: bool) -> Result<File, WalError> {
    let path = segment_path(dir, seq);
    let create = || -> io::Result<File> {
        // `seq` is above every number in the directory, so truncating can only discard the
        // remains of an earlier failed attempt to create this same segment.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.write_all(&segment_header())?;
        if fsync {
            file.sync_data()?;
        }
        Ok(file)
    };
    let file = match create() {
        Ok(file) => file,
        Err(e) => {
            let _ = fs::remove_file(&path);
            return Err(WalError::io(&path, e));
        }
    };
    if fsync {
        sync_dir(dir)?;
    }
    tracing::debug!(segment = seq, path = %path.display(), "created wal segment");
    Ok(file)
}

/// Makes the entries of `dir` (created, removed files) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| WalError::io(dir, e))
    }
    // Elsewhere a directory cannot be opened as a file; Skein runs on Unix-like systems.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_reject_lookalikes() {
        let dir = Path::new("/w");
        let path = segment_path(dir, 42);
        assert_eq!(path, Path::new("/w/00000000000000000042.wal"));
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_segment_name(name), Some(42));
        for bad in [
            "42.wal",
            "0000000000000000004a.wal",
            "00000000000000000042.wal.tmp",
            "+0000000000000000042.wal",
            "18446744073709551615.wal",
            "99999999999999999999.wal",
            "LOCK",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }
}
