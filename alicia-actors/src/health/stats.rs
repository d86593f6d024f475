//! Counters that a running service updates as it handles messages, read by its heartbeat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::latency::{LatencyHistogram, LatencySummary};

/// Live figures of one service: messages handled, errors, handler latency, restarts and mailbox
/// depth.
///
/// A cheap, cloneable handle. The service's handler records into it, and the heartbeat publisher
/// reads it once per interval. Every update is a relaxed atomic operation, so recording never
/// waits for the reader. When collection is off ([`ServiceStats::set_enabled`]), recording returns
/// after one atomic load.
#[derive(Debug, Clone)]
pub struct ServiceStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug)]
struct StatsInner {
    enabled: AtomicBool,
    messages_handled: AtomicU64,
    errors: AtomicU64,
    restarts: AtomicU64,
    mailbox_depth: AtomicU64,
    latency: LatencyHistogram,
}

/// What a heartbeat reads from [`ServiceStats`] at the end of one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages handled since the service started.
    pub messages_handled: u64,
    /// Handler errors since the service started.
    pub errors: u64,
    /// Restarts since the service started.
    pub restarts: u64,
    /// Messages waiting in the mailbox when last reported.
    pub mailbox_depth: u64,
    /// Handler latency over the interval that just ended.
    pub latency: LatencySummary,
}

impl ServiceStats {
    /// Creates zeroed figures with collection on.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(StatsInner {
                enabled: AtomicBool::new(true),
                messages_handled: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                restarts: AtomicU64::new(0),
                mailbox_depth: AtomicU64::new(0),
                latency: LatencyHistogram::new(),
            }),
        }
    }

    /// Turns collection on or off. While it is off, [`record`](Self::record) and
    /// [`start_timer`](Self::start_timer) do nothing.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Returns whether collection is on.
    pub fn is_enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Records one handled message, its handler latency and whether the handler failed.
    pub fn record(&self, latency: Duration, failed: bool) {
        if !self.is_enabled() {
            return;
        }
        self.inner.messages_handled.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.inner.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.latency.record(latency);
    }

    /// Starts timing one handler run; [`HandlerTimer::finish`] records it.
    pub fn start_timer(&self) -> HandlerTimer<'_> {
        let started = self.is_enabled().then(Instant::now);
        HandlerTimer {
            stats: self,
            started,
        }
    }

    /// Sets the restart count, as the service's supervisor reports it.
    pub fn set_restarts(&self, restarts: u64) {
        self.inner.restarts.store(restarts, Ordering::Relaxed);
    }

    /// Sets the number of messages waiting in the mailbox.
    pub fn set_mailbox_depth(&self, depth: u64) {
        self.inner.mailbox_depth.store(depth, Ordering::Relaxed);
    }

    /// Reads the counters and takes the interval's latencies, which empties the histogram.
    pub fn take_snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            messages_handled: self.inner.messages_handled.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            restarts: self.inner.restarts.load(Ordering::Relaxed),
            mailbox_depth: self.inner.mailbox_depth.load(Ordering::Relaxed),
            latency: self.inner.latency.take(),
        }
    }
}

impl Default for ServiceStats {
    fn default() -> Self {
        Self::new()
    }
}

/// The start time of one handler run, from [`ServiceStats::start_timer`].
#[derive(Debug)]
#[must_use = "a timer records nothing until `finish` is called"]
pub struct HandlerTimer<'a> {
    stats: &'a ServiceStats,
    /// `None` when collection was off at the start, so the run is not recorded.
    started: Option<Instant>,
}

impl HandlerTimer<'_> {
    /// Records the run: its latency from the start until now, and whether it failed.
    pub fn finish(self, failed: bool) {
        if let Some(started) = self.started {
            self.stats.record(started.elapsed(), failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_counts_messages_and_errors() {
        let stats = ServiceStats::new();
        stats.record(Duration::from_micros(10), false);
        stats.record(Duration::from_micros(10), true);

        let snapshot = stats.take_snapshot();
        assert_eq!(snapshot.messages_handled, 2);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.latency.count, 2);
    }

    #[test]
    fn disabled_stats_record_nothing() {
        let stats = ServiceStats::new();
        stats.set_enabled(false);
        stats.record(Duration::from_micros(10), true);
        stats.start_timer().finish(false);

        let snapshot = stats.take_snapshot();
        assert_eq!(snapshot.messages_handled, 0);
        assert_eq!(snapshot.latency.count, 0);
    }

    #[test]
    fn counters_survive_snapshot() {
        let stats = ServiceStats::new();
        stats.start_timer().finish(false);
        let _ = stats.take_snapshot();

        let snapshot = stats.take_snapshot();
        assert_eq!(snapshot.messages_handled, 1);
        assert_eq!(snapshot.latency.count, 0);
    }
}
