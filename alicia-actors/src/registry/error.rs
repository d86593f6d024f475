//! The errors of the device registry.

use std::fmt;

use alicia_core::{DeviceId, StoreError, Timestamp};

use super::model::{GroupId, HardwareId};

/// One invalid field of a request: its path, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, such as `capabilities[1].properties[0].range`.
    pub field: String,
    /// What is wrong with the value, quoting it.
    pub problem: String,
    /// What to send instead.
    pub fix: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.problem, self.fix)
    }
}

/// Every invalid field of one request, in field order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// Tells whether `field` is among the invalid fields.
    pub fn has_field(&self, field: &str) -> bool {
        self.0.iter().any(|error| error.field == field)
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// An error from a device registry operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A registration, update or query has invalid fields.
    #[error("invalid {what}: {errors}")]
    Invalid {
        /// What was rejected, such as `registration of device "lamp-1"`.
        what: String,
        /// Each invalid field.
        errors: FieldErrors,
    },

    /// Another device already owns a hardware identifier that the request claims.
    #[error(
        "hardware identifier {identifier} of device \"{device_id}\" already belongs to device \"{owner}\": deregister \"{owner}\" first, or register the device under the id \"{owner}\""
    )]
    IdentifierConflict {
        /// The device whose registration was rejected.
        device_id: DeviceId,
        /// The contested identifier.
        identifier: HardwareId,
        /// The device that owns it.
        owner: DeviceId,
    },

    /// The registry contains the configured maximum number of devices.
    #[error(
        "device \"{device_id}\" cannot be registered: the registry contains its maximum of {max} devices; deregister unused devices or raise RegistryConfig::max_devices"
    )]
    DeviceLimitReached {
        /// The device whose registration was rejected.
        device_id: DeviceId,
        /// The configured maximum.
        max: usize,
    },

    /// No device with this id is registered.
    #[error("device \"{device_id}\" is not registered{}: register it first", deregistered_note(.deregistered_at))]
    DeviceNotFound {
        /// The requested device.
        device_id: DeviceId,
        /// When the device was deregistered, if a tombstone records it.
        deregistered_at: Option<Timestamp>,
    },

    /// No group with this id exists.
    #[error("group \"{group_id}\" does not exist: create it first")]
    GroupNotFound {
        /// The requested group.
        group_id: GroupId,
    },

    /// A group with this id already exists.
    #[error("group \"{group_id}\" already exists: rename it or pick another id")]
    GroupExists {
        /// The requested group.
        group_id: GroupId,
    },

    /// Reading or writing the registry's tables failed. Nothing was acknowledged.
    #[error("device registry storage failed: {0}")]
    Store(#[from] StoreError),

    /// The durable commit of a staged registration failed, so nothing of it was stored.
    #[error(
        "registration of device \"{device_id}\" was not committed ({reason}): nothing was stored; retry, and check the disk if it keeps failing"
    )]
    CommitFailed {
        /// The device whose registration failed.
        device_id: DeviceId,
        /// The storage error.
        reason: String,
    },

    /// The registry actor did not reply.
    #[error(
        "the device registry is not running or did not answer ({reason}): check that the node started it"
    )]
    Unavailable {
        /// ractor's description of the failed call.
        reason: String,
    },
}

fn deregistered_note(deregistered_at: &Option<Timestamp>) -> String {
    match deregistered_at {
        Some(time) => format!(" (it was deregistered at {time} ms since the epoch)"),
        None => String::new(),
    }
}

impl RegistryError {
    /// Returns a stable, machine-readable code for the error, as MQTT replies carry it.
    pub fn code(&self) -> &'static str {
        match self {
            // The same code the bus sends for a request it cannot decode, so a client handles
            // every rejected input alike.
            RegistryError::Invalid { .. } => alicia_core::bus::error_code::INVALID_REQUEST,
            RegistryError::IdentifierConflict { .. } => "identifier_conflict",
            RegistryError::DeviceLimitReached { .. } => "device_limit_reached",
            RegistryError::DeviceNotFound { .. } => "device_not_found",
            RegistryError::GroupNotFound { .. } => "group_not_found",
            RegistryError::GroupExists { .. } => "group_exists",
            RegistryError::Store(_) | RegistryError::CommitFailed { .. } => "storage_failed",
            RegistryError::Unavailable { .. } => "unavailable",
        }
    }

    /// Returns the invalid fields of an [`RegistryError::Invalid`] error.
    pub fn field_errors(&self) -> Option<&FieldErrors> {
        match self {
            RegistryError::Invalid { errors, .. } => Some(errors),
            _ => None,
        }
    }
}
