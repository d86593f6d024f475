//! Group availability.

use std::collections::BTreeMap;

use alicia_core::DeviceId;

use super::availability::LiveDevice;
use super::model::{AvailabilityState, Group, GroupView};

/// Joins a group with its availability: available when at least one member is online.
pub fn view(group: &Group, live: &BTreeMap<DeviceId, LiveDevice>) -> GroupView {
    let available = group.members.iter().any(|member| {
        live.get(member)
            .is_some_and(|device| device.availability.state == AvailabilityState::Online)
    });
    GroupView {
        group: group.clone(),
        available,
    }
}
