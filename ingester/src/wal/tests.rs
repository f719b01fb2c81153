//! Tests of the write-ahead log as a whole, through its public API: group commit, replay of
//! damaged segments, rotation and removal, the size cap, closing, and property tests over
//! random payloads and random segment content.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use skein_format::wal::{encode_record, frame_len, segment_header};
use tracing::Level;

use super::segments::segment_path;
use super::{
    MAX_RECORD_LEN, RECORD_HEADER_LEN, Replayed, SEGMENT_HEADER_LEN, Wal, WalError, WalOptions,
};

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
                let mut data = if *with_header { segment_header().to_vec() } else { Vec::new() };
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
