//! Replaying the WAL's segments at `open`: reading each segment's records back, and deciding
//! what to do with damaged content (truncate the torn tail of the last segment, skip the rest
//! of a damaged sealed one, remove segments that hold no record), as the "Durability argument"
//! in the parent module's documentation explains.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;

use bytes::Bytes;
use skein_format::FormatVersion;
use skein_format::wal::{SEGMENT_HEADER_LEN, header_version, is_torn_header};

use super::{Replayed, WalError};

/// What replay did with one segment file.
pub(super) struct SegmentOutcome {
    /// Size of the file after replay, or `None` if it was removed.
    pub(super) size: Option<u64>,
    pub(super) damaged: bool,
}

/// Appends the valid records of segment `seq` at `path` to `out`. `is_last` says whether it
/// is the last segment of the log, the only one whose tail may be torn by a crash.
pub(super) fn replay_segment(
    seq: u64,
    path: &Path,
    is_last: bool,
    fsync: bool,
    out: &mut Vec<Replayed>,
) -> Result<SegmentOutcome, WalError> {
    // Reading a whole segment at once costs no more memory than the replayed payloads, which
    // are slices of it, and needs no allocation sized by a length field from the file.
    let data = Bytes::from(fs::read(path).map_err(|e| WalError::io(path, e))?);
    let file_len = data.len() as u64;

    let Some(version) = header_version(&data) else {
        if is_last && is_torn_header(&data) {
            // The process stopped while creating this segment: no record was ever in it.
            tracing::warn!(
                segment = seq,
                path = %path.display(),
                bytes = file_len,
                "removing last wal segment with an incomplete header, \
                 it was being created when the process stopped"
            );
            remove_file(path)?;
            return Ok(SegmentOutcome {
                size: None,
                damaged: true,
            });
        }
        tracing::warn!(
            segment = seq,
            path = %path.display(),
            bytes = file_len,
            "skipping wal segment without a valid header"
        );
        return Ok(SegmentOutcome {
            size: Some(file_len),
            damaged: true,
        });
    };
    let location = path.display().to_string();
    let scan = match FormatVersion::from_number(u32::from(version), "wal segment", &location) {
        Ok(FormatVersion::V1) => skein_format::v1::wal::scan_records(&data),
        Err(_) => {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                version,
            });
        }
    };

    let records = scan.records.len();
    out.extend(scan.records.into_iter().map(|range| Replayed {
        segment: seq,
        payload: data.slice(range),
    }));
    let mut damaged = false;
    let mut end = file_len;
    if let Some((offset, damage)) = scan.damage {
        damaged = true;
        let dropped = file_len - offset as u64;
        if !is_last {
            tracing::error!(
                segment = seq,
                path = %path.display(),
                offset,
                skipped_bytes = dropped,
                records_kept = records,
                reason = damage.as_str(),
                "corrupt record in a sealed wal segment, skipping the rest of the segment"
            );
            // Left as it is, for inspection; it goes when the ingester removes the segment.
            return Ok(SegmentOutcome {
                size: Some(file_len),
                damaged,
            });
        }
        tracing::warn!(
            segment = seq,
            path = %path.display(),
            offset,
            dropped_bytes = dropped,
            records_kept = records,
            reason = damage.as_str(),
            "dropping torn or corrupt tail of the last wal segment, it was never acknowledged"
        );
        end = offset as u64;
    }
    tracing::debug!(segment = seq, records, "replayed wal segment");

    if records == 0 && end == SEGMENT_HEADER_LEN {
        // Nothing in it (a clean shutdown leaves its last segment empty). No replayed record
        // names it, so the ingester would never remove it: restarts would pile such files up.
        remove_file(path)?;
        return Ok(SegmentOutcome {
            size: None,
            damaged,
        });
    }
    if end < file_len {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| WalError::io(path, e))?;
        file.set_len(end).map_err(|e| WalError::io(path, e))?;
        if fsync {
            file.sync_all().map_err(|e| WalError::io(path, e))?;
        }
    }
    Ok(SegmentOutcome {
        size: Some(end),
        damaged,
    })
}

/// Removes a segment during replay. `open` fsyncs the directory right after, when it creates
/// the new active segment, which makes the removal durable too.
fn remove_file(path: &Path) -> Result<(), WalError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WalError::io(path, e)),
    }
}
