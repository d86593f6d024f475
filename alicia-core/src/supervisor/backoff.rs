//! Exponential backoff with jitter between successive restarts of one child.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::ConfigError;

/// The delay schedule between successive restarts of the same child.
///
/// The `n`-th successive restart (counting from zero) waits `min * 2^n`, capped at `max`, then
/// spread by the jitter fraction: with jitter `j` the delay is drawn uniformly from
/// `[base * (1 - j), base * (1 + j)]` and capped at `max` again. A child that has run for
/// `reset_after` without failing starts again from `min`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    reset_after: Duration,
}

impl Backoff {
    /// Creates a schedule from `min` doubling up to `max`, reset after `reset_after` of stable running,
    /// without jitter.
    pub fn new(min: Duration, max: Duration, reset_after: Duration) -> Result<Self, ConfigError> {
        if min > max {
            return Err(ConfigError::BackoffMinAboveMax { min, max });
        }
        Ok(Self {
            min,
            max,
            jitter: 0.0,
            reset_after,
        })
    }

    /// No delay at all: every restart happens at once, bounded only by the restart intensity.
    pub const fn none() -> Self {
        Self {
            min: Duration::ZERO,
            max: Duration::ZERO,
            jitter: 0.0,
            reset_after: Duration::ZERO,
        }
    }

    /// Returns the same schedule with each delay spread by `fraction` (0.0 to 1.0) of itself.
    pub fn with_jitter(mut self, fraction: f64) -> Result<Self, ConfigError> {
        if !(0.0..=1.0).contains(&fraction) {
            return Err(ConfigError::JitterOutOfRange { fraction });
        }
        self.jitter = fraction;
        Ok(self)
    }

    /// Returns the delay before the first restart.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// Returns the maximum delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Returns the jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// Returns how long a child must run without failing before its schedule starts again from `min`.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// Computes the delay before successive restart number `attempt` (zero for the first), where `unit`
    /// is a sample from `[0, 1)` that places the delay inside its jitter range.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        if self.jitter == 0.0 {
            return base;
        }

        let unit = unit.clamp(0.0, 1.0);
        let factor = 1.0 - self.jitter + 2.0 * self.jitter * unit;
        base.mul_f64(factor).min(self.max)
    }

    /// `min * 2^attempt`, capped at `max`, without overflow for any attempt.
    fn base_delay(&self, attempt: u32) -> Duration {
        let multiplier = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.min
            .checked_mul(multiplier)
            .map_or(self.max, |delay| delay.min(self.max))
    }
}

impl Default for Backoff {
    /// 100 ms doubling up to 5 s, 20 % jitter, reset after 10 s of stable running.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
            jitter: 0.2,
            reset_after: Duration::from_secs(10),
        }
    }
}

/// The source of jitter for backoff delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JitterSource {
    /// Seeded from the operating system once per supervisor start.
    #[default]
    Entropy,
    /// A fixed seed, so that a test gets the same delays on every run.
    Seeded(u64),
}

impl JitterSource {
    pub(crate) fn rng(self) -> StdRng {
        match self {
            JitterSource::Entropy => StdRng::from_rng(&mut rand::rng()),
            JitterSource::Seeded(seed) => StdRng::seed_from_u64(seed),
        }
    }
}

/// Draws a sample from `[0, 1)` for [`Backoff::delay`].
pub(crate) fn unit_sample(rng: &mut StdRng) -> f64 {
    rng.random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn delay_doubles_up_to_max() {
        let backoff = Backoff::new(millis(100), millis(1_000), millis(5_000)).unwrap();
        let delays: Vec<_> = (0..6).map(|attempt| backoff.delay(attempt, 0.5)).collect();
        assert_eq!(
            delays,
            [
                millis(100),
                millis(200),
                millis(400),
                millis(800),
                millis(1_000),
                millis(1_000)
            ]
        );
    }

    #[test]
    fn delay_survives_huge_attempt() {
        let backoff = Backoff::new(millis(100), millis(1_000), millis(5_000)).unwrap();
        assert_eq!(backoff.delay(u32::MAX, 0.5), millis(1_000));
        assert_eq!(backoff.delay(40, 0.5), millis(1_000));
    }

    #[test]
    fn jitter_stays_in_range() {
        let backoff = Backoff::new(millis(100), millis(10_000), millis(5_000))
            .unwrap()
            .with_jitter(0.25)
            .unwrap();
        assert_eq!(backoff.delay(1, 0.0), millis(150));
        assert_eq!(backoff.delay(1, 1.0), millis(250));

        let mut rng = JitterSource::Seeded(7).rng();
        for _ in 0..1_000 {
            let delay = backoff.delay(1, unit_sample(&mut rng));
            assert!(delay >= millis(150), "{delay:?}");
            assert!(delay <= millis(250), "{delay:?}");
        }
    }

    #[test]
    fn jitter_never_exceeds_max() {
        let backoff = Backoff::new(millis(100), millis(400), millis(5_000))
            .unwrap()
            .with_jitter(1.0)
            .unwrap();
        assert_eq!(backoff.delay(5, 1.0), millis(400));
    }

    #[test]
    fn seeded_jitter_repeats() {
        let backoff = Backoff::default();
        let schedule = |seed| {
            let mut rng = JitterSource::Seeded(seed).rng();
            (0..8)
                .map(|attempt| backoff.delay(attempt, unit_sample(&mut rng)))
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(42), schedule(42));
        assert_ne!(schedule(42), schedule(43));
    }

    #[test]
    fn none_never_waits() {
        assert_eq!(Backoff::none().delay(0, 0.9), Duration::ZERO);
        assert_eq!(Backoff::none().delay(30, 0.9), Duration::ZERO);
    }

    #[test]
    fn new_rejects_min_above_max() {
        let error = Backoff::new(millis(500), millis(100), millis(0)).unwrap_err();
        assert_eq!(
            error,
            ConfigError::BackoffMinAboveMax {
                min: millis(500),
                max: millis(100)
            }
        );
    }

    #[test]
    fn with_jitter_rejects_out_of_range() {
        for fraction in [-0.1, 1.5, f64::NAN] {
            let result = Backoff::default().with_jitter(fraction);
            assert!(result.is_err(), "{fraction} should be rejected");
        }
    }
}
