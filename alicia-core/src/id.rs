//! Validated identifiers for devices, services, nodes and service instances.
//!
//! Every id ends up as one level of an MQTT topic (`alicia/devices/status/{device}`), so the rule
//! is chosen to be safe there and in file names and logs alike:
//!
//! - 1 to [`MAX_ID_LEN`] characters;
//! - only ASCII letters, digits, `-`, `_` and `.`.
//!
//! That excludes the topic separator `/`, the wildcards `+` and `#`, the `$` prefix of broker
//! topics, NUL, whitespace and every control character. Deserializing an id runs the same check,
//! so a JSON payload with a bad id fails at decode and never reaches an actor.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Maximum length of an id, in bytes (all allowed characters are one byte long).
pub const MAX_ID_LEN: usize = 64;

/// The id rule, in words, as error messages quote it.
pub const ID_RULE: &str = "ids are 1 to 64 characters from ASCII letters, digits, '-', '_' and '.'";

/// The reason a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("{kind} id is empty: {ID_RULE}")]
    Empty {
        /// The kind of id being parsed ("device", "service", ...).
        kind: &'static str,
    },

    /// The string is longer than [`MAX_ID_LEN`] bytes.
    #[error(
        "{kind} id \"{value}\" is invalid: it is {len} bytes long, over the maximum of {MAX_ID_LEN} ({ID_RULE})"
    )]
    TooLong {
        /// Which id was being parsed.
        kind: &'static str,
        /// The rejected value, cut to the first [`MAX_ID_LEN`] characters.
        value: String,
        /// Its length in bytes.
        len: usize,
    },

    /// The string contains a character outside the allowed set.
    #[error(
        "{kind} id \"{value}\" is invalid: {character:?} at position {position} is not allowed ({ID_RULE})"
    )]
    InvalidCharacter {
        /// Which id was being parsed.
        kind: &'static str,
        /// The rejected value, with control characters escaped.
        value: String,
        /// The first offending character.
        character: char,
        /// Its position, counted in characters from 1.
        position: usize,
    },
}

/// Checks `value` against the id rule; `kind` names the id in the error.
pub fn validate_id(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }

    if let Some((index, character)) = value.chars().enumerate().find(|(_, c)| !is_id_char(*c)) {
        return Err(IdError::InvalidCharacter {
            kind,
            value: value.escape_debug().take(2 * MAX_ID_LEN).collect(),
            character,
            position: index + 1,
        });
    }

    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            value: value.chars().take(MAX_ID_LEN).collect(),
            len: value.len(),
        });
    }

    Ok(())
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// What error messages call this kind of id.
            pub const KIND: &'static str = $kind;

            /// Validates `value` and wraps it.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate_id(Self::KIND, &value)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Unwraps the id into its string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// Identifies one device in the house (a lamp, a sensor, a thermostat).
    DeviceId,
    "device"
);
define_id!(
    /// Identifies a kind of service ("registry", "health"); several instances may run it.
    ServiceId,
    "service"
);
define_id!(
    /// Identifies one Alicia node; it is also the node's MQTT client namespace.
    NodeId,
    "node"
);
define_id!(
    /// Identifies one running instance of a service, unique among that service's instances.
    InstanceId,
    "instance"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_accepts_valid_values() {
        let long = "a".repeat(MAX_ID_LEN);
        let cases = [
            "lamp",
            "kitchen-lamp_2",
            "0x00158d0001a2b3c4",
            "a.b.c",
            "A",
            "9",
            "-",
            long.as_str(),
        ];
        for case in cases {
            assert!(DeviceId::new(case).is_ok(), "{case:?} should be valid");
        }
    }

    #[test]
    fn id_rejects_invalid_values() {
        let too_long = "a".repeat(MAX_ID_LEN + 1);
        let cases = [
            ("", "empty"),
            ("kitchen/lamp", "slash"),
            ("lamp+", "plus"),
            ("#", "hash"),
            ("$SYS", "dollar"),
            ("a\0b", "nul"),
            ("a\nb", "newline"),
            ("a b", "space"),
            ("lámpara", "non-ascii"),
            ("a\u{7f}", "delete"),
            (too_long.as_str(), "too long"),
        ];
        for (case, why) in cases {
            assert!(
                DeviceId::new(case).is_err(),
                "{case:?} ({why}) should be invalid"
            );
        }
    }

    #[test]
    fn id_error_names_value_character_and_position() {
        let error = DeviceId::new("kitchen/lamp").unwrap_err();
        assert_eq!(
            error,
            IdError::InvalidCharacter {
                kind: "device",
                value: "kitchen/lamp".into(),
                character: '/',
                position: 8,
            }
        );
        let message = error.to_string();
        assert!(message.contains("\"kitchen/lamp\""), "{message}");
        assert!(message.contains("'/' at position 8"), "{message}");
        assert!(message.contains(ID_RULE), "{message}");
    }

    #[test]
    fn id_error_escapes_control_characters() {
        let message = NodeId::new("a\u{1b}[31m").unwrap_err().to_string();
        assert!(message.contains("\\u{1b}"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
    }

    #[test]
    fn id_too_long_reports_length() {
        let error = ServiceId::new("s".repeat(100)).unwrap_err();
        assert!(
            matches!(error, IdError::TooLong { len: 100, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn id_deserialize_validates() {
        let ok: DeviceId = serde_json::from_str("\"lamp-1\"").unwrap();
        assert_eq!(ok.as_str(), "lamp-1");

        let error = serde_json::from_str::<DeviceId>("\"lamp/1\"").unwrap_err();
        assert!(error.to_string().contains("'/' at position 5"), "{error}");
    }

    #[test]
    fn id_serializes_as_plain_string() {
        let id = InstanceId::new("registry-1").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"registry-1\"");
    }
}
