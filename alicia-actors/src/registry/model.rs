//! The device model: what a device is, what it can do, how it is identified and whether it is
//! there.
//!
//! [`DeviceSpec`] is what a caller sends to register a device: plain strings, checked by
//! [`validate`](super::validate). [`DeviceRecord`] is the validated, stored form with typed ids
//! and normalized hardware identifiers.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use alicia_core::id::validate_id;
use alicia_core::{DeviceId, IdError, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

/// A registration request: every field a device record has, before validation. Unknown keys
/// are rejected, so a misspelled field is an error instead of a silently empty value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Device id, a valid [`DeviceId`] other than the reserved `status` and `registry`.
    pub id: String,
    /// Kind of device, a lowercase token such as `light`, `thermostat` or `motion_sensor`.
    #[serde(rename = "type")]
    pub device_type: String,
    /// Human-readable name, such as "Kitchen ceiling lamp".
    pub name: String,
    /// Area of the house the device is in, such as "Kitchen".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// What the device can do.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Hardware identifiers; each may belong to one device only.
    #[serde(default)]
    pub identifiers: Vec<HardwareId>,
    /// Firmware version as the device reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware_version: Option<String>,
    /// Hardware version or revision as the device reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_version: Option<String>,
    /// How the device is powered, which sets its default heartbeat timeout.
    #[serde(default)]
    pub power_source: PowerSource,
    /// Heartbeat timeout in seconds, overriding the default of the power source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_timeout_secs: Option<u64>,
    /// Free-form key/value pairs, such as the vendor or the model name.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl DeviceSpec {
    /// Creates a spec with the required fields and every optional field empty.
    pub fn new(
        id: impl Into<String>,
        device_type: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            id: id.into(),
            device_type: device_type.into(),
            name: name.into(),
            location: None,
            capabilities: Vec::new(),
            identifiers: Vec::new(),
            firmware_version: None,
            hardware_version: None,
            power_source: PowerSource::default(),
            heartbeat_timeout_secs: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// A registered device as the registry stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// Device id.
    pub id: DeviceId,
    /// Kind of device, a lowercase token.
    #[serde(rename = "type")]
    pub device_type: String,
    /// Human-readable name.
    pub name: String,
    /// Area of the house the device is in.
    pub location: Option<String>,
    /// What the device can do, in the order it was registered.
    pub capabilities: Vec<Capability>,
    /// Hardware identifiers with normalized values.
    pub identifiers: Vec<HardwareId>,
    /// Firmware version as the device reports it.
    pub firmware_version: Option<String>,
    /// Hardware version as the device reports it.
    pub hardware_version: Option<String>,
    /// How the device is powered.
    pub power_source: PowerSource,
    /// Heartbeat timeout in seconds, overriding the default of the power source.
    pub heartbeat_timeout_secs: Option<u64>,
    /// Free-form key/value pairs.
    pub metadata: BTreeMap<String, String>,
    /// When the device was first registered.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
}

impl DeviceRecord {
    /// Returns the registration request that produces this record, without its times.
    pub fn to_spec(&self) -> DeviceSpec {
        DeviceSpec {
            id: self.id.to_string(),
            device_type: self.device_type.clone(),
            name: self.name.clone(),
            location: self.location.clone(),
            capabilities: self.capabilities.clone(),
            identifiers: self.identifiers.clone(),
            firmware_version: self.firmware_version.clone(),
            hardware_version: self.hardware_version.clone(),
            power_source: self.power_source,
            heartbeat_timeout_secs: self.heartbeat_timeout_secs,
            metadata: self.metadata.clone(),
        }
    }

    /// Tells whether `other` describes the same device, ignoring the created and updated times.
    pub fn same_content(&self, other: &DeviceRecord) -> bool {
        self.to_spec() == other.to_spec()
    }

    /// Tells whether the device has a capability named `name`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|capability| capability.name == name)
    }
}

/// One thing a device can do, such as `on_off`, `brightness` or `temperature`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// Capability name, a lowercase token unique within the device.
    pub name: String,
    /// The values the capability reads or writes; empty for a capability without state.
    #[serde(default)]
    pub properties: Vec<Property>,
}

impl Capability {
    /// Creates a capability without properties.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            properties: Vec::new(),
        }
    }

    /// Adds a property.
    pub fn with_property(mut self, property: Property) -> Self {
        self.properties.push(property);
        self
    }
}

/// One typed value of a capability, such as the brightness of a lamp in percent.
///
/// Stored with postcard, which writes every field in order, so no field may be skipped when
/// serializing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    /// Property name, a lowercase token unique within the capability.
    pub name: String,
    /// Type of the value.
    #[serde(rename = "type")]
    pub value_type: ValueType,
    /// Unit of the value, such as `%`, `°C` or `lx`.
    #[serde(default)]
    pub unit: Option<String>,
    /// Inclusive range of a numeric value.
    #[serde(default)]
    pub range: Option<ValueRange>,
    /// The values an `enum` property may take.
    #[serde(default)]
    pub allowed_values: Vec<String>,
    /// Whether the value can be read.
    #[serde(default = "default_true")]
    pub readable: bool,
    /// Whether the value can be set.
    #[serde(default)]
    pub writable: bool,
}

fn default_true() -> bool {
    true
}

impl Property {
    /// Creates a readable, not writable property without unit, range or allowed values.
    pub fn new(name: impl Into<String>, value_type: ValueType) -> Self {
        Self {
            name: name.into(),
            value_type,
            unit: None,
            range: None,
            allowed_values: Vec::new(),
            readable: true,
            writable: false,
        }
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Sets the inclusive range and the step (`None` for any value in the range).
    pub fn with_range(mut self, min: f64, max: f64, step: Option<f64>) -> Self {
        self.range = Some(ValueRange { min, max, step });
        self
    }

    /// Sets the allowed values of an `enum` property.
    pub fn with_allowed_values(mut self, values: &[&str]) -> Self {
        self.allowed_values = values.iter().map(|value| (*value).to_owned()).collect();
        self
    }

    /// Makes the property writable.
    pub fn writable(mut self) -> Self {
        self.writable = true;
        self
    }
}

/// Type of a property value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A floating-point number.
    Number,
    /// Free text.
    String,
    /// One of the property's allowed values.
    Enum,
}

impl ValueType {
    /// Tells whether values of this type are numbers, which a range may constrain.
    pub fn is_numeric(self) -> bool {
        matches!(self, ValueType::Integer | ValueType::Number)
    }

    /// Returns the name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Boolean => "boolean",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::String => "string",
            ValueType::Enum => "enum",
        }
    }
}

/// Inclusive range of a numeric property, with an optional step between allowed values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValueRange {
    /// Smallest allowed value.
    pub min: f64,
    /// Largest allowed value.
    pub max: f64,
    /// Distance between allowed values, counted from `min`.
    #[serde(default)]
    pub step: Option<f64>,
}

/// A hardware identifier as a typed pair, such as `mac` = `00:17:88:01:02:03`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HardwareId {
    /// What kind of identifier the value is.
    pub kind: HardwareIdKind,
    /// The identifier. The registry stores MAC, IEEE and UUID values in lowercase with the
    /// canonical separators.
    pub value: String,
}

impl HardwareId {
    /// Creates an identifier of `kind` with `value`.
    pub fn new(kind: HardwareIdKind, value: impl Into<String>) -> Self {
        Self {
            kind,
            value: value.into(),
        }
    }

    /// Returns the key under which the identifier index stores this identifier.
    pub(crate) fn index_key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }
}

impl fmt::Display for HardwareId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.value)
    }
}

/// The kinds of hardware identifier the registry checks and normalizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardwareIdKind {
    /// An IEEE 802 MAC address (EUI-48): six bytes in hex.
    Mac,
    /// A Zigbee IEEE address (EUI-64): eight bytes in hex.
    ZigbeeIeee,
    /// A vendor serial number.
    Serial,
    /// A UUID, as BLE and Matter devices use.
    Uuid,
}

impl HardwareIdKind {
    /// Returns the name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HardwareIdKind::Mac => "mac",
            HardwareIdKind::ZigbeeIeee => "zigbee_ieee",
            HardwareIdKind::Serial => "serial",
            HardwareIdKind::Uuid => "uuid",
        }
    }
}

/// How a device is powered, which sets the default heartbeat timeout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PowerSource {
    /// Mains powered: expected to heartbeat every few minutes.
    #[default]
    Mains,
    /// Battery powered: may sleep for hours between heartbeats.
    Battery,
}

/// Whether a device is there, as far as the registry has evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityState {
    /// The device has sent a heartbeat within its timeout.
    Online,
    /// The device has been silent longer than its timeout, sent its last will, or was removed.
    Offline,
    /// The registry has no evidence either way, as after a restart.
    Unknown,
}

impl AvailabilityState {
    /// Returns the name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AvailabilityState::Online => "online",
            AvailabilityState::Offline => "offline",
            AvailabilityState::Unknown => "unknown",
        }
    }
}

impl FromStr for AvailabilityState {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "online" => Ok(AvailabilityState::Online),
            "offline" => Ok(AvailabilityState::Offline),
            "unknown" => Ok(AvailabilityState::Unknown),
            other => Err(format!(
                "availability state {other:?} is invalid: use online, offline or unknown"
            )),
        }
    }
}

/// The evidence behind an availability state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AvailabilityReason {
    /// A heartbeat arrived.
    Heartbeat,
    /// No heartbeat arrived within the device's timeout.
    Timeout,
    /// The broker published the device's last will: its connection dropped.
    LastWill,
    /// The device was deregistered.
    Deregistered,
    /// The registry started and has not heard from the device since.
    NotSeenSinceStart,
    /// The device was registered and has not sent a heartbeat since.
    NotSeenSinceRegistration,
}

/// A device's availability state, its reason and when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Online, offline or unknown.
    pub state: AvailabilityState,
    /// The evidence for the state.
    pub reason: AvailabilityReason,
    /// When the device entered the state.
    pub since: Timestamp,
}

/// A device record together with its availability, as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    /// The stored record.
    pub record: DeviceRecord,
    /// Current availability.
    pub availability: Availability,
    /// Time of the last heartbeat, if the registry has seen one.
    pub last_seen: Option<Timestamp>,
}

/// The retained status of one device, published on `alicia/devices/status/{device}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device.
    pub device_id: DeviceId,
    /// Online, offline or unknown.
    pub state: AvailabilityState,
    /// The evidence for the state.
    pub reason: AvailabilityReason,
    /// When the device entered the state.
    pub since: Timestamp,
    /// Time of the last heartbeat, if the registry has seen one.
    pub last_seen: Option<Timestamp>,
}

/// The record left behind by a deregistered device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The removed device.
    pub device_id: DeviceId,
    /// When it was deregistered.
    pub deregistered_at: Timestamp,
}

/// How a registration changed the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterOutcome {
    /// The device was new and is now registered.
    Created,
    /// The device was registered with other content, which replaced it.
    Updated,
    /// The device was registered with the same content; nothing changed.
    Unchanged,
}

/// The reply to a registration: its outcome and the stored record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// What the registration changed.
    pub outcome: RegisterOutcome,
    /// The record as stored after the registration.
    pub record: DeviceRecord,
}

/// Changes to a registered device. A field left `None` keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceUpdate {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New location: `Some(None)` (JSON `null`) removes it.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub location: Option<Option<String>>,
    /// New capabilities, replacing all of the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
    /// New metadata, replacing all of the old entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Reads a field that is present, even as `null`, as `Some`, so that an absent field stays `None`.
fn present_value<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Identifies a group of devices, following the same rule as device ids.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GroupId(String);

impl GroupId {
    /// The name error messages use for this kind of id.
    pub const KIND: &'static str = "group";

    /// Validates `value` and wraps it.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        validate_id(Self::KIND, &value)?;
        Ok(Self(value))
    }

    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GroupId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(value).map_err(serde::de::Error::custom)
    }
}

/// A named set of devices, such as all lamps of the living room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id.
    pub id: GroupId,
    /// Human-readable name.
    pub name: String,
    /// Member devices, in id order.
    pub members: std::collections::BTreeSet<DeviceId>,
    /// When the group was created.
    pub created_at: Timestamp,
    /// When the group last changed.
    pub updated_at: Timestamp,
}

/// A group with its derived availability.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    /// The stored group.
    pub group: Group,
    /// True when at least one member is online.
    pub available: bool,
}

/// A query over registered devices. Every filter that is set must match.
///
/// Results come in device id order, `limit` at a time. To read the next page, set `after` to
/// the [`DevicePage::next_after`] of the previous page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    /// Only devices of this type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Only devices with a capability of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
    /// Only devices in this location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Only devices in this availability state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AvailabilityState>,
    /// Only members of this group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupId>,
    /// Only devices whose id sorts after this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<DeviceId>,
    /// Maximum number of devices in the page.
    #[serde(default = "default_page_size")]
    pub limit: usize,
}

/// Page size of a [`DeviceQuery`] that sets none.
pub const DEFAULT_PAGE_SIZE: usize = 100;

fn default_page_size() -> usize {
    DEFAULT_PAGE_SIZE
}

impl Default for DeviceQuery {
    fn default() -> Self {
        Self {
            device_type: None,
            capability: None,
            location: None,
            status: None,
            group: None,
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

/// One page of query results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePage {
    /// The matching devices, in id order.
    pub devices: Vec<DeviceView>,
    /// The value for [`DeviceQuery::after`] that reads the next page, or `None` on the last page.
    pub next_after: Option<DeviceId>,
}
