//! Heartbeats as part of supervision: one publisher per supervisor sends a heartbeat for each of
//! its workers, so a service gets heartbeats by running under an Alicia supervisor.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use alicia_core::bus::Bus;
use alicia_core::supervisor::{ChildHandle, ChildKind, ChildState, SupervisorMsg};
use alicia_core::{IdError, NodeId, ServiceId, SharedClock};
use tokio::task::JoinHandle;

use super::bus_link::{publish_heartbeat, publish_supervision};
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

/// The rule that turns a supervisor's child ids into the service ids of its heartbeats.
///
/// The monitor tracks one state per service id, so two nodes that run a child of the same id
/// must report it under different service ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceNaming {
    /// The child id is the service id. Use it when no other node runs a child of the same id.
    #[default]
    ChildId,
    /// The service id is `{node}.{child}`, such as `hub.registry`. A child whose qualified id is
    /// over the 64-byte id limit gets no heartbeat, and a warning is logged once.
    NodeQualified,
}

impl ServiceNaming {
    /// Returns the service id of `child` on `node`.
    ///
    /// # Errors
    ///
    /// [`IdError`] if the id is not a valid service id, for example because it is too long.
    pub fn service_id(self, node: &NodeId, child: &str) -> Result<ServiceId, IdError> {
        match self {
            ServiceNaming::ChildId => ServiceId::new(child),
            ServiceNaming::NodeQualified => ServiceId::new(format!("{node}.{child}")),
        }
    }
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
    /// The rule that turns child ids into service ids.
    pub naming: ServiceNaming,
    /// Whether each interval also publishes the supervisor's whole tree snapshot, retained, on
    /// `alicia/nodes/{node}/supervision`. It takes effect with a [`HeartbeatSink::Bus`] only.
    /// Turn it on for the node's root supervisor alone, because the topic contains one tree per
    /// node.
    pub publish_tree: bool,
}

/// A task that publishes, every interval, one heartbeat per worker of a supervisor.
///
/// Each heartbeat carries the worker's restart count and uptime from the supervisor's snapshot,
/// the figures of its [`ServiceStats`] when `start` was given some for its child id, and the
/// process sample. [`HeartbeatSettings::naming`] turns child ids into service ids. Dropping the
/// publisher stops it.
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
    /// Children whose service id was invalid, so the warning is logged once per child.
    unnamed: HashSet<String>,
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
            unnamed: HashSet::new(),
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
    async fn run(mut self) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.emit_once().await;
        }
    }

    async fn emit_once(&mut self) {
        let tree_bus = match &self.sink {
            HeartbeatSink::Bus(bus) if self.settings.publish_tree => Some(bus.clone()),
            _ => None,
        };
        let snapshot = if tree_bus.is_some() {
            self.supervisor.tree_snapshot().await
        } else {
            self.supervisor.snapshot().await
        };
        let snapshot = match snapshot {
            Ok(snapshot) => snapshot,
            Err(error) => {
                // Sending nothing is the right signal: the monitor marks the services down.
                tracing::warn!(supervisor = %self.supervisor.id(), %error, "no heartbeats this interval: the supervisor snapshot failed");
                return;
            }
        };

        if let Some(bus) = &tree_bus
            && let Err(error) = publish_supervision(bus, &self.settings.node, &snapshot).await
        {
            tracing::warn!(supervisor = %self.supervisor.id(), %error, "failed to publish the supervision tree");
        }

        // NOTE: mailbox depth stays 0 unless the worker calls `set_mailbox_depth`, because
        // ractor 0.16 exposes no mailbox length.
        let process = self.sampler.as_ref().and_then(ProcessSampler::latest);
        for child in &snapshot.children {
            if child.kind != ChildKind::Worker || child.state == ChildState::Stopped {
                continue;
            }
            let naming = self.settings.naming;
            let service = match naming.service_id(&self.settings.node, child.id.as_str()) {
                Ok(service) => service,
                Err(error) => {
                    if self.unnamed.insert(child.id.as_str().to_owned()) {
                        tracing::warn!(child = %child.id, node = %self.settings.node, %error, "the child gets no heartbeats because its service id is invalid: shorten the node or child id");
                    }
                    continue;
                }
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
