//! Trace-ID bloom filter, format version 1.
//!
//! Every block carries one bloom filter over the trace IDs in its `data.parquet`, so that a
//! trace lookup can skip a block without touching its data. The filter is a split-block bloom
//! filter (the design Parquet calls SBBF): its bits are grouped into 256-bit blocks of eight
//! 32-bit words, a key maps to exactly one block, and inside that block it sets one bit in each
//! word. Because a key touches a single block, a reader that knows the number of blocks (it is
//! recorded in `meta.json`) answers a lookup with one ranged GET of 32 bytes:
//! [`block_range`] gives the range, [`block_may_contain`] tests the bytes, and
//! [`may_contain_remote`] does both against an object store.
//!
//! # Serialized layout (all integers little-endian)
//!
//! | offset | size | field                                                  |
//! |--------|------|--------------------------------------------------------|
//! | 0      | 4    | magic `SKBF`                                           |
//! | 4      | 1    | format version, `1`                                    |
//! | 5      | 3    | reserved, zero                                         |
//! | 8      | 4    | `num_blocks: u32`, at least 1                          |
//! | 12     | 4    | `num_keys: u32`, insertions (saturating), informative  |
//! | 16     | 32·n | blocks; block `i` at `16 + 32·i`, eight `u32` words     |
//!
//! # Hash and bit selection
//!
//! With `a` = bytes 0..8 and `b` = bytes 8..16 of the trace ID, each read as `u64` LE, and
//! `fmix64` the MurmurHash3 64-bit finalizer, the key hash is `h = fmix64(a ^ fmix64(b))`.
//! The block is `((h >> 32) * num_blocks) >> 32`; with `x = h as u32` and the eight [`SALT`]s,
//! word `i` of that block gets bit `(x * SALT[i]) >> 27` (wrapping 32-bit multiply), as in the
//! Parquet specification.
//!
//! This is an on-disk format, also described in `docs/block-format.md`: none of it may change
//! within version 1. A different layout or hash is a new version, and [`BloomFilter::from_bytes`]
//! rejects versions it does not know. A ranged lookup never sees the header, so a new version
//! must also be announced in `meta.json` for old readers to stay off it.

use std::fmt;
use std::ops::Range;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Error, Result};
use crate::ids::TraceId;

/// First four bytes of a serialized filter.
pub const MAGIC: [u8; 4] = *b"SKBF";
/// The format version this module writes and the only one it reads.
pub const VERSION: u8 = 1;
/// Length of the fixed header that precedes the blocks.
pub const HEADER_LEN: usize = 16;
/// Length of one serialized block: eight 32-bit words.
pub const BLOCK_LEN: usize = 32;
/// Filter bits reserved per expected key by [`BloomFilter::with_capacity`].
///
/// Measured false-positive rates with 100k random keys (see the tests): 8 bits per key 3.3%,
/// 10 bits 1.2%, 12 bits 0.53%, 16 bits 0.12–0.14%. 16 bits (16 keys per block) keeps the rate
/// under 1% even when a writer underestimates its key count by 40%. The size costs little: a
/// lookup reads one 32-byte block whatever the filter size, the filter costs 2 bytes per trace
/// in storage, and each false positive costs a read of the block's data.
pub const BITS_PER_KEY: usize = 16;
/// Bits per key of compacted blocks' filters ([`BloomFilter::with_capacity_bits`]). A search
/// asks every block's filter whether it holds a piece of each candidate trace, so with
/// hundreds of long-lived compacted blocks the rate matters more than for fresh ones: at 16
/// bits a tenant of 200 blocks would see a false positive somewhere for ~20% of traces. At 32
/// bits the measured rate is 0.004% (see the tests), for 4 bytes per trace.
pub const COMPACTED_BITS_PER_KEY: usize = 32;
/// Odd multipliers that pick one bit per word, from the Parquet specification.
pub const SALT: [u32; WORDS_PER_BLOCK] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

const WORDS_PER_BLOCK: usize = 8;
const BLOCK_BITS: usize = BLOCK_LEN * 8;
const WHAT: &str = "bloom filter";
/// Location reported by errors about bytes whose origin this module does not know; callers
/// that know the object path can replace it (the fields of [`Error::Corrupt`] are public).
const IN_MEMORY: &str = "in-memory bytes";

type Block = [u32; WORDS_PER_BLOCK];

/// A split-block bloom filter over trace IDs. See the [module documentation](self) for the
/// format.
#[derive(Clone, PartialEq, Eq)]
pub struct BloomFilter {
    blocks: Vec<Block>,
    num_keys: u32,
}

impl BloomFilter {
    /// An empty filter sized for `n_keys` distinct trace IDs at [`BITS_PER_KEY`]: at least one
    /// block, at most `u32::MAX`. Inserting more keys than planned never loses one; it only raises the false
    /// positive rate.
    pub fn with_capacity(n_keys: usize) -> Self {
        Self::with_capacity_bits(n_keys, BITS_PER_KEY)
    }

    /// Like [`with_capacity`](Self::with_capacity), at `bits_per_key` bits per key.
    pub fn with_capacity_bits(n_keys: usize, bits_per_key: usize) -> Self {
        // u128 so that no key count can overflow; usize to u128 is lossless.
        let bits = n_keys as u128 * bits_per_key.max(1) as u128;
        let num_blocks = bits
            .div_ceil(BLOCK_BITS as u128)
            .clamp(1, u128::from(u32::MAX));
        // The clamp above makes the conversion lossless.
        let num_blocks = usize::try_from(num_blocks).unwrap_or(usize::MAX);
        BloomFilter {
            blocks: vec![[0; WORDS_PER_BLOCK]; num_blocks],
            num_keys: 0,
        }
    }

    /// Adds a trace ID.
    pub fn insert(&mut self, id: &TraceId) {
        let h = hash(id);
        let mask = block_mask(h);
        let index = block_index(h, self.num_blocks()) as usize;
        let block = &mut self.blocks[index];
        for (word, bit) in block.iter_mut().zip(mask) {
            *word |= bit;
        }
        self.num_keys = self.num_keys.saturating_add(1);
    }

    /// False when `id` was certainly never inserted; true when it probably was.
    pub fn may_contain(&self, id: &TraceId) -> bool {
        let h = hash(id);
        block_contains(&self.blocks[block_index(h, self.num_blocks()) as usize], h)
    }

    /// Number of 32-byte blocks, the value a ranged reader needs (see [`block_range`]).
    pub fn num_blocks(&self) -> u32 {
        // `with_capacity` and `from_bytes` never create more than u32::MAX blocks.
        u32::try_from(self.blocks.len()).unwrap_or(u32::MAX)
    }

    /// Number of insertions, duplicates included (saturating at `u32::MAX`).
    pub fn len(&self) -> usize {
        self.num_keys as usize
    }

    /// True when nothing has been inserted.
    pub fn is_empty(&self) -> bool {
        self.num_keys == 0
    }

    /// Serializes the filter in format version 1.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.blocks.len() * BLOCK_LEN);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&[0; 3]);
        out.extend_from_slice(&self.num_blocks().to_le_bytes());
        out.extend_from_slice(&self.num_keys.to_le_bytes());
        for word in self.blocks.iter().flatten() {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Parses a serialized filter. Anything but a well-formed version 1 filter, including
    /// trailing bytes, is [`Error::Corrupt`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let corrupt = |reason: String| Error::corrupt(WHAT, IN_MEMORY, reason);
        let header: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| {
                corrupt(format!(
                    "{} bytes is shorter than the {HEADER_LEN}-byte header",
                    bytes.len()
                ))
            })?;
        if header[..4] != MAGIC {
            return Err(corrupt(format!(
                "magic is {:?}, expected {:?}",
                header[..4].escape_ascii().to_string(),
                MAGIC.escape_ascii().to_string()
            )));
        }
        let version = header[4];
        if version != VERSION {
            return Err(corrupt(format!(
                "format version {version} is not supported, this build reads version {VERSION}"
            )));
        }
        if header[5..8] != [0; 3] {
            return Err(corrupt(format!(
                "reserved header bytes are {:02x?}, expected zero",
                &header[5..8]
            )));
        }
        let num_blocks = read_u32_le(header, 8);
        let num_keys = read_u32_le(header, 12);
        if num_blocks == 0 {
            return Err(corrupt("block count is zero".to_owned()));
        }
        // u64 so that the expected length cannot overflow on 32-bit targets.
        let expected = HEADER_LEN as u64 + u64::from(num_blocks) * BLOCK_LEN as u64;
        if bytes.len() as u64 != expected {
            return Err(corrupt(format!(
                "{} bytes, but {num_blocks} blocks need exactly {expected}",
                bytes.len()
            )));
        }
        // The length check above leaves no remainder.
        let (blocks, _) = bytes[HEADER_LEN..].as_chunks::<BLOCK_LEN>();
        let blocks = blocks.iter().map(decode_block).collect();
        Ok(BloomFilter { blocks, num_keys })
    }
}

impl fmt::Debug for BloomFilter {
    // The blocks can be megabytes; print only the shape.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("num_blocks", &self.num_blocks())
            .field("num_keys", &self.num_keys)
            .finish()
    }
}

/// Byte range, inside a serialized filter of `num_blocks` blocks, of the one block that `id`
/// maps to. `num_blocks` must be the value in the filter's header (and `meta.json`); zero is
/// never valid and yields the range of a block 0 that does not exist.
pub fn block_range(num_blocks: u32, id: &TraceId) -> Range<u64> {
    let start = HEADER_LEN as u64 + u64::from(block_index(hash(id), num_blocks)) * BLOCK_LEN as u64;
    start..start + BLOCK_LEN as u64
}

/// Tests `id` against one serialized block, the bytes at [`block_range`]. False means `id` is
/// certainly not in the filter. A block that is not exactly [`BLOCK_LEN`] bytes is
/// [`Error::Corrupt`].
pub fn block_may_contain(block: &[u8], id: &TraceId) -> Result<bool> {
    let block: &[u8; BLOCK_LEN] = block.try_into().map_err(|_| {
        Error::corrupt(
            WHAT,
            IN_MEMORY,
            format!("a block is {BLOCK_LEN} bytes, got {}", block.len()),
        )
    })?;
    Ok(block_contains(&decode_block(block), hash(id)))
}

/// Tests `id` against the filter stored at `path` with exactly one ranged GET of
/// [`BLOCK_LEN`] bytes. `num_blocks` comes from the block's `meta.json` (`files.bloom_blocks`);
/// if it disagrees with the object, the read either fails or tests the wrong block, so writers
/// must record the value of [`BloomFilter::num_blocks`].
pub async fn may_contain_remote(
    store: &dyn ObjectStore,
    path: &Path,
    num_blocks: u32,
    id: &TraceId,
) -> Result<bool> {
    if num_blocks == 0 {
        return Err(Error::corrupt(
            WHAT,
            path,
            "block count is zero; a filter has at least one block",
        ));
    }
    let range = block_range(num_blocks, id);
    let bytes = store.get_range(path, range.clone()).await?;
    if bytes.len() != BLOCK_LEN {
        // Stores may return a short read at the end of an object rather than an error.
        return Err(Error::corrupt(
            WHAT,
            path,
            format!(
                "read of bytes {}..{} returned {} bytes; does the block count {num_blocks} \
                 match the object?",
                range.start,
                range.end,
                bytes.len()
            ),
        ));
    }
    block_may_contain(&bytes, id)
}

/// MurmurHash3's 64-bit finalizer: a bijection that spreads every input bit over the output,
/// so sequential IDs land in unrelated blocks.
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The version 1 key hash. Both halves go through the finalizer (`b` twice) so that IDs that
/// differ only in `a`, only in `b`, or are 64-bit IDs with `a` zero are all well mixed.
fn hash(id: &TraceId) -> u64 {
    let bytes = id.as_bytes();
    let a = u64::from_le_bytes(std::array::from_fn(|i| bytes[i]));
    let b = u64::from_le_bytes(std::array::from_fn(|i| bytes[8 + i]));
    fmix64(a ^ fmix64(b))
}

/// Multiply-shift range reduction: the upper 32 hash bits scaled to `0..num_blocks` (0 when
/// `num_blocks` is 0). The product of two values below 2^32 cannot overflow a u64.
fn block_index(h: u64, num_blocks: u32) -> u32 {
    // The shifted product is below num_blocks, so it fits in a u32.
    (((h >> 32) * u64::from(num_blocks)) >> 32) as u32
}

/// One bit per word, chosen by the lower 32 hash bits.
fn block_mask(h: u64) -> Block {
    let x = h as u32;
    SALT.map(|salt| 1u32 << (x.wrapping_mul(salt) >> 27))
}

fn block_contains(block: &Block, h: u64) -> bool {
    block
        .iter()
        .zip(block_mask(h))
        .all(|(word, bit)| word & bit != 0)
}

fn decode_block(bytes: &[u8; BLOCK_LEN]) -> Block {
    std::array::from_fn(|i| read_u32_le(bytes, 4 * i))
}

/// Reads a little-endian u32 at a constant offset of a fixed-size array; callers pass offsets
/// that leave room for four bytes.
fn read_u32_le<const N: usize>(bytes: &[u8; N], at: usize) -> u32 {
    u32::from_le_bytes(std::array::from_fn(|i| bytes[at + i]))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use object_store::memory::InMemory;
    use proptest::prelude::*;

    use rand::rngs::SmallRng;
    use rand::{Rng as _, SeedableRng};

    use super::*;

    /// Seeded, so the statistical tests are reproducible.
    struct Rng(SmallRng);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(SmallRng::seed_from_u64(seed))
        }

        fn trace_id(&mut self) -> TraceId {
            TraceId(self.0.random())
        }
    }

    fn id(hex: &str) -> TraceId {
        TraceId::from_hex(hex).expect("test ids are valid hex")
    }

    fn sequential(n: u128) -> TraceId {
        TraceId(n.to_be_bytes())
    }

    /// Inserts `inserted`, probes `probes` (none of which were inserted) and returns the
    /// false-positive rate.
    fn measure_fpr(inserted: &[TraceId], probes: impl Iterator<Item = TraceId>) -> f64 {
        measure_fpr_bits(inserted, probes, BITS_PER_KEY)
    }

    fn measure_fpr_bits(
        inserted: &[TraceId],
        probes: impl Iterator<Item = TraceId>,
        bits_per_key: usize,
    ) -> f64 {
        let mut filter = BloomFilter::with_capacity_bits(inserted.len(), bits_per_key);
        for id in inserted {
            filter.insert(id);
        }
        let set: HashSet<_> = inserted.iter().collect();
        let (mut probed, mut positives) = (0u64, 0u64);
        for probe in probes.filter(|p| !set.contains(p)) {
            probed += 1;
            positives += u64::from(filter.may_contain(&probe));
        }
        positives as f64 / probed as f64
    }

    #[test]
    fn false_positive_rate_random_ids() {
        let mut rng = Rng::new(1);
        let inserted: Vec<_> = (0..100_000).map(|_| rng.trace_id()).collect();
        let fpr = measure_fpr(&inserted, (0..200_000).map(|_| rng.trace_id()));
        println!("bloom false-positive rate, random ids, {BITS_PER_KEY} bits/key: {fpr:.5}");
        assert!(fpr <= 0.01, "false-positive rate {fpr}");
    }

    #[test]
    fn false_positive_rate_of_compacted_blocks() {
        let mut rng = Rng::new(7);
        let inserted: Vec<_> = (0..100_000).map(|_| rng.trace_id()).collect();
        let fpr = measure_fpr_bits(
            &inserted,
            (0..2_000_000).map(|_| rng.trace_id()),
            COMPACTED_BITS_PER_KEY,
        );
        println!(
            "bloom false-positive rate, random ids, {COMPACTED_BITS_PER_KEY} bits/key: {fpr:.6}"
        );
        assert!(fpr <= 0.0002, "false-positive rate {fpr}");
    }

    #[test]
    fn false_positive_rate_sequential_ids() {
        // Tests and some clients number their traces; the hash must still spread them.
        let inserted: Vec<_> = (1..=100_000).map(sequential).collect();
        let fpr = measure_fpr(&inserted, (100_001..=300_000).map(sequential));
        println!("bloom false-positive rate, sequential ids, {BITS_PER_KEY} bits/key: {fpr:.5}");
        assert!(fpr <= 0.01, "false-positive rate {fpr}");
        // Sequential in the high half, as a client counting in the first bytes would produce.
        let inserted: Vec<_> = (1..=100_000u128).map(|n| sequential(n << 64)).collect();
        let fpr = measure_fpr(
            &inserted,
            (100_001..=300_000u128).map(|n| sequential(n << 64)),
        );
        println!("bloom false-positive rate, high-half sequential: {fpr:.5}");
        assert!(fpr <= 0.01, "false-positive rate {fpr}");
    }

    #[test]
    fn overfilled_filter_degrades_gracefully() {
        // A writer that planned for half the keys loses no key and gets about 8 bits per key.
        let mut rng = Rng::new(2);
        let inserted: Vec<_> = (0..100_000).map(|_| rng.trace_id()).collect();
        let mut filter = BloomFilter::with_capacity(50_000);
        inserted.iter().for_each(|id| filter.insert(id));
        let positives = (0..100_000)
            .filter(|_| filter.may_contain(&rng.trace_id()))
            .count();
        let fpr = positives as f64 / 100_000.0;
        println!("bloom false-positive rate at twice the planned keys: {fpr:.5}");
        assert!(fpr <= 0.05, "false-positive rate {fpr}");
        assert!(inserted.iter().all(|id| filter.may_contain(id)));
    }

    #[test]
    fn sizing() {
        assert_eq!(BloomFilter::with_capacity(0).num_blocks(), 1);
        assert_eq!(BloomFilter::with_capacity(1).num_blocks(), 1);
        let per_block = BLOCK_BITS / BITS_PER_KEY;
        assert_eq!(BloomFilter::with_capacity(per_block).num_blocks(), 1);
        assert_eq!(BloomFilter::with_capacity(per_block + 1).num_blocks(), 2);
        assert_eq!(BloomFilter::with_capacity(100_000).num_blocks(), 6250);
        let empty = BloomFilter::with_capacity(10);
        assert!(empty.is_empty());
        assert_eq!(empty.len(), 0);
        assert!(!empty.may_contain(&id("1")));
    }

    #[test]
    fn len_counts_insertions() {
        let mut filter = BloomFilter::with_capacity(10);
        filter.insert(&id("1"));
        filter.insert(&id("2"));
        filter.insert(&id("2"));
        assert_eq!(filter.len(), 3);
        assert!(!filter.is_empty());
        assert_eq!(
            BloomFilter::from_bytes(&filter.to_bytes()).unwrap().len(),
            3
        );
    }

    /// Pins the version 1 hash, block choice and bits. If this fails, the on-disk format
    /// changed: existing filters would give false negatives. Make a new version instead.
    #[test]
    fn hash_is_stable() {
        let cases = [
            (
                "4290b5877a9930de79bb428365398ecc",
                0x26fc_7b51_608c_4374,
                (6250, 951),
                [29, 15, 6, 24, 18, 10, 24, 28],
            ),
            (
                "00000000000000000000000000000001",
                0x3f81_15ac_dbef_5464,
                (6250, 1550),
                [5, 28, 29, 28, 22, 5, 1, 30],
            ),
            (
                // A 64-bit Jaeger ID: the first half is zero.
                "79bb428365398ecc",
                0x7a3d_562f_e513_80e7,
                (1000, 477),
                [7, 0, 14, 27, 24, 3, 17, 27],
            ),
        ];
        for (hex, want_hash, (num_blocks, want_block), want_bits) in cases {
            let trace = id(hex);
            let h = hash(&trace);
            assert_eq!(h, want_hash, "hash of {hex}: {h:#018x}");
            assert_eq!(block_index(h, num_blocks), want_block, "block of {hex}");
            let bits = block_mask(h).map(u32::trailing_zeros);
            assert_eq!(bits, want_bits, "bits of {hex}");
            let start = HEADER_LEN as u64 + u64::from(want_block) * BLOCK_LEN as u64;
            assert_eq!(block_range(num_blocks, &trace), start..start + 32);
        }
    }

    /// Pins the whole serialized form of a small filter: header layout and word order.
    #[test]
    fn serialization_is_stable() {
        let mut filter = BloomFilter::with_capacity(20);
        filter.insert(&id("4290b5877a9930de79bb428365398ecc"));
        let bytes = filter.to_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            concat!(
                // Header: magic, version, reserved, 2 blocks, 1 key.
                "534b4246", "01", "000000", "02000000", "01000000",
                // Block 0, words 0 to 7.
                "00000020", "00800000", "40000000", "00000001", "00000400", "00040000", "00000001",
                "00000010", // Block 1, empty.
                "00000000", "00000000", "00000000", "00000000", "00000000", "00000000", "00000000",
                "00000000",
            )
        );
        assert_eq!(BloomFilter::from_bytes(&bytes).unwrap(), filter);
    }

    fn assert_corrupt(bytes: &[u8], expect_in_reason: &str) {
        match BloomFilter::from_bytes(bytes) {
            Err(Error::Corrupt { what, reason, .. }) => {
                assert_eq!(what, WHAT);
                assert!(
                    reason.contains(expect_in_reason),
                    "{reason:?} should mention {expect_in_reason:?}"
                );
            }
            other => panic!("expected corrupt error, got {other:?}"),
        }
    }

    #[test]
    fn from_bytes_rejects_malformed_input() {
        let mut filter = BloomFilter::with_capacity(40);
        filter.insert(&id("abc"));
        let good = filter.to_bytes();
        assert_eq!(good.len(), HEADER_LEN + 3 * BLOCK_LEN);

        for len in 0..HEADER_LEN {
            assert_corrupt(&good[..len], "shorter than the 16-byte header");
        }
        for len in HEADER_LEN..good.len() {
            assert_corrupt(&good[..len], "need exactly 112");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_corrupt(&longer, "need exactly 112");

        let mut bad = good.clone();
        bad[..4].copy_from_slice(b"PAR1");
        assert_corrupt(&bad, "magic is \"PAR1\"");

        let mut bad = good.clone();
        bad[4] = 2;
        assert_corrupt(&bad, "format version 2 is not supported");

        let mut bad = good.clone();
        bad[6] = 1;
        assert_corrupt(&bad, "reserved header bytes");

        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_corrupt(&bad[..HEADER_LEN], "block count is zero");

        let mut bad = good;
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_corrupt(&bad, "4294967295 blocks need exactly 137438953456");
    }

    #[test]
    fn block_may_contain_rejects_wrong_length() {
        for len in [0, 31, 33, 64] {
            let err = block_may_contain(&vec![0xff; len], &id("1")).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{len}: {err}");
        }
        assert!(block_may_contain(&[0xff; 32], &id("1")).unwrap());
        assert!(!block_may_contain(&[0; 32], &id("1")).unwrap());
    }

    fn trace_ids(max: usize) -> impl Strategy<Value = Vec<TraceId>> {
        prop::collection::vec(any::<[u8; 16]>().prop_map(TraceId), 0..max)
    }

    proptest! {
        #[test]
        fn no_false_negatives(ids in trace_ids(2000), capacity_fraction in 0.0f64..=1.5) {
            // Capacities below the key count too: an overfilled filter must not lose keys.
            let capacity = (ids.len() as f64 * capacity_fraction) as usize;
            let mut filter = BloomFilter::with_capacity(capacity);
            for id in &ids {
                filter.insert(id);
            }
            let bytes = filter.to_bytes();
            let num_blocks = filter.num_blocks();
            for id in &ids {
                prop_assert!(filter.may_contain(id));
                let range = block_range(num_blocks, id);
                let block = &bytes[range.start as usize..range.end as usize];
                prop_assert!(block_may_contain(block, id).unwrap());
            }
        }

        #[test]
        fn round_trips(ids in trace_ids(500), capacity in 0usize..1000) {
            let mut filter = BloomFilter::with_capacity(capacity);
            ids.iter().for_each(|id| filter.insert(id));
            let parsed = BloomFilter::from_bytes(&filter.to_bytes()).unwrap();
            prop_assert_eq!(&parsed, &filter);
            prop_assert_eq!(parsed.to_bytes(), filter.to_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            match BloomFilter::from_bytes(&bytes) {
                Ok(filter) => prop_assert_eq!(filter.to_bytes(), bytes),
                Err(err) => prop_assert!(matches!(err, Error::Corrupt { .. }), "{}", err),
            }
        }

        #[test]
        fn valid_header_with_arbitrary_body_never_panics(
            num_blocks in 0u32..8,
            reserved in prop_oneof![Just(0u8), any::<u8>()],
            body in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            // Random bytes rarely get past the magic; this reaches the length checks.
            let mut bytes = b"SKBF\x01".to_vec();
            bytes.extend_from_slice(&[reserved, 0, 0]);
            bytes.extend_from_slice(&num_blocks.to_le_bytes());
            bytes.extend_from_slice(&7u32.to_le_bytes());
            bytes.extend_from_slice(&body);
            match BloomFilter::from_bytes(&bytes) {
                Ok(filter) => {
                    prop_assert_eq!(filter.num_blocks(), num_blocks);
                    prop_assert_eq!(filter.len(), 7);
                }
                Err(err) => prop_assert!(matches!(err, Error::Corrupt { .. }), "{}", err),
            }
        }
    }

    #[test]
    fn remote_lookup_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let store = InMemory::new();
        let path = Path::from("bloom");
        let trace = id("1");
        assert_send(&may_contain_remote(&store, &path, 1, &trace));
    }
}
