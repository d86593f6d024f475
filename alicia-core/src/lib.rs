//! The vocabulary and runtime every Alicia crate shares.
//!
//! - [`id`]: validated ids for devices, services, nodes and instances, safe as MQTT topic levels.
//! - [`topic`]: MQTT topic names and filters, matching and filter coverage.
//! - [`manifest`]: the list of every topic the framework uses.
//! - [`envelope`] and [`codec`]: the wire format of every message, in JSON or postcard.
//! - [`clock`]: the time source that all expiry logic reads.
//! - [`bus`]: the bus protocol that services publish and subscribe through, and the in-process bus.
//! - [`presence`]: whether a node is online, as published on its presence topic.
//! - [`store`]: typed, versioned tables over one redb database per node.
//! - [`supervisor`]: supervisors that restart failed actors, with stable handles to them.

pub mod bus;
pub mod clock;
pub mod codec;
pub mod envelope;
pub mod id;
pub mod manifest;
pub mod presence;
pub mod store;
pub mod supervisor;
pub mod topic;

pub use bus::{
    Bus, BusCommand, BusError, Delivery, ErrorBody, LocalBus, LocalBusConfig, PublishClass,
    PublishOptions, Reply, RouteId,
};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use codec::{Codec, ContentTypeError, DecodeError, DecodeLimits, EncodeError};
pub use envelope::{
    AuthToken, AuthTokenError, Envelope, FORMAT_VERSION, MessageId, MessageIdError, SourceId,
};
pub use id::{DeviceId, IdError, InstanceId, NodeId, ServiceId};
pub use manifest::{ManifestError, QoS, Role, TopicParams, TopicSpec};
pub use presence::NodePresence;
pub use store::{Store, StoreError, StoreOptions, Table};
pub use supervisor::{ChildHandle, ChildId, ChildSpec, Supervisor, SupervisorSpec};
pub use topic::{TopicError, TopicFilter, TopicName};
