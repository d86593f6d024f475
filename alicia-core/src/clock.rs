//! Time as the rest of Alicia reads it.
//!
//! Every expiry decision (tokens, certificates, heartbeats, alerts, backoff) reads a [`Clock`] for
//! the time instead of calling the operating system, so tests can put a [`ManualClock`] at exactly
//! the boundary they check, without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time in milliseconds since the Unix epoch, as carried in envelopes and records.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// Returns the time `duration` after this one, saturating at the maximum.
    pub fn saturating_add(self, duration: Duration) -> Timestamp {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// Returns the time elapsed from `earlier` to this one, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A source of the current time.
///
/// `now` is wall-clock time (it can jump when the system clock is set); `monotonic` never goes
/// backwards and is what intervals and timeouts measure.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Returns the current wall-clock time.
    fn now(&self) -> Timestamp;

    /// Time since an arbitrary fixed origin; never decreases.
    fn monotonic(&self) -> Duration;
}

/// A shared, cloneable clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: std::time::Instant,
}

impl SystemClock {
    /// Creates a system clock whose monotonic origin is the moment of this call.
    pub fn new() -> Self {
        Self {
            origin: std::time::Instant::now(),
        }
    }

    /// Creates a system clock behind a [`SharedClock`] handle.
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        // A system clock set before 1970 reads as the epoch rather than failing every caller.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when a test moves it.
///
/// Clones share the same time, so a test keeps one clone and hands another to the code under test.
/// Wall-clock and monotonic time advance together; [`ManualClock::set`] moves only the wall clock,
/// as an administrator setting the system time would.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualClockState>,
}

#[derive(Debug)]
struct ManualClockState {
    /// Wall-clock milliseconds since the epoch.
    wall_millis: AtomicU64,
    /// Monotonic nanoseconds since the clock was created.
    monotonic_nanos: AtomicU64,
}

impl ManualClock {
    /// Creates a manual clock reading `start`, with its monotonic time at zero.
    pub fn new(start: Timestamp) -> Self {
        Self {
            inner: Arc::new(ManualClockState {
                wall_millis: AtomicU64::new(start.0),
                monotonic_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves wall-clock and monotonic time forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        self.inner.wall_millis.fetch_add(millis, Ordering::SeqCst);
        self.inner
            .monotonic_nanos
            .fetch_add(nanos, Ordering::SeqCst);
    }

    /// Sets the wall clock to `time`, forwards or backwards; monotonic time is unchanged.
    pub fn set(&self, time: Timestamp) {
        self.inner.wall_millis.store(time.0, Ordering::SeqCst);
    }

    /// This clock behind a [`SharedClock`] handle that shares its time.
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.inner.wall_millis.load(Ordering::SeqCst))
    }

    fn monotonic(&self) -> Duration {
        Duration::from_nanos(self.inner.monotonic_nanos.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_both_times() {
        let clock = ManualClock::new(Timestamp(1_000));
        clock.advance(Duration::from_millis(250));
        assert_eq!(clock.now(), Timestamp(1_250));
        assert_eq!(clock.monotonic(), Duration::from_millis(250));
    }

    #[test]
    fn manual_clock_set_moves_wall_time_only() {
        let clock = ManualClock::new(Timestamp(5_000));
        clock.advance(Duration::from_secs(1));
        clock.set(Timestamp(1_000));
        assert_eq!(clock.now(), Timestamp(1_000));
        assert_eq!(clock.monotonic(), Duration::from_secs(1));
    }

    #[test]
    fn manual_clock_clones_share_time() {
        let clock = ManualClock::new(Timestamp(0));
        let shared = clock.shared();
        clock.advance(Duration::from_secs(3));
        assert_eq!(shared.now(), Timestamp(3_000));
    }

    #[test]
    fn system_clock_is_after_2020() {
        let now = SystemClock::new().now();
        assert!(now > Timestamp(1_577_836_800_000), "{now}");
    }

    #[test]
    fn system_clock_monotonic_does_not_decrease() {
        let clock = SystemClock::new();
        let first = clock.monotonic();
        let second = clock.monotonic();
        assert!(second >= first);
    }

    #[test]
    fn timestamp_arithmetic_saturates() {
        assert_eq!(
            Timestamp(u64::MAX).saturating_add(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
        assert_eq!(
            Timestamp(5).saturating_duration_since(Timestamp(10)),
            Duration::ZERO
        );
    }
}
