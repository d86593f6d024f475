//! The envelope that wraps every message on the bus, and the ids and token it carries.
//!
//! An [`Envelope`] is a typed body with the header fields that every message needs: message id,
//! timestamp and source, and for requests a correlation id, a reply topic and an auth token. The [`codec`](crate::codec) module turns it into bytes and back. The format version is
//! not stored in the envelope: the codec writes [`FORMAT_VERSION`] and rejects any other version
//! on decode, so an envelope in memory always has the current layout.
//!
//! The source is a [`SourceId`] rather than a [`NodeId`]: a message may come from a node, one of
//! its service instances, a device or an external tool, and all of them are named by the id rule
//! of [`crate::id`]. Every id type of that module converts into a `SourceId` without a check.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::clock::{Clock, Timestamp};
use crate::id::{DeviceId, IdError, InstanceId, NodeId, ServiceId, validate_id};
use crate::topic::TopicName;

/// The envelope format version that this build writes and the only one it reads.
///
/// Every codec puts the version first (the `"v"` key in JSON, the first varint in postcard), and
/// later versions must keep it there, so a decoder can reject a version it does not know before it
/// reads anything else.
pub const FORMAT_VERSION: u16 = 1;

/// Maximum length of an auth token in bytes.
///
/// A JWT with ordinary claims or an API key is far shorter. The cap bounds how much an
/// unauthenticated sender can make the receiver store and check.
pub const MAX_AUTH_TOKEN_LEN: usize = 8 * 1024;

/// One message on the bus: header fields and a typed body.
///
/// `Debug` shows every field except the auth token, which it prints as `AuthToken(***)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<T> {
    message_id: MessageId,
    timestamp: Timestamp,
    source: SourceId,
    /// Message id of the request that this message replies to.
    correlation_id: Option<MessageId>,
    /// Topic where the receiver should publish its reply.
    reply_to: Option<TopicName>,
    auth_token: Option<AuthToken>,
    body: T,
}

impl<T> Envelope<T> {
    /// Creates an envelope from `source` with a fresh random message id, stamped with
    /// `clock.now()`, and with no correlation id, reply topic or auth token.
    pub fn new(source: impl Into<SourceId>, body: T, clock: &dyn Clock) -> Self {
        Self {
            message_id: MessageId::random(),
            timestamp: clock.now(),
            source: source.into(),
            correlation_id: None,
            reply_to: None,
            auth_token: None,
            body,
        }
    }

    /// Creates the reply to this envelope: a new envelope whose correlation id is this envelope's
    /// message id.
    ///
    /// The reply has no reply topic and no auth token of its own. Publish it to this envelope's
    /// [`reply_to`](Self::reply_to) topic.
    pub fn reply<U>(&self, source: impl Into<SourceId>, body: U, clock: &dyn Clock) -> Envelope<U> {
        Envelope::new(source, body, clock).with_correlation(self.message_id)
    }

    /// Sets the correlation id: the message id of the request that this message replies to.
    pub fn with_correlation(mut self, request_id: MessageId) -> Self {
        self.correlation_id = Some(request_id);
        self
    }

    /// Sets the topic where the receiver should publish its reply.
    pub fn with_reply_to(mut self, topic: TopicName) -> Self {
        self.reply_to = Some(topic);
        self
    }

    /// Attaches an auth token (a JWT or an API key) that the receiver checks.
    pub fn with_auth_token(mut self, token: AuthToken) -> Self {
        self.auth_token = Some(token);
        self
    }

    /// Replaces the message id, for example to resend a message under its original id so that the
    /// receiver can recognise the duplicate.
    pub fn with_message_id(mut self, message_id: MessageId) -> Self {
        self.message_id = message_id;
        self
    }

    /// Returns the id of this message, unique with overwhelming probability.
    pub fn message_id(&self) -> MessageId {
        self.message_id
    }

    /// When the sender created the message, by the sender's clock.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// Returns the sender of the message.
    pub fn source(&self) -> &SourceId {
        &self.source
    }

    /// Returns the message id of the request that this message replies to, if it is a reply.
    pub fn correlation_id(&self) -> Option<MessageId> {
        self.correlation_id
    }

    /// Returns the topic where the sender expects a reply, if it expects one.
    pub fn reply_to(&self) -> Option<&TopicName> {
        self.reply_to.as_ref()
    }

    /// Returns the auth token the sender attached, if any.
    pub fn auth_token(&self) -> Option<&AuthToken> {
        self.auth_token.as_ref()
    }

    /// Returns the message body.
    pub fn body(&self) -> &T {
        &self.body
    }

    /// Returns the message body, mutable.
    pub fn body_mut(&mut self) -> &mut T {
        &mut self.body
    }

    /// Drops the header and returns the body.
    pub fn into_body(self) -> T {
        self.body
    }

    /// Converts the body with `convert` and keeps every header field.
    pub fn map_body<U>(self, convert: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            message_id: self.message_id,
            timestamp: self.timestamp,
            source: self.source,
            correlation_id: self.correlation_id,
            reply_to: self.reply_to,
            auth_token: self.auth_token,
            body: convert(self.body),
        }
    }

    /// Assembles an envelope from fields that the decoder has already validated.
    pub(crate) fn from_decoded_parts(header: DecodedHeader, body: T) -> Self {
        Self {
            message_id: header.message_id,
            timestamp: header.timestamp,
            source: header.source,
            correlation_id: header.correlation_id,
            reply_to: header.reply_to,
            auth_token: header.auth_token,
            body,
        }
    }
}

/// The header fields of an envelope, as a codec has decoded and validated them.
pub(crate) struct DecodedHeader {
    pub(crate) message_id: MessageId,
    pub(crate) timestamp: Timestamp,
    pub(crate) source: SourceId,
    pub(crate) correlation_id: Option<MessageId>,
    pub(crate) reply_to: Option<TopicName>,
    pub(crate) auth_token: Option<AuthToken>,
}

/// A 128-bit message id, random when created with [`MessageId::random`].
///
/// JSON and other human-readable formats carry it as 32 lowercase hex digits; postcard carries
/// its 16 bytes, big-endian.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u128);

/// Number of hex digits in the text form of a [`MessageId`].
const MESSAGE_ID_HEX_LEN: usize = 32;

impl MessageId {
    /// Draws a fresh id from `rand`'s thread-local generator (ChaCha12 seeded by the operating
    /// system in rand 0.9), so ids are unique with overwhelming probability and cannot be
    /// predicted from earlier ones.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// Creates the id with the given numeric value.
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// Returns the id's numeric value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// Returns the id's 16 bytes, big-endian, as postcard carries them.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Creates the id whose big-endian bytes are `bytes`.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(u128::from_be_bytes(bytes))
    }

    /// Parses the text form: exactly 32 lowercase hex digits.
    pub fn parse(text: &str) -> Result<Self, MessageIdError> {
        if let Some((index, character)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(MessageIdError::InvalidCharacter {
                value: shorten_for_message(text),
                character,
                position: index + 1,
            });
        }

        if text.len() != MESSAGE_ID_HEX_LEN {
            return Err(MessageIdError::WrongLength {
                value: shorten_for_message(text),
                len: text.len(),
            });
        }

        // Every byte is a lowercase hex digit (checked above), and 32 digits fill 128 bits exactly.
        let value = text.bytes().fold(0u128, |value, digit| {
            (value << 4) | u128::from(hex_digit_value(digit))
        });
        Ok(Self(value))
    }
}

/// Converts one lowercase hex digit to its value. The caller has checked that `digit` is one.
fn hex_digit_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

/// Escapes control characters and cuts `text` to 64 characters, so that an untrusted value fits in
/// one readable line of an error message.
pub(crate) fn shorten_for_message(text: &str) -> String {
    const SHOWN: usize = 64;
    let mut shown: String = text
        .chars()
        .take(SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(SHOWN).is_some() {
        shown.push_str("...");
    }
    shown
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl FromStr for MessageId {
    type Err = MessageIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            // A fixed-size array has no length prefix in postcard, so the id takes 16 bytes.
            self.to_bytes().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(MessageIdVisitor)
        } else {
            <[u8; 16]>::deserialize(deserializer).map(Self::from_bytes)
        }
    }
}

struct MessageIdVisitor;

impl Visitor<'_> for MessageIdVisitor {
    type Value = MessageId;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a message id of 32 lowercase hex digits")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<MessageId, E> {
        MessageId::parse(text).map_err(E::custom)
    }
}

/// Error from parsing a [`MessageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageIdError {
    /// The string contains a character other than `0`-`9` and `a`-`f`.
    #[error(
        "message id \"{value}\" is invalid: {character:?} at position {position} is not a lowercase hex digit (a message id is 32 characters from 0-9 and a-f)"
    )]
    InvalidCharacter {
        /// The rejected value, escaped and cut to 64 characters.
        value: String,
        /// The first offending character.
        character: char,
        /// Its position, counted in characters from 1.
        position: usize,
    },

    /// The string has only hex digits, but not 32 of them.
    #[error(
        "message id \"{value}\" is invalid: it has {len} hex digits, but a message id has exactly 32"
    )]
    WrongLength {
        /// The rejected value, cut to 64 characters.
        value: String,
        /// Its length in bytes, which equals its number of digits.
        len: usize,
    },
}

/// Identifies the sender of a message: a node, a service instance, a device or an external tool.
///
/// It follows the id rule of [`crate::id`] (1 to 64 ASCII letters, digits, `-`, `_` and `.`),
/// checked on construction and on deserialization.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SourceId(String);

impl SourceId {
    /// Name of this kind of id in error messages.
    pub const KIND: &'static str = "source";

    /// Validates `value` against the id rule and wraps it.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        validate_id(Self::KIND, &value)?;
        Ok(Self(value))
    }

    /// Returns the id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the id into its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SourceId {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl TryFrom<String> for SourceId {
    type Error = IdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl TryFrom<&str> for SourceId {
    type Error = IdError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl AsRef<str> for SourceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(value).map_err(de::Error::custom)
    }
}

macro_rules! impl_source_from_id {
    ($($id:ty),*) => {
        $(
            impl From<$id> for SourceId {
                /// Converts without a check, because every id type of [`crate::id`] follows the
                /// same rule as `SourceId`.
                fn from(id: $id) -> Self {
                    Self(id.into_string())
                }
            }

            impl From<&$id> for SourceId {
                /// Converts without a check, because every id type of [`crate::id`] follows the
                /// same rule as `SourceId`.
                fn from(id: &$id) -> Self {
                    Self(id.as_str().to_owned())
                }
            }
        )*
    };
}

impl_source_from_id!(NodeId, DeviceId, ServiceId, InstanceId);

/// A secret that authenticates the sender: a JWT or an API key.
///
/// It is 1 to [`MAX_AUTH_TOKEN_LEN`] bytes of visible ASCII (`!` to `~`, so no space or control
/// character). `Debug` and `Display` print `***` in place of the secret, so an envelope can be
/// logged. `==` does not stop at the first differing byte, which makes timing attacks harder, but
/// nothing stops the compiler from shortening the loop, so it is no guaranteed constant-time
/// comparison. Serializing writes the secret itself, because the receiver needs it.
#[derive(Clone, Eq)]
pub struct AuthToken(String);

impl AuthToken {
    /// Validates `secret` and wraps it.
    pub fn new(secret: impl Into<String>) -> Result<Self, AuthTokenError> {
        let secret = secret.into();
        validate_auth_token(&secret)?;
        Ok(Self(secret))
    }

    /// The secret itself, for the code that checks it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

/// Checks the length and character rules of [`AuthToken`]; errors never contain the token.
fn validate_auth_token(secret: &str) -> Result<(), AuthTokenError> {
    if secret.is_empty() {
        return Err(AuthTokenError::Empty);
    }

    if secret.len() > MAX_AUTH_TOKEN_LEN {
        return Err(AuthTokenError::TooLong { len: secret.len() });
    }

    if let Some(index) = secret.chars().position(|c| !c.is_ascii_graphic()) {
        return Err(AuthTokenError::InvalidCharacter {
            position: index + 1,
        });
    }

    Ok(())
}

impl PartialEq for AuthToken {
    fn eq(&self, other: &Self) -> bool {
        let (left, right) = (self.0.as_bytes(), other.0.as_bytes());
        if left.len() != right.len() {
            return false;
        }

        // Folding over every byte, instead of stopping at the first difference, keeps the time
        // from depending on where a guessed token goes wrong (see the caveat on the type).
        let difference = left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b));
        difference == 0
    }
}

impl fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthToken(***)")
    }
}

impl fmt::Display for AuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for AuthToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AuthToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let secret = String::deserialize(deserializer)?;
        Self::new(secret).map_err(de::Error::custom)
    }
}

/// Error from validating an [`AuthToken`]. No variant contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthTokenError {
    /// The token is empty.
    #[error("auth token is empty: leave the field out to send no token, or send the full token")]
    Empty,

    /// The token is longer than [`MAX_AUTH_TOKEN_LEN`] bytes.
    #[error(
        "auth token is invalid: it is {len} bytes long, over the maximum of {MAX_AUTH_TOKEN_LEN} bytes (send the token itself, not a document that contains it)"
    )]
    TooLong {
        /// The token's length in bytes.
        len: usize,
    },

    /// The token contains a space, a control character or a non-ASCII character.
    #[error(
        "auth token is invalid: the character at position {position} is not visible ASCII (send the token without a \"Bearer \" prefix, spaces or line breaks)"
    )]
    InvalidCharacter {
        /// Position of the first offending character, counted in characters from 1.
        position: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn source(value: &str) -> SourceId {
        SourceId::new(value).unwrap()
    }

    #[test]
    fn envelope_new_stamps_clock_time() {
        let clock = ManualClock::new(Timestamp(1_700_000_000_123));
        let envelope = Envelope::new(source("node-1"), 7u32, &clock);

        assert_eq!(envelope.timestamp(), Timestamp(1_700_000_000_123));
        assert_eq!(envelope.source().as_str(), "node-1");
        assert_eq!(envelope.correlation_id(), None);
        assert_eq!(envelope.reply_to(), None);
        assert!(envelope.auth_token().is_none());
        assert_eq!(*envelope.body(), 7);
    }

    #[test]
    fn envelope_new_draws_distinct_ids() {
        let clock = ManualClock::new(Timestamp(0));
        let first = Envelope::new(source("a"), (), &clock);
        let second = Envelope::new(source("a"), (), &clock);

        assert_ne!(first.message_id(), second.message_id());
    }

    #[test]
    fn envelope_builders_set_fields() {
        let clock = ManualClock::new(Timestamp(0));
        let request_id = MessageId::from_u128(42);
        let topic = TopicName::new("alicia/reply/cli/1").unwrap();
        let token = AuthToken::new("header.payload.signature").unwrap();

        let envelope = Envelope::new(source("cli"), (), &clock)
            .with_correlation(request_id)
            .with_reply_to(topic.clone())
            .with_auth_token(token.clone())
            .with_message_id(MessageId::from_u128(7));

        assert_eq!(envelope.correlation_id(), Some(request_id));
        assert_eq!(envelope.reply_to(), Some(&topic));
        assert_eq!(envelope.auth_token(), Some(&token));
        assert_eq!(envelope.message_id(), MessageId::from_u128(7));
    }

    #[test]
    fn envelope_reply_correlates_request() {
        let clock = ManualClock::new(Timestamp(1_000));
        let request = Envelope::new(source("cli"), "ping", &clock)
            .with_reply_to(TopicName::new("alicia/reply/cli/1").unwrap())
            .with_auth_token(AuthToken::new("secret").unwrap());
        clock.advance(std::time::Duration::from_millis(5));

        let reply = request.reply(source("registry-1"), "pong", &clock);

        assert_eq!(reply.correlation_id(), Some(request.message_id()));
        assert_ne!(reply.message_id(), request.message_id());
        assert_eq!(reply.source().as_str(), "registry-1");
        assert_eq!(reply.timestamp(), Timestamp(1_005));
        assert_eq!(reply.reply_to(), None);
        assert!(reply.auth_token().is_none());
        assert_eq!(*reply.body(), "pong");
    }

    #[test]
    fn envelope_map_body_keeps_header() {
        let clock = ManualClock::new(Timestamp(0));
        let envelope =
            Envelope::new(source("a"), 2u8, &clock).with_correlation(MessageId::from_u128(1));
        let id = envelope.message_id();

        let mapped = envelope.map_body(|body| u32::from(body) * 10);

        assert_eq!(mapped.message_id(), id);
        assert_eq!(mapped.correlation_id(), Some(MessageId::from_u128(1)));
        assert_eq!(mapped.into_body(), 20);
    }

    #[test]
    fn envelope_debug_hides_token() {
        let clock = ManualClock::new(Timestamp(0));
        let envelope = Envelope::new(source("a"), (), &clock)
            .with_auth_token(AuthToken::new("top-secret-value").unwrap());

        let debug = format!("{envelope:?}");

        assert!(!debug.contains("top-secret-value"), "{debug}");
        assert!(debug.contains("AuthToken(***)"), "{debug}");
    }

    #[test]
    fn message_id_text_round_trips() {
        let id = MessageId::from_u128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let text = id.to_string();

        assert_eq!(text, "0123456789abcdef0011223344556677");
        assert_eq!(MessageId::parse(&text), Ok(id));
    }

    #[test]
    fn message_id_text_keeps_leading_zeros() {
        assert_eq!(MessageId::from_u128(1).to_string(), format!("{:0>32}", "1"));
    }

    #[test]
    fn message_id_rejects_bad_text() {
        let cases = [
            ("", "empty"),
            ("0123456789abcdef0123456789abcde", "31 digits"),
            ("0123456789abcdef0123456789abcdef0", "33 digits"),
            ("0123456789ABCDEF0123456789ABCDEF", "uppercase"),
            ("01234567-89ab-cdef-0123-456789abcdef", "uuid dashes"),
            ("+123456789abcdef0123456789abcdef", "sign"),
            ("0123456789abcdef0123456789abcde\u{e9}", "non-ascii"),
        ];
        for (case, why) in cases {
            assert!(
                MessageId::parse(case).is_err(),
                "{case:?} ({why}) should be invalid"
            );
        }
    }

    #[test]
    fn message_id_error_names_character() {
        let error = MessageId::parse("0123456789ABCDEF0123456789abcdef").unwrap_err();

        assert_eq!(
            error,
            MessageIdError::InvalidCharacter {
                value: "0123456789ABCDEF0123456789abcdef".into(),
                character: 'A',
                position: 11,
            }
        );
    }

    #[test]
    fn message_id_error_reports_length() {
        let error = MessageId::parse("abc").unwrap_err();

        assert_eq!(
            error,
            MessageIdError::WrongLength {
                value: "abc".into(),
                len: 3
            }
        );
    }

    #[test]
    fn message_id_json_is_hex_string() {
        let id = MessageId::from_u128(255);

        let json = serde_json::to_string(&id).unwrap();

        assert_eq!(json, "\"000000000000000000000000000000ff\"");
        assert_eq!(serde_json::from_str::<MessageId>(&json).unwrap(), id);
    }

    #[test]
    fn message_id_postcard_is_16_bytes() {
        let id = MessageId::from_u128(u128::MAX - 1);

        let bytes = postcard::to_stdvec(&id).unwrap();

        assert_eq!(bytes, id.to_bytes().to_vec());
        assert_eq!(postcard::from_bytes::<MessageId>(&bytes).unwrap(), id);
    }

    #[test]
    fn source_id_validates() {
        assert!(SourceId::new("registry-1").is_ok());
        assert!(SourceId::new("alicia/reply").is_err());
        assert!(serde_json::from_str::<SourceId>("\"a+b\"").is_err());
    }

    #[test]
    fn source_id_converts_from_ids() {
        let node = NodeId::new("hub").unwrap();
        let device = DeviceId::new("lamp-1").unwrap();

        assert_eq!(SourceId::from(&node).as_str(), "hub");
        assert_eq!(SourceId::from(device).as_str(), "lamp-1");
    }

    #[test]
    fn auth_token_display_hides_secret() {
        let token = AuthToken::new("s3cr3t").unwrap();

        assert_eq!(token.to_string(), "***");
        assert_eq!(format!("{token:?}"), "AuthToken(***)");
        assert_eq!(token.expose_secret(), "s3cr3t");
    }

    #[test]
    fn auth_token_rejects_bad_values() {
        let too_long = "t".repeat(MAX_AUTH_TOKEN_LEN + 1);
        let cases = [
            ("", AuthTokenError::Empty),
            (
                too_long.as_str(),
                AuthTokenError::TooLong {
                    len: MAX_AUTH_TOKEN_LEN + 1,
                },
            ),
            (
                "Bearer abc",
                AuthTokenError::InvalidCharacter { position: 7 },
            ),
            ("abc\n", AuthTokenError::InvalidCharacter { position: 4 }),
            ("ab\u{e9}", AuthTokenError::InvalidCharacter { position: 3 }),
        ];
        for (case, expected) in cases {
            assert_eq!(AuthToken::new(case).unwrap_err(), expected, "{case:?}");
        }
    }

    #[test]
    fn auth_token_accepts_max_length() {
        let longest = "t".repeat(MAX_AUTH_TOKEN_LEN);

        assert!(AuthToken::new(longest).is_ok());
    }

    #[test]
    fn auth_token_error_omits_secret() {
        let error = AuthToken::new("secret value").unwrap_err().to_string();

        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn auth_token_equality_compares_bytes() {
        let token = AuthToken::new("abc").unwrap();

        assert_eq!(token, AuthToken::new("abc").unwrap());
        assert_ne!(token, AuthToken::new("abd").unwrap());
        assert_ne!(token, AuthToken::new("abcd").unwrap());
    }
}
