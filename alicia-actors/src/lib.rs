//! Alicia core infrastructure services.
//!
//! - [`health`]: the health monitor.
//! - [`registry`]: the device registry.

pub mod health;
pub mod registry;
