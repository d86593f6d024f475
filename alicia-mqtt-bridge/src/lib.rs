//! MQTT bridge actor and embedded broker.

pub mod url;

pub use url::{BrokerUrl, BrokerUrlError, Transport};
