use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::*;
use crate::clock::{ManualClock, Timestamp};
use crate::envelope::{AuthToken, FORMAT_VERSION, MAX_AUTH_TOKEN_LEN, MessageId, SourceId};
use crate::id::DeviceId;
use crate::topic::TopicName;

/// A typed body whose `device` field validates on decode, so a bad value is a custom serde error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reading {
    device: DeviceId,
    level: i32,
    on: bool,
    label: String,
    samples: Vec<u16>,
}

fn reading() -> Reading {
    Reading {
        device: DeviceId::new("lamp-1").unwrap(),
        level: -40,
        on: true,
        label: "kitchen \"main\" light".into(),
        samples: vec![0, 1, 65_535],
    }
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn minimal_envelope() -> Envelope<Reading> {
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    Envelope::new(SourceId::new("sensor-hub").unwrap(), reading(), &clock)
}

fn full_envelope() -> Envelope<Reading> {
    minimal_envelope()
        .with_correlation(MessageId::from_u128(0xfeed))
        .with_reply_to(TopicName::new("alicia/reply/sensor-hub/7").unwrap())
        .with_auth_token(AuthToken::new("eyJhbGciOiJFZERTQSJ9.e30.c2ln").unwrap())
}

/// Encodes a valid envelope with every field as JSON and returns the object, for tests that
/// change one key.
fn full_json_object() -> serde_json::Map<String, Value> {
    let bytes = Codec::Json.encode(&full_envelope()).unwrap();
    match serde_json::from_slice(&bytes).unwrap() {
        Value::Object(object) => object,
        other => panic!("the encoder wrote {other}, not an object"),
    }
}

fn json_with(key: &str, value: Value) -> Vec<u8> {
    let mut object = full_json_object();
    object.insert(key.to_owned(), value);
    serde_json::to_vec(&object).unwrap()
}

fn json_without(key: &str) -> Vec<u8> {
    let mut object = full_json_object();
    object.remove(key);
    serde_json::to_vec(&object).unwrap()
}

fn decode_json(bytes: &[u8]) -> Result<Envelope<Reading>, DecodeError> {
    Codec::Json.decode::<Reading>(bytes, &limits())
}

fn decode_postcard(bytes: &[u8]) -> Result<Envelope<Reading>, DecodeError> {
    Codec::Postcard.decode::<Reading>(bytes, &limits())
}

/// Extracts the field named by an `InvalidField` error, and fails the test for any other result.
fn invalid_field_name<T: fmt::Debug>(result: Result<T, DecodeError>) -> String {
    match result {
        Err(DecodeError::InvalidField { field, .. }) => field,
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

/// Extracts the reason of a `Malformed` error from `codec`, and fails the test for any other
/// result.
fn malformed_reason<T: fmt::Debug>(result: Result<T, DecodeError>, codec: Codec) -> String {
    match result {
        Err(DecodeError::Malformed {
            codec: found,
            reason,
        }) if found == codec => reason,
        other => panic!("expected Malformed from {codec}, got {other:?}"),
    }
}

/// The header of a postcard envelope as plain values, so tests can write fields that the real
/// types would reject. Its field order restates the postcard layout.
#[derive(Serialize)]
struct RawPostcardEnvelope<'a, B> {
    version: u16,
    message_id: [u8; 16],
    timestamp: u64,
    source: &'a str,
    correlation_id: Option<[u8; 16]>,
    reply_to: Option<&'a str>,
    auth_token: Option<&'a str>,
    body: B,
}

fn raw_postcard() -> RawPostcardEnvelope<'static, Reading> {
    RawPostcardEnvelope {
        version: FORMAT_VERSION,
        message_id: [7; 16],
        timestamp: 1_700_000_000_000,
        source: "sensor-hub",
        correlation_id: Some([9; 16]),
        reply_to: Some("alicia/reply/sensor-hub/7"),
        auth_token: Some("token"),
        body: reading(),
    }
}

/// An edit of one field of a [`RawPostcardEnvelope`].
type ChangeRawPostcard = fn(&mut RawPostcardEnvelope<'_, Reading>);

fn postcard_bytes<B: Serialize>(raw: &RawPostcardEnvelope<'_, B>) -> Vec<u8> {
    postcard::to_stdvec(raw).unwrap()
}

// Round trips.

#[test]
fn json_round_trips_all_fields() {
    let envelope = full_envelope();

    let bytes = Codec::Json.encode(&envelope).unwrap();

    assert_eq!(decode_json(&bytes).unwrap(), envelope);
}

#[test]
fn json_round_trips_no_optional_fields() {
    let envelope = minimal_envelope();

    let bytes = Codec::Json.encode(&envelope).unwrap();

    assert_eq!(decode_json(&bytes).unwrap(), envelope);
}

#[test]
fn postcard_round_trips_all_fields() {
    let envelope = full_envelope();

    let bytes = Codec::Postcard.encode(&envelope).unwrap();

    assert_eq!(decode_postcard(&bytes).unwrap(), envelope);
}

#[test]
fn postcard_round_trips_no_optional_fields() {
    let envelope = minimal_envelope();

    let bytes = Codec::Postcard.encode(&envelope).unwrap();

    assert_eq!(decode_postcard(&bytes).unwrap(), envelope);
}

#[test]
fn json_round_trips_value_body() {
    let clock = ManualClock::new(Timestamp(5));
    let body = json!({"nested": [1, "two", null, {"three": 3.5}], "big": u64::MAX});
    let envelope = Envelope::new(SourceId::new("cli").unwrap(), body, &clock);

    let bytes = Codec::Json.encode(&envelope).unwrap();

    assert_eq!(
        Codec::Json.decode::<Value>(&bytes, &limits()).unwrap(),
        envelope
    );
}

#[test]
fn postcard_round_trips_byte_body() {
    let clock = ManualClock::new(Timestamp(5));
    let envelope = Envelope::new(SourceId::new("cli").unwrap(), vec![0u8, 1, 255], &clock);

    let bytes = Codec::Postcard.encode(&envelope).unwrap();

    assert_eq!(
        Codec::Postcard
            .decode::<Vec<u8>>(&bytes, &limits())
            .unwrap(),
        envelope
    );
}

// Layout.

#[test]
fn json_layout_matches_docs() {
    let clock = ManualClock::new(Timestamp(1_700_000_000_000));
    let envelope = Envelope::new(
        SourceId::new("cli").unwrap(),
        json!({"device": "lamp-1"}),
        &clock,
    )
    .with_message_id(MessageId::from_u128(0xff))
    .with_reply_to(TopicName::new("alicia/reply/cli/1").unwrap());

    let text = String::from_utf8(Codec::Json.encode(&envelope).unwrap()).unwrap();

    assert_eq!(
        text,
        concat!(
            r#"{"v":1,"id":"000000000000000000000000000000ff","timestamp_ms":1700000000000,"#,
            r#""source":"cli","reply_to":"alicia/reply/cli/1","body":{"device":"lamp-1"}}"#
        )
    );
}

#[test]
fn json_layout_writes_all_optional_fields() {
    let object = full_json_object();

    let keys: Vec<&str> = object.keys().map(String::as_str).collect();

    for name in field::ALL {
        assert!(keys.contains(&name), "{name} missing from {keys:?}");
    }
}

#[test]
fn json_null_optional_fields_read_as_none() {
    let mut object = full_json_object();
    for name in [field::CORRELATION_ID, field::REPLY_TO, field::AUTH_TOKEN] {
        object.insert(name.to_owned(), Value::Null);
    }
    let bytes = serde_json::to_vec(&object).unwrap();

    let envelope = decode_json(&bytes).unwrap();

    assert_eq!(envelope.correlation_id(), None);
    assert_eq!(envelope.reply_to(), None);
    assert!(envelope.auth_token().is_none());
}

#[test]
fn json_accepts_fields_in_any_order() {
    let text = r#"{"body":{"device":"lamp-1","level":1,"on":false,"label":"","samples":[]},
        "source":"cli","timestamp_ms":3,"id":"0123456789abcdef0123456789abcdef","v":1}"#;

    let envelope = decode_json(text.as_bytes()).unwrap();

    assert_eq!(envelope.timestamp(), Timestamp(3));
    assert_eq!(envelope.source().as_str(), "cli");
}

#[test]
fn postcard_layout_matches_docs() {
    let envelope = full_envelope();
    let raw = RawPostcardEnvelope {
        version: FORMAT_VERSION,
        message_id: envelope.message_id().to_bytes(),
        timestamp: envelope.timestamp().as_millis(),
        source: envelope.source().as_str(),
        correlation_id: envelope.correlation_id().map(MessageId::to_bytes),
        reply_to: envelope.reply_to().map(TopicName::as_str),
        auth_token: envelope.auth_token().map(AuthToken::expose_secret),
        body: reading(),
    };

    assert_eq!(
        Codec::Postcard.encode(&envelope).unwrap(),
        postcard_bytes(&raw)
    );
}

#[test]
fn postcard_starts_with_version_varint() {
    let bytes = Codec::Postcard.encode(&minimal_envelope()).unwrap();

    assert_eq!(bytes.first(), Some(&1));
}

// Content types.

#[test]
fn content_type_round_trips() {
    for codec in Codec::ALL {
        assert_eq!(Codec::from_content_type(codec.content_type()), Ok(codec));
    }
}

#[test]
fn content_type_ignores_case_and_parameters() {
    assert_eq!(
        Codec::from_content_type(" Application/JSON ; charset=utf-8"),
        Ok(Codec::Json)
    );
    assert_eq!(
        Codec::from_content_type("application/x-postcard;v=1"),
        Ok(Codec::Postcard)
    );
}

#[test]
fn content_type_rejects_unknown() {
    let error = Codec::from_content_type("text/plain").unwrap_err();

    assert_eq!(error.content_type, "text/plain");
    assert!(error.to_string().contains("application/json"), "{error}");
}

#[test]
fn codec_default_is_json() {
    assert_eq!(Codec::default(), Codec::Json);
}

// Size limit.

#[test]
fn json_too_large_is_rejected_before_parsing() {
    let limits = DecodeLimits::default().with_max_size(16);
    let garbage = [b'{'; 17];

    let result = Codec::Json.decode::<Value>(&garbage, &limits);

    assert_eq!(result, Err(DecodeError::TooLarge { size: 17, max: 16 }));
}

#[test]
fn postcard_too_large_is_rejected_before_parsing() {
    let limits = DecodeLimits::default().with_max_size(16);
    let garbage = [0xff; 17];

    let result = Codec::Postcard.decode::<Vec<u8>>(&garbage, &limits);

    assert_eq!(result, Err(DecodeError::TooLarge { size: 17, max: 16 }));
}

#[test]
fn size_limit_accepts_exact_size() {
    for codec in Codec::ALL {
        let bytes = codec.encode(&full_envelope()).unwrap();
        let limits = DecodeLimits::default().with_max_size(bytes.len());

        assert!(codec.decode::<Reading>(&bytes, &limits).is_ok(), "{codec}");
    }
}

#[test]
fn default_limit_is_256_kib() {
    assert_eq!(DecodeLimits::default().max_size, 262_144);
}

// Malformed.

#[test]
fn json_rejects_bad_syntax() {
    let cases: [(&[u8], &str); 6] = [
        (b"", "empty"),
        (b"{\"v\":1,", "truncated"),
        (b"{v:1}", "unquoted key"),
        (b"[1, 2]", "array"),
        (b"\"envelope\"", "string"),
        (b"\xff\xfe{}", "not utf-8"),
    ];
    for (case, why) in cases {
        let reason = malformed_reason(decode_json(case), Codec::Json);
        assert!(!reason.is_empty(), "{why}");
    }
}

#[test]
fn json_rejects_trailing_bytes() {
    let mut bytes = Codec::Json.encode(&full_envelope()).unwrap();
    bytes.extend_from_slice(b" {}");

    let reason = malformed_reason(decode_json(&bytes), Codec::Json);

    assert!(reason.contains("trailing"), "{reason}");
}

#[test]
fn json_malformed_message_names_codec() {
    let message = decode_json(b"{").unwrap_err().to_string();

    assert!(message.contains("JSON"), "{message}");
    assert!(message.contains("application/json"), "{message}");
}

#[test]
fn postcard_rejects_trailing_bytes() {
    let mut bytes = Codec::Postcard.encode(&full_envelope()).unwrap();
    bytes.push(0);

    let reason = malformed_reason(decode_postcard(&bytes), Codec::Postcard);

    assert!(reason.contains("1 bytes follow the body"), "{reason}");
}

#[test]
fn postcard_rejects_every_truncation() {
    let bytes = Codec::Postcard.encode(&full_envelope()).unwrap();

    for end in 0..bytes.len() {
        let reason = malformed_reason(decode_postcard(&bytes[..end]), Codec::Postcard);
        assert!(reason.contains("truncated"), "cut at {end}: {reason}");
    }
}

#[test]
fn postcard_truncation_names_field() {
    let bytes = Codec::Postcard.encode(&full_envelope()).unwrap();

    // The version takes one byte and the message id the next 16.
    let reason = malformed_reason(decode_postcard(&bytes[..10]), Codec::Postcard);

    assert!(reason.starts_with("field `id`"), "{reason}");
}

#[test]
fn postcard_rejects_bad_option_tag() {
    let mut raw = raw_postcard();
    raw.correlation_id = None;
    let mut bytes = postcard_bytes(&raw);
    // Version 1 byte, id 16 bytes, the timestamp varint, then the source length and text.
    let tag_index =
        1 + 16 + postcard::to_stdvec(&raw.timestamp).unwrap().len() + 1 + raw.source.len();
    assert_eq!(
        bytes[tag_index], 0,
        "the correlation id tag should be at {tag_index}"
    );
    bytes[tag_index] = 2;

    let reason = malformed_reason(decode_postcard(&bytes), Codec::Postcard);

    assert!(reason.starts_with("field `correlation_id`"), "{reason}");
}

#[test]
fn postcard_rejects_bad_version_varint() {
    let reason = malformed_reason(decode_postcard(&[0xff, 0xff, 0xff, 0x01]), Codec::Postcard);

    assert!(reason.starts_with("field `v`"), "{reason}");
}

#[test]
fn postcard_rejects_bad_utf8_source() {
    let mut raw = raw_postcard();
    raw.source = "abc";
    let mut bytes = postcard_bytes(&raw);
    let source_index = 1 + 16 + postcard::to_stdvec(&raw.timestamp).unwrap().len() + 1;
    bytes[source_index] = 0xff;

    let reason = malformed_reason(decode_postcard(&bytes), Codec::Postcard);

    assert!(reason.starts_with("field `source`"), "{reason}");
}

// Unsupported version.

#[test]
fn json_version_2_is_unsupported_despite_new_fields() {
    let text = r#"{"v":2,"message":{"id":5},"sender":["x"],"payload":"anything"}"#;

    let result = Codec::Json.decode::<Value>(text.as_bytes(), &limits());

    assert_eq!(
        result,
        Err(DecodeError::UnsupportedVersion {
            found: 2,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn json_version_checked_before_fields() {
    let bytes = json_with(field::VERSION, json!(0));

    assert_eq!(
        decode_json(&bytes),
        Err(DecodeError::UnsupportedVersion {
            found: 0,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn postcard_version_2_is_unsupported_despite_new_layout() {
    let bytes = [2, 0xff, 0xff, 0xff, 0xff, 0x80];

    let result = Codec::Postcard.decode::<Vec<u8>>(&bytes, &limits());

    assert_eq!(
        result,
        Err(DecodeError::UnsupportedVersion {
            found: 2,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn postcard_version_300_is_unsupported() {
    let mut raw = raw_postcard();
    raw.version = 300;

    let result = decode_postcard(&postcard_bytes(&raw));

    assert_eq!(
        result,
        Err(DecodeError::UnsupportedVersion {
            found: 300,
            supported: FORMAT_VERSION
        })
    );
}

#[test]
fn unsupported_version_message_names_both() {
    let message = DecodeError::UnsupportedVersion {
        found: 2,
        supported: 1,
    }
    .to_string();

    assert!(message.contains("version 2 is not supported"), "{message}");
    assert!(message.contains("only version 1"), "{message}");
}

// Invalid fields, JSON.

#[test]
fn json_version_field_errors() {
    let cases = [
        (json_without(field::VERSION), "missing"),
        (json_with(field::VERSION, json!("1")), "string"),
        (json_with(field::VERSION, json!(1.5)), "fraction"),
        (json_with(field::VERSION, json!(-1)), "negative"),
        (json_with(field::VERSION, json!(70_000)), "over u16"),
        (br#"{"v":1,"v":1}"#.to_vec(), "repeated"),
    ];
    for (bytes, why) in cases {
        assert_eq!(invalid_field_name(decode_json(&bytes)), "v", "{why}");
    }
}

#[test]
fn json_invalid_header_fields_are_named() {
    let long_token = "t".repeat(MAX_AUTH_TOKEN_LEN + 1);
    let cases = [
        (json_without(field::ID), field::ID, "missing id"),
        (
            json_with(field::ID, json!("ABC")),
            field::ID,
            "uppercase id",
        ),
        (json_with(field::ID, json!(12)), field::ID, "numeric id"),
        (
            json_without(field::TIMESTAMP),
            field::TIMESTAMP,
            "missing timestamp",
        ),
        (
            json_with(field::TIMESTAMP, json!(-5)),
            field::TIMESTAMP,
            "negative timestamp",
        ),
        (
            json_with(field::TIMESTAMP, json!("now")),
            field::TIMESTAMP,
            "text timestamp",
        ),
        (json_without(field::SOURCE), field::SOURCE, "missing source"),
        (
            json_with(field::SOURCE, json!("a/b")),
            field::SOURCE,
            "slash in source",
        ),
        (
            json_with(field::SOURCE, json!("")),
            field::SOURCE,
            "empty source",
        ),
        (
            json_with(field::SOURCE, json!(null)),
            field::SOURCE,
            "null source",
        ),
        (
            json_with(field::CORRELATION_ID, json!("xyz")),
            field::CORRELATION_ID,
            "bad correlation id",
        ),
        (
            json_with(field::REPLY_TO, json!("alicia/reply/+")),
            field::REPLY_TO,
            "plus in reply topic",
        ),
        (
            json_with(field::REPLY_TO, json!("alicia/#")),
            field::REPLY_TO,
            "hash in reply topic",
        ),
        (
            json_with(field::REPLY_TO, json!("")),
            field::REPLY_TO,
            "empty reply topic",
        ),
        (
            json_with(field::AUTH_TOKEN, json!("")),
            field::AUTH_TOKEN,
            "empty token",
        ),
        (
            json_with(field::AUTH_TOKEN, json!(long_token)),
            field::AUTH_TOKEN,
            "long token",
        ),
        (
            json_with(field::AUTH_TOKEN, json!(12345)),
            field::AUTH_TOKEN,
            "numeric token",
        ),
        (json_without(field::BODY), field::BODY, "missing body"),
        (
            json_with(field::BODY, json!({"device": "lamp"})),
            field::BODY,
            "incomplete body",
        ),
        (
            json_with(field::BODY, json!([1, 2])),
            field::BODY,
            "wrong body type",
        ),
    ];
    for (bytes, expected, why) in cases {
        assert_eq!(invalid_field_name(decode_json(&bytes)), expected, "{why}");
    }
}

#[test]
fn json_unknown_field_is_named() {
    let bytes = json_with("reply_topic", json!("alicia/reply/cli/1"));

    let error = decode_json(&bytes).unwrap_err();

    assert_eq!(
        invalid_field_name(Err::<(), _>(error.clone())),
        "reply_topic"
    );
    assert!(error.to_string().contains("reply_to"), "{error}");
}

#[test]
fn json_unknown_field_name_is_escaped() {
    let bytes = json_with("bad\u{1b}[31m", json!(1));

    let field = invalid_field_name(decode_json(&bytes));

    assert_eq!(field, "bad\\u{1b}[31m");
}

#[test]
fn json_repeated_field_is_named() {
    let text = r#"{"v":1,"id":"0123456789abcdef0123456789abcdef","timestamp_ms":1,
        "source":"a","source":"b","body":null}"#;

    let result = Codec::Json.decode::<Value>(text.as_bytes(), &limits());

    assert_eq!(invalid_field_name(result), field::SOURCE);
}

#[test]
fn json_source_error_shows_value_and_rule() {
    let error = decode_json(&json_with(field::SOURCE, json!("kitchen/lamp"))).unwrap_err();
    let message = error.to_string();

    assert!(message.contains("`source`"), "{message}");
    assert!(message.contains("\"kitchen/lamp\""), "{message}");
    assert!(message.contains("'/' at position 8"), "{message}");
    assert!(!message.contains("line 1"), "{message}");
}

#[test]
fn json_body_error_shows_position_in_body() {
    let error = decode_json(&json_with(field::BODY, json!({"device": "lamp"}))).unwrap_err();
    let message = error.to_string();

    assert!(message.contains("missing field `level`"), "{message}");
    assert!(message.contains("of the body"), "{message}");
}

#[test]
fn json_body_custom_error_is_kept() {
    let mut body = serde_json::to_value(reading()).unwrap();
    body["device"] = json!("lamp/1");

    let error = decode_json(&json_with(field::BODY, body)).unwrap_err();
    let message = error.to_string();

    assert!(
        message.contains("device id \"lamp/1\" is invalid"),
        "{message}"
    );
}

#[test]
fn json_token_errors_hide_secret() {
    let cases = [
        json!("secret value with spaces"),
        json!(format!("secret{}", "x".repeat(MAX_AUTH_TOKEN_LEN))),
        json!(987_654_321),
        json!(["secret"]),
    ];
    for token in cases {
        let message = decode_json(&json_with(field::AUTH_TOKEN, token.clone()))
            .unwrap_err()
            .to_string();
        assert!(!message.contains("secret"), "{message}");
        assert!(!message.contains("987654321"), "{message}");
    }
}

#[test]
fn json_long_reason_is_cut() {
    let huge = "x".repeat(100_000);

    let error = decode_json(&json_with(field::TIMESTAMP, json!(huge))).unwrap_err();

    assert!(
        error.to_string().len() < 1_000,
        "{} bytes",
        error.to_string().len()
    );
}

// Invalid fields, postcard.

#[test]
fn postcard_invalid_header_fields_are_named() {
    let long_token = "t".repeat(MAX_AUTH_TOKEN_LEN + 1);
    let cases: [(ChangeRawPostcard, &str, &str); 7] = [
        (|raw| raw.source = "a/b", field::SOURCE, "slash in source"),
        (|raw| raw.source = "", field::SOURCE, "empty source"),
        (
            |raw| raw.reply_to = Some("alicia/reply/+"),
            field::REPLY_TO,
            "plus in reply topic",
        ),
        (
            |raw| raw.reply_to = Some("a/#"),
            field::REPLY_TO,
            "hash in reply topic",
        ),
        (
            |raw| raw.reply_to = Some(""),
            field::REPLY_TO,
            "empty reply topic",
        ),
        (
            |raw| raw.auth_token = Some(""),
            field::AUTH_TOKEN,
            "empty token",
        ),
        (
            |raw| raw.auth_token = Some("has space"),
            field::AUTH_TOKEN,
            "space in token",
        ),
    ];
    for (change, expected, why) in cases {
        let mut raw = raw_postcard();
        change(&mut raw);
        assert_eq!(
            invalid_field_name(decode_postcard(&postcard_bytes(&raw))),
            expected,
            "{why}"
        );
    }

    let mut raw = raw_postcard();
    raw.auth_token = Some(&long_token);
    assert_eq!(
        invalid_field_name(decode_postcard(&postcard_bytes(&raw))),
        field::AUTH_TOKEN
    );
}

#[test]
fn postcard_body_custom_error_is_named() {
    let mut raw = raw_postcard();
    raw.body.device = DeviceId::new("lamp").unwrap();
    let mut bytes = postcard_bytes(&raw);
    // The device id "lamp" is the first string of the body; make it "l/mp".
    let position = bytes
        .windows(4)
        .position(|window| window == b"lamp")
        .unwrap();
    bytes[position + 1] = b'/';

    let error = decode_postcard(&bytes).unwrap_err();

    assert_eq!(invalid_field_name(Err::<(), _>(error.clone())), field::BODY);
    assert!(error.to_string().contains("Reading"), "{error}");
}

#[test]
fn postcard_value_body_is_invalid() {
    let clock = ManualClock::new(Timestamp(0));
    let envelope = Envelope::new(SourceId::new("a").unwrap(), json!({"a": 1}), &clock);
    let bytes = Codec::Postcard.encode(&envelope).unwrap();

    let error = Codec::Postcard
        .decode::<Value>(&bytes, &limits())
        .unwrap_err();

    assert_eq!(invalid_field_name(Err::<(), _>(error.clone())), field::BODY);
    assert!(
        error.to_string().contains("send this message type as JSON"),
        "{error}"
    );
}

#[test]
fn postcard_token_errors_hide_secret() {
    let long_token = format!("secret{}", "x".repeat(MAX_AUTH_TOKEN_LEN));
    for token in ["secret value", long_token.as_str()] {
        let mut raw = raw_postcard();
        raw.auth_token = Some(token);

        let message = decode_postcard(&postcard_bytes(&raw))
            .unwrap_err()
            .to_string();

        assert!(!message.contains("secret"), "{message}");
    }
}

// Secrets in decoded envelopes.

#[test]
fn decoded_envelope_debug_hides_token() {
    for codec in Codec::ALL {
        let bytes = codec.encode(&full_envelope()).unwrap();

        let envelope = codec.decode::<Reading>(&bytes, &limits()).unwrap();
        let debug = format!("{envelope:?}");

        assert!(!debug.contains("eyJhbGciOiJFZERTQSJ9"), "{codec}: {debug}");
        assert!(debug.contains("AuthToken(***)"), "{codec}: {debug}");
    }
}

// Nesting depth.

/// Builds a JSON envelope whose body is `depth` nested arrays, closed or not.
fn nested_body_json(depth: usize, closed: bool) -> Vec<u8> {
    let mut text =
        r#"{"v":1,"id":"0123456789abcdef0123456789abcdef","timestamp_ms":1,"source":"a","body":"#
            .to_owned();
    text.push_str(&"[".repeat(depth));
    if closed {
        text.push_str(&"]".repeat(depth));
        text.push('}');
    }
    text.into_bytes()
}

#[test]
fn json_deep_body_hits_recursion_limit() {
    let bytes = nested_body_json(100_000, true);

    let error = Codec::Json.decode::<Value>(&bytes, &limits()).unwrap_err();

    assert_eq!(invalid_field_name(Err::<(), _>(error.clone())), field::BODY);
    assert!(
        error.to_string().contains("recursion limit exceeded"),
        "{error}"
    );
}

#[test]
fn json_deep_unclosed_body_is_malformed() {
    let bytes = nested_body_json(100_000, false);

    let result = Codec::Json.decode::<Value>(&bytes, &limits());

    malformed_reason(result, Codec::Json);
}

#[test]
fn json_deep_typed_body_is_rejected() {
    #[derive(Debug, Deserialize)]
    struct Tree {
        #[allow(dead_code)]
        children: Vec<Tree>,
    }
    let depth = 10_000;
    let mut text =
        r#"{"v":1,"id":"0123456789abcdef0123456789abcdef","timestamp_ms":1,"source":"a","body":"#
            .to_owned();
    text.push_str(&r#"{"children":["#.repeat(depth));
    text.push_str(&"]}".repeat(depth));
    text.push('}');

    let result = Codec::Json.decode::<Tree>(text.as_bytes(), &limits());

    assert_eq!(invalid_field_name(result), field::BODY);
}

#[test]
fn json_deep_payload_is_malformed() {
    let mut bytes = vec![b'['; 100_000];
    bytes.extend(vec![b']'; 100_000]);

    let result = Codec::Json.decode::<Value>(&bytes, &limits());

    malformed_reason(result, Codec::Json);
}

#[test]
fn json_deep_unknown_field_is_rejected() {
    let mut text = String::from(r#"{"v":1,"extra":"#);
    text.push_str(&"[".repeat(100_000));
    text.push_str(&"]".repeat(100_000));
    text.push('}');

    let result = Codec::Json.decode::<Value>(text.as_bytes(), &limits());

    assert_eq!(invalid_field_name(result), "extra");
}

#[test]
fn json_deep_header_value_is_rejected() {
    let mut text = String::from(
        r#"{"v":1,"id":"0123456789abcdef0123456789abcdef","timestamp_ms":1,"body":1,"source":"#,
    );
    text.push_str(&"[".repeat(100_000));
    text.push_str(&"]".repeat(100_000));
    text.push('}');

    let result = Codec::Json.decode::<Value>(text.as_bytes(), &limits());

    assert_eq!(invalid_field_name(result), field::SOURCE);
}

// Encoding errors.

#[test]
fn json_encode_rejects_non_string_keys() {
    let clock = ManualClock::new(Timestamp(0));
    let body = std::collections::BTreeMap::from([((1, 2), "pair key")]);
    let envelope = Envelope::new(SourceId::new("a").unwrap(), body, &clock);

    let result = Codec::Json.encode(&envelope);

    assert!(
        matches!(
            result,
            Err(EncodeError::Body {
                codec: Codec::Json,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn postcard_encode_reports_body_error() {
    struct Unencodable;
    impl Serialize for Unencodable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("no"))
        }
    }
    let clock = ManualClock::new(Timestamp(0));
    let envelope = Envelope::new(SourceId::new("a").unwrap(), Unencodable, &clock);

    let result = Codec::Postcard.encode(&envelope);

    assert!(
        matches!(
            result,
            Err(EncodeError::Body {
                codec: Codec::Postcard,
                ..
            })
        ),
        "{result:?}"
    );
}

// Property tests: decoders never panic, and every envelope round-trips.

fn arbitrary_reading() -> impl Strategy<Value = Reading> {
    (
        "[A-Za-z0-9._-]{1,64}",
        any::<i32>(),
        any::<bool>(),
        any::<String>(),
        prop::collection::vec(any::<u16>(), 0..8),
    )
        .prop_map(|(device, level, on, label, samples)| Reading {
            device: DeviceId::new(device).unwrap(),
            level,
            on,
            label,
            samples,
        })
}

fn arbitrary_envelope() -> impl Strategy<Value = Envelope<Reading>> {
    (
        any::<u128>(),
        any::<u64>(),
        "[A-Za-z0-9._-]{1,64}",
        prop::option::of(any::<u128>()),
        prop::option::of("[a-z0-9/$ -]{1,40}"),
        prop::option::of("[!-~]{1,100}"),
        arbitrary_reading(),
    )
        .prop_map(|(id, time, source, correlation, reply_to, token, body)| {
            let clock = ManualClock::new(Timestamp(time));
            let mut envelope = Envelope::new(SourceId::new(source).unwrap(), body, &clock)
                .with_message_id(MessageId::from_u128(id));
            if let Some(correlation) = correlation {
                envelope = envelope.with_correlation(MessageId::from_u128(correlation));
            }
            if let Some(topic) = reply_to {
                envelope = envelope.with_reply_to(TopicName::new(topic).unwrap());
            }
            if let Some(token) = token {
                envelope = envelope.with_auth_token(AuthToken::new(token).unwrap());
            }
            envelope
        })
}

/// A change to a valid encoding: overwrite, insert or remove one byte, or cut the tail.
#[derive(Debug, Clone)]
enum Mutation {
    Overwrite(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn arbitrary_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite(at, byte)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    let len = bytes.len();
    match *mutation {
        Mutation::Overwrite(at, byte) if len > 0 => bytes[at % len] = byte,
        Mutation::Insert(at, byte) => bytes.insert(at % (len + 1), byte),
        Mutation::Remove(at) if len > 0 => {
            bytes.remove(at % len);
        }
        Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
        _ => {}
    }
}

/// Runs every decoder entry point on `bytes`; a panic fails the property.
fn decode_all(bytes: &[u8]) {
    for codec in Codec::ALL {
        let _ = codec.decode::<Value>(bytes, &limits());
        let _ = codec.decode::<Reading>(bytes, &limits());
        let _ = codec.decode::<Vec<u8>>(bytes, &limits());
    }
}

proptest! {
    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        decode_all(&bytes);
    }

    #[test]
    fn json_decoder_survives_json_like_text(text in r#"[\[\]{}":,0-9a-z_\\. -]{0,300}"#) {
        decode_all(text.as_bytes());
    }

    #[test]
    fn decoders_survive_mutated_encodings(
        envelope in arbitrary_envelope(),
        mutations in prop::collection::vec(arbitrary_mutation(), 1..6),
    ) {
        for codec in Codec::ALL {
            let mut bytes = codec.encode(&envelope).unwrap();
            for mutation in &mutations {
                apply(&mut bytes, mutation);
            }
            decode_all(&bytes);
        }
    }

    #[test]
    fn json_round_trips_arbitrary_envelopes(envelope in arbitrary_envelope()) {
        let bytes = Codec::Json.encode(&envelope).unwrap();
        prop_assert_eq!(decode_json(&bytes).unwrap(), envelope);
    }

    #[test]
    fn postcard_round_trips_arbitrary_envelopes(envelope in arbitrary_envelope()) {
        let bytes = Codec::Postcard.encode(&envelope).unwrap();
        prop_assert_eq!(decode_postcard(&bytes).unwrap(), envelope);
    }
}
