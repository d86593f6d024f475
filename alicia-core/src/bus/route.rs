//! Typed routes behind one erased type, so that a bus can hold routes of any body and actor.

use std::any::type_name;
use std::fmt;
use std::sync::Arc;

use ractor::{ActorId, ActorRef, Message};
use serde::de::DeserializeOwned;

use crate::codec::{Codec, DecodeError, DecodeLimits};
use crate::envelope::{AuthToken, Envelope, MessageId, SourceId};
use crate::topic::{TopicFilter, TopicName};

/// One message as it reaches a route's actor: the topic, the decoded envelope and whether it was
/// a stored retained message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<T> {
    /// The topic the message was published to.
    pub topic: TopicName,
    /// The decoded envelope.
    pub envelope: Envelope<T>,
    /// `true` when the bus delivered a stored retained message because the route subscribed after
    /// it was published. A message published while the route exists arrives with `false`, even
    /// when it was published with the retained flag, as MQTT delivers it by default.
    pub retained: bool,
}

/// A received payload on its way to the routes whose filters match its topic.
#[derive(Debug, Clone)]
pub struct InboundMessage {
    /// The topic the message was published to.
    pub topic: TopicName,
    /// The encoded envelope, not yet checked.
    pub payload: Arc<[u8]>,
    /// The codec to decode it with.
    pub codec: Codec,
    /// Whether this is a stored retained message; see [`Delivery::retained`].
    pub retained: bool,
}

/// A message that a route has decoded, waiting for the authorizer and then for delivery.
pub trait PendingDelivery: Send {
    /// Returns the envelope's message id.
    fn message_id(&self) -> MessageId;

    /// Returns the envelope's source.
    fn source(&self) -> &SourceId;

    /// Returns the envelope's reply topic, if the sender expects a reply.
    fn reply_to(&self) -> Option<&TopicName>;

    /// Returns the envelope's auth token, if any.
    fn auth_token(&self) -> Option<&AuthToken>;

    /// Casts the message to the route's actor without waiting, because ractor mailboxes are
    /// unbounded.
    ///
    /// NOTE: nothing bounds or counts a slow actor's backlog, so its mailbox grows without limit.
    /// Bounding it needs a per-route queue in front of the cast, with an overflow counter.
    fn deliver(self: Box<Self>) -> Result<(), DeliveryError>;
}

/// Why a decoded message could not be handed to the route's actor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The actor has stopped, so its mailbox is closed. The bus removes the route.
    #[error(
        "the route's actor {actor} has stopped, so the route is removed (subscribe again from the restarted actor)"
    )]
    TargetStopped {
        /// The stopped actor.
        actor: ActorId,
    },
}

/// Decodes a payload into the route's typed message, ready for delivery.
type DecodeFn = dyn Fn(&InboundMessage, &DecodeLimits) -> Result<Box<dyn PendingDelivery>, DecodeError>
    + Send
    + Sync;

/// A subscription: a topic filter, and how a matching payload becomes a message for an actor.
///
/// The body type and the actor's message type are erased, so that one bus can contain routes of
/// every type. A payload that does not decode into the body type never reaches the actor, and
/// the bus gets the [`DecodeError`] instead.
pub struct Route {
    filter: TopicFilter,
    /// Topics the filter matches but the route does not take, such as a sibling topic of another
    /// type under the same `+` level.
    excluded: Vec<TopicName>,
    body_type: &'static str,
    actor: ActorId,
    decode: Box<DecodeFn>,
}

impl Route {
    /// Creates a route that decodes matching payloads into `Envelope<T>`, turns each one into an
    /// `M` with `convert` and casts it to `target`.
    pub fn new<T, M, F>(filter: TopicFilter, target: ActorRef<M>, convert: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        M: Message,
        F: Fn(Delivery<T>) -> M + Send + Sync + 'static,
    {
        let actor = target.get_id();
        let convert = Arc::new(convert);
        let decode = move |inbound: &InboundMessage, limits: &DecodeLimits| {
            let envelope = inbound.codec.decode::<T>(&inbound.payload, limits)?;
            let pending: Box<dyn PendingDelivery> = Box::new(TypedDelivery {
                delivery: Delivery {
                    topic: inbound.topic.clone(),
                    envelope,
                    retained: inbound.retained,
                },
                target: target.clone(),
                convert: Arc::clone(&convert),
            });
            Ok(pending)
        };

        Self {
            filter,
            excluded: Vec::new(),
            body_type: type_name::<T>(),
            actor,
            decode: Box::new(decode),
        }
    }

    /// Returns the route without the messages on `topics`, which its filter would otherwise
    /// match. They are neither delivered nor counted as decode errors.
    pub fn excluding(mut self, topics: impl IntoIterator<Item = TopicName>) -> Self {
        self.excluded.extend(topics);
        self
    }

    /// Returns whether the route takes messages on `topic`: its filter matches and the topic is
    /// not excluded. Every bus selects routes with this.
    pub fn accepts(&self, topic: &TopicName) -> bool {
        self.filter.matches(topic) && !self.excluded.contains(topic)
    }

    /// Returns the topics the route leaves out although its filter matches them.
    pub fn excluded(&self) -> &[TopicName] {
        &self.excluded
    }

    /// Returns the topic filter that selects the route's messages.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// Returns the Rust name of the body type, for logs.
    pub fn body_type(&self) -> &'static str {
        self.body_type
    }

    /// Returns the id of the actor that receives the route's messages.
    pub fn actor(&self) -> ActorId {
        self.actor
    }

    /// Decodes `inbound` into the route's body type, checking `limits` first.
    pub fn decode(
        &self,
        inbound: &InboundMessage,
        limits: &DecodeLimits,
    ) -> Result<Box<dyn PendingDelivery>, DecodeError> {
        (self.decode)(inbound, limits)
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("filter", &self.filter)
            .field("body_type", &self.body_type)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// A decoded delivery with the actor and conversion of its route.
struct TypedDelivery<T, M: Message, F> {
    delivery: Delivery<T>,
    target: ActorRef<M>,
    convert: Arc<F>,
}

impl<T, M, F> PendingDelivery for TypedDelivery<T, M, F>
where
    T: Send + 'static,
    M: Message,
    F: Fn(Delivery<T>) -> M + Send + Sync + 'static,
{
    fn message_id(&self) -> MessageId {
        self.delivery.envelope.message_id()
    }

    fn source(&self) -> &SourceId {
        self.delivery.envelope.source()
    }

    fn reply_to(&self) -> Option<&TopicName> {
        self.delivery.envelope.reply_to()
    }

    fn auth_token(&self) -> Option<&AuthToken> {
        self.delivery.envelope.auth_token()
    }

    fn deliver(self: Box<Self>) -> Result<(), DeliveryError> {
        let actor = self.target.get_id();
        let message = (self.convert)(self.delivery);
        self.target
            .cast(message)
            .map_err(|_| DeliveryError::TargetStopped { actor })
    }
}
