//! Heartbeats as part of supervision: one publisher per supervisor sends a heartbeat for each of
//! its workers, so a service gets heartbeats by running under an Alicia supervisor.

use std::collections::HashMap;
use std::time::Duration;

use alicia_core::bus::Bus;
use alicia_core::supervisor::{ChildHandle, ChildKind, ChildState, SupervisorMsg};
use alicia_core::{NodeId, ServiceId, SharedClock};
use tokio::task::JoinHandle;

use super::bus_link::publish_heartbeat;
use super::client::HealthClient;
use super::heartbeat::{MIN_HEARTBEAT_INTERVAL, ServiceHeartbeat};
use super::sampler::ProcessSampler;
use super::stats::{ServiceStats, StatsSnapshot};

/// The destination of heartbeats.
#[derive(Debug, Clone)]
pub enum HeartbeatSink {
    /// Straight to a monitor in this process.
    Monitor(HealthClient),
    /// On the bus, to `alicia/system/health/{service}`.
    Bus(Bus),
}

/// Settings of a [`SupervisorHeartbeats`] publisher.
#[derive(Debug, Clone)]
pub struct HeartbeatSettings {
    /// The node the supervisor runs on.
    pub node: NodeId,
    /// Time between heartbeats; at least [`MIN_HEARTBEAT_INTERVAL`].
    pub interval: Duration,
    /// The clock that stamps heartbeats.
    pub clock: SharedClock,
}

/// A task that publishes, every interval, one heartbeat per worker of a supervisor.
///
/// Each heartbeat carries the worker's restart count and uptime from the supervisor's snapshot,
/// the figures of its [`ServiceStats`] when the worker registered some with
/// [`with_stats`](Self::with_stats), and the process sample. A worker's child id is its service
/// id. Dropping the publisher stops it.
#[derive(Debug)]
pub struct SupervisorHeartbeats {
    task: JoinHandle<()>,
}

/// The publisher's handles and settings, used on every tick.
struct Emitter {
    supervisor: ChildHandle<SupervisorMsg>,
    sink: HeartbeatSink,
    settings: HeartbeatSettings,
    stats: HashMap<String, ServiceStats>,
    sampler: Option<ProcessSampler>,
}

impl SupervisorHeartbeats {
    /// Starts publishing heartbeats for the workers of `supervisor`.
    pub fn start(
        supervisor: ChildHandle<SupervisorMsg>,
        sink: HeartbeatSink,
        settings: HeartbeatSettings,
        stats: HashMap<ServiceId, ServiceStats>,
    ) -> Self {
        let interval = settings.interval.max(MIN_HEARTBEAT_INTERVAL);
        let emitter = Emitter {
            supervisor,
            sink,
            settings: HeartbeatSettings {
                interval,
                ..settings
            },
            stats: stats
                .into_iter()
                .map(|(service, stats)| (service.into_string(), stats))
                .collect(),
            sampler: ProcessSampler::start(interval),
        };
        Self {
            task: tokio::spawn(emitter.run()),
        }
    }

    /// Stops publishing.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for SupervisorHeartbeats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Emitter {
    async fn run(self) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.emit_once().await;
        }
    }

    async fn emit_once(&self) {
        let snapshot = match self.supervisor.snapshot().await {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // Sending nothing is the right signal: the monitor marks the services down.
                tracing::warn!(supervisor = %self.supervisor.id(), %error, "no heartbeats this interval: the supervisor snapshot failed");
                return;
            }
        };

        // NOTE: the supervisor's tree snapshot is read here but not yet published on its own
        // topic, and mailbox depth stays 0 unless the worker calls `set_mailbox_depth`, because
        // ractor 0.16 exposes no mailbox length.
        let process = self.sampler.as_ref().and_then(ProcessSampler::latest);
        for child in &snapshot.children {
            if child.kind != ChildKind::Worker || child.state == ChildState::Stopped {
                continue;
            }
            let Ok(service) = ServiceId::new(child.id.as_str()) else {
                tracing::debug!(child = %child.id, "no heartbeat: the child id is not a valid service id");
                continue;
            };

            let uptime = match child.state {
                ChildState::Running { uptime } => uptime,
                _ => Duration::ZERO,
            };
            let stats = self.stats.get(child.id.as_str());
            if let Some(stats) = stats {
                stats.set_restarts(child.restart_count);
            }
            let figures = stats.map_or(
                StatsSnapshot {
                    messages_handled: 0,
                    errors: 0,
                    restarts: child.restart_count,
                    mailbox_depth: 0,
                    latency: Default::default(),
                },
                ServiceStats::take_snapshot,
            );

            let heartbeat = ServiceHeartbeat::from_snapshot(
                service,
                self.settings.node.clone(),
                self.settings.clock.now(),
                self.settings.interval,
                uptime,
                &figures,
                process,
            );
            self.send(heartbeat).await;
        }
    }

    async fn send(&self, heartbeat: ServiceHeartbeat) {
        let result = match &self.sink {
            HeartbeatSink::Monitor(client) => client.send_heartbeat(heartbeat.clone()),
            HeartbeatSink::Bus(bus) => publish_heartbeat(bus, &heartbeat).await,
        };
        if let Err(error) = result {
            tracing::warn!(service = %heartbeat.service, %error, "failed to send heartbeat");
        }
    }
}
