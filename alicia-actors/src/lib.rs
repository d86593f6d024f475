//! Alicia core infrastructure services.
//!
//! - [`registry`]: the device registry.

pub mod registry;
