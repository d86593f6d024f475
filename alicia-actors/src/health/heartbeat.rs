//! The heartbeat a service publishes on `alicia/system/health/{service}`.

use std::time::Duration;

use alicia_core::{NodeId, ServiceId, Timestamp};
use serde::{Deserialize, Serialize};

use super::sampler::ProcessSample;
use super::stats::StatsSnapshot;

/// The shortest heartbeat interval the monitor accepts. Shorter intervals would let a service
/// go `down` after a single scheduling hiccup.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// The longest heartbeat interval the monitor accepts (one day).
pub const MAX_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// One service's sign of life with its figures for the interval that just ended.
///
/// Counters (`messages_handled`, `errors`, `restarts`) count from the start of the service and
/// never decrease while it runs, so a lost heartbeat loses no count. The monitor derives rates
/// from the difference between heartbeats, and treats a decrease as a restart of the counting
/// process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceHeartbeat {
    /// The service the heartbeat is about.
    pub service: ServiceId,
    /// The node that runs the service; its presence going offline marks the service down.
    pub node: NodeId,
    /// When the heartbeat was built, by the sender's clock.
    pub sent_at: Timestamp,
    /// The sender's heartbeat interval in milliseconds, which sets the monitor's deadline for the
    /// next one.
    pub interval_ms: u64,
    /// Time since the service started, in milliseconds.
    pub uptime_ms: u64,
    /// Messages handled since the service started.
    pub messages_handled: u64,
    /// Handler errors since the service started.
    pub errors: u64,
    /// Median handler latency over the interval in microseconds, absent if nothing was handled.
    pub latency_p50_us: Option<u64>,
    /// 99th percentile handler latency over the interval in microseconds, absent if nothing was
    /// handled.
    pub latency_p99_us: Option<u64>,
    /// Messages waiting in the service's mailbox.
    pub mailbox_depth: u64,
    /// Restarts of the service by its supervisor.
    pub restarts: u64,
    /// CPU and resident memory of the process, absent where sampling is off.
    pub process: Option<ProcessSample>,
}

impl ServiceHeartbeat {
    /// Builds a heartbeat from a service's figures at the end of an interval.
    pub fn from_snapshot(
        service: ServiceId,
        node: NodeId,
        sent_at: Timestamp,
        interval: Duration,
        uptime: Duration,
        snapshot: &StatsSnapshot,
        process: Option<ProcessSample>,
    ) -> Self {
        Self {
            service,
            node,
            sent_at,
            interval_ms: millis(interval),
            uptime_ms: millis(uptime),
            messages_handled: snapshot.messages_handled,
            errors: snapshot.errors,
            latency_p50_us: snapshot.latency.p50_micros,
            latency_p99_us: snapshot.latency.p99_micros,
            mailbox_depth: snapshot.mailbox_depth,
            restarts: snapshot.restarts,
            process,
        }
    }

    /// Returns the declared interval.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
