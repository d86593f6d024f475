//! The registry's tables in the node store, and the writes that keep its indexes in step.
//!
//! Index tables map `"<value>\0<device id>"` to nothing, so a prefix scan over `"<value>\0"`
//! lists the devices with that value in device id order without reading any device record.
//! Validation keeps control characters out of indexed values, so the `\0` separator cannot occur
//! inside one.

use alicia_core::store::{ReadTransaction, Table, WriteTransaction};
use alicia_core::{DeviceId, StoreError, Timestamp};

use super::model::{DeviceRecord, Group, GroupId, Tombstone};

/// Device records by device id.
pub const DEVICES: Table<DeviceId, DeviceRecord> = Table::new("registry.devices", 1);

/// Groups by group id.
pub const GROUPS: Table<String, Group> = Table::new("registry.groups", 1);

/// Owner of each hardware identifier, keyed by `"<kind>:<normalized value>"`.
pub const IDENTIFIERS: Table<String, DeviceId> = Table::new("registry.identifiers", 1);

/// Tombstones of deregistered devices by device id.
pub const TOMBSTONES: Table<DeviceId, Tombstone> = Table::new("registry.tombstones", 1);

/// Last heartbeat time of each device. Written in group commits, see the actor's docs.
pub const LAST_SEEN: Table<DeviceId, Timestamp> = Table::new("registry.last_seen", 1);

/// Devices by capability name: `"<capability>\0<device id>"`.
pub const CAPABILITY_INDEX: Table<String, ()> = Table::new("registry.index.capability", 1);

/// Devices by type: `"<type>\0<device id>"`.
pub const TYPE_INDEX: Table<String, ()> = Table::new("registry.index.type", 1);

/// Devices by location: `"<location>\0<device id>"`.
pub const LOCATION_INDEX: Table<String, ()> = Table::new("registry.index.location", 1);

/// Separates the indexed value from the device id in index keys.
pub const INDEX_SEPARATOR: char = '\0';

/// Returns the index key prefix that lists every device with `value`.
pub fn index_prefix(value: &str) -> String {
    format!("{value}{INDEX_SEPARATOR}")
}

/// Returns the index key of `device` under `value`.
pub fn index_key(value: &str, device: &DeviceId) -> String {
    format!("{value}{INDEX_SEPARATOR}{device}")
}

/// Reads the device id back out of an index key.
pub fn device_of_index_key(key: &str) -> Option<DeviceId> {
    let (_, device) = key.split_once(INDEX_SEPARATOR)?;
    DeviceId::new(device).ok()
}

/// The index keys of one record, per index table.
struct IndexKeys {
    capabilities: Vec<String>,
    device_type: String,
    location: Option<String>,
}

fn index_keys(record: &DeviceRecord) -> IndexKeys {
    IndexKeys {
        capabilities: record
            .capabilities
            .iter()
            .map(|capability| index_key(&capability.name, &record.id))
            .collect(),
        device_type: index_key(&record.device_type, &record.id),
        location: record
            .location
            .as_ref()
            .map(|location| index_key(location, &record.id)),
    }
}

/// Every index entry a record has, as (table, key) pairs.
fn index_entries(record: &DeviceRecord) -> Vec<(Table<String, ()>, String)> {
    let keys = index_keys(record);
    let mut entries: Vec<(Table<String, ()>, String)> = keys
        .capabilities
        .into_iter()
        .map(|key| (CAPABILITY_INDEX, key))
        .collect();
    entries.push((TYPE_INDEX, keys.device_type));
    if let Some(location) = keys.location {
        entries.push((LOCATION_INDEX, location));
    }
    entries
}

/// Stores `record`, replacing `previous` and its index and identifier entries, and removes any
/// tombstone of the device.
pub fn put_device(
    transaction: &mut WriteTransaction,
    record: &DeviceRecord,
    previous: Option<&DeviceRecord>,
) -> Result<(), StoreError> {
    if let Some(previous) = previous {
        remove_secondary_entries(transaction, previous)?;
    }

    transaction.insert(&DEVICES, &record.id, record)?;
    for (table, key) in index_entries(record) {
        transaction.insert(&table, &key, &())?;
    }
    for identifier in &record.identifiers {
        transaction.insert(&IDENTIFIERS, &identifier.index_key(), &record.id)?;
    }
    transaction.remove(&TOMBSTONES, &record.id)?;
    Ok(())
}

/// Stores every record of `batch`, replacing its previous record, as [`put_device`] does for
/// one. Each table is opened once for the whole batch. A device may appear only once in `batch`.
///
/// The previous records' entries are removed before any new entry is written, so two devices
/// that trade a hardware identifier within one batch end up as they would one at a time.
pub fn put_devices(
    transaction: &mut WriteTransaction,
    batch: &[(&DeviceRecord, Option<&DeviceRecord>)],
) -> Result<(), StoreError> {
    for (_, previous) in batch {
        if let Some(previous) = previous {
            remove_secondary_entries(transaction, previous)?;
        }
    }

    transaction.insert_all(
        &DEVICES,
        batch.iter().map(|(record, _)| (&record.id, *record)),
    )?;

    let mut capabilities = Vec::new();
    let mut types = Vec::with_capacity(batch.len());
    let mut locations = Vec::with_capacity(batch.len());
    let mut identifiers = Vec::new();
    for (record, _) in batch {
        let keys = index_keys(record);
        capabilities.extend(keys.capabilities);
        types.push(keys.device_type);
        locations.extend(keys.location);
        for identifier in &record.identifiers {
            identifiers.push((identifier.index_key(), &record.id));
        }
    }
    for (table, keys) in [
        (CAPABILITY_INDEX, capabilities),
        (TYPE_INDEX, types),
        (LOCATION_INDEX, locations),
    ] {
        if !keys.is_empty() {
            transaction.insert_all(&table, keys.iter().map(|key| (key, &())))?;
        }
    }
    if !identifiers.is_empty() {
        transaction.insert_all(
            &IDENTIFIERS,
            identifiers.iter().map(|(key, device)| (key, *device)),
        )?;
    }
    transaction.remove_all(&TOMBSTONES, batch.iter().map(|(record, _)| &record.id))?;
    Ok(())
}

/// Removes `record` with its index, identifier and last-seen entries, and writes `tombstone`.
pub fn remove_device(
    transaction: &mut WriteTransaction,
    record: &DeviceRecord,
    tombstone: &Tombstone,
) -> Result<(), StoreError> {
    remove_secondary_entries(transaction, record)?;
    transaction.remove(&DEVICES, &record.id)?;
    transaction.remove(&LAST_SEEN, &record.id)?;
    transaction.insert(&TOMBSTONES, &record.id, tombstone)?;
    Ok(())
}

fn remove_secondary_entries(
    transaction: &mut WriteTransaction,
    record: &DeviceRecord,
) -> Result<(), StoreError> {
    for (table, key) in index_entries(record) {
        transaction.remove(&table, &key)?;
    }
    for identifier in &record.identifiers {
        // Only remove the entry if it is this device's: an entry that names another device
        // was never this device's to remove.
        let key = identifier.index_key();
        if transaction.get(&IDENTIFIERS, &key)?.as_ref() == Some(&record.id) {
            transaction.remove(&IDENTIFIERS, &key)?;
        }
    }
    Ok(())
}

/// Stores `group`.
pub fn put_group(transaction: &mut WriteTransaction, group: &Group) -> Result<(), StoreError> {
    transaction.insert(&GROUPS, &group.id.to_string(), group)
}

/// Removes the group `id`.
pub fn remove_group(transaction: &mut WriteTransaction, id: &GroupId) -> Result<(), StoreError> {
    transaction.remove(&GROUPS, &id.to_string()).map(|_| ())
}

/// Reads the owner of a hardware identifier index key.
pub fn identifier_owner(read: &ReadTransaction, key: &str) -> Result<Option<DeviceId>, StoreError> {
    read.get(&IDENTIFIERS, &key.to_owned())
}
