//! The registry on the bus: events and retained status out, requests and heartbeats in.
//!
//! - [`spawn_event_publisher`] publishes every [`RegistryEvent`] on its manifest topic, with the
//!   manifest's QoS and retained flag. A cleared status becomes an empty retained payload.
//! - [`RegistryRoutes`] subscribes to `alicia/registry/request/{operation}` for each
//!   [`OPERATIONS`] entry and to `alicia/devices/+/heartbeat`, so a device that speaks plain
//!   MQTT with JSON envelopes can register itself and send heartbeats. The reply to each request
//!   goes to the reply topic its envelope names, with `{"status":"ok","value":...}` or
//!   `{"status":"error","error":{"code":...,"message":...}}`.

use std::sync::Arc;

use alicia_core::bus::{
    Bus, BusError, Delivery, ErrorBody, OutboundMessage, PublishClass, PublishOptions, RouteId,
};
use alicia_core::envelope::{Envelope, SourceId};
use alicia_core::manifest::{self, ManifestError};
use alicia_core::{DeviceId, TopicFilter};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::client::RegistryClient;
use super::error::RegistryError;
use super::events::RegistryEvent;
use super::model::{DeviceQuery, DeviceSpec, DeviceUpdate, GroupId, Registration};

/// The request operations the registry serves, as the `{operation}` level of
/// `alicia/registry/request/{operation}`.
pub const OPERATIONS: &[&str] = &[
    "register",
    "deregister",
    "update",
    "heartbeat",
    "get",
    "query",
    "group",
];

/// Maximum number of events the publisher hands to the bus in one batch.
const EVENT_BATCH: usize = 512;

/// Publishes every event from `events` on the bus until the channel closes.
///
/// The publisher takes every event that is waiting, up to [`EVENT_BATCH`], encodes each one and
/// hands them to the bus in one [`Bus::publish_batch`], in channel order. A group commit of many
/// registrations therefore costs one bus command, not two per device. A failed publish is logged
/// and the next event is tried, because one lost publish must not stop every later one.
pub fn spawn_event_publisher(
    bus: Bus,
    source: SourceId,
    mut events: mpsc::Receiver<RegistryEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(EVENT_BATCH);
        while events.recv_many(&mut batch, EVENT_BATCH).await > 0 {
            publish_events(&bus, &source, &batch).await;
            batch.clear();
        }
    })
}

/// Encodes `events` and publishes them in one batch, logging each one that fails.
async fn publish_events(bus: &Bus, source: &SourceId, events: &[RegistryEvent]) {
    let log = |event: &RegistryEvent, error: &dyn std::fmt::Display| {
        tracing::error!(service = "registry", topic_key = event.topic_key(), %error, "failed to publish a registry event");
    };

    let mut messages = Vec::with_capacity(events.len());
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        match outbound_message(bus, source, event) {
            Ok(message) => {
                messages.push(message);
                published.push(event);
            }
            Err(error) => log(event, &error),
        }
    }

    match bus.publish_batch(messages).await {
        Ok(results) => {
            for (event, result) in published.into_iter().zip(results) {
                if let Err(error) = result {
                    log(event, &error);
                }
            }
        }
        Err(error) => {
            tracing::error!(service = "registry", events = published.len(), %error, "failed to publish a batch of registry events");
        }
    }
}

/// An error from publishing one registry event.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event's topic could not be built from the manifest.
    #[error("failed to build the topic of a registry event: {0}")]
    Topic(#[from] ManifestError),
    /// The event body did not serialize to JSON.
    #[error("failed to serialize a registry event: {0}")]
    Body(#[from] serde_json::Error),
    /// The bus did not take the message.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Publishes one event on its manifest topic.
pub async fn publish_event(
    bus: &Bus,
    source: &SourceId,
    event: &RegistryEvent,
) -> Result<(), PublishError> {
    let message = outbound_message(bus, source, event)?;
    bus.publish_raw(&message.topic, message.payload, message.options)
        .await?;
    Ok(())
}

/// Builds the message that publishes `event`: its envelope encoded once, straight from the
/// event's body, on the event's manifest topic. A cleared status is an empty retained payload.
fn outbound_message(
    bus: &Bus,
    source: &SourceId,
    event: &RegistryEvent,
) -> Result<OutboundMessage, PublishError> {
    let topic = event.topic()?;
    let options = PublishOptions::for_spec(event.spec(), PublishClass::StateChange);
    let clock = &**bus.clock();
    let encoded = match event {
        RegistryEvent::Registered(record) | RegistryEvent::Updated(record) => options
            .codec
            .encode(&Envelope::new(source.clone(), record, clock)),
        RegistryEvent::Deregistered(tombstone) => {
            options
                .codec
                .encode(&Envelope::new(source.clone(), tombstone, clock))
        }
        RegistryEvent::Status(status) => {
            options
                .codec
                .encode(&Envelope::new(source.clone(), status, clock))
        }
        RegistryEvent::StatusCleared(_) => {
            return Ok(OutboundMessage {
                topic,
                payload: Arc::from([]),
                options: PublishOptions::state_change().with_retained(true),
            });
        }
    };
    let payload = encoded.map_err(|source| BusError::Encode {
        topic: topic.clone(),
        source,
    })?;
    Ok(OutboundMessage {
        topic,
        payload: payload.into(),
        options,
    })
}

/// The body of a request that names one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRequest {
    /// The device.
    pub device_id: DeviceId,
}

/// The body of an update request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// The device to change.
    pub device_id: DeviceId,
    /// The changes.
    #[serde(flatten)]
    pub update: DeviceUpdate,
}

/// The body of a group request, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupRequest {
    /// Creates an empty group.
    Create {
        /// The new group.
        group_id: GroupId,
        /// Its name.
        name: String,
    },
    /// Renames a group.
    Rename {
        /// The group.
        group_id: GroupId,
        /// The new name.
        name: String,
    },
    /// Deletes a group.
    Delete {
        /// The group.
        group_id: GroupId,
    },
    /// Adds a device to a group.
    AddMember {
        /// The group.
        group_id: GroupId,
        /// The device.
        device_id: DeviceId,
    },
    /// Removes a device from a group.
    RemoveMember {
        /// The group.
        group_id: GroupId,
        /// The device.
        device_id: DeviceId,
    },
    /// Reads a group with its availability.
    Get {
        /// The group.
        group_id: GroupId,
    },
    /// Reads every group.
    List,
}

/// The body of a heartbeat on `alicia/devices/{device}/heartbeat`. Unknown fields are ignored,
/// so `{}` is a valid heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceHeartbeat {
    /// Seconds since the device started, if it reports them.
    #[serde(default)]
    pub uptime_secs: Option<u64>,
}

/// A message to the routes actor: one delivery from the bus.
#[derive(Debug)]
pub enum RouteMessage {
    /// `alicia/registry/request/register`.
    Register(Delivery<DeviceSpec>),
    /// `alicia/registry/request/deregister`.
    Deregister(Delivery<DeviceRequest>),
    /// `alicia/registry/request/update`.
    Update(Delivery<UpdateRequest>),
    /// `alicia/registry/request/heartbeat`.
    Heartbeat(Delivery<DeviceRequest>),
    /// `alicia/registry/request/get`.
    Get(Delivery<DeviceRequest>),
    /// `alicia/registry/request/query`.
    Query(Delivery<DeviceQuery>),
    /// `alicia/registry/request/group`.
    Group(Delivery<GroupRequest>),
    /// `alicia/devices/{device}/heartbeat`.
    DeviceHeartbeat(Delivery<DeviceHeartbeat>),
}

/// Arguments of the routes actor.
#[derive(Debug, Clone)]
pub struct RoutesArgs {
    /// The bus to subscribe and reply on.
    pub bus: Bus,
    /// The registry the requests go to.
    pub registry: RegistryClient,
    /// Maximum number of requests in progress at once. Requests in progress reach the registry
    /// together, so registrations share durable commits.
    pub max_in_flight: usize,
}

/// The actor that turns bus deliveries into registry calls and replies.
///
/// NOTE: the routes check no identity themselves. Which client may register or heartbeat for which
/// device is left to the bus's authorizer and the broker ACL from the manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryRoutes;

/// The routes actor's state. Each request runs in its own task holding one permit of
/// `in_flight`, so a slow registry call does not hold up the mailbox, and at most
/// `max_in_flight` calls run at once.
#[derive(Debug)]
pub struct RoutesState {
    bus: Bus,
    registry: RegistryClient,
    in_flight: Arc<Semaphore>,
    /// Registrations sent to the registry, in order, for the task that publishes their replies.
    registrations: mpsc::UnboundedSender<PendingRegistration>,
    routes: Vec<RouteId>,
    /// Heartbeats on a topic whose device level is not a valid, unreserved id.
    rejected_heartbeats: u64,
}

fn request_filter(operation: &str) -> Result<TopicFilter, ManifestError> {
    let spec = manifest::lookup("service.request")
        .expect("the manifest lists service.request, which its tests check");
    spec.format(&[("service", "registry"), ("operation", operation)])
        .map(TopicFilter::from)
}

impl Actor for RegistryRoutes {
    type Msg = RouteMessage;
    type State = RoutesState;
    type Arguments = RoutesArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<RouteMessage>,
        args: RoutesArgs,
    ) -> Result<RoutesState, ActorProcessingErr> {
        let bus = args.bus;
        let mut routes = Vec::new();
        routes.push(
            bus.subscribe(request_filter("register")?, &myself, RouteMessage::Register)
                .await?,
        );
        routes.push(
            bus.subscribe(
                request_filter("deregister")?,
                &myself,
                RouteMessage::Deregister,
            )
            .await?,
        );
        routes.push(
            bus.subscribe(request_filter("update")?, &myself, RouteMessage::Update)
                .await?,
        );
        routes.push(
            bus.subscribe(
                request_filter("heartbeat")?,
                &myself,
                RouteMessage::Heartbeat,
            )
            .await?,
        );
        routes.push(
            bus.subscribe(request_filter("get")?, &myself, RouteMessage::Get)
                .await?,
        );
        routes.push(
            bus.subscribe(request_filter("query")?, &myself, RouteMessage::Query)
                .await?,
        );
        routes.push(
            bus.subscribe(request_filter("group")?, &myself, RouteMessage::Group)
                .await?,
        );
        let heartbeat = manifest::lookup("device.heartbeat")
            .expect("the manifest lists device.heartbeat, which its tests check")
            .filter();
        routes.push(
            bus.subscribe(heartbeat, &myself, RouteMessage::DeviceHeartbeat)
                .await?,
        );

        tracing::info!(
            service = "registry",
            routes = routes.len(),
            "registry routes subscribed"
        );
        let (registrations, pending) = mpsc::unbounded_channel();
        tokio::spawn(publish_registration_replies(bus.clone(), pending));
        Ok(RoutesState {
            bus,
            registry: args.registry,
            in_flight: Arc::new(Semaphore::new(args.max_in_flight.max(1))),
            registrations,
            routes,
            rejected_heartbeats: 0,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<RouteMessage>,
        state: &mut RoutesState,
    ) -> Result<(), ActorProcessingErr> {
        // When the bus itself has stopped (a restart of the bus restarts these routes too), its
        // routes are gone with it, and waiting for a new incarnation would only stall the stop.
        if state.bus.actor().is_none() {
            state.routes.clear();
            return Ok(());
        }
        for route in state.routes.drain(..) {
            if let Err(error) = state.bus.unsubscribe(route).await {
                tracing::warn!(service = "registry", %error, "failed to remove a registry route");
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<RouteMessage>,
        message: RouteMessage,
        state: &mut RoutesState,
    ) -> Result<(), ActorProcessingErr> {
        if let RouteMessage::DeviceHeartbeat(delivery) = message {
            state.device_heartbeat(&delivery);
            return Ok(());
        }

        // Acquiring fails only on a closed semaphore, and nothing closes this one.
        let Ok(permit) = state.in_flight.clone().acquire_owned().await else {
            return Ok(());
        };
        if let RouteMessage::Register(delivery) = message {
            state.register(delivery, permit).await;
            return Ok(());
        }
        let bus = state.bus.clone();
        let registry = state.registry.clone();
        tokio::spawn(async move {
            answer(&bus, &registry, message).await;
            drop(permit);
        });
        Ok(())
    }
}

impl RoutesState {
    /// Sends a registration to the registry without waiting for its commit, and queues it for
    /// the reply publisher. The permit is released once its reply is published.
    async fn register(&mut self, delivery: Delivery<DeviceSpec>, permit: OwnedSemaphorePermit) {
        let Delivery {
            topic,
            envelope,
            retained,
        } = delivery;
        let mut spec = None;
        let request = Delivery {
            topic,
            envelope: envelope.map_body(|body| spec = Some(body)),
            retained,
        };
        let (reply, outcome) = ractor::concurrency::oneshot();
        if let Some(spec) = spec
            && let Err(error) = self.registry.register_with_reply(spec, reply.into()).await
        {
            // The reply port went down with the rejected message, so the outcome reads as
            // closed, and the publisher replies that the registry is unavailable.
            tracing::warn!(service = "registry", %error, "failed to pass a registration to the registry");
        }
        let pending = PendingRegistration {
            request,
            outcome,
            deadline: tokio::time::Instant::now() + self.registry.timeout(),
            _permit: permit,
        };
        if self.registrations.send(pending).is_err() {
            tracing::error!(
                service = "registry",
                "the registration reply publisher has stopped; a reply is lost"
            );
        }
    }

    fn device_heartbeat(&mut self, delivery: &Delivery<DeviceHeartbeat>) {
        let spec = manifest::lookup("device.heartbeat")
            .expect("the manifest lists device.heartbeat, which its tests check");
        let device = spec
            .parse(&delivery.topic)
            .map_err(|error| error.to_string())
            .and_then(|params| {
                let id = params.get("device").unwrap_or_default();
                DeviceId::new(id).map_err(|error| error.to_string())
            });
        match device {
            Ok(device) => {
                if let Err(error) = self.registry.heartbeat_nowait(&device) {
                    tracing::error!(service = "registry", %error, "failed to pass a heartbeat to the registry");
                }
            }
            Err(error) => {
                self.rejected_heartbeats += 1;
                // Powers of two keep a flood of bad topics to a few log lines.
                if self.rejected_heartbeats.is_power_of_two() {
                    tracing::warn!(service = "registry", topic = %delivery.topic, rejected = self.rejected_heartbeats, %error, "rejected a heartbeat on a topic without a valid device id");
                }
            }
        }
    }
}

/// Replies the publisher puts into one [`Bus::publish_batch`] at most.
const REPLY_BATCH: usize = 256;

/// A registration passed to the registry, waiting for its outcome and then for its reply.
#[derive(Debug)]
struct PendingRegistration {
    /// The request without its body, which went to the registry.
    request: Delivery<()>,
    outcome: oneshot::Receiver<Result<Registration, RegistryError>>,
    /// When the publisher stops waiting for the outcome and replies with an error.
    deadline: tokio::time::Instant,
    /// The in-flight permit, released with the entry once its reply is published.
    _permit: OwnedSemaphorePermit,
}

/// Publishes the replies of registrations in the order they were sent to the registry.
///
/// The registry replies to registrations in the order it received them, after each group commit.
/// So the publisher waits for the oldest outcome, then takes every later registration whose
/// outcome has already arrived and publishes all their replies in one [`Bus::publish_batch`].
/// A burst of registrations thus costs one bus command per commit instead of one per device. It
/// ends when the routes actor has stopped and every queued registration has its reply.
async fn publish_registration_replies(
    bus: Bus,
    mut pending: mpsc::UnboundedReceiver<PendingRegistration>,
) {
    let mut waiting: Option<PendingRegistration> = None;
    let mut answered = Vec::with_capacity(REPLY_BATCH);
    loop {
        let mut oldest = match waiting.take() {
            Some(entry) => entry,
            None => match pending.recv().await {
                Some(entry) => entry,
                None => return,
            },
        };
        let outcome = match tokio::time::timeout_at(oldest.deadline, &mut oldest.outcome).await {
            Ok(received) => received.unwrap_or_else(|_| Err(registry_stopped_error())),
            Err(_) => Err(RegistryError::Unavailable {
                reason: "the registry did not answer the registration in time".into(),
            }),
        };
        answered.push((oldest, outcome));

        while answered.len() < REPLY_BATCH {
            let Ok(mut entry) = pending.try_recv() else {
                break;
            };
            match entry.outcome.try_recv() {
                Ok(outcome) => answered.push((entry, outcome)),
                Err(oneshot::error::TryRecvError::Closed) => {
                    answered.push((entry, Err(registry_stopped_error())));
                }
                Err(oneshot::error::TryRecvError::Empty) => {
                    waiting = Some(entry);
                    break;
                }
            }
        }

        let mut replies = Vec::with_capacity(answered.len());
        let mut in_flight = Vec::with_capacity(answered.len());
        for (entry, outcome) in answered.drain(..) {
            match bus.reply_message(&entry.request, outcome.map_err(error_body)) {
                Ok(reply) => replies.push(reply),
                Err(BusError::NoReplyTopic { .. }) => {}
                Err(error) => {
                    tracing::warn!(service = "registry", %error, "failed to encode a registry reply");
                }
            }
            in_flight.push(entry);
        }
        let count = replies.len();
        match bus.publish_batch(replies).await {
            Ok(results) => {
                for error in results.into_iter().filter_map(Result::err) {
                    tracing::warn!(service = "registry", %error, "failed to send a registry reply");
                }
            }
            Err(error) => {
                tracing::warn!(service = "registry", replies = count, %error, "failed to send a batch of registry replies");
            }
        }
        // The permits go only now, so the in-flight bound covers publishing the replies.
        drop(in_flight);
    }
}

fn registry_stopped_error() -> RegistryError {
    RegistryError::Unavailable {
        reason: "the registry stopped before it answered the registration".into(),
    }
}

fn error_body(error: RegistryError) -> ErrorBody {
    ErrorBody::new(error.code(), error.to_string())
}

/// Runs one request against the registry and publishes the reply.
async fn answer(bus: &Bus, registry: &RegistryClient, message: RouteMessage) {
    let sent = match message {
        RouteMessage::Register(delivery) => {
            // The routes actor passes registrations to the reply publisher instead; this arm
            // only keeps the match complete.
            let result = registry.register(delivery.envelope.body().clone()).await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Deregister(delivery) => {
            let result = registry
                .deregister(&delivery.envelope.body().device_id)
                .await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Update(delivery) => {
            let body = delivery.envelope.body().clone();
            let result = registry.update(&body.device_id, body.update).await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Heartbeat(delivery) => {
            let result = registry
                .heartbeat(&delivery.envelope.body().device_id)
                .await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Get(delivery) => {
            let result = registry.get(&delivery.envelope.body().device_id).await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Query(delivery) => {
            let result = registry.query(delivery.envelope.body().clone()).await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::Group(delivery) => {
            let result = group_request(registry, delivery.envelope.body().clone()).await;
            bus.respond(&delivery, result.map_err(error_body)).await
        }
        RouteMessage::DeviceHeartbeat(_) => Ok(()),
    };
    match sent {
        Ok(()) | Err(BusError::NoReplyTopic { .. }) => {}
        Err(error) => {
            tracing::warn!(service = "registry", %error, "failed to send a registry reply");
        }
    }
}

async fn group_request(
    registry: &RegistryClient,
    request: GroupRequest,
) -> Result<serde_json::Value, RegistryError> {
    let value = match request {
        GroupRequest::Create { group_id, name } => {
            to_json(registry.create_group(&group_id, name).await?)
        }
        GroupRequest::Rename { group_id, name } => {
            to_json(registry.rename_group(&group_id, name).await?)
        }
        GroupRequest::Delete { group_id } => to_json(registry.delete_group(&group_id).await?),
        GroupRequest::AddMember {
            group_id,
            device_id,
        } => to_json(registry.add_member(&group_id, &device_id).await?),
        GroupRequest::RemoveMember {
            group_id,
            device_id,
        } => to_json(registry.remove_member(&group_id, &device_id).await?),
        GroupRequest::Get { group_id } => to_json(registry.get_group(&group_id).await?),
        GroupRequest::List => to_json(registry.list_groups().await?),
    };
    Ok(value)
}

/// Converts a reply value to JSON. The registry's types have only string keys, so this cannot
/// fail, and it returns `null` if it ever did.
fn to_json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}
