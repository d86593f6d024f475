//! Encoding envelopes as bytes and decoding them back, in JSON or postcard.
//!
//! JSON is the wire default, so that any MQTT tool can read the bus. Postcard is compact and meant
//! for Rust-to-Rust traffic. A receiver learns the codec from the content type
//! ([`Codec::content_type`], [`Codec::from_content_type`]), for example from the MQTT 5 content
//! type property.
//!
//! Decoding treats its input as hostile. It checks the size against [`DecodeLimits`] before it
//! parses anything, reads the format version before any other field, validates every header field
//! (ids, topic, token), and returns a [`DecodeError`] that names the failing field instead of
//! panicking.
//!
//! # JSON layout
//!
//! One object with the keys `v` (format version), `id` (message id, 32 lowercase hex digits),
//! `timestamp_ms` (milliseconds since the Unix epoch), `source`, the optional `correlation_id`,
//! `reply_to` and `auth_token`, and `body`. The encoder omits optional fields that are `None`,
//! and the decoder reads an absent field and `null` alike. Unknown and repeated keys are rejected,
//! so a misspelled `reply_to` fails loudly instead of leaving a request unanswered.
//!
//! ```json
//! {"v":1,"id":"000000000000000000000000000000ff","timestamp_ms":1700000000000,
//!  "source":"cli","reply_to":"alicia/reply/cli/1","body":{"device":"lamp-1"}}
//! ```
//!
//! # Postcard layout
//!
//! The fields follow one another in postcard's encoding, in this order:
//!
//! 1. version (varint);
//! 2. message id (16 bytes, big-endian);
//! 3. timestamp (varint);
//! 4. source (string);
//! 5. correlation id, reply topic and auth token, each an option (tag byte 0 for none, or tag
//!    byte 1 followed by the value);
//! 6. body.
//!
//! Postcard carries no field names, so any change to this layout needs a new format version.
//!
//! # Example
//!
//! ```
//! use alicia_core::clock::{ManualClock, Timestamp};
//! use alicia_core::codec::{Codec, DecodeLimits};
//! use alicia_core::envelope::{Envelope, SourceId};
//!
//! let clock = ManualClock::new(Timestamp(1_700_000_000_000));
//! let source = SourceId::new("cli")?;
//! let request = Envelope::new(source, vec![1u8, 2, 3], &clock);
//!
//! let bytes = Codec::Json.encode(&request)?;
//! let decoded = Codec::Json.decode::<Vec<u8>>(&bytes, &DecodeLimits::default())?;
//!
//! assert_eq!(decoded, request);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::envelope::{Envelope, shorten_for_message};

mod json_wire;
mod postcard_wire;
#[cfg(test)]
mod tests;

/// The header field names, as JSON keys and as [`DecodeError::InvalidField`] names them.
pub(crate) mod field {
    /// Format version.
    pub(crate) const VERSION: &str = "v";
    /// Message id.
    pub(crate) const ID: &str = "id";
    /// Timestamp in milliseconds since the Unix epoch.
    pub(crate) const TIMESTAMP: &str = "timestamp_ms";
    /// Source id.
    pub(crate) const SOURCE: &str = "source";
    /// Correlation id.
    pub(crate) const CORRELATION_ID: &str = "correlation_id";
    /// Reply topic.
    pub(crate) const REPLY_TO: &str = "reply_to";
    /// Auth token.
    pub(crate) const AUTH_TOKEN: &str = "auth_token";
    /// Message body.
    pub(crate) const BODY: &str = "body";

    /// Every field of the current format version, in the order the encoders write them.
    pub(crate) const ALL: [&str; 8] = [
        VERSION,
        ID,
        TIMESTAMP,
        SOURCE,
        CORRELATION_ID,
        REPLY_TO,
        AUTH_TOKEN,
        BODY,
    ];
}

/// A wire format for envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// JSON, readable by any MQTT tool; the wire default.
    #[default]
    Json,

    /// Postcard, a compact binary format for Rust-to-Rust traffic and values at rest.
    ///
    /// NOTE: postcard has no nesting limit, unlike serde_json. A recursive body type (a tree whose
    /// nodes contain nodes) decoded from untrusted postcard input can overflow the stack, so such
    /// types should travel as JSON.
    Postcard,
}

/// Content type of JSON envelopes.
const JSON_CONTENT_TYPE: &str = "application/json";

/// Content type of postcard envelopes. Postcard has no registered media type, so this uses the
/// `x-` prefix for unregistered types.
const POSTCARD_CONTENT_TYPE: &str = "application/x-postcard";

impl Codec {
    /// Every codec, JSON first.
    pub const ALL: [Codec; 2] = [Codec::Json, Codec::Postcard];

    /// The media type that labels payloads of this codec, such as the MQTT 5 content type.
    pub const fn content_type(self) -> &'static str {
        match self {
            Codec::Json => JSON_CONTENT_TYPE,
            Codec::Postcard => POSTCARD_CONTENT_TYPE,
        }
    }

    /// Finds the codec for a media type.
    ///
    /// The comparison ignores ASCII case, surrounding spaces and parameters, so
    /// `application/json; charset=utf-8` selects JSON.
    pub fn from_content_type(content_type: &str) -> Result<Self, ContentTypeError> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();

        Self::ALL
            .into_iter()
            .find(|codec| codec.content_type().eq_ignore_ascii_case(media_type))
            .ok_or_else(|| ContentTypeError {
                content_type: shorten_for_message(content_type),
            })
    }

    /// Encodes `envelope`, writing [`FORMAT_VERSION`](crate::envelope::FORMAT_VERSION) as its
    /// version.
    ///
    /// Only the body can fail to encode: for example a map with non-string keys in JSON, or a
    /// sequence of unknown length in postcard.
    pub fn encode<T: Serialize>(self, envelope: &Envelope<T>) -> Result<Vec<u8>, EncodeError> {
        match self {
            Codec::Json => json_wire::encode(envelope),
            Codec::Postcard => postcard_wire::encode(envelope),
        }
    }

    /// Decodes an envelope from untrusted bytes.
    ///
    /// The size is checked against `limits` first, then the format version, then each field in
    /// layout order, and the first failure is returned. JSON checks the syntax of the whole
    /// payload before the version, while postcard checks each field's syntax as it reads it.
    ///
    /// No input makes the decoder panic, though the body type's own `Deserialize` still can.
    /// JSON nested deeper than serde_json's limit of 128 levels is rejected. See
    /// [`Codec::Postcard`] for the nesting gap in postcard.
    pub fn decode<T: DeserializeOwned>(
        self,
        bytes: &[u8],
        limits: &DecodeLimits,
    ) -> Result<Envelope<T>, DecodeError> {
        if bytes.len() > limits.max_size {
            return Err(DecodeError::TooLarge {
                size: bytes.len(),
                max: limits.max_size,
            });
        }

        match self {
            Codec::Json => json_wire::decode(bytes),
            Codec::Postcard => postcard_wire::decode(bytes),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Json => "JSON",
            Codec::Postcard => "postcard",
        })
    }
}

/// Limits that [`Codec::decode`] enforces on untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// Maximum payload size in bytes, checked before parsing.
    ///
    /// It bounds how much input one message makes the receiver parse and allocate memory for.
    pub max_size: usize,
}

impl DecodeLimits {
    /// Default [`max_size`](Self::max_size): 256 KiB.
    ///
    /// Commands, events and configuration documents are far smaller; a larger payload on this bus
    /// is more likely a mistake or an attack than a message.
    pub const DEFAULT_MAX_SIZE: usize = 256 * 1024;

    /// These limits with `max_size` as the maximum payload size in bytes.
    pub const fn with_max_size(mut self, max_size: usize) -> Self {
        self.max_size = max_size;
        self
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_size: Self::DEFAULT_MAX_SIZE,
        }
    }
}

/// Error from decoding bytes as an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is larger than [`DecodeLimits::max_size`]; it was not parsed.
    #[error(
        "payload is {size} bytes, over the maximum envelope size of {max} bytes: send a smaller body, or raise DecodeLimits::max_size on the receiver"
    )]
    TooLarge {
        /// The payload's size in bytes.
        size: usize,
        /// The limit in bytes.
        max: usize,
    },

    /// The payload is not valid in the codec's syntax: bad JSON, a truncated postcard field,
    /// bytes after the end, or a JSON value that is not an object.
    #[error(
        "payload is not a valid {codec} envelope: {reason} (check that the sender encodes with content type {content_type})",
        content_type = .codec.content_type()
    )]
    Malformed {
        /// The codec that was decoding.
        codec: Codec,
        /// Description of the problem and where it is.
        reason: String,
    },

    /// The envelope has a format version that this build does not read.
    #[error(
        "envelope format version {found} is not supported: this build reads only version {supported} (run the sender and the receiver on Alicia releases with the same envelope format)"
    )]
    UnsupportedVersion {
        /// The version in the payload.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },

    /// A field is missing, repeated, unknown, of the wrong type, or fails validation.
    #[error("envelope field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field's name as a JSON key (`source`, `reply_to`, `body`, ...); for an unknown
        /// JSON key, that key, escaped and cut to 64 characters.
        field: String,
        /// Description of the problem with the value and of a valid one. It never contains the
        /// value of the `auth_token` field.
        reason: String,
    },
}

/// Maximum length in bytes of the `reason` of a [`DecodeError`], so that echoing a large
/// untrusted value cannot make one log line huge.
const MAX_REASON_LEN: usize = 512;

impl DecodeError {
    /// Creates a [`DecodeError::Malformed`] with `reason` cut to [`MAX_REASON_LEN`].
    pub(crate) fn malformed(codec: Codec, reason: impl Into<String>) -> Self {
        DecodeError::Malformed {
            codec,
            reason: cut_reason(reason.into()),
        }
    }

    /// Creates a [`DecodeError::InvalidField`] with `reason` cut to [`MAX_REASON_LEN`].
    pub(crate) fn invalid_field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        DecodeError::InvalidField {
            field: field.into(),
            reason: cut_reason(reason.into()),
        }
    }
}

/// Cuts `reason` to at most [`MAX_REASON_LEN`] bytes at a character boundary, marking the cut.
fn cut_reason(mut reason: String) -> String {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }

    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason.push_str("...");
    reason
}

/// Error from encoding an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The body's `Serialize` implementation produced something the codec cannot represent.
    #[error(
        "envelope body cannot be encoded as {codec}: {reason} (change the body type, or use the other codec)"
    )]
    Body {
        /// The codec that was encoding.
        codec: Codec,
        /// Description of what the codec rejected.
        reason: String,
    },
}

/// A content type that names no [`Codec`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "content type \"{content_type}\" is not supported: use \"application/json\" or \"application/x-postcard\""
)]
pub struct ContentTypeError {
    /// The rejected content type, escaped and cut to 64 characters.
    pub content_type: String,
}
