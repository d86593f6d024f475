//! Thresholds per service and the monitor's settings.

use std::collections::HashMap;
use std::time::Duration;

use alicia_core::ServiceId;
use serde::{Deserialize, Serialize};

use super::error::ConfigError;

/// A limit with hysteresis: an alert is raised when the value reaches `raise` and resolved only
/// when it falls below `clear`, so a value hovering at the limit raises one alert, not many.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    raise: f64,
    clear: f64,
}

impl Threshold {
    /// Creates a threshold that raises at `raise` or above and clears below `clear`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidThreshold`] if either value is not finite or `clear` is above
    /// `raise`.
    pub fn new(raise: f64, clear: f64) -> Result<Self, ConfigError> {
        if !raise.is_finite() || !clear.is_finite() || clear > raise {
            return Err(ConfigError::InvalidThreshold { raise, clear });
        }
        Ok(Self { raise, clear })
    }

    /// Creates a threshold that raises at `raise` and clears 10 % below it.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidThreshold`] if `raise` is not finite or is negative.
    pub fn with_default_margin(raise: f64) -> Result<Self, ConfigError> {
        if raise < 0.0 {
            return Err(ConfigError::InvalidThreshold {
                raise,
                clear: raise * 0.9,
            });
        }
        Self::new(raise, raise * 0.9)
    }

    /// Returns the value at or above which an alert is raised.
    pub fn raise(&self) -> f64 {
        self.raise
    }

    /// Returns the value below which a raised alert is resolved.
    pub fn clear(&self) -> f64 {
        self.clear
    }

    /// Decides whether an alert is active after seeing `value`, given whether it was active.
    pub fn is_exceeded(&self, value: f64, active: bool) -> bool {
        if active {
            value >= self.clear
        } else {
            value >= self.raise
        }
    }
}

/// The limits the monitor checks for one service. `None` turns a check off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    /// Heartbeat intervals without a heartbeat after which the service is `down`.
    pub missed_heartbeats: u32,
    /// Process CPU in percent of one core.
    pub cpu_percent: Option<Threshold>,
    /// Process resident memory in bytes.
    pub memory_bytes: Option<Threshold>,
    /// Handler errors per message handled, from 0.0 to 1.0, over [`error_window`](Self::error_window).
    pub error_rate: Option<Threshold>,
    /// The sliding window over which the error rate is computed.
    pub error_window: Duration,
    /// Fewest messages in the window for the error rate to count, so that one failure among two
    /// messages raises no alert.
    pub min_messages_for_error_rate: u64,
    /// 99th percentile handler latency in milliseconds.
    pub latency_p99_ms: Option<Threshold>,
    /// Restarts within [`restart_window`](Self::restart_window).
    pub restarts: Option<Threshold>,
    /// The sliding window over which restarts are counted.
    pub restart_window: Duration,
}

impl Default for Thresholds {
    /// Defaults for a service on a home hub: down after 3 missed heartbeats, alerts at 90 % of
    /// one core, 1 GiB resident memory, 5 % errors over 5 minutes (of at least 20 messages), a
    /// p99 latency of 500 ms and 5 restarts in 5 minutes. Each clears 10 % below its limit.
    fn default() -> Self {
        Self {
            missed_heartbeats: 3,
            cpu_percent: Some(Threshold {
                raise: 90.0,
                clear: 81.0,
            }),
            memory_bytes: Some(Threshold {
                raise: 1024.0 * 1024.0 * 1024.0,
                clear: 0.9 * 1024.0 * 1024.0 * 1024.0,
            }),
            error_rate: Some(Threshold {
                raise: 0.05,
                clear: 0.045,
            }),
            error_window: Duration::from_secs(300),
            min_messages_for_error_rate: 20,
            latency_p99_ms: Some(Threshold {
                raise: 500.0,
                clear: 450.0,
            }),
            restarts: Some(Threshold {
                raise: 5.0,
                clear: 4.5,
            }),
            restart_window: Duration::from_secs(300),
        }
    }
}

impl Thresholds {
    /// Checks the values that no type rules out.
    ///
    /// # Errors
    ///
    /// [`ConfigError::ZeroMissedHeartbeats`] and [`ConfigError::ZeroWindow`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.missed_heartbeats == 0 {
            return Err(ConfigError::ZeroMissedHeartbeats);
        }
        if self.error_window.is_zero() {
            return Err(ConfigError::ZeroWindow {
                window: "error_window",
            });
        }
        if self.restart_window.is_zero() {
            return Err(ConfigError::ZeroWindow {
                window: "restart_window",
            });
        }
        Ok(())
    }
}

/// Settings of the health monitor.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Thresholds of every service without its own entry in `per_service`.
    pub default_thresholds: Thresholds,
    /// Thresholds of named services.
    pub per_service: HashMap<ServiceId, Thresholds>,
    /// Services the monitor expects. They start `unknown` and go `down` if no heartbeat arrives
    /// within `missed_heartbeats` times `expected_interval` of the monitor's start.
    pub expected_services: Vec<ServiceId>,
    /// The heartbeat interval assumed for expected services before their first heartbeat.
    pub expected_interval: Duration,
    /// Period of the sweep that finds missed heartbeats; `None` leaves sweeping to
    /// [`HealthClient::sweep`](super::HealthClient::sweep), as tests with a manual clock do.
    pub sweep_interval: Option<Duration>,
    /// Shortest time between two `updated` events of one alert.
    pub alert_update_interval: Duration,
    /// Most alerts kept in the history; the oldest are removed first.
    pub history_retention: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            default_thresholds: Thresholds::default(),
            per_service: HashMap::new(),
            expected_services: Vec::new(),
            expected_interval: Duration::from_secs(10),
            sweep_interval: Some(Duration::from_secs(1)),
            alert_update_interval: Duration::from_secs(60),
            history_retention: 10_000,
        }
    }
}

impl HealthConfig {
    /// Returns the thresholds of `service`.
    pub fn thresholds(&self, service: &ServiceId) -> &Thresholds {
        self.per_service
            .get(service)
            .unwrap_or(&self.default_thresholds)
    }

    /// Checks every threshold set and the retention limit.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.default_thresholds.validate()?;
        for thresholds in self.per_service.values() {
            thresholds.validate()?;
        }
        if self.history_retention == 0 {
            return Err(ConfigError::ZeroRetention);
        }
        if self
            .sweep_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return Err(ConfigError::ZeroWindow {
                window: "sweep_interval",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_rejects_clear_above_raise() {
        assert!(Threshold::new(10.0, 11.0).is_err());
    }

    #[test]
    fn threshold_rejects_nan() {
        assert!(Threshold::new(f64::NAN, 1.0).is_err());
    }

    #[test]
    fn threshold_hysteresis() {
        let threshold = Threshold::new(80.0, 70.0).unwrap();
        assert!(!threshold.is_exceeded(79.9, false));
        assert!(threshold.is_exceeded(80.0, false));
        assert!(threshold.is_exceeded(70.0, true));
        assert!(!threshold.is_exceeded(69.9, true));
    }

    #[test]
    fn default_thresholds_are_valid() {
        assert!(HealthConfig::default().validate().is_ok());
    }

    #[test]
    fn zero_missed_heartbeats_rejected() {
        let thresholds = Thresholds {
            missed_heartbeats: 0,
            ..Thresholds::default()
        };
        assert!(matches!(
            thresholds.validate(),
            Err(ConfigError::ZeroMissedHeartbeats)
        ));
    }
}
