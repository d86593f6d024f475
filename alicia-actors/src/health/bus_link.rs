//! The monitor on the bus: heartbeats in from `alicia/system/health/{service}`, node presence in
//! from `alicia/nodes/{node}/presence`, alert events out on `alicia/system/health/alerts`.

use alicia_core::bus::{Bus, Delivery, PublishClass, PublishOptions, RouteId};
use alicia_core::manifest::{self, TopicSpec};
use alicia_core::presence::{NodePresence, presence_spec};
use alicia_core::supervisor::SupervisorSnapshot;
use alicia_core::{Envelope, NodeId, ServiceId, TopicName};
use ractor::ActorRef;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::actor::HealthMsg;
use super::alert::HealthAlert;
use super::client::HealthClient;
use super::error::HealthError;
use super::heartbeat::ServiceHeartbeat;

/// Manifest key of the heartbeat topic.
const HEARTBEAT_TOPIC: &str = "health.heartbeat";

/// Manifest key of the alert topic.
const ALERT_TOPIC: &str = "health.alerts";

/// Manifest key of a node's supervision tree topic.
const SUPERVISION_TOPIC: &str = "node.supervision";

/// The monitor's subscriptions and the task that publishes its alert events.
///
/// Dropping the link stops publishing alerts but leaves the subscriptions; call
/// [`detach`](Self::detach) to remove all of them.
#[derive(Debug)]
pub struct HealthBusLink {
    routes: [RouteId; 2],
    publisher: JoinHandle<()>,
}

impl HealthBusLink {
    /// Subscribes the monitor to every service's heartbeat topic and every node's presence, and
    /// starts publishing its alert events.
    ///
    /// The monitor is subscribed as it runs now: if it restarts, the routes are gone. A supervised
    /// monitor subscribes itself instead, through [`HealthArgs::bus`](super::HealthArgs::bus).
    ///
    /// # Errors
    ///
    /// [`HealthError::Bus`] if a subscription failed.
    pub async fn attach(bus: Bus, monitor: &HealthClient) -> Result<Self, HealthError> {
        let actor = monitor.actor().ok_or_else(|| HealthError::Call {
            operation: "attach",
            reason: "the monitor is not running".to_owned(),
        })?;
        let heartbeats = subscribe_heartbeats(&bus, &actor).await?;
        let presence = match subscribe_presence(&bus, &actor).await {
            Ok(route) => route,
            Err(error) => {
                // Leave no half-attached monitor behind.
                if let Err(cleanup) = bus.unsubscribe(heartbeats).await {
                    tracing::warn!(%cleanup, "removing the heartbeat route failed after the presence subscription failed");
                }
                return Err(error);
            }
        };
        let publisher = spawn_alert_publisher(bus, monitor.subscribe_alerts())?;
        Ok(Self {
            routes: [heartbeats, presence],
            publisher,
        })
    }

    /// Removes the subscriptions and stops publishing alert events.
    ///
    /// # Errors
    ///
    /// [`HealthError::Bus`] if the bus could not remove a route.
    pub async fn detach(self, bus: &Bus) -> Result<(), HealthError> {
        self.publisher.abort();
        for route in self.routes {
            bus.unsubscribe(route).await?;
        }
        Ok(())
    }
}

impl Drop for HealthBusLink {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

/// Subscribes `monitor` to every service's heartbeat topic, leaving out the alert topic that the
/// same `+` level matches.
pub(crate) async fn subscribe_heartbeats(
    bus: &Bus,
    monitor: &ActorRef<HealthMsg>,
) -> Result<RouteId, HealthError> {
    let heartbeats = topic_spec(HEARTBEAT_TOPIC)?;
    let alerts = topic_spec(ALERT_TOPIC)?.format(&[])?;
    let route = bus
        .subscribe_excluding(
            heartbeats.filter(),
            vec![alerts],
            monitor,
            |delivery: Delivery<ServiceHeartbeat>| HealthMsg::BusHeartbeat {
                topic: delivery.topic,
                heartbeat: delivery.envelope.into_body(),
            },
        )
        .await?;
    Ok(route)
}

/// Subscribes `monitor` to the presence of every node, so that a node's last will marks its
/// services down at once.
pub(crate) async fn subscribe_presence(
    bus: &Bus,
    monitor: &ActorRef<HealthMsg>,
) -> Result<RouteId, HealthError> {
    let route = bus
        .subscribe(
            presence_spec().filter(),
            monitor,
            |delivery: Delivery<NodePresence>| HealthMsg::BusPresence {
                topic: delivery.topic,
                presence: delivery.envelope.into_body(),
            },
        )
        .await?;
    Ok(route)
}

/// Starts the task that publishes every alert event from `events` on
/// `alicia/system/health/alerts`. It ends when the alert channel closes.
///
/// # Errors
///
/// [`HealthError::Manifest`] if the alert topic cannot be formatted.
pub fn spawn_alert_publisher(
    bus: Bus,
    events: broadcast::Receiver<HealthAlert>,
) -> Result<JoinHandle<()>, HealthError> {
    let alerts = topic_spec(ALERT_TOPIC)?;
    let topic = alerts.format(&[])?;
    let options = PublishOptions::for_spec(alerts, PublishClass::StateChange);
    Ok(tokio::spawn(publish_alerts(bus, topic, options, events)))
}

/// Publishes `heartbeat` on its service's heartbeat topic.
///
/// # Errors
///
/// [`HealthError::Bus`] if the publish failed.
pub async fn publish_heartbeat(bus: &Bus, heartbeat: &ServiceHeartbeat) -> Result<(), HealthError> {
    let spec = topic_spec(HEARTBEAT_TOPIC)?;
    let topic = heartbeat_topic(&heartbeat.service)?;
    let envelope = Envelope::new(bus.client().clone(), heartbeat, bus.clock().as_ref());
    bus.publish(
        &topic,
        &envelope,
        PublishOptions::for_spec(spec, PublishClass::Telemetry),
    )
    .await?;
    Ok(())
}

/// Publishes `snapshot`, retained, as the supervision tree of `node` on
/// `alicia/nodes/{node}/supervision`.
///
/// # Errors
///
/// [`HealthError::Manifest`] if the node id is reserved for the `{node}` level, and
/// [`HealthError::Bus`] if the publish failed.
pub async fn publish_supervision(
    bus: &Bus,
    node: &NodeId,
    snapshot: &SupervisorSnapshot,
) -> Result<(), HealthError> {
    let spec = topic_spec(SUPERVISION_TOPIC)?;
    let topic = supervision_topic(node)?;
    let envelope = Envelope::new(bus.client().clone(), snapshot, bus.clock().as_ref());
    bus.publish(
        &topic,
        &envelope,
        PublishOptions::for_spec(spec, PublishClass::Telemetry),
    )
    .await?;
    Ok(())
}

/// Returns the supervision tree topic of `node`.
///
/// # Errors
///
/// [`HealthError::Manifest`] if the id is reserved for the `{node}` level.
pub fn supervision_topic(node: &NodeId) -> Result<TopicName, HealthError> {
    Ok(topic_spec(SUPERVISION_TOPIC)?.format(&[("node", node.as_str())])?)
}

/// Returns the heartbeat topic of `service`.
///
/// # Errors
///
/// [`HealthError::Manifest`] if the id is reserved for another topic, such as `alerts`.
pub fn heartbeat_topic(service: &ServiceId) -> Result<TopicName, HealthError> {
    Ok(topic_spec(HEARTBEAT_TOPIC)?.format(&[("service", service.as_str())])?)
}

/// Returns whether `topic` is the heartbeat topic of `service`.
pub(crate) fn is_heartbeat_topic_of(topic: &TopicName, service: &ServiceId) -> bool {
    let Ok(spec) = topic_spec(HEARTBEAT_TOPIC) else {
        return false;
    };
    spec.parse(topic)
        .is_ok_and(|params| params.get("service") == Some(service.as_str()))
}

fn topic_spec(key: &'static str) -> Result<&'static TopicSpec, HealthError> {
    manifest::lookup(key).ok_or(HealthError::MissingTopic { key })
}

async fn publish_alerts(
    bus: Bus,
    topic: TopicName,
    options: PublishOptions,
    mut events: broadcast::Receiver<HealthAlert>,
) {
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "alert publisher fell behind: events were not published"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };

        let envelope = Envelope::new(bus.client().clone(), &event, bus.clock().as_ref());
        if let Err(error) = bus.publish(&topic, &envelope, options).await {
            tracing::error!(
                service = %event.alert.service,
                alert_id = event.alert.id,
                %error,
                "failed to publish alert event"
            );
        }
    }
}
