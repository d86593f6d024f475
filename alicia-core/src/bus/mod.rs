//! The bus protocol, its typed client, and the in-process bus.
//!
//! Services talk to the rest of the house only through a bus actor: an actor whose message type
//! is [`BusCommand`]. Two implement it: [`LocalBus`] in this crate, and the MQTT bridge. Code
//! that uses the protocol through [`Bus`] runs unchanged on either.
//!
//! - [`Bus::subscribe`] adds a typed route: a topic filter, a body type `T` and an actor. Each
//!   matching payload is decoded into `Envelope<T>` with the bus's [`DecodeLimits`], checked by
//!   the bus's [`Authorizer`], wrapped in a [`Delivery`], converted into the actor's message type
//!   and cast to the actor. A payload that fails to decode or is rejected never reaches the
//!   actor. The bus counts it in the route's [`RouteStats`], logs it at a limited rate and sends
//!   an error [`Reply`] when the envelope names a reply topic.
//! - [`Bus::publish`] encodes an envelope and publishes it with a QoS, a retained flag and a
//!   [`PublishClass`] that selects the outbox overflow policy of a bridge.
//! - [`Bus::request`] publishes a request whose envelope names a reply topic under the bus's own
//!   client namespace (`alicia/reply/{client}/{request id}`) and waits for the [`Reply`].
//!   [`Bus::respond`] is the service side.
//!
//! [`DecodeLimits`]: crate::codec::DecodeLimits

mod auth;
mod client;
mod error;
mod local;
mod log_limit;
mod protocol;
mod reply;
mod route;
#[cfg(test)]
mod tests;

pub use auth::{Action, AllowAll, Authorization, AuthorizationRequest, Authorizer};
pub use client::Bus;
pub use error::BusError;
pub use local::{LocalBus, LocalBusConfig, LocalBusState};
pub use log_limit::LogRateLimit;
pub use protocol::{
    BusCommand, BusInfo, InboundReply, OutboundMessage, PublishClass, PublishOptions, RouteId,
    RouteStats,
};
pub use reply::{ErrorBody, Reply, error_code};
pub use route::{Delivery, DeliveryError, InboundMessage, PendingDelivery, Route};
