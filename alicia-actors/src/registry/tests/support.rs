//! A registry on a real store in a temporary directory, with a manual clock.

use std::path::Path;
use std::time::Duration;

use alicia_core::{DeviceId, ManualClock, Store, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::registry::{
    Capability, DeviceSpec, Property, RegistryArgs, RegistryClient, RegistryConfig, RegistryEvent,
    ValueType,
};

pub const START: Timestamp = Timestamp(1_700_000_000_000);

/// Timers far beyond any test, so only explicit sweeps and flushes run.
pub fn quiet_config() -> RegistryConfig {
    RegistryConfig {
        sweep_interval: Duration::from_secs(3600),
        last_seen_flush_interval: Duration::from_secs(3600),
        ..RegistryConfig::default()
    }
}

pub struct Running {
    pub client: RegistryClient,
    pub handle: JoinHandle<()>,
    pub events: mpsc::Receiver<RegistryEvent>,
}

impl Running {
    /// Stops the actor and waits until it has released the store.
    pub async fn stop(self) {
        if let Some(actor) = self.client.actor() {
            actor.stop(None);
        }
        self.handle.await.expect("the registry actor stops cleanly");
    }

    /// Returns every event sent so far.
    pub fn drain(&mut self) -> Vec<RegistryEvent> {
        let mut events = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            events.push(event);
        }
        events
    }
}

pub async fn start(dir: &Path, clock: &ManualClock, config: RegistryConfig) -> Running {
    start_with_event_capacity(dir, clock, config, 4096).await
}

/// Starts a registry whose event channel has room for `capacity` events.
pub async fn start_with_event_capacity(
    dir: &Path,
    clock: &ManualClock,
    config: RegistryConfig,
    capacity: usize,
) -> Running {
    let store = Store::open(dir, clock.shared())
        .expect("the test store opens")
        .store;
    let (sender, events) = mpsc::channel(capacity);
    let args = RegistryArgs {
        store,
        clock: clock.shared(),
        config,
        events: Some(sender),
    };
    let (client, handle) = RegistryClient::spawn(args)
        .await
        .expect("the registry starts");
    Running {
        client,
        handle,
        events,
    }
}

pub fn id(value: &str) -> DeviceId {
    DeviceId::new(value).expect("test ids are valid")
}

pub fn lamp(device_id: &str) -> DeviceSpec {
    let mut spec = DeviceSpec::new(device_id, "light", format!("Lamp {device_id}"));
    spec.location = Some("Kitchen".into());
    spec.capabilities = vec![
        Capability::new("on_off").with_property(Property::new("on", ValueType::Boolean).writable()),
        Capability::new("brightness").with_property(
            Property::new("level", ValueType::Integer)
                .with_range(0.0, 100.0, Some(1.0))
                .writable(),
        ),
    ];
    spec
}

pub fn sensor(device_id: &str) -> DeviceSpec {
    let mut spec = DeviceSpec::new(device_id, "motion_sensor", format!("Sensor {device_id}"));
    spec.location = Some("Hall".into());
    spec.capabilities = vec![
        Capability::new("motion").with_property(Property::new("detected", ValueType::Boolean)),
    ];
    spec
}
