//! Handler latency as a fixed-bucket histogram, read and reset once per heartbeat interval.
//!
//! Buckets are log-linear: every power of two is split into four equal buckets, so a reported
//! quantile is at most 25 % above the true value. The histogram has [`BUCKETS`] buckets and never
//! allocates after it is created, however many latencies it records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Sub-buckets per power of two; four keeps the quantile error under 25 %.
const SUB_BUCKETS: u64 = 4;

/// The largest power of two that gets its own buckets. Latencies of 2^37 µs (about 38 hours)
/// and more all land in the last bucket.
const MAX_EXPONENT: u32 = 36;

/// Number of buckets: values 0 to 3 µs get one each, then four per power of two from 2^2 to
/// 2^[`MAX_EXPONENT`], then one bucket for everything larger.
pub const BUCKETS: usize = (MAX_EXPONENT as usize) * (SUB_BUCKETS as usize) + 1;

/// Latencies recorded over one interval, in microseconds.
///
/// Recording is one relaxed atomic add, so the actor that handles messages and the task that
/// publishes heartbeats can share one histogram without a lock. A [`take`](Self::take) that runs
/// while latencies are recorded may put a value in the next interval instead of this one.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    max_micros: AtomicU64,
}

/// The quantiles of one interval's latencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    /// Number of latencies recorded in the interval.
    pub count: u64,
    /// Median latency in microseconds, or `None` if nothing was recorded.
    pub p50_micros: Option<u64>,
    /// 99th percentile latency in microseconds, or `None` if nothing was recorded.
    pub p99_micros: Option<u64>,
}

impl LatencyHistogram {
    /// Creates an empty histogram.
    pub fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max_micros: AtomicU64::new(0),
        }
    }

    /// Records one latency.
    pub fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.record_micros(micros);
    }

    /// Records one latency given in microseconds.
    pub fn record_micros(&self, micros: u64) {
        self.buckets[bucket_index(micros)].fetch_add(1, Ordering::Relaxed);
        self.max_micros.fetch_max(micros, Ordering::Relaxed);
    }

    /// Returns the quantiles of everything recorded since the last call and empties the
    /// histogram for the next interval.
    pub fn take(&self) -> LatencySummary {
        let mut counts = [0u64; BUCKETS];
        for (count, bucket) in counts.iter_mut().zip(self.buckets.iter()) {
            *count = bucket.swap(0, Ordering::Relaxed);
        }
        let max_micros = self.max_micros.swap(0, Ordering::Relaxed);

        let total: u64 = counts.iter().sum();
        if total == 0 {
            return LatencySummary::default();
        }

        LatencySummary {
            count: total,
            p50_micros: Some(quantile(&counts, total, 0.50).min(max_micros)),
            p99_micros: Some(quantile(&counts, total, 0.99).min(max_micros)),
        }
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Returns the upper bound of the bucket holding the `q` quantile (nearest-rank method).
fn quantile(counts: &[u64; BUCKETS], total: u64, q: f64) -> u64 {
    // The rank is at least 1 and at most `total`, so the loop below always finds a bucket.
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (index, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bucket_upper_bound(index);
        }
    }
    bucket_upper_bound(BUCKETS - 1)
}

/// Returns the bucket of a latency in microseconds.
fn bucket_index(micros: u64) -> usize {
    if micros < SUB_BUCKETS {
        return micros as usize;
    }
    let exponent = 63 - micros.leading_zeros();
    if exponent > MAX_EXPONENT {
        return BUCKETS - 1;
    }
    let sub_bucket = (micros >> (exponent - 2)) & (SUB_BUCKETS - 1);
    ((exponent as u64 - 1) * SUB_BUCKETS + sub_bucket) as usize
}

/// Returns the largest latency in microseconds that falls into bucket `index`.
fn bucket_upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    if index as usize == BUCKETS - 1 {
        return u64::MAX;
    }
    let exponent = index / SUB_BUCKETS + 1;
    let sub_bucket = index % SUB_BUCKETS;
    ((SUB_BUCKETS + sub_bucket + 1) << (exponent - 2)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_bounds_contain_their_values() {
        for micros in (0..5_000).chain([1 << 20, (1 << 30) + 12_345, 1 << MAX_EXPONENT]) {
            let index = bucket_index(micros);
            assert!(bucket_upper_bound(index) >= micros, "{micros} in {index}");
            if index > 0 {
                assert!(
                    bucket_upper_bound(index - 1) < micros,
                    "{micros} in {index}"
                );
            }
        }
    }

    #[test]
    fn bucket_error_under_a_quarter() {
        for micros in [5, 100, 1_000, 77_777, 3_000_000] {
            let bound = bucket_upper_bound(bucket_index(micros));
            assert!(
                (bound - micros) as f64 <= micros as f64 * 0.25,
                "{micros} -> {bound}"
            );
        }
    }

    #[test]
    fn huge_latency_lands_in_last_bucket() {
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_index(1 << (MAX_EXPONENT + 1)), BUCKETS - 1);
        assert_eq!(bucket_index((1 << (MAX_EXPONENT + 1)) - 1), BUCKETS - 2);
    }

    #[test]
    fn take_reports_quantiles() {
        let histogram = LatencyHistogram::new();
        for _ in 0..98 {
            histogram.record_micros(100);
        }
        histogram.record_micros(10_000);
        histogram.record_micros(10_000);

        let summary = histogram.take();
        assert_eq!(summary.count, 100);
        let p50 = summary.p50_micros.unwrap();
        assert!((100..=125).contains(&p50), "p50 {p50}");
        let p99 = summary.p99_micros.unwrap();
        assert!((10_000..=12_500).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn quantile_capped_at_max_seen() {
        let histogram = LatencyHistogram::new();
        histogram.record_micros(1_000_001);
        assert_eq!(histogram.take().p99_micros, Some(1_000_001));
    }

    #[test]
    fn take_empties_histogram() {
        let histogram = LatencyHistogram::new();
        histogram.record(Duration::from_millis(3));
        assert_eq!(histogram.take().count, 1);
        assert_eq!(histogram.take(), LatencySummary::default());
    }
}
