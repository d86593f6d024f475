//! The device registry: every device in the house, what it can do, where it is and whether it
//! is there.
//!
//! Start it with [`RegistryClient::spawn`] and call it through the returned client:
//!
//! ```no_run
//! use alicia_actors::registry::{
//!     Capability, DeviceSpec, Property, RegistryArgs, RegistryClient, RegistryConfig, ValueType,
//! };
//! use alicia_core::{Store, SystemClock};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = SystemClock::shared();
//! let store = Store::open(std::path::Path::new("/var/lib/alicia"), clock.clone())?.store;
//! let args = RegistryArgs { store, clock, config: RegistryConfig::default(), events: None };
//! let (registry, _handle) = RegistryClient::spawn(args).await?;
//!
//! let mut lamp = DeviceSpec::new("kitchen-lamp", "light", "Kitchen lamp");
//! lamp.location = Some("Kitchen".into());
//! lamp.capabilities.push(Capability::new("on_off")
//!     .with_property(Property::new("on", ValueType::Boolean).writable()));
//! lamp.capabilities.push(Capability::new("brightness").with_property(
//!     Property::new("level", ValueType::Integer).with_unit("%").with_range(0.0, 100.0, Some(1.0)).writable(),
//! ));
//! registry.register(lamp).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Durability
//!
//! - Registration, update, deregistration and every group change are committed durably before
//!   the reply is sent. Registrations that arrive together share one durable commit.
//! - Last-seen times are kept in memory and written in one durable commit every
//!   [`RegistryConfig::last_seen_flush_interval`] (5 s by default) and when the actor stops. A
//!   crash loses the last-seen times of at most that interval plus the time of one commit. Nothing
//!   else is lost, because availability is not stored: after a restart every device is `unknown`
//!   until it sends a heartbeat.
//!
//! # Availability
//!
//! A heartbeat makes a device `online`. The sweep, run by a timer every
//! [`RegistryConfig::sweep_interval`], marks a device `offline` once it has been silent for longer
//! than its timeout: its own `heartbeat_timeout_secs`, or the default of its power source (5
//! minutes for mains, 24 hours for battery). A last will makes it `offline` at once. Every change
//! is sent as a [`RegistryEvent::Status`].
//!
//! # Start
//!
//! After loading, the registry announces an `unknown` status for every device, replacing retained
//! statuses from before the restart. It announces 512 devices at a time and handles requests
//! between the steps, so it serves at once. A device whose availability changed before its step
//! keeps its newer status.

mod actor;
mod availability;
mod bus;
mod client;
mod error;
mod events;
mod groups;
mod metrics;
mod model;
mod query;
mod tables;
mod validate;

#[cfg(test)]
mod tests;

pub use actor::{
    RegistryActor, RegistryArgs, RegistryConfig, RegistryMessage, RegistryState, RegistryStats,
    Reply,
};
pub use availability::DefaultTimeouts;
pub use bus::{
    DeviceHeartbeat, DeviceRequest, GroupRequest, OPERATIONS, PublishError, RegistryRoutes,
    RouteMessage, RoutesArgs, RoutesState, UpdateRequest, publish_event, spawn_event_publisher,
};
pub use client::{DEFAULT_CALL_TIMEOUT, RegistryClient};
pub use error::{FieldError, FieldErrors, RegistryError};
pub use events::RegistryEvent;
pub use metrics::registry_families;
pub use model::{
    Availability, AvailabilityReason, AvailabilityState, Capability, DEFAULT_PAGE_SIZE, DevicePage,
    DeviceQuery, DeviceRecord, DeviceSpec, DeviceStatus, DeviceUpdate, DeviceView, Group, GroupId,
    GroupView, HardwareId, HardwareIdKind, PowerSource, Property, RegisterOutcome, Registration,
    Tombstone, ValueRange, ValueType,
};
pub use tables::{
    CAPABILITY_INDEX, DEVICES, GROUPS, IDENTIFIERS, LAST_SEEN, LOCATION_INDEX, TOMBSTONES,
    TYPE_INDEX,
};
pub use validate::validate_spec;
