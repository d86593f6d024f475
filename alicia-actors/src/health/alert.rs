//! Alerts: one per (service, kind), raised once, updated while the condition lasts, resolved when
//! it clears.

use std::fmt;

use alicia_core::{ServiceId, Timestamp};
use serde::{Deserialize, Serialize};

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// No heartbeat for the configured number of intervals, or the service's node went offline.
    ServiceDown,
    /// Process CPU at or above its threshold.
    HighCpu,
    /// Process resident memory at or above its threshold.
    HighMemory,
    /// Handler errors per message over the sliding window at or above the threshold.
    HighErrorRate,
    /// p99 handler latency at or above its threshold.
    SlowResponses,
    /// Restarts within the restart window at or above the threshold.
    RestartStorm,
}

impl AlertKind {
    /// Every kind, in a fixed order.
    pub const ALL: [AlertKind; 6] = [
        AlertKind::ServiceDown,
        AlertKind::HighCpu,
        AlertKind::HighMemory,
        AlertKind::HighErrorRate,
        AlertKind::SlowResponses,
        AlertKind::RestartStorm,
    ];

    /// Returns the snake_case name used on the wire and in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ServiceDown => "service_down",
            AlertKind::HighCpu => "high_cpu",
            AlertKind::HighMemory => "high_memory",
            AlertKind::HighErrorRate => "high_error_rate",
            AlertKind::SlowResponses => "slow_responses",
            AlertKind::RestartStorm => "restart_storm",
        }
    }

    /// Returns the severity of alerts of this kind.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::ServiceDown | AlertKind::RestartStorm => Severity::Critical,
            _ => Severity::Warning,
        }
    }

    /// Returns the unit of the alert's value, for messages.
    fn unit(self) -> &'static str {
        match self {
            AlertKind::ServiceDown => "missed heartbeat intervals",
            AlertKind::HighCpu => "% CPU",
            AlertKind::HighMemory => "bytes resident",
            AlertKind::HighErrorRate => "errors per message",
            AlertKind::SlowResponses => "ms p99 latency",
            AlertKind::RestartStorm => "restarts in the window",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The service works but is strained.
    Warning,
    /// The service is not working, or keeps failing.
    Critical,
}

/// One alert, active or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Id, unique within this node's history and increasing with the time of raising.
    pub id: u64,
    /// The service the alert is about.
    pub service: ServiceId,
    /// What the alert is about.
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// A sentence for operators, describing the latest value.
    pub message: String,
    /// The latest value of the checked figure, in the unit of the kind.
    pub value: f64,
    /// The highest value seen while the alert was active.
    pub peak: f64,
    /// The threshold that raised it.
    pub threshold: f64,
    /// When it was raised.
    pub raised_at: Timestamp,
    /// When its value was last updated.
    pub updated_at: Timestamp,
    /// When it was resolved, or `None` while it is active.
    pub resolved_at: Option<Timestamp>,
}

impl Alert {
    /// Returns whether the alert is still active.
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// Builds the operator message of a threshold alert.
    pub(crate) fn describe(
        kind: AlertKind,
        service: &ServiceId,
        value: f64,
        threshold: f64,
    ) -> String {
        format!(
            "service \"{service}\": {kind} at {value:.3} {} (threshold {threshold})",
            kind.unit()
        )
    }
}

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    /// The condition started.
    Raised,
    /// The condition goes on and its value changed.
    Updated,
    /// The condition cleared.
    Resolved,
}

/// An alert event, as published on `alicia/system/health/alerts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthAlert {
    /// What happened.
    pub event: AlertEventKind,
    /// The alert after the event.
    pub alert: Alert,
}
