//! The messages that a bus actor handles.

use std::fmt;
use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::clock::SharedClock;
use crate::codec::{Codec, DecodeLimits};
use crate::envelope::SourceId;
use crate::manifest::{QoS, TopicSpec};
use crate::topic::TopicName;

use super::{BusError, Route};

/// The message enum of a bus actor: the local bus and the MQTT bridge both handle it.
///
/// Callers use [`Bus`](super::Bus) instead of building these by hand. Every variant carries a
/// reply port, and the bus sends exactly one reply through each. A bus handles commands one at a
/// time in mailbox order, so a route subscribed before a publish is sent sees that publish.
#[derive(Debug)]
pub enum BusCommand {
    /// Reports the bus's client id, clock and decode limits.
    Describe {
        /// Receives the description.
        reply: RpcReplyPort<BusInfo>,
    },

    /// Adds a route. The bus first delivers the retained messages that match its filter, then
    /// replies with the new route's id.
    Subscribe {
        /// The route to add.
        route: Route,
        /// Receives the route id, or why the subscription failed.
        reply: RpcReplyPort<Result<RouteId, BusError>>,
    },

    /// Removes a route. No message reaches its actor through the bus after the reply.
    Unsubscribe {
        /// The route to remove.
        route: RouteId,
        /// Receives `Ok` or [`BusError::UnknownRoute`].
        reply: RpcReplyPort<Result<(), BusError>>,
    },

    /// Publishes an encoded envelope.
    ///
    /// The reply means the bus has accepted the message: the local bus has delivered it to the
    /// mailboxes of the matching routes, the MQTT bridge has queued it in its outbox.
    Publish {
        /// The message.
        message: OutboundMessage,
        /// Receives `Ok`, or why the bus did not accept the message.
        reply: RpcReplyPort<Result<(), BusError>>,
    },

    /// Publishes encoded envelopes in order, as one command.
    ///
    /// The reply contains one result per message, in order, and comes once the bus has accepted or
    /// rejected every message as it would a [`BusCommand::Publish`]. A publisher with many
    /// messages at once (a service's events after a group commit) wakes the bus once instead of
    /// once per message. A bus keeps the messages of one batch in order, also when it has to wait
    /// for outbox space.
    PublishBatch {
        /// The messages, in publish order.
        messages: Vec<OutboundMessage>,
        /// Receives one result per message.
        reply: RpcReplyPort<Vec<Result<(), BusError>>>,
    },

    /// Publishes a request and forwards the first message that arrives on its reply topic.
    ///
    /// The bus replies when that message arrives, or at once with an error when it rejects the
    /// request. The requester enforces the timeout by dropping its end of the port. The bus
    /// drops a request whose port is closed.
    Request {
        /// The request, whose envelope names `reply_topic`.
        message: OutboundMessage,
        /// The topic of the expected reply. It must be under the bus's reply namespace
        /// (`alicia/reply/{client}/...`), so that no other client reads it.
        reply_topic: TopicName,
        /// Receives the raw reply, or why the request was rejected.
        reply: RpcReplyPort<Result<InboundReply, BusError>>,
    },

    /// Reads the counters of one route.
    RouteStats {
        /// The route.
        route: RouteId,
        /// Receives the counters, or `None` for an unknown route.
        reply: RpcReplyPort<Option<RouteStats>>,
    },
}

/// Identifies one route on one bus. Ids count up from 1 and are not reused while the bus runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId(pub u64);

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {}", self.0)
    }
}

/// A bus's description of itself, for its clients.
#[derive(Debug, Clone)]
pub struct BusInfo {
    /// The client id; reply topics live under `alicia/reply/{client}/`.
    pub client: SourceId,
    /// The clock that stamps envelopes the bus creates.
    pub clock: SharedClock,
    /// The limits that apply when a client decodes replies.
    pub limits: DecodeLimits,
}

/// The outbox overflow policy of a publish, for buses with a bounded outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishClass {
    /// A request or a reply: waits for outbox space up to a timeout, then fails.
    Request,
    /// A change of state (an event, a retained status): waits for outbox space up to a timeout,
    /// then fails.
    StateChange,
    /// A periodic reading that the next one replaces: when the outbox is full, the oldest
    /// telemetry is dropped and counted.
    Telemetry,
}

/// The delivery settings of one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishOptions {
    /// The MQTT QoS. The local bus casts each message once to each matching route, whatever
    /// the QoS.
    pub qos: QoS,
    /// Whether the bus stores the message for later subscribers. An empty payload with this flag
    /// clears the stored message, as in MQTT.
    pub retained: bool,
    /// The overflow policy class.
    pub class: PublishClass,
    /// The codec that encodes the envelope. JSON is the wire default.
    pub codec: Codec,
}

impl PublishOptions {
    /// Options for a state change: QoS 1, not retained, JSON.
    pub const fn state_change() -> Self {
        Self {
            qos: QoS::AtLeastOnce,
            retained: false,
            class: PublishClass::StateChange,
            codec: Codec::Json,
        }
    }

    /// Options for telemetry: QoS 0, not retained, JSON.
    pub const fn telemetry() -> Self {
        Self {
            qos: QoS::AtMostOnce,
            retained: false,
            class: PublishClass::Telemetry,
            codec: Codec::Json,
        }
    }

    /// Options for a request or a reply: QoS 1, not retained, JSON.
    pub const fn request() -> Self {
        Self {
            qos: QoS::AtLeastOnce,
            retained: false,
            class: PublishClass::Request,
            codec: Codec::Json,
        }
    }

    /// Options with the QoS and retained flag that the manifest gives `spec`, in `class`.
    pub const fn for_spec(spec: &TopicSpec, class: PublishClass) -> Self {
        Self {
            qos: spec.qos(),
            retained: spec.retained(),
            class,
            codec: Codec::Json,
        }
    }

    /// These options with the retained flag set to `retained`.
    pub const fn with_retained(mut self, retained: bool) -> Self {
        self.retained = retained;
        self
    }
}

impl Default for PublishOptions {
    fn default() -> Self {
        Self::state_change()
    }
}

/// An encoded message on its way to the bus.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// The topic to publish to.
    pub topic: TopicName,
    /// The encoded envelope. It is shared, so the bus hands it to every matching route without a
    /// copy.
    pub payload: Arc<[u8]>,
    /// How to publish.
    pub options: PublishOptions,
}

/// A raw reply, as the bus forwards it to the requester, which decodes it.
#[derive(Debug, Clone)]
pub struct InboundReply {
    /// The reply topic it arrived on.
    pub topic: TopicName,
    /// The encoded envelope, not yet checked.
    pub payload: Arc<[u8]>,
    /// The codec to decode it with.
    pub codec: Codec,
}

/// The counters of one route, since it was subscribed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Messages cast to the route's actor.
    pub delivered: u64,
    /// Messages that failed to decode into the route's body type and were dropped.
    pub decode_errors: u64,
    /// Messages that the authorizer rejected and that were dropped.
    pub rejected: u64,
}
