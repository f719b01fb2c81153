//! The WAL's group-commit writer thread: the only code that touches the active segment.
//!
//! Handles send it [`Command`]s over a channel. It writes each batch of queued appends with
//! one `write_all` and one `sync_data` and then answers them all, rotates the active segment
//! between batches, and cuts a failed write back to the last good batch (see "Group commit"
//! and "Durability argument" in the parent module's documentation).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Instant;

use bytes::Bytes;
use skein_format::wal::{SEGMENT_HEADER_LEN, encode_record, frame_len};
use tokio::sync::oneshot;

use super::segments::{create_segment, next_segment, segment_path};
use super::{Shared, WalError, WalOptions};

/// Where the writer sends the outcome of an append (the segment holding the record) or of a
/// rotation (the sealed segment).
pub(super) type Reply = oneshot::Sender<Result<u64, WalError>>;

/// A request from a [`Wal`](super::Wal) handle to the writer thread.
pub(super) enum Command {
    Append { payload: Bytes, reply: Reply },
    Rotate { reply: Reply },
    Close { done: oneshot::Sender<()> },
}

/// The writer thread's state: it alone touches the active segment.
pub(super) struct Writer {
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
    /// A writer appending to `file`, the freshly created segment `seq` (header only), and
    /// holding the directory's `lock` for as long as it runs.
    pub(super) fn new(
        shared: Arc<Shared>,
        opts: &WalOptions,
        file: File,
        seq: u64,
        lock: File,
    ) -> Self {
        Writer {
            shared,
            segment_size: opts.segment_size,
            max_batch_bytes: opts.max_batch_bytes,
            file,
            seq,
            size: SEGMENT_HEADER_LEN,
            buf: Vec::new(),
            _lock: lock,
        }
    }

    /// Serves `queue` until every handle is gone or a [`Command::Close`] arrives.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Command>) {
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
