//! Alicia: supervised actors and core infrastructure services for home automation over MQTT.
//!
//! This facade crate re-exports the workspace crates under one name.

pub use alicia_actors as actors;
pub use alicia_core as core;
pub use alicia_mqtt_bridge as mqtt_bridge;

pub mod config;

pub use config::{BrokerChoice, ConfigError, NodeConfig};

pub mod metrics;
pub mod node;

pub use node::{Node, NodeBuilder, NodeError};

/// Compiles the README's Rust example as a doc test, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
