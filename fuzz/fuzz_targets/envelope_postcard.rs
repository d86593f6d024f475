//! The postcard envelope decoder on arbitrary bytes: it returns a value or an error, never panics.

#![no_main]

use alicia_core::codec::{Codec, DecodeLimits};
use libfuzzer_sys::fuzz_target;

/// A body with the kinds of fields services use, so typed decoding paths run too.
#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct TypedBody {
    device: alicia_core::DeviceId,
    name: String,
    level: Option<u8>,
    tags: Vec<String>,
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let _ = Codec::Postcard.decode::<Vec<u8>>(data, &limits);

    // A value that decodes must encode again and decode to the same body.
    if let Ok(envelope) = Codec::Postcard.decode::<TypedBody>(data, &limits) {
        let encoded = Codec::Postcard.encode(&envelope).expect("a decoded envelope encodes");
        let again = Codec::Postcard
            .decode::<TypedBody>(&encoded, &limits)
            .expect("an encoded envelope decodes");
        assert_eq!(again.body().device, envelope.body().device);
        assert_eq!(again.message_id(), envelope.message_id());
    }
});
