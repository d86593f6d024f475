//! Restart strategies and restart intensity.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The rule that picks the children to restart together when one of them has to be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the child that exited.
    OneForOne,
    /// Stop every other child in reverse start order, then restart all of them in start order.
    OneForAll,
    /// Stop the children started after the one that exited, in reverse start order, then restart
    /// it and them in start order.
    RestForOne,
}

impl Strategy {
    /// Positions (in start order) of the children to restart when the child at `failed` of
    /// `count` children exits.
    pub(crate) fn restart_set(self, failed: usize, count: usize) -> Vec<usize> {
        match self {
            Strategy::OneForOne => vec![failed],
            Strategy::OneForAll => (0..count).collect(),
            Strategy::RestForOne => (failed..count).collect(),
        }
    }
}

/// The restart intensity: at most `max_restarts` restarts within any `period`.
///
/// One more restart within the period makes the supervisor give up: it stops its remaining
/// children and fails to its own parent (escalation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within `period`; zero makes the first restart escalate.
    pub max_restarts: u32,
    /// Length of the sliding window the restarts are counted in.
    pub period: Duration,
}

impl Intensity {
    /// At most `max_restarts` restarts within any `period`.
    pub const fn new(max_restarts: u32, period: Duration) -> Self {
        Self {
            max_restarts,
            period,
        }
    }
}

impl Default for Intensity {
    /// Five restarts in 30 seconds. With the default backoff, a child that fails at every start
    /// escalates about three seconds after its first failure.
    fn default() -> Self {
        Self::new(5, Duration::from_secs(30))
    }
}

/// The restart times inside the current intensity window.
///
/// Holds at most `max_restarts + 1` instants, so memory stays bounded however long a child
/// keeps failing.
#[derive(Debug)]
pub(crate) struct RestartWindow {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
}

/// The restart that [`RestartWindow::record`] rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntensityExceeded {
    /// Restarts counted within the period, including the rejected one.
    pub(crate) restarts: usize,
}

impl RestartWindow {
    pub(crate) fn new(intensity: Intensity) -> Self {
        Self {
            intensity,
            restarts: VecDeque::new(),
        }
    }

    /// Counts a restart at `now`, or reports that it would exceed the intensity.
    pub(crate) fn record(&mut self, now: Instant) -> Result<(), IntensityExceeded> {
        self.forget_before(now);
        self.restarts.push_back(now);

        let allowed = usize::try_from(self.intensity.max_restarts).unwrap_or(usize::MAX);
        if self.restarts.len() > allowed {
            let restarts = self.restarts.len();
            // Keep the window bounded even if the caller goes on recording.
            self.restarts.pop_front();
            return Err(IntensityExceeded { restarts });
        }
        Ok(())
    }

    /// Restarts counted within the period ending at `now`.
    pub(crate) fn count(&mut self, now: Instant) -> usize {
        self.forget_before(now);
        self.restarts.len()
    }

    fn forget_before(&mut self, now: Instant) {
        while let Some(oldest) = self.restarts.front() {
            if now.saturating_duration_since(*oldest) >= self.intensity.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_set_per_strategy() {
        let cases = [
            (Strategy::OneForOne, 1, vec![1]),
            (Strategy::OneForAll, 1, vec![0, 1, 2, 3]),
            (Strategy::RestForOne, 1, vec![1, 2, 3]),
            (Strategy::RestForOne, 3, vec![3]),
            (Strategy::RestForOne, 0, vec![0, 1, 2, 3]),
        ];
        for (strategy, failed, expected) in cases {
            assert_eq!(
                strategy.restart_set(failed, 4),
                expected,
                "{strategy:?} after child {failed} failed"
            );
        }
    }

    #[test]
    fn window_rejects_restart_over_max() {
        let start = Instant::now();
        let mut window = RestartWindow::new(Intensity::new(3, Duration::from_secs(10)));
        for second in 0..3 {
            assert_eq!(window.record(start + Duration::from_secs(second)), Ok(()));
        }
        assert_eq!(
            window.record(start + Duration::from_secs(3)),
            Err(IntensityExceeded { restarts: 4 })
        );
    }

    #[test]
    fn window_forgets_restarts_older_than_period() {
        let start = Instant::now();
        let mut window = RestartWindow::new(Intensity::new(2, Duration::from_secs(10)));
        // Restarts 6 s apart: never more than two within any 10 s.
        for step in 0..20 {
            let now = start + Duration::from_secs(6 * step);
            assert_eq!(window.record(now), Ok(()), "restart {step}");
        }
        assert_eq!(window.count(start + Duration::from_secs(6 * 19)), 2);
    }

    #[test]
    fn window_with_zero_max_rejects_first_restart() {
        let mut window = RestartWindow::new(Intensity::new(0, Duration::from_secs(1)));
        assert_eq!(
            window.record(Instant::now()),
            Err(IntensityExceeded { restarts: 1 })
        );
    }

    #[test]
    fn window_stays_bounded_after_rejections() {
        let now = Instant::now();
        let mut window = RestartWindow::new(Intensity::new(2, Duration::from_secs(60)));
        for _ in 0..100 {
            let _ = window.record(now);
        }
        assert_eq!(window.count(now), 2);
    }
}
