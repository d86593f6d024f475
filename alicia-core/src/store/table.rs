//! Typed table handles, the key types they accept and the versioned value encoding.
//!
//! A stored value is `[format version: u16, little-endian][postcard bytes]`. The version belongs
//! to each value rather than to the table, so a table can hold values written by several releases
//! while their owner upgrades them lazily on read.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use crate::id::{DeviceId, InstanceId, NodeId, ServiceId};

/// Length of the version header in front of every stored value, in bytes.
pub const VERSION_HEADER_LEN: usize = 2;

/// A typed handle to one table of the store, declared as a `const` by the service that owns it.
///
/// `name` is the redb table name. It must be unique across the node, so prefix it with the
/// service name (`"registry.devices"`). `version` is the format version written with every value: raise it when
/// `V`'s postcard encoding changes, and list the older versions that can still be read with
/// [`Table::with_upgrades`].
///
/// ```
/// use alicia_core::store::{Table, Upgrade};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct LampV1 { name: String }
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Lamp { name: String, dimmable: bool }
///
/// impl From<LampV1> for Lamp {
///     fn from(old: LampV1) -> Self {
///         Lamp { name: old.name, dimmable: false }
///     }
/// }
///
/// const LAMPS: Table<String, Lamp> =
///     Table::new("lighting.lamps", 2).with_upgrades(&[Upgrade::decode_and_convert::<LampV1>(1)]);
/// ```
pub struct Table<K, V: 'static> {
    name: &'static str,
    version: u16,
    upgrades: &'static [Upgrade<V>],
    types: PhantomData<fn() -> (K, V)>,
}

impl<K, V: 'static> Table<K, V> {
    /// Creates a handle to the table `name`, whose values are written with format `version`.
    pub const fn new(name: &'static str, version: u16) -> Self {
        Self {
            name,
            version,
            upgrades: &[],
            types: PhantomData,
        }
    }

    /// Adds `upgrades`, which let the table read the older versions they convert.
    ///
    /// # Panics
    ///
    /// If an upgrade is from the table's own version or two upgrades are from the same version.
    /// In a `const` item that panic is a compile error.
    pub const fn with_upgrades(self, upgrades: &'static [Upgrade<V>]) -> Self {
        let mut index = 0;
        while index < upgrades.len() {
            assert!(
                upgrades[index].from != self.version,
                "an upgrade must be from a version other than the table's own"
            );
            let mut later = index + 1;
            while later < upgrades.len() {
                assert!(
                    upgrades[index].from != upgrades[later].from,
                    "two upgrades are from the same version"
                );
                later += 1;
            }
            index += 1;
        }
        Self { upgrades, ..self }
    }

    /// Returns the redb table name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the format version that writes store with each value.
    pub const fn version(&self) -> u16 {
        self.version
    }

    /// Lists the table's version followed by every version it can upgrade from.
    pub fn supported_versions(&self) -> Vec<u16> {
        std::iter::once(self.version)
            .chain(self.upgrades.iter().map(|upgrade| upgrade.from))
            .collect()
    }
}

impl<K: StoreKey, V: 'static> Table<K, V> {
    pub(super) fn definition(&self) -> redb::TableDefinition<'static, K::Stored, &'static [u8]> {
        redb::TableDefinition::new(self.name)
    }
}

impl<K, V: Serialize + 'static> Table<K, V> {
    /// Encodes `value` as `[version][postcard]`.
    pub(super) fn encode(&self, value: &V) -> Result<Vec<u8>, postcard::Error> {
        let header = self.version.to_le_bytes().to_vec();
        postcard::to_extend(value, header)
    }
}

impl<K, V: DeserializeOwned + 'static> Table<K, V> {
    /// Decodes a stored value, running an upgrade when it was written with an older version.
    pub(super) fn decode(&self, stored: &[u8]) -> Result<V, ValueError> {
        let Some((header, payload)) = stored.split_first_chunk::<VERSION_HEADER_LEN>() else {
            return Err(ValueError::Decode(format!(
                "the value is {} bytes long, shorter than its {VERSION_HEADER_LEN}-byte version header",
                stored.len()
            )));
        };
        let found = u16::from_le_bytes(*header);

        if found == self.version {
            return decode_postcard(payload).map_err(|error| ValueError::Decode(error.0));
        }

        match self.upgrades.iter().find(|upgrade| upgrade.from == found) {
            Some(upgrade) => (upgrade.read)(payload).map_err(|error| {
                ValueError::Decode(format!("upgrade from version {found} failed: {}", error.0))
            }),
            None => Err(ValueError::UnsupportedVersion { found }),
        }
    }
}

impl<K, V: 'static> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V: 'static> Copy for Table<K, V> {}

impl<K, V: 'static> fmt::Debug for Table<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("upgrades_from", &self.supported_versions()[1..].to_vec())
            .finish()
    }
}

/// A failure to read a stored value, before the table and key are attached.
#[derive(Debug)]
pub(super) enum ValueError {
    UnsupportedVersion { found: u16 },
    Decode(String),
}

impl ValueError {
    pub(super) fn into_store_error<K, V: 'static>(
        self,
        table: &Table<K, V>,
        key: String,
    ) -> StoreError {
        match self {
            ValueError::UnsupportedVersion { found } => StoreError::UnsupportedVersion {
                table: table.name,
                key,
                found,
                supported: table.supported_versions(),
            },
            ValueError::Decode(reason) => StoreError::Decode {
                table: table.name,
                key,
                reason,
            },
        }
    }
}

/// Reads the payload of a value stored with an older format version.
///
/// The argument is the postcard payload, without the version header.
pub type UpgradeFn<V> = fn(&[u8]) -> Result<V, DecodeError>;

/// A way to read values that a [`Table`] stored under an older format version.
pub struct Upgrade<V> {
    from: u16,
    read: UpgradeFn<V>,
}

impl<V> Upgrade<V> {
    /// Creates an upgrade that reads version `from` with `read`.
    pub const fn new(from: u16, read: UpgradeFn<V>) -> Self {
        Self { from, read }
    }

    /// Creates an upgrade that decodes version `from` as `Old` with postcard and converts it with
    /// `V::from`.
    pub const fn decode_and_convert<Old>(from: u16) -> Self
    where
        Old: DeserializeOwned,
        V: From<Old>,
    {
        Self {
            from,
            read: decode_and_convert::<Old, V>,
        }
    }

    /// Returns the version this upgrade reads.
    pub const fn from_version(&self) -> u16 {
        self.from
    }
}

fn decode_and_convert<Old: DeserializeOwned, V: From<Old>>(
    payload: &[u8],
) -> Result<V, DecodeError> {
    decode_postcard::<Old>(payload).map(V::from)
}

impl<V> Clone for Upgrade<V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for Upgrade<V> {}

impl<V> fmt::Debug for Upgrade<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade").field("from", &self.from).finish()
    }
}

/// Decodes one postcard value that fills `bytes` exactly.
///
/// Trailing bytes are an error rather than ignored, because they mean the bytes were written as
/// another type.
pub fn decode_postcard<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, rest) = postcard::take_from_bytes::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::new(format!(
            "{} bytes left over after the value",
            rest.len()
        )));
    }
    Ok(value)
}

/// A failure to decode stored bytes as the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    /// Creates a decode error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    /// Returns the reason the bytes were rejected.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

impl From<postcard::Error> for DecodeError {
    fn from(error: postcard::Error) -> Self {
        Self(error.to_string())
    }
}

/// A key type of a [`Table`], stored as one of redb's key types.
///
/// The stored type decides the table's order: `&str` keys sort by their UTF-8 bytes, `u64` keys
/// by number and `&[u8]` keys by bytes.
pub trait StoreKey: Sized {
    /// The redb key type the key is stored as.
    type Stored: redb::Key + 'static;

    /// Converts the key to its stored form.
    fn to_stored(&self) -> <Self::Stored as redb::Value>::SelfType<'_>;

    /// Rebuilds a key from its stored form, rejecting one that is not valid for this type.
    fn from_stored(
        stored: <Self::Stored as redb::Value>::SelfType<'_>,
    ) -> Result<Self, DecodeError>;

    /// Formats a stored key for error messages.
    fn describe(stored: &<Self::Stored as redb::Value>::SelfType<'_>) -> String;
}

impl StoreKey for String {
    type Stored = &'static str;

    fn to_stored(&self) -> &str {
        self
    }

    fn from_stored(stored: &str) -> Result<Self, DecodeError> {
        Ok(stored.to_owned())
    }

    fn describe(stored: &&str) -> String {
        format!("{stored:?}")
    }
}

impl StoreKey for u64 {
    type Stored = u64;

    fn to_stored(&self) -> u64 {
        *self
    }

    fn from_stored(stored: u64) -> Result<Self, DecodeError> {
        Ok(stored)
    }

    fn describe(stored: &u64) -> String {
        stored.to_string()
    }
}

impl StoreKey for Vec<u8> {
    type Stored = &'static [u8];

    fn to_stored(&self) -> &[u8] {
        self
    }

    fn from_stored(stored: &[u8]) -> Result<Self, DecodeError> {
        Ok(stored.to_vec())
    }

    fn describe(stored: &&[u8]) -> String {
        let hex: String = stored.iter().map(|byte| format!("{byte:02x}")).collect();
        format!("0x{hex}")
    }
}

macro_rules! impl_store_key_for_id {
    ($($id:ty),*) => {$(
        impl StoreKey for $id {
            type Stored = &'static str;

            fn to_stored(&self) -> &str {
                self.as_str()
            }

            fn from_stored(stored: &str) -> Result<Self, DecodeError> {
                <$id>::new(stored).map_err(|error| DecodeError::new(error.to_string()))
            }

            fn describe(stored: &&str) -> String {
                format!("{stored:?}")
            }
        }
    )*};
}

impl_store_key_for_id!(DeviceId, ServiceId, NodeId, InstanceId);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Lamp {
        name: String,
        brightness: u8,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct LampV1 {
        name: String,
    }

    impl From<LampV1> for Lamp {
        fn from(old: LampV1) -> Self {
            Lamp {
                name: old.name,
                brightness: 100,
            }
        }
    }

    const LAMPS_V1: Table<String, LampV1> = Table::new("test.lamps", 1);
    const LAMPS: Table<String, Lamp> =
        Table::new("test.lamps", 2).with_upgrades(&[Upgrade::decode_and_convert::<LampV1>(1)]);

    fn lamp(name: &str, brightness: u8) -> Lamp {
        Lamp {
            name: name.into(),
            brightness,
        }
    }

    #[test]
    fn encode_writes_version_header() {
        let bytes = LAMPS.encode(&lamp("hall", 7)).unwrap();
        assert_eq!(&bytes[..2], &[2, 0]);
        assert_eq!(&bytes[2..], postcard::to_stdvec(&lamp("hall", 7)).unwrap());
    }

    #[test]
    fn decode_reads_current_version() {
        let bytes = LAMPS.encode(&lamp("hall", 7)).unwrap();
        assert_eq!(LAMPS.decode(&bytes).unwrap(), lamp("hall", 7));
    }

    #[test]
    fn decode_upgrades_older_version() {
        let bytes = LAMPS_V1
            .encode(&LampV1 {
                name: "porch".into(),
            })
            .unwrap();
        assert_eq!(LAMPS.decode(&bytes).unwrap(), lamp("porch", 100));
    }

    #[test]
    fn decode_rejects_unknown_version() {
        let mut bytes = LAMPS.encode(&lamp("hall", 7)).unwrap();
        bytes[..2].copy_from_slice(&9u16.to_le_bytes());
        let error = LAMPS.decode(&bytes).unwrap_err();
        assert!(
            matches!(error, ValueError::UnsupportedVersion { found: 9 }),
            "{error:?}"
        );
    }

    #[test]
    fn decode_rejects_short_value() {
        for bytes in [&[][..], &[2][..]] {
            let error = LAMPS.decode(bytes).unwrap_err();
            assert!(
                matches!(&error, ValueError::Decode(reason) if reason.contains("version header")),
                "{error:?}"
            );
        }
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut bytes = LAMPS.encode(&lamp("hall", 7)).unwrap();
        bytes.push(0);
        let error = LAMPS.decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, ValueError::Decode(reason) if reason.contains("1 bytes left over")),
            "{error:?}"
        );
    }

    #[test]
    fn decode_reports_failed_upgrade() {
        let bytes = [1, 0, 0xff];
        let error = LAMPS.decode(&bytes).unwrap_err();
        assert!(
            matches!(&error, ValueError::Decode(reason) if reason.starts_with("upgrade from version 1 failed")),
            "{error:?}"
        );
    }

    #[test]
    fn supported_versions_lists_current_first() {
        assert_eq!(LAMPS.supported_versions(), vec![2, 1]);
        assert_eq!(LAMPS_V1.supported_versions(), vec![1]);
    }

    #[test]
    #[should_panic(expected = "other than the table's own")]
    fn with_upgrades_rejects_own_version() {
        let upgrades = Box::leak(Box::new([Upgrade::decode_and_convert::<LampV1>(2)]));
        let _ = Table::<String, Lamp>::new("test.lamps", 2).with_upgrades(upgrades);
    }

    #[test]
    #[should_panic(expected = "same version")]
    fn with_upgrades_rejects_duplicates() {
        let upgrades = Box::leak(Box::new([
            Upgrade::<Lamp>::decode_and_convert::<LampV1>(1),
            Upgrade::decode_and_convert::<LampV1>(1),
        ]));
        let _ = Table::<String, Lamp>::new("test.lamps", 2).with_upgrades(upgrades);
    }

    #[test]
    fn describe_keys() {
        assert_eq!(String::describe(&"a\"b"), "\"a\\\"b\"");
        assert_eq!(u64::describe(&42), "42");
        assert_eq!(Vec::<u8>::describe(&&[0x0a, 0xff][..]), "0x0aff");
        assert_eq!(DeviceId::describe(&"lamp-1"), "\"lamp-1\"");
    }

    #[test]
    fn id_key_rejects_invalid_stored_key() {
        let error = DeviceId::from_stored("kitchen/lamp").unwrap_err();
        assert!(error.reason().contains("'/'"), "{error}");
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(name in ".{0,40}", brightness in any::<u8>()) {
            let value = lamp(&name, brightness);
            let bytes = LAMPS.encode(&value).unwrap();
            prop_assert_eq!(LAMPS.decode(&bytes).unwrap(), value);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = LAMPS.decode(&bytes);
        }
    }
}
