//! The postcard form of an envelope.
//!
//! Postcard writes struct fields one after another with no names or lengths, so the encoder
//! writes one struct and the decoder reads the same fields one at a time. Reading field by field
//! lets an error name its field, and puts the version check before anything else is read.
//! String fields are read as plain strings and validated here, because postcard (1.2) replaces
//! the message of a custom serde error with a fixed text.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Codec, DecodeError, EncodeError, field};
use crate::clock::Timestamp;
use crate::envelope::{AuthToken, DecodedHeader, Envelope, FORMAT_VERSION, MessageId, SourceId};
use crate::topic::TopicName;

/// The envelope as the postcard encoder writes it. The field order is the wire layout, and
/// [`decode`] reads the fields in the same order.
#[derive(Serialize)]
struct PostcardEnvelopeRef<'a, T> {
    version: u16,
    message_id: MessageId,
    timestamp: Timestamp,
    source: &'a SourceId,
    correlation_id: Option<MessageId>,
    reply_to: Option<&'a TopicName>,
    auth_token: Option<&'a AuthToken>,
    body: &'a T,
}

/// Encodes `envelope` in the postcard layout described in the [module docs](super).
pub(super) fn encode<T: Serialize>(envelope: &Envelope<T>) -> Result<Vec<u8>, EncodeError> {
    let wire = PostcardEnvelopeRef {
        version: FORMAT_VERSION,
        message_id: envelope.message_id(),
        timestamp: envelope.timestamp(),
        source: envelope.source(),
        correlation_id: envelope.correlation_id(),
        reply_to: envelope.reply_to(),
        auth_token: envelope.auth_token(),
        body: envelope.body(),
    };

    postcard::to_stdvec(&wire).map_err(|error| EncodeError::Body {
        codec: Codec::Postcard,
        reason: describe_encode_error(&error),
    })
}

/// Decodes a postcard envelope; the caller has checked the size.
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Envelope<T>, DecodeError> {
    let mut reader = FieldReader { rest: bytes };

    let version: u16 = reader.read(field::VERSION)?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }

    let header = read_header(&mut reader)?;
    let body = reader.read_body::<T>()?;

    if !reader.rest.is_empty() {
        return Err(DecodeError::malformed(
            Codec::Postcard,
            format!(
                "{} bytes follow the body: send exactly one envelope per payload",
                reader.rest.len()
            ),
        ));
    }

    Ok(Envelope::from_decoded_parts(header, body))
}

/// Reads and validates the header fields that follow the version.
fn read_header(reader: &mut FieldReader<'_>) -> Result<DecodedHeader, DecodeError> {
    let message_id: MessageId = reader.read(field::ID)?;
    let timestamp: Timestamp = reader.read(field::TIMESTAMP)?;

    let source = reader.read::<&str>(field::SOURCE)?;
    let source = SourceId::new(source)
        .map_err(|error| DecodeError::invalid_field(field::SOURCE, error.to_string()))?;

    let correlation_id: Option<MessageId> = reader.read(field::CORRELATION_ID)?;

    let reply_to = reader
        .read::<Option<&str>>(field::REPLY_TO)?
        .map(TopicName::new)
        .transpose()
        .map_err(|error| DecodeError::invalid_field(field::REPLY_TO, error.to_string()))?;

    let auth_token = reader
        .read::<Option<&str>>(field::AUTH_TOKEN)?
        .map(AuthToken::new)
        .transpose()
        .map_err(|error| DecodeError::invalid_field(field::AUTH_TOKEN, error.to_string()))?;

    Ok(DecodedHeader {
        message_id,
        timestamp,
        source,
        correlation_id,
        reply_to,
        auth_token,
    })
}

/// The unread rest of a postcard payload.
struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    /// Reads one header field; any failure is a syntax error in that field.
    fn read<F: Deserialize<'a>>(&mut self, name: &str) -> Result<F, DecodeError> {
        let (value, rest) = postcard::take_from_bytes::<F>(self.rest).map_err(|error| {
            DecodeError::malformed(
                Codec::Postcard,
                format!("field `{name}`: {}", describe_decode_error(&error)),
            )
        })?;
        self.rest = rest;
        Ok(value)
    }

    /// Reads the body with `T`'s own `Deserialize`.
    ///
    /// A rejection by `T` (a custom serde error) or a type that postcard cannot decode is an
    /// invalid body. Anything else is a syntax error.
    fn read_body<T: DeserializeOwned>(&mut self) -> Result<T, DecodeError> {
        let (body, rest) = postcard::take_from_bytes::<T>(self.rest).map_err(|error| match error {
            postcard::Error::SerdeDeCustom => DecodeError::invalid_field(
                field::BODY,
                format!(
                    "{} rejected the value (postcard does not keep its error message; decode the same body from JSON to see it)",
                    std::any::type_name::<T>()
                ),
            ),
            postcard::Error::WontImplement | postcard::Error::NotYetImplemented => {
                DecodeError::invalid_field(
                    field::BODY,
                    format!(
                        "{} cannot be decoded from postcard, because it needs a self-describing format (such as serde_json::Value or an untagged enum): send this message type as JSON",
                        std::any::type_name::<T>()
                    ),
                )
            }
            other => DecodeError::malformed(
                Codec::Postcard,
                format!("field `{}`: {}", field::BODY, describe_decode_error(&other)),
            ),
        })?;
        self.rest = rest;
        Ok(body)
    }
}

/// Describes a postcard decoding error in terms of the payload.
fn describe_decode_error(error: &postcard::Error) -> String {
    let description = match error {
        postcard::Error::DeserializeUnexpectedEnd => {
            "the payload ends inside this field (is it truncated?)"
        }
        postcard::Error::DeserializeBadVarint => "a varint does not fit its integer type",
        postcard::Error::DeserializeBadBool => "a bool is neither 0 nor 1",
        postcard::Error::DeserializeBadChar => "a char is not a Unicode scalar value",
        postcard::Error::DeserializeBadUtf8 => "a string is not valid UTF-8",
        postcard::Error::DeserializeBadOption => "an option tag is neither 0 (none) nor 1 (some)",
        postcard::Error::DeserializeBadEnum => "an enum variant index is over u32::MAX",
        other => return format!("postcard error: {other}"),
    };
    description.to_owned()
}

/// Describes a postcard encoding error in terms of the body type.
fn describe_encode_error(error: &postcard::Error) -> String {
    let description = match error {
        postcard::Error::SerializeSeqLengthUnknown => {
            "a sequence or map does not tell its length in advance, which postcard needs"
        }
        postcard::Error::SerdeSerCustom => {
            "the body's Serialize implementation failed (postcard does not keep its error message)"
        }
        postcard::Error::CollectStrError => "a value's Display implementation failed",
        other => return format!("postcard error: {other}"),
    };
    description.to_owned()
}
