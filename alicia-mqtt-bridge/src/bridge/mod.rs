//! The MQTT bridge: the bus protocol over an MQTT broker, through rumqttc.
//!
//! [`MqttBridge`] is a ractor actor whose message type is [`BusCommand`], like
//! [`LocalBus`](alicia_core::bus::LocalBus), so services written against [`Bus`] run unchanged on
//! either. It runs four kinds of task:
//!
//! - the **actor** handles bus commands. It never waits on the network: a publish goes into the
//!   outbox, a subscribe into the route table and a [`Control`] instruction for the writer.
//! - the **I/O task** polls rumqttc's event loop and nothing else. Each inbound publish is checked
//!   for size and topic, handed to a waiting requester when it is a reply, and `try_send`-ed into
//!   the bounded queue of every matching route. After a connection error it sleeps for the
//!   backoff delay (exponential, with jitter), because rumqttc itself reconnects at once.
//! - the **writer task** is the only sender of MQTT packets. On every connect it replays the
//!   session contract (resubscribe every route, publish presence `online`, re-publish retained
//!   announcements, resend publishes the last connection left unacknowledged), then drains the
//!   outbox. While disconnected it sends nothing, so the outbox keeps the messages.
//! - one **worker per route** decodes, authorizes and delivers that route's messages, exactly as
//!   the local bus does, and queues error replies.
//!
//! The bridge speaks MQTT 5 by default and MQTT 3.1.1 on request ([`MqttVersion`]). Over MQTT 5
//! it announces a receive maximum, so a broker does not keep a burst back in its own queue.
//! The MQTT client id is the node id, the session is clean, and the last will publishes presence
//! `offline` (retained, QoS 1) on `alicia/nodes/{node}/presence`. Stopping the actor publishes
//! `offline` itself and disconnects cleanly.

mod batch;
mod config;
mod error;
mod io;
mod outbox;
mod protocol;
mod routes;
mod shared;
mod stats;
mod tls;
mod writer;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use alicia_core::bus::{
    Bus, BusCommand, BusError, BusInfo, OutboundMessage, PublishClass, PublishOptions, Route,
    RouteId,
};
use alicia_core::codec::Codec;
use alicia_core::envelope::{Envelope, SourceId};
use alicia_core::manifest::{self, QoS};
use alicia_core::topic::{TopicFilter, TopicName};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, oneshot, watch};

pub use alicia_core::presence::NodePresence;
pub use config::{Backoff, BridgeConfig, ClientCertFiles, Credentials, OutboxCapacity, TlsFiles};
pub use error::BridgeError;
pub use protocol::{MqttVersion, UnknownMqttVersion};
pub use stats::BridgeStats;

use outbox::{Outbox, PushError};
use routes::{RouteSlot, RouteTable};
use shared::{Connection, Control, ReplyPort, Shared, lock};
use stats::{Counters, RouteCounters};

/// Capacity of rumqttc's request channel between the writer and the I/O task. The outbox is the
/// real buffer; this only lets the writer run ahead of the socket a little.
const REQUEST_CHANNEL_CAPACITY: usize = 256;

/// rumqttc's TCP connect and TLS handshake timeout, in seconds.
const CONNECT_TIMEOUT_SECS: u64 = 5;

/// How long a subscribe waits for the broker's SUBACK before it replies anyway.
const SUBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long stopping the bridge waits for the writer and the I/O task.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The publish options of presence: QoS 1 and retained, as the manifest's `node.presence` spec sets.
fn presence_options() -> PublishOptions {
    PublishOptions {
        qos: QoS::AtLeastOnce,
        retained: true,
        class: PublishClass::StateChange,
        codec: Codec::Json,
    }
}

/// The MQTT bridge actor. See the module documentation for its tasks.
///
/// Clones share one [`BridgeHandle`], so a supervisor that restarts a clone keeps the handle
/// valid: it reads the counters of whichever instance runs now.
#[derive(Debug, Clone, Default)]
pub struct MqttBridge {
    slot: Arc<std::sync::Mutex<Option<Arc<Shared>>>>,
}

/// A read-only handle to a bridge's counters and connection state, for health checks and
/// metrics. It does not message the actor, so reading it never waits on the bridge.
///
/// Before the bridge starts and after it stops, the counters read as zero and the bridge as
/// disconnected.
#[derive(Clone, Default)]
pub struct BridgeHandle {
    slot: Arc<std::sync::Mutex<Option<Arc<Shared>>>>,
}

impl std::fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeHandle")
            .field("running", &self.shared().is_some())
            .finish_non_exhaustive()
    }
}

impl BridgeHandle {
    fn shared(&self) -> Option<Arc<Shared>> {
        lock(&self.slot).clone()
    }

    /// Returns a snapshot of the bridge's counters.
    pub fn stats(&self) -> BridgeStats {
        self.shared()
            .map(|shared| shared.counters.snapshot())
            .unwrap_or_default()
    }

    /// Returns how many messages a route's full inbound queue has dropped, or `None` for an
    /// unknown route.
    pub fn route_overflow(&self, route: RouteId) -> Option<u64> {
        let shared = self.shared()?;
        shared.routes.stats(route).map(|(_, overflow)| overflow)
    }

    /// Returns whether the bridge is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.shared().is_some_and(|shared| shared.is_connected())
    }

    /// Waits until the bridge has a broker connection, or until `timeout`. Returns whether it is
    /// connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let Some(shared) = self.shared() else {
            return false;
        };
        let mut connection = shared.connection.subscribe();
        let connected = connection.wait_for(|connection| connection.connected);
        matches!(tokio::time::timeout(timeout, connected).await, Ok(Ok(_)))
    }

    /// Returns the number of messages waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.shared().map_or(0, |shared| shared.outbox.len())
    }

    /// Keeps the broker's subscriptions when routes are removed from now on, so that a session
    /// keeps them across a clean stop. Call it before stopping the services that own the routes.
    pub fn keep_broker_subscriptions(&self) {
        if let Some(shared) = self.shared() {
            shared
                .keep_broker_subscriptions
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Ends the start-up hold of a bridge with a session: the held messages go to the routes
    /// subscribed by now, in arrival order. Does nothing when nothing is held.
    pub fn release_held(&self) {
        if let Some(shared) = self.shared() {
            shared.release_held.notify_one();
        }
    }
}

impl MqttBridge {
    /// Creates a bridge actor and the handle to its counters.
    pub fn new() -> (Self, BridgeHandle) {
        let bridge = Self::default();
        let handle = bridge.handle();
        (bridge, handle)
    }

    /// Returns the handle to the counters of this bridge and its clones.
    pub fn handle(&self) -> BridgeHandle {
        BridgeHandle {
            slot: Arc::clone(&self.slot),
        }
    }

    /// Spawns an unsupervised bridge, connects a [`Bus`] client to it and returns the handle to
    /// its counters.
    ///
    /// It returns before the broker connection is up: the bridge connects in the background,
    /// retrying with backoff, and keeps published messages in its outbox meanwhile. To supervise
    /// it, spawn an [`MqttBridge`] with ractor's `spawn_linked` and call [`Bus::connect`] on its
    /// `ActorRef`.
    ///
    /// Invalid settings and unreadable TLS files fail here, with their own [`BridgeError`]
    /// variant.
    pub async fn spawn(
        config: BridgeConfig,
    ) -> Result<(Bus, BridgeHandle, JoinHandle<()>), BridgeError> {
        let (bridge, handle) = Self::new();
        let (actor, join) = Actor::spawn(None, bridge, config)
            .await
            .map_err(startup_error)?;
        let bus = Bus::connect(actor)
            .await
            .map_err(|error| BridgeError::Spawn {
                reason: error.to_string(),
            })?;
        Ok((bus, handle, join))
    }
}

/// Returns the bridge's own error when `pre_start` failed with one, such as an invalid setting or
/// an unreadable TLS file, so that callers can match on it. ractor would otherwise report it as a
/// panic during startup.
fn startup_error(error: ractor::SpawnErr) -> BridgeError {
    match error {
        ractor::SpawnErr::StartupFailed(inner) => match inner.downcast::<BridgeError>() {
            Ok(bridge_error) => *bridge_error,
            Err(inner) => BridgeError::Spawn {
                reason: inner.to_string(),
            },
        },
        other => BridgeError::Spawn {
            reason: other.to_string(),
        },
    }
}

/// The state of an [`MqttBridge`] actor. The actor's task owns the join handles; everything the
/// other tasks read is in [`Shared`].
pub struct BridgeState {
    shared: Arc<Shared>,
    /// The last route id handed out.
    last_route: u64,
    outbox_timeout: Duration,
    max_payload_size: usize,
    /// Tells the I/O task to stop when the writer cannot disconnect cleanly.
    stop: watch::Sender<bool>,
    io: Option<tokio::task::JoinHandle<()>>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl Actor for MqttBridge {
    type Msg = BusCommand;
    type State = BridgeState;
    type Arguments = BridgeConfig;

    async fn pre_start(
        &self,
        _myself: ActorRef<BusCommand>,
        config: BridgeConfig,
    ) -> Result<BridgeState, ActorProcessingErr> {
        config.validate()?;
        let state = start(config)?;
        *lock(&self.slot) = Some(Arc::clone(&state.shared));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<BusCommand>,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        state.stop().await;
        *lock(&self.slot) = None;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<BusCommand>,
        command: BusCommand,
        state: &mut BridgeState,
    ) -> Result<(), ActorProcessingErr> {
        // A failed reply means the caller stopped waiting, but the command has taken effect anyway.
        match command {
            BusCommand::Describe { reply } => {
                let _ = reply.send(state.info());
            }
            BusCommand::Subscribe { route, reply } => state.subscribe(route, reply),
            BusCommand::Unsubscribe { route, reply } => {
                let _ = reply.send(state.unsubscribe(route));
            }
            BusCommand::Publish { message, reply } => state.publish(message, reply),
            BusCommand::PublishBatch { messages, reply } => state.publish_batch(messages, reply),
            BusCommand::Request {
                message,
                reply_topic,
                reply,
            } => state.request(message, reply_topic, reply),
            BusCommand::RouteStats { route, reply } => {
                let stats = state.shared.routes.stats(route).map(|(stats, _)| stats);
                let _ = reply.send(stats);
            }
        }
        Ok(())
    }
}

/// Builds the rumqttc client and spawns the I/O and writer tasks.
fn start(config: BridgeConfig) -> Result<BridgeState, BridgeError> {
    let client = SourceId::from(config.node.clone());
    let node_topic = |reason: String| BridgeError::NodeTopic {
        node: config.node.to_string(),
        reason,
    };

    let presence_topic = alicia_core::presence::presence_topic(&config.node)
        .map_err(|error| node_topic(error.to_string()))?;
    let reply_filter = TopicFilter::new(format!("alicia/reply/{}/+", config.node))
        .map_err(|error| node_topic(error.to_string()))?;
    let encode_presence = |presence: NodePresence| {
        let envelope = Envelope::new(client.clone(), presence, &*config.clock);
        Codec::Json
            .encode(&envelope)
            .map(Arc::<[u8]>::from)
            .map_err(|error| node_topic(error.to_string()))
    };
    let online_payload = encode_presence(NodePresence::Online)?;
    let offline_payload = encode_presence(NodePresence::Offline)?;

    let (mqtt, eventloop) = connect_options(&config, &presence_topic, &offline_payload)?;

    let counters = Arc::new(Counters::default());
    let (control, control_rx) = mpsc::unbounded_channel();
    let (connection, connection_rx) = watch::channel(Connection::default());
    let shared = Arc::new(Shared {
        client,
        clock: Arc::clone(&config.clock),
        limits: config.limits(),
        route_queue: config.route_queue,
        authorizer: Arc::clone(&config.authorizer),
        reply_filter,
        presence_topic,
        online_payload,
        offline_payload,
        routes: RouteTable::default(),
        outbox: Outbox::new(config.outbox, Arc::clone(&counters)),
        counters,
        pending: std::sync::Mutex::new(HashMap::new()),
        retained: std::sync::Mutex::new(BTreeMap::new()),
        resend: std::sync::Mutex::new(Vec::new()),
        subscribes_unsent: std::sync::Mutex::new(VecDeque::new()),
        awaiting_replay: std::sync::Mutex::new(Vec::new()),
        subscribes_sent: std::sync::Mutex::new(HashMap::new()),
        release_held: tokio::sync::Notify::new(),
        keep_broker_subscriptions: AtomicBool::new(false),
        control,
        connection,
    });

    let (stop, stop_rx) = watch::channel(false);
    let hold = config
        .session_expiry
        .map(|_| tokio::time::Instant::now() + config.start_hold);
    let io = tokio::spawn(io::run(
        eventloop,
        Arc::clone(&shared),
        config.backoff,
        hold,
        stop_rx,
    ));
    let writer = tokio::spawn(writer::run(
        mqtt,
        Arc::clone(&shared),
        control_rx,
        connection_rx,
    ));

    tracing::info!(
        client = %shared.client,
        broker = %config.broker,
        mqtt_version = %config.protocol,
        keepalive_s = config.keepalive.as_secs(),
        "MQTT bridge started"
    );
    Ok(BridgeState {
        shared,
        last_route: 0,
        outbox_timeout: config.outbox_timeout,
        max_payload_size: config.max_payload_size,
        stop,
        io: Some(io),
        writer: Some(writer),
    })
}

/// Translates the settings into a rumqttc client and event loop of the configured protocol
/// version: clean session, the last will, the packet size limit, credentials, TLS and, over MQTT
/// 5, the receive maximum.
fn connect_options(
    config: &BridgeConfig,
    presence_topic: &TopicName,
    offline_payload: &[u8],
) -> Result<(protocol::Client, protocol::EventLoop), BridgeError> {
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    let transport = match &config.tls {
        Some(files) => Some(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls::client_config(files)?),
        )),
        None => None,
    };
    let credentials = config.credentials.as_ref().map(|credentials| {
        (
            credentials.username.clone(),
            credentials.expose_password().to_owned(),
        )
    });

    match config.protocol {
        MqttVersion::V311 => {
            let mut options = rumqttc::MqttOptions::new(
                config.node.as_str(),
                config.broker.host(),
                config.broker.port(),
            );
            options
                .set_keep_alive(config.keepalive)
                .set_clean_session(config.session_expiry.is_none())
                .set_max_packet_size(config.max_packet_size, config.max_packet_size)
                .set_last_will(rumqttc::LastWill::new(
                    presence_topic.as_str(),
                    offline_payload.to_vec(),
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
            if let Some((username, password)) = credentials {
                options.set_credentials(username, password);
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, mut eventloop) =
                rumqttc::AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
            eventloop.set_network_options(network);
            Ok((
                protocol::Client::V311(client),
                protocol::EventLoop::V311(Box::new(eventloop)),
            ))
        }
        MqttVersion::V5 => {
            use rumqttc::v5;
            let mut options = v5::MqttOptions::new(
                config.node.as_str(),
                config.broker.host(),
                config.broker.port(),
            );
            // `BridgeConfig::validate` keeps the packet size within MQTT's limit, which fits u32.
            let max_packet_size = u32::try_from(config.max_packet_size).unwrap_or(u32::MAX);
            options
                .set_keep_alive(config.keepalive)
                .set_clean_start(config.session_expiry.is_none())
                .set_session_expiry_interval(config.session_expiry.map(|expiry| {
                    // `BridgeConfig::validate` keeps the expiry within u32 seconds.
                    u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX)
                }))
                .set_max_packet_size(Some(max_packet_size))
                .set_receive_maximum(Some(config.receive_maximum))
                .set_last_will(v5::mqttbytes::v5::LastWill::new(
                    presence_topic.as_str(),
                    offline_payload.to_vec(),
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ))
                .set_network_options(network);
            if let Some((username, password)) = credentials {
                options.set_credentials(username, password);
            }
            if let Some(transport) = transport {
                options.set_transport(transport);
            }
            let (client, eventloop) = v5::AsyncClient::new(options, REQUEST_CHANNEL_CAPACITY);
            Ok((
                protocol::Client::V5(client),
                protocol::EventLoop::V5(Box::new(eventloop)),
            ))
        }
    }
}

impl BridgeState {
    fn info(&self) -> BusInfo {
        BusInfo {
            client: self.shared.client.clone(),
            clock: Arc::clone(&self.shared.clock),
            limits: self.shared.limits,
        }
    }

    /// Adds a route and its worker, and subscribes its filter at the broker when it is new. The
    /// reply waits for the SUBACK in a separate task, so the actor goes on with other commands.
    fn subscribe(&mut self, route: Route, reply: RpcReplyPort<Result<RouteId, BusError>>) {
        self.last_route += 1;
        let id = RouteId(self.last_route);
        let filter = route.filter().clone();
        let excluded = route.excluded().to_vec();
        tracing::info!(
            route = id.0,
            filter = %filter,
            body_type = route.body_type(),
            actor = %route.actor(),
            "route subscribed"
        );

        let (queue, queue_rx) = mpsc::channel(self.shared.route_queue);
        let counters = Arc::new(RouteCounters::default());
        let active = Arc::new(AtomicBool::new(true));
        tokio::spawn(routes::run_worker(
            id,
            route,
            queue_rx,
            Arc::clone(&counters),
            Arc::clone(&active),
            Arc::clone(&self.shared),
        ));

        let slot = RouteSlot {
            filter: filter.clone(),
            excluded,
            queue,
            counters,
            active,
        };
        // NOTE: unlike the local bus, a route whose filter another route already subscribed gets
        // no stored retained messages, because the bridge sends no second SUBSCRIBE. A first
        // route gets them from the broker shortly after this reply, not before it.
        let first = self.shared.routes.insert(id, slot);
        if !first || filter == self.shared.reply_filter {
            let _ = reply.send(Ok(id));
            return;
        }

        let (done, subscribed) = oneshot::channel();
        let _ = self.shared.control.send(Control::Subscribe {
            filter: filter.clone(),
            done,
        });
        tokio::spawn(async move {
            if tokio::time::timeout(SUBACK_TIMEOUT, subscribed)
                .await
                .is_err()
            {
                tracing::warn!(
                    topic = %filter,
                    route = id.0,
                    "no SUBACK within {SUBACK_TIMEOUT:?}; the route stays and is subscribed again on reconnect"
                );
            }
            let _ = reply.send(Ok(id));
        });
    }

    fn unsubscribe(&mut self, id: RouteId) -> Result<(), BusError> {
        let slot = self
            .shared
            .remove_route(id)
            .ok_or(BusError::UnknownRoute { route: id })?;
        if self
            .shared
            .keep_broker_subscriptions
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!(route = id.0, filter = %slot.filter, "route removed; the broker keeps its subscription for the session");
        } else {
            tracing::info!(route = id.0, filter = %slot.filter, "route unsubscribed");
        }
        Ok(())
    }

    /// Checks a publish, records a retained one, and queues it. A full outbox makes a request or a
    /// state change wait in a separate task, up to the outbox timeout.
    fn publish(&mut self, message: OutboundMessage, reply: RpcReplyPort<Result<(), BusError>>) {
        if let Err(error) = self.check(&message) {
            let _ = reply.send(Err(error));
            return;
        }
        self.record_retained(&message);

        let outbox_timeout = self.outbox_timeout;
        match self.shared.outbox.try_push(message) {
            Ok(()) => {
                let _ = reply.send(Ok(()));
            }
            Err((PushError::Closed, message)) => {
                let _ = reply.send(Err(closed(&message.topic)));
            }
            Err((PushError::Full, message)) => {
                let shared = Arc::clone(&self.shared);
                tokio::spawn(async move {
                    let topic = message.topic.clone();
                    let outcome = shared
                        .outbox
                        .push(message, outbox_timeout)
                        .await
                        .map_err(|error| push_error(error, &topic, outbox_timeout));
                    let _ = reply.send(outcome);
                });
            }
        }
    }

    /// Records a pending request and queues it, or replies at once with the reason it is rejected.
    fn request(&mut self, message: OutboundMessage, reply_topic: TopicName, reply: ReplyPort) {
        if let Err(error) = self.check(&message) {
            let _ = reply.send(Err(error));
            return;
        }

        let mut pending = lock(&self.shared.pending);
        pending.retain(|_, waiting| !waiting.is_closed());
        if !self.owns_reply_topic(&reply_topic) {
            let _ = reply.send(Err(BusError::ForeignReplyTopic {
                topic: message.topic,
                reply_topic,
                namespace: self.shared.reply_filter.clone(),
            }));
            return;
        }
        if pending.contains_key(&reply_topic) {
            let _ = reply.send(Err(BusError::RequestInFlight {
                topic: message.topic,
                reply_topic,
            }));
            return;
        }
        pending.insert(reply_topic.clone(), reply);
        drop(pending);

        let outbox_timeout = self.outbox_timeout;
        let shared = Arc::clone(&self.shared);
        let fail = move |shared: &Shared, error: BusError| {
            if let Some(waiting) = lock(&shared.pending).remove(&reply_topic) {
                let _ = waiting.send(Err(error));
            }
        };
        match self.shared.outbox.try_push(message) {
            Ok(()) => {}
            Err((PushError::Closed, message)) => fail(&shared, closed(&message.topic)),
            Err((PushError::Full, message)) => {
                tokio::spawn(async move {
                    let topic = message.topic.clone();
                    if let Err(error) = shared.outbox.push(message, outbox_timeout).await {
                        fail(&shared, push_error(error, &topic, outbox_timeout));
                    }
                });
            }
        }
    }

    /// Rejects a postcard payload, which MQTT 3.1.1 cannot label, and a payload over the maximum
    /// payload size.
    fn check(&self, message: &OutboundMessage) -> Result<(), BusError> {
        let failed = |reason: String| {
            Err(BusError::PublishFailed {
                topic: message.topic.clone(),
                reason,
            })
        };
        if message.options.codec != Codec::Json {
            return failed(format!(
                "the MQTT bridge speaks MQTT 3.1.1, which has no content type property, so receivers decode every payload as JSON; publish {} payloads on the local bus only, or use Codec::Json",
                message.options.codec
            ));
        }
        if message.payload.len() > self.max_payload_size {
            return failed(format!(
                "the payload is {} bytes, over the bridge's maximum payload size of {} bytes; send a smaller body, or raise max_payload_size on every node",
                message.payload.len(),
                self.max_payload_size
            ));
        }
        Ok(())
    }

    /// Keeps the last retained payload of each topic for re-publishing on reconnect; an empty
    /// retained payload clears the topic, as in MQTT.
    fn record_retained(&self, message: &OutboundMessage) {
        if !message.options.retained {
            return;
        }
        let mut retained = lock(&self.shared.retained);
        if message.payload.is_empty() {
            retained.remove(&message.topic);
        } else {
            retained.insert(message.topic.clone(), message.clone());
        }
    }

    /// Checks that `topic` is `alicia/reply/{client}/{request}` with this bridge's client id.
    fn owns_reply_topic(&self, topic: &TopicName) -> bool {
        manifest::lookup("client.reply")
            .and_then(|spec| spec.parse(topic).ok())
            .is_some_and(|params| params.get("client") == Some(self.shared.client.as_str()))
    }

    /// Publishes `offline` and disconnects through the writer, then stops the I/O task and the
    /// route workers. Each step is bounded by [`STOP_TIMEOUT`].
    async fn stop(&mut self) {
        let (done, finished) = oneshot::channel();
        if self.shared.control.send(Control::Shutdown { done }).is_ok()
            && tokio::time::timeout(STOP_TIMEOUT, finished).await.is_err()
        {
            tracing::warn!(client = %self.shared.client, "writer did not finish the shutdown in time");
        }

        if let Some(io) = self.io.take() {
            // The I/O task ends by itself after the DISCONNECT went out; the stop signal covers
            // a bridge that was not connected.
            if !self.shared.is_connected() {
                let _ = self.stop.send(true);
            }
            let abort = io.abort_handle();
            if tokio::time::timeout(STOP_TIMEOUT, io).await.is_err() {
                abort.abort();
            }
        }
        let _ = self.stop.send(true);
        if let Some(writer) = self.writer.take() {
            writer.abort();
        }
        self.shared.routes.clear();
        for (_, waiting) in lock(&self.shared.pending).drain() {
            drop(waiting);
        }
        tracing::info!(client = %self.shared.client, "MQTT bridge stopped");
    }
}

fn closed(topic: &TopicName) -> BusError {
    BusError::PublishFailed {
        topic: topic.clone(),
        reason: "the MQTT bridge is stopping; publish through a running bus".to_owned(),
    }
}

fn push_error(error: PushError, topic: &TopicName, timeout: Duration) -> BusError {
    match error {
        PushError::Closed => closed(topic),
        PushError::Full => BusError::PublishFailed {
            topic: topic.clone(),
            reason: format!(
                "the outbox stayed full for {timeout:?} (the broker is unreachable or slower than the publishers); retry later, or raise the outbox capacity"
            ),
        },
    }
}
