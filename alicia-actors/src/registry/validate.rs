//! Validation of registration requests, updates and queries.
//!
//! Validation checks every field and reports every invalid one, each with its path
//! (`capabilities[1].properties[0].range`), the problem and the fix. Lists are checked only up to
//! their maximum length, so the work per request is bounded.

use std::collections::{BTreeMap, HashSet};

use alicia_core::IdError;
use alicia_core::manifest::RESERVED_IDS;
use alicia_core::{DeviceId, Timestamp};

use super::error::{FieldError, FieldErrors, RegistryError};
use super::model::{
    Capability, DeviceQuery, DeviceRecord, DeviceSpec, HardwareId, HardwareIdKind, Property,
    ValueType,
};

/// Maximum length of a device name, in characters.
pub const MAX_NAME_LEN: usize = 128;
/// Maximum length of a type, location, capability, property or metadata key, in characters.
pub const MAX_TOKEN_LEN: usize = 64;
/// Maximum length of a unit, in characters.
pub const MAX_UNIT_LEN: usize = 16;
/// Maximum length of a version, serial number or metadata value, in characters.
pub const MAX_TEXT_LEN: usize = 256;
/// Maximum number of capabilities of one device.
pub const MAX_CAPABILITIES: usize = 64;
/// Maximum number of properties of one capability.
pub const MAX_PROPERTIES: usize = 32;
/// Maximum number of allowed values of one `enum` property.
pub const MAX_ALLOWED_VALUES: usize = 64;
/// Maximum number of hardware identifiers of one device.
pub const MAX_IDENTIFIERS: usize = 16;
/// Maximum number of metadata entries of one device.
pub const MAX_METADATA: usize = 32;
/// Minimum heartbeat timeout a device may set, in seconds.
pub const MIN_HEARTBEAT_TIMEOUT_SECS: u64 = 10;
/// Maximum heartbeat timeout a device may set, in seconds (7 days).
pub const MAX_HEARTBEAT_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// The path of a checked field. A nested path is a closure, so that it is formatted only when an
/// error names it: a valid request formats no path at all.
trait FieldPath {
    fn path(&self) -> String;
}

impl FieldPath for &str {
    fn path(&self) -> String {
        (*self).to_owned()
    }
}

impl<F: Fn() -> String> FieldPath for F {
    fn path(&self) -> String {
        self()
    }
}

/// Collects the invalid fields of one request.
#[derive(Debug, Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn reject(&mut self, field: impl Into<String>, problem: impl Into<String>, fix: &str) {
        self.errors.push(FieldError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.to_owned(),
        });
    }

    /// Checks a lowercase token: 1 to [`MAX_TOKEN_LEN`] of `a-z`, `0-9` and `_`, starting with a
    /// letter.
    fn token(&mut self, field: impl FieldPath, value: &str) {
        const FIX: &str = "use 1 to 64 lowercase letters, digits and '_', starting with a letter";
        if value.is_empty() {
            self.reject(field.path(), "the value is empty", FIX);
        } else if value.chars().count() > MAX_TOKEN_LEN {
            self.reject(
                field.path(),
                format!("{} is longer than {MAX_TOKEN_LEN} characters", shown(value)),
                FIX,
            );
        } else if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
            self.reject(
                field.path(),
                format!("{} does not start with a letter", shown(value)),
                FIX,
            );
        } else if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
        {
            self.reject(
                field.path(),
                format!("{} contains {bad:?}, which is not allowed", shown(value)),
                FIX,
            );
        }
    }

    /// Checks free text: 1 to `max` characters, no control characters, not only whitespace.
    fn text(&mut self, field: impl FieldPath, value: &str, max: usize) {
        let fix = || format!("use 1 to {max} characters without control characters");
        if value.trim().is_empty() {
            self.reject(
                field.path(),
                "the value is empty or only whitespace",
                &fix(),
            );
        } else if value.chars().count() > max {
            self.reject(
                field.path(),
                format!("{} is longer than {max} characters", shown(value)),
                &fix(),
            );
        } else if value.chars().any(char::is_control) {
            self.reject(
                field.path(),
                format!("{} contains a control character", shown(value)),
                &fix(),
            );
        }
    }

    fn finish(self, what: impl FnOnce() -> String) -> Result<(), RegistryError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Invalid {
                what: what(),
                errors: FieldErrors(self.errors),
            })
        }
    }
}

/// Quotes a value for an error message, escaping control characters and cutting it to 64
/// characters.
fn shown(value: &str) -> String {
    let mut quoted: String = value.escape_debug().take(MAX_TOKEN_LEN).collect();
    if value.escape_debug().nth(MAX_TOKEN_LEN).is_some() {
        quoted.push_str("...");
    }
    format!("\"{quoted}\"")
}

/// Validates `spec` and builds the record it describes, with both times set to `now`.
///
/// Hardware identifiers are normalized, so `00-17-88-01-02-03` and `00:17:88:01:02:03` are the
/// same MAC address.
pub fn validate_spec(spec: &DeviceSpec, now: Timestamp) -> Result<DeviceRecord, RegistryError> {
    let mut checker = Checker::default();

    let id = check_device_id(&mut checker, &spec.id);
    checker.token("type", &spec.device_type);
    checker.text("name", &spec.name, MAX_NAME_LEN);
    if let Some(location) = &spec.location {
        checker.text("location", location, MAX_TOKEN_LEN);
    }
    check_capabilities(&mut checker, &spec.capabilities);
    let identifiers = check_identifiers(&mut checker, &spec.identifiers);
    if let Some(version) = &spec.firmware_version {
        checker.text("firmware_version", version, MAX_TEXT_LEN);
    }
    if let Some(version) = &spec.hardware_version {
        checker.text("hardware_version", version, MAX_TEXT_LEN);
    }
    if let Some(timeout) = spec.heartbeat_timeout_secs {
        check_timeout(&mut checker, timeout);
    }
    check_metadata(&mut checker, &spec.metadata);

    let what = || format!("registration of device {}", shown(&spec.id));
    checker.finish(what)?;
    // `check_device_id` records an error whenever it returns `None`, so `finish` has returned.
    let Some(id) = id else {
        return Err(RegistryError::Invalid {
            what: what(),
            errors: FieldErrors(vec![FieldError {
                field: "id".into(),
                problem: format!("{} is invalid", shown(&spec.id)),
                fix: "use 1 to 64 ASCII letters, digits, '-', '_' and '.'".into(),
            }]),
        });
    };
    Ok(DeviceRecord {
        id,
        device_type: spec.device_type.clone(),
        name: spec.name.clone(),
        location: spec.location.clone(),
        capabilities: spec.capabilities.clone(),
        identifiers,
        firmware_version: spec.firmware_version.clone(),
        hardware_version: spec.hardware_version.clone(),
        power_source: spec.power_source,
        heartbeat_timeout_secs: spec.heartbeat_timeout_secs,
        metadata: spec.metadata.clone(),
        created_at: now,
        updated_at: now,
    })
}

/// Validates the filters and page size of a query.
pub fn validate_query(query: &DeviceQuery, max_page_size: usize) -> Result<(), RegistryError> {
    let mut checker = Checker::default();
    if let Some(device_type) = &query.device_type {
        checker.token("type", device_type);
    }
    if let Some(capability) = &query.capability {
        checker.token("capability", capability);
    }
    if let Some(location) = &query.location {
        checker.text("location", location, MAX_TOKEN_LEN);
    }
    if query.limit == 0 || query.limit > max_page_size {
        checker.reject(
            "limit",
            format!("{} is out of range", query.limit),
            &format!("use a page size from 1 to {max_page_size}"),
        );
    }
    checker.finish(|| "device query".to_owned())
}

/// Validates a group name.
pub fn validate_group_name(name: &str) -> Result<(), RegistryError> {
    let mut checker = Checker::default();
    checker.text("name", name, MAX_NAME_LEN);
    checker.finish(|| "group name".to_owned())
}

fn check_device_id(checker: &mut Checker, value: &str) -> Option<DeviceId> {
    match DeviceId::new(value) {
        Ok(id) => {
            let reserved = RESERVED_IDS
                .iter()
                .find(|reserved| reserved.parameter == "device" && reserved.value == value);
            match reserved {
                Some(reserved) => {
                    checker.reject(
                        "id",
                        format!("{} is reserved: {}", shown(value), reserved.reason),
                        "pick another device id",
                    );
                    None
                }
                None => Some(id),
            }
        }
        Err(error) => {
            // The fix below states the id rule, so the problem names only what is wrong.
            let problem = match error {
                IdError::Empty { .. } => "the id is empty".to_owned(),
                IdError::TooLong { len, .. } => format!("{} is {len} bytes long", shown(value)),
                IdError::InvalidCharacter {
                    character,
                    position,
                    ..
                } => format!(
                    "{} contains {character:?} at position {position}, which is not allowed",
                    shown(value)
                ),
            };
            checker.reject(
                "id",
                problem,
                "use 1 to 64 ASCII letters, digits, '-', '_' and '.'",
            );
            None
        }
    }
}

fn check_capabilities(checker: &mut Checker, capabilities: &[Capability]) {
    if capabilities.len() > MAX_CAPABILITIES {
        checker.reject(
            "capabilities",
            format!("{} capabilities are too many", capabilities.len()),
            &format!("list at most {MAX_CAPABILITIES}"),
        );
        return;
    }

    let mut names = HashSet::new();
    for (index, capability) in capabilities.iter().enumerate() {
        let path = || format!("capabilities[{index}]");
        checker.token(|| format!("{}.name", path()), &capability.name);
        if !names.insert(capability.name.as_str()) {
            checker.reject(
                format!("{}.name", path()),
                format!("{} appears twice", shown(&capability.name)),
                "list each capability once",
            );
        }
        check_properties(checker, &path, &capability.properties);
    }
}

fn check_properties(
    checker: &mut Checker,
    capability_path: &dyn Fn() -> String,
    properties: &[Property],
) {
    if properties.len() > MAX_PROPERTIES {
        checker.reject(
            format!("{}.properties", capability_path()),
            format!("{} properties are too many", properties.len()),
            &format!("list at most {MAX_PROPERTIES}"),
        );
        return;
    }

    let mut names = HashSet::new();
    for (index, property) in properties.iter().enumerate() {
        let path = || format!("{}.properties[{index}]", capability_path());
        checker.token(|| format!("{}.name", path()), &property.name);
        if !names.insert(property.name.as_str()) {
            checker.reject(
                format!("{}.name", path()),
                format!("{} appears twice", shown(&property.name)),
                "list each property of a capability once",
            );
        }
        check_property(checker, &path, property);
    }
}

fn check_property(checker: &mut Checker, path: &dyn Fn() -> String, property: &Property) {
    if let Some(unit) = &property.unit {
        checker.text(|| format!("{}.unit", path()), unit, MAX_UNIT_LEN);
    }

    if !property.readable && !property.writable {
        checker.reject(
            format!("{}.readable", path()),
            "the property is neither readable nor writable",
            "set readable, writable or both to true",
        );
    }

    if let Some(range) = &property.range {
        let field = || format!("{}.range", path());
        if !property.value_type.is_numeric() {
            checker.reject(
                field(),
                format!(
                    "a range is set on a property of type {}",
                    property.value_type.as_str()
                ),
                "remove the range, or make the type integer or number",
            );
        } else if !range.min.is_finite() || !range.max.is_finite() {
            checker.reject(
                field(),
                "min or max is not a finite number",
                "use finite numbers",
            );
        } else if range.min >= range.max {
            checker.reject(
                field(),
                format!("min {} is not below max {}", range.min, range.max),
                "set min below max",
            );
        } else if let Some(step) = range.step
            && (!step.is_finite() || step <= 0.0 || step > range.max - range.min)
        {
            {
                checker.reject(
                    format!("{}.step", field()),
                    format!("step {step} is not in (0, max - min]"),
                    "use a positive step no larger than max - min",
                );
            }
        }
        // Only finite bounds reach this check: the fraction of an infinity is NaN.
        if property.value_type == ValueType::Integer
            && range.min.is_finite()
            && range.max.is_finite()
            && (range.min.fract() != 0.0 || range.max.fract() != 0.0)
        {
            checker.reject(
                field(),
                format!(
                    "min {} or max {} of an integer property is not whole",
                    range.min, range.max
                ),
                "use whole numbers, or make the type number",
            );
        }
    }

    check_allowed_values(checker, path, property);
}

fn check_allowed_values(checker: &mut Checker, path: &dyn Fn() -> String, property: &Property) {
    let field = || format!("{}.allowed_values", path());
    match (property.value_type, property.allowed_values.len()) {
        (ValueType::Enum, 0) => {
            checker.reject(
                field(),
                "an enum property has no allowed values",
                "list the values the property may take",
            );
            return;
        }
        (ValueType::Enum, count) if count > MAX_ALLOWED_VALUES => {
            checker.reject(
                field(),
                format!("{count} allowed values are too many"),
                &format!("list at most {MAX_ALLOWED_VALUES}"),
            );
            return;
        }
        (ValueType::Enum, _) => {}
        (other, count) if count > 0 => {
            checker.reject(
                field(),
                format!(
                    "allowed values are set on a property of type {}",
                    other.as_str()
                ),
                "remove them, or make the type enum",
            );
            return;
        }
        _ => return,
    }

    let mut seen = HashSet::new();
    for (index, value) in property.allowed_values.iter().enumerate() {
        let value_field = || format!("{}[{index}]", field());
        checker.text(value_field, value, MAX_TOKEN_LEN);
        if !seen.insert(value.as_str()) {
            checker.reject(
                value_field(),
                format!("{} appears twice", shown(value)),
                "list each allowed value once",
            );
        }
    }
}

fn check_identifiers(checker: &mut Checker, identifiers: &[HardwareId]) -> Vec<HardwareId> {
    if identifiers.len() > MAX_IDENTIFIERS {
        checker.reject(
            "identifiers",
            format!("{} identifiers are too many", identifiers.len()),
            &format!("list at most {MAX_IDENTIFIERS}"),
        );
        return Vec::new();
    }

    let mut normalized = Vec::with_capacity(identifiers.len());
    let mut seen = HashSet::new();
    for (index, identifier) in identifiers.iter().enumerate() {
        let field = || format!("identifiers[{index}].value");
        match normalize_identifier(identifier.kind, &identifier.value) {
            Ok(value) => {
                let identifier = HardwareId::new(identifier.kind, value);
                if !seen.insert(identifier.clone()) {
                    checker.reject(
                        field(),
                        format!("{identifier} appears twice"),
                        "list each identifier once",
                    );
                } else {
                    normalized.push(identifier);
                }
            }
            Err((problem, fix)) => checker.reject(field(), problem, fix),
        }
    }
    normalized
}

/// Checks an identifier value against its kind and returns its canonical form.
fn normalize_identifier(
    kind: HardwareIdKind,
    value: &str,
) -> Result<String, (String, &'static str)> {
    match kind {
        HardwareIdKind::Mac => hex_groups(value, 6).ok_or_else(|| {
            (
                format!("{} is not a MAC address", shown(value)),
                "use six hex bytes, such as 00:17:88:01:02:03",
            )
        }),
        HardwareIdKind::ZigbeeIeee => {
            let digits = value
                .strip_prefix("0x")
                .or_else(|| value.strip_prefix("0X"))
                .unwrap_or(value);
            hex_groups(digits, 8)
                .map(|canonical| format!("0x{}", canonical.replace(':', "")))
                .ok_or_else(|| {
                    (
                        format!("{} is not a Zigbee IEEE address", shown(value)),
                        "use eight hex bytes, such as 0x00158d0001a2b3c4",
                    )
                })
        }
        HardwareIdKind::Uuid => normalize_uuid(value).ok_or_else(|| {
            (
                format!("{} is not a UUID", shown(value)),
                "use 32 hex digits as 8-4-4-4-12, such as 123e4567-e89b-12d3-a456-426614174000",
            )
        }),
        HardwareIdKind::Serial => {
            let valid = !value.is_empty()
                && value.len() <= MAX_TOKEN_LEN
                && value.chars().all(|c| c.is_ascii_graphic());
            if valid {
                Ok(value.to_owned())
            } else {
                Err((
                    format!("{} is not a serial number", shown(value)),
                    "use 1 to 64 printable ASCII characters without spaces",
                ))
            }
        }
    }
}

/// Reads `bytes` hex bytes, written without separators or separated by ':' or '-' throughout,
/// and returns them as lowercase pairs joined by ':'.
fn hex_groups(value: &str, bytes: usize) -> Option<String> {
    let digits: String = if value.contains(':') || value.contains('-') {
        let separator = if value.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = value.split(separator).collect();
        if parts.len() != bytes || parts.iter().any(|part| part.len() != 2) {
            return None;
        }
        parts.concat()
    } else {
        value.to_owned()
    };

    if digits.len() != bytes * 2 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let lower = digits.to_ascii_lowercase();
    let pairs: Vec<&str> = (0..bytes)
        .filter_map(|i| lower.get(2 * i..2 * i + 2))
        .collect();
    Some(pairs.join(":"))
}

fn normalize_uuid(value: &str) -> Option<String> {
    let groups: Vec<&str> = value.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|group| group.len()).collect();
    let hex = groups
        .iter()
        .all(|group| group.chars().all(|c| c.is_ascii_hexdigit()));
    (lengths == [8, 4, 4, 4, 12] && hex).then(|| value.to_ascii_lowercase())
}

fn check_timeout(checker: &mut Checker, timeout: u64) {
    if !(MIN_HEARTBEAT_TIMEOUT_SECS..=MAX_HEARTBEAT_TIMEOUT_SECS).contains(&timeout) {
        checker.reject(
            "heartbeat_timeout_secs",
            format!("{timeout} seconds is out of range"),
            "use 10 to 604800 seconds (7 days), or leave it out for the power source's default",
        );
    }
}

fn check_metadata(checker: &mut Checker, metadata: &BTreeMap<String, String>) {
    if metadata.len() > MAX_METADATA {
        checker.reject(
            "metadata",
            format!("{} entries are too many", metadata.len()),
            &format!("keep at most {MAX_METADATA}"),
        );
        return;
    }
    for (key, value) in metadata {
        checker.token(|| format!("metadata[{}]", shown(key)), key);
        let length = value.chars().count();
        if length > MAX_TEXT_LEN {
            checker.reject(
                format!("metadata[{}]", shown(key)),
                format!("the value {} has {length} characters", shown(value)),
                "use at most 256 characters",
            );
        } else if value.chars().any(char::is_control) {
            checker.reject(
                format!("metadata[{}]", shown(key)),
                format!("the value {} contains a control character", shown(value)),
                "remove control characters such as newlines and tabs",
            );
        }
    }
}
