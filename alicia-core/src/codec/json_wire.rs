//! The JSON form of an envelope.
//!
//! Decoding runs in two passes so that each error names its field. The first pass checks the
//! syntax of the whole payload and splits the top-level object into keys and raw (unparsed) JSON
//! values. The second pass reads the version, checks the keys, then parses each value with its
//! own type. The body is parsed last, straight from its raw text, with the same serde_json
//! behaviour as `serde_json::from_str::<T>` on the body alone.

use std::fmt;

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::{Codec, DecodeError, EncodeError, field};
use crate::clock::Timestamp;
use crate::envelope::{
    AuthToken, DecodedHeader, Envelope, FORMAT_VERSION, MessageId, SourceId, shorten_for_message,
};
use crate::topic::TopicName;

/// The envelope as the JSON encoder writes it; the Rust field names are the JSON keys.
#[derive(Serialize)]
struct JsonEnvelopeRef<'a, T> {
    v: u16,
    id: MessageId,
    timestamp_ms: Timestamp,
    source: &'a SourceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a TopicName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_token: Option<&'a AuthToken>,
    body: &'a T,
}

/// Encodes `envelope` as one JSON object.
pub(super) fn encode<T: Serialize>(envelope: &Envelope<T>) -> Result<Vec<u8>, EncodeError> {
    let wire = JsonEnvelopeRef {
        v: FORMAT_VERSION,
        id: envelope.message_id(),
        timestamp_ms: envelope.timestamp(),
        source: envelope.source(),
        correlation_id: envelope.correlation_id(),
        reply_to: envelope.reply_to(),
        auth_token: envelope.auth_token(),
        body: envelope.body(),
    };

    serde_json::to_vec(&wire).map_err(|error| EncodeError::Body {
        codec: Codec::Json,
        reason: error.to_string(),
    })
}

/// Decodes a JSON envelope; the caller has checked the size.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        DecodeError::malformed(
            Codec::Json,
            format!(
                "the payload is not UTF-8: the byte at offset {} starts no valid character",
                error.valid_up_to()
            ),
        )
    })?;

    let fields: RawFields<'_> = serde_json::from_str(text)
        .map_err(|error| DecodeError::malformed(Codec::Json, error.to_string()))?;

    check_version(&fields)?;
    check_keys(&fields)?;

    let header = DecodedHeader {
        message_id: required(&fields, field::ID)?,
        timestamp: required(&fields, field::TIMESTAMP)?,
        source: required::<SourceId>(&fields, field::SOURCE)?,
        correlation_id: optional(&fields, field::CORRELATION_ID)?,
        reply_to: optional::<TopicName>(&fields, field::REPLY_TO)?,
        auth_token: auth_token(&fields)?,
    };
    let body = body::<T>(&fields)?;

    Ok(Envelope::from_decoded_parts(header, body))
}

/// The keys of the top-level JSON object in document order, each with its raw value.
///
/// Repeated keys stay separate entries, so that [`check_keys`] can reject them. A derived struct
/// would reject unknown keys while parsing, before the version could be read.
struct RawFields<'a>(Vec<(String, &'a RawValue)>);

impl<'a> RawFields<'a> {
    /// The raw values stored under `name`, in document order.
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a RawValue> + 's {
        self.0
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| *value)
    }

    /// The first raw value of `name`, if present. Decoding calls this only after [`check_keys`]
    /// has rejected repeated keys.
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.values(name).next()
    }
}

impl<'de> Deserialize<'de> for RawFields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RawFieldsVisitor)
    }
}

struct RawFieldsVisitor;

impl<'de> Visitor<'de> for RawFieldsVisitor {
    type Value = RawFields<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object (an Alicia envelope)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            // A raw value is only checked for syntax, without recursion, so a deeply nested value
            // costs no stack here. Its own parse later is bounded by serde_json's nesting limit.
            let value = map.next_value::<&'de RawValue>()?;
            fields.push((key, value));
        }
        Ok(RawFields(fields))
    }
}

/// Reads the format version and rejects any version but [`FORMAT_VERSION`], before any other
/// field is looked at.
fn check_version(fields: &RawFields<'_>) -> Result<(), DecodeError> {
    let mut values = fields.values(field::VERSION);

    let raw = values.next().ok_or_else(|| {
        DecodeError::invalid_field(
            field::VERSION,
            format!(
                "missing: every envelope names its format version, as in \"v\": {FORMAT_VERSION}"
            ),
        )
    })?;

    if values.next().is_some() {
        return Err(DecodeError::invalid_field(
            field::VERSION,
            "appears more than once: send the format version once",
        ));
    }

    let version: u16 = serde_json::from_str(raw.get()).map_err(|_| {
        DecodeError::invalid_field(
            field::VERSION,
            format!(
                "{} is not a format version: expected an integer from 0 to 65535, such as {FORMAT_VERSION}",
                shorten_for_message(raw.get())
            ),
        )
    })?;

    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }

    Ok(())
}

/// Rejects the first key, in document order, that the format does not have or that repeats.
fn check_keys(fields: &RawFields<'_>) -> Result<(), DecodeError> {
    let mut seen = [false; field::ALL.len()];

    for (key, _) in &fields.0 {
        let Some(index) = field::ALL.iter().position(|name| name == key) else {
            return Err(DecodeError::invalid_field(
                shorten_for_message(key),
                format!(
                    "unknown field: version {FORMAT_VERSION} envelopes have only the fields {} (check the spelling)",
                    field::ALL.join(", ")
                ),
            ));
        };

        if seen[index] {
            return Err(DecodeError::invalid_field(
                field::ALL[index],
                "appears more than once: send each field once",
            ));
        }
        seen[index] = true;
    }

    Ok(())
}

/// Parses the field `name`, which must be present.
fn required<F: DeserializeOwned>(fields: &RawFields<'_>, name: &str) -> Result<F, DecodeError> {
    let raw = fields.get(name).ok_or_else(|| missing(name))?;
    parse_header_value(name, raw)
}

/// Parses the field `name`; an absent field and `null` both read as `None`.
fn optional<F: DeserializeOwned>(
    fields: &RawFields<'_>,
    name: &str,
) -> Result<Option<F>, DecodeError> {
    match fields.get(name) {
        Some(raw) => parse_header_value::<Option<F>>(name, raw),
        None => Ok(None),
    }
}

/// Parses the optional auth token without ever putting its value in an error.
///
/// serde_json's type errors quote the value they reject, so the type check here is done with a
/// fixed message instead, and [`AuthToken::new`] errors never contain the token.
fn auth_token(fields: &RawFields<'_>) -> Result<Option<AuthToken>, DecodeError> {
    let Some(raw) = fields.get(field::AUTH_TOKEN) else {
        return Ok(None);
    };

    let secret: Option<String> = serde_json::from_str(raw.get()).map_err(|_| {
        DecodeError::invalid_field(
            field::AUTH_TOKEN,
            "not a string: send the token as a JSON string, or leave the field out",
        )
    })?;

    secret
        .map(AuthToken::new)
        .transpose()
        .map_err(|error| DecodeError::invalid_field(field::AUTH_TOKEN, error.to_string()))
}

/// Parses the body with `T`'s own `Deserialize`.
fn body<T: DeserializeOwned>(fields: &RawFields<'_>) -> Result<T, DecodeError> {
    let raw = fields
        .get(field::BODY)
        .ok_or_else(|| missing(field::BODY))?;

    serde_json::from_str(raw.get()).map_err(|error| {
        let reason = match error.line() {
            0 => error.to_string(),
            line => format!(
                "{} at line {line} column {} of the body",
                message_without_position(&error),
                error.column()
            ),
        };
        DecodeError::invalid_field(field::BODY, reason)
    })
}

/// Parses one header value, which the first pass has found to be valid JSON.
fn parse_header_value<F: DeserializeOwned>(name: &str, raw: &RawValue) -> Result<F, DecodeError> {
    serde_json::from_str(raw.get())
        .map_err(|error| DecodeError::invalid_field(name, message_without_position(&error)))
}

fn missing(name: &str) -> DecodeError {
    DecodeError::invalid_field(
        name,
        format!("missing: version {FORMAT_VERSION} envelopes require it"),
    )
}

/// Formats `error` without serde_json's " at line L column C" suffix, because that position is
/// relative to the value that was parsed, not to the payload.
fn message_without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if error.line() == 0 {
        return text;
    }

    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match text.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => text,
    }
}
