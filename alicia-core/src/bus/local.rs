//! The in-process bus: the bus protocol without a broker.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::de::IgnoredAny;

use crate::clock::{SharedClock, SystemClock};
use crate::codec::{Codec, DecodeLimits};
use crate::envelope::{Envelope, MessageId, SourceId};
use crate::manifest;
use crate::topic::{TopicFilter, TopicName};

use super::auth::Action;
use super::{
    AllowAll, Authorization, AuthorizationRequest, Authorizer, Bus, BusCommand, BusError, BusInfo,
    ErrorBody, InboundMessage, InboundReply, LogRateLimit, OutboundMessage, PendingDelivery, Reply,
    Route, RouteId, RouteStats, error_code,
};

/// Maximum number of messages that one publish may cause, counting the error replies that the bus
/// sends for rejected requests.
///
/// An error reply names no reply topic, so it causes no further reply, and a publish causes at
/// most one error reply per matching route. The cap only keeps the loop bounded should that
/// reasoning ever break.
const MAX_MESSAGES_PER_PUBLISH: usize = 10_000;

/// Settings of a [`LocalBus`].
#[derive(Debug, Clone)]
pub struct LocalBusConfig {
    /// The client id. Replies to this bus's requests go to `alicia/reply/{client}/...`, and the
    /// bus's own error replies carry it as their source.
    pub client: SourceId,
    /// The clock that stamps error replies and drives the log rate limit.
    pub clock: SharedClock,
    /// The limits checked before any payload is decoded.
    pub limits: DecodeLimits,
    /// Decides on every decoded message before it reaches a route's actor.
    pub authorizer: Arc<dyn Authorizer>,
}

impl LocalBusConfig {
    /// Creates settings with the system clock, default decode limits and [`AllowAll`].
    pub fn new(client: SourceId) -> Self {
        Self {
            client,
            clock: SystemClock::shared(),
            limits: DecodeLimits::default(),
            authorizer: Arc::new(AllowAll),
        }
    }

    /// These settings with another clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// These settings with other decode limits.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// These settings with another authorizer.
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }
}

/// An in-process bus actor, for tests and for apps that run Alicia without a broker.
///
/// It matches topics with [`TopicFilter::matches`], like an MQTT broker. It keeps the last
/// retained message of every topic and delivers it to later subscribers, and an empty retained
/// payload clears it. Payloads stay encoded (JSON by default) until each route decodes them, so
/// decode limits, decode errors and the authorizer behave as they do with a broker. QoS makes no
/// difference here, because an in-process cast is neither lost nor repeated.
///
/// A payload with zero bytes is not an envelope, so no route receives it. MQTT delivers such a
/// payload to current subscribers, and a bridge drops it the same way.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalBus;

impl LocalBus {
    /// Spawns an unsupervised local bus and connects a [`Bus`] client to it.
    ///
    /// To supervise it, spawn [`LocalBus`] with ractor's `spawn_linked` and call
    /// [`Bus::connect`] on its `ActorRef`.
    pub async fn spawn(config: LocalBusConfig) -> Result<(Bus, JoinHandle<()>), BusError> {
        let (actor, handle) = Actor::spawn(None, LocalBus, config)
            .await
            .map_err(|error| BusError::Unavailable {
                operation: "starting the local bus".to_owned(),
                reason: error.to_string(),
            })?;
        let bus = Bus::connect(actor).await?;
        Ok((bus, handle))
    }
}

/// The state of a [`LocalBus`]. Only the bus actor's task reads or changes it, one command at a
/// time, so no field needs a lock.
pub struct LocalBusState {
    config: LocalBusConfig,
    /// Routes by id. Ids increase, so iteration follows subscribe order.
    routes: BTreeMap<RouteId, RouteEntry>,
    /// The last id handed out.
    last_route: u64,
    /// The last retained payload of each topic, in topic order. It grows with the number of
    /// distinct retained topics, like a broker's retained store.
    retained: BTreeMap<TopicName, RetainedMessage>,
    /// Requests waiting for a reply, by reply topic. An entry leaves when its reply arrives, or
    /// at the next request after its requester has dropped the port because it timed out.
    pending: HashMap<TopicName, RpcReplyPort<Result<InboundReply, BusError>>>,
}

/// A route with its counters.
struct RouteEntry {
    route: Route,
    stats: RouteStats,
    /// Limits the log lines about this route's decode errors and rejections.
    bad_input_log: LogRateLimit,
}

/// A stored retained message.
struct RetainedMessage {
    payload: Arc<[u8]>,
    codec: Codec,
}

impl Actor for LocalBus {
    type Msg = BusCommand;
    type State = LocalBusState;
    type Arguments = LocalBusConfig;

    async fn pre_start(
        &self,
        _myself: ActorRef<BusCommand>,
        config: LocalBusConfig,
    ) -> Result<LocalBusState, ActorProcessingErr> {
        tracing::info!(client = %config.client, "local bus started");
        Ok(LocalBusState {
            config,
            routes: BTreeMap::new(),
            last_route: 0,
            retained: BTreeMap::new(),
            pending: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BusCommand>,
        state: &mut LocalBusState,
    ) -> Result<(), ActorProcessingErr> {
        tracing::info!(
            client = %state.config.client,
            routes = state.routes.len(),
            "local bus stopped"
        );
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<BusCommand>,
        command: BusCommand,
        state: &mut LocalBusState,
    ) -> Result<(), ActorProcessingErr> {
        // A failed reply means the caller stopped waiting, but the command has taken effect anyway.
        match command {
            BusCommand::Describe { reply } => {
                let _ = reply.send(state.info());
            }
            BusCommand::Subscribe { route, reply } => {
                let id = state.subscribe(route);
                let _ = reply.send(Ok(id));
            }
            BusCommand::Unsubscribe { route, reply } => {
                let _ = reply.send(state.unsubscribe(route));
            }
            BusCommand::Publish { message, reply } => {
                state.publish(message);
                let _ = reply.send(Ok(()));
            }
            BusCommand::PublishBatch { messages, reply } => {
                let results = messages
                    .into_iter()
                    .map(|message| {
                        state.publish(message);
                        Ok(())
                    })
                    .collect();
                let _ = reply.send(results);
            }
            BusCommand::Request {
                message,
                reply_topic,
                reply,
            } => state.request(message, reply_topic, reply),
            BusCommand::RouteStats { route, reply } => {
                let stats = state.routes.get(&route).map(|entry| entry.stats);
                let _ = reply.send(stats);
            }
        }
        Ok(())
    }
}

impl LocalBusState {
    fn info(&self) -> BusInfo {
        BusInfo {
            client: self.config.client.clone(),
            clock: Arc::clone(&self.config.clock),
            limits: self.config.limits,
        }
    }

    /// Adds a route and delivers the matching retained messages to it.
    fn subscribe(&mut self, route: Route) -> RouteId {
        self.last_route += 1;
        let id = RouteId(self.last_route);
        tracing::info!(
            route = id.0,
            filter = %route.filter(),
            body_type = route.body_type(),
            actor = %route.actor(),
            "route subscribed"
        );

        let retained: Vec<InboundMessage> = self
            .retained
            .iter()
            .filter(|(topic, _)| route.accepts(topic))
            .map(|(topic, message)| InboundMessage {
                topic: topic.clone(),
                payload: Arc::clone(&message.payload),
                codec: message.codec,
                retained: true,
            })
            .collect();

        self.routes.insert(
            id,
            RouteEntry {
                route,
                stats: RouteStats::default(),
                bad_input_log: LogRateLimit::default(),
            },
        );

        for message in retained {
            if let Some(error_reply) = self.deliver(id, &message) {
                self.route_all(error_reply);
            }
        }
        id
    }

    fn unsubscribe(&mut self, id: RouteId) -> Result<(), BusError> {
        let entry = self
            .routes
            .remove(&id)
            .ok_or(BusError::UnknownRoute { route: id })?;
        tracing::info!(
            route = id.0,
            filter = %entry.route.filter(),
            delivered = entry.stats.delivered,
            decode_errors = entry.stats.decode_errors,
            rejected = entry.stats.rejected,
            "route unsubscribed"
        );
        Ok(())
    }

    /// Stores or clears the retained message, then routes the message.
    fn publish(&mut self, message: OutboundMessage) {
        let OutboundMessage {
            topic,
            payload,
            options,
        } = message;

        if options.retained {
            if payload.is_empty() {
                self.retained.remove(&topic);
            } else {
                let stored = RetainedMessage {
                    payload: Arc::clone(&payload),
                    codec: options.codec,
                };
                self.retained.insert(topic.clone(), stored);
            }
        }

        self.route_all(InboundMessage {
            topic,
            payload,
            codec: options.codec,
            retained: false,
        });
    }

    /// Records a pending request and publishes it, or replies at once with the reason it is
    /// rejected.
    fn request(
        &mut self,
        message: OutboundMessage,
        reply_topic: TopicName,
        reply: RpcReplyPort<Result<InboundReply, BusError>>,
    ) {
        self.pending.retain(|_, waiting| !waiting.is_closed());

        if !self.owns_reply_topic(&reply_topic) {
            let _ = reply.send(Err(BusError::ForeignReplyTopic {
                topic: message.topic,
                reply_topic,
                namespace: self.reply_namespace(),
            }));
            return;
        }
        if self.pending.contains_key(&reply_topic) {
            let _ = reply.send(Err(BusError::RequestInFlight {
                topic: message.topic,
                reply_topic,
            }));
            return;
        }

        self.pending.insert(reply_topic, reply);
        self.publish(message);
    }

    /// Checks that `topic` is `alicia/reply/{client}/{request}` with this bus's client id.
    fn owns_reply_topic(&self, topic: &TopicName) -> bool {
        manifest::lookup("client.reply")
            .and_then(|spec| spec.parse(topic).ok())
            .is_some_and(|params| params.get("client") == Some(self.config.client.as_str()))
    }

    fn reply_namespace(&self) -> TopicFilter {
        TopicFilter::new(format!("alicia/reply/{}/+", self.config.client))
            .expect("a client id is a valid topic level, so the namespace filter is valid")
    }

    /// Hands `first` to a waiting requester and to every matching route, then does the same for
    /// each error reply that this causes.
    fn route_all(&mut self, first: InboundMessage) {
        let mut queue = VecDeque::from([first]);
        let mut routed = 0;

        while let Some(message) = queue.pop_front() {
            routed += 1;
            if routed > MAX_MESSAGES_PER_PUBLISH {
                tracing::error!(
                    topic = %message.topic,
                    dropped = queue.len() + 1,
                    "one publish caused over {MAX_MESSAGES_PER_PUBLISH} error replies; the rest are dropped"
                );
                break;
            }

            self.forward_reply(&message);

            if message.payload.is_empty() {
                continue;
            }
            let matching: Vec<RouteId> = self
                .routes
                .iter()
                .filter(|(_, entry)| entry.route.accepts(&message.topic))
                .map(|(id, _)| *id)
                .collect();
            for id in matching {
                queue.extend(self.deliver(id, &message));
            }
        }
    }

    /// Forwards `message` to the requester waiting on its topic, if any.
    fn forward_reply(&mut self, message: &InboundMessage) {
        let Some(waiting) = self.pending.remove(&message.topic) else {
            return;
        };
        let reply = InboundReply {
            topic: message.topic.clone(),
            payload: Arc::clone(&message.payload),
            codec: message.codec,
        };
        if waiting.send(Ok(reply)).is_err() {
            tracing::debug!(
                topic = %message.topic,
                "reply arrived after its requester stopped waiting"
            );
        }
    }

    /// Decodes, authorizes and delivers `message` to one route, counting the outcome. Returns the
    /// error reply to publish when the message is dropped and names a reply topic.
    fn deliver(&mut self, id: RouteId, message: &InboundMessage) -> Option<InboundMessage> {
        let config = &self.config;
        let entry = self.routes.get_mut(&id)?;

        let pending = match entry.route.decode(message, &config.limits) {
            Ok(pending) => pending,
            Err(error) => {
                entry.stats.decode_errors += 1;
                if let Some(suppressed) = entry.bad_input_log.record(config.clock.monotonic()) {
                    tracing::warn!(
                        topic = %message.topic,
                        route = id.0,
                        body_type = entry.route.body_type(),
                        %error,
                        suppressed,
                        "dropped a message that does not decode into the route's body type"
                    );
                }
                let (request_id, reply_to) = peek_reply_header(message, &config.limits)?;
                let body = ErrorBody::new(
                    error_code::INVALID_REQUEST,
                    format!("the message on \"{}\" was dropped: {error}", message.topic),
                );
                return error_reply(config, &reply_to, request_id, body);
            }
        };

        if let Authorization::Deny { reason } = authorize(config, message, pending.as_ref()) {
            entry.stats.rejected += 1;
            if let Some(suppressed) = entry.bad_input_log.record(config.clock.monotonic()) {
                tracing::warn!(
                    topic = %message.topic,
                    route = id.0,
                    source = %pending.source(),
                    %reason,
                    suppressed,
                    "authorizer rejected a message"
                );
            }
            let reply_to = pending.reply_to()?.clone();
            let body = ErrorBody::new(
                error_code::FORBIDDEN,
                format!(
                    "the message on \"{}\" was rejected: {reason}",
                    message.topic
                ),
            );
            return error_reply(config, &reply_to, pending.message_id(), body);
        }

        match pending.deliver() {
            Ok(()) => entry.stats.delivered += 1,
            Err(error) => {
                tracing::warn!(topic = %message.topic, route = id.0, %error, "route removed");
                self.routes.remove(&id);
            }
        }
        None
    }
}

/// Asks the bus's authorizer about one decoded message.
fn authorize(
    config: &LocalBusConfig,
    message: &InboundMessage,
    pending: &dyn PendingDelivery,
) -> Authorization {
    let action = if pending.reply_to().is_some() {
        Action::Request
    } else {
        Action::Publish
    };
    config.authorizer.authorize(&AuthorizationRequest {
        token: pending.auth_token(),
        source: pending.source(),
        action,
        topic: &message.topic,
    })
}

/// Reads the message id and reply topic of a payload whose body did not decode.
///
/// Returns `None` when the header itself is invalid, because then the reply topic cannot be
/// trusted. It also returns `None` for postcard payloads: skipping a body of unknown type needs
/// a self-describing format.
fn peek_reply_header(
    message: &InboundMessage,
    limits: &DecodeLimits,
) -> Option<(MessageId, TopicName)> {
    let envelope = message
        .codec
        .decode::<IgnoredAny>(&message.payload, limits)
        .ok()?;
    let reply_to = envelope.reply_to()?.clone();
    Some((envelope.message_id(), reply_to))
}

/// Builds the error reply to request `request_id`, as a JSON [`Reply`] from the bus's client id.
fn error_reply(
    config: &LocalBusConfig,
    reply_to: &TopicName,
    request_id: MessageId,
    error: ErrorBody,
) -> Option<InboundMessage> {
    let reply: Reply<()> = Reply::Error { error };
    let envelope =
        Envelope::new(config.client.clone(), reply, &*config.clock).with_correlation(request_id);
    match Codec::Json.encode(&envelope) {
        Ok(payload) => Some(InboundMessage {
            topic: reply_to.clone(),
            payload: payload.into(),
            codec: Codec::Json,
            retained: false,
        }),
        Err(error) => {
            tracing::error!(topic = %reply_to, %error, "error reply could not be encoded");
            None
        }
    }
}
