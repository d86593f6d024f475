//! The typed client of the health monitor.

use std::time::Duration;

use alicia_core::store::Store;
use alicia_core::supervisor::ChildHandle;
use alicia_core::{NodeId, ServiceId, SharedClock};
use ractor::{Actor, ActorRef, RpcReplyPort};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::actor::{HealthArgs, HealthMetrics, HealthMonitor, HealthMsg};
use super::alert::{Alert, HealthAlert};
use super::config::HealthConfig;
use super::detector::ServiceStatus;
use super::error::HealthError;
use super::heartbeat::ServiceHeartbeat;

/// How long a query waits for the monitor before failing.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A cheap, cloneable handle to the health monitor.
#[derive(Debug, Clone)]
pub struct HealthClient {
    /// The monitor's current incarnation, found through its supervisor when it has one.
    actor: ChildHandle<HealthMsg>,
    alerts: broadcast::Sender<HealthAlert>,
}

impl HealthClient {
    /// Starts a health monitor outside any supervisor and returns its client and the actor's
    /// join handle.
    ///
    /// # Errors
    ///
    /// [`HealthError::Spawn`] if the actor failed to start, for example because the
    /// configuration is invalid or the alert history could not be read.
    pub async fn start(
        config: HealthConfig,
        store: Store,
        clock: SharedClock,
    ) -> Result<(Self, JoinHandle<()>), HealthError> {
        config.validate()?;
        let alerts = HealthMonitor::alert_channel();
        let args = HealthArgs {
            config,
            store,
            clock,
            alerts: alerts.clone(),
            bus: None,
        };
        let (actor, join) = Actor::spawn(None, HealthMonitor, args)
            .await
            .map_err(|error| HealthError::Spawn {
                reason: error.to_string(),
            })?;
        Ok((Self::new(actor, alerts), join))
    }

    /// Wraps a running monitor, whose alert channel is `alerts`.
    pub fn new(actor: ActorRef<HealthMsg>, alerts: broadcast::Sender<HealthAlert>) -> Self {
        Self::supervised(ChildHandle::unsupervised(actor), alerts)
    }

    /// Wraps a supervised monitor, whose alert channel is `alerts` (the one passed to every
    /// incarnation in [`HealthArgs`]). Calls reach the current incarnation.
    pub fn supervised(
        actor: ChildHandle<HealthMsg>,
        alerts: broadcast::Sender<HealthAlert>,
    ) -> Self {
        Self { actor, alerts }
    }

    /// Returns the monitor's current incarnation, if one is running.
    pub fn actor(&self) -> Option<ActorRef<HealthMsg>> {
        self.actor.current()
    }

    /// Records a heartbeat and waits until the monitor has processed it.
    ///
    /// # Errors
    ///
    /// [`HealthError::InvalidHeartbeat`] if the monitor rejected it, [`HealthError::Call`] if
    /// the monitor is not running.
    pub async fn record_heartbeat(&self, heartbeat: ServiceHeartbeat) -> Result<(), HealthError> {
        self.call("record_heartbeat", |reply| {
            HealthMsg::RecordHeartbeat(heartbeat, reply)
        })
        .await?
    }

    /// Sends a heartbeat without waiting, as a bus subscription does.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub fn send_heartbeat(&self, heartbeat: ServiceHeartbeat) -> Result<(), HealthError> {
        self.running("send_heartbeat")?
            .cast(HealthMsg::Heartbeat(heartbeat))
            .map_err(|error| HealthError::Call {
                operation: "send_heartbeat",
                reason: error.to_string(),
            })
    }

    /// Reports a node's presence; offline marks its services down at once.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub fn node_presence(&self, node: NodeId, online: bool) -> Result<(), HealthError> {
        self.running("node_presence")?
            .cast(HealthMsg::NodePresence { node, online })
            .map_err(|error| HealthError::Call {
                operation: "node_presence",
                reason: error.to_string(),
            })
    }

    /// Runs a sweep for missed heartbeats now and waits for it to finish.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub async fn sweep(&self) -> Result<(), HealthError> {
        self.call("sweep", HealthMsg::SweepNow).await
    }

    /// Returns the status of `service`, or `None` if the monitor has never heard of it.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub async fn status(&self, service: &ServiceId) -> Result<Option<ServiceStatus>, HealthError> {
        let service = service.clone();
        self.call("status", |reply| HealthMsg::Status(service, reply))
            .await
    }

    /// Returns the status of every known service, sorted by service id.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub async fn statuses(&self) -> Result<Vec<ServiceStatus>, HealthError> {
        self.call("statuses", HealthMsg::Statuses).await
    }

    /// Returns every active alert, sorted by id.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub async fn active_alerts(&self) -> Result<Vec<Alert>, HealthError> {
        self.call("active_alerts", HealthMsg::ActiveAlerts).await
    }

    /// Returns up to `limit` alerts from the stored history, newest first.
    ///
    /// # Errors
    ///
    /// [`HealthError::Store`] if the history could not be read, [`HealthError::Call`] if the
    /// monitor is not running.
    pub async fn alert_history(&self, limit: usize) -> Result<Vec<Alert>, HealthError> {
        self.call("alert_history", |reply| HealthMsg::History(limit, reply))
            .await?
    }

    /// Returns the figures that the metrics endpoint exports.
    ///
    /// # Errors
    ///
    /// [`HealthError::Call`] if the monitor is not running.
    pub async fn metrics(&self) -> Result<HealthMetrics, HealthError> {
        self.call("metrics", HealthMsg::Metrics).await
    }

    /// Subscribes to alert events (raised, updated, resolved) from now on.
    ///
    /// A receiver that falls more than 1,024 events behind misses the oldest ones and gets
    /// `RecvError::Lagged`.
    pub fn subscribe_alerts(&self) -> broadcast::Receiver<HealthAlert> {
        self.alerts.subscribe()
    }

    /// The running incarnation, for messages sent without waiting; fails at once during a
    /// restart instead of waiting for it.
    fn running(&self, operation: &'static str) -> Result<ActorRef<HealthMsg>, HealthError> {
        self.actor.current().ok_or_else(|| HealthError::Call {
            operation,
            reason: "the monitor is not running (it may be restarting)".to_owned(),
        })
    }

    async fn call<R, F>(&self, operation: &'static str, build: F) -> Result<R, HealthError>
    where
        R: Send + 'static,
        F: FnOnce(RpcReplyPort<R>) -> HealthMsg,
    {
        self.actor
            .call(build, Some(CALL_TIMEOUT))
            .await
            .map_err(|error| HealthError::Call {
                operation,
                reason: error.to_string(),
            })
    }
}
