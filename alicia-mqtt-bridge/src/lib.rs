//! MQTT bridge actor and embedded broker.
//!
//! With the default cargo feature `embedded-broker`, [`broker`] runs an MQTT broker (rumqttd)
//! inside the node's process.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod url;

pub use url::{BrokerUrl, BrokerUrlError, Transport};
