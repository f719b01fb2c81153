//! The ingester's write-ahead log: the public [`Wal`] API, its options, errors and the state
//! its handles share with the writer thread.
//!
//! Every request the ingester accepts is appended here and made durable *before* it is
//! acknowledged; after a crash the log is replayed so that nothing acknowledged is lost. The
//! payload of a record is opaque to the log (the ingester stores the tenant and the protobuf
//! request in it).
//!
//! The code is split by concern:
//!
//! - this module: [`Wal`] (open, append, rotate, segments, stats, remove, close),
//!   [`WalOptions`], [`WalError`], [`WalStats`] and the state shared by handles and writer;
//! - `writer`: the group-commit writer thread, which alone touches the active segment
//!   (batching, write and fsync, rotation, cutting back a failed write);
//! - `replay`: reading every segment back at `open` and dealing with damaged ones;
//! - `segments`: the files of the log directory (segment names, listing, creating segments,
//!   the `LOCK` file, directory fsync);
//! - `tests`: tests of the log as a whole, through the public API.
//!
//! # On-disk format
//!
//! The log is a directory of segment files named `NNNNNNNNNNNNNNNNNNNN.wal`: the segment's
//! sequence number as a zero-padded 20-digit decimal `u64`, so that names sort like numbers.
//! Numbers only grow; a number is never reused. Besides the segments the directory holds a
//! `LOCK` file, locked for as long as a [`Wal`] has the directory open, so two processes can
//! never write into one log.
//!
//! A segment is an 8-byte header (the magic `SKWAL` and the format version byte) followed by
//! records, each framed by its length and a CRC that covers the length too, so that neither a
//! zero-filled tail nor a corrupt length reads as valid records. The bytes are specified, and
//! encoded and scanned, in [`skein_format::wal`]; a record is at most [`MAX_RECORD_LEN`] bytes.
//!
//! # Group commit
//!
//! One dedicated writer thread owns the active segment. [`Wal::append`] reserves room under the
//! size cap, sends the payload with a reply channel to the writer and waits. The writer takes
//! the first queued request, drains whatever else is queued (up to
//! [`WalOptions::max_batch_bytes`]), writes the whole batch with one `write_all`, calls
//! `sync_data` once and then answers every request of the batch. While one fsync is in
//! progress the next requests queue up and share the next fsync, so the number of fsyncs per
//! second stays bounded by the disk's fsync latency while the number of appends per second
//! grows with concurrency. Rotation (size-triggered or through [`Wal::rotate`]) happens
//! between batches, on the same thread, so it never races with a write.
//!
//! # Durability argument
//!
//! *An acknowledged record survives `kill -9` (and a power loss) at any instant:*
//!
//! - A segment is created, its header written and `sync_data`ed, and then its **directory** is
//!   fsynced, all before the first record is written into it. Fsyncing a file makes its data
//!   and inode durable but not the directory entry that names it; without the directory fsync
//!   a power loss could leave a perfectly synced file that no name points to, and every record
//!   in it would be gone. For the same reason the log directory itself is fsynced into its
//!   parent when `open` creates it.
//! - `append` returns only after the `write_all` of its batch succeeded *and* the following
//!   `sync_data` returned success, so the bytes (and the file size needed to read them) are
//!   on stable storage.
//! - A `kill -9` of the process alone loses nothing that `write` accepted (the page cache
//!   belongs to the kernel); a power loss loses only what was not fsynced yet. Either way, what
//!   can be damaged is the batch in flight, whose requests were not acknowledged: the client
//!   saw no answer and retries.
//! - Batches are written strictly one after another, and the next batch starts only after the
//!   previous fsync returned. So in the last segment every acknowledged record lies before the
//!   first byte of the batch that was in flight, and the first record that fails its length
//!   or CRC check can only lie at or after that point. Replay therefore truncates the last
//!   segment at its first bad record and loses nothing acknowledged; the damage is logged with
//!   `warn!`. (Within a batch the disk may persist pages in any order, which is why nothing
//!   after the first bad record is trusted either.)
//! - A segment is sealed only between batches, after its last batch was fsynced, so a bad
//!   record in an earlier (sealed) segment is real damage to acknowledged data. It is logged
//!   with `error!` and the rest of that segment is skipped (a record stream cannot be
//!   re-framed after a corrupt length); replay continues with the next segment and the file is
//!   left untouched for inspection.
//! - A record that was written completely but not acknowledged (a crash between the write and
//!   the answer) is replayed. That is harmless: the client's retry produces identical spans,
//!   and identical duplicates are dropped on the read path and by compaction.
//! - After a failed `sync_data` the state of the page cache is unknown (the kernel may already
//!   have dropped the dirty pages it could not write), so retrying the fsync could report a
//!   success that is not one. The log then refuses every further write
//!   ([`WalError::Poisoned`]) until the process restarts and replays. A failed `write` (for
//!   example a full disk) is different: the file is cut back to the end of the last good batch
//!   and the log stays usable.
//! - Appends always go to a segment created by this run, never into a replayed one, so a
//!   segment's tail is only ever judged by the run that wrote it. Replay is idempotent: a
//!   crash during `open` leaves a log that the next `open` reads the same way.
//! - Segments holding data are only ever deleted by [`Wal::remove_segments`], which the
//!   ingester calls once the blocks covering them are durable in object storage; the active
//!   segment cannot be removed. `open` itself deletes only segments with no record in them
//!   (after a clean shutdown the last one is empty; after a crash during creation it may have
//!   a partial header).
//!
//! With [`WalOptions::fsync`] off (tests and benchmarks only) a record is acknowledged after
//! `write` returned: it survives `kill -9` of the process but not a power loss.
//!
//! # Size cap
//!
//! The sum of the sizes of all segment files plus the records accepted but not yet written is
//! kept under [`WalOptions::max_total_size`]. An append that would exceed it fails at once with
//! [`WalError::Full`], which the ingester answers with a retryable 503 / `UNAVAILABLE`; room
//! comes back when [`Wal::remove_segments`] deletes flushed segments.
//!
//! # Example
//!
//! ```no_run
//! # fn reingest(_payload: bytes::Bytes) {}
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use skein_ingester::wal::{Wal, WalOptions};
//!
//! let (wal, replayed) = Wal::open("./data/wal", WalOptions::default()).await?;
//! for record in replayed {
//!     reingest(record.payload);
//! }
//!
//! // Returns once the record is durable; the number says which segment holds it.
//! let segment = wal.append(Bytes::from_static(b"tenant and request")).await?;
//!
//! // When blocks are cut: seal the active segment, so that they cover whole segments ...
//! let sealed = wal.rotate().await?;
//! assert!(segment <= sealed);
//! // ... and once they are durable in object storage, drop every segment up to it.
//! let covered: Vec<u64> = wal
//!     .segments()
//!     .into_iter()
//!     .map(|(seq, _bytes)| seq)
//!     .filter(|&seq| seq <= sealed)
//!     .collect();
//! wal.remove_segments(&covered).await?;
//! wal.close().await;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};

use bytes::Bytes;
use skein_format::FormatVersion;
use skein_format::wal::frame_len;
use tokio::sync::oneshot;

mod replay;
mod segments;
#[cfg(test)]
mod tests;
mod writer;

use replay::replay_segment;
use segments::{
    Listing, create_dir, create_segment, list_segments, lock_dir, next_segment, segment_path,
    sync_dir,
};
use writer::{Command, Writer};

pub use skein_format::wal::{MAX_RECORD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN};

/// Settings of a [`Wal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Segments are kept under this size: before a batch that would take the active segment
    /// past it, the segment is sealed and a new one started. (A single batch larger than this
    /// still goes into one segment, alone.) Default 64 MiB.
    pub segment_size: u64,
    /// Cap on the total size of the log's segments; appends beyond it fail with
    /// [`WalError::Full`]. Default 1 GiB.
    pub max_total_size: u64,
    /// Upper bound on the bytes one group commit writes (one fsync). A single larger record
    /// still goes through, alone. Default 8 MiB.
    pub max_batch_bytes: usize,
    /// Fsync segments and the directory. Default `true`; turn it off only in tests and
    /// benchmarks, since it gives up durability across power loss.
    pub fsync: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            max_total_size: 1 << 30,
            max_batch_bytes: 8 << 20,
            fsync: true,
        }
    }
}

/// A record found by replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The segment holding the record: pass it to [`Wal::remove_segments`] once the data is
    /// durable elsewhere.
    pub segment: u64,
    /// The payload given to [`Wal::append`].
    pub payload: Bytes,
}

/// Counters for metrics. All are totals since [`Wal::open`] except `last_fsync_micros`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended and acknowledged.
    pub appends: u64,
    /// Fsyncs of batches (one per group commit when fsync is on).
    pub fsyncs: u64,
    /// Bytes written into segments by appends, record frames included.
    pub bytes_written: u64,
    /// Duration of the latest batch fsync, in microseconds.
    pub last_fsync_micros: u64,
    /// Total time spent in batch fsyncs, in microseconds.
    pub fsync_micros_total: u64,
    /// Appends refused with [`WalError::Full`].
    pub full_rejections: u64,
    /// Segment files in which `open` found a bad header, or a torn or corrupt record.
    pub replay_corruptions: u64,
}

/// Errors of the write-ahead log.
///
/// Damaged file content is not an error: replay logs it, counts it in
/// [`WalStats::replay_corruptions`] and goes on (see the module documentation).
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// A file system operation failed.
    #[error("wal i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The log has reached its size cap. Retryable once flushed segments are removed.
    #[error("wal is full: {total} of {cap} bytes in use, retry after older data is flushed")]
    Full {
        /// Bytes in use when the append was refused.
        total: u64,
        /// The configured cap.
        cap: u64,
    },
    /// The payload is larger than [`MAX_RECORD_LEN`].
    #[error("wal record of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Size of the refused payload.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// [`Wal::remove_segments`] was asked to remove the segment being written.
    #[error("wal segment {segment} is active and cannot be removed")]
    ActiveSegment {
        /// The active segment's number.
        segment: u64,
    },
    /// A segment was written by a newer format; it is not skipped, so that its records are
    /// not lost by a downgrade.
    #[error(
        "wal segment {} has format version {version}, this build reads version {}",
        path.display(),
        FormatVersion::CURRENT.number()
    )]
    UnsupportedVersion {
        /// The segment file.
        path: PathBuf,
        /// The version found in its header.
        version: u8,
    },
    /// Another [`Wal`] (in this or another process) has the directory open.
    #[error("wal directory {} is already in use by another wal", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// The log was closed.
    #[error("wal is closed")]
    Closed,
    /// An fsync failed earlier, so durability can no longer be promised; restart to replay.
    #[error("wal refuses writes after a failed fsync, restart the ingester to recover")]
    Poisoned,
}

impl WalError {
    fn io(path: &Path, source: io::Error) -> Self {
        WalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether a failed [`Wal::append`] may succeed if the client sends the same request again
    /// later (the ingester answers these with 503 / `UNAVAILABLE`; a full log, a failed disk
    /// write, or a log shutting down or broken on this ingester while another may take it).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            WalError::Full { .. } | WalError::Io { .. } | WalError::Closed | WalError::Poisoned
        )
    }
}

/// Handle to an open write-ahead log. Cheap to clone; all clones share one writer thread,
/// which stops when the last clone is dropped or [`Wal::close`] is called.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// State shared by the handles and the writer thread.
struct Shared {
    dir: PathBuf,
    cap: u64,
    fsync: bool,
    /// Number of the segment the writer appends to.
    active: AtomicU64,
    /// Sum of `segments` plus bytes reserved by appends not yet written: what the cap limits.
    accounted: AtomicU64,
    /// Every segment file in the directory, with its size.
    segments: Mutex<BTreeMap<u64, u64>>,
    poisoned: AtomicBool,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    appends: AtomicU64,
    fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    last_fsync_micros: AtomicU64,
    fsync_micros_total: AtomicU64,
    full_rejections: AtomicU64,
    replay_corruptions: AtomicU64,
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, replays it and starts a new segment for
    /// appends.
    ///
    /// Returns every valid record of every segment, in log order. Damaged content is logged
    /// and dropped as the module documentation describes. Fails if the directory cannot be
    /// read or written, if a segment has an unknown format version, or if the directory is
    /// already open.
    pub async fn open(
        dir: impl Into<PathBuf>,
        opts: WalOptions,
    ) -> Result<(Wal, Vec<Replayed>), WalError> {
        let dir = dir.into();
        let dir_for_error = dir.clone();
        run_blocking(&dir_for_error, move || open_blocking(dir, opts)).await
    }

    /// Appends `payload` as one record and returns the number of the segment holding it,
    /// once the record is written and fsynced.
    ///
    /// Fails at once, without waiting, with [`WalError::Full`] when the record does not fit
    /// under the size cap. If the returned future is dropped early the record may still be
    /// written; it was not acknowledged, so replaying it is harmless.
    pub async fn append(&self, payload: Bytes) -> Result<u64, WalError> {
        let shared = &self.inner.shared;
        if payload.len() > MAX_RECORD_LEN {
            return Err(WalError::TooLarge {
                size: payload.len(),
                max: MAX_RECORD_LEN,
            });
        }
        if shared.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        let frame = frame_len(&payload);
        shared.reserve(frame)?;
        let (reply, answer) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Append { payload, reply })
            .is_err()
        {
            shared.release(frame);
            return Err(WalError::Closed);
        }
        answer.await.unwrap_or(Err(WalError::Closed))
    }

    /// Seals the active segment and starts a new one; returns the sealed segment's number.
    ///
    /// Every record appended before this call is in the sealed segment or an earlier one.
    pub async fn rotate(&self) -> Result<u64, WalError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Rotate { reply })
            .map_err(|_| WalError::Closed)?;
        answer.await.unwrap_or(Err(WalError::Closed))
    }

    /// Deletes sealed segments, freeing their room under the size cap.
    ///
    /// Call it only once the data of these segments is durable elsewhere. The usual call
    /// removes every segment of [`Wal::segments`] up to one that [`Wal::rotate`] sealed,
    /// which also takes along damaged files that replay skipped and no record points to.
    /// Numbers that are not (or no longer) segments are ignored, so the call can be repeated.
    /// Fails without deleting anything if the list contains the active segment.
    pub async fn remove_segments(&self, segments: &[u64]) -> Result<(), WalError> {
        let shared = Arc::clone(&self.inner.shared);
        let segments = segments.to_vec();
        let dir = shared.dir.clone();
        run_blocking(&dir, move || shared.remove_segments(&segments)).await
    }

    /// The number of the segment appends currently go to.
    pub fn active_segment(&self) -> u64 {
        self.inner.shared.active.load(Ordering::Acquire)
    }

    /// Every segment file with its size in bytes, in order, the active one included.
    pub fn segments(&self) -> Vec<(u64, u64)> {
        let segments = self.inner.shared.segments();
        segments.iter().map(|(&seq, &size)| (seq, size)).collect()
    }

    /// Bytes counted against the cap: all segment files plus records accepted by
    /// [`Wal::append`] and not written yet.
    pub fn total_size(&self) -> u64 {
        self.inner.shared.accounted.load(Ordering::Acquire)
    }

    /// Current counters.
    pub fn stats(&self) -> WalStats {
        let c = &self.inner.shared.stats;
        WalStats {
            appends: c.appends.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            bytes_written: c.bytes_written.load(Ordering::Relaxed),
            last_fsync_micros: c.last_fsync_micros.load(Ordering::Relaxed),
            fsync_micros_total: c.fsync_micros_total.load(Ordering::Relaxed),
            full_rejections: c.full_rejections.load(Ordering::Relaxed),
            replay_corruptions: c.replay_corruptions.load(Ordering::Relaxed),
        }
    }

    /// Stops the writer after the requests queued before this call were answered, and
    /// releases the directory. Requests through other clones then fail with
    /// [`WalError::Closed`].
    pub async fn close(self) {
        let (done, finished) = oneshot::channel();
        if self.inner.commands.send(Command::Close { done }).is_ok() {
            // An error means the writer is already gone, which is what we wait for.
            let _ = finished.await;
        }
    }
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.inner.shared.dir)
            .field("active_segment", &self.active_segment())
            .field("total_size", &self.total_size())
            .finish()
    }
}

impl Shared {
    fn segments(&self) -> MutexGuard<'_, BTreeMap<u64, u64>> {
        // Nothing panics while holding the lock; if something did, the map is still valid.
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves room for `bytes` under the cap, or refuses with `Full`.
    fn reserve(&self, bytes: u64) -> Result<(), WalError> {
        let cap = self.cap;
        self.accounted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
                total.checked_add(bytes).filter(|&next| next <= cap)
            })
            .map(|_| ())
            .map_err(|total| {
                self.stats.full_rejections.fetch_add(1, Ordering::Relaxed);
                WalError::Full { total, cap }
            })
    }

    fn release(&self, bytes: u64) {
        self.accounted.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn remove_segments(&self, segments: &[u64]) -> Result<(), WalError> {
        // Segments below the active one are sealed for good. Anything above it does not
        // exist yet and is left alone even if a rotation creates it meanwhile.
        let active = self.active.load(Ordering::Acquire);
        if segments.contains(&active) {
            return Err(WalError::ActiveSegment { segment: active });
        }
        let mut removed = 0usize;
        for &seq in segments.iter().filter(|&&seq| seq < active) {
            // Taken out of the map first so that concurrent calls cannot both account for it.
            let Some(size) = self.segments().remove(&seq) else {
                continue;
            };
            let path = segment_path(&self.dir, seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.segments().insert(seq, size);
                    return Err(WalError::io(&path, e));
                }
            }
            self.release(size);
            removed += 1;
            tracing::debug!(segment = seq, bytes = size, "removed wal segment");
        }
        if removed > 0 && self.fsync {
            // Not needed for safety (a resurrected segment only replays data again), but it
            // keeps a crash from bringing back data that was already flushed.
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Runs blocking file work off the async runtime, keeping the caller's tracing context.
async fn run_blocking<T, F>(path: &Path, work: F) -> Result<T, WalError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, WalError> + Send + 'static,
{
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(work))
    })
    .await
    .map_err(|e| WalError::io(path, io::Error::other(e)))?
}

fn open_blocking(dir: PathBuf, opts: WalOptions) -> Result<(Wal, Vec<Replayed>), WalError> {
    create_dir(&dir, opts.fsync)?;
    let lock = lock_dir(&dir)?;
    let Listing {
        segments: found,
        highest,
    } = list_segments(&dir)?;
    let last = found.last().map(|&(seq, _)| seq);

    let mut replayed = Vec::new();
    let mut segments = BTreeMap::new();
    let mut corruptions = 0;
    for (seq, path) in &found {
        let outcome = replay_segment(*seq, path, Some(*seq) == last, opts.fsync, &mut replayed)?;
        if outcome.damaged {
            corruptions += 1;
        }
        if let Some(size) = outcome.size {
            segments.insert(*seq, size);
        }
    }
    tracing::info!(
        dir = %dir.display(),
        segments = found.len(),
        records = replayed.len(),
        damaged_segments = corruptions,
        "replayed wal"
    );

    // Appends always go to a fresh segment: a replayed one may end in a truncated tail.
    let active = match highest {
        None => 1,
        Some(seq) => next_segment(&dir, seq)?,
    };
    let file = create_segment(&dir, active, opts.fsync)?;
    segments.insert(active, SEGMENT_HEADER_LEN);
    let accounted = segments.values().sum();

    let shared = Arc::new(Shared {
        dir: dir.clone(),
        cap: opts.max_total_size,
        fsync: opts.fsync,
        active: AtomicU64::new(active),
        accounted: AtomicU64::new(accounted),
        segments: Mutex::new(segments),
        poisoned: AtomicBool::new(false),
        stats: Counters {
            replay_corruptions: AtomicU64::new(corruptions),
            ..Counters::default()
        },
    });
    let writer = Writer::new(Arc::clone(&shared), &opts, file, active, lock);
    let (commands, queue) = mpsc::channel();
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    std::thread::Builder::new()
        .name("skein-wal-writer".to_owned())
        .spawn(move || tracing::dispatcher::with_default(&dispatch, || writer.run(queue)))
        .map_err(|e| WalError::io(&dir, e))?;

    let wal = Wal {
        inner: Arc::new(Inner { commands, shared }),
    };
    Ok((wal, replayed))
}
