//! The health monitor: heartbeats of every service, detection of failing services, alerts with a
//! durable history, and an opt-in Prometheus endpoint.
//!
//! - A service records its work in [`ServiceStats`]; its heartbeat ([`ServiceHeartbeat`]) carries
//!   those figures with process CPU and memory from a [`ProcessSampler`].
//! - The [`HealthMonitor`] actor feeds heartbeats to a [`Detector`], which moves each service
//!   through `unknown` → `healthy` ⇄ `degraded` → `down` and raises one [`Alert`] per
//!   (service, kind) with hysteresis ([`Threshold`]).
//! - Alert events go to subscribers of [`HealthClient::subscribe_alerts`] and into the
//!   [`AlertHistory`] in the node's store.
//! - [`MetricsServer`] serves every [`MetricSource`] of a [`MetricsRegistry`] on a loopback
//!   address.

mod actor;
mod alert;
mod bus_link;
mod client;
mod config;
mod detector;
mod emitter;
mod error;
mod heartbeat;
mod history;
mod latency;
mod metrics;
mod sampler;
mod stats;

#[cfg(test)]
mod tests;

pub use actor::{HealthArgs, HealthMetrics, HealthMonitor, HealthMsg, HealthState};
pub use alert::{Alert, AlertEventKind, AlertKind, HealthAlert, Severity};
pub use bus_link::{
    HealthBusLink, heartbeat_topic, publish_heartbeat, publish_supervision, spawn_alert_publisher,
    supervision_topic,
};
pub use client::HealthClient;
pub use config::{HealthConfig, Threshold, Thresholds};
pub use detector::{Detector, ServiceState, ServiceStatus};
pub use emitter::{HeartbeatSettings, HeartbeatSink, ServiceNaming, SupervisorHeartbeats};
pub use error::{ConfigError, HealthError, MetricsError};
pub use heartbeat::{MAX_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL, ServiceHeartbeat};
pub use history::{ALERTS, AlertHistory};
pub use latency::{BUCKETS, LatencyHistogram, LatencySummary};
pub use metrics::{
    MetricFamily, MetricKind, MetricSource, MetricsRegistry, MetricsServer, Sample, health_families,
};
pub use sampler::{MIN_SAMPLE_PERIOD, ProcessSample, ProcessSampler};
pub use stats::{HandlerTimer, ServiceStats, StatsSnapshot};
