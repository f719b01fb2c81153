//! The ingester's write-ahead log.
//!
//! Every request the ingester accepts is appended here and made durable *before* it is
//! acknowledged; after a crash the log is replayed so that nothing acknowledged is lost. The
//! payload of a record is opaque to the log (the ingester stores the tenant and the protobuf
//! request in it).
//!
//! # On-disk format
//!
//! The log is a directory of segment files named `NNNNNNNNNNNNNNNNNNNN.wal`: the segment's
//! sequence number as a zero-padded 20-digit decimal `u64`, so that names sort like numbers.
//! Numbers only grow; a number is never reused. Besides the segments the directory holds a
//! `LOCK` file, locked for as long as a [`Wal`] has the directory open, so two processes can
//! never write into one log.
//!
//! A segment starts with an 8-byte header: the magic `SKWAL`, the format version (`1`) and two
//! reserved zero bytes. Records follow back to back:
//!
//! ```text
//! [len: u32 LE][crc: u32 LE][payload: len bytes]
//! ```
//!
//! `crc` is CRC-32/ISO-HDLC (the zlib/Ethernet CRC, computed by `crc32fast`) over the four
//! `len` bytes followed by the payload. Covering the length as well as the payload matters: a
//! file whose tail is zero-filled (what some file systems leave after a power loss when the
//! size was updated but the data was not) would otherwise read as a run of valid empty records,
//! because the CRC of an empty payload is zero. A record is at most [`MAX_RECORD_LEN`] bytes, so
//! a corrupt length is recognised as such instead of being taken for a very long record.
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
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

/// The first five bytes of every segment.
const MAGIC: &[u8; 5] = b"SKWAL";
/// The segment format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The segment header: magic, version, two reserved zero bytes.
const SEGMENT_HEADER: [u8; 8] = [b'S', b'K', b'W', b'A', b'L', FORMAT_VERSION, 0, 0];
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: u64 = SEGMENT_HEADER.len() as u64;
/// Size of a record's frame (length and CRC) in bytes.
pub const RECORD_HEADER_LEN: u64 = 8;
/// The largest payload a record can hold (256 MiB).
pub const MAX_RECORD_LEN: usize = 256 << 20;

const SEGMENT_SUFFIX: &str = ".wal";
const SEGMENT_NAME_DIGITS: usize = 20;
const LOCK_FILE_NAME: &str = "LOCK";

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
        "wal segment {} has format version {version}, this build reads version {FORMAT_VERSION}",
        path.display()
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

type Reply = oneshot::Sender<Result<u64, WalError>>;

enum Command {
    Append { payload: Bytes, reply: Reply },
    Rotate { reply: Reply },
    Close { done: oneshot::Sender<()> },
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
    let writer = Writer {
        shared: Arc::clone(&shared),
        segment_size: opts.segment_size,
        max_batch_bytes: opts.max_batch_bytes,
        file,
        seq: active,
        size: SEGMENT_HEADER_LEN,
        buf: Vec::new(),
        _lock: lock,
    };
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

/// The writer thread's state: it alone touches the active segment.
struct Writer {
    shared: Arc<Shared>,
    segment_size: u64,
    max_batch_bytes: usize,
    file: File,
    seq: u64,
    /// Bytes in the active segment, which is also the offset of the next write.
    size: u64,
    /// Reused encoding buffer for a batch.
    buf: Vec<u8>,
    /// Held for as long as the writer runs.
    _lock: File,
}

impl Writer {
    fn run(mut self, queue: mpsc::Receiver<Command>) {
        let mut batch: Vec<(Bytes, Reply)> = Vec::new();
        let mut next: Option<Command> = None;
        loop {
            let command = match next.take() {
                Some(command) => command,
                None => match queue.recv() {
                    Ok(command) => command,
                    // Every handle is gone.
                    Err(mpsc::RecvError) => return,
                },
            };
            match command {
                Command::Append { payload, reply } => {
                    let mut bytes = frame_len(&payload);
                    batch.push((payload, reply));
                    // Group commit: take what queued up meanwhile, within the batch bound.
                    loop {
                        match queue.try_recv() {
                            Ok(Command::Append { payload, reply })
                                if bytes + frame_len(&payload) <= self.max_batch_bytes as u64 =>
                            {
                                bytes += frame_len(&payload);
                                batch.push((payload, reply));
                            }
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    // Rotating before the batch rather than after the previous one keeps the
                    // state still between appends: what an acknowledged append saw stays true.
                    if self.size > SEGMENT_HEADER_LEN
                        && self.size + bytes > self.segment_size
                        && !self.shared.poisoned.load(Ordering::Acquire)
                        && let Err(error) = self.rotate()
                    {
                        tracing::warn!(
                            %error,
                            segment = self.seq,
                            "could not rotate the wal segment, writing on into it"
                        );
                    }
                    self.commit(&mut batch);
                }
                Command::Rotate { reply } => {
                    let _ = reply.send(self.rotate());
                }
                Command::Close { done } => {
                    // Everything written was fsynced by its batch; only unblock late comers.
                    while let Ok(command) = queue.try_recv() {
                        self.refuse(command);
                    }
                    // Release the file and the directory lock before reporting completion.
                    drop(self);
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    fn refuse(&self, command: Command) {
        match command {
            Command::Append { payload, reply } => {
                self.shared.release(frame_len(&payload));
                let _ = reply.send(Err(WalError::Closed));
            }
            Command::Rotate { reply } => {
                let _ = reply.send(Err(WalError::Closed));
            }
            Command::Close { done } => {
                let _ = done.send(());
            }
        }
    }

    /// Writes and fsyncs one batch, then answers every request in it.
    fn commit(&mut self, batch: &mut Vec<(Bytes, Reply)>) {
        let path = segment_path(&self.shared.dir, self.seq);
        if self.shared.poisoned.load(Ordering::Acquire) {
            for (payload, reply) in batch.drain(..) {
                self.shared.release(frame_len(&payload));
                let _ = reply.send(Err(WalError::Poisoned));
            }
            return;
        }

        self.buf.clear();
        for (payload, _) in batch.iter() {
            encode_record(&mut self.buf, payload);
        }
        let len = self.buf.len() as u64;

        if let Err(error) = self.file.write_all(&self.buf) {
            tracing::error!(%error, path = %path.display(), "wal write failed");
            let poisoned = match self.cut_back() {
                Ok(()) => false,
                Err(cut_error) => {
                    tracing::error!(
                        error = %cut_error,
                        path = %path.display(),
                        "could not cut a failed wal write back, refusing further writes"
                    );
                    self.shared.poisoned.store(true, Ordering::Release);
                    true
                }
            };
            for (payload, reply) in batch.drain(..) {
                if !poisoned {
                    self.shared.release(frame_len(&payload));
                }
                let source = io::Error::new(error.kind(), error.to_string());
                let _ = reply.send(Err(WalError::io(&path, source)));
            }
            if poisoned {
                // Part of the batch may be in the file; count it as there.
                self.grow(len);
            }
            return;
        }
        self.grow(len);

        if self.shared.fsync {
            let started = Instant::now();
            let synced = self.file.sync_data();
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            let stats = &self.shared.stats;
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            stats.last_fsync_micros.store(micros, Ordering::Relaxed);
            stats
                .fsync_micros_total
                .fetch_add(micros, Ordering::Relaxed);
            if let Err(error) = synced {
                tracing::error!(
                    %error,
                    path = %path.display(),
                    "wal fsync failed, refusing further writes until restart"
                );
                self.shared.poisoned.store(true, Ordering::Release);
                for (_, reply) in batch.drain(..) {
                    let source = io::Error::new(error.kind(), error.to_string());
                    let _ = reply.send(Err(WalError::io(&path, source)));
                }
                return;
            }
        }

        let stats = &self.shared.stats;
        stats
            .appends
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.bytes_written.fetch_add(len, Ordering::Relaxed);
        for (_, reply) in batch.drain(..) {
            let _ = reply.send(Ok(self.seq));
        }
        // Keep one oversized batch from pinning its buffer for the rest of the run.
        if self.buf.capacity() > 2 * self.max_batch_bytes.max(1 << 20) {
            self.buf = Vec::new();
        }
    }

    /// Records that `len` more bytes are in the active segment (already reserved by append).
    fn grow(&mut self, len: u64) {
        self.size += len;
        self.shared.segments().insert(self.seq, self.size);
    }

    /// Cuts the active segment back to its last complete batch after a failed write.
    fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.size)?;
        self.file.seek(SeekFrom::Start(self.size))?;
        if self.shared.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }

    /// Seals the active segment and switches to a new one; returns the sealed number.
    fn rotate(&mut self) -> Result<u64, WalError> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(WalError::Poisoned);
        }
        // The sealed segment needs no fsync here: each batch was fsynced before its answer.
        let next = next_segment(&self.shared.dir, self.seq)?;
        let file = create_segment(&self.shared.dir, next, self.shared.fsync)?;
        self.shared.segments().insert(next, SEGMENT_HEADER_LEN);
        self.shared
            .accounted
            .fetch_add(SEGMENT_HEADER_LEN, Ordering::AcqRel);
        let sealed = std::mem::replace(&mut self.seq, next);
        self.file = file;
        self.size = SEGMENT_HEADER_LEN;
        self.shared.active.store(next, Ordering::Release);
        tracing::debug!(sealed, active = next, "rotated wal segment");
        Ok(sealed)
    }
}

fn frame_len(payload: &Bytes) -> u64 {
    RECORD_HEADER_LEN + payload.len() as u64
}

fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    // `append` refuses payloads above MAX_RECORD_LEN, which fits in a u32.
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&record_crc(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Why a segment's record stream stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Damage {
    /// Fewer bytes left than the record frame or its declared length.
    Truncated,
    /// A length above [`MAX_RECORD_LEN`].
    BadLength,
    /// The CRC does not match.
    BadChecksum,
}

impl Damage {
    fn as_str(self) -> &'static str {
        match self {
            Damage::Truncated => "record cut short",
            Damage::BadLength => "record length out of range",
            Damage::BadChecksum => "record checksum mismatch",
        }
    }
}

/// The records of a segment (after its header), as ranges of `data`.
#[derive(Debug)]
struct Scan {
    records: Vec<Range<usize>>,
    /// Where the damage starts, if the stream did not end cleanly at the end of the file.
    damage: Option<(usize, Damage)>,
}

fn scan_records(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER.len();
    let damage = loop {
        let Some(rest) = data.get(pos..) else {
            break Some((pos, Damage::Truncated));
        };
        if rest.is_empty() {
            break None;
        }
        let (Some(len), Some(crc)) = (rest.get(0..4), rest.get(4..8)) else {
            break Some((pos, Damage::Truncated));
        };
        let len: [u8; 4] = [len[0], len[1], len[2], len[3]];
        let crc = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let payload_len = u32::from_le_bytes(len) as usize;
        if payload_len > MAX_RECORD_LEN {
            break Some((pos, Damage::BadLength));
        }
        let start = pos + RECORD_HEADER_LEN as usize;
        let Some(payload) = data.get(start..start + payload_len) else {
            break Some((pos, Damage::Truncated));
        };
        if record_crc(len, payload) != crc {
            break Some((pos, Damage::BadChecksum));
        }
        records.push(start..start + payload_len);
        pos = start + payload_len;
    };
    Scan { records, damage }
}

struct SegmentOutcome {
    /// Size of the file after replay, or `None` if it was removed.
    size: Option<u64>,
    damaged: bool,
}

fn replay_segment(
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

    if data.len() < SEGMENT_HEADER.len() || data[..MAGIC.len()] != MAGIC[..] {
        let torn_creation = data.len() <= SEGMENT_HEADER.len()
            && (SEGMENT_HEADER.starts_with(&data) || data.iter().all(|&b| b == 0));
        if is_last && torn_creation {
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
    }
    let version = data[MAGIC.len()];
    if version != FORMAT_VERSION {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }

    let scan = scan_records(&data);
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

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
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

fn next_segment(dir: &Path, seq: u64) -> Result<u64, WalError> {
    seq.checked_add(1)
        .filter(|&next| next < u64::MAX)
        .ok_or_else(|| WalError::io(dir, io::Error::other("wal segment numbers exhausted")))
}

/// What the log directory holds.
struct Listing {
    /// Segment files, sorted by number.
    segments: Vec<(u64, PathBuf)>,
    /// The highest number any entry is named with (a directory named like a segment included).
    highest: Option<u64>,
}

fn list_segments(dir: &Path) -> Result<Listing, WalError> {
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
fn create_dir(dir: &Path, fsync: bool) -> Result<(), WalError> {
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

fn lock_dir(dir: &Path) -> Result<File, WalError> {
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
fn create_segment(dir: &Path, seq: u64, fsync: bool) -> Result<File, WalError> {
    let path = segment_path(dir, seq);
    let create = || -> io::Result<File> {
        // `seq` is above every number in the directory, so truncating can only discard the
        // remains of an earlier failed attempt to create this same segment.
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        file.write_all(&SEGMENT_HEADER)?;
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
fn sync_dir(dir: &Path) -> Result<(), WalError> {
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
    use std::collections::HashMap;
    use std::time::Duration;

    use proptest::prelude::*;
    use tracing::Level;

    use super::*;

    /// Collects log events, so tests can check that damage is reported.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

    impl Capture {
        /// Captures the events of this thread and of the work `Wal` sends to other threads.
        fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
            let capture = Capture::default();
            let guard = tracing::subscriber::set_default(capture.clone());
            (capture, guard)
        }

        fn at(&self, level: Level) -> Vec<String> {
            let events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            events
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, text)| text.clone())
                .collect()
        }

        fn clear(&self) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    impl tracing::Subscriber for Capture {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            let mut text = String::new();
            event.record(&mut FieldText(&mut text));
            let mut events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            events.push((*event.metadata().level(), text));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    struct FieldText<'a>(&'a mut String);

    impl tracing::field::Visit for FieldText<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{}={:?} ", field.name(), value);
        }
    }

    fn fast() -> WalOptions {
        WalOptions {
            fsync: false,
            ..WalOptions::default()
        }
    }

    async fn open(dir: &Path, opts: WalOptions) -> (Wal, Vec<Replayed>) {
        Wal::open(dir, opts).await.expect("open wal")
    }

    fn payloads(replayed: &[Replayed]) -> Vec<Bytes> {
        replayed.iter().map(|r| r.payload.clone()).collect()
    }

    fn record(i: usize) -> Bytes {
        Bytes::from(format!("record {i:04} {}", "x".repeat(90)))
    }

    async fn append_all(wal: &Wal, records: &[Bytes]) {
        for r in records {
            wal.append(r.clone()).await.expect("append");
        }
    }

    fn file_len(path: &Path) -> u64 {
        fs::metadata(path).expect("stat segment").len()
    }

    #[test]
    fn wal_is_send_sync_and_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Wal>();
        check::<WalError>();
    }

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

    #[test]
    fn zero_filled_bytes_are_not_valid_records() {
        // Without the length inside the CRC, eight zero bytes would be a valid empty record.
        let mut data = SEGMENT_HEADER.to_vec();
        data.extend_from_slice(&[0; 64]);
        let scan = scan_records(&data);
        assert!(scan.records.is_empty());
        assert_eq!(scan.damage, Some((8, Damage::BadChecksum)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_fsyncs_and_replay_in_order() {
        const TASKS: usize = 64;
        const PER_TASK: usize = 50;
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        assert!(replayed.is_empty());

        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let wal = wal.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let payload = Bytes::from(format!("{task:02}:{i:03}:{}", "p".repeat(task * 7)));
                    wal.append(payload).await.expect("append");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }

        let stats = wal.stats();
        assert_eq!(stats.appends, (TASKS * PER_TASK) as u64);
        assert!(stats.fsyncs >= 1);
        assert!(
            stats.fsyncs < stats.appends,
            "no group commit: {} fsyncs for {} appends",
            stats.fsyncs,
            stats.appends
        );
        assert_eq!(stats.bytes_written + SEGMENT_HEADER_LEN, wal.total_size());
        wal.close().await;

        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(replayed.len(), TASKS * PER_TASK);
        let mut per_task: HashMap<usize, Vec<usize>> = HashMap::new();
        for r in &replayed {
            assert_eq!(r.segment, 1);
            let text = std::str::from_utf8(&r.payload).expect("utf-8");
            let mut parts = text.split(':');
            let task: usize = parts.next().and_then(|t| t.parse().ok()).expect("task");
            let i: usize = parts.next().and_then(|i| i.parse().ok()).expect("index");
            assert_eq!(parts.next(), Some("p".repeat(task * 7).as_str()));
            per_task.entry(task).or_default().push(i);
        }
        assert_eq!(per_task.len(), TASKS);
        for (task, seen) in per_task {
            assert_eq!(seen, (0..PER_TASK).collect::<Vec<_>>(), "task {task}");
        }
        assert_eq!(wal.active_segment(), 2);
        wal.close().await;
    }

    /// Writes ten records, damages the last one, and checks recovery and a second restart.
    async fn check_torn_tail(damage: impl FnOnce(&Path, u64)) {
        let dir = tempfile::tempdir().expect("tempdir");
        let records: Vec<Bytes> = (0..10).map(record).collect();
        let (wal, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, &records).await;
        wal.close().await;

        let segment = segment_path(dir.path(), 1);
        let last_record = file_len(&segment) - frame_len(&records[9]);
        damage(&segment, last_record);

        let (capture, _guard) = Capture::install();
        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(payloads(&replayed), records[..9]);
        let warnings = capture.at(Level::WARN);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("torn or corrupt tail"), "{warnings:?}");
        assert_eq!(file_len(&segment), last_record, "tail not truncated");
        assert_eq!(wal.stats().replay_corruptions, 1);
        assert_eq!(wal.active_segment(), 2);

        let fresh: Vec<Bytes> = (100..103).map(record).collect();
        append_all(&wal, &fresh).await;
        wal.close().await;

        capture.clear();
        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        let mut expected = records[..9].to_vec();
        expected.extend(fresh);
        assert_eq!(payloads(&replayed), expected);
        assert!(capture.at(Level::WARN).is_empty(), "damage reported twice");
        assert_eq!(wal.stats().replay_corruptions, 0);
        wal.close().await;
    }

    #[tokio::test]
    async fn torn_tail_is_dropped_and_truncated() {
        check_torn_tail(|path, last_record| {
            let file = OpenOptions::new().write(true).open(path).expect("open");
            file.set_len(last_record + 30).expect("truncate");
        })
        .await;
    }

    #[tokio::test]
    async fn torn_tail_inside_the_frame_is_dropped() {
        check_torn_tail(|path, last_record| {
            let file = OpenOptions::new().write(true).open(path).expect("open");
            file.set_len(last_record + 3).expect("truncate");
        })
        .await;
    }

    #[tokio::test]
    async fn corrupt_last_record_is_dropped_and_truncated() {
        check_torn_tail(|path, last_record| {
            flip_byte(path, last_record + RECORD_HEADER_LEN + 17);
        })
        .await;
    }

    #[tokio::test]
    async fn corrupt_length_of_last_record_is_dropped() {
        check_torn_tail(|path, last_record| {
            let mut data = fs::read(path).expect("read");
            let at = last_record as usize;
            data[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            fs::write(path, data).expect("write");
        })
        .await;
    }

    #[tokio::test]
    async fn zero_filled_tail_is_dropped() {
        check_torn_tail(|path, last_record| {
            // What a file system may leave after a crash: the size grew, the data did not land.
            let mut data = fs::read(path).expect("read");
            data.truncate(last_record as usize);
            data.extend_from_slice(&[0; 4096]);
            fs::write(path, data).expect("write");
        })
        .await;
    }

    fn flip_byte(path: &Path, offset: u64) {
        let mut data = fs::read(path).expect("read");
        data[offset as usize] ^= 0x40;
        fs::write(path, data).expect("write");
    }

    #[tokio::test]
    async fn restarts_without_appends_leave_no_empty_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..3 {
            let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
            assert!(replayed.is_empty());
            wal.close().await;
        }
        let (wal, _) = open(dir.path(), WalOptions::default()).await;
        assert_eq!(wal.segments(), [(4, SEGMENT_HEADER_LEN)]);
        assert_eq!(wal.total_size(), SEGMENT_HEADER_LEN);
        let files = fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(files, 2, "the active segment and the lock file");
        wal.close().await;
    }

    #[tokio::test]
    async fn last_segment_whose_only_record_is_torn_is_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), WalOptions::default()).await;
        wal.append(record(0)).await.expect("append");
        wal.close().await;
        let segment = segment_path(dir.path(), 1);
        let file = OpenOptions::new().write(true).open(&segment).expect("open");
        file.set_len(SEGMENT_HEADER_LEN + 5).expect("truncate");

        let (capture, _guard) = Capture::install();
        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        assert!(replayed.is_empty());
        assert_eq!(capture.at(Level::WARN).len(), 1);
        assert!(!segment.exists());
        assert_eq!(wal.segments(), [(2, SEGMENT_HEADER_LEN)]);
        wal.close().await;
    }

    #[tokio::test]
    async fn corruption_in_a_sealed_segment_skips_only_its_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first: Vec<Bytes> = (0..5).map(record).collect();
        let second: Vec<Bytes> = (5..10).map(record).collect();
        let (wal, _) = open(dir.path(), WalOptions::default()).await;
        append_all(&wal, &first).await;
        assert_eq!(wal.rotate().await.expect("rotate"), 1);
        append_all(&wal, &second).await;
        wal.close().await;

        // Damage the third record of segment 1.
        let sealed = segment_path(dir.path(), 1);
        let third = SEGMENT_HEADER_LEN + frame_len(&first[0]) + frame_len(&first[1]);
        flip_byte(&sealed, third + RECORD_HEADER_LEN + 3);
        let sealed_len = file_len(&sealed);

        let (capture, _guard) = Capture::install();
        let (wal, replayed) = open(dir.path(), WalOptions::default()).await;
        let mut expected = first[..2].to_vec();
        expected.extend(second);
        assert_eq!(payloads(&replayed), expected);
        let segments: Vec<u64> = replayed.iter().map(|r| r.segment).collect();
        assert_eq!(segments, [1, 1, 2, 2, 2, 2, 2]);
        let errors = capture.at(Level::ERROR);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("sealed wal segment"), "{errors:?}");
        assert_eq!(
            file_len(&sealed),
            sealed_len,
            "a sealed segment must be left as it is"
        );
        assert_eq!(wal.active_segment(), 3);
        wal.close().await;
    }

    #[tokio::test]
    async fn segments_rotate_by_size_and_can_be_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = WalOptions {
            segment_size: 1000,
            ..WalOptions::default()
        };
        let records: Vec<Bytes> = (0..30).map(record).collect();
        let (wal, _) = open(dir.path(), opts.clone()).await;
        let mut holders = Vec::new();
        for r in &records {
            holders.push(wal.append(r.clone()).await.expect("append"));
        }
        let segments = wal.segments();
        assert!(segments.len() > 2, "{segments:?}");
        let active = wal.active_segment();
        assert_eq!(segments.last().map(|s| s.0), Some(active));
        for &(seq, size) in &segments {
            assert_eq!(size, file_len(&segment_path(dir.path(), seq)));
            if seq != active {
                // Sequential appends make one-record batches, so a sealed segment is filled to
                // within one record of the size.
                assert!(
                    size <= 1000 && size + frame_len(&records[0]) > 1000,
                    "{seq}: {size}"
                );
            }
        }
        assert_eq!(wal.total_size(), segments.iter().map(|s| s.1).sum::<u64>());
        assert!(holders.windows(2).all(|w| w[0] <= w[1]));

        // The active segment is refused, and nothing else is removed by that call.
        let all: Vec<u64> = segments.iter().map(|s| s.0).collect();
        let refused = wal.remove_segments(&all).await;
        assert!(
            matches!(refused, Err(WalError::ActiveSegment { segment }) if segment == active),
            "{refused:?}"
        );
        assert_eq!(wal.segments(), segments);

        let sealed: Vec<u64> = all.iter().copied().filter(|&s| s != active).collect();
        wal.remove_segments(&sealed).await.expect("remove");
        for &seq in &sealed {
            assert!(!segment_path(dir.path(), seq).exists());
        }
        let left = wal.segments();
        assert_eq!(left.len(), 1);
        assert_eq!(wal.total_size(), left[0].1);
        // Removing again is a no-op.
        wal.remove_segments(&sealed).await.expect("remove again");

        // An explicit rotation seals the active segment.
        let sealed_now = wal.rotate().await.expect("rotate");
        assert_eq!(sealed_now, active);
        assert_eq!(wal.active_segment(), active + 1);
        wal.close().await;

        let kept: Vec<Bytes> = records
            .iter()
            .zip(&holders)
            .filter(|&(_, &h)| h == active)
            .map(|(r, _)| r.clone())
            .collect();
        let (wal, replayed) = open(dir.path(), opts).await;
        assert_eq!(payloads(&replayed), kept);
        wal.close().await;
    }

    #[tokio::test]
    async fn full_log_refuses_appends_until_segments_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = frame_len(&record(0));
        let opts = WalOptions {
            max_total_size: SEGMENT_HEADER_LEN + 10 * one,
            ..WalOptions::default()
        };
        let (wal, _) = open(dir.path(), opts).await;
        for i in 0..10 {
            wal.append(record(i)).await.expect("append under the cap");
        }
        let refused = tokio::time::timeout(Duration::from_secs(5), wal.append(record(10)))
            .await
            .expect("a full wal must answer at once");
        match refused {
            Err(WalError::Full { total, cap }) => {
                assert_eq!(total, SEGMENT_HEADER_LEN + 10 * one);
                assert_eq!(cap, SEGMENT_HEADER_LEN + 10 * one);
            }
            other => panic!("expected full, got {other:?}"),
        }
        let refused = wal.append(Bytes::new()).await;
        assert!(matches!(refused, Err(WalError::Full { .. })), "{refused:?}");
        assert!(refused.is_err_and(|e| e.is_retryable()));
        assert_eq!(wal.stats().full_rejections, 2);

        let sealed = wal.rotate().await.expect("rotate");
        wal.remove_segments(&[sealed]).await.expect("remove");
        assert_eq!(wal.total_size(), SEGMENT_HEADER_LEN);
        wal.append(record(10)).await.expect("append after removal");
        wal.close().await;
    }

    #[tokio::test]
    async fn oversized_record_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), fast()).await;
        let huge = Bytes::from(vec![0u8; MAX_RECORD_LEN + 1]);
        let refused = wal.append(huge).await;
        assert!(
            matches!(
                refused,
                Err(WalError::TooLarge { size, max })
                    if size == MAX_RECORD_LEN + 1 && max == MAX_RECORD_LEN
            ),
            "{refused:?}"
        );
        assert!(refused.is_err_and(|e| !e.is_retryable()));
        wal.close().await;
    }

    #[tokio::test]
    async fn closed_wal_refuses_work_and_releases_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), fast()).await;
        let other = wal.clone();
        let refused = Wal::open(dir.path(), fast()).await;
        assert!(
            matches!(refused, Err(WalError::Locked { .. })),
            "{refused:?}"
        );

        wal.close().await;
        let refused = other.append(record(0)).await;
        assert!(matches!(refused, Err(WalError::Closed)), "{refused:?}");
        assert!(matches!(other.rotate().await, Err(WalError::Closed)));
        let (again, _) = open(dir.path(), fast()).await;
        again.close().await;
    }

    #[tokio::test]
    async fn writer_stops_when_the_last_handle_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = open(dir.path(), fast()).await;
        wal.append(record(0)).await.expect("append");
        drop(wal);
        // The writer notices the closed channel and releases the lock soon after.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Wal::open(dir.path(), fast()).await {
                Ok((wal, replayed)) => {
                    assert_eq!(payloads(&replayed), [record(0)]);
                    wal.close().await;
                    break;
                }
                Err(WalError::Locked { .. }) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("writer did not stop: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn garbage_files_are_logged_and_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good: Vec<Bytes> = (0..3).map(record).collect();
        let (wal, _) = open(dir.path(), fast()).await;
        append_all(&wal, &good).await;
        wal.close().await;
        // Segment 1 is good. Then: random bytes, empty, wrong magic with valid records, a
        // directory named like a segment, an unrelated file, and an empty last segment.
        let mut valid_body = Vec::new();
        encode_record(&mut valid_body, b"lost");
        let mut wrong_magic = b"XXWAL\x01\x00\x00".to_vec();
        wrong_magic.extend_from_slice(&valid_body);
        fs::write(
            segment_path(dir.path(), 2),
            b"\xde\xad\xbe\xef random bytes that are no wal",
        )
        .expect("write");
        fs::write(segment_path(dir.path(), 3), b"").expect("write");
        fs::write(segment_path(dir.path(), 4), &wrong_magic).expect("write");
        fs::create_dir(segment_path(dir.path(), 5)).expect("mkdir");
        fs::write(dir.path().join("notes.txt"), b"hello").expect("write");
        fs::write(segment_path(dir.path(), 6), b"SKW").expect("write");

        let (capture, _guard) = Capture::install();
        let (wal, replayed) = open(dir.path(), fast()).await;
        assert_eq!(payloads(&replayed), good);
        let warnings = capture.at(Level::WARN).join("\n");
        for seq in [2, 3, 4] {
            let name = format!("segment={seq} ");
            assert!(warnings.contains(&name), "no warning for {seq}: {warnings}");
        }
        assert!(warnings.contains("not a regular file"), "{warnings}");
        assert!(warnings.contains("incomplete header"), "{warnings}");
        assert!(
            !segment_path(dir.path(), 6).exists(),
            "torn new segment kept"
        );
        assert!(
            segment_path(dir.path(), 4).exists(),
            "unknown content must be kept"
        );
        // Numbers go on after the highest name, the directory's included.
        assert_eq!(wal.active_segment(), 7);
        let listed: Vec<u64> = wal.segments().iter().map(|s| s.0).collect();
        assert_eq!(listed, [1, 2, 3, 4, 7]);
        assert_eq!(wal.stats().replay_corruptions, 4);

        wal.append(record(9)).await.expect("append");
        // Skipped files can be removed like any sealed segment.
        wal.remove_segments(&[2, 3, 4]).await.expect("remove");
        assert!(!segment_path(dir.path(), 4).exists());
        wal.close().await;
    }

    #[tokio::test]
    async fn newer_format_version_is_an_error_not_a_skip() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(segment_path(dir.path(), 1), b"SKWAL\x02\x00\x00").expect("write");
        let refused = Wal::open(dir.path(), fast()).await;
        assert!(
            matches!(
                refused,
                Err(WalError::UnsupportedVersion { version: 2, .. })
            ),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn error_messages_read_well() {
        let full = WalError::Full { total: 10, cap: 8 };
        assert_eq!(
            full.to_string(),
            "wal is full: 10 of 8 bytes in use, retry after older data is flushed"
        );
        for e in [full, WalError::Closed, WalError::Poisoned] {
            let text = e.to_string();
            assert!(!text.ends_with('.'), "{text}");
            assert!(text.starts_with(|c: char| c.is_lowercase()), "{text}");
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..64),
            1 => Just(Vec::new()),
            1 => proptest::collection::vec(any::<u8>(), 0..300_000),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn appended_payloads_round_trip(
            payloads in proptest::collection::vec(payload_strategy(), 0..40),
            segment_size in 8u64..4096,
            concurrent in any::<bool>(),
        ) {
            let rt = runtime();
            rt.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                let opts = WalOptions { segment_size, ..fast() };
                let (wal, _) = open(dir.path(), opts.clone()).await;
                let payloads: Vec<Bytes> = payloads.into_iter().map(Bytes::from).collect();
                let mut holders = Vec::new();
                if concurrent {
                    // Queued all at once, so batches form. The order between tasks is up to
                    // the scheduler, so this case compares as a multiset.
                    let pending: Vec<_> = payloads
                        .iter()
                        .map(|p| {
                            let (wal, p) = (wal.clone(), p.clone());
                            async move { wal.append(p).await }
                        })
                        .collect();
                    for result in futures_join_in_order(pending).await {
                        holders.push(result.expect("append"));
                    }
                } else {
                    for p in &payloads {
                        holders.push(wal.append(p.clone()).await.expect("append"));
                    }
                }
                wal.close().await;

                let (wal, replayed) = open(dir.path(), opts).await;
                let mut got: Vec<(u64, Bytes)> =
                    replayed.into_iter().map(|r| (r.segment, r.payload)).collect();
                let mut want: Vec<(u64, Bytes)> = holders.into_iter().zip(payloads).collect();
                if concurrent {
                    got.sort();
                    want.sort();
                }
                assert_eq!(got, want);
                wal.close().await;
            });
        }

        #[test]
        fn open_survives_any_segment_content(
            files in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..256)),
                1..4,
            ),
        ) {
            let rt = runtime();
            rt.block_on(async {
                let dir = tempfile::tempdir().expect("tempdir");
                for (i, (with_header, body)) in files.iter().enumerate() {
                    let mut data = if *with_header { SEGMENT_HEADER.to_vec() } else { Vec::new() };
                    data.extend_from_slice(body);
                    fs::write(segment_path(dir.path(), i as u64 + 1), data).expect("write");
                }
                // Random content may carry an unknown version byte: an error, never a panic.
                if let Ok((wal, _)) = Wal::open(dir.path(), fast()).await {
                    wal.append(Bytes::from_static(b"after")).await.expect("append");
                    wal.close().await;
                }
            });
        }
    }

    /// Drives all futures concurrently and returns their results in order.
    async fn futures_join_in_order<F>(futures: Vec<F>) -> Vec<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut out = Vec::new();
        for handle in handles {
            out.push(handle.await.expect("task"));
        }
        out
    }

    /// Throughput with 64 concurrent appenders of 4 KiB, fsync on. Run with
    /// `cargo test --release -p skein-ingester wal_throughput -- --ignored --nocapture`;
    /// `SKEIN_WAL_BENCH_DIR` chooses the disk (default: a temporary directory),
    /// `SKEIN_WAL_BENCH_APPENDERS` (64) and `SKEIN_WAL_BENCH_SECONDS` (5) the load.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "benchmark, run explicitly"]
    async fn wal_throughput() {
        const PAYLOAD: usize = 4096;
        let setting = |name: &str, default: u64| -> u64 {
            std::env::var(name)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(default)
        };
        let seconds = setting("SKEIN_WAL_BENCH_SECONDS", 5);
        let appenders = setting("SKEIN_WAL_BENCH_APPENDERS", 64);
        let base = std::env::var_os("SKEIN_WAL_BENCH_DIR").map(PathBuf::from);
        let dir = match &base {
            Some(base) => tempfile::tempdir_in(base),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let opts = WalOptions {
            max_total_size: u64::MAX,
            ..WalOptions::default()
        };
        let (wal, _) = open(dir.path(), opts).await;
        let payload = Bytes::from(vec![0x5a; PAYLOAD]);
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let mut tasks = Vec::new();
        for _ in 0..appenders {
            let wal = wal.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    wal.append(payload.clone()).await.expect("append");
                    latencies.push(t.elapsed());
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("task"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let stats = wal.stats();
        latencies.sort_unstable();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "wal throughput: {appenders} appenders x {PAYLOAD} B for {elapsed:.1} s: \
             {:.0} appends/s, {:.0} fsyncs/s, {:.1} records/fsync, {:.1} MiB/s, \
             mean fsync {:.0} us, append latency p50 {:?} p99 {:?}",
            stats.appends as f64 / elapsed,
            stats.fsyncs as f64 / elapsed,
            stats.appends as f64 / stats.fsyncs.max(1) as f64,
            stats.bytes_written as f64 / elapsed / (1 << 20) as f64,
            stats.fsync_micros_total as f64 / stats.fsyncs.max(1) as f64,
            pct(0.5),
            pct(0.99),
        );
        wal.close().await;
    }
}
