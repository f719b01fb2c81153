//! The one seeded random number generator of Skein's tests and benchmarks: `rand`'s small
//! fast generator behind a few helpers, so that a seed names one stream of data on every
//! machine of a given build.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng};

/// A seeded generator.
#[derive(Debug, Clone)]
pub struct Rng(SmallRng);

impl Rng {
    /// The generator of `seed`; nearby seeds give unrelated streams.
    pub fn new(seed: u64) -> Self {
        Rng(SmallRng::seed_from_u64(seed))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.random()
    }

    /// Uniform in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.0.random_range(0..n) }
    }

    /// Uniform in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0.random_range(lo..hi)
    }

    /// A duration uniform in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.0.random_bool(p.clamp(0.0, 1.0))
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        self.0.random()
    }
}

/// The seed of a randomised test run: `SKEIN_TEST_SEED` to reproduce one, else the clock.
/// Printed, so a failure can be rerun with the same data.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("SKEIN_TEST_SEED") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("SKEIN_TEST_SEED={s:?} is not a u64")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("{test}: seed {seed} (rerun with SKEIN_TEST_SEED={seed})");
    seed
}
