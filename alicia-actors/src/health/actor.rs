//! The health monitor actor: owns the [`Detector`], persists alert events and broadcasts them.

use std::collections::BTreeMap;
use std::time::Duration;

use alicia_core::presence::presence_node;
use alicia_core::store::Store;
use alicia_core::{NodeId, ServiceId, SharedClock};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::alert::{Alert, AlertEventKind, AlertKind, HealthAlert};
use super::bus_link::is_heartbeat_topic_of;
use super::config::HealthConfig;
use super::detector::{Detector, ServiceStatus};
use super::error::HealthError;
use super::heartbeat::ServiceHeartbeat;
use super::history::AlertHistory;

/// Alert events a slow subscriber may fall behind by before it misses some.
const ALERT_CHANNEL_CAPACITY: usize = 1_024;

/// Shortest time between two log lines about rejected heartbeats.
const REJECT_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The messages of the health monitor. Use [`HealthClient`](super::HealthClient) rather than
/// building them.
#[derive(Debug)]
pub enum HealthMsg {
    /// A heartbeat, without acknowledgement, as the bus delivers them.
    Heartbeat(ServiceHeartbeat),
    /// A heartbeat from the bus, with the topic it arrived on, which must be its service's.
    BusHeartbeat {
        /// The topic it was published to.
        topic: alicia_core::TopicName,
        /// The heartbeat.
        heartbeat: ServiceHeartbeat,
    },
    /// A heartbeat whose acceptance is reported back.
    RecordHeartbeat(ServiceHeartbeat, RpcReplyPort<Result<(), HealthError>>),
    /// A node's presence changed; `online: false` marks its services down at once.
    NodePresence {
        /// The node.
        node: NodeId,
        /// Whether it is online.
        online: bool,
    },
    /// A presence message from the bus, with the topic it arrived on, which names the node.
    BusPresence {
        /// The topic it was published to, `alicia/nodes/{node}/presence`.
        topic: alicia_core::TopicName,
        /// The presence it announces.
        presence: alicia_core::NodePresence,
    },
    /// The timer's sweep for missed heartbeats.
    Sweep,
    /// A sweep requested by a caller, which gets a reply when it is done.
    SweepNow(RpcReplyPort<()>),
    /// The status of one service.
    Status(ServiceId, RpcReplyPort<Option<ServiceStatus>>),
    /// The status of every known service.
    Statuses(RpcReplyPort<Vec<ServiceStatus>>),
    /// Every active alert.
    ActiveAlerts(RpcReplyPort<Vec<Alert>>),
    /// Up to this many alerts from the history, newest first.
    History(usize, RpcReplyPort<Result<Vec<Alert>, HealthError>>),
    /// The figures the metrics endpoint exports.
    Metrics(RpcReplyPort<HealthMetrics>),
}

/// The monitor's figures for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct HealthMetrics {
    /// Every known service.
    pub statuses: Vec<ServiceStatus>,
    /// Active alerts per kind.
    pub active_alerts: BTreeMap<AlertKind, u64>,
    /// Alerts raised since the monitor started, per kind.
    pub raised_total: BTreeMap<AlertKind, u64>,
    /// Alerts resolved since the monitor started, per kind.
    pub resolved_total: BTreeMap<AlertKind, u64>,
    /// Heartbeats accepted since the monitor started.
    pub heartbeats_total: u64,
    /// Heartbeats rejected since the monitor started.
    pub heartbeats_rejected_total: u64,
    /// Alert history writes that failed since the monitor started.
    pub history_errors_total: u64,
}

/// The monitor's start arguments.
#[derive(Debug)]
pub struct HealthArgs {
    /// Thresholds and timing.
    pub config: HealthConfig,
    /// The node's store, which contains the alert history.
    pub store: Store,
    /// The clock that all detection reads.
    pub clock: SharedClock,
    /// The channel of alert events, whose receivers [`HealthClient`](super::HealthClient) hands out.
    pub alerts: broadcast::Sender<HealthAlert>,
    /// The bus to take heartbeats and node presence from. Each incarnation subscribes in
    /// `pre_start`, so a restart of the monitor resubscribes it. `None` leaves the monitor off the
    /// bus.
    pub bus: Option<alicia_core::bus::Bus>,
}

/// The health monitor actor.
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthMonitor;

/// The monitor's state. Only the actor touches it, one message at a time.
#[derive(Debug)]
pub struct HealthState {
    detector: Detector,
    history: AlertHistory,
    alerts: broadcast::Sender<HealthAlert>,
    clock: SharedClock,
    /// The sweep timer, stopped in `post_stop`.
    sweep_timer: Option<JoinHandle<()>>,
    metrics: HealthMetrics,
    /// Monotonic time of the last log line about a rejected heartbeat.
    rejection_logged_at: Option<Duration>,
}

impl HealthMonitor {
    /// Creates the channel that alert events go out on.
    pub fn alert_channel() -> broadcast::Sender<HealthAlert> {
        broadcast::channel(ALERT_CHANNEL_CAPACITY).0
    }
}

impl Actor for HealthMonitor {
    type Msg = HealthMsg;
    type State = HealthState;
    type Arguments = HealthArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let history = AlertHistory::new(args.store, args.config.history_retention);
        let loaded = {
            let history = history.clone();
            tokio::task::spawn_blocking(move || {
                Ok::<_, HealthError>((history.next_id()?, history.open_alerts()?))
            })
            .await
            .map_err(|error| HealthError::HistoryTask {
                reason: error.to_string(),
            })??
        };
        let (next_id, open_alerts) = loaded;

        let sweep_interval = args.config.sweep_interval;
        let mut detector = Detector::new(args.config, args.clock.clone(), next_id)?;
        tracing::info!(
            restored_alerts = open_alerts.len(),
            next_alert_id = next_id,
            "health monitor started"
        );
        detector.restore(open_alerts);

        if let Some(bus) = &args.bus {
            super::bus_link::subscribe_heartbeats(bus, &myself).await?;
            super::bus_link::subscribe_presence(bus, &myself).await?;
        }

        let sweep_timer =
            sweep_interval.map(|period| myself.send_interval(period, || HealthMsg::Sweep));

        Ok(HealthState {
            detector,
            history,
            alerts: args.alerts,
            clock: args.clock,
            sweep_timer,
            metrics: HealthMetrics::default(),
            rejection_logged_at: None,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.sweep_timer.take() {
            timer.abort();
        }
        tracing::info!("health monitor stopped");
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HealthMsg::Heartbeat(heartbeat) => {
                let _ = state.ingest(heartbeat).await;
            }
            HealthMsg::BusHeartbeat { topic, heartbeat } => {
                if is_heartbeat_topic_of(&topic, &heartbeat.service) {
                    let _ = state.ingest(heartbeat).await;
                } else {
                    let error = HealthError::InvalidHeartbeat {
                        service: heartbeat.service.to_string(),
                        reason: format!(
                            "it arrived on topic \"{topic}\", which is not the service's heartbeat topic"
                        ),
                    };
                    state.metrics.heartbeats_rejected_total += 1;
                    state.log_rejection(&error);
                }
            }
            HealthMsg::RecordHeartbeat(heartbeat, reply) => {
                let result = state.ingest(heartbeat).await;
                let _ = reply.send(result);
            }
            HealthMsg::NodePresence { node, online } => {
                state.presence_changed(&node, online).await;
            }
            HealthMsg::BusPresence { topic, presence } => match presence_node(&topic) {
                Some(node) => {
                    let online = presence == alicia_core::NodePresence::Online;
                    state.presence_changed(&node, online).await;
                }
                None => {
                    tracing::warn!(%topic, "presence ignored: the topic names no valid node id");
                }
            },
            HealthMsg::Sweep => {
                let events = state.detector.sweep();
                state.publish(events).await;
            }
            HealthMsg::SweepNow(reply) => {
                let events = state.detector.sweep();
                state.publish(events).await;
                let _ = reply.send(());
            }
            HealthMsg::Status(service, reply) => {
                let _ = reply.send(state.detector.status(&service));
            }
            HealthMsg::Statuses(reply) => {
                let _ = reply.send(state.detector.statuses());
            }
            HealthMsg::ActiveAlerts(reply) => {
                let _ = reply.send(state.detector.active_alerts());
            }
            HealthMsg::History(limit, reply) => {
                let history = state.history.clone();
                let result = tokio::task::spawn_blocking(move || history.newest(limit))
                    .await
                    .unwrap_or_else(|error| {
                        Err(HealthError::HistoryTask {
                            reason: error.to_string(),
                        })
                    });
                let _ = reply.send(result);
            }
            HealthMsg::Metrics(reply) => {
                let _ = reply.send(state.metrics_snapshot());
            }
        }
        Ok(())
    }
}

impl HealthState {
    async fn ingest(&mut self, heartbeat: ServiceHeartbeat) -> Result<(), HealthError> {
        match self.detector.ingest(heartbeat) {
            Ok(events) => {
                self.metrics.heartbeats_total += 1;
                self.publish(events).await;
                Ok(())
            }
            Err(error) => {
                self.metrics.heartbeats_rejected_total += 1;
                self.log_rejection(&error);
                Err(error)
            }
        }
    }

    /// Marks the services of `node` down when it went offline. Coming back online changes
    /// nothing by itself: each service is healthy again with its next heartbeat.
    async fn presence_changed(&mut self, node: &NodeId, online: bool) {
        if online {
            tracing::debug!(%node, "node is online");
            return;
        }
        let events = self.detector.node_offline(node);
        if events.is_empty() {
            // Also the case of a node's own presence retained from its last run.
            tracing::info!(%node, "node is offline; none of its services was known to be up");
        } else {
            tracing::warn!(
                %node,
                alerts_raised = events.len(),
                "node went offline: its services are marked down"
            );
        }
        self.publish(events).await;
    }

    /// Logs a rejected heartbeat unless one was logged within [`REJECT_LOG_PERIOD`].
    fn log_rejection(&mut self, error: &HealthError) {
        let now = self.clock.monotonic();
        let recently = self
            .rejection_logged_at
            .is_some_and(|logged| now.saturating_sub(logged) < REJECT_LOG_PERIOD);
        if recently {
            return;
        }
        self.rejection_logged_at = Some(now);
        tracing::warn!(
            %error,
            rejected_total = self.metrics.heartbeats_rejected_total,
            "heartbeat rejected"
        );
    }

    /// Writes each event to the history, then broadcasts it.
    ///
    /// A failed history write is logged and counted, and the event still goes out: the alert is
    /// real even when the disk is not.
    async fn publish(&mut self, events: Vec<HealthAlert>) {
        for event in events {
            match event.event {
                AlertEventKind::Raised => {
                    *self
                        .metrics
                        .raised_total
                        .entry(event.alert.kind)
                        .or_default() += 1;
                }
                AlertEventKind::Resolved => {
                    *self
                        .metrics
                        .resolved_total
                        .entry(event.alert.kind)
                        .or_default() += 1;
                }
                AlertEventKind::Updated => {}
            }

            let history = self.history.clone();
            let alert = event.alert.clone();
            let written = tokio::task::spawn_blocking(move || history.record(&alert))
                .await
                .unwrap_or_else(|error| {
                    Err(HealthError::HistoryTask {
                        reason: error.to_string(),
                    })
                });
            if let Err(error) = written {
                self.metrics.history_errors_total += 1;
                tracing::error!(
                    service = %event.alert.service,
                    alert_id = event.alert.id,
                    %error,
                    "failed to write alert to the history"
                );
            }

            // A send without receivers fails, which only means that no one has subscribed yet.
            let _ = self.alerts.send(event);
        }
    }

    fn metrics_snapshot(&self) -> HealthMetrics {
        let mut metrics = self.metrics.clone();
        metrics.statuses = self.detector.statuses();
        metrics.active_alerts = BTreeMap::new();
        for alert in self.detector.active_alerts() {
            *metrics.active_alerts.entry(alert.kind).or_default() += 1;
        }
        metrics
    }
}
