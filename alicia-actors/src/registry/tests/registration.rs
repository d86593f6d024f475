//! Registration, update, deregistration and restart, against a real store.

use alicia_core::{ManualClock, Store};

use super::support::{START, id, lamp, quiet_config, sensor, start};
use crate::registry::{
    AvailabilityReason, AvailabilityState, DeviceUpdate, HardwareId, HardwareIdKind,
    RegisterOutcome, RegistryConfig, RegistryError, RegistryEvent, TOMBSTONES,
};

#[tokio::test]
async fn register_then_get() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;

    let registration = registry.client.register(lamp("lamp-1")).await.unwrap();
    assert_eq!(registration.outcome, RegisterOutcome::Created);

    let view = registry.client.get(&id("lamp-1")).await.unwrap();
    assert_eq!(view.record.name, "Lamp lamp-1");
    assert_eq!(view.availability.state, AvailabilityState::Unknown);
    assert_eq!(
        view.availability.reason,
        AvailabilityReason::NotSeenSinceRegistration
    );

    let events = registry.drain();
    assert!(
        matches!(&events[0], RegistryEvent::Registered(record) if record.id.as_str() == "lamp-1")
    );
    assert!(
        matches!(&events[1], RegistryEvent::Status(status) if status.state == AvailabilityState::Unknown)
    );
    registry.stop().await;
}

#[tokio::test]
async fn reregister_same_content_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    let first = registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.drain();

    clock.advance(std::time::Duration::from_secs(60));
    let second = registry.client.register(lamp("lamp-1")).await.unwrap();

    assert_eq!(second.outcome, RegisterOutcome::Unchanged);
    assert_eq!(second.record.updated_at, first.record.updated_at);
    assert!(
        registry.drain().is_empty(),
        "no event for an unchanged registration"
    );
    registry.stop().await;
}

#[tokio::test]
async fn reregister_changed_content_emits_updated() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    let first = registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.drain();

    clock.advance(std::time::Duration::from_secs(60));
    let mut changed = lamp("lamp-1");
    changed.firmware_version = Some("2.0".into());
    let second = registry.client.register(changed).await.unwrap();

    assert_eq!(second.outcome, RegisterOutcome::Updated);
    assert_eq!(second.record.created_at, first.record.created_at);
    assert!(second.record.updated_at > first.record.updated_at);
    let events = registry.drain();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0], RegistryEvent::Updated(record) if record.firmware_version.as_deref() == Some("2.0"))
    );
    registry.stop().await;
}

#[tokio::test]
async fn update_changes_fields_and_emits_event() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.drain();

    let update = DeviceUpdate {
        name: Some("Pantry lamp".into()),
        location: Some(None),
        ..DeviceUpdate::default()
    };
    let record = registry.client.update(&id("lamp-1"), update).await.unwrap();

    assert_eq!(record.name, "Pantry lamp");
    assert_eq!(record.location, None);
    let events = registry.drain();
    assert!(
        matches!(&events[..], [RegistryEvent::Updated(record)] if record.name == "Pantry lamp")
    );
    registry.stop().await;
}

#[tokio::test]
async fn update_with_invalid_field_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();

    let update = DeviceUpdate {
        name: Some(String::new()),
        ..DeviceUpdate::default()
    };
    let error = registry
        .client
        .update(&id("lamp-1"), update)
        .await
        .unwrap_err();

    assert!(
        error
            .field_errors()
            .is_some_and(|errors| errors.has_field("name")),
        "{error}"
    );
    let stored = registry.client.get(&id("lamp-1")).await.unwrap();
    assert_eq!(stored.record.name, "Lamp lamp-1");
    registry.stop().await;
}

#[tokio::test]
async fn update_of_unknown_device_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;

    let error = registry
        .client
        .update(&id("ghost"), DeviceUpdate::default())
        .await
        .unwrap_err();

    assert!(
        matches!(error, RegistryError::DeviceNotFound { .. }),
        "{error}"
    );
    registry.stop().await;
}

#[tokio::test]
async fn identifier_conflict_names_owner() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    let mut first = lamp("lamp-1");
    first.identifiers = vec![HardwareId::new(HardwareIdKind::Mac, "00:17:88:01:02:03")];
    registry.client.register(first).await.unwrap();

    // The same MAC address, written differently.
    let mut second = lamp("lamp-2");
    second.identifiers = vec![HardwareId::new(HardwareIdKind::Mac, "00-17-88-01-02-03")];
    let error = registry.client.register(second).await.unwrap_err();

    match &error {
        RegistryError::IdentifierConflict { owner, .. } => assert_eq!(owner.as_str(), "lamp-1"),
        other => panic!("expected an identifier conflict, got {other}"),
    }
    assert!(
        error
            .to_string()
            .contains("already belongs to device \"lamp-1\""),
        "{error}"
    );
    let missing = registry.client.get(&id("lamp-2")).await.unwrap_err();
    assert!(matches!(missing, RegistryError::DeviceNotFound { .. }));
    registry.stop().await;
}

#[tokio::test]
async fn identifier_conflict_within_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    let mut first = lamp("lamp-1");
    first.identifiers = vec![HardwareId::new(HardwareIdKind::Serial, "SN-1")];
    let mut second = lamp("lamp-2");
    second.identifiers = vec![HardwareId::new(HardwareIdKind::Serial, "SN-1")];

    // Both are in the mailbox before the first commit, so they are staged in one batch.
    let (a, b) = tokio::join!(
        registry.client.register(first),
        registry.client.register(second)
    );

    assert!(a.is_ok(), "{a:?}");
    assert!(
        matches!(b, Err(RegistryError::IdentifierConflict { .. })),
        "{b:?}"
    );
    registry.stop().await;
}

#[tokio::test]
async fn identifier_is_free_after_deregistration() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    let mut first = lamp("lamp-1");
    first.identifiers = vec![HardwareId::new(HardwareIdKind::Serial, "SN-1")];
    registry.client.register(first).await.unwrap();
    registry.client.deregister(&id("lamp-1")).await.unwrap();

    let mut second = lamp("lamp-2");
    second.identifiers = vec![HardwareId::new(HardwareIdKind::Serial, "SN-1")];
    let registration = registry.client.register(second).await;

    assert!(registration.is_ok(), "{registration:?}");
    registry.stop().await;
}

#[tokio::test]
async fn max_devices_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let config = RegistryConfig {
        max_devices: 2,
        ..quiet_config()
    };
    let registry = start(dir.path(), &clock, config).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(lamp("lamp-2")).await.unwrap();

    let error = registry.client.register(lamp("lamp-3")).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::DeviceLimitReached { max: 2, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("maximum of 2 devices"),
        "{error}"
    );

    // Re-registering a device that is already counted stays possible.
    let mut changed = lamp("lamp-2");
    changed.name = "Renamed".into();
    assert!(registry.client.register(changed).await.is_ok());
    registry.stop().await;
}

#[tokio::test]
async fn max_devices_counts_staged_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let config = RegistryConfig {
        max_devices: 2,
        ..quiet_config()
    };
    let registry = start(dir.path(), &clock, config).await;

    let (a, b, c) = tokio::join!(
        registry.client.register(lamp("lamp-1")),
        registry.client.register(lamp("lamp-2")),
        registry.client.register(lamp("lamp-3"))
    );

    let accepted = [&a, &b, &c].iter().filter(|result| result.is_ok()).count();
    assert_eq!(accepted, 2);
    assert_eq!(registry.client.stats().await.unwrap().devices, 2);
    registry.stop().await;
}

#[tokio::test]
async fn burst_shares_durable_commits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;

    let calls: Vec<_> = (0..50)
        .map(|index| {
            let client = registry.client.clone();
            tokio::spawn(async move { client.register(lamp(&format!("lamp-{index}"))).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }

    let stats = registry.client.stats().await.unwrap();
    assert_eq!(stats.registrations_committed, 50);
    assert!(stats.registration_commits < 50, "{stats:?}");
    registry.stop().await;
}

#[tokio::test]
async fn deregister_writes_tombstone_and_clears_status() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let mut registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.drain();

    clock.advance(std::time::Duration::from_secs(5));
    let tombstone = registry.client.deregister(&id("lamp-1")).await.unwrap();
    assert_eq!(
        tombstone.deregistered_at,
        START.saturating_add(std::time::Duration::from_secs(5))
    );

    let events = registry.drain();
    assert!(
        matches!(&events[0], RegistryEvent::StatusCleared(device) if device.as_str() == "lamp-1")
    );
    assert!(matches!(&events[1], RegistryEvent::Deregistered(_)));

    let error = registry.client.get(&id("lamp-1")).await.unwrap_err();
    assert!(
        matches!(error, RegistryError::DeviceNotFound { deregistered_at: Some(time), .. } if time == tombstone.deregistered_at),
        "{error}"
    );
    let heartbeat = registry.client.heartbeat(&id("lamp-1")).await;
    assert!(heartbeat.is_err());
    registry.stop().await;

    let store = Store::open(dir.path(), clock.shared()).unwrap().store;
    let stored = store
        .begin_read()
        .unwrap()
        .get(&TOMBSTONES, &id("lamp-1"))
        .unwrap();
    assert_eq!(stored, Some(tombstone));
}

#[tokio::test]
async fn cleared_status_event_has_empty_retained_payload() {
    let event = RegistryEvent::StatusCleared(id("lamp-1"));
    assert_eq!(
        event.topic().unwrap().as_str(),
        "alicia/devices/status/lamp-1"
    );
    assert!(event.spec().retained());
    assert_eq!(event.body().unwrap(), None);
}

#[tokio::test]
async fn restart_restores_devices_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let registry = start(dir.path(), &clock, quiet_config()).await;
    registry.client.register(lamp("lamp-1")).await.unwrap();
    registry.client.register(sensor("sensor-1")).await.unwrap();
    let group = crate::registry::GroupId::new("kitchen").unwrap();
    registry
        .client
        .create_group(&group, "Kitchen")
        .await
        .unwrap();
    registry
        .client
        .add_member(&group, &id("lamp-1"))
        .await
        .unwrap();
    registry.stop().await;

    let registry = start(dir.path(), &clock, quiet_config()).await;
    let stats = registry.client.stats().await.unwrap();
    assert_eq!(stats.devices, 2);
    assert_eq!(stats.groups, 1);
    let restored = registry.client.get_group(&group).await.unwrap();
    assert!(restored.group.members.contains(&id("lamp-1")));
    let sensor = registry.client.get(&id("sensor-1")).await.unwrap();
    assert_eq!(sensor.record.device_type, "motion_sensor");
    registry.stop().await;
}
