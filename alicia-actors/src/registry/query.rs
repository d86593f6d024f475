//! Paged device queries over the indexes.
//!
//! A query walks one candidate list in device id order and checks the other filters on each
//! candidate. The list is the most selective one available: the group's members, else the
//! capability, type or location index, else every device. So a query by capability reads only
//! the devices that have the capability.

use std::ops::Bound;

use alicia_core::DeviceId;
use alicia_core::store::{ReadTransaction, Table};

use super::actor::RegistryState;
use super::error::RegistryError;
use super::model::{DevicePage, DeviceQuery, DeviceRecord};
use super::tables::{
    self, CAPABILITY_INDEX, DEVICES, LOCATION_INDEX, TYPE_INDEX, device_of_index_key,
};
use super::validate::validate_query;

type Candidates<'a> = Box<dyn Iterator<Item = Result<DeviceId, RegistryError>> + 'a>;

/// Runs `query` and returns one page of matching devices.
pub fn run(state: &RegistryState, query: &DeviceQuery) -> Result<DevicePage, RegistryError> {
    validate_query(query, state.max_page_size())?;
    let read = state.store().begin_read()?;
    let candidates = candidates(state, &read, query)?;

    // One match beyond the page tells whether a next page exists.
    let mut devices = Vec::with_capacity(query.limit + 1);
    for candidate in candidates {
        let id = candidate?;
        if let Some(record) = matching_record(state, &read, query, &id)? {
            devices.push(state.view(record));
            if devices.len() > query.limit {
                break;
            }
        }
    }

    let next_after = if devices.len() > query.limit {
        devices.truncate(query.limit);
        devices.last().map(|view| view.record.id.clone())
    } else {
        None
    };
    Ok(DevicePage {
        devices,
        next_after,
    })
}

fn candidates<'a>(
    state: &'a RegistryState,
    read: &ReadTransaction,
    query: &'a DeviceQuery,
) -> Result<Candidates<'a>, RegistryError> {
    let after = query.after.as_ref();

    if let Some(group_id) = &query.group {
        let group = state
            .groups
            .get(group_id)
            .ok_or_else(|| RegistryError::GroupNotFound {
                group_id: group_id.clone(),
            })?;
        let start = match after {
            Some(after) => Bound::Excluded(after.clone()),
            None => Bound::Unbounded,
        };
        let members = group
            .members
            .range((start, Bound::Unbounded))
            .cloned()
            .map(Ok);
        return Ok(Box::new(members));
    }

    let indexed = [
        (CAPABILITY_INDEX, query.capability.as_deref()),
        (TYPE_INDEX, query.device_type.as_deref()),
        (LOCATION_INDEX, query.location.as_deref()),
    ];
    if let Some((table, value)) = indexed
        .into_iter()
        .find_map(|(table, value)| value.map(|value| (table, value)))
    {
        return index_candidates(read, table, value, after);
    }

    let start = match after {
        Some(after) => Bound::Excluded(after.clone()),
        None => Bound::Unbounded,
    };
    let every = state
        .live
        .range((start, Bound::Unbounded))
        .map(|(id, _)| Ok(id.clone()));
    Ok(Box::new(every))
}

/// Lists the devices of one index value, in id order, after `after`.
fn index_candidates<'a>(
    read: &ReadTransaction,
    table: Table<String, ()>,
    value: &str,
    after: Option<&DeviceId>,
) -> Result<Candidates<'a>, RegistryError> {
    let prefix = tables::index_prefix(value);
    let start = match after {
        Some(after) => Bound::Excluded(tables::index_key(value, after)),
        None => Bound::Included(prefix.clone()),
    };
    let entries = read.range(&table, (start, Bound::Unbounded))?;
    let ids = entries
        .map_while(move |entry| match entry {
            Ok((key, ())) if key.starts_with(&prefix) => Some(Ok(key)),
            Ok(_) => None,
            Err(error) => Some(Err(error)),
        })
        .filter_map(|entry| match entry {
            Ok(key) => device_of_index_key(&key).map(Ok),
            Err(error) => Some(Err(RegistryError::Store(error))),
        });
    Ok(Box::new(ids))
}

/// Reads the record of `id` if it matches every filter of `query`.
fn matching_record(
    state: &RegistryState,
    read: &ReadTransaction,
    query: &DeviceQuery,
    id: &DeviceId,
) -> Result<Option<DeviceRecord>, RegistryError> {
    if let Some(status) = query.status {
        let state_now = state.live.get(id).map(|live| live.availability.state);
        if state_now != Some(status) {
            return Ok(None);
        }
    }
    if let Some(group_id) = &query.group {
        let member = state
            .groups
            .get(group_id)
            .is_some_and(|group| group.members.contains(id));
        if !member {
            return Ok(None);
        }
    }

    let Some(record) = read.get(&DEVICES, id)? else {
        return Ok(None);
    };
    let matches = query
        .device_type
        .as_ref()
        .is_none_or(|device_type| &record.device_type == device_type)
        && query
            .location
            .as_ref()
            .is_none_or(|location| record.location.as_ref() == Some(location))
        && query
            .capability
            .as_ref()
            .is_none_or(|capability| record.has_capability(capability));
    Ok(matches.then_some(record))
}
