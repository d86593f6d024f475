//! Heartbeats, timeouts, last wills and availability after a restart, on the manual clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alicia_core::{DeviceId, ManualClock, Store};

use super::support::{
    Running, START, id, lamp, quiet_config, sensor, start, start_with_event_capacity,
};
use crate::registry::{
    AvailabilityReason, AvailabilityState, LAST_SEEN, PowerSource, RegistryConfig, RegistryError,
    RegistryEvent,
};

const MAINS_TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn heartbeat_makes_device_online() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.drain();

    let availability = registry.client.heartbeat(&id("lamp-1")).await.unwrap();

    assert_eq!(availability.state, AvailabilityState::Online);
    assert_eq!(availability.reason, AvailabilityReason::Heartbeat);
    let events = registry.drain();
    assert!(
        matches!(&events[..], [RegistryEvent::Status(status)] if status.state == AvailabilityState::Online && status.last_seen == Some(START)),
        "{events:?}"
    );
    registry.stop().await;
}

#[tokio::test]
async fn repeated_heartbeat_sends_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    registry.drain();

    registry.client.heartbeat(&id("lamp-1")).await.unwrap();

    assert!(registry.drain().is_empty());
    assert_eq!(registry.client.stats().await.unwrap().heartbeats, 2);
    registry.stop().await;
}

#[tokio::test]
async fn heartbeat_from_unregistered_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;

    let error = registry.client.heartbeat(&id("ghost")).await.unwrap_err();

    assert!(
        matches!(error, RegistryError::DeviceNotFound { .. }),
        "{error}"
    );
    let stats = registry.client.stats().await.unwrap();
    assert_eq!(stats.rejected_heartbeats, 1);
    assert_eq!(stats.heartbeats, 0);
    registry.stop().await;
}

#[tokio::test]
async fn offline_only_after_timeout_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();

    clock.advance(MAINS_TIMEOUT);
    let at_boundary = registry.client.sweep().await.unwrap();
    assert!(
        at_boundary.is_empty(),
        "silent for exactly the timeout: {at_boundary:?}"
    );

    clock.advance(Duration::from_millis(1));
    let after = registry.client.sweep().await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].state, AvailabilityState::Offline);
    assert_eq!(after[0].reason, AvailabilityReason::Timeout);
    registry.stop().await;
}

#[tokio::test]
async fn timeouts_are_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    let mut fast = lamp("fast");
    fast.heartbeat_timeout_secs = Some(60);
    let mut battery = sensor("battery");
    battery.power_source = PowerSource::Battery;
    for spec in [fast, lamp("mains"), battery] {
        let device = id(&spec.id);
        registry.client.register(spec).await.unwrap();
        registry.client.heartbeat(&device).await.unwrap();
    }

    clock.advance(Duration::from_secs(61));
    let first: Vec<String> = registry
        .client
        .sweep()
        .await
        .unwrap()
        .into_iter()
        .map(|status| status.device_id.to_string())
        .collect();
    assert_eq!(first, vec!["fast"]);

    clock.advance(Duration::from_secs(240));
    let second: Vec<String> = registry
        .client
        .sweep()
        .await
        .unwrap()
        .into_iter()
        .map(|status| status.device_id.to_string())
        .collect();
    assert_eq!(second, vec!["mains"]);

    clock.advance(Duration::from_secs(24 * 3600));
    let third = registry.client.sweep().await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].device_id.as_str(), "battery");
    registry.stop().await;
}

#[tokio::test]
async fn sweep_timer_runs_without_requests() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let config = RegistryConfig {
        sweep_interval: Duration::from_millis(10),
        ..quiet_config()
    };
    let mut registry = start(dir.path(), &clock, config).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    registry.drain();

    clock.advance(MAINS_TIMEOUT + Duration::from_secs(1));
    let event = tokio::time::timeout(Duration::from_secs(5), registry.events.recv())
        .await
        .expect("the sweep timer sends an offline status within 5 s")
        .expect("the event channel is open");

    assert!(
        matches!(&event, RegistryEvent::Status(status) if status.state == AvailabilityState::Offline),
        "{event:?}"
    );
    registry.stop().await;
}

#[tokio::test]
async fn last_will_marks_offline() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();

    registry
        .client
        .report_last_will(&id("lamp-1"))
        .await
        .unwrap();
    let view = registry.client.get(&id("lamp-1")).await.unwrap();

    assert_eq!(view.availability.state, AvailabilityState::Offline);
    assert_eq!(view.availability.reason, AvailabilityReason::LastWill);
    registry.stop().await;
}

#[tokio::test]
async fn unknown_after_restart_until_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    registry.stop().await;

    clock.advance(Duration::from_secs(10));
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    let view = registry.client.get(&id("lamp-1")).await.unwrap();
    assert_eq!(view.availability.state, AvailabilityState::Unknown);
    assert_eq!(
        view.availability.reason,
        AvailabilityReason::NotSeenSinceStart
    );
    assert_eq!(
        view.last_seen,
        Some(START),
        "last seen is kept across the restart"
    );
    let events = registry.drain();
    assert!(
        matches!(&events[..], [RegistryEvent::Status(status)] if status.state == AvailabilityState::Unknown),
        "the start replaces the retained status: {events:?}"
    );

    let availability = registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    assert_eq!(availability.state, AvailabilityState::Online);
    registry.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_announcement_lets_requests_through() {
    const DEVICES: usize = 3_000;
    const EVENT_CAPACITY: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    // Room for the registered event and the status of every device.
    let registry = start_with_event_capacity(dir.path(), &clock, quiet_config(), 2 * DEVICES).await;
    let mut registrations = tokio::task::JoinSet::new();
    for index in 0..DEVICES {
        let client = registry.client.clone();
        registrations
            .spawn(async move { client.register(lamp(&format!("lamp-{index:05}"))).await });
    }
    while let Some(registered) = registrations.join_next().await {
        registered.unwrap().unwrap();
    }
    registry.stop().await;

    // A slow event consumer, five events per millisecond, so the announcement of 3,000 statuses
    // takes at least 600 ms. A registry that announced every device before serving would reply
    // to the heartbeat only once all but the channel's 64 had been read.
    let registry =
        start_with_event_capacity(dir.path(), &clock, quiet_config(), EVENT_CAPACITY).await;
    let Running {
        client,
        handle,
        mut events,
    } = registry;
    let read = Arc::new(AtomicUsize::new(0));
    let consumer_read = Arc::clone(&read);
    let consumer = tokio::spawn(async move {
        let mut statuses: HashMap<DeviceId, Vec<AvailabilityState>> = HashMap::new();
        let mut received = 0;
        while received < DEVICES {
            let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
                .await
                .expect("every device's status arrives")
                .expect("the registry keeps its event channel open");
            if let RegistryEvent::Status(status) = event {
                statuses
                    .entry(status.device_id)
                    .or_default()
                    .push(status.state);
                received += 1;
            }
            consumer_read.store(received, Ordering::Relaxed);
            if received % 5 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        statuses
    });

    let last = id(&format!("lamp-{:05}", DEVICES - 1));
    let availability = client.heartbeat(&last).await.unwrap();
    let read_at_reply = read.load(Ordering::Relaxed);
    assert_eq!(availability.state, AvailabilityState::Online);
    assert!(
        read_at_reply < DEVICES - EVENT_CAPACITY,
        "the heartbeat waited for the whole announcement: {read_at_reply} statuses read first"
    );

    let statuses = consumer.await.unwrap();
    assert_eq!(statuses.len(), DEVICES, "one status per device");
    assert_eq!(
        statuses[&last],
        [AvailabilityState::Online],
        "the announcement skips a device that came online, so unknown never overwrites online"
    );
    let announced_unknown = statuses
        .values()
        .filter(|states| states[..] == [AvailabilityState::Unknown])
        .count();
    assert_eq!(announced_unknown, DEVICES - 1);
    if let Some(actor) = client.actor() {
        actor.stop(None);
    }
    handle.await.expect("the registry actor stops cleanly");
}

#[tokio::test]
async fn unknown_device_goes_offline_after_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();

    clock.advance(MAINS_TIMEOUT + Duration::from_millis(1));
    let changed = registry.client.sweep().await.unwrap();

    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].reason, AvailabilityReason::Timeout);
    registry.stop().await;
}

#[tokio::test]
async fn flush_writes_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(lamp("lamp-2")).await.unwrap();
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    registry.client.heartbeat(&id("lamp-1")).await.unwrap();
    registry.client.heartbeat(&id("lamp-2")).await.unwrap();

    assert_eq!(registry.client.flush_last_seen().await.unwrap(), 2);
    assert_eq!(registry.client.flush_last_seen().await.unwrap(), 0);
    registry.stop().await;

    let store = Store::open(dir.path(), clock.shared()).unwrap().store;
    let read = store.begin_read().unwrap();
    let later = START.saturating_add(Duration::from_secs(1));
    assert_eq!(read.get(&LAST_SEEN, &id("lamp-1")).unwrap(), Some(later));
}
