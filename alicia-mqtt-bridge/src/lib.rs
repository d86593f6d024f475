//! MQTT bridge actor and embedded broker.
//!
//! [`bridge`] implements the bus protocol of `alicia-core` over an MQTT broker, so services run
//! unchanged on the local bus or on MQTT. With the default cargo feature `embedded-broker`,
//! [`broker`] runs an MQTT broker (rumqttd) inside the node's process.

pub mod bridge;
#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod url;

pub use bridge::{
    BridgeConfig, BridgeError, BridgeHandle, BridgeStats, MqttBridge, MqttVersion, NodePresence,
};
pub use url::{BrokerUrl, BrokerUrlError, Transport};
