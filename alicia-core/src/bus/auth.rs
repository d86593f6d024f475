//! The authorization seam that every inbound message passes before it reaches an actor.

use std::fmt;

use crate::envelope::{AuthToken, SourceId};
use crate::topic::TopicName;

/// The kind of operation an inbound message performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publishing a message that expects no reply.
    Publish,
    /// Sending a request: the envelope names a reply topic.
    Request,
}

/// The facts an [`Authorizer`] decides on, taken from one decoded inbound message.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationRequest<'a> {
    /// The envelope's auth token, from which the authorizer derives the sender's identity.
    /// `Debug` prints it as `***`.
    pub token: Option<&'a AuthToken>,
    /// The source the envelope claims. Nothing has verified it, so trust it only as far as the
    /// token confirms it.
    pub source: &'a SourceId,
    /// The kind of operation.
    pub action: Action,
    /// The topic the message was published to.
    pub topic: &'a TopicName,
}

/// The decision of an [`Authorizer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The message may reach the route's actor.
    Allow,
    /// The message is dropped, and the reason goes into the error reply when the sender asked for
    /// a reply.
    Deny {
        /// The rejection reason, in words the sender can act on. It must not contain the
        /// token or any other secret.
        reason: String,
    },
}

/// Decides whether an inbound message may reach an actor.
///
/// A bus calls it once per matching route for every decoded message, after decoding and before
/// delivery, on the bus's own task. It must therefore be quick and must not wait: keep what it
/// needs (keys, revocation lists) in memory.
pub trait Authorizer: Send + Sync + fmt::Debug + 'static {
    /// Decides on one message.
    fn authorize(&self, request: &AuthorizationRequest<'_>) -> Authorization;
}

/// The default authorizer: every message is allowed.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _request: &AuthorizationRequest<'_>) -> Authorization {
        Authorization::Allow
    }
}
