//! Errors that the bus and its client return.

use std::time::Duration;

use crate::codec::{DecodeError, EncodeError};
use crate::envelope::MessageId;
use crate::manifest::ManifestError;
use crate::topic::{TopicFilter, TopicName};

use super::RouteId;

/// Failure of a bus operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus actor is not running, or it stopped before it replied.
    #[error(
        "{operation} failed: the bus actor is not running ({reason}); start the bus, or connect the client to a running one"
    )]
    Unavailable {
        /// The operation that failed, such as `publish to "alicia/x"`.
        operation: String,
        /// The ractor error.
        reason: String,
    },

    /// The bus could not set up a subscription.
    #[error("subscribing to \"{filter}\" failed: {reason}")]
    SubscribeFailed {
        /// The topic filter of the route.
        filter: TopicFilter,
        /// Why, and what to do.
        reason: String,
    },

    /// No route with this id is subscribed on this bus.
    #[error(
        "{route} is not subscribed on this bus: it was already unsubscribed, its actor stopped, or it belongs to another bus"
    )]
    UnknownRoute {
        /// The route id.
        route: RouteId,
    },

    /// The body could not be encoded for publishing.
    #[error("publishing to \"{topic}\" failed: {source}")]
    Encode {
        /// The topic of the publish.
        topic: TopicName,
        /// The codec's error.
        source: EncodeError,
    },

    /// The bus did not accept a publish.
    #[error("publishing to \"{topic}\" failed: {reason}")]
    PublishFailed {
        /// The topic of the publish.
        topic: TopicName,
        /// Why, and what to do.
        reason: String,
    },

    /// The reply topic of a request is not under this bus's own reply namespace, so other clients
    /// could read the reply.
    #[error(
        "request to \"{topic}\" rejected: reply topic \"{reply_topic}\" is outside this client's reply namespace \"{namespace}\" (let Bus::request choose the reply topic)"
    )]
    ForeignReplyTopic {
        /// The request topic.
        topic: TopicName,
        /// The rejected reply topic.
        reply_topic: TopicName,
        /// The filter of this bus's reply namespace, `alicia/reply/{client}/+`.
        namespace: TopicFilter,
    },

    /// Another request is already waiting for a reply on this reply topic.
    #[error(
        "request to \"{topic}\" rejected: a request is already waiting for a reply on \"{reply_topic}\" (give each request a fresh message id)"
    )]
    RequestInFlight {
        /// The request topic.
        topic: TopicName,
        /// The reply topic in use.
        reply_topic: TopicName,
    },

    /// The reply topic could not be formatted from the client id and the request id.
    #[error("request to \"{topic}\" failed: no reply topic: {source}")]
    ReplyTopic {
        /// The request topic.
        topic: TopicName,
        /// The manifest's error.
        source: Box<ManifestError>,
    },

    /// No reply arrived within the timeout.
    #[error(
        "request to \"{topic}\" timed out after {timeout:?}: no reply on \"{reply_topic}\" (check that a service subscribes to \"{topic}\" and is running, or raise the timeout)"
    )]
    Timeout {
        /// The request topic.
        topic: TopicName,
        /// The reply topic that stayed silent.
        reply_topic: TopicName,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The responder sent an error reply.
    #[error("request to \"{topic}\" failed with error {code}: {message}")]
    Remote {
        /// The request topic.
        topic: TopicName,
        /// The error code from the reply.
        code: String,
        /// The error message from the reply.
        message: String,
    },

    /// The reply could not be decoded as the expected reply type.
    #[error(
        "reply to the request on \"{topic}\" could not be decoded: {source} (check that the responder returns the type the requester expects)"
    )]
    ReplyDecode {
        /// The request topic.
        topic: TopicName,
        /// The decoder's error.
        source: DecodeError,
    },

    /// The reply carries another correlation id than the request's message id.
    #[error(
        "reply to the request on \"{topic}\" has correlation id {found:?}, expected {expected}: the responder must copy the request's message id (use Bus::respond)"
    )]
    ReplyMismatch {
        /// The request topic.
        topic: TopicName,
        /// The request's message id.
        expected: MessageId,
        /// The correlation id in the reply, if any.
        found: Option<MessageId>,
    },

    /// [`Bus::respond`](super::Bus::respond) got a delivery whose envelope names no reply topic.
    #[error(
        "cannot reply to the message on \"{topic}\": its envelope names no reply topic (only requests get replies)"
    )]
    NoReplyTopic {
        /// The topic of the delivery.
        topic: TopicName,
    },
}
