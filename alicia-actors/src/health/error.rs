//! Errors of the health monitor, its client and its metrics endpoint.

use std::net::SocketAddr;

use alicia_core::StoreError;

/// An invalid setting of the health monitor.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A threshold whose values are not finite, or whose clear value is above its raise value.
    #[error(
        "threshold raise={raise} clear={clear} is invalid: both must be finite numbers, with clear at or below raise"
    )]
    InvalidThreshold {
        /// The raise value given.
        raise: f64,
        /// The clear value given.
        clear: f64,
    },

    /// `missed_heartbeats` is zero, which would mark every service down at once.
    #[error("missed_heartbeats is 0: set it to 1 or more heartbeat intervals")]
    ZeroMissedHeartbeats,

    /// A window or period is zero.
    #[error("{window} is zero: set it to a positive duration")]
    ZeroWindow {
        /// The setting's name.
        window: &'static str,
    },

    /// The alert history would keep nothing.
    #[error("history_retention is 0: set it to the number of alerts to keep, 1 or more")]
    ZeroRetention,
}

/// An error of the health monitor or of a call through [`HealthClient`](super::HealthClient).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The configuration was rejected at start.
    #[error("health monitor configuration is invalid: {0}")]
    Config(#[from] ConfigError),

    /// Reading or writing the alert history failed.
    #[error("alert history: {0}")]
    Store(#[from] StoreError),

    /// A heartbeat was rejected.
    #[error("heartbeat of service \"{service}\" rejected: {reason}")]
    InvalidHeartbeat {
        /// The service named in the heartbeat.
        service: String,
        /// The reason for the rejection.
        reason: String,
    },

    /// The monitor actor could not be started.
    #[error("failed to start the health monitor actor: {reason}")]
    Spawn {
        /// ractor's error message.
        reason: String,
    },

    /// The monitor actor is not running or did not reply.
    #[error("health monitor call {operation} failed: {reason}: check that the monitor is running")]
    Call {
        /// The request that failed.
        operation: &'static str,
        /// ractor's error message.
        reason: String,
    },

    /// A bus operation failed.
    #[error("health monitor bus operation failed: {0}")]
    Bus(#[from] alicia_core::bus::BusError),

    /// A topic could not be formatted from the manifest.
    #[error("health topic: {0}")]
    Manifest(#[from] alicia_core::ManifestError),

    /// A topic the monitor uses is missing from the manifest.
    #[error(
        "topic \"{key}\" is missing from the topic manifest: add it to alicia_core::manifest::MANIFEST"
    )]
    MissingTopic {
        /// The manifest key.
        key: &'static str,
    },

    /// A blocking task writing the alert history panicked or was cancelled.
    #[error("alert history task failed: {reason}")]
    HistoryTask {
        /// tokio's error message.
        reason: String,
    },
}

/// An error of the Prometheus metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is not a loopback address.
    #[error(
        "metrics endpoint address {address} is not a loopback address: bind it to 127.0.0.1 or ::1, and put a reverse proxy in front to reach it from other hosts"
    )]
    NotLoopback {
        /// The rejected address.
        address: SocketAddr,
    },

    /// Binding the listener failed.
    #[error("failed to bind the metrics endpoint to {address}: {error}: pick a free port")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The operating system's error.
        error: std::io::Error,
    },

    /// A metric name is not valid in the Prometheus text format.
    #[error(
        "metric name \"{name}\" is invalid: use ASCII letters, digits, '_' and ':', not starting with a digit"
    )]
    InvalidName {
        /// The rejected name.
        name: String,
    },
}
