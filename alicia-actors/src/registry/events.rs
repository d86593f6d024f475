//! What the registry tells the rest of the house: events and retained per-device status.
//!
//! The actor sends each [`RegistryEvent`] to the channel given in
//! [`RegistryArgs::events`](super::RegistryArgs::events), after the change it reports is
//! committed. [`RegistryEvent::topic`] names the manifest topic the event belongs on, so a
//! forwarder only has to publish each event's body there.

use alicia_core::manifest::{self, ManifestError, TopicSpec};
use alicia_core::{DeviceId, TopicName};
use serde::{Deserialize, Serialize};

use super::model::{DeviceRecord, DeviceStatus, Tombstone};

/// A change in the registry, sent after it is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "body", rename_all = "snake_case")]
pub enum RegistryEvent {
    /// A new device was registered.
    Registered(DeviceRecord),
    /// A registered device's record changed, by re-registration or update.
    Updated(DeviceRecord),
    /// A device was deregistered.
    Deregistered(Tombstone),
    /// A device's availability changed (retained).
    Status(DeviceStatus),
    /// A device's retained status must be cleared: publish an empty retained payload on its
    /// status topic, so no removed device reappears from a retained message.
    StatusCleared(DeviceId),
}

impl RegistryEvent {
    /// Returns the manifest key of the topic the event belongs on.
    pub fn topic_key(&self) -> &'static str {
        match self {
            RegistryEvent::Registered(_) => "registry.registered",
            RegistryEvent::Updated(_) => "registry.updated",
            RegistryEvent::Deregistered(_) => "registry.deregistered",
            RegistryEvent::Status(_) | RegistryEvent::StatusCleared(_) => "device.status",
        }
    }

    /// Returns the manifest spec of the event's topic, with its QoS and retained flag.
    pub fn spec(&self) -> &'static TopicSpec {
        manifest::lookup(self.topic_key())
            .expect("every registry event key is in the manifest, which a test checks")
    }

    /// Builds the topic name the event is published on.
    pub fn topic(&self) -> Result<TopicName, ManifestError> {
        let spec = self.spec();
        match self {
            RegistryEvent::Status(status) => spec.format(&[("device", status.device_id.as_str())]),
            RegistryEvent::StatusCleared(device_id) => {
                spec.format(&[("device", device_id.as_str())])
            }
            _ => spec.format(&[]),
        }
    }

    /// Returns the JSON body to publish, or `None` for an empty retained payload that clears the
    /// topic.
    pub fn body(&self) -> Result<Option<serde_json::Value>, serde_json::Error> {
        let body = match self {
            RegistryEvent::Registered(record) | RegistryEvent::Updated(record) => {
                serde_json::to_value(record)
            }
            RegistryEvent::Deregistered(tombstone) => serde_json::to_value(tombstone),
            RegistryEvent::Status(status) => serde_json::to_value(status),
            RegistryEvent::StatusCleared(_) => return Ok(None),
        };
        body.map(Some)
    }
}
