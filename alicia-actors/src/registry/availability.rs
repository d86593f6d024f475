//! Availability tracking: per-device timeouts and the sweep that marks silent devices offline.
//!
//! Timeouts are measured on the clock's monotonic time, so setting the system clock neither
//! marks devices offline nor keeps them online. Times shown to users (`since`, `last_seen`) are
//! wall-clock times.

use std::time::Duration;

use alicia_core::{DeviceId, Timestamp};

use super::model::{
    Availability, AvailabilityReason, AvailabilityState, DeviceRecord, DeviceStatus, PowerSource,
};

/// Default heartbeat timeouts by power source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultTimeouts {
    /// Timeout of mains-powered devices.
    pub mains: Duration,
    /// Timeout of battery-powered devices, which may sleep for hours.
    pub battery: Duration,
}

impl Default for DefaultTimeouts {
    fn default() -> Self {
        Self {
            mains: Duration::from_secs(5 * 60),
            battery: Duration::from_secs(24 * 3600),
        }
    }
}

impl DefaultTimeouts {
    /// Returns the heartbeat timeout of `record`: its own, or the default of its power source.
    pub fn timeout_of(&self, record: &DeviceRecord) -> Duration {
        match (record.heartbeat_timeout_secs, record.power_source) {
            (Some(seconds), _) => Duration::from_secs(seconds),
            (None, PowerSource::Mains) => self.mains,
            (None, PowerSource::Battery) => self.battery,
        }
    }
}

/// In-memory state of one registered device: about 100 bytes plus the id.
#[derive(Debug, Clone)]
pub struct LiveDevice {
    /// Current availability.
    pub availability: Availability,
    /// Wall-clock time of the last heartbeat, loaded from the store after a restart.
    pub last_seen: Option<Timestamp>,
    /// Monotonic time from which the timeout runs: the last heartbeat, or the registration or
    /// start when there has been none since.
    pub silent_since: Duration,
    /// How long the device may stay silent before it is marked offline.
    pub timeout: Duration,
}

impl LiveDevice {
    /// Creates the state of a device with no evidence yet, for `reason` at time `now`.
    pub fn unknown(
        reason: AvailabilityReason,
        now: Timestamp,
        monotonic: Duration,
        timeout: Duration,
        last_seen: Option<Timestamp>,
    ) -> Self {
        Self {
            availability: Availability {
                state: AvailabilityState::Unknown,
                reason,
                since: now,
            },
            last_seen,
            silent_since: monotonic,
            timeout,
        }
    }

    /// Records a heartbeat and returns the new availability if the state changed.
    pub fn heartbeat(&mut self, now: Timestamp, monotonic: Duration) -> Option<Availability> {
        self.last_seen = Some(now);
        self.silent_since = monotonic;
        self.transition(
            AvailabilityState::Online,
            AvailabilityReason::Heartbeat,
            now,
        )
    }

    /// Records the device's last will and returns the new availability if the state changed.
    pub fn last_will(&mut self, now: Timestamp) -> Option<Availability> {
        self.transition(
            AvailabilityState::Offline,
            AvailabilityReason::LastWill,
            now,
        )
    }

    /// Marks the device offline if it has been silent for longer than its timeout, and returns
    /// the new availability if the state changed.
    ///
    /// A device silent for exactly its timeout is still within it. A device in state unknown is
    /// also marked offline once its timeout has passed since the start or its registration,
    /// because that silence is evidence of absence.
    pub fn sweep(&mut self, now: Timestamp, monotonic: Duration) -> Option<Availability> {
        if self.availability.state == AvailabilityState::Offline {
            return None;
        }
        let silent_for = monotonic.saturating_sub(self.silent_since);
        if silent_for > self.timeout {
            self.transition(AvailabilityState::Offline, AvailabilityReason::Timeout, now)
        } else {
            None
        }
    }

    fn transition(
        &mut self,
        state: AvailabilityState,
        reason: AvailabilityReason,
        now: Timestamp,
    ) -> Option<Availability> {
        if self.availability.state == state {
            return None;
        }
        self.availability = Availability {
            state,
            reason,
            since: now,
        };
        Some(self.availability)
    }

    /// Returns the retained status of device `id`.
    pub fn status(&self, id: &DeviceId) -> DeviceStatus {
        DeviceStatus {
            device_id: id.clone(),
            state: self.availability.state,
            reason: self.availability.reason,
            since: self.availability.since,
            last_seen: self.last_seen,
        }
    }
}
