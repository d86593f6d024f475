//! Rate limiting for log lines about repeated bad input.

use std::time::Duration;

/// Decides which occurrences of one repeated event get a log line: the first, then at most one
/// per window, each reporting how many were left out since the previous line.
///
/// Time is the monotonic time of a [`Clock`](crate::clock::Clock), so tests can drive it.
#[derive(Debug, Clone)]
pub struct LogRateLimit {
    window: Duration,
    /// Monotonic time of the last logged occurrence, or `None` before the first.
    last_logged: Option<Duration>,
    /// Occurrences left out since the last logged one.
    suppressed: u64,
}

impl LogRateLimit {
    /// Default window: one line per 10 seconds per event source.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10);

    /// Creates a limiter that logs at most one line per `window`.
    pub const fn new(window: Duration) -> Self {
        Self {
            window,
            last_logged: None,
            suppressed: 0,
        }
    }

    /// Records one occurrence at monotonic time `now`.
    ///
    /// Returns `Some(n)` when this occurrence should be logged, where `n` is the number of
    /// occurrences left out since the last logged one, and `None` when it should be left out.
    pub fn record(&mut self, now: Duration) -> Option<u64> {
        let due = match self.last_logged {
            None => true,
            Some(last) => now.saturating_sub(last) >= self.window,
        };

        if !due {
            self.suppressed += 1;
            return None;
        }

        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl Default for LogRateLimit {
    fn default() -> Self {
        Self::new(Self::DEFAULT_WINDOW)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limit_logs_first_then_once_per_window() {
        let mut limit = LogRateLimit::new(Duration::from_secs(10));
        assert_eq!(limit.record(Duration::from_secs(0)), Some(0));
        assert_eq!(limit.record(Duration::from_secs(1)), None);
        assert_eq!(limit.record(Duration::from_secs(9)), None);
        assert_eq!(limit.record(Duration::from_secs(10)), Some(2));
        assert_eq!(limit.record(Duration::from_secs(11)), None);
    }
}
