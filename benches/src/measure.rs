//! Helpers the benchmarks share: percentiles, milliseconds, the clock and the process's CPU
//! time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The `q`-quantile (0 < q ≤ 1) of sorted `times` by the nearest-rank method: the smallest
/// value with at least `q` of the values at or below it. Zero for no values.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The mean of `times`; zero for no values.
pub fn mean(times: &[Duration]) -> Duration {
    match times.len() {
        0 => Duration::ZERO,
        n => times.iter().sum::<Duration>() / n as u32,
    }
}

/// `d` in milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Now, in nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// CPU time of this process (user + system, every thread), from `/proc/self/stat`, in
/// seconds; zero where there is no `/proc`.
pub fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    // Linux reports them in USER_HZ, 100 per second on every common configuration.
    ticks as f64 / 100.0
}

/// The async runtime a benchmark runs on: `workers` worker threads, or one per core.
pub fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    anyhow::Context::context(
        builder.enable_all().build(),
        "cannot start the async runtime",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_millis(100));
        assert_eq!(percentile(&v, 0.99), Duration::from_millis(198));
        assert_eq!(percentile(&v, 1.0), Duration::from_millis(200));
        let three = [1, 2, 3].map(Duration::from_millis);
        assert_eq!(percentile(&three, 0.5), Duration::from_millis(2));
        assert_eq!(percentile(&three, 0.99), Duration::from_millis(3));
        assert_eq!(percentile(&three[..1], 0.01), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn mean_of_nothing_is_zero() {
        assert_eq!(mean(&[]), Duration::ZERO);
        let v = [1, 2, 6].map(Duration::from_millis);
        assert_eq!(mean(&v), Duration::from_millis(3));
    }
}
