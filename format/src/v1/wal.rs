//! Write-ahead log segment framing, format version 1: the bytes of one segment file.
//!
//! The ingester's write-ahead log (`skein_ingester::wal`) is a directory of segment files; this
//! module owns what is inside one. The log's writer, replay policy and file handling live in
//! the ingester; nothing here touches a file.
//!
//! # Layout
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
//! The payload of a record is opaque to the framing. The version byte is
//! [`FormatVersion::CURRENT`]'s number: readers read it with [`header_version`] and dispatch on
//! it with [`FormatVersion::from_number`], so the magic and the position of the version byte
//! stay the same in every version.

use std::ops::Range;

use crate::version::FormatVersion;

/// The first five bytes of every segment.
pub const MAGIC: [u8; 5] = *b"SKWAL";
/// Size of the segment header in bytes.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// Size of a record's frame (length and CRC) in bytes.
pub const RECORD_HEADER_LEN: u64 = 8;
/// The largest payload a record can hold (256 MiB).
pub const MAX_RECORD_LEN: usize = 256 << 20;

/// The segment header this build writes: [`MAGIC`], the format version byte
/// ([`FormatVersion::CURRENT`]'s number), two reserved zero bytes.
pub fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    // Version numbers are small; one beyond a byte would need a new header layout.
    let version = u8::try_from(FormatVersion::CURRENT.number())
        .expect("the format version fits in the segment header's version byte");
    let [m0, m1, m2, m3, m4] = MAGIC;
    [m0, m1, m2, m3, m4, version, 0, 0]
}

/// The version byte of the segment header at the start of `data`, or `None` when `data` is
/// shorter than a header or does not start with [`MAGIC`]. The reserved bytes are not checked.
pub fn header_version(data: &[u8]) -> Option<u8> {
    if data.len() < SEGMENT_HEADER_LEN as usize || data[..MAGIC.len()] != MAGIC[..] {
        return None;
    }
    Some(data[MAGIC.len()])
}

/// Whether `data`, a whole segment file without a valid header, is what an interrupted
/// creation of a segment leaves behind: no more than a header, and either the start of the
/// header this build writes or zeros. No record was ever in such a file.
pub fn is_torn_header(data: &[u8]) -> bool {
    data.len() <= SEGMENT_HEADER_LEN as usize
        && (segment_header().starts_with(data) || data.iter().all(|&b| b == 0))
}

/// The bytes a record holding `payload` takes in a segment, frame included.
pub fn frame_len(payload: &[u8]) -> u64 {
    RECORD_HEADER_LEN + payload.len() as u64
}

fn record_crc(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len);
    hasher.update(payload);
    hasher.finalize()
}

/// Appends `payload` to `buf` as one framed record.
///
/// The caller keeps `payload` within [`MAX_RECORD_LEN`] (the WAL refuses larger appends), so
/// that its length fits the frame's `u32`.
pub fn encode_record(buf: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    buf.extend_from_slice(&len);
    buf.extend_from_slice(&record_crc(len, payload).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Why a segment's record stream stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Fewer bytes left than the record frame or its declared length.
    Truncated,
    /// A length above [`MAX_RECORD_LEN`].
    BadLength,
    /// The CRC does not match.
    BadChecksum,
}

impl Damage {
    /// The damage in words, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::Truncated => "record cut short",
            Damage::BadLength => "record length out of range",
            Damage::BadChecksum => "record checksum mismatch",
        }
    }
}

/// The records of a segment (after its header), as ranges of `data`.
#[derive(Debug)]
pub struct Scan {
    /// The payload of each valid record, in order.
    pub records: Vec<Range<usize>>,
    /// Where the damage starts, if the stream did not end cleanly at the end of the file.
    pub damage: Option<(usize, Damage)>,
}

/// Reads the records of the segment `data` (the whole file, header included; the header is
/// not checked here) up to the end of the file or the first record that fails its length or
/// CRC check. Nothing after a bad record is trusted: a record stream cannot be re-framed after
/// a corrupt length.
pub fn scan_records(data: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut pos = SEGMENT_HEADER_LEN as usize;
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn segment(payloads: &[&[u8]]) -> Vec<u8> {
        let mut data = segment_header().to_vec();
        for payload in payloads {
            encode_record(&mut data, payload);
        }
        data
    }

    #[test]
    fn header_bytes_are_those_of_version_1() {
        assert_eq!(&segment_header(), b"SKWAL\x01\x00\x00");
        assert_eq!(segment_header().len() as u64, SEGMENT_HEADER_LEN);
        assert_eq!(
            u32::from(header_version(&segment_header()).expect("a header")),
            FormatVersion::CURRENT.number()
        );
    }

    #[test]
    fn header_version_needs_the_magic_and_a_whole_header() {
        assert_eq!(header_version(b"SKWAL\x02\x00\x00 and more"), Some(2));
        assert_eq!(header_version(b"SKWAL\x01\x00"), None);
        assert_eq!(header_version(b"XXWAL\x01\x00\x00"), None);
        assert_eq!(header_version(b""), None);
    }

    #[test]
    fn torn_headers_are_prefixes_of_the_header_or_zeros() {
        assert!(is_torn_header(b""));
        assert!(is_torn_header(b"SKW"));
        assert!(is_torn_header(&segment_header()));
        assert!(is_torn_header(&[0; 8]));
        assert!(!is_torn_header(&[0; 9]));
        assert!(!is_torn_header(b"XKW"));
        assert!(!is_torn_header(b"\xde\xad\xbe\xef random bytes"));
    }

    #[test]
    fn a_record_is_its_length_crc_and_payload() {
        let mut buf = Vec::new();
        encode_record(&mut buf, b"abc");
        assert_eq!(buf.len() as u64, frame_len(b"abc"));
        assert_eq!(buf[..4], 3u32.to_le_bytes());
        let crc = crc32fast::hash(&[3, 0, 0, 0, b'a', b'b', b'c']);
        assert_eq!(buf[4..8], crc.to_le_bytes());
        assert_eq!(&buf[8..], b"abc");
    }

    #[test]
    fn zero_filled_bytes_are_not_valid_records() {
        // Without the length inside the CRC, eight zero bytes would be a valid empty record.
        let mut data = segment_header().to_vec();
        data.extend_from_slice(&[0; 64]);
        let scan = scan_records(&data);
        assert!(scan.records.is_empty());
        assert_eq!(scan.damage, Some((8, Damage::BadChecksum)));
    }

    #[test]
    fn scanning_stops_at_the_first_bad_record() {
        let data = segment(&[b"one", b"", b"three"]);
        let second = 8 + frame_len(b"one") as usize;
        let third = second + frame_len(b"") as usize;

        let scan = scan_records(&data);
        assert_eq!(scan.records, [16..19, 27..27, 35..40]);
        assert_eq!(scan.damage, None);
        let empty = scan_records(&data[..8]);
        assert!(empty.records.is_empty());
        assert_eq!(empty.damage, None);
        assert_eq!(
            scan_records(&data[..5]).damage,
            Some((8, Damage::Truncated))
        );

        let cut = scan_records(&data[..third + 3]);
        assert_eq!(cut.records, [16..19, 27..27]);
        assert_eq!(cut.damage, Some((third, Damage::Truncated)));
        let cut = scan_records(&data[..data.len() - 1]);
        assert_eq!(cut.damage, Some((third, Damage::Truncated)));

        let mut flipped = data.clone();
        flipped[third + 9] ^= 0x40;
        let scan = scan_records(&flipped);
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.damage, Some((third, Damage::BadChecksum)));

        let mut long = data.clone();
        long[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let scan = scan_records(&long);
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.records[0], 16..19);
        assert_eq!(scan.damage, Some((second, Damage::BadLength)));
    }

    proptest! {
        #[test]
        fn encoded_records_scan_back(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20),
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            let data = segment(&refs);
            let scan = scan_records(&data);
            prop_assert_eq!(scan.damage, None);
            let got: Vec<&[u8]> = scan.records.into_iter().map(|r| &data[r]).collect();
            prop_assert_eq!(got, refs);
        }

        #[test]
        fn scanning_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let scan = scan_records(&data);
            for range in scan.records {
                prop_assert!(range.end <= data.len());
            }
        }
    }
}
